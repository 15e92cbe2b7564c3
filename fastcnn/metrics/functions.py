"""Per-sample metric functions with Keras 3's names and formulas (``keras.metrics.*``).

Each takes ``(y_true, y_pred)`` arrays and returns one value per sample (float64; inputs are
first rounded to float32, as Keras computes in float32). ``top_k_categorical_accuracy`` and
``sparse_top_k_categorical_accuracy`` run the C kernel ``ops.in_top_k``; the rest are
reductions over the last axis.
"""
import numpy as np

from ..ops import metrics as kernels
from .base import as_array, positive_int, squeeze_or_expand_to_same_rank

__all__ = ["accuracy", "binary_accuracy", "categorical_accuracy",
           "sparse_categorical_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "mean_squared_error", "mean_absolute_error",
           "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
           "cosine_similarity", "log_cosh", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "kl_divergence", "poisson", "hinge",
           "squared_hinge", "categorical_hinge"]

_EPS = np.float32(1e-7)  # keras.backend.epsilon()


def _pair(y_true, y_pred, who, same_rank=True):
    yp = as_array(y_pred, who, "y_pred")
    yt = as_array(y_true, who, "y_true")
    if same_rank:
        yt, yp = squeeze_or_expand_to_same_rank(yt, yp)
    return yt, yp


def _same_shape(yt, yp, who):
    if yt.shape != yp.shape:
        try:
            yt = np.broadcast_to(yt, yp.shape)
        except ValueError:
            raise ValueError("%s: y_true has shape %s but y_pred has shape %s"
                             % (who, yt.shape, yp.shape)) from None
    return yt


def accuracy(y_true, y_pred):
    """1.0 where y_true equals y_pred exactly (Keras' ``Accuracy``), else 0.0."""
    yt, yp = _pair(y_true, y_pred, "accuracy")
    return (yt == yp).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where ``(y_pred > threshold)`` equals y_true, per element.

    Args:
        y_true: 0/1 targets. y_pred: scores. threshold: the cut (float32 compare).

    Returns:
        float64 array of y_pred's shape (after Keras' rank matching).
    """
    yt, yp = _pair(y_true, y_pred, "binary_accuracy")
    hits = yt == (yp > np.float32(threshold)).astype(np.float32)
    return hits.astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) equals argmax(y_true) (one-hot targets), per sample."""
    yp = as_array(y_pred, "categorical_accuracy", "y_pred")
    yt = np.argmax(as_array(y_true, "categorical_accuracy", "y_true"), axis=-1)
    org_shape = yt.shape
    reshape = False
    if yt.ndim == yp.ndim:
        yt = np.squeeze(yt, -1)
        reshape = True
    matches = (yt == np.argmax(yp, axis=-1)).astype(np.float64)
    return matches.reshape(org_shape) if reshape else matches


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_pred) equals the integer label, per sample."""
    yp = as_array(y_pred, "sparse_categorical_accuracy", "y_pred")
    yt = as_array(y_true, "sparse_categorical_accuracy", "y_true")
    org_shape = yt.shape
    reshape = False
    if yt.ndim == yp.ndim and yt.shape[-1] == 1:
        yt = np.squeeze(yt, -1)
        reshape = True
    pred_ids = np.argmax(yp, axis=-1).astype(np.float32)
    matches = (yt == pred_ids).astype(np.float64)
    if reshape:
        matches = matches.reshape(org_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = np.squeeze(matches, -1)
    return matches


def _top_k(ids, yp, k, who, org_shape):
    k = positive_int(k, "k", who)
    if yp.ndim < 2:
        raise ValueError("%s: y_pred must have shape (N, classes), got %s" % (who, yp.shape))
    yp = yp.reshape(-1, yp.shape[-1])
    ids = ids.reshape(-1)
    if ids.shape[0] != yp.shape[0]:
        raise ValueError("%s: %d labels for %d predictions" % (who, ids.shape[0], yp.shape[0]))
    matches = kernels.in_top_k(ids, yp, k).astype(np.float64)
    return matches.reshape(org_shape) if len(org_shape) > 1 else matches


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the one-hot target's class is among the k highest scores (ties count in).

    Args:
        y_true: one-hot (N, classes). y_pred: (N, classes) scores. k: an integer >= 1.
    """
    who = "top_k_categorical_accuracy"
    yp = as_array(y_pred, who, "y_pred")
    ids = np.argmax(as_array(y_true, who, "y_true"), axis=-1)
    return _top_k(ids, yp, k, who, ids.shape)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 where the integer label is among the k highest scores (ties count in).

    Args:
        y_true: (N,) or (N, 1) class ids. y_pred: (N, classes) scores (with
            ``from_sorted_ids=True``: class ids sorted by score, best first). k: >= 1.
    """
    who = "sparse_top_k_categorical_accuracy"
    yp = as_array(y_pred, who, "y_pred")
    yt = as_array(y_true, who, "y_true", None)
    if from_sorted_ids:
        k = positive_int(k, "k", who)
        ids = yt.reshape(-1).astype(np.float32)
        return np.any(ids[:, None] == yp.reshape(ids.shape[0], -1)[:, :k], axis=1
                      ).astype(np.float64).reshape(yt.shape)
    return _top_k(yt, yp, k, who, yt.shape)


def _last_axis_mean(x):
    return np.mean(x, axis=-1)


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)^2) over the last axis."""
    yt, yp = _pair(y_true, y_pred, "mean_squared_error")
    yt = _same_shape(yt, yp, "mean_squared_error")
    return _last_axis_mean(np.square(yt.astype(np.float64) - yp))


