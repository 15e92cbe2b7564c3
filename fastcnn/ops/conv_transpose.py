"""Transposed 2-D convolution (Keras ``Conv2DTranspose``) and 1-D convolution (Keras
``Conv1D``) on the conv2d kernels (csrc/conv2d.c).

A transposed convolution is the input gradient of a convolution: its forward runs
conv2d's input-gradient kernel, its input gradient conv2d's forward and its kernel
gradient conv2d's kernel gradient, all on the geometry of "the convolution whose input
gradient this is" (input: the transposed conv's output (N, OH, OW, filters); output: its
input (N, H, W, in_channels)). Keras' kernel layout (kh, kw, filters, in_channels) is that
convolution's (kh, kw, C, F) kernel as it is, so no weight is copied or transposed.

Strided transposed convs (the decoder's 3x3 stride 2) can run instead by phase decomposition
(csrc/conv_transpose.h): the output pixels of one phase (position mod stride) take a fixed
subset of the taps, so each phase is a dense stride-1 correlation computed by GEMMs with no
zero taps and no col2im scatter, and bias and ReLU are applied as the phases are written
out interleaved; where no phase has more than 2 taps per axis (kernel <= 2 * stride) those
correlations run as Winograd F(2, 2) (3x3 stride 2: 25 products per 2x2 input pixels
instead of 36). The backward does the same on the phases of ``dy``. The Winograd phases
run where both channel counts are >= 32 (with fewer, the transforms cost more than they
save);
they allocate their own small scratch and ignore ``workspace``.

Output size and padding are Keras 3's (``deconv_output_length`` /
``_convert_conv_transpose_padding_args_from_keras_to_jax``): ``valid`` gives
``(in - 1) * s + k + output_padding`` (``output_padding`` None: ``max(k, s) - k``);
``same`` gives ``in * s`` (``output_padding`` None) or ``(in - 1) * s + k % 2 +
output_padding``.

A 1-D convolution (N, L, C) runs as a conv2d on the view (N, 1, L, C) with the kernel view
(1, k, C, F): no copy. ``padding='causal'`` pads ``k - 1`` zeros on the left.
"""
from .. import _ext
from ._validation import (as_float32, check_shape, conv_output_size, int_tuple, one_of,
                          prepare_output, prepare_outputs)
from .conv import _workspace

__all__ = ["conv2d_transpose", "conv2d_transpose_backward", "conv2d_transpose_output_shape",
           "conv2d_transpose_workspace_size", "deconv_output_length", "conv1d",
           "conv1d_backward", "conv1d_output_length", "conv1d_workspace_size"]


def _transpose_axis(size, k, s, padding, output_padding):
    """(output length, pad_top of the equivalent convolution) along one axis, as Keras."""
    if padding == "valid":
        op = max(k, s) - k if output_padding is None else output_padding
        return (size - 1) * s + k + op, 0
    if output_padding is None:
        out, pad_len = size * s, s + k - 2
    else:
        out, pad_len = (size - 1) * s + k % 2 + output_padding, k + k % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k - 1)  # JAX's left pad of the dilated input
    return out, k - 1 - left


def deconv_output_length(input_length, kernel_size, stride, padding, output_padding=None):
    """Output length of a transposed convolution along one axis (Keras 3's formula).

    Args:
        input_length: input size along the axis.
        kernel_size: kernel size along the axis.
        stride: stride along the axis.
        padding: ``"valid"`` or ``"same"``.
        output_padding: None or an int < stride.

    Returns:
        The output length (may be <= 0 for impossible ``"same"`` shapes with an explicit
        ``output_padding``; the layers and ops refuse those).

    Raises:
        ValueError: for a padding other than ``"valid"`` / ``"same"``.
    """
    padding = one_of(padding.lower() if isinstance(padding, str) else padding, "padding",
                     "deconv_output_length", ("valid", "same"))
    return _transpose_axis(int(input_length), int(kernel_size), int(stride), padding,
                           None if output_padding is None else int(output_padding))[0]


