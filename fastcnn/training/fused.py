"""Fused steps: several graph nodes run as one pass over memory (chosen by training.plan).

Each step reads the layers' public weights (``kernel``, ``bias``) and writes gradients into
``layer.grad_buffer(var)``, the same arrays the layers' own backward writes, so the optimizer
and the trainer cannot tell a fused step from the layers run one by one. A step keeps its own
buffers per input shape.
"""
import numpy as np

from .. import ops
from ..layers.base import WorkspaceCache

__all__ = ["ConvReluPool", "AddRelu", "BatchNormRelu", "ConvBatchNorm", "DepthwiseBatchNorm",
           "ConvBatchNormClippedRelu"]

class _Fused:
    """What every fused step keeps: its workspaces (one per input shape)."""

    def __init__(self):
        self._buf = WorkspaceCache(size=6)

    def arrays(self):
        return self._buf.arrays()

    def release(self):
        self._buf.release()


class ConvReluPool(_Fused):
    """Conv2D (+ bias) + ReLU + MaxPooling2D(pool == strides, 'valid') in one step.

    ``mode`` 'direct': one kernel (ops.conv2d_relu_max_pool2d), the conv output is never
    written. 'crop': the conv output is not a multiple of the pool, so the conv computes
    only the rows/columns the pool reads (pooled inside the Winograd output transform when
    its tiles cover them). The ReLU is the conv's own activation or a ReLU layer between.
    """

    def __init__(self, conv, pool, mode):
        self.conv, self.pool, self.mode = conv, pool, mode
        super().__init__()

    def _conv_shape(self, x):
        return ops.conv2d_output_shape(x.shape, self.conv.kernel.shape, self.conv.strides,
                                       self.conv.padding)

    def forward(self, x, training):
        conv, (ph, pw) = self.conv, self.pool.pool_size
        ws = self._buf.get(x.shape)
        ws["x"], ws["training"] = x, bool(training)
        n, oh, ow, f = self._conv_shape(x)
        shape = (n, oh // ph, ow // pw, f)
        bias = conv.bias.value if conv.use_bias else None
        out = ws.buf("pooled", shape)
        idx = ws.buf("indices", shape, np.int32)
        if self.mode == "direct":
            return ops.conv2d_relu_max_pool2d(x, conv.kernel.value, bias, conv.strides,
                                              conv.padding, (ph, pw), out=out, indices=idx)[0]
        crop = (shape[1] * ph, shape[2] * pw)
        ws["crop_shape"] = (n,) + crop + (f,)
        fused = ws.get("winograd_pool")
        if fused is None:  # per input shape: the Winograd tile choice depends on the batch
            fused = ws["winograd_pool"] = (
                (ph, pw) == (2, 2) and conv.strides == (1, 1)
                and ops.conv2d_winograd_relu_max_pool2d_applies(
                    x.shape, conv.kernel.shape, conv.padding, crop))
        if fused:  # the conv output never leaves the Winograd output transform
            return ops.conv2d_winograd_relu_max_pool2d(
                x, conv.kernel.value, bias, conv.padding, crop, out=out, indices=idx,
                workspace=self.conv.scratch(ws, x.shape, crop))[0]
        z = ops.conv2d(x, conv.kernel.value, bias, strides=conv.strides, padding=conv.padding,
                       activation="relu", out=ws.buf("crop_z", ws["crop_shape"]),
                       workspace=self.conv.scratch(ws, x.shape, crop), output_size=crop)
        if not training:
            return ops.max_pool2d(z, (ph, pw), out=out)
        return ops.max_pool2d(z, (ph, pw), return_indices=True, out=out, indices=idx)[0]

    def backward(self, dy, need_input_grad):
        ws = self._buf.last
        if ws is None or not ws.get("training"):
            raise RuntimeError("%s: backward called before forward(training=True)"
                               % self.conv.name)
        conv, x = self.conv, ws["x"]
        y, idx = ws["pooled"], ws["indices"]
        dkernel = conv.grad_buffer(conv.kernel)
        dbias = conv.grad_buffer(conv.bias) if conv.use_bias else None
        if self.mode == "direct" and not need_input_grad:  # kernel and bias gradients only
            ops.conv2d_relu_max_pool2d_backward(
                dy, idx, y, x, conv.kernel.value, conv.strides, conv.padding,
                self.pool.pool_size, use_bias=conv.use_bias, dkernel=dkernel, dbias=dbias)
            return None
        # the conv output's gradient (ReLU's mask applied by the pool's scatter)
        z_shape = ws["crop_shape"] if self.mode == "crop" else self._conv_shape(x)
        crop = z_shape[1:3] if self.mode == "crop" else None
        dz = ops.max_pool2d_backward(dy, idx, z_shape, dx=ws.buf("dz", z_shape), relu_output=y)
        dx, _, _ = ops.conv2d_backward(
            dz, x, conv.kernel.value, strides=conv.strides, padding=conv.padding,
            need_input_grad=need_input_grad, use_bias=conv.use_bias,
            dx=ws.buf("dx", x.shape) if need_input_grad else None, dkernel=dkernel,
            dbias=dbias, workspace=self.conv.scratch(ws, x.shape, crop), output_size=crop)
        return dx


class AddRelu(_Fused):
    """``relu(a + b + ...)`` (a residual Add then ReLU) in one pass; backward masks dy once
    and hands the same gradient to every input."""

    def __init__(self, add, relu):
        self.add, self.relu = add, relu
        super().__init__()

    def forward(self, xs, training):
        ws = self._buf.get(tuple(a.shape for a in xs))
        y = ops.add_relu(xs, out=ws.buf("y", xs[0].shape))
        ws["y"] = y
        return y

    def backward(self, dy, need):
        ws = self._buf.last
        g = ops.relu_backward(dy, ws["y"], out=ws.buf("dz", dy.shape))
        return [g if n else None for n in need]


def _clip_in_place(y, relu_max):
    """A clipped ReLU (``max_value=relu_max``) over ``y`` with the activation kernel the
    ReLU layer runs, so the bits are the unfused ones."""
    return ops.activation(y, "relu", out=y, max_value=relu_max)


class BatchNormRelu(_Fused):
    """BatchNormalization + ReLU: the ReLU inside the normalise pass, its mask inside batch
    norm's backward passes (ops.batch_norm_forward(relu=True) / relu_output=): two passes
    over the activation fewer per step, the same bits. ``relu_max``: a clipped ReLU
    (e.g. ReLU6: ``ReLU(max_value=6)``), fused the same way."""

    def __init__(self, bn, relu_max=None):
        self.bn, self.relu_max = bn, relu_max
        super().__init__()

    def forward(self, x, training):
        ws = self._buf.get(x.shape)
        y, ws["cache"] = self.bn.normalize(x, training, ws.buf("y", x.shape), relu=True,
                                           relu_max=self.relu_max)
        ws["y"] = y
        return y

    def backward(self, dy, need_input_grad):
        ws = self._buf.last
        dx = self.bn.normalize_backward(dy, ws["cache"], ws.buf("dx", dy.shape),
                                        relu_output=ws["y"], relu_max=self.relu_max)
        return dx if need_input_grad else None


class ConvBatchNorm(_Fused):
    """Conv2D (linear) + BatchNormalization [+ ReLU].

    Training: the conv's own forward/backward (its call site ``slot``), then batch norm
    with the ReLU fused as in BatchNormRelu. Inference: batch norm folded into the conv
    (kernel * gamma / sqrt(var + eps) per filter, the bias shifted to match) and the ReLU
    into the conv's epilogue: one conv pass, no batch-norm pass."""

    relu_max = None  # a plain ReLU (ConvBatchNormClippedRelu: a clipped one)

    def __init__(self, conv, bn, relu, slot):
        self.conv, self.bn, self.relu, self.slot = conv, bn, relu, slot
        super().__init__()

    def _epilogue(self):
        """The activation the inference conv call applies itself."""
        return "relu" if self.relu and self.relu_max is None else None

    def _finish(self, y):
        """The inference output after the conv call: clipped when the ReLU has a cap."""
        return _clip_in_place(y, self.relu_max) if self.relu_max is not None else y

    def forward(self, x, training):
        conv, bn = self.conv, self.bn
        ws = self._buf.get(x.shape)
        ws["training"] = bool(training)
        if not training:
            inv_std = 1.0 / np.sqrt(bn.moving_variance.value.astype(np.float64) + bn.epsilon)
            scale = bn.gamma_array() * inv_std
            bias = conv.bias.value if conv.use_bias else 0.0
            kernel = ws.buf("folded_kernel", conv.kernel.shape)
            np.multiply(conv.kernel.value, scale, out=kernel, casting="unsafe")
            folded_bias = ws.buf("folded_bias", (conv.filters,))
            np.copyto(folded_bias, (bias - bn.moving_mean.value) * scale + bn.beta_array(),
                      casting="unsafe")
            shape = ops.conv2d_output_shape(x.shape, kernel.shape, conv.strides, conv.padding)
            return self._finish(ops.conv2d(x, kernel, folded_bias, conv.strides, conv.padding,
                                           self._epilogue(), out=ws.buf("y", shape),
                                           workspace=conv.scratch(ws, x.shape)))
        z = conv.forward(x, True, False, self.slot)
        y, ws["cache"] = bn.normalize(z, True, ws.buf("y", z.shape), relu=self.relu,
                                      relu_max=self.relu_max)
        ws["y"] = y
        return y

    def backward(self, dy, need_input_grad):
        ws = self._buf.last
        if ws is None or not ws.get("training"):
            raise RuntimeError("%s: backward called before forward(training=True)"
                               % self.conv.name)
        dz = self.bn.normalize_backward(dy, ws["cache"], ws.buf("dz", dy.shape),
                                        relu_output=ws["y"] if self.relu else None,
                                        relu_max=self.relu_max)
        return self.conv.backward(dz, need_input_grad, slot=self.slot)


class ConvBatchNormClippedRelu(ConvBatchNorm):
    """Conv2D (linear) + BatchNormalization + a clipped ReLU (``ReLU(max_value=m)``, e.g.
    ReLU6): as ConvBatchNorm, the clip inside batch norm's passes while training; at
    inference the conv runs batch norm folded and the clip follows in place. A class of
    its own so that tables keyed on ConvBatchNorm (lean inference) never take it for a
    plain ReLU."""

    def __init__(self, conv, bn, slot, relu_max):
        super().__init__(conv, bn, True, slot)
        self.relu_max = relu_max


class DepthwiseBatchNorm(ConvBatchNorm):
    """DepthwiseConv2D (linear) + BatchNormalization [+ ReLU].

    Training runs as ConvBatchNorm (the layer's own passes, then batch norm with the ReLU
    fused). Inference folds batch norm into the depthwise kernel (output channel c*M + m
    scales kernel[..., c, m]) and the ReLU into its epilogue: one depthwise pass (a
    clipped ReLU, ``relu_max``, follows in place)."""

    def __init__(self, conv, bn, relu, slot, relu_max=None):
        super().__init__(conv, bn, relu, slot)
        self.relu_max = relu_max

    def forward(self, x, training):
        if training:
            return super().forward(x, training)
        conv, bn = self.conv, self.bn
        ws = self._buf.get(x.shape)
        ws["training"] = False
        inv_std = 1.0 / np.sqrt(bn.moving_variance.value.astype(np.float64) + bn.epsilon)
        scale = bn.gamma_array() * inv_std
        bias = conv.bias.value if conv.use_bias else 0.0
        kh, kw, c, m = conv.kernel.shape
        kernel = ws.buf("folded_kernel", (kh, kw, c, m))
        np.multiply(conv.kernel.value, scale.reshape(c, m), out=kernel, casting="unsafe")
        folded_bias = ws.buf("folded_bias", (c * m,))
        np.copyto(folded_bias, (bias - bn.moving_mean.value) * scale + bn.beta_array(),
                  casting="unsafe")
        shape = ops.depthwise_conv2d_output_shape(x.shape, kernel.shape, conv.strides,
                                                  conv.padding, conv.dilation_rate)
        return self._finish(ops.depthwise_conv2d(x, kernel, folded_bias, conv.strides,
                                                 conv.padding, conv.dilation_rate,
                                                 self._epilogue(), out=ws.buf("y", shape)))
