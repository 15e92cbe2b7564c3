/* Template for winograd.c (deliberately no include guard): the tile transforms for one
 * tile size and one SIMD level. The includer defines
 *   WT_M                                    the tile size, 2 or 4,
 *   WT_LEVEL, WT_ATTR                       level name and function attribute,
 *   WT_T, WT_LEN                            vector type and its number of floats,
 *   WT_LOAD(p), WT_STORE(p, v)              unaligned load / store,
 *   WT_ADD(a, b), WT_SUB(a, b), WT_MULC(a, c), WT_NEG(a), WT_RELU(a)
 *   WT_I, WT_IOTA(i), WT_STOREI(p, v)       int32 index vector type, (i, i + 1, ...),
 *                                           unaligned store,
 *   WT_POOL_STEP(best, idx, v, vidx)        best, idx = v, vidx where v > best (per lane)
 * and gets kernel_transform_f<M>_<LEVEL>, gather_tiles_f<M>_<LEVEL>, scatter_tiles_...,
 * gather_grad_tiles_..., kernel_grad_transform_.... Every level does the same IEEE
 * operations in the same order per channel (the scalar tails too), so all agree bitwise.
 * Layouts: see "Scratch layout" in winograd.c. */

#if WT_M == 2
#define WT_TILE f2
#define WT_A 4
#define WT_INPUT_TF W2_INPUT_TF
#define WT_OUTPUT_TF W2_OUTPUT_TF
#define WT_KERNEL_TF W2_KERNEL_TF
#define WT_OUTPUT_ADJ W2_OUTPUT_ADJ
#define WT_KERNEL_ADJ W2_KERNEL_ADJ
#elif WT_M == 4
#define WT_TILE f4
#define WT_A 6
#define WT_INPUT_TF W4_INPUT_TF
#define WT_OUTPUT_TF W4_OUTPUT_TF
#define WT_KERNEL_TF W4_KERNEL_TF
#define WT_OUTPUT_ADJ W4_OUTPUT_ADJ
#define WT_KERNEL_ADJ W4_KERNEL_ADJ
#else
#error "winograd_tiles.h: WT_M must be 2 or 4"
#endif
#define WT_P (WT_A * WT_A)

#define WT_CAT2(a, b) a##_##b
#define WT_CAT(a, b) WT_CAT2(a, b)
#define WT_NAME(name) WT_CAT(WT_CAT(name, WT_TILE), WT_LEVEL)

/* u (P, C, F) = G g G^T for every (c, f) of kernel (3, 3, C, F), c in [c0, c1), vectors
 * across f. */
WT_ATTR static void WT_NAME(kernel_transform)(int64_t C, int64_t F, int64_t c0, int64_t c1,
                                              const float *kernel, float *u)
{
    const int64_t CF = C * F;
    for (int64_t c = c0; c < c1; c++) {
        const float *k = kernel + c * F;
        float *uc = u + c * F;
        int64_t f = 0;
        for (; f + WT_LEN <= F; f += WT_LEN) {
            WT_T g[9], r[WT_P];
            for (int i = 0; i < 9; i++)
                g[i] = WT_LOAD(k + i * CF + f);
            WT_KERNEL_TF(WT_T, WT_ADD, WT_SUB, WT_MULC, WT_NEG, g, r);
            for (int xi = 0; xi < WT_P; xi++)
                WT_STORE(uc + xi * CF + f, r[xi]);
        }
        for (; f < F; f++) {
            float g[9], r[WT_P];
            for (int i = 0; i < 9; i++)
                g[i] = k[i * CF + f];
            WT_KERNEL_TF(float, S_ADD, S_SUB, S_MULC, S_NEG, g, r);
            for (int xi = 0; xi < WT_P; xi++)
                uc[xi * CF + f] = r[xi];
        }
    }
}

/* V rows of tiles [t0, t0 + cnt): tile r's P transformed patches, each Cin long, at
 * V + r * P * Cin + xi * Cin. zeros: >= Cin zero floats (the padding). */
