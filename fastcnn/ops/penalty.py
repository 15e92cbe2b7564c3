"""Regularizer penalties and weight constraints as checked calls into csrc/penalty.c.

Used by ``fastcnn.regularizers`` and ``fastcnn.constraints``; every function checks its
arrays once and runs one C call (results identical at any thread count).
"""
import numbers

import numpy as np

from .. import _ext
from ._validation import as_float32, check_output

__all__ = ["l1l2_penalty", "orthogonal_penalty", "norm_constraint", "non_neg"]


def _grad_args(op, w, grad, out):
    """(g_in, g_out) flat arrays for the kernel: ``out`` (default ``grad``, in place)
    receives ``grad + scale * d(penalty)/dw``; ``grad`` None: ``out`` gets the gradient."""
    if grad is None and out is None:
        return None, None
    if grad is not None:
        grad = as_float32(grad, "%s: grad" % op)
        if grad.shape != w.shape:
            raise ValueError("%s: grad must have the shape of w %s, got %s"
                             % (op, w.shape, grad.shape))
    if out is None:
        out = grad
    out = check_output(out, w.shape, "%s: out" % op)
    if np.may_share_memory(out, w):
        raise ValueError("%s: out must not overlap w" % op)
    if grad is not None and np.may_share_memory(out, grad) and not (
            out.__array_interface__["data"][0] == grad.__array_interface__["data"][0]):
        raise ValueError("%s: out must be exactly grad (in place) or not overlap it" % op)
    return (None if grad is None else grad.reshape(-1)), out.reshape(-1)


def _factor(value, name, op):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            np.isfinite(value) and value >= 0):
        raise ValueError("%s: %s must be a finite float >= 0, got %r" % (op, name, value))
    return float(value)


def l1l2_penalty(w, l1=0.0, l2=0.0, grad=None, out=None, scale=1.0):
    """``l1 * sum(|w|) + l2 * sum(w**2)`` (a Python float, summed in double).

    Args:
        w: float32 array of any shape.
        l1, l2: the factors (>= 0).
        grad: optional float32 array shaped like ``w``; ``scale * (l1 * sign(w) +
            2 * l2 * w)`` is added to it (in place, or into ``out``). sign(0) is 0.
        out: where ``grad + scale * gradient`` goes (default: ``grad`` itself; with
            ``grad`` None, ``out`` is overwritten with ``scale * gradient``).
        scale: multiplies the gradient (not the returned penalty).

    Returns:
        The penalty, unscaled.

    Raises:
        ValueError: negative or non-finite factors, mismatched shapes.
    """
    op = "l1l2_penalty"
    w = as_float32(w, "%s: w" % op)
    l1, l2 = _factor(l1, "l1", op), _factor(l2, "l2", op)
    g_in, g_out = _grad_args(op, w, grad, out)
    return _ext.l1l2_penalty(w.reshape(-1), l1, l2, float(scale), g_in, g_out)


def orthogonal_penalty(w, factor=0.01, mode="rows", grad=None, out=None, scale=1.0):
    """Keras' ``OrthogonalRegularizer`` penalty of a 2-D ``w``: ``factor * 0.5 *
    sum_{i != j} |n_i . n_j| / (k (k - 1) / 2)`` over its L2-normalised rows (``mode``
    'rows') or columns ('columns'); gradient added as in ``l1l2_penalty``.

    Returns:
        The penalty, unscaled (0.0 with fewer than two vectors).

    Raises:
        ValueError: ``w`` not 2-D, a bad mode or factor.
    """
    op = "orthogonal_penalty"
    w = as_float32(w, "%s: w" % op)
    if w.ndim != 2:
        raise ValueError("Inputs to OrthogonalRegularizer must have rank 2. Received: "
                         "inputs.shape=%s" % (w.shape,))
    if mode not in ("rows", "columns"):
        raise ValueError("%s: mode must be 'rows' or 'columns', got %r" % (op, mode))
    factor = _factor(factor, "factor", op)
    g_in, g_out = _grad_args(op, w, grad, out)
    k = w.shape[0] if mode == "rows" else w.shape[1]
    if k < 2 or w.size == 0:  # no pair of (non-empty) vectors: no penalty
        if g_out is not None and g_in is None:
            g_out.fill(0.0)
        elif g_out is not None and g_out is not g_in:
            np.copyto(g_out, g_in)
        return 0.0
    return _ext.orthogonal_penalty(w.reshape(-1), w.shape[0], w.shape[1],
                                   int(mode == "columns"), factor, float(scale), g_in, g_out)


_KINDS = {"max_norm": 0, "unit_norm": 1, "min_max_norm": 2}


def norm_constraint(w, kind, axis=0, min_value=0.0, max_value=1.0, rate=1.0):
    """Scale ``w`` in place so the L2 norm over ``axis`` (an int or a tuple of ints) obeys
    a Keras norm constraint: ``kind`` 'max_norm' (at most ``max_value``), 'unit_norm' (1),
    'min_max_norm' (``rate * clip(norm, min_value, max_value) + (1 - rate) * norm``).
    Each slice is multiplied by ``desired / (1e-7 + norm)`` as Keras does.

    Args:
        w: a writeable C-contiguous float32 array (a weight's storage).

    Returns:
        ``w``.

    Raises:
        ValueError: a bad kind or an axis out of range.
    """
    op = "norm_constraint"
    if kind not in _KINDS:
        raise ValueError("%s: kind must be one of %s, got %r" % (op, sorted(_KINDS), kind))
    w = check_output(w, None, "%s: w" % op)
    axes = _axes(axis, w.ndim, op)
    if w.ndim == 0 or w.size == 0:
        return w
    if axes == tuple(range(axes[0], axes[-1] + 1)):  # contiguous axes: one pass in place
        outer = int(np.prod(w.shape[:axes[0]], dtype=np.int64))
        red = int(np.prod([w.shape[a] for a in axes], dtype=np.int64))
        _ext.norm_constraint(w.reshape(-1), outer, red, w.size // (outer * red),
                             _KINDS[kind], float(min_value), float(max_value), float(rate))
        return w
    # scattered axes: the reduced axes moved together into a copy, then written back
    kept = [a for a in range(w.ndim) if a not in axes]
    order = kept + list(axes)
    tmp = np.ascontiguousarray(np.transpose(w, order))
    red = int(np.prod([w.shape[a] for a in axes], dtype=np.int64))
    _ext.norm_constraint(tmp.reshape(-1), tmp.size // red, red, 1, _KINDS[kind],
                         float(min_value), float(max_value), float(rate))
    np.copyto(w, np.transpose(tmp, np.argsort(order)))
    return w


def _axes(axis, ndim, op):
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
            raise ValueError("%s: axis %r is out of range for a weight of rank %d"
                             % (op, axis, ndim))
        out.append(int(a) % ndim)
    if not out or len(set(out)) != len(out):
        raise ValueError("%s: axis must name distinct axes, got %r" % (op, axis))
    return tuple(sorted(out))


def non_neg(w):
    """``w = max(w, 0)`` in place (NaN stays NaN); returns ``w``."""
    w = check_output(w, None, "non_neg: w")
    _ext.non_neg(w.reshape(-1))
    return w
