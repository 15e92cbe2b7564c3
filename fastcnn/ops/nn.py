"""Neural-network kernels: activations, dense layer, losses, dropout, batch norm.

Every function validates its arguments once, converts float64 / non-contiguous input
to C-contiguous float32, allocates (or checks a caller-provided) output, and runs the C
kernel (csrc/activations.c, nn.c, losses.c, normalization.c) with the GIL released.
Results are bitwise identical for any thread count.

Elementwise functions may write in place (``out`` is exactly the input array); any
other overlap between an output and an input raises ValueError.
"""
import collections
import numbers
import operator

import numpy as np

from .. import _ext
from ._validation import as_float32, check_no_overlap, check_output

__all__ = [
    "relu", "relu_backward", "dense", "dense_backward", "softmax", "sigmoid",
    "sigmoid_backward",
    "softmax_cross_entropy", "mean_squared_error", "dropout", "dropout_backward",
    "batch_norm_forward", "batch_norm_backward", "BatchNormCache",
]

_UINT64_MASK = (1 << 64) - 1


# ---------------------------------------------------------------- helpers

def _as_bias(bias, units, name):
    b = as_float32(bias, name)
    if b.shape != (units,):
        raise ValueError("%s: expected shape (%d,), got %s" % (name, units, b.shape))
    return b


# ---------------------------------------------------------------- activations

def relu(x, out=None):
    """``max(x, 0)`` for an array of any shape (``out`` may be ``x``: in place).

    NaN stays NaN (so a diverging run stays visible).

    Example:

        >>> fastcnn.ops.relu(np.array([-1.0, 0.5, 2.0], np.float32))
        array([0. , 0.5, 2. ], dtype=float32)
    """
    x = as_float32(x, "relu: x")
    out = check_output(out, x.shape, "relu: out")
    check_no_overlap("relu", out, "out", [(x, "x")], in_place_ok=("x",))
    _ext.relu_forward(x.reshape(-1), out.reshape(-1))
    return out


def relu_backward(dy, y, out=None):
    """Gradient of relu: ``dx = dy`` where ``y > 0`` else 0 (``y`` is relu's OUTPUT).

    ``out`` may be ``dy`` or ``y`` (in place)."""
    dy = as_float32(dy, "relu_backward: dy")
    y = as_float32(y, "relu_backward: y")
    if dy.shape != y.shape:
        raise ValueError("relu_backward: dy and y must have the same shape, got %s and %s"
                         % (dy.shape, y.shape))
    out = check_output(out, dy.shape, "relu_backward: out")
    check_no_overlap("relu_backward", out, "out", [(dy, "dy"), (y, "y")],
                     in_place_ok=("dy", "y"))
    _ext.relu_backward(dy.reshape(-1), y.reshape(-1), out.reshape(-1))
    return out


def softmax(x, out=None):
    """Softmax over the last axis (max-subtracted, so no overflow); ``out`` may be ``x``.

    Example:

        >>> p = fastcnn.ops.softmax(np.array([[0.0, 0.0], [1000.0, 0.0]], np.float32))
        >>> p
        array([[0.5, 0.5],
               [1. , 0. ]], dtype=float32)
    """
    x = as_float32(x, "softmax: x")
    if x.ndim < 1:
        raise ValueError("softmax: x must have at least one axis, got a scalar")
    out = check_output(out, x.shape, "softmax: out")
    check_no_overlap("softmax", out, "out", [(x, "x")], in_place_ok=("x",))
    if x.size:
        c = x.shape[-1]
        _ext.softmax_forward(x.reshape(-1, c), out.reshape(-1, c))
    return out


def sigmoid(x, out=None):
    """``1 / (1 + exp(-x))`` elementwise, stable for either sign (``out`` may be ``x``).

    Args:
        x: an array of any shape; out: an optional float32 output of x's shape.

    Returns:
        ``out`` (float32).
    """
    x = as_float32(x, "sigmoid: x")
    out = check_output(out, x.shape, "sigmoid: out")
    check_no_overlap("sigmoid", out, "out", [(x, "x")], in_place_ok=("x",))
    _ext.sigmoid_forward(x.reshape(-1), out.reshape(-1))
    return out


