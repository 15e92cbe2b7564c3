/* Assembling training batches: gather rows of a dataset, convert uint8 pixels to scaled
 * float32, and apply the random-crop (with zero padding) + horizontal-flip augmentation.
 *
 * dst[b, h, w, c] = scale * src[index[b], h + oy[b], w + ox[b], c] + shift
 * with the flip applied first (w + ox[b] -> W-1-(w + ox[b])), and exactly 0.0f (the zero
 * padding of the final input) where the shifted pixel falls outside the image. oy/ox/flip may be NULL (no shift / no flip).
 * The random offsets are drawn by the caller (one seeded generator), so the result is
 * independent of the thread count.
 */
#ifndef FC_BATCH_H
#define FC_BATCH_H
#include "fc_common.h"

void fc_batch_gather_u8(const uint8_t *src, const int64_t *index, int64_t B, int64_t H,
                        int64_t W, int64_t C, float scale, float shift, const int32_t *oy,
                        const int32_t *ox, const uint8_t *flip, float *dst);

void fc_batch_gather_f32(const float *src, const int64_t *index, int64_t B, int64_t H,
                         int64_t W, int64_t C, float scale, float shift, const int32_t *oy,
                         const int32_t *ox, const uint8_t *flip, float *dst);

/* dst[i] = scale * src[i] + shift for n uint8 values. */
void fc_u8_to_f32(const uint8_t *src, int64_t n, float scale, float shift, float *dst);

/* dst[i] = scale * src[i] + shift for n floats (dst may equal src). */
void fc_affine_f32(const float *src, int64_t n, float scale, float shift, float *dst);

/* Count of non-finite values (NaN or +-inf) in x; used to refuse bad input cheaply. */
int64_t fc_count_nonfinite(const float *x, int64_t n);
#endif
