/* Single-precision GEMM: packed panels + register-blocked micro-kernel (BLIS-style).
 *
 * C (M x N) is computed in tiles of MR x NR = 6 x 16 by a micro-kernel that keeps the tile
 * in registers while it runs over a block of kc values of k. Loop nest, outermost first:
 *
 *   jc: N in blocks of nc              (the kc x nc block of op(B) packed in NR-wide panels)
 *   pc: K in blocks of kc              (kc depends on K only -> fixed summation order)
 *   ic: M in blocks of mc              (mc x kc block of op(A) packed in MR-tall panels)
 *   jr: the NR-wide panels of B        (a kc x NR panel stays in L1)
 *   ir: the MR-tall panels of A        (streamed from L2)
 *
 * Packed panels are zero-padded to NR columns, so the kernel always stores whole vectors; a
 * partial-width tile of C goes through a small temporary tile, and partial-height tiles use
 * kernels compiled for 1..5 rows. op(A) is read in place (not packed) when N or K is small
 * and packing could not pay for itself ("direct A").
 *
 * Threads never share a buffer or wait for each other inside a call:
 *  - row-block mode (B small enough to pack whole): each thread packs all of op(B), then
 *    threads take blocks of mc rows of C (all of N and K) dynamically;
 *  - otherwise C is cut into a grid of rectangles, one per thread, each running the loop
 *    nest above with its own buffers; the grid minimises duplicated packing.
 *
 * Determinism: every element of C is accumulated as
 *     C = alpha * sum_{k in block 0} + beta * C;   C = alpha * sum_{k in block q} + C, q > 0
 * with each block sum running over k in increasing order inside one micro-kernel call. The
 * K blocking depends only on K, and the modes and threads only decide which tiles are done
 * where and when, so results are bitwise the same for any thread count (and
 * fc_sgemm_serial == fc_sgemm).
 */
#include <stdlib.h>
#include <string.h>
#include "gemm.h"

#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>
#if !defined(FASTCNN_NO_AVX512)
/* Compiled for AVX-512F in any build; only called after fc_gemm_avx512() said yes. */
#define FC_HAVE_AVX512_PATH 1
#define FC_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif
#endif

#define MR 6
#define NR 16
#ifndef KC_MAX
#define KC_MAX 256   /* kc x NR B panel (16 KiB) + MR x kc A panel (6 KiB) fit a 32 KiB L1d */
#endif
#ifndef MC_MAX
#define MC_MAX 144   /* mc x kc A block (144 KiB) fits a 512 KiB L2; multiple of MR */
#endif
#ifndef NC_MAX
#define NC_MAX 4096  /* kc x nc B block (4 MiB) lives in L3; multiple of NR */
#endif
/* Read op(A) in place (no packing) when N is small (few B panels to amortise packing over)
 * or K is (an MR x K panel of A is then a handful of cache lines wherever it lives). */
#ifndef DIRECT_A_MAX_N
#define DIRECT_A_MAX_N 64
#endif
#ifndef DIRECT_A_MAX_K
#define DIRECT_A_MAX_K 128
#endif
#ifndef B_WHOLE_MAX
#define B_WHOLE_MAX (1 << 20)  /* floats of packed B (4 MiB) one thread may hold whole */
#endif
#ifndef ROW_BLOCKS_PER_THREAD
#define ROW_BLOCKS_PER_THREAD 4  /* row-block mode: blocks per thread, for dynamic balance */
#endif
#ifndef PARALLEL_MIN_WORK
#define PARALLEL_MIN_WORK (1 << 18)   /* M*N*K below this: one thread (fork/join costs more) */
#endif

/* c[0:mr, 0:NR] = alpha * a * b + beta * c (beta == 0: c is not read), where a(i, k) is
 * a[i * rs_a + k * cs_a] and b is a packed kc x NR panel. */
typedef void (*kernel_fn)(int64_t kc, const float *a, int64_t rs_a, int64_t cs_a,
                          const float *b, float *c, int64_t ldc, float alpha, float beta);

/* The AVX-512 kernels compute an mr x 32 tile from two consecutive packed panels of B
 * (b and b + b_next); the second panel's columns are the set bits of mask2. */
typedef void (*kernel_wide_fn)(int64_t kc, const float *a, int64_t rs_a, int64_t cs_a,
                               const float *b, int64_t b_next, float *c, int64_t ldc,
                               float alpha, float beta, unsigned mask2);

/* The AVX-512 single-panel kernel: c[0:2*MR, 0:NR] = alpha * [a; a2] * b + beta * c, the
 * two MR-row blocks of A at a and a2, b one packed kc x NR panel. */
typedef void (*kernel_tall_fn)(int64_t kc, const float *a, const float *a2, int64_t rs_a,
                               int64_t cs_a, const float *b, float *c, int64_t ldc,
                               float alpha, float beta);

typedef struct {
    int trans_a, trans_b, direct_a, simd;
    int64_t M, N, K;
    float alpha, beta;
    const float *A, *B;
    int64_t lda, ldb, ldc;
    float *C;
    int64_t kc, nc;
    const kernel_fn *kernel_packed, *kernel_direct; /* indexed by the row count */
    const kernel_wide_fn *wide_packed, *wide_direct; /* NULL: no AVX-512 */
    kernel_tall_fn tall_packed, tall_direct;         /* NULL: no AVX-512 */
} gemm_plan;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------------------------------------
 * Micro-kernels. Each exists for every row count mr = 1..MR (edge rows of C cost mr rows,
 * not MR) and for three layouts of A, with the strides made compile-time constants:
 *   packed: a(i, k) = a[k * MR + i]      (packed MR-row panel)
 *   rows:   a(i, k) = a[i * rs_a + k]    (op(A) = A read in place)
 *   cols:   a(i, k) = a[k * cs_a + i]    (op(A) = A^T read in place)
 * ---------------------------------------------------------------------------------------- */
