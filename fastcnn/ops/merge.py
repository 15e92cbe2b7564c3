"""Merge and shape kernels: Keras' ``Add`` / ``Subtract`` / ``Multiply`` / ``Average`` /
``Maximum`` / ``Minimum``, a fused residual add + ReLU, ``Concatenate``, ``ZeroPadding2D``
and ``Cropping2D``, on fastcnn's C kernels (csrc/merge.c).

Every function validates its arguments once, converts float64 / non-contiguous input to
C-contiguous float32, allocates (or checks a caller-provided) output, and runs the kernel
with the GIL released. Results are bitwise identical for any thread count.

Elementwise merges fold their inputs left to right in float32, exactly as Keras' merge
layers do: ``add`` is ``((x0 + x1) + x2) + ...``, ``multiply`` the same with ``*``,
``average`` the sum divided by k, ``subtract`` ``x0 - x1`` (two inputs only).
``maximum`` / ``minimum`` follow NumPy's ``np.maximum`` / ``np.minimum``: a NaN in any
input makes the output NaN, and on a tie the earlier input is the one taken. Their
gradient goes entirely to the input the output was taken from: the FIRST (lowest-index)
input equal to the output (for a NaN output, the first NaN input); the others get 0.

The gradient of ``zero_pad2d`` is ``crop2d`` with the same amounts and vice versa; the
gradient of ``add_relu`` is ``relu_backward(dy, y)`` for every input.
"""
import numbers
import operator

import numpy as np

from .. import _ext
from ._validation import as_float32, check_no_overlap, check_output

__all__ = ["merge", "merge_backward", "add_relu", "concatenate", "concatenate_backward",
           "zero_pad2d", "crop2d", "MERGE_OPS"]

# op name -> code of csrc/merge.h (FC_MERGE_*)
_OP_CODES = {"add": 0, "subtract": 1, "multiply": 2, "average": 3, "maximum": 4,
             "minimum": 5}
MERGE_OPS = tuple(_OP_CODES)


def _op_code(op, fn):
    if not isinstance(op, str) or op.lower() not in _OP_CODES:
        raise ValueError("%s: op: expected one of %s, got %r"
                         % (fn, ", ".join(repr(o) for o in MERGE_OPS), op))
    return op.lower(), _OP_CODES[op.lower()]


def _input_list(inputs, fn, minimum):
    """inputs as a list of C-contiguous float32 arrays (at least ``minimum`` of them)."""
    if not isinstance(inputs, (list, tuple)):
        raise TypeError("%s: inputs: expected a list or tuple of arrays, got %s"
                        % (fn, type(inputs).__name__))
    if len(inputs) < minimum:
        raise ValueError("%s: inputs: expected at least %d arrays, got %d"
                         % (fn, minimum, len(inputs)))
    return [as_float32(x, "%s: inputs[%d]" % (fn, i)) for i, x in enumerate(inputs)]


def _same_shapes(xs, fn):
    for i, x in enumerate(xs[1:], start=1):
        if x.shape != xs[0].shape:
            raise ValueError("%s: inputs[%d] has shape %s but inputs[0] has shape %s; every "
                             "input must have the same shape" % (fn, i, x.shape, xs[0].shape))


def _elementwise_inputs(op, inputs, fn):
    xs = _input_list(inputs, fn, 2)
    if op == "subtract" and len(xs) != 2:
        raise ValueError("%s: subtract takes exactly 2 inputs, got %d" % (fn, len(xs)))
    _same_shapes(xs, fn)
    return xs


def _named(xs):
    return [(x, "inputs[%d]" % i) for i, x in enumerate(xs)]


def _need_flags(need, k, fn):
    if need is None:
        return [True] * k
    bad = "%s: need: expected a sequence of %d bools (one per input), got %r" % (fn, k, need)
    try:
        flags = list(need)
    except TypeError:
        raise TypeError(bad) from None
    if len(flags) != k:
        raise ValueError(bad)
    if not all(isinstance(v, (bool, np.bool_, numbers.Integral)) for v in flags):
        raise TypeError(bad)
    return [bool(v) for v in flags]


