"""Image preprocessing and augmentation ops (a subset of ``keras.ops.image``), in C.

Images are NHWC batches (a single HWC image is also accepted), uint8 or float32; results are
float32. Each op checks its arguments once and runs a ``csrc/augment.c`` kernel with the GIL
released, image by image on fastcnn's threads, so results do not depend on the thread count.
Sampling and fill modes follow Keras 3 on the JAX backend (``jax.scipy.ndimage``'s
``map_coordinates`` for ``affine_transform``, ``jax.image.resize`` for ``resize``).
"""
import functools

import numpy as np

from .. import _ext
from ._validation import as_float32, one_of, prepare_output

__all__ = ["affine_transform", "affine_transform_backward", "resize", "resize_backward",
           "crop_images", "crop_images_backward", "adjust_contrast", "adjust_contrast_backward",
           "adjust_brightness", "adjust_brightness_backward"]

FILL_MODES = {"constant": 0, "nearest": 1, "wrap": 2, "reflect": 3}
INTERPOLATIONS = {"nearest": 0, "bilinear": 1}


def _images(images, who, name="images"):
    """(4-D C-contiguous uint8 or float32 batch, whether a single 3-D image was given)."""
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError("%s: `%s` must be a batch (N, H, W, C) or an image (H, W, C), got "
                         "shape %s" % (who, name, images.shape))
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.dtype == np.uint8:
        images = np.ascontiguousarray(images)
    else:
        images = as_float32(images, "%s: %s" % (who, name))
    return images, single


def _output(who, out, shape, single, src):
    """A float32 output of batch ``shape``: fresh, or ``out`` (without the batch axis when
    a single image was given), checked not to overlap ``src``."""
    if out is None:
        return np.empty(shape, np.float32)
    want = shape[1:] if single else shape
    out = prepare_output(who, out, "out", want, [(src, "images")])
    return out[None] if single else out


def _per_image(value, n, who, arg, dtype):
    """``value`` (a number or one per image) as a C-contiguous (n,) array."""
    try:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=dtype), (n,)))
    except (TypeError, ValueError):
        raise ValueError("%s: `%s` must be a number or %d numbers (one per image), got %r"
                         % (who, arg, n, value)) from None


def _transforms(transform, n, who):
    t = np.asarray(transform, dtype=np.float32)
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] != 8 or t.shape[0] not in (1, n):
        raise ValueError("%s: `transform` must have shape (8,) or (%d, 8) (a0, a1, a2, b0, b1, "
                         "b2, c0, c1 per image), got %s" % (who, n, np.shape(transform)))
    if not np.isfinite(t).all():
        raise ValueError("%s: `transform` must be finite" % who)
    return np.ascontiguousarray(np.broadcast_to(t, (n, 8)))


def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0, out=None):
    """Applies a projective transform to each image (``keras.ops.image.affine_transform``).

    Output pixel (x, y) takes the input at ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``
    with ``k = c0 x + c1 y + 1``: the transform maps output coordinates to input ones. With
    ``c0 = c1 = 0`` (every Keras layer) this is exactly Keras/JAX's affine_transform; for a
    projective transform fastcnn divides by ``k`` as TensorFlow does (Keras' JAX backend
    ignores c0, c1).

    Args:
        images: (N, H, W, C) or (H, W, C), uint8 or float32.
        transform: (8,) or (N, 8) ``[a0, a1, a2, b0, b1, b2, c0, c1]`` per image.
        interpolation: ``"bilinear"`` or ``"nearest"`` (rounds half away from zero).
        fill_mode: ``"constant"``, ``"nearest"``, ``"wrap"`` or ``"reflect"``: how pixels
            outside the input are read (see ``csrc/augment.h``).
        fill_value: the value read outside the input with ``fill_mode="constant"``.
        out: optional float32 output of the result's shape.

    Returns:
        float32 images of the input's shape.

    Raises:
        ValueError: bad shapes, an unknown interpolation or fill mode, a non-finite transform.
    """
    who = "affine_transform"
    x, single = _images(images, who)
    interp = INTERPOLATIONS[one_of(interpolation, "interpolation", who, tuple(INTERPOLATIONS))]
    fill = FILL_MODES[one_of(fill_mode, "fill_mode", who, tuple(FILL_MODES))]
    t = _transforms(transform, x.shape[0], who)
    y = _output(who, out, x.shape, single, x)
    _ext.aug_affine(x, t, interp, fill, float(fill_value), y)
    return y[0] if single else y