def sigmoid_backward(dy, y, out=None):
    """Gradient of sigmoid: ``dx = dy * y * (1 - y)`` (``y`` is sigmoid's OUTPUT).

    Args:
        dy: the output gradient; y: sigmoid's output (same shape); out: optional output
            (may be ``dy`` or ``y``).

    Returns:
        ``out`` (float32).

    Raises:
        ValueError: when dy and y differ in shape.
    """
    dy = as_float32(dy, "sigmoid_backward: dy")
    y = as_float32(y, "sigmoid_backward: y")
    if dy.shape != y.shape:
        raise ValueError("sigmoid_backward: dy and y must have the same shape, got %s and %s"
                         % (dy.shape, y.shape))
    out = check_output(out, dy.shape, "sigmoid_backward: out")
    check_no_overlap("sigmoid_backward", out, "out", [(dy, "dy"), (y, "y")],
                     in_place_ok=("dy", "y"))
    _ext.sigmoid_backward(dy.reshape(-1), y.reshape(-1), out.reshape(-1))
    return out


# ---------------------------------------------------------------- dense

_ACTIVATIONS = {None: False, "linear": False, "relu": True}


def dense(x, kernel, bias=None, activation=None, out=None):
    """``activation(x @ kernel + bias)``: x (N, in), kernel (in, units), bias (units,).

    The matrix product runs on fastcnn's GEMM; bias and ReLU are fused into one pass
    over the output. ``activation`` is None / 'linear' / 'relu'. Returns (N, units)."""
    x = as_float32(x, "dense: x")
    if x.ndim != 2:
        raise ValueError("dense: x: expected a 2-D array (N, in) (flatten first), got shape %s"
                         % (x.shape,))
    kernel = as_float32(kernel, "dense: kernel")
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[1]:
        raise ValueError("dense: kernel: expected shape (%d, units) for x of shape %s, got %s"
                         % (x.shape[1], x.shape, kernel.shape))
    units = kernel.shape[1]
    if isinstance(activation, str):
        activation = activation.lower()
    if activation not in _ACTIVATIONS:
        raise ValueError("dense: activation: expected None, 'linear' or 'relu', got %r"
                         % (activation,))
    if bias is not None:
        bias = _as_bias(bias, units, "dense: bias")
    out = check_output(out, (x.shape[0], units), "dense: out")
    check_no_overlap("dense", out, "out", [(x, "x"), (kernel, "kernel"), (bias, "bias")])
    _ext.dense_forward(x, kernel, bias, _ACTIVATIONS[activation], out)
    return out


def dense_backward(dy, x, kernel, need_input_grad=True, use_bias=True, dx=None,
                   dkernel=None, dbias=None):
    """Gradients of ``y = x @ kernel + bias`` given ``dy`` (N, units) w.r.t. the
    PRE-activation output (apply relu_backward first).

    Returns ``(dx, dkernel, dbias)``: dx = dy @ kernel.T (None unless need_input_grad),
    dkernel = x.T @ dy, dbias = dy summed over the batch (None unless use_bias)."""
    dy = as_float32(dy, "dense_backward: dy")
    x = as_float32(x, "dense_backward: x")
    kernel = as_float32(kernel, "dense_backward: kernel")
    if x.ndim != 2:
        raise ValueError("dense_backward: x: expected a 2-D array (N, in), got shape %s"
                         % (x.shape,))
    if kernel.ndim != 2 or kernel.shape[0] != x.shape[1]:
        raise ValueError("dense_backward: kernel: expected shape (%d, units) for x of shape "
                         "%s, got %s" % (x.shape[1], x.shape, kernel.shape))
    n, units = x.shape[0], kernel.shape[1]
    if dy.shape != (n, units):
        raise ValueError("dense_backward: dy: expected shape (%d, %d), got %s"
                         % (n, units, dy.shape))
    inputs = [(dy, "dy"), (x, "x"), (kernel, "kernel")]
    dkernel = check_output(dkernel, kernel.shape, "dense_backward: dkernel")
    check_no_overlap("dense_backward", dkernel, "dkernel", inputs)
    outs = [(dkernel, "dkernel")]
    if need_input_grad:
        dx = check_output(dx, x.shape, "dense_backward: dx")
        check_no_overlap("dense_backward", dx, "dx", inputs + outs)
        outs.append((dx, "dx"))
    else:
        dx = None
    if use_bias:
        dbias = check_output(dbias, (units,), "dense_backward: dbias")
        check_no_overlap("dense_backward", dbias, "dbias", inputs + outs)
    else:
        dbias = None
    _ext.dense_backward(dy, x, kernel, dx, dkernel, dbias)
    return dx, dkernel, dbias


