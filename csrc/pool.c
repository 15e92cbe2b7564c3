/* 2-D pooling kernels (NHWC float32): max (with argmax indices), average, global average.
 *
 * Every kernel works on whole C-vectors (channels are contiguous in NHWC), so the inner loops
 * are plain per-channel loops the compiler vectorises. The same bodies are compiled twice:
 * once portable, once with AVX2 enabled (FC_TARGET_AVX2); the max-pool windows also have
 * AVX2 intrinsics keeping the running max/argmax of 8 channels in registers. No arithmetic
 * is reordered between the paths, so they give bitwise identical results.
 *
 * Parallelism: forward kernels and the average-pool backward split over output rows (n, oh)
 * or input rows (n, h); the max-pool backward scatters, so it splits over images (windows of
 * one image may overlap when stride < pool, so one thread owns all of an image's dx). Work
 * is split over outputs only, hence identical results at any thread count.
 */
#include <string.h>
#include "pool.h"

#if defined(__GNUC__) || defined(__clang__)
#define POOL_INLINE static inline __attribute__((always_inline))
#else
#define POOL_INLINE static inline
#endif

/* Below this many touched elements a kernel runs on one thread (fork/join costs more). */
#define POOL_PARALLEL_MIN 32768

typedef struct {
    int64_t N, H, W, C, ph, pw, sh, sw, pt, pl, OH, OW;
} pool_geom;

/* Rows [lo, hi) of the input covered by window o along one axis (padding excluded). */
POOL_INLINE void window_range(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t size,
                              int64_t *lo, int64_t *hi)
{
    int64_t a = o * stride - pad, b = a + k;
    *lo = a < 0 ? 0 : a;
    *hi = b > size ? size : b;
}

/* ------------------------------------------------------------------ max pool, forward */

/* One window, channels [cb, ce): the running max lives in yo, its offset in io. A candidate
 * v replaces the current best b when !(v <= b) && b == b: strictly greater wins (so the first
 * of equal values stays), a NaN candidate wins over a number, nothing replaces a NaN. */
POOL_INLINE void max_window_idx(const float *FC_RESTRICT xi, int64_t W, int64_t C,
                                int64_t cb, int64_t ce, int64_t h0, int64_t h1, int64_t w0,
                                int64_t w1, float *FC_RESTRICT yo, int32_t *FC_RESTRICT io)
{
    const int64_t first = (h0 * W + w0) * C;
    for (int64_t c = cb; c < ce; c++) {
        yo[c] = xi[first + c];
        io[c] = (int32_t)(first + c);
    }
    for (int64_t h = h0; h < h1; h++) {
        for (int64_t w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
            const int64_t off = (h * W + w) * C;
            const float *FC_RESTRICT xp = xi + off;
            const int32_t off32 = (int32_t)off;
            for (int64_t c = cb; c < ce; c++) {
                float v = xp[c], b = yo[c];
                int take = !(v <= b) & (b == b);
                yo[c] = take ? v : b;
                io[c] = take ? off32 + (int32_t)c : io[c];
            }
        }
    }
}

POOL_INLINE void max_window(const float *FC_RESTRICT xi, int64_t W, int64_t C, int64_t cb,
                            int64_t ce, int64_t h0, int64_t h1, int64_t w0, int64_t w1,
                            float *FC_RESTRICT yo)
{
    const float *FC_RESTRICT x0 = xi + (h0 * W + w0) * C;
    for (int64_t c = cb; c < ce; c++)
        yo[c] = x0[c];
    for (int64_t h = h0; h < h1; h++) {
        for (int64_t w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
            const float *FC_RESTRICT xp = xi + (h * W + w) * C;
            for (int64_t c = cb; c < ce; c++) {
                float v = xp[c], b = yo[c];
                int take = !(v <= b) & (b == b);
                yo[c] = take ? v : b;
            }
        }
    }
}

#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>

/* AVX2 version of max_window_idx: the running max and its offset stay in registers for
 * 8 channels at a time through the whole window (same selection rule, same result). */