def affine_transform_backward(dy, transform, interpolation="bilinear", fill_mode="constant",
                              out=None):
    """The gradient of ``affine_transform`` with respect to its images (the adjoint of the
    fixed sampling; the fill value gets no gradient).

    Args:
        dy: float32 (N, H, W, C) gradient of the output.
        transform, interpolation, fill_mode: as given to ``affine_transform``.
        out: optional float32 output of dy's shape.

    Returns:
        float32 (N, H, W, C) gradient of the images.
    """
    who = "affine_transform_backward"
    g = as_float32(dy, "%s: dy" % who, ndim=4)
    interp = INTERPOLATIONS[one_of(interpolation, "interpolation", who, tuple(INTERPOLATIONS))]
    fill = FILL_MODES[one_of(fill_mode, "fill_mode", who, tuple(FILL_MODES))]
    t = _transforms(transform, g.shape[0], who)
    dx = prepare_output(who, out, "out", g.shape, [(g, "dy")])
    _ext.aug_affine_backward(g, t, interp, fill, dx)
    return dx


@functools.lru_cache(maxsize=64)
def _resize_taps(in_size, out_size, interpolation, antialias):
    """(first input index, weights (out_size, taps)) of each output index, as jax.image.resize
    computes them (float32 weights, half-pixel centres, normalised triangle kernel)."""
    f32 = np.float32
    if in_size == out_size:  # JAX skips such axes: the identity
        return np.arange(out_size, dtype=np.int32), np.ones((out_size, 1), f32)
    if interpolation == "nearest":
        pos = (np.arange(out_size, dtype=f32) + f32(0.5)) * f32(in_size) / f32(out_size)
        idx = np.minimum(np.floor(pos).astype(np.int64), in_size - 1).astype(np.int32)
        return idx, np.ones((out_size, 1), f32)
    inv_scale = f32(1.0 / (out_size / in_size))
    kernel_scale = max(inv_scale, f32(1.0)) if antialias else f32(1.0)
    sample = (np.arange(out_size, dtype=f32) + f32(0.5)) * inv_scale - f32(0.5)
    dist = np.abs(sample[None, :] - np.arange(in_size, dtype=f32)[:, None]) / kernel_scale
    w = np.maximum(f32(0), f32(1) - np.abs(dist))
    total = w.sum(axis=0, keepdims=True, dtype=f32)
    w = np.where(np.abs(total) > 1000 * np.finfo(f32).eps,
                 w / np.where(total != 0, total, f32(1)), f32(0)).astype(f32)
    inside = (sample >= -0.5) & (sample <= in_size - 0.5)
    w = np.where(inside[None, :], w, f32(0))
    nz = w != 0
    first = np.where(nz.any(axis=0), nz.argmax(axis=0), 0)
    last = np.where(nz.any(axis=0), in_size - 1 - nz[::-1].argmax(axis=0), 0)
    taps = int(max(1, (last - first + 1).max()))
    start = np.minimum(first, in_size - taps)
    rows = start[:, None] + np.arange(taps)[None, :]
    weights = np.ascontiguousarray(w[rows, np.arange(out_size)[:, None]], dtype=f32)
    return start.astype(np.int32), weights


