"""Merge layers (Keras 3 names): Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate, and their functional forms ``add([a, b])``, ``concatenate([a, b])``, ...

They take a list of inputs (``multi_input``); the elementwise ones need inputs of one shape
(no broadcasting), Concatenate needs shapes equal but on ``axis``. Data moves in C
(``ops.merge``, ``ops.concatenate``); backward hands each input its gradient, computing only
the ones the model needs.
"""
import numbers

from .. import ops
from .base import Layer, _shape_str

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate"]


def _describe(shapes, tensors=None):
    parts = []
    for i, s in enumerate(shapes):
        src = ""
        if tensors is not None and tensors[i]._keras_history is not None:
            src = ' from layer "%s"' % tensors[i]._keras_history[0].name
        parts.append("%s%s" % (_shape_str(s), src))
    return ", ".join(parts)


class _Merge(Layer):
    multi_input = True
    _op = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True
        self._sources = None

    def _symbolic_call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError('A merge layer should be called on a list of inputs. Layer "%s" '
                             "(%s) received a single tensor of shape %s"
                             % (self.name, type(self).__name__, _shape_str(inputs.shape)))
        self._sources = list(inputs)
        try:
            return super()._symbolic_call(inputs)
        finally:
            self._sources = None

    def _check_count(self, shapes):
        if not isinstance(shapes, list) or len(shapes) < 2:
            raise ValueError('Layer "%s" (%s) should be called on a list of at least 2 inputs. '
                             "Received: %d" % (self.name, type(self).__name__,
                                               len(shapes) if isinstance(shapes, list) else 1))

    def compute_output_shape(self, input_shape):
        self._check_count(input_shape)
        first = input_shape[0]
        for s in input_shape[1:]:
            if len(s) != len(first) or any(a is not None and b is not None and a != b
                                           for a, b in zip(s[1:], first[1:])):
                raise ValueError('Inputs of layer "%s" (%s) have incompatible shapes: %s '
                                 "(fastcnn's merge layers do not broadcast)"
                                 % (self.name, type(self).__name__,
                                    _describe(input_shape, self._sources)))
        return tuple(first)

    def _check_runtime(self, xs):
        shapes = [a.shape for a in xs]
        if len(xs) < 2 or any(s != shapes[0] for s in shapes):
            self.compute_output_shape([(None,) + s[1:] for s in shapes])
            raise ValueError('Layer "%s" (%s): inputs of different batch sizes %s'
                             % (self.name, type(self).__name__, [s[0] for s in shapes]))

    def _forward(self, xs, ws, training, return_logits):
        self._check_runtime(xs)
        y = ops.merge(self._op, xs, out=ws.buf("y", xs[0].shape))
        ws["y"] = y
        return y

    def _backward(self, dy, ws, need):
        xs = ws["x"]
        outs = [ws.buf(("dx", i), dy.shape) if n else None for i, n in enumerate(need)]
        return ops.merge_backward(self._op, dy, xs, ws["y"], need=need, outs=outs)


class Add(_Merge):
    """Elementwise sum of a list of inputs of one shape (summed left to right)."""
    _op = "add"

    def _backward(self, dy, ws, need):
        return [dy if n else None for n in need]  # d(sum)/dx_i = 1: every input gets dy


class Subtract(_Merge):
    """``inputs[0] - inputs[1]`` (exactly two inputs)."""
    _op = "subtract"

    def _check_count(self, shapes):
        if not isinstance(shapes, list) or len(shapes) != 2:
            raise ValueError('Layer "%s" (Subtract) should be called on a list of exactly 2 '
                             "inputs. Received: %d" % (self.name, len(shapes)
                                                        if isinstance(shapes, list) else 1))


class Multiply(_Merge):
    """Elementwise product of a list of inputs of one shape."""
    _op = "multiply"


class Average(_Merge):
    """Elementwise mean of a list of inputs of one shape (sum left to right, / count)."""
    _op = "average"


class Maximum(_Merge):
    """Elementwise maximum; the gradient goes to the first input holding the maximum."""
    _op = "maximum"


class Minimum(_Merge):
    """Elementwise minimum; the gradient goes to the first input holding the minimum."""
    _op = "minimum"


class Concatenate(_Merge):
    """Join a list of inputs along ``axis`` (default -1, the channels of NHWC)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError("%s: axis must be an int, got %r" % (self.name, axis))
        self.axis = int(axis)

    def _axis(self, ndim):
        a = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= a < ndim:
            raise ValueError('Layer "%s" (Concatenate): axis=%d is out of range for inputs of '
                             "rank %d (the batch axis 0 cannot be joined)"
                             % (self.name, self.axis, ndim))
        return a

    def compute_output_shape(self, input_shape):
        self._check_count(input_shape)
        rank = len(input_shape[0])
        a = self._axis(rank)
        ok = all(len(s) == rank for s in input_shape)
        for i in range(1, rank):
            if i == a or not ok:
                continue
            dims = {s[i] for s in input_shape if s[i] is not None}
            ok = len(dims) <= 1
        if not ok:
            raise ValueError('A Concatenate layer should be called on a list of inputs with '
                             'matching shapes except for the concatenation axis. Layer "%s" '
                             "(axis=%d) received: %s"
                             % (self.name, self.axis, _describe(input_shape, self._sources)))
        out = list(input_shape[0])
        out[a] = None if any(s[a] is None for s in input_shape) else sum(s[a]
                                                                          for s in input_shape)
        return tuple(out)

    def _forward(self, xs, ws, training, return_logits):
        shape = self.compute_output_shape([a.shape for a in xs])
        return ops.concatenate(xs, axis=self.axis, out=ws.buf("y", shape))

    def _backward(self, dy, ws, need):
        xs = ws["x"]
        outs = [ws.buf(("dx", i), a.shape) if n else None
                for i, (a, n) in enumerate(zip(xs, need))]
        return ops.concatenate_backward(dy, [a.shape for a in xs], axis=self.axis, need=need,
                                        outs=outs)

    def get_config(self):
        c = super().get_config()
        c["axis"] = self.axis
        return c


def _functional(cls, doc):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = doc
    return merge


add = _functional(Add, "Functional form of Add: ``add([a, b], name=None)``.")
subtract = _functional(Subtract, "Functional form of Subtract: ``subtract([a, b])``.")
multiply = _functional(Multiply, "Functional form of Multiply: ``multiply([a, b, ...])``.")
average = _functional(Average, "Functional form of Average: ``average([a, b, ...])``.")
maximum = _functional(Maximum, "Functional form of Maximum: ``maximum([a, b, ...])``.")
minimum = _functional(Minimum, "Functional form of Minimum: ``minimum([a, b, ...])``.")


def concatenate(inputs, axis=-1, **kwargs):
    """Functional form of Concatenate: ``concatenate([a, b], axis=-1)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
