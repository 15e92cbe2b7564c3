/* Depthwise 2-D convolution (Keras DepthwiseConv2D), forward and backward, NHWC.
 *
 * Layouts: input x (N, H, W, C), kernel (KH, KW, C, M) with M the depth multiplier, bias
 * (C*M,), output (N, OH, OW, C*M): output channel c*M + m is input channel c correlated
 * with kernel[:, :, c, m]. Strides (sh, sw), dilation (dh, dw): tap (i, j) of output
 * (oh, ow) reads input row oh*sh - pad_top + i*dh and column ow*sw - pad_left + j*dw (zero
 * outside the input). The caller computes OH, OW and the padding.
 *
 * Every output element sums its taps in one fixed order (i, then j) over a vector of
 * channels (AVX2 where the CPU has it: the same products and sums in the same order, since
 * the build never contracts to FMA), the input gradient gathers over the outputs that read
 * each input (no scatter; at stride 1 with M == 1 it is the forward of dy with the kernel
 * flipped), and the kernel and bias gradients sum fixed blocks of output lines into their
 * own partial sums, added in block order; so results are bitwise identical for any thread
 * count.
 */
#ifndef FC_DEPTHWISE_H
#define FC_DEPTHWISE_H
#include "fc_common.h"

typedef struct {
    int64_t n, h, w, c;          /* input (N, H, W, C) */
    int64_t kh, kw, m;           /* kernel (KH, KW, C, M) */
    int64_t sh, sw;              /* strides, >= 1 */
    int64_t dh, dw;              /* dilation rates, >= 1 */
    int64_t pad_top, pad_left;   /* zero padding before the first row / column, >= 0 */
    int64_t oh, ow;              /* output (N, OH, OW, C*M), >= 1 */
} fc_depthwise_geometry;

/* All three return FC_OK or FC_ENOMEM (per-thread line buffers, M > 1 only, and the kernel
 * gradient's partial sums). */

/* out = act(depthwise(x, kernel) + bias); bias may be NULL; relu != 0 fuses max(., 0). */
int fc_depthwise_forward(const fc_depthwise_geometry *g, const float *x, const float *kernel,
                          const float *bias, int relu, float *out);

/* dx (N, H, W, C) from dy (N, OH, OW, C*M), the gradient of the pre-activation output;
 * overwritten. */
int fc_depthwise_backward_input(const fc_depthwise_geometry *g, const float *dy,
                                 const float *kernel, float *dx);

/* dkernel (KH, KW, C, M) and, unless dbias is NULL, dbias (C*M,), summed over the batch;
 * overwritten. */
int fc_depthwise_backward_kernel(const fc_depthwise_geometry *g, const float *dy,
                                 const float *x, float *dkernel, float *dbias);

/* Both gradients: dx as fc_depthwise_backward_input (unless dx is NULL), then dkernel and
 * dbias as fc_depthwise_backward_kernel, with the same bits. Where both take their M == 1
 * stride-1 3x3 paths and dx has dy's shape ('same' padding), one pass over dy: each block
 * of the kernel gradient's lines first writes those dx lines, while the dy lines are in
 * cache. */
int fc_depthwise_backward(const fc_depthwise_geometry *g, const float *dy, const float *x,
                          const float *kernel, float *dx, float *dkernel, float *dbias);

#endif