WT_ATTR static void WT_NAME(gather_tiles)(const fc_wino_problem *p, const float *x,
                                          const float *zeros, int64_t t0, int64_t cnt,
                                          float *V)
{
    const int64_t H = p->h, W = p->w, C = p->cin, tw = (p->cw + WT_M - 1) / WT_M;
    const int64_t per_image = fc_wino_tiles(WT_M, p->ch, p->cw);
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t t = t0 + r, n = t / per_image, ty = (t % per_image) / tw;
        const int64_t tx = t % per_image % tw;
        const int64_t iy0 = WT_M * ty - p->pad_top, ix0 = WT_M * tx - p->pad_left;
        const float *src[WT_P];
        for (int i = 0; i < WT_A; i++)
            for (int j = 0; j < WT_A; j++) {
                const int64_t iy = iy0 + i, ix = ix0 + j;
                const int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                src[WT_A * i + j] = inside ? x + ((n * H + iy) * W + ix) * C : zeros;
            }
        float *FC_RESTRICT dst = V + r * WT_P * C;
        int64_t c = 0;
        for (; c + WT_LEN <= C; c += WT_LEN) {
            WT_T d[WT_P], v[WT_P];
            for (int k = 0; k < WT_P; k++)
                d[k] = WT_LOAD(src[k] + c);
            WT_INPUT_TF(WT_T, WT_ADD, WT_SUB, WT_MULC, WT_NEG, d, v);
            for (int k = 0; k < WT_P; k++)
                WT_STORE(dst + k * C + c, v[k]);
        }
        for (; c < C; c++) {
            float d[WT_P], v[WT_P];
            for (int k = 0; k < WT_P; k++)
                d[k] = src[k][c];
            WT_INPUT_TF(float, S_ADD, S_SUB, S_MULC, S_NEG, d, v);
            for (int k = 0; k < WT_P; k++)
                dst[k * C + c] = v[k];
        }
    }
}

/* Output pixels of tiles [t0, t0 + cnt) = act(A^T m A + bias), m = tile r's P GEMM
 * results, each Cout long, at M + r * P * Cout + xi * Cout. Pixels past the computed
 * region's bottom/right edge (partial tiles) are not written. With p->pool, the tile's
 * 2x2 windows are max-pooled instead (whole tiles only, see winograd.h): out and
 * pool_indices (unless NULL) are (N, ch / 2, cw / 2, Cout), the index of a window's first
 * maximum an offset within the (ch, cw, Cout) conv output image, as max_pool2d records it. */
