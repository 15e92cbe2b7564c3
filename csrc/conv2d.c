/* 2-D convolution forward/backward as im2col + GEMM (see conv2d.h for the method), or,
 * for 3x3 stride-1 kernels where it measured faster, Winograd F(2x2, 3x3) or F(4x4, 3x3)
 * (winograd.c; fc_conv2d_algorithm below decides).
 *
 * Threading, and why 1 and N threads agree bitwise:
 *  - forward: each thread owns a contiguous range of output lines and runs im2col, a
 *    serial GEMM and the bias/ReLU epilogue on it, piece by piece, in its own slice of the
 *    workspace; no synchronisation. An output row's value does not depend on which thread
 *    computed it (the GEMM blocks its sum over K by K alone).
 *  - backward_input: each thread owns whole images (so dx writes never collide): dcols =
 *    dy @ W^T with a serial GEMM, then a scatter-add into dx. With fewer images than
 *    threads, the chunk's dcols rows are split instead and dx is gathered by input line.
 *    Both add each dx element's terms in the same order (output line, then ow).
 *  - backward_kernel: the output lines are cut into FC_CONV2D_DW_PARTS fixed parts, each
 *    summed (serial GEMMs, beta = 1 after its first piece) into its own partial dW; the
 *    partials are added in part order. Parts and pieces depend on the geometry only.
 *  - backward_bias: threads split the columns; each column is summed in row order.
 *  - direct (small K): the forward splits output lines like im2col's; the kernel gradient
 *    sums FC_CONV2D_DIRECT_DW_PARTS fixed line ranges into partials added in part order;
 *    the fused conv+relu+max-pool does the same over pooled lines.
 *  - Winograd: threads split the output tiles of the forward / input gradient (a
 *    tile's arithmetic does not depend on who computes it); the kernel gradient sums
 *    FC_CONV2D_WINO_DW_PARTS fixed tile ranges into partials added in part order.
 */
#include <string.h>
#include "conv2d.h"
#include "conv2d_direct.h"
#include "gemm.h"
#include "winograd.h"

/* Column rows per chunk, in floats (2 MiB): the workspace. The dW reduction walks it in
 * DW_PARTS slices; forward / backward_input give each thread a slice of at most
 * PIECE_FLOATS (512 KiB), which stays in its core's L2 between im2col and the GEMM. */
#ifndef FC_CONV2D_CHUNK_FLOATS
#define FC_CONV2D_CHUNK_FLOATS (1 << 19)
#endif
#ifndef FC_CONV2D_PIECE_FLOATS
#define FC_CONV2D_PIECE_FLOATS (1 << 17)
#endif

static int64_t cols_k(const fc_conv2d_geometry *g)
{
    return g->kh * g->kw * g->c;
}

/* True when the column matrix (N*OH*OW, K) is x itself, read in place. */
static int im2col_is_identity(const fc_conv2d_geometry *g)
{
    if (g->pad_top != 0 || g->pad_left != 0)
        return 0;
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1)
        return g->oh == g->h && g->ow == g->w;
    /* one window covering the whole image: the image is its own column row */
    return g->kh == g->h && g->kw == g->w && g->oh == 1 && g->ow == 1;
}

int64_t fc_conv2d_chunk_lines(const fc_conv2d_geometry *g)
{
    int64_t lines = g->n * g->oh;
    int64_t per_line = g->ow * cols_k(g);
    int64_t chunk = per_line > 0 ? FC_CONV2D_CHUNK_FLOATS / per_line : lines;
    if (chunk < 1)
        chunk = 1;
    if (chunk > lines)
        chunk = lines;
    return chunk;
}

/* The kernel gradient sums over the whole batch. To let threads work on it with serial
 * GEMMs, the output lines are cut into a fixed number of parts (contiguous line ranges),
 * each summed into its own partial dW; the partials are added in part order at the end.
 * The part count depends on the geometry only, never on the thread count. */
#ifndef FC_CONV2D_DW_PARTS
#define FC_CONV2D_DW_PARTS 2
#endif
/* Cap on the floats the extra partial sums may take (larger kernels use fewer parts). */
#define FC_CONV2D_PARTIAL_FLOATS (1 << 18)

/* Direct small-K kernels: K limit, the kernel gradient's part count (its partials are
 * tiny: K*F floats) and the column floats per piece (in L1/L2 while its tiles pass). */
#ifndef FC_CONV2D_DIRECT_MAX_K
#define FC_CONV2D_DIRECT_MAX_K 64
#endif
#ifndef FC_CONV2D_DIRECT_DW_PARTS
#define FC_CONV2D_DIRECT_DW_PARTS 16
#endif
#ifndef FC_CONV2D_DIRECT_PIECE_FLOATS
#define FC_CONV2D_DIRECT_PIECE_FLOATS 2048
#endif

int fc_conv2d_direct_applies(const fc_conv2d_geometry *g)
{
    return cols_k(g) <= FC_CONV2D_DIRECT_MAX_K;
}

/* True when no window needs padding: the direct kernels then read x itself (a window's
 * KH runs of KW*C floats), with no im2col copy. */
static int direct_reads_x(const fc_conv2d_geometry *g)
{
    return g->pad_top == 0 && g->pad_left == 0 && (g->oh - 1) * g->sh + g->kh <= g->h
           && (g->ow - 1) * g->sw + g->kw <= g->w;
}

/* Output line l's first window corner in x, for direct_reads_x geometries. */
static const float *direct_line_origin(const fc_conv2d_geometry *g, const float *x, int64_t l)
{
    const int64_t n = l / g->oh, oh = l % g->oh;
    return x + (n * g->h + oh * g->sh) * g->w * g->c;
}

static int64_t dw_parts(const fc_conv2d_geometry *g)
{
    const int64_t kf = cols_k(g) * g->f;
    int64_t parts = fc_conv2d_direct_applies(g) ? FC_CONV2D_DIRECT_DW_PARTS : FC_CONV2D_DW_PARTS;
    if (im2col_is_identity(g) || kf <= 0)
        return 1;
    if (parts > fc_conv2d_chunk_lines(g)) /* every part needs a slice of >= 1 line */
        parts = fc_conv2d_chunk_lines(g);
    if ((parts - 1) * kf > FC_CONV2D_PARTIAL_FLOATS)
        parts = 1 + FC_CONV2D_PARTIAL_FLOATS / kf;
    return parts < 1 ? 1 : parts;
}

static int64_t im2col_workspace_size(const fc_conv2d_geometry *g)
{
    if (im2col_is_identity(g) || g->n <= 0)
        return 0;
    /* one chunk of column rows, then the partial kernel gradients */
    return fc_conv2d_chunk_lines(g) * g->ow * cols_k(g) + (dw_parts(g) - 1) * cols_k(g) * g->f;
}

/* ---------------------------------------------------------------------------------- */
/* Winograd F(2x2, 3x3) and F(4x4, 3x3) (winograd.c). Workspace: U (P, C, F) or the
 * kernel gradient's partial sums, the rotated kernel of the input gradient, then a chunk
 * of tiles in flight. Its threading is winograd.c's: threads split the tiles of the
 * forward / input gradient (each output computed identically whoever owns it), and the
 * kernel gradient sums fixed tile ranges, as backward_kernel below does with output
 * lines.                                                                               */

/* Floats of tile scratch (V and M rows) the Winograd passes share among their threads. */
#ifndef FC_CONV2D_WINO_CHUNK_FLOATS
#define FC_CONV2D_WINO_CHUNK_FLOATS (1 << 19)
#endif

int fc_conv2d_winograd_applies(const fc_conv2d_geometry *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1;
}

/* Tiles of the chunk for tile size m: enough for the larger of the forward (OH x OW) and
 * input-gradient (H x W) outputs, capped by FC_CONV2D_WINO_CHUNK_FLOATS (but >= 1). */
