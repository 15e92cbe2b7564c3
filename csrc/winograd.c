/* Winograd F(2x2, 3x3) and F(4x4, 3x3): transforms and the tiled driver (see winograd.h).
 *
 * F(2x2, 3x3):
 *   B^T = | 1  0 -1  0 |    G = | 1    0    0  |    A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |        | 1/2  1/2  1/2|          | 0  1 -1 -1 |
 *         | 0 -1  1  0 |        | 1/2 -1/2  1/2|
 *         | 0  1  0 -1 |        | 0    0    1  |
 * F(4x4, 3x3) (interpolation points 0, 1, -1, 2, -2, infinity):
 *   B^T = | 4  0 -5  0  1  0 |   G = |  1/4   0     0   |   A^T = | 1  1  1  1  1  0 |
 *         | 0 -4 -4  1  1  0 |       | -1/6  -1/6  -1/6 |         | 0  1 -1  2 -2  0 |
 *         | 0  4 -4 -1  1  0 |       | -1/6   1/6  -1/6 |         | 0  1  1  4  4  0 |
 *         | 0 -2 -1  2  1  0 |       |  1/24  1/12  1/6 |         | 0  1 -1  8 -8  1 |
 *         | 0  2 -1 -2  1  0 |       |  1/24 -1/12  1/6 |
 *         | 0  4  0 -5  0  1 |       |  0     0     1   |
 *
 * The transforms are element-wise across channels, which are contiguous in NHWC, so they
 * run on vectors of channels: AVX (8 floats) in the FC_TARGET_AVX2 twins, 4-float GCC/Clang
 * vectors (SSE2, NEON, ...) or scalars in the portable ones (winograd_tiles.h is the
 * template for each tile size and level). All levels do the same multiplications and
 * additions in the same order (no FMA: the build has -ffp-contract=off), so they agree
 * bitwise; only the GEMM differs between SIMD levels (FMA or not).
 *
 * Scratch layout, per thread: V (piece tiles x P x Cin) then M (piece x P x Cout),
 * P = (m + 2)^2, tile-major, so the transforms read/write one contiguous block per tile
 * and the P GEMMs M[xi] = V[xi] @ U[xi] see V[xi] / M[xi] as matrices with row stride
 * P * C.
 */
#include <stdint.h>
#include <string.h>
#include "winograd.h"
#include "gemm.h"

#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

/* Per thread, tiles go through the transforms and GEMMs in pieces of at most this many
 * floats of V + M (V and M should stay in L2 between the transforms and the GEMMs). */
#ifndef FC_WINO_PIECE_FLOATS
#define FC_WINO_PIECE_FLOATS (1 << 18)
#endif

int64_t fc_wino_tiles(int m, int64_t oh, int64_t ow)
{
    return ((oh + m - 1) / m) * ((ow + m - 1) / m);
}

/* Zero floats at the start of the scratch (the padding the gathers read). */
static int64_t wino_zeros(int64_t cin, int64_t cout)
{
    return ((cin > cout ? cin : cout) + 15) / 16 * 16;
}

/* The P GEMMs of every piece share their B (a transformed kernel), so fc_wino_conv packs
 * each once per call, in the scratch after the tiles, when all P take at most this many
 * floats (else each GEMM packs its own). */
#ifndef FC_WINO_PREPACK_MAX_FLOATS
#define FC_WINO_PREPACK_MAX_FLOATS (1 << 21)
#endif

/* Floats of one packed B of the conv GEMMs (Cin x Cout), or 0 when not prepacked. */
static int64_t wino_prepacked_floats(int m, int64_t cin, int64_t cout)
{
    const int64_t pb = fc_sgemm_packed_b_floats(cin, cout);
    return fc_wino_points(m) * pb <= FC_WINO_PREPACK_MAX_FLOATS ? pb : 0;
}

int64_t fc_wino_scratch_size(int m, int64_t cin, int64_t cout, int64_t chunk_tiles)
{
    const int64_t pb = wino_prepacked_floats(m, cin, cout);
    return wino_zeros(cin, cout) + chunk_tiles * fc_wino_tile_floats(m, cin, cout)
           + (pb > 0 ? 16 + fc_wino_points(m) * pb : 0); /* (+16: alignment) */
}

/* ---------------------------------------------------------------------------------- */
/* The transforms, for any element type T with ADD / SUB / MULC (times a constant) / NEG.
 * Each is a 1-D transform applied to the columns, then to the rows.                    */

/* F(2x2): v = B^T d B for a 4x4 patch d (row-major, d[4 * i + j]). */
#define W2_INPUT_TF(T, ADD, SUB, MULC, NEG, d, v)                                   \
    do {                                                                            \
        T t_[16];                                                                   \
        for (int j_ = 0; j_ < 4; j_++) {                                            \
            t_[0 + j_] = SUB(d[0 + j_], d[8 + j_]);                                 \
            t_[4 + j_] = ADD(d[4 + j_], d[8 + j_]);                                 \
            t_[8 + j_] = SUB(d[8 + j_], d[4 + j_]);                                 \
            t_[12 + j_] = SUB(d[4 + j_], d[12 + j_]);                               \
        }                                                                           \
        for (int i_ = 0; i_ < 16; i_ += 4) {                                        \
            v[i_ + 0] = SUB(t_[i_ + 0], t_[i_ + 2]);                                \
            v[i_ + 1] = ADD(t_[i_ + 1], t_[i_ + 2]);                                \
            v[i_ + 2] = SUB(t_[i_ + 2], t_[i_ + 1]);                                \
            v[i_ + 3] = SUB(t_[i_ + 1], t_[i_ + 3]);                                \
        }                                                                           \
    } while (0)

/* F(2x2): y (2x2, row-major) = A^T m A for a 4x4 m. */
#define W2_OUTPUT_TF(T, ADD, SUB, MULC, NEG, m, y)                                  \
    do {                                                                            \
        T t_[8];                                                                    \
        for (int j_ = 0; j_ < 4; j_++) {                                            \
            t_[j_] = ADD(ADD(m[j_], m[4 + j_]), m[8 + j_]);                         \
            t_[4 + j_] = SUB(SUB(m[4 + j_], m[8 + j_]), m[12 + j_]);                \
        }                                                                           \
        for (int i_ = 0; i_ < 2; i_++) {                                            \
            y[2 * i_ + 0] = ADD(ADD(t_[4 * i_ + 0], t_[4 * i_ + 1]), t_[4 * i_ + 2]); \
            y[2 * i_ + 1] = SUB(SUB(t_[4 * i_ + 1], t_[4 * i_ + 2]), t_[4 * i_ + 3]); \
        }                                                                           \
    } while (0)

