/* 2-D convolution (Keras Conv2D semantics), forward and backward, on the GEMM.
 *
 * Layouts: input x (N, H, W, C), kernel (KH, KW, C, F), bias (F,), output (N, OH, OW, F),
 * all float32 C-contiguous. Padding is explicit zeros: pad_top rows above and pad_left
 * columns left of the input; the caller computes OH/OW (Keras `same` puts any extra
 * padding at the bottom/right, which needs no argument here: windows past the input read 0).
 *
 * Method: with NHWC and a (KH, KW, C, F) kernel, the im2col row of an output pixel is
 * KH*KW*C long (C-contiguous segments, in kernel order), so for P output pixels
 *     out(P, F) = cols(P, K) @ W(K, F),   K = KH*KW*C,
 *     dcols(P, K) = dy(P, F) @ W^T  -> col2im -> dx,
 *     dW(K, F) = cols^T @ dy  (summed over the batch),   dbias = column sums of dy.
 * The batch is processed in pieces of whole output lines through a bounded scratch buffer
 * (the "workspace", ~2 MiB whatever the batch size); every sum is split in a way that
 * depends only on the geometry, so results are bitwise identical for any thread count
 * (details in conv2d.c). When im2col is the identity
 * (1x1 kernel, stride 1, no padding; or a kernel covering the whole unpadded input) no
 * workspace is used and x itself is the column matrix.
 *
 * Layers with few input channels (K = KH*KW*C <= 64: the first layer of a CNN) run
 * their forward and kernel gradient "direct" (conv2d_direct.h): a register-blocked kernel
 * reads the image in place where no window needs padding (else one output line's im2col
 * rows, in L1) and the (KH, KW, C, F) kernel as it is, with bias and ReLU applied in
 * registers; no GEMM packing. Such a layer followed by a max-pool whose strides equal its
 * size can run fused with it (fc_conv2d_relu_maxpool_*, below).
 *
 * 3x3 stride-1 convolutions can instead run as Winograd F(2x2, 3x3) or F(4x4, 3x3)
 * (winograd.h): fewer multiplications (16 per 2x2 output tile instead of 36, 36 per 4x4
 * tile instead of 144) for more rounding error. The forward, the input gradient (a 3x3 stride-1 correlation of dy with the
 * rotated kernel) and the kernel gradient (the transposed algorithm: 16 or 36 GEMMs summing
 * over the tiles, then G^T dU G) each use it where it measured faster (FC_CONV2D_AUTO).
 */
#ifndef FC_CONV2D_H
#define FC_CONV2D_H
#include "fc_common.h"

typedef struct {
    int64_t n, h, w, c;          /* input (N, H, W, C) */
    int64_t kh, kw, f;           /* kernel (KH, KW, C, F) */
    int64_t sh, sw;              /* strides, >= 1 */
    int64_t pad_top, pad_left;   /* zero padding before the first row / column, >= 0 */
    int64_t oh, ow;              /* output (N, OH, OW, F), >= 1 */
} fc_conv2d_geometry;

/* Algorithm choice, the last argument of the kernels below. The Winograd ones are only
 * honoured where fc_conv2d_winograd_applies(); elsewhere they mean FC_CONV2D_IM2COL.
 * FC_CONV2D_WINOGRAD asks for Winograd with the tile size measured faster for the pass
 * (F(2x2, 3x3) or F(4x4, 3x3)); the _F2 / _F4 ones name the tile size. */
#define FC_CONV2D_AUTO 0
#define FC_CONV2D_IM2COL 1
#define FC_CONV2D_WINOGRAD 2
#define FC_CONV2D_DIRECT 3
#define FC_CONV2D_WINOGRAD_F2 4
#define FC_CONV2D_WINOGRAD_F4 5

/* Which pass an algorithm is picked for. */
#define FC_CONV2D_PASS_FORWARD 0
#define FC_CONV2D_PASS_BACKWARD_INPUT 1
#define FC_CONV2D_PASS_BACKWARD_KERNEL 2

/* Nonzero when Winograd can compute this geometry (3x3 kernel, stride 1). */
int fc_conv2d_winograd_applies(const fc_conv2d_geometry *g);

/* Nonzero when the direct small-K kernels (conv2d_direct.h) can run this geometry's
 * forward and kernel gradient: K = KH*KW*C <= FC_CONV2D_DIRECT_MAX_K. Any stride and
 * padding. (Its input gradient, when asked for, runs as im2col.) */
int fc_conv2d_direct_applies(const fc_conv2d_geometry *g);

/* The algorithm `pass` runs when asked for `requested`: FC_CONV2D_IM2COL,
 * FC_CONV2D_DIRECT, FC_CONV2D_WINOGRAD_F2 or FC_CONV2D_WINOGRAD_F4 (FC_CONV2D_AUTO: the
 * one measured faster for this geometry). */
int fc_conv2d_algorithm(const fc_conv2d_geometry *g, int pass, int requested);

/* Floats of workspace every conv2d kernel below needs for this geometry, whatever the
 * algorithm (0 when im2col is the identity and Winograd does not apply). Bounded by a
 * few MB whatever the batch size. */
int64_t fc_conv2d_workspace_size(const fc_conv2d_geometry *g);

/* Output lines (N*OH of them) whose column rows fill the workspace; exposed for tests. */
int64_t fc_conv2d_chunk_lines(const fc_conv2d_geometry *g);

