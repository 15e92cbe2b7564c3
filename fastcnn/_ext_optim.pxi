# fastcnn._ext: in-place optimizer updates (csrc/optim.c). fastcnn.ops.optim checks that every
# array is a writeable C-contiguous float32 ndarray of matching size; these wrappers only
# collect the data pointers (one C call for a whole list of tensors) and release the GIL.
# weight_decay: None (no decay) or one factor per tensor (0: not decayed), see csrc/optim.h.
cimport numpy as cnp
from cpython.mem cimport PyMem_Malloc, PyMem_Free

cnp.import_array()

cdef extern from "optim.h":
    int fc_adam_update_many(int64_t count, float *const *w, const float *const *g,
                            float *const *m, float *const *v, const int64_t *sizes,
                            float alpha, float one_minus_beta_1, float one_minus_beta_2,
                            float epsilon, float learning_rate,
                            const float *weight_decay) nogil
    int fc_sgd_update_many(int64_t count, float *const *w, const float *const *g,
                           float *const *velocity, const int64_t *sizes, float learning_rate,
                           float momentum, int nesterov, const float *weight_decay) nogil
    int fc_rmsprop_update_many(int64_t count, float *const *w, const float *const *g,
                               float *const *velocity, const int64_t *sizes,
                               float learning_rate, float rho, float one_minus_rho,
                               float epsilon, const float *weight_decay) nogil


cdef class _PointerLists:
    """Data pointers of up to four parallel lists of float32 arrays, plus their sizes and
    (optionally) one weight-decay factor per tensor."""
    cdef int64_t count
    cdef float **ptr[4]
    cdef int64_t *sizes
    cdef float *wd

    def __cinit__(self, int64_t count):
        cdef int k
        self.count = count
        self.sizes = <int64_t *>PyMem_Malloc(max(count, 1) * sizeof(int64_t))
        self.wd = NULL
        for k in range(4):
            self.ptr[k] = <float **>PyMem_Malloc(max(count, 1) * sizeof(float *))
        if self.sizes == NULL or self.ptr[0] == NULL or self.ptr[1] == NULL \
                or self.ptr[2] == NULL or self.ptr[3] == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef int k
        PyMem_Free(self.sizes)
        PyMem_Free(self.wd)
        for k in range(4):
            PyMem_Free(self.ptr[k])

    cdef void fill(self, int k, list arrays):
        cdef int64_t i
        cdef cnp.ndarray a
        for i in range(self.count):
            a = <cnp.ndarray>arrays[i]
            self.ptr[k][i] = <float *>cnp.PyArray_DATA(a)
            if k == 0:
                self.sizes[i] = cnp.PyArray_SIZE(a)

    cdef const float *decay(self, object weight_decay) except? NULL:
        """The per-tensor decay factors as a C array (rounded to float32), or NULL when
        weight_decay is None or all zero (no decay at all)."""
        cdef int64_t i
        cdef bint any_decay = False
        if weight_decay is None:
            return NULL
        if len(weight_decay) != self.count:
            raise ValueError("weight_decay has %d factors for %d tensors"
                             % (len(weight_decay), self.count))
        self.wd = <float *>PyMem_Malloc(max(self.count, 1) * sizeof(float))
        if self.wd == NULL:
            raise MemoryError()
        for i in range(self.count):
            self.wd[i] = <float>weight_decay[i]
            if self.wd[i] != 0.0:
                any_decay = True
        return self.wd if any_decay else NULL


def adam_update_many(list w, list g, list m, list v, float alpha, float one_minus_beta_1,
                     float one_minus_beta_2, float epsilon, float learning_rate=0.0,
                     object weight_decay=None):
    """learning_rate only multiplies the weight decay (alpha already contains it)."""
    cdef _PointerLists p = _PointerLists(len(w))
    cdef int rc
    cdef const float *wd
    p.fill(0, w)
    p.fill(1, g)
    p.fill(2, m)
    p.fill(3, v)
    wd = p.decay(weight_decay)
    with nogil:
        rc = fc_adam_update_many(p.count, p.ptr[0], <const float *const *>p.ptr[1], p.ptr[2],
                                 p.ptr[3], p.sizes, alpha, one_minus_beta_1, one_minus_beta_2,
                                 epsilon, learning_rate, wd)
    _check(rc, "adam_update")


def sgd_update_many(list w, list g, list velocity, float learning_rate, float momentum,
                    bint nesterov, object weight_decay=None):
    """velocity=None: plain SGD (w -= g * lr) for every tensor."""
    cdef _PointerLists p = _PointerLists(len(w))
    cdef int rc
    cdef float **pv = NULL
    cdef const float *wd
    p.fill(0, w)
    p.fill(1, g)
    if velocity is not None:
        p.fill(2, velocity)
        pv = p.ptr[2]
    wd = p.decay(weight_decay)
    with nogil:
        rc = fc_sgd_update_many(p.count, p.ptr[0], <const float *const *>p.ptr[1],
                                pv, p.sizes,
                                learning_rate, momentum, nesterov, wd)
    _check(rc, "sgd_update")


def rmsprop_update_many(list w, list g, list velocity, float learning_rate, float rho,
                        float one_minus_rho, float epsilon, object weight_decay=None):
    cdef _PointerLists p = _PointerLists(len(w))
    cdef int rc
    cdef const float *wd
    p.fill(0, w)
    p.fill(1, g)
    p.fill(2, velocity)
    wd = p.decay(weight_decay)
    with nogil:
        rc = fc_rmsprop_update_many(p.count, p.ptr[0], <const float *const *>p.ptr[1],
                                    p.ptr[2], p.sizes, learning_rate, rho, one_minus_rho,
                                    epsilon, wd)
    _check(rc, "rmsprop_update")


cdef inline bint _f32_array_ok(object a, object ref, bint need_writeable):
    """a is a C-contiguous float32 ndarray (writeable if asked) shaped like ref (if given)."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_Check(a):
        return False
    arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return False
    if need_writeable and not cnp.PyArray_ISWRITEABLE(arr):
        return False
    if ref is not None and not cnp.PyArray_SAMESHAPE(arr, <cnp.ndarray>ref):
        return False
    return True


cdef inline bint _overlap(object a, object b):
    cdef char *pa = <char *>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef char *pb = <char *>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef cnp.npy_intp na = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    cdef cnp.npy_intp nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return na > 0 and nb > 0 and pa < pb + nb and pb < pa + na


def optim_arrays_ok(list w, list g, list s1, list s2):
    """Fast pre-check for fastcnn.ops.optim: True when every group (w[i], g[i], s1[i], s2[i])
    is made of C-contiguous float32 arrays of w[i]'s shape, all but g writeable, none
    overlapping another. False means: run the detailed (slow) checks, which explain."""
    cdef Py_ssize_t i, n = len(w)
    cdef object wi, gi, ai, bi
    if len(g) != n or (s1 is not None and len(s1) != n) or (s2 is not None and len(s2) != n):
        return False
    for i in range(n):
        wi = w[i]
        gi = g[i]
        if not _f32_array_ok(wi, None, True) or not _f32_array_ok(gi, wi, False):
            return False
        if _overlap(wi, gi):
            return False
        if s1 is not None:
            ai = s1[i]
            if not _f32_array_ok(ai, wi, True) or _overlap(ai, wi) or _overlap(ai, gi):
                return False
        if s2 is not None:
            bi = s2[i]
            if not _f32_array_ok(bi, wi, True) or _overlap(bi, wi) or _overlap(bi, gi):
                return False
            if s1 is not None and _overlap(bi, s1[i]):
                return False
    return True
