"""ONNX export of fastcnn models (``model.export(path, format="onnx")``), through ``onnx``.

The model's graph (nested models inlined, ``Functional.flatten_graph``) is walked once; each
layer call is handed to the exporter registered for its class in ``EXPORTERS`` (a table kept
out of the layers, as PyTorch's fuser mappings), which reads the layer only through its Keras
contract: ``get_config()`` and ``get_weights()``. Activations are a second table,
``ACTIVATIONS``: fastcnn activation name -> ONNX op builder.

Layouts: the ONNX model takes and returns NHWC tensors like the fastcnn model. Each tensor of
the ONNX graph remembers its axis order relative to the Keras tensor (``perm``: the ONNX
tensor is ``np.transpose(keras_tensor, perm)``). Conv/pool/BatchNormalization exporters ask
for channels-first (NCHW), Dense/Flatten/Reshape for the Keras order; a Transpose is inserted
only where the order asked differs from the one a tensor has (and each at most once), so a
chain of NCHW ops runs without transposes between them, and element-wise layers keep
whatever order their input has.
"""
import collections
import numbers
import os

import numpy as np

from .._fileio import atomic_write

__all__ = ["export_model", "to_onnx", "layer_to_onnx", "register_exporter", "EXPORTERS",
           "ACTIVATIONS", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 17
MIN_OPSET = 17
# protobuf refuses to serialize a message of 2 GiB or more
_PROTO_LIMIT = 2 ** 31 - 1

TensorRef = collections.namedtuple("TensorRef", ["name", "perm", "shape"])
TensorRef.__doc__ = """A tensor of the ONNX graph: its name, its axis order relative to the
Keras tensor (``None`` for the Keras order itself) and the Keras (symbolic) shape."""


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("ONNX export needs the `onnx` package: pip install "
                          '"fastcnn[onnx]"') from None
    return onnx, helper, numpy_helper


# ============================================================================ layouts
def channels_first(rank):
    """The perm of a channels-first tensor of ``rank`` (rank 4: NHWC -> NCHW = (0, 3, 1, 2))."""
    return (0, rank - 1) + tuple(range(1, rank - 1))


def _norm(perm, rank):
    return None if perm is None or tuple(perm) == tuple(range(rank)) else tuple(perm)


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def onnx_axis(ref, axis):
    """Where Keras axis ``axis`` (negative allowed) of ``ref`` lies in the ONNX tensor."""
    rank = len(ref.shape)
    axis = axis + rank if axis < 0 else axis
    return axis if ref.perm is None else _inverse(ref.perm)[axis]


# ============================================================================ context
class ExportContext:
    """The ONNX graph under construction: nodes, initializers and tensor naming.

    Exporters add nodes with ``node``, constants with ``const``, layer weights with
    ``weight``, and convert a tensor to the axis order they need with ``layout``.
    """

    def __init__(self, opset, helper, numpy_helper, reserved=()):
        self.opset = opset
        self._reserved = set(reserved)  # names only claim=True may take (graph outputs)
        self.claimed = set()
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes = []
        self.initializers = []
        self._names = set()
        self._weights = {}      # (id(layer), tag) -> initializer name (shared layers reuse)
        self._transposed = {}   # (tensor name, perm) -> name of the transposed tensor
        self._consts = {}

    def fresh(self, base, claim=False):
        """A tensor/node name not used yet, ``base`` itself when free (a reserved name only
        with ``claim``)."""
        if claim and base in self._reserved and base not in self.claimed:
            self.claimed.add(base)
            self._names.add(base)
            return base
        name, i = base, 1
        while name in self._names or name in self._reserved:
            name = "%s_%d" % (base, i)
            i += 1
        self._names.add(name)
        return name

    def rename(self, old, new):
        """Give tensor ``old`` the reserved name ``new`` (a graph output's)."""
        new = self.fresh(new, claim=True)
        for node in self.nodes:
            for names in (node.input, node.output):
                for i, n in enumerate(names):
                    if n == old:
                        names[i] = new
        self._transposed = {(new if k[0] == old else k[0], k[1]): v
                            for k, v in self._transposed.items()}
        return new

    def node(self, op, inputs, base, n_outputs=1, claim=False, **attrs):
        """Append node ``op``; returns its output name (a list if ``n_outputs`` > 1)."""
        outs = [self.fresh(base, claim) for _ in range(n_outputs)]
        self.nodes.append(self.helper.make_node(op, list(inputs), outs,
                                                name=self.fresh("node:" + outs[0]), **attrs))
        return outs[0] if n_outputs == 1 else outs

    def const(self, base, array, dtype=np.float32, share=True):
        """An initializer holding ``array`` (float32 unless ``dtype``); equal small
        constants are shared unless ``share`` is False."""
        arr = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if share and arr.size <= 16 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.fresh(base)
        self.initializers.append(self.numpy_helper.from_array(arr, name))
        if key is not None:
            self._consts[key] = name
        return name

    def ints(self, base, values):
        """An int64 1-D constant (shapes, pads, axes for ops that take them as inputs)."""
        return self.const(base, np.asarray(values, dtype=np.int64).reshape(-1), np.int64)

    def weight(self, layer, tag, array):
        """The initializer of one of ``layer``'s weights (made once per layer, named
        ``<layer>/<tag>``, so a shared layer's calls use one copy)."""
        key = (id(layer), tag)
        if key not in self._weights:
            self._weights[key] = self.const("%s/%s" % (layer.name, tag), array, share=False)
        return self._weights[key]

    def layout(self, ref, perm):
        """The name of ``ref`` in axis order ``perm`` (``None``: Keras' order), inserting
        one Transpose when the order differs (reused when asked again)."""
        rank = len(ref.shape)
        want = _norm(perm, rank)
        if want == ref.perm:
            return ref.name
        key = (ref.name, want)
        if key not in self._transposed:
            have = ref.perm or tuple(range(rank))
            target = want or tuple(range(rank))
            inv = _inverse(have)
            t = [inv[a] for a in target]
            self._transposed[key] = self.node("Transpose", [ref.name],
                                              ref.name + "/transpose", perm=t)
        return self._transposed[key]


class LayerCall:
    """What an exporter gets: the layer, its config, its input tensors, output shape, and a
    base name for the tensors it makes."""

    def __init__(self, ctx, layer, inputs, output_shape, base):
        self.ctx = ctx
        self.layer = layer
        self.inputs = inputs
        self.output_shape = tuple(output_shape)
        self.base = base
        self._config = None

    @property
    def config(self):
        """``layer.get_config()`` (Keras 3's keys), computed once."""
        if self._config is None:
            self._config = self.layer.get_config()
        return self._config

    @property
    def x(self):
        """The single input."""
        return self.inputs[0]

    def out(self, name, perm=None):
        """The call's result: tensor ``name`` in axis order ``perm``."""
        return TensorRef(name, _norm(perm, len(self.output_shape)), self.output_shape)

    def fail(self, why):
        """Raise the ValueError of a call this exporter cannot express."""
        raise ValueError("ONNX export: layer '%s' (%s) cannot be exported: %s"
                         % (self.layer.name, type(self.layer).__name__, why))


# ============================================================================ activations
def _gelu(ctx, x, base, axis):
    if ctx.opset >= 20:
        return ctx.node("Gelu", [x], base)
    # 0.5 * x * (1 + erf(x / sqrt(2))), Keras' exact (approximate=False) gelu
    e = ctx.node("Erf", [ctx.node("Mul", [x, ctx.const("gelu/rsqrt2", np.float32(
        1 / np.sqrt(2)))], base + "/scaled")], base + "/erf")
    one_plus = ctx.node("Add", [e, ctx.const("one", np.float32(1))], base + "/1p")
    half_x = ctx.node("Mul", [x, ctx.const("half", np.float32(0.5))], base + "/half")
    return ctx.node("Mul", [half_x, one_plus], base)


def _times_sigmoid(ctx, x, base, axis):
    return ctx.node("Mul", [x, ctx.node("Sigmoid", [x], base + "/sigmoid")], base)


def _mish(ctx, x, base, axis):
    sp = ctx.node("Softplus", [x], base + "/softplus")
    return ctx.node("Mul", [x, ctx.node("Tanh", [sp], base + "/tanh")], base)


def _clip(lo, hi):
    def build(ctx, x, base, axis):
        return ctx.node("Clip", [x, ctx.const("clip/min", np.float32(lo)),
                                 ctx.const("clip/max", np.float32(hi))], base)
    return build


def _unary(op, **attrs):
    def build(ctx, x, base, axis):
        return ctx.node(op, [x], base, **attrs)
    return build


def _along_axis(op):
    def build(ctx, x, base, axis):
        return ctx.node(op, [x], base, axis=axis)
    return build


# name -> builder(ctx, x_name, base, axis) -> output name; ``axis`` is the ONNX position of
# the Keras last axis (softmax's). Keras 3's default parameters.
ACTIVATIONS = {
    "linear": None,
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "softmax": _along_axis("Softmax"),
    "log_softmax": _along_axis("LogSoftmax"),
    "tanh": _unary("Tanh"),
    "elu": _unary("Elu", alpha=1.0),
    "selu": _unary("Selu", alpha=1.6732632423543772, gamma=1.0507009873554805),
    "celu": _unary("Celu", alpha=1.0),
    "softplus": _unary("Softplus"),
    "softsign": _unary("Softsign"),
    "exponential": _unary("Exp"),
    "gelu": _gelu,
    "hard_sigmoid": _unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    "hard_silu": _unary("HardSwish"),
    "hard_swish": _unary("HardSwish"),
    "leaky_relu": _unary("LeakyRelu", alpha=0.2),
    "relu6": _clip(0.0, 6.0),
    "silu": _times_sigmoid,
    "swish": _times_sigmoid,
    "mish": _mish,
    "hard_tanh": _clip(-1.0, 1.0),
    "soft_shrink": _unary("Shrink", lambd=0.5, bias=0.5),
    "hard_shrink": _unary("Shrink", lambd=0.5, bias=0.0),
    "tanh_shrink": lambda ctx, x, base, axis: ctx.node(
        "Sub", [x, ctx.node("Tanh", [x], base + "/tanh")], base),
}


def apply_activation(call, ref, activation):
    """``activation`` (a fastcnn activation name) applied to ``ref``, same axis order."""
    if activation not in ACTIVATIONS:
        call.fail("activation %r has no ONNX mapping (known: %s)"
                  % (activation, ", ".join(sorted(ACTIVATIONS))))
    build = ACTIVATIONS[activation]
    if build is None:
        return ref
    name = build(call.ctx, ref.name, call.base, onnx_axis(ref, -1))
    return TensorRef(name, ref.perm, ref.shape)


def _linear_name(call):
    """The name of a layer's pre-activation output (its own name when it has none)."""
    act = call.config.get("activation", "linear") or "linear"
    return call.base if act == "linear" else call.base + "/linear"


def _activated(call, ref):
    return apply_activation(call, ref, call.config.get("activation", "linear") or "linear")


# ============================================================================ exporters
def _identity(call):
    return call.x


def _input_layer(call):
    # model inputs become graph inputs; an InputLayer is never a call of the flat graph
    return call.x


def _dense(call):
    ctx, cfg = call.ctx, call.config
    w = call.layer.get_weights()
    x = ctx.layout(call.x, None)
    kernel = ctx.weight(call.layer, "kernel", w[0])
    bias = ctx.weight(call.layer, "bias", w[1]) if cfg["use_bias"] else None
    linear = _linear_name(call)
    if len(call.x.shape) == 2:
        y = ctx.node("Gemm", [x, kernel] + ([bias] if bias else []), linear)
    else:
        y = ctx.node("MatMul", [x, kernel], linear + ("/matmul" if bias else ""))
        if bias:
            y = ctx.node("Add", [y, bias], linear)
    return _activated(call, call.out(y))


def _same_pads(call, window, strides, dilations, spatial_shape):
    """Keras' (TensorFlow's) 'same' padding as explicit ONNX pads [begins..., ends...]:
    the odd pixel goes at the end."""
    begins, ends = [], []
    for size, k, s, d in zip(spatial_shape, window, strides, dilations):
        if size is None:
            call.fail("padding='same' needs the spatial sizes at export; got input shape %s"
                      % (call.x.shape,))
        eff = (k - 1) * d + 1
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _window_attrs(call, window, strides, padding, dilations=None):
    spatial = call.x.shape[1:-1]
    dilations = dilations or [1] * len(window)
    attrs = {"kernel_shape": list(window), "strides": list(strides)}
    if padding == "same":
        attrs["pads"] = _same_pads(call, window, strides, dilations, spatial)
    elif padding == "valid":
        attrs["pads"] = [0] * (2 * len(window))
    elif padding == "causal":  # Conv1D: all the padding before, none after
        attrs["pads"] = [(k - 1) * d for k, d in zip(window, dilations)] + [0] * len(window)
    else:
        call.fail("padding=%r has no ONNX equivalent" % (padding,))
    return attrs


def _conv(call):
    ctx, cfg = call.ctx, call.config
    rank = len(call.x.shape)
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        call.fail("data_format=%r" % cfg["data_format"])
    w = call.layer.get_weights()
    # Keras (k..., in/groups, filters) -> ONNX (filters, in/groups, k...)
    kernel = np.transpose(w[0], (rank - 1, rank - 2) + tuple(range(rank - 2)))
    attrs = _conv_attrs(call, cfg)
    attrs["group"] = int(cfg.get("groups", 1))
    perm = channels_first(rank)
    inputs = [ctx.layout(call.x, perm), ctx.weight(call.layer, "kernel", kernel)]
    if cfg["use_bias"]:
        inputs.append(ctx.weight(call.layer, "bias", w[1]))
    linear = _linear_name(call)
    y = ctx.node("Conv", inputs, linear, **attrs)
    return _activated(call, call.out(y, perm))


def _depthwise_kernel(kernel):
    """Keras' depthwise kernel (k..., in, multiplier) -> ONNX (in*multiplier, 1, k...):
    output channel c * multiplier + m, as Keras orders them."""
    rank = kernel.ndim
    k = kernel.reshape(kernel.shape[:-2] + (1, kernel.shape[-2] * kernel.shape[-1]))
    return np.transpose(k, (rank - 1, rank - 2) + tuple(range(rank - 2)))


def _conv_attrs(call, cfg):
    window = list(cfg["kernel_size"])
    dil = list(cfg.get("dilation_rate") or [1] * len(window))
    if len(dil) == 1 and len(window) > 1:
        dil = dil * len(window)
    attrs = _window_attrs(call, window, cfg["strides"], cfg["padding"], dil)
    attrs["dilations"] = dil
    return attrs


def _depthwise_conv(call):
    ctx, cfg, layer = call.ctx, call.config, call.layer
    rank = len(call.x.shape)
    w = layer.get_weights()
    perm = channels_first(rank)
    attrs = _conv_attrs(call, cfg)
    inputs = [ctx.layout(call.x, perm),
              ctx.weight(layer, "depthwise_kernel", _depthwise_kernel(w[0]))]
    if cfg["use_bias"]:
        inputs.append(ctx.weight(layer, "bias", w[1]))
    linear = _linear_name(call)
    y = ctx.node("Conv", inputs, linear, group=int(call.x.shape[-1]), **attrs)
    return _activated(call, call.out(y, perm))


def _separable_conv(call):
    ctx, cfg, layer = call.ctx, call.config, call.layer
    rank = len(call.x.shape)
    w = layer.get_weights()
    perm = channels_first(rank)
    depth = ctx.node("Conv", [ctx.layout(call.x, perm), ctx.weight(
        layer, "depthwise_kernel", _depthwise_kernel(w[0]))], call.base + "/depthwise",
        group=int(call.x.shape[-1]), **_conv_attrs(call, cfg))
    point = np.transpose(w[1], (rank - 1, rank - 2) + tuple(range(rank - 2)))
    inputs = [depth, ctx.weight(layer, "pointwise_kernel", point)]
    if cfg["use_bias"]:
        inputs.append(ctx.weight(layer, "bias", w[2]))
    linear = _linear_name(call)
    y = ctx.node("Conv", inputs, linear, kernel_shape=[1] * (rank - 2))
    return _activated(call, call.out(y, perm))


def conv_transpose_pads(kernel, stride, dilation, padding, output_padding):
    """One axis of Keras' transposed convolution as ONNX ConvTranspose's pads.

    Keras (its JAX padding) pads the stride-dilated input by (left, right) and runs a valid
    convolution; ONNX's uncropped output is the full padding k - 1 on both sides.

    Args:
        kernel: kernel size along the axis.
        stride: stride along the axis.
        dilation: dilation rate along the axis.
        padding: Keras' ``"valid"`` or ``"same"``.
        output_padding: Keras' output padding along the axis, or ``None``.

    Returns:
        ``(pads_begin, pads_end, output_padding)`` of ONNX ConvTranspose.
    """
    eff = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(eff, stride) - eff if output_padding is None else output_padding
        left, right = eff - 1, eff - 1 + extra
    else:
        total = (stride + eff - 2 if output_padding is None
                 else eff + eff % 2 - 2 + output_padding)
        left = min(total // 2 + total % 2, eff - 1)
        right = total - left
    end = eff - 1 - right
    return eff - 1 - left, max(end, 0), max(-end, 0)


def _conv_transpose(call):
    ctx, cfg, layer = call.ctx, call.config, call.layer
    rank = len(call.x.shape)
    window, strides = list(cfg["kernel_size"]), list(cfg["strides"])
    dil = list(cfg.get("dilation_rate") or [1] * len(window))
    if len(dil) == 1 and len(window) > 1:
        dil = dil * len(window)
    out_pads = cfg.get("output_padding")
    if out_pads is None:
        out_pads = [None] * len(window)
    elif isinstance(out_pads, numbers.Integral):
        out_pads = [int(out_pads)] * len(window)
    if cfg["padding"] not in ("valid", "same"):
        call.fail("padding=%r" % (cfg["padding"],))
    begins, ends, out_pad = [], [], []
    for k, s, d, p in zip(window, strides, dil, out_pads):
        b, e, o = conv_transpose_pads(k, s, d, cfg["padding"], p)
        if o >= max(s, d):  # ONNX's limit on output_padding
            call.fail("output_padding=%r with strides=%r" % (cfg["output_padding"], strides))
        begins.append(b), ends.append(e), out_pad.append(o)
    w = layer.get_weights()
    # Keras (k..., filters, in) -> ONNX ConvTranspose (in, filters, k...)
    kernel = np.transpose(w[0], (rank - 1, rank - 2) + tuple(range(rank - 2)))
    perm = channels_first(rank)
    inputs = [ctx.layout(call.x, perm), ctx.weight(layer, "kernel", kernel)]
    if cfg["use_bias"]:
        inputs.append(ctx.weight(layer, "bias", w[1]))
    linear = _linear_name(call)
    y = ctx.node("ConvTranspose", inputs, linear, kernel_shape=window, strides=strides,
                 dilations=dil, pads=begins + ends, output_padding=out_pad)
    return _activated(call, call.out(y, perm))


def _pool(op, **extra):
    def export(call):
        cfg = call.config
        rank = len(call.x.shape)
        attrs = _window_attrs(call, cfg["pool_size"], cfg["strides"], cfg["padding"])
        attrs.update(extra)
        perm = channels_first(rank)
        y = call.ctx.node(op, [call.ctx.layout(call.x, perm)], call.base, **attrs)
        return call.out(y, perm)
    return export


def _global_pool(op):
    def export(call):
        ctx, rank = call.ctx, len(call.x.shape)
        perm = channels_first(rank)
        keep = call.config.get("keepdims", False)
        pooled = ctx.node(op, [ctx.layout(call.x, perm)],
                          call.base if keep else call.base + "/keepdims")
        if keep:  # (N, C, 1, 1) is the channels-first view of Keras' (N, 1, 1, C)
            return call.out(pooled, perm)
        return call.out(ctx.node("Flatten", [pooled], call.base, axis=1))
    return export


def _batch_norm(call):
    ctx, cfg, layer = call.ctx, call.config, call.layer
    rank = len(call.x.shape)
    axis = cfg["axis"]
    axis = axis[0] if isinstance(axis, (list, tuple)) else axis
    if axis not in (-1, rank - 1):
        call.fail("axis=%r (only the last axis is exported)" % (axis,))
    w = list(layer.get_weights())
    c = call.x.shape[-1]
    gamma = w.pop(0) if cfg.get("scale", True) else np.ones(c, np.float32)
    beta = w.pop(0) if cfg.get("center", True) else np.zeros(c, np.float32)
    mean, var = w
    perm = channels_first(rank) if rank > 2 else None
    inputs = [ctx.layout(call.x, perm), ctx.weight(layer, "gamma", gamma),
              ctx.weight(layer, "beta", beta), ctx.weight(layer, "moving_mean", mean),
              ctx.weight(layer, "moving_variance", var)]
    y = ctx.node("BatchNormalization", inputs, call.base, epsilon=float(cfg["epsilon"]))
    return call.out(y, perm)


def _activation_layer(call):
    return apply_activation(call, call.x, call.config["activation"])


def _relu_layer(call):
    # Keras' relu(x, negative_slope, max_value, threshold), term by term
    cfg, ctx, x = call.config, call.ctx, call.x
    max_value = cfg.get("max_value")
    slope = float(cfg.get("negative_slope") or 0.0)
    threshold = float(cfg.get("threshold") or 0.0)
    if max_value is None and threshold == 0.0:
        y = (ctx.node("Relu", [x.name], call.base) if slope == 0.0 else
             ctx.node("LeakyRelu", [x.name], call.base, alpha=slope))
        return call.out(y, x.perm)
    if threshold == 0.0:
        pos = ctx.node("Relu", [x.name], call.base + "/pos")
    else:  # x where x > threshold, else 0
        keep = ctx.node("Greater", [x.name, ctx.const("threshold", np.float32(threshold))],
                        call.base + "/keep")
        pos = ctx.node("Where", [keep, x.name, ctx.const("zero", np.float32(0))],
                       call.base + "/pos")
    if max_value is not None:
        pos = ctx.node("Clip", [pos, ctx.const("zero", np.float32(0)),
                                ctx.const("max_value", np.float32(max_value))],
                       call.base + "/clipped")
    if slope == 0.0:
        return call.out(ctx.node("Identity", [pos], call.base), x.perm)
    below = ctx.node("Sub", [ctx.const("threshold", np.float32(threshold)), x.name],
                     call.base + "/below")
    neg = ctx.node("Mul", [ctx.node("Relu", [below], call.base + "/neg"),
                           ctx.const("slope", np.float32(slope))], call.base + "/scaled_neg")
    return call.out(ctx.node("Sub", [pos, neg], call.base), x.perm)


def _leaky_relu_layer(call):
    y = call.ctx.node("LeakyRelu", [call.x.name], call.base,
                      alpha=float(call.config.get("negative_slope", 0.3)))
    return call.out(y, call.x.perm)


def _elu_layer(call):
    y = call.ctx.node("Elu", [call.x.name], call.base, alpha=float(call.config.get("alpha", 1.0)))
    return call.out(y, call.x.perm)


def _softmax_layer(call):
    axis = call.config.get("axis", -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            call.fail("softmax over several axes %r" % (axis,))
        axis = axis[0]
    y = call.ctx.node("Softmax", [call.x.name], call.base, axis=onnx_axis(call.x, axis))
    return call.out(y, call.x.perm)


def _prelu_layer(call):
    x = call.x
    alpha = call.layer.get_weights()[0]  # input_shape[1:], 1 on shared axes
    if x.perm is not None:  # the slope follows the tensor's axis order
        alpha = np.transpose(alpha, [p - 1 for p in x.perm[1:]])
    y = call.ctx.node("PRelu", [x.name, call.ctx.weight(call.layer, "alpha", alpha)],
                      call.base)
    return call.out(y, x.perm)


def _flatten(call):
    y = call.ctx.node("Flatten", [call.ctx.layout(call.x, None)], call.base, axis=1)
    return call.out(y)


def _reshape(call):
    shape = [0] + [int(d) for d in call.config["target_shape"]]
    y = call.ctx.node("Reshape", [call.ctx.layout(call.x, None), call.ctx.ints(
        call.base + "/shape", shape)], call.base)
    return call.out(y)


def _pairs_cfg(value):
    """Keras' padding/cropping config ([[t, b], [l, r]]) -> ((t, b), (l, r))."""
    return tuple(tuple(int(v) for v in p) for p in value)


def _zero_pad(call):
    ctx, x = call.ctx, call.x
    rank = len(x.shape)
    begins, ends = [0] * rank, [0] * rank
    for k, (b, e) in enumerate(_pairs_cfg(call.config["padding"])):
        a = onnx_axis(x, 1 + k)
        begins[a], ends[a] = b, e
    y = ctx.node("Pad", [x.name, ctx.ints(call.base + "/pads", begins + ends)], call.base,
                 mode="constant")
    return call.out(y, x.perm)


def _slice(call, x, starts_by_axis, ends_by_axis, base):
    """Slice Keras axes (dict axis -> start / end, end None: to the end) of ``x``."""
    axes = sorted(starts_by_axis)
    big = np.iinfo(np.int64).max
    return call.ctx.node("Slice", [
        x.name, call.ctx.ints(base + "/starts", [starts_by_axis[a] for a in axes]),
        call.ctx.ints(base + "/ends", [big if ends_by_axis[a] is None else ends_by_axis[a]
                                       for a in axes]),
        call.ctx.ints(base + "/axes", [onnx_axis(x, a) for a in axes])], base)


def _cropping(call):
    starts, ends = {}, {}
    for k, (b, e) in enumerate(_pairs_cfg(call.config["cropping"])):
        starts[1 + k], ends[1 + k] = b, (-e if e else None)
    return call.out(_slice(call, call.x, starts, ends, call.base), call.x.perm)


def _merge(op):
    def export(call):
        first = call.inputs[0]
        names = [call.ctx.layout(r, first.perm) for r in call.inputs]
        return call.out(call.ctx.node(op, names, call.base), first.perm)
    return export


def _concatenate(call):
    first = call.inputs[0]
    names = [call.ctx.layout(r, first.perm) for r in call.inputs]
    y = call.ctx.node("Concat", names, call.base, axis=onnx_axis(first, call.config["axis"]))
    return call.out(y, first.perm)


def _rescaling(call):
    ctx, cfg, x = call.ctx, call.config, call.x
    scale, offset = cfg["scale"], cfg["offset"]
    if not isinstance(scale, numbers.Real) or not isinstance(offset, numbers.Real):
        call.fail("only scalar scale and offset are exported")
    y = ctx.node("Mul", [x.name, ctx.const(call.base + "/scale", np.float32(scale))],
                 call.base if offset == 0 else call.base + "/scaled")
    if offset != 0:
        y = ctx.node("Add", [y, ctx.const(call.base + "/offset", np.float32(offset))],
                     call.base)
    return call.out(y, x.perm)


def _known_hw(call):
    h, w = call.x.shape[1:3]
    if h is None or w is None:
        call.fail("the input height and width must be known at export (got input shape %s); "
                  "export with input_signature giving them" % (call.x.shape,))
    return h, w


def _aspect_box(height, width, target_h, target_w, pad):
    """Keras' crop_to_aspect_ratio / pad_to_aspect_ratio window: (rows, cols, top, left);
    negative top/left mean padding (Keras' formula, keras/src/ops/image.py)."""
    if not pad:
        crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
        crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
        return crop_h, crop_w, int(float(height - crop_h) / 2), int(float(width - crop_w) / 2)
    pad_h = max(height, int(float(width * target_h) / target_w))
    pad_w = max(width, int(float(height * target_w) / target_h))
    top, left = int(float(pad_h - height) / 2), int(float(pad_w - width) / 2)
    if top > 0:
        return height + 2 * top, width, -top, 0
    if left > 0:
        return height, width + 2 * left, 0, -left
    return height, width, 0, 0


def _resize(call, x, size, interpolation="bilinear", antialias=False, crop=False, pad=False,
            fill_value=0.0):
    """Keras' image resize (JAX's half-pixel sampling) of the NHWC ref ``x``."""
    ctx = call.ctx
    h, w = _known_hw(call)
    th, tw = size
    if crop or pad:
        rows, cols, top, left = _aspect_box(h, w, th, tw, pad)
        if top > 0 or left > 0 or rows < h or cols < w:
            x = TensorRef(_slice(call, x, {1: top, 2: left}, {1: top + rows, 2: left + cols},
                                 call.base + "/crop"), x.perm, x.shape)
        elif top < 0 or left < 0:
            rank = len(x.shape)
            begins, ends = [0] * rank, [0] * rank
            begins[onnx_axis(x, 1)] = ends[onnx_axis(x, 1)] = -top
            begins[onnx_axis(x, 2)] = ends[onnx_axis(x, 2)] = -left
            x = TensorRef(ctx.node("Pad", [x.name, ctx.ints(call.base + "/pads", begins + ends),
                                           ctx.const(call.base + "/fill", np.float32(
                                               fill_value))], call.base + "/pad",
                                   mode="constant"), x.perm, x.shape)
        h, w = rows, cols
    if (h, w) == (th, tw):  # JAX skips axes whose size does not change
        return x
    if antialias and interpolation == "bilinear" and (th < h or tw < w):
        # ONNX Resize's antialias filter (opset 18) samples differently from JAX's
        call.fail("antialias=True when downsampling has no matching ONNX Resize")
    perm = channels_first(4)
    xin = ctx.layout(x, perm)
    # sizes (N, C, th, tw): the batch size is known only at run time
    batch_c = ctx.node("Shape", [xin], call.base + "/shape", start=0, end=2)
    sizes = ctx.node("Concat", [batch_c, ctx.ints(call.base + "/hw", [th, tw])],
                     call.base + "/sizes", axis=0)
    attrs = {"coordinate_transformation_mode": "half_pixel"}
    if interpolation == "nearest":
        attrs.update(mode="nearest", nearest_mode="round_prefer_ceil")
    elif interpolation == "bilinear":
        attrs.update(mode="linear")
    else:
        call.fail("interpolation=%r" % (interpolation,))
    y = ctx.node("Resize", [xin, "", "", sizes], call.base, **attrs)
    return TensorRef(y, perm, call.output_shape)


def _resizing(call):
    cfg = call.config
    if cfg.get("fill_mode", "constant") != "constant":
        call.fail("fill_mode=%r" % cfg["fill_mode"])
    return _resize(call, call.x, (cfg["height"], cfg["width"]), cfg["interpolation"],
                   cfg.get("antialias", False), cfg.get("crop_to_aspect_ratio", False),
                   cfg.get("pad_to_aspect_ratio", False), cfg.get("fill_value", 0.0))


def _center_crop(call):
    cfg = call.config
    h, w = _known_hw(call)
    th, tw = cfg["height"], cfg["width"]
    if h >= th and w >= tw:
        top, left = (h - th) // 2, (w - tw) // 2
        if (top, left, th, tw) == (0, 0, h, w):
            return call.x
        return call.out(_slice(call, call.x, {1: top, 2: left}, {1: top + th, 2: left + tw},
                               call.base), call.x.perm)
    return _resize(call, call.x, (th, tw), crop=True)


def _random_crop(call):
    # at inference Keras' RandomCrop centre-crops to the aspect ratio and resizes
    cfg = call.config
    return _resize(call, call.x, (cfg["height"], cfg["width"]), crop=True)


def _reduce_mean(ctx, x, axes, base):
    """ReduceMean over ``axes`` keeping them (axes an attribute before opset 18)."""
    if ctx.opset >= 18:
        return ctx.node("ReduceMean", [x, ctx.ints(base + "/axes", axes)], base, keepdims=1)
    return ctx.node("ReduceMean", [x], base, axes=list(axes), keepdims=1)


def _layer_norm(call):
    ctx, cfg, layer, x = call.ctx, call.config, call.layer, call.x
    rank = len(x.shape)
    if cfg.get("rms_scaling"):
        call.fail("rms_scaling=True")
    axes = cfg.get("axis", -1)
    axes = sorted(a % rank for a in (axes if isinstance(axes, (list, tuple)) else [axes]))
    if axes != list(range(axes[0], rank)) or axes[0] == 0:
        call.fail("axis=%r: only trailing non-batch axes are exported" % (cfg["axis"],))
    w = list(layer.get_weights())
    param_shape = tuple(x.shape[a] for a in axes)
    gamma = w.pop(0) if cfg.get("scale", True) else np.ones(param_shape, np.float32)
    beta = w.pop(0) if cfg.get("center", True) else np.zeros(param_shape, np.float32)
    y = ctx.node("LayerNormalization", [ctx.layout(x, None),
                                        ctx.weight(layer, "gamma", gamma.reshape(param_shape)),
                                        ctx.weight(layer, "beta", beta.reshape(param_shape))],
                 call.base, axis=axes[0], epsilon=float(cfg["epsilon"]))
    return call.out(y)


def _group_norm(call):
    # Keras' formula on (N, ..., groups, C / groups): moments over all but batch and group
    ctx, cfg, layer, x = call.ctx, call.config, call.layer, call.x
    rank = len(x.shape)
    if cfg.get("axis", -1) not in (-1, rank - 1):
        call.fail("axis=%r (only the last axis is exported)" % (cfg["axis"],))
    c, groups = x.shape[-1], int(cfg["groups"])
    w = list(layer.get_weights())
    gamma = w.pop(0) if cfg.get("scale", True) else np.ones(c, np.float32)
    beta = w.pop(0) if cfg.get("center", True) else np.zeros(c, np.float32)
    b = call.base
    xin = ctx.layout(x, None)
    grouped = ctx.node("Reshape", [xin, ctx.ints(b + "/grouped_shape", [0, -1, groups,
                                                                          c // groups])],
                       b + "/grouped")
    mean = _reduce_mean(ctx, grouped, [1, 3], b + "/mean")
    centred = ctx.node("Sub", [grouped, mean], b + "/centred")
    var = _reduce_mean(ctx, ctx.node("Mul", [centred, centred], b + "/sq"), [1, 3], b + "/var")
    inv = ctx.node("Reciprocal", [ctx.node("Sqrt", [ctx.node("Add", [var, ctx.const(
        b + "/epsilon", np.float32(cfg["epsilon"]))], b + "/var_eps")], b + "/std")],
                   b + "/inv_std")
    normed = ctx.node("Mul", [centred, inv], b + "/normed")
    shape = ctx.node("Shape", [xin], b + "/shape")
    back = ctx.node("Reshape", [normed, shape], b + "/ungrouped")
    scaled = ctx.node("Mul", [back, ctx.weight(layer, "gamma", gamma)], b + "/scaled")
    return call.out(ctx.node("Add", [scaled, ctx.weight(layer, "beta", beta)], b))


def _permute(call):
    # no data moves: the ONNX tensor stays, only its recorded axis order changes
    x = call.x
    q = (0,) + tuple(int(d) for d in call.config["dims"])
    invq = _inverse(q)
    p = x.perm or tuple(range(len(q)))
    return TensorRef(x.name, _norm([invq[a] for a in p], len(q)), call.output_shape)


def _repeat_vector(call):
    ctx, n = call.ctx, int(call.config["n"])
    x = ctx.layout(call.x, None)
    up = ctx.node("Unsqueeze", [x, ctx.ints(call.base + "/axis", [1])], call.base + "/unsqueezed")
    return call.out(ctx.node("Tile", [up, ctx.ints(call.base + "/repeats", [1, n, 1])],
                             call.base))


def _embedding(call):
    ctx, layer = call.ctx, call.layer
    idx = ctx.node("Cast", [ctx.layout(call.x, None)], call.base + "/indices",
                   to=7)  # TensorProto.INT64
    table = ctx.weight(layer, "embeddings", layer.get_weights()[0])
    return call.out(ctx.node("Gather", [table, idx], call.base, axis=0))


def _upsampling(call):
    cfg = call.config
    h, w = _known_hw(call)
    sh, sw = (int(v) for v in cfg["size"])
    return _resize(call, call.x, (h * sh, w * sw), cfg.get("interpolation", "nearest"))


# ============================================================================ the table
# class name (a fastcnn.layers class) or class -> exporter(LayerCall) -> TensorRef
EXPORTERS = {
    "InputLayer": _input_layer,
    "Dense": _dense,
    "Conv2D": _conv,
    "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling2D": _pool("AveragePool", count_include_pad=0),
    "GlobalAveragePooling2D": _global_pool("GlobalAveragePool"),
    "BatchNormalization": _batch_norm,
    "Dropout": _identity,
    "Identity": _identity,
    "Activation": _activation_layer,
    "ReLU": _relu_layer,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "ZeroPadding2D": _zero_pad,
    "Cropping2D": _cropping,
    "Add": _merge("Sum"),
    "Subtract": _merge("Sub"),
    "Multiply": _merge("Mul"),
    "Average": _merge("Mean"),
    "Maximum": _merge("Max"),
    "Minimum": _merge("Min"),
    "Concatenate": _concatenate,
    # preprocessing: the random layers are the identity at inference
    "Rescaling": _rescaling,
    "Resizing": _resizing,
    "CenterCrop": _center_crop,
    "RandomCrop": _random_crop,
    "RandomFlip": _identity,
    "RandomTranslation": _identity,
    "RandomRotation": _identity,
    "RandomZoom": _identity,
    "RandomContrast": _identity,
    "RandomBrightness": _identity,
    # layers other helpers are adding (issue 13): Keras 3 configs, checked against Keras
    "Conv1D": _conv,
    "DepthwiseConv2D": _depthwise_conv,
    "SeparableConv2D": _separable_conv,
    "Conv2DTranspose": _conv_transpose,
    "MaxPooling1D": _pool("MaxPool"),
    "AveragePooling1D": _pool("AveragePool", count_include_pad=0),
    "GlobalAveragePooling1D": _global_pool("GlobalAveragePool"),
    "GlobalMaxPooling2D": _global_pool("GlobalMaxPool"),
    "GlobalMaxPooling1D": _global_pool("GlobalMaxPool"),
    "UpSampling2D": _upsampling,
    "LeakyReLU": _leaky_relu_layer,
    "ELU": _elu_layer,
    "Softmax": _softmax_layer,
    "PReLU": _prelu_layer,
    "LayerNormalization": _layer_norm,
    "GroupNormalization": _group_norm,
    "SpatialDropout1D": _identity,
    "SpatialDropout2D": _identity,
    "Permute": _permute,
    "RepeatVector": _repeat_vector,
    "Embedding": _embedding,
}


def register_exporter(layer_class, exporter):
    """Teach the exporter a layer class (e.g. a custom layer).

    Args:
        layer_class: the layer class (matched exactly, not its subclasses).
        exporter: ``exporter(call) -> TensorRef``; ``call`` is a ``LayerCall`` (the
            layer, its config, input tensors, output shape and the ``ExportContext``).

    Returns:
        ``exporter``.
    """
    if not isinstance(layer_class, type) or not callable(exporter):
        raise TypeError("register_exporter: expected a layer class and a callable, got %r, %r"
                        % (layer_class, exporter))
    EXPORTERS[layer_class] = exporter
    return exporter


def _exporter_for(layer):
    from .. import layers as layers_module
    cls = type(layer)
    fn = EXPORTERS.get(cls)
    if fn is None and getattr(layers_module, cls.__name__, None) is cls:
        fn = EXPORTERS.get(cls.__name__)
    if fn is None:
        raise ValueError("ONNX export: layer '%s' of class %s has no ONNX exporter. "
                         "Exportable layer classes: %s (teach it one with "
                         "fastcnn.onnx.export.register_exporter)"
                         % (layer.name, cls.__name__,
                            ", ".join(sorted(k if isinstance(k, str) else k.__name__
                                             for k in EXPORTERS))))
    return fn


# ============================================================================ driver
def _check_opset(opset, onnx):
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral):
        raise ValueError("ONNX export: opset must be an int >= %d, got %r" % (MIN_OPSET, opset))
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ValueError("ONNX export: opset must be in [%d, %d] (the installed onnx %s knows "
                         "up to %d), got %d" % (MIN_OPSET, newest, onnx.__version__, newest,
                                                opset))
    return int(opset)


def _signature_shapes(model, input_signature):
    """The models' input shapes, overridden by ``input_signature`` (shapes or objects with
    ``.shape``, one per input) where given; each must agree with the model's."""
    own = [tuple(t.shape) for t in model.inputs]
    if input_signature is None:
        return own
    sig = input_signature
    if hasattr(sig, "shape") or (isinstance(sig, (list, tuple)) and sig and
                                 all(d is None or isinstance(d, numbers.Integral) for d in sig)):
        sig = [sig]
    sig = list(sig)
    if len(sig) != len(own):
        raise ValueError("ONNX export: input_signature has %d entries, the model has %d "
                         "inputs" % (len(sig), len(own)))
    shapes = []
    for i, (s, o) in enumerate(zip(sig, own)):
        s = tuple(getattr(s, "shape", s))
        if len(s) != len(o) or any(a is not None and b is not None and a != b
                                   for a, b in zip(s, o)):
            raise ValueError("ONNX export: input_signature[%d] has shape %s, incompatible with "
                             "the model's input shape %s" % (i, s, o))
        if any(d is not None and (isinstance(d, bool) or d <= 0) for d in s):
            raise ValueError("ONNX export: input_signature[%d] must hold positive ints or "
                             "None, got %s" % (i, s))
        shapes.append(tuple(b if a is None else int(a) for a, b in zip(s, o)))
    return shapes


def _value_info(helper, onnx, name, shape, prefix):
    dims = [("%s_dim%d" % (prefix, i) if i else "batch") if d is None else int(d)
            for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)


def _propagate_shapes(graph, input_shapes):
    """The graph's symbolic shapes with the signature's input sizes substituted."""
    shapes = dict(graph.shapes)
    if all(tuple(graph.shapes[k]) == tuple(s) for k, s in zip(graph.inputs, input_shapes)):
        return shapes
    for k, s in zip(graph.inputs, input_shapes):
        shapes[k] = tuple(s)
    for node in graph.nodes:
        ins = [shapes[k] for k in node.inputs]
        shapes[node.output] = tuple(node.layer.compute_output_shape(
            ins if node.layer.multi_input else ins[0]))
    return shapes


def to_onnx(model, opset=DEFAULT_OPSET, input_signature=None):
    """The ``onnx.ModelProto`` of a fastcnn model (inference: dropout and augmentation off,
    batch normalization with its moving statistics).

    Args:
        model: a built ``Sequential`` or functional ``Model`` (nested models are inlined).
        opset: the ONNX opset, >= 17.
        input_signature: optional input shapes (one per input, batch axis first; ``None``
            entries stay dynamic), e.g. to fix the batch size or give the image size of a
            model built with ``Input(shape=(None, None, 3))``.

    Returns:
        onnx.ModelProto: NHWC inputs and outputs named after the model's input and output
        layers, a dynamic batch dimension, weights as initializers named ``layer/weight``.

    Raises:
        ImportError: without the ``onnx`` package.
        ValueError: an unbuilt model, a layer with no exporter (naming it and its class), an
            unsupported layer setting, a bad opset or input signature.
    """
    onnx, helper, numpy_helper = _import_onnx()
    opset = _check_opset(opset, onnx)
    if not hasattr(model, "flatten_graph"):
        raise ValueError("ONNX export: expected a fastcnn Sequential or functional Model, got "
                         "%s" % type(model).__name__)
    if not model.built:
        raise ValueError("ONNX export: model '%s' is not built; give it an input shape "
                         "(fastcnn.Input(shape=...)), call model.build(input_shape) or fit it "
                         "first" % model.name)
    graph = model.flatten_graph()
    out_names = [t._keras_history[0].name for t in model.outputs]
    input_shapes = _signature_shapes(model, input_signature)
    shapes = _propagate_shapes(graph, input_shapes)
    # the outputs get their layers' names; other tensors keep off them
    ctx = ExportContext(opset, helper, numpy_helper, reserved=out_names)
    values, inputs = {}, []
    for key, t, shape in zip(graph.inputs, model.inputs, input_shapes):
        name = ctx.fresh(t._keras_history[0].name, claim=True)
        inputs.append(_value_info(helper, onnx, name, shape, name))
        values[key] = TensorRef(name, None, tuple(shape))
    for node in graph.nodes:
        layer = node.layer
        exporter = _exporter_for(layer)
        base = layer.name if node.slot == 0 else "%s_call%d" % (layer.name, node.slot)
        call = LayerCall(ctx, layer, [values[k] for k in node.inputs], shapes[node.output],
                         base)
        ref = exporter(call)
        if not isinstance(ref, TensorRef):
            raise TypeError("ONNX export: the exporter of %s returned %r, expected a TensorRef"
                            % (type(layer).__name__, ref))
        values[node.output] = ref
    return _finish(ctx, onnx, helper, model.name, inputs,
                   [values[k] for k in graph.outputs], out_names)


def _finish(ctx, onnx, helper, name, inputs, refs, out_names):
    """The ModelProto: outputs in Keras' axis order, named ``out_names``."""
    outputs, renamed = [], set()
    graph_inputs = {i.name for i in inputs}
    for ref, out_name in zip(refs, out_names):
        if out_name in ctx.claimed:  # the same layer output twice: an Identity
            out = ctx.node("Identity", [ctx.layout(ref, None)], out_name)
        elif ref.perm is not None:
            out = ctx.node("Transpose", [ref.name], out_name, claim=True,
                           perm=_inverse(ref.perm))
        elif ref.name in graph_inputs or ref.name in renamed:
            out = ctx.node("Identity", [ref.name], out_name, claim=True)
        else:
            out = ctx.rename(ref.name, out_name)
            renamed.add(out)
        outputs.append(_value_info(helper, onnx, out, ref.shape, out))
    g = helper.make_graph(ctx.nodes, name, inputs, outputs, ctx.initializers)
    from .. import __version__
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", ctx.opset)],
                              producer_name="fastcnn", producer_version=__version__)
    proto.ir_version = min(proto.ir_version, _max_ir_version(onnx, ctx.opset))
    return proto


def layer_to_onnx(layer, input_shape, opset=DEFAULT_OPSET, channels_first_input=False):
    """One call of one layer as an ONNX model (inputs ``x0``, ``x1``, ..., output ``y``).

    ``layer`` may be any object with Keras' layer contract (``name``, ``get_config()``,
    ``get_weights()``, ``compute_output_shape()``): its exporter is looked up by class name,
    so a real Keras layer exports with the same table and checks an exporter against Keras.

    Args:
        layer: a built layer.
        input_shape: its input shape, batch axis first (a list of shapes for merge layers).
        opset: the ONNX opset, >= 17.
        channels_first_input: hand the exporter its inputs transposed to channels-first, as
            they arrive after a convolution (the graph's inputs stay in Keras' order).

    Returns:
        onnx.ModelProto.

    Raises:
        ValueError: no exporter for the class, or a setting the exporter cannot express.
    """
    onnx, helper, numpy_helper = _import_onnx()
    opset = _check_opset(opset, onnx)
    fn = EXPORTERS.get(type(layer)) or EXPORTERS.get(type(layer).__name__)
    if fn is None:
        raise ValueError("ONNX export: no exporter for layer class %s" % type(layer).__name__)
    multi = isinstance(input_shape, list)
    shapes = [tuple(s) for s in (input_shape if multi else [input_shape])]
    ctx = ExportContext(opset, helper, numpy_helper, reserved=["y"])
    inputs, refs = [], []
    for i, shape in enumerate(shapes):
        name = ctx.fresh("x%d" % i)
        inputs.append(_value_info(helper, onnx, name, shape, name))
        ref = TensorRef(name, None, shape)
        if channels_first_input and len(shape) > 2:
            perm = channels_first(len(shape))
            ref = TensorRef(ctx.layout(ref, perm), perm, shape)
        refs.append(ref)
    out_shape = tuple(layer.compute_output_shape(shapes if multi else shapes[0]))
    ref = fn(LayerCall(ctx, layer, refs, out_shape, layer.name))
    return _finish(ctx, onnx, helper, layer.name, inputs, [ref], ["y"])


def _max_ir_version(onnx, opset):
    """The IR version that goes with ``opset`` (so older runtimes accept the file)."""
    try:
        from onnx.helper import find_min_ir_version_for
        return find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    except (ImportError, AttributeError, ValueError):
        return onnx.IR_VERSION


def export_model(model, filepath, opset=DEFAULT_OPSET, verbose=None, input_signature=None):
    """Write a fastcnn model as an ONNX file (atomically: a failed export leaves any previous
    file at ``filepath`` unchanged).

    ``onnxruntime.InferenceSession(filepath).run(None, {input_name: x})`` then gives the
    model's ``predict(x)`` (NHWC float32 input, any batch size).

    Args:
        model: a built ``Sequential`` or functional ``Model``.
        filepath: the ``.onnx`` file to write (str or path-like).
        opset: the ONNX opset, >= 17 (default 17).
        verbose: print where the file went.
        input_signature: optional input shapes (see ``to_onnx``).

    Returns:
        onnx.ModelProto: the exported model (checked with ``onnx.checker.check_model``).

    Raises:
        ImportError: without the ``onnx`` package.
        ValueError: see ``to_onnx``; a model of 2 GiB or more (protobuf's limit).
    """
    onnx, _, _ = _import_onnx()
    filepath = os.fspath(filepath)
    proto = to_onnx(model, opset=opset, input_signature=input_signature)
    if proto.ByteSize() > _PROTO_LIMIT:
        raise ValueError("ONNX export of model '%s': the model is %d bytes; ONNX files "
                         "(protobuf) are limited to 2 GiB" % (model.name, proto.ByteSize()))
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    with atomic_write(filepath) as f:
        f.write(data)
    if verbose:
        print("Saved ONNX model (opset %d) of '%s' to %s" % (opset, model.name, filepath))
    return proto