def _aspect_box(height, width, target_h, target_w, pad):
    """Keras' crop_to_aspect_ratio / pad_to_aspect_ratio geometry: (rows, cols, top, left) of
    the window to resize, in input coordinates (negative top/left: padding)."""
    if not pad:
        crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
        crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
        return (crop_h, crop_w, int(float(height - crop_h) / 2),
                int(float(width - crop_w) / 2))
    pad_h = max(height, int(float(width * target_h) / target_w))
    pad_w = max(width, int(float(height * target_w) / target_h))
    top, left = int(float(pad_h - height) / 2), int(float(pad_w - width) / 2)
    if top > 0:  # Keras pads both sides by the same amount, one axis only
        return height + 2 * top, width, -top, 0
    if left > 0:
        return height, width + 2 * left, 0, -left
    return height, width, 0, 0


def _resize_plan(who, shape, size, interpolation, antialias, crop_to_aspect_ratio,
                 pad_to_aspect_ratio, fill_mode):
    """Checked arguments -> (th, tw, top, left, cols, (ys, wy), (xs, wx)) for images of
    ``shape`` (N, H, W, C)."""
    try:
        th, tw = (int(s) for s in size)
    except (TypeError, ValueError):
        th = tw = 0
    if th <= 0 or tw <= 0:
        raise ValueError("%s: `size` must be (height, width) of positive ints, got %r"
                         % (who, size))
    one_of(interpolation, "interpolation", who, ("bilinear", "nearest"))
    one_of(fill_mode, "fill_mode", who, ("constant",))
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("%s: only one of `pad_to_aspect_ratio` and `crop_to_aspect_ratio` "
                         "can be True" % who)
    h, w = shape[1], shape[2]
    if h == 0 or w == 0:
        raise ValueError("%s: images must have a positive height and width, got shape %s"
                         % (who, tuple(shape)))
    if crop_to_aspect_ratio or pad_to_aspect_ratio:
        rows, cols, top, left = _aspect_box(h, w, th, tw, pad_to_aspect_ratio)
    else:
        rows, cols, top, left = h, w, 0, 0
    return (th, tw, top, left, cols, _resize_taps(rows, th, interpolation, bool(antialias)),
            _resize_taps(cols, tw, interpolation, bool(antialias)))


def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, out=None):
    """Resizes images to ``size`` (``keras.ops.image.resize``; JAX's half-pixel sampling).

    Args:
        images: (N, H, W, C) or (H, W, C), uint8 or float32.
        size: ``(height, width)`` of the result.
        interpolation: ``"bilinear"`` or ``"nearest"`` (Keras' other methods raise).
        antialias: widen the bilinear kernel when downsampling (Keras' default False).
        crop_to_aspect_ratio: resize the largest centred window with the target's aspect
            ratio instead of distorting the image.
        pad_to_aspect_ratio: pad (with ``fill_value``) to the target's aspect ratio first.
        fill_mode: only ``"constant"`` (as Keras).
        fill_value: the padding value.
        out: optional float32 output.

    Returns:
        float32 (N, height, width, C) (or (height, width, C)).

    Raises:
        ValueError: bad size, interpolation or fill mode, or both aspect-ratio options.
    """
    who = "resize"
    x, single = _images(images, who)
    th, tw, top, left, cols, (ys, wy), (xs, wx) = _resize_plan(
        who, x.shape, size, interpolation, antialias, crop_to_aspect_ratio,
        pad_to_aspect_ratio, fill_mode)
    n, c = x.shape[0], x.shape[3]
    y = _output(who, out, (n, th, tw, c), single, x)
    tmp = np.empty((n, th, cols, c), np.float32)
    _ext.aug_resize(x, -top, -left, float(fill_value), ys, wy, xs, wx, tmp, y)
    return y[0] if single else y


