/* Batch normalisation, channels-last: x is viewed as (rows, channels) with
 * rows = N*H*W, statistics per channel over the rows.
 *
 * Reductions over the rows run over FIXED chunks of rows (their size depends on
 * the channel count only); each chunk's per-channel partial sums (double) go to
 * their own slot and the slots are added in chunk order, so 1 and N threads give
 * bitwise identical results. */
#include <math.h>
#include "nn.h"

#define FC_BN_CHUNK_ELEMS 8192
#define FC_BN_PARALLEL_MIN 32768

static int64_t chunk_rows(int64_t channels)
{
    int64_t r = FC_BN_CHUNK_ELEMS / (channels > 0 ? channels : 1);
    return r < 1 ? 1 : r;
}

/* out[c] = sum over chunks k (in order) of part[k * stride + c] */
static void sum_chunks(const double *part, int64_t nchunks, int64_t stride, int64_t channels,
                       double *out)
{
    for (int64_t c = 0; c < channels; c++)
        out[c] = 0.0;
    for (int64_t k = 0; k < nchunks; k++)
        for (int64_t c = 0; c < channels; c++)
            out[c] += part[k * stride + c];
}

/* y = (x - mean) * inv_std * gamma + beta, elementwise over rows */
static void normalize_rows(const float *x, int64_t rows, int64_t channels, const float *mean,
                           const float *inv_std, const float *gamma, const float *beta, float *y)
{
    int64_t r;
#pragma omp parallel for schedule(static) if (rows * channels >= FC_BN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        const float *xr = x + r * channels;
        float *yr = y + r * channels;
        for (int64_t c = 0; c < channels; c++)
            yr[c] = (xr[c] - mean[c]) * inv_std[c] * gamma[c] + beta[c];
    }
}

int fc_batch_norm_forward_train(const float *x, int64_t rows, int64_t channels,
                                const float *gamma, const float *beta,
                                double momentum, double epsilon,
                                float *moving_mean, float *moving_var,
                                float *y, float *mean_out, float *inv_std_out)
{
    const int64_t C = channels, R = chunk_rows(channels);
    const int64_t nchunks = rows > 0 ? (rows + R - 1) / R : 0;
    const int par = rows * C >= FC_BN_PARALLEL_MIN;
    const float mom = (float)momentum, one_minus_mom = (float)(1.0 - momentum);
    double *part, *mean, *var;
    int64_t k;
    if (C <= 0 || rows <= 0)
        return FC_OK;
    part = (double *)fc_malloc((size_t)(nchunks * C + 2 * C) * sizeof(double));
    if (!part)
        return FC_ENOMEM;
    mean = part + nchunks * C;
    var = mean + C;

#pragma omp parallel for schedule(static) if (par) num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++) {
        double *p = part + k * C;
        const int64_t r1 = (k + 1) * R < rows ? (k + 1) * R : rows;
        for (int64_t c = 0; c < C; c++)
            p[c] = 0.0;
        for (int64_t r = k * R; r < r1; r++) {
            const float *xr = x + r * C;
            for (int64_t c = 0; c < C; c++)
                p[c] += xr[c];
        }
    }
    sum_chunks(part, nchunks, C, C, mean);
    for (int64_t c = 0; c < C; c++)
        mean[c] /= (double)rows;

    /* two-pass (x - mean)^2: no cancellation when |mean| >> std */
#pragma omp parallel for schedule(static) if (par) num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++) {
        double *p = part + k * C;
        const int64_t r1 = (k + 1) * R < rows ? (k + 1) * R : rows;
        for (int64_t c = 0; c < C; c++)
            p[c] = 0.0;
        for (int64_t r = k * R; r < r1; r++) {
            const float *xr = x + r * C;
            for (int64_t c = 0; c < C; c++) {
                const double d = (double)xr[c] - mean[c];
                p[c] += d * d;
            }
        }
    }
    sum_chunks(part, nchunks, C, C, var);

    for (int64_t c = 0; c < C; c++) {
        const double v = var[c] / (double)rows; /* biased, as Keras */
        mean_out[c] = (float)mean[c];
        inv_std_out[c] = (float)(1.0 / sqrt(v + epsilon));
        /* Keras 3: moving = moving * momentum + batch * (1 - momentum), in float32 */
        moving_mean[c] = moving_mean[c] * mom + (float)mean[c] * one_minus_mom;
        moving_var[c] = moving_var[c] * mom + (float)v * one_minus_mom;
    }
    fc_free(part);
    normalize_rows(x, rows, C, mean_out, inv_std_out, gamma, beta, y);
    return FC_OK;
}

