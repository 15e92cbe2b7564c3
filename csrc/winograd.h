/* Winograd F(m x m, 3x3) convolution, m = 2 or 4 (Lavin & Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016), for 3x3 stride-1 kernels; used by conv2d.c.
 *
 * The output is cut into m x m tiles; tile t reads an a x a input patch d_t (a = m + 2,
 * per channel) and
 *     y_t = A^T [ sum_c (G g_cf G^T) * (B^T d_tc B) ] A          (* = element-wise)
 * With V[xi](t, c) = (B^T d_tc B)[xi] and U[xi](c, f) = (G g_cf G^T)[xi], xi < a * a, the
 * sum over c is a * a GEMMs  M[xi] = V[xi] @ U[xi]  of shape (tiles, C) @ (C, F):
 * F(2x2, 3x3) does 16 multiplications per tile (4 outputs) and (c, f) instead of 36,
 * F(4x4, 3x3) 36 per 16 outputs instead of 144, at the price of element-wise transforms
 * (vectorised over the contiguous NHWC channels) and, for m = 4, constants such as 1/6
 * and 1/24 that are not exact in binary (errors a few times F(2x2)'s, still ~1e-6
 * relative on unit-scale data).
 */
#ifndef FC_WINOGRAD_H
#define FC_WINOGRAD_H
#include "fc_common.h"

typedef struct {
    int m;                      /* output tile size: 2 or 4 */
    int64_t n, h, w, cin;       /* input (N, H, W, Cin) */
    int64_t cout;               /* output channels */
    int64_t oh, ow;             /* output (N, OH, OW, Cout) */
    int64_t pad_top, pad_left;  /* zeros before the first input row / column */
    int64_t ch, cw;             /* outputs computed: rows < ch <= oh, columns < cw <= ow
                                 * (the rest of the (oh, ow) output is not written) */
    int pool;                   /* fc_wino_conv max-pools 2x2 windows (stride 2) of the
                                 * ch x cw outputs: out is then (N, ch / 2, cw / 2, Cout);
                                 * needs ch % m == cw % m == 0 and ch * cw * Cout < 2^31.
                                 * fc_wino_kernel_grad ignores it. */
    int32_t *pool_indices;      /* with pool: NULL, or (N, ch / 2, cw / 2, Cout) offsets
                                 * within one (ch, cw, Cout) image of each window's first
                                 * maximum (row-major), as max_pool2d gives */
} fc_wino_problem;

/* Transformed values per (tile, channel): (m + 2)^2. */
static inline int64_t fc_wino_points(int m)
{
    return (int64_t)(m + 2) * (m + 2);
}

/* Floats of scratch per tile in flight: its V and M rows for the (m + 2)^2 matrices. */
static inline int64_t fc_wino_tile_floats(int m, int64_t cin, int64_t cout)
{
    return fc_wino_points(m) * (cin + cout);
}

/* Tiles (m x m output blocks) of an output of oh x ow pixels, per image. */
int64_t fc_wino_tiles(int m, int64_t oh, int64_t ow);

/* Floats of scratch fc_wino_conv and fc_wino_kernel_grad need to keep chunk_tiles tiles
 * of an m-tile problem with these channels in flight (zeros for the padding, the tiles,
 * and the packed kernels). */
int64_t fc_wino_scratch_size(int m, int64_t cin, int64_t cout, int64_t chunk_tiles);

/* u ((m + 2)^2, C, F) = G g G^T for every (c, f) of kernel (3, 3, C, F); threads split C. */
void fc_wino_transform_kernel(int m, int64_t c, int64_t f, const float *kernel, float *u);

/* out (N, OH, OW, Cout) = act(correlation of x with the 3x3 kernel + bias) for the
 * outputs p->ch x p->cw, with u = fc_wino_transform_kernel(p->m, Cin, Cout, kernel) and
 * prepacked its GEMM operands as fc_wino_pack gives them (kept between calls), or NULL to
 * pack them here (the same bits). bias (Cout,) may be NULL; relu fuses max(., 0). scratch holds
 * fc_wino_scratch_size(p->m, cin, cout, chunk_tiles) floats, chunk_tiles >= 1.
 * Threads split the tiles; every output's arithmetic is the same whoever computes it, so
 * results are bitwise identical for any thread count. Returns FC_OK or FC_ENOMEM. */
int fc_wino_conv(const fc_wino_problem *p, const float *x, const float *u,
                 const float *prepacked, const float *bias, int relu, float *out,
                 float *scratch, int64_t chunk_tiles);

/* fc_wino_conv's GEMM B operands (the U matrices) packed once for reuse: packed holds
 * fc_wino_packed_size(m, cin, cout) floats, 64-byte aligned (0: these shapes are not
 * packed, pass NULL as prepacked). */
int64_t fc_wino_packed_size(int m, int64_t cin, int64_t cout);
void fc_wino_pack(int m, int64_t cin, int64_t cout, const float *u, float *packed);

/* dkernel (3, 3, Cin, Cout) = the kernel gradient of the conv p for input x and output
 * gradient dy (N, OH, OW, Cout), summed over the batch; overwritten. du holds
 * parts * (m + 2)^2 * Cin * Cout floats (the partial sums of the tile ranges), scratch as
 * for fc_wino_conv. The result depends on (p, parts, chunk_tiles) only, not on the
 * thread count. Returns FC_OK or FC_ENOMEM. */
int fc_wino_kernel_grad(const fc_wino_problem *p, const float *x, const float *dy,
                        float *dkernel, float *du, int parts, float *scratch,
                        int64_t chunk_tiles);

/* Grouped variants (G = groups divides cin and cout; group g's outputs read only its
 * input channels): u = fc_wino_transform_kernel(p->m, cin / G, cout, kernel) for a
 * (3, 3, cin / G, cout) kernel, dkernel (3, 3, cin / G, cout), du parts * (m + 2)^2 *
 * (cin / G) * cout floats; otherwise as fc_wino_conv and fc_wino_kernel_grad (scratch
 * fc_wino_scratch_size(p->m, cin, cout, chunk_tiles) floats; the same bits for any
 * thread count). The GEMMs are (m + 2)^2 * G block-diagonal ones. */
int fc_wino_conv_grouped(const fc_wino_problem *p, int64_t groups, const float *x,
                         const float *u, const float *bias, int relu, float *out,
                         float *scratch, int64_t chunk_tiles);
int fc_wino_kernel_grad_grouped(const fc_wino_problem *p, int64_t groups, const float *x,
                                const float *dy, float *dkernel, float *du, int parts,
                                float *scratch, int64_t chunk_tiles);

#endif
