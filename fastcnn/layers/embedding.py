"""Embedding: Keras 3's lookup table, a C gather forward and an ordered scatter-add
backward (csrc/tensor_ops.c)."""
import numbers

import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..ops._validation import unsupported
from .base import Layer

__all__ = ["Embedding"]

# float32 batches carry the indices: above 2**24 not every integer is representable
_MAX_INPUT_DIM = 1 << 24


class Embedding(Layer):
    """Map integer indices to rows of a learned ``(input_dim, output_dim)`` table
    (Keras 3's ``Embedding``): ``(batch, ...) -> (batch, ..., output_dim)``.

    fastcnn feeds float32 batches: indices may be ints or floats holding integers; every
    index is checked to be an integer in ``[0, input_dim)`` (in C) and a bad one raises
    ValueError naming the layer. The table's gradient is dense, as in Keras, and summed
    in index order (bitwise identical at any thread count).

    Args:
        input_dim: vocabulary size (largest index + 1), at most 2**24.
        output_dim: size of each embedding vector.
        embeddings_initializer: default ``"uniform"`` (Keras' RandomUniform(-0.05, 0.05)).
        embeddings_regularizer: regularizer of the table.
        embeddings_constraint: constraint of the table.
        mask_zero: only ``False``: fastcnn has no masking.
        weights: optional initial weights ``[table]``.
        **kwargs: ``name``, ``trainable``, ``input_shape``, ``activity_regularizer``;
            ``input_length`` is ignored, as in Keras 3.

    Raises:
        ValueError: bad sizes, ``mask_zero=True``, LoRA or quantization arguments.
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, lora_rank=None, lora_alpha=None, quantization_config=None,
                 **kwargs):
        kwargs.pop("input_length", None)  # deprecated in Keras 3, which ignores it too
        super().__init__(**kwargs)
        for arg, val in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(val, bool) or not isinstance(val, numbers.Integral) or val <= 0:
                raise ValueError("%s: `%s` must be a positive integer. Received: %s=%r"
                                 % (self.name, arg, arg, val))
        if input_dim > _MAX_INPUT_DIM:
            raise ValueError("%s: `input_dim` must be at most 2**24 = %d (indices travel in "
                             "float32 batches). Received: input_dim=%r"
                             % (self.name, _MAX_INPUT_DIM, input_dim))
        if mask_zero:
            raise ValueError("%s: mask_zero=True is not supported: fastcnn has no masking"
                             % self.name)
        unsupported(self.name, lora_rank=lora_rank, lora_alpha=lora_alpha,
                    quantization_config=quantization_config)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = False
        self.embeddings = None
        self._initial_weights = weights

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, min_ndim=1)
        return tuple(input_shape) + (self.output_dim,)

    def build(self, input_shape):
        self.embeddings = self.add_weight((self.input_dim, self.output_dim),
                                          self.embeddings_initializer, "embeddings",
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def _forward(self, x, ws, training, return_logits):
        return ops.embedding_lookup(x, self.embeddings.value,
                                    out=ws.buf("y", x.shape + (self.output_dim,)),
                                    who="Embedding layer '%s'" % self.name)

    def _backward(self, dy, ws, need_input_grad):
        if self.embeddings.trainable:
            ops.embedding_backward(ws["x"], dy, self.input_dim,
                                   dtable=self._grad(self.embeddings),
                                   who="Embedding layer '%s'" % self.name)
        if not need_input_grad:
            return None
        dx = ws.buf("dx", ws["x"].shape)  # indices have no gradient
        dx.fill(0.0)
        return dx

    def get_config(self):
        c = super().get_config()
        c.update(input_dim=self.input_dim, output_dim=self.output_dim,
                 embeddings_initializer=initializers.serialize(self.embeddings_initializer),
                 embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
                 activity_regularizer=regularizers.serialize(self.activity_regularizer),
                 embeddings_constraint=constraints.serialize(self.embeddings_constraint),
                 mask_zero=False, quantization_config=None)
        return c
