# fastcnn._ext: conv2d kernels (csrc/conv2d.c). Shapes are checked by fastcnn.ops.conv.
from libc.stdint cimport int32_t
cdef extern from "conv2d.h":
    ctypedef struct fc_conv2d_geometry:
        int64_t n, h, w, c
        int64_t kh, kw, f
        int64_t sh, sw
        int64_t pad_top, pad_left
        int64_t oh, ow

    int FC_CONV2D_AUTO, FC_CONV2D_IM2COL, FC_CONV2D_WINOGRAD, FC_CONV2D_DIRECT
    int FC_CONV2D_WINOGRAD_F2, FC_CONV2D_WINOGRAD_F4
    int FC_CONV2D_PASS_FORWARD, FC_CONV2D_PASS_BACKWARD_INPUT, FC_CONV2D_PASS_BACKWARD_KERNEL
    int fc_conv2d_winograd_applies(const fc_conv2d_geometry *g) nogil
    int fc_conv2d_direct_applies(const fc_conv2d_geometry *g) nogil
    int fc_conv2d_algorithm(const fc_conv2d_geometry *g, int pass_, int requested) nogil
    int64_t fc_conv2d_workspace_size(const fc_conv2d_geometry *g) nogil
    int64_t fc_conv2d_chunk_lines(const fc_conv2d_geometry *g) nogil
    int fc_conv2d_forward(const fc_conv2d_geometry *g, const float *x, const float *kernel,
                          const float *bias, int relu, float *out, float *workspace,
                          int algorithm) nogil
    int fc_conv2d_backward_input(const fc_conv2d_geometry *g, const float *dy,
                                 const float *kernel, float *dx, float *workspace,
                                 int algorithm) nogil
    int fc_conv2d_backward_kernel(const fc_conv2d_geometry *g, const float *dy, const float *x,
                                  float *dkernel, float *workspace, int algorithm) nogil
    void fc_conv2d_backward_bias(const fc_conv2d_geometry *g, const float *dy,
                                 float *dbias) nogil
    int FC_CONV2D_EBADINDEX
    int fc_conv2d_winograd_relu_maxpool2_tile(const fc_conv2d_geometry *g) nogil
    int fc_conv2d_winograd_relu_maxpool2_forward(const fc_conv2d_geometry *g, const float *x,
                                                 const float *kernel, const float *bias,
                                                 float *y, int32_t *indices,
                                                 float *workspace) nogil
    int fc_conv2d_winograd_cached_tile(const fc_conv2d_geometry *g) nogil
    int64_t fc_conv2d_winograd_cache_size(const fc_conv2d_geometry *g, int m) nogil
    int fc_conv2d_winograd_cached_forward(const fc_conv2d_geometry *g, int m, const float *x,
                                          const float *kernel, const float *bias, int relu,
                                          float *out, float *cache, float *workspace) nogil
    int fc_conv2d_relu_maxpool_applies(const fc_conv2d_geometry *g, int64_t ph,
                                       int64_t pw) nogil
    int fc_conv2d_relu_maxpool_forward(const fc_conv2d_geometry *g, int64_t ph, int64_t pw,
                                       const float *x, const float *kernel,
                                       const float *bias, float *y, int32_t *indices) nogil
    int fc_conv2d_relu_maxpool_backward_kernel(const fc_conv2d_geometry *g, int64_t ph,
                                               int64_t pw, const float *dy,
                                               const int32_t *indices, const float *y,
                                               const float *x, float *dkernel,
                                               float *dbias) nogil


cdef fc_conv2d_geometry _conv2d_geometry(tuple x_shape, tuple k_shape, tuple strides,
                                         tuple pads, tuple out_hw):
    cdef fc_conv2d_geometry g
    g.n, g.h, g.w, g.c = x_shape
    g.kh, g.kw, _, g.f = k_shape
    g.sh, g.sw = strides
    g.pad_top, g.pad_left = pads
    g.oh, g.ow = out_hw
    return g