def resize_backward(dy, image_shape, interpolation="bilinear", antialias=False,
                    crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, out=None):
    """The gradient of ``resize`` with respect to its images (the adjoint of the resampling;
    padding gets no gradient).

    Args:
        dy: float32 (N, height, width, C) gradient of the output.
        image_shape: the images' shape (N, H, W, C).
        interpolation, antialias, crop_to_aspect_ratio, pad_to_aspect_ratio: as given to
            ``resize``.
        out: optional float32 output of ``image_shape``.

    Returns:
        float32 gradient of the images.
    """
    who = "resize_backward"
    g = as_float32(dy, "%s: dy" % who, ndim=4)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 4 or shape[0] != g.shape[0] or shape[3] != g.shape[3]:
        raise ValueError("%s: image_shape %r does not match dy %s" % (who, image_shape, g.shape))
    th, tw, top, left, cols, (ys, wy), (xs, wx) = _resize_plan(
        who, shape, g.shape[1:3], interpolation, antialias, crop_to_aspect_ratio,
        pad_to_aspect_ratio, "constant")
    dx = prepare_output(who, out, "out", shape, [(g, "dy")])
    tmp = np.empty((shape[0], th, cols, shape[3]), np.float32)
    _ext.aug_resize_backward(g, -top, -left, ys, wy, xs, wx, tmp, dx)
    return dx


def _windows(x, top, left, height, width, flips, who):
    n, h, w, _ = x.shape
    if not (0 < height <= h and 0 < width <= w):
        raise ValueError("%s: a (%d, %d) window does not fit (%d, %d) images"
                         % (who, height, width, h, w))
    y0 = _per_image(top, n, who, "top", np.int32)
    x0 = _per_image(left, n, who, "left", np.int32)
    if n and (y0.min() < 0 or y0.max() > h - height or x0.min() < 0 or x0.max() > w - width):
        raise ValueError("%s: windows must lie inside the images: top in [0, %d], left in "
                         "[0, %d]" % (who, h - height, w - width))
    fl = None if flips is None else _per_image(flips, n, who, "flips", np.uint8)
    if fl is not None and n and fl.max() > 3:
        raise ValueError("%s: flips must be 0..3 (1 left-right, 2 upside down)" % who)
    return y0, x0, fl


def crop_images(images, top, left, height, width, flips=None, out=None):
    """Per-image windows ``images[i, top[i]:top[i]+height, left[i]:left[i]+width]``, each
    optionally mirrored.

    Args:
        images: (N, H, W, C) or (H, W, C), uint8 or float32.
        top, left: ints or (N,) int arrays: each window's corner.
        height, width: the window size.
        flips: None, or an int / (N,) array: bit 0 mirrors left-right, bit 1 upside down.
        out: optional float32 output.

    Returns:
        float32 (N, height, width, C).

    Raises:
        ValueError: a window outside its image, bad flips.
    """
    who = "crop_images"
    x, single = _images(images, who)
    height, width = int(height), int(width)
    y0, x0, fl = _windows(x, top, left, height, width, flips, who)
    y = _output(who, out, (x.shape[0], height, width, x.shape[3]), single, x)
    _ext.aug_crop(x, y0, x0, fl, y)
    return y[0] if single else y


def crop_images_backward(dy, top, left, image_shape, flips=None, out=None):
    """The gradient of ``crop_images``: dy pasted back into zero images of ``image_shape``
    ((N, H, W, C)).

    Args:
        dy: float32 (N, height, width, C).
        top, left, flips: as given to ``crop_images``.
        image_shape: the images' shape.
        out: optional float32 output of ``image_shape``.

    Returns:
        float32 gradient of the images.
    """
    who = "crop_images_backward"
    g = as_float32(dy, "%s: dy" % who, ndim=4)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 4 or shape[0] != g.shape[0] or shape[3] != g.shape[3]:
        raise ValueError("%s: image_shape %r does not match dy %s" % (who, image_shape, g.shape))
    probe = np.empty((shape[0], shape[1], shape[2], 0), np.float32)
    y0, x0, fl = _windows(probe, top, left, g.shape[1], g.shape[2], flips, who)
    dx = prepare_output(who, out, "out", shape, [(g, "dy")])
    _ext.aug_crop_backward(g, y0, x0, fl, dx)
    return dx