#if defined(__GNUC__) || defined(__clang__)
#define FC_ALWAYS_INLINE __attribute__((always_inline))
#define FC_ALIGN64 __attribute__((aligned(64)))
#elif defined(_MSC_VER)
#define FC_ALWAYS_INLINE
#define FC_ALIGN64 __declspec(align(64))
#else
#define FC_ALWAYS_INLINE
#define FC_ALIGN64
#endif

/* Portable: same blocking, plain C. The tile is done in two 8-column halves (each half's
 * 6 x 8 accumulators fit the 16 SSE registers); the k order per element is unchanged. With
 * GCC/Clang vector types the j loop is explicitly 4-wide (SSE2, NEON, ...); a left-alone
 * loop gets vectorised along k by gcc, which is far slower. */
#if defined(__GNUC__) || defined(__clang__)
typedef float fc_v4 __attribute__((vector_size(16)));
#define PORTABLE_VEC 4
static inline FC_ALWAYS_INLINE fc_v4 v4_load(const float *p)
{
    fc_v4 v;
    memcpy(&v, p, sizeof(v));
    return v;
}
static inline FC_ALWAYS_INLINE void v4_store(float *p, fc_v4 v) { memcpy(p, &v, sizeof(v)); }
#endif

static inline FC_ALWAYS_INLINE void
kernel_c_body(const int mrv, int64_t kc, const float *FC_RESTRICT a, int64_t rs_a, int64_t cs_a,
              const float *FC_RESTRICT b, float *FC_RESTRICT c, int64_t ldc, float alpha,
              float beta)
{
    for (int jh = 0; jh < NR; jh += NR / 2) {
#ifdef PORTABLE_VEC
        fc_v4 acc[MR][2];
        for (int i = 0; i < mrv; i++)
            acc[i][0] = acc[i][1] = (fc_v4){0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t k = 0; k < kc; k++) {
            const fc_v4 b0 = v4_load(b + k * NR + jh), b1 = v4_load(b + k * NR + jh + 4);
            for (int i = 0; i < mrv; i++) {
                const float ai = a[i * rs_a + k * cs_a];
                acc[i][0] += ai * b0;
                acc[i][1] += ai * b1;
            }
        }
        for (int i = 0; i < mrv; i++) {
            float *cr = c + i * ldc + jh;
            for (int h = 0; h < 2; h++) {
                fc_v4 t = alpha * acc[i][h];
                if (beta == 1.0f)
                    t = v4_load(cr + 4 * h) + t;
                else if (beta != 0.0f)
                    t = beta * v4_load(cr + 4 * h) + t;
                v4_store(cr + 4 * h, t);
            }
        }
#else
        float acc[MR][NR / 2];
        for (int i = 0; i < mrv; i++)
            for (int j = 0; j < NR / 2; j++)
                acc[i][j] = 0.0f;
        for (int64_t k = 0; k < kc; k++) {
            const float *bk = b + k * NR + jh;
            for (int i = 0; i < mrv; i++) {
                const float ai = a[i * rs_a + k * cs_a];
                for (int j = 0; j < NR / 2; j++)
                    acc[i][j] += ai * bk[j];
            }
        }
        for (int i = 0; i < mrv; i++) {
            float *cr = c + i * ldc + jh;
            for (int j = 0; j < NR / 2; j++) {
                const float t = alpha * acc[i][j];
                cr[j] = beta == 0.0f ? t : beta == 1.0f ? cr[j] + t : beta * cr[j] + t;
            }
        }
#endif
    }
}

#define KERNEL_ARGS                                                                    \
    int64_t kc, const float *a, int64_t rs_a, int64_t cs_a, const float *b, float *c,  \
        int64_t ldc, float alpha, float beta
#define DEFINE_KERNEL(ATTR, BODY, NAME, MRV, RS, CS)                                   \
    ATTR static void NAME(KERNEL_ARGS)                                                 \
    {                                                                                  \
        (void)rs_a;                                                                    \
        (void)cs_a;                                                                    \
        BODY(MRV, kc, a, RS, CS, b, c, ldc, alpha, beta);                              \
    }
#define DEFINE_KERNEL_SET(ATTR, BODY, PREFIX, MRV)                                     \
    DEFINE_KERNEL(ATTR, BODY, PREFIX##_packed_##MRV, MRV, 1, MR)                       \
    DEFINE_KERNEL(ATTR, BODY, PREFIX##_rows_##MRV, MRV, rs_a, 1)                       \
    DEFINE_KERNEL(ATTR, BODY, PREFIX##_cols_##MRV, MRV, 1, cs_a)
#define DEFINE_KERNELS(ATTR, BODY, PREFIX)                                             \
    DEFINE_KERNEL_SET(ATTR, BODY, PREFIX, 1)                                           \
    DEFINE_KERNEL_SET(ATTR, BODY, PREFIX, 2)                                           \
    DEFINE_KERNEL_SET(ATTR, BODY, PREFIX, 3)                                           \
    DEFINE_KERNEL_SET(ATTR, BODY, PREFIX, 4)                                           \
    DEFINE_KERNEL_SET(ATTR, BODY, PREFIX, 5)                                           \
    DEFINE_KERNEL_SET(ATTR, BODY, PREFIX, 6)
#define KERNEL_TABLE(PREFIX, LAYOUT)                                                   \
    {NULL, PREFIX##_##LAYOUT##_1, PREFIX##_##LAYOUT##_2, PREFIX##_##LAYOUT##_3,        \
     PREFIX##_##LAYOUT##_4, PREFIX##_##LAYOUT##_5, PREFIX##_##LAYOUT##_6}

#define FC_NO_ATTR
DEFINE_KERNELS(FC_NO_ATTR, kernel_c_body, kernel_c)
static const kernel_fn kernels_c[3][MR + 1] = {
    KERNEL_TABLE(kernel_c, packed), KERNEL_TABLE(kernel_c, rows), KERNEL_TABLE(kernel_c, cols)};

/* AVX2+FMA: the 6 x 16 tile is 12 ymm accumulators; per k, 2 loads of B and 6 broadcasts of
 * A feed 12 FMAs (the FMA pipes, not the loads, are the limit). */
#ifdef FC_HAVE_AVX2_PATH
#define AVX2_ROW(r)                                                                    \
    if (mrv > (r)) {                                                                   \
        const __m256 ai = _mm256_broadcast_ss(a + (r) * rs_a + k * cs_a);              \
        acc[r][0] = _mm256_fmadd_ps(ai, b0, acc[r][0]);                                \
        acc[r][1] = _mm256_fmadd_ps(ai, b1, acc[r][1]);                                \
    }

#define AVX2_STORE_ROW(r)                                                              \
    if (mrv > (r)) {                                                                   \
        float *cr = c + (r) * ldc;                                                     \
        __m256 t0 = _mm256_mul_ps(va, acc[r][0]), t1 = _mm256_mul_ps(va, acc[r][1]);   \
        if (beta == 1.0f) {                                                            \
            t0 = _mm256_add_ps(_mm256_loadu_ps(cr), t0);                               \
            t1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), t1);                           \
        } else if (beta != 0.0f) {                                                     \
            t0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), t0);                         \
            t1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), t1);                     \
        }                                                                              \
        _mm256_storeu_ps(cr, t0);                                                      \
        _mm256_storeu_ps(cr + 8, t1);                                                  \
    }

