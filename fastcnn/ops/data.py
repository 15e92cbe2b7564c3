"""Batch assembly: gather dataset rows, uint8 -> scaled float32, crop+flip augmentation."""
import numpy as np

from .. import _ext
from ._validation import as_float32, check_output, prepare_output

__all__ = ["gather_batch", "random_crop_flip_params", "to_float32", "scale_shift",
           "count_nonfinite"]


def random_crop_flip_params(rng, batch, pad, flip=True):
    """Draw per-image shifts in [-pad, pad] and flip flags from a numpy Generator."""
    pad = int(pad)
    if pad < 0:
        raise ValueError("random_crop_flip_params: pad must be >= 0, got %d" % pad)
    oy = rng.integers(-pad, pad + 1, size=batch, dtype=np.int32)
    ox = rng.integers(-pad, pad + 1, size=batch, dtype=np.int32)
    fl = (rng.random(batch) < 0.5).astype(np.uint8) if flip else np.zeros(batch, np.uint8)
    return oy, ox, fl


def gather_batch(src, indices, scale=1.0, shift=0.0, shifts=None, flips=None, out=None):
    """``out[b] = scale * src[indices[b]] + shift`` for (N, H, W, C) uint8 or float32 ``src``.

    ``shifts=(oy, ox)`` (int32 arrays of length B) moves each image by (oy, ox) pixels with
    zero fill (a random crop of the zero-padded image); ``flips`` (uint8/bool, length B)
    mirrors images left-right first. Done in C on fastcnn's threads.
    """
    if not isinstance(src, np.ndarray) or src.ndim != 4:
        raise ValueError("gather_batch: src must be a 4-D (N, H, W, C) array, got %r"
                         % (getattr(src, "shape", type(src)),))
    if src.dtype != np.uint8:
        src = as_float32(src, "gather_batch: src")
    elif not src.flags.c_contiguous:
        src = np.ascontiguousarray(src)
    n, h, w, c = src.shape
    idx = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError("gather_batch: indices must lie in [0, %d), got min %d max %d"
                         % (n, idx.min(), idx.max()))
    b = idx.size
    out = prepare_output("gather_batch", out, "out", (b, h, w, c), [(src, "src")])
    oy = ox = fl = None
    if shifts is not None:
        oy = np.ascontiguousarray(shifts[0], dtype=np.int32).reshape(-1)
        ox = np.ascontiguousarray(shifts[1], dtype=np.int32).reshape(-1)
        if oy.size != b or ox.size != b:
            raise ValueError("gather_batch: shifts must be two arrays of length %d" % b)
    if flips is not None:
        fl = np.ascontiguousarray(flips, dtype=np.uint8).reshape(-1)
        if fl.size != b:
            raise ValueError("gather_batch: flips must have length %d, got %d" % (b, fl.size))
    _ext.batch_gather(src, idx, float(scale), float(shift), oy, ox, fl, out)
    return out


def to_float32(x, scale=1.0, shift=0.0, out=None):
    """``scale * x + shift`` as a C-contiguous float32 array (uint8 converted in C): a new
    one, or ``out`` (x's shape)."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = np.ascontiguousarray(x)
        out = prepare_output("to_float32", out, "out", x.shape, [(x, "x")])
        _ext.u8_to_f32(x.reshape(-1), float(scale), float(shift), out.reshape(-1))
        return out
    if out is None:
        out = np.array(x, dtype=np.float32, order="C", copy=True)
    else:
        # no overlap check: NumPy's assignment copes with overlapping memory
        out = check_output(out, x.shape, "to_float32: out")
        out[...] = x
    if scale != 1.0 or shift != 0.0:
        out *= np.float32(scale)
        out += np.float32(shift)
    return out


def count_nonfinite(x):
    """Number of NaN/inf values in a float32 array (C, multithreaded)."""
    x = as_float32(x, "count_nonfinite: x")
    return int(_ext.count_nonfinite(x.reshape(-1)))


def scale_shift(x, scale, shift=0.0, out=None):
    """``scale * x + shift`` elementwise in C (``out`` may be ``x`` itself)."""
    x = as_float32(x, "scale_shift: x")
    out = prepare_output("scale_shift", out, "out", x.shape, [(x, "x")], in_place_ok=("x",))
    _ext.affine_f32(x.reshape(-1), float(scale), float(shift), out.reshape(-1))
    return out
