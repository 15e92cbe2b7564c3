"""Activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax (Keras 3 semantics).

Each runs the C activation kernels of ``fastcnn.ops`` (one pass forward, one backward).
"""
import numbers

import numpy as np

from .. import constraints, initializers, ops, regularizers
from .base import Layer

__all__ = ["ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]


def _real(value, arg, who, minimum=None, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError("%s: %s must be a real number, got %s=%r" % (who, arg, arg, value))
    if minimum is not None and value < minimum:
        raise ValueError("%s: %s cannot be negative, got %s=%r" % (who, arg, arg, value))
    return value


class _Elementwise(Layer):
    """A layer that applies one elementwise activation of ``ops.activation``.

    Subclasses set ``_kernel`` (the activation's name) and return its parameters from
    ``_kernel_params``. The forward writes a buffer of its own (the input belongs to the
    layer before); the backward reads the output or the input, as the kernel needs.
    """

    _kernel = "linear"

    def _kernel_params(self):
        return {}

    def _forward(self, x, ws, training, return_logits):
        y = ops.activation(x, self._kernel, out=ws.buf("y", x.shape), **self._kernel_params())
        ws["y"] = y
        return y

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        p = self._kernel_params()
        src = ws["y"] if ops.activation_backward_uses_output(self._kernel, **p) else ws["x"]
        return ops.activation_backward(dy, src, self._kernel, out=ws.buf("dx", dy.shape), **p)


class ReLU(_Elementwise):
    """Keras 3's ``ReLU`` layer: ``activations.relu(x, negative_slope, max_value, threshold)``.

    With the defaults (plain ``max(x, 0)``), a following max-pool can take over its
    backward (the model's plan sets ``fused_relu``: it then passes ``dy`` through) and a
    Conv2D + ReLU + MaxPooling2D chain fuses; with any other argument it is a plain
    elementwise layer.

    Args:
        max_value: saturation value (``None``: none); must be >= 0.
        negative_slope: slope below the threshold; must be >= 0.
        threshold: values at or below it are not passed through; must be >= 0.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for a negative ``max_value``/``negative_slope``/``threshold`` (as Keras)
            or a non-real argument.
    """

    _kernel = "relu"

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _real(max_value, "max_value", self.name, 0.0, allow_none=True)
        self.negative_slope = _real(negative_slope, "negative_slope", self.name, 0.0)
        self.threshold = _real(threshold, "threshold", self.name, 0.0)
        self.built = True

    @property
    def fuses_relu_backward(self):
        """True only for the plain ReLU (no max_value, slope or threshold)."""
        return self.max_value is None and self.negative_slope == 0 and self.threshold == 0

    def _kernel_params(self):
        return {"negative_slope": self.negative_slope, "max_value": self.max_value,
                "threshold": self.threshold}

    def _forward(self, x, ws, training, return_logits):
        if not self.fuses_relu_backward:
            return super()._forward(x, ws, training, return_logits)
        y = ops.relu(x, out=ws.buf("out", x.shape))
        ws["y"] = y
        return y

    def _backward(self, dy, ws, need_input_grad):
        if not self.fuses_relu_backward:
            return super()._backward(dy, ws, need_input_grad)
        if not need_input_grad:
            return None
        if ws.get("fused_relu"):  # the max-pool after this layer already applied the mask
            return dy
        return ops.relu_backward(dy, ws["y"], out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c.update(max_value=self.max_value, negative_slope=self.negative_slope,
                 threshold=self.threshold)
        return c


class LeakyReLU(_Elementwise):
    """``x`` where ``x >= 0``, else ``negative_slope * x`` (Keras 3's ``LeakyReLU``).

    Args:
        negative_slope: slope of the negative part, >= 0 (default 0.3). Keras 2's name
            ``alpha`` is accepted too.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for a negative or non-real ``negative_slope``.
    """

    _kernel = "leaky_relu"

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2's argument name, still read by Keras 3
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        if negative_slope is None:
            raise ValueError("%s: the negative_slope value of a Leaky ReLU layer cannot be "
                             "None" % self.name)
        self.negative_slope = _real(negative_slope, "negative_slope", self.name, 0.0)
        self.built = True

    def _kernel_params(self):
        return {"negative_slope": self.negative_slope}

    def get_config(self):
        c = super().get_config()
        c["negative_slope"] = self.negative_slope
        return c


class ELU(_Elementwise):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (Keras 3's ``ELU``).

    Args:
        alpha: scale of the negative part (default 1.0).
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for a non-real ``alpha``.
    """

    _kernel = "elu"

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _real(alpha, "alpha", self.name)
        self.built = True

    def _kernel_params(self):
        return {"alpha": self.alpha}

    def get_config(self):
        c = super().get_config()
        c["alpha"] = self.alpha
        return c


class Softmax(Layer):
    """Softmax along ``axis`` (Keras 3's ``Softmax``), forward and backward in C.

    Args:
        axis: the axis to normalise (an int, or a one-element list/tuple).
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for several axes (not supported by fastcnn) or an axis out of range for
            the input. Keras' ``mask`` call argument is not supported (calling with it is a
            TypeError).
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        one = axis
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise ValueError("%s: softmax over several axes is not supported by fastcnn; "
                                 "got axis=%r" % (self.name, axis))
            one = axis[0]
        if isinstance(one, bool) or not isinstance(one, numbers.Integral):
            raise ValueError("%s: axis must be an integer, got axis=%r" % (self.name, axis))
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)  # as Keras
        self._axis = int(one)
        self.built = True

    def compute_output_shape(self, input_shape):
        nd = len(input_shape)
        if not -nd <= self._axis < nd or self._axis % nd == 0:
            self._incompatible("axis=%r must name a non-batch axis" % (self.axis,), input_shape)
        return tuple(input_shape)

    def _forward(self, x, ws, training, return_logits):
        y = ops.softmax_axis(x, self._axis, out=ws.buf("y", x.shape))
        ws["y"] = y
        return y

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        return ops.softmax_axis_backward(dy, ws["y"], self._axis, out=ws.buf("dx", dy.shape))

    def get_config(self):
        c = super().get_config()
        c["axis"] = self.axis
        return c


class PReLU(Layer):
    """Parametric ReLU: ``x`` where ``x > 0``, else ``alpha * x`` with a learned ``alpha``.

    ``alpha`` has the input's per-sample shape, with the ``shared_axes`` set to 1 (e.g.
    ``shared_axes=[1, 2]`` on NHWC images: one slope per channel), as in Keras 3. Forward,
    input gradient and alpha gradient run in C.

    Args:
        alpha_initializer: initializer of alpha (default ``"Zeros"``).
        alpha_regularizer: optional regularizer of alpha.
        alpha_constraint: optional constraint on alpha.
        shared_axes: axes (1-based, the batch axis is 0) along which alpha is shared.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``dtype`` (float32 only).

    Raises:
        ValueError: for a shared axis out of range or an unknown per-sample dimension.
    """

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            for a in axes:
                if isinstance(a, bool) or not isinstance(a, numbers.Integral) or a < 1:
                    raise ValueError("%s: shared_axes must be axes >= 1 (0 is the batch "
                                     "axis), got shared_axes=%r" % (self.name, shared_axes))
            self.shared_axes = [int(a) for a in axes]
        self.alpha = None

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, min_ndim=2)
        for a in self.shared_axes or ():
            if a >= len(input_shape):
                self._incompatible("shared_axes=%r is out of range" % (self.shared_axes,),
                                   input_shape)
        if self.built and tuple(input_shape[1:]) != self._sample_shape:
            self._incompatible("expected per-sample shape %s" % (self._sample_shape,),
                               input_shape)
        return tuple(input_shape)

    def build(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            self._incompatible("PReLU needs every non-batch dimension known", input_shape)
        self._sample_shape = tuple(int(d) for d in input_shape[1:])
        shape = list(self._sample_shape)
        for a in self.shared_axes or ():
            shape[a - 1] = 1
        self.alpha = self.add_weight(tuple(shape), self.alpha_initializer, "alpha",
                                     regularizer=self.alpha_regularizer,
                                     constraint=self.alpha_constraint)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        full = ws.buf("alpha_full", x.shape[1:])
        np.copyto(full, np.broadcast_to(self.alpha.value, x.shape[1:]))  # O(sample size)
        y = ops.prelu(x, full, out=ws.buf("y", x.shape))
        return y

    def _backward(self, dy, ws, need_input_grad):
        x = ws["x"]
        dx, dfull = ops.prelu_backward(dy, x, ws["alpha_full"], need_input_grad,
                                       dx=ws.buf("dx", x.shape) if need_input_grad else None,
                                       dalpha=ws.buf("dalpha_full", x.shape[1:]))
        grad = self._grad(self.alpha)
        if self.shared_axes:  # sum the per-position slopes' gradients over the shared axes
            np.sum(dfull, axis=tuple(a - 1 for a in self.shared_axes), keepdims=True, out=grad)
        else:
            np.copyto(grad, dfull)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(alpha_initializer=initializers.serialize(self.alpha_initializer),
                 alpha_regularizer=regularizers.serialize(self.alpha_regularizer),
                 alpha_constraint=constraints.serialize(self.alpha_constraint),
                 shared_axes=self.shared_axes)
        return c
