"""Core layers: Input, Dense, Flatten, Dropout, Activation (Keras 3 semantics); ReLU lives in
layers/activations.py and is re-exported here."""
import numbers

import numpy as np

from .. import activations, constraints, initializers, ops, regularizers
from ..ops._validation import channels_last, unsupported
from .activations import ReLU  # noqa: F401  (re-exported: it lived here first)
from .base import Layer, SeededLayer
from .node import Node

__all__ = ["InputLayer", "Input", "Dense", "Flatten", "Dropout", "Activation", "ReLU"]

ACTIVATIONS = ("linear", "relu", "softmax", "sigmoid", "tanh", "elu", "selu", "gelu", "silu",
               "softplus", "softsign", "hard_sigmoid", "hard_silu", "leaky_relu", "relu6",
               "exponential", "log_softmax")
# the row-wise ones: everything else in ACTIVATIONS is elementwise (ops.activation)
_ROWWISE = ("softmax", "log_softmax")


def get_activation(identifier, layer):
    """None, a name (Keras aliases too) or an activation function -> its canonical name.

    Raises:
        ValueError: naming ``layer`` and listing the supported activations.
    """
    try:
        name = activations.serialize(activations.get(identifier))
    except ValueError:
        raise ValueError("%s: could not interpret activation function identifier %r. fastcnn "
                         "supports: None, %s (and the aliases swish, hard_swish)"
                         % (layer, identifier, ", ".join(ACTIVATIONS))) from None
    return name


class _Activated:
    """Activation handling for layers whose kernel can fuse ReLU (Conv2D, Dense, Activation).

    ReLU is fused in the kernel (``activation='relu'``) and undone in backward with
    ``relu_backward`` on the stored output. Softmax and sigmoid run as ``ops.softmax`` /
    ``ops.sigmoid`` unless the model asks for logits (``return_logits``: the cross-entropy then
    works from the logits, which is the exact gradient of activation + cross-entropy).
    Every other activation is one pass of ``ops.activation`` over the kernel's output: in
    place when its backward works from the output, else into a buffer next to the kept
    pre-activation.
    """

    def _kernel_activation(self):
        return "relu" if self.activation == "relu" else None

    @property
    def fuses_relu_backward(self):
        return self.activation == "relu"

    def _finish(self, z, ws, return_logits, in_place=True):
        """Apply the activation to the kernel output ``z``; ``in_place=False`` when ``z`` is
        not this layer's own buffer (the Activation layer's input)."""
        ws["z"] = z
        act = self.activation
        if act in ("linear", "relu") or (return_logits and act in ("softmax", "sigmoid")):
            return z
        if act == "softmax":
            y = ops.softmax(z, out=ws.buf("y", z.shape))
        elif act == "sigmoid":
            y = ops.sigmoid(z, out=ws.buf("y", z.shape))
        elif act == "log_softmax":
            y = ops.log_softmax(z, out=ws.buf("y", z.shape))
        elif in_place and ops.activation_backward_uses_output(act):
            y = ops.activation(z, act, out=z)
        else:
            y = ops.activation(z, act, out=ws.buf("y", z.shape))
        ws["y"] = y
        return y

    def _activation_backward(self, dy, ws):
        act = self.activation
        if act == "linear":
            return dy
        if act == "relu":
            if ws.get("fused_relu"):  # the max-pool after this layer already applied it
                return dy
            return ops.relu_backward(dy, ws["z"], out=ws.buf("dz", dy.shape))
        if act in ("softmax", "sigmoid") and ws["logits"]:
            return dy
        if act == "sigmoid":
            return ops.sigmoid_backward(dy, ws["y"], out=ws.buf("dz", dy.shape))
        if act in _ROWWISE:
            return ops.softmax_axis_backward(dy, ws["y"], log=act == "log_softmax",
                                             out=ws.buf("dz", dy.shape))
        src = ws["y"] if ops.activation_backward_uses_output(act) else ws["z"]
        return ops.activation_backward(dy, src, act, out=ws.buf("dz", dy.shape))


