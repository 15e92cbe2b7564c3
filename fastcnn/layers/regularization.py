"""SpatialDropout2D: Keras 3's channel-wise dropout (csrc/tensor_ops.c mask kernel)."""
from .. import ops
from ..ops._validation import channels_last
from .core import Dropout

__all__ = ["SpatialDropout2D"]


class SpatialDropout2D(Dropout):
    """Drop whole feature maps: each sample's channel is zeroed with probability ``rate``
    while training and the kept ones are scaled by ``1 / (1 - rate)`` (Keras 3's
    ``SpatialDropout2D``, NHWC). The identity at inference.

    Masks come from the layer seed and a call counter, as ``Dropout``'s: reproducible at
    any thread count, and saved/restored with the model (``extra_state``).

    Args:
        rate: fraction of the channels to drop, in [0, 1].
        data_format: ``None`` or ``"channels_last"`` only.
        seed: int seed of the masks; ``None`` draws one from fastcnn's generator.
        name: the layer name.
        dtype: float32 only.

    Raises:
        ValueError: a rate outside [0, 1], channels_first, an input that is not 4-D.
    """

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)
        self.data_format = channels_last(data_format, self.name)

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, ndim=4)
        return tuple(input_shape)

    def _drop(self, x, ws):
        return ops.spatial_dropout(x, self.rate, self._next_seed(), out=ws.buf("y", x.shape),
                                   mask=ws.buf("mask", (x.shape[0], x.shape[-1]),
                                               dtype="uint8"))

    def _drop_backward(self, dy, ws):
        return ops.spatial_dropout_backward(dy, ws["mask"], self.rate,
                                            out=ws.buf("dx", dy.shape))

    def get_config(self):
        # exactly Keras 3's keys (its SpatialDropout config has no `trainable`)
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": "float32",
                "data_format": self.data_format}
