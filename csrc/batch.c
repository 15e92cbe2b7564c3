/* Batch assembly kernels; see batch.h. */
#include <string.h>
#include "batch.h"

/* One macro body for both source dtypes: the per-pixel work is identical. */
#define GATHER_BODY(SRC_T)                                                                    \
    int64_t row;                                                                              \
    const int64_t row_len = W * C;                                                            \
    _Pragma("omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*H*W*C > 32768)") \
    for (row = 0; row < B * H; row++) {                                                       \
        const int64_t b = row / H, h = row % H;                                               \
        float *out = dst + row * row_len;                                                     \
        const int64_t sh = h + (oy ? oy[b] : 0);                                              \
        const int64_t dx = ox ? ox[b] : 0;                                                    \
        const int flipped = flip ? flip[b] != 0 : 0;                                          \
        if (sh < 0 || sh >= H) {                                                              \
            for (int64_t i = 0; i < row_len; i++) out[i] = 0.0f;                              \
            continue;                                                                         \
        }                                                                                     \
        const SRC_T *in = src + (index[b] * H + sh) * row_len;                                \
        if (!flipped && dx == 0) {                                                            \
            for (int64_t i = 0; i < row_len; i++) out[i] = scale * (float)in[i] + shift;      \
            continue;                                                                         \
        }                                                                                     \
        for (int64_t w = 0; w < W; w++) {                                                     \
            const int64_t sw = flipped ? W - 1 - (w + dx) : w + dx;                               \
            float *o = out + w * C;                                                           \
            if (sw < 0 || sw >= W) {                                                          \
                for (int64_t c = 0; c < C; c++) o[c] = 0.0f;                                  \
            } else {                                                                          \
                const SRC_T *p = in + sw * C;                                                 \
                for (int64_t c = 0; c < C; c++) o[c] = scale * (float)p[c] + shift;           \
            }                                                                                 \
        }                                                                                     \
    }

void fc_batch_gather_u8(const uint8_t *src, const int64_t *index, int64_t B, int64_t H,
                        int64_t W, int64_t C, float scale, float shift, const int32_t *oy,
                        const int32_t *ox, const uint8_t *flip, float *dst)
{
    GATHER_BODY(uint8_t)
}

void fc_batch_gather_f32(const float *src, const int64_t *index, int64_t B, int64_t H,
                         int64_t W, int64_t C, float scale, float shift, const int32_t *oy,
                         const int32_t *ox, const uint8_t *flip, float *dst)
{
    GATHER_BODY(float)
}

void fc_u8_to_f32(const uint8_t *src, int64_t n, float scale, float shift, float *dst)
{
    int64_t i;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(n > 65536)
    for (i = 0; i < n; i++)
        dst[i] = scale * (float)src[i] + shift;
}

void fc_affine_f32(const float *src, int64_t n, float scale, float shift, float *dst)
{
    int64_t i;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(n > 65536)
    for (i = 0; i < n; i++)
        dst[i] = scale * src[i] + shift;
}

#define NONFINITE_BLOCK 4096

/* NaN or +-inf: the exponent bits all set. Tested on the bits and counted per block in 32
 * bits, so that the loop vectorises (isfinite into a 64-bit sum does not). */
static uint32_t count_nonfinite_block(const float *x, int64_t n)
{
    uint32_t bad = 0;
    int64_t i;
    for (i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, sizeof b);
        bad += (b & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

/* block k of the n floats at x */
static uint32_t count_nonfinite_at(const float *x, int64_t n, int64_t k)
{
    const int64_t i = k * NONFINITE_BLOCK;
    return count_nonfinite_block(x + i, n - i < NONFINITE_BLOCK ? n - i : NONFINITE_BLOCK);
}

int64_t fc_count_nonfinite(const float *x, int64_t n)
{
    const int64_t nb = (n + NONFINITE_BLOCK - 1) / NONFINITE_BLOCK;
    int64_t k, bad = 0;
    if (n <= 65536) { /* a few images: not even an if-false parallel region (~0.3 us) */
        for (k = 0; k < nb; k++)
            bad += count_nonfinite_at(x, n, k);
        return bad;
    }
#pragma omp parallel for schedule(static) reduction(+:bad) num_threads(fc_get_num_threads())
    for (k = 0; k < nb; k++)
        bad += count_nonfinite_at(x, n, k);
    return bad;
}
