/* Grouped / dilated convolution on im2col + GEMM: see conv2d_grouped.h.
 *
 * Threads: with at least as many chunks as threads, one parallel region hands whole chunks
 * to threads (each with its own column buffer and a one-thread GEMM); otherwise the chunks
 * run in turn with the im2col and the GEMM parallel inside. A GEMM gives the same bits on
 * any thread count, and the kernel gradient always sums per-chunk partials in chunk order,
 * so both ways give the same results.
 */
#include <string.h>

#include "conv2d_grouped.h"
#include "gemm.h"
#include "winograd.h"

#define GC_CHUNK_FLOATS (1 << 17)   /* column buffer target: 512 KiB of floats */

typedef struct {
    const fc_conv2d_grouped_geometry *g;
    int64_t G, cg, fg, K, img, nbmax, nchunks;
} plan_t;

static void make_plan(plan_t *p, const fc_conv2d_grouped_geometry *g)
{
    const fc_conv2d_geometry *b = &g->base;
    int64_t nb;
    p->g = g;
    p->G = g->groups;
    p->cg = b->c / g->groups;
    p->fg = b->f / g->groups;
    p->K = b->kh * b->kw * p->cg;
    p->img = b->oh * b->ow;
    nb = p->img * p->K > 0 ? GC_CHUNK_FLOATS / (p->img * p->K) : b->n;
    nb = nb < 1 ? 1 : nb;
    p->nbmax = nb < b->n ? nb : b->n;
    p->nchunks = (b->n + p->nbmax - 1) / p->nbmax;
}

static int64_t chunk_size(const plan_t *p, int64_t ch)
{
    const int64_t n0 = ch * p->nbmax, n = p->g->base.n;
    return n0 + p->nbmax <= n ? p->nbmax : n - n0;
}

/* Column rows of output lines [r0, r1) of images from n0, for group gi's channel slice. */
static void im2col_lines(const plan_t *p, const float *x, int64_t n0, int64_t r0, int64_t r1,
                         int64_t gi, float *cols)
{
    const fc_conv2d_grouped_geometry *g = p->g;
    const fc_conv2d_geometry *b = &g->base;
    const int64_t cg = p->cg, K = p->K;
    int64_t r;
    for (r = r0; r < r1; r++) {
        const int64_t n = n0 + r / b->oh, oh = r % b->oh;
        int64_t ow, i, j;
        for (ow = 0; ow < b->ow; ow++) {
            float *row = cols + (r * b->ow + ow) * K;
            for (i = 0; i < b->kh; i++) {
                const int64_t ih = oh * b->sh - b->pad_top + i * g->dh;
                for (j = 0; j < b->kw; j++) {
                    const int64_t iw = ow * b->sw - b->pad_left + j * g->dw;
                    float *dst = row + (i * b->kw + j) * cg;
                    if (ih < 0 || ih >= b->h || iw < 0 || iw >= b->w)
                        memset(dst, 0, (size_t)cg * sizeof(float));
                    else
                        memcpy(dst, x + ((n * b->h + ih) * b->w + iw) * b->c + gi * cg,
                               (size_t)cg * sizeof(float));
                }
            }
        }
    }
}