/* F(2x2): u = G g G^T for a 3x3 g (row-major). */
#define W2_KERNEL_TF(T, ADD, SUB, MULC, NEG, g, u)                                  \
    do {                                                                            \
        T t_[12]; /* G g: 4 x 3 */                                                  \
        for (int j_ = 0; j_ < 3; j_++) {                                            \
            const T s_ = ADD(g[j_], g[6 + j_]);                                     \
            t_[j_] = g[j_];                                                         \
            t_[3 + j_] = MULC(ADD(s_, g[3 + j_]), 0.5f);                            \
            t_[6 + j_] = MULC(SUB(s_, g[3 + j_]), 0.5f);                            \
            t_[9 + j_] = g[6 + j_];                                                 \
        }                                                                           \
        for (int i_ = 0; i_ < 4; i_++) {                                            \
            const T s_ = ADD(t_[3 * i_], t_[3 * i_ + 2]);                           \
            u[4 * i_ + 0] = t_[3 * i_];                                             \
            u[4 * i_ + 1] = MULC(ADD(s_, t_[3 * i_ + 1]), 0.5f);                    \
            u[4 * i_ + 2] = MULC(SUB(s_, t_[3 * i_ + 1]), 0.5f);                    \
            u[4 * i_ + 3] = t_[3 * i_ + 2];                                         \
        }                                                                           \
    } while (0)

/* F(2x2): m (4x4) = A y A^T for a 2x2 y: the adjoint of the output transform. */
#define W2_OUTPUT_ADJ(T, ADD, SUB, MULC, NEG, y, m)                                 \
    do {                                                                            \
        T r_[8]; /* A y: 4 x 2 */                                                   \
        for (int j_ = 0; j_ < 2; j_++) {                                            \
            r_[j_] = y[j_];                                                         \
            r_[2 + j_] = ADD(y[j_], y[2 + j_]);                                     \
            r_[4 + j_] = SUB(y[j_], y[2 + j_]);                                     \
            r_[6 + j_] = NEG(y[2 + j_]);                                            \
        }                                                                           \
        for (int i_ = 0; i_ < 4; i_++) {                                            \
            m[4 * i_ + 0] = r_[2 * i_];                                             \
            m[4 * i_ + 1] = ADD(r_[2 * i_], r_[2 * i_ + 1]);                        \
            m[4 * i_ + 2] = SUB(r_[2 * i_], r_[2 * i_ + 1]);                        \
            m[4 * i_ + 3] = NEG(r_[2 * i_ + 1]);                                    \
        }                                                                           \
    } while (0)

/* F(2x2): g (3x3) = G^T u G for a 4x4 u: the adjoint of the kernel transform. */
#define W2_KERNEL_ADJ(T, ADD, SUB, MULC, NEG, u, g)                                 \
    do {                                                                            \
        T t_[12]; /* G^T u: 3 x 4 */                                                \
        for (int j_ = 0; j_ < 4; j_++) {                                            \
            const T p_ = MULC(ADD(u[4 + j_], u[8 + j_]), 0.5f);                     \
            t_[j_] = ADD(u[j_], p_);                                                \
            t_[4 + j_] = MULC(SUB(u[4 + j_], u[8 + j_]), 0.5f);                     \
            t_[8 + j_] = ADD(p_, u[12 + j_]);                                       \
        }                                                                           \
        for (int i_ = 0; i_ < 3; i_++) {                                            \
            const T p_ = MULC(ADD(t_[4 * i_ + 1], t_[4 * i_ + 2]), 0.5f);           \
            g[3 * i_ + 0] = ADD(t_[4 * i_], p_);                                    \
            g[3 * i_ + 1] = MULC(SUB(t_[4 * i_ + 1], t_[4 * i_ + 2]), 0.5f);        \
            g[3 * i_ + 2] = ADD(p_, t_[4 * i_ + 3]);                                \
        }                                                                           \
    } while (0)

/* F(4x4), 1-D: r[0..5] (stride rs) = B^T d for d[0..5] (stride ds). */
#define W4_IN_1D(T, ADD, SUB, MULC, d, ds, r, rs)                                   \
    do {                                                                            \
        const T p_ = SUB(d[4 * (ds)], MULC(d[2 * (ds)], 4.0f));                     \
        const T q_ = SUB(d[3 * (ds)], MULC(d[1 * (ds)], 4.0f));                     \
        const T a_ = SUB(d[4 * (ds)], d[2 * (ds)]);                                 \
        const T b_ = MULC(SUB(d[3 * (ds)], d[1 * (ds)]), 2.0f);                     \
        r[0] = ADD(SUB(MULC(d[0], 4.0f), MULC(d[2 * (ds)], 5.0f)), d[4 * (ds)]);    \
        r[1 * (rs)] = ADD(p_, q_);                                                  \
        r[2 * (rs)] = SUB(p_, q_);                                                  \
        r[3 * (rs)] = ADD(a_, b_);                                                  \
        r[4 * (rs)] = SUB(a_, b_);                                                  \
        r[5 * (rs)] = ADD(SUB(MULC(d[1 * (ds)], 4.0f), MULC(d[3 * (ds)], 5.0f)),    \
                          d[5 * (ds)]);                                             \
    } while (0)

/* F(4x4): v = B^T d B for a 6x6 patch d (row-major). */
#define W4_INPUT_TF(T, ADD, SUB, MULC, NEG, d, v)                                   \
    do {                                                                            \
        T t_[36];                                                                   \
        for (int j_ = 0; j_ < 6; j_++)                                              \
            W4_IN_1D(T, ADD, SUB, MULC, (d + j_), 6, (t_ + j_), 6);                 \
        for (int i_ = 0; i_ < 6; i_++)                                              \
            W4_IN_1D(T, ADD, SUB, MULC, (t_ + 6 * i_), 1, (v + 6 * i_), 1);         \
    } while (0)

/* F(4x4), 1-D: y[0..3] (stride ys) = A^T m for m[0..5] (stride ms). */
#define W4_OUT_1D(T, ADD, SUB, MULC, m, ms, y, ys)                                  \
    do {                                                                            \
        const T a_ = ADD(m[1 * (ms)], m[2 * (ms)]), b_ = SUB(m[1 * (ms)], m[2 * (ms)]); \
        const T c_ = ADD(m[3 * (ms)], m[4 * (ms)]), e_ = SUB(m[3 * (ms)], m[4 * (ms)]); \
        y[0] = ADD(ADD(m[0], a_), c_);                                              \
        y[1 * (ys)] = ADD(b_, MULC(e_, 2.0f));                                      \
        y[2 * (ys)] = ADD(a_, MULC(c_, 4.0f));                                      \
        y[3 * (ys)] = ADD(ADD(b_, MULC(e_, 8.0f)), m[5 * (ms)]);                    \
    } while (0)

/* F(4x4): y (4x4, row-major) = A^T m A for a 6x6 m. */
#define W4_OUTPUT_TF(T, ADD, SUB, MULC, NEG, m, y)                                  \
    do {                                                                            \
        T t_[24]; /* A^T m: 4 x 6 */                                                \
        for (int j_ = 0; j_ < 6; j_++)                                              \
            W4_OUT_1D(T, ADD, SUB, MULC, (m + j_), 6, (t_ + j_), 6);                \
        for (int i_ = 0; i_ < 4; i_++)                                              \
            W4_OUT_1D(T, ADD, SUB, MULC, (t_ + 6 * i_), 1, (y + 4 * i_), 1);        \
    } while (0)

