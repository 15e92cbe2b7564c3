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

/* Sums over a unit's runs go to FC_GN_LANES independent double accumulators (lane =
 * position within the run mod FC_GN_LANES), added in lane order at the end: the
 * compiler can vectorise the lanes, and the order is fixed, whatever the threads. */
#define FC_GN_LANES 8

static double lanes_total(const double *acc)
{
    double t = 0.0;
    for (int l = 0; l < FC_GN_LANES; l++)
        t += acc[l];
    return t;
}

static void lanes_sum(const float *a, int64_t len, double *acc)
{
    int64_t j = 0;
    for (; j + FC_GN_LANES <= len; j += FC_GN_LANES)
        for (int l = 0; l < FC_GN_LANES; l++)
            acc[l] += a[j + l];
    for (int l = 0; j < len; j++, l++)
        acc[l] += a[j];
}

static void lanes_sq_dev(const float *a, int64_t len, double mean, double *acc)
{
    int64_t j = 0;
    for (; j + FC_GN_LANES <= len; j += FC_GN_LANES)
        for (int l = 0; l < FC_GN_LANES; l++) {
            const double d = a[j + l] - mean;
            acc[l] += d * d;
        }
    for (int l = 0; j < len; j++, l++) {
        const double d = a[j] - mean;
        acc[l] += d * d;
    }
}

/* acc1 += dxh, acc2 += dxh * (x - shift) * scale over a run, dxh = dy * gamma (lanes as
 * lanes_sum) */
static void lanes_backward(const float *dy, const float *x, const float *gamma, int64_t len,
                           double shift, double scale, double *acc1, double *acc2)
{
    int64_t j = 0;
    for (; j + FC_GN_LANES <= len; j += FC_GN_LANES)
        for (int l = 0; l < FC_GN_LANES; l++) {
            const double d = (double)dy[j + l] * (gamma ? gamma[j + l] : 1.0f);
            acc1[l] += d;
            acc2[l] += d * (((double)x[j + l] - shift) * scale);
        }
    for (int l = 0; j < len; j++, l++) {
        const double d = (double)dy[j] * (gamma ? gamma[j] : 1.0f);
        acc1[l] += d;
        acc2[l] += d * (((double)x[j] - shift) * scale);
    }
}

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
        double acc[FC_GN_LANES] = {0}, acc2[FC_GN_LANES] = {0};
        for (int64_t p = 0; p < s; p++)
            lanes_sum(&GN_AT(x, i, p, k, 0), cg, acc);
        const double mean = m > 0 ? lanes_total(acc) / (double)m : 0.0;
        for (int64_t p = 0; p < s; p++)
            lanes_sq_dev(&GN_AT(x, i, p, k, 0), cg, mean, acc2);
        const double inv = 1.0 / sqrt((m > 0 ? lanes_total(acc2) / (double)m : 0.0) + epsilon);
        const double shift = rms ? 0.0 : mean;
        const float *gk = gamma ? gamma + k * cg : NULL;
        const float *bk = (beta && !rms) ? beta + k * cg : NULL;
        for (int64_t p = 0; p < s; p++) {
            const float *xr = &GN_AT(x, i, p, k, 0);
            float *yr = &GN_AT(y, i, p, k, 0);
            for (int64_t j = 0; j < cg; j++) {
                double v = ((double)xr[j] - shift) * inv;
                if (gk)
                    v *= gk[j];
                if (bk)
                    v += bk[j];
                yr[j] = (float)v;
            }
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
        double acc1[FC_GN_LANES] = {0}, acc2[FC_GN_LANES] = {0};
        const float *gk = gamma ? gamma + k * cg : NULL;
        for (int64_t p = 0; p < s; p++) {
            const float *dyr = &GN_AT(dy, i, p, k, 0), *xr = &GN_AT(x, i, p, k, 0);
            lanes_backward(dyr, xr, gk, cg, rms ? 0.0 : mu, rms ? 1.0 : iv, acc1, acc2);
        }
        const double s1 = lanes_total(acc1), s2 = lanes_total(acc2);
        const double a1 = s1 / (double)m, a2 = s2 / (double)m;
        for (int64_t p = 0; p < s; p++) {
            const float *dyr = &GN_AT(dy, i, p, k, 0), *xr = &GN_AT(x, i, p, k, 0);
            float *dxr = &GN_AT(dx, i, p, k, 0);
            for (int64_t j = 0; j < cg; j++) {
                const double d = (double)dyr[j] * (gk ? gk[j] : 1.0f);
                const double xv = xr[j];
                double v;
                if (rms)
                    v = iv * d - iv * iv * iv * (xv - mu) * a2;
                else
                    v = iv * (d - a1 - ((xv - mu) * iv) * a2);
                dxr[j] = (float)v;
            }
        }
    }
    return FC_OK;
}