/* im2col of nb images from n0: parallel over lines unless `serial`. */
static void im2col(const plan_t *p, const float *x, int64_t n0, int64_t nb, int64_t gi,
                   float *cols, int serial)
{
    const int64_t lines = nb * p->g->base.oh;
    int64_t r;
    if (serial) {
        im2col_lines(p, x, n0, 0, lines, gi, cols);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (lines * p->g->base.ow * p->K > 65536)
    for (r = 0; r < lines; r++)
        im2col_lines(p, x, n0, r, r + 1, gi, cols);
}

static int gemm(int serial, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc)
{
    return serial ? fc_sgemm_serial(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc)
                  : fc_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

enum { PASS_FORWARD, PASS_INPUT, PASS_KERNEL };

typedef struct {
    const float *x, *dy, *kernel, *bias;
    int relu;
    float *out, *dx, *partial;   /* partial: nchunks x (K, F) kernel-gradient sums */
} args_t;

/* One chunk of one pass; `cols` holds nbmax * img * K floats. */
static int run_chunk(const plan_t *p, int pass, const args_t *a, int64_t ch, float *cols,
                     int serial)
{
    const fc_conv2d_grouped_geometry *g = p->g;
    const fc_conv2d_geometry *b = &g->base;
    const int64_t n0 = ch * p->nbmax, nb = chunk_size(p, ch), P = nb * p->img;
    const int64_t F = b->f, K = p->K, fg = p->fg, cg = p->cg;
    int64_t gi, r, k;
    for (gi = 0; gi < p->G; gi++) {
        if (pass == PASS_INPUT) {
            /* dcols (P, K) = dy_g (P, fg) @ W_g^T, W_g the (K, fg) columns of the kernel */
            if (gemm(serial, 0, 1, P, K, fg, a->dy + n0 * p->img * F + gi * fg, F,
                     a->kernel + gi * fg, F, cols, K) != FC_OK)
                return FC_ENOMEM;
            /* col2im: an image's outputs only touch that image, each in a fixed order */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (!serial && P * K > 65536)
            for (k = 0; k < nb; k++) {
                const int64_t n = n0 + k;
                int64_t oh, ow, i, j, c;
                for (oh = 0; oh < b->oh; oh++)
                    for (ow = 0; ow < b->ow; ow++) {
                        const float *row = cols + ((k * b->oh + oh) * b->ow + ow) * K;
                        for (i = 0; i < b->kh; i++) {
                            const int64_t ih = oh * b->sh - b->pad_top + i * g->dh;
                            if (ih < 0 || ih >= b->h)
                                continue;
                            for (j = 0; j < b->kw; j++) {
                                const int64_t iw = ow * b->sw - b->pad_left + j * g->dw;
                                const float *src = row + (i * b->kw + j) * cg;
                                float *dst;
                                if (iw < 0 || iw >= b->w)
                                    continue;
                                dst = a->dx + ((n * b->h + ih) * b->w + iw) * b->c + gi * cg;
                                for (c = 0; c < cg; c++)
                                    dst[c] += src[c];
                            }
                        }
                    }
            }
            continue;
        }
        im2col(p, a->x, n0, nb, gi, cols, serial);
        if (pass == PASS_FORWARD) {
            if (gemm(serial, 0, 0, P, fg, K, cols, K, a->kernel + gi * fg, F,
                     a->out + n0 * p->img * F + gi * fg, F) != FC_OK)
                return FC_ENOMEM;
        } else if (gemm(serial, 1, 0, K, fg, P, cols, K, a->dy + n0 * p->img * F + gi * fg, F,
                        a->partial + ch * K * F + gi * fg, F) != FC_OK) {
            return FC_ENOMEM;
        }
    }
    if (pass == PASS_FORWARD && (a->bias || a->relu)) {
        float *o = a->out + n0 * p->img * F;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (!serial && P * F > 65536)
        for (r = 0; r < P; r++) {
            float *row = o + r * F;
            int64_t f;
            if (a->bias)
                for (f = 0; f < F; f++)
                    row[f] += a->bias[f];
            if (a->relu)
                for (f = 0; f < F; f++)
                    row[f] = row[f] > 0.0f ? row[f] : 0.0f;
        }
    }
    return FC_OK;
}

static int run(const fc_conv2d_grouped_geometry *g, int pass, const args_t *a)
{
    plan_t p;
    const int nt = fc_get_num_threads();
    int failed = 0;
    make_plan(&p, g);
    if (p.nchunks >= nt && nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            float *cols = (float *)fc_malloc((size_t)(p.nbmax * p.img * p.K) * sizeof(float));
            int64_t ch;
#pragma omp for schedule(static)
            for (ch = 0; ch < p.nchunks; ch++)
                if (!cols || run_chunk(&p, pass, a, ch, cols, 1) != FC_OK) {
#pragma omp atomic write
                    failed = 1;
                }
            fc_free(cols);
        }
    } else {
        float *cols = (float *)fc_malloc((size_t)(p.nbmax * p.img * p.K) * sizeof(float));
        int64_t ch;
        if (!cols)
            return FC_ENOMEM;
        for (ch = 0; ch < p.nchunks && !failed; ch++)
            failed = run_chunk(&p, pass, a, ch, cols, 0) != FC_OK;
        fc_free(cols);
    }
    return failed ? FC_ENOMEM : FC_OK;
}

int fc_conv2d_grouped_forward(const fc_conv2d_grouped_geometry *g, const float *x,
                              const float *kernel, const float *bias, int relu, float *out)
{
    args_t a = {x, NULL, kernel, bias, relu, out, NULL, NULL};
    return run(g, PASS_FORWARD, &a);
}

int fc_conv2d_grouped_backward_input(const fc_conv2d_grouped_geometry *g, const float *dy,
                                     const float *kernel, float *dx)
{
    const fc_conv2d_geometry *b = &g->base;
    args_t a = {NULL, dy, kernel, NULL, 0, NULL, dx, NULL};
    memset(dx, 0, (size_t)(b->n * b->h * b->w * b->c) * sizeof(float));
    return run(g, PASS_INPUT, &a);
}

int fc_conv2d_grouped_backward_kernel(const fc_conv2d_grouped_geometry *g, const float *dy,
                                      const float *x, float *dkernel)
{
    plan_t p;
    int64_t E, e;
    int rc;
    args_t a = {x, dy, NULL, NULL, 0, NULL, NULL, NULL};
    make_plan(&p, g);
    E = p.K * g->base.f;
    a.partial = (float *)fc_malloc((size_t)(p.nchunks * E) * sizeof(float));
    if (!a.partial)
        return FC_ENOMEM;
    rc = run(g, PASS_KERNEL, &a);
    if (rc == FC_OK) {
        /* chunk partials added in chunk order: the same bits for any thread count */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if (E > 16384)
        for (e = 0; e < E; e++) {
            float s = a.partial[e];
            int64_t ch;
            for (ch = 1; ch < p.nchunks; ch++)
                s += a.partial[ch * E + e];
            dkernel[e] = s;
        }
    }
    fc_free(a.partial);
    return rc;
}

void fc_channel_slice_copy(const float *src, float *dst, int64_t rows, int64_t ld, int64_t c0,
                           int64_t width, int to_packed)
{
    int64_t r;
    /* pure copies: the same bits whatever the split */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * width > 65536)
    for (r = 0; r < rows; r++) {
        if (to_packed)
            memcpy(dst + r * width, src + r * ld + c0, (size_t)width * sizeof(float));
        else
            memcpy(dst + r * ld + c0, src + r * width, (size_t)width * sizeof(float));
    }
}

