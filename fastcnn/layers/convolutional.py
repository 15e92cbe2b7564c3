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
    thread count. Dilated or grouped layers run their own im2col + per-group GEMM kernels.

    Args:
        filters: number of output channels.
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``, default ``(1, 1)``.
        padding: ``"valid"`` (no padding) or ``"same"`` (output size ``ceil(in / stride)``).
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        dilation_rate: int or ``(dh, dw)``, default ``(1, 1)``; rates above 1 cannot be
            combined with strides above 1 (as Keras).
        groups: int dividing both the input channels and ``filters`` (default 1): the
            kernel is then ``(kh, kw, in_channels / groups, filters)`` and each group of
            ``filters / groups`` outputs sees its own slice of the input channels.
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
        self.dilation_rate = int_tuple(dilation_rate, "dilation_rate", self.name)
        self.groups = positive_int(groups, "groups", self.name)
        if self.filters % self.groups:
            raise ValueError("%s: the number of filters must be evenly divisible by the number "
                             "of groups. Received: groups=%d, filters=%d"
                             % (self.name, self.groups, self.filters))
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError("%s: `strides > 1` not supported in conjunction with "
                             "`dilation_rate > 1`. Received: strides=%s and dilation_rate=%s"
                             % (self.name, self.strides, self.dilation_rate))
        self.activation = get_activation(activation, self.name)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = self.bias = None

    @property
    def plain(self):
        """True without dilation or groups: the layer runs conv2d's own kernels (direct,
        Winograd, fused with a following max-pool or batch norm)."""
        return self.dilation_rate == (1, 1) and self.groups == 1

    def _window(self):
        """The dilated kernel's extent (what the output-size arithmetic sees)."""
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        if input_shape[-1] is None:
            self._incompatible("the channel axis (-1) must be known", input_shape)
        if self.built:
            self._check_last_axis(input_shape, self.kernel.shape[2] * self.groups)
        elif input_shape[-1] % self.groups:
            raise ValueError("%s: the number of input channels must be evenly divisible by the "
                             "number of groups. Received groups=%d, but the input has %d "
                             "channels (full input shape is %s)"
                             % (self.name, self.groups, input_shape[-1], tuple(input_shape)))
        oh, ow = conv_output_shape(self, input_shape, self._window(), self.strides,
                                   self.padding, "kernel_size")
        return (input_shape[0], oh, ow, self.filters)

    def forward_flops(self, input_shape, output_shape):
        n, oh, ow, f = output_shape
        kh, kw = self.kernel_size
        return 2 * n * oh * ow * f * kh * kw * input_shape[-1] // self.groups

    def build(self, input_shape):
        self.kernel = self.add_weight(self.kernel_size + (input_shape[-1] // self.groups,
                                                          self.filters),
                                      self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def _out_shape(self, x):
        kh, kw = self._window()
        oh = conv_output_size(x.shape[1], kh, self.strides[0], self.padding)[0]
        ow = conv_output_size(x.shape[2], kw, self.strides[1], self.padding)[0]
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
        if not self.plain:
            z = ops.conv2d(x, self.kernel.value, self.bias.value if self.use_bias else None,
                           strides=self.strides, padding=self.padding,
                           activation=self._kernel_activation(), out=out,
                           dilation_rate=self.dilation_rate, groups=self.groups)
            return self._finish(z, ws, return_logits)
        z = ops.conv2d(x, self.kernel.value, self.bias.value if self.use_bias else None,
                       strides=self.strides, padding=self.padding,
                       activation=self._kernel_activation(), out=out,
                       workspace=self.scratch(ws, x.shape))
        return self._finish(z, ws, return_logits)

    def _backward(self, dy, ws, need_input_grad):
        dz = self._activation_backward(dy, ws)
        x = ws["x"]
        if not self.plain:
            dx, _, _ = ops.conv2d_backward(
                dz, x, self.kernel.value, strides=self.strides, padding=self.padding,
                need_input_grad=need_input_grad, use_bias=self.use_bias,
                dx=ws.buf("dx", x.shape) if need_input_grad else None,
                dkernel=self._grad(self.kernel),
                dbias=self._grad(self.bias) if self.use_bias else None,
                dilation_rate=self.dilation_rate, groups=self.groups)
            return dx
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
                 dilation_rate=list(self.dilation_rate), groups=self.groups,
                 activation=self.activation,
                 use_bias=self.use_bias,
                 kernel_initializer=initializers.serialize(self.kernel_initializer),
                 bias_initializer=initializers.serialize(self.bias_initializer),
                 kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                 bias_regularizer=regularizers.serialize(self.bias_regularizer),
                 activity_regularizer=regularizers.serialize(self.activity_regularizer),
                 kernel_constraint=constraints.serialize(self.kernel_constraint),
                 bias_constraint=constraints.serialize(self.bias_constraint))
        return c
