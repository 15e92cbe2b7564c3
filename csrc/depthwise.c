/* Depthwise 2-D convolution: see depthwise.h for the contract.
 *
 * All three passes work on Q = C*M "lanes": with M > 1 each input row is first expanded to
 * (W, C*M) (lane c*M + m holds channel c) in a per-thread buffer, so one lane-wise core
 * serves every depth multiplier. The cores keep a block of DW_BLOCK lanes of accumulators
 * in registers across all taps (or all pixels of a line, for the kernel gradient).
 */
#include <string.h>

#include "depthwise.h"

#if defined(__GNUC__) || defined(__clang__)
#define DW_INLINE static inline __attribute__((always_inline))
#else
#define DW_INLINE static inline
#endif

#define DW_BLOCK 32         /* lanes accumulated in registers (4 AVX2 vectors) */
#define DW_MAX_BLOCKS 64    /* kernel-gradient partial sums: fixed, thread-independent */

/* ------------------------------------------------------------------ lane-wise cores */
/* One output line's lanes [q0, q0 + qn): rows[i] is input row oh*sh - pt + i*dh as
 * (W, Q) lanes, or NULL outside the input. */
DW_INLINE void fwd_block(const fc_depthwise_geometry *g, const float *const *rows,
                         const float *FC_RESTRICT k, const float *bias, int relu, int64_t Q,
                         int64_t q0, int64_t qn, float *FC_RESTRICT out_line)
{
    int64_t ow, i, j, t;
    for (ow = 0; ow < g->ow; ow++) {
        float acc[DW_BLOCK];
        float *FC_RESTRICT o = out_line + ow * Q + q0;
        for (t = 0; t < qn; t++)
            acc[t] = 0.0f;
        for (i = 0; i < g->kh; i++) {
            if (!rows[i])
                continue;
            for (j = 0; j < g->kw; j++) {
                const int64_t iw = ow * g->sw - g->pad_left + j * g->dw;
                const float *FC_RESTRICT xp, *FC_RESTRICT kp;
                if (iw < 0 || iw >= g->w)
                    continue;
                xp = rows[i] + iw * Q + q0;
                kp = k + (i * g->kw + j) * Q + q0;
                for (t = 0; t < qn; t++)
                    acc[t] += xp[t] * kp[t];
            }
        }
        if (bias)
            for (t = 0; t < qn; t++)
                acc[t] += bias[q0 + t];
        if (relu)
            for (t = 0; t < qn; t++)
                acc[t] = acc[t] > 0.0f ? acc[t] : 0.0f;
        for (t = 0; t < qn; t++)
            o[t] = acc[t];
    }
}

/* One input line's lane gradients [q0, q0 + qn) into tline (W, Q): dyrows[i] is the dy
 * line (OW, Q) whose tap row i reads this input line, or NULL. */
DW_INLINE void dx_block(const fc_depthwise_geometry *g, const float *const *dyrows,
                        const float *FC_RESTRICT k, int64_t Q, int64_t q0, int64_t qn,
                        float *FC_RESTRICT tline)
{
    int64_t iw, i, j, t;
    for (iw = 0; iw < g->w; iw++) {
        float acc[DW_BLOCK];
        for (t = 0; t < qn; t++)
            acc[t] = 0.0f;
        for (i = 0; i < g->kh; i++) {
            if (!dyrows[i])
                continue;
            for (j = 0; j < g->kw; j++) {
                const int64_t u = iw + g->pad_left - j * g->dw;
                const float *FC_RESTRICT dp, *FC_RESTRICT kp;
                if (u < 0 || u % g->sw || u / g->sw >= g->ow)
                    continue;
                dp = dyrows[i] + (u / g->sw) * Q + q0;
                kp = k + (i * g->kw + j) * Q + q0;
                for (t = 0; t < qn; t++)
                    acc[t] += dp[t] * kp[t];
            }
        }
        for (t = 0; t < qn; t++)
            tline[iw * Q + q0 + t] = acc[t];
    }
}

/* Adds one output line's kernel-gradient terms for lanes [q0, q0 + qn) to p (KH*KW, Q). */
DW_INLINE void dk_block(const fc_depthwise_geometry *g, const float *const *rows,
                        const float *FC_RESTRICT dyline, int64_t Q, int64_t q0, int64_t qn,
                        float *FC_RESTRICT p)
{
    int64_t ow, i, j, t;
    for (i = 0; i < g->kh; i++) {
        if (!rows[i])
            continue;
        for (j = 0; j < g->kw; j++) {
            float acc[DW_BLOCK];
            float *FC_RESTRICT pp = p + (i * g->kw + j) * Q + q0;
            for (t = 0; t < qn; t++)
                acc[t] = pp[t];
            for (ow = 0; ow < g->ow; ow++) {
                const int64_t iw = ow * g->sw - g->pad_left + j * g->dw;
                const float *FC_RESTRICT xp, *FC_RESTRICT dp;
                if (iw < 0 || iw >= g->w)
                    continue;
                xp = rows[i] + iw * Q + q0;
                dp = dyline + ow * Q + q0;
                for (t = 0; t < qn; t++)
                    acc[t] += xp[t] * dp[t];
            }
            for (t = 0; t < qn; t++)
                pp[t] = acc[t];
        }
    }
}

