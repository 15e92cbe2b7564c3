"""2-D pooling on NHWC float32 tensors (Keras ``MaxPooling2D`` / ``AveragePooling2D`` /
``GlobalAveragePooling2D`` semantics), running on fastcnn's C kernels.

Geometry follows Keras exactly: ``strides=None`` means ``strides = pool_size``; ``valid``
keeps only whole windows (a pool larger than the input is a ValueError, as Keras raises for
a non-positive output size); ``same`` gives ``ceil(size / stride)`` outputs and pads
``max((out - 1) * stride + pool - size, 0)`` rows/cols, the odd one at the bottom/right.
Padding never takes part in a window: max pooling ignores it (as if ``-inf``) and average
pooling divides each window by its number of non-padding elements (TF/Keras behaviour).

Max pooling records, for every output, where its maximum came from: ``indices`` is an int32
array of the output's shape holding the flat offset ``h*W*C + w*C + c`` inside that image.
When several elements of a window hold the same maximum (common on images: flat regions give
bit-identical values), the index - and so the whole gradient - goes to the FIRST of them in
row-major window order, as TensorFlow and PyTorch do. NaN propagates: a window containing a
NaN outputs NaN (the first NaN of the window is the recorded index), as TensorFlow does.
"""
import operator

import numpy as np

from .. import _ext
from ._validation import (as_float32, int_tuple, conv_output_size, padding_mode,
                          prepare_output)

__all__ = [
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "global_max_pool2d",
    "global_max_pool2d_backward",
]

_INT32_MAX = 2**31 - 1


def _geometry(fname, H, W, pool_size, strides, padding):
    """(ph, pw, sh, sw, pad_top, pad_left, OH, OW) with Keras' rules; ValueError if impossible."""
    ph, pw = int_tuple(pool_size, "pool_size", fname)
    if strides is None:
        sh, sw = ph, pw
    else:
        sh, sw = int_tuple(strides, "strides", fname)
    padding = padding_mode(padding, fname)
    OH, pt, _ = conv_output_size(H, ph, sh, padding)
    OW, pl, _ = conv_output_size(W, pw, sw, padding)
    if OH <= 0 or OW <= 0:
        if padding == "valid":
            raise ValueError(
                "%s: pool_size (%d, %d) does not fit in the %dx%d input with padding='valid' "
                "(the output would be empty); use a smaller pool or padding='same'"
                % (fname, ph, pw, H, W))
        raise ValueError("%s: the input has no rows or columns (H=%d, W=%d)" % (fname, H, W))
    return ph, pw, sh, sw, pt, pl, OH, OW


def _input_shape(value, fname):
    try:
        shape = tuple(operator.index(v) for v in value)
    except TypeError:
        raise ValueError("%s: input_shape: expected 4 ints (N, H, W, C), got %r"
                         % (fname, value)) from None
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError("%s: input_shape: expected 4 non-negative ints (N, H, W, C), got %r"
                         % (fname, value))
    return shape


def _check_dy(dy, expected, fname):
    if dy.shape != tuple(expected):
        raise ValueError("%s: dy: expected shape %s for input_shape and pooling given, got %s"
                         % (fname, tuple(expected), dy.shape))


def max_pool2d(x, pool_size=(2, 2), strides=None, padding="valid", return_indices=False,
               out=None, indices=None):
    """Max pooling of ``x`` (N, H, W, C) -> ``y`` (N, OH, OW, C), or ``(y, indices)``.

    ``indices`` (int32, shape of ``y``) holds, for each output, the flat offset
    ``h*W*C + w*C + c`` within its image of the element the maximum came from (the first
    one in row-major window order on ties; NaN wins). Pass it to :func:`max_pool2d_backward`.
    ``out`` / ``indices`` may be preallocated (float32 / int32, C-contiguous, right shape);
    a given ``indices`` is always filled, but only returned when ``return_indices`` is set.

    Example:

        >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)   # NHWC
        >>> fastcnn.ops.max_pool2d(x)[0, :, :, 0]
        array([[ 5.,  7.],
               [13., 15.]], dtype=float32)
    """
    fname = "max_pool2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fname, ndim=4)
    N, H, W, C = x.shape
    ph, pw, sh, sw, pt, pl, OH, OW = _geometry(fname, H, W, pool_size, strides, padding)
    want_indices = bool(return_indices) or indices is not None
    if want_indices and H * W * C > _INT32_MAX:
        raise ValueError("%s: an image of %dx%dx%d elements is too large for int32 indices"
                         % (fname, H, W, C))
    y = prepare_output(fname, out, "out", (N, OH, OW, C), [(x, "x")])
    ind = None
    if want_indices:
        ind = prepare_output(fname, indices, "indices", (N, OH, OW, C),
                             [(x, "x"), (y, "out")], dtype=np.int32)
    _ext.max_pool2d_forward(x, ph, pw, sh, sw, pt, pl, y, ind)
    return (y, ind) if return_indices else y


