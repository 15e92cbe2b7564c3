"""Pooling layers: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
GlobalMaxPooling2D (NHWC) and the 1-D MaxPooling1D, AveragePooling1D,
GlobalAveragePooling1D (NWC, run on the 2-D kernels through (N, 1, L, C) views)."""
from .. import ops
from ..ops._validation import conv_output_size
from ..ops._validation import channels_last, int_tuple, padding_mode
from .base import Layer
from ._shapes import conv_output_shape

__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "MaxPool2D",
           "AvgPool2D", "AveragePool2D", "GlobalAvgPool2D", "GlobalMaxPooling2D",
           "GlobalMaxPool2D", "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D",
           "GlobalAveragePooling1D", "GlobalAvgPool1D"]


class _Pooling2D(Layer):
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int_tuple(pool_size, "pool_size", self.name)
        self.strides = (self.pool_size if strides is None
                        else int_tuple(strides, "strides", self.name))
        self.padding = padding_mode(padding, self.name)
        self.data_format = channels_last(data_format, self.name)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        oh, ow = conv_output_shape(self, input_shape, self.pool_size, self.strides,
                                   self.padding, "pool_size")
        return (input_shape[0], oh, ow, input_shape[3])

    def _out_shape(self, x):
        oh = conv_output_size(x.shape[1], self.pool_size[0], self.strides[0], self.padding)[0]
        ow = conv_output_size(x.shape[2], self.pool_size[1], self.strides[1], self.padding)[0]
        return (x.shape[0], oh, ow, x.shape[3])

    def get_config(self):
        c = super().get_config()
        c.update(pool_size=list(self.pool_size), strides=list(self.strides),
                 padding=self.padding, data_format=self.data_format)
        return c


class MaxPooling2D(_Pooling2D):
    """Max over windows; backward routes each gradient to the window's first maximum.

    After a ReLU-activated layer the model fuses ReLU's backward into this layer's
    (``backward(..., fused_relu=True)``): a window passes its gradient only if its max > 0.

    Args:
        pool_size: int or ``(ph, pw)``, default ``(2, 2)``.
        strides: int or ``(sh, sw)``; ``None`` (default) means ``pool_size``.
        padding: ``"valid"`` or ``"same"``.
        data_format: ``None`` or ``"channels_last"`` (NHWC); ``"channels_first"`` is refused.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: for a bad argument, a non-4-D input, or a ``"valid"`` window larger than
            the input.

    Example:
        >>> pool = fastcnn.layers.MaxPooling2D()
        >>> pool.compute_output_shape((None, 13, 13, 64))
        (None, 6, 6, 64)
    """

    fuses_relu_backward = True

    def _forward(self, x, ws, training, return_logits):
        out = ws.get("out")
        if out is None:
            out = ws.buf("out", self._out_shape(x))
        if not training:
            return ops.max_pool2d(x, self.pool_size, self.strides, self.padding, out=out)
        y, idx = ops.max_pool2d(x, self.pool_size, self.strides, self.padding,
                                return_indices=True, out=out, indices=ws.get("indices"))
        ws["indices"] = idx
        ws["y"] = y
        return y

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        return ops.max_pool2d_backward(dy, ws["indices"], x.shape, dx=ws.buf("dx", x.shape),
                                       relu_output=ws["y"] if ws.get("fused_relu") else None)


class AveragePooling2D(_Pooling2D):
    """Mean over windows (``same``: over the non-padding elements, as Keras)."""

    def _forward(self, x, ws, training, return_logits):
        out = ws.get("out")
        if out is None:
            out = ws.buf("out", self._out_shape(x))
        return ops.avg_pool2d(x, self.pool_size, self.strides, self.padding, out=out)

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        return ops.avg_pool2d_backward(dy, x.shape, self.pool_size, self.strides, self.padding,
                                       dx=ws.buf("dx", x.shape))


class _GlobalPooling(Layer):
    """(N, *spatial, C) -> (N, C) or, with ``keepdims``, (N, 1, ..., 1, C): the shared
    arguments of the global pools over ``rank`` spatial axes."""

    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = channels_last(data_format, self.name)
        self.keepdims = bool(keepdims)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=self.rank + 2)
        if self.keepdims:
            return (input_shape[0],) + (1,) * self.rank + (input_shape[-1],)
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        c = super().get_config()
        c.update(data_format=self.data_format, keepdims=self.keepdims)
        return c


class GlobalAveragePooling2D(_GlobalPooling):
    """(N, H, W, C) -> (N, C) mean over H and W (``keepdims=True``: (N, 1, 1, C))."""

    def _forward(self, x, ws, training, return_logits):
        y = ops.global_avg_pool2d(x, out=ws.buf("out", (x.shape[0], x.shape[3])))
        return y.reshape(x.shape[0], 1, 1, x.shape[3]) if self.keepdims else y

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        dy = dy.reshape(x.shape[0], x.shape[3])
        return ops.global_avg_pool2d_backward(dy, x.shape, dx=ws.buf("dx", x.shape))