FC_TARGET_AVX2 static inline FC_ALWAYS_INLINE void
kernel_avx2_body(const int mrv, int64_t kc, const float *FC_RESTRICT a, int64_t rs_a,
                 int64_t cs_a, const float *FC_RESTRICT b, float *FC_RESTRICT c, int64_t ldc,
                 float alpha, float beta)
{
    __m256 acc[MR][2];
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b + k * NR), b1 = _mm256_load_ps(b + k * NR + 8);
        AVX2_ROW(0) AVX2_ROW(1) AVX2_ROW(2) AVX2_ROW(3) AVX2_ROW(4) AVX2_ROW(5)
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    AVX2_STORE_ROW(0) AVX2_STORE_ROW(1) AVX2_STORE_ROW(2)
    AVX2_STORE_ROW(3) AVX2_STORE_ROW(4) AVX2_STORE_ROW(5)
}

DEFINE_KERNELS(FC_TARGET_AVX2, kernel_avx2_body, kernel_avx2)
static const kernel_fn kernels_avx2[3][MR + 1] = {
    KERNEL_TABLE(kernel_avx2, packed), KERNEL_TABLE(kernel_avx2, rows),
    KERNEL_TABLE(kernel_avx2, cols)};
#endif

/* AVX-512F: a 6 x 32 tile (two B panels) is 12 zmm accumulators; per k, 2 loads of B and 6
 * broadcasts of A feed 12 FMAs. Every element of C is still one FMA chain over k in
 * increasing order, then alpha * acc (+ beta * c) exactly as the AVX2 kernel, so the two
 * paths give identical bits and the choice between them may depend on the CPU. */
#ifdef FC_HAVE_AVX512_PATH
#define AVX512_ROW(r)                                                                  \
    if (mrv > (r)) {                                                                   \
        const __m512 ai = _mm512_set1_ps(a[(r) * rs_a + k * cs_a]);                    \
        acc[r][0] = _mm512_fmadd_ps(ai, b0, acc[r][0]);                                \
        acc[r][1] = _mm512_fmadd_ps(ai, b1, acc[r][1]);                                \
    }

#define AVX512_STORE_ROW(r)                                                            \
    if (mrv > (r)) {                                                                   \
        float *cr = c + (r) * ldc;                                                     \
        __m512 t0 = _mm512_mul_ps(va, acc[r][0]), t1 = _mm512_mul_ps(va, acc[r][1]);   \
        if (beta == 1.0f) {                                                            \
            t0 = _mm512_add_ps(_mm512_loadu_ps(cr), t0);                               \
            t1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m2, cr + 16), t1);                \
        } else if (beta != 0.0f) {                                                     \
            t0 = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr), t0);                         \
            t1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m2, cr + 16), t1);          \
        }                                                                              \
        _mm512_storeu_ps(cr, t0);                                                      \
        _mm512_mask_storeu_ps(cr + 16, m2, t1);                                        \
    }

FC_TARGET_AVX512 static inline FC_ALWAYS_INLINE void
kernel_avx512_body(const int mrv, int64_t kc, const float *FC_RESTRICT a, int64_t rs_a,
                   int64_t cs_a, const float *FC_RESTRICT b, int64_t b_next,
                   float *FC_RESTRICT c, int64_t ldc, float alpha, float beta, unsigned mask2)
{
    const __mmask16 m2 = (__mmask16)mask2;
    const float *FC_RESTRICT bb = b + b_next;
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(b + k * NR), b1 = _mm512_loadu_ps(bb + k * NR);
        AVX512_ROW(0) AVX512_ROW(1) AVX512_ROW(2) AVX512_ROW(3) AVX512_ROW(4) AVX512_ROW(5)
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    AVX512_STORE_ROW(0) AVX512_STORE_ROW(1) AVX512_STORE_ROW(2)
    AVX512_STORE_ROW(3) AVX512_STORE_ROW(4) AVX512_STORE_ROW(5)
}

#define WIDE_ARGS                                                                      \
    int64_t kc, const float *a, int64_t rs_a, int64_t cs_a, const float *b,            \
        int64_t b_next, float *c, int64_t ldc, float alpha, float beta, unsigned mask2
#define DEFINE_WIDE(NAME, MRV, RS, CS)                                                 \
    FC_TARGET_AVX512 static void NAME(WIDE_ARGS)                                       \
    {                                                                                  \
        (void)rs_a;                                                                    \
        (void)cs_a;                                                                    \
        kernel_avx512_body(MRV, kc, a, RS, CS, b, b_next, c, ldc, alpha, beta, mask2); \
    }
