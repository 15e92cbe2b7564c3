/* Merge and shape kernels: elementwise merges (+ gradients), add + relu, concatenate,
 * 2-D zero padding and cropping. See merge.h for the exact definitions. */
#include <string.h>
#include "merge.h"

#if defined(__GNUC__) || defined(__clang__)
#define MERGE_INLINE static inline __attribute__((always_inline))
#else
#define MERGE_INLINE static inline
#endif

/* Elementwise kernels run over fixed blocks: one pass per input over the block of y
 * (which stays in L1, so later passes cost little), and the max/min backward keeps the
 * block's winners on the stack. Below MERGE_PARALLEL_MIN touched elements waking the
 * thread team costs more than the work. */
#define MERGE_BLOCK 2048
#define MERGE_PARALLEL_MIN 65536

static int merge_args_ok(int op, int k)
{
    if (op < FC_MERGE_ADD || op > FC_MERGE_MINIMUM || k < 2)
        return 0;
    return op != FC_MERGE_SUBTRACT || k == 2;
}

static void zero_floats(float *p, int64_t n)
{
    if (n > 0)
        memset(p, 0, (size_t)n * sizeof(float));
}

/* ---------------------------------------------------------------- elementwise, forward */

/* y[i0:i1] = op(xs...)[i0:i1]; relu != 0 applies fc_relu_forward's rule at the end.
 * Comparisons are combined with | (not ||) so the selects stay branch-free and vectorise. */
MERGE_INLINE void forward_block_body(int op, const float *const *xs, int k, int64_t i0,
                                     int64_t i1, int relu, float *y)
{
    const float *a = xs[0], *b = xs[1];
    int64_t i;
    int j;
    switch (op) {
    case FC_MERGE_ADD:
    case FC_MERGE_AVERAGE:
        for (i = i0; i < i1; i++)
            y[i] = a[i] + b[i];
        for (j = 2; j < k; j++) {
            const float *x = xs[j];
            for (i = i0; i < i1; i++)
                y[i] += x[i];
        }
        break;
    case FC_MERGE_SUBTRACT:
        for (i = i0; i < i1; i++)
            y[i] = a[i] - b[i];
        break;
    case FC_MERGE_MULTIPLY:
        for (i = i0; i < i1; i++)
            y[i] = a[i] * b[i];
        for (j = 2; j < k; j++) {
            const float *x = xs[j];
            for (i = i0; i < i1; i++)
                y[i] *= x[i];
        }
        break;
    case FC_MERGE_MAXIMUM:
        for (j = 1; j < k; j++) {
            const float *m = j == 1 ? a : y, *x = xs[j];
            for (i = i0; i < i1; i++) {
                const float u = m[i], v = x[i];
                y[i] = ((u >= v) | (u != u)) ? u : v;
            }
        }
        break;
    case FC_MERGE_MINIMUM:
        for (j = 1; j < k; j++) {
            const float *m = j == 1 ? a : y, *x = xs[j];
            for (i = i0; i < i1; i++) {
                const float u = m[i], v = x[i];
                y[i] = ((u <= v) | (u != u)) ? u : v;
            }
        }
        break;
    }
    if (op == FC_MERGE_AVERAGE) {
        /* divide, not multiply by 1/k: Keras computes sum / k */
        const float kf = (float)k;
        for (i = i0; i < i1; i++)
            y[i] = y[i] / kf;
    }
    if (relu) {
        for (i = i0; i < i1; i++) {
            const float v = y[i];
            y[i] = ((v > 0.0f) | (v != v)) ? v : 0.0f;
        }
    }
}

typedef void (*forward_block_fn)(int, const float *const *, int, int64_t, int64_t, int,
                                 float *);

static void forward_block_generic(int op, const float *const *xs, int k, int64_t i0,
                                  int64_t i1, int relu, float *y)
{
    forward_block_body(op, xs, k, i0, i1, relu, y);
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static void forward_block_avx2(int op, const float *const *xs, int k,
                                              int64_t i0, int64_t i1, int relu, float *y)
{
    forward_block_body(op, xs, k, i0, i1, relu, y);
}
#endif

static void run_forward(int op, const float *const *xs, int k, int64_t n, int relu, float *y)
{
    forward_block_fn fn = forward_block_generic;
    int64_t b, nb = (n + MERGE_BLOCK - 1) / MERGE_BLOCK;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = forward_block_avx2;
#endif
#pragma omp parallel for schedule(static) if (n * (k + 1) >= MERGE_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * MERGE_BLOCK, i1 = i0 + MERGE_BLOCK < n ? i0 + MERGE_BLOCK : n;
        fn(op, xs, k, i0, i1, relu, y);
    }
}