FC_TARGET_AVX2 static inline void max_window_idx_avx2(const float *FC_RESTRICT xi, int64_t W,
                                                      int64_t C, int64_t h0, int64_t h1,
                                                      int64_t w0, int64_t w1,
                                                      float *FC_RESTRICT yo,
                                                      int32_t *FC_RESTRICT io)
{
    const int64_t first = (h0 * W + w0) * C;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int64_t c0 = 0;
    for (; c0 + 8 <= C; c0 += 8) {
        __m256 best = _mm256_loadu_ps(xi + first + c0);
        __m256i arg = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(first + c0)), lane);
        for (int64_t h = h0; h < h1; h++) {
            for (int64_t w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                const int64_t off = (h * W + w) * C + c0;
                const __m256 v = _mm256_loadu_ps(xi + off);
                /* take = !(v <= best) && best == best */
                const __m256 take = _mm256_andnot_ps(_mm256_cmp_ps(v, best, _CMP_LE_OQ),
                                                     _mm256_cmp_ps(best, best, _CMP_ORD_Q));
                const __m256i cand = _mm256_add_epi32(_mm256_set1_epi32((int32_t)off), lane);
                best = _mm256_blendv_ps(best, v, take);
                arg = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(arg),
                                                           _mm256_castsi256_ps(cand), take));
            }
        }
        _mm256_storeu_ps(yo + c0, best);
        _mm256_storeu_si256((__m256i *)(io + c0), arg);
    }
    if (c0 < C)
        max_window_idx(xi, W, C, c0, C, h0, h1, w0, w1, yo, io);
}

FC_TARGET_AVX2 static inline void max_window_avx2(const float *FC_RESTRICT xi, int64_t W,
                                                  int64_t C, int64_t h0, int64_t h1,
                                                  int64_t w0, int64_t w1, float *FC_RESTRICT yo)
{
    const int64_t first = (h0 * W + w0) * C;
    int64_t c0 = 0;
    for (; c0 + 8 <= C; c0 += 8) {
        __m256 best = _mm256_loadu_ps(xi + first + c0);
        for (int64_t h = h0; h < h1; h++) {
            for (int64_t w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                const __m256 v = _mm256_loadu_ps(xi + (h * W + w) * C + c0);
                const __m256 take = _mm256_andnot_ps(_mm256_cmp_ps(v, best, _CMP_LE_OQ),
                                                     _mm256_cmp_ps(best, best, _CMP_ORD_Q));
                best = _mm256_blendv_ps(best, v, take);
            }
        }
        _mm256_storeu_ps(yo + c0, best);
    }
    if (c0 < C)
        max_window(xi, W, C, c0, C, h0, h1, w0, w1, yo);
}
#endif

/* One output row (n, oh): every window of it, all channels. WINDOW_IDX is the per-window
 * argmax routine of the instruction set being compiled. */
#define MAX_POOL_ROW_BODY(WINDOW_IDX, WINDOW)                                                       \
    do {                                                                                    \
        const int64_t n = r / g->OH, oh = r % g->OH, C = g->C;                              \
        const float *xi = x + n * g->H * g->W * C;                                          \
        float *yrow = y + r * g->OW * C;                                                    \
        int32_t *irow = indices ? indices + r * g->OW * C : NULL;                           \
        int64_t h0, h1;                                                                     \
        window_range(oh, g->sh, g->pt, g->ph, g->H, &h0, &h1);                              \
        for (int64_t ow = 0; ow < g->OW; ow++) {                                            \
            int64_t w0, w1;                                                                 \
            window_range(ow, g->sw, g->pl, g->pw, g->W, &w0, &w1);                          \
            if (irow)                                                                       \
                WINDOW_IDX(xi, g->W, C, h0, h1, w0, w1, yrow + ow * C, irow + ow * C);      \
            else                                                                            \
                WINDOW(xi, g->W, C, h0, h1, w0, w1, yrow + ow * C);                         \
        }                                                                                   \
    } while (0)