def _grad_outputs(outs, need, shapes, taken, fn):
    """The gradient outputs (None where not needed; the caller's ``outs[i]`` when given),
    checked against ``taken`` ((array, name) pairs they must not overlap) and each other."""
    k = len(shapes)
    if outs is None:
        outs = [None] * k
    elif not isinstance(outs, (list, tuple)):
        raise TypeError("%s: outs: expected a list of %d arrays or None (one per input), "
                        "got %s" % (fn, k, type(outs).__name__))
    elif len(outs) != k:
        raise ValueError("%s: outs: expected %d entries (one per input), got %d"
                         % (fn, k, len(outs)))
    result = []
    taken = list(taken)
    for i in range(k):
        if not need[i]:
            result.append(None)
            continue
        name = "outs[%d]" % i
        d = check_output(outs[i], shapes[i], "%s: %s" % (fn, name))
        check_no_overlap(fn, d, name, taken)
        taken.append((d, name))
        result.append(d)
    return result


# ---------------------------------------------------------------- elementwise merges

def merge(op, inputs, out=None):
    """``op`` ('add', 'subtract', 'multiply', 'average', 'maximum', 'minimum') of k >= 2
    same-shape arrays (subtract: exactly 2), folded left to right (see the module
    docstring). ``out`` may be exactly ``inputs[0]`` or ``inputs[1]`` (in place).
    Returns a float32 array of the inputs' shape."""
    op, code = _op_code(op, "merge")
    fn = "merge (%s)" % op
    xs = _elementwise_inputs(op, inputs, fn)
    out = check_output(out, xs[0].shape, "%s: out" % fn)
    check_no_overlap(fn, out, "out", _named(xs), in_place_ok=("inputs[0]", "inputs[1]"))
    _ext.merge_forward(code, [x.reshape(-1) for x in xs], out.reshape(-1))
    return out


def merge_backward(op, dy, inputs, output=None, need=None, outs=None):
    """Gradients of :func:`merge` w.r.t. each input, given ``dy`` (the output's shape).

    Returns a list of k arrays, None where ``need[i]`` is false (``need`` defaults to all).
    add: ``dy``; subtract: ``dy`` and ``-dy``; multiply: ``dy *`` the product of the other
    inputs (left to right); average: ``dy / k``; maximum / minimum: ``dy`` for the first
    input equal to the output, 0 for the others. ``inputs`` are the forward's inputs;
    ``output`` (the forward's output) is not needed by any op (maximum / minimum recompute
    which input the forward took) and is only checked for shape when given. ``outs``
    (optional): a list of k preallocated float32 arrays or None (used where needed); they
    must not overlap ``dy``, the inputs or each other."""
    op, code = _op_code(op, "merge_backward")
    fn = "merge_backward (%s)" % op
    xs = _elementwise_inputs(op, inputs, fn)
    shape = xs[0].shape
    dy = as_float32(dy, "%s: dy" % fn)
    if dy.shape != shape:
        raise ValueError("%s: dy has shape %s but the inputs have shape %s"
                         % (fn, dy.shape, shape))
    if output is not None:
        output = np.asarray(output)
        if output.shape != shape:
            raise ValueError("%s: output has shape %s but the inputs have shape %s"
                             % (fn, output.shape, shape))
    need = _need_flags(need, len(xs), fn)
    dxs = _grad_outputs(outs, need, [shape] * len(xs), [(dy, "dy")] + _named(xs), fn)
    _ext.merge_backward(code, dy.reshape(-1), [x.reshape(-1) for x in xs],
                        [None if d is None else d.reshape(-1) for d in dxs])
    return dxs


