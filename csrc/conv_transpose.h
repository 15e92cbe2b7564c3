/* Conv2DTranspose (Keras 3) forward on the conv2d kernels (conv2d.h).
 *
 * A transposed convolution is the input gradient of a convolution: with g describing that
 * convolution (its input (N, H, W, C) is the transposed conv's output, its output
 * (N, OH, OW, F) the transposed conv's input x, its kernel (KH, KW, C, F) the Keras
 * Conv2DTranspose kernel (kh, kw, filters, in_channels) as it is), the forward is
 * fc_conv2d_backward_input(g, x) followed by bias and ReLU in one pass. Keras' padding and
 * output_padding only decide H, W and pad_top/pad_left (rows a window reaches past H or W
 * are dropped, rows no window reaches get 0), which the conv2d kernels handle for any
 * geometry. The backward is conv2d's forward (input gradient), kernel gradient (with x
 * as dy) and bias gradient on the same g; the caller runs those directly.
 */
#ifndef FC_CONV_TRANSPOSE_H
#define FC_CONV_TRANSPOSE_H
#include "conv2d.h"

/* y (N, H, W, C) = act(conv_transpose(x (N, OH, OW, F), kernel) + bias); bias may be NULL;
 * relu != 0 applies max(., 0). workspace as for fc_conv2d_backward_input. Returns FC_OK or
 * FC_ENOMEM. */
int fc_conv2d_transpose_forward(const fc_conv2d_geometry *g, const float *x,
                                const float *kernel, const float *bias, int relu, float *y,
                                float *workspace, int algorithm);

/* Strided geometries (any stride > 1 up to 64, kernel height <= 64) run as a phase
 * (sub-pixel) decomposition instead: output pixels of one phase (o mod stride) take a
 * fixed subset of the taps, so each phase is a dense stride-1 correlation of x, computed
 * by GEMMs straight into a small per-image buffer (no col2im scatter, no zero taps) and
 * written out interleaved with bias and ReLU (FC_CONVT_PHASE below). Its backward splits
 * dy into its phases once and runs the input and kernel gradients as GEMMs on them; the
 * kernel gradient sums fixed chunks of images, then the chunks in order, so every result
 * is bitwise the same for any thread count. Scratch is allocated per call (per thread:
 * a padded image and its phase buffers, a few hundred KB for CIFAR-sized layers). */
int fc_conv2d_transpose_phase_applies(const fc_conv2d_geometry *g);

/* The algorithm argument of fc_conv2d_transpose_forward also takes these (tests compare
 * the paths); where they do not apply it falls back to the next one (then to AUTO). */
#define FC_CONVT_PHASE 100
#define FC_CONVT_PHASE_WINOGRAD 101

/* y (N, H, W, C) = act(conv_transpose(x, kernel) + bias) by phases; as above. */
int fc_conv2d_transpose_phase_forward(const fc_conv2d_geometry *g, const float *x,
                                      const float *kernel, const float *bias, int relu,
                                      float *y);

/* dx (may be NULL), dkernel and dbias (may be NULL) of the transposed conv by phases, from
 * dy (N, H, W, C) = dLoss/d(pre-activation y); all overwritten. */
int fc_conv2d_transpose_phase_backward(const fc_conv2d_geometry *g, const float *dy,
                                       const float *x, const float *kernel, float *dx,
                                       float *dkernel, float *dbias);

/* Where every phase has at most 2 taps along each axis (kernel <= 2 * stride, strides <=
 * 4: 3x3 stride 2), the phases run as Winograd F(2, 2) on their 2-tap axes: a 2x2-tap
 * phase takes 9 GEMM products per 2x2 outputs instead of 16 (3x3 stride 2 forward: 25
 * products per 2x2 input pixels instead of 36; same for both gradients). The transforms
 * only add and subtract (points 0, 1, infinity). */
int fc_conv2d_transpose_winograd_applies(const fc_conv2d_geometry *g);

/* What FC_CONV2D_AUTO runs (forward here, backward in fastcnn.ops): the Winograd phases
 * where they apply and both channel counts are >= 32 (measured faster there), else the
 * input-gradient path. The plain phase path is only taken when asked for. */
int fc_conv2d_transpose_winograd_preferred(const fc_conv2d_geometry *g);
int fc_conv2d_transpose_winograd_forward(const fc_conv2d_geometry *g, const float *x,
                                         const float *kernel, const float *bias, int relu,
                                         float *y);
int fc_conv2d_transpose_winograd_backward(const fc_conv2d_geometry *g, const float *dy,
                                          const float *x, const float *kernel, float *dx,
                                          float *dkernel, float *dbias);

#endif