/* F(4x4), 1-D: u[0..5] (stride us) = G g for g[0..2] (stride gs). */
#define W4_KER_1D(T, ADD, SUB, MULC, g, gs, u, us)                                  \
    do {                                                                            \
        const T s_ = ADD(g[0], g[2 * (gs)]);                                        \
        const T w_ = ADD(MULC(g[0], 0.25f), g[2 * (gs)]);                           \
        const T h_ = MULC(g[1 * (gs)], 0.5f);                                       \
        u[0] = MULC(g[0], 0.25f);                                                   \
        u[1 * (us)] = MULC(ADD(s_, g[1 * (gs)]), -1.0f / 6.0f);                     \
        u[2 * (us)] = MULC(SUB(s_, g[1 * (gs)]), -1.0f / 6.0f);                     \
        u[3 * (us)] = MULC(ADD(w_, h_), 1.0f / 6.0f);                               \
        u[4 * (us)] = MULC(SUB(w_, h_), 1.0f / 6.0f);                               \
        u[5 * (us)] = g[2 * (gs)];                                                  \
    } while (0)

/* F(4x4): u = G g G^T for a 3x3 g (row-major). */
#define W4_KERNEL_TF(T, ADD, SUB, MULC, NEG, g, u)                                  \
    do {                                                                            \
        T t_[18]; /* G g: 6 x 3 */                                                  \
        for (int j_ = 0; j_ < 3; j_++)                                              \
            W4_KER_1D(T, ADD, SUB, MULC, (g + j_), 3, (t_ + j_), 3);                \
        for (int i_ = 0; i_ < 6; i_++)                                              \
            W4_KER_1D(T, ADD, SUB, MULC, (t_ + 3 * i_), 1, (u + 6 * i_), 1);        \
    } while (0)

/* F(4x4), 1-D: m[0..5] (stride ms) = A y for y[0..3] (stride ys). */
#define W4_OUTADJ_1D(T, ADD, SUB, MULC, y, ys, m, ms)                               \
    do {                                                                            \
        const T a_ = ADD(y[0], y[2 * (ys)]), b_ = ADD(y[1 * (ys)], y[3 * (ys)]);    \
        const T c_ = ADD(y[0], MULC(y[2 * (ys)], 4.0f));                            \
        const T e_ = ADD(MULC(y[1 * (ys)], 2.0f), MULC(y[3 * (ys)], 8.0f));         \
        m[0] = y[0];                                                                \
        m[1 * (ms)] = ADD(a_, b_);                                                  \
        m[2 * (ms)] = SUB(a_, b_);                                                  \
        m[3 * (ms)] = ADD(c_, e_);                                                  \
        m[4 * (ms)] = SUB(c_, e_);                                                  \
        m[5 * (ms)] = y[3 * (ys)];                                                  \
    } while (0)

/* F(4x4): m (6x6) = A y A^T for a 4x4 y: the adjoint of the output transform. */
#define W4_OUTPUT_ADJ(T, ADD, SUB, MULC, NEG, y, m)                                 \
    do {                                                                            \
        T r_[24]; /* A y: 6 x 4 */                                                  \
        for (int j_ = 0; j_ < 4; j_++)                                              \
            W4_OUTADJ_1D(T, ADD, SUB, MULC, (y + j_), 4, (r_ + j_), 4);             \
        for (int i_ = 0; i_ < 6; i_++)                                              \
            W4_OUTADJ_1D(T, ADD, SUB, MULC, (r_ + 4 * i_), 1, (m + 6 * i_), 1);     \
    } while (0)

/* F(4x4), 1-D: g[0..2] (stride gs) = G^T u for u[0..5] (stride us). */
#define W4_KERADJ_1D(T, ADD, SUB, MULC, u, us, g, gs)                               \
    do {                                                                            \
        const T a_ = ADD(u[1 * (us)], u[2 * (us)]), b_ = SUB(u[2 * (us)], u[1 * (us)]); \
        const T c_ = ADD(u[3 * (us)], u[4 * (us)]), e_ = SUB(u[3 * (us)], u[4 * (us)]); \
        g[0] = ADD(SUB(MULC(u[0], 0.25f), MULC(a_, 1.0f / 6.0f)),                   \
                   MULC(c_, 1.0f / 24.0f));                                         \
        g[1 * (gs)] = ADD(MULC(b_, 1.0f / 6.0f), MULC(e_, 1.0f / 12.0f));           \
        g[2 * (gs)] = ADD(MULC(SUB(c_, a_), 1.0f / 6.0f), u[5 * (us)]);             \
    } while (0)

/* F(4x4): g (3x3) = G^T u G for a 6x6 u: the adjoint of the kernel transform. */
#define W4_KERNEL_ADJ(T, ADD, SUB, MULC, NEG, u, g)                                 \
    do {                                                                            \
        T t_[18]; /* G^T u: 3 x 6 */                                                \
        for (int j_ = 0; j_ < 6; j_++)                                              \
            W4_KERADJ_1D(T, ADD, SUB, MULC, (u + j_), 6, (t_ + j_), 6);             \
        for (int i_ = 0; i_ < 3; i_++)                                              \
            W4_KERADJ_1D(T, ADD, SUB, MULC, (t_ + 6 * i_), 1, (g + 3 * i_), 1);     \
    } while (0)

/* Scalar operations (the tails of every level). relu: NaN and -0 become +0, as the
 * im2col path's max(., 0). */
#define S_ADD(a, b) ((a) + (b))
#define S_SUB(a, b) ((a) - (b))
#define S_MULC(a, c) ((a) * (c))
#define S_RELU(a) ((a) > 0.0f ? (a) : 0.0f)
#define S_NEG(a) (-(a))

/* Portable level: 4-float GCC/Clang vectors (loads through an unaligned, may_alias type),
 * else scalars. */
#if defined(__GNUC__) || defined(__clang__)
typedef float wino_v4 __attribute__((vector_size(16)));
typedef float wino_v4u __attribute__((vector_size(16), aligned(4), may_alias));
typedef int wino_m4 __attribute__((vector_size(16)));
typedef int wino_m4u __attribute__((vector_size(16), aligned(4), may_alias));
#define WT_T wino_v4
#define WT_LEN 4
#define WT_LOAD(p) ((wino_v4)(*(const wino_v4u *)(p)))
#define WT_STORE(p, v) (*(wino_v4u *)(p) = (v))
#define WT_RELU(a) ((wino_v4)((wino_m4)(a) & ((a) > (wino_v4){0.0f, 0.0f, 0.0f, 0.0f})))
#define WT_I wino_m4
#define WT_IOTA(i) ((wino_m4){0, 1, 2, 3} + (int)(i))
#define WT_STOREI(p, v) (*(wino_m4u *)(p) = (v))
#define WT_POOL_STEP(best, idx, v, vidx)                                            \
    do {                                                                            \
        const wino_m4 gt_ = (v) > (best);                                           \
        best = (wino_v4)(((wino_m4)(v) & gt_) | ((wino_m4)(best) & ~gt_));          \
        idx = ((vidx) & gt_) | ((idx) & ~gt_);                                      \
    } while (0)
