/* Winograd F(2x2, 3x3): transforms and the tiled driver (see winograd.h).
 *
 *   B^T = | 1  0 -1  0 |    G = | 1    0    0  |    A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |        | 1/2  1/2  1/2|          | 0  1 -1 -1 |
 *         | 0 -1  1  0 |        | 1/2 -1/2  1/2|
 *         | 0  1  0 -1 |        | 0    0    1  |
 *
 * The transforms are element-wise across channels, which are contiguous in NHWC, so they
 * run on vectors of channels: AVX (8 floats) in the FC_TARGET_AVX2 twin, 4-float GCC/Clang
 * vectors (SSE2, NEON, ...) or scalars in the portable one (winograd_tiles.h is the
 * template for both). Both do the same additions in the same order, so they agree
 * bitwise; only the GEMM differs between SIMD levels (FMA or not).
 *
 * Scratch layout, per thread: V (piece tiles x 16 x Cin) then M (piece x 16 x Cout),
 * tile-major, so the transforms read/write one contiguous block per tile and the 16 GEMMs
 * M[xi] = V[xi] @ U[xi] see V[xi] / M[xi] as matrices with row stride 16 * C.
 */
#include <stdint.h>
#include <string.h>
#include "winograd.h"
#include "gemm.h"

#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

/* Per thread, tiles go through the transforms and GEMMs in pieces of at most this many
 * floats of V + M (each GEMM call packs its 16th of U again, so pieces should not be
 * small; V and M should stay in L2 between the transforms and the GEMMs). */
#ifndef FC_WINO_PIECE_FLOATS
#define FC_WINO_PIECE_FLOATS (1 << 18)
#endif

int64_t fc_wino_tiles(int64_t oh, int64_t ow)
{
    return ((oh + 1) / 2) * ((ow + 1) / 2);
}

/* Zero floats at the start of the scratch (the padding the gathers read). */
static int64_t wino_zeros(int64_t cin, int64_t cout)
{
    return ((cin > cout ? cin : cout) + 15) / 16 * 16;
}

/* The 16 GEMMs of every piece share their B (a transformed kernel), so fc_wino_conv packs
 * each once per call, in the scratch after the tiles, when all 16 take at most this many
 * floats (else each GEMM packs its own, as before). */
#ifndef FC_WINO_PREPACK_MAX_FLOATS
#define FC_WINO_PREPACK_MAX_FLOATS (1 << 20)
#endif

/* Floats of one packed B of the conv GEMMs (Cin x Cout), or 0 when not prepacked. */
static int64_t wino_prepacked_floats(int64_t cin, int64_t cout)
{
    const int64_t pb = fc_sgemm_packed_b_floats(cin, cout);
    return 16 * pb <= FC_WINO_PREPACK_MAX_FLOATS ? pb : 0;
}

int64_t fc_wino_scratch_size(int64_t cin, int64_t cout, int64_t chunk_tiles)
{
    /* room for the packed kernels of either direction (the input gradient swaps them) */
    const int64_t a = wino_prepacked_floats(cin, cout), b = wino_prepacked_floats(cout, cin);
    return wino_zeros(cin, cout) + chunk_tiles * FC_WINO_TILE_FLOATS(cin, cout)
           + (a > 0 || b > 0 ? 16 + 16 * (a > b ? a : b) : 0); /* (+16: alignment) */
}

/* ---------------------------------------------------------------------------------- */
/* The three transforms, for any element type T with ADD / SUB / HALF.                  */

/* v = B^T d B for a 4x4 patch d (row-major, d[4 * i + j]). */
#define WINO_INPUT_TRANSFORM(T, ADD, SUB, d, v)                                     \
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

/* y (2x2, row-major) = A^T m A for a 4x4 m. */
#define WINO_OUTPUT_TRANSFORM(T, ADD, SUB, m, y)                                    \
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