/* Whole-line drivers: full blocks with a constant lane count (kept in registers), then
 * the tail. Compiled twice, portable and AVX2. */
#define DW_DEFINE_LINES(suffix, attr)                                                          \
    attr static void fwd_line_##suffix(const fc_depthwise_geometry *g, const float *const *rows,\
                                       const float *k, const float *bias, int relu, int64_t Q,  \
                                       float *out_line)                                         \
    {                                                                                           \
        int64_t q0 = 0;                                                                         \
        for (; q0 + DW_BLOCK <= Q; q0 += DW_BLOCK)                                              \
            fwd_block(g, rows, k, bias, relu, Q, q0, DW_BLOCK, out_line);                       \
        if (q0 < Q)                                                                             \
            fwd_block(g, rows, k, bias, relu, Q, q0, Q - q0, out_line);                         \
    }                                                                                           \
    attr static void dx_line_##suffix(const fc_depthwise_geometry *g,                           \
                                      const float *const *dyrows, const float *k, int64_t Q,    \
                                      float *tline)                                             \
    {                                                                                           \
        int64_t q0 = 0;                                                                         \
        for (; q0 + DW_BLOCK <= Q; q0 += DW_BLOCK)                                              \
            dx_block(g, dyrows, k, Q, q0, DW_BLOCK, tline);                                     \
        if (q0 < Q)                                                                             \
            dx_block(g, dyrows, k, Q, q0, Q - q0, tline);                                       \
    }                                                                                           \
    attr static void dk_line_##suffix(const fc_depthwise_geometry *g, const float *const *rows, \
                                      const float *dyline, int64_t Q, float *p)                 \
    {                                                                                           \
        int64_t q0 = 0;                                                                         \
        for (; q0 + DW_BLOCK <= Q; q0 += DW_BLOCK)                                              \
            dk_block(g, rows, dyline, Q, q0, DW_BLOCK, p);                                      \
        if (q0 < Q)                                                                             \
            dk_block(g, rows, dyline, Q, q0, Q - q0, p);                                        \
    }

DW_DEFINE_LINES(generic, )
#ifdef FC_HAVE_AVX2_PATH
DW_DEFINE_LINES(avx2, FC_TARGET_AVX2)
#endif

typedef void (*fwd_line_fn)(const fc_depthwise_geometry *, const float *const *, const float *,
                            const float *, int, int64_t, float *);
typedef void (*dx_line_fn)(const fc_depthwise_geometry *, const float *const *, const float *,
                           int64_t, float *);
typedef void (*dk_line_fn)(const fc_depthwise_geometry *, const float *const *, const float *,
                           int64_t, float *);

static int use_avx2(void)
{
#ifdef FC_HAVE_AVX2_PATH
    return fc_simd_level() >= 1;
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------ helpers */
/* Input row ih of image n as (W, Q) lanes: x itself when M == 1, else expanded into dst. */
static const float *lane_row(const fc_depthwise_geometry *g, const float *x, int64_t n,
                             int64_t ih, float *dst)
{
    const float *src = x + (n * g->h + ih) * g->w * g->c;
    int64_t w, c, m;
    if (g->m == 1)
        return src;
    for (w = 0; w < g->w; w++)
        for (c = 0; c < g->c; c++)
            for (m = 0; m < g->m; m++)
                dst[(w * g->c + c) * g->m + m] = src[w * g->c + c];
    return dst;
}

/* The input rows (as lanes) that output line (n, oh) reads; NULL outside the input. */
static void gather_rows(const fc_depthwise_geometry *g, const float *x, int64_t n, int64_t oh,
                        float *buf, const float **rows)
{
    const int64_t Q = g->c * g->m;
    int64_t i;
    for (i = 0; i < g->kh; i++) {
        const int64_t ih = oh * g->sh - g->pad_top + i * g->dh;
        rows[i] = (ih < 0 || ih >= g->h) ? NULL
                                          : lane_row(g, x, n, ih, buf ? buf + i * g->w * Q : NULL);
    }
}


/* ------------------------------------------------------------------ forward */
int fc_depthwise_forward(const fc_depthwise_geometry *g, const float *x, const float *kernel,
                         const float *bias, int relu, float *out)
{
    const int64_t Q = g->c * g->m, R = g->n * g->oh;
    const fwd_line_fn fn =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? fwd_line_avx2 :
#endif
                   fwd_line_generic;
    int failed = 0;
#pragma omp parallel num_threads(fc_get_num_threads()) if (R * g->ow * Q * g->kh * g->kw > 32768)
    {
        float *buf = NULL;
        const float **rows = (const float **)fc_malloc((size_t)g->kh * sizeof(float *));
        int64_t r;
        if (g->m > 1)
            buf = (float *)fc_malloc((size_t)(g->kh * g->w * Q) * sizeof(float));
        if (!rows || (g->m > 1 && !buf)) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(static)
            for (r = 0; r < R; r++) {
                const int64_t n = r / g->oh, oh = r % g->oh;
                gather_rows(g, x, n, oh, buf, rows);
                fn(g, rows, kernel, bias, relu, Q, out + r * g->ow * Q);
            }
        }
        fc_free(buf);
        fc_free((void *)rows);
    }
    return failed ? FC_ENOMEM : FC_OK;
}

