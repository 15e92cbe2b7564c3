# Image augmentation / preprocessing kernels (csrc/augment.h). fastcnn.ops.image checks every
# argument (shapes, C-contiguity, dtypes: src uint8 or float32, outputs float32) first.
cimport numpy as cnp
from libc.stdint cimport uint8_t, int32_t, int64_t

cnp.import_array()

cdef extern from "augment.h":
    void fc_aug_affine_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                          const float *t, int interp, int fill, float fill_value,
                          float *dst) nogil
    void fc_aug_affine_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                           const float *t, int interp, int fill, float fill_value,
                           float *dst) nogil
    void fc_aug_affine_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                                const float *t, int interp, int fill, float *dx) nogil
    void fc_aug_resize_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                          int64_t OH, int64_t OW, int64_t Wp, int64_t pad_y, int64_t pad_x,
                          float fill_value, const int32_t *ys, int64_t ny, const float *wy,
                          const int32_t *xs, int64_t nx, const float *wx, float *tmp,
                          float *dst) nogil
    void fc_aug_resize_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                          int64_t OH, int64_t OW, int64_t Wp, int64_t pad_y, int64_t pad_x,
                          float fill_value, const int32_t *ys, int64_t ny, const float *wy,
                          const int32_t *xs, int64_t nx, const float *wx, float *tmp,
                          float *dst) nogil
    void fc_aug_resize_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                                int64_t OH, int64_t OW, int64_t Wp, int64_t pad_y,
                                int64_t pad_x, const int32_t *ys, int64_t ny, const float *wy,
                                const int32_t *xs, int64_t nx, const float *wx, float *tmp,
                                float *dx) nogil
    void fc_aug_contrast_backward(const float *x, const float *dy, int64_t B, int64_t H,
                                  int64_t W, int64_t C, const float *factor, float lo,
                                  float hi, float *dx) nogil
    void fc_aug_brightness_backward(const float *x, const float *dy, int64_t B, int64_t HWC,
                                    const float *delta, float lo, float hi, float *dx) nogil
    void fc_aug_crop_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                        int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                        const uint8_t *flip, float *dst) nogil
    void fc_aug_crop_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                         int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                         const uint8_t *flip, float *dst) nogil
    void fc_aug_crop_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                              int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                              const uint8_t *flip, float *dx) nogil
    void fc_aug_contrast_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                            const float *factor, float lo, float hi, float *dst) nogil
    void fc_aug_contrast_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                             const float *factor, float lo, float hi, float *dst) nogil
    void fc_aug_brightness_u8(const uint8_t *src, int64_t B, int64_t HWC, const float *delta,
                              float lo, float hi, float *dst) nogil
    void fc_aug_brightness_f32(const float *src, int64_t B, int64_t HWC, const float *delta,
                               float lo, float hi, float *dst) nogil


cdef inline bint _is_u8(cnp.ndarray a):
    return cnp.PyArray_TYPE(a) == cnp.NPY_UINT8


def aug_affine(cnp.ndarray src, cnp.ndarray t, int interp, int fill, float fill_value,
               cnp.ndarray dst):
    """dst = src sampled through the per-image transforms t (B, 8); see augment.h."""
    cdef int64_t B = src.shape[0], H = src.shape[1], W = src.shape[2], C = src.shape[3]
    cdef void *ps = cnp.PyArray_DATA(src)
    cdef const float *pt = <const float *>cnp.PyArray_DATA(t)
    cdef float *pd = <float *>cnp.PyArray_DATA(dst)
    cdef bint u8 = _is_u8(src)
    if B * H * W * C == 0:
        return
    with nogil:
        if u8:
            fc_aug_affine_u8(<const uint8_t *>ps, B, H, W, C, pt, interp, fill, fill_value, pd)
        else:
            fc_aug_affine_f32(<const float *>ps, B, H, W, C, pt, interp, fill, fill_value, pd)


def aug_affine_backward(cnp.ndarray dy, cnp.ndarray t, int interp, int fill, cnp.ndarray dx):
    cdef int64_t B = dy.shape[0], H = dy.shape[1], W = dy.shape[2], C = dy.shape[3]
    cdef const float *pg = <const float *>cnp.PyArray_DATA(dy)
    cdef const float *pt = <const float *>cnp.PyArray_DATA(t)
    cdef float *pd = <float *>cnp.PyArray_DATA(dx)
    if B * H * W * C == 0:
        return
    with nogil:
        fc_aug_affine_backward(pg, B, H, W, C, pt, interp, fill, pd)


