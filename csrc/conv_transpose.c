/* Conv2DTranspose forward and backward: see conv_transpose.h. */
#include <stdlib.h>
#include <string.h>

#include "conv_transpose.h"
#include "gemm.h"

#define CT_PARALLEL_MIN 32768
/* Images whose kernel gradients one backward task sums before the fixed-order reduction:
 * a constant, so the sums (and bits) do not depend on the thread count. */
#define CT_CHUNK_IMAGES 4
#define CT_MAX_STRIDE 64
#define CT_WINOGRAD_MIN_CHANNELS 32

int fc_conv2d_transpose_forward(const fc_conv2d_geometry *g, const float *x,
                                const float *kernel, const float *bias, int relu, float *y,
                                float *workspace, int algorithm)
{
    const int64_t C = g->c, rows = g->n * g->h * g->w;
    int64_t r;
    int rc;
    if (algorithm == FC_CONV2D_AUTO && fc_conv2d_transpose_winograd_preferred(g))
        algorithm = FC_CONVT_PHASE_WINOGRAD;
    if (algorithm == FC_CONVT_PHASE_WINOGRAD && fc_conv2d_transpose_winograd_applies(g))
        return fc_conv2d_transpose_winograd_forward(g, x, kernel, bias, relu, y);
    if (algorithm >= FC_CONVT_PHASE && fc_conv2d_transpose_phase_applies(g))
        return fc_conv2d_transpose_phase_forward(g, x, kernel, bias, relu, y);
    if (algorithm >= FC_CONVT_PHASE)
        algorithm = FC_CONV2D_AUTO;
    rc = fc_conv2d_backward_input(g, x, kernel, y, workspace, algorithm);
    if (rc != FC_OK || (bias == NULL && !relu))
        return rc;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * C >= CT_PARALLEL_MIN)
    for (r = 0; r < rows; r++) {
        float *FC_RESTRICT yr = y + r * C;
        if (bias != NULL)
            for (int64_t c = 0; c < C; c++)
                yr[c] += bias[c];
        if (relu)
            for (int64_t c = 0; c < C; c++)
                yr[c] = yr[c] > 0.0f ? yr[c] : 0.0f;
    }
    return FC_OK;
}

/* ------------------------------------------------------------------ phase decomposition
 *
 * Along one axis (stride s, kernel k, pad p of the equivalent convolution, x length `in`,
 * y length `out`): y[o] = sum over (i, t) with s*i + t - p = o of x[i] k[t]. Output o =
 * s*m + a (phase a) takes the taps t = t0[a] + q*s, q < nt[a], from x[m - e0[a] - q]; the
 * backward's dx[i] takes dy phase a at position i + e0[a] + q. Every phase is a dense
 * stride-1 correlation with no zero taps and no scatter.
 *
 * 2-D: an image is held as rows of `pitch` pixels with zero columns between the rows'
 * data, so that "pixel (r, c + d)" is pixel index r*pitch + c + d for every shift d the
 * kernel needs: a GEMM row per pixel index reads all horizontally adjacent taps of a
 * phase as one K = taps*channels row (rows overlap: lda = channels), and one GEMM per
 * vertical tap sums them. The garbage outputs of the zero columns are never copied out. */
typedef struct {
    int64_t s, k, p, in, out;
    int64_t t0[CT_MAX_STRIDE], nt[CT_MAX_STRIDE], e0[CT_MAX_STRIDE], mo[CT_MAX_STRIDE];
    int64_t lx, rows_x;   /* forward: x padding before, padded length incl. one slack */
    int64_t ld, rows_d;   /* backward: dy-phase padding before, padded length + slack */
} ct_axis;

static void ct_axis_init(ct_axis *ax, int64_t s, int64_t k, int64_t p, int64_t in,
                         int64_t out)
{
    int64_t need_x = in, need_d = 0, lx = 0, ld = 0;
    ax->s = s; ax->k = k; ax->p = p; ax->in = in; ax->out = out;
    for (int64_t a = 0; a < s; a++) {
        int64_t t0 = ((a + p) % s + s) % s;
        ax->t0[a] = t0;
        ax->nt[a] = t0 < k ? (k - 1 - t0) / s + 1 : 0;
        ax->e0[a] = (t0 - p - a) / s; /* exact: t0 - p - a is a multiple of s */
        ax->mo[a] = a < out ? (out - 1 - a) / s + 1 : 0;
    }
    for (int64_t a = 0; a < s; a++) {
        if (ax->nt[a] == 0 || ax->mo[a] == 0)
            continue;
        /* forward reads x[m - e0 - q], m < mo, q < nt */
        if (ax->e0[a] + ax->nt[a] - 1 > lx)
            lx = ax->e0[a] + ax->nt[a] - 1;
        if (ax->mo[a] - ax->e0[a] > need_x)
            need_x = ax->mo[a] - ax->e0[a];
        /* backward reads dy-phase[i + e0 + q], i < in */
        if (-ax->e0[a] > ld)
            ld = -ax->e0[a];
    }
    for (int64_t a = 0; a < s; a++) {
        int64_t hi = in + ax->e0[a] + ax->nt[a] - 1;
        if (ax->mo[a] > need_d)
            need_d = ax->mo[a];
        if (ax->nt[a] > 0 && hi > need_d)
            need_d = hi;
    }
    ax->lx = lx;
    ax->rows_x = lx + need_x + 1;
    ax->ld = ld;
    ax->rows_d = ld + need_d + 1;
}

typedef struct {
    ct_axis h, w;
    int64_t n, ci, co;
    int64_t pitch_x;  /* forward: pixels per padded x row */
    int64_t pitch_d;  /* backward: pixels per padded dy-phase / x row */
} ct_plan;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static void ct_plan_init(ct_plan *P, const fc_conv2d_geometry *g)
{
    const ct_axis *w = &P->w;
    ct_axis_init(&P->h, g->sh, g->kh, g->pad_top, g->oh, g->h);
    ct_axis_init(&P->w, g->sw, g->kw, g->pad_left, g->ow, g->w);
    P->n = g->n; P->ci = g->f; P->co = g->c;
    /* forward: data columns [lx, lx + W); a read of column >= pitch wraps into the next
     * row's leading zeros; GEMM rows j < mo must not reach the next row */
    P->pitch_x = w->lx + w->in;
    P->pitch_d = w->in;
    for (int64_t b = 0; b < w->s; b++) {
        P->pitch_x = max64(P->pitch_x, w->mo[b]);
        P->pitch_d = max64(P->pitch_d, w->ld + w->mo[b]);
        if (w->nt[b] > 0 && w->mo[b] > 0) {
            P->pitch_x = max64(P->pitch_x, w->mo[b] - w->e0[b]);
            P->pitch_d = max64(P->pitch_d, w->in + w->e0[b] + w->nt[b] - 1);
        }
    }
}