#else
#define WT_T float
#define WT_LEN 1
#define WT_LOAD(p) (*(p))
#define WT_STORE(p, v) (*(p) = (v))
#define WT_RELU(a) S_RELU(a)
#define WT_I int32_t
#define WT_IOTA(i) ((int32_t)(i))
#define WT_STOREI(p, v) (*(p) = (v))
#define WT_POOL_STEP(best, idx, v, vidx)                                            \
    do {                                                                            \
        if ((v) > (best)) {                                                         \
            best = (v);                                                             \
            idx = (vidx);                                                           \
        }                                                                           \
    } while (0)
#endif
#define WT_ADD(a, b) ((a) + (b))
#define WT_SUB(a, b) ((a) - (b))
#define WT_MULC(a, c) ((a) * (c))
#define WT_NEG(a) (-(a))
#define WT_ATTR
#define WT_LEVEL generic
#define WT_M 2
#include "winograd_tiles.h"
#undef WT_M
#define WT_M 4
#include "winograd_tiles.h"
#undef WT_M
#undef WT_LEVEL
#undef WT_T
#undef WT_LEN
#undef WT_LOAD
#undef WT_STORE
#undef WT_ADD
#undef WT_SUB
#undef WT_MULC
#undef WT_RELU
#undef WT_NEG
#undef WT_ATTR
#undef WT_I
#undef WT_IOTA
#undef WT_STOREI
#undef WT_POOL_STEP

#ifdef FC_HAVE_AVX2_PATH
#define WT_T __m256
#define WT_LEN 8
#define WT_LOAD(p) _mm256_loadu_ps(p)
#define WT_STORE(p, v) _mm256_storeu_ps((p), (v))
#define WT_ADD(a, b) _mm256_add_ps((a), (b))
#define WT_SUB(a, b) _mm256_sub_ps((a), (b))
#define WT_MULC(a, c) _mm256_mul_ps((a), _mm256_set1_ps(c))
#define WT_RELU(a) _mm256_and_ps((a), _mm256_cmp_ps((a), _mm256_setzero_ps(), _CMP_GT_OQ))
#define WT_NEG(a) _mm256_xor_ps((a), _mm256_set1_ps(-0.0f))
#define WT_I __m256i
#define WT_IOTA(i) _mm256_add_epi32(_mm256_set1_epi32((int)(i)), \
                                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define WT_STOREI(p, v) _mm256_storeu_si256((__m256i *)(p), (v))
#define WT_POOL_STEP(best, idx, v, vidx)                                            \
    do {                                                                            \
        const __m256 gt_ = _mm256_cmp_ps((v), (best), _CMP_GT_OQ);                 \
        best = _mm256_blendv_ps((best), (v), gt_);                                  \
        idx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(idx),        \
                                                   _mm256_castsi256_ps(vidx), gt_)); \
    } while (0)
#define WT_ATTR FC_TARGET_AVX2
#define WT_LEVEL avx2
#define WT_M 2
#include "winograd_tiles.h"
#undef WT_M
#define WT_M 4
#include "winograd_tiles.h"
#undef WT_M
#undef WT_LEVEL
#endif

typedef struct {
    void (*kernel)(int64_t C, int64_t F, int64_t c0, int64_t c1, const float *kernel,
                   float *u);
    void (*gather)(const fc_wino_problem *p, const float *x, const float *zeros, int64_t t0,
                   int64_t cnt, float *V);
    void (*scatter)(const fc_wino_problem *p, const float *M, const float *bias, int relu,
                    int64_t t0, int64_t cnt, float *out);
    void (*gather_grad)(const fc_wino_problem *p, const float *dy, const float *zeros,
                        int64_t t0, int64_t cnt, float *Y);
    void (*kernel_grad)(int64_t C, int64_t F, const float *du, int64_t part_stride, int parts,
                        int64_t c0, int64_t c1, float *dkernel);
} wino_ops;

#define WINO_OPS(tile, level)                                                       \
    {kernel_transform_##tile##_##level, gather_tiles_##tile##_##level,                \
     scatter_tiles_##tile##_##level, gather_grad_tiles_##tile##_##level,              \
     kernel_grad_transform_##tile##_##level}

static wino_ops pick_wino_ops(int m)
{
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        const wino_ops f2 = WINO_OPS(f2, avx2), f4 = WINO_OPS(f4, avx2);
        return m == 4 ? f4 : f2;
    }
#endif
    const wino_ops f2 = WINO_OPS(f2, generic), f4 = WINO_OPS(f4, generic);
    return m == 4 ? f4 : f2;
}

void fc_wino_transform_kernel(int m, int64_t c, int64_t f, const float *kernel, float *u)
{
    const wino_ops ops = pick_wino_ops(m);
    int64_t c0;
    /* threads take blocks of input channels (disjoint rows of u): a serial transform was
     * ~0.03 ms of a 0.13 ms 64x64-channel layer at 2 threads */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (fc_wino_points(m) * c * f > 16384)
    for (c0 = 0; c0 < c; c0 += 8)
        ops.kernel(c, f, c0, c0 + 8 < c ? c0 + 8 : c, kernel, u);
}

/* ---------------------------------------------------------------------------------- */

/* Tiles [t0, t0 + cnt): transform, P GEMMs, inverse transform. packed: the P B operands
 * packed once (pb floats each), or NULL. */
static int run_piece(const fc_wino_problem *p, const wino_ops *ops, const float *x,
                     const float *zeros, const float *u, const float *packed, int64_t pb,
                     const float *bias, int relu, float *out, float *V, float *M, int64_t t0,
                     int64_t cnt)
{
    const int64_t Ci = p->cin, Co = p->cout, P = fc_wino_points(p->m);
    int rc = FC_OK;
    ops->gather(p, x, zeros, t0, cnt, V);
    for (int64_t xi = 0; xi < P && rc == FC_OK; xi++) {
        if (packed != NULL)
            rc = fc_sgemm_serial_packed_b(0, cnt, Co, Ci, V + xi * Ci, P * Ci, packed + xi * pb,
                                          0.0f, M + xi * Co, P * Co);
        else
            rc = fc_sgemm_serial(0, 0, cnt, Co, Ci, 1.0f, V + xi * Ci, P * Ci, u + xi * Ci * Co,
                                 Co, 0.0f, M + xi * Co, P * Co);
    }
    if (rc == FC_OK)
        ops->scatter(p, M, bias, relu, t0, cnt, out);
    return rc;
}

int64_t fc_wino_packed_size(int m, int64_t cin, int64_t cout)
{
    const int64_t pb = wino_prepacked_floats(m, cin, cout);
    return pb > 0 ? fc_wino_points(m) * pb : 0;
}

void fc_wino_pack(int m, int64_t cin, int64_t cout, const float *u, float *packed)
{
    const int64_t pb = wino_prepacked_floats(m, cin, cout);
    for (int64_t xi = 0; pb > 0 && xi < fc_wino_points(m); xi++)
        fc_sgemm_pack_b(0, cin, cout, u + xi * cin * cout, cout, packed + xi * pb);
}