POOL_INLINE void max_window_idx_all(const float *FC_RESTRICT xi, int64_t W, int64_t C,
                                    int64_t h0, int64_t h1, int64_t w0, int64_t w1,
                                    float *FC_RESTRICT yo, int32_t *FC_RESTRICT io)
{
    max_window_idx(xi, W, C, 0, C, h0, h1, w0, w1, yo, io);
}

POOL_INLINE void max_window_all(const float *FC_RESTRICT xi, int64_t W, int64_t C, int64_t h0,
                                int64_t h1, int64_t w0, int64_t w1, float *FC_RESTRICT yo)
{
    max_window(xi, W, C, 0, C, h0, h1, w0, w1, yo);
}

static void max_pool_row_generic(const pool_geom *g, const float *x, float *y,
                                 int32_t *indices, int64_t r)
{
    MAX_POOL_ROW_BODY(max_window_idx_all, max_window_all);
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static void max_pool_row_avx2(const pool_geom *g, const float *x, float *y,
                                             int32_t *indices, int64_t r)
{
    MAX_POOL_ROW_BODY(max_window_idx_avx2, max_window_avx2);
}
#endif

typedef void (*max_row_fn)(const pool_geom *, const float *, float *, int32_t *, int64_t);

void fc_max_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                           int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                           int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                           float *y, int32_t *indices)
{
    const pool_geom g = {N, H, W, C, ph, pw, sh, sw, pad_top, pad_left, OH, OW};
    const int64_t rows = N * OH;
    max_row_fn fn = max_pool_row_generic;
    int64_t r;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = max_pool_row_avx2;
#endif
    if (rows <= 0 || OW <= 0 || C <= 0)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * H * W * C >= POOL_PARALLEL_MIN)
    for (r = 0; r < rows; r++)
        fn(&g, x, y, indices, r);
}

/* ----------------------------------------------------------------- max pool, backward */

int fc_max_pool2d_backward(const float *dy, const int32_t *indices, int64_t N, int64_t OH,
                           int64_t OW, int64_t H, int64_t W, int64_t C, float *dx,
                           const float *relu_gate)
{
    const int64_t in_size = H * W * C, out_size = OH * OW * C;
    int bad = 0;
    int64_t n;
    if (N <= 0 || in_size <= 0)
        return FC_OK;
    /* One thread per image: overlapping windows may send several gradients to the same
     * input element, and they are added in output order within that thread. */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    reduction(| : bad) if (N * (in_size + out_size) >= POOL_PARALLEL_MIN)
    for (n = 0; n < N; n++) {
        float *FC_RESTRICT dxi = dx + n * in_size;
        const float *FC_RESTRICT dyi = dy + n * out_size;
        const int32_t *FC_RESTRICT ii = indices + n * out_size;
        memset(dxi, 0, (size_t)in_size * sizeof(float));
        if (relu_gate != NULL) {
            /* The window's max is the chosen element's value: it passed relu iff > 0. */
            const float *FC_RESTRICT gi = relu_gate + n * out_size;
            for (int64_t k = 0; k < out_size; k++) {
                int64_t j = ii[k];
                if (j < 0 || j >= in_size) {
                    bad = 1;
                    continue;
                }
                if (gi[k] > 0.0f)
                    dxi[j] += dyi[k];
            }
            continue;
        }
        for (int64_t k = 0; k < out_size; k++) {
            int64_t j = ii[k];
            if (j < 0 || j >= in_size) {
                bad = 1;
                continue;
            }
            dxi[j] += dyi[k];
        }
    }
    return bad ? FC_POOL_EBADINDEX : FC_OK;
}

/* -------------------------------------------------------------- average pool, forward */