def _transpose_geometry(fn, x_shape, kernel_shape, strides, padding, output_padding):
    """Checked (strides, pads, (OH, OW)) for x (N, H, W, Cin) and kernel (kh, kw, F, Cin)."""
    strides = int_tuple(strides, "strides", fn)
    padding = one_of(padding.lower() if isinstance(padding, str) else padding, "padding", fn,
                     ("valid", "same"))
    if output_padding is not None:
        output_padding = int_tuple(output_padding, "output_padding", fn, minimum=0)
        for op, s in zip(output_padding, strides):
            if op >= s:
                raise ValueError("%s: `output_padding` must be strictly less than `strides` "
                                 "in every dimension. Received: output_padding=%s, strides=%s"
                                 % (fn, output_padding, strides))
    n, h, w, c = x_shape
    kh, kw, f, kc = kernel_shape
    if min(h, w, c) < 1 or min(kh, kw, f) < 1:
        raise ValueError("%s: expected x (N, H, W, C) and kernel (kh, kw, filters, C) with "
                         "positive sizes, got x %s, kernel %s"
                         % (fn, tuple(x_shape), tuple(kernel_shape)))
    if kc != c:
        raise ValueError("%s: kernel: expected shape (%d, %d, %d, %d) to match the %d input "
                         "channels of x %s, got %s"
                         % (fn, kh, kw, f, c, c, tuple(x_shape), tuple(kernel_shape)))
    ops_ = (None, None) if output_padding is None else output_padding
    oh, pt = _transpose_axis(h, kh, strides[0], padding, ops_[0])
    ow, pl = _transpose_axis(w, kw, strides[1], padding, ops_[1])
    if oh < 1 or ow < 1:
        raise ValueError("%s: the output of x %s with kernel %dx%d, strides %s, padding=%r "
                         "would be empty (%d x %d)"
                         % (fn, tuple(x_shape), kh, kw, strides, padding, oh, ow))
    return strides, (pt, pl), (oh, ow)


def conv2d_transpose_output_shape(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                                  output_padding=None):
    """Output shape (N, OH, OW, filters) of :func:`conv2d_transpose`, as Keras computes it.

    Args:
        input_shape: (N, H, W, in_channels).
        kernel_shape: (kh, kw, filters, in_channels).
        strides, padding, output_padding: as in :func:`conv2d_transpose`.

    Returns:
        A 4-tuple of ints.

    Raises:
        ValueError: for bad shapes or arguments, or an empty output.
    """
    fn = "conv2d_transpose_output_shape"
    x_shape, k_shape = tuple(int(s) for s in input_shape), tuple(int(s) for s in kernel_shape)
    if len(x_shape) != 4 or len(k_shape) != 4:
        raise ValueError("%s: expected 4-D input and kernel shapes, got %s and %s"
                         % (fn, x_shape, k_shape))
    _, _, (oh, ow) = _transpose_geometry(fn, x_shape, k_shape, strides, padding,
                                         output_padding)
    return (x_shape[0], oh, ow, k_shape[2])


def conv2d_transpose_workspace_size(input_shape, kernel_shape, strides=(1, 1),
                                    padding="valid", output_padding=None):
    """Float32 elements of ``workspace`` :func:`conv2d_transpose` and its backward need.

    Args:
        input_shape, kernel_shape, strides, padding, output_padding: as in
            :func:`conv2d_transpose_output_shape`.

    Returns:
        An int >= 0 (bounded, a few MB at most, whatever the batch size).
    """
    fn = "conv2d_transpose_workspace_size"
    x_shape, k_shape = tuple(int(s) for s in input_shape), tuple(int(s) for s in kernel_shape)
    strides, pads, out_hw = _transpose_geometry(fn, x_shape, k_shape, strides, padding,
                                                output_padding)
    y_shape, k_shape = _conv_shapes(x_shape, k_shape, out_hw)
    return int(_ext.conv2d_workspace_size(y_shape, k_shape, strides, pads, x_shape[1:3]))


def _conv_shapes(x_shape, k_shape, out_hw):
    """The (input, kernel) shapes of the convolution whose input gradient this is."""
    return (x_shape[0], out_hw[0], out_hw[1], k_shape[2]), tuple(k_shape)