void fc_batch_norm_forward_infer(const float *x, int64_t rows, int64_t channels,
                                 const float *gamma, const float *beta,
                                 const float *moving_mean, const float *moving_var,
                                 double epsilon, float *y, float *mean_out,
                                 float *inv_std_out)
{
    for (int64_t c = 0; c < channels; c++) {
        mean_out[c] = moving_mean[c];
        inv_std_out[c] = (float)(1.0 / sqrt((double)moving_var[c] + epsilon));
    }
    if (rows > 0 && channels > 0)
        normalize_rows(x, rows, channels, mean_out, inv_std_out, gamma, beta, y);
}

int fc_batch_norm_backward(const float *dy, const float *x, int64_t rows, int64_t channels,
                           const float *mean, const float *inv_std, const float *gamma,
                           int training, float *dx, float *dgamma, float *dbeta)
{
    const int64_t C = channels, R = chunk_rows(channels);
    const int64_t nchunks = rows > 0 ? (rows + R - 1) / R : 0;
    const int par = rows * C >= FC_BN_PARALLEL_MIN;
    double *part, *sum_dy, *sum_dy_xhat;
    float *k_dy, *k_mean_dy, *k_xhat;
    int64_t k, r;
    if (C <= 0)
        return FC_OK;
    /* chunk partials (2 per channel), the two sums, then 3*C floats of coefficients */
    part = (double *)fc_malloc((size_t)(2 * nchunks * C + 4 * C) * sizeof(double));
    if (!part)
        return FC_ENOMEM;
    sum_dy = part + 2 * nchunks * C;
    sum_dy_xhat = sum_dy + C;
    k_dy = (float *)(sum_dy_xhat + C);
    k_mean_dy = k_dy + C;
    k_xhat = k_mean_dy + C;

#pragma omp parallel for schedule(static) if (par) num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++) {
        double *p_dy = part + 2 * k * C, *p_dyx = p_dy + C;
        const int64_t r1 = (k + 1) * R < rows ? (k + 1) * R : rows;
        for (int64_t c = 0; c < C; c++)
            p_dy[c] = p_dyx[c] = 0.0;
        for (int64_t rr = k * R; rr < r1; rr++) {
            const float *xr = x + rr * C, *dyr = dy + rr * C;
            for (int64_t c = 0; c < C; c++) {
                const float xhat = (xr[c] - mean[c]) * inv_std[c]; /* as in the forward */
                p_dy[c] += dyr[c];
                p_dyx[c] += (double)dyr[c] * (double)xhat;
            }
        }
    }
    sum_chunks(part, nchunks, 2 * C, C, sum_dy);
    sum_chunks(part + C, nchunks, 2 * C, C, sum_dy_xhat);

    for (int64_t c = 0; c < C; c++) {
        dbeta[c] = (float)sum_dy[c];
        dgamma[c] = (float)sum_dy_xhat[c];
        k_dy[c] = gamma[c] * inv_std[c];
        /* batch statistics depend on x: subtract the projections onto 1 and x_hat */
        k_mean_dy[c] = training ? (float)(sum_dy[c] / (double)rows) : 0.0f;
        k_xhat[c] = training ? (float)(sum_dy_xhat[c] / (double)rows) : 0.0f;
    }

#pragma omp parallel for schedule(static) if (par) num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        const float *xr = x + r * C, *dyr = dy + r * C;
        float *dxr = dx + r * C; /* may alias dy: each element is read before written */
        for (int64_t c = 0; c < C; c++) {
            const float xhat = (xr[c] - mean[c]) * inv_std[c];
            dxr[c] = k_dy[c] * (dyr[c] - k_mean_dy[c] - xhat * k_xhat[c]);
        }
    }
    fc_free(part);
    return FC_OK;
}