POOL_INLINE void avg_pool_row_body(const pool_geom *g, const float *x, float *y, int64_t r)
{
    const int64_t n = r / g->OH, oh = r % g->OH, C = g->C, W = g->W;
    const float *FC_RESTRICT xi = x + n * g->H * W * C;
    float *yrow = y + r * g->OW * C;
    int64_t h0, h1;
    window_range(oh, g->sh, g->pt, g->ph, g->H, &h0, &h1);
    for (int64_t ow = 0; ow < g->OW; ow++) {
        int64_t w0, w1;
        float *FC_RESTRICT yo = yrow + ow * C;
        window_range(ow, g->sw, g->pl, g->pw, W, &w0, &w1);
        const float count = (float)((h1 - h0) * (w1 - w0));
        const float *FC_RESTRICT x0 = xi + (h0 * W + w0) * C;
        for (int64_t c = 0; c < C; c++)
            yo[c] = x0[c];
        for (int64_t h = h0; h < h1; h++)
            for (int64_t w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                const float *FC_RESTRICT xp = xi + (h * W + w) * C;
                for (int64_t c = 0; c < C; c++)
                    yo[c] += xp[c];
            }
        for (int64_t c = 0; c < C; c++)
            yo[c] /= count;
    }
}

static void avg_pool_row_generic(const pool_geom *g, const float *x, float *y, int64_t r)
{
    avg_pool_row_body(g, x, y, r);
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static void avg_pool_row_avx2(const pool_geom *g, const float *x, float *y,
                                             int64_t r)
{
    avg_pool_row_body(g, x, y, r);
}
#endif

typedef void (*avg_row_fn)(const pool_geom *, const float *, float *, int64_t);

void fc_avg_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                           int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                           int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                           float *y)
{
    const pool_geom g = {N, H, W, C, ph, pw, sh, sw, pad_top, pad_left, OH, OW};
    const int64_t rows = N * OH;
    avg_row_fn fn = avg_pool_row_generic;
    int64_t r;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = avg_pool_row_avx2;
#endif
    if (rows <= 0 || OW <= 0 || C <= 0)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * H * W * C >= POOL_PARALLEL_MIN)
    for (r = 0; r < rows; r++)
        fn(&g, x, y, r);
}

/* ------------------------------------------------------------- average pool, backward */

/* Outputs [lo, hi] whose windows contain input position i along one axis (clipped). */
POOL_INLINE void covering_outputs(int64_t i, int64_t stride, int64_t pad, int64_t k,
                                  int64_t out, int64_t *lo, int64_t *hi)
{
    int64_t a = i + pad - k + 1; /* o*stride >= a */
    int64_t l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int64_t h = (i + pad) / stride; /* o*stride <= i + pad, i + pad >= 0 */
    *lo = l;
    *hi = h > out - 1 ? out - 1 : h;
}

/* Per-axis tables for the average-pool backward, computed once per call: for every input
 * position the covered outputs [lo, hi], and 1/count for every output window. */
typedef struct {
    const int64_t *h_lo, *h_hi, *w_lo, *w_hi;
    const float *inv_count; /* (OH, OW) */
} avg_tables;

/* dx row (n, h): each element gathers dy * (1/count) of the windows covering it, in
 * (oh, ow) order; the first term is stored, the rest added (no memset + re-read). */
POOL_INLINE void avg_pool_backward_row_body(const pool_geom *g, const avg_tables *t,
                                            const float *dy, float *dx, int64_t r)
{
    const int64_t n = r / g->H, h = r % g->H, C = g->C, W = g->W, OW = g->OW;
    const float *FC_RESTRICT dyi = dy + n * g->OH * OW * C;
    float *FC_RESTRICT dxrow = dx + r * W * C;
    const int64_t oh0 = t->h_lo[h], oh1 = t->h_hi[h];
    for (int64_t w = 0; w < W; w++) {
        const int64_t ow0 = t->w_lo[w], ow1 = t->w_hi[w];
        float *FC_RESTRICT dxo = dxrow + w * C;
        int first = 1;
        for (int64_t oh = oh0; oh <= oh1; oh++) {
            for (int64_t ow = ow0; ow <= ow1; ow++) {
                const float inv = t->inv_count[oh * OW + ow];
                const float *FC_RESTRICT d = dyi + (oh * OW + ow) * C;
                if (first) {
                    for (int64_t c = 0; c < C; c++)
                        dxo[c] = d[c] * inv;
                    first = 0;
                } else {
                    for (int64_t c = 0; c < C; c++)
                        dxo[c] += d[c] * inv;
                }
            }
        }
        if (first) /* in no window (stride > pool, or `valid` leftovers) */
            memset(dxo, 0, (size_t)C * sizeof(float));
    }
}