def _value_range(value_range, who):
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError("%s: `value_range` must be a (low, high) pair, got %r"
                         % (who, value_range)) from None
    return lo, hi


def adjust_contrast(images, factors, value_range=(0, 255), out=None):
    """``clip((x - mean) * factor + mean, *value_range)`` per image, with the mean of each
    channel over height and width (Keras' RandomContrast with given factors).

    Args:
        images: (N, H, W, C) or (H, W, C), uint8 or float32.
        factors: a float or (N,) contrast factors.
        value_range: (low, high) clip range.
        out: optional float32 output.

    Returns:
        float32 images.
    """
    who = "adjust_contrast"
    x, single = _images(images, who)
    lo, hi = _value_range(value_range, who)
    f = _per_image(factors, x.shape[0], who, "factors", np.float32)
    y = _output(who, out, x.shape, single, x)
    _ext.aug_contrast(x, f, lo, hi, y)
    return y[0] if single else y


def adjust_brightness(images, deltas, value_range=(0, 255), out=None):
    """``clip(x + delta, *value_range)`` per image (Keras' RandomBrightness with given
    deltas, already scaled to the value range).

    Args:
        images: (N, H, W, C) or (H, W, C), uint8 or float32.
        deltas: a float or (N,) offsets.
        value_range: (low, high) clip range.
        out: optional float32 output.

    Returns:
        float32 images.
    """
    who = "adjust_brightness"
    x, single = _images(images, who)
    lo, hi = _value_range(value_range, who)
    d = _per_image(deltas, x.shape[0], who, "deltas", np.float32)
    y = _output(who, out, x.shape, single, x)
    _ext.aug_brightness(x, d, lo, hi, y)
    return y[0] if single else y


def _backward_args(who, x, dy, per_image, name):
    x = as_float32(x, "%s: images" % who, ndim=4)
    g = as_float32(dy, "%s: dy" % who, ndim=4)
    if g.shape != x.shape:
        raise ValueError("%s: dy %s must have the images' shape %s" % (who, g.shape, x.shape))
    return x, g, _per_image(per_image, x.shape[0], who, name, np.float32)


def adjust_contrast_backward(images, dy, factors, value_range=(0, 255), out=None):
    """The gradient of ``adjust_contrast`` with respect to its (float32, 4-D) images, the
    channel means included; clipped values pass no gradient.

    Args:
        images: the float32 (N, H, W, C) input of the forward pass.
        dy: float32 gradient of its output.
        factors, value_range: as given to ``adjust_contrast``.
        out: optional float32 output.

    Returns:
        float32 gradient of the images.
    """
    who = "adjust_contrast_backward"
    x, g, f = _backward_args(who, images, dy, factors, "factors")
    lo, hi = _value_range(value_range, who)
    dx = prepare_output(who, out, "out", x.shape, [(x, "images"), (g, "dy")])
    _ext.aug_contrast_backward(x, g, f, lo, hi, dx)
    return dx


def adjust_brightness_backward(images, dy, deltas, value_range=(0, 255), out=None):
    """The gradient of ``adjust_brightness``: dy where the output was not clipped, else 0.

    Args:
        images: the float32 (N, H, W, C) input of the forward pass.
        dy: float32 gradient of its output.
        deltas, value_range: as given to ``adjust_brightness``.
        out: optional float32 output.

    Returns:
        float32 gradient of the images.
    """
    who = "adjust_brightness_backward"
    x, g, d = _backward_args(who, images, dy, deltas, "deltas")
    lo, hi = _value_range(value_range, who)
    dx = prepare_output(who, out, "out", x.shape, [(x, "images"), (g, "dy")])
    _ext.aug_brightness_backward(x, g, d, lo, hi, dx)
    return dx