def max_pool2d_backward(dy, indices, input_shape, dx=None, relu_output=None):
    """Gradient of :func:`max_pool2d`: ``dx`` of shape ``input_shape`` (N, H, W, C).

    Each ``dy`` element goes to the single input element its ``indices`` entry names
    (``dy`` and ``indices`` have the output's shape (N, OH, OW, C)); gradients of
    overlapping windows that chose the same element add up. ``dx`` may be preallocated.

    ``relu_output``: the pool's output y (shape of dy), when the pool's input came out of
    a ReLU. Then only windows whose max is > 0 pass their gradient, so ``dx`` is the
    gradient of the ReLU's *input*: ``relu_backward(max_pool2d_backward(dy), x)`` in one
    pass, with the same values.
    """
    fname = "max_pool2d_backward"
    N, H, W, C = _input_shape(input_shape, fname)
    dy = as_float32(dy, "%s: dy (N, OH, OW, C)" % fname, ndim=4)
    if dy.shape[0] != N or dy.shape[3] != C:
        raise ValueError("%s: dy: expected shape (%d, OH, OW, %d) to match input_shape %s, "
                         "got %s" % (fname, N, C, (N, H, W, C), dy.shape))
    if not isinstance(indices, np.ndarray):
        raise TypeError("%s: indices must be the int32 array returned by max_pool2d, got %s"
                        % (fname, type(indices).__name__))
    if indices.shape != dy.shape:
        raise ValueError("%s: indices: expected the shape of dy %s, got %s"
                         % (fname, dy.shape, indices.shape))
    size = H * W * C
    if indices.dtype != np.int32 or not indices.flags.c_contiguous:
        if indices.dtype.kind not in "iu":
            raise TypeError("%s: indices must be an integer (int32) array, got dtype %s"
                            % (fname, indices.dtype))
        if indices.size and (indices.min() < 0 or indices.max() >= size):
            raise ValueError("%s: indices must lie in [0, H*W*C) = [0, %d)" % (fname, size))
        indices = np.ascontiguousarray(indices, dtype=np.int32)
    if relu_output is not None:
        relu_output = as_float32(relu_output, "%s: relu_output (the pool's output y)" % fname,
                                 ndim=4)
        if relu_output.shape != dy.shape:
            raise ValueError("%s: relu_output: expected the shape of dy %s, got %s"
                             % (fname, dy.shape, relu_output.shape))
    dx = prepare_output(fname, dx, "dx", (N, H, W, C),
                        [(dy, "dy"), (indices, "indices"), (relu_output, "relu_output")])
    if not _ext.max_pool2d_backward(dy, indices, dx, relu_output):
        raise ValueError("%s: indices must lie in [0, H*W*C) = [0, %d) (offsets within one "
                         "image, as returned by max_pool2d on an input of shape %s)"
                         % (fname, size, (N, H, W, C)))
    return dx


def avg_pool2d(x, pool_size=(2, 2), strides=None, padding="valid", out=None):
    """Average pooling of ``x`` (N, H, W, C) -> (N, OH, OW, C).

    With ``same`` padding each window is divided by its number of non-padding elements
    (Keras/TF), so border outputs are true means of the pixels they cover.
    """
    fname = "avg_pool2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fname, ndim=4)
    N, H, W, C = x.shape
    ph, pw, sh, sw, pt, pl, OH, OW = _geometry(fname, H, W, pool_size, strides, padding)
    y = prepare_output(fname, out, "out", (N, OH, OW, C), [(x, "x")])
    _ext.avg_pool2d_forward(x, ph, pw, sh, sw, pt, pl, y)
    return y


