"""Shape layers (Keras 3 names): ZeroPadding2D, Cropping2D, UpSampling2D (in C), Reshape,
Identity.

Padding's backward is a crop of the gradient and cropping's a zero padding, so the two C
kernels (``ops.zero_pad2d``, ``ops.crop2d``) serve both directions. Reshape and Identity
move no data (a C-order reshape of a contiguous batch is a view).
"""
import numbers
import operator

import numpy as np

from .. import ops
from ..ops._validation import channels_last, int_tuple, one_of
from .base import Layer, _shape_str

__all__ = ["ZeroPadding2D", "Cropping2D", "Reshape", "Identity", "UpSampling2D"]


def _pairs(value, arg, layer):
    """Keras' 2-D padding/cropping argument -> ((top, bottom), (left, right)), ints >= 0."""
    def count(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError("%s: `%s` must hold non-negative ints; received %s=%r"
                             % (layer, arg, arg, value))
        return int(v)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = count(value)
        return ((v, v), (v, v))
    try:
        items = list(value)
    except TypeError:
        items = None
    if items is None or len(items) != 2:
        raise ValueError("%s: `%s` must be an int, a tuple of 2 ints or a tuple of 2 tuples "
                         "of 2 ints; received %s=%r" % (layer, arg, arg, value))
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
        a, b = (count(v) for v in items)
        return ((a, a), (b, b))
    out = []
    for pair in items:
        try:
            p = tuple(pair)
        except TypeError:
            p = ()
        if len(p) != 2:
            raise ValueError("%s: `%s` must be an int, a tuple of 2 ints or a tuple of 2 "
                             "tuples of 2 ints; received %s=%r" % (layer, arg, arg, value))
        out.append((count(p[0]), count(p[1])))
    return tuple(out)


class ZeroPadding2D(Layer):
    """Add rows/columns of zeros around each image (NHWC)."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pairs(padding, "padding", self.name)
        self.data_format = channels_last(data_format, self.name)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        (t, b), (l, r) = self.padding
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], None if h is None else h + t + b,
                None if w is None else w + l + r, input_shape[3])

    def _forward(self, x, ws, training, return_logits):
        return ops.zero_pad2d(x, self.padding,
                              out=ws.buf("y", self.compute_output_shape(x.shape)))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        return ops.crop2d(dy, self.padding, out=ws.buf("dx", ws["x"].shape))

    def get_config(self):
        c = super().get_config()
        c.update(padding=[list(p) for p in self.padding], data_format=self.data_format)
        return c


class Cropping2D(Layer):
    """Remove rows/columns from the edges of each image (NHWC)."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pairs(cropping, "cropping", self.name)
        self.data_format = channels_last(data_format, self.name)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        (t, b), (l, r) = self.cropping
        h, w = input_shape[1], input_shape[2]
        if (h is not None and h - t - b <= 0) or (w is not None and w - l - r <= 0):
            raise ValueError('Layer "%s" (Cropping2D): cropping=%r leaves nothing of an input '
                             "of shape %s" % (self.name, self.cropping, _shape_str(input_shape)))
        return (input_shape[0], None if h is None else h - t - b,
                None if w is None else w - l - r, input_shape[3])

    def _forward(self, x, ws, training, return_logits):
        return ops.crop2d(x, self.cropping, out=ws.buf("y", self.compute_output_shape(x.shape)))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        return ops.zero_pad2d(dy, self.cropping, out=ws.buf("dx", ws["x"].shape))

    def get_config(self):
        c = super().get_config()
        c.update(cropping=[list(p) for p in self.cropping], data_format=self.data_format)
        return c


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1), in C order."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            shape = tuple(operator.index(d) for d in target_shape)
        except TypeError:
            raise ValueError("%s: target_shape must be a tuple of ints, got %r"
                             % (self.name, target_shape)) from None
        if sum(d == -1 for d in shape) > 1 or any(d == 0 or d < -1 for d in shape):
            raise ValueError("%s: target_shape must hold positive ints and at most one -1, "
                             "got %r" % (self.name, target_shape))
        self.target_shape = shape
        self.built = True

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return (input_shape[0],) + tuple(None if d == -1 else d for d in self.target_shape)
        size = int(np.prod(rest, dtype=np.int64))
        known = int(np.prod([d for d in self.target_shape if d != -1], dtype=np.int64))
        if -1 in self.target_shape:
            if known == 0 or size % known:
                self._bad(input_shape)
            out = tuple(size // known if d == -1 else d for d in self.target_shape)
        else:
            if known != size:
                self._bad(input_shape)
            out = self.target_shape
        return (input_shape[0],) + out

    def _bad(self, input_shape):
        raise ValueError('Layer "%s" (Reshape): the total size of the target shape %s does not '
                         "match the input shape %s" % (self.name, self.target_shape,
                                                       _shape_str(input_shape)))

    def _forward(self, x, ws, training, return_logits):
        return x.reshape(self.compute_output_shape(x.shape))

    def _backward(self, dy, ws, need_input_grad):
        return dy.reshape(ws["x"].shape) if need_input_grad else None

    def get_config(self):
        c = super().get_config()
        c["target_shape"] = list(self.target_shape)
        return c


class Identity(Layer):
    """Returns its input unchanged (a named no-op, e.g. a placeholder branch)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        return x

    def _backward(self, dy, ws, need_input_grad):
        return dy if need_input_grad else None


class UpSampling2D(Layer):
    """Repeat rows and columns of NHWC images (Keras 3's ``UpSampling2D``).

    ``interpolation="nearest"`` repeats each pixel ``size`` times (Keras' ``ops.repeat``);
    ``"bilinear"`` matches Keras 3 on JAX (``jax.image.resize``: half-pixel centres, edges
    clamped). Both run in C, forward and backward.

    Args:
        size: int or ``(rows, cols)`` up-sampling factors, default ``(2, 2)``.
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        interpolation: ``"nearest"`` (default) or ``"bilinear"``; Keras' other modes
            (``"bicubic"``, ``"lanczos3"``, ``"lanczos5"``) raise a ValueError.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: for a bad argument or a non-4-D input.

    Example:
        >>> fastcnn.layers.UpSampling2D((2, 3)).compute_output_shape((None, 4, 5, 8))
        (None, 8, 15, 8)
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = int_tuple(size, "size", self.name)
        self.data_format = channels_last(data_format, self.name)
        self.interpolation = one_of(
            interpolation.lower() if isinstance(interpolation, str) else interpolation,
            "interpolation", self.name, ("nearest", "bilinear"))
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        h, w = input_shape[1], input_shape[2]
        return (input_shape[0], None if h is None else h * self.size[0],
                None if w is None else w * self.size[1], input_shape[3])

    def _forward(self, x, ws, training, return_logits):
        return ops.upsample2d(x, self.size, self.interpolation,
                              out=ws.buf("y", self.compute_output_shape(x.shape)))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        return ops.upsample2d_backward(dy, x.shape, self.size, self.interpolation,
                                       dx=ws.buf("dx", x.shape))

    def get_config(self):
        c = super().get_config()
        c.update(size=list(self.size), data_format=self.data_format,
                 interpolation=self.interpolation)
        return c
