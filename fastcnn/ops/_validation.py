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


def as_int_pair(value, name, minimum=1):
    """An int or a pair of ints -> tuple of two ints >= minimum (Keras' conv/pool arguments)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(operator.index(v) for v in value)
        except TypeError:
            raise ValueError("%s: expected an int or a tuple of 2 ints, got %r"
                             % (name, value)) from None
        if len(pair) != 2:
            raise ValueError("%s: expected an int or a tuple of 2 ints, got %r" % (name, value))
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError("%s: every value must be >= %d, got %r" % (name, minimum, value))
    return pair


def normalize_padding(padding, name="padding"):
    p = str(padding).lower() if isinstance(padding, str) else None
    if p not in ("valid", "same"):
        raise ValueError("%s: expected 'valid' or 'same', got %r" % (name, padding))
    return p


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
