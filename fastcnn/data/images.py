"""Image files <-> NumPy arrays with Pillow (the ``image`` extra): Keras' ``load_img``,
``img_to_array``, ``array_to_img``, ``save_img``, and the decoder of the image datasets.

Pillow releases the GIL while it decodes and resizes, so the dataset's worker threads
decode in parallel with each other and with the training step.
"""
import io
import os
import pathlib

import numpy as np

__all__ = ["BadImageError", "load_img", "img_to_array", "array_to_img", "save_img",
           "MAX_IMAGE_PIXELS", "INTERPOLATIONS", "decode_image"]

# Pillow's own decompression-bomb limit (about 89 megapixels); an image file declaring more
# pixels is refused from its header, before anything is decoded.
MAX_IMAGE_PIXELS = 89_478_485

# Keras' names -> Pillow's filters. Keras also lists lanczos5, gaussian and mitchellcubic,
# which Pillow has no filter for: they are refused rather than approximated.
INTERPOLATIONS = {"bilinear": "BILINEAR", "nearest": "NEAREST", "bicubic": "BICUBIC",
                  "area": "BOX", "lanczos3": "LANCZOS"}
# load_img's names (Keras' PIL_INTERPOLATION_METHODS)
_LOAD_IMG_INTERPOLATIONS = {"nearest": "NEAREST", "bilinear": "BILINEAR",
                            "bicubic": "BICUBIC", "hamming": "HAMMING", "box": "BOX",
                            "lanczos": "LANCZOS"}
_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


class BadImageError(ValueError):
    """An image file that cannot be used: corrupt, truncated, not an image, or too large."""


_PIL = []  # the PIL.Image module once imported (decode_image runs per image)
# files up to this size are read in one call and decoded from memory (fewer Python calls
# than Pillow's buffered reads); larger ones are opened lazily, header first
_READ_WHOLE_BYTES = 1 << 24


def _pil():
    if _PIL:
        return _PIL[0]
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading images needs Pillow: pip install 'fastcnn[image]' "
                          "(or pip install Pillow)") from None
    _PIL.append(Image)
    return Image


def _resample(Image, name):
    return getattr(Image.Resampling, name)


def _to_mode(im, channels):
    """``im`` converted to 1 (L), 3 (RGB) or 4 (RGBA) channels."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: keep the high byte, as a uint8 decoder does
        arr = np.asarray(im, dtype=np.int64)
        shift = 8 if im.mode.startswith("I;16") else 24
        im = _pil().fromarray((np.clip(arr, 0, None) >> shift).astype(np.uint8), "L")
    if im.mode == "P" and channels != 1:
        im = im.convert("RGBA")  # a palette's transparency becomes alpha
    target = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    return im if im.mode == target else im.convert(target)


def _read_small(path):
    """The bytes of ``path`` in an ``io.BytesIO`` when it is small, else ``path``."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > _READ_WHOLE_BYTES:
                return path
            return io.BytesIO(f.read())
    except OSError as e:
        raise BadImageError("%s: cannot read the file: %s" % (path, e)) from None


def _open(path, max_pixels, src=None):
    """The opened, size-checked and fully decoded Pillow image of ``path`` (first frame),
    read from ``src`` (a file object) when given."""
    Image = _pil()
    try:
        im = Image.open(path if src is None else src, formats=_FORMATS)
    except Image.DecompressionBombError as e:
        raise BadImageError("%s: refusing to decode: %s" % (path, e)) from None
    except Image.UnidentifiedImageError:
        raise BadImageError("%s: not a JPEG, PNG, BMP or GIF image (its content is not "
                            "recognised)" % (path,)) from None
    except OSError as e:
        raise BadImageError("%s: cannot read the file: %s" % (path, e)) from None
    try:
        w, h = im.size
        if w * h > max_pixels:
            raise BadImageError(
                "%s: the image is %d x %d pixels (%d), more than MAX_IMAGE_PIXELS=%d; "
                "refusing to decode it (a decompression bomb?). Raise "
                "fastcnn.data.images.MAX_IMAGE_PIXELS to read it anyway"
                % (path, w, h, w * h, max_pixels))
        im.load()  # decodes now (GIL released), so every decoding error surfaces here
        return im
    except BadImageError:
        im.close()
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, EOFError...
        im.close()
        raise BadImageError("%s: cannot decode the image (corrupt or truncated?): %s: %s"
                            % (path, type(e).__name__, e)) from None


