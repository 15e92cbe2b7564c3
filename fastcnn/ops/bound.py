"""Kernel calls validated once for a fixed input shape (inference's lean path).

``bind_*(x_shape, ...)`` checks everything the matching checked op checks (by running that
op once on buffers of ``x_shape``), allocates the output and scratch, and returns
``(run, out)``: ``run(x)`` calls the C kernel directly on ``x`` and writes ``out``. The
caller guarantees ``x`` is a C-contiguous float32 array of exactly ``x_shape`` (the lean
runner checks the model input once per call and chains its own buffers), so per call only
the Cython binding's own dtype/layout checks remain.

Every ``run`` also has ``run.lower(program, x)``: it records the same kernel calls on ``x``
(an array standing for the input, or a list of them) into ``program`` (an
``_ext.LeanProgram``) and returns the array ``run`` would return, so a runner can execute a
chain of bound steps in one C call.
"""
import numpy as np

from .. import _ext
from ._validation import as_float32, check_output
from . import conv as _conv
from .merge import _amounts, _concat_geometry, add_relu, concatenate, zero_pad2d
from . import nn as _nn
from . import pool as _pool

__all__ = ["latency_algorithm", "winograd_cached_tile", "zero_pad_conv2d_applies",
           "bind_conv2d", "bind_conv2d_relu_max_pool2d", "bind_conv2d_winograd_relu_max_pool2d",
           "bind_max_pool2d", "bind_dense", "bind_zero_pad2d", "bind_add_relu",
           "bind_concatenate", "bind_sigmoid", "bind_global_avg_pool2d",
           "bind_conv2d_batch_norm", "batch_norm_fold"]


def _probe(x_shape):
    return np.zeros(x_shape, np.float32)


# Winograd transforms the kernels on every call, about this many tiles' worth of work per
# transformed point (csrc/conv2d.c, FC_CONV2D_WINO_FIXED_TILES); 'auto' amortises that over
# a training batch, a bound call at batch 1 must pay it alone.
_WINO_FIXED_TILES = 128


