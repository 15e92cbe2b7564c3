/* 2-D convolution forward/backward as im2col + GEMM (see conv2d.h for the method).
 *
 * Threading: im2col, col2im and the epilogues are OpenMP loops over disjoint outputs; the
 * GEMMs thread themselves (fc_sgemm splits over tiles of C only). The batch is cut into
 * chunks of whole output lines whose size depends only on the geometry, and chunks run in
 * order, so every sum (dW over the batch, dx over overlapping windows) is accumulated in
 * the same order for any thread count.
 */
#include <string.h>
#include "conv2d.h"
#include "gemm.h"

/* Target size of one chunk's column matrix, in floats (1 MiB): small enough to stay in
 * L2/L3 between im2col and the GEMM, large enough that the GEMM runs at full speed. */
#ifndef FC_CONV2D_CHUNK_FLOATS
#define FC_CONV2D_CHUNK_FLOATS (1 << 18)
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

int64_t fc_conv2d_workspace_size(const fc_conv2d_geometry *g)
{
    if (im2col_is_identity(g) || g->n <= 0)
        return 0;
    return fc_conv2d_chunk_lines(g) * g->ow * cols_k(g);
}

/* ---------------------------------------------------------------------------------- */
/* im2col / col2im on a chunk of output lines [l0, l1) (line = n*OH + oh)              */

/* Column rows of output lines [l0, l1) into cols ((l1-l0)*OW, K). */
static void im2col_lines(const fc_conv2d_geometry *g, const float *FC_RESTRICT x,
                         int64_t l0, int64_t l1, float *FC_RESTRICT cols)
{
    const int64_t H = g->h, W = g->w, C = g->c, KH = g->kh, KW = g->kw;
    const int64_t OH = g->oh, OW = g->ow, K = cols_k(g), seg = KW * C;
    int64_t l;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if ((l1 - l0) * OW * K > 32768)
    for (l = l0; l < l1; l++) {
        const int64_t n = l / OH, oh = l % OH;
        float *dst_line = cols + (l - l0) * OW * K;
        for (int64_t kh = 0; kh < KH; kh++) {
            const int64_t ih = oh * g->sh - g->pad_top + kh;
            if (ih < 0 || ih >= H) {
                for (int64_t ow = 0; ow < OW; ow++)
                    memset(dst_line + ow * K + kh * seg, 0, (size_t)seg * sizeof(float));
                continue;
            }
            const float *src_row = x + ((n * H + ih) * W) * C;
            for (int64_t ow = 0; ow < OW; ow++) {
                float *dst = dst_line + ow * K + kh * seg;
                const int64_t iw0 = ow * g->sw - g->pad_left;
                if (iw0 >= 0 && iw0 + KW <= W) {
                    /* the KW*C segment is contiguous in x too */
                    memcpy(dst, src_row + iw0 * C, (size_t)seg * sizeof(float));
                    continue;
                }
                for (int64_t kw = 0; kw < KW; kw++) {
                    const int64_t iw = iw0 + kw;
                    if (iw < 0 || iw >= W)
                        memset(dst + kw * C, 0, (size_t)C * sizeof(float));
                    else
                        memcpy(dst + kw * C, src_row + iw * C, (size_t)C * sizeof(float));
                }
            }
        }
    }
}

