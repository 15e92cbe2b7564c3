# fastcnn._ext: 2-D pooling kernels (csrc/pool.c). Shapes, geometry and dtypes are checked
# by fastcnn.ops.pool; these wrappers only take pointers and release the GIL.
from libc.stdint cimport int32_t

cdef extern from "pool.h":
    int FC_POOL_EBADINDEX
    void fc_max_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                               int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                               int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                               float *y, int32_t *indices) nogil
    int fc_max_pool2d_backward(const float *dy, const int32_t *indices, int64_t N, int64_t OH,
                               int64_t OW, int64_t H, int64_t W, int64_t C, float *dx,
                               const float *relu_gate) nogil
    void fc_avg_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                               int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                               int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                               float *y) nogil
    int fc_avg_pool2d_backward(const float *dy, int64_t N, int64_t H, int64_t W, int64_t C,
                               int64_t ph, int64_t pw, int64_t sh, int64_t sw,
                               int64_t pad_top, int64_t pad_left, int64_t OH, int64_t OW,
                               float *dx) nogil
    void fc_global_avg_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W,
                                      int64_t C, float *y) nogil
    void fc_global_avg_pool2d_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                       int64_t C, float *dx) nogil


cdef inline bint _empty4(const float[:, :, :, ::1] a) noexcept nogil:
    return a.shape[0] == 0 or a.shape[1] == 0 or a.shape[2] == 0 or a.shape[3] == 0


def max_pool2d_forward(const float[:, :, :, ::1] x, int64_t ph, int64_t pw, int64_t sh,
                       int64_t sw, int64_t pad_top, int64_t pad_left, float[:, :, :, ::1] y,
                       int32_t[:, :, :, ::1] indices=None):
    """y (and indices, if given) = max pool of x; geometry already checked by the caller."""
    cdef int32_t *pi = NULL
    if _empty4(x) or _empty4(y):
        return
    if indices is not None:
        pi = &indices[0, 0, 0, 0]
    with nogil:
        fc_max_pool2d_forward(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                              ph, pw, sh, sw, pad_top, pad_left, y.shape[1], y.shape[2],
                              &y[0, 0, 0, 0], pi)


def max_pool2d_backward(const float[:, :, :, ::1] dy, const int32_t[:, :, :, ::1] indices,
                        float[:, :, :, ::1] dx, const float[:, :, :, ::1] relu_gate=None):
    """dx = scatter of dy to indices (only where relu_gate > 0, if given; same shape as dy);
    returns False if some index was out of range."""
    cdef int rc = 0
    cdef const float *gate = NULL
    if _empty4(dx):
        return True
    if _empty4(dy):
        dx[...] = 0
        return True
    if relu_gate is not None:
        gate = &relu_gate[0, 0, 0, 0]
    with nogil:
        rc = fc_max_pool2d_backward(&dy[0, 0, 0, 0], &indices[0, 0, 0, 0], dy.shape[0],
                                    dy.shape[1], dy.shape[2], dx.shape[1], dx.shape[2],
                                    dx.shape[3], &dx[0, 0, 0, 0], gate)
    if rc == FC_POOL_EBADINDEX:
        return False
    _check(rc, "max_pool2d_backward")
    return True


def avg_pool2d_forward(const float[:, :, :, ::1] x, int64_t ph, int64_t pw, int64_t sh,
                       int64_t sw, int64_t pad_top, int64_t pad_left, float[:, :, :, ::1] y):
    if _empty4(x) or _empty4(y):
        return
    with nogil:
        fc_avg_pool2d_forward(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2], x.shape[3],
                              ph, pw, sh, sw, pad_top, pad_left, y.shape[1], y.shape[2],
                              &y[0, 0, 0, 0])


def avg_pool2d_backward(const float[:, :, :, ::1] dy, int64_t ph, int64_t pw, int64_t sh,
                        int64_t sw, int64_t pad_top, int64_t pad_left, float[:, :, :, ::1] dx):
    if _empty4(dx):
        return
    if _empty4(dy):
        dx[...] = 0
        return
    cdef int rc
    with nogil:
        rc = fc_avg_pool2d_backward(&dy[0, 0, 0, 0], dx.shape[0], dx.shape[1], dx.shape[2],
                                    dx.shape[3], ph, pw, sh, sw, pad_top, pad_left,
                                    dy.shape[1], dy.shape[2], &dx[0, 0, 0, 0])
    _check(rc, "avg_pool2d_backward")


def global_avg_pool2d_forward(const float[:, :, :, ::1] x, float[:, ::1] y):
    if y.shape[0] == 0 or y.shape[1] == 0:
        return
    with nogil:
        fc_global_avg_pool2d_forward(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
                                     x.shape[3], &y[0, 0])


def global_avg_pool2d_backward(const float[:, ::1] dy, float[:, :, :, ::1] dx):
    if _empty4(dx):
        return
    with nogil:
        fc_global_avg_pool2d_backward(&dy[0, 0], dx.shape[0], dx.shape[1], dx.shape[2],
                                      dx.shape[3], &dx[0, 0, 0, 0])


cdef extern from "pool.h":
    void fc_global_max_pool2d_forward(const float *x, int64_t N, int64_t H, int64_t W,
                                      int64_t C, float *y) nogil
    int fc_global_max_pool2d_backward(const float *x, const float *y, const float *dy,
                                      int64_t N, int64_t H, int64_t W, int64_t C,
                                      float *dx) nogil


def global_max_pool2d_forward(const float[:, :, :, ::1] x, float[:, ::1] y):
    if _empty4(x) or y.shape[0] == 0 or y.shape[1] == 0:
        return
    with nogil:
        fc_global_max_pool2d_forward(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
                                     x.shape[3], &y[0, 0])


def global_max_pool2d_backward(const float[:, :, :, ::1] x, const float[:, ::1] y,
                               const float[:, ::1] dy, float[:, :, :, ::1] dx):
    """dx = dy split equally over each channel's tied maxima (x == y)."""
    cdef int rc
    if _empty4(dx):
        return
    with nogil:
        rc = fc_global_max_pool2d_backward(&x[0, 0, 0, 0], &y[0, 0], &dy[0, 0], dx.shape[0],
                                           dx.shape[1], dx.shape[2], dx.shape[3],
                                           &dx[0, 0, 0, 0])
    _check(rc, "global_max_pool2d_backward")
