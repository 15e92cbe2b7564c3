"""Conv2D (NHWC, kernel (kh, kw, in, filters), Keras 3 arguments and output shapes)."""
import numpy as np

from .. import initializers, ops
from ..ops._validation import conv_output_size
from ._shapes import conv_output_shape
from ..ops._validation import channels_last, int_tuple, padding_mode, positive_int, unsupported
from .base import Layer
from .core import _Activated, get_activation

__all__ = ["Conv2D"]


class Conv2D(_Activated, Layer):
    """2-D convolution; ``activation='relu'`` is fused into the kernel."""

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
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
        unsupported(self.name, kernel_regularizer=kernel_regularizer,
                     bias_regularizer=bias_regularizer,
                     activity_regularizer=activity_regularizer,
                     kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
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

    def build(self, input_shape):
        self.kernel = self.add_weight(self.kernel_size + (input_shape[-1], self.filters),
                                      self.kernel_initializer, "kernel")
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, "bias")
        self.built = True

    def _out_shape(self, x):
        oh = conv_output_size(x.shape[1], self.kernel_size[0], self.strides[0], self.padding)[0]
        ow = conv_output_size(x.shape[2], self.kernel_size[1], self.strides[1], self.padding)[0]
        return (x.shape[0], oh, ow, self.filters)

    def _scratch(self, x, ws, output_size=None):
        """The kernels' scratch buffer for this input shape (allocated once, grown if an
        output_size (crop) needs more; may be None)."""
        key = ("scratch_floats", output_size)
        need = ws.get(key)
        if need is None:
            need = ws[key] = ops.conv2d_workspace_size(x.shape, self.kernel.shape,
                                                       self.strides, self.padding,
                                                       output_size=output_size)
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
                       workspace=self._scratch(x, ws))
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
            workspace=self._scratch(x, ws))
        return dx

    # ------------------------------------------------ fused Conv2D(relu) + MaxPooling2D
    def _pool_fusion(self, pool, input_shape):
        """How this layer and the MaxPooling2D `pool` after it can run together for inputs
        of `input_shape` (batch axis included): 'direct' (one kernel,
        ops.conv2d_relu_max_pool2d: the conv output is never written), 'crop' (the conv
        computes only the rows/columns the pool reads: its output size is not a multiple
        of the pool) or None (run them one after the other)."""
        from .pooling import MaxPooling2D
        if (self.activation != "relu" or not isinstance(pool, MaxPooling2D)
                or pool.strides != pool.pool_size or pool.padding != "valid"
                or not self.built or len(input_shape) != 4):
            return None
        shape = (1,) + tuple(input_shape[1:])
        if ops.conv2d_relu_max_pool2d_applies(shape, self.kernel.shape, self.strides,
                                              self.padding, pool.pool_size):
            return "direct"
        _, oh, ow, _ = ops.conv2d_output_shape(shape, self.kernel.shape, self.strides,
                                               self.padding)
        (ph, pw) = pool.pool_size
        if oh >= ph and ow >= pw and (oh % ph or ow % pw):
            return "crop"
        return None

    def forward_pooled(self, x, pool, training=False, mode="direct"):
        """This layer then `pool` on x, run together (mode from _pool_fusion). Backward
        with backward_pooled."""
        ws = self._workspace(x.shape)
        ws["x"] = x
        ws["training"] = bool(training)
        ws["pooled_mode"] = mode
        ws["pooled_pool"] = pool
        self._ws = ws
        n, oh, ow, f = self._out_shape(x)
        ph, pw = pool.pool_size
        shape = (n, oh // ph, ow // pw, f)
        bias = self.bias.value if self.use_bias else None
        if mode == "direct":
            y, _ = ops.conv2d_relu_max_pool2d(
                x, self.kernel.value, bias, self.strides, self.padding, pool.pool_size,
                out=ws.buf("pooled", shape), indices=ws.buf("pooled_indices", shape, np.int32))
            return y
        crop = (shape[1] * ph, shape[2] * pw)
        ws["crop_shape"] = (n,) + crop + (f,)
        fused = ws.get("crop_fused")
        if fused is None:  # per input shape: the Winograd tile choice depends on the batch
            fused = ws["crop_fused"] = (
                (ph, pw) == (2, 2) and self.strides == (1, 1)
                and ops.conv2d_winograd_relu_max_pool2d_applies(
                    x.shape, self.kernel.shape, self.padding, crop))
        if fused:  # the conv output never leaves the Winograd output transform
            y, _ = ops.conv2d_winograd_relu_max_pool2d(
                x, self.kernel.value, bias, self.padding, crop, out=ws.buf("pooled", shape),
                indices=ws.buf("pooled_indices", shape, np.int32),
                workspace=self._scratch(x, ws, crop))
            return y
        z = ops.conv2d(x, self.kernel.value, bias, strides=self.strides, padding=self.padding,
                       activation="relu", out=ws.buf("crop_z", ws["crop_shape"]),
                       workspace=self._scratch(x, ws, crop), output_size=crop)
        if not training:
            return ops.max_pool2d(z, pool.pool_size, out=ws.buf("pooled", shape))
        y, _ = ops.max_pool2d(z, pool.pool_size, return_indices=True,
                              out=ws.buf("pooled", shape),
                              indices=ws.buf("pooled_indices", shape, np.int32))
        return y

    def backward_pooled(self, dy, need_input_grad=True):
        """Gradients of forward_pooled(training=True) given dy, the pooled output's gradient."""
        ws = self._ws
        if ws is None or "pooled_pool" not in ws or not ws.get("training"):
            raise RuntimeError("%s.backward_pooled called before forward_pooled(training=True)"
                               % self.name)
        x, pool, mode = ws["x"], ws["pooled_pool"], ws["pooled_mode"]
        y, idx = ws["pooled"], ws["pooled_indices"]
        dkernel = self._grad(self.kernel)
        dbias = self._grad(self.bias) if self.use_bias else None
        if mode == "direct" and not need_input_grad:  # kernel and bias gradients only
            ops.conv2d_relu_max_pool2d_backward(
                dy, idx, y, x, self.kernel.value, self.strides, self.padding, pool.pool_size,
                use_bias=self.use_bias, dkernel=dkernel, dbias=dbias)
            return None
        # the conv output's gradient (ReLU's mask applied by the pool's scatter)
        z_shape = ws["crop_shape"] if mode == "crop" else self._out_shape(x)
        crop = z_shape[1:3] if mode == "crop" else None
        dz = ops.max_pool2d_backward(dy, idx, z_shape, dx=ws.buf("pooled_dz", z_shape),
                                     relu_output=y)
        dx, _, _ = ops.conv2d_backward(
            dz, x, self.kernel.value, strides=self.strides, padding=self.padding,
            need_input_grad=need_input_grad, use_bias=self.use_bias,
            dx=ws.buf("dx", x.shape) if need_input_grad else None, dkernel=dkernel,
            dbias=dbias, workspace=self._scratch(x, ws, crop),
            output_size=crop)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(filters=self.filters, kernel_size=list(self.kernel_size),
                 strides=list(self.strides), padding=self.padding, data_format=self.data_format,
                 dilation_rate=[1, 1], groups=1, activation=self.activation,
                 use_bias=self.use_bias,
                 kernel_initializer=initializers.serialize(self.kernel_initializer),
                 bias_initializer=initializers.serialize(self.bias_initializer),
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None)
        return c