int fc_conv2d_transpose_phase_applies(const fc_conv2d_geometry *g)
{
    return (g->sh > 1 || g->sw > 1) && g->sh <= CT_MAX_STRIDE && g->sw <= CT_MAX_STRIDE
           && g->kh <= 64
           && g->pad_top >= 0 && g->pad_left >= 0 && g->pad_top < g->kh
           && g->pad_left < g->kw;
}

/* Packed (or plain, when too large to pack) GEMM right-hand sides, one per (vertical tap,
 * horizontal phase), and the call that uses them. */
typedef struct {
    float *plain;     /* (K, N) row-major */
    float *packed;    /* fc_sgemm_pack_b of plain, or NULL */
    int64_t k, n;
} ct_rhs;

static int ct_rhs_gemm(const ct_rhs *r, int64_t M, const float *A, int64_t lda, float beta,
                       float *C, int64_t ldc)
{
    if (r->packed != NULL)
        return fc_sgemm_serial_packed_b(0, M, r->n, r->k, A, lda, r->packed, beta, C, ldc);
    return fc_sgemm_serial(0, 0, M, r->n, r->k, 1.0f, A, lda, r->plain, r->n, beta, C, ldc);
}

/* rhs[th * sw + b]: rows q*rows_per_tap + u, columns v, from kernel (KH, KW, Co, Ci).
 * forward (transposed = 1): u = ci, v = co, horizontal taps in descending order;
 * input gradient (transposed = 0): u = co, v = ci, ascending. */
static ct_rhs *ct_rhs_build(const ct_plan *P, const float *kernel, int forward)
{
    const ct_axis *w = &P->w;
    const int64_t KH = P->h.k, KW = w->k, Co = P->co, Ci = P->ci, sw = w->s;
    const int64_t U = forward ? Ci : Co, V = forward ? Co : Ci;
    ct_rhs *r = (ct_rhs *)calloc((size_t)(KH * sw), sizeof(ct_rhs));
    int ok = r != NULL;
    for (int64_t th = 0; ok && th < KH; th++)
        for (int64_t b = 0; ok && b < sw; b++) {
            ct_rhs *e = &r[th * sw + b];
            const int64_t nt = w->nt[b];
            int64_t pf;
            if (nt == 0)
                continue;
            e->k = nt * U;
            e->n = V;
            e->plain = (float *)fc_malloc((size_t)(e->k * V) * sizeof(float));
            if (e->plain == NULL) {
                ok = 0;
                break;
            }
            for (int64_t q = 0; q < nt; q++) {
                const int64_t tw = w->t0[b] + (forward ? nt - 1 - q : q) * sw;
                const float *kt = kernel + (th * KW + tw) * Co * Ci; /* (Co, Ci) */
                float *dst = e->plain + q * U * V;
                if (forward) {
                    for (int64_t c = 0; c < Ci; c++)
                        for (int64_t f = 0; f < Co; f++)
                            dst[c * Co + f] = kt[f * Ci + c];
                } else {
                    memcpy(dst, kt, (size_t)(Co * Ci) * sizeof(float));
                }
            }
            pf = fc_sgemm_packed_b_floats(e->k, V);
            if (pf > 0) {
                e->packed = (float *)fc_malloc((size_t)pf * sizeof(float));
                if (e->packed != NULL)
                    fc_sgemm_pack_b(0, e->k, V, e->plain, V, e->packed);
            }
        }
    if (!ok && r != NULL) {
        for (int64_t i = 0; i < KH * sw; i++)
            fc_free(r[i].plain);
        free(r);
        return NULL;
    }
    return r;
}

static void ct_rhs_free(ct_rhs *r, int64_t count)
{
    if (r == NULL)
        return;
    for (int64_t i = 0; i < count; i++) {
        fc_free(r[i].plain);
        fc_free(r[i].packed);
    }
    free(r);
}

/* xp (rows_x, pitch, C): x (H, W, C) at (row0, col0), zeros elsewhere. */
static void ct_pad_image(const float *x, int64_t H, int64_t W, int64_t C, float *xp,
                         int64_t rows, int64_t pitch, int64_t row0, int64_t col0)
{
    memset(xp, 0, (size_t)(rows * pitch * C) * sizeof(float));
    for (int64_t i = 0; i < H; i++)
        memcpy(xp + ((row0 + i) * pitch + col0) * C, x + i * W * C,
               (size_t)(W * C) * sizeof(float));
}

int fc_conv2d_transpose_phase_forward(const fc_conv2d_geometry *g, const float *x,
                                      const float *kernel, const float *bias, int relu,
                                      float *y)
{
    ct_plan P;
    ct_rhs *rhs;
    int failed = 0;
    int64_t n;
    ct_plan_init(&P, g);
    const ct_axis *ah = &P.h, *aw = &P.w;
    const int64_t H = ah->in, W = aw->in, OH = ah->out, OW = aw->out;
    const int64_t Ci = P.ci, Co = P.co, pitch = P.pitch_x, sh = ah->s, sw = aw->s;
    const int64_t xp_floats = ah->rows_x * pitch * Ci;
    /* one phase's GEMM output at a time */
    const int64_t t_floats = (ah->mo[0] > 0 ? ah->mo[0] : 1) * pitch * Co;
    rhs = ct_rhs_build(&P, kernel, 1);
    if (rhs == NULL)
        return FC_ENOMEM;
#pragma omp parallel num_threads(fc_get_num_threads()) if (P.n > 1)
    {
        float *xp = (float *)fc_malloc((size_t)xp_floats * sizeof(float));
        float *T = (float *)fc_malloc((size_t)t_floats * sizeof(float));
#pragma omp for schedule(static)
        for (n = 0; n < P.n; n++) {
            float *yn = y + n * OH * OW * Co;
            if (xp == NULL || T == NULL) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            ct_pad_image(x + n * H * W * Ci, H, W, Ci, xp, ah->rows_x, pitch, ah->lx, aw->lx);
            for (int64_t a = 0; a < sh; a++)
                for (int64_t b = 0; b < sw; b++) {
                    const int64_t mh = ah->mo[a], mw = aw->mo[b];
                    const int has_taps = ah->nt[a] > 0 && aw->nt[b] > 0;
                    if (mh == 0 || mw == 0)
                        continue;
                    if (has_taps) {
                        const int64_t M = (mh - 1) * pitch + mw;
                        const int64_t col = aw->lx - aw->e0[b] - (aw->nt[b] - 1);
                        for (int64_t q = 0; q < ah->nt[a]; q++) {
                            const int64_t th = ah->t0[a] + q * sh;
                            const int64_t row = ah->lx - ah->e0[a] - q;
                            int rc = ct_rhs_gemm(&rhs[th * sw + b], M,
                                                 xp + (row * pitch + col) * Ci, Ci,
                                                 q == 0 ? 0.0f : 1.0f, T, Co);
                            if (rc != FC_OK) {
#pragma omp atomic write
                                failed = 1;
                            }
                        }
                    }
                    for (int64_t m = 0; m < mh; m++)
                        for (int64_t j = 0; j < mw; j++) {
                            float *FC_RESTRICT yo =
                                yn + ((a + m * sh) * OW + b + j * sw) * Co;
                            const float *FC_RESTRICT t = T + (m * pitch + j) * Co;
                            for (int64_t f = 0; f < Co; f++) {
                                float v = has_taps ? t[f] : 0.0f;
                                if (bias != NULL)
                                    v += bias[f];
                                yo[f] = relu && !(v > 0.0f) ? 0.0f : v;
                            }
                        }
                }
        }
        fc_free(xp);
        fc_free(T);
    }
    ct_rhs_free(rhs, g->kh * sw);
    return failed ? FC_ENOMEM : FC_OK;
}