#define DEFINE_WIDE_SET(MRV)                                                           \
    DEFINE_WIDE(kernel_avx512_packed_##MRV, MRV, 1, MR)                                \
    DEFINE_WIDE(kernel_avx512_rows_##MRV, MRV, rs_a, 1)                                \
    DEFINE_WIDE(kernel_avx512_cols_##MRV, MRV, 1, cs_a)
DEFINE_WIDE_SET(1) DEFINE_WIDE_SET(2) DEFINE_WIDE_SET(3)
DEFINE_WIDE_SET(4) DEFINE_WIDE_SET(5) DEFINE_WIDE_SET(6)
static const kernel_wide_fn kernels_avx512[3][MR + 1] = {
    KERNEL_TABLE(kernel_avx512, packed), KERNEL_TABLE(kernel_avx512, rows),
    KERNEL_TABLE(kernel_avx512, cols)};

/* AVX-512F for a single B panel (N <= 16, e.g. 16-channel convolutions, or an odd last
 * panel): two MR-row blocks of A at once (a and a2), a 12 x 16 tile in 12 zmm
 * accumulators; per k, 1 load of B and 12 broadcasts of A feed 12 FMAs, a third of the
 * AVX2 6 x 16 kernel's instructions per FLOP. The same FMA chain per element and the same
 * epilogue as the AVX2 kernel: the same bits. */
#define TALL_ROW(r)                                                                    \
    acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[(r) * rs_a + k * cs_a]), b0, acc[r]);    \
    acc[MR + (r)] =                                                                    \
        _mm512_fmadd_ps(_mm512_set1_ps(a2[(r) * rs_a + k * cs_a]), b0, acc[MR + (r)]);

FC_TARGET_AVX512 static inline FC_ALWAYS_INLINE void
kernel_tall_body(int64_t kc, const float *FC_RESTRICT a, const float *FC_RESTRICT a2,
                 int64_t rs_a, int64_t cs_a, const float *FC_RESTRICT b, float *FC_RESTRICT c,
                 int64_t ldc, float alpha, float beta)
{
    __m512 acc[2 * MR];
    for (int i = 0; i < 2 * MR; i++)
        acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(b + k * NR);
        TALL_ROW(0) TALL_ROW(1) TALL_ROW(2) TALL_ROW(3) TALL_ROW(4) TALL_ROW(5)
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < 2 * MR; r++) {
        float *cr = c + r * ldc;
        __m512 t = _mm512_mul_ps(va, acc[r]);
        if (beta == 1.0f)
            t = _mm512_add_ps(_mm512_loadu_ps(cr), t);
        else if (beta != 0.0f)
            t = _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr), t);
        _mm512_storeu_ps(cr, t);
    }
}

#define DEFINE_TALL(NAME, RS, CS)                                                      \
    FC_TARGET_AVX512 static void NAME(int64_t kc, const float *a, const float *a2,      \
                                      int64_t rs_a, int64_t cs_a, const float *b,       \
                                      float *c, int64_t ldc, float alpha, float beta)   \
    {                                                                                  \
        (void)rs_a;                                                                    \
        (void)cs_a;                                                                    \
        kernel_tall_body(kc, a, a2, RS, CS, b, c, ldc, alpha, beta);                   \
    }
DEFINE_TALL(kernel_tall_packed, 1, MR)
DEFINE_TALL(kernel_tall_rows, rs_a, 1)
DEFINE_TALL(kernel_tall_cols, 1, cs_a)
static const kernel_tall_fn kernels_tall[3] = {kernel_tall_packed, kernel_tall_rows,
                                               kernel_tall_cols};
#endif

/* AVX-512 is used when the CPU (and OS) has it, the SIMD level is not forced to portable,
 * and neither FASTCNN_NO_AVX512 (environment, read once) nor fc_gemm_force_avx512(0) says
 * otherwise. */
static int g_avx512_forced = -1;
static int g_avx512_detected = -1;

