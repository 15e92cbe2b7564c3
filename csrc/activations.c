/* Elementwise / row-wise activations: relu, softmax, dropout. */
#include <math.h>
#include <string.h>
#include "nn.h"

/* Elementwise kernels work on fixed blocks so the inner loop stays simple enough
 * to vectorise; below FC_NN_PARALLEL_MIN elements waking a thread team costs
 * more than the work. */
#define FC_NN_BLOCK 4096
#define FC_NN_PARALLEL_MIN 65536

static int64_t n_blocks(int64_t n)
{
    return (n + FC_NN_BLOCK - 1) / FC_NN_BLOCK;
}

void fc_relu_forward(const float *x, float *y, int64_t n)
{
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i];
            /* NaN propagates (a diverging run should stay visible); -0 becomes +0 */
            y[i] = (v > 0.0f || v != v) ? v : 0.0f;
        }
    }
}

void fc_relu_backward(const float *dy, const float *y, float *dx, int64_t n)
{
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        for (int64_t i = i0; i < i1; i++) {
            /* load dy unconditionally: a select, not a data-dependent branch */
            const float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
        }
    }
}

/* One row; safe in place (each element is read before it is written). */
static void softmax_row(const float *x, float *y, int64_t cols)
{
    float m = x[0];
    for (int64_t j = 1; j < cols; j++)
        if (x[j] > m)
            m = x[j];
    double s = 0.0;
    for (int64_t j = 0; j < cols; j++) {
        float e = expf(x[j] - m);
        y[j] = e;
        s += e;
    }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < cols; j++)
        y[j] *= inv;
}

void fc_softmax_forward(const float *x, float *y, int64_t rows, int64_t cols)
{
    int64_t r;
    if (cols <= 0)
        return;
#pragma omp parallel for schedule(static) if (rows * cols >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++)
        softmax_row(x + r * cols, y + r * cols, cols);
}

/* ---- dropout ---- */

#define FC_GOLDEN 0x9E3779B97F4A7C15ULL

/* splitmix64's output function: a bijective 64-bit mixer. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* y = (mask ? x * scale : 0) as a bit mask on the float, so that it vectorises
 * (a data-dependent branch here mispredicts on every other element) */
static void masked_scale(const float *x, const uint8_t *mask, float *y, int64_t i0, int64_t i1,
                         float scale)
{
    for (int64_t i = i0; i < i1; i++) {
        const float v = x[i] * scale;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint32_t)(mask[i] != 0);
        memcpy(&y[i], &bits, sizeof bits);
    }
}

void fc_dropout_forward(const float *x, float *y, uint8_t *mask, int64_t n,
                        double rate, uint64_t seed)
{
    /* Element i is kept iff its 32-bit uniform u_i >= rate * 2^32, i.e. with
     * probability 1 - rate (to 2^-32); rate 0 keeps everything. u_{2j} and
     * u_{2j+1} are the low and high halves of hash(seed, j). */
    const uint64_t key = mix64(seed + FC_GOLDEN);
    const uint64_t threshold = (uint64_t)ceil(rate * 4294967296.0);
    const float scale = (float)(1.0 / (1.0 - rate));
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        /* blocks start at even indices, so pairs never straddle two blocks */
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        int64_t i = i0;
        for (; i + 1 < i1; i += 2) {
            const uint64_t h = mix64(key + (uint64_t)((i >> 1) + 1) * FC_GOLDEN);
            mask[i] = (uint8_t)((h & 0xFFFFFFFFu) >= threshold);
            mask[i + 1] = (uint8_t)((h >> 32) >= threshold);
        }
        if (i < i1) {
            const uint64_t h = mix64(key + (uint64_t)((i >> 1) + 1) * FC_GOLDEN);
            mask[i] = (uint8_t)((h & 0xFFFFFFFFu) >= threshold);
        }
        masked_scale(x, mask, y, i0, i1, scale);
    }
}

void fc_dropout_backward(const float *dy, const uint8_t *mask, float *dx, int64_t n,
                         double rate)
{
    const float scale = (float)(1.0 / (1.0 - rate));
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        masked_scale(dy, mask, dx, i0, i1, scale);
    }
}