static int64_t wino_chunk_tiles(const fc_conv2d_geometry *g, int m)
{
    const int64_t tile_floats = fc_wino_tile_floats(m, g->c, g->f);
    const int64_t t_fwd = fc_wino_tiles(m, g->oh, g->ow), t_bwd = fc_wino_tiles(m, g->h, g->w);
    const int64_t tiles = g->n * (t_fwd > t_bwd ? t_fwd : t_bwd);
    int64_t chunk = FC_CONV2D_WINO_CHUNK_FLOATS / tile_floats;
    if (chunk > tiles)
        chunk = tiles;
    return chunk < 1 ? 1 : chunk;
}

/* The Winograd kernel gradient sums its tiles in this many fixed parts (threads work on
 * parts), fewer when the partial sums would take more than FC_CONV2D_PARTIAL_FLOATS. */
#ifndef FC_CONV2D_WINO_DW_PARTS
#define FC_CONV2D_WINO_DW_PARTS 2
#endif

static int wino_dw_parts(const fc_conv2d_geometry *g, int m)
{
    const int64_t ucf = fc_wino_points(m) * g->c * g->f;
    int64_t parts = FC_CONV2D_WINO_DW_PARTS;
    if (ucf > 0 && (parts - 1) * ucf > FC_CONV2D_PARTIAL_FLOATS)
        parts = 1 + FC_CONV2D_PARTIAL_FLOATS / ucf;
    return parts < 1 ? 1 : (int)parts;
}

/* Floats before the tile scratch: U or the partial sums, then the rotated kernel. */
static int64_t wino_head_floats(const fc_conv2d_geometry *g, int m)
{
    return wino_dw_parts(g, m) * fc_wino_points(m) * g->c * g->f + 9 * g->c * g->f;
}

/* The largest need of either tile size and of either direction (the input gradient
 * swaps the channels). */
static int64_t wino_workspace_size(const fc_conv2d_geometry *g)
{
    int64_t most = 0;
    if (!fc_conv2d_winograd_applies(g) || g->n <= 0)
        return 0;
    for (int m = 2; m <= 4; m += 2) {
        const int64_t chunk = wino_chunk_tiles(g, m);
        const int64_t a = fc_wino_scratch_size(m, g->c, g->f, chunk);
        const int64_t b = fc_wino_scratch_size(m, g->f, g->c, chunk);
        const int64_t need = wino_head_floats(g, m) + (a > b ? a : b);
        if (need > most)
            most = need;
    }
    return most;
}

int64_t fc_conv2d_workspace_size(const fc_conv2d_geometry *g)
{
    const int64_t a = im2col_workspace_size(g), b = wino_workspace_size(g);
    return a > b ? a : b;
}

/* Auto choice, from measurements on a 2-core Zen 3 (fastcnn's GEMM; batch 32, C and F in
 * 3..256, 3x3 to 32x32 images). Winograd wins when
 *  - its GEMMs are not too thin: C >= WINO_MIN_C and F >= WINO_MIN_F (C = 8 loses with
 *    F = 64, C = 3 always loses), and for the kernel gradient, whose GEMMs are C x F
 *    with the tiles as the sum, also C * F >= WINO_DW_MIN_CF (16 x 16 now wins with
 *    F(4x4) tiles: ResNet-20's 32x32x16 layers, see the commit that set 256);
 *  - the partial edge tiles do not waste too much of its saving: its multiplications
 *    (P per tile of the pass's output) are at most WINO_MAX_COST of the GEMM's (9 per
 *    output pixel of the forward). This rules out the input gradient of small `valid`
 *    layers (6x6 -> 4x4: a 6x6 dx needs 9 F(2x2) tiles = 144 vs 16 * 9 = 144).
 * F(4x4, 3x3) is taken over F(2x2, 3x3) when its cost is at most WINO_F4_MAX_COST of
 * F(2x2)'s, the cost of a tile size being P * (N * tiles + WINO_FIXED_TILES): a call also
 * transforms and packs P kernels (or sums P partial gradients), worth about 128 tiles.
 * That fits the measured ratios at 2 threads (F(4x4) / F(2x2) time): 13x13 -> 12x12,
 * 32 -> 64 channels: 0.75 at batch 32 (model 0.74); 6x6 -> 4x4, 64 -> 64: forward 1.42
 * at batch 32 (model 1.41), 0.87 at batch 128 (model 0.91). */
#ifndef FC_CONV2D_WINO_MIN_C
#define FC_CONV2D_WINO_MIN_C 16
#endif
#ifndef FC_CONV2D_WINO_MIN_F
#define FC_CONV2D_WINO_MIN_F 8
#endif
#ifndef FC_CONV2D_WINO_DW_MIN_CF
#define FC_CONV2D_WINO_DW_MIN_CF 256
#endif
#ifndef FC_CONV2D_WINO_MAX_COST
#define FC_CONV2D_WINO_MAX_COST 0.75
#endif
#ifndef FC_CONV2D_WINO_F4_MAX_COST
#define FC_CONV2D_WINO_F4_MAX_COST 0.9
#endif
#ifndef FC_CONV2D_WINO_FIXED_TILES
#define FC_CONV2D_WINO_FIXED_TILES 128
#endif

/* Winograd multiplications per (c, f) of one image, tile size m, for the pass's output. */
static double wino_cost(const fc_conv2d_geometry *g, int pass, int m)
{
    const int64_t tiles = pass == FC_CONV2D_PASS_BACKWARD_INPUT ? fc_wino_tiles(m, g->h, g->w)
                                                                : fc_wino_tiles(m, g->oh, g->ow);
    return (double)fc_wino_points(m) * (double)tiles;
}

/* The tile size (FC_CONV2D_WINOGRAD_F2 or _F4) measured faster for this pass. */
static int wino_best_tile(const fc_conv2d_geometry *g, int pass)
{
    const double n = (double)(g->n > 0 ? g->n : 1), fixed = FC_CONV2D_WINO_FIXED_TILES;
    const double f2 = wino_cost(g, pass, 2) * n + 16.0 * fixed;
    const double f4 = wino_cost(g, pass, 4) * n + 36.0 * fixed;
    return f4 <= FC_CONV2D_WINO_F4_MAX_COST * f2 ? FC_CONV2D_WINOGRAD_F4 : FC_CONV2D_WINOGRAD_F2;
}

/* Auto picks the direct kernels for K <= DIRECT_AUTO_K. Measured (1 thread, batch 32, 3x3,
 * forward / kernel gradient, ms, direct vs im2col): C=1 F=32 0.13/0.18 vs 0.30/0.32;
 * C=3 F=32 0.39/0.48 vs 0.66/0.67; C=4 0.52/0.60 vs 0.77/0.76; C=7 (K=63, 16x16 images)
 * 0.21/0.23 vs 0.27/0.28: direct wins up to the limit. */
#ifndef FC_CONV2D_DIRECT_AUTO_K
#define FC_CONV2D_DIRECT_AUTO_K 64
#endif

/* Auto's forward also picks the direct kernel for few input channels (an RGB stem, 7x7x3:
 * K = 147) when no window needs padding, so it reads x in place with no im2col copy.
 * Measured (1 thread, batch 100, 7x7/2 3->16 on 38x38, ms): direct 1.22 vs im2col 2.14;
 * with padding to fill (its lines go through im2col) no gain, so not then. */
#ifndef FC_CONV2D_DIRECT_STEM_MAX_K
#define FC_CONV2D_DIRECT_STEM_MAX_K 256
#endif
#define FC_CONV2D_DIRECT_STEM_MAX_C 4

