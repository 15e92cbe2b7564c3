/* Template for winograd.c (deliberately no include guard): the tile transforms for one
 * SIMD level. The includer defines
 *   WT_SUFFIX, WT_ATTR                      name suffix and function attribute,
 *   WT_T, WT_LEN                            vector type and its number of floats,
 *   WT_LOAD(p), WT_STORE(p, v)              unaligned load / store,
 *   WT_ADD(a, b), WT_SUB(a, b), WT_HALF(a), WT_RELU(a)
 * and gets kernel_transform_<SUFFIX>, gather_tiles_<SUFFIX>, scatter_tiles_<SUFFIX>. Every
 * level does the same IEEE operations in the same order per channel (the scalar tails too),
 * so all agree bitwise. Layouts: see "Scratch layout" in winograd.c. */

#define WT_CAT2(a, b) a##_##b
#define WT_CAT(a, b) WT_CAT2(a, b)
#define WT_NAME(name) WT_CAT(name, WT_SUFFIX)

/* u (16, C, F) = G g G^T for every (c, f) of kernel (3, 3, C, F), c in [c0, c1), vectors
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
            WT_T g[9], r[16];
            for (int i = 0; i < 9; i++)
                g[i] = WT_LOAD(k + i * CF + f);
            WINO_KERNEL_TRANSFORM(WT_T, WT_ADD, WT_SUB, WT_HALF, g, r);
            for (int xi = 0; xi < 16; xi++)
                WT_STORE(uc + xi * CF + f, r[xi]);
        }
        for (; f < F; f++) {
            float g[9], r[16];
            for (int i = 0; i < 9; i++)
                g[i] = k[i * CF + f];
            WINO_KERNEL_TRANSFORM(float, S_ADD, S_SUB, S_HALF, g, r);
            for (int xi = 0; xi < 16; xi++)
                uc[xi * CF + f] = r[xi];
        }
    }
}

/* V rows of tiles [t0, t0 + cnt): tile r's 16 transformed patches, each Cin long, at
 * V + r * 16 * Cin + xi * Cin. zeros: >= Cin zero floats (the padding). */
WT_ATTR static void WT_NAME(gather_tiles)(const fc_wino_problem *p, const float *x,
                                          const float *zeros, int64_t t0, int64_t cnt,
                                          float *V)
{
    const int64_t H = p->h, W = p->w, C = p->cin, tw = (p->cw + 1) / 2;
    const int64_t per_image = fc_wino_tiles(p->ch, p->cw);
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t t = t0 + r, n = t / per_image, ty = (t % per_image) / tw;
        const int64_t tx = t % per_image % tw;
        const int64_t iy0 = 2 * ty - p->pad_top, ix0 = 2 * tx - p->pad_left;
        const float *src[16];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                const int64_t iy = iy0 + i, ix = ix0 + j;
                const int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                src[4 * i + j] = inside ? x + ((n * H + iy) * W + ix) * C : zeros;
            }
        float *FC_RESTRICT dst = V + r * 16 * C;
        int64_t c = 0;
        for (; c + WT_LEN <= C; c += WT_LEN) {
            WT_T d[16], v[16];
            for (int k = 0; k < 16; k++)
                d[k] = WT_LOAD(src[k] + c);
            WINO_INPUT_TRANSFORM(WT_T, WT_ADD, WT_SUB, d, v);
            for (int k = 0; k < 16; k++)
                WT_STORE(dst + k * C + c, v[k]);
        }
        for (; c < C; c++) {
            float d[16], v[16];
            for (int k = 0; k < 16; k++)
                d[k] = src[k][c];
            WINO_INPUT_TRANSFORM(float, S_ADD, S_SUB, d, v);
            for (int k = 0; k < 16; k++)
                dst[k * C + c] = v[k];
        }
    }
}

/* Output pixels of tiles [t0, t0 + cnt) = act(A^T m A + bias), m = tile r's 16 GEMM
 * results, each Cout long, at M + r * 16 * Cout + xi * Cout. Pixels past the output's
 * bottom/right edge (partial tiles) are not written. */
