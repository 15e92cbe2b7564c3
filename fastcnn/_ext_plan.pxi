# fastcnn._ext: a compiled inference program (training/lean.py lowers a bound plan into it).
# Each add_* records one kernel call of a step that fastcnn.ops.bound has already validated
# (by running the checked op once on buffers of the same shapes): typed memoryviews still
# pin dtype and layout, and the program keeps every array it points into alive. run(x)
# then executes all the calls in one nogil loop, so a call costs the kernels alone.
# Placeholders stand for the arrays run() is given (the model input, or values a Python
# step computes between two programs): a recorded pointer equal to the i-th placeholder's
# reads the i-th array of the call.
cimport numpy as cnp
from libc.string cimport memset
from cpython.mem cimport PyMem_Realloc, PyMem_Free

cdef extern from "lean_dense.h":
    int fc_lean_dense_row(const float *x, const float *kernel, const float *bias, int64_t inp,
                          int64_t units, int relu, float *y) nogil

cdef enum:
    _LEAN_BN_FOLD = 1
    _LEAN_CONV2D
    _LEAN_CONV2D_RELU_MAXPOOL
    _LEAN_CONV2D_WINOGRAD_RELU_MAXPOOL2
    _LEAN_MAX_POOL2D
    _LEAN_DENSE
    _LEAN_PAD2D
    _LEAN_ADD_RELU
    _LEAN_CONCAT
    _LEAN_SIGMOID
    _LEAN_GLOBAL_AVG_POOL2D
    _LEAN_CONV2D_WINOGRAD_CACHED

cdef enum:
    _LEAN_MAX_INPUTS = 8  # inputs of one merge step (add_relu, concat) at most

ctypedef struct _lean_step:
    int kind
    int k                                 # inputs read (add_relu, concat: several)
    const float *ins[_LEAN_MAX_INPUTS]    # fixed input pointers; the placeholder = model input
    const float *cur[_LEAN_MAX_INPUTS]    # the pointers of this call
    int64_t widths[_LEAN_MAX_INPUTS]      # concat
    float *out
    fc_conv2d_geometry g
    const float *w0                       # kernel
    const float *w1                       # bias (or NULL)
    const float *v[4]                     # bn_fold: gamma, beta, moving mean, moving variance
    double eps
    float *fw                             # bn_fold: folded kernel
    float *fb                             # bn_fold: folded bias
    float *ws
    float *cache                          # conv2d_winograd_cached: the kernel transform
    int32_t *idx
    int algo, relu                        # conv2d_winograd_cached: algo is the tile size
    int64_t p[8]                          # shapes and pooling/padding amounts


cdef inline const float *_lean_rd(object a) except? NULL:
    if not a.flags.c_contiguous:  # reshape would copy: the pointer must be the array's own
        raise ValueError("LeanProgram: arrays must be C-contiguous")
    cdef const float[::1] v = a.reshape(-1)
    if v.shape[0] == 0:
        raise ValueError("LeanProgram: empty arrays are not compiled")
    return &v[0]


cdef inline float *_lean_wr(object a) except? NULL:
    if not a.flags.c_contiguous:
        raise ValueError("LeanProgram: arrays must be C-contiguous")
    cdef float[::1] v = a.reshape(-1)
    if v.shape[0] == 0:
        raise ValueError("LeanProgram: empty arrays are not compiled")
    return &v[0]


cdef inline const float *_lean_in(object x, tuple shape, int i) except NULL:
    """The data pointer of run()'s input i, checked to be a C-contiguous float32 array of
    the compiled shape (through the array's header: a memoryview costs more than a small
    program's kernels gain)."""
    if not isinstance(x, cnp.ndarray):
        raise ValueError("LeanProgram.run: input %d is a %s, not a NumPy array"
                         % (i, type(x).__name__))
    cdef cnp.ndarray a = <cnp.ndarray>x
    if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISCARRAY_RO(a):
        raise ValueError("LeanProgram: arrays must be C-contiguous float32")
    if tuple(x.shape) != shape:
        raise ValueError("LeanProgram.run: input %d has shape %s, compiled for %s"
                         % (i, tuple(x.shape), shape))
    return <const float *>cnp.PyArray_DATA(a)