def add_relu(inputs, out=None):
    """``relu(x0 + x1 + ...)`` for k >= 2 same-shape arrays: a residual connection's add and
    the ReLU after it in one pass (same left-to-right sum as ``merge('add')``; NaN stays NaN,
    -0 becomes +0 as in :func:`relu`). ``out`` may be exactly ``inputs[0]`` or ``inputs[1]``.
    The gradient w.r.t. every input is ``relu_backward(dy, y)``."""
    fn = "add_relu"
    xs = _elementwise_inputs("add", inputs, fn)
    out = check_output(out, xs[0].shape, "%s: out" % fn)
    check_no_overlap(fn, out, "out", _named(xs), in_place_ok=("inputs[0]", "inputs[1]"))
    _ext.add_relu_forward([x.reshape(-1) for x in xs], out.reshape(-1))
    return out


# ---------------------------------------------------------------- concatenate

def _axis(axis, ndim, fn):
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError("%s: axis: expected an int, got %r" % (fn, axis))
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError("%s: axis: expected an int, got %r" % (fn, axis)) from None
    if not -ndim <= axis < ndim:
        raise ValueError("%s: axis %d is out of range for %d-D inputs (expected %d <= axis < "
                         "%d)" % (fn, axis, ndim, -ndim, ndim))
    return axis % ndim


def _concat_geometry(shapes, axis, fn, label="inputs"):
    """(axis, output shape, rows, widths) for concatenating ``shapes`` along ``axis``."""
    first = shapes[0]
    if len(first) == 0:
        raise ValueError("%s: inputs must have at least one axis, got a scalar" % fn)
    axis = _axis(axis, len(first), fn)
    for i, s in enumerate(shapes[1:], start=1):
        if len(s) != len(first) or any(a != b for j, (a, b) in enumerate(zip(s, first))
                                       if j != axis):
            raise ValueError("%s: %s[%d] has shape %s but %s[0] has shape %s; they must "
                             "match on every axis but axis %d"
                             % (fn, label, i, tuple(s), label, tuple(first), axis))
    rows = int(np.prod(first[:axis], dtype=np.int64))
    inner = int(np.prod(first[axis + 1:], dtype=np.int64))
    widths = [int(s[axis]) * inner for s in shapes]
    out_shape = tuple(first[:axis]) + (sum(int(s[axis]) for s in shapes),) \
        + tuple(first[axis + 1:])
    return axis, out_shape, rows, widths


def concatenate(inputs, axis=-1, out=None):
    """Keras ``Concatenate``: k >= 1 arrays joined along ``axis`` (any axis, negative
    counts from the end); they must match on every other axis. ``out`` (optional) must not
    overlap the inputs. Returns the concatenated float32 array."""
    fn = "concatenate"
    xs = _input_list(inputs, fn, 1)
    axis, shape, rows, widths = _concat_geometry([x.shape for x in xs], axis, fn)
    out = check_output(out, shape, "%s: out" % fn)
    check_no_overlap(fn, out, "out", _named(xs))
    _ext.concat_forward([x.reshape(rows, w) for x, w in zip(xs, widths)],
                        out.reshape(rows, sum(widths)))
    return out


def _shape_list(shapes, fn):
    if not isinstance(shapes, (list, tuple)) or len(shapes) < 1:
        raise ValueError("%s: shapes: expected a non-empty list of the inputs' shapes, got %r"
                         % (fn, shapes))
    result = []
    for i, s in enumerate(shapes):
        try:
            t = tuple(operator.index(v) for v in s)
        except TypeError:
            raise ValueError("%s: shapes[%d]: expected a tuple of ints, got %r"
                             % (fn, i, s)) from None
        if any(v < 0 for v in t):
            raise ValueError("%s: shapes[%d]: sizes must be >= 0, got %r" % (fn, i, s))
        result.append(t)
    return result