# ---------------------------------------------------------------- losses

def softmax_cross_entropy(logits, labels, dlogits=None):
    """Mean softmax cross-entropy of ``logits`` (N, C), its gradient and the hit count.

    ``labels`` is either integer class ids of shape (N,) or (N, 1) (any int/uint dtype,
    each in [0, C)), or float targets of shape (N, C) (one-hot or probabilities).
    Returns ``(mean_loss, dlogits, n_correct)``:

    * mean_loss (float) = mean over rows of ``-sum_j t_j log softmax(logits)_j``,
      computed stably (max-subtracted log-sum-exp, double accumulation, rows summed
      in order);
    * dlogits = gradient of mean_loss w.r.t. logits = ``(softmax * sum_j t_j - t) / N``,
      i.e. ``(softmax - onehot) / N`` for class ids / one-hot rows; ``dlogits`` may be
      ``logits`` (in place);
    * n_correct (int) = rows whose first argmax of the logits equals the label (the
      first argmax of the target row for float targets).
    """
    logits = as_float32(logits, "softmax_cross_entropy: logits")
    if logits.ndim != 2:
        raise ValueError("softmax_cross_entropy: logits: expected a 2-D array (N, C), "
                         "got shape %s" % (logits.shape,))
    n, c = logits.shape
    if n == 0 or c == 0:
        raise ValueError("softmax_cross_entropy: logits: need at least one row and one "
                         "class, got shape %s" % (logits.shape,))
    lab = labels if isinstance(labels, np.ndarray) else np.asarray(labels)
    kind = lab.dtype.kind
    if kind in "iu":
        if lab.shape not in ((n,), (n, 1)):
            raise ValueError("softmax_cross_entropy: labels: integer class ids must have "
                             "shape (%d,) or (%d, 1), got %s" % (n, n, lab.shape))
        flat = lab.reshape(-1)
        lo, hi = flat.min(), flat.max()
        if lo < 0 or hi >= c:
            bad = np.flatnonzero((flat < 0) | (flat >= c))[0]
            raise ValueError("softmax_cross_entropy: labels: class ids must be in [0, %d) "
                             "for logits with %d classes, got %d (row %d)"
                             % (c, c, int(flat[bad]), bad))
        if flat.dtype != np.int64 or not flat.flags.c_contiguous:
            flat = np.ascontiguousarray(flat, dtype=np.int64)
        targets = None
    elif kind == "f":
        if lab.shape != (n, c):
            raise ValueError("softmax_cross_entropy: labels: float labels must be one-hot / "
                             "probability rows of shape (%d, %d), got %s (pass integer "
                             "class ids with an integer dtype)" % (n, c, lab.shape))
        targets = as_float32(lab, "softmax_cross_entropy: labels")
    else:
        raise ValueError("softmax_cross_entropy: labels: expected integer class ids or float "
                         "one-hot rows, got dtype %s" % (lab.dtype,))
    dlogits = check_output(dlogits, (n, c), "softmax_cross_entropy: dlogits")
    check_no_overlap("softmax_cross_entropy", dlogits, "dlogits",
                     [(logits, "logits"), (targets, "labels")], in_place_ok=("logits",))
    if targets is None:
        loss_sum, correct = _ext.softmax_cross_entropy_sparse(logits, flat, dlogits)
    else:
        loss_sum, correct = _ext.softmax_cross_entropy_dense(logits, targets, dlogits)
    return float(loss_sum) / n, dlogits, int(correct)