cdef inline int32_t *_lean_idx(object indices) except? NULL:
    """A pool's indices array, or NULL for None (the pooled values alone)."""
    if indices is None:
        return NULL
    cdef int32_t[:, :, :, ::1] v = indices
    return &v[0, 0, 0, 0]


cdef class LeanProgram:
    """Kernel calls recorded once and executed by one nogil call (inference's lean path).

    Built by ``fastcnn.training.lean`` from bound steps (``fastcnn.ops.bound``); every
    ``add_*`` takes the arrays the bound step's ``run`` would use, already validated.
    Inputs are arrays: a placeholder (replaced by the matching array given to ``run``) or
    outputs of earlier calls.

    Args:
        placeholders: a list of C-contiguous float32 arrays (at most 8), each of the exact
            shape of the array ``run`` will get in its place.
    """
    cdef _lean_step *steps
    cdef Py_ssize_t count, capacity
    cdef const float *ph[_LEAN_MAX_INPUTS]
    cdef const float *xs[_LEAN_MAX_INPUTS]
    cdef int nph
    cdef list keep
    cdef readonly tuple shapes

    def __cinit__(self, list placeholders):
        cdef int i
        self.steps = NULL
        self.count = self.capacity = 0
        if not 1 <= len(placeholders) <= _LEAN_MAX_INPUTS:
            raise ValueError("LeanProgram: 1 to %d placeholders, got %d"
                             % (_LEAN_MAX_INPUTS, len(placeholders)))
        self.keep = list(placeholders)
        self.shapes = tuple(tuple(a.shape) for a in placeholders)
        self.nph = <int>len(placeholders)
        for i in range(self.nph):
            self.ph[i] = _lean_rd(placeholders[i])

    def __dealloc__(self):
        PyMem_Free(self.steps)

    def __len__(self):
        return self.count

    cdef _lean_step *_new(self, int kind, list ins, out) except NULL:
        cdef _lean_step *s
        cdef Py_ssize_t i
        if self.count == self.capacity:
            self.capacity = max(16, 2 * self.capacity)
            s = <_lean_step *>PyMem_Realloc(self.steps, self.capacity * sizeof(_lean_step))
            if s == NULL:
                raise MemoryError()
            self.steps = s
        if len(ins) > _LEAN_MAX_INPUTS:
            raise ValueError("LeanProgram: at most %d inputs per step, got %d"
                             % (_LEAN_MAX_INPUTS, len(ins)))
        s = &self.steps[self.count]
        memset(s, 0, sizeof(_lean_step))
        s.kind = kind
        s.k = <int>len(ins)
        for i in range(s.k):
            s.ins[i] = _lean_rd(ins[i])
        s.out = _lean_wr(out) if out is not None else NULL
        self.keep.append((ins, out))
        self.count += 1
        return s

    cdef void _hold(self, tuple arrays):
        self.keep.append(arrays)

    def add_bn_fold(self, kernel, bias, gamma, beta, moving_mean, moving_var, double epsilon,
                    kernel_out, bias_out):
        """Refold (every call) ``kernel`` (rows, C) and ``bias`` (or None) with batch norm's
        vectors into ``kernel_out``/``bias_out``, as ``_ext.bn_fold``."""
        cdef const float[:, ::1] k = kernel
        cdef float[:, ::1] ko = kernel_out
        cdef _lean_step *s = self._new(_LEAN_BN_FOLD, [], None)
        s.w0 = &k[0, 0]
        s.w1 = _lean_rd(bias) if bias is not None else NULL
        s.v[0], s.v[1] = _lean_rd(gamma), _lean_rd(beta)
        s.v[2], s.v[3] = _lean_rd(moving_mean), _lean_rd(moving_var)
        s.eps = epsilon
        s.fw, s.fb = &ko[0, 0], _lean_wr(bias_out)
        s.p[0], s.p[1] = k.shape[0], k.shape[1]
        self._hold((kernel, bias, gamma, beta, moving_mean, moving_var, kernel_out, bias_out))

    def add_conv2d(self, x, kernel, bias, tuple strides, tuple pads, bint relu, out,
                   workspace, str algorithm):
        """``_ext.conv2d_forward(x, kernel, bias, strides, pads, relu, out, workspace,
        algorithm)``."""
        cdef const float[:, :, :, ::1] xv = x
        cdef const float[:, :, :, ::1] kv = kernel
        cdef float[:, :, :, ::1] ov = out
        cdef _lean_step *s = self._new(_LEAN_CONV2D, [x], out)
        s.g = _conv2d_geometry(tuple(x.shape), tuple(kernel.shape), strides, pads,
                               (ov.shape[1], ov.shape[2]))
        s.w0 = &kv[0, 0, 0, 0]
        s.w1 = _lean_rd(bias) if bias is not None else NULL
        s.relu = relu
        s.ws = _lean_wr(workspace) if workspace is not None else NULL
        s.algo = CONV2D_ALGORITHMS[algorithm]
        self._hold((kernel, bias, workspace))

    def add_conv2d_winograd_cached(self, x, kernel, bias, tuple pads, bint relu, out, cache,
                                   workspace, int m):
        """``_ext.conv2d_winograd_cached_forward`` with the same arguments."""
        cdef const float[:, :, :, ::1] kv = kernel
        cdef float[:, :, :, ::1] ov = out
        cdef _lean_step *s = self._new(_LEAN_CONV2D_WINOGRAD_CACHED, [x], out)
        s.g = _conv2d_geometry(tuple(x.shape), tuple(kernel.shape), (1, 1), pads,
                               (ov.shape[1], ov.shape[2]))
        s.w0 = &kv[0, 0, 0, 0]
        s.w1 = _lean_rd(bias) if bias is not None else NULL
        s.relu = relu
        s.cache = _lean_wr(cache)
        s.ws = _lean_wr(workspace) if workspace is not None else NULL
        s.algo = m
        self._hold((kernel, bias, cache, workspace))

    def add_conv2d_relu_maxpool(self, x, kernel, bias, tuple strides, tuple pads,
                                tuple out_hw, tuple pool, out, indices):
        """``_ext.conv2d_relu_maxpool_forward`` with the same arguments."""
        cdef const float[:, :, :, ::1] kv = kernel
        cdef _lean_step *s = self._new(_LEAN_CONV2D_RELU_MAXPOOL, [x], out)
        s.g = _conv2d_geometry(tuple(x.shape), tuple(kernel.shape), strides, pads, out_hw)
        s.p[0], s.p[1] = pool
        s.w0 = &kv[0, 0, 0, 0]
        s.w1 = _lean_rd(bias) if bias is not None else NULL
        s.idx = _lean_idx(indices)
        self._hold((kernel, bias, indices))

    def add_conv2d_winograd_relu_maxpool2(self, x, kernel, bias, tuple pads, tuple out_hw,
                                          out, indices, workspace):
        """``_ext.conv2d_winograd_relu_maxpool2_forward`` with the same arguments."""
        cdef const float[:, :, :, ::1] kv = kernel
        cdef _lean_step *s = self._new(_LEAN_CONV2D_WINOGRAD_RELU_MAXPOOL2, [x], out)
        s.g = _conv2d_geometry(tuple(x.shape), tuple(kernel.shape), (1, 1), pads, out_hw)
        s.w0 = &kv[0, 0, 0, 0]
        s.w1 = _lean_rd(bias) if bias is not None else NULL
        s.idx = _lean_idx(indices)
        s.ws = _lean_wr(workspace) if workspace is not None else NULL
        self._hold((kernel, bias, indices, workspace))

    def add_max_pool2d(self, x, int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                       int64_t pad_top, int64_t pad_left, out):
        """``_ext.max_pool2d_forward`` (no indices) with the same arguments."""
        cdef const float[:, :, :, ::1] xv = x
        cdef float[:, :, :, ::1] ov = out
        cdef _lean_step *s = self._new(_LEAN_MAX_POOL2D, [x], out)
        s.p[0], s.p[1], s.p[2], s.p[3] = xv.shape[0], xv.shape[1], xv.shape[2], xv.shape[3]
        s.p[4], s.p[5], s.p[6], s.p[7] = ph, pw, sh, sw
        s.g.pad_top, s.g.pad_left, s.g.oh, s.g.ow = pad_top, pad_left, ov.shape[1], ov.shape[2]

    def add_dense(self, x, kernel, bias, bint relu, out):
        """``_ext.dense_forward`` with the same arguments (one row: without packing the
        kernel, same bits, csrc/lean_dense.h)."""
        cdef const float[:, ::1] xv = x
        cdef const float[:, ::1] kv = kernel
        cdef float[:, ::1] ov = out
        cdef _lean_step *s = self._new(_LEAN_DENSE, [x], out)
        s.w0 = &kv[0, 0]
        s.w1 = _lean_rd(bias) if bias is not None else NULL
        s.p[0], s.p[1], s.p[2] = xv.shape[0], xv.shape[1], kv.shape[1]
        s.relu = relu
        self._hold((kernel, bias))

    def add_pad2d(self, x, int64_t top, int64_t bottom, int64_t left, int64_t right, out):
        """``_ext.pad2d`` with the same arguments."""
        cdef const float[:, :, :, ::1] xv = x
        cdef float[:, :, :, ::1] ov = out
        cdef _lean_step *s = self._new(_LEAN_PAD2D, [x], out)
        s.p[0], s.p[1], s.p[2], s.p[3] = xv.shape[0], xv.shape[1], xv.shape[2], xv.shape[3]
        s.p[4], s.p[5], s.p[6], s.p[7] = top, bottom, left, right

    def add_add_relu(self, list xs, out):
        """``_ext.add_relu_forward`` of the flat arrays ``xs`` into ``out``."""
        cdef _lean_step *s = self._new(_LEAN_ADD_RELU, xs, out)
        s.p[0] = out.size

    def add_concat(self, list xs, out):
        """``_ext.concat_forward`` of the (rows, width_i) arrays ``xs`` into ``out``."""
        cdef float[:, ::1] ov = out
        cdef Py_ssize_t i
        cdef _lean_step *s = self._new(_LEAN_CONCAT, xs, out)
        s.p[0] = ov.shape[0]
        for i in range(s.k):
            s.widths[i] = xs[i].shape[1]

    def add_sigmoid(self, x, out):
        """``_ext.sigmoid_forward`` of the flat ``x`` into ``out``."""
        cdef _lean_step *s = self._new(_LEAN_SIGMOID, [x], out)
        s.p[0] = out.size

    def add_global_avg_pool2d(self, x, out):
        """``_ext.global_avg_pool2d_forward`` with the same arguments."""
        cdef const float[:, :, :, ::1] xv = x
        cdef _lean_step *s = self._new(_LEAN_GLOBAL_AVG_POOL2D, [x], out)
        s.p[0], s.p[1], s.p[2], s.p[3] = xv.shape[0], xv.shape[1], xv.shape[2], xv.shape[3]

    def run(self, list xs):
        """Execute every recorded call with the float32 arrays ``xs`` in the placeholders'
        places (same shapes); returns None (the outputs are the recorded arrays)."""
        cdef Py_ssize_t failed = -1
        cdef int i, rc = 0
        if len(xs) != self.nph:
            raise ValueError("LeanProgram.run: %d inputs, compiled for %d"
                             % (len(xs), self.nph))
        for i in range(self.nph):  # x's own memory: xs holds x during the call
            self.xs[i] = _lean_in(xs[i], self.shapes[i], i)
        with nogil:
            rc = _lean_exec(self.steps, self.count, self.ph, self.xs, self.nph, &failed)
        if rc != 0:
            _check(rc, "LeanProgram.run: step %d" % failed)