int fc_merge_forward(int op, const float *const *xs, int k, int64_t n, float *y)
{
    if (!merge_args_ok(op, k))
        return FC_MERGE_EBADARG;
    run_forward(op, xs, k, n, 0, y);
    return FC_OK;
}

int fc_add_relu_forward(const float *const *xs, int k, int64_t n, float *y)
{
    if (k < 2)
        return FC_MERGE_EBADARG;
    run_forward(FC_MERGE_ADD, xs, k, n, 1, y);
    return FC_OK;
}

/* ---------------------------------------------------------------- elementwise, backward */

/* Which input the forward's max2 (maximum != 0) or min2 took element e of the block
 * [i0, i0 + len) from: the same fold, carrying the index along. */
MERGE_INLINE void extremum_winners(const float *const *xs, int k, int64_t i0, int64_t len,
                                   int maximum, float *m, int32_t *w)
{
    const float *x0 = xs[0] + i0;
    int64_t e;
    for (e = 0; e < len; e++) {
        m[e] = x0[e];
        w[e] = 0;
    }
    for (int j = 1; j < k; j++) {
        const float *x = xs[j] + i0;
        for (e = 0; e < len; e++) {
            const float u = m[e], v = x[e];
            const int keep = (maximum ? (u >= v) : (u <= v)) | (u != u);
            m[e] = keep ? u : v;
            w[e] = keep ? w[e] : (int32_t)j;
        }
    }
}

MERGE_INLINE void backward_block_body(int op, const float *dy, const float *const *xs, int k,
                                      int64_t i0, int64_t i1, float *const *dxs)
{
    int64_t i;
    int t, j;
    switch (op) {
    case FC_MERGE_ADD:
        for (t = 0; t < k; t++)
            if (dxs[t] != NULL)
                memcpy(dxs[t] + i0, dy + i0, (size_t)(i1 - i0) * sizeof(float));
        break;
    case FC_MERGE_SUBTRACT:
        if (dxs[0] != NULL)
            memcpy(dxs[0] + i0, dy + i0, (size_t)(i1 - i0) * sizeof(float));
        if (dxs[1] != NULL) {
            float *d = dxs[1];
            for (i = i0; i < i1; i++)
                d[i] = -dy[i];
        }
        break;
    case FC_MERGE_AVERAGE: {
        const float kf = (float)k;
        for (t = 0; t < k; t++) {
            float *d = dxs[t];
            if (d == NULL)
                continue;
            for (i = i0; i < i1; i++)
                d[i] = dy[i] / kf;
        }
        break;
    }
    case FC_MERGE_MULTIPLY:
        /* O(k^2) multiplies per element, but each product runs left to right as documented
         * (prefix * suffix products would regroup it) */
        for (t = 0; t < k; t++) {
            float *d = dxs[t];
            if (d == NULL)
                continue;
            const int first = t == 0 ? 1 : 0;
            const float *x = xs[first];
            for (i = i0; i < i1; i++)
                d[i] = x[i];
            for (j = first + 1; j < k; j++) {
                if (j == t)
                    continue;
                x = xs[j];
                for (i = i0; i < i1; i++)
                    d[i] *= x[i];
            }
            for (i = i0; i < i1; i++)
                d[i] = dy[i] * d[i];
        }
        break;
    case FC_MERGE_MAXIMUM:
    case FC_MERGE_MINIMUM: {
        float m[MERGE_BLOCK];
        int32_t w[MERGE_BLOCK];
        const int64_t len = i1 - i0;
        extremum_winners(xs, k, i0, len, op == FC_MERGE_MAXIMUM, m, w);
        for (t = 0; t < k; t++) {
            float *d = dxs[t];
            if (d == NULL)
                continue;
            d += i0;
            const float *g = dy + i0;
            for (int64_t e = 0; e < len; e++)
                d[e] = w[e] == t ? g[e] : 0.0f;
        }
        break;
    }
    }
}