/* u = G g G^T for a 3x3 g (row-major). */
#define WINO_KERNEL_TRANSFORM(T, ADD, SUB, HALF, g, u)                              \
    do {                                                                            \
        T t_[12]; /* G g: 4 x 3 */                                                  \
        for (int j_ = 0; j_ < 3; j_++) {                                            \
            const T s_ = ADD(g[j_], g[6 + j_]);                                     \
            t_[j_] = g[j_];                                                         \
            t_[3 + j_] = HALF(ADD(s_, g[3 + j_]));                                  \
            t_[6 + j_] = HALF(SUB(s_, g[3 + j_]));                                  \
            t_[9 + j_] = g[6 + j_];                                                 \
        }                                                                           \
        for (int i_ = 0; i_ < 4; i_++) {                                            \
            const T s_ = ADD(t_[3 * i_], t_[3 * i_ + 2]);                           \
            u[4 * i_ + 0] = t_[3 * i_];                                             \
            u[4 * i_ + 1] = HALF(ADD(s_, t_[3 * i_ + 1]));                          \
            u[4 * i_ + 2] = HALF(SUB(s_, t_[3 * i_ + 1]));                          \
            u[4 * i_ + 3] = t_[3 * i_ + 2];                                         \
        }                                                                           \
    } while (0)

/* m (4x4) = A y A^T for a 2x2 y: the adjoint of the output transform. A = (A^T)^T. */
#define WINO_OUTPUT_TRANSFORM_ADJOINT(T, ADD, SUB, NEG, y, m)                       \
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

/* g (3x3) = G^T u G for a 4x4 u: the adjoint of the kernel transform. */
#define WINO_KERNEL_TRANSFORM_ADJOINT(T, ADD, SUB, HALF, u, g)                      \
    do {                                                                            \
        T t_[12]; /* G^T u: 3 x 4 */                                                \
        for (int j_ = 0; j_ < 4; j_++) {                                            \
            const T p_ = HALF(ADD(u[4 + j_], u[8 + j_]));                           \
            t_[j_] = ADD(u[j_], p_);                                                \
            t_[4 + j_] = HALF(SUB(u[4 + j_], u[8 + j_]));                           \
            t_[8 + j_] = ADD(p_, u[12 + j_]);                                       \
        }                                                                           \
        for (int i_ = 0; i_ < 3; i_++) {                                            \
            const T p_ = HALF(ADD(t_[4 * i_ + 1], t_[4 * i_ + 2]));                 \
            g[3 * i_ + 0] = ADD(t_[4 * i_], p_);                                    \
            g[3 * i_ + 1] = HALF(SUB(t_[4 * i_ + 1], t_[4 * i_ + 2]));              \
            g[3 * i_ + 2] = ADD(p_, t_[4 * i_ + 3]);                                \
        }                                                                           \
    } while (0)

/* Scalar operations (the tails of every level). relu: NaN and -0 become +0, as the
 * im2col path's max(., 0). */
#define S_ADD(a, b) ((a) + (b))
#define S_SUB(a, b) ((a) - (b))
#define S_HALF(a) ((a) * 0.5f)
#define S_RELU(a) ((a) > 0.0f ? (a) : 0.0f)
#define S_NEG(a) (-(a))

/* Portable level: 4-float GCC/Clang vectors (loads through an unaligned, may_alias type),
 * else scalars. */
#if defined(__GNUC__) || defined(__clang__)
typedef float wino_v4 __attribute__((vector_size(16)));
typedef float wino_v4u __attribute__((vector_size(16), aligned(4), may_alias));
typedef int wino_m4 __attribute__((vector_size(16)));
#define WT_T wino_v4
#define WT_LEN 4
#define WT_LOAD(p) ((wino_v4)(*(const wino_v4u *)(p)))
#define WT_STORE(p, v) (*(wino_v4u *)(p) = (v))
#define WT_RELU(a) ((wino_v4)((wino_m4)(a) & ((a) > (wino_v4){0.0f, 0.0f, 0.0f, 0.0f})))
#else
#define WT_T float
#define WT_LEN 1
#define WT_LOAD(p) (*(p))
#define WT_STORE(p, v) (*(p) = (v))
#define WT_RELU(a) S_RELU(a)
#endif
#define WT_ADD(a, b) ((a) + (b))
#define WT_SUB(a, b) ((a) - (b))
#define WT_HALF(a) ((a) * 0.5f)
#define WT_NEG(a) (-(a))
#define WT_SUFFIX generic
#define WT_ATTR
#include "winograd_tiles.h"
#undef WT_T
#undef WT_LEN
#undef WT_LOAD
#undef WT_STORE
#undef WT_ADD
#undef WT_SUB
#undef WT_HALF
#undef WT_RELU
#undef WT_NEG
#undef WT_SUFFIX
#undef WT_ATTR

