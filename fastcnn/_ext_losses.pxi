# fastcnn._ext: Keras 3 losses (csrc/losses.c, contract in csrc/losses.h) and sigmoid.
# Thin wrappers: fastcnn.losses checks shapes, dtypes, labels and weights first.

cdef extern from "losses.h":
    int FC_LP_COUNT
    int fc_loss_rows(int kind, const float *pred, const float *target, const int64_t *labels,
                     int64_t rows, int64_t c, const double *params, const float *weights,
                     int64_t rows_per_weight, double grad_scale, float *dpred,
                     double *row_out, double *weighted_sum, int64_t *n_correct) nogil
    void fc_sigmoid_forward(const float *x, float *y, int64_t n) nogil
    void fc_sigmoid_backward(const float *dy, const float *y, float *dx, int64_t n) nogil


def loss_rows(int kind, const float[:, ::1] pred, const float[:, ::1] target,
              const int64_t[::1] labels, const double[::1] params, const float[::1] weights,
              int64_t rows_per_weight, double grad_scale, float[:, ::1] dpred,
              double[::1] row_out):
    """(weighted loss sum, n_correct) of pred (rows, c); target or labels may be None,
    weights / dpred / row_out too (see csrc/losses.h)."""
    cdef double total = 0.0
    cdef int64_t correct = 0
    cdef int rc = 0
    cdef const float *pp = _nn_c2(pred)
    cdef const float *pt = NULL
    cdef const int64_t *pl = NULL
    cdef const float *pw = NULL
    cdef float *pd = NULL
    cdef double *pr = NULL
    if params.shape[0] < FC_LP_COUNT:
        raise ValueError("loss_rows: params must have %d entries" % FC_LP_COUNT)
    cdef const double *pprm = &params[0]
    if target is not None:
        if target.shape[0] != pred.shape[0] or target.shape[1] != pred.shape[1]:
            raise ValueError("loss_rows: target shape differs from pred")
        pt = _nn_c2(target)
    if labels is not None:
        if labels.shape[0] != pred.shape[0]:
            raise ValueError("loss_rows: labels length differs from pred rows")
        pl = &labels[0] if labels.shape[0] > 0 else NULL
    if weights is not None and weights.shape[0] > 0:
        pw = &weights[0]
    if dpred is not None:
        if dpred.shape[0] != pred.shape[0] or dpred.shape[1] != pred.shape[1]:
            raise ValueError("loss_rows: dpred shape differs from pred")
        pd = _nn_w2(dpred)
    if row_out is not None:
        if row_out.shape[0] != pred.shape[0]:
            raise ValueError("loss_rows: row_out length differs from pred rows")
        pr = &row_out[0] if row_out.shape[0] > 0 else NULL
    if pp != NULL:
        with nogil:
            rc = fc_loss_rows(kind, pp, pt, pl, pred.shape[0], pred.shape[1], pprm, pw,
                              rows_per_weight, grad_scale, pd, pr, &total, &correct)
    if rc == -2:
        raise ValueError("loss_rows: unknown loss kind %d or a class id outside [0, %d)"
                         % (kind, pred.shape[1]))
    _check(rc, "loss_rows")
    return total, correct


def sigmoid_forward(const float[::1] x, float[::1] y):
    cdef const float *px = _nn_c1(x)
    cdef float *py = _nn_w1(y)
    with nogil:
        fc_sigmoid_forward(px, py, x.shape[0])


def sigmoid_backward(const float[::1] dy, const float[::1] y, float[::1] dx):
    cdef const float *pdy = _nn_c1(dy)
    cdef const float *py = _nn_c1(y)
    cdef float *pdx = _nn_w1(dx)
    with nogil:
        fc_sigmoid_backward(pdy, py, pdx, dy.shape[0])