WT_ATTR static void WT_NAME(scatter_tiles)(const fc_wino_problem *p, const float *M,
                                           const float *bias, int relu, int64_t t0,
                                           int64_t cnt, float *out)
{
    const int64_t OH = p->oh, OW = p->ow, F = p->cout, tw = (p->cw + WT_M - 1) / WT_M;
    const int64_t per_image = fc_wino_tiles(WT_M, p->ch, p->cw);
    const int pool = p->pool;
    int32_t *const pool_idx = p->pool_indices;
    const int64_t PH = p->ch / 2, PW = p->cw / 2, CWF = p->cw * F;
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t t = t0 + r, n = t / per_image, ty = (t % per_image) / tw;
        const int64_t tx = t % per_image % tw;
        float *dst[WT_M * WT_M];
        int inside[WT_M * WT_M], whole = 1;
        for (int i = 0; i < WT_M; i++)
            for (int j = 0; j < WT_M; j++) {
                const int64_t oy = WT_M * ty + i, ox = WT_M * tx + j;
                const int k = WT_M * i + j;
                inside[k] = oy < p->ch && ox < p->cw;
                dst[k] = inside[k] && !pool ? out + ((n * OH + oy) * OW + ox) * F : out;
                whole &= inside[k];
            }
        /* pooled: window (wy, wx) of the tile is pooled pixel (py0 + wy, px0 + wx); its
         * first element is conv pixel (2 py, 2 px) */
        const int64_t py0 = WT_M / 2 * ty, px0 = WT_M / 2 * tx;
        const float *FC_RESTRICT src = M + r * WT_P * F;
        int64_t f = 0;
        for (; f + WT_LEN <= F; f += WT_LEN) {
            WT_T m[WT_P], y[WT_M * WT_M];
            for (int k = 0; k < WT_P; k++)
                m[k] = WT_LOAD(src + k * F + f);
            WT_OUTPUT_TF(WT_T, WT_ADD, WT_SUB, WT_MULC, WT_NEG, m, y);
            if (bias != NULL) {
                const WT_T b = WT_LOAD(bias + f);
                for (int k = 0; k < WT_M * WT_M; k++)
                    y[k] = WT_ADD(y[k], b);
            }
            if (relu)
                for (int k = 0; k < WT_M * WT_M; k++)
                    y[k] = WT_RELU(y[k]);
            if (pool) {
                for (int wy = 0; wy < WT_M / 2; wy++)
                    for (int wx = 0; wx < WT_M / 2; wx++) {
                        const int k0 = 2 * wy * WT_M + 2 * wx;
                        const int64_t py = py0 + wy, px = px0 + wx;
                        const int64_t at = 2 * py * CWF + 2 * px * F + f;
                        WT_T best = y[k0];
                        WT_I bidx = WT_IOTA(at);
                        WT_POOL_STEP(best, bidx, y[k0 + 1], WT_IOTA(at + F));
                        WT_POOL_STEP(best, bidx, y[k0 + WT_M], WT_IOTA(at + CWF));
                        WT_POOL_STEP(best, bidx, y[k0 + WT_M + 1], WT_IOTA(at + CWF + F));
                        const int64_t o = ((n * PH + py) * PW + px) * F + f;
                        WT_STORE(out + o, best);
                        if (pool_idx != NULL)
                            WT_STOREI(pool_idx + o, bidx);
                    }
            } else if (whole) {
                for (int k = 0; k < WT_M * WT_M; k++)
                    WT_STORE(dst[k] + f, y[k]);
            } else {
                for (int k = 0; k < WT_M * WT_M; k++)
                    if (inside[k])
                        WT_STORE(dst[k] + f, y[k]);
            }
        }
        for (; f < F; f++) {
            float m[WT_P], y[WT_M * WT_M];
            for (int k = 0; k < WT_P; k++)
                m[k] = src[k * F + f];
            WT_OUTPUT_TF(float, S_ADD, S_SUB, S_MULC, S_NEG, m, y);
            for (int k = 0; k < WT_M * WT_M; k++) {
                if (bias != NULL)
                    y[k] = y[k] + bias[f];
                if (relu)
                    y[k] = S_RELU(y[k]);
                if (inside[k] && !pool)
                    dst[k][f] = y[k];
            }
            if (pool)
                for (int wy = 0; wy < WT_M / 2; wy++)
                    for (int wx = 0; wx < WT_M / 2; wx++) {
                        const int k0 = 2 * wy * WT_M + 2 * wx;
                        const int64_t py = py0 + wy, px = px0 + wx;
                        const int64_t at = 2 * py * CWF + 2 * px * F + f;
                        const int ks[4] = {k0, k0 + 1, k0 + WT_M, k0 + WT_M + 1};
                        const int64_t offs[4] = {at, at + F, at + CWF, at + CWF + F};
                        float best = y[ks[0]];
                        int64_t bi = offs[0];
                        for (int e = 1; e < 4; e++)
                            if (y[ks[e]] > best) {
                                best = y[ks[e]];
                                bi = offs[e];
                            }
                        const int64_t o = ((n * PH + py) * PW + px) * F + f;
                        out[o] = best;
                        if (pool_idx != NULL)
                            pool_idx[o] = (int32_t)bi;
                    }
        }
    }
}

/* Kernel gradient, step 1: Y rows of tiles [t0, t0 + cnt): tile r's P values of A y A^T
 * (y = the tile's m x m output gradient, zero past the edges), each Cout long, at
 * Y + r * P * Cout + xi * Cout. zeros: >= Cout zero floats. */