def mean_absolute_error(y_true, y_pred):
    """``mean(abs(y_true - y_pred))`` over the last axis."""
    yt, yp = _pair(y_true, y_pred, "mean_absolute_error")
    yt = _same_shape(yt, yp, "mean_absolute_error")
    return _last_axis_mean(np.abs(yt.astype(np.float64) - yp))


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(abs((y_true - y_pred) / max(abs(y_true), eps)))`` over the last axis."""
    yt, yp = _pair(y_true, y_pred, "mean_absolute_percentage_error")
    yt = _same_shape(yt, yp, "mean_absolute_percentage_error").astype(np.float64)
    diff = np.abs((yt - yp) / np.maximum(np.abs(yt), float(_EPS)))
    return 100.0 * _last_axis_mean(diff)


def mean_squared_logarithmic_error(y_true, y_pred):
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2) over the last axis."""
    yt, yp = _pair(y_true, y_pred, "mean_squared_logarithmic_error")
    yt = _same_shape(yt, yp, "mean_squared_logarithmic_error").astype(np.float64)
    a = np.log(np.maximum(yp.astype(np.float64), float(_EPS)) + 1.0)
    b = np.log(np.maximum(yt, float(_EPS)) + 1.0)
    return _last_axis_mean(np.square(a - b))


def cosine_similarity(y_true, y_pred, axis=-1):
    """sum(l2_normalize(y_true) * l2_normalize(y_pred)) along ``axis``."""
    yt, yp = _pair(y_true, y_pred, "cosine_similarity")
    yt = _same_shape(yt, yp, "cosine_similarity").astype(np.float64)
    yp = yp.astype(np.float64)

    def normalize(x):
        sq = np.sum(np.square(x), axis=axis, keepdims=True)
        return x / np.sqrt(np.maximum(sq, 1e-12))
    return np.sum(normalize(yt) * normalize(yp), axis=axis)


def log_cosh(y_true, y_pred):
    """mean(log(cosh(y_pred - y_true))) over the last axis (computed stably)."""
    yt, yp = _pair(y_true, y_pred, "log_cosh")
    yt = _same_shape(yt, yp, "log_cosh").astype(np.float64)
    x = yp - yt
    return _last_axis_mean(x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0))


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """mean over ``axis`` of -(y log p + (1 - y) log(1 - p)), p clipped to [eps, 1 - eps]
    (or log-sigmoid of logits); label smoothing pulls y toward 0.5."""
    yp = as_array(y_pred, "binary_crossentropy", "y_pred").astype(np.float64)
    yt = as_array(y_true, "binary_crossentropy", "y_true").astype(np.float64)
    if yt.shape != yp.shape:
        raise ValueError("binary_crossentropy: y_true has shape %s but y_pred has shape %s"
                         % (yt.shape, yp.shape))
    if label_smoothing:
        yt = yt * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        bce = yt * np.logaddexp(0.0, -yp) + (1.0 - yt) * np.logaddexp(0.0, yp)
    else:
        p = np.clip(yp, float(_EPS), float(np.float32(1.0) - _EPS))
        bce = -(yt * np.log(p) + (1.0 - yt) * np.log(1.0 - p))
    return np.mean(bce, axis=axis)