#ifdef FC_HAVE_AVX2_PATH
#define WT_T __m256
#define WT_LEN 8
#define WT_LOAD(p) _mm256_loadu_ps(p)
#define WT_STORE(p, v) _mm256_storeu_ps((p), (v))
#define WT_ADD(a, b) _mm256_add_ps((a), (b))
#define WT_SUB(a, b) _mm256_sub_ps((a), (b))
#define WT_HALF(a) _mm256_mul_ps((a), _mm256_set1_ps(0.5f))
#define WT_RELU(a) _mm256_and_ps((a), _mm256_cmp_ps((a), _mm256_setzero_ps(), _CMP_GT_OQ))
#define WT_NEG(a) _mm256_xor_ps((a), _mm256_set1_ps(-0.0f))
#define WT_SUFFIX avx2
#define WT_ATTR FC_TARGET_AVX2
#include "winograd_tiles.h"
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

static wino_ops pick_wino_ops(void)
{
    wino_ops ops = {kernel_transform_generic, gather_tiles_generic, scatter_tiles_generic,
                    gather_grad_tiles_generic, kernel_grad_transform_generic};
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        ops.kernel = kernel_transform_avx2;
        ops.gather = gather_tiles_avx2;
        ops.scatter = scatter_tiles_avx2;
        ops.gather_grad = gather_grad_tiles_avx2;
        ops.kernel_grad = kernel_grad_transform_avx2;
    }
#endif
    return ops;
}

void fc_wino_transform_kernel(int64_t c, int64_t f, const float *kernel, float *u)
{
    const wino_ops ops = pick_wino_ops();
    int64_t c0;
    /* threads take blocks of input channels (disjoint rows of u): a serial transform was
     * ~0.03 ms of a 0.13 ms 64x64-channel layer at 2 threads */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (16 * c * f > 16384)
    for (c0 = 0; c0 < c; c0 += 8)
        ops.kernel(c, f, c0, c0 + 8 < c ? c0 + 8 : c, kernel, u);
}

/* ---------------------------------------------------------------------------------- */


/* flipped: G J = P G, with J reversing 3 entries and P swapping entries 0 and 3 of 4, so
 * the rotated kernel's U at (a, b) is the original's U at (P a, P b), transposed. */
static const int swap03[16] = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};

/* Tiles [t0, t0 + cnt): transform, 16 GEMMs, inverse transform. packed: the 16 B
 * operands packed once (pb floats each), or NULL. */
static int run_piece(const fc_wino_problem *p, const wino_ops *ops, const float *x,
                     const float *zeros, const float *u, int flipped, const float *packed,
                     int64_t pb, const float *bias, int relu, float *out, float *V, float *M,
                     int64_t t0, int64_t cnt)
{
    const int64_t Ci = p->cin, Co = p->cout;
    int rc = FC_OK;
    ops->gather(p, x, zeros, t0, cnt, V);
    for (int xi = 0; xi < 16 && rc == FC_OK; xi++) {
        if (packed != NULL) {
            rc = fc_sgemm_serial_packed_b(0, cnt, Co, Ci, V + xi * Ci, 16 * Ci, packed + xi * pb,
                                          0.0f, M + xi * Co, 16 * Co);
            continue;
        }
        const float *b = u + (flipped ? swap03[xi] : xi) * Ci * Co;
        rc = fc_sgemm_serial(0, flipped, cnt, Co, Ci, 1.0f, V + xi * Ci, 16 * Ci, b,
                             flipped ? Ci : Co, 0.0f, M + xi * Co, 16 * Co);
    }
    if (rc == FC_OK)
        ops->scatter(p, M, bias, relu, t0, cnt, out);
    return rc;
}