int fc_conv2d_transpose_phase_backward(const fc_conv2d_geometry *g, const float *dy,
                                       const float *x, const float *kernel, float *dx,
                                       float *dkernel, float *dbias)
{
    ct_plan P;
    ct_rhs *rhs = NULL;
    int failed = 0;
    int64_t c;
    ct_plan_init(&P, g);
    const ct_axis *ah = &P.h, *aw = &P.w;
    const int64_t H = ah->in, W = aw->in, OH = ah->out, OW = aw->out;
    const int64_t Ci = P.ci, Co = P.co, pitch = P.pitch_d, sh = ah->s, sw = aw->s;
    const int64_t KH = ah->k, KW = aw->k;
    const int64_t nchunks = (P.n + CT_CHUNK_IMAGES - 1) / CT_CHUNK_IMAGES;
    const int64_t d_phase = ah->rows_d * pitch * Co, xq_floats = (H + 1) * pitch * Ci;
    const int64_t M = (H - 1) * pitch + W; /* GEMM rows: pixels of the (H, pitch) grid */
    /* kernel-gradient partials per chunk, in GEMM order: block (th, b) holds
     * (nt_w[b] * Co, Ci) at offset koff[th * sw + b] */
    int64_t koff[64 * CT_MAX_STRIDE + 1], kfloats = 0;
    float *partial, *bpartial;
    if (KH > 64)
        return FC_ENOMEM; /* not reached: the caller only sends small kernels */
    for (int64_t th = 0; th < KH; th++)
        for (int64_t b = 0; b < sw; b++) {
            koff[th * sw + b] = kfloats;
            kfloats += aw->nt[b] * Co * Ci;
        }
    if (dx != NULL) {
        rhs = ct_rhs_build(&P, kernel, 0);
        if (rhs == NULL)
            return FC_ENOMEM;
    }
    partial = (float *)fc_malloc((size_t)(nchunks * kfloats) * sizeof(float));
    bpartial = (float *)fc_malloc((size_t)(nchunks * Co) * sizeof(float));
    if (partial == NULL || bpartial == NULL) {
        fc_free(partial);
        fc_free(bpartial);
        ct_rhs_free(rhs, KH * sw);
        return FC_ENOMEM;
    }
#pragma omp parallel num_threads(fc_get_num_threads()) if (nchunks > 1)
    {
        float *D = (float *)fc_malloc((size_t)(sh * sw * d_phase) * sizeof(float));
        float *xq = (float *)fc_malloc((size_t)xq_floats * sizeof(float));
        float *T = dx != NULL ? (float *)fc_malloc((size_t)(M * Ci) * sizeof(float)) : NULL;
#pragma omp for schedule(static)
        for (c = 0; c < nchunks; c++) {
            float *part = partial + c * kfloats, *bpart = bpartial + c * Co;
            const int64_t n1 = (c + 1) * CT_CHUNK_IMAGES < P.n ? (c + 1) * CT_CHUNK_IMAGES
                                                                : P.n;
            if (D == NULL || xq == NULL || (dx != NULL && T == NULL)) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            memset(part, 0, (size_t)kfloats * sizeof(float));
            memset(bpart, 0, (size_t)Co * sizeof(float));
            for (int64_t n = c * CT_CHUNK_IMAGES; n < n1; n++) {
                const float *dyn = dy + n * OH * OW * Co;
                int any = 0;
                /* split dy into its phases, padded; sum it for the bias gradient */
                memset(D, 0, (size_t)(sh * sw * d_phase) * sizeof(float));
                for (int64_t o = 0; o < OH; o++) {
                    const int64_t a = o % sh, m = o / sh;
                    for (int64_t p = 0; p < OW; p++) {
                        const int64_t b = p % sw, j = p / sw;
                        const float *FC_RESTRICT src = dyn + (o * OW + p) * Co;
                        float *FC_RESTRICT dst = D + (a * sw + b) * d_phase
                                                 + ((ah->ld + m) * pitch + aw->ld + j) * Co;
                        for (int64_t f = 0; f < Co; f++) {
                            dst[f] = src[f];
                            bpart[f] += src[f];
                        }
                    }
                }
                ct_pad_image(x + n * H * W * Ci, H, W, Ci, xq, H + 1, pitch, 0, 0);
                for (int64_t a = 0; a < sh; a++)
                    for (int64_t b = 0; b < sw; b++) {
                        const float *Dab = D + (a * sw + b) * d_phase;
                        if (ah->nt[a] == 0 || aw->nt[b] == 0 || ah->mo[a] == 0
                            || aw->mo[b] == 0)
                            continue;
                        for (int64_t q = 0; q < ah->nt[a]; q++) {
                            const int64_t th = ah->t0[a] + q * sh;
                            const float *A = Dab + ((ah->ld + ah->e0[a] + q) * pitch
                                                    + aw->ld + aw->e0[b]) * Co;
                            int rc = FC_OK;
                            if (dx != NULL) {
                                rc = ct_rhs_gemm(&rhs[th * sw + b], M, A, Co,
                                                 any ? 1.0f : 0.0f, T, Ci);
                                any = 1;
                            }
                            if (rc == FC_OK)
                                rc = fc_sgemm_serial(1, 0, aw->nt[b] * Co, Ci, M, 1.0f, A, Co,
                                                     xq, Ci, 1.0f, part + koff[th * sw + b],
                                                     Ci);
                            if (rc != FC_OK) {
#pragma omp atomic write
                                failed = 1;
                            }
                        }
                    }
                if (dx != NULL) {
                    float *dxn = dx + n * H * W * Ci;
                    for (int64_t i = 0; i < H; i++) {
                        if (any)
                            memcpy(dxn + i * W * Ci, T + i * pitch * Ci,
                                   (size_t)(W * Ci) * sizeof(float));
                        else
                            memset(dxn + i * W * Ci, 0, (size_t)(W * Ci) * sizeof(float));
                    }
                }
            }
        }
        fc_free(D);
        fc_free(xq);
        fc_free(T);
    }
    if (!failed) {
        /* chunk partials, summed in chunk order (any thread count: the same bits) */
        const int64_t tot = KH * KW * Co * Ci;
        int64_t e;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (tot * nchunks >= CT_PARALLEL_MIN)
        for (e = 0; e < tot; e++) {
            const int64_t ci = e % Ci, f = (e / Ci) % Co, tw = (e / (Ci * Co)) % KW,
                          th = e / (Ci * Co * KW);
            const int64_t b = ((tw - aw->p) % sw + sw) % sw, q = (tw - aw->t0[b]) / sw;
            const int64_t off = koff[th * sw + b] + (q * Co + f) * Ci + ci;
            float s = 0.0f;
            for (int64_t k = 0; k < nchunks; k++)
                s += partial[k * kfloats + off];
            dkernel[e] = s;
        }
        if (dbias != NULL)
            for (int64_t f = 0; f < Co; f++) {
                float s = 0.0f;
                for (int64_t k = 0; k < nchunks; k++)
                    s += bpartial[k * Co + f];
                dbias[f] = s;
            }
    }
    fc_free(partial);
    fc_free(bpartial);
    ct_rhs_free(rhs, KH * sw);
    return failed ? FC_ENOMEM : FC_OK;
}

