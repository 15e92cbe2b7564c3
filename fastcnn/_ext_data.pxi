from libc.stdint cimport uint8_t, int32_t

cdef extern from "batch.h":
    void fc_batch_gather_u8(const uint8_t *src, const int64_t *index, int64_t B, int64_t H,
                            int64_t W, int64_t C, float scale, float shift, const int32_t *oy,
                            const int32_t *ox, const uint8_t *flip, float *dst) nogil
    void fc_batch_gather_f32(const float *src, const int64_t *index, int64_t B, int64_t H,
                             int64_t W, int64_t C, float scale, float shift,
                             const int32_t *oy, const int32_t *ox, const uint8_t *flip,
                             float *dst) nogil
    void fc_u8_to_f32(const uint8_t *src, int64_t n, float scale, float shift,
                      float *dst) nogil
    int64_t fc_count_nonfinite(const float *x, int64_t n) nogil
    void fc_affine_f32(const float *src, int64_t n, float scale, float shift, float *dst) nogil


def batch_gather(src, const int64_t[::1] index, float scale, float shift,
                 const int32_t[::1] oy, const int32_t[::1] ox, const uint8_t[::1] flip,
                 float[:, :, :, ::1] dst):
    """dst = scale*src[index] + shift, optionally shifted/flipped (fastcnn.ops checks all)."""
    cdef const uint8_t[:, :, :, ::1] su8
    cdef const float[:, :, :, ::1] sf32
    cdef int64_t B = dst.shape[0], H = dst.shape[1], W = dst.shape[2], C = dst.shape[3]
    cdef const int32_t *poy = &oy[0] if oy is not None and oy.shape[0] > 0 else NULL
    cdef const int32_t *pox = &ox[0] if ox is not None and ox.shape[0] > 0 else NULL
    cdef const uint8_t *pflip = &flip[0] if flip is not None and flip.shape[0] > 0 else NULL
    if B == 0 or H == 0 or W == 0 or C == 0:
        return
    if src.dtype == "uint8":
        su8 = src
        with nogil:
            fc_batch_gather_u8(&su8[0, 0, 0, 0], &index[0], B, H, W, C, scale, shift,
                               poy, pox, pflip, &dst[0, 0, 0, 0])
    else:
        sf32 = src
        with nogil:
            fc_batch_gather_f32(&sf32[0, 0, 0, 0], &index[0], B, H, W, C, scale, shift,
                                poy, pox, pflip, &dst[0, 0, 0, 0])


def u8_to_f32(const uint8_t[::1] src, float scale, float shift, float[::1] dst):
    if src.shape[0] == 0:
        return
    with nogil:
        fc_u8_to_f32(&src[0], src.shape[0], scale, shift, &dst[0])


def count_nonfinite(const float[::1] x):
    cdef int64_t n
    if x.shape[0] == 0:
        return 0
    with nogil:
        n = fc_count_nonfinite(&x[0], x.shape[0])
    return n


def affine_f32(const float[::1] src, float scale, float shift, float[::1] dst):
    if src.shape[0] == 0:
        return
    with nogil:
        fc_affine_f32(&src[0], src.shape[0], scale, shift, &dst[0])