int fc_conv2d_algorithm(const fc_conv2d_geometry *g, int pass, int requested)
{
    if (requested == FC_CONV2D_AUTO && pass == FC_CONV2D_PASS_FORWARD
        && g->c <= FC_CONV2D_DIRECT_STEM_MAX_C && cols_k(g) <= FC_CONV2D_DIRECT_STEM_MAX_K
        && direct_reads_x(g))
        return FC_CONV2D_DIRECT;
    const int direct_pass = pass != FC_CONV2D_PASS_BACKWARD_INPUT && fc_conv2d_direct_applies(g);
    if (requested == FC_CONV2D_DIRECT)
        return direct_pass ? FC_CONV2D_DIRECT : FC_CONV2D_IM2COL;
    if (requested == FC_CONV2D_AUTO && direct_pass && cols_k(g) <= FC_CONV2D_DIRECT_AUTO_K)
        return FC_CONV2D_DIRECT;
    if (requested == FC_CONV2D_IM2COL || !fc_conv2d_winograd_applies(g))
        return FC_CONV2D_IM2COL;
    if (requested == FC_CONV2D_WINOGRAD_F2 || requested == FC_CONV2D_WINOGRAD_F4)
        return requested;
    const int tile = wino_best_tile(g, pass);
    if (requested == FC_CONV2D_WINOGRAD)
        return tile;
    if (g->c < FC_CONV2D_WINO_MIN_C || g->f < FC_CONV2D_WINO_MIN_F)
        return FC_CONV2D_IM2COL;
    if (pass == FC_CONV2D_PASS_BACKWARD_KERNEL && g->c * g->f < FC_CONV2D_WINO_DW_MIN_CF)
        return FC_CONV2D_IM2COL;
    const double wino = wino_cost(g, pass, tile == FC_CONV2D_WINOGRAD_F4 ? 4 : 2);
    return wino <= FC_CONV2D_WINO_MAX_COST * 9.0 * (double)(g->oh * g->ow) ? tile
                                                                           : FC_CONV2D_IM2COL;
}

/* Tile size of a Winograd algorithm, 0 for the others. */
static int wino_tile_size(int algo)
{
    return algo == FC_CONV2D_WINOGRAD_F4 ? 4 : algo == FC_CONV2D_WINOGRAD_F2 ? 2 : 0;
}


/* ---------------------------------------------------------------------------------- */
/* im2col / col2im, one line at a time (line = n*OH + oh)                               */

/* The copies/adds below are plain C loops; each line routine is compiled twice, portable
 * and (under FC_TARGET_AVX2) with 256-bit vectors, from one always-inlined body. Both do
 * the same element-wise operations in the same order, so they agree bitwise. */
#if defined(__GNUC__) || defined(__clang__)
#define CONV_INLINE inline __attribute__((always_inline))
#else
#define CONV_INLINE inline
#endif

/* dst[0:n] = src[0:n]. Short runs (the 9-float segments of a 3x3 kernel on 3 channels)
 * use two overlapping fixed-size copies, which compile to a few moves instead of a call. */
static CONV_INLINE void copy_floats(float *FC_RESTRICT dst, const float *FC_RESTRICT src, int64_t n)
{
    if (n >= 8 && n <= 16) {
        memcpy(dst, src, 8 * sizeof(float));
        memcpy(dst + n - 8, src + n - 8, 8 * sizeof(float));
    } else if (n >= 4 && n < 8) {
        memcpy(dst, src, 4 * sizeof(float));
        memcpy(dst + n - 4, src + n - 4, 4 * sizeof(float));
    } else if (n < 4) { /* (a loop here would become a memmove call) */
        if (n > 0)
            dst[0] = src[0];
        if (n > 1)
            dst[1] = src[1];
        if (n > 2)
            dst[2] = src[2];
    } else {
        memcpy(dst, src, (size_t)n * sizeof(float));
    }
}

/* The OW column rows of output line l, each K long, into dst (OW, K). */
static CONV_INLINE void im2col_line_body(const fc_conv2d_geometry *g,
                                         const float *FC_RESTRICT x, int64_t l,
                                         float *FC_RESTRICT dst)
{
    const int64_t H = g->h, W = g->w, C = g->c, KW = g->kw, OW = g->ow;
    const int64_t K = cols_k(g), seg = KW * C, n = l / g->oh, oh = l % g->oh;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        const int64_t ih = oh * g->sh - g->pad_top + kh;
        if (ih < 0 || ih >= H) {
            for (int64_t ow = 0; ow < OW; ow++)
                memset(dst + ow * K + kh * seg, 0, (size_t)seg * sizeof(float));
            continue;
        }
        const float *src_row = x + (n * H + ih) * W * C;
        for (int64_t ow = 0; ow < OW; ow++) {
            float *d = dst + ow * K + kh * seg;
            const int64_t iw0 = ow * g->sw - g->pad_left;
            if (iw0 >= 0 && iw0 + KW <= W) { /* the KW*C segment is contiguous in x too */
                copy_floats(d, src_row + iw0 * C, seg);
                continue;
            }
            for (int64_t kw = 0; kw < KW; kw++) {
                const int64_t iw = iw0 + kw;
                if (iw < 0 || iw >= W)
                    memset(d + kw * C, 0, (size_t)C * sizeof(float));
                else
                    copy_floats(d + kw * C, src_row + iw * C, C);
            }
        }
    }
}

static CONV_INLINE void add_floats(float *FC_RESTRICT dst, const float *FC_RESTRICT src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* dx_row (one input row, W x C) += one kernel row's run src (KW x C) of a window starting
 * at column iw0; columns outside [0, W) (padding) are dropped. */
static CONV_INLINE void add_window_run(float *FC_RESTRICT dx_row, const float *FC_RESTRICT src,
                                       int64_t iw0, int64_t KW, int64_t C, int64_t W)
{
    if (iw0 >= 0 && iw0 + KW <= W) { /* the KW*C run is contiguous in dx too */
        add_floats(dx_row + iw0 * C, src, KW * C);
        return;
    }
    for (int64_t kw = 0; kw < KW; kw++) {
        const int64_t iw = iw0 + kw;
        if (iw >= 0 && iw < W)
            add_floats(dx_row + iw * C, src + kw * C, C);
    }
}

/* Order of the col2im sums. Every dx element receives its contributions ordered by output
 * line (ascending), then ow (ascending): the scatter (by output line) and the gather (by
 * input line, kh descending) below both follow it, so they agree bitwise. */

/* dx += col2im of output line l's column rows drows (OW, K); the caller owns image l/OH. */
static CONV_INLINE void col2im_scatter_body(const fc_conv2d_geometry *g,
                                            const float *FC_RESTRICT drows, int64_t l,
                                            float *FC_RESTRICT dx)
{
    const int64_t H = g->h, W = g->w, C = g->c, KW = g->kw, OW = g->ow;
    const int64_t K = cols_k(g), seg = KW * C, sw = g->sw, pl = g->pad_left;
    const int64_t n = l / g->oh, oh = l % g->oh;
    for (int64_t kh = 0; kh < g->kh; kh++) {
        const int64_t ih = oh * g->sh - g->pad_top + kh;
        if (ih < 0 || ih >= H)
            continue;
        float *dx_row = dx + (n * H + ih) * W * C;
        for (int64_t ow = 0; ow < OW; ow++)
            add_window_run(dx_row, drows + ow * K + kh * seg, ow * sw - pl, KW, C, W);
    }
}

/* Input line gl = n*H + ih of dx += its share of col2im(dcols), where dcols holds the
 * column rows of output lines [l0, l1). A gather: only the line's owner writes it. */
static CONV_INLINE void col2im_gather_body(const fc_conv2d_geometry *g,
                                           const float *FC_RESTRICT dcols, int64_t l0,
                                           int64_t l1, int64_t gl, float *FC_RESTRICT dx)
{
    const int64_t H = g->h, W = g->w, C = g->c, KW = g->kw, OH = g->oh, OW = g->ow;
    const int64_t K = cols_k(g), seg = KW * C, sh = g->sh, sw = g->sw, pl = g->pad_left;
    const int64_t n = gl / H, ih = gl % H;
    float *dx_row = dx + gl * W * C;
    for (int64_t kh = g->kh - 1; kh >= 0; kh--) { /* output lines ascending */
        const int64_t t = ih + g->pad_top - kh;
        if (t < 0 || t % sh != 0)
            continue;
        const int64_t oh = t / sh, line = n * OH + oh;
        if (oh >= OH || line < l0 || line >= l1)
            continue;
        const float *src_line = dcols + (line - l0) * OW * K + kh * seg;
        for (int64_t ow = 0; ow < OW; ow++)
            add_window_run(dx_row, src_line + ow * K, ow * sw - pl, KW, C, W);
    }
}

typedef struct {
    void (*im2col)(const fc_conv2d_geometry *g, const float *x, int64_t l, float *dst);
    void (*scatter)(const fc_conv2d_geometry *g, const float *drows, int64_t l, float *dx);
    void (*gather)(const fc_conv2d_geometry *g, const float *dcols, int64_t l0, int64_t l1,
                   int64_t gl, float *dx);
} line_ops;

#define DEFINE_LINE_OPS(SUFFIX, ATTR)                                                       \
    ATTR static void im2col_line_##SUFFIX(const fc_conv2d_geometry *g, const float *x,      \
                                          int64_t l, float *dst)                            \
    {                                                                                       \
        im2col_line_body(g, x, l, dst);                                                     \
    }                                                                                       \
    ATTR static void scatter_line_##SUFFIX(const fc_conv2d_geometry *g, const float *drows, \
                                           int64_t l, float *dx)                            \
    {                                                                                       \
        col2im_scatter_body(g, drows, l, dx);                                               \
    }                                                                                       \
    ATTR static void gather_line_##SUFFIX(const fc_conv2d_geometry *g, const float *dcols,  \
                                          int64_t l0, int64_t l1, int64_t gl, float *dx)    \
    {                                                                                       \
        col2im_gather_body(g, dcols, l0, l1, gl, dx);                                       \
    }

