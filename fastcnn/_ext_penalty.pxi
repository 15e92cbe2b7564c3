# fastcnn._ext: regularizer penalties and weight constraints (csrc/penalty.c).
# fastcnn.ops.penalty checks dtypes, contiguity and shapes; these wrappers release the GIL.

cdef extern from "penalty.h":
    int fc_l1l2_penalty(const float *w, int64_t n, double l1, double l2, double scale,
                        const float *g_in, float *g_out, double *loss) nogil
    int fc_orthogonal_penalty(const float *w, int64_t rows, int64_t cols, int columns_mode,
                              double factor, double scale, const float *g_in, float *g_out,
                              double *loss) nogil
    void fc_norm_constraint(float *w, int64_t outer, int64_t red, int64_t inner, int kind,
                            double min_value, double max_value, double rate) nogil
    void fc_non_neg(float *w, int64_t n) nogil


cdef inline const float *_opt_ptr(object a):
    cdef const float[::1] v
    if a is None:
        return NULL
    v = a
    return &v[0] if v.shape[0] else NULL


def l1l2_penalty(const float[::1] w, double l1, double l2, double scale, g_in, g_out):
    """Penalty l1*sum|w| + l2*sum w^2; adds scale * its gradient into g_out (if given)."""
    cdef double loss = 0.0
    cdef int rc
    cdef const float *pg_in = _opt_ptr(g_in)
    cdef float[::1] go
    cdef float *pg_out = NULL
    if g_out is not None:
        go = g_out
        if go.shape[0]:
            pg_out = &go[0]
    cdef const float *pw = &w[0] if w.shape[0] else NULL
    with nogil:
        rc = fc_l1l2_penalty(pw, w.shape[0], l1, l2, scale, pg_in, pg_out, &loss)
    if rc != 0:
        raise MemoryError("l1l2_penalty: out of memory")
    return loss


def orthogonal_penalty(const float[::1] w, int64_t rows, int64_t cols, int columns_mode,
                       double factor, double scale, g_in, g_out):
    """Keras' orthogonal penalty of a (rows, cols) matrix; adds scale * its gradient."""
    cdef double loss = 0.0
    cdef int rc
    cdef const float *pg_in = _opt_ptr(g_in)
    cdef float[::1] go
    cdef float *pg_out = NULL
    if g_out is not None:
        go = g_out
        pg_out = &go[0]
    with nogil:
        rc = fc_orthogonal_penalty(&w[0], rows, cols, columns_mode, factor, scale, pg_in,
                                   pg_out, &loss)
    if rc != 0:
        raise MemoryError("orthogonal_penalty: out of memory")
    return loss


def norm_constraint(float[::1] w, int64_t outer, int64_t red, int64_t inner, int kind,
                    double min_value, double max_value, double rate):
    if w.shape[0] == 0:
        return
    with nogil:
        fc_norm_constraint(&w[0], outer, red, inner, kind, min_value, max_value, rate)


def non_neg(float[::1] w):
    if w.shape[0] == 0:
        return
    with nogil:
        fc_non_neg(&w[0], w.shape[0])
