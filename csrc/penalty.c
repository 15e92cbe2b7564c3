/* Regularizer penalties and constraints (penalty.h). Small compared to a training step:
 * they run once per regularized weight per step, so the loops stay plain C. */
#include <math.h>
#include "penalty.h"

/* fixed reduction chunk: partial sums per chunk, added in chunk order */
#define FC_PEN_CHUNK 4096
#define FC_PEN_PARALLEL_MIN 32768
/* Keras' normalize caps rsqrt(sum of squares) at 1 / epsilon, epsilon = 1e-7 */
#define FC_PEN_MAX_INV_NORM 1e7
#define FC_PEN_EPSILON 1e-7

int fc_l1l2_penalty(const float *w, int64_t n, double l1, double l2, double scale,
                    const float *g_in, float *g_out, double *loss)
{
    const int64_t chunks = (n + FC_PEN_CHUNK - 1) / FC_PEN_CHUNK;
    double *part;
    int64_t c;
    *loss = 0.0;
    if (n <= 0)
        return FC_OK;
    part = (double *)fc_malloc((size_t)chunks * sizeof(double));
    if (!part)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) if (n >= FC_PEN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (c = 0; c < chunks; c++) {
        const int64_t lo = c * FC_PEN_CHUNK;
        const int64_t hi = lo + FC_PEN_CHUNK < n ? lo + FC_PEN_CHUNK : n;
        double s1 = 0.0, s2 = 0.0;
        for (int64_t i = lo; i < hi; i++) {
            const double v = w[i];
            s1 += fabs(v);
            s2 += v * v;
        }
        part[c] = l1 * s1 + l2 * s2;
        if (g_out) {
            const float a = (float)(scale * l1), b = (float)(2.0 * scale * l2);
            for (int64_t i = lo; i < hi; i++) {
                const float v = w[i];
                const float sgn = (float)((v > 0.0f) - (v < 0.0f));
                const float d = a * sgn + b * v;
                g_out[i] = g_in ? g_in[i] + d : d;
            }
        }
    }
    for (c = 0; c < chunks; c++)
        *loss += part[c];
    fc_free(part);
    return FC_OK;
}

int fc_orthogonal_penalty(const float *w, int64_t rows, int64_t cols, int columns_mode,
                          double factor, double scale, const float *g_in, float *g_out,
                          double *loss)
{
    /* k vectors of length d; element t of vector i is w[i*cols + t] (rows) or
     * w[t*cols + i] (columns) */
    const int64_t k = columns_mode ? cols : rows, d = columns_mode ? rows : cols;
    const int64_t si = columns_mode ? 1 : cols, st = columns_mode ? cols : 1;
    const double coef = factor * 0.5 / ((double)k * ((double)k - 1.0) / 2.0);
    double *nrm, *inv, *part, *gn;
    int64_t i;
    *loss = 0.0;
    if (k < 2)
        return FC_OK;
    nrm = (double *)fc_malloc((size_t)(k * d) * sizeof(double));
    gn = (double *)fc_malloc((size_t)(k * d) * sizeof(double));
    inv = (double *)fc_malloc((size_t)k * sizeof(double));
    part = (double *)fc_malloc((size_t)k * sizeof(double));
    if (!nrm || !gn || !inv || !part) {
        fc_free(nrm);
        fc_free(gn);
        fc_free(inv);
        fc_free(part);
        return FC_ENOMEM;
    }
    for (i = 0; i < k; i++) {
        double s = 0.0, r;
        for (int64_t t = 0; t < d; t++) {
            const double v = w[i * si + t * st];
            s += v * v;
        }
        r = s > 0.0 ? 1.0 / sqrt(s) : INFINITY;
        inv[i] = r < FC_PEN_MAX_INV_NORM ? r : -FC_PEN_MAX_INV_NORM; /* < 0: capped */
        r = fabs(inv[i]);
        for (int64_t t = 0; t < d; t++)
            nrm[i * d + t] = w[i * si + t * st] * r;
    }
#pragma omp parallel for schedule(static) if (k * k * d >= FC_PEN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (i = 0; i < k; i++) {
        const double *ni = nrm + i * d;
        double *gi = gn + i * d;
        double s = 0.0;
        for (int64_t t = 0; t < d; t++)
            gi[t] = 0.0;
        for (int64_t j = 0; j < k; j++) {
            const double *nj = nrm + j * d;
            double p = 0.0, sg;
            if (j == i)
                continue;
            for (int64_t t = 0; t < d; t++)
                p += ni[t] * nj[t];
            s += fabs(p);
            sg = (double)((p > 0.0) - (p < 0.0));
            if (sg != 0.0)
                for (int64_t t = 0; t < d; t++)
                    gi[t] += sg * nj[t];
        }
        part[i] = s;
        if (g_out) {
            /* d/dn_i of the penalty is 2 coef sum_j sign(p_ij) n_j (P is symmetric);
             * through n = r / |r|: (g - n (n . g)) / |r|, or g * cap when capped */
            const double c2 = 2.0 * coef * scale;
            double dot = 0.0;
            const int capped = inv[i] < 0.0;
            const double r = fabs(inv[i]);
            for (int64_t t = 0; t < d; t++) {
                gi[t] *= c2;
                dot += ni[t] * gi[t];
            }
            for (int64_t t = 0; t < d; t++) {
                const int64_t at = i * si + t * st;
                const double gw = capped ? gi[t] * r : (gi[t] - ni[t] * dot) * r;
                g_out[at] = g_in ? (float)((double)g_in[at] + gw) : (float)gw;
            }
        }
    }
    {
        double s = 0.0;
        for (i = 0; i < k; i++)
            s += part[i];
        *loss = coef * s;
    }
    fc_free(nrm);
    fc_free(gn);
    fc_free(inv);
    fc_free(part);
    return FC_OK;
}