cdef int _lean_exec(_lean_step *steps, Py_ssize_t count, const float **ph,
                    const float **xs, int nph, Py_ssize_t *failed) noexcept nogil:
    cdef Py_ssize_t i
    cdef int j, m, rc = 0
    cdef _lean_step *s
    for i in range(count):
        s = &steps[i]
        for j in range(s.k):
            s.cur[j] = s.ins[j]
            for m in range(nph):
                if s.ins[j] == ph[m]:
                    s.cur[j] = xs[m]
        if s.kind == _LEAN_BN_FOLD:
            fc_bn_fold(s.w0, s.w1, s.p[0], s.p[1], s.v[0], s.v[1], s.v[2], s.v[3], s.eps,
                       s.fw, s.fb)
        elif s.kind == _LEAN_CONV2D:
            rc = fc_conv2d_forward(&s.g, s.cur[0], s.w0, s.w1, s.relu, s.out, s.ws, s.algo)
        elif s.kind == _LEAN_CONV2D_WINOGRAD_CACHED:
            rc = fc_conv2d_winograd_cached_forward(&s.g, s.algo, s.cur[0], s.w0, s.w1, s.relu,
                                                   s.out, s.cache, s.ws)
        elif s.kind == _LEAN_CONV2D_RELU_MAXPOOL:
            rc = fc_conv2d_relu_maxpool_forward(&s.g, s.p[0], s.p[1], s.cur[0], s.w0, s.w1,
                                                s.out, s.idx)
        elif s.kind == _LEAN_CONV2D_WINOGRAD_RELU_MAXPOOL2:
            rc = fc_conv2d_winograd_relu_maxpool2_forward(&s.g, s.cur[0], s.w0, s.w1, s.out,
                                                          s.idx, s.ws)
        elif s.kind == _LEAN_MAX_POOL2D:
            fc_max_pool2d_forward(s.cur[0], s.p[0], s.p[1], s.p[2], s.p[3], s.p[4], s.p[5],
                                  s.p[6], s.p[7], s.g.pad_top, s.g.pad_left, s.g.oh, s.g.ow,
                                  s.out, NULL)
        elif s.kind == _LEAN_DENSE:
            if s.p[0] != 1 or not fc_lean_dense_row(s.cur[0], s.w0, s.w1, s.p[1], s.p[2],
                                                    s.relu, s.out):
                rc = fc_dense_forward(s.cur[0], s.w0, s.w1, s.p[0], s.p[1], s.p[2], s.relu,
                                      s.out)
        elif s.kind == _LEAN_PAD2D:
            fc_pad2d(s.cur[0], s.p[0], s.p[1], s.p[2], s.p[3], s.p[4], s.p[5], s.p[6], s.p[7],
                     s.out)
        elif s.kind == _LEAN_ADD_RELU:
            rc = fc_add_relu_forward(<const float *const *>s.cur, s.k, s.p[0], s.out)
        elif s.kind == _LEAN_CONCAT:
            fc_concat_forward(<const float *const *>s.cur, s.widths, s.k, s.p[0], s.out)
        elif s.kind == _LEAN_SIGMOID:
            fc_sigmoid_forward(s.cur[0], s.out, s.p[0])
        elif s.kind == _LEAN_GLOBAL_AVG_POOL2D:
            fc_global_avg_pool2d_forward(s.cur[0], s.p[0], s.p[1], s.p[2], s.p[3], s.out)
        if rc != 0:
            failed[0] = i
            return rc
    return 0