int fc_wino_conv(const fc_wino_problem *p, const float *x, const float *u,
                 const float *prepacked, const float *bias, int relu, float *out,
                 float *scratch, int64_t chunk_tiles)
{
    const int64_t P = fc_wino_points(p->m);
    const int64_t tile_floats = fc_wino_tile_floats(p->m, p->cin, p->cout);
    const int64_t total = p->n * fc_wino_tiles(p->m, p->ch, p->cw);
    const int64_t n_zeros = wino_zeros(p->cin, p->cout);
    const wino_ops ops = pick_wino_ops(p->m);
    int nthreads = fc_get_num_threads();
    int rc = FC_OK;
    if (total <= 0 || p->cout <= 0)
        return FC_OK;
    if (nthreads > chunk_tiles)
        nthreads = (int)chunk_tiles;
    if (nthreads < 1)
        nthreads = 1;
    /* per-thread piece: a share of the chunk, at most FC_WINO_PIECE_FLOATS (but >= 1 tile) */
    int64_t piece = chunk_tiles / nthreads, cap = FC_WINO_PIECE_FLOATS / tile_floats;
    if (cap < 1)
        cap = 1;
    if (piece > cap)
        piece = cap;
    memset(scratch, 0, (size_t)n_zeros * sizeof(float));
    const float *zeros = scratch;
    float *tiles = scratch + n_zeros;
    const int64_t pb = wino_prepacked_floats(p->m, p->cin, p->cout);
    /* packed panels are read with aligned loads: start them on a 64-byte boundary */
    float *packed = NULL;
    if (pb > 0 && prepacked == NULL) {
        const uintptr_t at = (uintptr_t)(tiles + chunk_tiles * tile_floats);
        packed = (float *)((at + 63) & ~(uintptr_t)63);
    }
    const float *panels = pb > 0 && prepacked ? prepacked : packed; /* NULL: GEMMs on u */
#pragma omp parallel num_threads(nthreads) if (total * P * p->cin * p->cout > 262144)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        const int64_t a = total * t / nt, b = total * (t + 1) / nt;
        float *V = tiles + t * piece * tile_floats, *M = V + P * piece * p->cin;
        int my_rc = FC_OK;
        int64_t xi;
        if (packed != NULL) {
#pragma omp for schedule(static)
            for (xi = 0; xi < P; xi++) /* (implicit barrier: all packed before use) */
                fc_sgemm_pack_b(0, p->cin, p->cout, u + xi * p->cin * p->cout, p->cout,
                                packed + xi * pb);
        }
        for (int64_t t0 = a; t0 < b && my_rc == FC_OK; t0 += piece) {
            const int64_t cnt = b - t0 < piece ? b - t0 : piece;
            my_rc = run_piece(p, &ops, x, zeros, u, panels, pb, bias, relu, out, V, M, t0, cnt);
        }
        if (my_rc != FC_OK) {
#pragma omp atomic write
            rc = my_rc;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Kernel gradient: dU[xi] = sum over tiles of V[xi]^T Y[xi] (the transposed GEMMs), then
 * dkernel = G^T dU G. The tiles are cut into `parts` fixed ranges, each walked in pieces
 * of a fixed size and summed into its own dU (beta = 1 after its first piece); the parts
 * are added in order. Nothing depends on the thread count. */

int fc_wino_kernel_grad(const fc_wino_problem *p, const float *x, const float *dy,
                        float *dkernel, float *du, int parts, float *scratch,
                        int64_t chunk_tiles)
{
    const int64_t Ci = p->cin, Co = p->cout, CF = Ci * Co, P = fc_wino_points(p->m);
    const int64_t tile_floats = fc_wino_tile_floats(p->m, Ci, Co);
    const int64_t total = p->n * fc_wino_tiles(p->m, p->oh, p->ow);
    const int64_t n_zeros = wino_zeros(Ci, Co);
    const wino_ops ops = pick_wino_ops(p->m);
    int rc = FC_OK;
    if (CF <= 0)
        return FC_OK;
    if (parts < 1)
        parts = 1;
    if (parts > chunk_tiles)
        parts = (int)chunk_tiles;
    const int64_t piece = chunk_tiles / parts; /* >= 1, geometry only */
    memset(scratch, 0, (size_t)n_zeros * sizeof(float));
    const float *zeros = scratch;
    float *tiles = scratch + n_zeros;
    if (parts == 1) {
        /* one sum (big C * F): pieces in turn, threads split the transforms and the GEMMs
         * (fc_sgemm gives fc_sgemm_serial's bits) */
        float *V = tiles, *Y = V + P * piece * Ci;
        for (int64_t t0 = 0; t0 < total && rc == FC_OK; t0 += piece) {
            const int64_t cnt = total - t0 < piece ? total - t0 : piece;
#pragma omp parallel num_threads(fc_get_num_threads()) if (cnt * tile_floats > 65536)
            {
                const int t = fc_thread_id(), nt = fc_team_size();
                const int64_t a = cnt * t / nt, b = cnt * (t + 1) / nt;
                ops.gather(p, x, zeros, t0 + a, b - a, V + a * P * Ci);
                ops.gather_grad(p, dy, zeros, t0 + a, b - a, Y + a * P * Co);
            }
            for (int64_t xi = 0; xi < P && rc == FC_OK; xi++)
                rc = fc_sgemm(1, 0, Ci, Co, cnt, 1.0f, V + xi * Ci, P * Ci, Y + xi * Co,
                              P * Co, t0 == 0 ? 0.0f : 1.0f, du + xi * CF, Co);
        }
        if (total <= 0)
            memset(du, 0, (size_t)(P * CF) * sizeof(float));
        if (rc == FC_OK) {
#pragma omp parallel num_threads(fc_get_num_threads()) if (P * CF > 65536)
            {
                const int t = fc_thread_id(), nt = fc_team_size();
                ops.kernel_grad(Ci, Co, du, P * CF, 1, Ci * t / nt, Ci * (t + 1) / nt,
                                dkernel);
            }
        }
        return rc;
    }
#pragma omp parallel num_threads(fc_get_num_threads()) if (total * P * CF > 262144)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        int my_rc = FC_OK;
        for (int s = t; s < parts; s += nt) {
            const int64_t a = total * s / parts, b = total * (s + 1) / parts;
            float *V = tiles + s * piece * tile_floats, *Y = V + P * piece * Ci;
            float *sum = du + s * P * CF;
            if (b <= a)
                memset(sum, 0, (size_t)(P * CF) * sizeof(float));
            for (int64_t t0 = a; t0 < b && my_rc == FC_OK; t0 += piece) {
                const int64_t cnt = b - t0 < piece ? b - t0 : piece;
                ops.gather(p, x, zeros, t0, cnt, V);
                ops.gather_grad(p, dy, zeros, t0, cnt, Y);
                for (int64_t xi = 0; xi < P && my_rc == FC_OK; xi++)
                    my_rc = fc_sgemm_serial(1, 0, Ci, Co, cnt, 1.0f, V + xi * Ci, P * Ci,
                                            Y + xi * Co, P * Co, t0 == a ? 0.0f : 1.0f,
                                            sum + xi * CF, Co);
            }
        }
        if (my_rc != FC_OK) {
#pragma omp atomic write
            rc = my_rc;
        }
#pragma omp barrier
        if (rc == FC_OK) {
            const int64_t c0 = Ci * t / nt, c1 = Ci * (t + 1) / nt;
            ops.kernel_grad(Ci, Co, du, P * CF, parts, c0, c1, dkernel);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Grouped convolutions (entry points declared at the end of winograd.h):
 * the transforms are per channel, so they run over all channels exactly as above, and
 * each of the P GEMMs becomes G block-diagonal ones: group g's V columns
 * [g*Cin/G, (g+1)*Cin/G) times U_g, the columns [g*Cout/G, (g+1)*Cout/G) of a
 * u (P, Cin/G, Cout). */

/* One group's block of the grouped GEMMs, without packing (the blocks are small:
 * Cin/G x Cout/G), each output a sum over k (resp. r) in ascending order:
 *   bd_mm:  C (rows x fg, ldc) = A (rows x cg, lda) @ B (cg x fg, ldb)
 *   bd_tmm: C (cg x fg, ldc) = beta * C + A^T @ Y, A (rows x cg, lda), Y (rows x fg, ldy)
 * The AVX2 twins fuse each multiply-add (fmaf in their tails), so every element has the
 * same bits whatever the blocking: results do not depend on how the tiles are split. */
static void bd_mm_generic(int64_t rows, int64_t cg, int64_t fg, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float *C, int64_t ldc)
{
    for (int64_t r = 0; r < rows; r++) {
        float *c = C + r * ldc;
        for (int64_t j = 0; j < fg; j++)
            c[j] = 0.0f;
        for (int64_t k = 0; k < cg; k++) {
            const float a = A[r * lda + k];
            const float *b = B + k * ldb;
            for (int64_t j = 0; j < fg; j++)
                c[j] += a * b[j];
        }
    }
}

static void bd_tmm_generic(int64_t rows, int64_t cg, int64_t fg, const float *A, int64_t lda,
                           const float *Y, int64_t ldy, float beta, float *C, int64_t ldc)
{
    for (int64_t k = 0; k < cg; k++) {
        float *c = C + k * ldc;
        if (beta == 0.0f)
            for (int64_t j = 0; j < fg; j++)
                c[j] = 0.0f;
        for (int64_t r = 0; r < rows; r++) {
            const float a = A[r * lda + k];
            const float *y = Y + r * ldy;
            for (int64_t j = 0; j < fg; j++)
                c[j] += a * y[j];
        }
    }
}

#ifdef FC_HAVE_AVX2_PATH
#include <math.h>

FC_TARGET_AVX2 static void bd_mm_avx2(int64_t rows, int64_t cg, int64_t fg, const float *A,
                                      int64_t lda, const float *B, int64_t ldb, float *C,
                                      int64_t ldc)
{
    int64_t j = 0;
    for (; j + 16 <= fg; j += 16) {
        int64_t r = 0;
        for (; r + 6 <= rows; r += 6) {
            __m256 c0[6], c1[6];
            for (int i = 0; i < 6; i++)
                c0[i] = c1[i] = _mm256_setzero_ps();
            for (int64_t k = 0; k < cg; k++) {
                const __m256 b0 = _mm256_loadu_ps(B + k * ldb + j);
                const __m256 b1 = _mm256_loadu_ps(B + k * ldb + j + 8);
                for (int i = 0; i < 6; i++) {
                    const __m256 a = _mm256_broadcast_ss(A + (r + i) * lda + k);
                    c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
                    c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
                }
            }
            for (int i = 0; i < 6; i++) {
                _mm256_storeu_ps(C + (r + i) * ldc + j, c0[i]);
                _mm256_storeu_ps(C + (r + i) * ldc + j + 8, c1[i]);
            }
        }
        for (; r < rows; r++) {
            __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
            for (int64_t k = 0; k < cg; k++) {
                const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
                c0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(B + k * ldb + j), c0);
                c1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(B + k * ldb + j + 8), c1);
            }
            _mm256_storeu_ps(C + r * ldc + j, c0);
            _mm256_storeu_ps(C + r * ldc + j + 8, c1);
        }
    }
    for (; j + 8 <= fg; j += 8) {
        int64_t r = 0;
        for (; r + 6 <= rows; r += 6) {
            __m256 c0[6];
            for (int i = 0; i < 6; i++)
                c0[i] = _mm256_setzero_ps();
            for (int64_t k = 0; k < cg; k++) {
                const __m256 b0 = _mm256_loadu_ps(B + k * ldb + j);
                for (int i = 0; i < 6; i++)
                    c0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(A + (r + i) * lda + k), b0,
                                            c0[i]);
            }
            for (int i = 0; i < 6; i++)
                _mm256_storeu_ps(C + (r + i) * ldc + j, c0[i]);
        }
        for (; r < rows; r++) {
            __m256 c0 = _mm256_setzero_ps();
            for (int64_t k = 0; k < cg; k++)
                c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(A + r * lda + k),
                                     _mm256_loadu_ps(B + k * ldb + j), c0);
            _mm256_storeu_ps(C + r * ldc + j, c0);
        }
    }
    for (; j < fg; j++)
        for (int64_t r = 0; r < rows; r++) {
            float c = 0.0f;
            for (int64_t k = 0; k < cg; k++)
                c = fmaf(A[r * lda + k], B[k * ldb + j], c);
            C[r * ldc + j] = c;
        }
}

