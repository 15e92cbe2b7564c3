/* Losses: softmax cross-entropy (integer or distribution targets) and mean squared
 * error. Each returns the SUM of its terms in double (Python divides by the count)
 * together with the gradient of the MEAN. Per-row / per-chunk partial losses are
 * stored and summed in order, so the result does not depend on the thread count. */
#include <math.h>
#include "nn.h"

#define FC_LOSS_PARALLEL_MIN 16384
/* fixed chunk of the MSE reduction (independent of the thread count) */
#define FC_MSE_CHUNK 8192
#define FC_MSE_LANES 8

/* index of the FIRST maximum of x[0..c) */
static int64_t first_argmax(const float *x, int64_t c)
{
    int64_t k = 0;
    float m = x[0];
    for (int64_t j = 1; j < c; j++)
        if (x[j] > m) {
            m = x[j];
            k = j;
        }
    return k;
}

static double sum_in_order(const double *v, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

int fc_softmax_cross_entropy_sparse(const float *logits, const int64_t *labels,
                                    int64_t n, int64_t c, float *dlogits,
                                    double *loss_sum, int64_t *n_correct)
{
    int64_t r, correct = 0;
    double *row_loss;
    const double inv_n = n > 0 ? 1.0 / (double)n : 0.0;
    *loss_sum = 0.0;
    *n_correct = 0;
    if (n <= 0 || c <= 0)
        return FC_OK;
    row_loss = (double *)fc_malloc((size_t)n * sizeof(double));
    if (!row_loss)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) reduction(+ : correct) \
    if (n * c >= FC_LOSS_PARALLEL_MIN) num_threads(fc_get_num_threads())
    for (r = 0; r < n; r++) {
        const float *x = logits + r * c;
        float *d = dlogits + r * c; /* may alias x: every x[j] is read before d[j] is written */
        const int64_t label = labels[r];
        const int64_t k = first_argmax(x, c);
        const float m = x[k], x_label = x[label];
        double s = 0.0;
        correct += (k == label);
        for (int64_t j = 0; j < c; j++) {
            float e = expf(x[j] - m);
            d[j] = e;
            s += e;
        }
        /* -log softmax_label = log(sum exp(x - m)) - (x_label - m), never overflows */
        row_loss[r] = log(s) - ((double)x_label - (double)m);
        const double inv_s = 1.0 / s;
        const double e_label = d[label];
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)((double)d[j] * inv_s * inv_n);
        /* p - 1 in double keeps the gradient accurate for confident rows */
        d[label] = (float)((e_label * inv_s - 1.0) * inv_n);
    }
    *loss_sum = sum_in_order(row_loss, n);
    *n_correct = correct;
    fc_free(row_loss);
    return FC_OK;
}

int fc_softmax_cross_entropy_dense(const float *logits, const float *targets,
                                   int64_t n, int64_t c, float *dlogits,
                                   double *loss_sum, int64_t *n_correct)
{
    int64_t r, correct = 0;
    double *row_loss;
    const double inv_n = n > 0 ? 1.0 / (double)n : 0.0;
    *loss_sum = 0.0;
    *n_correct = 0;
    if (n <= 0 || c <= 0)
        return FC_OK;
    row_loss = (double *)fc_malloc((size_t)n * sizeof(double));
    if (!row_loss)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) reduction(+ : correct) \
    if (n * c >= FC_LOSS_PARALLEL_MIN) num_threads(fc_get_num_threads())
    for (r = 0; r < n; r++) {
        const float *x = logits + r * c;
        const float *t = targets + r * c;
        float *d = dlogits + r * c; /* may alias x (not t) */
        const int64_t k = first_argmax(x, c);
        const float m = x[k];
        double s = 0.0, t_sum = 0.0, t_dot = 0.0;
        correct += (k == first_argmax(t, c));
        for (int64_t j = 0; j < c; j++) {
            const float xj = x[j];
            const float e = expf(xj - m);
            const double tj = t[j];
            d[j] = e;
            s += e;
            if (tj != 0.0) { /* skip 0 * (-inf) terms of masked logits */
                t_sum += tj;
                t_dot += tj * ((double)xj - (double)m);
            }
        }
        /* sum_j -t_j log p_j = sum_j t_j (log s - (x_j - m)) */
        row_loss[r] = t_sum * log(s) - t_dot;
        const double inv_s = 1.0 / s;
        for (int64_t j = 0; j < c; j++)
            d[j] = (float)(((double)d[j] * inv_s * t_sum - (double)t[j]) * inv_n);
    }
    *loss_sum = sum_in_order(row_loss, n);
    *n_correct = correct;
    fc_free(row_loss);
    return FC_OK;
}

int fc_mean_squared_error(const float *pred, const float *target, int64_t n,
                          float *dpred, double *loss_sum)
{
    int64_t k, nchunks = (n + FC_MSE_CHUNK - 1) / FC_MSE_CHUNK;
    const double g = n > 0 ? 2.0 / (double)n : 0.0;
    double *part;
    *loss_sum = 0.0;
    if (n <= 0)
        return FC_OK;
    part = (double *)fc_malloc((size_t)nchunks * sizeof(double));
    if (!part)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) if (n >= FC_LOSS_PARALLEL_MIN * 4) \
    num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++) {
        const int64_t i0 = k * FC_MSE_CHUNK;
        const int64_t i1 = i0 + FC_MSE_CHUNK < n ? i0 + FC_MSE_CHUNK : n;
        /* a fixed number of lanes (positions relative to the chunk) for ILP */
        double lane[FC_MSE_LANES] = {0.0};
        int64_t i = i0;
        for (; i + FC_MSE_LANES <= i1; i += FC_MSE_LANES)
            for (int l = 0; l < FC_MSE_LANES; l++) {
                const double dd = (double)pred[i + l] - (double)target[i + l];
                lane[l] += dd * dd;
            }
        for (int l = 0; i < i1; i++, l++) {
            const double dd = (double)pred[i] - (double)target[i];
            lane[l] += dd * dd;
        }
        double acc = 0.0;
        for (int l = 0; l < FC_MSE_LANES; l++)
            acc += lane[l];
        part[k] = acc;
        if (dpred)
            for (i = i0; i < i1; i++)
                dpred[i] = (float)(((double)pred[i] - (double)target[i]) * g);
    }
    *loss_sum = sum_in_order(part, nchunks);
    fc_free(part);
    return FC_OK;
}