class GlobalMaxPooling2D(_GlobalPooling):
    """(N, H, W, C) -> (N, C): the max over H and W (``keepdims=True``: (N, 1, 1, C)).

    The backward splits each channel's gradient equally between the positions that hold
    its maximum, as JAX and TensorFlow differentiate a max.

    Args:
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        keepdims: keep the spatial axes as size 1.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: for a bad argument or a non-4-D input.

    Example:
        >>> fastcnn.layers.GlobalMaxPooling2D().compute_output_shape((None, 7, 7, 64))
        (None, 64)
    """

    def _forward(self, x, ws, training, return_logits):
        y = ops.global_max_pool2d(x, out=ws.buf("out", (x.shape[0], x.shape[3])))
        ws["y"] = y
        return y.reshape(x.shape[0], 1, 1, x.shape[3]) if self.keepdims else y

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        dy = dy.reshape(x.shape[0], x.shape[3])
        return ops.global_max_pool2d_backward(dy, x, ws["y"], dx=ws.buf("dx", x.shape))


class _Pooling1D(Layer):
    """A 1-D pooling layer run as the 2-D one on (N, 1, L, C) views with pool (1, p)."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int_tuple(pool_size, "pool_size", self.name, n=1)
        self.strides = (self.pool_size if strides is None
                        else int_tuple(strides, "strides", self.name, n=1))
        self.padding = padding_mode(padding, self.name)
        self.data_format = channels_last(data_format, self.name)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=3)
        steps = input_shape[1]
        if steps is not None:
            steps = conv_output_shape(self, (input_shape[0], 1, steps, input_shape[2]),
                                      (1,) + self.pool_size, (1,) + self.strides,
                                      self.padding, "pool_size")[1]
        return (input_shape[0], steps, input_shape[2])

    def _args2d(self):
        return (1,) + self.pool_size, (1,) + self.strides, self.padding

    def get_config(self):
        c = super().get_config()
        c.update(pool_size=list(self.pool_size), padding=self.padding,
                 strides=list(self.strides), data_format=self.data_format)
        return c


class MaxPooling1D(_Pooling1D):
    """Max over windows of (batch, steps, channels) sequences (Keras 3's ``MaxPooling1D``);
    the backward routes each gradient to the window's first maximum.

    Args:
        pool_size: int or 1-tuple, default 2.
        strides: int or 1-tuple; ``None`` (default) means ``pool_size``.
        padding: ``"valid"`` or ``"same"``.
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: for a bad argument, a non-3-D input, or a ``"valid"`` window longer
            than the input.

    Example:
        >>> fastcnn.layers.MaxPooling1D(3).compute_output_shape((None, 10, 4))
        (None, 3, 4)
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def _forward(self, x, ws, training, return_logits):
        x4 = x[:, None]
        out = ws.buf("out", self.compute_output_shape(x.shape))
        if not training:
            ops.max_pool2d(x4, *self._args2d(), out=out[:, None])
            return out
        _, idx = ops.max_pool2d(x4, *self._args2d(), return_indices=True, out=out[:, None],
                                indices=ws.get("indices"))
        ws["indices"] = idx
        return out

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        dx = ws.buf("dx", x.shape)
        ops.max_pool2d_backward(dy[:, None], ws["indices"], (x.shape[0], 1) + x.shape[1:],
                                dx=dx[:, None])
        return dx


class AveragePooling1D(_Pooling1D):
    """Mean over windows of (batch, steps, channels) sequences (Keras 3's
    ``AveragePooling1D``; ``"same"``: over the non-padding steps, as Keras).

    Args:
        pool_size: int or 1-tuple (required, as in Keras).
        strides: int or 1-tuple; ``None`` (default) means ``pool_size``.
        padding: ``"valid"`` or ``"same"``.
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: for a bad argument, a non-3-D input, or a ``"valid"`` window longer
            than the input.

    Example:
        >>> fastcnn.layers.AveragePooling1D(2, padding="same").compute_output_shape(
        ...     (None, 9, 4))
        (None, 5, 4)
    """

    def _forward(self, x, ws, training, return_logits):
        out = ws.buf("out", self.compute_output_shape(x.shape))
        ops.avg_pool2d(x[:, None], *self._args2d(), out=out[:, None])
        return out

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        dx = ws.buf("dx", x.shape)
        ops.avg_pool2d_backward(dy[:, None], (x.shape[0], 1) + x.shape[1:], *self._args2d(),
                                dx=dx[:, None])
        return dx


class GlobalAveragePooling1D(_GlobalPooling):
    """(N, L, C) -> (N, C): the mean over the steps (``keepdims=True``: (N, 1, C)).

    Args:
        data_format: ``None`` or ``"channels_last"``; ``"channels_first"`` is refused.
        keepdims: keep the steps axis as size 1.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: for a bad argument or a non-3-D input.

    Example:
        >>> fastcnn.layers.GlobalAveragePooling1D().compute_output_shape((None, 10, 4))
        (None, 4)
    """

    rank = 1

    def _forward(self, x, ws, training, return_logits):
        y = ops.global_avg_pool2d(x[:, None], out=ws.buf("out", (x.shape[0], x.shape[2])))
        return y.reshape(x.shape[0], 1, x.shape[2]) if self.keepdims else y

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        x = ws["x"]
        dx = ws.buf("dx", x.shape)
        ops.global_avg_pool2d_backward(dy.reshape(x.shape[0], x.shape[2]),
                                       (x.shape[0], 1) + x.shape[1:], dx=dx[:, None])
        return dx


# Keras aliases
GlobalMaxPool2D = GlobalMaxPooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
MaxPool2D = MaxPooling2D
AvgPool2D = AveragePool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