void fc_lattice_gather(const float *x, int64_t n, int64_t h, int64_t w, int64_t c, int64_t dh,
                       int64_t dw, int64_t rh, int64_t rw, int64_t hs, int64_t ws, float *xs)
{
    const int64_t rows = dh * dw * n * hs;
    int64_t r;
    /* pure copies and zeros: the same bits whatever the split */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * ws * c > 65536)
    for (r = 0; r < rows; r++) {
        const int64_t s = r % hs, k = r / hs, img = k % n, phase = k / n;
        const int64_t row = phase / dw - rh + dh * s, b = phase % dw - rw;
        float *dst = xs + r * ws * c;
        if (row < 0 || row >= h) {
            memset(dst, 0, (size_t)(ws * c) * sizeof(float));
            continue;
        }
        const float *src = x + (img * h + row) * w * c;
        for (int64_t u = 0; u < ws; u++) {
            const int64_t col = b + dw * u;
            if (col >= 0 && col < w)
                memcpy(dst + u * c, src + col * c, (size_t)c * sizeof(float));
            else
                memset(dst + u * c, 0, (size_t)c * sizeof(float));
        }
    }
}

void fc_lattice_scatter(const float *xs, int64_t n, int64_t h, int64_t w, int64_t c, int64_t dh,
                        int64_t dw, int64_t rh, int64_t rw, int64_t hs, int64_t ws, float *x)
{
    const int64_t rows = n * h;
    int64_t r;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * w * c > 65536)
    for (r = 0; r < rows; r++) {
        const int64_t img = r / h, row = r % h + rh, a = row % dh, s = row / dh;
        float *dst = x + r * w * c;
        if (s >= hs) {
            memset(dst, 0, (size_t)(w * c) * sizeof(float));
            continue;
        }
        for (int64_t col = 0; col < w; col++) {
            const int64_t b = (col + rw) % dw, u = (col + rw) / dw;
            if (u < ws)
                memcpy(dst + col * c,
                       xs + ((((a * dw + b) * n + img) * hs + s) * ws + u) * c,
                       (size_t)c * sizeof(float));
            else
                memset(dst + col * c, 0, (size_t)c * sizeof(float));
        }
    }
}

