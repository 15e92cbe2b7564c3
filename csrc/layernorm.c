/* Layer / group normalisation forward and backward (see layernorm.h). */
#include <math.h>
#include <string.h>
#include "layernorm.h"

/* below this many elements a thread team costs more than it saves */
#define FC_GN_PARALLEL_MIN 32768
/* elements per chunk of the dgamma / dbeta reduction (a function of the channel count
 * only, so the chunking and hence the rounding never depend on the thread count) */
#define FC_GN_CHUNK_ELEMS 8192

/* the value at (sample i, spatial p, group k, within-group j) */
#define GN_AT(a, i, p, k, j) (a)[(((i) * s + (p)) * g + (k)) * cg + (j)]

void fc_group_norm_forward(const float *x, int64_t n, int64_t s, int64_t g, int64_t cg,
                           const float *gamma, const float *beta, double epsilon, int rms,
                           float *y, float *mean_out, float *inv_out)
{
    int64_t u, units = n * g;
    const int64_t m = s * cg;
    if (units <= 0)
        return;
#pragma omp parallel for schedule(static) if (units * m >= FC_GN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (u = 0; u < units; u++) {
        const int64_t i = u / g, k = u % g;
        double sum = 0.0, ss = 0.0;
        for (int64_t p = 0; p < s; p++)
            for (int64_t j = 0; j < cg; j++)
                sum += GN_AT(x, i, p, k, j);
        const double mean = m > 0 ? sum / (double)m : 0.0;
        for (int64_t p = 0; p < s; p++)
            for (int64_t j = 0; j < cg; j++) {
                const double d = GN_AT(x, i, p, k, j) - mean;
                ss += d * d;
            }
        const double inv = 1.0 / sqrt((m > 0 ? ss / (double)m : 0.0) + epsilon);
        const double shift = rms ? 0.0 : mean;
        for (int64_t p = 0; p < s; p++)
            for (int64_t j = 0; j < cg; j++) {
                const int64_t c = k * cg + j;
                double v = ((double)GN_AT(x, i, p, k, j) - shift) * inv;
                if (gamma)
                    v *= gamma[c];
                if (beta && !rms)
                    v += beta[c];
                GN_AT(y, i, p, k, j) = (float)v;
            }
        mean_out[u] = (float)mean;
        inv_out[u] = (float)inv;
    }
}

/* dgamma[c] = sum dy * xhat, dbeta[c] = sum dy over all (i, p), in fixed row chunks */
static int affine_grads(const float *dy, const float *x, int64_t n, int64_t s, int64_t g,
                        int64_t cg, const float *mean, const float *inv, int rms,
                        float *dgamma, float *dbeta)
{
    const int64_t c = g * cg, rows = n * s;
    int64_t per = FC_GN_CHUNK_ELEMS / (c > 0 ? c : 1), ch, nch;
    if (per < 1)
        per = 1;
    nch = (rows + per - 1) / per;
    if (c <= 0)
        return FC_OK;
    if (rows <= 0) {
        if (dgamma)
            memset(dgamma, 0, (size_t)c * sizeof(float));
        if (dbeta)
            memset(dbeta, 0, (size_t)c * sizeof(float));
        return FC_OK;
    }
    double *part = (double *)fc_malloc((size_t)(nch * 2 * c) * sizeof(double));
    if (!part)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) if (rows * c >= FC_GN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (ch = 0; ch < nch; ch++) {
        double *sg = part + ch * 2 * c, *sb = sg + c;
        const int64_t r0 = ch * per, r1 = r0 + per < rows ? r0 + per : rows;
        for (int64_t k = 0; k < c; k++)
            sg[k] = sb[k] = 0.0;
        for (int64_t r = r0; r < r1; r++) {
            const int64_t i = r / s;
            const float *dyr = dy + r * c, *xr = x + r * c;
            for (int64_t k = 0; k < g; k++) {
                const double mu = rms ? 0.0 : mean[i * g + k], iv = inv[i * g + k];
                for (int64_t j = 0; j < cg; j++) {
                    const int64_t cc = k * cg + j;
                    sg[cc] += (double)dyr[cc] * (((double)xr[cc] - mu) * iv);
                    sb[cc] += dyr[cc];
                }
            }
        }
    }
    for (int64_t k = 0; k < c; k++) {
        double tg = 0.0, tb = 0.0;
        for (int64_t q = 0; q < nch; q++) {
            tg += part[q * 2 * c + k];
            tb += part[q * 2 * c + c + k];
        }
        if (dgamma)
            dgamma[k] = (float)tg;
        if (dbeta)
            dbeta[k] = (float)tb;
    }
    fc_free(part);
    return FC_OK;
}

int fc_group_norm_backward(const float *dy, const float *x, int64_t n, int64_t s, int64_t g,
                           int64_t cg, const float *mean, const float *inv,
                           const float *gamma, int rms, float *dx, float *dgamma,
                           float *dbeta)
{
    int64_t u, units = n * g;
    const int64_t m = s * cg;
    if (dgamma || dbeta) {
        int rc = affine_grads(dy, x, n, s, g, cg, mean, inv, rms, dgamma, dbeta);
        if (rc != FC_OK)
            return rc;
    }
    if (!dx || units <= 0 || m <= 0)
        return FC_OK;
#pragma omp parallel for schedule(static) if (units * m >= FC_GN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (u = 0; u < units; u++) {
        const int64_t i = u / g, k = u % g;
        const double mu = mean[u], iv = inv[u];
        /* with dxh = dy * gamma (the gradient of the normalised value):
         *   standard: dx = iv * (dxh - mean(dxh) - xhat * mean(dxh * xhat)), xhat = (x-mu)*iv
         *   rms:      dx = iv * dxh - iv^3 * (x - mu) * mean(dxh * x) */
        double s1 = 0.0, s2 = 0.0;
        for (int64_t p = 0; p < s; p++)
            for (int64_t j = 0; j < cg; j++) {
                const int64_t c = k * cg + j;
                const double d = (double)GN_AT(dy, i, p, k, j) * (gamma ? gamma[c] : 1.0f);
                const double xv = GN_AT(x, i, p, k, j);
                s1 += d;
                s2 += rms ? d * xv : d * ((xv - mu) * iv);
            }
        const double a1 = s1 / (double)m, a2 = s2 / (double)m;
        for (int64_t p = 0; p < s; p++)
            for (int64_t j = 0; j < cg; j++) {
                const int64_t c = k * cg + j;
                const double d = (double)GN_AT(dy, i, p, k, j) * (gamma ? gamma[c] : 1.0f);
                const double xv = GN_AT(x, i, p, k, j);
                double v;
                if (rms)
                    v = iv * d - iv * iv * iv * (xv - mu) * a2;
                else
                    v = iv * (d - a1 - ((xv - mu) * iv) * a2);
                GN_AT(dx, i, p, k, j) = (float)v;
            }
    }
    return FC_OK;
}