/* For all kernels: `workspace` holds fc_conv2d_workspace_size(g) floats, or is NULL, in
 * which case the kernel allocates (and frees) its own. Return FC_OK or FC_ENOMEM. */

/* out = act(conv(x, kernel) + bias); bias may be NULL; relu != 0 fuses max(., 0). */
int fc_conv2d_forward(const fc_conv2d_geometry *g, const float *x, const float *kernel,
                      const float *bias, int relu, float *out, float *workspace,
                      int algorithm);

/* dx (N, H, W, C) = gradient w.r.t. x, given dy (N, OH, OW, F) w.r.t. the pre-activation
 * output. dx is overwritten. */
int fc_conv2d_backward_input(const fc_conv2d_geometry *g, const float *dy, const float *kernel,
                             float *dx, float *workspace, int algorithm);

/* dkernel (KH, KW, C, F) = sum over the batch of the kernel gradient; overwritten. */
int fc_conv2d_backward_kernel(const fc_conv2d_geometry *g, const float *dy, const float *x,
                              float *dkernel, float *workspace, int algorithm);

/* dbias (F,) = sum of dy over N, OH, OW; overwritten. Needs no workspace. */
void fc_conv2d_backward_bias(const fc_conv2d_geometry *g, const float *dy, float *dbias);

/* ---- Conv2D(relu) followed by MaxPooling2D (pool == strides = (ph, pw), `valid`), fused.
 * For direct geometries (fc_conv2d_direct_applies). The forward computes, per pooled
 * output line, the ph conv lines it covers in a small buffer and pools them there: the
 * conv output (N, OH, OW, F) is never written. y (N, OH/ph, OW/pw, F) is the pooled
 * output and indices (same shape) the conv-output offsets within one image
 * ((oh*OW + ow)*F + f) of each window's first maximum, exactly as max_pool2d would
 * give on the conv output; same values as the two kernels in turn. indices may be NULL
 * (inference): the pooled values alone, the same. */
#define FC_CONV2D_EBADINDEX (-2)

int fc_conv2d_relu_maxpool_applies(const fc_conv2d_geometry *g, int64_t ph, int64_t pw);

int fc_conv2d_relu_maxpool_forward(const fc_conv2d_geometry *g, int64_t ph, int64_t pw,
                                   const float *x, const float *kernel, const float *bias,
                                   float *y, int32_t *indices);

/* dkernel (and dbias unless NULL) of the block from dy (the pooled output's gradient),
 * indices and y of the forward: windows whose max y <= 0 pass nothing (ReLU). Returns
 * FC_OK, FC_ENOMEM or FC_CONV2D_EBADINDEX (an index outside its window's lines). */
int fc_conv2d_relu_maxpool_backward_kernel(const fc_conv2d_geometry *g, int64_t ph,
                                           int64_t pw, const float *dy,
                                           const int32_t *indices, const float *y,
                                           const float *x, float *dkernel, float *dbias);

/* Winograd conv + bias + ReLU + 2x2 max-pool (stride 2, valid) in one pass: the ReLU'd
 * outputs of each whole m x m tile are pooled as they leave the output transform, so the
 * conv output is never written. g->oh x g->ow is the conv output computed (an output_size
 * crop, the region the pool reads). Runs where the forward's auto choice is Winograd with
 * tiles that cover it exactly: fc_conv2d_winograd_relu_maxpool2_tile gives that tile size,
 * or 0. y and indices are (N, OH / 2, OW / 2, F), bitwise what fc_conv2d_forward(auto,
 * relu) and fc_max_pool2d_forward give (indices: offsets within one (OH, OW, F) conv
 * output; may be NULL: y alone). workspace as for the kernels above. Returns FC_OK,
 * FC_ENOMEM or FC_CONV2D_ENOTFUSED (the tile size is 0). */
#define FC_CONV2D_ENOTFUSED (-3)

int fc_conv2d_winograd_relu_maxpool2_tile(const fc_conv2d_geometry *g);

int fc_conv2d_winograd_relu_maxpool2_forward(const fc_conv2d_geometry *g, const float *x,
                                             const float *kernel, const float *bias, float *y,
                                             int32_t *indices, float *workspace);

/* ---- A bound inference conv (fixed shapes, weights that rarely change) keeps its Winograd
 * kernel transform and packed GEMM operands between calls: without their per-call cost
 * Winograd pays down to one image. fc_conv2d_winograd_cached_tile gives the tile size (2
 * or 4) auto's rule picks when they are free, or 0 where im2col stays cheaper (or
 * Winograd does not apply). The cache holds fc_conv2d_winograd_cache_size(g, m) floats,
 * its first set to 0 before the first call; each call compares the kernel with the copy
 * the cache holds and redoes the transform where they differ. Results are bitwise
 * fc_conv2d_forward's with the same tile size (FC_CONV2D_WINOGRAD_F2 / _F4). workspace as
 * for the kernels above. Returns FC_OK or FC_ENOMEM. */
int fc_conv2d_winograd_cached_tile(const fc_conv2d_geometry *g);

int64_t fc_conv2d_winograd_cache_size(const fc_conv2d_geometry *g, int m);

int fc_conv2d_winograd_cached_forward(const fc_conv2d_geometry *g, int m, const float *x,
                                      const float *kernel, const float *bias, int relu,
                                      float *out, float *cache, float *workspace);

#endif