FC_TARGET_AVX2 static void bd_tmm_avx2(int64_t rows, int64_t cg, int64_t fg, const float *A,
                                       int64_t lda, const float *Y, int64_t ldy, float beta,
                                       float *C, int64_t ldc)
{
    int64_t k = 0;
    for (; k + 4 <= cg; k += 4) {
        int64_t j = 0;
        for (; j + 16 <= fg; j += 16) {
            __m256 c0[4], c1[4];
            for (int i = 0; i < 4; i++) {
                c0[i] = beta == 0.0f ? _mm256_setzero_ps() : _mm256_loadu_ps(C + (k + i) * ldc + j);
                c1[i] = beta == 0.0f ? _mm256_setzero_ps()
                                     : _mm256_loadu_ps(C + (k + i) * ldc + j + 8);
            }
            for (int64_t r = 0; r < rows; r++) {
                const __m256 y0 = _mm256_loadu_ps(Y + r * ldy + j);
                const __m256 y1 = _mm256_loadu_ps(Y + r * ldy + j + 8);
                for (int i = 0; i < 4; i++) {
                    const __m256 a = _mm256_broadcast_ss(A + r * lda + k + i);
                    c0[i] = _mm256_fmadd_ps(a, y0, c0[i]);
                    c1[i] = _mm256_fmadd_ps(a, y1, c1[i]);
                }
            }
            for (int i = 0; i < 4; i++) {
                _mm256_storeu_ps(C + (k + i) * ldc + j, c0[i]);
                _mm256_storeu_ps(C + (k + i) * ldc + j + 8, c1[i]);
            }
        }
        for (; j + 8 <= fg; j += 8) {
            __m256 c0[4];
            for (int i = 0; i < 4; i++)
                c0[i] = beta == 0.0f ? _mm256_setzero_ps() : _mm256_loadu_ps(C + (k + i) * ldc + j);
            for (int64_t r = 0; r < rows; r++) {
                const __m256 y0 = _mm256_loadu_ps(Y + r * ldy + j);
                for (int i = 0; i < 4; i++)
                    c0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(A + r * lda + k + i), y0, c0[i]);
            }
            for (int i = 0; i < 4; i++)
                _mm256_storeu_ps(C + (k + i) * ldc + j, c0[i]);
        }
        for (; j < fg; j++)
            for (int i = 0; i < 4; i++) {
                float c = beta == 0.0f ? 0.0f : C[(k + i) * ldc + j];
                for (int64_t r = 0; r < rows; r++)
                    c = fmaf(A[r * lda + k + i], Y[r * ldy + j], c);
                C[(k + i) * ldc + j] = c;
            }
    }
    for (; k < cg; k++) {
        int64_t j = 0;
        for (; j + 8 <= fg; j += 8) {
            __m256 c0 = beta == 0.0f ? _mm256_setzero_ps() : _mm256_loadu_ps(C + k * ldc + j);
            for (int64_t r = 0; r < rows; r++)
                c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(A + r * lda + k),
                                     _mm256_loadu_ps(Y + r * ldy + j), c0);
            _mm256_storeu_ps(C + k * ldc + j, c0);
        }
        for (; j < fg; j++) {
            float c = beta == 0.0f ? 0.0f : C[k * ldc + j];
            for (int64_t r = 0; r < rows; r++)
                c = fmaf(A[r * lda + k], Y[r * ldy + j], c);
            C[k * ldc + j] = c;
        }
    }
}
#endif

