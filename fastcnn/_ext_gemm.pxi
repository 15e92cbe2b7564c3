from cython.parallel cimport prange

cdef extern from "gemm.h":
    int fc_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc) nogil
    int fc_sgemm_serial(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float beta, float *C, int64_t ldc) nogil
    void fc_sgemm_reference(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                            float alpha, const float *A, int64_t lda, const float *B,
                            int64_t ldb, float beta, float *C, int64_t ldc) nogil


cdef inline int64_t _row_stride(int64_t rows, int64_t cols, Py_ssize_t stride0) noexcept nogil:
    # Leading dimension in floats. A view's rows may be further apart than its width (a
    # column slice of a wider array); a single row's stride is meaningless, use the width.
    if rows <= 1:
        return cols if cols > 0 else 1
    return stride0 // sizeof(float)


cdef inline bint _rows_ok(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t stride0,
                         Py_ssize_t stride1) noexcept:
    if cols > 1 and stride1 != sizeof(float):
        return False
    return rows <= 1 or stride0 >= cols * <Py_ssize_t>sizeof(float)


def sgemm(bint trans_a, bint trans_b, float alpha, const float[:, :] a,
          const float[:, :] b, float beta, float[:, :] c, bint reference=False):
    """c = alpha * op(a) @ op(b) + beta * c, in place. Shapes are checked by fastcnn.ops.

    Rows of a, b and c may be strided (views of wider arrays, the BLAS leading dimension);
    elements within a row must be contiguous.
    """
    if not (_rows_ok(a.shape[0], a.shape[1], a.strides[0], a.strides[1])
            and _rows_ok(b.shape[0], b.shape[1], b.strides[0], b.strides[1])
            and _rows_ok(c.shape[0], c.shape[1], c.strides[0], c.strides[1])):
        raise ValueError("sgemm: a, b and c need contiguous, non-overlapping, ascending rows")
    cdef int64_t M = c.shape[0], N = c.shape[1]
    cdef int64_t K = a.shape[0] if trans_a else a.shape[1]
    cdef int rc = 0
    cdef const float *pa = &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL
    cdef const float *pb = &b[0, 0] if b.shape[0] > 0 and b.shape[1] > 0 else NULL
    cdef float *pc = &c[0, 0] if M > 0 and N > 0 else NULL
    cdef int64_t lda = _row_stride(a.shape[0], a.shape[1], a.strides[0])
    cdef int64_t ldb = _row_stride(b.shape[0], b.shape[1], b.strides[0])
    cdef int64_t ldc = _row_stride(c.shape[0], c.shape[1], c.strides[0])
    if M == 0 or N == 0:
        return
    with nogil:
        if reference:
            fc_sgemm_reference(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb, beta, pc,
                               ldc)
        else:
            rc = fc_sgemm(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb, beta, pc, ldc)
    _check(rc, "sgemm")


def sgemm_batch_serial(bint trans_a, bint trans_b, float alpha, const float[:, :, ::1] a,
                       const float[:, :, ::1] b, float beta, float[:, :, ::1] c):
    """c[i] = alpha * op(a[i]) @ op(b[i]) + beta * c[i] for every i.

    One fc_sgemm_serial per matrix, called from inside an OpenMP parallel loop over the
    batch (this is how other kernels use it). Arrays must be C-contiguous with non-empty
    matrices; shapes are trusted.
    """
    cdef Py_ssize_t n = c.shape[0], i
    cdef int64_t M = c.shape[1], N = c.shape[2]
    cdef int64_t K = a.shape[1] if trans_a else a.shape[2]
    cdef int64_t lda = a.shape[2], ldb = b.shape[2]
    cdef int failed = 0
    if n == 0 or M == 0 or N == 0 or K == 0:
        raise ValueError("sgemm_batch_serial: empty batch or matrix")
    for i in prange(n, nogil=True, schedule="static", num_threads=fc_get_num_threads()):
        if fc_sgemm_serial(trans_a, trans_b, M, N, K, alpha, &a[i, 0, 0], lda, &b[i, 0, 0],
                           ldb, beta, &c[i, 0, 0], N) != FC_OK:
            failed += 1
    _check(FC_ENOMEM if failed else FC_OK, "sgemm_batch_serial")