typedef void (*backward_block_fn)(int, const float *, const float *const *, int, int64_t,
                                  int64_t, float *const *);

static void backward_block_generic(int op, const float *dy, const float *const *xs, int k,
                                   int64_t i0, int64_t i1, float *const *dxs)
{
    backward_block_body(op, dy, xs, k, i0, i1, dxs);
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static void backward_block_avx2(int op, const float *dy,
                                               const float *const *xs, int k, int64_t i0,
                                               int64_t i1, float *const *dxs)
{
    backward_block_body(op, dy, xs, k, i0, i1, dxs);
}
#endif

int fc_merge_backward(int op, const float *dy, const float *const *xs, int k, int64_t n,
                      float *const *dxs)
{
    backward_block_fn fn = backward_block_generic;
    int64_t b, nb = (n + MERGE_BLOCK - 1) / MERGE_BLOCK;
    if (!merge_args_ok(op, k))
        return FC_MERGE_EBADARG;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = backward_block_avx2;
#endif
#pragma omp parallel for schedule(static) if (n * (k + 1) >= MERGE_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * MERGE_BLOCK, i1 = i0 + MERGE_BLOCK < n ? i0 + MERGE_BLOCK : n;
        fn(op, dy, xs, k, i0, i1, dxs);
    }
    return FC_OK;
}

/* ---------------------------------------------------------------- concatenate */

static int64_t total_width(const int64_t *widths, int k)
{
    int64_t total = 0;
    for (int i = 0; i < k; i++)
        total += widths[i];
    return total;
}

void fc_concat_forward(const float *const *xs, const int64_t *widths, int k, int64_t rows,
                       float *y)
{
    const int64_t total = total_width(widths, k);
    int64_t r;
    if (rows <= 0 || total <= 0)
        return;
#pragma omp parallel for schedule(static) if (rows * total >= MERGE_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        float *yr = y + r * total;
        for (int i = 0; i < k; i++) {
            const int64_t w = widths[i];
            if (w > 0)
                memcpy(yr, xs[i] + r * w, (size_t)w * sizeof(float));
            yr += w;
        }
    }
}

void fc_concat_backward(const float *dy, const int64_t *widths, int k, int64_t rows,
                        float *const *dxs)
{
    const int64_t total = total_width(widths, k);
    int64_t r;
    if (rows <= 0 || total <= 0)
        return;
#pragma omp parallel for schedule(static) if (rows * total >= MERGE_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        const float *gr = dy + r * total;
        for (int i = 0; i < k; i++) {
            const int64_t w = widths[i];
            if (w > 0 && dxs[i] != NULL)
                memcpy(dxs[i] + r * w, gr, (size_t)w * sizeof(float));
            gr += w;
        }
    }
}

/* ---------------------------------------------------------------- zero padding, cropping */

void fc_pad2d(const float *x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t top,
              int64_t bottom, int64_t left, int64_t right, float *y)
{
    const int64_t OH = H + top + bottom, row = (W + left + right) * C;
    const int64_t lead = left * C, body = W * C, tail = right * C, rows = N * OH;
    int64_t r;
    if (rows <= 0 || row <= 0)
        return;
#pragma omp parallel for schedule(static) if (rows * row >= MERGE_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        const int64_t n = r / OH, h = r % OH - top;
        float *yr = y + r * row;
        if (h < 0 || h >= H || body == 0) {
            zero_floats(yr, row);
            continue;
        }
        zero_floats(yr, lead);
        memcpy(yr + lead, x + (n * H + h) * body, (size_t)body * sizeof(float));
        zero_floats(yr + lead + body, tail);
    }
}

void fc_crop2d(const float *x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t top,
               int64_t bottom, int64_t left, int64_t right, float *y)
{
    const int64_t OH = H - top - bottom, row = (W - left - right) * C, rows = N * OH;
    int64_t r;
    if (rows <= 0 || row <= 0)
        return;
#pragma omp parallel for schedule(static) if (rows * row >= MERGE_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        const int64_t n = r / OH, h = r % OH + top;
        memcpy(y + r * row, x + ((n * H + h) * W + left) * C, (size_t)row * sizeof(float));
    }
}
