"""ONNX import: a CNN graph from ``torch.onnx.export`` or Keras/tf2onnx -> a fastcnn model.

``load_model(path_or_bytes)`` parses the file with the ``onnx`` package, checks every
tensor it holds against its declared size before converting it, then walks the graph's
nodes once and calls one fastcnn layer per node (or none: Transpose, Identity, Flatten of an
already flat tensor and the Shape/Gather/Unsqueeze/Concat chains torch emits for
``x.view(n, -1)`` are bookkeeping). The result is a functional ``fastcnn.Model`` that can be
compiled and fitted.

Layout: fastcnn is NHWC, so the imported model takes NHWC input. For a torch (NCHW) graph
feed ``x_nchw.transpose(0, 2, 3, 1)``; a Keras/tf2onnx graph whose input is NHWC followed by
a Transpose takes its input as it is. Every ONNX tensor is tracked as a fastcnn tensor plus
the axis permutation that turns the fastcnn tensor into the ONNX one, so Transposes cost
nothing, Conv weights go from OIHW to HWIO, Concat's channel axis becomes -1, and the first
Gemm/MatMul after flattening an NCHW tensor gets its weight rows permuted to NHWC order.
"""
import os
import re

import numpy as np

from .. import layers as L
from ..models import Model
from .export import conv_transpose_pads

__all__ = ["load_model"]

# Sanity caps on what a file may declare (checked before anything is allocated).
_MAX_FILE_BYTES = 2 ** 31 - 1  # protobuf's own limit
_MAX_TENSOR_ELEMENTS = 2 ** 28  # 1 GiB of float32 in one initializer
_MAX_INPUT_ELEMENTS = 2 ** 26  # per sample
_MAX_DIM = 2 ** 20
_MAX_NODES = 100000

_NCHW = (0, 3, 1, 2)  # an NCHW ONNX tensor is the NHWC fastcnn tensor transposed by this

# ONNX TensorProto data types we convert, and the typed field holding them when not raw.
_DTYPES = {1: (np.float32, "float_data"), 11: (np.float64, "double_data"),
           6: (np.int32, "int32_data"), 7: (np.int64, "int64_data")}

# ONNX activations without attributes -> the Keras activation name (tried on Activation)
_SIMPLE_ACTIVATIONS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus",
                       "Softsign": "softsign", "Selu": "selu", "HardSwish": "hard_silu",
                       "Gelu": "gelu", "Exp": "exponential", "Mish": "mish"}

# Ops whose output only reshuffles constants (shape arithmetic); evaluated at import.
_CONST_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice",
              "Constant", "Identity", "Reshape", "ConstantOfShape", "Transpose")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError('fastcnn.onnx.load_model needs the onnx package: '
                          'pip install "fastcnn[onnx]"') from None
    return onnx