WT_ATTR static void WT_NAME(gather_grad_tiles)(const fc_wino_problem *p, const float *dy,
                                               const float *zeros, int64_t t0, int64_t cnt,
                                               float *Y)
{
    const int64_t OH = p->oh, OW = p->ow, F = p->cout, tw = (OW + WT_M - 1) / WT_M;
    const int64_t per_image = fc_wino_tiles(WT_M, OH, OW);
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t t = t0 + r, n = t / per_image, ty = (t % per_image) / tw;
        const int64_t tx = t % per_image % tw;
        const float *src[WT_M * WT_M];
        for (int i = 0; i < WT_M; i++)
            for (int j = 0; j < WT_M; j++) {
                const int64_t oy = WT_M * ty + i, ox = WT_M * tx + j;
                const int inside = oy < OH && ox < OW;
                src[WT_M * i + j] = inside ? dy + ((n * OH + oy) * OW + ox) * F : zeros;
            }
        float *FC_RESTRICT dst = Y + r * WT_P * F;
        int64_t f = 0;
        for (; f + WT_LEN <= F; f += WT_LEN) {
            WT_T y[WT_M * WT_M], m[WT_P];
            for (int k = 0; k < WT_M * WT_M; k++)
                y[k] = WT_LOAD(src[k] + f);
            WT_OUTPUT_ADJ(WT_T, WT_ADD, WT_SUB, WT_MULC, WT_NEG, y, m);
            for (int k = 0; k < WT_P; k++)
                WT_STORE(dst + k * F + f, m[k]);
        }
        for (; f < F; f++) {
            float y[WT_M * WT_M], m[WT_P];
            for (int k = 0; k < WT_M * WT_M; k++)
                y[k] = src[k][f];
            WT_OUTPUT_ADJ(float, S_ADD, S_SUB, S_MULC, S_NEG, y, m);
            for (int k = 0; k < WT_P; k++)
                dst[k * F + f] = m[k];
        }
    }
}

/* Kernel gradient, step 3: dkernel (3, 3, C, F) rows of input channels [c0, c1) =
 * G^T (du_0 + du_1 + ... + du_{parts-1}) G, the partial sums du_s (P, C, F) each
 * part_stride floats apart, added in part order. */
WT_ATTR static void WT_NAME(kernel_grad_transform)(int64_t C, int64_t F, const float *du,
                                                   int64_t part_stride, int parts, int64_t c0,
                                                   int64_t c1, float *dkernel)
{
    const int64_t CF = C * F;
    for (int64_t c = c0; c < c1; c++) {
        const float *uc = du + c * F;
        float *kc = dkernel + c * F;
        int64_t f = 0;
        for (; f + WT_LEN <= F; f += WT_LEN) {
            WT_T u[WT_P], g[9];
            for (int xi = 0; xi < WT_P; xi++) {
                u[xi] = WT_LOAD(uc + xi * CF + f);
                for (int s = 1; s < parts; s++)
                    u[xi] = WT_ADD(u[xi], WT_LOAD(uc + s * part_stride + xi * CF + f));
            }
            WT_KERNEL_ADJ(WT_T, WT_ADD, WT_SUB, WT_MULC, WT_NEG, u, g);
            for (int i = 0; i < 9; i++)
                WT_STORE(kc + i * CF + f, g[i]);
        }
        for (; f < F; f++) {
            float u[WT_P], g[9];
            for (int xi = 0; xi < WT_P; xi++) {
                u[xi] = uc[xi * CF + f];
                for (int s = 1; s < parts; s++)
                    u[xi] = u[xi] + uc[s * part_stride + xi * CF + f];
            }
            WT_KERNEL_ADJ(float, S_ADD, S_SUB, S_MULC, S_NEG, u, g);
            for (int i = 0; i < 9; i++)
                kc[i * CF + f] = g[i];
        }
    }
}

#undef WT_NAME
#undef WT_CAT
#undef WT_CAT2
#undef WT_P
#undef WT_A
#undef WT_TILE
#undef WT_INPUT_TF
#undef WT_OUTPUT_TF
#undef WT_KERNEL_TF
#undef WT_OUTPUT_ADJ
#undef WT_KERNEL_ADJ