def _log_probs(yp, from_logits, axis):
    yp = yp.astype(np.float64)
    if from_logits:
        m = np.max(yp, axis=axis, keepdims=True)
        z = yp - m
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    p = yp / np.sum(yp, axis=axis, keepdims=True)
    return np.log(np.clip(p, float(_EPS), float(np.float32(1.0) - _EPS)))


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum(y_true * log p) over ``axis`` (probabilities renormalised and clipped, or
    log-softmax of logits); label smoothing mixes y_true with the uniform distribution."""
    yp = as_array(y_pred, "categorical_crossentropy", "y_pred")
    yt = as_array(y_true, "categorical_crossentropy", "y_true").astype(np.float64)
    if yt.shape != yp.shape:
        raise ValueError("categorical_crossentropy: y_true has shape %s but y_pred has shape "
                         "%s" % (yt.shape, yp.shape))
    if label_smoothing:
        yt = yt * (1.0 - label_smoothing) + label_smoothing / yt.shape[-1]
    return -np.sum(yt * _log_probs(yp, from_logits, axis), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1):
    """-log p[label] (probabilities renormalised and clipped, or log-softmax of logits)."""
    who = "sparse_categorical_crossentropy"
    yp = as_array(y_pred, who, "y_pred")
    yt = as_array(y_true, who, "y_true", None)
    if yt.ndim == yp.ndim and yt.shape[-1] == 1:
        yt = yt[..., 0]
    if yt.shape != yp.shape[:-1]:
        raise ValueError("%s: y_true has shape %s but y_pred has shape %s (labels must match "
                         "y_pred up to its last axis)" % (who, yt.shape, yp.shape))
    ids = yt.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= yp.shape[-1]):
        raise ValueError("%s: labels must be in [0, %d), got values in [%d, %d]"
                         % (who, yp.shape[-1], ids.min(), ids.max()))
    logp = _log_probs(yp, from_logits, axis)
    return -np.take_along_axis(logp, ids[..., None], axis=-1)[..., 0]


def kl_divergence(y_true, y_pred):
    """sum(y_true * log(y_true / y_pred)) over the last axis, both clipped to [eps, 1]."""
    yt, yp = _pair(y_true, y_pred, "kl_divergence", same_rank=False)
    yt = np.clip(yt.astype(np.float64), float(_EPS), 1.0)
    yp = np.clip(yp.astype(np.float64), float(_EPS), 1.0)
    return np.sum(yt * np.log(yt / yp), axis=-1)


def poisson(y_true, y_pred):
    """mean(y_pred - y_true * log(y_pred + eps)) over the last axis."""
    yt, yp = _pair(y_true, y_pred, "poisson", same_rank=False)
    yp = yp.astype(np.float64)
    return np.mean(yp - yt * np.log(yp + float(_EPS)), axis=-1)


def _hinge_labels(yt):
    """0/1 labels become -1/1 (when every label of the batch is 0 or 1), as Keras."""
    yt = yt.astype(np.float64)
    if np.all((yt == 0) | (yt == 1)):
        return 2.0 * yt - 1.0
    return yt


def hinge(y_true, y_pred):
    """mean(max(1 - y_true * y_pred, 0)) over the last axis (0/1 labels -> -1/1)."""
    yt, yp = _pair(y_true, y_pred, "hinge", same_rank=False)
    return np.mean(np.maximum(1.0 - _hinge_labels(yt) * yp, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """mean(max(1 - y_true * y_pred, 0)^2) over the last axis (0/1 labels -> -1/1)."""
    yt, yp = _pair(y_true, y_pred, "squared_hinge", same_rank=False)
    return np.mean(np.square(np.maximum(1.0 - _hinge_labels(yt) * yp, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    """max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0) per sample."""
    yt, yp = _pair(y_true, y_pred, "categorical_hinge", same_rank=False)
    yt = yt.astype(np.float64)
    pos = np.sum(yt * yp, axis=-1)
    neg = np.max((1.0 - yt) * yp, axis=-1)
    return np.maximum(neg - pos + 1.0, 0.0)


# The functions that are losses (a MeanMetricWrapper around one is minimised).
LOSS_FUNCTIONS = (mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
                  mean_squared_logarithmic_error, log_cosh, binary_crossentropy,
                  categorical_crossentropy, sparse_categorical_crossentropy, kl_divergence,
                  poisson, hinge, squared_hinge, categorical_hinge)