def _identifier(text, default):
    """A layer-name-safe version of an ONNX name (bytes when the file's UTF-8 is damaged)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return re.sub(r"[^0-9A-Za-z_]+", "_", text or "").strip("_") or default

class _Value:
    """An ONNX tensor as fastcnn sees it: ``kt`` transposed by ``perm`` is the ONNX tensor.

    ``rowmap`` (2-D only): ONNX feature j is fastcnn feature ``rowmap[j]`` (a flattened
    NCHW tensor); ``nonneg``: every element is >= 0 (zero padding then equals -inf padding
    for a max-pool)."""

    def __init__(self, kt, perm, rowmap=None, nonneg=False):
        self.kt, self.perm, self.rowmap, self.nonneg = kt, tuple(perm), rowmap, nonneg

    @property
    def shape(self):
        """The ONNX shape (batch axis None)."""
        s = self.kt.shape
        return tuple(s[p] for p in self.perm)

    def with_(self, kt, **kw):
        v = _Value(kt, self.perm, self.rowmap, self.nonneg)
        for k, val in kw.items():
            setattr(v, k, val)
        return v


class _Importer:
    def __init__(self, model_proto, where):
        self.onnx = _onnx()
        self.where = where
        self.proto = model_proto
        self.graph = model_proto.graph
        self.consts = {}
        self.index = {}
        self.batch = None  # the graph input's fixed batch size, if it declares one
        self.values = {}
        self.names = set()
        self.skip = set()
        opsets = {o.domain: o.version for o in model_proto.opset_import}
        self.opset = opsets.get("", opsets.get("ai.onnx", 0))

    # ------------------------------------------------------------------ errors and names
    def fail(self, node, what):
        name = node.name or "#%d (unnamed)" % self.index.get(id(node), -1)
        raise ValueError("fastcnn.onnx.load_model(%s): node %r (op %s): %s"
                         % (self.where, name, node.op_type, what))

    def layer_name(self, node):
        base = _identifier(node.name or node.op_type.lower(), "")
        base = base or node.op_type.lower()
        name, i = base, 1
        while name in self.names:
            name = "%s_%d" % (base, i)
            i += 1
        self.names.add(name)
        return name

    # ------------------------------------------------------------------ tensors
    def tensor(self, t, what):
        """A TensorProto as a NumPy array, after checking its declared size against its
        data (no allocation sized by an unchecked declaration)."""
        dims = list(t.dims)
        if len(dims) > 8 or any(d < 0 or d > _MAX_TENSOR_ELEMENTS for d in dims):
            raise ValueError("fastcnn.onnx.load_model(%s): tensor %r declares dims %s "
                             "(negative, too many or too large)" % (self.where, what, dims))
        count = 1
        for d in dims:
            count *= d
        if count > _MAX_TENSOR_ELEMENTS:
            raise ValueError("fastcnn.onnx.load_model(%s): tensor %r declares %d elements "
                             "(limit %d)" % (self.where, what, count, _MAX_TENSOR_ELEMENTS))
        if t.data_location == 1 or len(t.external_data):
            raise ValueError("fastcnn.onnx.load_model(%s): tensor %r keeps its data in an "
                             "external file; fastcnn only loads self-contained ONNX files"
                             % (self.where, what))
        if t.HasField("segment"):
            raise ValueError("fastcnn.onnx.load_model(%s): tensor %r is segmented "
                             "(unsupported)" % (self.where, what))
        if t.data_type not in _DTYPES:
            raise ValueError("fastcnn.onnx.load_model(%s): tensor %r has ONNX data type %d; "
                             "fastcnn imports float32/float64/int32/int64 tensors"
                             % (self.where, what, t.data_type))
        dtype, field = _DTYPES[t.data_type]
        dtype = np.dtype(dtype).newbyteorder("<")
        if t.raw_data:
            if len(t.raw_data) != count * dtype.itemsize:
                raise ValueError("fastcnn.onnx.load_model(%s): tensor %r declares shape %s "
                                 "(%d bytes) but holds %d bytes of data"
                                 % (self.where, what, dims, count * dtype.itemsize,
                                    len(t.raw_data)))
            arr = np.frombuffer(t.raw_data, dtype=dtype)
        else:
            data = getattr(t, field)
            if len(data) != count:
                raise ValueError("fastcnn.onnx.load_model(%s): tensor %r declares shape %s "
                                 "(%d values) but holds %d values"
                                 % (self.where, what, dims, count, len(data)))
            arr = np.asarray(data, dtype=dtype)
        return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)

    def const(self, name):
        return self.consts.get(name) if name else None

    def value(self, node, name):
        v = self.values.get(name)
        if v is None:
            if name in self.consts:
                self.fail(node, "input %r is a constant; fastcnn maps this op only on "
                          "computed tensors" % name)
            self.fail(node, "input %r is not produced by any node before it" % name)
        return v

    def weight(self, node, index, what):
        name = node.input[index] if len(node.input) > index else ""
        arr = self.const(name)
        if arr is None:
            self.fail(node, "%s (input %d) must be an initializer or constant" % (what, index))
        return arr.astype(np.float32)

    # ------------------------------------------------------------------ attributes
    def attrs(self, node):
        out = {}
        h = self.onnx.helper
        for a in node.attribute:
            if a.type == self.onnx.AttributeProto.TENSOR:
                out[a.name] = self.tensor(a.t, "%s.%s" % (node.name, a.name))
            elif a.type in (self.onnx.AttributeProto.GRAPH, self.onnx.AttributeProto.GRAPHS):
                self.fail(node, "subgraph attributes are not supported")
            else:
                v = h.get_attribute_value(a)
                out[a.name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        return out

    # ------------------------------------------------------------------ driver
    def run(self):
        g = self.graph
        if len(g.node) > _MAX_NODES:
            raise ValueError("fastcnn.onnx.load_model(%s): %d nodes (limit %d)"
                             % (self.where, len(g.node), _MAX_NODES))
        for t in g.initializer:
            self.consts[t.name] = self.tensor(t, t.name)
        if len(g.sparse_initializer):
            raise ValueError("fastcnn.onnx.load_model(%s): sparse initializers are not "
                             "supported" % self.where)
        self.consumers = {}
        # one Python object per node for the whole import (ids key the skip set and index)
        nodes = list(g.node)
        self.index = {id(node): i for i, node in enumerate(nodes)}
        for node in nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in g.output}
        inputs = self.make_inputs()
        # Constant nodes first: the patterns matched at a node (erf gelu, softsign) look
        # at constants torch places after that node
        ordered = ([n for n in nodes if n.op_type == "Constant" and not n.input] +
                   [n for n in nodes if n.op_type != "Constant" or n.input])
        for node in ordered:
            if id(node) in self.skip:
                continue
            if node.domain not in ("", "ai.onnx"):
                self.fail(node, "operator domain %r is not supported (only the standard "
                          "ONNX domain)" % node.domain)
            try:
                self.convert(node)
            except (IndexError, KeyError, TypeError, AttributeError, OverflowError,
                    ZeroDivisionError) as e:
                # a malformed node (missing inputs, attributes of the wrong kind, ...)
                self.fail(node, "malformed node (%s: %s)" % (type(e).__name__, e))
            except ValueError as e:
                if str(e).startswith("fastcnn.onnx.load_model("):
                    raise
                # a layer refusing the node's values, or an attribute of the wrong kind
                self.fail(node, str(e))
        outputs = []
        for o in g.output:
            v = self.values.get(o.name)
            if v is None:
                raise ValueError("fastcnn.onnx.load_model(%s): graph output %r is not "
                                 "computed from the graph input (a constant output?)"
                                 % (self.where, o.name))
            if v.rowmap is not None and not _is_identity(v.rowmap):
                raise ValueError("fastcnn.onnx.load_model(%s): graph output %r is a "
                                 "flattened NCHW tensor; fastcnn's output would be in NHWC "
                                 "order" % (self.where, o.name))
            outputs.append(v.kt)
        if not inputs or not outputs:
            raise ValueError("fastcnn.onnx.load_model(%s): the graph declares no %s"
                             % (self.where, "inputs" if not inputs else "outputs"))
        name = _identifier(g.name, "onnx_model")
        return Model(inputs if len(inputs) > 1 else inputs[0],
                     outputs if len(outputs) > 1 else outputs[0], name=name)

    def make_inputs(self):
        inputs = []
        for inp in self.graph.input:
            if inp.name in self.consts:
                continue  # an initializer also listed as an input (older exporters)
            tt = inp.type.tensor_type
            if not inp.type.HasField("tensor_type") or tt.elem_type != 1:
                raise ValueError("fastcnn.onnx.load_model(%s): input %r must be a float32 "
                                 "tensor" % (self.where, inp.name))
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            if len(dims) not in (2, 4) or any(d is None or d <= 0 or d > _MAX_DIM
                                               for d in dims[1:]):
                raise ValueError("fastcnn.onnx.load_model(%s): input %r has shape %s; fastcnn "
                                 "imports 4-D image inputs (N, C, H, W) / (N, H, W, C) or "
                                 "2-D (N, features) with every axis but the batch known"
                                 % (self.where, inp.name, dims))
            if int(np.prod(dims[1:], dtype=np.int64)) > _MAX_INPUT_ELEMENTS:
                raise ValueError("fastcnn.onnx.load_model(%s): input %r declares %s, over %d "
                                 "elements per sample" % (self.where, inp.name, dims,
                                                          _MAX_INPUT_ELEMENTS))
            if dims[0] is not None and dims[0] > 0:
                self.batch = dims[0]
            users = self.consumers.get(inp.name, [])
            nhwc = len(dims) == 4 and users and all(
                u.op_type == "Transpose" and list(self.attrs(u).get("perm") or []) == [0, 3, 1, 2]
                for u in users)
            if len(dims) == 2 or nhwc:
                shape, perm = tuple(dims[1:]), tuple(range(len(dims)))
            else:
                shape, perm = (dims[2], dims[3], dims[1]), _NCHW
            name = _identifier(inp.name, "input")
            self.names.add(name)
            kt = L.Input(shape=shape, name=name)
            self.values[inp.name] = _Value(kt, perm)
            inputs.append(kt)
        if not inputs:
            raise ValueError("fastcnn.onnx.load_model(%s): the graph has no input"
                             % self.where)
        return inputs

    def put(self, node, value, index=0):
        self.values[node.output[index]] = value

    def only_consumer(self, name, op_types):
        """The single node consuming tensor ``name`` if its op is one of ``op_types``."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.outputs or users[0].op_type not in op_types:
            return None
        if users[0].domain not in ("", "ai.onnx"):
            return None
        return users[0]

    def convert(self, node):
        op = node.op_type
        if all(i == "" or i in self.consts for i in node.input) and op in _CONST_OPS:
            return self.fold(node)
        if op == "Shape":
            return self.shape_of(node)
        if op in ("Div", "Mul") and self.erf_gelu(node):
            return None
        if op == "Abs" and self.softsign(node):
            return None
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            act = _SIMPLE_ACTIVATIONS.get(op)
            if act is not None:
                return self.activation(node, act)
            self.fail(node, "unsupported ONNX op. fastcnn imports Conv, ConvTranspose, "
                      "Gemm, MatMul(+Add), activations (Relu, Clip(0, max), LeakyRelu, Elu, "
                      "PRelu, Selu, Gelu and its Erf chain, Sigmoid, x * Sigmoid(x), "
                      "HardSigmoid, HardSwish, Tanh, Softplus, Softsign, Exp, Softmax), "
                      "MaxPool, AveragePool, "
                      "GlobalAveragePool, GlobalMaxPool, BatchNormalization, "
                      "LayerNormalization, Resize (integer up-scaling), "
                      "Add/Sub/Mul/Max/Min/Mean/Sum (of same-shape computed tensors), Concat, "
                      "Flatten, Reshape (as a flatten), Slice (spatial crop), Dropout, Pad, "
                      "Identity and Transpose")
        handler(node)

    # ------------------------------------------------------------------ constant folding
    def fold(self, node):
        op, a = node.op_type, self.attrs(node)
        ins = [self.consts.get(i) for i in node.input]
        if op == "Constant":
            if "value" not in a:
                self.fail(node, "only Constant nodes with a tensor `value` are supported")
            out = a["value"]
        elif op == "Identity":
            out = ins[0]
        elif op == "Cast":
            out = ins[0] if ins[0].dtype == object else ins[0].astype(
                {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64}.get(a.get("to"),
                                                                              np.float32))
        elif op == "Gather":
            out = np.take(ins[0], ins[1].astype(np.int64), axis=a.get("axis", 0))
        elif op == "Unsqueeze":
            axes = a.get("axes") if "axes" in a else list(ins[1])
            out = ins[0]
            for ax in sorted(int(x) % (out.ndim + len(axes)) for x in axes):
                out = np.expand_dims(out, ax)
        elif op == "Squeeze":
            axes = a.get("axes") if "axes" in a else (list(ins[1]) if len(ins) > 1 else None)
            out = np.squeeze(ins[0], axis=None if axes is None else tuple(int(x) for x in axes))
        elif op == "Concat":
            out = np.concatenate([np.atleast_1d(x) for x in ins], axis=a.get("axis", 0))
        elif op == "Slice":
            if "starts" in a:  # opset < 10
                starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes"), None
            else:
                starts, ends = ins[1], ins[2]
                axes = ins[3] if len(ins) > 3 and ins[3] is not None else None
                steps = ins[4] if len(ins) > 4 and ins[4] is not None else None
            axes = range(len(starts)) if axes is None else axes
            sl = [slice(None)] * ins[0].ndim
            for i, ax in enumerate(axes):
                step = 1 if steps is None else int(steps[i])
                sl[int(ax)] = slice(int(starts[i]), int(ends[i]), step)
            out = ins[0][tuple(sl)]
        elif op == "ConstantOfShape":
            shape = [int(d) for d in ins[0].reshape(-1)]
            if len(shape) > 8 or any(d < 0 for d in shape) or int(np.prod(shape)) > 2 ** 16:
                self.fail(node, "shape %s is not a small constant" % (shape,))
            fill = a.get("value", np.zeros(1, np.float32)).reshape(-1)[:1]
            out = np.full(shape, fill[0] if fill.size else 0, dtype=fill.dtype)
        elif op == "Transpose":
            out = np.transpose(ins[0], a.get("perm"))
        elif op == "Reshape":
            if ins[0].dtype == object:
                self.fail(node, "reshaping a shape vector is not supported")
            out = ins[0].reshape([int(d) for d in ins[1]])
        else:  # Shape of a constant
            out = np.asarray(ins[0].shape, dtype=np.int64)
        self.consts[node.output[0]] = np.asarray(out)

    def shape_of(self, node):
        v = self.value(node, node.input[0])
        a = self.attrs(node)
        shape = np.asarray(v.shape, dtype=object)  # None: the batch size, known only at run
        self.consts[node.output[0]] = shape[a.get("start", 0):a.get("end", len(shape))]

    # ------------------------------------------------------------------ layer helpers
    def call(self, node, layer, inputs):
        try:
            return layer(inputs)
        except ValueError as e:
            self.fail(node, "could not map to fastcnn's %s: %s" % (type(layer).__name__, e))

    def make(self, node, cls_name, *args, **kwargs):
        """A fastcnn layer by class name (a layer another part of fastcnn may not have yet:
        a clear error then)."""
        cls = getattr(L, cls_name, None)
        if cls is None:
            self.fail(node, "needs fastcnn.layers.%s, which this fastcnn version does not "
                      "have" % cls_name)
        try:
            return cls(*args, name=self.layer_name(node), **kwargs)
        except (ValueError, TypeError) as e:
            self.fail(node, "fastcnn's %s does not support this: %s" % (cls_name, e))

    def image(self, node, index=0):
        """The input as a 4-D NCHW ONNX tensor (held NHWC by fastcnn)."""
        v = self.value(node, node.input[index])
        if len(v.perm) != 4 or v.perm != _NCHW:
            self.fail(node, "expects a 4-D NCHW tensor (from the NCHW graph input or after a "
                      "Transpose to NCHW); got ONNX shape %s with another layout"
                      % (v.shape,))
        return v

    def plain(self, node, v):
        if v.rowmap is not None and not _is_identity(v.rowmap):
            self.fail(node, "input is a flattened NCHW tensor; fastcnn maps only Gemm/MatMul "
                      "(and elementwise ops) after such a Flatten")
        return v

    def fold_relu(self, node, out_name):
        """The Relu node that alone consumes ``out_name`` (fused into the producing layer's
        kernel; the plan then needs no separate ReLU pass), or None."""
        relu = self.only_consumer(out_name, ("Relu",))
        if relu is not None:
            self.skip.add(id(relu))
        return relu

    def spatial(self, node, a, x_hw, kernel):
        """(strides, dilations, pads as ((top, bottom), (left, right)))."""
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
            mode = a["auto_pad"]
            if mode == "VALID":
                pads = [0, 0, 0, 0]
            elif mode in ("SAME_UPPER", "SAME_LOWER"):
                pads = []
                for i in range(2):
                    s = a.get("strides", [1, 1])[i]
                    d = a.get("dilations", [1, 1])[i]
                    k = (kernel[i] - 1) * d + 1
                    total = max((-(-x_hw[i] // s) - 1) * s + k - x_hw[i], 0)
                    small = total // 2
                    pads.append((small, total - small) if mode == "SAME_UPPER"
                                else (total - small, small))
                pads = [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
            else:
                self.fail(node, "auto_pad=%r is not supported" % mode)
        else:
            pads = list(a.get("pads", [0, 0, 0, 0]))
        strides = tuple(a.get("strides", [1, 1]))
        dil = tuple(a.get("dilations", [1, 1]))
        if (len(pads) != 4 or len(strides) != 2 or len(dil) != 2 or min(pads) < 0
                or min(strides) < 1 or min(dil) < 1):
            self.fail(node, "only 2-D operations with non-negative pads and positive "
                      "strides and dilations are supported (pads=%s, strides=%s, "
                      "dilations=%s)" % (pads, strides, dil))
        return strides, dil, ((pads[0], pads[2]), (pads[1], pads[3]))

    def padding_mode(self, x_hw, kernel, strides, dil, pads):
        """'valid', 'same' (Keras' split: extra padding at the bottom/right) or None."""
        if pads == ((0, 0), (0, 0)):
            return "valid"
        for i in range(2):
            k = (kernel[i] - 1) * dil[i] + 1
            total = max((-(-x_hw[i] // strides[i]) - 1) * strides[i] + k - x_hw[i], 0)
            if pads[i] != (total // 2, total - total // 2):
                return None
        return "same"

    def zero_pad(self, node, v, pads):
        layer = L.ZeroPadding2D(pads, name=self.layer_name(node) + "_pad")
        return v.with_(self.call(node, layer, v.kt))

    # ------------------------------------------------------------------ convolutions
    def op_Conv(self, node):
        v = self.image(node)
        a = self.attrs(node)
        w = self.weight(node, 1, "the weight")
        if w.ndim != 4:
            self.fail(node, "only 2-D convolutions (4-D weights) are supported; weight "
                      "shape %s" % (w.shape,))
        bias = self.weight(node, 2, "the bias") if len(node.input) > 2 and node.input[2] else None
        c_in = v.shape[1]
        group = int(a.get("group", 1))
        out_ch, in_per_group, kh, kw = w.shape
        if group <= 0 or c_in % group or in_per_group * group != c_in or out_ch % group:
            self.fail(node, "weight shape %s does not fit %d input channels in %d groups"
                      % (w.shape, c_in, group))
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != (kh, kw):
            self.fail(node, "kernel_shape %s differs from the weight's %s"
                      % (a["kernel_shape"], (kh, kw)))
        if bias is not None and bias.shape != (out_ch,):
            self.fail(node, "bias shape %s, expected (%d,)" % (bias.shape, out_ch))
        hw = v.shape[2:]
        strides, dil, pads = self.spatial(node, a, hw, (kh, kw))
        mode = self.padding_mode(hw, (kh, kw), strides, dil, pads)
        if mode is None:
            v = self.zero_pad(node, v, pads)
            mode = "valid"
        relu = self.fold_relu(node, node.output[0])
        act = "relu" if relu is not None else None
        common = dict(strides=strides, padding=mode, activation=act,
                      use_bias=bias is not None)
        if dil != (1, 1):
            common["dilation_rate"] = dil
        if group > 1 and group == c_in and in_per_group == 1:
            layer = self.make(node, "DepthwiseConv2D", (kh, kw),
                              depth_multiplier=out_ch // c_in, **common)
            # (C*m, 1, kh, kw) -> (kh, kw, C, m); ONNX output channel c*m + j is input c's j-th
            kernel = w.reshape(c_in, out_ch // c_in, kh, kw).transpose(2, 3, 0, 1)
        else:
            if group > 1:
                common["groups"] = group
            layer = self.make(node, "Conv2D", out_ch, (kh, kw), **common)
            kernel = w.transpose(2, 3, 1, 0)
        y = self.call(node, layer, v.kt)
        self.set(node, layer, [kernel] + ([bias] if bias is not None else []))
        out = _Value(y, _NCHW, nonneg=relu is not None)
        self.put(node, out)
        if relu is not None:
            self.put(relu, out)

    def op_ConvTranspose(self, node):
        v = self.image(node)
        a = self.attrs(node)
        w = self.weight(node, 1, "the weight")
        bias = self.weight(node, 2, "the bias") if len(node.input) > 2 and node.input[2] else None
        if w.ndim != 4 or int(a.get("group", 1)) != 1 or w.shape[0] != v.shape[1]:
            self.fail(node, "only 2-D, group=1 transposed convolutions whose weight is "
                      "(in_channels, out_channels, kh, kw) are supported; weight %s"
                      % (w.shape,))
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "") or "output_shape" in a:
            self.fail(node, "auto_pad / output_shape are not supported (use pads and "
                      "output_padding)")
        c_in, out_ch, kh, kw = w.shape
        strides = tuple(a.get("strides", [1, 1]))
        dil = tuple(a.get("dilations", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        opad = list(a.get("output_padding", [0, 0]))
        if dil != (1, 1):
            self.fail(node, "dilations other than 1 are not supported")
        if len(pads) != 4 or len(opad) != 2 or min(pads) < 0 or min(opad) < 0:
            self.fail(node, "pads %s / output_padding %s are not 2-D and non-negative"
                      % (pads, opad))
        # the full transposed convolution ((in - 1) * s + k), cropped: ONNX drops pads_begin
        # rows at the start and pads_end - output_padding at the end
        need = [o - e for o, e in zip(opad, pads[2:])]  # rows to add past the full output
        padding = "valid"
        # Keras 'valid' with output_padding p is the full output plus p rows at the end (an
        # explicit 0 also avoids the max(k, s) rule of output_padding=None)
        out_pad = tuple(max(n, 0) for n in need)
        crop = ((pads[0], max(-need[0], 0)), (pads[1], max(-need[1], 0)))
        same = self.same_transpose((kh, kw), strides, pads[:2], need)
        if same is not False:  # torch's k=4, s=2, p=1 and the like: no Cropping2D
            padding, out_pad, crop = "same", same, ((0, 0), (0, 0))
        relu = None if crop != ((0, 0), (0, 0)) else self.fold_relu(node, node.output[0])
        layer = self.make(node, "Conv2DTranspose", out_ch, (kh, kw), strides=strides,
                          padding=padding, output_padding=out_pad,
                          activation="relu" if relu is not None else None,
                          use_bias=bias is not None)
        y = self.call(node, layer, v.kt)
        # ONNX (in, out, kh, kw) -> Keras (kh, kw, out, in)
        self.set(node, layer, [w.transpose(2, 3, 1, 0)] + ([bias] if bias is not None else []))
        if crop != ((0, 0), (0, 0)):
            y = self.call(node, L.Cropping2D(crop, name=self.layer_name(node) + "_crop"), y)
        out = _Value(y, _NCHW, nonneg=relu is not None)
        self.put(node, out)
        if relu is not None:
            self.put(relu, out)

    @staticmethod
    def same_transpose(kernel, strides, begins, need):
        """Keras 'same' output_padding (None or a tuple) giving ONNX's crop (``begins`` at the
        start, ``-need`` net at the end) on both axes, or False when none does."""
        def fits(p):
            for k, s, b, n in zip(kernel, strides, begins, need):
                kb, ke, ko = conv_transpose_pads(k, s, 1, "same", p if p is None else p[0])
                if (kb, ko - ke) != (b, n):
                    return False
                p = p if p is None else p[1:]
            return True
        if fits(None):
            return None
        for p0 in range(strides[0]):
            for p1 in range(strides[1]):
                if fits((p0, p1)):
                    return (p0, p1)
        return False

    def set(self, node, layer, weights):
        try:
            layer.set_weights(weights)
        except ValueError as e:
            self.fail(node, "weights do not fit: %s" % e)

    # ------------------------------------------------------------------ dense
    def dense(self, node, v, w, bias, last):
        """Dense from an (in, out) weight; ``last`` the node whose output the Dense gives."""
        v = self.value(node, v) if isinstance(v, str) else v
        if len(v.perm) != 2:
            self.fail(node, "fastcnn maps Gemm/MatMul on 2-D inputs (flatten first); got "
                      "ONNX shape %s" % (v.shape,))
        if w.ndim != 2 or v.shape[1] != w.shape[0]:
            self.fail(node, "weight shape %s does not fit an input of %s features"
                      % (w.shape, v.shape[1]))
        if v.rowmap is not None and not _is_identity(v.rowmap):
            kernel = np.empty_like(w)
            kernel[v.rowmap] = w  # ONNX feature j sits at fastcnn position rowmap[j]
            w = kernel
        relu = self.fold_relu(last, last.output[0])
        layer = self.make(node, "Dense", w.shape[1], use_bias=bias is not None,
                          activation="relu" if relu is not None else None)
        y = self.call(node, layer, v.kt)
        self.set(node, layer, [np.ascontiguousarray(w, np.float32)] +
                 ([bias] if bias is not None else []))
        out = _Value(y, (0, 1), nonneg=relu is not None)
        self.put(last, out)
        if relu is not None:
            self.put(relu, out)

    def op_Gemm(self, node):
        a = self.attrs(node)
        if a.get("transA", 0):
            self.fail(node, "transA=1 is not supported")
        w = self.weight(node, 1, "B")
        if w.ndim != 2:
            self.fail(node, "B must be 2-D, got %s" % (w.shape,))
        w = (w.T if a.get("transB", 0) else w) * np.float32(a.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            c = self.weight(node, 2, "C") * np.float32(a.get("beta", 1.0))
            if c.size not in (1, w.shape[1]) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
                self.fail(node, "C of shape %s does not broadcast as a bias of %d"
                          % (c.shape, w.shape[1]))
            bias = np.ascontiguousarray(np.broadcast_to(c.reshape(-1), (w.shape[1],)),
                                        np.float32)
        self.dense(node, node.input[0], np.ascontiguousarray(w), bias, node)

    def op_MatMul(self, node):
        w = self.weight(node, 1, "the second operand")
        add = self.only_consumer(node.output[0], ("Add",))
        bias = None
        if add is not None:
            other = [i for i in add.input if i != node.output[0]]
            c = self.const(other[0]) if len(other) == 1 else None
            if c is not None and c.size == w.shape[-1] and c.ndim <= 1:
                bias = c.astype(np.float32).reshape(-1)
                self.skip.add(id(add))
        self.dense(node, node.input[0], w, bias, add if bias is not None else node)

    # ------------------------------------------------------------------ activations
    def scalar_operand(self, node, computed):
        """The constant scalar operand of a binary ``node`` whose other operand is
        ``computed``, or None."""
        if len(node.input) != 2 or computed not in node.input:
            return None
        other = node.input[1] if node.input[0] == computed else node.input[0]
        c = self.const(other)
        if c is None or c.size != 1 or c.dtype == object:
            return None
        return float(c.reshape(()))

    def erf_gelu(self, node):
        """The exact gelu 0.5 * x * (1 + erf(x / sqrt(2))) as torch (Div, Erf, Add, Mul, Mul)
        and fastcnn's exporter (Mul, Erf, Add, Mul(x, 0.5), Mul) write it -> one gelu
        Activation; False (nothing done) for anything else."""
        x = node.input[0]
        if x not in self.values or len(node.input) != 2:
            return False
        c = self.scalar_operand(node, x)
        r2 = np.sqrt(2.0)
        if c is None or not np.isclose(c, r2 if node.op_type == "Div" else 1 / r2,
                                       rtol=1e-6) or node.input[1] == x:
            return False
        erf = self.only_consumer(node.output[0], ("Erf",))
        add = erf and self.only_consumer(erf.output[0], ("Add",))
        if not add or self.scalar_operand(add, erf.output[0]) != 1.0:
            return False
        mul = self.only_consumer(add.output[0], ("Mul",))
        if mul is None or len(mul.input) != 2:
            return False
        other = mul.input[1] if mul.input[0] == add.output[0] else mul.input[0]
        half = [n for n in self.consumers.get(x, []) if n.op_type == "Mul"
                and other in n.output and self.scalar_operand(n, x) == 0.5]
        if half and self.only_consumer(other, ("Mul",)) is mul:
            chain, last = [node, erf, add, half[0], mul], mul  # 0.5 * x first
        elif other == x:
            last = self.only_consumer(mul.output[0], ("Mul",))
            if last is None or self.scalar_operand(last, mul.output[0]) != 0.5:
                return False
            chain = [node, erf, add, mul, last]
        else:
            return False
        if half and self.index[id(half[0])] < self.index[id(node)]:
            return False  # already converted on its own
        for n in chain[1:]:
            self.skip.add(id(n))
        v = self.value(node, x)
        layer = self.make(last, "Activation", "gelu")
        self.put(last, v.with_(self.call(last, layer, v.kt), nonneg=False))
        return True

    def softsign(self, node):
        """x / (1 + |x|) as torch writes softsign (Abs, Add 1, Div) -> one softsign
        Activation; False (nothing done) for anything else."""
        x = node.input[0]
        if x not in self.values:
            return False
        add = self.only_consumer(node.output[0], ("Add",))
        if add is None or self.scalar_operand(add, node.output[0]) != 1.0:
            return False
        div = self.only_consumer(add.output[0], ("Div",))
        if div is None or list(div.input) != [x, add.output[0]]:
            return False
        self.skip.update((id(add), id(div)))
        v = self.value(node, x)
        layer = self.make(div, "Activation", "softsign")
        self.put(div, v.with_(self.call(div, layer, v.kt), nonneg=False))
        return True

    def op_Relu(self, node):
        v = self.value(node, node.input[0])
        y = self.call(node, L.ReLU(name=self.layer_name(node)), v.kt)
        self.put(node, v.with_(y, nonneg=True))

    def activation(self, node, name, nonneg=False):
        if node.op_type == "Gelu" and self.attrs(node).get("approximate", "none") != "none":
            self.fail(node, "approximate=%r: fastcnn's gelu activation is the exact (erf) "
                      "one" % self.attrs(node)["approximate"])
        v = self.value(node, node.input[0])
        layer = self.make(node, "Activation", name)
        self.put(node, v.with_(self.call(node, layer, v.kt), nonneg=nonneg))

    def op_Sigmoid(self, node):
        x = node.input[0]
        mul = self.only_consumer(node.output[0], ("Mul",))
        if mul is not None and sorted(mul.input) == sorted([x, node.output[0]]):
            # x * sigmoid(x), torch's SiLU / Keras' swish: one silu activation
            self.skip.add(id(mul))
            v = self.value(node, x)
            layer = self.make(mul, "Activation", "silu")
            return self.put(mul, v.with_(self.call(mul, layer, v.kt)))
        self.activation(node, "sigmoid", nonneg=True)

    def op_HardSigmoid(self, node):
        a = self.attrs(node)
        # Keras 3's hard_sigmoid is relu6(x + 3) / 6: ONNX alpha = 1/6, beta = 0.5
        if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(a.get("beta", 0.5) - 0.5) > 1e-6:
            self.fail(node, "only alpha=1/6, beta=0.5 (Keras' hard_sigmoid) is supported; "
                      "got alpha=%r beta=%r" % (a.get("alpha", 0.2), a.get("beta", 0.5)))
        self.activation(node, "hard_sigmoid", nonneg=True)

    def op_Elu(self, node):
        alpha = float(self.attrs(node).get("alpha", 1.0))
        v = self.value(node, node.input[0])
        if getattr(L, "ELU", None) is not None:
            layer = self.make(node, "ELU", alpha=alpha)
        elif alpha == 1.0:
            layer = self.make(node, "Activation", "elu")
        else:
            self.fail(node, "alpha=%r needs fastcnn.layers.ELU" % alpha)
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    def op_LeakyRelu(self, node):
        alpha = float(self.attrs(node).get("alpha", 0.01))
        v = self.value(node, node.input[0])
        if getattr(L, "LeakyReLU", None) is not None:
            layer = self.make(node, "LeakyReLU", negative_slope=alpha)
        else:
            layer = self.make(node, "ReLU", negative_slope=alpha)
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    def op_Clip(self, node):
        a = self.attrs(node)
        lo = a.get("min") if "min" in a else None
        hi = a.get("max") if "max" in a else None
        if len(node.input) > 1 and node.input[1]:
            lo = self.weight(node, 1, "min")
        if len(node.input) > 2 and node.input[2]:
            hi = self.weight(node, 2, "max")
        lo = None if lo is None else float(np.asarray(lo).reshape(()))
        hi = None if hi is None else float(np.asarray(hi).reshape(()))
        if lo != 0.0:
            self.fail(node, "only Clip(min=0, max=...) (ReLU with max_value) is supported; "
                      "got min=%r" % lo)
        v = self.value(node, node.input[0])
        layer = self.make(node, "ReLU", max_value=hi)
        self.put(node, v.with_(self.call(node, layer, v.kt), nonneg=True))

    def op_PRelu(self, node):
        v = self.plain(node, self.value(node, node.input[0]))
        slope = self.weight(node, 1, "the slope")
        rank = len(v.perm)
        if slope.ndim > rank - 1 or any(
                d not in (1, n) for d, n in zip(slope.shape[::-1], v.shape[:0:-1])):
            self.fail(node, "slope of shape %s does not broadcast over the non-batch axes of "
                      "ONNX shape %s" % (slope.shape, v.shape))
        slope = slope.reshape((1,) * (rank - 1 - slope.ndim) + slope.shape)
        inv = _inverse(v.perm)
        # fastcnn axis i is ONNX axis inv[i]; PReLU's alpha is 1 on its shared axes
        alpha = slope.transpose([inv[i] - 1 for i in range(1, rank)])
        shared = [i for i in range(1, rank) if alpha.shape[i - 1] == 1 and v.kt.shape[i] != 1]
        layer = self.make(node, "PReLU", shared_axes=shared or None)
        y = self.call(node, layer, v.kt)
        self.set(node, layer, [np.ascontiguousarray(alpha, np.float32)])
        self.put(node, v.with_(y, nonneg=False))

    def op_Resize(self, node):
        """Integer up-scaling of H and W -> UpSampling2D: 'nearest' where ONNX picks input
        row floor(i / s), 'bilinear' with half-pixel centres (Keras/JAX's sampling)."""
        v = self.plain(node, self.value(node, node.input[0]))
        a = self.attrs(node)
        rank = len(v.perm)
        if rank != 4:
            self.fail(node, "only 4-D image tensors are resized; got ONNX shape %s"
                      % (v.shape,))
        if "axes" in a:
            self.fail(node, "the axes attribute is not supported")
        shape = v.shape
        scales = sizes = None
        if self.opset < 11:
            scales = self.const(node.input[1]) if len(node.input) > 1 else None
        else:
            if len(node.input) > 2 and node.input[2]:
                scales = self.const(node.input[2])
            if len(node.input) > 3 and node.input[3]:
                sizes = self.const(node.input[3])
        if scales is not None and scales.size:
            factors = [float(f) for f in np.asarray(scales, np.float64).reshape(-1)]
        elif sizes is not None:
            sizes = list(np.asarray(sizes).reshape(-1))
            if len(sizes) != 4:
                self.fail(node, "sizes %s do not give 4 axes" % (sizes,))
            factors = [1.0 if (n is None or d is None) else float(d) / float(n)
                       for d, n in zip(sizes, shape)]
        else:
            self.fail(node, "scales or sizes must be constant (or computed from shapes)")
        if len(factors) != 4:
            self.fail(node, "scales %s do not give 4 axes" % (factors,))
        by_axis = {v.perm[j]: f for j, f in enumerate(factors)}  # fastcnn axis -> factor
        size = (by_axis[1], by_axis[2])
        if by_axis[0] != 1.0 or by_axis[3] != 1.0 or any(
                f < 1 or f != int(f) for f in size):
            self.fail(node, "scales %s: fastcnn maps Resize only to integer up-scaling of "
                      "the two spatial axes (UpSampling2D)" % (factors,))
        mode = a.get("mode", "nearest")
        coord = a.get("coordinate_transformation_mode", "half_pixel")
        nearest = a.get("nearest_mode", "round_prefer_floor")
        half = ("half_pixel", "pytorch_half_pixel")
        if mode == "nearest" and ((coord == "asymmetric" and nearest == "floor") or (
                coord in half and nearest in ("round_prefer_floor", "round_prefer_ceil"))):
            interpolation = "nearest"
        elif mode == "linear" and coord in half and not a.get("exclude_outside", 0):
            interpolation = "bilinear"
        else:
            self.fail(node, "mode=%r, coordinate_transformation_mode=%r, nearest_mode=%r: "
                      "fastcnn's UpSampling2D is nearest (floor(i / s)) or half-pixel "
                      "bilinear" % (mode, coord, nearest))
        layer = self.make(node, "UpSampling2D", tuple(int(f) for f in size),
                          interpolation=interpolation)
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    def op_LayerNormalization(self, node):
        v = self.plain(node, self.value(node, node.input[0]))
        a = self.attrs(node)
        if any(o and o in self.consumers for o in node.output[1:]):
            self.fail(node, "the Mean / InvStdDev outputs are not supported")
        rank = len(v.perm)
        axis = int(a.get("axis", -1)) % rank
        if axis == 0:
            self.fail(node, "normalizing over the batch axis is not supported")
        norm_shape = v.shape[axis:]
        scale = self.weight(node, 1, "Scale")
        bias = (self.weight(node, 2, "B") if len(node.input) > 2 and node.input[2]
                else np.zeros(1, np.float32))
        try:
            scale, bias = (np.broadcast_to(t, norm_shape) for t in (scale, bias))
        except ValueError:
            self.fail(node, "Scale/B do not broadcast to the normalized shape %s"
                      % (norm_shape,))
        onnx_axes = list(range(axis, rank))
        axes = sorted(v.perm[j] for j in onnx_axes)  # fastcnn's axes, in its order
        inv = _inverse(v.perm)
        order = [inv[f] - axis for f in axes]  # ONNX parameter axis of each fastcnn axis
        layer = self.make(node, "LayerNormalization", axis=axes if len(axes) > 1 else axes[0],
                          epsilon=float(a.get("epsilon", 1e-5)))
        y = self.call(node, layer, v.kt)
        self.set(node, layer, [np.ascontiguousarray(t.transpose(order), np.float32)
                               for t in (scale, bias)])
        self.put(node, v.with_(y, nonneg=False))

    def op_Softmax(self, node):
        v = self.value(node, node.input[0])
        nd = len(v.perm)
        axis = self.attrs(node).get("axis", -1 if self.opset >= 13 else 1)
        axis %= nd
        if self.opset < 13 and axis != nd - 1:
            self.fail(node, "opset < 13 Softmax over axes %d.. is supported only on the last "
                      "axis" % axis)
        if v.perm[axis] != nd - 1:
            self.fail(node, "softmax over ONNX axis %d is not over fastcnn's last (channel) "
                      "axis" % axis)
        self.plain(node, v)
        self.activation(node, "softmax", nonneg=True)

    # ------------------------------------------------------------------ pooling
    def pool_common(self, node, a, v):
        kernel = tuple(a.get("kernel_shape", ()))
        if len(kernel) != 2:
            self.fail(node, "only 2-D pooling is supported (kernel_shape=%s)" % (kernel,))
        hw = v.shape[2:]
        strides, dil, pads = self.spatial(node, a, hw, kernel)
        if dil != (1, 1):
            self.fail(node, "dilations other than 1 are not supported")
        if a.get("ceil_mode", 0):
            for i in range(2):
                span = hw[i] + sum(pads[i]) - kernel[i]
                if span % strides[i]:
                    self.fail(node, "ceil_mode=1 changes the output size here; only "
                              "ceil_mode=0 (or a ceil_mode without effect) is supported")
        return kernel, strides, pads

    def op_MaxPool(self, node):
        v = self.image(node)
        a = self.attrs(node)
        if len(node.output) > 1 and node.output[1]:
            self.fail(node, "the Indices output is not supported")
        if a.get("storage_order", 0):
            self.fail(node, "storage_order=1 is not supported")
        kernel, strides, pads = self.pool_common(node, a, v)
        mode = self.padding_mode(v.shape[2:], kernel, strides, (1, 1), pads)
        if mode is None:
            # -inf padding equals zero padding on a non-negative input when every window
            # holds at least one real element (pads smaller than the window)
            if not v.nonneg or any(p >= k for pp, k in zip(pads, kernel) for p in pp):
                self.fail(node, "pads %s are not Keras' 'valid'/'same'; fastcnn maps them "
                          "only after a ReLU (zero padding then equals ONNX's -inf)"
                          % (pads,))
            v = self.zero_pad(node, v, pads)
            mode = "valid"
        layer = self.make(node, "MaxPooling2D", kernel, strides=strides, padding=mode)
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    def op_AveragePool(self, node):
        v = self.image(node)
        a = self.attrs(node)
        kernel, strides, pads = self.pool_common(node, a, v)
        mode = self.padding_mode(v.shape[2:], kernel, strides, (1, 1), pads)
        if mode == "same" and a.get("count_include_pad", 0):
            mode = None  # Keras' 'same' averages over the real elements only
        if mode is None:
            if not a.get("count_include_pad", 0):
                self.fail(node, "pads %s with count_include_pad=0 are not Keras' "
                          "'valid'/'same'" % (pads,))
            v = self.zero_pad(node, v, pads)  # the zeros count in the mean, as ONNX says
            mode = "valid"
        layer = self.make(node, "AveragePooling2D", kernel, strides=strides, padding=mode)
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    def op_GlobalAveragePool(self, node):
        v = self.image(node)
        layer = self.make(node, "GlobalAveragePooling2D", keepdims=True)
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    def op_GlobalMaxPool(self, node):
        v = self.image(node)
        layer = self.make(node, "GlobalMaxPooling2D", keepdims=True)
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    # ------------------------------------------------------------------ normalization
    def op_BatchNormalization(self, node):
        v = self.value(node, node.input[0])
        a = self.attrs(node)
        if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
            self.fail(node, "training-mode BatchNormalization (running statistics outputs) "
                      "is not supported; export the model in eval mode")
        if len(v.perm) < 2 or v.perm[1] != len(v.perm) - 1:
            self.fail(node, "the channel axis (ONNX axis 1) must be fastcnn's last axis")
        self.plain(node, v)
        c = v.shape[1]
        w = [self.weight(node, i, n) for i, n in
             enumerate(("scale", "B", "mean", "var"), start=1)]
        if any(x.shape != (c,) for x in w):
            self.fail(node, "scale/B/mean/var must have shape (%d,), got %s"
                      % (c, [x.shape for x in w]))
        layer = self.make(node, "BatchNormalization", epsilon=float(a.get("epsilon", 1e-5)),
                          momentum=float(a.get("momentum", 0.9)))
        y = self.call(node, layer, v.kt)
        self.set(node, layer, w)
        self.put(node, v.with_(y, nonneg=False))

    def op_Dropout(self, node):
        if len(node.output) > 1 and node.output[1] and node.output[1] in self.consumers:
            self.fail(node, "the mask output is not supported")
        a = self.attrs(node)
        ratio = a.get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1]:
            ratio = float(self.weight(node, 1, "ratio").reshape(()))
        v = self.value(node, node.input[0])
        layer = self.make(node, "Dropout", float(ratio))
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    # ------------------------------------------------------------------ structure
    def op_Identity(self, node):
        self.put(node, self.value(node, node.input[0]))

    def op_Transpose(self, node):
        v = self.value(node, node.input[0])
        nd = len(v.perm)
        perm = list(self.attrs(node).get("perm", range(nd - 1, -1, -1)))
        if sorted(perm) != list(range(nd)):
            self.fail(node, "perm %s is not a permutation of %d axes" % (perm, nd))
        if perm[0] != 0:
            self.fail(node, "transposing the batch axis is not supported")
        self.plain(node, v)
        # ONNX out = ONNX in transposed by perm = fastcnn tensor transposed by perm_in[perm]
        self.put(node, _Value(v.kt, [v.perm[p] for p in perm], nonneg=v.nonneg))

    def flatten(self, node, v):
        if len(v.perm) == 2:
            return v
        shape = v.kt.shape[1:]
        layer = self.make(node, "Flatten")
        y = self.call(node, layer, v.kt)
        src = [p - 1 for p in v.perm[1:]]
        # fastcnn flattens its own (NHWC) order; ONNX feature j lives at rowmap[j]
        rowmap = np.arange(int(np.prod(shape))).reshape(shape).transpose(src).reshape(-1)
        return _Value(y, (0, 1), None if _is_identity(rowmap) else rowmap, v.nonneg)

    def op_Flatten(self, node):
        v = self.value(node, node.input[0])
        axis = self.attrs(node).get("axis", 1)
        if axis % len(v.perm) != 1 and len(v.perm) > 1:
            self.fail(node, "only axis=1 (keep the batch axis) is supported; got %d" % axis)
        self.put(node, self.flatten(node, v))

    def op_Reshape(self, node):
        v = self.value(node, node.input[0])
        target = self.const(node.input[1])
        if target is None:
            self.fail(node, "the target shape must be constant (or computed from shapes)")
        target = list(target.reshape(-1))
        if self.attrs(node).get("allowzero", 0) and 0 in target:
            self.fail(node, "allowzero=1 with a 0 in the shape is not supported")
        shape = v.shape
        rest = int(np.prod(shape[1:]))
        first = target[0] if target else -2
        # the batch axis kept: dynamic (None from Shape, 0 = copy), -1, or the fixed batch
        # size an export with a static batch writes (the imported model takes any batch)
        keeps_batch = (first is None or first == 0 or first == -1
                       or (self.batch is not None and first == self.batch))
        tail = target[1:]
        flat = (len(tail) == 1 and (tail[0] == -1 or tail[0] == rest)
                and keeps_batch and (first != -1 or tail[0] == rest))
        if flat:
            return self.put(node, self.flatten(node, v))
        if len(v.perm) == 2 and v.rowmap is None and keeps_batch and all(
                isinstance(d, (int, np.integer)) and (d > 0 or d == -1) for d in tail):
            # (N, F) -> (N, ...) into an image: only an NHWC target maps without a layout
            # change; a 4-D target of a torch graph is NCHW, so it is refused
            if len(tail) == 3:
                self.fail(node, "reshaping features into a 4-D NCHW image is not supported")
            layer = self.make(node, "Reshape", [int(d) for d in tail])
            y = self.call(node, layer, v.kt)
            return self.put(node, _Value(y, tuple(range(len(tail) + 1))))
        self.fail(node, "only a Reshape that flattens to (batch, -1) is supported; target "
                  "%s on ONNX shape %s" % (target, shape))

    def op_Add(self, node):
        self.merge(node, "Add")

    def op_Sub(self, node):
        self.merge(node, "Subtract")

    def op_Mul(self, node):
        self.merge(node, "Multiply")

    def op_Max(self, node):
        self.merge(node, "Maximum")

    def op_Min(self, node):
        self.merge(node, "Minimum")

    def op_Mean(self, node):
        self.merge(node, "Average")

    def op_Sum(self, node):
        self.merge(node, "Add")

    def merge(self, node, cls_name):
        """An elementwise op of computed tensors of one shape -> a fastcnn merge layer."""
        ins = [self.values.get(i) for i in node.input]
        if any(v is None for v in ins):
            self.fail(node, "an operand is a constant; fastcnn maps elementwise ops on "
                      "computed tensors only (a bias Add right after a MatMul is folded)")
        if len(ins) == 1:
            return self.put(node, ins[0])
        if len(ins) != 2 and cls_name in ("Subtract",):
            self.fail(node, "expects 2 operands")
        a = ins[0]
        for v in ins[1:]:
            if v.perm != a.perm or v.shape != a.shape:
                self.fail(node, "operands of ONNX shapes %s and %s (fastcnn's merge layers "
                          "do not broadcast)" % (a.shape, v.shape))
            if (a.rowmap is None) != (v.rowmap is None) or (
                    a.rowmap is not None and not np.array_equal(a.rowmap, v.rowmap)):
                self.fail(node, "operands flattened in different orders")
        layer = self.make(node, cls_name)
        nonneg = all(v.nonneg for v in ins) and cls_name in ("Add", "Maximum", "Minimum",
                                                              "Average", "Multiply")
        self.put(node, _Value(self.call(node, layer, [v.kt for v in ins]), a.perm, a.rowmap,
                              nonneg))

    def op_Concat(self, node):
        ins = [self.value(node, i) for i in node.input]
        perm = ins[0].perm
        if any(v.perm != perm for v in ins):
            self.fail(node, "inputs in different layouts")
        for v in ins:
            self.plain(node, v)
        axis = self.attrs(node).get("axis", 1) % len(perm)
        if axis == 0:
            self.fail(node, "concatenating along the batch axis is not supported")
        if len(ins) == 1:
            return self.put(node, ins[0])
        layer = self.make(node, "Concatenate", axis=perm[axis])
        y = self.call(node, layer, [v.kt for v in ins])
        self.put(node, _Value(y, perm, nonneg=all(v.nonneg for v in ins)))

    def op_Slice(self, node):
        """A step-1 slice of the spatial axes of an image -> Cropping2D (Keras' Cropping2D
        exports as one)."""
        v = self.plain(node, self.value(node, node.input[0]))
        if len(v.perm) != 4:
            self.fail(node, "only slices of the two spatial axes of a 4-D image are "
                      "supported; got ONNX shape %s" % (v.shape,))
        if self.opset < 10:
            self.fail(node, "Slice before opset 10 is not supported")
        parts = [self.const(n) if n else None for n in list(node.input[1:5])]
        if any(p is None for p in parts[:2]) or any(
                n and p is None for n, p in zip(node.input[3:5], parts[2:])):
            self.fail(node, "starts, ends, axes and steps must be constant")
        starts, ends = (np.asarray(p, np.int64).reshape(-1) for p in parts[:2])
        axes = (np.arange(len(starts)) if len(parts) < 3 or parts[2] is None
                else np.asarray(parts[2], np.int64).reshape(-1))
        steps = (np.ones(len(starts), np.int64) if len(parts) < 4 or parts[3] is None
                 else np.asarray(parts[3], np.int64).reshape(-1))
        if not len(starts) == len(ends) == len(axes) == len(steps):
            self.fail(node, "starts, ends, axes and steps differ in length")
        crop = {1: (0, 0), 2: (0, 0)}
        shape = v.shape
        for start, end, axis, step in zip(starts, ends, axes, steps):
            j = int(axis) % 4
            if j == 0 or v.perm[j] not in crop or step != 1:
                if j != 0 and step == 1 and start in (0, -shape[j]) and end >= shape[j]:
                    continue  # the whole axis
                self.fail(node, "only step-1 slices of the spatial axes are supported "
                          "(axis %d, step %d)" % (axis, step))
            n = shape[j]
            b = min(max(int(start) + n if start < 0 else int(start), 0), n)
            e = min(max(int(end) + n if end < 0 else int(end), 0), n)
            if e <= b:
                self.fail(node, "the slice of axis %d is empty" % axis)
            crop[v.perm[j]] = (b, n - e)
        layer = self.make(node, "Cropping2D", (crop[1], crop[2]))
        self.put(node, v.with_(self.call(node, layer, v.kt)))

    def op_Pad(self, node):
        v = self.image(node)
        a = self.attrs(node)
        if a.get("mode", "constant") != "constant":
            self.fail(node, "mode=%r is not supported (only constant zero padding)"
                      % a.get("mode"))
        pads = a.get("pads") if "pads" in a else self.const(node.input[1])
        if pads is None:
            self.fail(node, "pads must be constant")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        value = a.get("value", 0.0)
        if len(node.input) > 2 and node.input[2]:
            value = float(self.weight(node, 2, "constant_value").reshape(()))
        if len(node.input) > 3 and node.input[3]:
            self.fail(node, "the axes input is not supported")
        if value != 0.0 or len(pads) != 8 or min(pads) < 0 or any(
                pads[i] or pads[i + 4] for i in (0, 1)):
            self.fail(node, "only zero padding of H and W (pads >= 0) is supported; got "
                      "pads=%s value=%r" % (pads, value))
        out = self.zero_pad(node, v, ((pads[2], pads[6]), (pads[3], pads[7])))
        self.put(node, out)


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def _is_identity(rowmap):
    return rowmap is None or np.array_equal(rowmap, np.arange(rowmap.size))


def _read(path_or_bytes):
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes), "<bytes>"
    if not isinstance(path_or_bytes, (str, os.PathLike)):
        raise TypeError("fastcnn.onnx.load_model: expected a file path or the file's bytes, "
                        "got %s" % type(path_or_bytes).__name__)
    where = os.fspath(path_or_bytes)
    try:
        size = os.path.getsize(where)
        if size > _MAX_FILE_BYTES:
            raise ValueError("fastcnn.onnx.load_model(%s): %d bytes, over the %d-byte limit"
                             % (where, size, _MAX_FILE_BYTES))
        with open(where, "rb") as f:
            return f.read(_MAX_FILE_BYTES + 1), where
    except OSError as e:
        raise ValueError("fastcnn.onnx.load_model(%s): cannot read the file: %s"
                         % (where, e)) from None


def load_model(path_or_bytes):
    """Load an ONNX CNN (``torch.onnx.export``, Keras/tf2onnx) as a fastcnn functional model.

    The model takes **NHWC** input (fastcnn's layout): for a model exported from PyTorch
    feed ``x_nchw.transpose(0, 2, 3, 1)``; a Keras/tf2onnx model whose ONNX input is NHWC
    takes its input unchanged. Outputs are as in ONNX for 2-D outputs (logits) and NHWC for
    image outputs. The model can be compiled and trained further; BatchNormalization's
    running statistics and every weight come from the file.

    Supported ops: Conv (group == channels -> DepthwiseConv2D, other groups and dilations ->
    Conv2D), ConvTranspose (Conv2DTranspose 'same', or 'valid' + Cropping2D), Gemm,
    MatMul(+Add), Relu, Clip(min=0) (ReLU with max_value, e.g. ReLU6), LeakyRelu, Elu, PRelu,
    Selu, Gelu (and torch's exact-GELU Erf chain), Sigmoid (x * Sigmoid(x) -> silu),
    HardSigmoid, HardSwish, Tanh, Softplus, Softsign (and its Abs/Add/Div chain), Exp,
    Softmax, MaxPool, AveragePool,
    GlobalAveragePool, GlobalMaxPool, BatchNormalization, LayerNormalization, Resize
    (integer up-scaling of H and W: nearest or half-pixel bilinear -> UpSampling2D), Add,
    Sub, Mul, Max, Min, Mean, Sum (of same-shape computed tensors), Concat, Flatten, Reshape
    (as a flatten), Slice (a spatial crop -> Cropping2D), Dropout, Pad (zeros), Identity,
    Transpose, and the Shape/Gather/Unsqueeze/Concat chains that compute a flatten's shape.

    Args:
        path_or_bytes: path to a ``.onnx`` file, or its contents as bytes.

    Returns:
        A ``fastcnn.Model`` (not compiled).

    Raises:
        ImportError: if the ``onnx`` package is not installed.
        TypeError: if ``path_or_bytes`` is neither a path nor bytes.
        ValueError: naming the file for a truncated or garbled file, external data, a
            tensor whose declared size does not match its data or exceeds the limits, and
            naming the node and its op type for an unsupported op or attribute.

    Example::

        model = fastcnn.onnx.load_model("resnet.onnx")  # from torch.onnx.export
        logits = model.predict(x_nchw.transpose(0, 2, 3, 1))  # feed NHWC
        model.compile("adam", fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x_nchw.transpose(0, 2, 3, 1), labels, epochs=1)  # fine-tune
    """
    onnx = _onnx()
    data, where = _read(path_or_bytes)
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError("fastcnn.onnx.load_model(%s): not a valid ONNX file (%s: %s)"
                         % (where, type(e).__name__, e)) from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ValueError("fastcnn.onnx.load_model(%s): not a valid ONNX file (no graph or "
                         "no opset)" % where)
    if proto.functions and any(n.domain not in ("", "ai.onnx") for n in proto.graph.node):
        raise ValueError("fastcnn.onnx.load_model(%s): model-local functions are not "
                         "supported" % where)
    return _Importer(proto, where).run()