def mean_squared_error(y_pred, y_true, dy_pred=None):
    """Keras' mean squared error: the mean of ``(y_pred - y_true)**2`` over ALL elements.

    Returns ``(mean_loss, dy_pred)`` with ``dy_pred = 2 * (y_pred - y_true) / size``.
    Shapes must match, except that (N,) and (N, 1) are accepted together (as Keras).
    ``dy_pred`` may be ``y_pred`` (in place)."""
    pred = as_float32(y_pred, "mean_squared_error: y_pred")
    true = as_float32(y_true, "mean_squared_error: y_true")
    if pred.shape != true.shape:
        if pred.shape + (1,) == true.shape or true.shape + (1,) == pred.shape:
            true = true.reshape(pred.shape)
        else:
            raise ValueError("mean_squared_error: y_true: expected shape %s like y_pred, "
                             "got %s" % (pred.shape, true.shape))
    if pred.size == 0:
        raise ValueError("mean_squared_error: y_pred is empty (shape %s); the mean of no "
                         "elements is undefined" % (pred.shape,))
    dy_pred = check_output(dy_pred, pred.shape, "mean_squared_error: dy_pred")
    check_no_overlap("mean_squared_error", dy_pred, "dy_pred",
                     [(pred, "y_pred"), (true, "y_true")], in_place_ok=("y_pred", "y_true"))
    loss_sum = _ext.mean_squared_error(pred.reshape(-1), true.reshape(-1), dy_pred.reshape(-1))
    return float(loss_sum) / pred.size, dy_pred


# ---------------------------------------------------------------- dropout

def _check_rate(rate, func):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise ValueError("%s: rate: expected a number in [0, 1), got %r" % (func, rate))
    rate = float(rate)
    if not 0.0 <= rate < 1.0:  # also rejects NaN
        raise ValueError("%s: rate: expected a number in [0, 1), got %r" % (func, rate))
    return rate


def dropout(x, rate, seed, out=None, mask=None):
    """Inverted dropout: ``y = x * mask / (1 - rate)``; returns ``(y, mask)``.

    ``mask`` is a **uint8** array of x's shape, 1 = kept, 0 = dropped; each element is
    dropped with probability ``rate``. The mask is a pure function of ``(seed, flat
    element index)`` (a counter-based splitmix64 hash), so the same seed gives the same
    mask at any thread count. ``seed`` is any int (taken modulo 2**64); ``rate`` must
    be in [0, 1) (rate 0 returns an exact copy). ``out`` may be ``x`` (in place)."""
    rate = _check_rate(rate, "dropout")
    if isinstance(seed, bool):
        raise TypeError("dropout: seed: expected an int, got %r" % (seed,))
    try:
        seed = operator.index(seed) & _UINT64_MASK
    except TypeError:
        raise TypeError("dropout: seed: expected an int, got %r" % (seed,)) from None
    x = as_float32(x, "dropout: x")
    out = check_output(out, x.shape, "dropout: out")
    mask = check_output(mask, x.shape, "dropout: mask", dtype=np.uint8)
    check_no_overlap("dropout", out, "out", [(x, "x")], in_place_ok=("x",))
    check_no_overlap("dropout", mask, "mask", [(x, "x"), (out, "out")])
    _ext.dropout_forward(x.reshape(-1), out.reshape(-1), mask.reshape(-1), rate, seed)
    return out, mask


