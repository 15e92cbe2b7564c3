"""Image preprocessing and augmentation layers (Keras 3 names, arguments and defaults).

``Rescaling``, ``Resizing`` and ``CenterCrop`` act always; the random layers (``RandomFlip``,
``RandomTranslation``, ``RandomRotation``, ``RandomZoom``, ``RandomCrop``, ``RandomContrast``,
``RandomBrightness``) act only while training and pass inputs through at inference, as in
Keras (``RandomCrop`` centre-crops and resizes at inference, as Keras does). Called directly
on a batch they augment unless ``training=False`` (Keras 3's default); inside a model,
``fit`` augments and ``predict``/``evaluate``/``model(x)`` do not (Keras' ``model(x)``
would augment: pass ``training=True`` for that). Each batch's
random parameters come from a generator seeded by (layer seed, call count) and the C kernels
(``fastcnn.ops.image``, ``ops.gather_batch``) apply them image by image, so training is
reproducible with ``fastcnn.utils.set_random_seed`` at any thread count and resumes exactly
after reloading. Transforms, factor conventions and fill modes follow Keras 3 (JAX backend);
deliberate differences are noted per layer.
"""
import math
import numbers

import numpy as np

from .. import ops
from ..ops._validation import channels_last, one_of
from .base import Layer, SeededLayer

__all__ = ["Rescaling", "Resizing", "CenterCrop", "RandomFlip", "RandomTranslation",
           "RandomRotation", "RandomZoom", "RandomCrop", "RandomContrast", "RandomBrightness"]

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