#if defined(FC_HAVE_AVX2_PATH) && !defined(FASTCNN_NO_AVX512)
/* AVX-512F twins (16-float vectors; the same fused multiply-adds in the same order per
 * element as the AVX2 ones, so the same bits): used where fc_gemm_avx512() says the
 * GEMM uses AVX-512 (the CPU has it, FASTCNN_NO_AVX512 unset). Column tails go to the
 * AVX2 kernels. */
#define BD_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))

BD_TARGET_AVX512 static void bd_mm_avx512(int64_t rows, int64_t cg, int64_t fg, const float *A,
                                          int64_t lda, const float *B, int64_t ldb, float *C,
                                          int64_t ldc)
{
    int64_t j = 0;
    for (; j + 16 <= fg; j += 16) {
        int64_t r = 0;
        for (; r + 12 <= rows; r += 12) {
            __m512 c0[12];
            for (int i = 0; i < 12; i++)
                c0[i] = _mm512_setzero_ps();
            for (int64_t k = 0; k < cg; k++) {
                const __m512 b0 = _mm512_loadu_ps(B + k * ldb + j);
                for (int i = 0; i < 12; i++)
                    c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(A[(r + i) * lda + k]), b0, c0[i]);
            }
            for (int i = 0; i < 12; i++)
                _mm512_storeu_ps(C + (r + i) * ldc + j, c0[i]);
        }
        for (; r < rows; r++) {
            __m512 c0 = _mm512_setzero_ps();
            for (int64_t k = 0; k < cg; k++)
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(A[r * lda + k]),
                                     _mm512_loadu_ps(B + k * ldb + j), c0);
            _mm512_storeu_ps(C + r * ldc + j, c0);
        }
    }
    if (j < fg)
        bd_mm_avx2(rows, cg, fg - j, A, lda, B + j, ldb, C + j, ldc);
}

BD_TARGET_AVX512 static void bd_tmm_avx512(int64_t rows, int64_t cg, int64_t fg,
                                           const float *A, int64_t lda, const float *Y,
                                           int64_t ldy, float beta, float *C, int64_t ldc)
{
    int64_t j = 0;
    for (; j + 16 <= fg; j += 16) {
        int64_t k = 0;
        for (; k + 8 <= cg; k += 8) {
            __m512 c0[8];
            for (int i = 0; i < 8; i++)
                c0[i] = beta == 0.0f ? _mm512_setzero_ps()
                                     : _mm512_loadu_ps(C + (k + i) * ldc + j);
            for (int64_t r = 0; r < rows; r++) {
                const __m512 y0 = _mm512_loadu_ps(Y + r * ldy + j);
                for (int i = 0; i < 8; i++)
                    c0[i] = _mm512_fmadd_ps(_mm512_set1_ps(A[r * lda + k + i]), y0, c0[i]);
            }
            for (int i = 0; i < 8; i++)
                _mm512_storeu_ps(C + (k + i) * ldc + j, c0[i]);
        }
        for (; k < cg; k++) {
            __m512 c0 = beta == 0.0f ? _mm512_setzero_ps() : _mm512_loadu_ps(C + k * ldc + j);
            for (int64_t r = 0; r < rows; r++)
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(A[r * lda + k]),
                                     _mm512_loadu_ps(Y + r * ldy + j), c0);
            _mm512_storeu_ps(C + k * ldc + j, c0);
        }
    }
    if (j < fg)
        bd_tmm_avx2(rows, cg, fg - j, A, lda, Y + j, ldy, beta, C + j, ldc);
}
#endif

typedef void (*bd_mm_fn)(int64_t, int64_t, int64_t, const float *, int64_t, const float *,
                         int64_t, float *, int64_t);
typedef void (*bd_tmm_fn)(int64_t, int64_t, int64_t, const float *, int64_t, const float *,
                          int64_t, float, float *, int64_t);

static bd_mm_fn pick_bd_mm(void)
{
#if defined(FC_HAVE_AVX2_PATH) && !defined(FASTCNN_NO_AVX512)
    if (fc_gemm_avx512())
        return bd_mm_avx512;
#endif
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        return bd_mm_avx2;
#endif
    return bd_mm_generic;
}

static bd_tmm_fn pick_bd_tmm(void)
{
#if defined(FC_HAVE_AVX2_PATH) && !defined(FASTCNN_NO_AVX512)
    if (fc_gemm_avx512())
        return bd_tmm_avx512;
#endif
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        return bd_tmm_avx2;
#endif
    return bd_tmm_generic;
}

/* Where the unpacked kernels beat the packed GEMM (1 thread, batch 32 32x32 and 128
 * 16x16 images): blocks at least one vector wide, and for the transposed product (which
 * streams the tiles' rows once per 4 input channels) at most 16 channels deep. A choice
 * of the geometry only, so the bits do not depend on the threads. */
static int bd_mm_applies(int64_t cg, int64_t fg)
{
    return fg >= 8;
}

static int bd_tmm_applies(int64_t cg, int64_t fg)
{
    return fg >= 8 && cg <= 16;
}

