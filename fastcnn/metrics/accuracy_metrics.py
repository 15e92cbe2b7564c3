"""Accuracy metrics (Keras 3 ``keras.metrics.*Accuracy``): means of per-sample hits."""
from . import functions as F
from .base import MeanMetricWrapper, positive_int

__all__ = ["Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
           "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy"]


class _Wrapper(MeanMetricWrapper):
    """A MeanMetricWrapper whose config is its constructor's (not the function's)."""

    _fn = None

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Accuracy(_Wrapper):
    """How often y_pred equals y_true exactly.

    Args:
        name: default 'accuracy'. dtype: None or 'float32'.
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(F.accuracy, name=name, dtype=dtype)


class BinaryAccuracy(_Wrapper):
    """How often ``(y_pred > threshold)`` equals the 0/1 target, per element.

    Args:
        name: default 'binary_accuracy'. dtype: None or 'float32'.
        threshold: the decision threshold (default 0.5).
    """

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(F.binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


class CategoricalAccuracy(_Wrapper):
    """How often argmax(y_pred) equals argmax(y_true) (one-hot targets).

    Args:
        name: default 'categorical_accuracy'. dtype: None or 'float32'.
    """

    counts_from_loss = True  # the trainer may add the loss kernel's correct count instead

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(F.categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(_Wrapper):
    """How often argmax(y_pred) equals the integer label.

    Args:
        name: default 'sparse_categorical_accuracy'. dtype: None or 'float32'.
    """

    counts_from_loss = True

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(F.sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(_Wrapper):
    """How often the one-hot target's class is among the k highest scores.

    Args:
        k: how many top scores count (default 5, >= 1).
        name: default 'top_k_categorical_accuracy'. dtype: None or 'float32'.

    Raises:
        ValueError: k is not an integer >= 1.
    """

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        k = positive_int(k, "k", type(self).__name__)
        super().__init__(F.top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(_Wrapper):
    """How often the integer label is among the k highest scores.

    Args:
        k: how many top scores count (default 5, >= 1).
        name: default 'sparse_top_k_categorical_accuracy'. dtype: None or 'float32'.
        from_sorted_ids: y_pred holds class ids sorted by score instead of scores.

    Raises:
        ValueError: k is not an integer >= 1.
    """

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        k = positive_int(k, "k", type(self).__name__)
        super().__init__(F.sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k,
                         from_sorted_ids=bool(from_sorted_ids))
        self.k = k
        self.from_sorted_ids = bool(from_sorted_ids)

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype, "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config
