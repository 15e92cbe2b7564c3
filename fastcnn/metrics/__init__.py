"""Metrics with Keras 3 names, arguments, defaults and numerics (``keras.metrics``).

Stateful metrics (``update_state(y_true, y_pred, sample_weight=None)`` / ``result()`` /
``reset_state()``) stream over batches and are exact at the end: their state is float64
counts and sums (Keras keeps float32), so results agree with Keras to float32 rounding and
unweighted counts are exact. The counting of threshold metrics (AUC, Precision, Recall,
TruePositives...) and top-k accuracy runs in C (``fastcnn.ops.metrics``).

``compile(metrics=[...])`` accepts these classes and instances, the names below, metric
functions, and ``'accuracy'`` / ``'acc'``, which resolve as Keras does from the target and
output shapes: one output unit -> BinaryAccuracy; integer labels (rank lower than the
output's, or a last axis of 1) -> SparseCategoricalAccuracy; else CategoricalAccuracy.
"""
import inspect

from . import functions
from .accuracy_metrics import (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                               SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy,
                               TopKCategoricalAccuracy)
from .base import Mean, MeanMetricWrapper, Metric, Sum, _snake
from .confusion_metrics import (AUC, FalseNegatives, FalsePositives, Precision, Recall,
                                TrueNegatives, TruePositives)
from .fscore_iou import (BinaryIoU, F1Score, FBetaScore, IoU, MeanIoU, OneHotIoU,
                         OneHotMeanIoU)
from .functions import (accuracy, binary_accuracy, binary_crossentropy, categorical_accuracy,
                        categorical_crossentropy, categorical_hinge, cosine_similarity, hinge, kl_divergence,
                        log_cosh, mean_absolute_error, mean_absolute_percentage_error,
                        mean_squared_error, mean_squared_logarithmic_error, poisson,
                        sparse_categorical_accuracy, sparse_categorical_crossentropy,
                        sparse_top_k_categorical_accuracy, squared_hinge,
                        top_k_categorical_accuracy)
from .loss_metrics import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge,
                           CosineSimilarity, Hinge, KLDivergence, LogCoshError,
                           MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredError,
                           MeanSquaredLogarithmicError, Poisson, RootMeanSquaredError,
                           SparseCategoricalCrossentropy, SquaredHinge)

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
logcosh = log_cosh
kld = KLD = kullback_leibler_divergence = kl_divergence

ALL_OBJECTS = (Metric, Mean, Sum, MeanMetricWrapper, Accuracy, BinaryAccuracy,
               CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
               SparseTopKCategoricalAccuracy, TruePositives, FalsePositives, TrueNegatives,
               FalseNegatives, Precision, Recall, AUC, F1Score, FBetaScore, IoU, MeanIoU,
               OneHotIoU, OneHotMeanIoU, BinaryIoU, MeanSquaredError, MeanAbsoluteError,
               MeanAbsolutePercentageError, MeanSquaredLogarithmicError, RootMeanSquaredError,
               CosineSimilarity, LogCoshError, BinaryCrossentropy, CategoricalCrossentropy,
               SparseCategoricalCrossentropy, KLDivergence, Poisson, Hinge, SquaredHinge,
               CategoricalHinge)
# As keras.metrics.ALL_OBJECTS_DICT: class names, their snake case, and a few short names.
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update({_snake(cls.__name__): cls for cls in ALL_OBJECTS})
ALL_OBJECTS_DICT.update({"bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
                         "mse": MeanSquaredError, "MSE": MeanSquaredError,
                         "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
                         "mape": MeanAbsolutePercentageError,
                         "MAPE": MeanAbsolutePercentageError,
                         "msle": MeanSquaredLogarithmicError,
                         "MSLE": MeanSquaredLogarithmicError})
_ABSTRACT = {"Metric", "metric", "MeanMetricWrapper", "mean_metric_wrapper"}

__all__ = ([cls.__name__ for cls in ALL_OBJECTS] + list(functions.__all__)
           + ["mse", "MSE", "mae", "MAE", "mape", "MAPE", "msle", "MSLE", "logcosh", "kld",
              "KLD", "kullback_leibler_divergence", "get", "serialize", "deserialize",
              "ALL_OBJECTS", "ALL_OBJECTS_DICT"])


def _valid_names():
    return sorted(set(ALL_OBJECTS_DICT) - _ABSTRACT) + ["acc", "accuracy"]


def deserialize(config, custom_objects=None):
    """A metric from ``serialize``'s output (a name or ``{'class_name', 'config'}``).

    Args:
        config: the serialized metric.
        custom_objects: optional dict name -> class or function.

    Returns:
        A Metric instance, or a metric function.

    Raises:
        ValueError: an unknown class or name.
    """
    custom_objects = custom_objects or {}
    if isinstance(config, str):
        if config in custom_objects:
            obj = custom_objects[config]
            return obj() if inspect.isclass(obj) else obj
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("Could not deserialize metric %r: expected a name or a dict with "
                         "'class_name' and 'config'" % (config,))
    name = config["class_name"]
    cls = custom_objects.get(name) or ALL_OBJECTS_DICT.get(name)
    if cls is None or name in _ABSTRACT - {"MeanMetricWrapper"}:
        raise ValueError("Unknown metric class %r. Known: %s"
                         % (name, ", ".join(sorted(c.__name__ for c in ALL_OBJECTS))))
    return cls.from_config(dict(config.get("config", {})))


def serialize(metric):
    """A JSON-able description of a metric: its name for names and known functions,
    ``{'class_name', 'config'}`` for Metric instances.

    Args:
        metric: a metric name, function or Metric instance.

    Raises:
        ValueError: a function fastcnn cannot name (a custom function).
    """
    if isinstance(metric, str):
        return metric
    if isinstance(metric, Metric):
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    name = getattr(metric, "__name__", None)
    if callable(metric) and name and getattr(functions, name, None) is metric:
        return name
    raise ValueError("serialize: cannot serialize metric %r (custom functions are not "
                     "saved; wrap it in a Metric subclass)" % (metric,))


def get(identifier):
    """A metric from a name, class, instance, config dict or function (``keras.metrics.get``).

    Names are the classes' names and their snake case ('AUC'/'auc', 'Precision'/
    'precision', 'top_k_categorical_accuracy', ...) and 'mse', 'mae', 'mape', 'msle', 'bce';
    'accuracy'/'acc' are resolved by ``compile`` against the data (here they give
    ``Accuracy``, exact equality, as ``keras.metrics.get``).

    Args:
        identifier: the metric.

    Returns:
        A Metric instance (a fresh one for names and classes), or the function itself.

    Raises:
        ValueError: an unknown name. TypeError: anything else.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        cls = ALL_OBJECTS_DICT.get(identifier)
        if identifier == "acc":
            cls = Accuracy
        if cls is None or identifier in _ABSTRACT:
            raise ValueError("Unknown metric %r. Valid names: %s"
                             % (identifier, ", ".join(_valid_names())))
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise TypeError("Could not interpret metric identifier %r: expected a name such as "
                    "'accuracy', a fastcnn.metrics.Metric, or a function (y_true, y_pred)"
                    % (identifier,))