/* ------------------------------------------------------------------ input gradient */
int fc_depthwise_backward_input(const fc_depthwise_geometry *g, const float *dy,
                                const float *kernel, float *dx)
{
    const int64_t Q = g->c * g->m, R = g->n * g->h;
    const dx_line_fn fn =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? dx_line_avx2 :
#endif
                   dx_line_generic;
    int failed = 0;
#pragma omp parallel num_threads(fc_get_num_threads()) if (R * g->w * Q * g->kh * g->kw > 32768)
    {
        float *tline = NULL;
        const float **dyrows = (const float **)fc_malloc((size_t)g->kh * sizeof(float *));
        int64_t r;
        if (g->m > 1)
            tline = (float *)fc_malloc((size_t)(g->w * Q) * sizeof(float));
        if (!dyrows || (g->m > 1 && !tline)) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(static)
            for (r = 0; r < R; r++) {
                const int64_t n = r / g->h, ih = r % g->h;
                float *dline = dx + r * g->w * g->c;
                int64_t i;
                for (i = 0; i < g->kh; i++) {
                    const int64_t t = ih + g->pad_top - i * g->dh;
                    dyrows[i] = (t < 0 || t % g->sh || t / g->sh >= g->oh)
                                    ? NULL
                                    : dy + (n * g->oh + t / g->sh) * g->ow * Q;
                }
                if (g->m == 1) {
                    fn(g, dyrows, kernel, Q, dline);
                } else {
                    int64_t w, c, m;
                    fn(g, dyrows, kernel, Q, tline);
                    for (w = 0; w < g->w; w++)
                        for (c = 0; c < g->c; c++) {
                            const float *tp = tline + (w * g->c + c) * g->m;
                            float s = tp[0];
                            for (m = 1; m < g->m; m++)
                                s += tp[m];
                            dline[w * g->c + c] = s;
                        }
                }
            }
        }
        fc_free(tline);
        fc_free((void *)dyrows);
    }
    return failed ? FC_ENOMEM : FC_OK;
}

/* ------------------------------------------------------------------ kernel gradient */
int fc_depthwise_backward_kernel(const fc_depthwise_geometry *g, const float *dy,
                                 const float *x, float *dkernel)
{
    const int64_t Q = g->c * g->m, R = g->n * g->oh, E = g->kh * g->kw * Q;
    const int64_t nb0 = R < DW_MAX_BLOCKS ? R : DW_MAX_BLOCKS;
    const int64_t per = (R + nb0 - 1) / nb0, nb = (R + per - 1) / per;
    const dk_line_fn fn =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? dk_line_avx2 :
#endif
                   dk_line_generic;
    float *partial = (float *)fc_malloc((size_t)(nb * E) * sizeof(float));
    int failed = 0;
    if (!partial)
        return FC_ENOMEM;
#pragma omp parallel num_threads(fc_get_num_threads()) if (R * g->ow * E > 32768)
    {
        float *buf = NULL;
        const float **rows = (const float **)fc_malloc((size_t)g->kh * sizeof(float *));
        int64_t b, e;
        if (g->m > 1)
            buf = (float *)fc_malloc((size_t)(g->kh * g->w * Q) * sizeof(float));
        if (!rows || (g->m > 1 && !buf)) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
            /* block b sums lines [b*per, (b+1)*per) in order: fixed whatever the threads */
#pragma omp for schedule(static)
            for (b = 0; b < nb; b++) {
                float *p = partial + b * E;
                const int64_t r1 = (b + 1) * per < R ? (b + 1) * per : R;
                int64_t r;
                memset(p, 0, (size_t)E * sizeof(float));
                for (r = b * per; r < r1; r++) {
                    gather_rows(g, x, r / g->oh, r % g->oh, buf, rows);
                    fn(g, rows, dy + r * g->ow * Q, Q, p);
                }
            }
#pragma omp for schedule(static)
            for (e = 0; e < E; e++) {
                float s = partial[e];
                for (b = 1; b < nb; b++)
                    s += partial[b * E + e];
                dkernel[e] = s;
            }
        }
        fc_free(buf);
        fc_free((void *)rows);
    }
    fc_free(partial);
    return failed ? FC_ENOMEM : FC_OK;
}
