/* GEMM: placeholder-quality but correct implementation (row-parallel i-k-j loop).
 * TODO(gemm): packed panels + AVX2/FMA register-blocked micro-kernel. */
#include "gemm.h"

#define A_AT(i, k) (trans_a ? A[(k) * lda + (i)] : A[(i) * lda + (k)])
#define B_AT(k, j) (trans_b ? B[(j) * ldb + (k)] : B[(k) * ldb + (j)])

static void gemm_rows(int trans_a, int trans_b, int64_t i0, int64_t i1, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc)
{
    for (int64_t i = i0; i < i1; i++) {
        float *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++)
            c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        for (int64_t k = 0; k < K; k++) {
            float a = alpha * A_AT(i, k);
            if (!trans_b) {
                const float *b = B + k * ldb;
                for (int64_t j = 0; j < N; j++)
                    c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < N; j++)
                    c[j] += a * B[j * ldb + k];
            }
        }
    }
}

int fc_sgemm_serial(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc)
{
    gemm_rows(trans_a, trans_b, 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return FC_OK;
}

int fc_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
             float beta, float *C, int64_t ldc)
{
    int64_t i;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads())
    for (i = 0; i < M; i++)
        gemm_rows(trans_a, trans_b, i, i + 1, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return FC_OK;
}

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
