"""Conv2D (NHWC, kernel (kh, kw, in, filters), Keras 3 arguments and output shapes)."""
import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..ops._validation import (channels_last, conv_output_size, int_tuple, one_of,
                               padding_mode, positive_int)
from ._shapes import conv_output_shape
from .base import Layer
from .core import _Activated, get_activation

__all__ = ["Conv2D", "Conv2DTranspose", "Conv1D"]


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
        """Whether the layer has neither dilation nor groups, so it runs conv2d's own kernels
        (direct, Winograd, fused with a following max-pool or batch norm)."""
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
            need = ws[key] = ops.conv2d_workspace_size(
                x_shape, self.kernel.shape, self.strides, self.padding, output_size=output_size,
                dilation_rate=self.dilation_rate, groups=self.groups)
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
                       workspace=self.scratch(ws, x.shape),
                       dilation_rate=self.dilation_rate, groups=self.groups)
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
            workspace=self.scratch(ws, x.shape),
            dilation_rate=self.dilation_rate, groups=self.groups)
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


def _weights_config(layer):
    """The initializer/regularizer/constraint entries of a conv layer's Keras config."""
    return dict(kernel_initializer=initializers.serialize(layer.kernel_initializer),
                bias_initializer=initializers.serialize(layer.bias_initializer),
                kernel_regularizer=regularizers.serialize(layer.kernel_regularizer),
                bias_regularizer=regularizers.serialize(layer.bias_regularizer),
                activity_regularizer=regularizers.serialize(layer.activity_regularizer),
                kernel_constraint=constraints.serialize(layer.kernel_constraint),
                bias_constraint=constraints.serialize(layer.bias_constraint))


