"""Shared argument checking for fastcnn.ops: every check happens here, once, in Python.

The C kernels trust their inputs completely, so anything that reaches them must already
have the right dtype (float32), layout (C-contiguous) and shape.
"""
import numbers
import operator

import numpy as np


def as_float32(x, name, ndim=None):
    """``x`` as a C-contiguous float32 array (copying only if needed); checks ``ndim``."""
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous:
        arr = x
    else:
        try:
            arr = np.ascontiguousarray(x, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise TypeError("%s: expected an array of numbers, got %s (%s)"
                            % (name, type(x).__name__, e)) from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError("%s: expected a %d-D array, got shape %s" % (name, ndim, arr.shape))
    return arr


# ----------------------------------------------------------------------------- arguments
# The one place where scalar arguments are checked: by ops (``who`` = the op), the layers'
# constructors (``who`` = the layer name) and the trainer (``who`` = 'fit', ...). Every
# message names who, the argument, and echoes the value: "who: `arg` ... Received arg=...".

def _received(arg, value):
    return "Received %s=%r" % (arg, value)


def positive_int(value, arg, who, default=None):
    """A strictly positive int (``default`` when value is None and a default is given)."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError("%s: `%s` must be a positive integer. %s"
                         % (who, arg, _received(arg, value)))
    return int(value)


def int_tuple(value, arg, who, n=2, minimum=1):
    """An int or a tuple of n ints, each >= minimum (Keras' standardize_tuple)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        tup = (int(value),) * n
    else:
        try:
            tup = tuple(operator.index(v) for v in value)
            ok = len(tup) == n and not any(isinstance(v, bool) for v in value)
        except TypeError:
            ok = False
        if not ok:
            raise ValueError("%s: `%s` must be an int or a tuple of %d ints. %s"
                             % (who, arg, n, _received(arg, value)))
    if any(v < minimum for v in tup):
        raise ValueError("%s: `%s` must hold ints >= %d. %s"
                         % (who, arg, minimum, _received(arg, value)))
    return tup


def padding_mode(value, who, arg="padding"):
    """'valid' or 'same' (any case)."""
    p = value.lower() if isinstance(value, str) else None
    if p not in ("valid", "same"):
        raise ValueError("%s: `%s` must be 'valid' or 'same'. %s"
                         % (who, arg, _received(arg, value)))
    return p


def channels_last(value, who):
    """fastcnn computes NHWC only: data_format must be None or 'channels_last'."""
    if value not in (None, "channels_last"):
        raise ValueError("%s: fastcnn supports only data_format='channels_last' (NHWC). %s"
                         % (who, _received("data_format", value)))
    return "channels_last"


def unsupported(who, **kwargs):
    """Keras arguments fastcnn accepts only at their default (None or False)."""
    for k, v in kwargs.items():
        if v is not None and v is not False:
            raise ValueError("%s: argument `%s` is not supported by fastcnn; leave it at its "
                             "default. %s" % (who, k, _received(k, v if not hasattr(v, "__len__")
                                                                 or isinstance(v, str)
                                                                 else type(v).__name__)))


def one_of(value, arg, who, options):
    """``value`` if it is one of ``options`` (compared with ==, bools excluded)."""
    if isinstance(value, bool) or value not in options:
        raise ValueError("%s: `%s` must be one of %s. %s"
                         % (who, arg, ", ".join(repr(o) for o in options),
                            _received(arg, value)))
    return value


def conv_output_size(size, window, stride, padding):
    """Keras' output length and (before, after) padding along one axis.

    ``same`` pads a total of ``max((out-1)*stride + window - size, 0)``, the extra one (if
    odd) at the end (bottom/right), exactly as TensorFlow/Keras.
    Returns (out, pad_before, pad_after); out may be <= 0 for impossible ``valid`` shapes.
    """
    if padding == "valid":
        return (size - window) // stride + 1 if size >= window else 0, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def check_shape(arr, expected, name):
    """Raise ValueError unless arr.shape == expected (None entries match anything)."""
    ok = arr.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, arr.shape))
    if not ok:
        exp = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"
        raise ValueError("%s: expected shape %s, got %s" % (name, exp, tuple(arr.shape)))