DEFINE_LINE_OPS(generic, )
#ifdef FC_HAVE_AVX2_PATH
DEFINE_LINE_OPS(avx2, FC_TARGET_AVX2)
#endif

static line_ops pick_line_ops(void)
{
    line_ops ops = {im2col_line_generic, scatter_line_generic, gather_line_generic};
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        ops.im2col = im2col_line_avx2;
        ops.scatter = scatter_line_avx2;
        ops.gather = gather_line_avx2;
    }
#endif
    return ops;
}

/* Direct forward of output line l into out_line (OW, F): from x where no window needs
 * padding, else through cols (OW x K floats of scratch) filled by im2col. */
static void direct_forward_line(const fc_conv2d_geometry *g, const line_ops *ops,
                                const float *x, int64_t l, const float *kernel,
                                const float *bias, int relu, float *cols, float *out_line)
{
    const int64_t K = cols_k(g), C = g->c;
    if (direct_reads_x(g)) {
        fc_direct_forward_rows(g->ow, g->f, K, direct_line_origin(g, x, l), g->sw * C,
                               g->kw * C, g->w * C, kernel, bias, relu, out_line);
        return;
    }
    ops->im2col(g, x, l, cols);
    fc_direct_forward_rows(g->ow, g->f, K, cols, K, K, 0, kernel, bias, relu, out_line);
}

/* dW (+)= the kernel gradient of output lines [l0, l1) given their dy rows (F apart). */
static void direct_kernel_grad_lines(const fc_conv2d_geometry *g, const line_ops *ops,
                                     const float *x, int64_t l0, int64_t l1, const float *dy,
                                     float *cols, float *dw, int accumulate)
{
    const int64_t K = cols_k(g), C = g->c, F = g->f, OW = g->ow;
    if (direct_reads_x(g)) {
        for (int64_t l = l0; l < l1; l++)
            fc_direct_kernel_grad_rows(OW, F, K, direct_line_origin(g, x, l), g->sw * C,
                                       g->kw * C, g->w * C, dy + (l - l0) * OW * F, F, dw, F,
                                       accumulate || l > l0);
        return;
    }
    for (int64_t l = l0; l < l1; l++)
        ops->im2col(g, x, l, cols + (l - l0) * OW * K);
    fc_direct_kernel_grad_rows((l1 - l0) * OW, F, K, cols, K, K, 0, dy, F, dw, F, accumulate);
}


/* out rows (rows, F): += bias, then max(., 0) when relu. */
static void bias_relu_rows(float *FC_RESTRICT out, int64_t rows, int64_t F,
                           const float *FC_RESTRICT bias, int relu)
{
    if (bias == NULL && !relu)
        return;
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * F;
        if (bias != NULL)
            for (int64_t j = 0; j < F; j++)
                o[j] += bias[j];
        if (relu)
            for (int64_t j = 0; j < F; j++)
                o[j] = o[j] > 0.0f ? o[j] : 0.0f;
    }
}

/* Hands out the caller's workspace, or allocates one (freed by workspace_release). */
static float *workspace_acquire(const fc_conv2d_geometry *g, float *workspace, int *owned)
{
    *owned = 0;
    if (workspace != NULL || fc_conv2d_workspace_size(g) == 0)
        return workspace;
    *owned = 1;
    return (float *)fc_malloc((size_t)fc_conv2d_workspace_size(g) * sizeof(float));
}

static void workspace_release(float *ws, int owned)
{
    if (owned)
        fc_free(ws);
}

/* out (N, H, W, C): zero every row >= ch and every column >= cw. */
static void zero_outside(float *out, int64_t N, int64_t H, int64_t W, int64_t C, int64_t ch,
                         int64_t cw)
{
    int64_t n;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * H * W * C > 65536)
    for (n = 0; n < N; n++) {
        float *img = out + n * H * W * C;
        for (int64_t h = 0; h < ch; h++)
            memset(img + (h * W + cw) * C, 0, (size_t)((W - cw) * C) * sizeof(float));
        memset(img + ch * W * C, 0, (size_t)((H - ch) * W * C) * sizeof(float));
    }
}

/* kr (3, 3, F, C) = kernel (3, 3, C, F) rotated by 180 degrees with its channel axes
 * swapped: the kernel whose correlation with dy is the input gradient. */
static void rotate_kernel(const fc_conv2d_geometry *g, const float *kernel, float *kr)
{
    const int64_t C = g->c, F = g->f;
    for (int64_t tap = 0; tap < 9; tap++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t f = 0; f < F; f++)
                kr[(tap * F + f) * C + c] = kernel[((8 - tap) * C + c) * F + f];
}

/* The forward (input_grad == 0: out = act(conv(in) + bias), or with pool its 2x2 max-pool
 * and, unless NULL, pool_indices, see fc_wino_problem) or the input gradient (input_grad !=
 * 0: in = dy, out = dx, the correlation of dy, padded by 2 - pad, with the kernel rotated
 * by 180 degrees and transposed) as Winograd with m x m output tiles. u (and packed): the
 * forward's kernel already transformed (and its GEMM operands packed, fc_wino_pack), or
 * NULL to do it here. */
static int winograd_pass(const fc_conv2d_geometry *g, int m, int input_grad, const float *in,
                         const float *kernel, const float *bias, int relu, float *out,
                         int pool, int32_t *pool_indices, float *workspace,
                         const float *u, const float *packed)
{
    int owned, rc;
    float *ws = workspace_acquire(g, workspace, &owned);
    if (ws == NULL)
        return FC_ENOMEM;
    fc_wino_problem p;
    p.m = m;
    p.pool = pool;
    p.pool_indices = pool_indices;
    if (!input_grad) {
        p.n = g->n; p.h = g->h; p.w = g->w; p.cin = g->c; p.cout = g->f;
        p.oh = g->oh; p.ow = g->ow; p.pad_top = g->pad_top; p.pad_left = g->pad_left;
        p.ch = p.oh; p.cw = p.ow;
    } else {
        p.n = g->n; p.h = g->oh; p.w = g->ow; p.cin = g->f; p.cout = g->c;
        p.oh = g->h; p.ow = g->w; p.pad_top = 2 - g->pad_top; p.pad_left = 2 - g->pad_left;
        /* dx rows/columns past the last window (an output_size crop) get no gradient:
         * only the others are computed, the rest is zeroed */
        p.ch = g->oh - 1 - g->pad_top + 3 < g->h ? g->oh - 1 - g->pad_top + 3 : g->h;
        p.cw = g->ow - 1 - g->pad_left + 3 < g->w ? g->ow - 1 - g->pad_left + 3 : g->w;
        if (p.ch < g->h || p.cw < g->w)
            zero_outside(out, g->n, g->h, g->w, g->c, p.ch, p.cw);
    }
    const int64_t head = wino_head_floats(g, m);
    if (input_grad) { /* the rotated kernel goes just before the tile scratch */
        float *kr = ws + head - 9 * g->c * g->f;
        rotate_kernel(g, kernel, kr);
        kernel = kr;
    }
    if (u == NULL) {
        fc_wino_transform_kernel(m, p.cin, p.cout, kernel, ws); /* U (P, Cin, Cout) */
        u = ws;
    }
    rc = fc_wino_conv(&p, in, u, packed, bias, relu, out, ws + head, wino_chunk_tiles(g, m));
    workspace_release(ws, owned);
    return rc;
}

