"""2-D convolution (Keras ``Conv2D``) on fastcnn's im2col + GEMM kernels.

Layouts are Keras': input ``x`` (N, H, W, C), ``kernel`` (kh, kw, C, F), ``bias`` (F,),
output (N, OH, OW, F). ``padding='same'`` pads like TensorFlow (any odd extra row/column
at the bottom/right).

The kernels process the batch in fixed-size chunks through a small scratch buffer, the
*workspace*. Pass ``workspace=`` (a float32 array of at least
:func:`conv2d_workspace_size` elements, e.g. allocated once per layer) to avoid
allocating it on every call; otherwise one is allocated per call.

Algorithms (``algorithm=``): ``'im2col'`` lowers the convolution to a GEMM on column
rows; ``'winograd'`` (3x3 kernels, stride 1 only) uses Winograd: F(2x2, 3x3)
(``'winograd_f2'``) needs 16 multiplications per 2x2 output tile and channel pair instead
of 36, F(4x4, 3x3) (``'winograd_f4'``) 36 per 4x4 tile instead of 144, at the cost of a
few ulp (F(2x2)) or a few tens of ulp (F(4x4)) more rounding error; ``'winograd'`` picks
the tile size per pass from a cost model (its multiplications plus a per-call cost of the
kernel transforms, see fc_conv2d_algorithm in csrc/conv2d.c): F(4x4) for the tutorial's
13x13 and 12x12 outputs at batch 32, F(2x2) for one small image; ``'direct'`` (layers with
kh * kw * C <= 64, such as a first layer on RGB images) runs the forward and the kernel gradient through a register-blocked kernel
fed one output line's column rows at a time, with no GEMM packing (its input gradient is
im2col's); ``'auto'`` (default) picks, per pass (forward, input gradient, kernel
gradient), the one measured faster: direct where it applies, else Winograd for 3x3
stride-1 layers with >= 16 input and >= 8 output channels, unless partial edge tiles waste
most of its saving (e.g. the input gradient of a 6x6 -> 4x4 `valid` layer); for the kernel
gradient also C * F >= 512. See :func:`conv2d_algorithm`.
"""
import numpy as np

from .. import _ext
from . import conv_decompose
from ._validation import (as_float32, int_tuple, check_no_overlap, check_output,
                          check_shape, conv_output_size, padding_mode, positive_int,
                          prepare_output, prepare_outputs)

__all__ = ["conv2d", "conv2d_backward", "conv2d_workspace_size", "conv2d_output_shape",
           "conv2d_algorithm", "conv2d_relu_max_pool2d", "conv2d_relu_max_pool2d_backward",
           "conv2d_relu_max_pool2d_applies", "conv2d_winograd_relu_max_pool2d",
           "conv2d_winograd_relu_max_pool2d_applies"]

_ACTIVATIONS = (None, "linear", "relu")
_ALGORITHMS = ("auto", "im2col", "winograd", "winograd_f2", "winograd_f4", "direct")


def _check_algorithm(fn, algorithm, x_shape, k_shape, strides, pads, out_hw):
    """The validated algorithm name (winograd needs a 3x3 kernel and stride 1, direct
    kh * kw * C <= 64)."""
    if not isinstance(algorithm, str) or algorithm not in _ALGORITHMS:
        raise ValueError("%s: algorithm: expected one of %s, got %r"
                         % (fn, ", ".join(repr(a) for a in _ALGORITHMS), algorithm))
    if algorithm == "direct" and not _ext.conv2d_direct_applies(
            tuple(x_shape), tuple(k_shape), strides, pads, out_hw):
        raise ValueError("%s: algorithm='direct' needs kh * kw * C <= 64, got kernel %s "
                         "(%d); use 'auto' or 'im2col'"
                         % (fn, tuple(k_shape), k_shape[0] * k_shape[1] * k_shape[2]))
    if algorithm.startswith("winograd") and not _ext.conv2d_winograd_applies(
            tuple(x_shape), tuple(k_shape), strides, pads, out_hw):
        raise ValueError("%s: algorithm=%r needs a 3x3 kernel and strides (1, 1), "
                         "got kernel %dx%d and strides %s; use 'auto' or 'im2col'"
                         % (fn, algorithm, k_shape[0], k_shape[1], tuple(strides)))
    return algorithm


def _geometry(fn, x_shape, k_shape, strides, padding):
    """Checked (strides, padding, (pad_top, pad_left), (OH, OW)) for x_shape * k_shape."""
    return _grouped_geometry(fn, x_shape, k_shape, strides, padding, (1, 1), 1)


def _dilated_grouped(fn, dilation_rate, groups):
    """Checked ((dh, dw), groups), and whether they ask for the grouped/dilated kernels."""
    dilation = int_tuple(dilation_rate, "dilation_rate", fn)
    groups = positive_int(groups, "groups", fn)
    return dilation, groups, dilation != (1, 1) or groups != 1