def aug_resize(cnp.ndarray src, int64_t pad_y, int64_t pad_x, float fill_value,
               cnp.ndarray ys, cnp.ndarray wy, cnp.ndarray xs, cnp.ndarray wx,
               cnp.ndarray tmp, cnp.ndarray dst):
    """dst (B, OH, OW, C) = separable resampling of padded src with the taps (ys, wy),
    (xs, wx); tmp is (B, OH, Wp, C) scratch."""
    cdef int64_t B = src.shape[0], H = src.shape[1], W = src.shape[2], C = src.shape[3]
    cdef int64_t OH = dst.shape[1], OW = dst.shape[2], Wp = tmp.shape[2]
    cdef int64_t ny = wy.shape[1], nx = wx.shape[1]
    cdef void *ps = cnp.PyArray_DATA(src)
    cdef const int32_t *pys = <const int32_t *>cnp.PyArray_DATA(ys)
    cdef const int32_t *pxs = <const int32_t *>cnp.PyArray_DATA(xs)
    cdef const float *pwy = <const float *>cnp.PyArray_DATA(wy)
    cdef const float *pwx = <const float *>cnp.PyArray_DATA(wx)
    cdef float *pt = <float *>cnp.PyArray_DATA(tmp)
    cdef float *pd = <float *>cnp.PyArray_DATA(dst)
    cdef bint u8 = _is_u8(src)
    if B * OH * OW * C == 0:
        return
    with nogil:
        if u8:
            fc_aug_resize_u8(<const uint8_t *>ps, B, H, W, C, OH, OW, Wp, pad_y, pad_x,
                             fill_value, pys, ny, pwy, pxs, nx, pwx, pt, pd)
        else:
            fc_aug_resize_f32(<const float *>ps, B, H, W, C, OH, OW, Wp, pad_y, pad_x,
                              fill_value, pys, ny, pwy, pxs, nx, pwx, pt, pd)


def aug_crop(cnp.ndarray src, cnp.ndarray y0, cnp.ndarray x0, flip, cnp.ndarray dst):
    """dst = per-image windows of src at (y0, x0), optionally flipped (flip uint8 or None)."""
    cdef int64_t B = src.shape[0], H = src.shape[1], W = src.shape[2], C = src.shape[3]
    cdef int64_t OH = dst.shape[1], OW = dst.shape[2]
    cdef void *ps = cnp.PyArray_DATA(src)
    cdef const int32_t *py = <const int32_t *>cnp.PyArray_DATA(y0)
    cdef const int32_t *px = <const int32_t *>cnp.PyArray_DATA(x0)
    cdef const uint8_t *pf = NULL
    cdef float *pd = <float *>cnp.PyArray_DATA(dst)
    cdef bint u8 = _is_u8(src)
    if flip is not None:
        pf = <const uint8_t *>cnp.PyArray_DATA(flip)
    if B * OH * OW * C == 0:
        return
    with nogil:
        if u8:
            fc_aug_crop_u8(<const uint8_t *>ps, B, H, W, C, OH, OW, py, px, pf, pd)
        else:
            fc_aug_crop_f32(<const float *>ps, B, H, W, C, OH, OW, py, px, pf, pd)


def aug_crop_backward(cnp.ndarray dy, cnp.ndarray y0, cnp.ndarray x0, flip, cnp.ndarray dx):
    cdef int64_t B = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef int64_t OH = dy.shape[1], OW = dy.shape[2]
    cdef const float *pg = <const float *>cnp.PyArray_DATA(dy)
    cdef const int32_t *py = <const int32_t *>cnp.PyArray_DATA(y0)
    cdef const int32_t *px = <const int32_t *>cnp.PyArray_DATA(x0)
    cdef const uint8_t *pf = NULL
    cdef float *pd = <float *>cnp.PyArray_DATA(dx)
    if flip is not None:
        pf = <const uint8_t *>cnp.PyArray_DATA(flip)
    if B * H * W * C == 0:
        return
    with nogil:
        fc_aug_crop_backward(pg, B, H, W, C, OH, OW, py, px, pf, pd)


