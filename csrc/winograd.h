/* Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016) for 3x3 stride-1 kernels; used by conv2d.c.
 *
 * The output is cut into 2x2 tiles; tile t reads a 4x4 input patch d_t (per channel) and
 *     y_t = A^T [ sum_c (G g_cf G^T) * (B^T d_tc B) ] A          (* = element-wise)
 * With V[xi](t, c) = (B^T d_tc B)[xi] and U[xi](c, f) = (G g_cf G^T)[xi], xi = 0..15, the
 * sum over c is 16 GEMMs  M[xi] = V[xi] @ U[xi]  of shape (tiles, C) @ (C, F): 16
 * multiplications per tile (4 outputs) and (c, f) instead of 36, at the price of cheap
 * element-wise transforms (vectorised over the contiguous NHWC channels).
 */
#ifndef FC_WINOGRAD_H
#define FC_WINOGRAD_H
#include "fc_common.h"

typedef struct {
    int64_t n, h, w, cin;       /* input (N, H, W, Cin) */
    int64_t cout;               /* output channels */
    int64_t oh, ow;             /* output (N, OH, OW, Cout) */
    int64_t pad_top, pad_left;  /* zeros before the first input row / column */
    int64_t ch, cw;             /* outputs computed: rows < ch <= oh, columns < cw <= ow
                                 * (the rest of the (oh, ow) output is not written) */
} fc_wino_problem;

/* Floats of scratch per tile in flight: its V and M rows for the 16 matrices. */
#define FC_WINO_TILE_FLOATS(cin, cout) (16 * ((cin) + (cout)))

/* Tiles (2x2 output blocks) of an output of oh x ow pixels, per image. */
int64_t fc_wino_tiles(int64_t oh, int64_t ow);

/* Floats of scratch fc_wino_conv needs to keep chunk_tiles tiles in flight (zeros for
 * the padding, then the tiles). */
int64_t fc_wino_scratch_size(int64_t cin, int64_t cout, int64_t chunk_tiles);

/* u (16, C, F) = G g G^T for every (c, f) of kernel (3, 3, C, F); threads split C. */
void fc_wino_transform_kernel(int64_t c, int64_t f, const float *kernel, float *u);

/* out (N, OH, OW, Cout) = act(correlation of x with the 3x3 kernel + bias), every output
 * written. Plain (flipped == 0): u comes from the (3, 3, Cin, Cout) kernel. flipped != 0:
 * u comes from a (3, 3, Cout, Cin) kernel k, and the kernel used is k rotated by 180
 * degrees with its channel axes swapped (the input gradient of the conv that k is for).
 * bias (Cout,) may be NULL; relu fuses max(., 0). scratch holds
 * fc_wino_scratch_size(cin, cout, chunk_tiles) floats, chunk_tiles >= 1.
 * Threads split the tiles; every output's arithmetic is the same whoever computes it, so
 * results are bitwise identical for any thread count. Returns FC_OK or FC_ENOMEM. */
int fc_wino_conv(const fc_wino_problem *p, const float *x, const float *u, int flipped,
                 const float *bias, int relu, float *out, float *scratch, int64_t chunk_tiles);

/* dkernel (3, 3, Cin, Cout) = the kernel gradient of the conv p (plain orientation) for
 * input x and output gradient dy (N, OH, OW, Cout), summed over the batch; overwritten.
 * du holds parts * 16 * Cin * Cout floats (the partial sums of the tile ranges), scratch
 * as for fc_wino_conv. The result depends on (p, parts, chunk_tiles) only, not on the
 * thread count. Returns FC_OK or FC_ENOMEM. */
int fc_wino_kernel_grad(const fc_wino_problem *p, const float *x, const float *dy,
                        float *dkernel, float *du, int parts, float *scratch,
                        int64_t chunk_tiles);

#endif