class InputLayer(Layer):
    """The model's input: a shape without the batch dimension (``Input(shape=(32, 32, 3))``)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 name=None, ragged=None, optional=False, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        kwargs.pop("trainable", None)
        super().__init__(name=name, dtype=dtype, **kwargs)
        unsupported("InputLayer", sparse=sparse, ragged=ragged, optional=optional)
        if batch_shape is not None:
            if shape is not None:
                raise ValueError("InputLayer: pass `shape` or `batch_shape`, not both")
            batch_shape = tuple(batch_shape)
            batch_size, shape = batch_shape[0], batch_shape[1:]
        if shape is None:
            raise ValueError("InputLayer: you must pass a `shape` argument, e.g. "
                             "Input(shape=(32, 32, 3))")
        self._shape = self._validate_input_shape_arg(shape)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.built = True
        self.input_shape = self.output_shape = (None,) + self._shape
        # the symbolic tensor that fastcnn.Input returns: the graph starts at this node
        self.output = Node(self, [], self.shape).output_tensors[0]

    @property
    def shape(self):
        """The input's shape, batch dimension first (``None`` unless ``batch_size`` was given)."""
        return (self.batch_size,) + self._shape

    @property
    def batch_shape(self):
        """Same as :attr:`shape` (Keras 3's name)."""
        return self.shape

    def _forward(self, x, ws, training, return_logits):
        return x

    def _backward(self, dy, ws, need_input_grad):
        return dy if need_input_grad else None

    def get_config(self):
        return {"batch_shape": list(self.shape), "dtype": "float32", "sparse": False,
                "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
          tensor=None):
    """A symbolic model input (a ``KerasTensor``), as ``keras.Input``.

    Args:
        shape: the shape of one sample, without the batch axis, e.g. ``(32, 32, 3)``.
        batch_size: optional fixed batch size.
        dtype: float32 only.
        batch_shape: the full shape, batch axis first (instead of ``shape``).
        name: the name of the InputLayer behind the tensor.

    Call layers on it to build a graph, then ``fastcnn.Model(inputs, outputs)``; or use it as
    the first element of ``Sequential([...])``.
    """
    if tensor is not None:
        raise ValueError("Input: the `tensor` argument is not supported by fastcnn")
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse,
                      batch_shape=batch_shape, name=name).output