def dropout_backward(dy, mask, rate, out=None):
    """Gradient of dropout: ``dx = dy * mask / (1 - rate)`` (``out`` may be ``dy``).

    ``mask`` is the uint8 mask returned by dropout (a bool or 0/1 numeric array of the
    same shape is accepted too: nonzero = kept)."""
    rate = _check_rate(rate, "dropout_backward")
    dy = as_float32(dy, "dropout_backward: dy")
    if not isinstance(mask, np.ndarray):
        mask = np.asarray(mask)
    if mask.shape != dy.shape:
        raise ValueError("dropout_backward: mask: expected shape %s like dy, got %s"
                         % (dy.shape, mask.shape))
    if mask.dtype != np.uint8 or not mask.flags.c_contiguous:
        if mask.dtype.kind not in "biuf":
            raise ValueError("dropout_backward: mask: expected the uint8 mask from dropout, "
                             "got dtype %s" % (mask.dtype,))
        mask = np.ascontiguousarray(mask != 0).view(np.uint8)
    out = check_output(out, dy.shape, "dropout_backward: out")
    check_no_overlap("dropout_backward", out, "out", [(dy, "dy"), (mask, "mask")],
                     in_place_ok=("dy",))
    _ext.dropout_backward(dy.reshape(-1), mask.reshape(-1), out.reshape(-1), rate)
    return out


# ---------------------------------------------------------------- batch norm

BatchNormCache = collections.namedtuple(
    "BatchNormCache", ["x", "mean", "inv_std", "gamma", "training", "beta"],
    defaults=(None,))
BatchNormCache.__doc__ = """What batch_norm_backward needs from batch_norm_forward.

x: the float32 input (a reference, not a copy: do not modify it before the backward
pass); mean, inv_std: per-channel float32 statistics used to normalise (batch or moving);
gamma: a copy of the scale; training: whether batch statistics were used; beta: a copy
of the offset (None where the forward was not batch_norm_forward), for a fused ReLU's
mask recomputed in the backward (``batch_norm_backward(relu=True)``)."""


def _channel_param(value, c, name, default):
    if value is None:
        return np.full((c,), default, dtype=np.float32)
    v = as_float32(value, name)
    if v.shape != (c,):
        raise ValueError("%s: expected shape (%d,), got %s" % (name, c, v.shape))
    return v


def _moving_stat(value, c, name, in_place):
    if in_place:
        v = check_output(value, None, "%s (training updates it in place)" % name)
    else:
        v = as_float32(value, name)
    if v.shape != (c,):
        raise ValueError("%s: expected shape (%d,), got %s" % (name, c, v.shape))
    return v


def relu_cap(relu_max, who):
    """The C kernels' ``relu_max``: +inf for None (a plain ReLU), else a checked float.

    Args:
        relu_max: None, or the ``max_value`` (a finite number > 0) of a fused clipped ReLU.
        who: the calling function's name, for the error message.

    Returns:
        float: ``inf`` or ``relu_max``.

    Raises:
        ValueError: relu_max is not a finite number > 0.
    """
    if relu_max is None:
        return float("inf")
    if isinstance(relu_max, bool) or not isinstance(relu_max, numbers.Real) \
            or not 0.0 < float(relu_max) < float("inf"):
        raise ValueError("%s: relu_max: expected None or a finite number > 0, got %r"
                         % (who, relu_max))
    if float(np.float32(relu_max)) != float(relu_max):
        raise ValueError("%s: relu_max: expected a value exact in float32, got %r"
                         % (who, relu_max))
    return float(relu_max)


