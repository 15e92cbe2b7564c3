/* One-row dense layer without packing (see lean_dense.h). */
#include "lean_dense.h"
#include "gemm.h"

#define LEAN_COLS 64 /* 8 ymm accumulators per column block */

#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>

/* columns [0, 8*nv) of one block (the last vector masked by `tail`): y = sums, bias, ReLU */
static inline __attribute__((always_inline)) FC_TARGET_AVX2 void
dense_cols(const float *x, const float *w, const float *bias, int64_t in, int64_t kc,
           int64_t units, int relu, int nv, __m256i tail, float *y)
{
    __m256 out[LEAN_COLS / 8];
    for (int v = 0; v < nv; v++) /* (set by the first block; in > 0) */
        out[v] = _mm256_setzero_ps();
    for (int64_t pc = 0; pc < in; pc += kc) {
        const int64_t kend = pc + kc < in ? pc + kc : in;
        __m256 acc[LEAN_COLS / 8];
        for (int v = 0; v < nv; v++)
            acc[v] = _mm256_setzero_ps();
        for (int64_t k = pc; k < kend; k++) {
            const __m256 xk = _mm256_broadcast_ss(x + k);
            const float *wk = w + k * units;
            for (int v = 0; v < nv - 1; v++)
                acc[v] = _mm256_fmadd_ps(xk, _mm256_loadu_ps(wk + 8 * v), acc[v]);
            acc[nv - 1] = _mm256_fmadd_ps(xk, _mm256_maskload_ps(wk + 8 * (nv - 1), tail),
                                          acc[nv - 1]);
        }
        for (int v = 0; v < nv; v++) /* the GEMM: c = alpha * acc, then c + alpha * acc */
            out[v] = pc == 0 ? acc[v] : _mm256_add_ps(out[v], acc[v]);
    }
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256 zero = _mm256_setzero_ps();
    for (int v = 0; v < nv; v++) {
        const __m256i m = v == nv - 1 ? tail : all;
        __m256 r = out[v];
        if (bias != NULL)
            r = _mm256_add_ps(r, _mm256_maskload_ps(bias + 8 * v, m));
        if (relu) /* (r > 0 || r != r) ? r : 0, as nn.c's epilogue */
            r = _mm256_and_ps(r, _mm256_or_ps(_mm256_cmp_ps(r, zero, _CMP_GT_OQ),
                                              _mm256_cmp_ps(r, r, _CMP_UNORD_Q)));
        _mm256_maskstore_ps(y + 8 * v, m, r);
    }
}

FC_TARGET_AVX2 static void dense_row_avx2(const float *x, const float *kernel,
                                          const float *bias, int64_t in, int64_t units,
                                          int relu, float *y)
{
    const int64_t kc = fc_sgemm_k_block(in); /* the GEMM's block sums, added in its order */
    const __m256i all = _mm256_set1_epi32(-1);
    for (int64_t j0 = 0; j0 < units; j0 += LEAN_COLS) {
        const int64_t w = units - j0 < LEAN_COLS ? units - j0 : LEAN_COLS;
        const float *b = bias != NULL ? bias + j0 : NULL;
        if (w == LEAN_COLS) { /* constant trip counts: the accumulators stay in registers */
            dense_cols(x, kernel + j0, b, in, kc, units, relu, LEAN_COLS / 8, all, y + j0);
        } else {
            const int nv = (int)((w + 7) / 8), rest = (int)(w - 8 * (nv - 1));
            int32_t lanes[8];
            for (int i = 0; i < 8; i++)
                lanes[i] = i < rest ? -1 : 0;
            const __m256i tail = _mm256_loadu_si256((const __m256i *)lanes);
            dense_cols(x, kernel + j0, b, in, kc, units, relu, nv, tail, y + j0);
        }
    }
}
#endif

int fc_lean_dense_row(const float *x, const float *kernel, const float *bias, int64_t in,
                      int64_t units, int relu, float *y)
{
#ifdef FC_HAVE_AVX2_PATH
    if (in > 0 && units > 0 && fc_simd_level() >= 1) {
        dense_row_avx2(x, kernel, bias, in, units, relu, y);
        return 1;
    }
#endif
    (void)x, (void)kernel, (void)bias, (void)in, (void)units, (void)relu, (void)y;
    return 0;
}