def concatenate_backward(dy, shapes, axis=-1, need=None, outs=None):
    """Gradients of :func:`concatenate`: ``dy`` split back into arrays of ``shapes`` (the
    forward inputs' shapes) along ``axis``. Returns a list, None where ``need[i]`` is false;
    ``outs`` (optional): preallocated float32 arrays or None, not overlapping ``dy`` or each
    other."""
    fn = "concatenate_backward"
    shapes = _shape_list(shapes, fn)
    axis, shape, rows, widths = _concat_geometry(shapes, axis, fn, "shapes")
    dy = as_float32(dy, "%s: dy" % fn)
    if dy.shape != shape:
        raise ValueError("%s: dy has shape %s, expected %s (the inputs %s joined on axis %d)"
                         % (fn, dy.shape, shape, shapes, axis))
    need = _need_flags(need, len(shapes), fn)
    dxs = _grad_outputs(outs, need, shapes, [(dy, "dy")], fn)
    _ext.concat_backward(dy.reshape(rows, sum(widths)), widths,
                         [None if d is None else d.reshape(rows, w)
                          for d, w in zip(dxs, widths)])
    return dxs


# ---------------------------------------------------------------- zero padding, cropping

def _amounts(value, fn, name):
    """Keras' ZeroPadding2D / Cropping2D argument -> ((top, bottom), (left, right)): an int
    (all four), a pair (symmetric rows, symmetric columns) or a pair of pairs."""
    bad = ("%s: %s: expected an int, a pair of ints or ((top, bottom), (left, right)), "
           "got %r" % (fn, name, value))

    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))

    def is_pair(v):
        return isinstance(v, (list, tuple, np.ndarray)) and len(v) == 2

    if is_int(value):
        pairs = ((int(value),) * 2,) * 2
    elif is_pair(value) and all(is_int(p) or (is_pair(p) and all(map(is_int, p)))
                                for p in value):
        pairs = tuple((int(p), int(p)) if is_int(p) else (int(p[0]), int(p[1]))
                      for p in value)
    else:
        raise ValueError(bad)
    if min(min(p) for p in pairs) < 0:
        raise ValueError("%s: %s: every amount must be >= 0, got %r" % (fn, name, value))
    return pairs


def zero_pad2d(x, padding, out=None):
    """Keras ``ZeroPadding2D`` on NHWC ``x``: ``padding`` = ((top, bottom), (left, right))
    (or an int, or (rows, cols) for symmetric amounts). Returns (N, H + top + bottom,
    W + left + right, C); its gradient is ``crop2d(dy, padding)``."""
    fn = "zero_pad2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    (top, bottom), (left, right) = _amounts(padding, fn, "padding")
    n, h, w, c = x.shape
    out = check_output(out, (n, h + top + bottom, w + left + right, c), "%s: out" % fn)
    check_no_overlap(fn, out, "out", [(x, "x")])
    _ext.pad2d(x, top, bottom, left, right, out)
    return out


def crop2d(x, cropping, out=None):
    """Keras ``Cropping2D`` on NHWC ``x``: ``cropping`` = ((top, bottom), (left, right))
    (or an int, or (rows, cols) for symmetric amounts); at least one row and one column
    must remain. Returns (N, H - top - bottom, W - left - right, C); its gradient is
    ``zero_pad2d(dy, cropping)``."""
    fn = "crop2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    (top, bottom), (left, right) = _amounts(cropping, fn, "cropping")
    n, h, w, c = x.shape
    if top + bottom >= h or left + right >= w:
        raise ValueError("%s: cropping %s leaves no rows or columns of the %dx%d input "
                         "(x has shape %s)" % (fn, ((top, bottom), (left, right)), h, w,
                                               x.shape))
    out = check_output(out, (n, h - top - bottom, w - left - right, c), "%s: out" % fn)
    check_no_overlap(fn, out, "out", [(x, "x")])
    _ext.crop2d(x, top, bottom, left, right, out)
    return out
