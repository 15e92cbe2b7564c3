# fastcnn._ext: in-place optimizer updates (csrc/optim.c). fastcnn.ops.optim checks that every
# array is a writeable C-contiguous float32 ndarray of matching size; these wrappers only
# collect the data pointers (one C call for a whole list of tensors) and release the GIL.
# weight_decay: None (no decay) or one factor per tensor (0: not decayed), see csrc/optim.h.
cimport numpy as cnp
from cpython.mem cimport PyMem_Malloc, PyMem_Free

cnp.import_array()

cdef extern from "optim.h":
    ctypedef struct fc_optim_spec:
        int kind
        int variant
        float h[10]
        float lr
        float loss_scale
        int accum_steps
        int update
        int clip
        float clip_value
        float clip_inv
        int ema
        float ema_m
        float ema_om
        int ema_overwrite
    int fc_optim_step(const fc_optim_spec *spec, int64_t count, float *const *w,
                      const float *const *g, float *const *s0, float *const *s1,
                      float *const *s2, float *const *acc, float *const *avg,
                      const int64_t *sizes, const float *weight_decay) nogil
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


DEF _NPTR = 7


cdef class _PointerLists:
    """Data pointers of up to seven parallel lists of float32 arrays (weights, gradients,
    slots...), plus their sizes and (optionally) one weight-decay factor per tensor."""
    cdef int64_t count
    cdef float **ptr[_NPTR]
    cdef int64_t *sizes
    cdef float *wd

    def __cinit__(self, int64_t count):
        cdef int k
        self.count = count
        self.sizes = <int64_t *>PyMem_Malloc(max(count, 1) * sizeof(int64_t))
        self.wd = NULL
        # one block for the seven pointer arrays
        self.ptr[0] = <float **>PyMem_Malloc(_NPTR * max(count, 1) * sizeof(float *))
        if self.sizes == NULL or self.ptr[0] == NULL:
            raise MemoryError()
        for k in range(1, _NPTR):
            self.ptr[k] = self.ptr[0] + k * max(count, 1)

    def __dealloc__(self):
        cdef int k
        PyMem_Free(self.sizes)
        PyMem_Free(self.wd)
        PyMem_Free(self.ptr[0])

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


def optim_step(int kind, int variant, hyper, float lr, list w, list g, list slots,
               object acc=None, object avg=None, object weight_decay=None,
               float loss_scale=0.0, int accum_steps=0, bint update=True, int clip=0,
               float clip_value=0.0, float clip_inv=0.0, bint ema=False, float ema_m=0.0,
               float ema_om=0.0, bint ema_overwrite=False):
    """One fused optimizer step (csrc/optim.h fc_optim_step). ``slots``: up to three lists
    of slot arrays (the rule's s0, s1, s2); ``acc``/``avg``: lists or None. The caller has
    checked every array (fastcnn.ops.optim.optimizer_step)."""
    cdef _PointerLists p = _PointerLists(len(w))
    cdef fc_optim_spec spec
    cdef int rc, k
    cdef float **sp[3]
    cdef float **pacc = NULL
    cdef float **pavg = NULL
    cdef const float *wd
    if len(hyper) > 10 or len(slots) > 3:
        raise ValueError("optim_step: at most 10 hyper-parameters and 3 slot lists")
    spec.kind = kind
    spec.variant = variant
    for k in range(10):
        spec.h[k] = <float>hyper[k] if k < len(hyper) else 0.0
    spec.lr = lr
    spec.loss_scale = loss_scale
    spec.accum_steps = accum_steps
    spec.update = update
    spec.clip = clip
    spec.clip_value = clip_value
    spec.clip_inv = clip_inv
    spec.ema = ema
    spec.ema_m = ema_m
    spec.ema_om = ema_om
    spec.ema_overwrite = ema_overwrite
    p.fill(0, w)
    p.fill(1, g)
    for k in range(3):
        sp[k] = NULL
        if k < len(slots) and slots[k] is not None:
            p.fill(2 + k, slots[k])
            sp[k] = p.ptr[2 + k]
    if acc is not None:
        p.fill(5, acc)
        pacc = p.ptr[5]
    if avg is not None:
        p.fill(6, avg)
        pavg = p.ptr[6]
    if (accum_steps and pacc == NULL) or (ema and pavg == NULL):
        raise ValueError("optim_step: accumulators / averages missing")
    wd = p.decay(weight_decay)
    with nogil:
        rc = fc_optim_step(&spec, p.count, p.ptr[0], <const float *const *>p.ptr[1], sp[0],
                           sp[1], sp[2], pacc, pavg, p.sizes, wd)
    _check(rc, "optimizer_step")


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


def optim_arrays_ok(list w, list g, list states):
    """Fast pre-check for fastcnn.ops.optim: True when every group (w[i], g[i], states[k][i]
    for each list in ``states``) is made of C-contiguous float32 arrays of w[i]'s shape, all
    but g writeable, none overlapping another. False means: run the detailed (slow) checks,
    which explain."""
    cdef Py_ssize_t i, k, j, n = len(w), ns = len(states)
    cdef object wi, gi, ai
    if len(g) != n:
        return False
    for k in range(ns):
        if type(states[k]) is not list or len(states[k]) != n:
            return False
    for i in range(n):
        wi = w[i]
        gi = g[i]
        if not _f32_array_ok(wi, None, True) or not _f32_array_ok(gi, wi, False):
            return False
        if _overlap(wi, gi):
            return False
        for k in range(ns):
            ai = states[k][i]
            if not _f32_array_ok(ai, wi, True) or _overlap(ai, wi) or _overlap(ai, gi):
                return False
            for j in range(k):
                if _overlap(ai, states[j][i]):
                    return False
    return True
