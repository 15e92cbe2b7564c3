"""Depthwise 2-D convolution (Keras ``DepthwiseConv2D``) on fastcnn's own C kernel.

Layouts are Keras': input ``x`` (N, H, W, C), ``kernel`` (kh, kw, C, M) with M the depth
multiplier, ``bias`` (C*M,), output (N, OH, OW, C*M) whose channel ``c*M + m`` is input
channel ``c`` correlated with ``kernel[:, :, c, m]``. ``padding='same'`` pads like
TensorFlow (any odd extra row/column at the bottom/right), windows dilated by
``dilation_rate`` are ``(k - 1) * d + 1`` wide. Results are bitwise identical at any
thread count (see csrc/depthwise.h).
"""
from .. import _ext
from ._validation import (as_float32, check_shape, conv_output_size, int_tuple, padding_mode,
                          prepare_output, prepare_outputs)

__all__ = ["depthwise_conv2d", "depthwise_conv2d_backward", "depthwise_conv2d_output_shape"]

_ACTIVATIONS = (None, "linear", "relu")


def _geometry(fn, x_shape, k_shape, strides, padding, dilation_rate):
    """Checked (strides, dilation, (pad_top, pad_left), (OH, OW))."""
    strides = int_tuple(strides, "strides", fn)
    dilation = int_tuple(dilation_rate, "dilation_rate", fn)
    padding = padding_mode(padding, fn)
    if len(x_shape) != 4 or len(k_shape) != 4:
        raise ValueError("%s: expected x (N, H, W, C) and kernel (kh, kw, C, M), got %s and %s"
                         % (fn, tuple(x_shape), tuple(k_shape)))
    n, h, w, c = x_shape
    kh, kw, kc, m = k_shape
    if min(h, w, c) < 1:
        raise ValueError("%s: x: expected shape (N, H, W, C) with H, W, C >= 1, got %s"
                         % (fn, tuple(x_shape)))
    if min(kh, kw, m) < 1 or kc != c:
        raise ValueError("%s: kernel: expected shape (kh, kw, %d, depth_multiplier) to match "
                         "the %d input channels of x %s, got %s"
                         % (fn, c, c, tuple(x_shape), tuple(k_shape)))
    ekh, ekw = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    oh, pt, _ = conv_output_size(h, ekh, strides[0], padding)
    ow, pl, _ = conv_output_size(w, ekw, strides[1], padding)
    if oh < 1 or ow < 1:
        raise ValueError("%s: the (dilated) kernel %dx%d is larger than the %dx%d input with "
                         "padding='valid' (the output would be empty); use a smaller kernel "
                         "or padding='same'" % (fn, ekh, ekw, h, w))
    return strides, dilation, (pt, pl), (oh, ow)


def depthwise_conv2d_output_shape(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                                  dilation_rate=(1, 1)):
    """Output shape of :func:`depthwise_conv2d`.

    Args:
        input_shape: (N, H, W, C).
        kernel_shape: (kh, kw, C, depth_multiplier).
        strides, padding, dilation_rate: as in :func:`depthwise_conv2d`.

    Returns:
        (N, OH, OW, C * depth_multiplier).

    Raises:
        ValueError: for shapes that do not fit together.
    """
    fn = "depthwise_conv2d_output_shape"
    x_shape, k_shape = tuple(int(s) for s in input_shape), tuple(int(s) for s in kernel_shape)
    _, _, _, (oh, ow) = _geometry(fn, x_shape, k_shape, strides, padding, dilation_rate)
    return (x_shape[0], oh, ow, k_shape[2] * k_shape[3])


def depthwise_conv2d(x, kernel, bias=None, strides=(1, 1), padding="valid",
                     dilation_rate=(1, 1), activation=None, out=None):
    """Keras ``DepthwiseConv2D`` forward: ``act(depthwise_conv(x, kernel) + bias)``.

    Args:
        x: (N, H, W, C) float32 (other float arrays are converted).
        kernel: (kh, kw, C, depth_multiplier).
        bias: (C * depth_multiplier,) or None.
        strides: int or pair.
        padding: 'valid' or 'same'.
        dilation_rate: int or pair.
        activation: None, 'linear' or 'relu' (fused into the kernel).
        out: optional writeable C-contiguous float32 (N, OH, OW, C*M) to write into.

    Returns:
        y (N, OH, OW, C * depth_multiplier) float32.

    Raises:
        ValueError: for shapes that do not fit together or an unknown activation.

    Example:
        >>> x = np.ones((1, 5, 5, 2), np.float32)
        >>> k = np.ones((3, 3, 2, 2), np.float32)
        >>> fastcnn.ops.depthwise_conv2d(x, k).shape
        (1, 3, 3, 4)
    """
    fn = "depthwise_conv2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, C, M)" % fn, ndim=4)
    strides, dilation, pads, (oh, ow) = _geometry(fn, x.shape, kernel.shape, strides, padding,
                                                  dilation_rate)
    q = kernel.shape[2] * kernel.shape[3]
    if bias is not None:
        bias = as_float32(bias, "%s: bias (%d,)" % (fn, q))
        check_shape(bias, (q,), "%s: bias" % fn)
    if activation not in _ACTIVATIONS:
        raise ValueError("%s: activation: expected None, 'linear' or 'relu', got %r"
                         % (fn, activation))
    inputs = ((x, "x"), (kernel, "kernel"), (bias, "bias"))
    out = prepare_output(fn, out, "out", (x.shape[0], oh, ow, q), inputs)
    _ext.depthwise_forward(x, kernel, bias, strides, dilation, pads, activation == "relu", out)
    return out


def depthwise_conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid",
                              dilation_rate=(1, 1), need_input_grad=True, use_bias=True,
                              dx=None, dkernel=None, dbias=None):
    """Gradients of :func:`depthwise_conv2d` given ``dy`` = dLoss/d(pre-activation output).

    Args:
        dy: (N, OH, OW, C * M).
        x, kernel, strides, padding, dilation_rate: as in the forward.
        need_input_grad: compute dx.
        use_bias: compute dbias.
        dx, dkernel, dbias: optional preallocated outputs of exactly the shapes below.

    Returns:
        ``(dx | None, dkernel, dbias | None)``: dx (N, H, W, C), dkernel (kh, kw, C, M) and
        dbias (C*M,) summed over the batch.

    Raises:
        ValueError: for shapes that do not fit together.
    """
    fn = "depthwise_conv2d_backward"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, C, M)" % fn, ndim=4)
    strides, dilation, pads, (oh, ow) = _geometry(fn, x.shape, kernel.shape, strides, padding,
                                                  dilation_rate)
    n, q = x.shape[0], kernel.shape[2] * kernel.shape[3]
    dy = as_float32(dy, "%s: dy (%d, %d, %d, %d)" % (fn, n, oh, ow, q), ndim=4)
    check_shape(dy, (n, oh, ow, q), "%s: dy (the output gradient for x %s)"
                % (fn, tuple(x.shape)))
    inputs = ((dy, "dy"), (x, "x"), (kernel, "kernel"))
    (dx, dkernel, dbias), outs = prepare_outputs(fn, inputs, (
        ("dx", dx, x.shape if need_input_grad else None),
        ("dkernel", dkernel, kernel.shape),
        ("dbias", dbias, (q,) if use_bias else None)))
    if dx is not None:
        _ext.depthwise_backward(dy, x, kernel, strides, dilation, pads, dx, dkernel, dbias)
    else:
        _ext.depthwise_backward_kernel(dy, x, strides, dilation, pads, dkernel, dbias)
    return dx, dkernel, dbias