def _grouped_geometry(fn, x_shape, k_shape, strides, padding, dilation, groups):
    """Checked (strides, padding, (pad_top, pad_left), (OH, OW)) of a grouped/dilated conv:
    kernel (kh, kw, C / groups, F), F divisible by groups, windows (k - 1) * d + 1 wide."""
    strides = int_tuple(strides, "strides", fn)
    padding = padding_mode(padding, fn)
    n, h, w, c = x_shape
    kh, kw, kc, f = k_shape
    if min(h, w, c) < 1:
        raise ValueError("%s: x: expected shape (N, H, W, C) with H, W, C >= 1, got %s"
                         % (fn, tuple(x_shape)))
    if c % groups:
        raise ValueError("%s: the %d input channels of x %s must be divisible by groups=%d"
                         % (fn, c, tuple(x_shape), groups))
    if min(kh, kw, f) < 1:
        raise ValueError("%s: kernel: expected shape (kh, kw, %d, F) with kh, kw, F >= 1, "
                         "got %s" % (fn, c // groups, tuple(k_shape)))
    if groups == 1 and kc != c:
        raise ValueError("%s: kernel: expected shape (%d, %d, %d, %d) to match the %d input "
                         "channels of x %s, got %s"
                         % (fn, kh, kw, c, f, c, tuple(x_shape), tuple(k_shape)))
    if kc * groups != c or f % groups:
        raise ValueError("%s: kernel: expected shape (kh, kw, %d, F) (input channels / groups="
                         "%d) with F divisible by groups, got %s"
                         % (fn, c // groups, groups, tuple(k_shape)))
    if max(strides) > 1 and max(dilation) > 1:
        raise ValueError("%s: strides > 1 is not supported together with dilation_rate > 1 "
                         "(as Keras). Received strides=%s and dilation_rate=%s"
                         % (fn, strides, dilation))
    ekh, ekw = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1
    oh, pt, _ = conv_output_size(h, ekh, strides[0], padding)
    ow, pl, _ = conv_output_size(w, ekw, strides[1], padding)
    if oh < 1 or ow < 1:
        raise ValueError("%s: %skernel %dx%d is larger than the %dx%d input with "
                         "padding='valid' (the output would be empty); use a smaller "
                         "kernel or padding='same'"
                         % (fn, "the dilated " if ekh > kh or ekw > kw else "", ekh, ekw, h, w))
    return strides, padding, (pt, pl), (oh, ow)


def _plain_only(fn, algorithm, output_size):
    if algorithm not in ("auto", "im2col"):
        raise ValueError("%s: grouped or dilated convolutions run as im2col; algorithm must "
                         "be 'auto' or 'im2col', got %r" % (fn, algorithm))
    if output_size is not None:
        raise ValueError("%s: output_size is not supported with groups > 1 or "
                         "dilation_rate > 1" % fn)


def _cropped(fn, output_size, oh, ow):
    """(OH', OW'): the full output (oh, ow), or the top-left part ``output_size`` of it."""
    if output_size is None:
        return oh, ow
    crop = int_tuple(output_size, "output_size", fn)
    if not (1 <= crop[0] <= oh and 1 <= crop[1] <= ow):
        raise ValueError("%s: output_size must lie between (1, 1) and the full output size "
                         "(%d, %d), got %s" % (fn, oh, ow, crop))
    return crop


def conv2d_output_shape(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                        dilation_rate=(1, 1), groups=1):
    """Output shape (N, OH, OW, F) of :func:`conv2d` for these input/kernel shapes."""
    fn = "conv2d_output_shape"
    x_shape = _shape4(input_shape, "input_shape", fn)
    k_shape = _shape4(kernel_shape, "kernel_shape", fn)
    dilation, groups, general = _dilated_grouped(fn, dilation_rate, groups)
    if general:
        _, _, _, (oh, ow) = _grouped_geometry(fn, x_shape, k_shape, strides, padding,
                                              dilation, groups)
    else:
        _, _, _, (oh, ow) = _geometry(fn, x_shape, k_shape, strides, padding)
    return (x_shape[0], oh, ow, k_shape[3])


def _shape4(shape, name, fn):
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError("%s: %s: expected a 4-tuple of ints, got %r"
                         % (fn, name, shape)) from None
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError("%s: %s: expected a 4-tuple of ints >= 0, got %r"
                         % (fn, name, shape))
    return shape


def conv2d_workspace_size(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                          output_size=None, dilation_rate=(1, 1), groups=1):
    """Float32 elements of workspace conv2d / conv2d_backward need for these shapes.

    Args:
        input_shape: (N, H, W, C).
        kernel_shape: (kh, kw, C / groups, F).
        strides, padding, output_size, dilation_rate, groups: as in :func:`conv2d`.

    Returns:
        int: enough for every ``algorithm``. For a plain conv bounded (a few MB at most)
        whatever the batch size, 0 when the kernels need none (1x1 stride-1 kernels, or a
        kernel other than 3x3 stride 1 covering the whole unpadded input); a dilated conv
        also keeps its sub-images there (about the input's and output's sizes).
    """
    fn = "conv2d_workspace_size"
    x_shape = _shape4(input_shape, "input_shape", fn)
    k_shape = _shape4(kernel_shape, "kernel_shape", fn)
    dilation, groups, general = _dilated_grouped(fn, dilation_rate, groups)
    if general:
        _plain_only(fn, "auto", output_size)
        strides, _, pads, out_hw = _grouped_geometry(fn, x_shape, k_shape, strides, padding,
                                                     dilation, groups)
        return _general_workspace_size(x_shape, k_shape, strides, pads, out_hw, dilation,
                                       groups)
    strides, _, pads, out_hw = _geometry(fn, x_shape, k_shape, strides,
                                         padding)
    out_hw = _cropped(fn, output_size, *out_hw)
    return int(_ext.conv2d_workspace_size(x_shape, k_shape, strides, pads, out_hw))


def _general_workspace_size(x_shape, k_shape, strides, pads, out_hw, dilation, groups):
    """conv2d_workspace_size of a grouped / dilated conv (checked geometry)."""
    if conv_decompose.dilated_applies(strides, dilation):
        sub = conv_decompose.SubImages(x_shape, k_shape, pads, out_hw, dilation)
        return (int(np.prod(sub.x_shape)) + int(np.prod(sub.y_shape))
                + _sub_conv_workspace_size(sub.x_shape, k_shape, sub.pads, sub.y_shape[1:3],
                                           groups))
    if tuple(strides) == (1, 1) and dilation == (1, 1):
        return _sub_conv_workspace_size(x_shape, k_shape, pads, out_hw, groups)
    return 0


def _sub_conv_workspace_size(x_shape, k_shape, pads, out_hw, groups):
    """Workspace floats of an undilated stride-1 conv (the sub-images' or a grouped one's)."""
    x_shape, k_shape, pads, out_hw = tuple(x_shape), tuple(k_shape), tuple(pads), tuple(out_hw)
    if groups == 1:
        return int(_ext.conv2d_workspace_size(x_shape, k_shape, (1, 1), pads, out_hw))
    if _grouped_winograd(x_shape, k_shape, pads, out_hw, groups):
        return int(_ext.conv2d_grouped_wino_workspace_size(x_shape, k_shape, pads, out_hw,
                                                           groups))
    return 0


def _grouped_winograd(x_shape, k_shape, pads, out_hw, groups):
    """Whether an undilated stride-1 grouped conv runs as grouped Winograd (3x3 kernels;
    its transforms cover all channels at once, so every group width gains)."""
    return x_shape[0] > 0 and bool(_ext.conv2d_grouped_wino_applies(
        tuple(x_shape), tuple(k_shape), tuple(pads), tuple(out_hw), groups))


def _carve(ws, *shapes):
    """Consecutive C-contiguous float32 views of the flat workspace ``ws`` (None when
    all shapes are empty): one per shape, then the rest (None if empty)."""
    if ws is None:
        ws = np.empty(0, np.float32)
    views, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(ws[at:at + size].reshape(shape))
        at += size
    views.append(ws[at:] if ws.size > at else None)
    return views


def conv2d_algorithm(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                     algorithm="auto"):
    """The algorithm each pass of conv2d / conv2d_backward runs for these shapes.

    Returns ``{'forward': a, 'backward_input': a, 'backward_kernel': a}`` with each ``a``
    ``'im2col'``, ``'winograd_f2'``, ``'winograd_f4'`` or ``'direct'``, given the requested
    ``algorithm`` ('auto', 'im2col', 'winograd', 'winograd_f2', 'winograd_f4' or 'direct').
    """
    fn = "conv2d_algorithm"
    x_shape = _shape4(input_shape, "input_shape", fn)
    k_shape = _shape4(kernel_shape, "kernel_shape", fn)
    strides, _, pads, out_hw = _geometry(fn, x_shape, k_shape, strides, padding)
    algorithm = _check_algorithm(fn, algorithm, x_shape, k_shape, strides, pads, out_hw)
    return {pass_: _ext.conv2d_algorithm(x_shape, k_shape, strides, pads, out_hw, pass_,
                                         algorithm)
            for pass_ in ("forward", "backward_input", "backward_kernel")}


def _workspace(fn, workspace, size, inputs):
    """The caller's workspace as a flat float32 view (checked, not overlapping ``inputs``,
    (array, name) pairs), or a fresh one."""
    if workspace is None:
        return np.empty(size, dtype=np.float32) if size > 0 else None
    workspace = check_output(workspace, None, "%s: workspace" % fn)
    if workspace.size < size:
        raise ValueError("%s: workspace: expected at least %d float32 elements "
                         "(conv2d_workspace_size), got %d" % (fn, size, workspace.size))
    check_no_overlap(fn, workspace, "workspace", inputs)
    return workspace.reshape(-1) if size > 0 else None


def conv2d(x, kernel, bias=None, strides=(1, 1), padding="valid", activation=None, out=None,
           workspace=None, algorithm="auto", output_size=None, dilation_rate=(1, 1), groups=1):
    """Keras ``Conv2D`` forward: ``act(conv(x, kernel) + bias)``.

    x (N, H, W, C), kernel (kh, kw, C, F), bias (F,) or None, strides int or pair,
    padding 'valid' | 'same', activation None | 'linear' | 'relu' (fused into the kernel).
    ``out`` (optional): a writeable C-contiguous float32 array (N, OH, OW, F) to write into.
    ``workspace`` (optional): scratch, see :func:`conv2d_workspace_size`.
    ``algorithm``: 'auto' | 'im2col' | 'winograd' | 'winograd_f2' | 'winograd_f4' (3x3
    stride-1 kernels only) | 'direct' (kh * kw * C <= 64), see the
    module docstring.
    ``output_size`` (optional (OH', OW')): compute only the top-left OH' x OW' outputs (what
    a following 'valid' max-pool reads when it drops a last row/column); workspace sizes
    and conv2d_backward then take the same ``output_size``.
    ``dilation_rate`` (int or pair) and ``groups`` as Keras' Conv2D: with groups G the
    kernel is (kh, kw, C / G, F) and filters [g*F/G, (g+1)*F/G) see input channels
    [g*C/G, (g+1)*C/G); strides > 1 cannot be combined with dilation > 1. Other values than
    (1, 1) and 1 pick their kernels themselves (``algorithm`` 'auto' or 'im2col', no
    output_size): a stride-1 dilated conv runs its dh*dw lattices stacked as one undilated
    conv, a grouped 3x3 stride-1 conv grouped Winograd (transforms over all channels,
    per-group GEMMs), other grouped convs one plain conv per group or an im2col of their
    own; ``workspace`` then takes conv2d_workspace_size with the same dilation_rate and
    groups.
    Returns y (N, OH, OW, F) float32.

    Example:

        >>> x = np.ones((1, 5, 5, 2), np.float32)            # NHWC
        >>> k = np.ones((3, 3, 2, 4), np.float32)            # (kh, kw, in, out), Keras' layout
        >>> y = fastcnn.ops.conv2d(x, k, padding="valid")
        >>> y.shape, float(y[0, 0, 0, 0])                   # 3 * 3 * 2 ones summed
        ((1, 3, 3, 4), 18.0)
    """
    fn = "conv2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, C, F)" % fn, ndim=4)
    dilation, groups, general = _dilated_grouped(fn, dilation_rate, groups)
    if general:
        return _conv2d_grouped(fn, x, kernel, bias, strides, padding, activation, out,
                               algorithm, output_size, dilation, groups, workspace)
    strides, padding, pads, (oh, ow) = _geometry(fn, x.shape, kernel.shape, strides, padding)
    oh, ow = _cropped(fn, output_size, oh, ow)
    f = kernel.shape[3]
    if bias is not None:
        bias = as_float32(bias, "%s: bias (%d,)" % (fn, f))
        check_shape(bias, (f,), "%s: bias" % fn)
    if activation not in _ACTIVATIONS:
        raise ValueError("%s: activation: expected None, 'linear' or 'relu', got %r"
                         % (fn, activation))
    algorithm = _check_algorithm(fn, algorithm, x.shape, kernel.shape, strides, pads, (oh, ow))
    shape = (x.shape[0], oh, ow, f)
    inputs = ((x, "x"), (kernel, "kernel"), (bias, "bias"))
    out = prepare_output(fn, out, "out", shape, inputs)
    size = _ext.conv2d_workspace_size(x.shape, kernel.shape, strides, pads, (oh, ow))
    ws = _workspace(fn, workspace, size, inputs + ((out, "out"),))
    _ext.conv2d_forward(x, kernel, bias, strides, pads, activation == "relu", out, ws,
                        algorithm)
    return out


def conv2d_backward(dy, x, kernel, strides=(1, 1), padding="valid", need_input_grad=True,
                    use_bias=True, dx=None, dkernel=None, dbias=None, workspace=None,
                    algorithm="auto", output_size=None, dilation_rate=(1, 1), groups=1):
    """Gradients of :func:`conv2d` given ``dy`` = dLoss/d(pre-activation output).

    dy (N, OH, OW, F), x (N, H, W, C), kernel (kh, kw, C, F); strides/padding as in the
    forward. Returns ``(dx | None, dkernel, dbias | None)``: dx (N, H, W, C) only when
    ``need_input_grad``, dkernel (kh, kw, C, F) and dbias (F,) summed over the batch, dbias
    only when ``use_bias``. dx / dkernel / dbias (optional) are preallocated outputs
    (writeable C-contiguous float32 of exactly those shapes); ``workspace`` and
    ``algorithm`` as in conv2d (each gradient picks its own under 'auto'). With
    ``output_size`` (as in conv2d), dy is the gradient of that top-left part only.
    ``dilation_rate`` and ``groups`` as in conv2d.
    """
    fn = "conv2d_backward"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, C, F)" % fn, ndim=4)
    dilation, groups, general = _dilated_grouped(fn, dilation_rate, groups)
    if general:
        _plain_only(fn, algorithm, output_size)
        strides, padding, pads, (oh, ow) = _grouped_geometry(fn, x.shape, kernel.shape, strides,
                                                             padding, dilation, groups)
    else:
        strides, padding, pads, (oh, ow) = _geometry(fn, x.shape, kernel.shape, strides,
                                                     padding)
        oh, ow = _cropped(fn, output_size, oh, ow)
    n, f = x.shape[0], kernel.shape[3]
    dy = as_float32(dy, "%s: dy (%d, %d, %d, %d)" % (fn, n, oh, ow, f), ndim=4)
    check_shape(dy, (n, oh, ow, f), "%s: dy (the output gradient for x %s, padding=%r, "
                "strides=%s)" % (fn, tuple(x.shape), padding, strides))
    if not general:
        algorithm = _check_algorithm(fn, algorithm, x.shape, kernel.shape, strides, pads,
                                     (oh, ow))
    inputs = ((dy, "dy"), (x, "x"), (kernel, "kernel"))
    (dx, dkernel, dbias), outs = prepare_outputs(fn, inputs, (
        ("dx", dx, x.shape if need_input_grad else None),
        ("dkernel", dkernel, kernel.shape),
        ("dbias", dbias, (f,) if use_bias else None)))
    if general and conv_decompose.dilated_applies(strides, dilation):
        sub = conv_decompose.SubImages(x.shape, kernel.shape, pads, (oh, ow), dilation)
        size = _general_workspace_size(x.shape, kernel.shape, strides, pads, (oh, ow),
                                       dilation, groups)
        ws = _workspace(fn, workspace, size, inputs + outs)
        xs, dys, sws = _carve(ws, sub.x_shape, sub.y_shape)
        sub.split_input(x, xs)
        sub.split_output_grad(dy, dys)
        _sub_backward_kernel(dys, xs, sub.pads, dkernel, sws, groups)
        if dx is not None:  # (x's sub-images are no longer needed: their gradient goes there)
            _sub_backward_input(dys, kernel, sub.pads, xs, sws, groups)
            sub.merge_input_grad(xs, dx)
    elif general and dilation == (1, 1) and strides == (1, 1) and _grouped_winograd(
            x.shape, kernel.shape, pads, (oh, ow), groups):
        ws = _workspace(fn, workspace, _sub_conv_workspace_size(x.shape, kernel.shape, pads,
                                                                (oh, ow), groups),
                        inputs + outs)
        _sub_backward_kernel(dy, x, pads, dkernel, ws, groups)
        if dx is not None:
            _sub_backward_input(dy, kernel, pads, dx, ws, groups)
    elif general and conv_decompose.grouped_applies(x.shape, kernel.shape, groups):
        _grouped_backward(dy, x, kernel, strides, padding, dx, dkernel, groups)
    elif general:
        if dx is not None:
            _ext.conv2d_grouped_backward_input(dy, kernel, strides, pads, dilation, groups, dx)
        _ext.conv2d_grouped_backward_kernel(dy, x, strides, pads, dilation, groups, dkernel)
    if general:
        if dbias is not None:
            _ext.conv2d_backward_bias(dy, dbias)
        return dx, dkernel, dbias
    size = _ext.conv2d_workspace_size(x.shape, kernel.shape, strides, pads, (oh, ow))
    ws = _workspace(fn, workspace, size, inputs + outs)

    if dx is not None:
        _ext.conv2d_backward_input(dy, kernel, strides, pads, dx, ws, algorithm)
    _ext.conv2d_backward_kernel(dy, x, strides, pads, dkernel, ws, algorithm)
    if dbias is not None:
        _ext.conv2d_backward_bias(dy, dbias)
    return dx, dkernel, dbias


def _conv2d_grouped(fn, x, kernel, bias, strides, padding, activation, out, algorithm,
                    output_size, dilation, groups, workspace):
    """conv2d's grouped / dilated branch (checked as conv2d's, on csrc/conv2d_grouped.c)."""
    _plain_only(fn, algorithm, output_size)
    strides, padding, pads, (oh, ow) = _grouped_geometry(fn, x.shape, kernel.shape, strides,
                                                         padding, dilation, groups)
    f = kernel.shape[3]
    if bias is not None:
        bias = as_float32(bias, "%s: bias (%d,)" % (fn, f))
        check_shape(bias, (f,), "%s: bias" % fn)
    if activation not in _ACTIVATIONS:
        raise ValueError("%s: activation: expected None, 'linear' or 'relu', got %r"
                         % (fn, activation))
    inputs = ((x, "x"), (kernel, "kernel"), (bias, "bias"))
    out = prepare_output(fn, out, "out", (x.shape[0], oh, ow, f), inputs)
    if conv_decompose.dilated_applies(strides, dilation):
        sub = conv_decompose.SubImages(x.shape, kernel.shape, pads, (oh, ow), dilation)
        size = _general_workspace_size(x.shape, kernel.shape, strides, pads, (oh, ow),
                                       dilation, groups)
        ws = _workspace(fn, workspace, size, inputs + ((out, "out"),))
        xs, ys, sws = _carve(ws, sub.x_shape, sub.y_shape)
        sub.split_input(x, xs)
        _sub_forward(xs, kernel, bias, sub.pads, activation == "relu", ys, sws, groups)
        return sub.merge_output(ys, out)
    if dilation == (1, 1) and strides == (1, 1) and _grouped_winograd(
            x.shape, kernel.shape, pads, (oh, ow), groups):
        ws = _workspace(fn, workspace, _sub_conv_workspace_size(x.shape, kernel.shape, pads,
                                                                (oh, ow), groups),
                        inputs + ((out, "out"),))
        _sub_forward(x, kernel, bias, pads, activation == "relu", out, ws, groups)
        return out
    if conv_decompose.grouped_applies(x.shape, kernel.shape, groups):
        return _grouped_forward(x, kernel, bias, strides, padding, activation, out, groups)
    _ext.conv2d_grouped_forward(x, kernel, bias, strides, pads, dilation, groups,
                                activation == "relu", out)
    return out


def _sub_forward(xs, kernel, bias, pads, relu, ys, ws, groups):
    """ys = act(conv(xs) + bias): an undilated stride-1 conv padded by pads (the
    sub-images', or a grouped one), ws of _sub_conv_workspace_size."""
    if groups == 1:
        _ext.conv2d_forward(xs, kernel, bias, (1, 1), pads, relu, ys, ws, "auto")
    elif _grouped_winograd(xs.shape, kernel.shape, pads, ys.shape[1:3], groups):
        _ext.conv2d_grouped_wino_forward(xs, kernel, bias, pads, groups, relu, ys, ws)
    else:
        _ext.conv2d_grouped_forward(xs, kernel, bias, (1, 1), pads, (1, 1), groups, relu, ys)


def _sub_backward_kernel(dys, xs, pads, dkernel, ws, groups):
    if groups == 1:
        _ext.conv2d_backward_kernel(dys, xs, (1, 1), pads, dkernel, ws, "auto")
    elif _grouped_winograd(xs.shape, dkernel.shape, pads, dys.shape[1:3], groups):
        _ext.conv2d_grouped_wino_backward_kernel(dys, xs, pads, groups, dkernel, ws)
    else:
        _ext.conv2d_grouped_backward_kernel(dys, xs, (1, 1), pads, (1, 1), groups, dkernel)


def _sub_backward_input(dys, kernel, pads, dxs, ws, groups):
    if groups == 1:
        _ext.conv2d_backward_input(dys, kernel, (1, 1), pads, dxs, ws, "auto")
    elif _grouped_winograd(dxs.shape, kernel.shape, pads, dys.shape[1:3], groups):
        _ext.conv2d_grouped_wino_backward_input(dys, kernel, pads, groups, dxs, ws)
    else:
        _ext.conv2d_grouped_backward_input(dys, kernel, (1, 1), pads, (1, 1), groups, dxs)


def _grouped_forward(x, kernel, bias, strides, padding, activation, out, groups):
    """One plain conv2d per group, on packed copies of its channel slices."""
    bufs = {}
    for cs, fs in zip(conv_decompose.channel_slices(x.shape[3], groups),
                      conv_decompose.channel_slices(kernel.shape[3], groups)):
        xg = _gather(bufs, "x", x, cs)
        kg = np.ascontiguousarray(kernel[..., fs])
        if "ws" not in bufs:
            bufs["ws"] = np.empty(conv2d_workspace_size(xg.shape, kg.shape, strides, padding),
                                  np.float32)
        bufs["y"] = conv2d(xg, kg, None if bias is None else bias[fs], strides, padding,
                           activation, out=bufs.get("y"), workspace=bufs["ws"])
        _scatter(bufs["y"], out, fs)
    return out


def _grouped_backward(dy, x, kernel, strides, padding, dx, dkernel, groups):
    """conv2d_backward of _grouped_forward, group by group (dx, dkernel written)."""
    bufs = {}
    for cs, fs in zip(conv_decompose.channel_slices(x.shape[3], groups),
                      conv_decompose.channel_slices(kernel.shape[3], groups)):
        xg = _gather(bufs, "x", x, cs)
        dyg = _gather(bufs, "dy", dy, fs)
        kg = np.ascontiguousarray(kernel[..., fs])
        if "ws" not in bufs:
            bufs["ws"] = np.empty(conv2d_workspace_size(xg.shape, kg.shape, strides, padding),
                                  np.float32)
            bufs["dx"] = np.empty(xg.shape, np.float32) if dx is not None else None
            bufs["dk"] = np.empty(kg.shape, np.float32)
        conv2d_backward(dyg, xg, kg, strides, padding, need_input_grad=dx is not None,
                        use_bias=False, dx=bufs["dx"], dkernel=bufs["dk"],
                        workspace=bufs["ws"])
        dkernel[..., fs] = bufs["dk"]
        if dx is not None:
            _scatter(bufs["dx"], dx, cs)


def _gather(bufs, name, a, channels):
    """a[..., channels] packed into the reused buffer ``bufs[name]`` (a C kernel copy)."""
    shape = a.shape[:-1] + (channels.stop - channels.start,)
    buf = bufs.get(name)
    if buf is None:
        buf = bufs[name] = np.empty(shape, np.float32)
    a = np.ascontiguousarray(a, np.float32)
    _ext.channel_slice_gather(a.reshape(-1, a.shape[-1]), buf.reshape(-1, shape[-1]),
                              channels.start)
    return buf


def _scatter(packed, out, channels):
    """out[..., channels] = packed; out is C-contiguous (checked by the callers)."""
    _ext.channel_slice_scatter(packed.reshape(-1, packed.shape[-1]),
                               out.reshape(-1, out.shape[-1]), channels.start)


# ---------------------------------------------------------------- Conv2D(relu) + MaxPooling2D
def _pool_pair(pool_size, fn):
    pool = int_tuple(pool_size, "pool_size", fn)
    if min(pool) < 1:
        raise ValueError("%s: pool_size must be >= 1, got %s" % (fn, pool))
    return pool


def conv2d_relu_max_pool2d_applies(input_shape, kernel_shape, strides=(1, 1), padding="valid",
                                   pool_size=(2, 2)):
    """Whether :func:`conv2d_relu_max_pool2d` can run these shapes: a direct geometry
    (kh * kw * C <= 64) with an output of at least one pooling window."""
    fn = "conv2d_relu_max_pool2d_applies"
    x_shape = _shape4(input_shape, "input_shape", fn)
    k_shape = _shape4(kernel_shape, "kernel_shape", fn)
    strides, _, pads, out_hw = _geometry(fn, x_shape, k_shape, strides, padding)
    pool = _pool_pair(pool_size, fn)
    return bool(_ext.conv2d_relu_maxpool_applies(x_shape, k_shape, strides, pads, out_hw, pool))


def _fused_geometry(fn, x_shape, k_shape, strides, padding, pool_size):
    strides, padding, pads, (oh, ow) = _geometry(fn, x_shape, k_shape, strides, padding)
    pool = _pool_pair(pool_size, fn)
    if not _ext.conv2d_relu_maxpool_applies(tuple(x_shape), tuple(k_shape), strides, pads,
                                            (oh, ow), pool):
        raise ValueError("%s: needs kh * kw * C <= 64 and a conv output (%d, %d) of at least "
                         "one %dx%d pooling window; got kernel %s (use conv2d then "
                         "max_pool2d)" % (fn, oh, ow, pool[0], pool[1], tuple(k_shape)))
    pooled = (x_shape[0], oh // pool[0], ow // pool[1], k_shape[3])
    return strides, pads, (oh, ow), pool, pooled


def conv2d_relu_max_pool2d(x, kernel, bias=None, strides=(1, 1), padding="valid",
                           pool_size=(2, 2), out=None, indices=None):
    """``max_pool2d(conv2d(x, kernel, bias, activation='relu'), pool_size)`` in one kernel.

    The pool's strides are its size and its padding 'valid' (Keras' MaxPooling2D defaults).
    Each pooled line's conv lines are computed in a small buffer and pooled there, so the
    conv output is never written. Returns ``(y, indices)`` exactly as ``max_pool2d(...,
    return_indices=True)`` gives on the conv output (indices are offsets within one conv
    output image). Needs a direct geometry, see :func:`conv2d_relu_max_pool2d_applies`.
    ``out`` / ``indices``: optional preallocated float32 / int32 arrays of the pooled shape.
    """
    fn = "conv2d_relu_max_pool2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, C, F)" % fn, ndim=4)
    strides, pads, out_hw, pool, shape = _fused_geometry(fn, x.shape, kernel.shape, strides,
                                                         padding, pool_size)
    if bias is not None:
        bias = as_float32(bias, "%s: bias (%d,)" % (fn, kernel.shape[3]))
        check_shape(bias, (kernel.shape[3],), "%s: bias" % fn)
    inputs = ((x, "x"), (kernel, "kernel"), (bias, "bias"))
    out = prepare_output(fn, out, "out", shape, inputs)
    indices = prepare_output(fn, indices, "indices", shape, inputs + ((out, "out"),),
                             np.int32)
    _ext.conv2d_relu_maxpool_forward(x, kernel, bias, strides, pads, out_hw, pool, out,
                                     indices)
    return out, indices


def conv2d_relu_max_pool2d_backward(dy, indices, y, x, kernel, strides=(1, 1),
                                    padding="valid", pool_size=(2, 2), use_bias=True,
                                    dkernel=None, dbias=None):
    """Kernel and bias gradients of :func:`conv2d_relu_max_pool2d` given ``dy``, the
    gradient of its pooled output, and the ``indices`` and pooled output ``y`` of that
    forward (a window whose max is <= 0 passes nothing: ReLU's mask). Returns
    ``(dkernel, dbias | None)``. The input gradient is not computed (the fused block is
    meant for a first layer; elsewhere use max_pool2d_backward(..., relu_output=y) and
    conv2d_backward).
    """
    fn = "conv2d_relu_max_pool2d_backward"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (kh, kw, C, F)" % fn, ndim=4)
    strides, pads, out_hw, pool, shape = _fused_geometry(fn, x.shape, kernel.shape, strides,
                                                         padding, pool_size)
    dy = as_float32(dy, "%s: dy %s" % (fn, shape), ndim=4)
    check_shape(dy, shape, "%s: dy (the pooled output's gradient)" % fn)
    y = as_float32(y, "%s: y %s" % (fn, shape), ndim=4)
    check_shape(y, shape, "%s: y (the pooled output)" % fn)
    if not (isinstance(indices, np.ndarray) and indices.dtype.kind in "iu"):
        raise TypeError("%s: indices must be the int32 array conv2d_relu_max_pool2d returned"
                        % fn)
    check_shape(indices, shape, "%s: indices" % fn)
    indices = np.ascontiguousarray(indices, dtype=np.int32)
    inputs = ((dy, "dy"), (y, "y"), (x, "x"), (kernel, "kernel"), (indices, "indices"))
    dkernel = prepare_output(fn, dkernel, "dkernel", kernel.shape, inputs)
    if use_bias:
        f = kernel.shape[3]
        dbias = prepare_output(fn, dbias, "dbias", (f,), inputs + ((dkernel, "dkernel"),))
    else:
        dbias = None
    if not _ext.conv2d_relu_maxpool_backward_kernel(dy, indices, y, x, strides, pads, out_hw,
                                                    pool, dkernel, dbias):
        raise ValueError("%s: indices must name an element of their own pooling window's "
                         "conv lines (as returned by conv2d_relu_max_pool2d)" % fn)
    return dkernel, dbias


# ----------------------------------------- Winograd Conv2D(relu) + MaxPooling2D(2) fused
def conv2d_winograd_relu_max_pool2d_applies(input_shape, kernel_shape, padding="valid",
                                            output_size=None):
    """Whether :func:`conv2d_winograd_relu_max_pool2d` runs these shapes: a 3x3 stride-1
    conv whose forward ('auto') is Winograd with tiles that cover its (output_size) output
    exactly."""
    fn = "conv2d_winograd_relu_max_pool2d_applies"
    x_shape = _shape4(input_shape, "input_shape", fn)
    k_shape = _shape4(kernel_shape, "kernel_shape", fn)
    _, _, pads, (oh, ow) = _geometry(fn, x_shape, k_shape, (1, 1), padding)
    out_hw = _cropped(fn, output_size, oh, ow)
    # (0 unless the forward's auto choice is Winograd, so also for non-3x3 kernels)
    return _ext.conv2d_winograd_relu_maxpool2_tile(x_shape, k_shape, pads, out_hw) > 0


def conv2d_winograd_relu_max_pool2d(x, kernel, bias=None, padding="valid", output_size=None,
                                    out=None, indices=None, workspace=None):
    """``max_pool2d(conv2d(x, kernel, bias, padding=padding, activation='relu',
    output_size=output_size), 2, return_indices=True)`` in one Winograd pass, bitwise.

    For 3x3 stride-1 convs where :func:`conv2d_winograd_relu_max_pool2d_applies`: each
    output tile is pooled as it leaves the output transform, so the conv output is never
    written. Returns ``(y, indices)``, y (N, OH' / 2, OW' / 2, F) for the conv output
    (OH', OW') (``output_size``, default the whole output), indices offsets within one
    (OH', OW', F) conv output image. The backward is ``max_pool2d_backward(dy, indices,
    (N, OH', OW', F), relu_output=y)`` then :func:`conv2d_backward` with the same
    ``output_size``. ``out`` / ``indices`` / ``workspace`` as in conv2d and
    conv2d_relu_max_pool2d.
    """
    fn = "conv2d_winograd_relu_max_pool2d"
    x = as_float32(x, "%s: x (N, H, W, C)" % fn, ndim=4)
    kernel = as_float32(kernel, "%s: kernel (3, 3, C, F)" % fn, ndim=4)
    _, padding, pads, (oh, ow) = _geometry(fn, x.shape, kernel.shape, (1, 1), padding)
    oh, ow = _cropped(fn, output_size, oh, ow)
    if _ext.conv2d_winograd_relu_maxpool2_tile(tuple(x.shape), tuple(kernel.shape), pads,
                                               (oh, ow)) == 0:
        raise ValueError("%s: needs a 3x3 kernel whose Winograd tiles cover the conv output "
                         "(%d, %d) exactly (see conv2d_winograd_relu_max_pool2d_applies); got "
                         "x %s, kernel %s (use conv2d then max_pool2d)"
                         % (fn, oh, ow, tuple(x.shape), tuple(kernel.shape)))
    f = kernel.shape[3]
    if bias is not None:
        bias = as_float32(bias, "%s: bias (%d,)" % (fn, f))
        check_shape(bias, (f,), "%s: bias" % fn)
    shape = (x.shape[0], oh // 2, ow // 2, f)
    inputs = ((x, "x"), (kernel, "kernel"), (bias, "bias"))
    out = prepare_output(fn, out, "out", shape, inputs)
    indices = prepare_output(fn, indices, "indices", shape, inputs + ((out, "out"),),
                             np.int32)
    size = _ext.conv2d_workspace_size(x.shape, kernel.shape, (1, 1), pads, (oh, ow))
    ws = _workspace(fn, workspace, size, inputs + ((out, "out"), (indices, "indices")))
    _ext.conv2d_winograd_relu_maxpool2_forward(x, kernel, bias, pads, (oh, ow), out, indices,
                                               ws)
    return out, indices
