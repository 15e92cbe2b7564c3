# fastcnn._ext: grouped / dilated conv2d (csrc/conv2d_grouped.c) and depthwise conv2d
# (csrc/depthwise.c). Shapes are checked by fastcnn.ops.conv / fastcnn.ops.depthwise.
cdef extern from "conv2d_grouped.h":
    ctypedef struct fc_conv2d_grouped_geometry:
        fc_conv2d_geometry base
        int64_t dh, dw
        int64_t groups
    int fc_conv2d_grouped_forward(const fc_conv2d_grouped_geometry *g, const float *x,
                                  const float *kernel, const float *bias, int relu,
                                  float *out) nogil
    int fc_conv2d_grouped_backward_input(const fc_conv2d_grouped_geometry *g, const float *dy,
                                         const float *kernel, float *dx) nogil
    int fc_conv2d_grouped_backward_kernel(const fc_conv2d_grouped_geometry *g,
                                          const float *dy, const float *x,
                                          float *dkernel) nogil
    void fc_channel_slice_copy(const float *src, float *dst, int64_t rows, int64_t ld,
                               int64_t c0, int64_t width, int to_packed) nogil

cdef extern from "depthwise.h":
    ctypedef struct fc_depthwise_geometry:
        int64_t n, h, w, c
        int64_t kh, kw, m
        int64_t sh, sw
        int64_t dh, dw
        int64_t pad_top, pad_left
        int64_t oh, ow
    int fc_depthwise_forward(const fc_depthwise_geometry *g, const float *x,
                             const float *kernel, const float *bias, int relu,
                             float *out) nogil
    int fc_depthwise_backward_input(const fc_depthwise_geometry *g, const float *dy,
                                    const float *kernel, float *dx) nogil
    int fc_depthwise_backward_kernel(const fc_depthwise_geometry *g, const float *dy,
                                     const float *x, float *dkernel, float *dbias) nogil
    int fc_depthwise_backward(const fc_depthwise_geometry *g, const float *dy, const float *x,
                              const float *kernel, float *dx, float *dkernel,
                              float *dbias) nogil


cdef fc_conv2d_grouped_geometry _grouped_geometry(tuple x_shape, tuple k_shape, tuple strides,
                                                  tuple pads, tuple out_hw, tuple dilation,
                                                  int64_t groups):
    cdef fc_conv2d_grouped_geometry g
    g.base = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    g.dh, g.dw = dilation
    g.groups = groups
    return g


def conv2d_grouped_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] kernel,
                           const float[::1] bias, tuple strides, tuple pads, tuple dilation,
                           int64_t groups, bint relu, float[:, :, :, ::1] out):
    """out = act(grouped/dilated conv(x, kernel) + bias); bias may be None."""
    cdef fc_conv2d_grouped_geometry g = _grouped_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides, pads,
        (out.shape[1], out.shape[2]), dilation, groups)
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef int rc
    if out.size == 0 or x.size == 0:
        return
    with nogil:
        rc = fc_conv2d_grouped_forward(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], pb, relu,
                                       &out[0, 0, 0, 0])
    _check(rc, "conv2d (grouped/dilated)")


def conv2d_grouped_backward_input(const float[:, :, :, ::1] dy,
                                  const float[:, :, :, ::1] kernel, tuple strides, tuple pads,
                                  tuple dilation, int64_t groups, float[:, :, :, ::1] dx):
    """dx = input gradient of the grouped/dilated conv (overwritten)."""
    cdef fc_conv2d_grouped_geometry g = _grouped_geometry(
        (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides, pads,
        (dy.shape[1], dy.shape[2]), dilation, groups)
    cdef int rc
    if dx.size == 0 or dy.size == 0:
        return
    with nogil:
        rc = fc_conv2d_grouped_backward_input(&g, &dy[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                              &dx[0, 0, 0, 0])
    _check(rc, "conv2d_backward (grouped/dilated)")


def conv2d_grouped_backward_kernel(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x,
                                   tuple strides, tuple pads, tuple dilation, int64_t groups,
                                   float[:, :, :, ::1] dkernel):
    """dkernel = kernel gradient of the grouped/dilated conv, summed over the batch."""
    cdef fc_conv2d_grouped_geometry g = _grouped_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (dkernel.shape[0], dkernel.shape[1], dkernel.shape[2], dkernel.shape[3]), strides,
        pads, (dy.shape[1], dy.shape[2]), dilation, groups)
    cdef int rc
    if dkernel.size == 0:
        return
    if dy.size == 0 or x.size == 0:
        dkernel[:, :, :, :] = 0
        return
    with nogil:
        rc = fc_conv2d_grouped_backward_kernel(&g, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                               &dkernel[0, 0, 0, 0])
    _check(rc, "conv2d_backward (grouped/dilated)")


cdef fc_depthwise_geometry _dw_geometry(tuple x_shape, tuple k_shape, tuple strides,
                                        tuple dilation, tuple pads, tuple out_hw):
    cdef fc_depthwise_geometry g
    g.n, g.h, g.w, g.c = x_shape
    g.kh, g.kw, _, g.m = k_shape
    g.sh, g.sw = strides
    g.dh, g.dw = dilation
    g.pad_top, g.pad_left = pads
    g.oh, g.ow = out_hw
    return g


def depthwise_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] kernel,
                      const float[::1] bias, tuple strides, tuple dilation, tuple pads,
                      bint relu, float[:, :, :, ::1] out):
    """out = act(depthwise(x, kernel) + bias); bias may be None."""
    cdef fc_depthwise_geometry g = _dw_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides,
        dilation, pads, (out.shape[1], out.shape[2]))
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef int rc
    if out.size == 0 or x.size == 0:
        return
    with nogil:
        rc = fc_depthwise_forward(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], pb, relu,
                                  &out[0, 0, 0, 0])
    _check(rc, "depthwise_conv2d")


