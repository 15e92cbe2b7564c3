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

int fc_conv2d_transpose_forward(const fc_conv2d_geometry *g, const float *x,
                                const float *kernel, const float *bias, int relu, float *y,
                                float *workspace, int algorithm)
{
    const int64_t C = g->c, rows = g->n * g->h * g->w;
    int64_t r;
    int rc;
    if (algorithm == FC_CONV2D_AUTO && fc_conv2d_transpose_phase_applies(g))
        return fc_conv2d_transpose_phase_forward(g, x, kernel, bias, relu, y);
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