int fc_wino_conv(const fc_wino_problem *p, const float *x, const float *u, int flipped,
                 const float *bias, int relu, float *out, float *scratch, int64_t chunk_tiles)
{
    const int64_t tile_floats = FC_WINO_TILE_FLOATS(p->cin, p->cout);
    const int64_t total = p->n * fc_wino_tiles(p->ch, p->cw);
    const int64_t n_zeros = wino_zeros(p->cin, p->cout);
    const wino_ops ops = pick_wino_ops();
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
    const int64_t pb = wino_prepacked_floats(p->cin, p->cout);
    /* packed panels are read with aligned loads: start them on a 64-byte boundary */
    float *packed = NULL;
    if (pb > 0) {
        const uintptr_t at = (uintptr_t)(tiles + chunk_tiles * tile_floats);
        packed = (float *)((at + 63) & ~(uintptr_t)63);
    }
#pragma omp parallel num_threads(nthreads) if (total * 16 * p->cin * p->cout > 262144)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        const int64_t a = total * t / nt, b = total * (t + 1) / nt;
        float *V = tiles + t * piece * tile_floats, *M = V + 16 * piece * p->cin;
        int my_rc = FC_OK;
        int xi;
        if (packed != NULL) {
#pragma omp for schedule(static)
            for (xi = 0; xi < 16; xi++) /* (implicit barrier: all 16 packed before use) */
                fc_sgemm_pack_b(flipped, p->cin, p->cout,
                                u + (flipped ? swap03[xi] : xi) * p->cin * p->cout,
                                flipped ? p->cin : p->cout, packed + xi * pb);
        }
        for (int64_t t0 = a; t0 < b && my_rc == FC_OK; t0 += piece) {
            const int64_t cnt = b - t0 < piece ? b - t0 : piece;
            my_rc = run_piece(p, &ops, x, zeros, u, flipped, packed, pb, bias, relu, out, V, M,
                              t0, cnt);
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
    const int64_t Ci = p->cin, Co = p->cout, CF = Ci * Co;
    const int64_t tile_floats = FC_WINO_TILE_FLOATS(Ci, Co);
    const int64_t total = p->n * fc_wino_tiles(p->oh, p->ow);
    const int64_t n_zeros = wino_zeros(Ci, Co);
    const wino_ops ops = pick_wino_ops();
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
        float *V = tiles, *Y = V + 16 * piece * Ci;
        for (int64_t t0 = 0; t0 < total && rc == FC_OK; t0 += piece) {
            const int64_t cnt = total - t0 < piece ? total - t0 : piece;
#pragma omp parallel num_threads(fc_get_num_threads()) if (cnt * tile_floats > 65536)
            {
                const int t = fc_thread_id(), nt = fc_team_size();
                const int64_t a = cnt * t / nt, b = cnt * (t + 1) / nt;
                ops.gather(p, x, zeros, t0 + a, b - a, V + a * 16 * Ci);
                ops.gather_grad(p, dy, zeros, t0 + a, b - a, Y + a * 16 * Co);
            }
            for (int xi = 0; xi < 16 && rc == FC_OK; xi++)
                rc = fc_sgemm(1, 0, Ci, Co, cnt, 1.0f, V + xi * Ci, 16 * Ci, Y + xi * Co,
                              16 * Co, t0 == 0 ? 0.0f : 1.0f, du + xi * CF, Co);
        }
        if (total <= 0)
            memset(du, 0, (size_t)(16 * CF) * sizeof(float));
        if (rc == FC_OK) {
#pragma omp parallel num_threads(fc_get_num_threads()) if (16 * CF > 65536)
            {
                const int t = fc_thread_id(), nt = fc_team_size();
                ops.kernel_grad(Ci, Co, du, 16 * CF, 1, Ci * t / nt, Ci * (t + 1) / nt,
                                dkernel);
            }
        }
        return rc;
    }
#pragma omp parallel num_threads(fc_get_num_threads()) if (total * 16 * CF > 262144)
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        int my_rc = FC_OK;
        for (int s = t; s < parts; s += nt) {
            const int64_t a = total * s / parts, b = total * (s + 1) / parts;
            float *V = tiles + s * piece * tile_floats, *Y = V + 16 * piece * Ci;
            float *sum = du + s * 16 * CF;
            if (b <= a)
                memset(sum, 0, (size_t)(16 * CF) * sizeof(float));
            for (int64_t t0 = a; t0 < b && my_rc == FC_OK; t0 += piece) {
                const int64_t cnt = b - t0 < piece ? b - t0 : piece;
                ops.gather(p, x, zeros, t0, cnt, V);
                ops.gather_grad(p, dy, zeros, t0, cnt, Y);
                for (int xi = 0; xi < 16 && my_rc == FC_OK; xi++)
                    my_rc = fc_sgemm_serial(1, 0, Ci, Co, cnt, 1.0f, V + xi * Ci, 16 * Ci,
                                            Y + xi * Co, 16 * Co, t0 == a ? 0.0f : 1.0f,
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
            ops.kernel_grad(Ci, Co, du, 16 * CF, parts, c0, c1, dkernel);
        }
    }
    return rc;
}