def depthwise_backward_input(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] kernel,
                             tuple strides, tuple dilation, tuple pads,
                             float[:, :, :, ::1] dx):
    """dx = input gradient of the depthwise conv (overwritten)."""
    cdef fc_depthwise_geometry g = _dw_geometry(
        (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides,
        dilation, pads, (dy.shape[1], dy.shape[2]))
    cdef int rc
    if dx.size == 0 or dy.size == 0:
        return
    with nogil:
        rc = fc_depthwise_backward_input(&g, &dy[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                         &dx[0, 0, 0, 0])
    _check(rc, "depthwise_conv2d_backward")


def depthwise_backward_kernel(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x,
                              tuple strides, tuple dilation, tuple pads,
                              float[:, :, :, ::1] dkernel, float[::1] dbias=None):
    """dkernel (and dbias unless None) = gradients of the depthwise conv, summed over the
    batch (overwritten); dbias is summed in the same pass over dy."""
    cdef fc_depthwise_geometry g = _dw_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (dkernel.shape[0], dkernel.shape[1], dkernel.shape[2], dkernel.shape[3]), strides,
        dilation, pads, (dy.shape[1], dy.shape[2]))
    cdef float *pb = &dbias[0] if dbias is not None and dbias.shape[0] > 0 else NULL
    cdef int rc
    if dkernel.size == 0:
        if dbias is not None and dbias.shape[0] > 0:
            conv2d_backward_bias(dy, dbias)
        return
    if dy.size == 0 or x.size == 0:
        dkernel[:, :, :, :] = 0
        if pb != NULL:
            dbias[:] = 0
        return
    with nogil:
        rc = fc_depthwise_backward_kernel(&g, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                          &dkernel[0, 0, 0, 0], pb)
    _check(rc, "depthwise_conv2d_backward")


def depthwise_backward(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x,
                       const float[:, :, :, ::1] kernel, tuple strides, tuple dilation,
                       tuple pads, float[:, :, :, ::1] dx, float[:, :, :, ::1] dkernel,
                       float[::1] dbias=None):
    """dx, dkernel (and dbias unless None) in one call (overwritten): the same bits as
    depthwise_backward_input then depthwise_backward_kernel, in one pass over dy where the
    shapes allow (fc_depthwise_backward)."""
    cdef fc_depthwise_geometry g
    cdef float *pb = &dbias[0] if dbias is not None and dbias.shape[0] > 0 else NULL
    cdef int rc
    if dx.size == 0 or dy.size == 0 or dkernel.size == 0:
        depthwise_backward_input(dy, kernel, strides, dilation, pads, dx)
        depthwise_backward_kernel(dy, x, strides, dilation, pads, dkernel, dbias)
        return
    g = _dw_geometry((x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
                     (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]),
                     strides, dilation, pads, (dy.shape[1], dy.shape[2]))
    with nogil:
        rc = fc_depthwise_backward(&g, &dy[0, 0, 0, 0], &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                   &dx[0, 0, 0, 0], &dkernel[0, 0, 0, 0], pb)
    _check(rc, "depthwise_conv2d_backward")


def channel_slice_gather(const float[:, ::1] src, float[:, ::1] dst, int64_t c0):
    """dst (rows, width) = src (rows, C)[:, c0:c0 + width]."""
    cdef int64_t rows = dst.shape[0], width = dst.shape[1], ld = src.shape[1]
    if src.shape[0] != rows or c0 < 0 or c0 + width > ld:
        raise ValueError("channel_slice_gather: shapes (%d, %d) and (%d, %d) at channel %d "
                         "do not fit" % (src.shape[0], ld, rows, width, c0))
    if rows > 0 and width > 0:
        with nogil:
            fc_channel_slice_copy(&src[0, 0], &dst[0, 0], rows, ld, c0, width, 1)


def channel_slice_scatter(const float[:, ::1] src, float[:, ::1] dst, int64_t c0):
    """dst (rows, C)[:, c0:c0 + width] = src (rows, width)."""
    cdef int64_t rows = src.shape[0], width = src.shape[1], ld = dst.shape[1]
    if dst.shape[0] != rows or c0 < 0 or c0 + width > ld:
        raise ValueError("channel_slice_scatter: shapes (%d, %d) and (%d, %d) at channel %d "
                         "do not fit" % (rows, width, dst.shape[0], ld, c0))
    if rows > 0 and width > 0:
        with nogil:
            fc_channel_slice_copy(&src[0, 0], &dst[0, 0], rows, ld, c0, width, 0)
