# fastcnn._ext: UpSampling2D kernels (csrc/upsample.c). Shapes are checked by
# fastcnn.ops.upsample; these wrappers only take pointers and release the GIL.

cdef extern from "upsample.h":
    void fc_upsample2d_nearest_forward(const float *x, int64_t N, int64_t H, int64_t W,
                                       int64_t C, int64_t sh, int64_t sw, float *y) nogil
    void fc_upsample2d_nearest_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                        int64_t C, int64_t sh, int64_t sw, float *dx) nogil
    int fc_upsample2d_bilinear_forward(const float *x, int64_t N, int64_t H, int64_t W,
                                       int64_t C, int64_t sh, int64_t sw, float *y) nogil
    int fc_upsample2d_bilinear_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                        int64_t C, int64_t sh, int64_t sw, float *dx) nogil


def upsample2d_forward(const float[:, :, :, ::1] x, int64_t sh, int64_t sw, bint bilinear,
                       float[:, :, :, ::1] y):
    """y (N, H*sh, W*sw, C) = nearest or bilinear up-sampling of x."""
    cdef int rc = 0
    if x.size == 0:
        return
    with nogil:
        if bilinear:
            rc = fc_upsample2d_bilinear_forward(&x[0, 0, 0, 0], x.shape[0], x.shape[1],
                                                x.shape[2], x.shape[3], sh, sw, &y[0, 0, 0, 0])
        else:
            fc_upsample2d_nearest_forward(&x[0, 0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
                                          x.shape[3], sh, sw, &y[0, 0, 0, 0])
    _check(rc, "upsample2d")


def upsample2d_backward(const float[:, :, :, ::1] dy, int64_t sh, int64_t sw, bint bilinear,
                        float[:, :, :, ::1] dx):
    """dx (N, H, W, C), overwritten, = the gradient of upsample2d_forward given dy."""
    cdef int rc = 0
    if dx.size == 0:
        return
    with nogil:
        if bilinear:
            rc = fc_upsample2d_bilinear_backward(&dy[0, 0, 0, 0], dx.shape[0], dx.shape[1],
                                                 dx.shape[2], dx.shape[3], sh, sw,
                                                 &dx[0, 0, 0, 0])
        else:
            fc_upsample2d_nearest_backward(&dy[0, 0, 0, 0], dx.shape[0], dx.shape[1],
                                           dx.shape[2], dx.shape[3], sh, sw, &dx[0, 0, 0, 0])
    _check(rc, "upsample2d_backward")
