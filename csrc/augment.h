/* Image augmentation and preprocessing kernels (Keras 3's image layers), NHWC batches.
 *
 * Every kernel reads a uint8 or float32 source (the *_u8 / *_f32 pair), writes float32 into a
 * caller-allocated dst that must not overlap src, and works image by image with the random
 * parameters of each image drawn by the caller: results are independent of the thread count.
 *
 * Sampling follows jax.scipy.ndimage.map_coordinates as Keras' affine_transform calls it:
 * "nearest" rounds the source coordinate half away from zero; "bilinear" weighs the floor and
 * floor+1 neighbours by (1 - f, f). Fill modes (FC_FILL_*), for an index i outside [0, n):
 *   constant: the neighbour reads fill_value;   nearest: clamp to [0, n-1];
 *   wrap: i mod n;                               reflect: half-sample symmetric (d c b a | a b c d).
 */
#ifndef FC_AUGMENT_H
#define FC_AUGMENT_H
#include "fc_common.h"

enum { FC_FILL_CONSTANT = 0, FC_FILL_NEAREST = 1, FC_FILL_WRAP = 2, FC_FILL_REFLECT = 3 };
enum { FC_INTERP_NEAREST = 0, FC_INTERP_BILINEAR = 1 };

/* dst[b, y, x, :] = src[b] sampled at ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k) (x, y),
 * k = c0 x + c1 y + 1, with t[b] = (a0, a1, a2, b0, b1, b2, c0, c1) mapping OUTPUT pixels to
 * input ones (Keras' convention). dst has src's shape. */
void fc_aug_affine_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                      const float *t, int interp, int fill, float fill_value, float *dst);
void fc_aug_affine_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                       const float *t, int interp, int fill, float fill_value, float *dst);
/* The adjoint of fc_aug_affine_f32 for fixed t: dx = A^T dy (the fill value carries no
 * gradient). dx has dy's shape and is overwritten. */
void fc_aug_affine_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                            const float *t, int interp, int fill, float *dx);

/* Separable resampling of each image, as a padded or cropped (Hp, Wp) image, to (OH, OW).
 * Padded pixel (yp, xp) is src[yp - pad_y, xp - pad_x] inside the image and fill_value
 * outside (a negative pad crops). Pass 1 mixes rows: tmp[b, oy, xp, :] (tmp is
 * (B, OH, Wp, C) scratch) = sum over k < ny of wy[oy * ny + k] * padded(ys[oy] + k, xp);
 * pass 2 mixes columns the same way with xs, nx, wx into dst (B, OH, OW, C). The caller
 * computes the taps (bilinear, antialiased or nearest) and keeps them inside the padded
 * image. */
void fc_aug_resize_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                      int64_t OH, int64_t OW, int64_t Wp, int64_t pad_y, int64_t pad_x,
                      float fill_value, const int32_t *ys, int64_t ny, const float *wy,
                      const int32_t *xs, int64_t nx, const float *wx, float *tmp, float *dst);
void fc_aug_resize_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                       int64_t OH, int64_t OW, int64_t Wp, int64_t pad_y, int64_t pad_x,
                       float fill_value, const int32_t *ys, int64_t ny, const float *wy,
                       const int32_t *xs, int64_t nx, const float *wx, float *tmp, float *dst);

/* The adjoint of fc_aug_resize_f32 (same taps, padding and tmp shape); the fill value gets
 * no gradient. dx (B, H, W, C) is overwritten. */
void fc_aug_resize_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                            int64_t OH, int64_t OW, int64_t Wp, int64_t pad_y, int64_t pad_x,
                            const int32_t *ys, int64_t ny, const float *wy, const int32_t *xs,
                            int64_t nx, const float *wx, float *tmp, float *dx);

/* dst[b] = src[b, y0[b] : y0[b] + OH, x0[b] : x0[b] + OW, :], flipped left-right when
 * flip[b] & 1 and upside down when flip[b] & 2 (flip may be NULL); windows lie inside. */
void fc_aug_crop_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                    int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                    const uint8_t *flip, float *dst);
void fc_aug_crop_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                     int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                     const uint8_t *flip, float *dst);
/* The adjoint of fc_aug_crop_f32: dx (B, H, W, C) is zero outside each window and holds dy
 * (B, OH, OW, C), flipped back, inside it. */
void fc_aug_crop_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                          int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                          const uint8_t *flip, float *dx);

/* RandomContrast: per image b and channel, m = mean over (H, W);
 * dst = clip((src - m) * factor[b] + m, lo, hi). */
void fc_aug_contrast_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                        const float *factor, float lo, float hi, float *dst);
void fc_aug_contrast_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                         const float *factor, float lo, float hi, float *dst);

/* Gradient of fc_aug_contrast_f32 with respect to x (the mean included); values clipped in
 * the forward pass pass no gradient (at a bound exactly, they do). */
void fc_aug_contrast_backward(const float *x, const float *dy, int64_t B, int64_t H, int64_t W,
                              int64_t C, const float *factor, float lo, float hi, float *dx);

/* RandomBrightness: dst = clip(src + delta[b], lo, hi). */
void fc_aug_brightness_u8(const uint8_t *src, int64_t B, int64_t HWC, const float *delta,
                          float lo, float hi, float *dst);
void fc_aug_brightness_f32(const float *src, int64_t B, int64_t HWC, const float *delta,
                           float lo, float hi, float *dst);
/* Gradient of fc_aug_brightness_f32: dy where x + delta[b] lies in [lo, hi], else 0. */
void fc_aug_brightness_backward(const float *x, const float *dy, int64_t B, int64_t HWC,
                                const float *delta, float lo, float hi, float *dx);
#endif