static int detect_avx512(void)
{
#ifdef FC_HAVE_AVX512_PATH
    const char *env = getenv("FASTCNN_NO_AVX512");
    if (env != NULL && env[0] != '\0' && strcmp(env, "0") != 0)
        return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

int fc_gemm_avx512(void)
{
    if (g_avx512_detected < 0)
        g_avx512_detected = detect_avx512();
    if (fc_simd_level() < 1)
        return 0;
    return g_avx512_forced >= 0 ? g_avx512_forced : g_avx512_detected;
}

void fc_gemm_force_avx512(int on)
{
    if (g_avx512_detected < 0)
        g_avx512_detected = detect_avx512();
    if (on < 0)
        g_avx512_forced = -1;
    else /* never force a path the CPU cannot run */
        g_avx512_forced = on > 0 && g_avx512_detected > 0 ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------
 * Packing.
 * ---------------------------------------------------------------------------------------- */

#ifdef FC_HAVE_AVX2_PATH
/* op(B) = B^T, a full NR-wide panel: 8 x 8 blocks of B transposed in registers. */
FC_TARGET_AVX2 static void pack_bt_panel_avx2(const float *FC_RESTRICT src, int64_t ldb,
                                              int64_t kc, float *FC_RESTRICT dst)
{
    for (int64_t jh = 0; jh < NR; jh += 8) {
        const float *s = src + jh * ldb;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            const float *s0 = s + k, *s4 = s + 4 * ldb + k;
            const __m256 r0 = _mm256_loadu_ps(s0), r1 = _mm256_loadu_ps(s0 + ldb);
            const __m256 r2 = _mm256_loadu_ps(s0 + 2 * ldb), r3 = _mm256_loadu_ps(s0 + 3 * ldb);
            const __m256 r4 = _mm256_loadu_ps(s4), r5 = _mm256_loadu_ps(s4 + ldb);
            const __m256 r6 = _mm256_loadu_ps(s4 + 2 * ldb), r7 = _mm256_loadu_ps(s4 + 3 * ldb);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + k * NR + jh;
            _mm256_store_ps(d + 0 * NR, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(d + 1 * NR, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(d + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(d + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(d + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(d + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(d + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(d + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (; k < kc; k++)
            for (int64_t j = 0; j < 8; j++)
                dst[k * NR + jh + j] = s[j * ldb + k];
    }
}
#endif

/* Columns [j0, j0 + nr) and rows [k0, k0 + kc) of op(B) -> dst[k * NR + j], zero-padded. */
static void pack_b_panel(const gemm_plan *p, int64_t k0, int64_t kc, int64_t j0, int64_t nr,
                         float *FC_RESTRICT dst)
{
    if (!p->trans_b) {
        const float *src = p->B + k0 * p->ldb + j0;
        if (nr == NR) {
            for (int64_t k = 0; k < kc; k++)
                memcpy(dst + k * NR, src + k * p->ldb, NR * sizeof(float));
        } else {
            for (int64_t k = 0; k < kc; k++) {
                int64_t j = 0;
                for (; j < nr; j++)
                    dst[k * NR + j] = src[k * p->ldb + j];
                for (; j < NR; j++)
                    dst[k * NR + j] = 0.0f;
            }
        }
    } else {
        /* op(B)[k][j] = B[j][k]: read each row of B contiguously, scatter with stride NR. */
        const float *src = p->B + j0 * p->ldb + k0;
#ifdef FC_HAVE_AVX2_PATH
        if (p->simd && nr == NR) {
            pack_bt_panel_avx2(src, p->ldb, kc, dst);
            return;
        }
#endif
        int64_t j = 0;
        for (; j < nr; j++) {
            const float *s = src + j * p->ldb;
            for (int64_t k = 0; k < kc; k++)
                dst[k * NR + j] = s[k];
        }
        for (; j < NR; j++)
            for (int64_t k = 0; k < kc; k++)
                dst[k * NR + j] = 0.0f;
    }
}

/* Rows [i0, i0 + mr) and columns [k0, k0 + kc) of op(A) -> dst[k * MR + i], zero-padded. */
static void pack_a_panel(const gemm_plan *p, int64_t i0, int64_t mr, int64_t k0, int64_t kc,
                         float *FC_RESTRICT dst)
{
    if (!p->trans_a) {
        const float *src = p->A + i0 * p->lda + k0;
        if (mr == MR) {
            const float *r0 = src, *r1 = src + p->lda, *r2 = src + 2 * p->lda;
            const float *r3 = src + 3 * p->lda, *r4 = src + 4 * p->lda, *r5 = src + 5 * p->lda;
            for (int64_t k = 0; k < kc; k++) {
                float *d = dst + k * MR;
                d[0] = r0[k]; d[1] = r1[k]; d[2] = r2[k];
                d[3] = r3[k]; d[4] = r4[k]; d[5] = r5[k];
            }
        } else {
            for (int64_t k = 0; k < kc; k++) {
                int64_t i = 0;
                for (; i < mr; i++)
                    dst[k * MR + i] = src[i * p->lda + k];
                for (; i < MR; i++)
                    dst[k * MR + i] = 0.0f;
            }
        }
    } else {
        /* op(A)[i][k] = A[k][i]: MR contiguous floats per k. */
        const float *src = p->A + k0 * p->lda + i0;
        if (mr == MR) {
            for (int64_t k = 0; k < kc; k++)
                memcpy(dst + k * MR, src + k * p->lda, MR * sizeof(float));
            return;
        }
        for (int64_t k = 0; k < kc; k++) {
            const float *s = src + k * p->lda;
            float *d = dst + k * MR;
            int64_t i = 0;
            for (; i < mr; i++)
                d[i] = s[i];
            for (; i < MR; i++)
                d[i] = 0.0f;
        }
    }
}

/* Rows [i0, i0 + mc) of op(A) as consecutive MR-row panels (panel q at dst + q * MR * kc). */
static void pack_a_block(const gemm_plan *p, int64_t i0, int64_t mc, int64_t k0, int64_t kc,
                         float *FC_RESTRICT dst)
{
    if (p->trans_a) {
        /* A^T: walk the rows of A once, contiguously, scattering MR floats to each panel */
        const int64_t full = mc / MR;
        for (int64_t k = 0; k < kc; k++) {
            const float *s = p->A + (k0 + k) * p->lda + i0;
            for (int64_t q = 0; q < full; q++)
                memcpy(dst + q * MR * kc + k * MR, s + q * MR, MR * sizeof(float));
        }
        if (mc % MR != 0)
            pack_a_panel(p, i0 + full * MR, mc % MR, k0, kc, dst + full * MR * kc);
        return;
    }
    for (int64_t ir = 0; ir < mc; ir += MR)
        pack_a_panel(p, i0 + ir, min64(MR, mc - ir), k0, kc, dst + ir * kc);
}

/* ------------------------------------------------------------------------------------------
 * Driver.
 * ---------------------------------------------------------------------------------------- */

/* One tile of C: mr x nr (mr <= MR, nr <= NR) at c. A partial-width tile goes through a
 * full-width temporary so the kernel can always store whole vectors. */
static void compute_tile(const gemm_plan *p, const kernel_fn *kernels, int64_t kc,
                         const float *a, int64_t rs_a, int64_t cs_a, const float *b, float *c,
                         int64_t mr, int64_t nr, float beta)
{
    if (nr == NR) {
        kernels[mr](kc, a, rs_a, cs_a, b, c, p->ldc, p->alpha, beta);
        return;
    }
    FC_ALIGN64 float tile[MR * NR];
    if (beta != 0.0f)
        for (int64_t i = 0; i < mr; i++) {
            memcpy(tile + i * NR, c + i * p->ldc, (size_t)nr * sizeof(float));
            memset(tile + i * NR + nr, 0, (size_t)(NR - nr) * sizeof(float)); /* no garbage */
        }
    kernels[mr](kc, a, rs_a, cs_a, b, tile, NR, p->alpha, beta);
    for (int64_t i = 0; i < mr; i++)
        memcpy(c + i * p->ldc, tile + i * NR, (size_t)nr * sizeof(float));
}

/* The MR-tall tiles of rows [i0, i0 + mc) of C (at c) against one packed B panel, k in
 * [pc, pc + kc): op(A) from the packed block abuf or, in direct mode, from A itself. */
static void compute_tile_column(const gemm_plan *p, int64_t i0, int64_t mc, int64_t pc,
                                int64_t kc, const float *abuf, const float *b, float *c,
                                int64_t nr, float beta)
{
    int64_t ir = 0;
#ifdef FC_HAVE_AVX512_PATH
    if (p->tall_packed != NULL && nr == NR) /* full 2*MR x NR tiles: the tall kernel */
        for (; ir + 2 * MR <= mc; ir += 2 * MR) {
            float *ct = c + ir * p->ldc;
            const int64_t lda = p->lda, r0 = i0 + ir;
            if (!p->direct_a)
                p->tall_packed(kc, abuf + ir * kc, abuf + (ir + MR) * kc, 1, MR, b, ct,
                               p->ldc, p->alpha, beta);
            else if (!p->trans_a)
                p->tall_direct(kc, p->A + r0 * lda + pc, p->A + (r0 + MR) * lda + pc, lda, 1,
                               b, ct, p->ldc, p->alpha, beta);
            else
                p->tall_direct(kc, p->A + pc * lda + r0, p->A + pc * lda + r0 + MR, 1, lda, b,
                               ct, p->ldc, p->alpha, beta);
        }
#endif
    for (; ir < mc; ir += MR) {
        const int64_t mr = min64(MR, mc - ir);
        float *ct = c + ir * p->ldc;
        if (!p->direct_a)
            compute_tile(p, p->kernel_packed, kc, abuf + ir * kc, 1, MR, b, ct, mr, nr, beta);
        else if (!p->trans_a)
            compute_tile(p, p->kernel_direct, kc, p->A + (i0 + ir) * p->lda + pc, p->lda, 1, b,
                         ct, mr, nr, beta);
        else
            compute_tile(p, p->kernel_direct, kc, p->A + pc * p->lda + i0 + ir, 1, p->lda, b,
                         ct, mr, nr, beta);
    }
}

/* compute_tile_column for two panels at once (b, b + b_next; the second has nr2 columns),
 * with the AVX-512 kernels. */
static void compute_tile_column_wide(const gemm_plan *p, int64_t i0, int64_t mc, int64_t pc,
                                     int64_t kc, const float *abuf, const float *b,
                                     int64_t b_next, float *c, int64_t nr2, float beta)
{
    const unsigned mask2 = (unsigned)((1u << nr2) - 1u);
    for (int64_t ir = 0; ir < mc; ir += MR) {
        const int64_t mr = min64(MR, mc - ir);
        float *ct = c + ir * p->ldc;
        if (!p->direct_a)
            p->wide_packed[mr](kc, abuf + ir * kc, 1, MR, b, b_next, ct, p->ldc, p->alpha,
                               beta, mask2);
        else if (!p->trans_a)
            p->wide_direct[mr](kc, p->A + (i0 + ir) * p->lda + pc, p->lda, 1, b, b_next, ct,
                               p->ldc, p->alpha, beta, mask2);
        else
            p->wide_direct[mr](kc, p->A + pc * p->lda + i0 + ir, 1, p->lda, b, b_next, ct,
                               p->ldc, p->alpha, beta, mask2);
    }
}

/* Rows [i0, i0 + mc) x all ncols columns of C (at c) against the packed panels at bpanels
 * (panel jp at bpanels + jp * NR * kc), k in [pc, pc + kc): panels in pairs with AVX-512,
 * else (and for an odd last panel) one at a time. */
static void compute_block(const gemm_plan *p, int64_t i0, int64_t mc, int64_t pc, int64_t kc,
                          const float *abuf, const float *bpanels, float *c, int64_t ncols,
                          float beta)
{
    const int64_t np = ceil_div(ncols, NR);
    int64_t jp = 0;
    if (p->wide_packed != NULL)
        for (; jp + 1 < np; jp += 2)
            compute_tile_column_wide(p, i0, mc, pc, kc, abuf, bpanels + jp * NR * kc, NR * kc,
                                     c + jp * NR, min64(NR, ncols - (jp + 1) * NR), beta);
    for (; jp < np; jp++)
        compute_tile_column(p, i0, mc, pc, kc, abuf, bpanels + jp * NR * kc, c + jp * NR,
                            min64(NR, ncols - jp * NR), beta);
}

/* The whole loop nest over the rectangle [m0, m1) x [n0, n1) of C, with this thread's own
 * packing buffers: no synchronisation at all, so it is also safe inside somebody else's
 * parallel region. */
static void gemm_rect(const gemm_plan *p, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                      float *bbuf, float *abuf)
{
    const int64_t K = p->K;
    const int64_t mrows = m1 - m0;
    if (mrows <= 0 || n1 <= n0)
        return;
    /* mc-row blocks of equal size (multiple of MR), at most MC_MAX */
    const int64_t mc = round_up(ceil_div(mrows, ceil_div(mrows, MC_MAX)), MR);
    for (int64_t jc = n0; jc < n1; jc += p->nc) {
        const int64_t ncur = min64(p->nc, n1 - jc);
        const int64_t np = ceil_div(ncur, NR);
        for (int64_t pc = 0; pc < K; pc += p->kc) {
            const int64_t kcur = min64(p->kc, K - pc);
            const float beta = pc == 0 ? p->beta : 1.0f;
            for (int64_t jp = 0; jp < np; jp++)
                pack_b_panel(p, pc, kcur, jc + jp * NR, min64(NR, ncur - jp * NR),
                             bbuf + jp * NR * kcur);
            for (int64_t i0 = m0; i0 < m1; i0 += mc) {
                const int64_t mcur = min64(mc, m1 - i0);
                if (!p->direct_a)
                    pack_a_block(p, i0, mcur, pc, kcur, abuf);
                compute_block(p, i0, mcur, pc, kcur, abuf, bbuf, p->C + i0 * p->ldc + jc, ncur,
                              beta);
            }
        }
    }
}

/* Row-block mode, for a B that fits a thread's buffer whole: B is packed once per thread
 * (kc-row blocks of all its NR panels, block q at bfull + q * kc * npad), then rows of C are
 * finished one block of mc rows at a time (all of N, all of K), so threads can take blocks
 * dynamically. */
static void pack_b_all(const gemm_plan *p, float *bfull)
{
    const int64_t npad = round_up(p->N, NR), np = npad / NR;
    for (int64_t pc = 0; pc < p->K; pc += p->kc) {
        const int64_t kcur = min64(p->kc, p->K - pc);
        for (int64_t jp = 0; jp < np; jp++)
            pack_b_panel(p, pc, kcur, jp * NR, min64(NR, p->N - jp * NR),
                         bfull + pc * npad + jp * NR * kcur);
    }
}

static void gemm_row_block(const gemm_plan *p, int64_t i0, int64_t mcur, const float *bfull,
                           float *abuf)
{
    const int64_t N = p->N, K = p->K;
    const int64_t npad = round_up(N, NR);
    for (int64_t pc = 0; pc < K; pc += p->kc) {
        const int64_t kcur = min64(p->kc, K - pc);
        const float beta = pc == 0 ? p->beta : 1.0f;
        if (!p->direct_a)
            pack_a_block(p, i0, mcur, pc, kcur, abuf);
        compute_block(p, i0, mcur, pc, kcur, abuf, bfull + pc * npad, p->C + i0 * p->ldc, N,
                      beta);
    }
}

/* In-place A^T is walked down its rows (stride ld floats), one cache line per k. With ld a
 * multiple of a large power of two all those lines fall into a few L1 sets and evict each
 * other (e.g. ld = 1024: one set), so such an A is packed instead. */
static int spreads_over_cache_sets(int64_t ld)
{
    const int64_t bytes = ld * (int64_t)sizeof(float);
    if (bytes % 64 != 0)
        return 1;
    int64_t lines = bytes / 64, pow2 = 1;
    while (lines % 2 == 0 && pow2 < 64) {
        lines /= 2;
        pow2 *= 2;
    }
    return pow2 <= 4; /* at least 16 of 64 sets */
}

/* C = beta * C (alpha == 0 or K == 0: A and B are not read, as BLAS). */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t j = 0; j < N; j++)
                c[j] *= beta;
    }
}

/* The plan of one product: operands, blocking (kc, nc: functions of K and N alone, for
 * determinism), whether A is read in place, and the kernels of the SIMD level in use. */
static void make_plan(gemm_plan *p, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc)
{
    p->trans_a = trans_a != 0;
    p->trans_b = trans_b != 0;
    p->M = M; p->N = N; p->K = K;
    p->alpha = alpha; p->beta = beta;
    p->A = A; p->B = B; p->C = C;
    p->lda = lda; p->ldb = ldb; p->ldc = ldc;
    p->direct_a = (N <= DIRECT_A_MAX_N || K <= DIRECT_A_MAX_K)
                  && (!p->trans_a || spreads_over_cache_sets(lda));
    const kernel_fn(*kernels)[MR + 1] = kernels_c;
    p->simd = 0;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        kernels = kernels_avx2;
        p->simd = 1;
    }
#endif
    p->kernel_packed = kernels[0];
    p->kernel_direct = kernels[p->trans_a ? 2 : 1];
    p->wide_packed = p->wide_direct = NULL;
    p->tall_packed = p->tall_direct = NULL;
#ifdef FC_HAVE_AVX512_PATH
    if (p->simd && fc_gemm_avx512()) {
        p->wide_packed = kernels_avx512[0];
        p->wide_direct = kernels_avx512[p->trans_a ? 2 : 1];
        p->tall_packed = kernels_tall[0];
        p->tall_direct = kernels_tall[p->trans_a ? 2 : 1];
    }
#endif
    p->kc = fc_sgemm_k_block(K);
    p->nc = min64(round_up(N, NR), NC_MAX);
}

static int gemm_run(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                    float *C, int64_t ldc, int max_threads)
{
    if (M <= 0 || N <= 0)
        return FC_OK;
    if (K <= 0 || alpha == 0.0f) {
        scale_c(M, N, beta, C, ldc);
        return FC_OK;
    }
    gemm_plan p;
    make_plan(&p, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);

    /* Threads get a tm x tn grid of rectangles of C (cut at MR / NR multiples). Each packs
     * its own B panels and A blocks, so splitting M duplicates B packing and splitting N
     * duplicates A packing (or, for direct A, re-reading A): pick the cheaper grid. */
    int nt = max_threads < 1 ? 1 : max_threads;
    const int64_t row_tiles = ceil_div(M, MR), col_tiles = ceil_div(N, NR);
    if (M * N * K < PARALLEL_MIN_WORK)
        nt = 1;
    int tm = 1, tn = 1;
    double best = -1.0;
    for (int a = 1; a <= nt; a++) {
        int b = nt / a;
        if (a > row_tiles || b > col_tiles)
            continue;
        double used = (double)a * b;
        double dup = (a - 1) * (double)K * N
                     + (b - 1) * (double)K * M * (p.direct_a ? 0.25 : 1.0);
        double score = used * 1e30 - dup; /* as many threads as possible, then least dup */
        if (best < 0.0 || score > best) {
            best = score;
            tm = a;
            tn = b;
        }
    }
    nt = tm * tn;

    const int64_t npad = round_up(N, NR);
    if ((nt == 1 || tn == 1) && K * npad <= B_WHOLE_MAX) {
        /* Row-block mode: blocks of at most MC_MAX rows, a few per thread (for balance). */
        const int64_t mc =
            min64(MC_MAX, round_up(ceil_div(M, ROW_BLOCKS_PER_THREAD * (int64_t)nt), MR));
        const int64_t nblocks = ceil_div(M, mc);
        const int64_t a_floats = p.direct_a ? 0 : mc * p.kc;
        const int64_t per_thread = round_up(K * npad + a_floats, 16);
        float *buf = (float *)fc_malloc((size_t)(per_thread * nt) * sizeof(float));
        if (buf == NULL)
            return FC_ENOMEM;
        if (nt == 1) {
            pack_b_all(&p, buf);
            for (int64_t blk = 0; blk < nblocks; blk++)
                gemm_row_block(&p, blk * mc, min64(mc, M - blk * mc), buf, buf + K * npad);
        } else {
#pragma omp parallel num_threads(nt)
            {
                int tid = 0, packed = 0;
#ifdef FASTCNN_OPENMP
                tid = omp_get_thread_num();
#endif
                float *mine = buf + per_thread * tid;
                /* dynamic: a thread the OS preempts does not hold up the others */
#pragma omp for schedule(dynamic, 1) nowait
                for (int64_t blk = 0; blk < nblocks; blk++) {
                    if (!packed) { /* a latecomer that finds no block left packs nothing */
                        pack_b_all(&p, mine);
                        packed = 1;
                    }
                    gemm_row_block(&p, blk * mc, min64(mc, M - blk * mc), mine,
                                   mine + K * npad);
                }
            }
        }
        fc_free(buf);
        return FC_OK;
    }

    const int64_t rect_n = min64(p.nc, ceil_div(col_tiles, tn) * NR);
    const int64_t rect_m = ceil_div(row_tiles, tm) * MR;
    const int64_t a_floats = p.direct_a ? 0 : min64(rect_m, MC_MAX) * p.kc;
    const int64_t b_floats = rect_n * p.kc;
    const int64_t per_thread = round_up(a_floats + b_floats, 16); /* 64-byte aligned slices */
    float *buf = (float *)fc_malloc((size_t)(per_thread * nt) * sizeof(float));
    if (buf == NULL)
        return FC_ENOMEM;
    if (nt == 1) {
        gemm_rect(&p, 0, M, 0, N, buf, buf + b_floats);
    } else {
#pragma omp parallel for schedule(static, 1) num_threads(nt)
        for (int t = 0; t < nt; t++) {
            const int64_t ti = t / tn, tj = t % tn;
            const int64_t m0 = min64(M, row_tiles * ti / tm * MR);
            const int64_t m1 = min64(M, row_tiles * (ti + 1) / tm * MR);
            const int64_t n0 = min64(N, col_tiles * tj / tn * NR);
            const int64_t n1 = min64(N, col_tiles * (tj + 1) / tn * NR);
            float *mine = buf + per_thread * t;
            gemm_rect(&p, m0, m1, n0, n1, mine, mine + b_floats);
        }
    }
    fc_free(buf);
    return FC_OK;
}

int fc_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
             int64_t ldc)
{
    return gemm_run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                    fc_get_num_threads());
}

int fc_sgemm_serial(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                    float *C, int64_t ldc)
{
    return gemm_run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
}

int64_t fc_sgemm_packed_b_floats(int64_t K, int64_t N)
{
    if (K <= 0 || N <= 0 || K * round_up(N, NR) > B_WHOLE_MAX)
        return 0;
    return K * round_up(N, NR);
}

void fc_sgemm_pack_b(int trans_b, int64_t K, int64_t N, const float *B, int64_t ldb,
                     float *packed)
{
    gemm_plan p;
    if (fc_sgemm_packed_b_floats(K, N) == 0)
        return;
    make_plan(&p, 0, trans_b, 1, N, K, 1.0f, NULL, K, B, ldb, 0.0f, NULL, N);
    pack_b_all(&p, packed);
}

/* fc_sgemm_serial's row-block mode (the one it takes for K * N <= B_WHOLE_MAX) with B
 * already packed: the same blocks, kernels and sums, so the same bits. */
int fc_sgemm_serial_packed_b(int trans_a, int64_t M, int64_t N, int64_t K, const float *A,
                             int64_t lda, const float *packed_b, float beta, float *C,
                             int64_t ldc)
{
    gemm_plan p;
    if (M <= 0 || N <= 0)
        return FC_OK;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return FC_OK;
    }
    make_plan(&p, trans_a, 0, M, N, K, 1.0f, A, lda, NULL, N, beta, C, ldc);
    const int64_t mc = min64(MC_MAX, round_up(ceil_div(M, ROW_BLOCKS_PER_THREAD), MR));
    float *abuf = NULL;
    if (!p.direct_a) {
        abuf = (float *)fc_malloc((size_t)(mc * p.kc) * sizeof(float));
        if (abuf == NULL)
            return FC_ENOMEM;
    }
    for (int64_t i0 = 0; i0 < M; i0 += mc)
        gemm_row_block(&p, i0, min64(mc, M - i0), packed_b, abuf);
    fc_free(abuf);
    return FC_OK;
}

/* ------------------------------------------------------------------------------------------
 * Reference: plain triple loop, double accumulation (the test oracle).
 * ---------------------------------------------------------------------------------------- */
#define A_AT(i, k) (trans_a ? A[(k) * lda + (i)] : A[(i) * lda + (k)])
#define B_AT(k, j) (trans_b ? B[(j) * ldb + (k)] : B[(k) * ldb + (j)])

void fc_sgemm_reference(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float beta, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)A_AT(i, k) * (double)B_AT(k, j);
            float prev = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = (float)(alpha * acc) + prev;
        }
}

int64_t fc_sgemm_k_block(int64_t K)
{
    return K > 0 ? ceil_div(K, ceil_div(K, KC_MAX)) : 1;
}
