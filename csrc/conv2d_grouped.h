/* Grouped and dilated 2-D convolution (Keras Conv2D with groups > 1 or dilation_rate > 1),
 * forward and backward, on the GEMM.
 *
 * Layouts as conv2d.h with G groups: input x (N, H, W, C), kernel (KH, KW, C/G, F), bias
 * (F,), output (N, OH, OW, F); filters [g*F/G, (g+1)*F/G) read only input channels
 * [g*C/G, (g+1)*C/G). Tap (i, j) of output (oh, ow) reads input row oh*sh - pad_top + i*dh,
 * column ow*sw - pad_left + j*dw (zero outside the input).
 *
 * Method: the batch runs in chunks of whole images (a geometry-only size, so results do
 * not depend on the thread count); per chunk and group a dilated im2col gathers that
 * group's channel slice into column rows (P, KH*KW*C/G) and one GEMM per group multiplies
 * them with the group's kernel columns. The input gradient scatters each group's column
 * gradients back image by image (one thread per image, fixed order within it); the kernel
 * gradient accumulates the chunks' GEMMs in chunk order. The plain (G = 1, no dilation)
 * convolution keeps its own kernels in conv2d.h; these serve only the other cases.
 */
#ifndef FC_CONV2D_GROUPED_H
#define FC_CONV2D_GROUPED_H
#include "conv2d.h"

typedef struct {
    fc_conv2d_geometry base;   /* c: all input channels; f: all filters */
    int64_t dh, dw;            /* dilation rates, >= 1 */
    int64_t groups;            /* >= 1, divides c and f */
} fc_conv2d_grouped_geometry;

/* All return FC_OK or FC_ENOMEM (their column buffer, bounded by a few MB per chunk). */

/* out = act(conv(x, kernel) + bias); bias may be NULL; relu != 0 fuses max(., 0). */
int fc_conv2d_grouped_forward(const fc_conv2d_grouped_geometry *g, const float *x,
                              const float *kernel, const float *bias, int relu, float *out);

/* dx (N, H, W, C) from dy (N, OH, OW, F) w.r.t. the pre-activation output; overwritten. */
int fc_conv2d_grouped_backward_input(const fc_conv2d_grouped_geometry *g, const float *dy,
                                     const float *kernel, float *dx);

/* dkernel (KH, KW, C/G, F) summed over the batch; overwritten. */
int fc_conv2d_grouped_backward_kernel(const fc_conv2d_grouped_geometry *g, const float *dy,
                                      const float *x, float *dkernel);

/* Channels [c0, c0 + width) of `rows` rows of `ld` floats, to and from a packed
 * (rows, width) array: to_packed != 0 copies src (rows, ld)'s slice into dst (rows, width),
 * else src (rows, width) into dst (rows, ld)'s slice. Used to run a grouped conv group by
 * group on the plain conv2d kernels. */
void fc_channel_slice_copy(const float *src, float *dst, int64_t rows, int64_t ld, int64_t c0,
                           int64_t width, int to_packed);

/* The space-to-batch split of a dilated convolution (stride 1): with x (N, H, W, C), rates
 * (dh, dw) and offsets 0 <= rh < dh, 0 <= rw < dw, sub-image k = (a * dw + b) * N + n of
 * xs (dh * dw * N, hs, ws, C) holds the lattice x[n, a - rh + dh * s, b - rw + dw * u]
 * (s < hs, u < ws), zeros where that lies outside the input. fc_lattice_scatter is its
 * inverse: every pixel of x is written, from its lattice's sub-image or as zero when its
 * (s, u) lies past (hs, ws). Pure copies. */
void fc_lattice_gather(const float *x, int64_t n, int64_t h, int64_t w, int64_t c, int64_t dh,
                       int64_t dw, int64_t rh, int64_t rw, int64_t hs, int64_t ws, float *xs);
void fc_lattice_scatter(const float *xs, int64_t n, int64_t h, int64_t w, int64_t c, int64_t dh,
                        int64_t dw, int64_t rh, int64_t rw, int64_t hs, int64_t ws, float *x);

/* Grouped (groups > 1) 3x3 stride-1 undilated convolutions as Winograd F(2x2) / F(4x4)
 * (winograd.h): the input/output transforms over all channels, per group block-diagonal
 * GEMMs. g: the geometry with all channels (c, f), kernel (3, 3, C / groups, F); pads at
 * most 2. workspace: fc_conv2d_grouped_wino_workspace_size(g, groups) floats (0 when it
 * does not apply). Results are the same bits for any thread count. Return FC_OK or
 * FC_ENOMEM. The input gradient overwrites dx, the kernel gradient dkernel (summed over
 * the batch). */
int fc_conv2d_grouped_wino_applies(const fc_conv2d_geometry *g, int64_t groups);
int64_t fc_conv2d_grouped_wino_workspace_size(const fc_conv2d_geometry *g, int64_t groups);
int fc_conv2d_grouped_wino_forward(const fc_conv2d_geometry *g, int64_t groups, const float *x,
                                   const float *kernel, const float *bias, int relu,
                                   float *out, float *workspace);
int fc_conv2d_grouped_wino_backward_input(const fc_conv2d_geometry *g, int64_t groups,
                                          const float *dy, const float *kernel, float *dx,
                                          float *workspace);
int fc_conv2d_grouped_wino_backward_kernel(const fc_conv2d_geometry *g, int64_t groups,
                                           const float *dy, const float *x, float *dkernel,
                                           float *workspace);

#endif