def conv2d_workspace_size(tuple x_shape, tuple k_shape, tuple strides, tuple pads,
                          tuple out_hw):
    """Floats of workspace the conv2d kernels need (0: none)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    return fc_conv2d_workspace_size(&g)


CONV2D_ALGORITHMS = {"auto": FC_CONV2D_AUTO, "im2col": FC_CONV2D_IM2COL,
                     "winograd": FC_CONV2D_WINOGRAD, "winograd_f2": FC_CONV2D_WINOGRAD_F2,
                     "winograd_f4": FC_CONV2D_WINOGRAD_F4, "direct": FC_CONV2D_DIRECT}
CONV2D_ALGORITHM_NAMES = {FC_CONV2D_IM2COL: "im2col", FC_CONV2D_WINOGRAD_F2: "winograd_f2",
                          FC_CONV2D_WINOGRAD_F4: "winograd_f4", FC_CONV2D_DIRECT: "direct"}
CONV2D_PASSES = {"forward": FC_CONV2D_PASS_FORWARD,
                 "backward_input": FC_CONV2D_PASS_BACKWARD_INPUT,
                 "backward_kernel": FC_CONV2D_PASS_BACKWARD_KERNEL}


def conv2d_winograd_applies(tuple x_shape, tuple k_shape, tuple strides, tuple pads,
                            tuple out_hw):
    """True when the Winograd paths can compute this geometry (3x3 kernel, stride 1)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    return fc_conv2d_winograd_applies(&g) != 0


def conv2d_direct_applies(tuple x_shape, tuple k_shape, tuple strides, tuple pads,
                          tuple out_hw):
    """True when the direct small-K kernels can run this geometry (K = kh*kw*C <= 64)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    return fc_conv2d_direct_applies(&g) != 0


def conv2d_algorithm(tuple x_shape, tuple k_shape, tuple strides, tuple pads, tuple out_hw,
                     str pass_, str requested):
    """'im2col', 'winograd' or 'direct': what `pass_` runs when asked for `requested`."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    cdef int a = fc_conv2d_algorithm(&g, CONV2D_PASSES[pass_], CONV2D_ALGORITHMS[requested])
    return CONV2D_ALGORITHM_NAMES[a]


def conv2d_chunk_lines(tuple x_shape, tuple k_shape, tuple strides, tuple pads, tuple out_hw):
    """Output lines per batch chunk (depends on the geometry only)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    return fc_conv2d_chunk_lines(&g)


cdef inline float *_ws_ptr(float[::1] workspace):
    return &workspace[0] if workspace is not None and workspace.shape[0] > 0 else NULL


def conv2d_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] kernel,
                   const float[::1] bias, tuple strides, tuple pads, bint relu,
                   float[:, :, :, ::1] out, float[::1] workspace, str algorithm="auto"):
    """out = act(conv(x, kernel) + bias); bias and workspace may be None."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides, pads,
        (out.shape[1], out.shape[2]))
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef float *pw = _ws_ptr(workspace)
    cdef int rc, algo = CONV2D_ALGORITHMS[algorithm]
    if out.size == 0 or x.size == 0:
        return
    with nogil:
        rc = fc_conv2d_forward(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], pb, relu,
                               &out[0, 0, 0, 0], pw, algo)
    _check(rc, "conv2d_forward")


def conv2d_winograd_cached_tile(tuple x_shape, tuple k_shape, tuple strides, tuple pads,
                                tuple out_hw):
    """The tile size (2 or 4) of a forward whose kernel transform is cached, or 0."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    return fc_conv2d_winograd_cached_tile(&g)


def conv2d_winograd_cache_size(tuple x_shape, tuple k_shape, tuple pads, tuple out_hw,
                               int m):
    """Floats of conv2d_winograd_cached_forward's cache for tile size m."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, (1, 1), pads, out_hw)
    return fc_conv2d_winograd_cache_size(&g, m)