static void avg_pool_backward_row_generic(const pool_geom *g, const avg_tables *t,
                                          const float *dy, float *dx, int64_t r)
{
    avg_pool_backward_row_body(g, t, dy, dx, r);
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static void avg_pool_backward_row_avx2(const pool_geom *g, const avg_tables *t,
                                                      const float *dy, float *dx, int64_t r)
{
    avg_pool_backward_row_body(g, t, dy, dx, r);
}
#endif

typedef void (*avg_bwd_row_fn)(const pool_geom *, const avg_tables *, const float *, float *,
                               int64_t);

int fc_avg_pool2d_backward(const float *dy, int64_t N, int64_t H, int64_t W, int64_t C,
                           int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                           int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                           float *dx)
{
    const pool_geom g = {N, H, W, C, ph, pw, sh, sw, pad_top, pad_left, OH, OW};
    const int64_t rows = N * H;
    avg_bwd_row_fn fn = avg_pool_backward_row_generic;
    int64_t r, *ibuf;
    float *inv;
    avg_tables t;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = avg_pool_backward_row_avx2;
#endif
    if (rows <= 0 || W <= 0 || C <= 0)
        return FC_OK;
    ibuf = (int64_t *)fc_malloc((size_t)(2 * H + 2 * W) * sizeof(int64_t));
    inv = (float *)fc_malloc((size_t)(OH * OW) * sizeof(float));
    if (ibuf == NULL || inv == NULL) {
        fc_free(ibuf);
        fc_free(inv);
        return FC_ENOMEM;
    }
    for (int64_t i = 0; i < H; i++)
        covering_outputs(i, sh, pad_top, ph, OH, &ibuf[i], &ibuf[H + i]);
    for (int64_t i = 0; i < W; i++)
        covering_outputs(i, sw, pad_left, pw, OW, &ibuf[2 * H + i], &ibuf[2 * H + W + i]);
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t a0, a1, b0, b1;
        window_range(oh, sh, pad_top, ph, H, &a0, &a1);
        for (int64_t ow = 0; ow < OW; ow++) {
            window_range(ow, sw, pad_left, pw, W, &b0, &b1);
            inv[oh * OW + ow] = 1.0f / (float)((a1 - a0) * (b1 - b0));
        }
    }
    t.h_lo = ibuf;
    t.h_hi = ibuf + H;
    t.w_lo = ibuf + 2 * H;
    t.w_hi = ibuf + 2 * H + W;
    t.inv_count = inv;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * H * W * C >= POOL_PARALLEL_MIN)
    for (r = 0; r < rows; r++)
        fn(&g, &t, dy, dx, r);
    fc_free(ibuf);
    fc_free(inv);
    return FC_OK;
}

/* ------------------------------------------------------------ global average pool */

#define GAP_BLOCK 256 /* channels summed at once in a stack buffer of doubles */

void fc_global_avg_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                  float *y)
{
    const int64_t HW = H * W;
    int64_t n;
    if (N <= 0 || C <= 0)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * HW * C >= POOL_PARALLEL_MIN)
    for (n = 0; n < N; n++) {
        const float *xi = x + n * HW * C;
        for (int64_t c0 = 0; c0 < C; c0 += GAP_BLOCK) {
            const int64_t nc = C - c0 < GAP_BLOCK ? C - c0 : GAP_BLOCK;
            double acc[GAP_BLOCK];
            for (int64_t c = 0; c < nc; c++)
                acc[c] = 0.0;
            for (int64_t p = 0; p < HW; p++) {
                const float *FC_RESTRICT xp = xi + p * C + c0;
                for (int64_t c = 0; c < nc; c++)
                    acc[c] += (double)xp[c];
            }
            for (int64_t c = 0; c < nc; c++)
                y[n * C + c0 + c] = (float)(acc[c] / (double)HW);
        }
    }
}

