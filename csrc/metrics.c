/* Per-batch counting for the streaming metrics (see metrics.h). */
#include <math.h>
#include <stdlib.h>
#include "metrics.h"

#define METRICS_PARALLEL_MIN (1 << 20) /* fewer element-steps: one thread (a batch is light work) */

/* Number of ascending thresholds strictly below p: the first j with thr[j] >= p. */
static int32_t count_below(const float *thr, int64_t T, float p)
{
    int64_t lo = 0, hi = T;
    if (p != p)
        return 0; /* NaN > thr is false for every threshold */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (p > thr[mid])
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int32_t)lo;
}

/* Keras: bucket = ceil(clip(p, 0, 1) * (T - 1)) - 1 (relu'd when the end thresholds carry
 * epsilon); the prediction exceeds thresholds 0..bucket, i.e. bucket + 1 of them. */
static int32_t count_even(float p, float tm1, int eps)
{
    float v;
    int32_t c;
    if (p != p)
        p = 0.0f;
    p = p < 0.0f ? 0.0f : (p > 1.0f ? 1.0f : p);
    v = ceilf(p * tm1); /* one float32 product, as Keras */
    c = (int32_t)v;
    if (eps && c < 1)
        c = 1;
    return c;
}

int fc_metric_threshold_counts(const float *pred, int64_t n, const float *thr, int64_t T,
                               int mode, int32_t *counts)
{
    int64_t i;
    float tm1 = (float)(T - 1);
    if (T < 1 || mode < FC_THRESH_SORTED || mode > FC_THRESH_EVEN_EPS
        || (mode != FC_THRESH_SORTED && T < 2))
        return FC_METRICS_EBADARG;
    if (mode == FC_THRESH_SORTED) {
#pragma omp parallel for schedule(static) if (n * 8 >= METRICS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
        for (i = 0; i < n; i++)
            counts[i] = count_below(thr, T, pred[i]);
    } else {
        int eps = mode == FC_THRESH_EVEN_EPS;
#pragma omp parallel for schedule(static) if (n >= METRICS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
        for (i = 0; i < n; i++)
            counts[i] = count_even(pred[i], tm1, eps);
    }
    return FC_OK;
}

int fc_metric_confusion(const int32_t *counts, const float *labels, const double *weights,
                        int64_t n, int64_t L, int64_t T, double *tp, double *fp, double *tn,
                        double *fn, double *work)
{
    int64_t l;
    int bad = 0;
#pragma omp parallel for schedule(static) if (L > 1 && n * L >= METRICS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads()) reduction(| : bad)
    for (l = 0; l < L; l++) {
        double *hp = work + 2 * (T + 1) * l, *hn = hp + (T + 1);
        double below_p = 0.0, below_n = 0.0, above_p = 0.0, above_n = 0.0;
        int64_t i, t;
        for (t = 0; t <= T; t++)
            hp[t] = hn[t] = 0.0;
        for (i = 0; i < n; i++) {
            int32_t c = counts[i * L + l];
            double w = weights ? weights[i * L + l] : 1.0;
            if (c < 0 || c > T) {
                bad = 1;
                continue;
            }
            if (labels[i * L + l] != 0.0f)
                hp[c] += w;
            else
                hn[c] += w;
        }
        /* a prediction with count c is above thresholds 0..c-1: positive at t < c */
        for (t = 0; t < T; t++) {
            below_p += hp[t];
            below_n += hn[t];
            if (fn)
                fn[t * L + l] = below_p;
            if (tn)
                tn[t * L + l] = below_n;
        }
        for (t = T - 1; t >= 0; t--) {
            above_p += hp[t + 1];
            above_n += hn[t + 1];
            if (tp)
                tp[t * L + l] = above_p;
            if (fp)
                fp[t * L + l] = above_n;
        }
    }
    return bad ? FC_METRICS_EBADARG : FC_OK;
}

void fc_metric_in_top_k(const float *pred, const int64_t *target, int64_t n, int64_t C,
                        int64_t k, uint8_t *out)
{
    int64_t i;
#pragma omp parallel for schedule(static) if (n * C >= METRICS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (i = 0; i < n; i++) {
        const float *row = pred + i * C;
        float v = row[target[i]];
        int64_t j, greater = 0;
        if (v != v)
            v = -INFINITY;
        for (j = 0; j < C; j++)
            greater += row[j] > v;
        out[i] = (uint8_t)(greater < k);
    }
}

/* Keep the k best (value desc, index asc) of one row in best[] (sorted), k < C. */
static void row_top_k(const float *row, int64_t C, int64_t k, float *val, int64_t *idx)
{
    int64_t j, m = 0;
    for (j = 0; j < C; j++) {
        float v = row[j];
        int64_t p;
        if (m == k && !(v > val[k - 1]))
            continue; /* ties keep the earlier index */
        p = m < k ? m++ : k - 1;
        while (p > 0 && v > val[p - 1]) {
            val[p] = val[p - 1];
            idx[p] = idx[p - 1];
            p--;
        }
        val[p] = v;
        idx[p] = j;
    }
}

int fc_metric_top_k_filter(const float *pred, int64_t n, int64_t C, int64_t k, float fill,
                           float *out)
{
    int64_t i;
    int threads = fc_get_num_threads();
    float *val;
    int64_t *idx;
    if (k >= C) {
        for (i = 0; i < n * C; i++)
            out[i] = pred[i];
        return FC_OK;
    }
    if (threads < 1)
        threads = 1;
    /* one k-slot scratch per thread, allocated before the region (no thread can skip it) */
    val = (float *)malloc((size_t)(threads * k) * sizeof(float));
    idx = (int64_t *)malloc((size_t)(threads * k) * sizeof(int64_t));
    if (val == NULL || idx == NULL) {
        free(val);
        free(idx);
        return FC_ENOMEM;
    }
#pragma omp parallel for schedule(static) if (n * C * k >= METRICS_PARALLEL_MIN) \
    num_threads(threads)
    for (i = 0; i < n; i++) {
        const float *row = pred + i * C;
        float *o = out + i * C;
        float *v = val + (int64_t)fc_thread_id() * k;
        int64_t *x = idx + (int64_t)fc_thread_id() * k, j;
        row_top_k(row, C, k, v, x);
        for (j = 0; j < C; j++)
            o[j] = fill;
        for (j = 0; j < k; j++)
            o[x[j]] = row[x[j]];
    }
    free(val);
    free(idx);
    return FC_OK;
}