def conv2d_winograd_cached_forward(const float[:, :, :, ::1] x,
                                   const float[:, :, :, ::1] kernel, const float[::1] bias,
                                   tuple pads, bint relu, float[:, :, :, ::1] out,
                                   float[::1] cache, float[::1] workspace, int m):
    """out = act(conv(x, kernel) + bias) by Winograd F(m x m), stride 1, with the kernel
    transform kept in ``cache`` between calls (redone when the kernel changes; zero its
    first float to force it)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), (1, 1), pads,
        (out.shape[1], out.shape[2]))
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef float *pw = _ws_ptr(workspace)
    cdef int rc
    if m not in (2, 4) or fc_conv2d_winograd_applies(&g) == 0:
        raise ValueError("conv2d_winograd_cached_forward: needs a 3x3 kernel and m 2 or 4, "
                         "got kernel %dx%d and m %d" % (kernel.shape[0], kernel.shape[1], m))
    if cache is None or cache.shape[0] < fc_conv2d_winograd_cache_size(&g, m):
        raise ValueError("conv2d_winograd_cached_forward: the cache needs %d floats"
                         % fc_conv2d_winograd_cache_size(&g, m))
    if workspace is not None and workspace.shape[0] < fc_conv2d_workspace_size(&g):
        raise ValueError("conv2d_winograd_cached_forward: the workspace needs %d floats"
                         % fc_conv2d_workspace_size(&g))
    if out.size == 0 or x.size == 0:
        return
    with nogil:
        rc = fc_conv2d_winograd_cached_forward(&g, m, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0], pb,
                                               relu, &out[0, 0, 0, 0], &cache[0], pw)
    _check(rc, "conv2d_winograd_cached_forward")


def conv2d_backward_input(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] kernel,
                          tuple strides, tuple pads, float[:, :, :, ::1] dx,
                          float[::1] workspace, str algorithm="auto"):
    """dx = gradient of conv2d w.r.t. its input (overwritten)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides, pads,
        (dy.shape[1], dy.shape[2]))
    cdef float *pw = _ws_ptr(workspace)
    cdef int rc, algo = CONV2D_ALGORITHMS[algorithm]
    if dx.size == 0 or dy.size == 0:
        return
    with nogil:
        rc = fc_conv2d_backward_input(&g, &dy[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                      &dx[0, 0, 0, 0], pw, algo)
    _check(rc, "conv2d_backward_input")


def conv2d_backward_kernel(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x,
                           tuple strides, tuple pads, float[:, :, :, ::1] dkernel,
                           float[::1] workspace, str algorithm="auto"):
    """dkernel = gradient of conv2d w.r.t. its kernel, summed over the batch (overwritten)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (dkernel.shape[0], dkernel.shape[1], dkernel.shape[2], dkernel.shape[3]), strides,
        pads, (dy.shape[1], dy.shape[2]))
    cdef float *pw = _ws_ptr(workspace)
    cdef int rc, algo = CONV2D_ALGORITHMS[algorithm]
    if dkernel.size == 0:
        return
    if dy.size == 0 or x.size == 0:
        dkernel[:, :, :, :] = 0
        return
    with nogil:
        rc = fc_conv2d_backward_kernel(&g, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                       &dkernel[0, 0, 0, 0], pw, algo)
    _check(rc, "conv2d_backward_kernel")


def conv2d_backward_bias(const float[:, :, :, ::1] dy, float[::1] dbias):
    """dbias = sum of dy over all axes but the last (overwritten)."""
    cdef fc_conv2d_geometry g
    g.n, g.oh, g.ow, g.f = dy.shape[0], dy.shape[1], dy.shape[2], dy.shape[3]
    if dbias.shape[0] == 0:
        return
    if dy.size == 0:
        dbias[:] = 0
        return
    with nogil:
        fc_conv2d_backward_bias(&g, &dy[0, 0, 0, 0], &dbias[0])


def conv2d_relu_maxpool_applies(tuple x_shape, tuple k_shape, tuple strides, tuple pads,
                                tuple out_hw, tuple pool):
    """True when conv2d(relu) + max pool `pool` (strides = pool, valid) can run fused."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, strides, pads, out_hw)
    return fc_conv2d_relu_maxpool_applies(&g, pool[0], pool[1]) != 0


def conv2d_relu_maxpool_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] kernel,
                                const float[::1] bias, tuple strides, tuple pads,
                                tuple out_hw, tuple pool, float[:, :, :, ::1] y,
                                int32_t[:, :, :, ::1] indices):
    """y, indices = max pool (pool == strides, valid) of relu(conv(x) + bias); checked by
    the caller (fastcnn.ops.conv). indices may be None (inference): y alone."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), strides, pads,
        out_hw)
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef int rc
    cdef int64_t ph = pool[0], pw = pool[1]
    if y.size == 0 or x.size == 0:
        return
    cdef int32_t *pi = &indices[0, 0, 0, 0] if indices is not None else NULL
    with nogil:
        rc = fc_conv2d_relu_maxpool_forward(&g, ph, pw, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                            pb, &y[0, 0, 0, 0], pi)
    _check(rc, "conv2d_relu_max_pool2d")


def conv2d_relu_maxpool_backward_kernel(const float[:, :, :, ::1] dy,
                                        const int32_t[:, :, :, ::1] indices,
                                        const float[:, :, :, ::1] y,
                                        const float[:, :, :, ::1] x, tuple strides,
                                        tuple pads, tuple out_hw, tuple pool,
                                        float[:, :, :, ::1] dkernel, float[::1] dbias):
    """dkernel (and dbias unless None) of the fused block; False if an index was bad."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (dkernel.shape[0], dkernel.shape[1], dkernel.shape[2], dkernel.shape[3]), strides,
        pads, out_hw)
    cdef float *pb = &dbias[0] if dbias is not None and dbias.shape[0] > 0 else NULL
    cdef int rc
    cdef int64_t ph = pool[0], pw = pool[1]
    if dkernel.size == 0:
        return True
    if dy.size == 0 or x.size == 0:
        dkernel[:, :, :, :] = 0
        if dbias is not None:
            dbias[:] = 0
        return True
    with nogil:
        rc = fc_conv2d_relu_maxpool_backward_kernel(&g, ph, pw, &dy[0, 0, 0, 0],
                                                    &indices[0, 0, 0, 0], &y[0, 0, 0, 0],
                                                    &x[0, 0, 0, 0], &dkernel[0, 0, 0, 0], pb)
    if rc == FC_CONV2D_EBADINDEX:
        return False
    _check(rc, "conv2d_relu_max_pool2d_backward")
    return True


