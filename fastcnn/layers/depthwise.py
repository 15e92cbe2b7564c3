"""DepthwiseConv2D and SeparableConv2D (NHWC, Keras 3 arguments, weights and output shapes)."""
from .. import constraints, initializers, ops, regularizers
from ..ops._validation import (channels_last, conv_output_size, int_tuple, padding_mode,
                               positive_int)
from ._shapes import conv_output_shape
from .base import Layer
from .core import _Activated, get_activation

__all__ = ["DepthwiseConv2D", "SeparableConv2D"]


class _DepthwiseBase(_Activated, Layer):
    """The depthwise part both layers share: arguments, output shape, the depthwise pass."""

    def __init__(self, kernel_size, strides, padding, data_format, dilation_rate,
                 depth_multiplier, activation, use_bias, depthwise_initializer,
                 bias_initializer, depthwise_regularizer, bias_regularizer,
                 activity_regularizer, depthwise_constraint, bias_constraint, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", self.name)
        self.kernel_size = int_tuple(kernel_size, "kernel_size", self.name)
        self.strides = int_tuple(strides, "strides", self.name)
        self.padding = padding_mode(padding, self.name)
        self.data_format = channels_last(data_format, self.name)
        self.dilation_rate = int_tuple(dilation_rate, "dilation_rate", self.name)
        self.activation = get_activation(activation, self.name)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.bias = None

    def _window(self):
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))

    def _spatial(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        if input_shape[-1] is None:
            self._incompatible("the channel axis (-1) must be known", input_shape)
        if self.built:
            self._check_last_axis(input_shape, self._depthwise_var().shape[2])
        return conv_output_shape(self, input_shape, self._window(), self.strides, self.padding,
                                 "kernel_size")

    def _depthwise_out_shape(self, x):
        kh, kw = self._window()
        oh = conv_output_size(x.shape[1], kh, self.strides[0], self.padding)[0]
        ow = conv_output_size(x.shape[2], kw, self.strides[1], self.padding)[0]
        return (x.shape[0], oh, ow, x.shape[3] * self.depth_multiplier)

    def _add_depthwise(self, input_shape, name):
        return self.add_weight(self.kernel_size + (input_shape[-1], self.depth_multiplier),
                               self.depthwise_initializer, name,
                               regularizer=self.depthwise_regularizer,
                               constraint=self.depthwise_constraint)

    def _add_bias(self, size):
        if self.use_bias:
            self.bias = self.add_weight((size,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)

    def _common_config(self):
        c = Layer.get_config(self)
        c.update(depth_multiplier=self.depth_multiplier, kernel_size=list(self.kernel_size),
                 strides=list(self.strides), padding=self.padding,
                 data_format=self.data_format, dilation_rate=list(self.dilation_rate),
                 activation=self.activation, use_bias=self.use_bias,
                 depthwise_initializer=initializers.serialize(self.depthwise_initializer))
        return c


class DepthwiseConv2D(_DepthwiseBase):
    """Depthwise 2-D convolution over NHWC images (Keras 3's ``DepthwiseConv2D``).

    Each input channel is convolved with its own ``depth_multiplier`` filters; output
    channel ``c * depth_multiplier + m`` comes from input channel ``c``. The kernel is
    ``(kh, kw, in_channels, depth_multiplier)`` and the bias ``(in_channels *
    depth_multiplier,)``, as in Keras. Runs a dedicated C kernel (vectorised over channels,
    bitwise identical at any thread count); ``activation="relu"`` is fused into it.

    Args:
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``, default ``(1, 1)``.
        padding: ``"valid"`` or ``"same"``.
        depth_multiplier: output channels per input channel (default 1).
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        dilation_rate: int or ``(dh, dw)``, default ``(1, 1)``.
        activation: ``None``/``"linear"``, ``"relu"``, ``"softmax"`` or ``"sigmoid"``.
        use_bias: whether to add a bias.
        depthwise_initializer: initializer of the kernel (default ``"glorot_uniform"``).
        bias_initializer: initializer of the bias (default ``"zeros"``).
        depthwise_regularizer, bias_regularizer, activity_regularizer: regularizers or None.
        depthwise_constraint, bias_constraint: constraints or None.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for an unsupported argument or value, naming the layer, and when called
            on an input that is not 4-D or whose channel count differs from the built one.

    Example:
        >>> layer = fastcnn.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)
        >>> layer.compute_output_shape((None, 32, 32, 8))
        (None, 32, 32, 16)
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         depth_multiplier, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)
        self.kernel = None

    def _depthwise_var(self):
        return self.kernel

    def compute_output_shape(self, input_shape):
        oh, ow = self._spatial(input_shape)
        return (input_shape[0], oh, ow, input_shape[-1] * self.depth_multiplier)

    def forward_flops(self, input_shape, output_shape):
        n, oh, ow, q = output_shape
        return 2 * n * oh * ow * q * self.kernel_size[0] * self.kernel_size[1]

    def build(self, input_shape):
        self.kernel = self._add_depthwise(input_shape, "kernel")
        self._add_bias(input_shape[-1] * self.depth_multiplier)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        z = ops.depthwise_conv2d(x, self.kernel.value, self.bias.value if self.use_bias else None,
                                 strides=self.strides, padding=self.padding,
                                 dilation_rate=self.dilation_rate,
                                 activation=self._kernel_activation(),
                                 out=ws.buf("out", self._depthwise_out_shape(x)))
        return self._finish(z, ws, return_logits)

    def _backward(self, dy, ws, need_input_grad):
        dz = self._activation_backward(dy, ws)
        x = ws["x"]
        dx, _, _ = ops.depthwise_conv2d_backward(
            dz, x, self.kernel.value, strides=self.strides, padding=self.padding,
            dilation_rate=self.dilation_rate, need_input_grad=need_input_grad,
            use_bias=self.use_bias, dx=ws.buf("dx", x.shape) if need_input_grad else None,
            dkernel=self._grad(self.kernel),
            dbias=self._grad(self.bias) if self.use_bias else None)
        return dx

    def get_config(self):
        c = self._common_config()
        c.update(bias_initializer=initializers.serialize(self.bias_initializer),
                 depthwise_regularizer=regularizers.serialize(self.depthwise_regularizer),
                 bias_regularizer=regularizers.serialize(self.bias_regularizer),
                 activity_regularizer=regularizers.serialize(self.activity_regularizer),
                 depthwise_constraint=constraints.serialize(self.depthwise_constraint),
                 bias_constraint=constraints.serialize(self.bias_constraint))
        return c


class SeparableConv2D(_DepthwiseBase):
    """Depthwise separable 2-D convolution over NHWC images (Keras 3's ``SeparableConv2D``).

    A depthwise convolution (``depth_multiplier`` filters per input channel, with the
    strides, padding and dilation) followed by a 1x1 pointwise convolution to ``filters``
    channels, the bias and the activation. Weights as Keras, in this order:
    ``depthwise_kernel (kh, kw, in, depth_multiplier)``, ``pointwise_kernel (1, 1, in *
    depth_multiplier, filters)``, ``bias (filters,)``. The depthwise pass runs the depthwise
    C kernel, the pointwise pass conv2d's GEMM with ``activation="relu"`` fused.

    Args:
        filters: output channels.
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``, default ``(1, 1)``.
        padding: ``"valid"`` or ``"same"``.
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        dilation_rate: int or ``(dh, dw)``, default ``(1, 1)``.
        depth_multiplier: depthwise filters per input channel (default 1).
        activation: ``None``/``"linear"``, ``"relu"``, ``"softmax"`` or ``"sigmoid"``.
        use_bias: whether to add a bias.
        depthwise_initializer, pointwise_initializer: kernel initializers (default
            ``"glorot_uniform"``).
        bias_initializer: default ``"zeros"``.
        depthwise_regularizer: a regularizer or None; so are ``pointwise_regularizer``,
            ``bias_regularizer`` and ``activity_regularizer``.
        depthwise_constraint, pointwise_constraint, bias_constraint: constraints or None.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for an unsupported argument or value, naming the layer, and when called
            on an input that is not 4-D or whose channel count differs from the built one.

    Example:
        >>> layer = fastcnn.layers.SeparableConv2D(16, 3, padding="same")
        >>> layer.compute_output_shape((None, 32, 32, 8))
        (None, 32, 32, 16)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None,
                 **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         depth_multiplier, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, **kwargs)
        self.filters = positive_int(filters, "filters", self.name)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.pointwise_constraint = constraints.get(pointwise_constraint)
        self.depthwise_kernel = self.pointwise_kernel = None

    def _depthwise_var(self):
        return self.depthwise_kernel

    def compute_output_shape(self, input_shape):
        oh, ow = self._spatial(input_shape)
        return (input_shape[0], oh, ow, self.filters)

    def forward_flops(self, input_shape, output_shape):
        n, oh, ow, f = output_shape
        q = input_shape[-1] * self.depth_multiplier
        return 2 * n * oh * ow * q * (self.kernel_size[0] * self.kernel_size[1] + f)

    def build(self, input_shape):
        self.depthwise_kernel = self._add_depthwise(input_shape, "depthwise_kernel")
        self.pointwise_kernel = self.add_weight(
            (1, 1, input_shape[-1] * self.depth_multiplier, self.filters),
            self.pointwise_initializer, "pointwise_kernel",
            regularizer=self.pointwise_regularizer, constraint=self.pointwise_constraint)
        self._add_bias(self.filters)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        shape = self._depthwise_out_shape(x)
        mid = ops.depthwise_conv2d(x, self.depthwise_kernel.value, None, strides=self.strides,
                                   padding=self.padding, dilation_rate=self.dilation_rate,
                                   out=ws.buf("mid", shape))
        ws["mid"] = mid
        z = ops.conv2d(mid, self.pointwise_kernel.value,
                       self.bias.value if self.use_bias else None,
                       activation=self._kernel_activation(),
                       out=ws.buf("out", shape[:3] + (self.filters,)))
        return self._finish(z, ws, return_logits)

    def _backward(self, dy, ws, need_input_grad):
        dz = self._activation_backward(dy, ws)
        x, mid = ws["x"], ws["mid"]
        dmid, _, _ = ops.conv2d_backward(
            dz, mid, self.pointwise_kernel.value, use_bias=self.use_bias,
            dx=ws.buf("dmid", mid.shape), dkernel=self._grad(self.pointwise_kernel),
            dbias=self._grad(self.bias) if self.use_bias else None)
        dx, _, _ = ops.depthwise_conv2d_backward(
            dmid, x, self.depthwise_kernel.value, strides=self.strides, padding=self.padding,
            dilation_rate=self.dilation_rate, need_input_grad=need_input_grad, use_bias=False,
            dx=ws.buf("dx", x.shape) if need_input_grad else None,
            dkernel=self._grad(self.depthwise_kernel))
        return dx

    def get_config(self):
        c = self._common_config()
        c.update(filters=self.filters,
                 pointwise_initializer=initializers.serialize(self.pointwise_initializer),
                 bias_initializer=initializers.serialize(self.bias_initializer),
                 depthwise_regularizer=regularizers.serialize(self.depthwise_regularizer),
                 pointwise_regularizer=regularizers.serialize(self.pointwise_regularizer),
                 bias_regularizer=regularizers.serialize(self.bias_regularizer),
                 activity_regularizer=regularizers.serialize(self.activity_regularizer),
                 depthwise_constraint=constraints.serialize(self.depthwise_constraint),
                 pointwise_constraint=constraints.serialize(self.pointwise_constraint),
                 bias_constraint=constraints.serialize(self.bias_constraint))
        return c
