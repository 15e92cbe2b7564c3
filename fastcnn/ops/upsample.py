"""Up-sampling of NHWC images by integer factors (Keras ``UpSampling2D``) on C kernels.

``nearest`` repeats each pixel ``size`` times along H and W (Keras' ``ops.repeat``);
``bilinear`` is ``jax.image.resize(method="bilinear")`` (Keras 3 on JAX): half-pixel
centres, two taps per axis, edges clamped, no antialias. See csrc/upsample.h.
"""
from .. import _ext
from ._validation import as_float32, int_tuple, one_of, prepare_output

__all__ = ["upsample2d", "upsample2d_backward"]

_INTERPOLATIONS = ("nearest", "bilinear")


def _args(fn, size, interpolation):
    size = int_tuple(size, "size", fn)
    interpolation = one_of(interpolation.lower() if isinstance(interpolation, str)
                           else interpolation, "interpolation", fn, _INTERPOLATIONS)
    return size, interpolation == "bilinear"


def upsample2d(x, size=(2, 2), interpolation="nearest", out=None):
    """Up-sample x (N, H, W, C) to (N, H * size[0], W * size[1], C).

    Args:
        x: (N, H, W, C) float32 (converted if needed).
        size: int or pair of ints >= 1, the up-sampling factors for rows and columns.
        interpolation: ``"nearest"`` or ``"bilinear"``.
        out: optional writeable C-contiguous float32 output of the result's shape.

    Returns:
        The up-sampled float32 array.

    Raises:
        ValueError: for a bad size, interpolation, input rank or output buffer.
    """
    fn = "upsample2d"
    (sh, sw), bilinear = _args(fn, size, interpolation)
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    n, h, w, c = x.shape
    out = prepare_output(fn, out, "out", (n, h * sh, w * sw, c), [(x, "x")])
    _ext.upsample2d_forward(x, sh, sw, bilinear, out)
    return out


def upsample2d_backward(dy, input_shape, size=(2, 2), interpolation="nearest", dx=None):
    """Gradient of :func:`upsample2d` w.r.t. its input.

    Args:
        dy: (N, H * size[0], W * size[1], C), the output gradient.
        input_shape: (N, H, W, C) of the forward's input.
        size, interpolation: as in the forward.
        dx: optional writeable C-contiguous float32 output of ``input_shape``.

    Returns:
        dx (N, H, W, C) float32.

    Raises:
        ValueError: for inconsistent shapes or bad arguments.
    """
    fn = "upsample2d_backward"
    (sh, sw), bilinear = _args(fn, size, interpolation)
    try:
        n, h, w, c = (int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError("%s: input_shape: expected (N, H, W, C), got %r"
                         % (fn, input_shape)) from None
    if min(n, h, w, c) < 0:
        raise ValueError("%s: input_shape: expected sizes >= 0, got %r" % (fn, input_shape))
    dy = as_float32(dy, "%s: dy" % fn, ndim=4)
    if dy.shape != (n, h * sh, w * sw, c):
        raise ValueError("%s: dy: expected shape %s, got %s"
                         % (fn, (n, h * sh, w * sw, c), dy.shape))
    dx = prepare_output(fn, dx, "dx", (n, h, w, c), [(dy, "dy")])
    _ext.upsample2d_backward(dy, sh, sw, bilinear, dx)
    return dx