def batch_norm_forward(x, gamma, beta, moving_mean, moving_var, momentum=0.99, epsilon=1e-3,
                       training=False, out=None, relu=False, relu_max=None):
    """Batch normalisation, channels-last: statistics over every axis but the last.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` per channel, where with
    ``training=True`` mean/var are the batch mean and BIASED batch variance and
    ``moving_mean`` / ``moving_var`` are updated IN PLACE as Keras 3 does:
    ``moving = moving * momentum + batch_stat * (1 - momentum)`` (the biased variance
    feeds the moving variance too); with ``training=False`` the moving statistics are
    used. ``gamma`` / ``beta`` may be None (ones / zeros). Works for (N, C) and
    (N, H, W, C). Returns ``(y, cache)`` for batch_norm_backward.

    ``relu=True`` fuses a following ReLU into the same pass: ``y = relu(bn(x))``, bitwise
    what ``relu(batch_norm_forward(...)[0])`` gives (NaN propagates, -0 becomes +0). Pass
    that ``y`` as ``relu_output`` to batch_norm_backward (the cache does not keep it).
    ``relu_max`` (with ``relu=True``): a ReLU with ``max_value`` (e.g. 6.0 for ReLU6):
    ``y = min(max(bn(x), 0), relu_max)``, bitwise what the ``relu6`` / ``relu(max_value=)``
    activation kernel gives; pass the same ``relu_max`` to batch_norm_backward."""
    x = as_float32(x, "batch_norm_forward: x")
    cap = relu_cap(relu_max, "batch_norm_forward")
    if x.ndim < 2:
        raise ValueError("batch_norm_forward: x: expected at least 2 axes (N, ..., C), got "
                         "shape %s" % (x.shape,))
    c = x.shape[-1]
    rows = x.size // c if c else 0
    training = bool(training)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) \
            or not 0.0 <= float(momentum) <= 1.0:
        raise ValueError("batch_norm_forward: momentum: expected a number in [0, 1], got %r"
                         % (momentum,))
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) \
            or not 0.0 <= float(epsilon) < float("inf"):
        raise ValueError("batch_norm_forward: epsilon: expected a finite number >= 0, got %r"
                         % (epsilon,))
    if training and rows == 0 and c > 0:
        raise ValueError("batch_norm_forward: training needs at least one value per channel, "
                         "got x of shape %s" % (x.shape,))
    gamma = _channel_param(gamma, c, "batch_norm_forward: gamma", 1.0)
    beta = _channel_param(beta, c, "batch_norm_forward: beta", 0.0)
    moving_mean = _moving_stat(moving_mean, c, "batch_norm_forward: moving_mean", training)
    moving_var = _moving_stat(moving_var, c, "batch_norm_forward: moving_var", training)
    if training:
        check_no_overlap("batch_norm_forward", moving_var, "moving_var",
                         [(moving_mean, "moving_mean")])
    out = check_output(out, x.shape, "batch_norm_forward: out")
    check_no_overlap("batch_norm_forward", out, "out",
                     [(x, "x (kept for the backward pass)"), (gamma, "gamma"), (beta, "beta"),
                      (moving_mean, "moving_mean"), (moving_var, "moving_var")])
    x2, y2 = x.reshape(rows, c), out.reshape(rows, c)
    mean = np.empty((c,), dtype=np.float32)
    inv_std = np.empty((c,), dtype=np.float32)
    relu = bool(relu)
    if training:
        _ext.batch_norm_forward_train(x2, gamma, beta, float(momentum), float(epsilon),
                                      moving_mean, moving_var, y2, mean, inv_std, relu, cap)
    else:
        _ext.batch_norm_forward_infer(x2, gamma, beta, moving_mean, moving_var,
                                      float(epsilon), y2, mean, inv_std, relu, cap)
    return out, BatchNormCache(x, mean, inv_std, gamma.copy(), training, beta.copy())


