"""Preprocessing layers: Rescaling, RandomFlip, RandomTranslation (Keras 3 names).

The random layers act only while training (identity at inference, as in Keras) and run in
C (``ops.gather_batch``: one pass per batch, on fastcnn's threads). Their random draws come
from a generator seeded by (layer seed, call count), so training is reproducible with
``fastcnn.utils.set_random_seed`` at any thread count and resumes exactly after reloading.
"""
import numbers

import numpy as np

from .. import ops
from .base import Layer, SeededLayer

__all__ = ["Rescaling", "RandomFlip", "RandomTranslation"]


class Rescaling(Layer):
    """``x * scale + offset`` (e.g. ``Rescaling(1./255)`` for uint8 images).

    A model whose first layer is Rescaling can be fed uint8 images directly; ``fit`` then
    keeps the data as uint8 and converts each batch in C, so a float copy of the dataset is
    never made.
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for arg, v in (("scale", scale), ("offset", offset)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
                raise ValueError("%s: `%s` must be a finite number (per-channel values are not "
                                 "supported by fastcnn). Received %s=%r"
                                 % (self.name, arg, arg, v))
        self.scale = float(scale)
        self.offset = float(offset)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        return ops.scale_shift(x, self.scale, self.offset, out=ws.buf("y", x.shape))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        return ops.scale_shift(dy, self.scale, 0.0, out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c.update(scale=self.scale, offset=self.offset)
        return c


class _RandomImageLayer(SeededLayer):
    """Shared seeding and the train-only identity of the random image layers."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_seed(seed)
        self.built = True

    def _rng(self):
        rng = np.random.default_rng([self._seed, self._calls])
        self._calls += 1
        return rng

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        return tuple(input_shape)

    def _apply(self, x, ws, shifts, flips):
        idx = ws.get("index")
        if idx is None or idx.shape[0] != x.shape[0]:
            idx = ws["index"] = np.arange(x.shape[0], dtype=np.int64)
        return ops.gather_batch(x, idx, shifts=shifts, flips=flips, out=ws.buf("y", x.shape))

    def _forward(self, x, ws, training, return_logits):
        ws["active"] = bool(training)
        if not training:
            return x
        return self._augment(x, ws)

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        if not ws["active"]:
            return dy
        return self._augment_backward(dy, ws)


class RandomFlip(_RandomImageLayer):
    """Mirror each training image left-right with probability 1/2.

    Only ``mode="horizontal"`` is supported (the usual CIFAR augmentation); Keras' default
    ``"horizontal_and_vertical"`` raises rather than silently doing less."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode != "horizontal":
            raise ValueError("%s: fastcnn's RandomFlip supports mode='horizontal' only; "
                             "got mode=%r" % (self.name, mode))
        self.mode = mode

    def _augment(self, x, ws):
        flips = (self._rng().random(x.shape[0]) < 0.5).astype(np.uint8)
        ws["flips"] = flips
        return self._apply(x, ws, None, flips)

    def _augment_backward(self, dy, ws):
        # a flip is its own inverse and its own adjoint
        idx = ws["index"]
        return ops.gather_batch(dy, idx, flips=ws["flips"], out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c["mode"] = self.mode
        return c


def _factor_range(value, arg, layer):
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        lo, hi = -abs(float(value)), abs(float(value))
    else:
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError("%s: `%s` must be a float or a (lower, upper) pair, got %r"
                             % (layer, arg, value)) from None
    if not (-1.0 <= lo <= hi <= 1.0):
        raise ValueError("%s: `%s` must lie in [-1, 1] with lower <= upper, got %r"
                         % (layer, arg, value))
    return lo, hi


class RandomTranslation(_RandomImageLayer):
    """Shift each training image by a random whole number of pixels, filling with zeros.

    ``height_factor``/``width_factor`` are fractions of the image size as in Keras (a float f
    means [-f, f]); shifts are whole pixels drawn uniformly from the rounded range, so
    ``RandomTranslation(4/32, 4/32, fill_mode="constant")`` on 32x32 images is the classic
    "pad by 4 and crop randomly" CIFAR augmentation. fastcnn supports only
    ``fill_mode="constant"`` with ``fill_value=0``.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height_factor = _factor_range(height_factor, "height_factor", self.name)
        self.width_factor = _factor_range(width_factor, "width_factor", self.name)
        if fill_mode != "constant" or fill_value != 0.0:
            raise ValueError("%s: fastcnn's RandomTranslation supports only fill_mode='constant' "
                             "with fill_value=0 (zero padding); got fill_mode=%r, fill_value=%r"
                             % (self.name, fill_mode, fill_value))
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError("%s: interpolation must be 'nearest' or 'bilinear' (shifts are whole "
                             "pixels either way); got %r" % (self.name, interpolation))
        self.fill_mode, self.fill_value, self.interpolation = fill_mode, 0.0, interpolation

    def _augment(self, x, ws):
        n, h, w = x.shape[:3]
        rng = self._rng()
        lo_h, hi_h = (int(round(f * h)) for f in self.height_factor)
        lo_w, hi_w = (int(round(f * w)) for f in self.width_factor)
        oy = rng.integers(lo_h, hi_h + 1, size=n, dtype=np.int32)
        ox = rng.integers(lo_w, hi_w + 1, size=n, dtype=np.int32)
        ws["shifts"] = (oy, ox)
        return self._apply(x, ws, (oy, ox), None)

    def _augment_backward(self, dy, ws):
        # the adjoint of a zero-filled shift is the opposite shift, zero-filled
        oy, ox = ws["shifts"]
        return ops.gather_batch(dy, ws["index"], shifts=(-oy, -ox), out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c.update(height_factor=list(self.height_factor), width_factor=list(self.width_factor),
                 fill_mode=self.fill_mode, interpolation=self.interpolation, fill_value=0.0)
        return c