static int run_piece_grouped(const fc_wino_problem *p, const wino_ops *ops, int64_t G,
                             const float *x, const float *zeros, const float *u,
                             const float *bias, int relu, float *out, float *V, float *M,
                             int64_t t0, int64_t cnt)
{
    const int64_t Ci = p->cin, Co = p->cout, P = fc_wino_points(p->m);
    const int64_t cg = Ci / G, fg = Co / G;
    int rc = FC_OK;
    ops->gather(p, x, zeros, t0, cnt, V);
    if (bd_mm_applies(cg, fg)) {
        const bd_mm_fn mm = pick_bd_mm();
        for (int64_t xi = 0; xi < P; xi++)
            for (int64_t g = 0; g < G; g++)
                mm(cnt, cg, fg, V + xi * Ci + g * cg, P * Ci, u + xi * cg * Co + g * fg, Co,
                   M + xi * Co + g * fg, P * Co);
    } else {
        for (int64_t xi = 0; xi < P && rc == FC_OK; xi++)
            for (int64_t g = 0; g < G && rc == FC_OK; g++)
                rc = fc_sgemm_serial(0, 0, cnt, fg, cg, 1.0f, V + xi * Ci + g * cg, P * Ci,
                                     u + xi * cg * Co + g * fg, Co, 0.0f,
                                     M + xi * Co + g * fg, P * Co);
    }
    if (rc == FC_OK)
        ops->scatter(p, M, bias, relu, t0, cnt, out);
    return rc;
}

int fc_wino_conv_grouped(const fc_wino_problem *p, int64_t groups, const float *x,
                         const float *u, const float *bias, int relu, float *out,
                         float *scratch, int64_t chunk_tiles)
{
    const int64_t P = fc_wino_points(p->m);
    const int64_t tile_floats = fc_wino_tile_floats(p->m, p->cin, p->cout);
    const int64_t total = p->n * fc_wino_tiles(p->m, p->ch, p->cw);
    const int64_t n_zeros = wino_zeros(p->cin, p->cout);
    const wino_ops ops = pick_wino_ops(p->m);
    int nthreads = fc_get_num_threads();
    int rc = FC_OK;
    if (total <= 0 || p->cout <= 0)
        return FC_OK;
    if (nthreads > chunk_tiles)
        nthreads = (int)chunk_tiles;
    if (nthreads < 1)
        nthreads = 1;
    int64_t piece = chunk_tiles / nthreads, cap = FC_WINO_PIECE_FLOATS / tile_floats;
    if (cap < 1)
        cap = 1;
    if (piece > cap)
        piece = cap;
    memset(scratch, 0, (size_t)n_zeros * sizeof(float));
    const float *zeros = scratch;
    float *tiles = scratch + n_zeros;
    /* threads own contiguous tile ranges; a tile's arithmetic does not depend on them */
#pragma omp parallel num_threads(nthreads) \
    if (total * P * p->cin * p->cout / groups > 262144)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        const int64_t a = total * t / nt, b = total * (t + 1) / nt;
        float *V = tiles + t * piece * tile_floats, *M = V + P * piece * p->cin;
        int my_rc = FC_OK;
        for (int64_t t0 = a; t0 < b && my_rc == FC_OK; t0 += piece) {
            const int64_t cnt = b - t0 < piece ? b - t0 : piece;
            my_rc = run_piece_grouped(p, &ops, groups, x, zeros, u, bias, relu, out, V, M, t0,
                                      cnt);
        }
        if (my_rc != FC_OK) {
#pragma omp atomic write
            rc = my_rc;
        }
    }
    return rc;
}

/* The GEMMs of one piece of the grouped kernel gradient into sum (P, Cin/G, Cout). */
static int grouped_du_piece(const fc_wino_problem *p, int64_t G, const float *V, const float *Y,
                            int64_t cnt, float beta, float *sum)
{
    const int64_t Ci = p->cin, Co = p->cout, P = fc_wino_points(p->m);
    const int64_t cg = Ci / G, fg = Co / G;
    int rc = FC_OK;
    if (bd_tmm_applies(cg, fg)) {
        const bd_tmm_fn tmm = pick_bd_tmm();
        for (int64_t xi = 0; xi < P; xi++)
            for (int64_t g = 0; g < G; g++)
                tmm(cnt, cg, fg, V + xi * Ci + g * cg, P * Ci, Y + xi * Co + g * fg, P * Co,
                    beta, sum + xi * cg * Co + g * fg, Co);
        return FC_OK;
    }
    for (int64_t xi = 0; xi < P && rc == FC_OK; xi++)
        for (int64_t g = 0; g < G && rc == FC_OK; g++)
            rc = fc_sgemm_serial(1, 0, cg, fg, cnt, 1.0f, V + xi * Ci + g * cg, P * Ci,
                                 Y + xi * Co + g * fg, P * Co, beta,
                                 sum + xi * cg * Co + g * fg, Co);
    return rc;
}

int fc_wino_kernel_grad_grouped(const fc_wino_problem *p, int64_t groups, const float *x,
                                const float *dy, float *dkernel, float *du, int parts,
                                float *scratch, int64_t chunk_tiles)
{
    const int64_t Ci = p->cin, Co = p->cout, cg = Ci / groups, P = fc_wino_points(p->m);
    const int64_t CF = cg * Co;
    const int64_t tile_floats = fc_wino_tile_floats(p->m, Ci, Co);
    const int64_t total = p->n * fc_wino_tiles(p->m, p->oh, p->ow);
    const int64_t n_zeros = wino_zeros(Ci, Co);
    const wino_ops ops = pick_wino_ops(p->m);
    int rc = FC_OK;
    if (CF <= 0)
        return FC_OK;
    if (parts < 1)
        parts = 1;
    if (parts > chunk_tiles)
        parts = (int)chunk_tiles;
    const int64_t piece = chunk_tiles / parts; /* >= 1, geometry only */
    memset(scratch, 0, (size_t)n_zeros * sizeof(float));
    const float *zeros = scratch;
    float *tiles = scratch + n_zeros;
    /* `parts` fixed tile ranges, each summed in fixed pieces into its own partial sum;
     * threads take whole parts, and the parts are added in order: thread-count free */
#pragma omp parallel num_threads(fc_get_num_threads()) \
    if (total * P * CF > 262144)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        int my_rc = FC_OK;
        for (int s = t; s < parts; s += nt) {
            const int64_t a = total * s / parts, b = total * (s + 1) / parts;
            float *V = tiles + s * piece * tile_floats, *Y = V + P * piece * Ci;
            float *sum = du + s * P * CF;
            if (b <= a)
                memset(sum, 0, (size_t)(P * CF) * sizeof(float));
            for (int64_t t0 = a; t0 < b && my_rc == FC_OK; t0 += piece) {
                const int64_t cnt = b - t0 < piece ? b - t0 : piece;
                ops.gather(p, x, zeros, t0, cnt, V);
                ops.gather_grad(p, dy, zeros, t0, cnt, Y);
                my_rc = grouped_du_piece(p, groups, V, Y, cnt, t0 == a ? 0.0f : 1.0f, sum);
            }
        }
        if (my_rc != FC_OK) {
#pragma omp atomic write
            rc = my_rc;
        }
#pragma omp barrier
        if (rc == FC_OK) {
            const int64_t c0 = cg * t / nt, c1 = cg * (t + 1) / nt;
            ops.kernel_grad(cg, Co, du, P * CF, parts, c0, c1, dkernel);
        }
    }
    return rc;
}
