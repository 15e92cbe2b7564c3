"""Conv2D (NHWC, kernel (kh, kw, in, filters), Keras 3 arguments and output shapes)."""
import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..ops._validation import (channels_last, conv_output_size, int_tuple, padding_mode,
                               positive_int)
from ._shapes import conv_output_shape
from .base import Layer
from .core import _Activated, get_activation

__all__ = ["Conv2D"]


class Conv2D(_Activated, Layer):
    """2-D convolution over NHWC images (Keras 3's ``Conv2D``).

    ``activation="relu"`` is fused into the kernel. The kernel is ``(kh, kw, in_channels,
    filters)`` and the bias ``(filters,)``, as in Keras, so ``get_weights``/``set_weights``
    exchange weights with Keras unchanged. The algorithm (direct, im2col + GEMM, Winograd
    F(2x2, 3x3) / F(4x4, 3x3)) is chosen per call; all give results bitwise identical at any
    thread count.

    Args:
        filters: number of output channels.
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``, default ``(1, 1)``.
        padding: ``"valid"`` (no padding) or ``"same"`` (output size ``ceil(in / stride)``).
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        dilation_rate: only ``(1, 1)``.
        groups: only 1.
        activation: ``None``/``"linear"``, ``"relu"`` or ``"softmax"``.
        use_bias: whether to add a bias.
        kernel_initializer: initializer name or instance (default ``"glorot_uniform"``).
        bias_initializer: initializer name or instance (default ``"zeros"``).
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Keras' ``kernel_regularizer``, ``bias_regularizer``, ``activity_regularizer``,
    ``kernel_constraint`` and ``bias_constraint`` are accepted where this version implements
    them; any other value than ``None`` raises a ValueError naming the argument.

    Raises:
        ValueError: for an unsupported argument or value, naming the layer, and when called
            on an input that is not 4-D or whose channel count differs from the built one.

    Example:
        >>> layer = fastcnn.layers.Conv2D(8, 3, padding="same", activation="relu")
        >>> layer.compute_output_shape((None, 32, 32, 3))
        (None, 32, 32, 8)
        >>> y = layer(np.zeros((2, 32, 32, 3), np.float32))
        >>> y.shape, [w.shape for w in layer.get_weights()]
        ((2, 32, 32, 8), [(3, 3, 3, 8), (8,)])
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters = positive_int(filters, "filters", self.name)
        self.kernel_size = int_tuple(kernel_size, "kernel_size", self.name)
        self.strides = int_tuple(strides, "strides", self.name)
        self.padding = padding_mode(padding, self.name)
        self.data_format = channels_last(data_format, self.name)
        if int_tuple(dilation_rate, "dilation_rate", self.name) != (1, 1):
            raise ValueError("%s: dilation_rate other than (1, 1) is not supported by fastcnn. "
                             "Received dilation_rate=%r" % (self.name, dilation_rate))
        if groups != 1:
            raise ValueError("%s: groups other than 1 is not supported by fastcnn. "
                             "Received groups=%r" % (self.name, groups))
        self.activation = get_activation(activation, self.name)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = self.bias = None

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        if input_shape[-1] is None:
            self._incompatible("the channel axis (-1) must be known", input_shape)
        if self.built:
            self._check_last_axis(input_shape, self.kernel.shape[2])
        oh, ow = conv_output_shape(self, input_shape, self.kernel_size, self.strides,
                                   self.padding, "kernel_size")
        return (input_shape[0], oh, ow, self.filters)

    def forward_flops(self, input_shape, output_shape):
        n, oh, ow, f = output_shape
        kh, kw = self.kernel_size
        return 2 * n * oh * ow * f * kh * kw * input_shape[-1]

    def build(self, input_shape):
        self.kernel = self.add_weight(self.kernel_size + (input_shape[-1], self.filters),
                                      self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def _out_shape(self, x):
        oh = conv_output_size(x.shape[1], self.kernel_size[0], self.strides[0], self.padding)[0]
        ow = conv_output_size(x.shape[2], self.kernel_size[1], self.strides[1], self.padding)[0]
        return (x.shape[0], oh, ow, self.filters)

    def scratch(self, ws, x_shape, output_size=None):
        """The conv kernels' scratch buffer in workspace ``ws`` for inputs of ``x_shape``
        (allocated once, grown if an ``output_size`` crop needs more; None if none)."""
        key = ("scratch_floats", output_size)
        need = ws.get(key)
        if need is None:
            need = ws[key] = ops.conv2d_workspace_size(x_shape, self.kernel.shape, self.strides,
                                                       self.padding, output_size=output_size)
        buf = ws.get("scratch")
        if need > 0 and (buf is None or buf.size < need):
            buf = ws["scratch"] = np.empty(need, np.float32)
        return buf if need > 0 else None

    def _forward(self, x, ws, training, return_logits):
        out = ws.get("out")
        if out is None:
            out = ws.buf("out", self._out_shape(x))
        z = ops.conv2d(x, self.kernel.value, self.bias.value if self.use_bias else None,
                       strides=self.strides, padding=self.padding,
                       activation=self._kernel_activation(), out=out,
                       workspace=self.scratch(ws, x.shape))
        return self._finish(z, ws, return_logits)

    def _backward(self, dy, ws, need_input_grad):
        dz = self._activation_backward(dy, ws)
        x = ws["x"]
        dx, _, _ = ops.conv2d_backward(
            dz, x, self.kernel.value, strides=self.strides, padding=self.padding,
            need_input_grad=need_input_grad, use_bias=self.use_bias,
            dx=ws.buf("dx", x.shape) if need_input_grad else None,
            dkernel=self._grad(self.kernel),
            dbias=self._grad(self.bias) if self.use_bias else None,
            workspace=self.scratch(ws, x.shape))
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(filters=self.filters, kernel_size=list(self.kernel_size),
                 strides=list(self.strides), padding=self.padding, data_format=self.data_format,
                 dilation_rate=[1, 1], groups=1, activation=self.activation,
                 use_bias=self.use_bias,
                 kernel_initializer=initializers.serialize(self.kernel_initializer),
                 bias_initializer=initializers.serialize(self.bias_initializer),
                 kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                 bias_regularizer=regularizers.serialize(self.bias_regularizer),
                 activity_regularizer=regularizers.serialize(self.activity_regularizer),
                 kernel_constraint=constraints.serialize(self.kernel_constraint),
                 bias_constraint=constraints.serialize(self.bias_constraint))
        return c