WT_ATTR static void WT_NAME(scatter_tiles)(const fc_wino_problem *p, const float *M,
                                           const float *bias, int relu, int64_t t0,
                                           int64_t cnt, float *out)
{
    const int64_t OH = p->oh, OW = p->ow, F = p->cout, tw = (p->cw + 1) / 2;
    const int64_t per_image = fc_wino_tiles(p->ch, p->cw);
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t t = t0 + r, n = t / per_image, ty = (t % per_image) / tw;
        const int64_t tx = t % per_image % tw;
        float *dst[4];
        int inside[4];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                const int64_t oy = 2 * ty + i, ox = 2 * tx + j;
                inside[2 * i + j] = oy < p->ch && ox < p->cw;
                dst[2 * i + j] = inside[2 * i + j] ? out + ((n * OH + oy) * OW + ox) * F : out;
            }
        const int whole = inside[1] && inside[2] && inside[3];
        const float *FC_RESTRICT src = M + r * 16 * F;
        int64_t f = 0;
        for (; f + WT_LEN <= F; f += WT_LEN) {
            WT_T m[16], y[4];
            for (int k = 0; k < 16; k++)
                m[k] = WT_LOAD(src + k * F + f);
            WINO_OUTPUT_TRANSFORM(WT_T, WT_ADD, WT_SUB, m, y);
            if (bias != NULL) {
                const WT_T b = WT_LOAD(bias + f);
                for (int k = 0; k < 4; k++)
                    y[k] = WT_ADD(y[k], b);
            }
            if (relu)
                for (int k = 0; k < 4; k++)
                    y[k] = WT_RELU(y[k]);
            if (whole) {
                for (int k = 0; k < 4; k++)
                    WT_STORE(dst[k] + f, y[k]);
            } else {
                for (int k = 0; k < 4; k++)
                    if (inside[k])
                        WT_STORE(dst[k] + f, y[k]);
            }
        }
        for (; f < F; f++) {
            float m[16], y[4];
            for (int k = 0; k < 16; k++)
                m[k] = src[k * F + f];
            WINO_OUTPUT_TRANSFORM(float, S_ADD, S_SUB, m, y);
            for (int k = 0; k < 4; k++) {
                if (bias != NULL)
                    y[k] = y[k] + bias[f];
                if (relu)
                    y[k] = S_RELU(y[k]);
                if (inside[k])
                    dst[k][f] = y[k];
            }
        }
    }
}

/* Kernel gradient, step 1: Y rows of tiles [t0, t0 + cnt): tile r's 16 values of A y A^T
 * (y = the tile's 2x2 output gradient, zero past the edges), each Cout long, at
 * Y + r * 16 * Cout + xi * Cout. zeros: >= Cout zero floats. */
WT_ATTR static void WT_NAME(gather_grad_tiles)(const fc_wino_problem *p, const float *dy,
                                               const float *zeros, int64_t t0, int64_t cnt,
                                               float *Y)
{
    const int64_t OH = p->oh, OW = p->ow, F = p->cout, tw = (OW + 1) / 2;
    const int64_t per_image = fc_wino_tiles(OH, OW);
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t t = t0 + r, n = t / per_image, ty = (t % per_image) / tw;
        const int64_t tx = t % per_image % tw;
        const float *src[4];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                const int64_t oy = 2 * ty + i, ox = 2 * tx + j;
                const int inside = oy < OH && ox < OW;
                src[2 * i + j] = inside ? dy + ((n * OH + oy) * OW + ox) * F : zeros;
            }
        float *FC_RESTRICT dst = Y + r * 16 * F;
        int64_t f = 0;
        for (; f + WT_LEN <= F; f += WT_LEN) {
            WT_T y[4], m[16];
            for (int k = 0; k < 4; k++)
                y[k] = WT_LOAD(src[k] + f);
            WINO_OUTPUT_TRANSFORM_ADJOINT(WT_T, WT_ADD, WT_SUB, WT_NEG, y, m);
            for (int k = 0; k < 16; k++)
                WT_STORE(dst + k * F + f, m[k]);
        }
        for (; f < F; f++) {
            float y[4], m[16];
            for (int k = 0; k < 4; k++)
                y[k] = src[k][f];
            WINO_OUTPUT_TRANSFORM_ADJOINT(float, S_ADD, S_SUB, S_NEG, y, m);
            for (int k = 0; k < 16; k++)
                dst[k * F + f] = m[k];
        }
    }
}

/* Kernel gradient, step 3: dkernel (3, 3, C, F) rows of input channels [c0, c1) =
 * G^T (du_0 + du_1 + ... + du_{parts-1}) G, the partial sums du_s (16, C, F) each
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
            WT_T u[16], g[9];
            for (int xi = 0; xi < 16; xi++) {
                u[xi] = WT_LOAD(uc + xi * CF + f);
                for (int s = 1; s < parts; s++)
                    u[xi] = WT_ADD(u[xi], WT_LOAD(uc + s * part_stride + xi * CF + f));
            }
            WINO_KERNEL_TRANSFORM_ADJOINT(WT_T, WT_ADD, WT_SUB, WT_HALF, u, g);
            for (int i = 0; i < 9; i++)
                WT_STORE(kc + i * CF + f, g[i]);
        }
        for (; f < F; f++) {
            float u[16], g[9];
            for (int xi = 0; xi < 16; xi++) {
                u[xi] = uc[xi * CF + f];
                for (int s = 1; s < parts; s++)
                    u[xi] = u[xi] + uc[s * part_stride + xi * CF + f];
            }
            WINO_KERNEL_TRANSFORM_ADJOINT(float, S_ADD, S_SUB, S_HALF, u, g);
            for (int i = 0; i < 9; i++)
                kc[i * CF + f] = g[i];
        }
    }
}

#undef WT_NAME
#undef WT_CAT
#undef WT_CAT2