def _number(value, arg, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError("%s: `%s` must be a finite number. Received %s=%r"
                         % (who, arg, arg, value))
    return float(value)


def _size(value, arg, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError("%s: `%s` must be a positive int. Received %s=%r"
                         % (who, arg, arg, value))
    return int(value)


def _factor_range(value, arg, who, lo=-1.0, hi=1.0, lo_open=False, scalar_lower=None):
    """(lower, upper) from a float f (-> [-|f|, |f|], or [scalar_lower(f), |f|]) or a pair,
    each end inside [lo, hi] (or (lo, hi] with lo_open)."""
    bound = "%s%g, %g]" % ("(" if lo_open else "[", lo, hi)

    def inside(v):
        return (lo < v if lo_open else lo <= v) and v <= hi
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        if not (np.isfinite(v) and inside(v)):
            raise ValueError("%s: `%s` must be a float in %s or a (lower, upper) pair in that "
                             "range. Received %s=%r" % (who, arg, bound, arg, value))
        v = abs(v)
        return (scalar_lower(v) if scalar_lower else -v), v
    try:
        pair = [float(v) for v in value]
    except (TypeError, ValueError):
        pair = None
    if pair is None or len(pair) != 2 or not all(np.isfinite(v) and inside(v) for v in pair):
        raise ValueError("%s: `%s` must be a float in %s or a (lower, upper) pair in that "
                         "range. Received %s=%r" % (who, arg, bound, arg, value))
    return tuple(sorted(pair))


class Rescaling(Layer):
    """``x * scale + offset`` (e.g. ``Rescaling(1./255)`` for uint8 images).

    A model whose first layer is Rescaling can be fed uint8 images directly; ``fit`` then
    keeps the data as uint8 and converts each batch in C, so a float copy of the dataset is
    never made.

    Args:
        scale: the multiplier (a number; per-channel values are not supported).
        offset: added after scaling.
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


class _ImageLayer(Layer):
    """Shared shape checks of the image layers (4-D NHWC input)."""

    def _init_image(self, data_format):
        channels_last(data_format, self.name)

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        return tuple(input_shape)


class _CropOrResize(_ImageLayer):
    """A fixed-size output: a crop where it fits, else Keras' centre-crop-and-resize."""

    def _init_size(self, height, width):
        self.height = _size(height, "height", self.name)
        self.width = _size(width, "width", self.name)

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _crop(self, x, ws, top, left):
        ws["crop"] = (top, left)
        return ops.crop_images(x, top, left, self.height, self.width,
                               out=ws.buf("y", (x.shape[0], self.height, self.width,
                                                x.shape[3])))

    def _smart_resize(self, x, ws):
        ws["crop"] = None
        return ops.resize(x, (self.height, self.width), "bilinear", crop_to_aspect_ratio=True,
                          out=ws.buf("y", (x.shape[0], self.height, self.width, x.shape[3])))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        if ws.get("crop") is None:
            return ops.resize_backward(dy, x.shape, "bilinear", crop_to_aspect_ratio=True,
                                       out=ws.buf("dx", x.shape))
        top, left = ws["crop"]
        return ops.crop_images_backward(dy, top, left, x.shape, out=ws.buf("dx", x.shape))


class CenterCrop(_CropOrResize):
    """Crops the centre ``height`` x ``width`` of each image (training and inference).

    An image smaller than the target in either dimension is centre-cropped to the target's
    aspect ratio and resized (bilinear), as Keras does.

    Args:
        height: output height.
        width: output width.
        data_format: only ``"channels_last"`` (or None).
    """

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._init_image(data_format)
        self._init_size(height, width)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        h, w = x.shape[1:3]
        if h >= self.height and w >= self.width:
            return self._crop(x, ws, (h - self.height) // 2, (w - self.width) // 2)
        return self._smart_resize(x, ws)

    def get_config(self):
        c = super().get_config()
        c.update(height=self.height, width=self.width, data_format="channels_last")
        return c


class Resizing(_ImageLayer):
    """Resizes images to ``height`` x ``width`` (training and inference), as
    ``keras.layers.Resizing`` on the JAX backend (half-pixel sampling).

    Args:
        height, width: output size.
        interpolation: ``"bilinear"`` (default) or ``"nearest"``; Keras' bicubic/lanczos
            methods are not supported.
        crop_to_aspect_ratio: resize the largest centred window with the target aspect ratio
            (no distortion).
        pad_to_aspect_ratio: pad with ``fill_value`` to the target aspect ratio first.
        fill_mode: only ``"constant"`` (as Keras).
        fill_value: the padding value.
        antialias: widen the bilinear filter when downsampling (Keras' default False).
        data_format: only ``"channels_last"`` (or None).

    Raises:
        ValueError: bad sizes or options, or both aspect-ratio options.
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._init_image(data_format)
        self.height = _size(height, "height", self.name)
        self.width = _size(width, "width", self.name)
        self.interpolation = one_of(interpolation, "interpolation", self.name, _INTERPOLATIONS)
        self.fill_mode = one_of(fill_mode, "fill_mode", self.name, ("constant",))
        self.fill_value = _number(fill_value, "fill_value", self.name)
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError("%s: only one of `pad_to_aspect_ratio` and `crop_to_aspect_ratio` "
                             "can be True" % self.name)
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.antialias = bool(antialias)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _forward(self, x, ws, training, return_logits):
        return ops.resize(x, (self.height, self.width), self.interpolation, self.antialias,
                          self.crop_to_aspect_ratio, self.pad_to_aspect_ratio, self.fill_mode,
                          self.fill_value,
                          out=ws.buf("y", (x.shape[0], self.height, self.width, x.shape[3])))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        return ops.resize_backward(dy, x.shape, self.interpolation, self.antialias,
                                   self.crop_to_aspect_ratio, self.pad_to_aspect_ratio,
                                   out=ws.buf("dx", x.shape))

    def get_config(self):
        c = super().get_config()
        c.update(height=self.height, width=self.width, interpolation=self.interpolation,
                 crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                 pad_to_aspect_ratio=self.pad_to_aspect_ratio, fill_mode=self.fill_mode,
                 fill_value=self.fill_value, antialias=self.antialias,
                 data_format="channels_last")
        return c


class _RandomImageLayer(SeededLayer, _ImageLayer):
    """Shared seeding and the train-only identity of the random image layers."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._init_seed(seed)
        self._init_image(data_format)
        self.built = True

    def __call__(self, inputs, training=True):
        """Augment a batch (``training=True``, the default when the layer is called directly,
        as in Keras 3) or pass it through (``training=False``); on symbolic tensors, add the
        layer to a graph, where the model decides (``fit`` augments, ``predict`` does not).

        Args:
            inputs: a batch of images, or a symbolic tensor.
            training: whether to augment.

        Returns:
            The (augmented) batch, or the symbolic output.
        """
        return super().__call__(inputs, training=training)

    def _rng(self):
        rng = np.random.default_rng([self._seed, self._calls])
        self._calls += 1
        return rng

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

    def get_config(self):
        c = super().get_config()
        c["data_format"] = "channels_last"
        return c


class RandomFlip(_RandomImageLayer):
    """Flips each training image with probability 1/2.

    ``mode="horizontal_and_vertical"`` (Keras' default) flips both axes of a chosen image
    together, as Keras 3 does (one draw per image).

    Args:
        mode: ``"horizontal"``, ``"vertical"`` or ``"horizontal_and_vertical"``.
        seed: an int for reproducible draws (default: from fastcnn's random state).
    """

    _CODES = {"horizontal": 1, "vertical": 2, "horizontal_and_vertical": 3}

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = one_of(mode, "mode", self.name, tuple(self._CODES))

    def _flips(self, x, ws):
        flips = (self._rng().random(x.shape[0]) < 0.5).astype(np.uint8)
        if self.mode != "horizontal":
            flips *= np.uint8(self._CODES[self.mode])
        ws["flips"] = flips
        return flips

    def _index(self, ws, n):
        idx = ws.get("index")
        if idx is None or idx.shape[0] != n:
            idx = ws["index"] = np.arange(n, dtype=np.int64)
        return idx

    def _augment(self, x, ws):
        flips = self._flips(x, ws)
        out = ws.buf("y", x.shape)
        if self.mode == "horizontal":  # the batch-assembly kernel's mirror: one pass
            return ops.gather_batch(x, self._index(ws, x.shape[0]), flips=flips, out=out)
        return ops.crop_images(x, 0, 0, x.shape[1], x.shape[2], flips=flips, out=out)

    def _augment_backward(self, dy, ws):
        # a flip is its own inverse and its own adjoint
        out = ws.buf("dx", dy.shape)
        if self.mode == "horizontal":
            return ops.gather_batch(dy, self._index(ws, dy.shape[0]), flips=ws["flips"],
                                    out=out)
        return ops.crop_images(dy, 0, 0, dy.shape[1], dy.shape[2], flips=ws["flips"], out=out)

    def get_config(self):
        c = super().get_config()
        c["mode"] = self.mode
        return c


class _AffineLayer(_RandomImageLayer):
    """A random per-image affine transform applied by ``ops.affine_transform``."""

    def _init_sampling(self, fill_mode, interpolation, fill_value):
        self.fill_mode = one_of(fill_mode, "fill_mode", self.name, _FILL_MODES)
        self.interpolation = one_of(interpolation, "interpolation", self.name, _INTERPOLATIONS)
        self.fill_value = _number(fill_value, "fill_value", self.name)

    def _augment(self, x, ws):
        t = self.transforms(self._rng(), x.shape[0], x.shape[1], x.shape[2])
        ws["transform"] = t
        return ops.affine_transform(x, t, self.interpolation, self.fill_mode, self.fill_value,
                                    out=ws.buf("y", x.shape))

    def _augment_backward(self, dy, ws):
        return ops.affine_transform_backward(dy, ws["transform"], self.interpolation,
                                             self.fill_mode, out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c.update(fill_mode=self.fill_mode, interpolation=self.interpolation,
                 fill_value=self.fill_value)
        return c


class RandomTranslation(_AffineLayer):
    """Shifts each training image by a random fraction of its size (Keras' formula: the
    shift is ``uniform(lower, upper) * height`` pixels, continuous, then sampled with
    ``interpolation``).

    With ``interpolation="nearest"`` and ``fill_mode="constant"`` this is the classic
    "pad and crop" CIFAR augmentation (whole-pixel shifts, zero fill).

    Args:
        height_factor: a float f (shifts in [-f, f] of the height; positive moves the image
            down) or a (lower, upper) pair, in [-1, 1].
        width_factor: the same along the width (positive moves right).
        fill_mode: ``"reflect"`` (default), ``"wrap"``, ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` (default) or ``"nearest"``.
        seed: an int for reproducible draws.
        fill_value: the value outside the image with ``fill_mode="constant"``.

    Raises:
        ValueError: a factor outside [-1, 1], an unknown fill mode or interpolation.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height_factor = _factor_range(height_factor, "height_factor", self.name)
        self.width_factor = _factor_range(width_factor, "width_factor", self.name)
        self._init_sampling(fill_mode, interpolation, fill_value)

    def _augment(self, x, ws):
        if self.interpolation != "nearest" or self.fill_mode != "constant" or self.fill_value:
            ws["shifts"] = None
            return super()._augment(x, ws)
        t = self.transforms(self._rng(), x.shape[0], x.shape[1], x.shape[2])
        ws["transform"] = t
        shifts = _whole_pixel_shifts(t)
        ws["shifts"] = shifts
        if shifts is None:  # a shift near half a pixel: the general kernel decides the ties
            return ops.affine_transform(x, t, "nearest", "constant", 0.0,
                                        out=ws.buf("y", x.shape))
        idx = ws.get("index")
        if idx is None or idx.shape[0] != x.shape[0]:
            idx = ws["index"] = np.arange(x.shape[0], dtype=np.int64)
        # the batch-assembly kernel's zero-filled whole-pixel shift: the same numbers as
        # the general kernel, in one copy
        return ops.gather_batch(x, idx, shifts=shifts, out=ws.buf("y", x.shape))

    def _augment_backward(self, dy, ws):
        shifts = ws["shifts"]
        if shifts is None:
            return super()._augment_backward(dy, ws)
        # the adjoint of a zero-filled shift is the opposite shift, zero-filled
        return ops.gather_batch(dy, ws["index"], shifts=(-shifts[0], -shifts[1]),
                                out=ws.buf("dx", dy.shape))

    def transforms(self, rng, n, h, w):
        """Per-image transforms for a batch of n (h, w) images drawn from ``rng``."""
        f32 = np.float32
        dy = rng.uniform(*self.height_factor, size=n).astype(f32) * f32(h)
        dx = rng.uniform(*self.width_factor, size=n).astype(f32) * f32(w)
        t = np.zeros((n, 8), f32)
        t[:, 0] = t[:, 4] = 1
        t[:, 2], t[:, 5] = -dx, -dy
        return t

    def get_config(self):
        c = super().get_config()
        c.update(height_factor=list(self.height_factor), width_factor=list(self.width_factor))
        return c


def _whole_pixel_shifts(t):
    """(oy, ox) int32 shifts equal to nearest sampling through translations t, or None when
    an offset lies within 0.01 of a half pixel (where float32 rounding of x + offset could
    pick the other neighbour than rounding the offset alone)."""
    off = t[:, [5, 2]].astype(np.float64)
    frac = np.abs(off) - np.floor(np.abs(off))
    if np.any(np.abs(frac - 0.5) < 0.01):
        return None
    r = (np.sign(off) * np.floor(np.abs(off) + 0.5)).astype(np.int32)  # half away from zero
    return np.ascontiguousarray(r[:, 0]), np.ascontiguousarray(r[:, 1])


def rotation_transforms(angles_deg, h, w):
    """Keras' rotation matrices about the image centre for angles in degrees (float32, in
    ``_compute_affine_matrix``'s operation order)."""
    f32 = np.float32
    a = np.asarray(angles_deg, f32) * f32(math.pi / 180.0)
    cx, cy = f32(0.5) * (f32(w) - 1), f32(0.5) * (f32(h) - 1)
    cos, sin = np.cos(a), np.sin(a)
    zero = np.zeros_like(a)
    a0 = cos + zero * sin
    a1 = -sin + zero * cos
    b0 = zero * cos + sin
    b1 = zero * -sin + cos
    t = np.zeros((a.shape[0], 8), f32)
    t[:, 0], t[:, 1], t[:, 3], t[:, 4] = a0, a1, b0, b1
    t[:, 2] = ((zero + cx) - cx * a0) - cy * a1
    t[:, 5] = ((zero + cy) - cx * b0) - cy * b1
    return t


class RandomRotation(_AffineLayer):
    """Rotates each training image about its centre by a random angle.

    ``factor`` is a fraction of a full turn (as Keras: 0.1 means up to +-36 degrees);
    positive angles rotate counter-clockwise.

    Args:
        factor: a float f (angles in [-f, f] x 360 degrees) or a (lower, upper) pair, in
            [-1, 1] (fastcnn checks both ends; Keras only their order).
        fill_mode: ``"reflect"`` (default), ``"wrap"``, ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` (default) or ``"nearest"``.
        seed: an int for reproducible draws.
        fill_value: the value outside the image with ``fill_mode="constant"``.

    Raises:
        ValueError: a factor outside [-1, 1], an unknown fill mode or interpolation.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_range(factor, "factor", self.name)
        self._init_sampling(fill_mode, interpolation, fill_value)

    def transforms(self, rng, n, h, w):
        """Per-image transforms for a batch of n (h, w) images drawn from ``rng``."""
        angles = rng.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, size=n)
        return rotation_transforms(angles.astype(np.float32), h, w)

    def get_config(self):
        c = super().get_config()
        c["factor"] = list(self.factor)
        return c


def zoom_transforms(height_zoom, width_zoom, h, w):
    """Keras' zoom matrices (zoom > 1 shows a larger area: zooms out), float32."""
    f32 = np.float32
    zy, zx = np.asarray(height_zoom, f32), np.asarray(width_zoom, f32)
    t = np.zeros((zy.shape[0], 8), f32)
    t[:, 0], t[:, 4] = zx, zy
    t[:, 2] = ((f32(w) - f32(1)) / f32(2)) * (f32(1) - zx)
    t[:, 5] = ((f32(h) - f32(1)) / f32(2)) * (f32(1) - zy)
    return t


class RandomZoom(_AffineLayer):
    """Zooms each training image about its centre by a random factor.

    As Keras: a factor drawn from ``1 + [lower, upper]`` scales the sampled area, so negative
    factors zoom in (enlarge) and positive ones zoom out; ``width_factor=None`` zooms both
    axes by the same draw (keeping the aspect ratio).

    Args:
        height_factor: a float f (zoom in [-f, f]) or a (lower, upper) pair, in (-1, 1].
        width_factor: the same for the width, or None (follow the height).
        fill_mode: ``"reflect"`` (default), ``"wrap"``, ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` (default) or ``"nearest"``.
        seed: an int for reproducible draws.
        fill_value: the value outside the image with ``fill_mode="constant"``.

    Raises:
        ValueError: a factor outside (-1, 1], an unknown fill mode or interpolation.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height_factor = _factor_range(height_factor, "height_factor", self.name,
                                           lo_open=True)
        self.width_factor = (None if width_factor is None else
                             _factor_range(width_factor, "width_factor", self.name,
                                           lo_open=True))
        self._init_sampling(fill_mode, interpolation, fill_value)

    def transforms(self, rng, n, h, w):
        """Per-image transforms for a batch of n (h, w) images drawn from ``rng``."""
        lo, hi = self.height_factor
        zy = rng.uniform(1.0 + lo, 1.0 + hi, size=n).astype(np.float32)
        if self.width_factor is None:
            zx = zy
        else:
            zx = rng.uniform(1.0 + self.width_factor[0], 1.0 + self.width_factor[1],
                             size=n).astype(np.float32)
        return zoom_transforms(zy, zx, h, w)

    def get_config(self):
        c = super().get_config()
        c.update(height_factor=list(self.height_factor),
                 width_factor=None if self.width_factor is None else list(self.width_factor))
        return c


class RandomCrop(_RandomImageLayer, _CropOrResize):
    """Crops a random ``height`` x ``width`` window of each training image.

    At inference, or when an image is not larger than the target in both dimensions, it
    centre-crops to the target's aspect ratio and resizes (bilinear), as Keras does. fastcnn
    draws one window per image (Keras, called on a batch, draws one for the whole batch).

    Args:
        height, width: the output size.
        seed: an int for reproducible draws.
    """

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self._init_size(height, width)

    def compute_output_shape(self, input_shape):
        return _CropOrResize.compute_output_shape(self, input_shape)

    def _forward(self, x, ws, training, return_logits):
        n, h, w = x.shape[:3]
        if training and h > self.height and w > self.width:
            rng = self._rng()
            top = rng.integers(0, h - self.height + 1, size=n, dtype=np.int32)
            left = rng.integers(0, w - self.width + 1, size=n, dtype=np.int32)
            return self._crop(x, ws, top, left)
        return self._smart_resize(x, ws)

    def _backward(self, dy, ws, need_input_grad):
        return _CropOrResize._backward(self, dy, ws, need_input_grad)

    def get_config(self):
        c = super().get_config()
        c.update(height=self.height, width=self.width)
        return c


class RandomContrast(_RandomImageLayer):
    """Scales each training image's deviation from its per-channel mean by a random factor,
    then clips to ``value_range``.

    The factor is drawn as Keras 3 draws it: ``uniform(1 - lower, 1 + upper)`` where a float
    ``factor`` f gives (lower, upper) = (0, f), i.e. contrast in [1, 1 + f]; pass a pair
    ``(f, f)`` for [1 - f, 1 + f].

    Args:
        factor: a float in [0, 1] or a (lower, upper) pair in [0, 1].
        value_range: the (low, high) range of the input values (default (0, 255)).
        seed: an int for reproducible draws.

    Raises:
        ValueError: a factor outside [0, 1], a bad value_range.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_range(factor, "factor", self.name, lo=0.0,
                                    scalar_lower=lambda f: 0.0)
        self.value_range = _pair(value_range, self.name, sort=False)

    def _augment(self, x, ws):
        f = self._rng().uniform(1.0 - self.factor[0], 1.0 + self.factor[1], size=x.shape[0])
        ws["factors"] = f.astype(np.float32)
        return ops.adjust_contrast(x, ws["factors"], self.value_range, out=ws.buf("y", x.shape))

    def _augment_backward(self, dy, ws):
        return ops.adjust_contrast_backward(ws["x"], dy, ws["factors"], self.value_range,
                                            out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c.update(factor=list(self.factor), value_range=list(self.value_range))
        return c


def _pair(value, who, sort):
    try:
        pair = [float(v) for v in value]
    except (TypeError, ValueError):
        pair = None
    if pair is None or len(pair) != 2 or not all(np.isfinite(v) for v in pair):
        raise ValueError("%s: `value_range` must be a (low, high) pair of numbers. Received "
                         "value_range=%r" % (who, value))
    return tuple(sorted(pair)) if sort else tuple(pair)


class RandomBrightness(_RandomImageLayer):
    """Adds a random offset to each training image, then clips to ``value_range``.

    The offset is ``uniform(lower, upper) * (high - low)`` of the value range (Keras 3).

    Args:
        factor: a float f in [0, 1] (offsets in [-f, f]) or a (lower, upper) pair in [-1, 1].
        value_range: the (low, high) range of the input values (default (0, 255)).
        seed: an int for reproducible draws.

    Raises:
        ValueError: a factor outside [-1, 1], a bad value_range.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor_range(factor, "factor", self.name)
        self.value_range = _pair(value_range, self.name, sort=True)

    def _augment(self, x, ws):
        lo, hi = self.value_range
        d = self._rng().uniform(self.factor[0], self.factor[1], size=x.shape[0])
        ws["deltas"] = d.astype(np.float32) * np.float32(hi - lo)
        return ops.adjust_brightness(x, ws["deltas"], self.value_range, out=ws.buf("y", x.shape))

    def _augment_backward(self, dy, ws):
        return ops.adjust_brightness_backward(ws["x"], dy, ws["deltas"], self.value_range,
                                              out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c.update(factor=list(self.factor), value_range=list(self.value_range))
        return c
