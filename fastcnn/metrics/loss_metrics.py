"""Loss-like metrics (Keras 3 regression, probabilistic and hinge metrics): the mean over
samples of a per-sample loss, weighted by sample_weight. They are minimised (direction
'down'), except CosineSimilarity."""
import numpy as np

from . import functions as F
from .base import Mean, MeanMetricWrapper, as_array, squeeze_or_expand_to_same_rank

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
           "MeanSquaredLogarithmicError", "RootMeanSquaredError", "CosineSimilarity",
           "LogCoshError", "BinaryCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy", "KLDivergence", "Poisson", "Hinge",
           "SquaredHinge", "CategoricalHinge"]


def _simple(cls_name, fn, default_name, doc):
    def __init__(self, name=default_name, dtype=None):
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    return type(cls_name, (MeanMetricWrapper,), {
        "__init__": __init__, "get_config": get_config, "_direction": "down",
        "from_config": classmethod(lambda cls, config: cls(**config)),
        "__doc__": "%s\n\n    Args:\n        name: default %r. dtype: None or 'float32'.\n"
                   % (doc, default_name), "__module__": __name__})


MeanSquaredError = _simple("MeanSquaredError", F.mean_squared_error, "mean_squared_error",
                           "Mean of per-sample mean((y_true - y_pred)^2).")
MeanAbsoluteError = _simple("MeanAbsoluteError", F.mean_absolute_error, "mean_absolute_error",
                            "Mean of per-sample ``mean(abs(y_true - y_pred))``.")
MeanAbsolutePercentageError = _simple(
    "MeanAbsolutePercentageError", F.mean_absolute_percentage_error,
    "mean_absolute_percentage_error", "Mean absolute percentage error (Keras' formula).")
MeanSquaredLogarithmicError = _simple(
    "MeanSquaredLogarithmicError", F.mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error", "Mean squared logarithmic error (Keras' formula).")
LogCoshError = _simple("LogCoshError", F.log_cosh, "logcosh",
                       "Mean of per-sample mean(log(cosh(y_pred - y_true))).")
KLDivergence = _simple("KLDivergence", F.kl_divergence, "kl_divergence",
                       "Mean Kullback-Leibler divergence between y_true and y_pred.")
Poisson = _simple("Poisson", F.poisson, "poisson", "Mean Poisson loss.")
Hinge = _simple("Hinge", F.hinge, "hinge", "Mean hinge loss (0/1 labels become -1/1).")
SquaredHinge = _simple("SquaredHinge", F.squared_hinge, "squared_hinge",
                       "Mean squared hinge loss (0/1 labels become -1/1).")
CategoricalHinge = _simple("CategoricalHinge", F.categorical_hinge, "categorical_hinge",
                           "Mean categorical hinge loss.")


class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean of (y_pred - y_true)^2 over all elements seen.

    Args:
        name: default 'root_mean_squared_error'. dtype: None or 'float32'.
    """

    _direction = "down"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the batch's squared errors (weighted)."""
        yp = as_array(y_pred, self.name, "y_pred")
        yt = as_array(y_true, self.name, "y_true")
        yt, yp = squeeze_or_expand_to_same_rank(yt, yp)
        super().update_state(np.square(yp.astype(np.float64) - yt), sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


class CosineSimilarity(MeanMetricWrapper):
    """Mean cosine similarity between y_true and y_pred along ``axis``.

    Args:
        name: default 'cosine_similarity'. dtype: None or 'float32'. axis: default -1.
    """

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(F.cosine_similarity, name=name, dtype=dtype, axis=axis)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary cross-entropy.

    Args:
        name: default 'binary_crossentropy'. dtype: None or 'float32'.
        from_logits: y_pred are logits. label_smoothing: in [0, 1].
    """

    _direction = "down"

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0):
        super().__init__(F.binary_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical cross-entropy (one-hot targets).

    Args:
        name: default 'categorical_crossentropy'. dtype: None or 'float32'.
        from_logits: y_pred are logits. label_smoothing: in [0, 1]. axis: default -1.
    """

    _direction = "down"

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False,
                 label_smoothing=0, axis=-1):
        super().__init__(F.categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean sparse categorical cross-entropy (integer labels).

    Args:
        name: default 'sparse_categorical_crossentropy'. dtype: None or 'float32'.
        from_logits: y_pred are logits. axis: default -1.
    """

    _direction = "down"

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 axis=-1):
        super().__init__(F.sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=from_logits, axis=axis)
        self.from_logits = from_logits
        self.axis = axis

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
                "axis": self.axis}