/* ------------------------------------------------- phases by Winograd F(2, 2) on 2 taps
 *
 * Where no phase has more than 2 taps along an axis (kernel <= 2 * stride: 3x3 stride 2),
 * a 2-tap phase is a 2-tap correlation out[m] = u[m] h0 + u[m+1] h1, which F(2, 2)
 * computes for 2 outputs with 3 products instead of 4 (points 0, 1, infinity: only
 * additions, h0 + h1 the one new kernel value):
 *     v = (u0 - u1, u1, u2 - u1),  H = (h0, h0 + h1, h1),  out = (m0 + m1, m1 + m2).
 * Nested over both axes, a 2x2-tap phase takes 9 products per 2x2 outputs instead of 16
 * (3x3 stride 2: 25 GEMM rows per 2x2 input pixels instead of 36). Each product is a GEMM
 * (tiles, channels) @ (channels, channels) per stream. A 1-tap axis keeps tiles of 1.
 * The input gradient is the same algorithm on the phases of dy; the kernel gradient its
 * transpose: S = sum over tiles of (B^T w)^T (A x) per stream, then dk = G^T S. */
static const float CT_BT2[3][3] = {{1, -1, 0}, {0, 1, 0}, {0, -1, 1}};
static const float CT_G2[3][2] = {{1, 0}, {1, 1}, {0, 1}};
static const float CT_AT2[2][3] = {{1, 1, 0}, {0, 1, 1}};
static const float CT_ONE[1][1] = {{1}};

typedef struct {
    int nt, tl, ns;       /* taps (1 or 2), tile length, streams */
    const float *bt, *g, *at; /* (ns, tl + nt - 1), (ns, nt), (tl, ns), row-major */
} ct_wino1d;

static void ct_wino1d_init(ct_wino1d *w, int64_t nt)
{
    w->nt = (int)nt;
    if (nt == 2) {
        w->tl = 2; w->ns = 3;
        w->bt = &CT_BT2[0][0]; w->g = &CT_G2[0][0]; w->at = &CT_AT2[0][0];
    } else {
        w->tl = 1; w->ns = 1;
        w->bt = &CT_ONE[0][0]; w->g = &CT_ONE[0][0]; w->at = &CT_ONE[0][0];
    }
}

int fc_conv2d_transpose_winograd_applies(const fc_conv2d_geometry *g)
{
    if (!fc_conv2d_transpose_phase_applies(g))
        return 0;
    /* every phase has <= 2 taps: kernel <= 2 * stride */
    return g->sh <= 4 && g->sw <= 4 && g->kh <= 2 * g->sh && g->kw <= 2 * g->sw;
}

int fc_conv2d_transpose_winograd_preferred(const fc_conv2d_geometry *g)
{
    /* with few channels the per-tile transforms cost more than the saved products: the
     * input-gradient path measured faster below 32 (16 -> 16, 24 -> 16, 8 -> 8) */
    return fc_conv2d_transpose_winograd_applies(g) && g->c >= CT_WINOGRAD_MIN_CHANNELS
           && g->f >= CT_WINOGRAD_MIN_CHANNELS;
}

/* out[p] = sum_r coef[p][r] * in[r] for vectors of n floats; coefficients 0 or +-1, rows
 * of `rows` columns; a fixed order of operations. */
static void ct_combine(int nout, int nin, const float *coef, const float *const *in,
                       float *const *out, int64_t n)
{
    for (int p = 0; p < nout; p++) {
        float *FC_RESTRICT o = out[p];
        int first = 1;
        for (int r = 0; r < nin; r++) {
            const float c = coef[p * nin + r];
            const float *FC_RESTRICT s = in[r];
            if (c == 0.0f)
                continue;
            if (first) {
                if (c > 0.0f)
                    for (int64_t i = 0; i < n; i++) o[i] = s[i];
                else
                    for (int64_t i = 0; i < n; i++) o[i] = -s[i];
                first = 0;
            } else if (c > 0.0f) {
                for (int64_t i = 0; i < n; i++) o[i] += s[i];
            } else {
                for (int64_t i = 0; i < n; i++) o[i] -= s[i];
            }
        }
        if (first)
            memset(o, 0, (size_t)n * sizeof(float));
    }
}

/* out[p][p'] = sum L[p][r] R[p'][c] in[r][c] (vectors of n floats), through tmp
 * (ri * po vectors). */
static void ct_transform2d(int po, int pi, const float *L, int qo, int qi, const float *R,
                           const float *const *in, float *const *out, float *tmp, int64_t n)
{
    const float *tin[9];
    float *tout[9];
    for (int r = 0; r < pi; r++) {
        float *rowout[3];
        for (int p = 0; p < qo; p++)
            rowout[p] = tmp + (r * qo + p) * n;
        ct_combine(qo, qi, R, in + r * qi, rowout, n);
    }
    for (int p = 0; p < qo; p++) {
        for (int r = 0; r < pi; r++)
            tin[r] = tmp + (r * qo + p) * n;
        for (int q = 0; q < po; q++)
            tout[q] = out[q * qo + p];
        ct_combine(po, pi, L, tin, tout, n);
    }
}

/* The per-tile transforms, specialised: out[p][p'] = sum L[p][r] R[p'][c] in[r][c] over
 * vectors of n floats (first along c, then along r, in a fixed order), then stored (mode
 * CT_STORE), stored as act(v + bias) (CT_BIAS_ACT: bias a vector, relu a flag) or added to
 * out (CT_ACCUMULATE). The AVX2 and portable bodies do the same additions in the same
 * order: the same bits. */
#define CT_STORE 0
#define CT_BIAS_ACT 1
#define CT_ACCUMULATE 2

#if defined(__GNUC__) || defined(__clang__)
#define CT_INLINE static inline __attribute__((always_inline))
#else
#define CT_INLINE static inline
#endif

/* acc = sum over nonzero coef[k] of +-v[k] (0 when none), k < cnt; scalar and vector */
#define CT_LINEAR(T, ADD, SUB, NEG, ZERO, acc, coef, cnt, v)                              \
    do {                                                                                  \
        int first_ = 1;                                                                   \
        acc = ZERO;                                                                       \
        for (int k_ = 0; k_ < (cnt); k_++) {                                              \
            const float c_ = (coef)[k_];                                                  \
            if (c_ == 0.0f)                                                               \
                continue;                                                                 \
            if (first_)                                                                   \
                acc = c_ > 0.0f ? (v)[k_] : NEG((v)[k_]);                                 \
            else                                                                          \
                acc = c_ > 0.0f ? ADD(acc, (v)[k_]) : SUB(acc, (v)[k_]);                  \
            first_ = 0;                                                                   \
        }                                                                                 \
    } while (0)

