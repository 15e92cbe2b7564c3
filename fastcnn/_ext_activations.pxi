# fastcnn._ext: the activation family, softmax / log_softmax along an axis, PReLU
# (csrc/activations.c, contract in csrc/nn.h). Inputs are validated by
# fastcnn.ops.activation; elementwise kernels take flat 1-D views.

cdef extern from "nn.h":
    int fc_activation_kind_valid(int kind) nogil
    void fc_activation_forward(int kind, const float *params, const float *x, float *y,
                               int64_t n) nogil
    int fc_activation_backward_uses_output(int kind, const float *params) nogil
    void fc_activation_backward(int kind, const float *params, const float *dy,
                                const float *src, float *dx, int64_t n) nogil
    void fc_softmax_axis_forward(int log_softmax, const float *x, float *y, int64_t outer,
                                 int64_t length, int64_t inner) nogil
    void fc_softmax_axis_backward(int log_softmax, const float *dy, const float *y,
                                  float *dx, int64_t outer, int64_t length,
                                  int64_t inner) nogil
    void fc_prelu_forward(const float *x, const float *alpha, float *y, int64_t rows,
                          int64_t d) nogil
    void fc_prelu_backward(const float *dy, const float *x, const float *alpha, float *dx,
                           float *dalpha, int64_t rows, int64_t d) nogil


cdef inline void _act_params(tuple params, float *p):
    p[0] = params[0]
    p[1] = params[1]
    p[2] = params[2]


def activation_backward_uses_output(int kind, tuple params):
    """True when the backward of ``kind`` reads the forward output (else the input)."""
    cdef float p[3]
    _act_params(params, p)
    return bool(fc_activation_backward_uses_output(kind, p))


def activation_forward(int kind, tuple params, const float[::1] x, float[::1] y):
    """y = f(x) over flat arrays (y may be x)."""
    cdef float p[3]
    _act_params(params, p)
    if not fc_activation_kind_valid(kind):
        raise ValueError("activation_forward: unknown kind %d" % kind)
    cdef const float *px = _nn_c1(x)
    cdef float *py = _nn_w1(y)
    if px == NULL:
        return
    with nogil:
        fc_activation_forward(kind, p, px, py, x.shape[0])


def activation_backward(int kind, tuple params, const float[::1] dy, const float[::1] src,
                        float[::1] dx):
    """dx = dy * f'(.) over flat arrays; src is the forward output or input (see above)."""
    cdef float p[3]
    _act_params(params, p)
    if not fc_activation_kind_valid(kind):
        raise ValueError("activation_backward: unknown kind %d" % kind)
    cdef const float *pdy = _nn_c1(dy)
    cdef const float *ps = _nn_c1(src)
    cdef float *pdx = _nn_w1(dx)
    if pdy == NULL:
        return
    with nogil:
        fc_activation_backward(kind, p, pdy, ps, pdx, dy.shape[0])


def softmax_axis_forward(bint log_softmax, const float[::1] x, float[::1] y, int64_t outer,
                         int64_t length, int64_t inner):
    """(log_)softmax of flat x viewed (outer, length, inner) along length (y may be x)."""
    cdef const float *px = _nn_c1(x)
    cdef float *py = _nn_w1(y)
    if px == NULL:
        return
    with nogil:
        fc_softmax_axis_forward(log_softmax, px, py, outer, length, inner)


def softmax_axis_backward(bint log_softmax, const float[::1] dy, const float[::1] y,
                          float[::1] dx, int64_t outer, int64_t length, int64_t inner):
    """Gradient of softmax_axis_forward from its output y (dx may be dy)."""
    cdef const float *pdy = _nn_c1(dy)
    cdef const float *py = _nn_c1(y)
    cdef float *pdx = _nn_w1(dx)
    if pdy == NULL:
        return
    with nogil:
        fc_softmax_axis_backward(log_softmax, pdy, py, pdx, outer, length, inner)


def prelu_forward(const float[:, ::1] x, const float[::1] alpha, float[:, ::1] y):
    """y = x > 0 ? x : alpha * x for x (rows, d), alpha (d,)."""
    cdef const float *px = _nn_c2(x)
    cdef float *py = _nn_w2(y)
    if px == NULL:
        return
    with nogil:
        fc_prelu_forward(px, &alpha[0], py, x.shape[0], x.shape[1])


def prelu_backward(const float[:, ::1] dy, const float[:, ::1] x, const float[::1] alpha,
                   dx, float[::1] dalpha):
    """dx (or None) and dalpha (d,) of prelu_forward; dalpha sums over the rows."""
    cdef float[:, ::1] dxv
    cdef float *pdx = NULL
    cdef const float *pdy = _nn_c2(dy)
    cdef const float *px = _nn_c2(x)
    if dx is not None:
        dxv = dx
        pdx = _nn_w2(dxv)
    if pdy == NULL:
        dalpha[:] = 0
        return
    with nogil:
        fc_prelu_backward(pdy, px, &alpha[0], pdx, &dalpha[0], dy.shape[0], dy.shape[1])