static int winograd_kernel_grad(const fc_conv2d_geometry *g, int m, const float *dy,
                                const float *x, float *dkernel, float *workspace)
{
    int owned, rc;
    const int parts = wino_dw_parts(g, m);
    float *ws = workspace_acquire(g, workspace, &owned);
    if (ws == NULL)
        return FC_ENOMEM;
    fc_wino_problem p;
    p.m = m;
    p.pool = 0;
    p.pool_indices = NULL;
    p.n = g->n; p.h = g->h; p.w = g->w; p.cin = g->c; p.cout = g->f;
    p.oh = g->oh; p.ow = g->ow; p.pad_top = g->pad_top; p.pad_left = g->pad_left;
    p.ch = p.oh; p.cw = p.ow;
    rc = fc_wino_kernel_grad(&p, x, dy, dkernel, ws, parts, ws + wino_head_floats(g, m),
                             wino_chunk_tiles(g, m));
    workspace_release(ws, owned);
    return rc;
}

int fc_conv2d_winograd_relu_maxpool2_tile(const fc_conv2d_geometry *g)
{
    const int m = wino_tile_size(fc_conv2d_algorithm(g, FC_CONV2D_PASS_FORWARD, FC_CONV2D_AUTO));
    if (m == 0 || g->n < 1 || g->oh < m || g->ow < m || g->oh % m || g->ow % m
        || g->oh * g->ow * g->f >= ((int64_t)1 << 31))
        return 0;
    return m;
}

int fc_conv2d_winograd_relu_maxpool2_forward(const fc_conv2d_geometry *g, const float *x,
                                             const float *kernel, const float *bias, float *y,
                                             int32_t *indices, float *workspace)
{
    const int m = fc_conv2d_winograd_relu_maxpool2_tile(g);
    if (m == 0)
        return FC_CONV2D_ENOTFUSED;
    return winograd_pass(g, m, 0, x, kernel, bias, 1, y, 1, indices, workspace, NULL, NULL);
}

/* The cached transform's rule, from measurements at one image (Zen 4, 1 and 2 threads,
 * us, im2col / F(2x2) / F(4x4)): 15x15x32 -> 12x12x64 54.6 / 31.6 / 23.0 at 1 thread,
 * 30.5 / 18.6 / 17.9 at 2; 6x6x64 -> 4x4x64 (one F(4x4) tile, whose 36 one-row GEMMs
 * cost more than F(2x2)'s 16) 19.8 / 11.3 / 14.6 and 12.1 / 11.4 / 14.5; 8x8x16 -> 8x8x16
 * 6.0 / 5.2 / 5.0 and 5.2 / 5.8 / 6.1 (too little work to split over threads): auto's
 * rule without the per-call transforms, F(4x4) only from 4 tiles, and C * F >= 1024. */
#ifndef FC_CONV2D_WINO_CACHED_MIN_CF
#define FC_CONV2D_WINO_CACHED_MIN_CF 1024
#endif
#define FC_CONV2D_WINO_CACHED_F4_MIN_TILES 4

int fc_conv2d_winograd_cached_tile(const fc_conv2d_geometry *g)
{
    if (!fc_conv2d_winograd_applies(g) || g->c < FC_CONV2D_WINO_MIN_C
        || g->f < FC_CONV2D_WINO_MIN_F || g->c * g->f < FC_CONV2D_WINO_CACHED_MIN_CF
        || g->n < 1 || g->oh < 1 || g->ow < 1)
        return 0;
    const double n = (double)g->n, f2 = wino_cost(g, FC_CONV2D_PASS_FORWARD, 2) * n;
    const double f4 = wino_cost(g, FC_CONV2D_PASS_FORWARD, 4) * n;
    const int m = f4 <= FC_CONV2D_WINO_F4_MAX_COST * f2
                  && g->n * fc_wino_tiles(4, g->oh, g->ow) >= FC_CONV2D_WINO_CACHED_F4_MIN_TILES
                      ? 4 : 2;
    const double cost = m == 4 ? f4 : f2;
    return cost <= FC_CONV2D_WINO_MAX_COST * 9.0 * (double)(g->oh * g->ow) * n ? m : 0;
}

/* The cache: a valid flag, the kernel it was made from, U, then (64-byte aligned, +16
 * floats of slack) the packed GEMM operands. */
int64_t fc_conv2d_winograd_cache_size(const fc_conv2d_geometry *g, int m)
{
    return 1 + 9 * g->c * g->f + fc_wino_points(m) * g->c * g->f + 16
           + fc_wino_packed_size(m, g->c, g->f);
}

int fc_conv2d_winograd_cached_forward(const fc_conv2d_geometry *g, int m, const float *x,
                                      const float *kernel, const float *bias, int relu,
                                      float *out, float *cache, float *workspace)
{
    const int64_t kf = 9 * g->c * g->f;
    float *copy = cache + 1, *u = copy + kf;
    const uintptr_t at = (uintptr_t)(u + fc_wino_points(m) * g->c * g->f);
    float *packed = fc_wino_packed_size(m, g->c, g->f) > 0
                        ? (float *)((at + 63) & ~(uintptr_t)63) : NULL;
    if (g->n <= 0 || g->oh <= 0 || g->ow <= 0 || g->f <= 0)
        return FC_OK;
    /* cache[0] == 1: u (and packed) hold the transform of the kernel in copy; a kernel
     * changed in place since (training, set_weights, a batch norm refold) is redone */
    if (cache[0] != 1.0f || memcmp(copy, kernel, (size_t)kf * sizeof(float)) != 0) {
        fc_wino_transform_kernel(m, g->c, g->f, kernel, u);
        if (packed != NULL)
            fc_wino_pack(m, g->c, g->f, u, packed);
        memcpy(copy, kernel, (size_t)kf * sizeof(float));
        cache[0] = 1.0f;
    }
    return winograd_pass(g, m, 0, x, kernel, bias, relu, out, 0, NULL, workspace, u, packed);
}

/* ---------------------------------------------------------------------------------- */

/* Lines per thread slice of the workspace when nthreads threads share it (>= 1 when
 * chunk >= nthreads). Rows are independent here, so this may depend on the threads. */
static int64_t thread_piece(const fc_conv2d_geometry *g, int nthreads)
{
    const int64_t per_line = g->ow * cols_k(g);
    int64_t piece = fc_conv2d_chunk_lines(g) / nthreads;
    int64_t cap = per_line > 0 ? FC_CONV2D_PIECE_FLOATS / per_line : piece;
    if (cap < 1)
        cap = 1;
    return piece < cap ? piece : cap;
}