def aug_contrast(cnp.ndarray src, cnp.ndarray factor, float lo, float hi, cnp.ndarray dst):
    cdef int64_t B = src.shape[0], H = src.shape[1], W = src.shape[2], C = src.shape[3]
    cdef void *ps = cnp.PyArray_DATA(src)
    cdef const float *pf = <const float *>cnp.PyArray_DATA(factor)
    cdef float *pd = <float *>cnp.PyArray_DATA(dst)
    cdef bint u8 = _is_u8(src)
    if B * H * W * C == 0:
        return
    with nogil:
        if u8:
            fc_aug_contrast_u8(<const uint8_t *>ps, B, H, W, C, pf, lo, hi, pd)
        else:
            fc_aug_contrast_f32(<const float *>ps, B, H, W, C, pf, lo, hi, pd)


def aug_brightness(cnp.ndarray src, cnp.ndarray delta, float lo, float hi, cnp.ndarray dst):
    cdef int64_t B = src.shape[0]
    cdef int64_t HWC = src.size // B if B else 0
    cdef void *ps = cnp.PyArray_DATA(src)
    cdef const float *pdl = <const float *>cnp.PyArray_DATA(delta)
    cdef float *pd = <float *>cnp.PyArray_DATA(dst)
    cdef bint u8 = _is_u8(src)
    if B * HWC == 0:
        return
    with nogil:
        if u8:
            fc_aug_brightness_u8(<const uint8_t *>ps, B, HWC, pdl, lo, hi, pd)
        else:
            fc_aug_brightness_f32(<const float *>ps, B, HWC, pdl, lo, hi, pd)


def aug_resize_backward(cnp.ndarray dy, int64_t pad_y, int64_t pad_x, cnp.ndarray ys,
                        cnp.ndarray wy, cnp.ndarray xs, cnp.ndarray wx, cnp.ndarray tmp,
                        cnp.ndarray dx):
    cdef int64_t B = dx.shape[0], H = dx.shape[1], W = dx.shape[2], C = dx.shape[3]
    cdef int64_t OH = dy.shape[1], OW = dy.shape[2], Wp = tmp.shape[2]
    cdef int64_t ny = wy.shape[1], nx = wx.shape[1]
    cdef const float *pg = <const float *>cnp.PyArray_DATA(dy)
    cdef const int32_t *pys = <const int32_t *>cnp.PyArray_DATA(ys)
    cdef const int32_t *pxs = <const int32_t *>cnp.PyArray_DATA(xs)
    cdef const float *pwy = <const float *>cnp.PyArray_DATA(wy)
    cdef const float *pwx = <const float *>cnp.PyArray_DATA(wx)
    cdef float *pt = <float *>cnp.PyArray_DATA(tmp)
    cdef float *pd = <float *>cnp.PyArray_DATA(dx)
    if B * H * W * C == 0:
        return
    if OH * OW == 0:
        dx[...] = 0
        return
    with nogil:
        fc_aug_resize_backward(pg, B, H, W, C, OH, OW, Wp, pad_y, pad_x, pys, ny, pwy, pxs, nx,
                               pwx, pt, pd)


def aug_contrast_backward(cnp.ndarray x, cnp.ndarray dy, cnp.ndarray factor, float lo,
                          float hi, cnp.ndarray dx):
    cdef int64_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef const float *pg = <const float *>cnp.PyArray_DATA(dy)
    cdef const float *pf = <const float *>cnp.PyArray_DATA(factor)
    cdef float *pd = <float *>cnp.PyArray_DATA(dx)
    if B * H * W * C == 0:
        return
    with nogil:
        fc_aug_contrast_backward(px, pg, B, H, W, C, pf, lo, hi, pd)


def aug_brightness_backward(cnp.ndarray x, cnp.ndarray dy, cnp.ndarray delta, float lo,
                            float hi, cnp.ndarray dx):
    cdef int64_t B = x.shape[0]
    cdef int64_t HWC = x.size // B if B else 0
    cdef const float *px = <const float *>cnp.PyArray_DATA(x)
    cdef const float *pg = <const float *>cnp.PyArray_DATA(dy)
    cdef const float *pdl = <const float *>cnp.PyArray_DATA(delta)
    cdef float *pd = <float *>cnp.PyArray_DATA(dx)
    if B * HWC == 0:
        return
    with nogil:
        fc_aug_brightness_backward(px, pg, B, HWC, pdl, lo, hi, pd)