/* ---------------------------------------------------------------------------------- */
/* Grouped 3x3 stride-1 convolutions as Winograd (winograd.h's grouped entry points).   */

#define GW_CHUNK_FLOATS (1 << 19)   /* tile scratch (V and M rows) shared by the threads */
#define GW_PARTS 2                  /* fixed tile ranges of the kernel gradient's sums */
#define GW_PARTIAL_FLOATS (1 << 18) /* cap on the extra partial sums */
#define GW_FIXED_TILES 128          /* per-call cost of the kernel transforms, in tiles */

int fc_conv2d_grouped_wino_applies(const fc_conv2d_geometry *g, int64_t groups)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && groups > 1
           && g->c % groups == 0 && g->f % groups == 0 && g->pad_top >= 0
           && g->pad_top <= 2 && g->pad_left >= 0 && g->pad_left <= 2 && g->n > 0
           && g->h > 0 && g->w > 0 && g->oh > 0 && g->ow > 0;
}

/* F(4x4) or F(2x2) for an output of oh x ow pixels: conv2d.c's cost model (P per tile of
 * the batch plus the fixed per-call cost). */
static int gw_tile(const fc_conv2d_geometry *g, int64_t oh, int64_t ow)
{
    const double n = (double)g->n;
    const double f2 = 16.0 * ((double)fc_wino_tiles(2, oh, ow) * n + GW_FIXED_TILES);
    const double f4 = 36.0 * ((double)fc_wino_tiles(4, oh, ow) * n + GW_FIXED_TILES);
    return f4 <= 0.9 * f2 ? 4 : 2;
}

static int64_t gw_chunk_tiles(const fc_conv2d_geometry *g, int m)
{
    const int64_t t_fwd = fc_wino_tiles(m, g->oh, g->ow), t_bwd = fc_wino_tiles(m, g->h, g->w);
    const int64_t tiles = g->n * (t_fwd > t_bwd ? t_fwd : t_bwd);
    int64_t chunk = GW_CHUNK_FLOATS / fc_wino_tile_floats(m, g->c, g->f);
    if (chunk > tiles)
        chunk = tiles;
    return chunk < 1 ? 1 : chunk;
}

static int gw_parts(const fc_conv2d_geometry *g, int64_t groups, int m)
{
    const int64_t ucf = fc_wino_points(m) * (g->c / groups) * g->f;
    int64_t parts = GW_PARTS;
    if (ucf > 0 && (parts - 1) * ucf > GW_PARTIAL_FLOATS)
        parts = 1 + GW_PARTIAL_FLOATS / ucf;
    return parts < 1 ? 1 : (int)parts;
}

/* Floats before the tile scratch: U or the partial sums, then the rotated kernel. */
static int64_t gw_head(const fc_conv2d_geometry *g, int64_t groups, int m)
{
    const int64_t kcf = (g->c / groups) * g->f;
    return gw_parts(g, groups, m) * fc_wino_points(m) * kcf + 9 * kcf;
}

int64_t fc_conv2d_grouped_wino_workspace_size(const fc_conv2d_geometry *g, int64_t groups)
{
    int64_t most = 0;
    if (!fc_conv2d_grouped_wino_applies(g, groups))
        return 0;
    for (int m = 2; m <= 4; m += 2) {
        const int64_t chunk = gw_chunk_tiles(g, m);
        const int64_t a = fc_wino_scratch_size(m, g->c, g->f, chunk);
        const int64_t b = fc_wino_scratch_size(m, g->f, g->c, chunk);
        const int64_t need = gw_head(g, groups, m) + (a > b ? a : b);
        if (need > most)
            most = need;
    }
    return most;
}