#define CT_S_ADD(a, b) ((a) + (b))
#define CT_S_SUB(a, b) ((a) - (b))
#define CT_S_NEG(a) (-(a))

CT_INLINE void ct_tx_scalar(const int oh, const int ph, const float *L, const int ow,
                            const int pw, const float *R, const float *const *in,
                            float *const *out, int64_t i0, int64_t n, const int mode,
                            const float *bias, const int relu)
{
    for (int64_t i = i0; i < n; i++) {
        float t[3][3], row[3], col[3];
        for (int r = 0; r < ph; r++) {
            for (int c = 0; c < pw; c++)
                row[c] = in[r * pw + c][i];
            for (int q = 0; q < ow; q++)
                CT_LINEAR(float, CT_S_ADD, CT_S_SUB, CT_S_NEG, 0.0f, t[r][q], R + q * pw, pw,
                          row);
        }
        for (int q = 0; q < ow; q++) {
            for (int r = 0; r < ph; r++)
                col[r] = t[r][q];
            for (int p = 0; p < oh; p++) {
                float v, *o = out[p * ow + q];
                CT_LINEAR(float, CT_S_ADD, CT_S_SUB, CT_S_NEG, 0.0f, v, L + p * ph, ph, col);
                if (mode == CT_STORE) {
                    o[i] = v;
                } else if (mode == CT_ACCUMULATE) {
                    o[i] += v;
                } else {
                    v += bias[i];
                    o[i] = relu && !(v > 0.0f) ? 0.0f : v;
                }
            }
        }
    }
}

#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>
#define CT_V_NEG(a) _mm256_sub_ps(_mm256_setzero_ps(), (a))

CT_INLINE FC_TARGET_AVX2 void ct_tx_avx2(const int oh, const int ph, const float *L,
                                          const int ow, const int pw, const float *R,
                                          const float *const *in, float *const *out,
                                          int64_t n, const int mode, const float *bias,
                                          const int relu)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 t[3][3], row[3], col[3];
        for (int r = 0; r < ph; r++) {
            for (int c = 0; c < pw; c++)
                row[c] = _mm256_loadu_ps(in[r * pw + c] + i);
            for (int q = 0; q < ow; q++)
                CT_LINEAR(__m256, _mm256_add_ps, _mm256_sub_ps, CT_V_NEG,
                          _mm256_setzero_ps(), t[r][q], R + q * pw, pw, row);
        }
        for (int q = 0; q < ow; q++) {
            for (int r = 0; r < ph; r++)
                col[r] = t[r][q];
            for (int p = 0; p < oh; p++) {
                __m256 v;
                float *o = out[p * ow + q] + i;
                CT_LINEAR(__m256, _mm256_add_ps, _mm256_sub_ps, CT_V_NEG,
                          _mm256_setzero_ps(), v, L + p * ph, ph, col);
                if (mode == CT_STORE) {
                    _mm256_storeu_ps(o, v);
                } else if (mode == CT_ACCUMULATE) {
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), v));
                } else {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(bias + i));
                    if (relu) /* max(v, 0) gives 0 for NaN, as the scalar v > 0 test */
                        v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(),
                                                           _CMP_GT_OQ));
                    _mm256_storeu_ps(o, v);
                }
            }
        }
    }
    ct_tx_scalar(oh, ph, L, ow, pw, R, in, out, i, n, mode, bias, relu);
}
#endif

/* One function per (L, R) pair the phases use, so the coefficients are constants. */
#ifdef FC_HAVE_AVX2_PATH
#define CT_DEF_TX(NAME, LM, OH, PH, RM, OW, PW)                                            \
    static FC_TARGET_AVX2 void NAME##_avx2(const float *const *in, float *const *out,     \
                                           int64_t n, int mode, const float *bias,        \
                                           int relu)                                      \
    {                                                                                     \
        ct_tx_avx2(OH, PH, &LM[0][0], OW, PW, &RM[0][0], in, out, n, mode, bias, relu);  \
    }                                                                                     \
    static void NAME(const float *const *in, float *const *out, int64_t n, int mode,      \
                     const float *bias, int relu)                                         \
    {                                                                                     \
        if (fc_simd_level() >= 1)                                                         \
            NAME##_avx2(in, out, n, mode, bias, relu);                                    \
        else                                                                              \
            ct_tx_scalar(OH, PH, &LM[0][0], OW, PW, &RM[0][0], in, out, 0, n, mode, bias, \
                         relu);                                                           \
    }
#else
#define CT_DEF_TX(NAME, LM, OH, PH, RM, OW, PW)                                            \
    static void NAME(const float *const *in, float *const *out, int64_t n, int mode,      \
                     const float *bias, int relu)                                         \
    {                                                                                     \
        ct_tx_scalar(OH, PH, &LM[0][0], OW, PW, &RM[0][0], in, out, 0, n, mode, bias,     \
                     relu);                                                               \
    }
#endif

typedef void (*ct_tx_fn)(const float *const *in, float *const *out, int64_t n, int mode,
                         const float *bias, int relu);
CT_DEF_TX(ct_bt22, CT_BT2, 3, 3, CT_BT2, 3, 3)
CT_DEF_TX(ct_bt21, CT_BT2, 3, 3, CT_ONE, 1, 1)
CT_DEF_TX(ct_bt12, CT_ONE, 1, 1, CT_BT2, 3, 3)
CT_DEF_TX(ct_g22, CT_G2, 3, 2, CT_G2, 3, 2)
CT_DEF_TX(ct_g21, CT_G2, 3, 2, CT_ONE, 1, 1)
CT_DEF_TX(ct_g12, CT_ONE, 1, 1, CT_G2, 3, 2)
CT_DEF_TX(ct_at22, CT_AT2, 2, 3, CT_AT2, 2, 3)
CT_DEF_TX(ct_at21, CT_AT2, 2, 3, CT_ONE, 1, 1)
CT_DEF_TX(ct_at12, CT_ONE, 1, 1, CT_AT2, 2, 3)
CT_DEF_TX(ct_one, CT_ONE, 1, 1, CT_ONE, 1, 1)

/* kind 0: B^T (input), 1: G (kernel-gradient x tiles), 2: A^T (output); by taps */
static ct_tx_fn ct_tx_pick(int kind, int nth, int ntw)
{
    static const ct_tx_fn table[3][4] = {{ct_one, ct_bt12, ct_bt21, ct_bt22},
                                         {ct_one, ct_g12, ct_g21, ct_g22},
                                         {ct_one, ct_at12, ct_at21, ct_at22}};
    return table[kind][(nth - 1) * 2 + (ntw - 1)];
}

