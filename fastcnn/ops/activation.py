"""Activation kernels: the elementwise family, softmax / log_softmax on any axis, PReLU.

Every function validates once, converts its inputs to C-contiguous float32, checks or
allocates the output and runs the C kernel (csrc/activations.c) with the GIL released.
Elementwise outputs may be the input itself (in place); results are bitwise identical
for any thread count.
"""
import math
import numbers

import numpy as np

from .. import _ext
from ._validation import as_float32, check_no_overlap, check_output

__all__ = [
    "ELEMENTWISE_ACTIVATIONS", "activation", "activation_backward",
    "activation_backward_uses_output", "softmax_axis", "softmax_axis_backward",
    "log_softmax", "prelu", "prelu_backward",
]

# kernel kinds: the enum in csrc/nn.h
_KIND = {"linear": 0, "relu": 1, "relu_general": 2, "leaky_relu": 3, "relu6": 4,
         "sigmoid": 5, "tanh": 6, "elu": 7, "selu": 8, "gelu": 9, "gelu_tanh": 10,
         "silu": 11, "softplus": 12, "softsign": 13, "hard_sigmoid": 14, "hard_silu": 15,
         "exponential": 16}

#: Keras 3 names of the elementwise activations and the keyword parameters each takes.
ELEMENTWISE_ACTIVATIONS = {
    "linear": (), "relu": ("negative_slope", "max_value", "threshold"),
    "leaky_relu": ("negative_slope",), "relu6": (), "sigmoid": (), "tanh": (),
    "elu": ("alpha",), "selu": (), "gelu": ("approximate",), "silu": (), "softplus": (),
    "softsign": (), "hard_sigmoid": (), "hard_silu": (), "exponential": (),
}

_DEFAULTS = {"negative_slope": 0.0, "max_value": None, "threshold": 0.0, "alpha": 1.0,
             "approximate": False}
_LEAKY_DEFAULT = 0.2
_FLT_MAX = float(np.finfo(np.float32).max)  # keras.activations.leaky_relu's default slope


