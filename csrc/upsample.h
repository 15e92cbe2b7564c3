/* UpSampling2D (Keras 3 on JAX semantics) on NHWC float32 tensors, forward and backward.
 *
 * x (N, H, W, C) -> y (N, H*sh, W*sw, C).
 *  - nearest: y[n, i, j] = x[n, i / sh, j / sw] (Keras' ops.repeat along H then W); its
 *    backward sums dy over each sh x sw block.
 *  - bilinear: jax.image.resize(method="bilinear") for an integer up-scale: half-pixel
 *    centres, source coordinate s = (o + 0.5) / scale - 0.5, two taps floor(s), floor(s)+1
 *    with weights 1 - frac, frac; a tap outside the input is dropped and the other one
 *    takes weight 1 (JAX normalises the weights over the taps that exist). No antialias
 *    (it changes nothing when up-sampling). Its backward scatters dy through the same taps.
 * Every output/gradient element depends on one image only; the work is split over images
 * (backward) or output rows (forward), so results are bitwise identical at any thread count.
 */
#ifndef FC_UPSAMPLE_H
#define FC_UPSAMPLE_H
#include "fc_common.h"

void fc_upsample2d_nearest_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                   int64_t sh, int64_t sw, float *y);

/* dx (N, H, W, C) is overwritten. */
void fc_upsample2d_nearest_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                    int64_t C, int64_t sh, int64_t sw, float *dx);

/* Return FC_OK or FC_ENOMEM (the tap tables). */
int fc_upsample2d_bilinear_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                   int64_t sh, int64_t sw, float *y);

/* dx (N, H, W, C) is overwritten. */
int fc_upsample2d_bilinear_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                    int64_t C, int64_t sh, int64_t sw, float *dx);

#endif