def _crop_box(w, h, tw, th):
    """keras.preprocessing.image.smart_resize's centred crop window of the target's aspect."""
    crop_h = max(min(h, int(float(w * th) / tw)), 1)
    crop_w = max(min(w, int(float(h * tw) / th)), 1)
    top = int(float(h - crop_h) / 2)
    left = int(float(w - crop_w) / 2)
    return (left, top, left + crop_w, top + crop_h)


def decode_image(path, image_size, channels, interpolation="bilinear",
                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, out=None,
                 max_pixels=None):
    """One image file as a uint8 ``(height, width, channels)`` array, as
    ``image_dataset_from_directory`` loads it.

    Args:
        path: an image file (JPEG, PNG, BMP or GIF; the first frame of an animation).
        image_size: ``(height, width)`` of the result.
        channels: 1, 3 or 4.
        interpolation: a key of :data:`INTERPOLATIONS`.
        crop_to_aspect_ratio: resize the largest centred window of the target's aspect.
        pad_to_aspect_ratio: resize to fit inside, keeping the aspect, and pad with zeros.
        out: an optional uint8 array of the result's shape to write into.
        max_pixels: the decompression-bomb limit (default :data:`MAX_IMAGE_PIXELS`).

    Returns:
        The uint8 array (``out`` when given).

    Raises:
        BadImageError: the file is unreadable, corrupt, not an image or too large.
    """
    Image = _pil()
    th, tw = image_size
    resample = _resample(Image, INTERPOLATIONS[interpolation])
    im = _open(path, MAX_IMAGE_PIXELS if max_pixels is None else max_pixels,
               _read_small(path))
    try:
        im = _to_mode(im, channels)
        w, h = im.size
        if out is None:
            out = np.empty((th, tw, channels), np.uint8)
        if pad_to_aspect_ratio and (w, h) != (tw, th):
            # tf.image.resize_with_pad: fit inside, centre, zeros around
            ratio = max(w / tw, h / th)
            rw, rh = max(int(w / ratio), 1), max(int(h / ratio), 1)
            top, left = (th - rh) // 2, (tw - rw) // 2
            small = np.asarray(im.resize((rw, rh), resample))
            out[...] = 0
            out[top:top + rh, left:left + rw] = small.reshape(rh, rw, channels)
            return out
        if (w, h) != (tw, th):
            box = _crop_box(w, h, tw, th) if crop_to_aspect_ratio else None
            im = im.resize((tw, th), resample, box=box)
        out[...] = np.asarray(im).reshape(th, tw, channels)
        return out
    finally:
        im.close()


# ----------------------------------------------------------------------- Keras' image utils