def _real(value, arg, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError("%s: %s must be a real number, got %r" % (who, arg, value))
    return float(value)


def _resolve(name, params, who):
    """(name, keyword params) -> (kernel kind, (p0, p1, p2))."""
    if not isinstance(name, str) or name not in ELEMENTWISE_ACTIVATIONS:
        raise ValueError("%s: unknown activation %r; expected one of %s"
                         % (who, name, ", ".join(sorted(ELEMENTWISE_ACTIVATIONS))))
    allowed = ELEMENTWISE_ACTIVATIONS[name]
    extra = sorted(set(params) - set(allowed))
    if extra:
        raise ValueError("%s: activation %r takes no argument %s (it takes: %s)"
                         % (who, name, ", ".join(extra), ", ".join(allowed) or "none"))
    if name == "relu":
        slope = _real(params.get("negative_slope", 0.0), "negative_slope", who)
        thr = _real(params.get("threshold", 0.0), "threshold", who)
        mx = params.get("max_value")
        # the kernel reads +inf as "no max_value" (no clipping); a given inf clips at 0
        mx = math.inf if mx is None else min(_real(mx, "max_value", who), _FLT_MAX)
        if slope == 0.0 and thr == 0.0 and mx == math.inf:
            return _KIND["relu"], (0.0, 0.0, 0.0)
        if slope == 0.0 and thr == 0.0 and mx == 6.0:
            return _KIND["relu6"], (0.0, 0.0, 0.0)
        return _KIND["relu_general"], (slope, mx, thr)
    if name == "leaky_relu":
        return _KIND[name], (_real(params.get("negative_slope", _LEAKY_DEFAULT),
                                   "negative_slope", who), 0.0, 0.0)
    if name == "elu":
        return _KIND[name], (_real(params.get("alpha", 1.0), "alpha", who), 0.0, 0.0)
    if name == "gelu":
        return _KIND["gelu_tanh" if params.get("approximate", False) else "gelu"], \
            (0.0, 0.0, 0.0)
    return _KIND[name], (0.0, 0.0, 0.0)


def activation_backward_uses_output(name, **params):
    """Whether :func:`activation_backward` for ``name`` takes the forward OUTPUT.

    Args:
        name: a key of ``ELEMENTWISE_ACTIVATIONS``.
        **params: that activation's keyword parameters (e.g. ``alpha`` for ``"elu"``).

    Returns:
        True when the gradient is computed from ``y = f(x)`` (sigmoid, tanh, the relu
        family without a negative part, elu/leaky_relu with a positive alpha/slope, selu,
        exponential, hard_sigmoid, linear), False when it needs the input ``x``.
    """
    kind, p = _resolve(name, params, "activation_backward_uses_output")
    return _ext.activation_backward_uses_output(kind, p)


def activation(x, name, out=None, **params):
    """Apply the elementwise activation ``name`` (Keras 3 formula) with the C kernel.

    Args:
        x: an array of any shape (converted to C-contiguous float32).
        name: ``"relu"``, ``"leaky_relu"``, ``"elu"``, ``"gelu"``, ... (see
            ``ELEMENTWISE_ACTIVATIONS``).
        out: optional float32 output of x's shape; may be ``x`` itself.
        **params: the activation's parameters, named as in ``keras.activations``
            (``negative_slope``, ``max_value``, ``threshold``, ``alpha``, ``approximate``).

    Returns:
        ``out`` (float32, x's shape).

    Raises:
        ValueError: for an unknown name or parameter, or a bad ``out``.

    Example:
        >>> fastcnn.ops.activation(np.array([-1.0, 2.0], np.float32), "leaky_relu")
        array([-0.2,  2. ], dtype=float32)
    """
    kind, p = _resolve(name, params, "activation")
    x = as_float32(x, "activation: x")
    out = check_output(out, x.shape, "activation: out")
    check_no_overlap("activation", out, "out", [(x, "x")], in_place_ok=("x",))
    _ext.activation_forward(kind, p, x.reshape(-1), out.reshape(-1))
    return out


def activation_backward(dy, src, name, out=None, **params):
    """Gradient of :func:`activation`: ``dx = dy * f'``.

    Args:
        dy: the gradient w.r.t. the activation's output.
        src: the forward OUTPUT when ``activation_backward_uses_output(name, **params)``,
            else the forward INPUT (same shape as dy).
        name: as for :func:`activation`.
        **params: as for :func:`activation`.
        out: optional float32 output of dy's shape; may be ``dy``.

    Returns:
        ``out`` (float32).

    Raises:
        ValueError: for an unknown name or parameter or mismatched shapes.
    """
    kind, p = _resolve(name, params, "activation_backward")
    dy = as_float32(dy, "activation_backward: dy")
    src = as_float32(src, "activation_backward: src")
    if dy.shape != src.shape:
        raise ValueError("activation_backward: dy and src must have the same shape, got %s "
                         "and %s" % (dy.shape, src.shape))
    out = check_output(out, dy.shape, "activation_backward: out")
    check_no_overlap("activation_backward", out, "out", [(dy, "dy"), (src, "src")],
                     in_place_ok=("dy",))
    _ext.activation_backward(kind, p, dy.reshape(-1), src.reshape(-1), out.reshape(-1))
    return out


def _axis_split(shape, axis, who):
    if not shape:
        raise ValueError("%s: x must have at least one axis, got a scalar" % who)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError("%s: axis must be an integer, got %r" % (who, axis))
    nd = len(shape)
    if not -nd <= axis < nd:
        raise ValueError("%s: axis %d is out of range for an input of rank %d"
                         % (who, axis, nd))
    axis = int(axis) % nd
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, int(shape[axis]), inner


def softmax_axis(x, axis=-1, log=False, out=None):
    """Softmax (or log-softmax with ``log=True``) along ``axis``, max-subtracted.

    Args:
        x: an array of rank >= 1.
        axis: the axis to normalise (negative counts from the end).
        log: compute ``log_softmax`` instead.
        out: optional float32 output of x's shape; may be ``x``.

    Returns:
        ``out`` (float32). The last axis runs vectorised rows (AVX2 path); other axes run
        strided lines. Both agree with the float64 formula to float32 rounding.

    Raises:
        ValueError: for a scalar, an out-of-range axis or a bad ``out``.
    """
    who = "log_softmax" if log else "softmax"
    if np.ndim(x) == 0:  # before the conversion, which makes a scalar 1-D
        raise ValueError("%s: x must have at least one axis, got a scalar" % who)
    x = as_float32(x, who + ": x")
    outer, length, inner = _axis_split(x.shape, axis, who)
    out = check_output(out, x.shape, who + ": out")
    check_no_overlap(who, out, "out", [(x, "x")], in_place_ok=("x",))
    if x.size:
        _ext.softmax_axis_forward(bool(log), x.reshape(-1), out.reshape(-1), outer, length,
                                  inner)
    return out


def log_softmax(x, axis=-1, out=None):
    """``x - logsumexp(x, axis)``: :func:`softmax_axis` with ``log=True``.

    Args:
        x: an array of rank >= 1; axis: the axis; out: optional output (may be ``x``).

    Returns:
        ``out`` (float32).
    """
    return softmax_axis(x, axis, log=True, out=out)


def softmax_axis_backward(dy, y, axis=-1, log=False, out=None):
    """Gradient of :func:`softmax_axis` from its OUTPUT ``y``.

    softmax: ``dx = y * (dy - sum(dy * y, axis))``; log_softmax:
    ``dx = dy - exp(y) * sum(dy, axis)`` (sums in double).

    Args:
        dy: the output gradient; y: the forward output (same shape); axis, log: as in the
            forward; out: optional output (may be ``dy``).

    Returns:
        ``out`` (float32).

    Raises:
        ValueError: for mismatched shapes or a bad axis / ``out``.
    """
    who = "log_softmax_backward" if log else "softmax_backward"
    dy = as_float32(dy, who + ": dy")
    y = as_float32(y, who + ": y")
    if dy.shape != y.shape:
        raise ValueError("%s: dy and y must have the same shape, got %s and %s"
                         % (who, dy.shape, y.shape))
    outer, length, inner = _axis_split(dy.shape, axis, who)
    out = check_output(out, dy.shape, who + ": out")
    check_no_overlap(who, out, "out", [(dy, "dy"), (y, "y")], in_place_ok=("dy",))
    if dy.size:
        _ext.softmax_axis_backward(bool(log), dy.reshape(-1), y.reshape(-1), out.reshape(-1),
                                   outer, length, inner)
    return out


def _prelu_alpha(x, alpha, who):
    a = as_float32(alpha, who + ": alpha")
    d = int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim >= 1 else 1
    if x.ndim < 2 or a.shape != x.shape[1:]:
        raise ValueError("%s: alpha must have the per-sample shape of x, %s; got %s"
                         % (who, x.shape[1:], a.shape))
    return a.reshape(-1), d


def prelu(x, alpha, out=None):
    """PReLU: ``x`` where ``x > 0``, else ``alpha * x`` (Keras 3's ``PReLU``).

    Args:
        x: (batch, ...) array of rank >= 2.
        alpha: the slopes with x's per-sample shape ``x.shape[1:]`` (broadcast
            ``shared_axes`` out before calling).
        out: optional float32 output of x's shape; may be ``x``.

    Returns:
        ``out`` (float32).

    Raises:
        ValueError: when alpha's shape is not ``x.shape[1:]``.
    """
    x = as_float32(x, "prelu: x")
    a, d = _prelu_alpha(x, alpha, "prelu")
    out = check_output(out, x.shape, "prelu: out")
    check_no_overlap("prelu", out, "out", [(x, "x"), (a, "alpha")], in_place_ok=("x",))
    if x.size:
        _ext.prelu_forward(x.reshape(-1, d), a, out.reshape(-1, d))
    return out


def prelu_backward(dy, x, alpha, need_input_grad=True, dx=None, dalpha=None):
    """Gradients of :func:`prelu`.

    Args:
        dy: the output gradient; x: the forward input; alpha: as in the forward.
        need_input_grad: compute ``dx`` (else it is None).
        dx: optional output for dx (may be ``dy``); dalpha: optional output of alpha's shape.

    Returns:
        ``(dx, dalpha)``: ``dx = dy`` where x > 0, ``alpha * dy`` where x < 0, 0 at 0;
        ``dalpha = sum over the batch of dy * min(x, 0)`` (double, in batch order).

    Raises:
        ValueError: for mismatched shapes or bad outputs.
    """
    dy = as_float32(dy, "prelu_backward: dy")
    x = as_float32(x, "prelu_backward: x")
    if dy.shape != x.shape:
        raise ValueError("prelu_backward: dy and x must have the same shape, got %s and %s"
                         % (dy.shape, x.shape))
    a, d = _prelu_alpha(x, alpha, "prelu_backward")
    dalpha = check_output(dalpha, x.shape[1:], "prelu_backward: dalpha")
    if need_input_grad:
        dx = check_output(dx, x.shape, "prelu_backward: dx")
        check_no_overlap("prelu_backward", dx, "dx", [(dy, "dy"), (x, "x"), (a, "alpha"),
                                                      (dalpha, "dalpha")],
                         in_place_ok=("dy",))
    else:
        dx = None
    rows = x.shape[0]
    _ext.prelu_backward(dy.reshape(rows, d), x.reshape(rows, d), a,
                        None if dx is None else dx.reshape(rows, d), dalpha.reshape(-1))
    return dx, dalpha