def batch_norm_backward(dy, cache, dx=None, dgamma=None, dbeta=None, relu_output=None,
                        relu_max=None, relu=False):
    """Gradients of batch_norm_forward given ``dy`` (x's shape) and its ``cache``.

    Returns ``(dx, dgamma, dbeta)``. In training mode the batch statistics depend on x:
    ``dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))``; in inference
    mode ``dx = gamma * inv_std * dy``. ``dgamma = sum(dy * x_hat)``, ``dbeta = sum(dy)``
    over every axis but the last (double accumulation, fixed order). ``dx`` may be
    ``dy`` (in place).

    For a forward run with ``relu=True``, pass its output ``y`` as ``relu_output`` (a
    float32 array of x's shape): ``dy`` is then the gradient w.r.t. that ReLU output and
    is masked to ``dy where relu_output > 0 else 0`` inside the kernel (dy itself is not
    modified, unless it is also ``dx``), bitwise what relu_backward followed by this
    function without ``relu_output`` gives. ``relu_output`` may not overlap ``dx``,
    ``dgamma`` or ``dbeta``. ``relu_max``: the forward's (a clipped ReLU): dy is then kept
    where ``0 < relu_output < relu_max``, as the relu6 activation's backward does.

    ``relu=True`` (instead of ``relu_output``): the forward ran with ``relu=True`` (and
    this ``relu_max``); the mask is recomputed from x (``x_hat * gamma + beta`` with the
    forward's operations, so exactly relu_output's mask) instead of read from the
    output: one array less to read in each of the two passes."""
    cap = relu_cap(relu_max, "batch_norm_backward")
    if not isinstance(cache, BatchNormCache):
        raise ValueError("batch_norm_backward: cache: expected the BatchNormCache returned by "
                         "batch_norm_forward, got %s" % (type(cache).__name__,))
    x = cache.x
    c = x.shape[-1]
    rows = x.size // c if c else 0
    dy = as_float32(dy, "batch_norm_backward: dy")
    if dy.shape != x.shape:
        raise ValueError("batch_norm_backward: dy: expected shape %s like the forward input, "
                         "got %s" % (x.shape, dy.shape))
    ry = None
    if relu not in (True, False):
        raise ValueError("batch_norm_backward: relu: expected True or False, got %r" % (relu,))
    if relu and relu_output is not None:
        raise ValueError("batch_norm_backward: pass relu_output or relu=True, not both")
    if relu and cache.beta is None:
        raise ValueError("batch_norm_backward: relu=True needs the cache of "
                         "batch_norm_forward (it keeps beta); pass relu_output instead")
    if relu_output is not None:
        # it is only read, but a silent float32 copy would hide passing the wrong array
        if not isinstance(relu_output, np.ndarray):
            raise TypeError("batch_norm_backward: relu_output: expected the float32 output "
                            "of batch_norm_forward(..., relu=True), got %s"
                            % (type(relu_output).__name__,))
        if relu_output.dtype != np.float32:
            raise ValueError("batch_norm_backward: relu_output: expected the float32 output "
                             "of batch_norm_forward(..., relu=True), got dtype %s"
                             % (relu_output.dtype,))
        if relu_output.shape != x.shape:
            raise ValueError("batch_norm_backward: relu_output: expected shape %s like the "
                             "forward input, got %s" % (x.shape, relu_output.shape))
        ry = as_float32(relu_output, "batch_norm_backward: relu_output")
    dx = check_output(dx, x.shape, "batch_norm_backward: dx")
    dgamma = check_output(dgamma, (c,), "batch_norm_backward: dgamma")
    dbeta = check_output(dbeta, (c,), "batch_norm_backward: dbeta")
    check_no_overlap("batch_norm_backward", dx, "dx",
                     [(dy, "dy"), (x, "x"), (ry, "relu_output")], in_place_ok=("dy",))
    for arr, name in ((dgamma, "dgamma"), (dbeta, "dbeta")):
        check_no_overlap("batch_norm_backward", arr, name,
                         [(dy, "dy"), (x, "x"), (dx, "dx"), (ry, "relu_output")])
    check_no_overlap("batch_norm_backward", dbeta, "dbeta", [(dgamma, "dgamma")])
    _ext.batch_norm_backward(dy.reshape(rows, c), x.reshape(rows, c), cache.mean,
                             cache.inv_std, cache.gamma, cache.training,
                             dx.reshape(rows, c), dgamma, dbeta,
                             None if ry is None else ry.reshape(rows, c), cap,
                             cache.beta if relu else None)
    return dx, dgamma, dbeta