def conv2d_transpose(x, kernel, bias=None, strides=(1, 1), padding="valid",
                     output_padding=None, activation=None, out=None, workspace=None):
    """Keras ``Conv2DTranspose`` forward: ``act(conv_transpose(x, kernel) + bias)``.

    Args:
        x: (N, H, W, in_channels) float32 (other dtypes/layouts are converted).
        kernel: (kh, kw, filters, in_channels), Keras' layout.
        bias: (filters,) or None.
        strides: int or pair.
        padding: ``"valid"`` or ``"same"``.
        output_padding: None, int or pair, each < its stride (Keras' meaning).
        activation: None, ``"linear"`` or ``"relu"`` (fused).
        out: optional writeable C-contiguous float32 (N, OH, OW, filters) output.
        workspace: optional scratch of at least
            ``conv2d_workspace_size(output_shape, kernel.shape, strides, ...)`` floats for
            the equivalent convolution; allocated per call when None.

    Returns:
        y (N, OH, OW, filters) float32.

    Raises:
        ValueError: for bad shapes, arguments or output buffers.
    """
    fn = "conv2d_transpose"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, filters, C)" % fn, ndim=4)
    strides, pads, out_hw = _transpose_geometry(fn, x.shape, kernel.shape, strides, padding,
                                                output_padding)
    f = kernel.shape[2]
    if bias is not None:
        bias = as_float32(bias, "%s: bias (%d,)" % (fn, f))
        check_shape(bias, (f,), "%s: bias" % fn)
    if activation not in (None, "linear", "relu"):
        raise ValueError("%s: activation: expected None, 'linear' or 'relu', got %r"
                         % (fn, activation))
    y_shape, k_shape = _conv_shapes(x.shape, kernel.shape, out_hw)
    inputs = ((x, "x"), (kernel, "kernel"), (bias, "bias"))
    out = prepare_output(fn, out, "out", y_shape, inputs)
    size = _ext.conv2d_workspace_size(y_shape, k_shape, strides, pads, x.shape[1:3])
    ws = _workspace(fn, workspace, size, inputs + ((out, "out"),))
    _ext.conv2d_transpose_forward(x, kernel, bias, strides, pads, activation == "relu", out,
                                  ws)
    return out


def conv2d_transpose_backward(dy, x, kernel, strides=(1, 1), padding="valid",
                              output_padding=None, need_input_grad=True, use_bias=True,
                              dx=None, dkernel=None, dbias=None, workspace=None):
    """Gradients of :func:`conv2d_transpose` given ``dy`` = dLoss/d(pre-activation output).

    Args:
        dy: (N, OH, OW, filters).
        x, kernel, strides, padding, output_padding: as in the forward.
        need_input_grad: whether to compute dx.
        use_bias: whether to compute dbias.
        dx, dkernel, dbias: optional preallocated outputs of the shapes of x, kernel and
            (filters,).
        workspace: as in the forward.

    Returns:
        ``(dx | None, dkernel, dbias | None)``; dkernel and dbias summed over the batch.

    Raises:
        ValueError: for bad shapes, arguments or output buffers.
    """
    fn = "conv2d_transpose_backward"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, filters, C)" % fn, ndim=4)
    strides, pads, out_hw = _transpose_geometry(fn, x.shape, kernel.shape, strides, padding,
                                                output_padding)
    y_shape, k_shape = _conv_shapes(x.shape, kernel.shape, out_hw)
    dy = as_float32(dy, "%s: dy %s" % (fn, y_shape), ndim=4)
    check_shape(dy, y_shape, "%s: dy" % fn)
    inputs = ((dy, "dy"), (x, "x"), (kernel, "kernel"))
    (dx, dkernel, dbias), outs = prepare_outputs(fn, inputs, (
        ("dx", dx, x.shape if need_input_grad else None),
        ("dkernel", dkernel, kernel.shape),
        ("dbias", dbias, (kernel.shape[2],) if use_bias else None)))
    if _ext.conv2d_transpose_winograd_preferred(y_shape, k_shape, strides, pads,
                                                x.shape[1:3]):
        # as the forward: by Winograd phases, with their own scratch (no workspace)
        _ext.conv2d_transpose_phase_backward(dy, x, kernel, strides, pads, dx, dkernel, dbias)
        return dx, dkernel, dbias
    size = _ext.conv2d_workspace_size(y_shape, k_shape, strides, pads, x.shape[1:3])
    ws = _workspace(fn, workspace, size, inputs + outs)
    # the equivalent convolution: input dy, output x
    if dx is not None:
        _ext.conv2d_forward(dy, kernel, None, strides, pads, False, dx, ws)
    _ext.conv2d_backward_kernel(x, dy, strides, pads, dkernel, ws)
    if dbias is not None:
        _ext.conv2d_backward_bias(dy, dbias)
    return dx, dkernel, dbias


