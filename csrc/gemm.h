/* Single-precision GEMM, row-major:  C = alpha * op(A) * op(B) + beta * C.
 *
 * op(A) is M x K: A is stored (M, K) with row stride lda >= K, or, when
 * trans_a != 0, (K, M) with lda >= M. Likewise op(B) is K x N: B is (K, N) with
 * ldb >= N, or (N, K) with ldb >= K when trans_b != 0. C is (M, N), ldc >= N.
 * beta == 0 overwrites C without reading it (NaNs there are ignored), as BLAS;
 * alpha == 0 or K == 0 gives C = beta * C without reading A or B.
 *
 * Work is split over tiles of C only, and every tile accumulates K in the same
 * order, so the result is bitwise identical for any thread count.
 */
#ifndef FC_GEMM_H
#define FC_GEMM_H
#include "fc_common.h"

/* Uses fc_get_num_threads() threads. Returns FC_OK or FC_ENOMEM. */
int fc_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb,
             float beta, float *C, int64_t ldc);

/* One thread; safe to call from inside another kernel's parallel region. */
int fc_sgemm_serial(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc);

/* Packing B once for many products with the same B (Winograd's 16 transformed kernels):
 * fc_sgemm_packed_b_floats(K, N) floats (0: too large, use fc_sgemm_serial), filled by
 * fc_sgemm_pack_b from op(B) (K x N); then fc_sgemm_serial_packed_b computes
 * C = op(A) @ op(B) + beta * C (alpha = 1) on one thread, bitwise as fc_sgemm_serial. */
int64_t fc_sgemm_packed_b_floats(int64_t K, int64_t N);
void fc_sgemm_pack_b(int trans_b, int64_t K, int64_t N, const float *B, int64_t ldb,
                     float *packed);
int fc_sgemm_serial_packed_b(int trans_a, int64_t M, int64_t N, int64_t K, const float *A,
                             int64_t lda, const float *packed_b, float beta, float *C,
                             int64_t ldc);

/* 1 when the GEMM uses its AVX-512F kernels: the CPU has AVX-512F, fc_simd_level() >= 1,
 * FASTCNN_NO_AVX512 is unset (or "0") and fc_gemm_force_avx512 did not turn them off. They
 * give the same bits as the AVX2 kernels. fc_gemm_force_avx512(0/1) turns them off/on (on
 * only where the CPU has AVX-512F), -1 restores the default. */
int fc_gemm_avx512(void);
void fc_gemm_force_avx512(int on);

/* The depth of each K block the GEMM sums separately (then adds in order) for a product of
 * depth K: code that must give the GEMM's bits without calling it blocks K the same way. */
int64_t fc_sgemm_k_block(int64_t K);

/* Plain triple loop with double accumulation: the oracle for tests. */
void fc_sgemm_reference(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda,
                        const float *B, int64_t ldb,
                        float beta, float *C, int64_t ldc);
#endif