def conv2d_winograd_relu_maxpool2_tile(tuple x_shape, tuple k_shape, tuple pads, tuple out_hw):
    """Tile size (4 or 2) of the fused Winograd conv + ReLU + 2x2 max-pool for this conv
    (3x3, stride 1) computing out_hw, or 0 when it does not run fused."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, (1, 1), pads, out_hw)
    return fc_conv2d_winograd_relu_maxpool2_tile(&g)


def conv2d_winograd_relu_maxpool2_forward(const float[:, :, :, ::1] x,
                                          const float[:, :, :, ::1] kernel,
                                          const float[::1] bias, tuple pads, tuple out_hw,
                                          float[:, :, :, ::1] y, int32_t[:, :, :, ::1] indices,
                                          float[::1] workspace):
    """y, indices = 2x2 max pool of relu(conv(x) + bias) over the out_hw conv outputs;
    checked by the caller (fastcnn.ops.conv). indices may be None (inference): y alone."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(
        (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), (1, 1), pads,
        out_hw)
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef float *pw = _ws_ptr(workspace)
    cdef int rc
    if y.size == 0 or x.size == 0:
        return
    cdef int32_t *pi = &indices[0, 0, 0, 0] if indices is not None else NULL
    with nogil:
        rc = fc_conv2d_winograd_relu_maxpool2_forward(&g, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                                      pb, &y[0, 0, 0, 0], pi, pw)
    _check(rc, "conv2d_winograd_relu_max_pool2d")



cdef extern from "conv2d_grouped.h":
    void fc_lattice_gather(const float *x, int64_t n, int64_t h, int64_t w, int64_t c,
                           int64_t dh, int64_t dw, int64_t rh, int64_t rw, int64_t hs,
                           int64_t ws, float *xs) nogil
    void fc_lattice_scatter(const float *xs, int64_t n, int64_t h, int64_t w, int64_t c,
                            int64_t dh, int64_t dw, int64_t rh, int64_t rw, int64_t hs,
                            int64_t ws, float *x) nogil


