# fastcnn._ext: merge and shape kernels (csrc/merge.c). fastcnn.ops.merge validates
# everything; these wrappers collect the data pointers of the k inputs / outputs (typed
# memoryviews, so a wrong dtype or layout still cannot reach C), check the sizes the C
# loops rely on, and release the GIL.
from cpython.mem cimport PyMem_Malloc, PyMem_Free

cdef extern from "merge.h":
    int fc_merge_forward(int op, const float *const *xs, int k, int64_t n, float *y) nogil
    int fc_merge_backward(int op, const float *dy, const float *const *xs, int k, int64_t n,
                          float *const *dxs) nogil
    int fc_add_relu_forward(const float *const *xs, int k, int64_t n, float *y) nogil
    void fc_concat_forward(const float *const *xs, const int64_t *widths, int k,
                           int64_t rows, float *y) nogil
    void fc_concat_backward(const float *dy, const int64_t *widths, int k, int64_t rows,
                            float *const *dxs) nogil
    void fc_pad2d(const float *x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t top,
                  int64_t bottom, int64_t left, int64_t right, float *y) nogil
    void fc_crop2d(const float *x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t top,
                   int64_t bottom, int64_t left, int64_t right, float *y) nogil


cdef class _MergePointers:
    """k input pointers, k output pointers (NULL = skip) and k widths."""
    cdef int count
    cdef const float **rd
    cdef float **wr
    cdef int64_t *widths

    def __cinit__(self, Py_ssize_t count):
        cdef Py_ssize_t i, m = max(count, 1)
        if count > 0x7FFFFFFF:
            raise ValueError("too many arrays: %d" % count)
        self.count = <int>count
        self.rd = <const float **>PyMem_Malloc(m * sizeof(float *))
        self.wr = <float **>PyMem_Malloc(m * sizeof(float *))
        self.widths = <int64_t *>PyMem_Malloc(m * sizeof(int64_t))
        if self.rd == NULL or self.wr == NULL or self.widths == NULL:
            raise MemoryError()
        for i in range(m):
            self.rd[i] = NULL
            self.wr[i] = NULL
            self.widths[i] = 0

    def __dealloc__(self):
        PyMem_Free(self.rd)
        PyMem_Free(self.wr)
        PyMem_Free(self.widths)

    cdef int read_flat(self, list arrays, int64_t n, str what) except -1:
        """rd[i] = arrays[i] (flat float32 arrays of n elements)."""
        cdef Py_ssize_t i
        cdef const float[::1] v
        for i in range(self.count):
            v = arrays[i]
            if v.shape[0] != n:
                raise ValueError("%s: input %d has %d elements, expected %d"
                                 % (what, i, v.shape[0], n))
            self.rd[i] = &v[0] if n > 0 else NULL
        return 0

    cdef int write_flat(self, list arrays, int64_t n, str what) except -1:
        """wr[i] = arrays[i] (flat float32 arrays of n elements) or NULL for None."""
        cdef Py_ssize_t i
        cdef float[::1] v
        for i in range(self.count):
            if arrays[i] is None:
                continue
            v = arrays[i]
            if v.shape[0] != n:
                raise ValueError("%s: output %d has %d elements, expected %d"
                                 % (what, i, v.shape[0], n))
            self.wr[i] = &v[0] if n > 0 else NULL
        return 0


def merge_forward(int op, list xs, float[::1] y):
    """y = op(xs[0], ..., xs[k-1]) over flat arrays of y's size (y may be xs[0] or xs[1])."""
    cdef _MergePointers p = _MergePointers(len(xs))
    cdef int64_t n = y.shape[0]
    cdef float *py = &y[0] if n > 0 else NULL
    cdef int rc
    p.read_flat(xs, n, "merge")
    with nogil:
        rc = fc_merge_forward(op, <const float *const *>p.rd, p.count, n, py)
    _check(rc, "merge")


def add_relu_forward(list xs, float[::1] y):
    """y = relu(xs[0] + ... + xs[k-1]) over flat arrays (y may be xs[0] or xs[1])."""
    cdef _MergePointers p = _MergePointers(len(xs))
    cdef int64_t n = y.shape[0]
    cdef float *py = &y[0] if n > 0 else NULL
    cdef int rc
    p.read_flat(xs, n, "add_relu")
    with nogil:
        rc = fc_add_relu_forward(<const float *const *>p.rd, p.count, n, py)
    _check(rc, "add_relu")