void fc_global_avg_pool2d_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                   int64_t C, float *dx)
{
    const int64_t rows = N * H;
    const float hw = (float)(H * W);
    int64_t r;
    if (rows <= 0 || W <= 0 || C <= 0)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * H * W * C >= POOL_PARALLEL_MIN)
    for (r = 0; r < rows; r++) {
        const float *FC_RESTRICT d = dy + (r / H) * C;
        float *FC_RESTRICT dxrow = dx + r * W * C;
        for (int64_t c0 = 0; c0 < C; c0 += GAP_BLOCK) {
            const int64_t nc = C - c0 < GAP_BLOCK ? C - c0 : GAP_BLOCK;
            float q[GAP_BLOCK]; /* dy / (H*W), divided once per row */
            for (int64_t c = 0; c < nc; c++)
                q[c] = d[c0 + c] / hw;
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < nc; c++)
                    dxrow[w * C + c0 + c] = q[c];
        }
    }
}

/* ------------------------------------------------------------------ global max pool */

void fc_global_max_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                  float *y)
{
    const int64_t HW = H * W;
    int64_t n;
    if (N <= 0 || C <= 0 || HW <= 0)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * HW * C >= POOL_PARALLEL_MIN)
    for (n = 0; n < N; n++) {
        const float *xi = x + n * HW * C;
        float *FC_RESTRICT yo = y + n * C;
        memcpy(yo, xi, (size_t)C * sizeof(float));
        for (int64_t p = 1; p < HW; p++) {
            const float *FC_RESTRICT xp = xi + p * C;
            for (int64_t c = 0; c < C; c++) {
                const float v = xp[c], b = yo[c];
                /* as max_window_idx: a NaN candidate wins, nothing replaces a NaN */
                yo[c] = (!(v <= b) & (b == b)) ? v : b;
            }
        }
    }
}

int fc_global_max_pool2d_backward(const float *x, const float *y, const float *dy, int64_t N,
                                  int64_t H, int64_t W, int64_t C, float *dx)
{
    const int64_t HW = H * W;
    int rc = FC_OK;
    int64_t n;
    if (N <= 0 || C <= 0 || HW <= 0)
        return FC_OK;
#pragma omp parallel num_threads(fc_get_num_threads()) if (N * HW * C >= POOL_PARALLEL_MIN)
    {
        float *count = fc_malloc((size_t)C * sizeof(float));
        if (count == NULL) {
#pragma omp atomic write
            rc = FC_ENOMEM;
        }
#pragma omp for schedule(static)
        for (n = 0; n < N; n++) {
            if (count == NULL)
                continue;
            const float *xi = x + n * HW * C, *FC_RESTRICT yo = y + n * C;
            const float *FC_RESTRICT g = dy + n * C;
            float *di = dx + n * HW * C;
            for (int64_t c = 0; c < C; c++)
                count[c] = 0.0f;
            for (int64_t p = 0; p < HW; p++)
                for (int64_t c = 0; c < C; c++)
                    count[c] += xi[p * C + c] == yo[c] ? 1.0f : 0.0f;
            for (int64_t p = 0; p < HW; p++) {
                const float *FC_RESTRICT xp = xi + p * C;
                float *FC_RESTRICT dp = di + p * C;
                for (int64_t c = 0; c < C; c++)
                    dp[c] = (g[c] * (xp[c] == yo[c] ? 1.0f : 0.0f)) / count[c];
            }
        }
        fc_free(count);
    }
    return rc;
}