cdef _check_lattice(str fn, tuple x_shape, tuple xs_shape, tuple dilation, tuple offsets):
    dh, dw = dilation
    rh, rw = offsets
    if not (dh >= 1 and dw >= 1 and 0 <= rh < dh and 0 <= rw < dw
            and xs_shape[0] == dh * dw * x_shape[0] and xs_shape[3] == x_shape[3]):
        raise ValueError("%s: x %s and sub-images %s do not match dilation %s, offsets %s"
                         % (fn, x_shape, xs_shape, dilation, offsets))


def lattice_gather(const float[:, :, :, ::1] x, tuple dilation, tuple offsets,
                   float[:, :, :, ::1] xs):
    """xs (dh*dw*N, hs, ws, C) = the dilation lattices of x (N, H, W, C), zero-filled
    (csrc/conv2d_grouped.h)."""
    cdef int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    cdef int64_t hs = xs.shape[1], ws = xs.shape[2]
    _check_lattice("lattice_gather", (n, h, w, c), (xs.shape[0], hs, ws, xs.shape[3]),
                   dilation, offsets)
    cdef int64_t dh = dilation[0], dw = dilation[1], rh = offsets[0], rw = offsets[1]
    if xs.size == 0:
        return
    with nogil:
        fc_lattice_gather(&x[0, 0, 0, 0], n, h, w, c, dh, dw, rh, rw, hs, ws, &xs[0, 0, 0, 0])


def lattice_scatter(const float[:, :, :, ::1] xs, tuple dilation, tuple offsets,
                    float[:, :, :, ::1] x):
    """x (N, H, W, C) from its dilation lattices xs (dh*dw*N, hs, ws, C); every pixel
    written (zero where past (hs, ws))."""
    cdef int64_t n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
    cdef int64_t hs = xs.shape[1], ws = xs.shape[2]
    _check_lattice("lattice_scatter", (n, h, w, c), (xs.shape[0], hs, ws, xs.shape[3]),
                   dilation, offsets)
    cdef int64_t dh = dilation[0], dw = dilation[1], rh = offsets[0], rw = offsets[1]
    if x.size == 0:
        return
    if xs.size == 0:
        x[:, :, :, :] = 0
        return
    with nogil:
        fc_lattice_scatter(&xs[0, 0, 0, 0], n, h, w, c, dh, dw, rh, rw, hs, ws, &x[0, 0, 0, 0])


cdef extern from "conv2d_grouped.h":
    int fc_conv2d_grouped_wino_applies(const fc_conv2d_geometry *g, int64_t groups) nogil
    int64_t fc_conv2d_grouped_wino_workspace_size(const fc_conv2d_geometry *g,
                                                  int64_t groups) nogil
    int fc_conv2d_grouped_wino_forward(const fc_conv2d_geometry *g, int64_t groups,
                                       const float *x, const float *kernel, const float *bias,
                                       int relu, float *out, float *workspace) nogil
    int fc_conv2d_grouped_wino_backward_input(const fc_conv2d_geometry *g, int64_t groups,
                                              const float *dy, const float *kernel,
                                              float *dx, float *workspace) nogil
    int fc_conv2d_grouped_wino_backward_kernel(const fc_conv2d_geometry *g, int64_t groups,
                                               const float *dy, const float *x,
                                               float *dkernel, float *workspace) nogil