static void gw_problem(fc_wino_problem *p, const fc_conv2d_geometry *g, int m)
{
    p->m = m;
    p->pool = 0;
    p->pool_indices = NULL;
    p->n = g->n; p->h = g->h; p->w = g->w; p->cin = g->c; p->cout = g->f;
    p->oh = g->oh; p->ow = g->ow; p->pad_top = g->pad_top; p->pad_left = g->pad_left;
    p->ch = p->oh; p->cw = p->ow;
}

int fc_conv2d_grouped_wino_forward(const fc_conv2d_geometry *g, int64_t groups, const float *x,
                                   const float *kernel, const float *bias, int relu,
                                   float *out, float *workspace)
{
    const int m = gw_tile(g, g->oh, g->ow);
    fc_wino_problem p;
    gw_problem(&p, g, m);
    fc_wino_transform_kernel(m, g->c / groups, g->f, kernel, workspace);
    return fc_wino_conv_grouped(&p, groups, x, workspace, bias, relu, out,
                                workspace + gw_head(g, groups, m), gw_chunk_tiles(g, m));
}

int fc_conv2d_grouped_wino_backward_input(const fc_conv2d_geometry *g, int64_t groups,
                                          const float *dy, const float *kernel, float *dx,
                                          float *workspace)
{
    const int64_t C = g->c, F = g->f, cg = C / groups, fg = F / groups;
    const int m = gw_tile(g, g->h, g->w);
    const int64_t head = gw_head(g, groups, m);
    float *kr = workspace + head - 9 * cg * F;
    fc_wino_problem p;
    p.m = m;
    p.pool = 0;
    p.pool_indices = NULL;
    p.n = g->n; p.h = g->oh; p.w = g->ow; p.cin = F; p.cout = C;
    p.oh = g->h; p.ow = g->w; p.pad_top = 2 - g->pad_top; p.pad_left = 2 - g->pad_left;
    /* dx rows / columns past the last window get no gradient: computed up to there, the
     * rest zeroed */
    p.ch = g->oh + 2 - g->pad_top < g->h ? g->oh + 2 - g->pad_top : g->h;
    p.cw = g->ow + 2 - g->pad_left < g->w ? g->ow + 2 - g->pad_left : g->w;
    if (p.ch < g->h || p.cw < g->w)
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t h = 0; h < g->h; h++) {
                float *row = dx + (n * g->h + h) * g->w * C;
                const int64_t from = h < p.ch ? p.cw : 0;
                memset(row + from * C, 0, (size_t)((g->w - from) * C) * sizeof(float));
            }
    /* kr (3, 3, F / G, C): the kernel rotated by 180 degrees, each group's channel axes
     * swapped, so dx is the grouped correlation of dy with it */
    for (int64_t tap = 0; tap < 9; tap++)
        for (int64_t gr = 0; gr < groups; gr++)
            for (int64_t cl = 0; cl < cg; cl++)
                for (int64_t fl = 0; fl < fg; fl++)
                    kr[(tap * fg + fl) * C + gr * cg + cl] =
                        kernel[((8 - tap) * cg + cl) * F + gr * fg + fl];
    fc_wino_transform_kernel(m, fg, C, kr, workspace);
    return fc_wino_conv_grouped(&p, groups, dy, workspace, NULL, 0, dx, workspace + head,
                                gw_chunk_tiles(g, m));
}

int fc_conv2d_grouped_wino_backward_kernel(const fc_conv2d_geometry *g, int64_t groups,
                                           const float *dy, const float *x, float *dkernel,
                                           float *workspace)
{
    const int m = gw_tile(g, g->oh, g->ow);
    fc_wino_problem p;
    gw_problem(&p, g, m);
    return fc_wino_kernel_grad_grouped(&p, groups, x, dy, dkernel, workspace,
                                       gw_parts(g, groups, m),
                                       workspace + gw_head(g, groups, m),
                                       gw_chunk_tiles(g, m));
}