/* Transformed kernels of one phase (a, b), as GEMM right-hand sides (packed when they fit):
 * forward: B (Ci x Co) from the (Co, Ci) slices (trans_b); input gradient: B (Co x Ci). */
static int ct_wino_rhs(const ct_plan *P, const ct_wino1d *wh, const ct_wino1d *wv,
                       int64_t a, int64_t b, const float *kernel, int forward, ct_rhs *out,
                       float *tmp)
{
    const ct_axis *ah = &P->h, *aw = &P->w;
    const int64_t Co = P->co, Ci = P->ci, KW = aw->k, sz = Co * Ci;
    const float *taps[4];
    float *streams[9];
    int ns = wh->ns * wv->ns;
    for (int q = 0; q < wh->nt; q++)
        for (int r = 0; r < wv->nt; r++) {
            const int64_t qh = forward ? wh->nt - 1 - q : q, qw = forward ? wv->nt - 1 - r : r;
            const int64_t th = ah->t0[a] + qh * ah->s, tw = aw->t0[b] + qw * aw->s;
            taps[q * wv->nt + r] = kernel + (th * KW + tw) * sz;
        }
    for (int s = 0; s < ns; s++) {
        out[s].k = forward ? Ci : Co;
        out[s].n = forward ? Co : Ci;
        out[s].plain = (float *)fc_malloc((size_t)sz * sizeof(float));
        out[s].packed = NULL;
        if (out[s].plain == NULL)
            return FC_ENOMEM;
        streams[s] = out[s].plain;
    }
    ct_transform2d(wh->ns, wh->nt, wh->g, wv->ns, wv->nt, wv->g, taps, streams, tmp, sz);
    for (int s = 0; s < ns; s++) {
        const int64_t pf = fc_sgemm_packed_b_floats(out[s].k, out[s].n);
        if (pf > 0) {
            out[s].packed = (float *)fc_malloc((size_t)pf * sizeof(float));
            if (out[s].packed != NULL)
                fc_sgemm_pack_b(forward, out[s].k, out[s].n, out[s].plain,
                                forward ? Ci : Ci, out[s].packed);
        }
    }
    return FC_OK;
}

static int ct_wino_gemm(const ct_rhs *r, int forward, int64_t M, const float *A, float *C)
{
    if (r->packed != NULL)
        return fc_sgemm_serial_packed_b(0, M, r->n, r->k, A, r->k, r->packed, 0.0f, C, r->n);
    return fc_sgemm_serial(0, forward, M, r->n, r->k, 1.0f, A, r->k, r->plain,
                           forward ? r->k : r->n, 0.0f, C, r->n);
}

/* Per phase (a, b): the 1-D algorithms, tile counts and where its streams start. */
typedef struct {
    ct_wino1d h, w;
    int64_t th, tw;       /* tiles along each axis */
    int64_t stream0;      /* index of its first stream among all phases' */
    int active;           /* has taps and outputs */
} ct_wphase;

static int64_t ct_wino_phases(const ct_plan *P, ct_wphase *ph, int backward, int64_t *max_rows)
{
    const ct_axis *ah = &P->h, *aw = &P->w;
    int64_t streams = 0;
    *max_rows = 1;
    for (int64_t a = 0; a < ah->s; a++)
        for (int64_t b = 0; b < aw->s; b++) {
            ct_wphase *e = &ph[a * aw->s + b];
            ct_wino1d_init(&e->h, ah->nt[a]);
            ct_wino1d_init(&e->w, aw->nt[b]);
            e->active = ah->nt[a] > 0 && aw->nt[b] > 0 && ah->mo[a] > 0 && aw->mo[b] > 0;
            /* forward tiles cover the phase's outputs, backward ones the input x */
            e->th = ((backward ? ah->in : ah->mo[a]) + e->h.tl - 1) / e->h.tl;
            e->tw = ((backward ? aw->in : aw->mo[b]) + e->w.tl - 1) / e->w.tl;
            e->stream0 = streams;
            if (ah->nt[a] > 0 && aw->nt[b] > 0)
                streams += e->h.ns * e->w.ns;
            if (e->active && e->h.ns * e->w.ns * e->th * e->tw > *max_rows)
                *max_rows = e->h.ns * e->w.ns * e->th * e->tw;
        }
    return streams;
}

static ct_rhs *ct_wino_rhs_all(const ct_plan *P, const ct_wphase *ph, int64_t streams,
                               const float *kernel, int forward)
{
    const ct_axis *ah = &P->h, *aw = &P->w;
    ct_rhs *r = (ct_rhs *)calloc((size_t)(streams > 0 ? streams : 1), sizeof(ct_rhs));
    float *tmp = (float *)fc_malloc((size_t)(9 * P->co * P->ci) * sizeof(float));
    int rc = r != NULL && tmp != NULL ? FC_OK : FC_ENOMEM;
    for (int64_t a = 0; rc == FC_OK && a < ah->s; a++)
        for (int64_t b = 0; rc == FC_OK && b < aw->s; b++) {
            const ct_wphase *e = &ph[a * aw->s + b];
            if (ah->nt[a] > 0 && aw->nt[b] > 0)
                rc = ct_wino_rhs(P, &e->h, &e->w, a, b, kernel, forward, r + e->stream0, tmp);
        }
    fc_free(tmp);
    if (rc != FC_OK) {
        ct_rhs_free(r, r != NULL ? streams : 0);
        return NULL;
    }
    return r;
}

