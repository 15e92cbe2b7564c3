cimport numpy as cnp
from cython.parallel cimport prange

cnp.import_array()

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
    int fc_gemm_avx512() nogil
    void fc_gemm_force_avx512(int on) nogil


def gemm_avx512():
    """Whether the GEMM runs its AVX-512F kernels (same bits as the AVX2 ones).

    Returns:
        True when the CPU has AVX-512F, the SIMD level is not portable, and neither the
        ``FASTCNN_NO_AVX512`` environment variable nor `gemm_force_avx512(0)` turned them off.
    """
    return bool(fc_gemm_avx512())


def gemm_force_avx512(int on):
    """Turns the GEMM's AVX-512F kernels off (0) or on (1, only where the CPU has them).

    Args:
        on: 0 = AVX2 kernels, 1 = AVX-512F kernels if available, -1 = the default.
    """
    fc_gemm_force_avx512(on)


cdef const float *_matrix(cnp.ndarray x, str name, int64_t *ld, bint writeable) except? NULL:
    # Data pointer and leading dimension (in floats) of a float32 matrix whose rows are
    # contiguous, ascending and non-overlapping (a C-contiguous array or a column slice of
    # one). Raises rather than hand the kernel anything it could misread.
    cdef Py_ssize_t rows, cols, s0, s1, fsize = sizeof(float)
    if cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_TYPE(x) != cnp.NPY_FLOAT32:
        raise ValueError("sgemm: %s must be a 2-D float32 array" % name)
    if writeable and not cnp.PyArray_ISWRITEABLE(x):
        raise ValueError("sgemm: %s must be writeable" % name)
    rows = cnp.PyArray_DIM(x, 0)
    cols = cnp.PyArray_DIM(x, 1)
    s0 = cnp.PyArray_STRIDE(x, 0)
    s1 = cnp.PyArray_STRIDE(x, 1)
    if rows == 0 or cols == 0:  # nothing is read; the strides of an empty array mean nothing
        ld[0] = cols if cols > 0 else 1
        return <const float *>cnp.PyArray_DATA(x)
    if (cols > 1 and s1 != fsize) or (rows > 1 and (s0 < cols * fsize or s0 % fsize != 0)):
        raise ValueError("sgemm: %s needs contiguous, non-overlapping, ascending rows" % name)
    ld[0] = s0 // fsize if rows > 1 else cols  # a single row's stride means nothing
    return <const float *>cnp.PyArray_DATA(x)


def sgemm(bint trans_a, bint trans_b, float alpha, cnp.ndarray a not None,
          cnp.ndarray b not None, float beta, cnp.ndarray c not None, bint reference=False):
    """c = alpha * op(a) @ op(b) + beta * c, in place. Shapes are checked by fastcnn.ops.

    Rows of a, b and c may be strided (views of wider arrays: the BLAS leading dimension);
    elements within a row must be contiguous.
    """
    cdef int64_t lda, ldb, ldc
    cdef const float *pa = _matrix(a, "a", &lda, False)
    cdef const float *pb = _matrix(b, "b", &ldb, False)
    cdef float *pc = <float *>_matrix(c, "c", &ldc, True)
    cdef int64_t M = cnp.PyArray_DIM(c, 0), N = cnp.PyArray_DIM(c, 1)
    cdef int64_t K = cnp.PyArray_DIM(a, 0) if trans_a else cnp.PyArray_DIM(a, 1)
    cdef int rc = 0
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