def avg_pool2d_backward(dy, input_shape, pool_size=(2, 2), strides=None, padding="valid",
                        dx=None):
    """Gradient of :func:`avg_pool2d` (same pooling arguments): ``dx`` of ``input_shape``.

    Every input element receives ``dy / count`` from each window that covers it.
    """
    fname = "avg_pool2d_backward"
    N, H, W, C = _input_shape(input_shape, fname)
    ph, pw, sh, sw, pt, pl, OH, OW = _geometry(fname, H, W, pool_size, strides, padding)
    dy = as_float32(dy, "%s: dy (N, OH, OW, C)" % fname, ndim=4)
    _check_dy(dy, (N, OH, OW, C), fname)
    dx = prepare_output(fname, dx, "dx", (N, H, W, C), [(dy, "dy")])
    _ext.avg_pool2d_backward(dy, ph, pw, sh, sw, pt, pl, dx)
    return dx


def global_avg_pool2d(x, out=None):
    """Mean over H and W: ``x`` (N, H, W, C) -> (N, C) (summed in double precision)."""
    fname = "global_avg_pool2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fname, ndim=4)
    N, H, W, C = x.shape
    if H == 0 or W == 0:
        raise ValueError("%s: cannot average over an empty %dx%d image" % (fname, H, W))
    y = prepare_output(fname, out, "out", (N, C), [(x, "x")])
    _ext.global_avg_pool2d_forward(x, y)
    return y


def global_avg_pool2d_backward(dy, input_shape, dx=None):
    """Gradient of :func:`global_avg_pool2d`: ``dx[n, h, w, c] = dy[n, c] / (H * W)``."""
    fname = "global_avg_pool2d_backward"
    N, H, W, C = _input_shape(input_shape, fname)
    if H == 0 or W == 0:
        raise ValueError("%s: cannot average over an empty %dx%d image" % (fname, H, W))
    dy = as_float32(dy, "%s: dy (N, C)" % fname, ndim=2)
    if dy.shape != (N, C):
        raise ValueError("%s: dy: expected shape %s, got %s" % (fname, (N, C), dy.shape))
    dx = prepare_output(fname, dx, "dx", (N, H, W, C), [(dy, "dy")])
    _ext.global_avg_pool2d_backward(dy, dx)
    return dx


def global_max_pool2d(x, out=None):
    """Max over H and W: ``x`` (N, H, W, C) -> (N, C); a NaN in a channel gives NaN.

    Args:
        x: (N, H, W, C) float32 (converted if needed).
        out: optional writeable C-contiguous float32 (N, C) output.

    Returns:
        y (N, C) float32.

    Raises:
        ValueError: for an input that is not 4-D or has an empty image.
    """
    fname = "global_max_pool2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fname, ndim=4)
    N, H, W, C = x.shape
    if H == 0 or W == 0:
        raise ValueError("%s: cannot take the max over an empty %dx%d image" % (fname, H, W))
    y = prepare_output(fname, out, "out", (N, C), [(x, "x")])
    _ext.global_max_pool2d_forward(x, y)
    return y


def global_max_pool2d_backward(dy, x, y, dx=None):
    """Gradient of :func:`global_max_pool2d` as JAX/TensorFlow differentiate a max: each
    channel's ``dy`` is split equally between the positions holding its maximum
    (``dx = dy * (x == y) / count(x == y)``).

    Args:
        dy: (N, C), the output gradient.
        x: (N, H, W, C), the forward's input.
        y: (N, C), the forward's output.
        dx: optional writeable C-contiguous float32 output of x's shape.

    Returns:
        dx (N, H, W, C) float32.

    Raises:
        ValueError: for inconsistent shapes.
    """
    fname = "global_max_pool2d_backward"
    x = as_float32(x, "%s: x (N, H, W, C)" % fname, ndim=4)
    N, H, W, C = x.shape
    if H == 0 or W == 0:
        raise ValueError("%s: cannot take the max over an empty %dx%d image" % (fname, H, W))
    y = as_float32(y, "%s: y (N, C)" % fname, ndim=2)
    dy = as_float32(dy, "%s: dy (N, C)" % fname, ndim=2)
    for arr, name in ((y, "y"), (dy, "dy")):
        if arr.shape != (N, C):
            raise ValueError("%s: %s: expected shape %s, got %s"
                             % (fname, name, (N, C), arr.shape))
    dx = prepare_output(fname, dx, "dx", x.shape, [(dy, "dy"), (x, "x"), (y, "y")])
    _ext.global_max_pool2d_backward(x, y, dy, dx)
    return dx
