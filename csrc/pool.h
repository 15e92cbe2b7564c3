/* 2-D pooling on NHWC float32 tensors (Keras semantics).
 *
 * Geometry: pool (ph, pw), strides (sh, sw), padding given as the number of rows/cols
 * added before the input (pad_top, pad_left; `same` puts the odd one at the bottom/right,
 * which only shows up through OH/OW). Padding elements never take part: a max-pool window
 * ignores them (as if -inf), an average-pool window divides by its non-padding count.
 * Every window must hold at least one real element (always true for Keras geometry).
 *
 * Max-pool indices are int32 offsets inside one image: h*W*C + w*C + c (so H*W*C must fit
 * in int32, checked by the caller). Ties go to the FIRST maximum in row-major window order
 * (TF/PyTorch); NaN wins over any number, the first NaN of a window is the one recorded.
 */
#ifndef FC_POOL_H
#define FC_POOL_H

#include "fc_common.h"

/* Returned by fc_max_pool2d_backward when an index is outside [0, H*W*C). */
#define FC_POOL_EBADINDEX (-2)

/* y (N,OH,OW,C) = max over each window of x (N,H,W,C); indices (same shape as y) may be
 * NULL when the caller does not need them. */
void fc_max_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                           int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                           int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                           float *y, int32_t *indices);

/* dx (N,H,W,C) = 0, then dx[n, indices[n,oh,ow,c]] += dy[n,oh,ow,c] (in output order).
 * relu_gate (N,OH,OW,C), may be NULL: the pool's output y when its input came out of a
 * ReLU; only entries with y > 0 are scattered, which makes dx the gradient of the ReLU's
 * input (relu backward and pool backward in one pass, same values as the two in turn).
 * Returns FC_OK, or FC_POOL_EBADINDEX (those entries are skipped) for out-of-range indices. */
int fc_max_pool2d_backward(const float *dy, const int32_t *indices, int64_t N, int64_t OH,
                           int64_t OW, int64_t H, int64_t W, int64_t C, float *dx,
                           const float *relu_gate);

/* y = sum of each window / number of its non-padding elements. */
void fc_avg_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                           int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                           int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                           float *y);

/* dx[h,w,c] = sum over the windows holding (h,w) of dy * (1/count) (gathered: no races). */
int fc_avg_pool2d_backward(const float *dy, int64_t N, int64_t H, int64_t W, int64_t C,
                           int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                           int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                           float *dx); /* FC_OK or FC_ENOMEM */

/* y (N,C) = mean of x (N,H,W,C) over H and W (accumulated in double). */
void fc_global_avg_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                  float *y);

/* dx[n,h,w,c] = dy[n,c] / (H*W). */
void fc_global_avg_pool2d_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                   int64_t C, float *dx);

/* Global max pool (Keras GlobalMaxPooling2D = max over H and W): y (N, C). NaN propagates
 * (a NaN anywhere in a channel makes its max NaN). */
void fc_global_max_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                  float *y);

/* dx (N, H, W, C), overwritten, = the gradient of the forward above given its output y and
 * dy (N, C), as JAX differentiates a max: dy split equally between the tied maxima,
 * dx = dy * (x == y) / count(x == y) (NaN for a channel whose max is NaN). Returns FC_OK or
 * FC_ENOMEM. */
int fc_global_max_pool2d_backward(const float *x, const float *y, const float *dy, int64_t N,
                                  int64_t H, int64_t W, int64_t C, float *dx);

#endif
