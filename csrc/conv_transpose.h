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

#endif