def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest",
             keep_aspect_ratio=False):
    """Loads an image into PIL format (``keras.utils.load_img``).

    Args:
        path: path of the image file (str or pathlib.Path) or an ``io.BytesIO``.
        color_mode: one of ``"grayscale"``, ``"rgb"``, ``"rgba"``.
        target_size: ``None`` (original size) or ``(img_height, img_width)``.
        interpolation: resampling when resizing: ``"nearest"`` (default), ``"bilinear"``,
            ``"bicubic"``, ``"lanczos"``, ``"box"``, ``"hamming"``.
        keep_aspect_ratio: crop the centre to the target's aspect ratio before resizing.

    Returns:
        A PIL Image instance.

    Raises:
        BadImageError: the file is corrupt, truncated, not an image or too large.
        ValueError: an unknown ``color_mode`` or ``interpolation``.
    """
    Image = _pil()
    if color_mode not in _CHANNELS:
        raise ValueError('load_img: color_mode must be "grayscale", "rgb" or "rgba", got %r'
                         % (color_mode,))
    if isinstance(path, io.BytesIO):
        src = path
    elif isinstance(path, (str, bytes, pathlib.Path, os.PathLike)):
        src = os.fspath(path)
    else:
        raise TypeError("load_img: path should be path-like or io.BytesIO, not %s"
                        % type(path).__name__)
    im = _open(src, MAX_IMAGE_PIXELS)
    if color_mode == "grayscale":
        if im.mode not in ("L", "I;16", "I"):
            im = im.convert("L")
    elif im.mode != color_mode.upper():
        im = im.convert(color_mode.upper())
    if target_size is not None:
        size = (int(target_size[1]), int(target_size[0]))
        if im.size != size:
            if interpolation not in _LOAD_IMG_INTERPOLATIONS:
                raise ValueError("Invalid interpolation method %s specified. Supported "
                                 "methods are %s" % (interpolation,
                                                     ", ".join(_LOAD_IMG_INTERPOLATIONS)))
            resample = _resample(Image, _LOAD_IMG_INTERPOLATIONS[interpolation])
            if keep_aspect_ratio:
                w, h = im.size
                ch = min(h, (w * size[1]) // size[0])
                cw = min(w, (h * size[0]) // size[1])
                top, left = (h - ch) // 2, (w - cw) // 2
                im = im.resize(size, resample, box=(left, top, left + cw, top + ch))
            else:
                im = im.resize(size, resample)
    return im


def _data_format(data_format, who):
    if data_format in (None, "channels_last"):
        return "channels_last"
    if data_format == "channels_first":
        return data_format
    raise ValueError("%s: data_format must be 'channels_last' or 'channels_first', got %r"
                     % (who, data_format))


def img_to_array(img, data_format=None, dtype=None):
    """Converts a PIL Image instance to a NumPy array (``keras.utils.img_to_array``).

    Args:
        img: a PIL Image.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dtype: the array's dtype (default float32).

    Returns:
        A 3-D array: ``(height, width, channels)`` (channels_last).
    """
    data_format = _data_format(data_format, "img_to_array")
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        x = x.reshape((1,) + x.shape if data_format == "channels_first" else x.shape + (1,))
    else:
        raise ValueError("img_to_array: unsupported image shape %s" % (x.shape,))
    return x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """Converts a 3-D NumPy array to a PIL Image (``keras.utils.array_to_img``).

    Args:
        x: an array ``(height, width, channels)`` with 1, 3 or 4 channels.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        scale: rescale the values to [0, 255] (min to 0, max to 255).
        dtype: the dtype the values are first converted to (default float32).

    Returns:
        A PIL Image.

    Raises:
        ValueError: not a 3-D array, or an unsupported number of channels.
    """
    Image = _pil()
    data_format = _data_format(data_format, "array_to_img")
    x = np.asarray(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError("Expected image array to have rank 3 (single image). Got array with "
                         "shape: %s" % (x.shape,))
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x - np.min(x)
        x_max = np.max(x)
        if x_max != 0:
            x = x / x_max
        x = x * 255
    if x.shape[2] == 4:
        return Image.fromarray(x.astype("uint8"), "RGBA")
    if x.shape[2] == 3:
        return Image.fromarray(x.astype("uint8"), "RGB")
    if x.shape[2] == 1:
        if np.max(x) > 255:  # 32-bit signed integer greyscale
            return Image.fromarray(x[:, :, 0].astype("int32"), "I")
        return Image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError("Unsupported channel number: %d" % x.shape[2])


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Saves an image stored as a NumPy array to a path or file object
    (``keras.utils.save_img``).

    Args:
        path: a path or a file object.
        x: the image array (as :func:`array_to_img` takes).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        file_format: the format (default: from the file name's extension).
        scale: rescale the values to [0, 255].
        **kwargs: passed to ``PIL.Image.save``.
    """
    if file_format is None and isinstance(path, (str, pathlib.Path)):
        file_format = pathlib.Path(path).suffix[1:].lower() or None
    if file_format and file_format.lower() == "jpg":
        file_format = "jpeg"
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and file_format and file_format.lower() == "jpeg":
        img = img.convert("RGB")  # JPEG has no alpha
    img.save(path, format=file_format, **kwargs)