int fc_conv2d_transpose_winograd_forward(const fc_conv2d_geometry *g, const float *x,
                                         const float *kernel, const float *bias, int relu,
                                         float *y)
{
    ct_plan P;
    ct_wphase ph[4 * 4];
    ct_rhs *rhs;
    int failed = 0;
    int64_t c, max_rows, streams;
    if (g->sh > 4 || g->sw > 4)
        return fc_conv2d_transpose_phase_forward(g, x, kernel, bias, relu, y);
    ct_plan_init(&P, g);
    const ct_axis *ah = &P.h, *aw = &P.w;
    const int64_t H = ah->in, W = aw->in, OH = ah->out, OW = aw->out;
    const int64_t Ci = P.ci, Co = P.co, sh = ah->s, sw = aw->s;
    const int64_t cmax = Ci > Co ? Ci : Co, G = CT_CHUNK_IMAGES;
    const int64_t nchunks = (P.n + G - 1) / G;
    streams = ct_wino_phases(&P, ph, 0, &max_rows);
    rhs = ct_wino_rhs_all(&P, ph, streams, kernel, 1);
    if (rhs == NULL)
        return FC_ENOMEM;
    /* a task is G images: every GEMM covers their tiles at once */
#pragma omp parallel num_threads(fc_get_num_threads()) if (nchunks > 1)
    {
        float *V = (float *)fc_malloc((size_t)(G * max_rows * Ci) * sizeof(float));
        float *Mb = (float *)fc_malloc((size_t)(G * max_rows * Co) * sizeof(float));
        /* a zero vector, a dummy output vector */
        float *tmp = (float *)fc_malloc((size_t)(2 * cmax) * sizeof(float));
#pragma omp for schedule(static)
        for (c = 0; c < nchunks; c++) {
            const int64_t n0 = c * G, gn = P.n - n0 < G ? P.n - n0 : G;
            float *zero = tmp, *ybuf = tmp + cmax;
            if (V == NULL || Mb == NULL || tmp == NULL) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            memset(zero, 0, (size_t)cmax * sizeof(float));
            for (int64_t a = 0; a < sh; a++)
                for (int64_t b = 0; b < sw; b++) {
                    const ct_wphase *e = &ph[a * sw + b];
                    const int64_t mh = ah->mo[a], mw = aw->mo[b];
                    const int64_t T = e->th * e->tw, R = gn * T;
                    const int ns = e->h.ns * e->w.ns, tlh = e->h.tl, tlw = e->w.tl;
                    const int prow = tlh + e->h.nt - 1, pcol = tlw + e->w.nt - 1;
                    if (mh == 0 || mw == 0)
                        continue;
                    if (!e->active) {
                        for (int64_t gi = 0; gi < gn; gi++)
                            for (int64_t m = 0; m < mh; m++)
                                for (int64_t j = 0; j < mw; j++) {
                                    float *FC_RESTRICT yo =
                                        y + (((n0 + gi) * OH + a + m * sh) * OW + b + j * sw)
                                                * Co;
                                    for (int64_t f = 0; f < Co; f++) {
                                        float v = bias != NULL ? bias[f] : 0.0f;
                                        yo[f] = relu && !(v > 0.0f) ? 0.0f : v;
                                    }
                                }
                        continue;
                    }
                    /* input transform: tile (ti, tj) reads u[ti*tl + r] = x[. - e0 - (nt-1)] */
                    for (int64_t gi = 0; gi < gn; gi++) {
                        const float *xn = x + (n0 + gi) * H * W * Ci;
                        for (int64_t ti = 0; ti < e->th; ti++)
                            for (int64_t tj = 0; tj < e->tw; tj++) {
                                const float *patch[9];
                                float *outs[9];
                                const int64_t t = gi * T + ti * e->tw + tj;
                                for (int r = 0; r < prow; r++) {
                                    const int64_t i = ti * tlh + r - ah->e0[a] - (e->h.nt - 1);
                                    for (int q = 0; q < pcol; q++) {
                                        const int64_t j =
                                            tj * tlw + q - aw->e0[b] - (e->w.nt - 1);
                                        patch[r * pcol + q] =
                                            i >= 0 && i < H && j >= 0 && j < W
                                                ? xn + (i * W + j) * Ci : zero;
                                    }
                                }
                                for (int s = 0; s < ns; s++)
                                    outs[s] = V + (s * R + t) * Ci;
                                ct_tx_pick(0, e->h.nt, e->w.nt)(patch, outs, Ci, CT_STORE,
                                                                NULL, 0);
                            }
                    }
                    for (int s = 0; s < ns; s++)
                        if (ct_wino_gemm(&rhs[e->stream0 + s], 1, R, V + s * R * Ci,
                                         Mb + s * R * Co) != FC_OK) {
#pragma omp atomic write
                            failed = 1;
                        }
                    /* output transform, bias, ReLU, interleaved into y */
                    for (int64_t gi = 0; gi < gn; gi++) {
                        float *yn = y + (n0 + gi) * OH * OW * Co;
                        for (int64_t ti = 0; ti < e->th; ti++)
                            for (int64_t tj = 0; tj < e->tw; tj++) {
                                const float *ins[9];
                                float *outs[4];
                                const int64_t t = gi * T + ti * e->tw + tj;
                                for (int s = 0; s < ns; s++)
                                    ins[s] = Mb + (s * R + t) * Co;
                                for (int i = 0; i < tlh; i++)
                                    for (int j = 0; j < tlw; j++) {
                                        const int64_t m = ti * tlh + i, jj = tj * tlw + j;
                                        /* outputs past the edge go to a dummy vector */
                                        outs[i * tlw + j] =
                                            m < mh && jj < mw
                                                ? yn + ((a + m * sh) * OW + b + jj * sw) * Co
                                                : ybuf;
                                    }
                                ct_tx_pick(2, e->h.nt, e->w.nt)(
                                    ins, outs, Co, CT_BIAS_ACT, bias != NULL ? bias : zero,
                                    relu);
                            }
                    }
                }
        }
        fc_free(V);
        fc_free(Mb);
        fc_free(tmp);
    }
    ct_rhs_free(rhs, streams);
    return failed ? FC_ENOMEM : FC_OK;
}

