# fastcnn._ext: nn kernels (activations, dense, losses, dropout, batch norm).
# Thin wrappers: inputs are validated, C-contiguous float32 (fastcnn.ops.nn checks);
# outputs are preallocated by the caller. Elementwise kernels take flat 1-D views.
from libc.stdint cimport uint8_t, uint64_t

from libc.math cimport INFINITY

cdef extern from "nn.h":
    void fc_relu_forward(const float *x, float *y, int64_t n) nogil
    void fc_relu_backward(const float *dy, const float *y, float *dx, int64_t n) nogil
    void fc_softmax_forward(const float *x, float *y, int64_t rows, int64_t cols) nogil
    void fc_dropout_forward(const float *x, float *y, uint8_t *mask, int64_t n,
                            double rate, uint64_t seed) nogil
    void fc_dropout_backward(const float *dy, const uint8_t *mask, float *dx, int64_t n,
                             double rate) nogil
    int fc_dense_forward(const float *x, const float *kernel, const float *bias,
                         int64_t n, int64_t inp, int64_t units, int relu, float *y) nogil
    int fc_dense_backward(const float *dy, const float *x, const float *kernel,
                          int64_t n, int64_t inp, int64_t units,
                          float *dx, float *dkernel, float *dbias) nogil
    int fc_softmax_cross_entropy_sparse(const float *logits, const int64_t *labels,
                                        int64_t n, int64_t c, float *dlogits,
                                        double *loss_sum, int64_t *n_correct) nogil
    int fc_softmax_cross_entropy_dense(const float *logits, const float *targets,
                                       int64_t n, int64_t c, float *dlogits,
                                       double *loss_sum, int64_t *n_correct) nogil
    int fc_mean_squared_error(const float *pred, const float *target, int64_t n,
                              float *dpred, double *loss_sum) nogil
    int fc_batch_norm_forward_train(const float *x, int64_t rows, int64_t channels,
                                    const float *gamma, const float *beta,
                                    double momentum, double epsilon,
                                    float *moving_mean, float *moving_var,
                                    int relu, float relu_max, float *y, float *mean_out,
                                    float *inv_std_out) nogil
    void fc_batch_norm_forward_infer(const float *x, int64_t rows, int64_t channels,
                                     const float *gamma, const float *beta,
                                     const float *moving_mean, const float *moving_var,
                                     double epsilon, int relu, float relu_max, float *y,
                                     float *mean_out, float *inv_std_out) nogil
    int fc_batch_norm_backward(const float *dy, const float *relu_y, float relu_max,
                               const float *relu_beta, const float *x,
                               int64_t rows, int64_t channels, const float *mean,
                               const float *inv_std, const float *gamma, int training,
                               float *dx, float *dgamma, float *dbeta) nogil
    int fc_batch_norm_moments(const float *x, int64_t rows, int64_t channels, double *mean,
                              double *m2) nogil
    void fc_batch_norm_forward_stats(const float *x, int64_t rows, int64_t channels,
                                     const float *gamma, const float *beta,
                                     const double *mean, const double *var, double momentum,
                                     double epsilon, float *moving_mean, float *moving_var,
                                     int relu, float relu_max, float *y, float *mean_out,
                                     float *inv_std_out) nogil
    int fc_batch_norm_backward_sums(const float *dy, const float *relu_y, float relu_max,
                                    const float *x,
                                    int64_t rows, int64_t channels, const float *mean,
                                    const float *inv_std, double *sum_dy, double *sum_dy_xhat,
                                    float *dgamma, float *dbeta) nogil
    int fc_batch_norm_backward_input(const float *dy, const float *relu_y, float relu_max,
                                     const float *x,
                                     int64_t rows, int64_t channels, const float *mean,
                                     const float *inv_std, const float *gamma,
                                     const double *sum_dy, const double *sum_dy_xhat,
                                     int64_t total_rows, float *dx) nogil