/* Output lines [l0, l1): (im2col +) GEMM + epilogue, on the calling thread. */
static int forward_lines(const fc_conv2d_geometry *g, const line_ops *ops, const float *x,
                         const float *kernel, const float *bias, int relu, float *out,
                         float *cols, int64_t l0, int64_t l1)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow, rows = (l1 - l0) * OW;
    const float *a = x + l0 * OW * K;  /* identity: x rows are the column rows */
    float *o = out + l0 * OW * F;
    if (cols != NULL) {
        for (int64_t l = l0; l < l1; l++)
            ops->im2col(g, x, l, cols + (l - l0) * OW * K);
        a = cols;
    }
    int rc = fc_sgemm_serial(0, 0, rows, F, K, 1.0f, a, K, kernel, F, 0.0f, o, F);
    bias_relu_rows(o, rows, F, bias, relu);
    return rc;
}

int fc_conv2d_forward(const fc_conv2d_geometry *g, const float *x, const float *kernel,
                      const float *bias, int relu, float *out, float *workspace,
                      int algorithm)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow, lines = g->n * g->oh;
    const int identity = im2col_is_identity(g);
    const int nthreads = fc_get_num_threads();
    const int64_t chunk = fc_conv2d_chunk_lines(g);
    const line_ops ops = pick_line_ops();
    int rc = FC_OK, owned;
    if (lines <= 0 || OW <= 0 || F <= 0)
        return FC_OK;
    const int algo = fc_conv2d_algorithm(g, FC_CONV2D_PASS_FORWARD, algorithm);
    const int tile = wino_tile_size(algo);
    if (tile > 0)
        return winograd_pass(g, tile, 0, x, kernel, bias, relu, out, 0, NULL, workspace, NULL,
                             NULL);
    float *ws = workspace_acquire(g, workspace, &owned);
    if (ws == NULL && !identity)
        return FC_ENOMEM;

    if (algo == FC_CONV2D_DIRECT) {
        /* Threads own contiguous line ranges; each line's column rows (OW x K, in L1) go
         * through the direct kernel. A thread's line slice of the workspace: one per
         * thread, at most `chunk` of them. */
        const int nt_max = (int)(chunk < nthreads ? chunk : nthreads);
        int64_t l;
#pragma omp parallel for schedule(static) num_threads(nt_max) \
    if (lines * OW * F * K > 65536)
        for (l = 0; l < lines; l++) {
            if (identity) /* x rows are the column rows */
                fc_direct_forward_rows(OW, F, K, x + l * OW * K, K, K, 0, kernel, bias, relu,
                                       out + l * OW * F);
            else
                direct_forward_line(g, &ops, x, l, kernel, bias, relu,
                                    ws + fc_thread_id() * OW * K, out + l * OW * F);
        }
        workspace_release(ws, owned);
        return FC_OK;
    }

    if (!identity && chunk < nthreads) {
        /* a single output line fills the workspace: lines in turn, threads in the GEMM */
        for (int64_t l = 0; l < lines && rc == FC_OK; l++) {
            float *o = out + l * OW * F;
            ops.im2col(g, x, l, ws);
            rc = fc_sgemm(0, 0, OW, F, K, 1.0f, ws, K, kernel, F, 0.0f, o, F);
            bias_relu_rows(o, OW, F, bias, relu);
        }
        workspace_release(ws, owned);
        return rc;
    }

    /* Each thread owns a contiguous range of output lines and walks it in pieces of
     * `piece` lines through its own slice of the workspace: no synchronisation at all. */
    const int64_t piece = identity ? lines : thread_piece(g, nthreads); /* >= 1 */
#pragma omp parallel num_threads(nthreads) if (lines * OW * F * K > 65536)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        const int64_t a = lines * t / nt, b = lines * (t + 1) / nt;
        float *cols = identity ? NULL : ws + t * piece * OW * K;
        int my_rc = FC_OK;
        for (int64_t l0 = a; l0 < b && my_rc == FC_OK; l0 += piece) {
            const int64_t l1 = l0 + piece < b ? l0 + piece : b;
            my_rc = forward_lines(g, &ops, x, kernel, bias, relu, out, cols, l0, l1);
        }
        if (my_rc != FC_OK) {
#pragma omp atomic write
            rc = my_rc;
        }
    }
    workspace_release(ws, owned);
    return rc;
}

int fc_conv2d_backward_input(const fc_conv2d_geometry *g, const float *dy, const float *kernel,
                             float *dx, float *workspace, int algorithm)
{
    const int64_t K = cols_k(g), F = g->f, H = g->h, OW = g->ow, OH = g->oh;
    const int64_t lines = g->n * OH, HWC = g->h * g->w * g->c;
    const int nthreads = fc_get_num_threads();
    const int64_t chunk = fc_conv2d_chunk_lines(g);
    const line_ops ops = pick_line_ops();
    int rc = FC_OK, owned;
    if (g->n <= 0 || HWC <= 0)
        return FC_OK;
    const int tile = wino_tile_size(
        fc_conv2d_algorithm(g, FC_CONV2D_PASS_BACKWARD_INPUT, algorithm));
    if (tile > 0)
        return winograd_pass(g, tile, 1, dy, kernel, NULL, 0, dx, 0, NULL, workspace, NULL,
                             NULL);
    if (im2col_is_identity(g)) /* dx viewed as (N*OH*OW, K) is dcols itself */
        return fc_sgemm(0, 1, lines * OW, K, F, 1.0f, dy, F, kernel, F, 0.0f, dx, K);
    float *ws = workspace_acquire(g, workspace, &owned);
    if (ws == NULL)
        return FC_ENOMEM;

    if (g->n >= nthreads && chunk >= nthreads) {
        /* Each thread owns whole images: it zeroes their dx, then walks their output lines
         * in pieces through its own workspace slice (dcols GEMM, then scatter). */
        const int64_t piece = thread_piece(g, nthreads);
#pragma omp parallel num_threads(nthreads) if (lines * OW * F * K > 65536)
        {
            const int t = fc_thread_id(), nt = fc_team_size();
            const int64_t n0 = g->n * t / nt, n1 = g->n * (t + 1) / nt;
            float *dcols = ws + t * piece * OW * K;
            int my_rc = FC_OK;
            memset(dx + n0 * HWC, 0, (size_t)((n1 - n0) * HWC) * sizeof(float));
            for (int64_t l0 = n0 * OH; l0 < n1 * OH && my_rc == FC_OK; l0 += piece) {
                const int64_t l1 = l0 + piece < n1 * OH ? l0 + piece : n1 * OH;
                my_rc = fc_sgemm_serial(0, 1, (l1 - l0) * OW, K, F, 1.0f, dy + l0 * OW * F, F,
                                        kernel, F, 0.0f, dcols, K);
                for (int64_t l = l0; l < l1 && my_rc == FC_OK; l++)
                    ops.scatter(g, dcols + (l - l0) * OW * K, l, dx);
            }
            if (my_rc != FC_OK) {
#pragma omp atomic write
                rc = my_rc;
            }
        }
        workspace_release(ws, owned);
        return rc;
    }

    /* Fewer images than threads: chunks in turn; threads split each chunk's dcols GEMM by
     * rows, then gather dx by input lines. */
#pragma omp parallel num_threads(nthreads) if (lines * OW * F * K > 65536)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        int my_rc = FC_OK;
        int64_t n;
#pragma omp for schedule(static)
        for (n = 0; n < g->n; n++)
            memset(dx + n * HWC, 0, (size_t)HWC * sizeof(float));
        for (int64_t l0 = 0; l0 < lines; l0 += chunk) {
            const int64_t l1 = l0 + chunk < lines ? l0 + chunk : lines;
            const int64_t a = l0 + (l1 - l0) * t / nt, b = l0 + (l1 - l0) * (t + 1) / nt;
            if (b > a && my_rc == FC_OK)
                my_rc = fc_sgemm_serial(0, 1, (b - a) * OW, K, F, 1.0f, dy + a * OW * F, F,
                                        kernel, F, 0.0f, ws + (a - l0) * OW * K, K);
#pragma omp barrier
            /* input lines the chunk touches; col2im_gather_line skips the rest */
            const int64_t oh0 = l0 % OH, oh1 = (l1 - 1) % OH;
            int64_t ih_lo = oh0 * g->sh - g->pad_top, ih_hi = oh1 * g->sh - g->pad_top + g->kh;
            ih_lo = ih_lo < 0 ? 0 : ih_lo;
            ih_hi = ih_hi > H ? H : ih_hi;
            const int64_t g0 = (l0 / OH) * H + ih_lo, g1 = ((l1 - 1) / OH) * H + ih_hi;
            int64_t gl;
#pragma omp for schedule(static)
            for (gl = g0; gl < g1; gl++)
                ops.gather(g, ws, l0, l1, gl, dx);
            /* (implicit barrier: the workspace is free again) */
        }
        if (my_rc != FC_OK) {
#pragma omp atomic write
            rc = my_rc;
        }
    }
    workspace_release(ws, owned);
    return rc;
}