int fc_conv2d_transpose_winograd_backward(const fc_conv2d_geometry *g, const float *dy,
                                          const float *x, const float *kernel, float *dx,
                                          float *dkernel, float *dbias)
{
    ct_plan P;
    ct_wphase ph[4 * 4];
    ct_rhs *rhs = NULL;
    int failed = 0;
    int64_t c, max_rows, streams;
    float *partial;
    if (g->sh > 4 || g->sw > 4)
        return fc_conv2d_transpose_phase_backward(g, dy, x, kernel, dx, dkernel, dbias);
    ct_plan_init(&P, g);
    const ct_axis *ah = &P.h, *aw = &P.w;
    const int64_t H = ah->in, W = aw->in, OH = ah->out, OW = aw->out;
    const int64_t Ci = P.ci, Co = P.co, sh = ah->s, sw = aw->s, KW = aw->k;
    const int64_t cmax = Ci > Co ? Ci : Co, S = Co * Ci;
    const int64_t nchunks = (P.n + CT_CHUNK_IMAGES - 1) / CT_CHUNK_IMAGES;
    streams = ct_wino_phases(&P, ph, 1, &max_rows);
    if (dx != NULL) {
        rhs = ct_wino_rhs_all(&P, ph, streams, kernel, 0);
        if (rhs == NULL)
            return FC_ENOMEM;
    }
    /* per chunk: S (Co x Ci) of every stream, then the dy sums */
    partial = (float *)fc_malloc((size_t)(nchunks * (streams * S + Co)) * sizeof(float));
    if (partial == NULL) {
        ct_rhs_free(rhs, streams);
        return FC_ENOMEM;
    }
#pragma omp parallel num_threads(fc_get_num_threads()) if (nchunks > 1)
    {
        const int64_t G = CT_CHUNK_IMAGES;
        float *V = (float *)fc_malloc((size_t)(G * max_rows * Co) * sizeof(float));
        float *X = (float *)fc_malloc((size_t)(G * max_rows * Ci) * sizeof(float));
        float *Mb = dx != NULL
                        ? (float *)fc_malloc((size_t)(G * max_rows * Ci) * sizeof(float))
                        : NULL;
        float *tmp = (float *)fc_malloc((size_t)((1 + 4) * cmax) * sizeof(float));
#pragma omp for schedule(static)
        for (c = 0; c < nchunks; c++) {
            float *part = partial + c * (streams * S + Co), *bpart = part + streams * S;
            float *zero = tmp, *dbuf = tmp + cmax;
            const int64_t n0 = c * G, gn = P.n - n0 < G ? P.n - n0 : G;
            if (V == NULL || X == NULL || tmp == NULL || (dx != NULL && Mb == NULL)) {
#pragma omp atomic write
                failed = 1;
                continue;
            }
            memset(zero, 0, (size_t)cmax * sizeof(float));
            memset(part, 0, (size_t)(streams * S) * sizeof(float));
            memset(bpart, 0, (size_t)Co * sizeof(float));
            for (int64_t n = n0; n < n0 + gn; n++) {
                const float *dyn = dy + n * OH * OW * Co;
                for (int64_t p = 0; p < OH * OW; p++)
                    for (int64_t f = 0; f < Co; f++)
                        bpart[f] += dyn[p * Co + f];
                if (dx != NULL)
                    memset(dx + n * H * W * Ci, 0, (size_t)(H * W * Ci) * sizeof(float));
            }
            for (int64_t a = 0; a < sh; a++)
                for (int64_t b = 0; b < sw; b++) {
                    const ct_wphase *e = &ph[a * sw + b];
                    const int64_t T = e->th * e->tw, R = gn * T;
                    const int ns = e->h.ns * e->w.ns, tlh = e->h.tl, tlw = e->w.tl;
                    const int prow = tlh + e->h.nt - 1, pcol = tlw + e->w.nt - 1;
                    if (!e->active)
                        continue;
                    /* dy phase patches: w[ti*tl + r] = dy-phase[. + e0], and the x tiles
                     * through A = G's shape; rows of the G images one after the other */
                    for (int64_t gi = 0; gi < gn; gi++) {
                        const float *dyn = dy + (n0 + gi) * OH * OW * Co;
                        const float *xn = x + (n0 + gi) * H * W * Ci;
                        for (int64_t ti = 0; ti < e->th; ti++)
                            for (int64_t tj = 0; tj < e->tw; tj++) {
                                const float *patch[9], *xt[4];
                                float *outs[9];
                                const int64_t t = gi * T + ti * e->tw + tj;
                                for (int r = 0; r < prow; r++) {
                                    const int64_t m = ti * tlh + r + ah->e0[a];
                                    for (int q = 0; q < pcol; q++) {
                                        const int64_t j = tj * tlw + q + aw->e0[b];
                                        patch[r * pcol + q] =
                                            m >= 0 && m < ah->mo[a] && j >= 0 && j < aw->mo[b]
                                                ? dyn + ((a + m * sh) * OW + b + j * sw) * Co
                                                : zero;
                                    }
                                }
                                for (int s = 0; s < ns; s++)
                                    outs[s] = V + (s * R + t) * Co;
                                ct_tx_pick(0, e->h.nt, e->w.nt)(patch, outs, Co, CT_STORE,
                                                                NULL, 0);
                                for (int i = 0; i < tlh; i++)
                                    for (int j = 0; j < tlw; j++) {
                                        const int64_t ii = ti * tlh + i, jj = tj * tlw + j;
                                        xt[i * tlw + j] = ii < H && jj < W
                                                              ? xn + (ii * W + jj) * Ci : zero;
                                    }
                                for (int s = 0; s < ns; s++)
                                    outs[s] = X + (s * R + t) * Ci;
                                ct_tx_pick(1, e->h.nt, e->w.nt)(xt, outs, Ci, CT_STORE, NULL,
                                                                0);
                            }
                    }
                    for (int s = 0; s < ns; s++) {
                        int rc = fc_sgemm_serial(1, 0, Co, Ci, R, 1.0f, V + s * R * Co, Co,
                                                 X + s * R * Ci, Ci, 0.0f,
                                                 part + (e->stream0 + s) * S, Ci);
                        if (rc == FC_OK && dx != NULL)
                            rc = ct_wino_gemm(&rhs[e->stream0 + s], 0, R, V + s * R * Co,
                                              Mb + s * R * Ci);
                        if (rc != FC_OK) {
#pragma omp atomic write
                            failed = 1;
                        }
                    }
                    if (dx == NULL)
                        continue;
                    for (int64_t gi = 0; gi < gn; gi++) {
                        float *dxn = dx + (n0 + gi) * H * W * Ci;
                        for (int64_t ti = 0; ti < e->th; ti++)
                            for (int64_t tj = 0; tj < e->tw; tj++) {
                                const float *ins[9];
                                float *outs[4];
                                const int64_t t = gi * T + ti * e->tw + tj;
                                for (int s = 0; s < ns; s++)
                                    ins[s] = Mb + (s * R + t) * Ci;
                                for (int i = 0; i < tlh; i++)
                                    for (int j = 0; j < tlw; j++) {
                                        const int64_t ii = ti * tlh + i, jj = tj * tlw + j;
                                        outs[i * tlw + j] = ii < H && jj < W
                                                                ? dxn + (ii * W + jj) * Ci
                                                                : dbuf + (i * tlw + j) * Ci;
                                    }
                                ct_tx_pick(2, e->h.nt, e->w.nt)(ins, outs, Ci, CT_ACCUMULATE,
                                                                NULL, 0);
                            }
                    }
                }
        }
        fc_free(V);
        fc_free(X);
        fc_free(Mb);
        fc_free(tmp);
    }
    if (!failed) {
        /* chunk partials summed in chunk order (the same bits for any thread count), then
         * dk = G^T S per phase */
        const int64_t tot = streams * S + Co;
        int64_t e;
        float *tmp = (float *)fc_malloc((size_t)(9 * S) * sizeof(float));
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (tot * nchunks >= CT_PARALLEL_MIN)
        for (e = 0; e < tot; e++) {
            float s = partial[e];
            for (int64_t k = 1; k < nchunks; k++)
                s += partial[k * tot + e];
            partial[e] = s;
        }
        if (tmp == NULL)
            failed = 1;
        for (int64_t a = 0; !failed && a < sh; a++)
            for (int64_t b = 0; b < sw; b++) {
                const ct_wphase *p = &ph[a * sw + b];
                const float *ins[9];
                float *outs[4];
                if (ah->nt[a] == 0 || aw->nt[b] == 0)
                    continue;
                for (int s = 0; s < p->h.ns * p->w.ns; s++)
                    ins[s] = partial + (p->stream0 + s) * S;
                for (int q = 0; q < p->h.nt; q++)
                    for (int r = 0; r < p->w.nt; r++)
                        outs[q * p->w.nt + r] =
                            dkernel + ((ah->t0[a] + q * sh) * KW + aw->t0[b] + r * sw) * S;
                ct_transform2d(p->h.nt, p->h.ns, p->h.at, p->w.nt, p->w.ns, p->w.at, ins,
                               outs, tmp, S);
            }
        if (dbias != NULL && !failed)
            memcpy(dbias, partial + streams * S, (size_t)Co * sizeof(float));
        fc_free(tmp);
    }
    fc_free(partial);
    ct_rhs_free(rhs, streams);
    return failed ? FC_ENOMEM : FC_OK;
}