/* inner indices handled together: the reduction then reads contiguous rows */
#define FC_NORM_BLOCK 64

void fc_norm_constraint(float *w, int64_t outer, int64_t red, int64_t inner, int kind,
                        double min_value, double max_value, double rate)
{
    const int64_t blocks = (inner + FC_NORM_BLOCK - 1) / FC_NORM_BLOCK;
    int64_t job;
#pragma omp parallel for schedule(static) if (outer * red * inner >= FC_PEN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (job = 0; job < outer * blocks; job++) {
        const int64_t o = job / blocks, b = job % blocks;
        const int64_t i0 = b * FC_NORM_BLOCK;
        const int64_t i1 = i0 + FC_NORM_BLOCK < inner ? i0 + FC_NORM_BLOCK : inner;
        double acc[FC_NORM_BLOCK];
        float factor[FC_NORM_BLOCK];
        float *base = w + o * red * inner;
        for (int64_t i = i0; i < i1; i++)
            acc[i - i0] = 0.0;
        for (int64_t r = 0; r < red; r++) {
            const float *row = base + r * inner;
            for (int64_t i = i0; i < i1; i++)
                acc[i - i0] += (double)row[i] * row[i];
        }
        for (int64_t i = i0; i < i1; i++) {
            const double norm = sqrt(acc[i - i0]);
            double desired;
            if (kind == 0)
                desired = norm < max_value ? norm : max_value;
            else if (kind == 1)
                desired = 1.0;
            else {
                const double c = norm < min_value ? min_value
                                 : (norm > max_value ? max_value : norm);
                desired = rate * c + (1.0 - rate) * norm;
            }
            factor[i - i0] = (float)(desired / (FC_PEN_EPSILON + norm));
        }
        for (int64_t r = 0; r < red; r++) {
            float *row = base + r * inner;
            for (int64_t i = i0; i < i1; i++)
                row[i] *= factor[i - i0];
        }
    }
}

void fc_non_neg(float *w, int64_t n)
{
    int64_t i;
#pragma omp parallel for schedule(static) if (n >= FC_PEN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (i = 0; i < n; i++)
        w[i] = w[i] < 0.0f ? 0.0f : w[i];
}