class Dense(_Activated, Layer):
    """``activation(x @ kernel + bias)`` on the last axis (Keras 3's ``Dense``).

    The kernel is ``(in, units)`` and the bias ``(units,)``, as in Keras. An input of rank
    above 2 is transformed along its last axis: ``(batch, ..., in) -> (batch, ..., units)``.

    Args:
        units: output size.
        activation: ``None``/``"linear"``, ``"relu"`` (fused into the GEMM) or any name of
            ``fastcnn.activations`` (applied in one pass over the GEMM's output).
        use_bias: whether to add a bias.
        kernel_initializer: initializer name or instance (default ``"glorot_uniform"``).
        bias_initializer: initializer name or instance (default ``"zeros"``).
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only); Keras'
            regularizer and constraint arguments are refused unless ``None``.

    Raises:
        ValueError: for an unsupported argument, an input of rank below 2, or a last axis that
            differs from the built one.

    Example:
        >>> dense = fastcnn.layers.Dense(4, activation="relu")
        >>> dense(np.ones((2, 3), np.float32)).shape
        (2, 4)
        >>> dense.kernel.shape, dense.bias.shape
        ((3, 4), (4,))
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 lora_rank=None, quantization_config=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if isinstance(units, bool) or not isinstance(units, numbers.Integral) or units <= 0:
            raise ValueError("Received an invalid value for `units`, expected a positive "
                             "integer. Received: units=%r" % (units,))
        self.units = int(units)
        self.activation = get_activation(activation, self.name)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        unsupported(self.name, lora_rank=lora_rank, quantization_config=quantization_config)
        self.kernel = self.bias = None

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, min_ndim=2)
        if input_shape[-1] is None:
            self._incompatible("the last axis must be known", input_shape)
        if self.built:
            self._check_last_axis(input_shape, self.kernel.shape[0])
        return tuple(input_shape[:-1]) + (self.units,)

    def forward_flops(self, input_shape, output_shape):
        rows = int(np.prod(input_shape[:-1], dtype=np.int64))
        return 2 * rows * input_shape[-1] * self.units

    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer,
                                      "kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        ws["x2"] = x2
        z = ops.dense(x2, self.kernel.value, self.bias.value if self.use_bias else None,
                      activation=self._kernel_activation(),
                      out=ws.buf("out", (x2.shape[0], self.units)))
        y = self._finish(z, ws, return_logits)
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (self.units,))

    def _backward(self, dy, ws, need_input_grad):
        x2 = ws["x2"]
        dy2 = dy if dy.ndim == 2 else dy.reshape(-1, self.units)
        dz = self._activation_backward(dy2, ws)
        dx, _, _ = ops.dense_backward(
            dz, x2, self.kernel.value, need_input_grad=need_input_grad, use_bias=self.use_bias,
            dx=ws.buf("dx", x2.shape) if need_input_grad else None,
            dkernel=self._grad(self.kernel),
            dbias=self._grad(self.bias) if self.use_bias else None)
        if dx is None:
            return None
        return dx if ws["x"].ndim == 2 else dx.reshape(ws["x"].shape)

    def get_config(self):
        c = super().get_config()
        c.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                 kernel_initializer=initializers.serialize(self.kernel_initializer),
                 bias_initializer=initializers.serialize(self.bias_initializer),
                 kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                 bias_regularizer=regularizers.serialize(self.bias_regularizer),
                 kernel_constraint=constraints.serialize(self.kernel_constraint),
                 bias_constraint=constraints.serialize(self.bias_constraint))
        return c


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...) in C (NHWC) order: a reshape, no copy."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = channels_last(data_format, self.name)

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, min_ndim=1)
        rest = input_shape[1:]
        n = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
        return (input_shape[0], n)

    def _forward(self, x, ws, training, return_logits):
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy, ws, need_input_grad):
        return dy.reshape(ws["x"].shape) if need_input_grad else None

    def get_config(self):
        c = super().get_config()
        c["data_format"] = self.data_format
        return c


_SEED_MUL = 6364136223846793005
_SEED_INC = 1442695040888963407


class Dropout(SeededLayer):
    """Zero a fraction ``rate`` of inputs while training and scale the rest by 1/(1-rate).

    At inference it is the identity. The mask comes from the kernel's counter-based RNG with a
    per-call seed derived from the layer seed and a call counter, so masks are reproducible
    (``seed=`` or ``fastcnn.utils.set_random_seed``) at any thread count and after reloading.

    Args:
        rate: fraction of the inputs to drop, in [0, 1].
        noise_shape: only ``None`` (one mask value per element).
        seed: int seed of the masks; ``None`` draws one from fastcnn's generator.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: for a rate outside [0, 1] or an unsupported ``noise_shape``.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
            raise ValueError("Invalid value received for argument `rate`. Expected a float "
                             "value between 0 and 1. Received: rate=%r" % (rate,))
        if noise_shape is not None:
            raise ValueError("%s: noise_shape is not supported by fastcnn" % self.name)
        self._init_seed(seed)
        self.rate = float(rate)
        self.built = True

    def _next_seed(self):
        s = (self._seed * _SEED_MUL + self._calls * _SEED_INC + 1) % (2 ** 63)
        self._calls += 1
        return s

    def _forward(self, x, ws, training, return_logits):
        ws["active"] = training and self.rate > 0
        if not ws["active"]:
            return x
        if self.rate >= 1:
            y = ws.buf("y", x.shape)
            y.fill(0.0)
            return y
        y, ws["mask"] = self._drop(x, ws)
        return y

    def _drop(self, x, ws):
        """The training forward at 0 < rate < 1: (output, mask), both workspace buffers."""
        return ops.dropout(x, self.rate, self._next_seed(), out=ws.buf("y", x.shape),
                           mask=ws.get("mask"))

    def _drop_backward(self, dy, ws):
        return ops.dropout_backward(dy, ws["mask"], self.rate, out=ws.buf("dx", dy.shape))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        if not ws["active"]:
            return dy
        if self.rate >= 1:
            dx = ws.buf("dx", dy.shape)
            dx.fill(0.0)
            return dx
        return self._drop_backward(dy, ws)

    def get_config(self):
        c = super().get_config()
        c.update(rate=self.rate, noise_shape=None)
        return c


class Activation(_Activated, Layer):
    """Apply an activation function as a separate layer (Keras 3's ``Activation``).

    Args:
        activation: a name from ``fastcnn.activations`` (``"relu"``, ``"tanh"``, ``"gelu"``,
            ``"swish"``, ``"softmax"``, ...), ``None`` for linear, or one of those functions.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for an activation fastcnn does not support (the message lists them).

    Example:
        >>> fastcnn.layers.Activation("tanh")(np.zeros((1, 2), np.float32))
        array([[0., 0.]], dtype=float32)
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = get_activation(activation, self.name)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        if self.activation == "relu":
            z = ops.relu(x, out=ws.buf("out", x.shape))
            ws["z"] = z
            return z
        if self.activation == "linear":
            return x
        if self.activation == "softmax":
            if x.ndim != 2:
                x = x.reshape(-1, x.shape[-1])
            y = self._finish(x, ws, return_logits, in_place=False)
            return y.reshape(ws["x"].shape)
        # x belongs to the layer before: never overwrite it
        return self._finish(x, ws, return_logits, in_place=False)

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        if self.activation == "softmax" and dy.ndim != 2:
            return self._activation_backward(dy.reshape(-1, dy.shape[-1]), ws).reshape(dy.shape)
        return self._activation_backward(dy, ws)

    def get_config(self):
        c = super().get_config()
        c["activation"] = self.activation
        return c
