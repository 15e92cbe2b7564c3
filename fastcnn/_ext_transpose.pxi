# fastcnn._ext: Conv2DTranspose forward (csrc/conv_transpose.c). The geometry is the conv2d
# one whose input gradient the transposed conv is; checked by fastcnn.ops.conv_transpose.

cdef extern from "conv_transpose.h":
    int fc_conv2d_transpose_forward(const fc_conv2d_geometry *g, const float *x,
                                    const float *kernel, const float *bias, int relu,
                                    float *y, float *workspace, int algorithm) nogil


# "phase": the phase decomposition; "phase_winograd": with Winograd F(2, 2) on 2-tap axes
CONVT_ALGORITHMS = {"phase": 100, "phase_winograd": 101}


def conv2d_transpose_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] kernel,
                             const float[::1] bias, tuple strides, tuple pads, bint relu,
                             float[:, :, :, ::1] out, float[::1] workspace,
                             str algorithm="auto"):
    """out = act(conv_transpose(x, kernel) + bias); bias and workspace may be None."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (out.shape[0], out.shape[1], out.shape[2], out.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides, pads,
        (x.shape[1], x.shape[2]))
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef float *pw = _ws_ptr(workspace)
    cdef int rc, algo = (CONVT_ALGORITHMS[algorithm] if algorithm in CONVT_ALGORITHMS
                         else CONV2D_ALGORITHMS[algorithm])
    if out.size == 0:
        return
    if x.size == 0:
        out[...] = 0
        return
    with nogil:
        rc = fc_conv2d_transpose_forward(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], pb, relu,
                                         &out[0, 0, 0, 0], pw, algo)
    _check(rc, "conv2d_transpose")


cdef extern from "conv_transpose.h":
    int fc_conv2d_transpose_phase_applies(const fc_conv2d_geometry *g) nogil
    int fc_conv2d_transpose_winograd_applies(const fc_conv2d_geometry *g) nogil
    int fc_conv2d_transpose_winograd_preferred(const fc_conv2d_geometry *g) nogil
    int fc_conv2d_transpose_winograd_backward(const fc_conv2d_geometry *g, const float *dy,
                                              const float *x, const float *kernel, float *dx,
                                              float *dkernel, float *dbias) nogil
    int fc_conv2d_transpose_phase_backward(const fc_conv2d_geometry *g, const float *dy,
                                           const float *x, const float *kernel, float *dx,
                                           float *dkernel, float *dbias) nogil


def conv2d_transpose_phase_applies(tuple y_shape, tuple k_shape, tuple strides, tuple pads,
                                   tuple x_hw):
    """Whether the phase-decomposition kernels run this transposed conv (strided)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(y_shape, k_shape, strides, pads, x_hw)
    return bool(fc_conv2d_transpose_phase_applies(&g))


def conv2d_transpose_winograd_preferred(tuple y_shape, tuple k_shape, tuple strides,
                                        tuple pads, tuple x_hw):
    """Whether the "auto" algorithm runs this transposed conv as Winograd phases."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(y_shape, k_shape, strides, pads, x_hw)
    return bool(fc_conv2d_transpose_winograd_preferred(&g))


def conv2d_transpose_phase_backward(const float[:, :, :, ::1] dy,
                                    const float[:, :, :, ::1] x,
                                    const float[:, :, :, ::1] kernel, tuple strides,
                                    tuple pads, float[:, :, :, ::1] dx,
                                    float[:, :, :, ::1] dkernel, float[::1] dbias,
                                    bint winograd=True):
    """dx (may be None), dkernel and dbias (may be None) of the transposed conv by phases
    (with Winograd F(2, 2) where it applies and ``winograd``)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides, pads,
        (x.shape[1], x.shape[2]))
    cdef float *pdx = &dx[0, 0, 0, 0] if dx is not None and dx.size > 0 else NULL
    cdef float *pdb = &dbias[0] if dbias is not None and dbias.shape[0] > 0 else NULL
    cdef int rc
    if not fc_conv2d_transpose_phase_applies(&g):
        raise ValueError("conv2d_transpose_phase_backward: needs a stride > 1")
    if dy.size == 0 or x.size == 0:
        dkernel[...] = 0
        if dbias is not None:
            dbias[...] = 0
        if dx is not None:
            dx[...] = 0
        return
    winograd = winograd and fc_conv2d_transpose_winograd_applies(&g)
    with nogil:
        if winograd:
            rc = fc_conv2d_transpose_winograd_backward(&g, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                                       &kernel[0, 0, 0, 0], pdx,
                                                       &dkernel[0, 0, 0, 0], pdb)
        else:
            rc = fc_conv2d_transpose_phase_backward(&g, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                                    &kernel[0, 0, 0, 0], pdx,
                                                    &dkernel[0, 0, 0, 0], pdb)
    _check(rc, "conv2d_transpose_backward")