# ---------------------------------------------------------------- output buffers
#
# One rule for every array a kernel writes as it is (``out=`` buffers, gradients,
# workspaces, state updated in place): TypeError when it is not a numpy array at all,
# ValueError for any property of the array (dtype, layout, read-only, shape, overlap).

def describe_array(a):
    """``float64 array (non-contiguous, read-only)``-style description for messages."""
    if isinstance(a, np.ndarray):
        flags = "C-contiguous" if a.flags.c_contiguous else "non-contiguous"
        if not a.flags.writeable:
            flags += ", read-only"
        return "%s array (%s)" % (a.dtype, flags)
    return type(a).__name__


def check_output(out, shape, name, dtype=np.float32):
    """A fresh C-contiguous ``dtype`` array of ``shape`` when ``out`` is None; otherwise
    ``out`` checked to be written as it is: a writeable C-contiguous ``dtype`` ndarray of
    exactly ``shape``. ``shape`` None: any shape (the caller checks the size), and ``out``
    is required (an array updated in place, a workspace).

    ``name`` starts every message, e.g. ``"relu: out"``."""
    dtype = np.dtype(dtype)
    if out is None and shape is not None:
        return np.empty(tuple(int(s) for s in shape), dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError("%s: expected a writeable C-contiguous %s numpy array, got %s"
                        % (name, dtype.name, type(out).__name__))
    if not (out.dtype == dtype and out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("%s: expected a writeable C-contiguous %s array, got %s"
                         % (name, dtype.name, describe_array(out)))
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        if out.shape != shape:
            raise ValueError("%s: expected shape %s, got %s" % (name, shape, out.shape))
    return out


def _same_buffer(a, b):
    return (a.shape == b.shape and a.dtype == b.dtype
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def check_no_overlap(op, out, out_name, inputs, in_place_ok=()):
    """Raise ValueError unless ``out`` is disjoint from every ``(array, name)`` in
    ``inputs`` (None arrays are skipped) or, for names in ``in_place_ok``, exactly the
    same buffer (same data pointer, shape and dtype: both are C-contiguous, so an
    elementwise kernel can run in place)."""
    for arr, name in inputs:
        # may_share_memory: O(1), exact for contiguous arrays; shares_memory can be exponential
        if arr is None or not np.may_share_memory(out, arr):
            continue
        if name in in_place_ok and _same_buffer(out, arr):
            continue
        if name in in_place_ok:
            raise ValueError("%s: %s must be either exactly %s (in place) or not overlap it"
                             % (op, out_name, name))
        raise ValueError("%s: %s must not overlap %s" % (op, out_name, name))


def prepare_output(op, out, out_name, shape, inputs=(), dtype=np.float32, in_place_ok=()):
    """check_output then check_no_overlap: the output ``out_name`` of ``op`` (fresh when
    ``out`` is None), checked against ``inputs``, (array, name) pairs."""
    out = check_output(out, shape, "%s: %s" % (op, out_name), dtype)
    check_no_overlap(op, out, out_name, inputs, in_place_ok)
    return out


def prepare_outputs(op, inputs, specs):
    """``prepare_output`` for several outputs in turn, each also checked against the ones
    before it. ``specs``: (name, array or None, shape); a shape of None means the output is
    not wanted and comes back as None. Returns (the outputs, the (array, name) pairs of the
    ones made, for later overlap checks)."""
    made, arrays = (), []
    for name, out, shape in specs:
        if shape is None:
            arrays.append(None)
            continue
        out = prepare_output(op, out, name, shape, tuple(inputs) + made)
        made += ((out, name),)
        arrays.append(out)
    return arrays, made