def latency_algorithm(x_shape, k_shape, strides=(1, 1), padding="valid", output_size=None):
    """The forward algorithm a bound conv uses: 'auto', except for a single image, where a
    Winograd choice whose per-call kernel transforms cost more than the GEMM's whole work
    becomes 'im2col' (so batch-1 results may differ from auto's in the last bits)."""
    choice = _conv.conv2d_algorithm(x_shape, k_shape, strides, padding)["forward"]
    if x_shape[0] != 1 or not choice.startswith("winograd"):
        return "auto"
    m = 4 if choice == "winograd_f4" else 2
    _, _, _, (oh, ow) = _conv._geometry("conv2d", x_shape, k_shape, strides, padding)
    if output_size is not None:
        oh, ow = output_size
    points, tiles = (m + 2) ** 2, (-(-oh // m)) * (-(-ow // m))
    n = x_shape[0]
    return "im2col" if points * (n * tiles + _WINO_FIXED_TILES) > 9 * oh * ow * n else "auto"


def _padded_shape(x_shape, input_padding):
    (top, bottom), (left, right) = _amounts(input_padding, "bind_conv2d", "input_padding")
    n, h, w, c = x_shape
    return (n, h + top + bottom, w + left + right, c), (top, left)


def zero_pad_conv2d_applies(x_shape, input_padding, k_shape, strides=(1, 1),
                            padding="valid", output_size=None):
    """Whether ``bind_conv2d(..., input_padding=...)`` can fold a ZeroPadding2D into the
    conv for inputs of ``x_shape``: a 'valid' conv whose bound algorithm on the padded
    input is im2col (its patches hold the same zeros either way, so the bits match).

    Args:
        x_shape: the unpadded input shape (N, H, W, C).
        input_padding: ZeroPadding2D's padding.
        k_shape: the kernel's shape (kh, kw, C, F).
        strides, padding, output_size: as for ``bind_conv2d``.

    Returns:
        bool.
    """
    return _zero_pad_conv2d_algorithm(x_shape, input_padding, k_shape, strides, padding,
                                      output_size) is not None


def _zero_pad_conv2d_algorithm(x_shape, input_padding, k_shape, strides, padding,
                               output_size):
    """The forward algorithm ('im2col' | 'direct') of a conv absorbing its input's zero
    padding, or None where it cannot."""
    if padding != "valid":
        return None
    padded, pads = _padded_shape(tuple(x_shape), input_padding)
    k_shape = tuple(k_shape)
    strides, _, _, out_hw = _conv._geometry("bind_conv2d", padded, k_shape, strides, padding)
    if output_size is not None:
        out_hw = tuple(output_size)
    algorithm = latency_algorithm(padded, k_shape, strides, padding, output_size)
    if algorithm == "auto":
        algorithm = _ext.conv2d_algorithm(padded, k_shape, strides, (0, 0), out_hw,
                                          "forward", "auto")
    # the same algorithm must run with the pads (auto's direct stem on an unpadded input
    # is im2col's once padded: not absorbed)
    fused = _ext.conv2d_algorithm(x_shape, k_shape, strides, pads, out_hw, "forward",
                                  algorithm)
    return algorithm if algorithm in ("im2col", "direct") and fused == algorithm else None


def bind_conv2d(x_shape, kernel, bias=None, strides=(1, 1), padding="valid",
                activation=None, output_size=None, input_padding=None):
    """``conv2d`` for inputs of ``x_shape`` (see ops.conv2d): Winograd with its kernel
    transform kept between calls where ``winograd_cached_tile`` says so (the transform is
    redone when the kernel changes in place), else latency_algorithm's choice.

    ``input_padding`` (ZeroPadding2D's ``padding``, only where ``zero_pad_conv2d_applies``):
    ``run(x)`` computes the conv of ``x`` zero-padded so, without building the padded copy.
    """
    fn = "conv2d"
    k_shape = tuple(kernel.shape)
    x_shape = tuple(x_shape)
    if input_padding is not None:
        algorithm = _zero_pad_conv2d_algorithm(x_shape, input_padding, k_shape, strides,
                                               padding, output_size)
        if algorithm is None:
            raise ValueError("bind_conv2d: input_padding needs a 'valid' im2col or direct "
                             "conv")
        padded, in_pads = _padded_shape(x_shape, input_padding)
        out = _conv.conv2d(_probe(padded), kernel, bias, strides, padding, activation,
                           algorithm=algorithm, output_size=output_size)
        strides = _conv._geometry(fn, padded, k_shape, strides, padding)[0]
        out_hw = out.shape[1:3]
        size = int(_ext.conv2d_workspace_size(x_shape, k_shape, strides, in_pads, out_hw))
        ws = np.empty(size, np.float32).reshape(-1) if size > 0 else None
        args = (kernel, bias, strides, in_pads, activation == "relu", out, ws, algorithm)
        return _bound(out, lambda x: _ext.conv2d_forward(x, *args),
                      lambda program, x: program.add_conv2d(x, *args), "bind_conv2d")
    cached = _bind_conv2d_winograd_cached(x_shape, kernel, bias, strides, padding, activation,
                                          output_size)
    if cached is not None:
        return cached
    algorithm = latency_algorithm(x_shape, k_shape, strides, padding, output_size)
    size = _conv.conv2d_workspace_size(x_shape, k_shape, strides, padding,
                                       output_size=output_size)
    ws = np.empty(size, np.float32) if size > 0 else None
    out = _conv.conv2d(_probe(x_shape), kernel, bias, strides, padding, activation,
                       workspace=ws, algorithm=algorithm, output_size=output_size)
    strides, _, pads, _ = _conv._geometry(fn, x_shape, k_shape, strides, padding)
    args = (kernel, bias, strides, pads, activation == "relu", out,
            None if ws is None else ws.reshape(-1), algorithm)
    return _bound(out, lambda x: _ext.conv2d_forward(x, *args),
                  lambda program, x: program.add_conv2d(x, *args), "bind_conv2d")


def _bound(out, call, add, name):
    """(run, out) of a bound kernel call: run(x) makes the call and returns out, run.lower
    records it into a LeanProgram instead; ``name`` (the bind_* function) names the step
    in profiles."""
    def run(x):
        call(x)
        return out

    def lower(program, x):
        add(program, x)
        return out
    run.lower = lower
    run.__qualname__ = name + ".<locals>.run"
    return run, out


def winograd_cached_tile(x_shape, k_shape, strides=(1, 1), padding="valid",
                         output_size=None):
    """The Winograd tile size (2 or 4) a bound conv of these shapes runs with its kernel
    transform kept between calls, or 0 where it runs another algorithm. For one image, the
    rule of fc_conv2d_winograd_cached_tile (csrc/conv2d.h: auto's without the per-call
    transforms, so batch-1 results may differ from auto's in the last bits); for more,
    auto's own choice, so the bits stay those of ops.conv2d."""
    x_shape, k_shape = tuple(x_shape), tuple(k_shape)
    strides, _, pads, out_hw = _conv._geometry("bind_conv2d", x_shape, k_shape, strides,
                                               padding)
    if output_size is not None:
        out_hw = tuple(output_size)
    if x_shape[0] == 1:
        return _ext.conv2d_winograd_cached_tile(x_shape, k_shape, strides, pads, out_hw)
    auto = _ext.conv2d_algorithm(x_shape, k_shape, strides, pads, out_hw, "forward", "auto")
    return {"winograd_f2": 2, "winograd_f4": 4}.get(auto, 0)


def _bind_conv2d_winograd_cached(x_shape, kernel, bias, strides, padding, activation,
                                 output_size):
    """bind_conv2d's Winograd path with the kernel transform cached (None where it does not
    run): results are ops.conv2d's with algorithm='winograd_f2' / 'winograd_f4'."""
    k_shape = tuple(kernel.shape)
    m = winograd_cached_tile(x_shape, k_shape, strides, padding, output_size)
    if m == 0:
        return None
    size = _conv.conv2d_workspace_size(x_shape, k_shape, strides, padding,
                                       output_size=output_size)
    ws = np.empty(size, np.float32) if size > 0 else None
    out = _conv.conv2d(_probe(x_shape), kernel, bias, strides, padding, activation,
                       workspace=ws, algorithm="winograd_f%d" % m, output_size=output_size)
    _, _, pads, _ = _conv._geometry("bind_conv2d", x_shape, k_shape, strides, padding)
    cache = np.zeros(_ext.conv2d_winograd_cache_size(x_shape, k_shape, pads, out.shape[1:3],
                                                     m), np.float32)
    args = (kernel, bias, pads, activation == "relu", out, cache, ws, m)
    return _bound(out, lambda x: _ext.conv2d_winograd_cached_forward(x, *args),
                  lambda program, x: program.add_conv2d_winograd_cached(x, *args),
                  "bind_conv2d")


def bind_conv2d_relu_max_pool2d(x_shape, kernel, bias=None, strides=(1, 1), padding="valid",
                                pool_size=(2, 2)):
    """``conv2d_relu_max_pool2d`` (the direct fused kernel) for inputs of ``x_shape``."""
    out, _ = _conv.conv2d_relu_max_pool2d(_probe(x_shape), kernel, bias, strides, padding,
                                          pool_size)
    strides, pads, out_hw, pool, _ = _conv._fused_geometry(
        "conv2d_relu_max_pool2d", x_shape, tuple(kernel.shape), strides, padding, pool_size)

    # inference needs no argmax indices (None): the kernel skips their stores
    args = (kernel, bias, strides, pads, out_hw, pool, out, None)
    return _bound(out, lambda x: _ext.conv2d_relu_maxpool_forward(x, *args),
                  lambda program, x: program.add_conv2d_relu_maxpool(x, *args),
                  "bind_conv2d_relu_max_pool2d")


def bind_conv2d_winograd_relu_max_pool2d(x_shape, kernel, bias=None, padding="valid",
                                         output_size=None):
    """``conv2d_winograd_relu_max_pool2d`` for inputs of ``x_shape``."""
    k_shape = tuple(kernel.shape)
    size = _conv.conv2d_workspace_size(x_shape, k_shape, 1, padding, output_size=output_size)
    ws = np.empty(size, np.float32) if size > 0 else None
    out, _ = _conv.conv2d_winograd_relu_max_pool2d(_probe(x_shape), kernel, bias, padding,
                                                   output_size, workspace=ws)
    _, _, pads, (oh, ow) = _conv._geometry("conv2d", x_shape, k_shape, (1, 1), padding)
    out_hw = (oh, ow) if output_size is None else tuple(output_size)
    args = (kernel, bias, pads, out_hw, out, None, None if ws is None else ws.reshape(-1))
    return _bound(out, lambda x: _ext.conv2d_winograd_relu_maxpool2_forward(x, *args),
                  lambda program, x: program.add_conv2d_winograd_relu_maxpool2(x, *args),
                  "bind_conv2d_winograd_relu_max_pool2d")


def bind_max_pool2d(x_shape, pool_size=(2, 2), strides=None, padding="valid",
                    input_padding=None):
    """``max_pool2d`` (no indices) for inputs of ``x_shape``.

    ``input_padding`` (ZeroPadding2D's ``padding``, with a 'valid' pool whose windows each
    hold at least one input element): ``run(x)`` pools ``x`` zero-padded so, without the
    padded copy. The padding is skipped rather than read, so this equals the padded pool
    only for inputs >= 0 (after a ReLU): the caller guarantees that.
    """
    if input_padding is None:
        out = _pool.max_pool2d(_probe(x_shape), pool_size, strides, padding)
        ph, pw, sh, sw, pt, pl, _, _ = _pool._geometry("max_pool2d", x_shape[1], x_shape[2],
                                                       pool_size, strides, padding)
    else:
        padded, (pt, pl) = _padded_shape(tuple(x_shape), input_padding)
        out = _pool.max_pool2d(_probe(padded), pool_size, strides, padding)
        ph, pw, sh, sw, _, _, _, _ = _pool._geometry("max_pool2d", padded[1], padded[2],
                                                     pool_size, strides, padding)
        if padding != "valid" or max(pt, padded[1] - x_shape[1] - pt) >= ph or \
                max(pl, padded[2] - x_shape[2] - pl) >= pw:
            raise ValueError("bind_max_pool2d: input_padding needs a 'valid' pool whose "
                             "windows each overlap the input")

    args = (ph, pw, sh, sw, pt, pl, out)
    return _bound(out, lambda x: _ext.max_pool2d_forward(x, *args),
                  lambda program, x: program.add_max_pool2d(x, *args), "bind_max_pool2d")


def bind_dense(x_shape, kernel, bias=None, activation=None):
    """``dense`` for inputs of ``x_shape`` (N, in)."""
    out = _nn.dense(_probe(x_shape), kernel, bias, activation)
    args = (kernel, bias, _nn._ACTIVATIONS[activation], out)
    return _bound(out, lambda x: _ext.dense_forward(x, *args),
                  lambda program, x: program.add_dense(x, *args), "bind_dense")


def bind_zero_pad2d(x_shape, padding):
    """``zero_pad2d`` for inputs of ``x_shape``."""
    out = zero_pad2d(_probe(x_shape), padding)
    (top, bottom), (left, right) = _amounts(padding, "zero_pad2d", "padding")
    args = (top, bottom, left, right, out)
    return _bound(out, lambda x: _ext.pad2d(x, *args),
                  lambda program, x: program.add_pad2d(x, *args), "bind_zero_pad2d")


def bind_add_relu(x_shapes):
    """``add_relu`` for inputs of ``x_shapes`` (a list of equal shapes); ``run(xs)``."""
    out = add_relu([_probe(s) for s in x_shapes])
    flat = out.reshape(-1)
    return _bound(out, lambda xs: _ext.add_relu_forward([x.reshape(-1) for x in xs], flat),
                  lambda program, xs: program.add_add_relu([x.reshape(-1) for x in xs], flat),
                  "bind_add_relu")


def bind_concatenate(x_shapes, axis=-1):
    """``concatenate`` for inputs of ``x_shapes`` along ``axis``; ``run(xs)``."""
    out = concatenate([_probe(s) for s in x_shapes], axis)
    _, _, rows, widths = _concat_geometry([tuple(s) for s in x_shapes], axis,
                                                 "concatenate")
    out2 = out.reshape(rows, sum(widths))

    def parts(xs):
        return [x.reshape(rows, w) for x, w in zip(xs, widths)]
    return _bound(out, lambda xs: _ext.concat_forward(parts(xs), out2),
                  lambda program, xs: program.add_concat(parts(xs), out2), "bind_concatenate")


def bind_sigmoid(x_shape):
    """``sigmoid`` for inputs of ``x_shape``."""
    out = _nn.sigmoid(_probe(x_shape))
    flat = out.reshape(-1)
    return _bound(out, lambda x: _ext.sigmoid_forward(x.reshape(-1), flat),
                  lambda program, x: program.add_sigmoid(x.reshape(-1), flat), "bind_sigmoid")


def bind_global_avg_pool2d(x_shape, keepdims=False):
    """``global_avg_pool2d`` for inputs of ``x_shape`` ((N, C), or (N, 1, 1, C) with
    ``keepdims``)."""
    out = _pool.global_avg_pool2d(_probe(x_shape))
    result = out.reshape(x_shape[0], 1, 1, x_shape[3]) if keepdims else out
    return _bound(result, lambda x: _ext.global_avg_pool2d_forward(x, out),
                  lambda program, x: program.add_global_avg_pool2d(x, out),
                  "bind_global_avg_pool2d")


def batch_norm_fold(kernel, bias, gamma, beta, moving_mean, moving_variance, epsilon,
                    kernel_out=None, bias_out=None):
    """Fold inference batch norm into the layer before it (C kernel, csrc/bn_fold.c).

    Args:
        kernel: float32 weights whose last axis is the output channel (HWIO, (in, units)).
        bias: float32 (C,) or None.
        gamma, beta, moving_mean, moving_variance: float32 (C,) batch norm vectors.
        epsilon: added to the variance.
        kernel_out, bias_out: optional outputs (kernel's shape, (C,)).

    Returns:
        ``(kernel_out, bias_out)`` with ``scale = gamma / sqrt(var + eps)`` (in double):
        ``kernel * scale`` and ``(bias - mean) * scale + beta``.

    Raises:
        ValueError: when a vector's shape is not (C,) or an output's shape differs.
    """
    fn = "batch_norm_fold"
    kernel = as_float32(kernel, "%s: kernel" % fn)
    if kernel.ndim < 1:
        raise ValueError("%s: kernel must have at least one axis" % fn)
    c = kernel.shape[-1]
    vecs = [as_float32(v, "%s: %s" % (fn, n), ndim=1) for v, n in (
        (gamma, "gamma"), (beta, "beta"), (moving_mean, "moving_mean"),
        (moving_variance, "moving_variance")) + (() if bias is None else ((bias, "bias"),))]
    if any(v.shape != (c,) for v in vecs):
        raise ValueError("%s: gamma, beta, moving_mean, moving_variance (and bias) must have "
                         "shape (%d,), got %s" % (fn, c, [v.shape for v in vecs]))
    kernel_out = check_output(kernel_out, kernel.shape, "%s: kernel_out" % fn)
    bias_out = check_output(bias_out, (c,), "%s: bias_out" % fn)
    _ext.bn_fold(kernel.reshape(-1, c), vecs[4] if bias is not None else None, *vecs[:4],
                 float(epsilon), kernel_out.reshape(-1, c), bias_out)
    return kernel_out, bias_out


def bind_conv2d_batch_norm(x_shape, kernel, bias, gamma, beta, moving_mean, moving_variance,
                           epsilon, strides=(1, 1), padding="valid", activation=None,
                           input_padding=None):
    """conv2d followed by inference batch norm, folded into one conv whose kernel and bias
    are refolded (``batch_norm_fold``) from the given arrays on every call, so weights that
    change in place (training, set_weights) are always seen. ``bias`` may be None;
    ``input_padding`` as for ``bind_conv2d``."""
    folded_kernel, folded_bias = batch_norm_fold(kernel, bias, gamma, beta, moving_mean,
                                                 moving_variance, epsilon)
    conv_run, out = bind_conv2d(x_shape, folded_kernel, folded_bias, strides, padding,
                                activation, input_padding=input_padding)
    c = kernel.shape[-1]
    fold = (kernel.reshape(-1, c), bias, gamma, beta, moving_mean, moving_variance,
            float(epsilon), folded_kernel.reshape(-1, c), folded_bias)

    def call(x):
        _ext.bn_fold(*fold)
        conv_run(x)

    def add(program, x):
        program.add_bn_fold(*fold)
        conv_run.lower(program, x)
    return _bound(out, call, add, "bind_conv2d_batch_norm")
