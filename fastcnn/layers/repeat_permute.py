"""Permute and RepeatVector (Keras 3 reshaping layers) on C copy kernels
(csrc/tensor_ops.c): each backward is again a copy (the inverse permutation) or an ordered
sum over the repeats."""
import numbers

import numpy as np

from .. import ops
from .base import Layer

__all__ = ["Permute", "RepeatVector"]


class Permute(Layer):
    """Permute the non-batch axes of each sample (Keras 3's ``Permute``).

    Args:
        dims: a tuple of the axis indices 1..rank-1 in their new order, e.g. ``(2, 1)``
            swaps the two axes of a 3-D batch.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: dims that are not a permutation of 1..len(dims), or an input whose
            rank is not ``len(dims) + 1``.
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(dims)
        except TypeError:
            raise ValueError("%s: invalid permutation argument `dims` for Permute Layer: "
                             "expected a tuple of ints, received dims=%r"
                             % (self.name, dims)) from None
        if any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in dims) \
                or sorted(dims) != list(range(1, len(dims) + 1)) or len(dims) > 7:
            raise ValueError("%s: invalid permutation argument `dims` for Permute Layer. The "
                             "set of indices in `dims` must be consecutive and start from 1 "
                             "(at most 7 axes). Received dims=%r" % (self.name, dims))
        self.dims = tuple(int(d) for d in dims)
        self._perm = (0,) + self.dims
        self._inverse = tuple(int(k) for k in np.argsort(self._perm))
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=len(self.dims) + 1)
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def _forward(self, x, ws, training, return_logits):
        return ops.permute(x, self._perm,
                           out=ws.buf("y", tuple(x.shape[k] for k in self._perm)))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        return ops.permute(dy, self._inverse, out=ws.buf("dx", ws["x"].shape))

    def get_config(self):
        c = super().get_config()
        c["dims"] = self.dims
        return c


class RepeatVector(Layer):
    """Repeat each 1-D sample ``n`` times: ``(batch, d) -> (batch, n, d)`` (Keras 3's
    ``RepeatVector``).

    Args:
        n: the repetition count, a positive int.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: ``n`` not a positive int, an input that is not 2-D.
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
            raise ValueError("%s: expected an integer value for `n` >= 1. Received: n=%r"
                             % (self.name, n))
        self.n = int(n)
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=2)
        return (input_shape[0], self.n, input_shape[1])

    def _forward(self, x, ws, training, return_logits):
        return ops.repeat_vector(x, self.n, out=ws.buf("y", (x.shape[0], self.n, x.shape[1])))

    def _backward(self, dy, ws, need_input_grad):
        if not need_input_grad:
            return None
        return ops.repeat_vector_backward(dy, out=ws.buf("dx", ws["x"].shape))

    def get_config(self):
        c = super().get_config()
        c["n"] = self.n
        return c
