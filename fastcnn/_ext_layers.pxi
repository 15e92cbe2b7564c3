# fastcnn._ext: layer / group normalisation (csrc/layernorm.c) and the copy, gather and
# mask kernels of Permute, RepeatVector, Embedding, SpatialDropout2D (csrc/tensor_ops.c).
# Thin wrappers over flat, validated, C-contiguous arrays (fastcnn.ops.layer_ops checks).
from libc.stdint cimport uint8_t, uint64_t

cdef extern from "layernorm.h":
    void fc_group_norm_forward(const float *x, int64_t n, int64_t s, int64_t g, int64_t cg,
                               const float *gamma, const float *beta, double epsilon,
                               int rms, float *y, float *mean_out, float *inv_out) nogil
    int fc_group_norm_backward(const float *dy, const float *x, int64_t n, int64_t s,
                               int64_t g, int64_t cg, const float *mean, const float *inv,
                               const float *gamma, int rms, float *dx, float *dgamma,
                               float *dbeta) nogil

cdef extern from "tensor_ops.h":
    void fc_permute(const float *x, const int64_t *in_shape, const int64_t *perm, int ndim,
                    float *y) nogil
    void fc_repeat_vector(const float *x, int64_t n, int64_t r, int64_t d, float *y) nogil
    void fc_repeat_vector_backward(const float *dy, int64_t n, int64_t r, int64_t d,
                                   float *dx) nogil
    int64_t fc_embedding_check(const float *idx, int64_t n, int64_t vocab) nogil
    void fc_embedding_forward(const float *idx, int64_t n, const float *table, int64_t dim,
                              float *out) nogil
    void fc_embedding_backward(const float *idx, int64_t n, const float *dy, int64_t vocab,
                               int64_t dim, float *dtable) nogil
    void fc_spatial_dropout_mask(uint8_t *mask, int64_t count, double rate,
                                 uint64_t seed) nogil
    void fc_channel_mask_apply(const float *x, const uint8_t *mask, int64_t n, int64_t s,
                               int64_t c, float scale, float *y) nogil


cdef inline const float *_lo_c(const float[::1] a) noexcept nogil:
    return &a[0] if a is not None and a.shape[0] > 0 else NULL

cdef inline float *_lo_w(float[::1] a) noexcept nogil:
    return &a[0] if a is not None and a.shape[0] > 0 else NULL


def group_norm_forward(const float[::1] x, int64_t n, int64_t s, int64_t g, int64_t cg,
                       const float[::1] gamma, const float[::1] beta, double epsilon,
                       bint rms, float[::1] y, float[::1] mean, float[::1] inv):
    """Layer/group norm of x viewed as (n, s, g, cg); gamma/beta may be None."""
    cdef const float *px = _lo_c(x)
    cdef const float *pg = _lo_c(gamma)
    cdef const float *pb = _lo_c(beta)
    cdef float *py = _lo_w(y)
    cdef float *pm = _lo_w(mean)
    cdef float *pi = _lo_w(inv)
    if px == NULL:
        return
    with nogil:
        fc_group_norm_forward(px, n, s, g, cg, pg, pb, epsilon, rms, py, pm, pi)


def group_norm_backward(const float[::1] dy, const float[::1] x, int64_t n, int64_t s,
                        int64_t g, int64_t cg, const float[::1] mean, const float[::1] inv,
                        const float[::1] gamma, bint rms, float[::1] dx, float[::1] dgamma,
                        float[::1] dbeta):
    """Gradients of group_norm_forward (dx, dgamma, dbeta may be None: skipped)."""
    cdef const float *pdy = _lo_c(dy)
    cdef const float *px = _lo_c(x)
    cdef const float *pm = _lo_c(mean)
    cdef const float *pi = _lo_c(inv)
    cdef const float *pg = _lo_c(gamma)
    cdef float *pdx = _lo_w(dx)
    cdef float *pdg = _lo_w(dgamma)
    cdef float *pdb = _lo_w(dbeta)
    cdef int rc
    with nogil:
        rc = fc_group_norm_backward(pdy, px, n, s, g, cg, pm, pi, pg, rms, pdx, pdg, pdb)
    if rc != 0:
        raise MemoryError("group_norm_backward: out of memory for scratch space")


def permute(const float[::1] x, shape, perm, float[::1] y):
    """y = x.reshape(shape).transpose(perm) (flat views)."""
    cdef int64_t c_shape[8]
    cdef int64_t c_perm[8]
    cdef int nd = len(shape), k
    for k in range(nd):
        c_shape[k] = shape[k]
        c_perm[k] = perm[k]
    cdef const float *px = _lo_c(x)
    cdef float *py = _lo_w(y)
    if px == NULL:
        return
    with nogil:
        fc_permute(px, c_shape, c_perm, nd, py)


def repeat_vector(const float[::1] x, int64_t n, int64_t r, int64_t d, float[::1] y):
    cdef const float *px = _lo_c(x)
    cdef float *py = _lo_w(y)
    if py == NULL:
        return
    with nogil:
        fc_repeat_vector(px, n, r, d, py)


def repeat_vector_backward(const float[::1] dy, int64_t n, int64_t r, int64_t d,
                           float[::1] dx):
    cdef const float *pdy = _lo_c(dy)
    cdef float *pdx = _lo_w(dx)
    if pdx == NULL:
        return
    with nogil:
        fc_repeat_vector_backward(pdy, n, r, d, pdx)


def embedding_check(const float[::1] idx, int64_t vocab):
    """-1 when every index is an integer in [0, vocab), else the first bad position."""
    cdef const float *p = _lo_c(idx)
    cdef int64_t pos
    if p == NULL:
        return -1
    with nogil:
        pos = fc_embedding_check(p, idx.shape[0], vocab)
    return pos


def embedding_forward(const float[::1] idx, const float[::1] table, int64_t dim,
                      float[::1] out):
    cdef const float *pi = _lo_c(idx)
    cdef const float *pt = _lo_c(table)
    cdef float *po = _lo_w(out)
    if pi == NULL or po == NULL:
        return
    with nogil:
        fc_embedding_forward(pi, idx.shape[0], pt, dim, po)


def embedding_backward(const float[::1] idx, const float[::1] dy, int64_t vocab,
                       int64_t dim, float[::1] dtable):
    cdef const float *pi = _lo_c(idx)
    cdef const float *pdy = _lo_c(dy)
    cdef float *pt = _lo_w(dtable)
    if pt == NULL:
        return
    with nogil:
        fc_embedding_backward(pi, idx.shape[0] if pi != NULL else 0, pdy, vocab, dim, pt)


def spatial_dropout_mask(uint8_t[::1] mask, double rate, uint64_t seed):
    cdef uint8_t *pm = &mask[0] if mask.shape[0] > 0 else NULL
    if pm == NULL:
        return
    with nogil:
        fc_spatial_dropout_mask(pm, mask.shape[0], rate, seed)


def channel_mask_apply(const float[::1] x, const uint8_t[::1] mask, int64_t n, int64_t s,
                       int64_t c, float scale, float[::1] y):
    cdef const float *px = _lo_c(x)
    cdef const uint8_t *pm = &mask[0] if mask.shape[0] > 0 else NULL
    cdef float *py = _lo_w(y)
    if px == NULL or pm == NULL:
        return
    with nogil:
        fc_channel_mask_apply(px, pm, n, s, c, scale, py)