class _ConvBase(_Activated, Layer):
    """Argument handling shared by Conv2DTranspose and Conv1D (``rank`` spatial axes)."""

    rank = 2

    def __init__(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                 activation, use_bias, kernel_initializer, bias_initializer,
                 kernel_regularizer, bias_regularizer, activity_regularizer,
                 kernel_constraint, bias_constraint, paddings=("valid", "same"), **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        n = self.rank
        self.filters = positive_int(filters, "filters", self.name)
        self.kernel_size = int_tuple(kernel_size, "kernel_size", self.name, n=n)
        self.strides = int_tuple(strides, "strides", self.name, n=n)
        self.padding = one_of(padding.lower() if isinstance(padding, str) else padding,
                              "padding", self.name, paddings)
        self.data_format = channels_last(data_format, self.name)
        if int_tuple(dilation_rate, "dilation_rate", self.name, n=n) != (1,) * n:
            raise ValueError("%s: dilation_rate other than %s is not supported by fastcnn. "
                             "Received dilation_rate=%r" % (self.name, (1,) * n, dilation_rate))
        self.activation = get_activation(activation, self.name)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.kernel = self.bias = None

    def _check_input(self, input_shape):
        self._check_ndim(input_shape, ndim=self.rank + 2)
        if input_shape[-1] is None:
            self._incompatible("the channel axis (-1) must be known", input_shape)
        if self.built:
            self._check_last_axis(input_shape, self._in_channels())

    def _add_weights(self, kernel_shape):
        self.kernel = self.add_weight(kernel_shape, self.kernel_initializer, "kernel",
                                      regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias",
                                        regularizer=self.bias_regularizer,
                                        constraint=self.bias_constraint)
        self.built = True

    def _scratch(self, ws, size):
        """A float32 scratch of ``size`` elements kept in workspace ``ws`` (None if 0)."""
        if size <= 0:
            return None
        buf = ws.get("scratch")
        if buf is None or buf.size < size:
            buf = ws["scratch"] = np.empty(size, np.float32)
        return buf

    def get_config(self):
        c = super().get_config()
        c.update(filters=self.filters, kernel_size=list(self.kernel_size),
                 strides=list(self.strides), padding=self.padding)
        return c


class Conv2DTranspose(_ConvBase):
    """Transposed 2-D convolution over NHWC images (Keras 3's ``Conv2DTranspose``).

    The gradient of a Conv2D with respect to its input, used to up-sample (decoders,
    autoencoders). It runs on the Conv2D kernels: its forward is their input gradient and
    its backward their forward and kernel gradient. The kernel is ``(kh, kw, filters,
    in_channels)`` and the bias ``(filters,)``, as in Keras. Output size as Keras:
    ``padding="same"`` gives ``in * stride`` (or ``(in - 1) * stride + k % 2 +
    output_padding``), ``"valid"`` gives ``(in - 1) * stride + k + output_padding``
    (``output_padding`` None: ``max(k, stride) - k``).

    Args:
        filters: number of output channels.
        kernel_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``, default ``(1, 1)``.
        padding: ``"valid"`` or ``"same"``.
        output_padding: None, int or pair: extra rows/columns at the bottom/right, each
            strictly less than its stride.
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        dilation_rate: only ``(1, 1)``.
        activation: any activation name fastcnn knows (``"relu"`` is fused).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializer names or instances.
        kernel_regularizer, bias_regularizer, activity_regularizer: regularizers or None.
        kernel_constraint, bias_constraint: constraints or None.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for an unsupported argument or value (naming the layer), and when
            called on an input that is not 4-D or whose channel count differs from the
            built one.

    Example:
        >>> layer = fastcnn.layers.Conv2DTranspose(8, 3, strides=2, padding="same")
        >>> layer.compute_output_shape((None, 7, 7, 16))
        (None, 14, 14, 8)
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 output_padding=None, data_format=None, dilation_rate=(1, 1), activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint, **kwargs)
        self.output_padding = (None if output_padding is None else
                               int_tuple(output_padding, "output_padding", self.name,
                                         minimum=0))
        if self.output_padding is not None and any(
                op >= s for op, s in zip(self.output_padding, self.strides)):
            raise ValueError("%s: `output_padding` must be strictly less than `strides` for "
                             "all dimensions. Received: output_padding=%s, strides=%s"
                             % (self.name, self.output_padding, self.strides))

    def _in_channels(self):
        return self.kernel.shape[3]

    def compute_output_shape(self, input_shape):
        self._check_input(input_shape)
        out = [input_shape[0]]
        for axis in (0, 1):
            size = input_shape[1 + axis]
            op = None if self.output_padding is None else self.output_padding[axis]
            o = None if size is None else ops.deconv_output_length(
                size, self.kernel_size[axis], self.strides[axis], self.padding, op)
            if o is not None and o < 1:
                raise ValueError('Layer "%s": input shape %s gives an empty output (size %d '
                                 "along axis %d)" % (self.name, tuple(input_shape), o, axis + 1))
            out.append(o)
        return tuple(out) + (self.filters,)

    def forward_flops(self, input_shape, output_shape):
        n, h, w, c = input_shape
        kh, kw = self.kernel_size
        return 2 * n * h * w * c * kh * kw * self.filters

    def build(self, input_shape):
        self._add_weights(self.kernel_size + (self.filters, input_shape[-1]))

    def _geometry_args(self):
        return dict(strides=self.strides, padding=self.padding,
                    output_padding=self.output_padding)

    def _scratch_for(self, ws, x_shape):
        size = ws.get("scratch_floats")
        if size is None:
            size = ws["scratch_floats"] = ops.conv2d_transpose_workspace_size(
                x_shape, self.kernel.shape, **self._geometry_args())
        return self._scratch(ws, size)

    def _forward(self, x, ws, training, return_logits):
        out = ws.get("out")
        if out is None:
            out = ws.buf("out", ops.conv2d_transpose_output_shape(
                x.shape, self.kernel.shape, **self._geometry_args()))
        z = ops.conv2d_transpose(x, self.kernel.value,
                                 self.bias.value if self.use_bias else None,
                                 activation=self._kernel_activation(), out=out,
                                 workspace=self._scratch_for(ws, x.shape),
                                 **self._geometry_args())
        return self._finish(z, ws, return_logits)

    def _backward(self, dy, ws, need_input_grad):
        dz = self._activation_backward(dy, ws)
        x = ws["x"]
        dx, _, _ = ops.conv2d_transpose_backward(
            dz, x, self.kernel.value, need_input_grad=need_input_grad, use_bias=self.use_bias,
            dx=ws.buf("dx", x.shape) if need_input_grad else None,
            dkernel=self._grad(self.kernel),
            dbias=self._grad(self.bias) if self.use_bias else None,
            workspace=self._scratch_for(ws, x.shape), **self._geometry_args())
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(output_padding=(None if self.output_padding is None
                                 else list(self.output_padding)),
                 data_format=self.data_format, dilation_rate=[1, 1],
                 activation=self.activation, use_bias=self.use_bias, **_weights_config(self))
        return c


class Conv1D(_ConvBase):
    """1-D convolution over (batch, steps, channels) sequences (Keras 3's ``Conv1D``).

    Runs on the Conv2D kernels as a convolution of height 1 (the input and kernel are
    viewed, not copied). The kernel is ``(kernel_size, in_channels, filters)`` and the bias
    ``(filters,)``, as in Keras.

    Args:
        filters: number of output channels.
        kernel_size: int or 1-tuple.
        strides: int or 1-tuple, default 1.
        padding: ``"valid"``, ``"same"`` or ``"causal"`` (``kernel_size - 1`` zeros on the
            left, so output t sees inputs up to t only).
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        dilation_rate: only 1.
        groups: only 1.
        activation: any activation name fastcnn knows (``"relu"`` is fused).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: initializer names or instances.
        kernel_regularizer, bias_regularizer, activity_regularizer: regularizers or None.
        kernel_constraint, bias_constraint: constraints or None.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for an unsupported argument or value (naming the layer), and when
            called on an input that is not 3-D or whose channel count differs from the
            built one.

    Example:
        >>> layer = fastcnn.layers.Conv1D(8, 3, padding="causal")
        >>> layer.compute_output_shape((None, 100, 4))
        (None, 100, 8)
    """

    rank = 1

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, kernel_initializer, bias_initializer,
                         kernel_regularizer, bias_regularizer, activity_regularizer,
                         kernel_constraint, bias_constraint,
                         paddings=("valid", "same", "causal"), **kwargs)
        if groups != 1:
            raise ValueError("%s: groups other than 1 is not supported by fastcnn (Conv1D). "
                             "Received groups=%r" % (self.name, groups))

    def _in_channels(self):
        return self.kernel.shape[1]

    def compute_output_shape(self, input_shape):
        self._check_input(input_shape)
        steps = input_shape[1]
        if steps is not None:
            try:
                steps = ops.conv1d_output_length(steps, self.kernel_size[0], self.strides[0],
                                                 self.padding)
            except ValueError:
                raise ValueError(
                    "Computed output size would be negative in layer \"%s\": input shape %s "
                    "is too small for kernel_size %s with padding='%s'"
                    % (self.name, tuple(input_shape), self.kernel_size, self.padding)) from None
        return (input_shape[0], steps, self.filters)

    def forward_flops(self, input_shape, output_shape):
        n, steps, f = output_shape
        return 2 * n * steps * f * self.kernel_size[0] * input_shape[-1]

    def build(self, input_shape):
        self._add_weights(self.kernel_size + (input_shape[-1], self.filters))

    def _scratch_for(self, ws, x_shape):
        size = ws.get("scratch_floats")
        if size is None:
            size = ws["scratch_floats"] = ops.conv1d_workspace_size(
                x_shape, self.kernel.shape, self.strides[0], self.padding)
        return self._scratch(ws, size)

    def _forward(self, x, ws, training, return_logits):
        out = ws.get("out")
        if out is None:
            out = ws.buf("out", self.compute_output_shape(x.shape))
        z = ops.conv1d(x, self.kernel.value, self.bias.value if self.use_bias else None,
                       strides=self.strides[0], padding=self.padding,
                       activation=self._kernel_activation(), out=out,
                       workspace=self._scratch_for(ws, x.shape))
        return self._finish(z, ws, return_logits)

    def _backward(self, dy, ws, need_input_grad):
        dz = self._activation_backward(dy, ws)
        x = ws["x"]
        dx, _, _ = ops.conv1d_backward(
            dz, x, self.kernel.value, strides=self.strides[0], padding=self.padding,
            need_input_grad=need_input_grad, use_bias=self.use_bias,
            dx=ws.buf("dx", x.shape) if need_input_grad else None,
            dkernel=self._grad(self.kernel),
            dbias=self._grad(self.bias) if self.use_bias else None,
            workspace=self._scratch_for(ws, x.shape))
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(data_format=self.data_format, dilation_rate=[1], groups=1,
                 activation=self.activation, use_bias=self.use_bias, **_weights_config(self))
        return c