def conv2d_grouped_wino_applies(tuple x_shape, tuple k_shape, tuple pads, tuple out_hw,
                                int64_t groups):
    """Whether the grouped Winograd kernels run this (3x3, stride 1, undilated) conv."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, (1, 1), pads, out_hw)
    g.f = k_shape[3]
    return fc_conv2d_grouped_wino_applies(&g, groups) != 0


def conv2d_grouped_wino_workspace_size(tuple x_shape, tuple k_shape, tuple pads,
                                       tuple out_hw, int64_t groups):
    """Floats of workspace the grouped Winograd kernels need (0: they do not apply)."""
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, (1, 1), pads, out_hw)
    return fc_conv2d_grouped_wino_workspace_size(&g, groups)


cdef fc_conv2d_geometry _gw_checked(str fn, tuple x_shape, tuple k_shape, tuple pads,
                                    tuple out_hw, int64_t groups, Py_ssize_t ws_len) except *:
    cdef fc_conv2d_geometry g = _conv2d_geometry(x_shape, k_shape, (1, 1), pads, out_hw)
    if (not fc_conv2d_grouped_wino_applies(&g, groups) or k_shape[2] * groups != x_shape[3]
            or ws_len < fc_conv2d_grouped_wino_workspace_size(&g, groups)):
        raise ValueError("%s: x %s, kernel %s, pads %s, output %s, groups %d and a workspace "
                         "of %d floats do not fit the grouped Winograd kernels"
                         % (fn, x_shape, k_shape, pads, out_hw, groups, ws_len))
    return g


def conv2d_grouped_wino_forward(const float[:, :, :, ::1] x, const float[:, :, :, ::1] kernel,
                                const float[::1] bias, tuple pads, int64_t groups, bint relu,
                                float[:, :, :, ::1] out, float[::1] workspace):
    """out = act(grouped conv(x, kernel) + bias) as Winograd; bias may be None."""
    cdef fc_conv2d_geometry g = _gw_checked(
        "conv2d_grouped_wino_forward", (x.shape[0], x.shape[1], x.shape[2], x.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), pads,
        (out.shape[1], out.shape[2]), groups, workspace.shape[0])
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef int rc
    with nogil:
        rc = fc_conv2d_grouped_wino_forward(&g, groups, &x[0, 0, 0, 0], &kernel[0, 0, 0, 0],
                                            pb, relu, &out[0, 0, 0, 0], &workspace[0])
    _check(rc, "conv2d (grouped Winograd)")


def conv2d_grouped_wino_backward_input(const float[:, :, :, ::1] dy,
                                       const float[:, :, :, ::1] kernel, tuple pads,
                                       int64_t groups, float[:, :, :, ::1] dx,
                                       float[::1] workspace):
    """dx = input gradient of the grouped conv as Winograd (overwritten)."""
    cdef fc_conv2d_geometry g = _gw_checked(
        "conv2d_grouped_wino_backward_input", (dx.shape[0], dx.shape[1], dx.shape[2],
                                               dx.shape[3]),
        (kernel.shape[0], kernel.shape[1], kernel.shape[2], kernel.shape[3]), pads,
        (dy.shape[1], dy.shape[2]), groups, workspace.shape[0])
    cdef int rc
    with nogil:
        rc = fc_conv2d_grouped_wino_backward_input(&g, groups, &dy[0, 0, 0, 0],
                                                   &kernel[0, 0, 0, 0], &dx[0, 0, 0, 0],
                                                   &workspace[0])
    _check(rc, "conv2d_backward (grouped Winograd)")


def conv2d_grouped_wino_backward_kernel(const float[:, :, :, ::1] dy,
                                        const float[:, :, :, ::1] x, tuple pads,
                                        int64_t groups, float[:, :, :, ::1] dkernel,
                                        float[::1] workspace):
    """dkernel = kernel gradient of the grouped conv as Winograd, summed over the batch."""
    cdef fc_conv2d_geometry g = _gw_checked(
        "conv2d_grouped_wino_backward_kernel", (x.shape[0], x.shape[1], x.shape[2],
                                                x.shape[3]),
        (dkernel.shape[0], dkernel.shape[1], dkernel.shape[2], dkernel.shape[3]), pads,
        (dy.shape[1], dy.shape[2]), groups, workspace.shape[0])
    cdef int rc
    with nogil:
        rc = fc_conv2d_grouped_wino_backward_kernel(&g, groups, &dy[0, 0, 0, 0], &x[0, 0, 0, 0],
                                                    &dkernel[0, 0, 0, 0], &workspace[0])
    _check(rc, "conv2d_backward (grouped Winograd)")
