/* Elementwise / row-wise activations: relu, softmax, dropout. */
#include <math.h>
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

void fc_dropout_forward(const float *x, float *y, uint8_t *mask, int64_t n,
                        double rate, uint64_t seed)
{
    /* element i is kept iff the top 32 bits of hash(seed, i) are >= rate * 2^32,
     * i.e. with probability 1 - rate (to 2^-32); rate 0 keeps everything */
    const uint64_t key = mix64(seed + FC_GOLDEN);
    const uint64_t threshold = (uint64_t)ceil(rate * 4294967296.0);
    const float scale = (float)(1.0 / (1.0 - rate));
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        for (int64_t i = i0; i < i1; i++) {
            uint64_t h = mix64(key + (uint64_t)(i + 1) * FC_GOLDEN);
            const int keep = (h >> 32) >= threshold;
            const float v = x[i] * scale;
            mask[i] = (uint8_t)keep;
            y[i] = keep ? v : 0.0f;
        }
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
        for (int64_t i = i0; i < i1; i++) {
            const float g = dy[i] * scale;
            dx[i] = mask[i] ? g : 0.0f;
        }
    }
}