# ------------------------------------------------------------------------------ Conv1D
def _conv1d_axis(fn, length, k, s, padding):
    """(output length, left pad) of a 1-D convolution, as Keras."""
    if padding == "causal":
        return (length - 1) // s + 1, k - 1
    out, before, _ = conv_output_size(length, k, s, padding)
    if out < 1:
        raise ValueError("%s: kernel size %d is larger than the input length %d with "
                         "padding='valid' (the output would be empty)" % (fn, k, length))
    return out, before


def conv1d_output_length(length, kernel_size, strides=1, padding="valid"):
    """Output length of :func:`conv1d` for an input of ``length`` steps (Keras' formula).

    Args:
        length: input steps L.
        kernel_size: k.
        strides: s.
        padding: ``"valid"``, ``"same"`` or ``"causal"``.

    Returns:
        The output length, an int >= 1.

    Raises:
        ValueError: for bad arguments or an empty output.
    """
    fn = "conv1d_output_length"
    padding = _padding1d(fn, padding)
    return _conv1d_axis(fn, int(length), int(kernel_size), int(strides), padding)[0]


def _padding1d(fn, padding):
    return one_of(padding.lower() if isinstance(padding, str) else padding, "padding", fn,
                  ("valid", "same", "causal"))


def _conv1d_geometry(fn, x_shape, k_shape, strides, padding):
    if isinstance(strides, (tuple, list)) and len(strides) == 1:
        strides = strides[0]
    s = int_tuple(strides, "strides", fn, n=1)[0]
    padding = _padding1d(fn, padding)
    n, length, c = x_shape
    k, kc, f = k_shape
    if min(length, c, k, f) < 1:
        raise ValueError("%s: expected x (N, L, C) and kernel (k, C, F) with positive sizes, "
                         "got x %s, kernel %s" % (fn, tuple(x_shape), tuple(k_shape)))
    if kc != c:
        raise ValueError("%s: kernel: expected shape (%d, %d, %d) to match the %d input "
                         "channels of x %s, got %s"
                         % (fn, k, c, f, c, tuple(x_shape), tuple(k_shape)))
    out, left = _conv1d_axis(fn, length, k, s, padding)
    return (1, s), (0, left), (1, out)


def conv1d_workspace_size(input_shape, kernel_shape, strides=1, padding="valid"):
    """Float32 elements of ``workspace`` :func:`conv1d` and its backward need.

    Args:
        input_shape: (N, L, C).
        kernel_shape: (k, C, F).
        strides, padding: as in :func:`conv1d`.

    Returns:
        An int >= 0.
    """
    fn = "conv1d_workspace_size"
    x_shape, k_shape = tuple(int(s) for s in input_shape), tuple(int(s) for s in kernel_shape)
    if len(x_shape) != 3 or len(k_shape) != 3:
        raise ValueError("%s: expected (N, L, C) and (k, C, F) shapes, got %s and %s"
                         % (fn, x_shape, k_shape))
    strides, pads, out_hw = _conv1d_geometry(fn, x_shape, k_shape, strides, padding)
    return int(_ext.conv2d_workspace_size((x_shape[0], 1) + x_shape[1:], (1,) + k_shape,
                                          strides, pads, out_hw))