# Data pointers that are NULL for empty views (never index an empty view).
cdef inline const float *_nn_c1(const float[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL

cdef inline float *_nn_w1(float[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] > 0 else NULL

cdef inline const float *_nn_c2(const float[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL

cdef inline float *_nn_w2(float[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL


def relu_forward(const float[::1] x, float[::1] y):
    """y = max(x, 0) over flat arrays (y may be x)."""
    cdef const float *px = _nn_c1(x)
    cdef float *py = _nn_w1(y)
    with nogil:
        fc_relu_forward(px, py, x.shape[0])


def relu_backward(const float[::1] dy, const float[::1] y, float[::1] dx):
    """dx = dy where y > 0 else 0 over flat arrays."""
    cdef const float *pdy = _nn_c1(dy)
    cdef const float *py = _nn_c1(y)
    cdef float *pdx = _nn_w1(dx)
    with nogil:
        fc_relu_backward(pdy, py, pdx, dy.shape[0])


def softmax_forward(const float[:, ::1] x, float[:, ::1] y):
    """Row-wise softmax (y may be x)."""
    cdef const float *px = _nn_c2(x)
    cdef float *py = _nn_w2(y)
    if px == NULL:
        return
    with nogil:
        fc_softmax_forward(px, py, x.shape[0], x.shape[1])


def dropout_forward(const float[::1] x, float[::1] y, uint8_t[::1] mask, double rate,
                    uint64_t seed):
    """Inverted dropout over flat arrays; mask receives 1 (kept) / 0 (dropped)."""
    cdef const float *px = _nn_c1(x)
    cdef float *py = _nn_w1(y)
    cdef uint8_t *pm = &mask[0] if mask.shape[0] > 0 else NULL
    with nogil:
        fc_dropout_forward(px, py, pm, x.shape[0], rate, seed)


def dropout_backward(const float[::1] dy, const uint8_t[::1] mask, float[::1] dx,
                     double rate):
    cdef const float *pdy = _nn_c1(dy)
    cdef const uint8_t *pm = &mask[0] if mask.shape[0] > 0 else NULL
    cdef float *pdx = _nn_w1(dx)
    with nogil:
        fc_dropout_backward(pdy, pm, pdx, dy.shape[0], rate)


def dense_forward(const float[:, ::1] x, const float[:, ::1] kernel, const float[::1] bias,
                  bint relu, float[:, ::1] y):
    """y = x @ kernel (+ bias) (relu); bias may be None."""
    cdef const float *pb = NULL
    cdef int rc
    if bias is not None:
        pb = _nn_c1(bias)
    cdef const float *px = _nn_c2(x)
    cdef const float *pk = _nn_c2(kernel)
    cdef float *py = _nn_w2(y)
    with nogil:
        rc = fc_dense_forward(px, pk, pb, x.shape[0], x.shape[1], kernel.shape[1], relu, py)
    _check(rc, "dense")


def dense_backward(const float[:, ::1] dy, const float[:, ::1] x,
                   const float[:, ::1] kernel, float[:, ::1] dx, float[:, ::1] dkernel,
                   float[::1] dbias):
    """dkernel = x^T dy; dx = dy kernel^T (if dx is not None); dbias = sum(dy, 0) (if given)."""
    cdef float *pdx = NULL
    cdef float *pdb = NULL
    cdef int rc
    if dx is not None:
        pdx = _nn_w2(dx)
    if dbias is not None:
        pdb = _nn_w1(dbias)
    cdef const float *pdy = _nn_c2(dy)
    cdef const float *px = _nn_c2(x)
    cdef const float *pk = _nn_c2(kernel)
    cdef float *pdk = _nn_w2(dkernel)
    with nogil:
        rc = fc_dense_backward(pdy, px, pk, x.shape[0], x.shape[1], kernel.shape[1],
                               pdx, pdk, pdb)
    _check(rc, "dense_backward")


def softmax_cross_entropy_sparse(const float[:, ::1] logits, const int64_t[::1] labels,
                                 float[:, ::1] dlogits):
    """Returns (sum of row losses, n_correct); labels must already be in [0, C)."""
    cdef double loss = 0.0
    cdef int64_t correct = 0
    cdef int rc = 0
    cdef const float *pl = _nn_c2(logits)
    cdef const int64_t *plab = &labels[0] if labels.shape[0] > 0 else NULL
    cdef float *pd = _nn_w2(dlogits)
    if pl != NULL:
        with nogil:
            rc = fc_softmax_cross_entropy_sparse(pl, plab, logits.shape[0], logits.shape[1],
                                                 pd, &loss, &correct)
    _check(rc, "softmax_cross_entropy")
    return loss, correct


def softmax_cross_entropy_dense(const float[:, ::1] logits, const float[:, ::1] targets,
                                float[:, ::1] dlogits):
    """Returns (sum of row losses, n_correct) for target distributions."""
    cdef double loss = 0.0
    cdef int64_t correct = 0
    cdef int rc = 0
    cdef const float *pl = _nn_c2(logits)
    cdef const float *pt = _nn_c2(targets)
    cdef float *pd = _nn_w2(dlogits)
    if pl != NULL:
        with nogil:
            rc = fc_softmax_cross_entropy_dense(pl, pt, logits.shape[0], logits.shape[1],
                                                pd, &loss, &correct)
    _check(rc, "softmax_cross_entropy")
    return loss, correct


def mean_squared_error(const float[::1] pred, const float[::1] target, float[::1] dpred):
    """Returns the SUM of squared errors; dpred (if not None) = 2 (pred - target) / n."""
    cdef double loss = 0.0
    cdef int rc
    cdef float *pdp = NULL
    if dpred is not None:
        pdp = _nn_w1(dpred)
    cdef const float *pp = _nn_c1(pred)
    cdef const float *pt = _nn_c1(target)
    with nogil:
        rc = fc_mean_squared_error(pp, pt, pred.shape[0], pdp, &loss)
    _check(rc, "mean_squared_error")
    return loss


def batch_norm_forward_train(const float[:, ::1] x, const float[::1] gamma,
                             const float[::1] beta, double momentum, double epsilon,
                             float[::1] moving_mean, float[::1] moving_var,
                             float[:, ::1] y, float[::1] mean_out, float[::1] inv_std_out,
                             bint relu=False, float relu_max=INFINITY):
    """x viewed as (rows, channels); rows >= 1. Updates the moving stats in place.
    relu: write relu(y) (fused ReLU), clipped at relu_max when it is finite."""
    cdef int rc
    cdef const float *px = _nn_c2(x)
    cdef const float *pg = _nn_c1(gamma)
    cdef const float *pb = _nn_c1(beta)
    cdef float *pmm = _nn_w1(moving_mean)
    cdef float *pmv = _nn_w1(moving_var)
    cdef float *py = _nn_w2(y)
    cdef float *pmo = _nn_w1(mean_out)
    cdef float *pio = _nn_w1(inv_std_out)
    with nogil:
        rc = fc_batch_norm_forward_train(px, x.shape[0], x.shape[1], pg, pb, momentum,
                                         epsilon, pmm, pmv, relu, relu_max, py, pmo, pio)
    _check(rc, "batch_norm_forward")


def batch_norm_forward_infer(const float[:, ::1] x, const float[::1] gamma,
                             const float[::1] beta, const float[::1] moving_mean,
                             const float[::1] moving_var, double epsilon, float[:, ::1] y,
                             float[::1] mean_out, float[::1] inv_std_out, bint relu=False,
                             float relu_max=INFINITY):
    """Normalise with the moving statistics; relu: write relu(y) (fused ReLU), clipped at
    relu_max when it is finite."""
    cdef const float *px = _nn_c2(x)
    cdef const float *pg = _nn_c1(gamma)
    cdef const float *pb = _nn_c1(beta)
    cdef const float *pmm = _nn_c1(moving_mean)
    cdef const float *pmv = _nn_c1(moving_var)
    cdef float *py = _nn_w2(y)
    cdef float *pmo = _nn_w1(mean_out)
    cdef float *pio = _nn_w1(inv_std_out)
    cdef int64_t rows = x.shape[0] if px != NULL else 0
    with nogil:
        fc_batch_norm_forward_infer(px, rows, gamma.shape[0], pg, pb, pmm, pmv, epsilon,
                                    relu, relu_max, py, pmo, pio)


def batch_norm_backward(const float[:, ::1] dy, const float[:, ::1] x,
                        const float[::1] mean, const float[::1] inv_std,
                        const float[::1] gamma, bint training, float[:, ::1] dx,
                        float[::1] dgamma, float[::1] dbeta,
                        const float[:, ::1] relu_y=None, float relu_max=INFINITY,
                        const float[::1] relu_beta=None):
    """relu_y (None or the fused forward's output, x's shape): dy is the gradient of
    relu(y) and is masked by relu_y > 0 in the kernel (bitwise relu_backward first), and
    by relu_y < relu_max when relu_max is finite. relu_beta (with relu_y None): the
    forward's beta; the same mask from x_hat * gamma + beta, recomputed from x."""
    cdef int rc
    cdef const float *pry = NULL
    cdef const float *prb = NULL
    if relu_y is not None:
        pry = _nn_c2(relu_y)
    elif relu_beta is not None:
        prb = _nn_c1(relu_beta)
    cdef const float *pdy = _nn_c2(dy)
    cdef const float *px = _nn_c2(x)
    cdef const float *pm = _nn_c1(mean)
    cdef const float *pi = _nn_c1(inv_std)
    cdef const float *pg = _nn_c1(gamma)
    cdef float *pdx = _nn_w2(dx)
    cdef float *pdg = _nn_w1(dgamma)
    cdef float *pdb = _nn_w1(dbeta)
    cdef int64_t rows = x.shape[0] if px != NULL else 0
    with nogil:
        rc = fc_batch_norm_backward(pdy, pry, relu_max, prb, px, rows, gamma.shape[0], pm, pi, pg, training,
                                    pdx, pdg, pdb)
    _check(rc, "batch_norm_backward")


# ---- synchronized batch norm in parts (ops.batch_norm_* _moments/_stats/_sums/_input) ----
def batch_norm_moments(const float[:, ::1] x, double[::1] mean, double[::1] m2):
    """Per-channel mean and M2 of x (rows, channels), rows >= 1."""
    cdef int rc
    cdef const float *px = _nn_c2(x)
    cdef double *pm = &mean[0] if mean.shape[0] > 0 else NULL
    cdef double *pq = &m2[0] if m2.shape[0] > 0 else NULL
    with nogil:
        rc = fc_batch_norm_moments(px, x.shape[0], x.shape[1], pm, pq)
    _check(rc, "batch_norm_moments")


def batch_norm_forward_stats(const float[:, ::1] x, const float[::1] gamma,
                             const float[::1] beta, const double[::1] mean,
                             const double[::1] var, double momentum, double epsilon,
                             float[::1] moving_mean, float[::1] moving_var, float[:, ::1] y,
                             float[::1] mean_out, float[::1] inv_std_out, bint relu=False,
                             float relu_max=INFINITY):
    """The training forward with the given batch mean / biased variance."""
    cdef const float *px = _nn_c2(x)
    cdef const float *pg = _nn_c1(gamma)
    cdef const float *pb = _nn_c1(beta)
    cdef const double *pm = &mean[0] if mean.shape[0] > 0 else NULL
    cdef const double *pv = &var[0] if var.shape[0] > 0 else NULL
    cdef float *pmm = _nn_w1(moving_mean)
    cdef float *pmv = _nn_w1(moving_var)
    cdef float *py = _nn_w2(y)
    cdef float *pmo = _nn_w1(mean_out)
    cdef float *pio = _nn_w1(inv_std_out)
    cdef int64_t rows = x.shape[0] if px != NULL else 0
    with nogil:
        fc_batch_norm_forward_stats(px, rows, gamma.shape[0], pg, pb, pm, pv, momentum,
                                    epsilon, pmm, pmv, relu, relu_max, py, pmo, pio)


def batch_norm_backward_sums(const float[:, ::1] dy, const float[:, ::1] x,
                             const float[::1] mean, const float[::1] inv_std,
                             double[::1] sum_dy, double[::1] sum_dy_xhat, float[::1] dgamma,
                             float[::1] dbeta, const float[:, ::1] relu_y=None,
                             float relu_max=INFINITY):
    """Per-channel sum dy and sum dy * x_hat (dy masked by relu_y when given)."""
    cdef int rc
    cdef const float *pry = NULL
    if relu_y is not None:
        pry = _nn_c2(relu_y)
    cdef const float *pdy = _nn_c2(dy)
    cdef const float *px = _nn_c2(x)
    cdef const float *pm = _nn_c1(mean)
    cdef const float *pi = _nn_c1(inv_std)
    cdef double *ps = &sum_dy[0] if sum_dy.shape[0] > 0 else NULL
    cdef double *psx = &sum_dy_xhat[0] if sum_dy_xhat.shape[0] > 0 else NULL
    cdef float *pdg = _nn_w1(dgamma)
    cdef float *pdb = _nn_w1(dbeta)
    cdef int64_t rows = x.shape[0] if px != NULL else 0
    with nogil:
        rc = fc_batch_norm_backward_sums(pdy, pry, relu_max, px, rows, mean.shape[0], pm, pi, ps, psx,
                                         pdg, pdb)
    _check(rc, "batch_norm_backward_sums")


def batch_norm_backward_input(const float[:, ::1] dy, const float[:, ::1] x,
                              const float[::1] mean, const float[::1] inv_std,
                              const float[::1] gamma, const double[::1] sum_dy,
                              const double[::1] sum_dy_xhat, int64_t total_rows,
                              float[:, ::1] dx, const float[:, ::1] relu_y=None,
                              float relu_max=INFINITY):
    """dx from the sums over all replicas and their total row count."""
    cdef int rc
    cdef const float *pry = NULL
    if relu_y is not None:
        pry = _nn_c2(relu_y)
    cdef const float *pdy = _nn_c2(dy)
    cdef const float *px = _nn_c2(x)
    cdef const float *pm = _nn_c1(mean)
    cdef const float *pi = _nn_c1(inv_std)
    cdef const float *pg = _nn_c1(gamma)
    cdef const double *ps = &sum_dy[0] if sum_dy.shape[0] > 0 else NULL
    cdef const double *psx = &sum_dy_xhat[0] if sum_dy_xhat.shape[0] > 0 else NULL
    cdef float *pdx = _nn_w2(dx)
    cdef int64_t rows = x.shape[0] if px != NULL else 0
    with nogil:
        rc = fc_batch_norm_backward_input(pdy, pry, relu_max, px, rows, gamma.shape[0], pm, pi, pg, ps,
                                          psx, total_rows, pdx)
    _check(rc, "batch_norm_backward_input")
