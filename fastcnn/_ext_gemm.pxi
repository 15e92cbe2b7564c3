cdef extern from "gemm.h":
    int fc_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc) nogil
    void fc_sgemm_reference(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, const float *B,
                            int64_t ldb, float beta, float *C, int64_t ldc) nogil


def sgemm(bint trans_a, bint trans_b, float alpha, const float[:, ::1] a,
          const float[:, ::1] b, float beta, float[:, ::1] c, bint reference=False):
    """c = alpha * op(a) @ op(b) + beta * c, in place. Shapes are checked by fastcnn.ops."""
    cdef int64_t M = c.shape[0], N = c.shape[1]
    cdef int64_t K = a.shape[0] if trans_a else a.shape[1]
    cdef int rc = 0
    cdef const float *pa = &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL
    cdef const float *pb = &b[0, 0] if b.shape[0] > 0 and b.shape[1] > 0 else NULL
    cdef float *pc = &c[0, 0] if M > 0 and N > 0 else NULL
    if M == 0 or N == 0:
        return
    with nogil:
        if reference:
            fc_sgemm_reference(trans_a, trans_b, M, N, K, alpha, pa, a.shape[1], pb,
                               b.shape[1], beta, pc, N)
        else:
            rc = fc_sgemm(trans_a, trans_b, M, N, K, alpha, pa, a.shape[1], pb, b.shape[1],
                          beta, pc, N)
    _check(rc, "sgemm")