/* dW = sum over the output lines, as the parts loop of backward_kernel below, with the
 * direct kernel in small pieces: part s sums lines [lines*s/parts, lines*(s+1)/parts) in
 * order through workspace slice s into dkernel (s = 0) or partial s; then the partials are
 * added in part order. Parts depend on the geometry only. */
static int direct_kernel_grad(const fc_conv2d_geometry *g, const line_ops *ops,
                              const float *dy, const float *x, float *dkernel, float *ws,
                              int64_t chunk, int64_t parts)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow, lines = g->n * g->oh, KF = K * F;
    const int64_t slice = chunk / parts; /* lines of workspace per part, >= 1 */
    int64_t piece = FC_CONV2D_DIRECT_PIECE_FLOATS / (OW * K);
    piece = piece < 1 ? 1 : (piece > slice ? slice : piece);
    float *partials = ws + chunk * OW * K;
#pragma omp parallel num_threads(fc_get_num_threads()) if (lines * OW * KF > 65536)
    {
        int64_t s, i0;
#pragma omp for schedule(static)
        for (s = 0; s < parts; s++) {
            const int64_t a = lines * s / parts, b = lines * (s + 1) / parts;
            float *cols = ws + s * slice * OW * K;
            float *sum = s == 0 ? dkernel : partials + (s - 1) * KF;
            if (b <= a)
                memset(sum, 0, (size_t)KF * sizeof(float));
            for (int64_t l0 = a; l0 < b; l0 += piece) {
                const int64_t l1 = l0 + piece < b ? l0 + piece : b;
                direct_kernel_grad_lines(g, ops, x, l0, l1, dy + l0 * OW * F, cols, sum,
                                         l0 != a);
            }
        }
        /* (implicit barrier) dkernel = ((P0 + P1) + P2) + ... */
#pragma omp for schedule(static)
        for (i0 = 0; i0 < KF; i0 += 256) {
            const int64_t n = KF - i0 < 256 ? KF - i0 : 256;
            for (int64_t s2 = 1; s2 < parts; s2++)
                add_floats(dkernel + i0, partials + (s2 - 1) * KF + i0, n);
        }
    }
    return FC_OK;
}

int fc_conv2d_backward_kernel(const fc_conv2d_geometry *g, const float *dy, const float *x,
                              float *dkernel, float *workspace, int algorithm)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow, lines = g->n * g->oh;
    const line_ops ops = pick_line_ops();
    int rc = FC_OK, owned;
    if (K <= 0 || F <= 0)
        return FC_OK;
    if (lines <= 0 || OW <= 0) {
        memset(dkernel, 0, (size_t)(K * F) * sizeof(float));
        return FC_OK;
    }
    const int algo = fc_conv2d_algorithm(g, FC_CONV2D_PASS_BACKWARD_KERNEL, algorithm);
    const int tile = wino_tile_size(algo);
    if (tile > 0)
        return winograd_kernel_grad(g, tile, dy, x, dkernel, workspace);
    if (im2col_is_identity(g))
        return fc_sgemm(1, 0, K, F, lines * OW, 1.0f, x, K, dy, F, 0.0f, dkernel, F);
    float *ws = workspace_acquire(g, workspace, &owned);
    if (ws == NULL)
        return FC_ENOMEM;
    const int64_t chunk = fc_conv2d_chunk_lines(g), parts = dw_parts(g);
    if (algo == FC_CONV2D_DIRECT) {
        rc = direct_kernel_grad(g, &ops, dy, x, dkernel, ws, chunk, parts);
        workspace_release(ws, owned);
        return rc;
    }
    if (parts == 1) {
        /* chunks in batch order, threads inside the GEMM */
        for (int64_t l0 = 0; l0 < lines && rc == FC_OK; l0 += chunk) {
            const int64_t l1 = l0 + chunk < lines ? l0 + chunk : lines;
            const int64_t rows = (l1 - l0) * OW;
            int64_t l;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * K > 32768)
            for (l = l0; l < l1; l++)
                ops.im2col(g, x, l, ws + (l - l0) * OW * K);
            rc = fc_sgemm(1, 0, K, F, rows, 1.0f, ws, K, dy + l0 * OW * F, F,
                          l0 == 0 ? 0.0f : 1.0f, dkernel, F);
        }
        workspace_release(ws, owned);
        return rc;
    }

    /* Part s covers lines [lines*s/parts, lines*(s+1)/parts), walked in pieces of `piece`
     * lines through workspace slice s; its sum goes to dkernel (s = 0) or partial s. */
    const int64_t piece = chunk / parts, KF = K * F;
    float *partials = ws + chunk * OW * K;
#pragma omp parallel num_threads(fc_get_num_threads()) if (lines * OW * KF > 65536)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        int my_rc = FC_OK;
        for (int64_t s = t; s < parts; s += nt) {
            const int64_t a = lines * s / parts, b = lines * (s + 1) / parts;
            float *cols = ws + s * piece * OW * K;
            float *sum = s == 0 ? dkernel : partials + (s - 1) * KF;
            if (b <= a)
                memset(sum, 0, (size_t)KF * sizeof(float));
            for (int64_t l0 = a; l0 < b && my_rc == FC_OK; l0 += piece) {
                const int64_t l1 = l0 + piece < b ? l0 + piece : b;
                for (int64_t l = l0; l < l1; l++)
                    ops.im2col(g, x, l, cols + (l - l0) * OW * K);
                my_rc = fc_sgemm_serial(1, 0, K, F, (l1 - l0) * OW, 1.0f, cols, K,
                                        dy + l0 * OW * F, F, l0 == a ? 0.0f : 1.0f, sum, F);
            }
        }
        if (my_rc != FC_OK) {
#pragma omp atomic write
            rc = my_rc;
        }
#pragma omp barrier
        int64_t i0;
#pragma omp for schedule(static)
        for (i0 = 0; i0 < KF; i0 += 256) { /* dkernel = ((P0 + P1) + P2) + ... */
            const int64_t n = KF - i0 < 256 ? KF - i0 : 256;
            for (int64_t s = 1; s < parts; s++)
                add_floats(dkernel + i0, partials + (s - 1) * KF + i0, n);
        }
    }
    workspace_release(ws, owned);
    return rc;
}

/* Columns go to threads in fixed blocks of BIAS_BLOCK; each column is summed over rows
 * in order (float partial sums over BIAS_ROWS rows, added up in double), so the result
 * does not depend on the thread count. */
#define BIAS_BLOCK 16
#define BIAS_ROWS 64