def merge_backward(int op, const float[::1] dy, list xs, list dxs):
    """dxs[i] (None = not wanted) = gradient of merge op w.r.t. xs[i], over flat arrays."""
    cdef _MergePointers p = _MergePointers(len(xs))
    cdef int64_t n = dy.shape[0]
    cdef const float *pdy = &dy[0] if n > 0 else NULL
    cdef int rc
    if len(dxs) != p.count:
        raise ValueError("merge_backward: %d outputs for %d inputs" % (len(dxs), p.count))
    p.read_flat(xs, n, "merge_backward")
    p.write_flat(dxs, n, "merge_backward")
    with nogil:
        rc = fc_merge_backward(op, pdy, <const float *const *>p.rd, p.count, n,
                               <float *const *>p.wr)
    _check(rc, "merge_backward")


def concat_forward(list xs, float[:, ::1] y):
    """y (rows, sum of widths) = the (rows, width_i) matrices xs side by side."""
    cdef _MergePointers p = _MergePointers(len(xs))
    cdef Py_ssize_t i
    cdef int64_t rows = y.shape[0], total = 0
    cdef const float[:, ::1] v
    cdef float *py
    for i in range(p.count):
        v = xs[i]
        if v.shape[0] != rows:
            raise ValueError("concatenate: input %d has %d rows, expected %d"
                             % (i, v.shape[0], rows))
        p.widths[i] = v.shape[1]
        total += v.shape[1]
        p.rd[i] = &v[0, 0] if rows > 0 and v.shape[1] > 0 else NULL
    if total != y.shape[1]:
        raise ValueError("concatenate: widths add up to %d, output has %d"
                         % (total, y.shape[1]))
    if rows == 0 or total == 0:
        return
    py = &y[0, 0]
    with nogil:
        fc_concat_forward(<const float *const *>p.rd, p.widths, p.count, rows, py)


def concat_backward(const float[:, ::1] dy, list widths, list dxs):
    """dxs[i] (rows, widths[i]) = the matching columns of dy; None skips i."""
    cdef _MergePointers p = _MergePointers(len(widths))
    cdef Py_ssize_t i
    cdef int64_t rows = dy.shape[0], total = 0
    cdef float[:, ::1] v
    cdef const float *pdy
    if len(dxs) != p.count:
        raise ValueError("concatenate_backward: %d outputs for %d widths"
                         % (len(dxs), p.count))
    for i in range(p.count):
        p.widths[i] = widths[i]
        if p.widths[i] < 0:
            raise ValueError("concatenate_backward: negative width %d" % p.widths[i])
        total += p.widths[i]
        if dxs[i] is None:
            continue
        v = dxs[i]
        if v.shape[0] != rows or v.shape[1] != p.widths[i]:
            raise ValueError("concatenate_backward: output %d has shape (%d, %d), expected "
                             "(%d, %d)" % (i, v.shape[0], v.shape[1], rows, p.widths[i]))
        p.wr[i] = &v[0, 0] if rows > 0 and p.widths[i] > 0 else NULL
    if total != dy.shape[1]:
        raise ValueError("concatenate_backward: widths add up to %d, dy has %d"
                         % (total, dy.shape[1]))
    if rows == 0 or total == 0:
        return
    pdy = &dy[0, 0]
    with nogil:
        fc_concat_backward(pdy, p.widths, p.count, rows, <float *const *>p.wr)


def pad2d(const float[:, :, :, ::1] x, int64_t top, int64_t bottom, int64_t left,
          int64_t right, float[:, :, :, ::1] y):
    """y = x zero-padded by (top, bottom) rows and (left, right) columns (NHWC)."""
    cdef int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    if min(top, bottom, left, right) < 0 or (y.shape[0], y.shape[1], y.shape[2],
                                             y.shape[3]) != (N, H + top + bottom,
                                                             W + left + right, C):
        raise ValueError("pad2d: output shape does not match the input and padding")
    if y.size == 0:
        return
    cdef const float *px = &x[0, 0, 0, 0] if x.size > 0 else NULL
    cdef float *py = &y[0, 0, 0, 0]
    with nogil:
        fc_pad2d(px, N, H, W, C, top, bottom, left, right, py)


def crop2d(const float[:, :, :, ::1] x, int64_t top, int64_t bottom, int64_t left,
           int64_t right, float[:, :, :, ::1] y):
    """y = x[:, top:H-bottom, left:W-right, :] (NHWC)."""
    cdef int64_t N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    if min(top, bottom, left, right) < 0 or top + bottom > H or left + right > W or (
            y.shape[0], y.shape[1], y.shape[2], y.shape[3]) != (
            N, H - top - bottom, W - left - right, C):
        raise ValueError("crop2d: output shape does not match the input and cropping")
    if y.size == 0:
        return
    cdef const float *px = &x[0, 0, 0, 0]
    cdef float *py = &y[0, 0, 0, 0]
    with nogil:
        fc_crop2d(px, N, H, W, C, top, bottom, left, right, py)