def conv1d(x, kernel, bias=None, strides=1, padding="valid", activation=None, out=None,
           workspace=None):
    """Keras ``Conv1D`` forward: ``act(conv1d(x, kernel) + bias)``.

    Args:
        x: (N, L, C) float32.
        kernel: (k, C, F), Keras' layout.
        bias: (F,) or None.
        strides: int.
        padding: ``"valid"``, ``"same"`` or ``"causal"`` (k - 1 zeros on the left).
        activation: None, ``"linear"`` or ``"relu"`` (fused).
        out: optional writeable C-contiguous float32 (N, L', F) output.
        workspace: optional scratch (``conv2d_workspace_size`` of the (N, 1, L, C) view).

    Returns:
        y (N, L', F) float32.

    Raises:
        ValueError: for bad shapes, arguments or output buffers.
    """
    fn = "conv1d"
    x = as_float32(x, "%s: x (N, L, C)" % fn, ndim=3)
    kernel = as_float32(kernel, "%s: kernel (k, C, F)" % fn, ndim=3)
    strides, pads, out_hw = _conv1d_geometry(fn, x.shape, kernel.shape, strides, padding)
    f = kernel.shape[2]
    if bias is not None:
        bias = as_float32(bias, "%s: bias (%d,)" % (fn, f))
        check_shape(bias, (f,), "%s: bias" % fn)
    if activation not in (None, "linear", "relu"):
        raise ValueError("%s: activation: expected None, 'linear' or 'relu', got %r"
                         % (fn, activation))
    inputs = ((x, "x"), (kernel, "kernel"), (bias, "bias"))
    out = prepare_output(fn, out, "out", (x.shape[0], out_hw[1], f), inputs)
    x4, k4 = x[:, None], kernel[None]
    size = _ext.conv2d_workspace_size(x4.shape, k4.shape, strides, pads, out_hw)
    ws = _workspace(fn, workspace, size, inputs + ((out, "out"),))
    _ext.conv2d_forward(x4, k4, bias, strides, pads, activation == "relu", out[:, None], ws)
    return out


def conv1d_backward(dy, x, kernel, strides=1, padding="valid", need_input_grad=True,
                    use_bias=True, dx=None, dkernel=None, dbias=None, workspace=None):
    """Gradients of :func:`conv1d` given ``dy`` = dLoss/d(pre-activation output).

    Args:
        dy: (N, L', F).
        x, kernel, strides, padding: as in the forward.
        need_input_grad: whether to compute dx.
        use_bias: whether to compute dbias.
        dx, dkernel, dbias: optional preallocated outputs.
        workspace: as in the forward.

    Returns:
        ``(dx | None, dkernel, dbias | None)``.

    Raises:
        ValueError: for bad shapes, arguments or output buffers.
    """
    fn = "conv1d_backward"
    x = as_float32(x, "%s: x (N, L, C)" % fn, ndim=3)
    kernel = as_float32(kernel, "%s: kernel (k, C, F)" % fn, ndim=3)
    strides, pads, out_hw = _conv1d_geometry(fn, x.shape, kernel.shape, strides, padding)
    f = kernel.shape[2]
    dy = as_float32(dy, "%s: dy" % fn, ndim=3)
    check_shape(dy, (x.shape[0], out_hw[1], f), "%s: dy" % fn)
    inputs = ((dy, "dy"), (x, "x"), (kernel, "kernel"))
    (dx, dkernel, dbias), outs = prepare_outputs(fn, inputs, (
        ("dx", dx, x.shape if need_input_grad else None),
        ("dkernel", dkernel, kernel.shape),
        ("dbias", dbias, (f,) if use_bias else None)))
    x4, k4, dy4 = x[:, None], kernel[None], dy[:, None]
    size = _ext.conv2d_workspace_size(x4.shape, k4.shape, strides, pads, out_hw)
    ws = _workspace(fn, workspace, size, inputs + outs)
    if dx is not None:
        _ext.conv2d_backward_input(dy4, k4, strides, pads, dx[:, None], ws)
    _ext.conv2d_backward_kernel(dy4, x4, strides, pads, dkernel[None], ws)
    if dbias is not None:
        _ext.conv2d_backward_bias(dy4, dbias)
    return dx, dkernel, dbias