void fc_conv2d_backward_bias(const fc_conv2d_geometry *g, const float *dy, float *dbias)
{
    const int64_t F = g->f, rows = g->n * g->oh * g->ow;
    const int64_t nblocks = (F + BIAS_BLOCK - 1) / BIAS_BLOCK;
    int64_t b;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * F > 65536)
    for (b = 0; b < nblocks; b++) {
        const int64_t f0 = b * BIAS_BLOCK;
        const int64_t nf = F - f0 < BIAS_BLOCK ? F - f0 : BIAS_BLOCK;
        double acc[BIAS_BLOCK] = {0};
        for (int64_t r0 = 0; r0 < rows; r0 += BIAS_ROWS) {
            const int64_t r1 = r0 + BIAS_ROWS < rows ? r0 + BIAS_ROWS : rows;
            float part[BIAS_BLOCK] = {0};
            if (nf == BIAS_BLOCK) { /* constant trip count: vectorises */
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t j = 0; j < BIAS_BLOCK; j++)
                        part[j] += dy[r * F + f0 + j];
            } else {
                for (int64_t r = r0; r < r1; r++)
                    for (int64_t j = 0; j < nf; j++)
                        part[j] += dy[r * F + f0 + j];
            }
            for (int64_t j = 0; j < nf; j++)
                acc[j] += (double)part[j];
        }
        for (int64_t j = 0; j < nf; j++)
            dbias[f0 + j] = (float)acc[j];
    }
}

/* ---------------------------------------------------------------------------------- */
/* Conv2D(relu) + MaxPooling2D(pool == strides, valid), fused (direct geometries only)   */

int fc_conv2d_relu_maxpool_applies(const fc_conv2d_geometry *g, int64_t ph, int64_t pw)
{
    return fc_conv2d_direct_applies(g) && ph >= 1 && pw >= 1 && g->oh >= ph && g->ow >= pw
           && g->n >= 0 && g->oh * g->ow * g->f <= INT32_MAX;
}

/* The ph conv lines of pooled line pl (image n, pooled row po) into z (ph*OW, F) through
 * cols (ph*OW, K): exactly what fc_conv2d_forward(relu, direct) writes for those lines. */
static void conv_lines_for_pool(const fc_conv2d_geometry *g, const line_ops *ops,
                                const float *x, const float *kernel, const float *bias,
                                int64_t ph, int64_t n, int64_t po, float *cols, float *z)
{
    for (int64_t r = 0; r < ph; r++)
        direct_forward_line(g, ops, x, n * g->oh + po * ph + r, kernel, bias, 1, cols,
                            z + r * g->ow * g->f);
}

int fc_conv2d_relu_maxpool_forward(const fc_conv2d_geometry *g, int64_t ph, int64_t pw,
                                   const float *x, const float *kernel, const float *bias,
                                   float *y, int32_t *indices)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow;
    const int64_t PH = g->oh / ph, PW = g->ow / pw, plines = g->n * PH;
    const line_ops ops = pick_line_ops();
    int rc = FC_OK;
    if (plines <= 0 || PW <= 0 || F <= 0)
        return FC_OK;
    /* Threads split the pooled lines; each computes its windows' ph conv lines into its
     * own small buffers (in L1/L2) and pools them there: the full conv output never
     * exists. Ties go to the first maximum in row-major window order, as max_pool2d. */
#pragma omp parallel num_threads(fc_get_num_threads()) if (plines * ph * OW * F * K > 65536)
    {
        float *cols = fc_malloc((size_t)(ph * OW * (K + F)) * sizeof(float));
        float *z = cols + ph * OW * K;
        int64_t pl;
        if (cols == NULL) {
#pragma omp atomic write
            rc = FC_ENOMEM;
        }
#pragma omp for schedule(static)
        for (pl = 0; pl < plines; pl++) {
            if (cols == NULL)
                continue;
            const int64_t n = pl / PH, po = pl % PH;
            conv_lines_for_pool(g, &ops, x, kernel, bias, ph, n, po, cols, z);
            fc_direct_maxpool_lines(z, ph, pw, OW, F, PW, po * ph * OW * F, y + pl * PW * F,
                                    indices != NULL ? indices + pl * PW * F : NULL);
        }
        fc_free(cols);
    }
    return rc;
}

/* Kernel (and bias) gradient of the fused block, given dy (N, PH, PW, F) of the pooled
 * output, its indices and the pooled output y (ReLU's mask: windows with y <= 0 pass
 * nothing). The pooled lines are cut into fixed parts (geometry only); each part rebuilds
 * the conv-output gradient of one pooled line at a time in a small buffer and sums the
 * direct kernel gradient over its lines in order; partials are added in part order. */
#ifndef FC_CONV2D_POOLED_DW_PARTS
#define FC_CONV2D_POOLED_DW_PARTS 16
#endif

int fc_conv2d_relu_maxpool_backward_kernel(const fc_conv2d_geometry *g, int64_t ph,
                                           int64_t pw, const float *dy,
                                           const int32_t *indices, const float *y,
                                           const float *x, float *dkernel, float *dbias)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow, KF = K * F;
    const int64_t PH = g->oh / ph, PW = g->ow / pw, plines = g->n * PH;
    const int64_t block = ph * OW * F; /* conv-output floats of one pooled line */
    const line_ops ops = pick_line_ops();
    int64_t parts = FC_CONV2D_POOLED_DW_PARTS;
    int rc = FC_OK, bad = 0;
    if (K <= 0 || F <= 0)
        return FC_OK;
    if (parts > plines)
        parts = plines > 0 ? plines : 1;
    /* dkernel partials of parts 1.., and every part's dbias sums (in double) */
    float *partials = parts > 1 ? fc_malloc((size_t)((parts - 1) * KF) * sizeof(float)) : NULL;
    double *bias_parts = fc_malloc((size_t)(parts * F) * sizeof(double));
    if ((parts > 1 && partials == NULL) || bias_parts == NULL) {
        fc_free(partials);
        fc_free(bias_parts);
        return FC_ENOMEM;
    }
#pragma omp parallel num_threads(fc_get_num_threads()) reduction(| : bad) \
    if (plines * block * K > 65536)
    {
        float *cols = fc_malloc((size_t)(ph * OW * (K + F) + F) * sizeof(float));
        float *dz = cols + ph * OW * K, *line_bias = dz + ph * OW * F;
        int64_t s, i0;
        if (cols == NULL) {
#pragma omp atomic write
            rc = FC_ENOMEM;
        }
#pragma omp for schedule(static)
        for (s = 0; s < parts; s++) {
            const int64_t a = plines * s / parts, b = plines * (s + 1) / parts;
            float *sum = s == 0 ? dkernel : partials + (s - 1) * KF;
            double *bsum = bias_parts + s * F;
            memset(sum, 0, (size_t)KF * sizeof(float));
            memset(bsum, 0, (size_t)F * sizeof(double));
            if (cols == NULL)
                continue;
            for (int64_t pl = a; pl < b; pl++) {
                const int64_t n = pl / PH, po = pl % PH, base = po * block;
                const float *dyl = dy + pl * PW * F, *yl = y + pl * PW * F;
                const int32_t *il = indices + pl * PW * F;
                memset(line_bias, 0, (size_t)F * sizeof(float));
                bad |= fc_direct_maxpool_backward_lines(dyl, yl, il, ph, pw, OW, F, PW, base,
                                                        dz, line_bias);
                for (int64_t f = 0; f < F; f++)
                    bsum[f] += (double)line_bias[f];
                direct_kernel_grad_lines(g, &ops, x, n * g->oh + po * ph,
                                         n * g->oh + po * ph + ph, dz, cols, sum, 1);
            }
        }
        fc_free(cols);
        /* (implicit barrier) dkernel = ((P0 + P1) + P2) + ...; the same for dbias */
#pragma omp for schedule(static)
        for (i0 = 0; i0 < KF; i0 += 256) {
            const int64_t m = KF - i0 < 256 ? KF - i0 : 256;
            for (int64_t s2 = 1; s2 < parts; s2++)
                add_floats(dkernel + i0, partials + (s2 - 1) * KF + i0, m);
        }
    }
    if (dbias != NULL)
        for (int64_t f = 0; f < F; f++) {
            double acc = bias_parts[f];
            for (int64_t s2 = 1; s2 < parts; s2++)
                acc += bias_parts[s2 * F + f];
            dbias[f] = (float)acc;
        }
    fc_free(partials);
    fc_free(bias_parts);
    if (rc != FC_OK)
        return rc;
    return bad ? FC_CONV2D_EBADINDEX : FC_OK;
}