static inline void add_floats(float *FC_RESTRICT dst, const float *FC_RESTRICT src, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* dx += col2im(dcols) for output lines [l0, l1). Written as a gather over input lines
 * (n, ih): each input line belongs to one thread, and its contributions arrive in a fixed
 * order (kh, then ow, then kw), so there is no race and no thread-count dependence. */
static void col2im_lines(const fc_conv2d_geometry *g, const float *FC_RESTRICT dcols,
                         int64_t l0, int64_t l1, float *FC_RESTRICT dx)
{
    const int64_t H = g->h, W = g->w, C = g->c, KH = g->kh, KW = g->kw;
    const int64_t OH = g->oh, OW = g->ow, K = cols_k(g), seg = KW * C;
    const int64_t sh = g->sh, sw = g->sw, pt = g->pad_top, pl = g->pad_left;
    const int64_t n0 = l0 / OH, oh0 = l0 % OH, n1 = (l1 - 1) / OH, oh1 = (l1 - 1) % OH;
    int64_t ih_lo = oh0 * sh - pt, ih_hi = oh1 * sh - pt + KH;
    if (ih_lo < 0)
        ih_lo = 0;
    if (ih_hi > H)
        ih_hi = H;
    const int64_t g0 = n0 * H + ih_lo, g1 = n1 * H + ih_hi;
    int64_t gl;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if ((l1 - l0) * OW * K > 32768)
    for (gl = g0; gl < g1; gl++) {
        const int64_t n = gl / H, ih = gl % H;
        float *dx_row = dx + gl * W * C;
        for (int64_t kh = 0; kh < KH; kh++) {
            const int64_t t = ih + pt - kh;
            if (t < 0)
                break; /* t only decreases with kh */
            if (t % sh != 0)
                continue;
            const int64_t oh = t / sh, line = n * OH + oh;
            if (oh >= OH || line < l0 || line >= l1)
                continue;
            const float *src_line = dcols + (line - l0) * OW * K + kh * seg;
            for (int64_t ow = 0; ow < OW; ow++) {
                const float *src = src_line + ow * K;
                const int64_t iw0 = ow * sw - pl;
                if (iw0 >= 0 && iw0 + KW <= W) {
                    add_floats(dx_row + iw0 * C, src, seg);
                    continue;
                }
                for (int64_t kw = 0; kw < KW; kw++) {
                    const int64_t iw = iw0 + kw;
                    if (iw >= 0 && iw < W)
                        add_floats(dx_row + iw * C, src + kw * C, C);
                }
            }
        }
    }
}

/* out rows (rows, F): += bias, then max(., 0) when relu. */
static void bias_relu_rows(float *FC_RESTRICT out, int64_t rows, int64_t F,
                           const float *FC_RESTRICT bias, int relu)
{
    int64_t r;
    if (bias == NULL && !relu)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * F > 32768)
    for (r = 0; r < rows; r++) {
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

/* ---------------------------------------------------------------------------------- */

int fc_conv2d_forward(const fc_conv2d_geometry *g, const float *x, const float *kernel,
                      const float *bias, int relu, float *out, float *workspace)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow;
    const int64_t lines = g->n * g->oh;
    int rc = FC_OK, owned;
    if (lines <= 0 || OW <= 0 || F <= 0)
        return FC_OK;
    if (im2col_is_identity(g)) {
        rc = fc_sgemm(0, 0, lines * OW, F, K, 1.0f, x, K, kernel, F, 0.0f, out, F);
        if (rc == FC_OK)
            bias_relu_rows(out, lines * OW, F, bias, relu);
        return rc;
    }
    float *cols = workspace_acquire(g, workspace, &owned);
    if (cols == NULL)
        return FC_ENOMEM;
    const int64_t chunk = fc_conv2d_chunk_lines(g);
    for (int64_t l0 = 0; l0 < lines && rc == FC_OK; l0 += chunk) {
        const int64_t l1 = l0 + chunk < lines ? l0 + chunk : lines;
        const int64_t rows = (l1 - l0) * OW;
        float *o = out + l0 * OW * F;
        im2col_lines(g, x, l0, l1, cols);
        rc = fc_sgemm(0, 0, rows, F, K, 1.0f, cols, K, kernel, F, 0.0f, o, F);
        if (rc == FC_OK)
            bias_relu_rows(o, rows, F, bias, relu);
    }
    workspace_release(cols, owned);
    return rc;
}

int fc_conv2d_backward_input(const fc_conv2d_geometry *g, const float *dy, const float *kernel,
                             float *dx, float *workspace)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow;
    const int64_t lines = g->n * g->oh, HWC = g->h * g->w * g->c;
    int rc = FC_OK, owned;
    int64_t n;
    if (g->n <= 0 || HWC <= 0)
        return FC_OK;
    if (im2col_is_identity(g)) /* dx viewed as (N*OH*OW, K) is dcols itself */
        return fc_sgemm(0, 1, lines * OW, K, F, 1.0f, dy, F, kernel, F, 0.0f, dx, K);
    float *dcols = workspace_acquire(g, workspace, &owned);
    if (dcols == NULL)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads())
    for (n = 0; n < g->n; n++)
        memset(dx + n * HWC, 0, (size_t)HWC * sizeof(float));
    const int64_t chunk = fc_conv2d_chunk_lines(g);
    for (int64_t l0 = 0; l0 < lines && rc == FC_OK; l0 += chunk) {
        const int64_t l1 = l0 + chunk < lines ? l0 + chunk : lines;
        const int64_t rows = (l1 - l0) * OW;
        rc = fc_sgemm(0, 1, rows, K, F, 1.0f, dy + l0 * OW * F, F, kernel, F, 0.0f, dcols, K);
        if (rc == FC_OK)
            col2im_lines(g, dcols, l0, l1, dx);
    }
    workspace_release(dcols, owned);
    return rc;
}

int fc_conv2d_backward_kernel(const fc_conv2d_geometry *g, const float *dy, const float *x,
                              float *dkernel, float *workspace)
{
    const int64_t K = cols_k(g), F = g->f, OW = g->ow;
    const int64_t lines = g->n * g->oh;
    int rc = FC_OK, owned;
    if (K <= 0 || F <= 0)
        return FC_OK;
    if (lines <= 0 || OW <= 0) {
        memset(dkernel, 0, (size_t)(K * F) * sizeof(float));
        return FC_OK;
    }
    if (im2col_is_identity(g))
        return fc_sgemm(1, 0, K, F, lines * OW, 1.0f, x, K, dy, F, 0.0f, dkernel, F);
    float *cols = workspace_acquire(g, workspace, &owned);
    if (cols == NULL)
        return FC_ENOMEM;
    const int64_t chunk = fc_conv2d_chunk_lines(g);
    for (int64_t l0 = 0; l0 < lines && rc == FC_OK; l0 += chunk) {
        const int64_t l1 = l0 + chunk < lines ? l0 + chunk : lines;
        const int64_t rows = (l1 - l0) * OW;
        im2col_lines(g, x, l0, l1, cols);
        /* chunks accumulate in batch order: beta = 0 for the first, then 1 */
        rc = fc_sgemm(1, 0, K, F, rows, 1.0f, cols, K, dy + l0 * OW * F, F,
                      l0 == 0 ? 0.0f : 1.0f, dkernel, F);
    }
    workspace_release(cols, owned);
    return rc;
}

/* Columns go to threads in fixed blocks; each column is summed over rows in order, in
 * double, so the result does not depend on the thread count. */
#define BIAS_BLOCK 16

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
        for (int64_t r = 0; r < rows; r++) {
            const float *d = dy + r * F + f0;
            for (int64_t j = 0; j < nf; j++)
                acc[j] += (double)d[j];
        }
        for (int64_t j = 0; j < nf; j++)
            dbias[f0 + j] = (float)acc[j];
    }
}
