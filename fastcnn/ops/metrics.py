"""Per-batch counting kernels behind the streaming metrics (csrc/metrics.c).

``threshold_confusion`` gives the weighted true/false positive/negative counts of a batch
for a list of thresholds, per label column: the work of Keras' ``TruePositives`` ...
``Precision``, ``Recall`` and ``AUC`` (``metrics_utils.update_confusion_matrix_variables``).
``in_top_k`` is Keras' ``ops.in_top_k``; ``top_k_filter`` is ``metrics_utils._filter_top_k``.
Each function validates once, converts to C-contiguous float32, and runs the kernel with the
GIL released; results are bitwise identical for any thread count.
"""
import numbers

import numpy as np

from .. import _ext

__all__ = ["threshold_confusion", "in_top_k", "top_k_filter", "THRESHOLD_MODES"]

# mode name -> FC_THRESH_* of csrc/metrics.h
_MODES = {"sorted": 0, "even": 1, "even_eps": 2}
THRESHOLD_MODES = tuple(_MODES)


def _pos_int(k, arg, fn):
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError("%s: %s must be an integer >= 1, got %r" % (fn, arg, k))
    return int(k)


def _matrix(a, name, fn, dtype=np.float32):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError("%s: %s must be 2-D (N, L), got shape %s" % (fn, name, a.shape))
    if a.dtype.kind not in "biuf":
        raise TypeError("%s: %s must be numeric, got dtype %s" % (fn, name, a.dtype))
    return np.ascontiguousarray(a, dtype=dtype)


def threshold_confusion(y_pred, y_true, thresholds, sample_weight=None, mode="sorted",
                        which=("tp", "fp", "tn", "fn")):
    """Weighted confusion counts of a batch at each threshold, per label column.

    A prediction p is positive at threshold t when ``p > t`` (float32 compare); a label is
    positive when non-zero. Rows are samples, columns labels (flatten first for a single
    label).

    Args:
        y_pred: (N, L) predictions.
        y_true: (N, L) labels (non-zero is positive).
        thresholds: 1-D, ascending for ``mode='sorted'``; for ``'even'`` / ``'even_eps'``
            only their number T matters: Keras' evenly spaced thresholds 0, 1/(T-1), ..., 1
            (``'even_eps'``: the ends are -eps and 1+eps, as in AUC), bucketed with Keras'
            float32 formula ``ceil(clip(p, 0, 1) * (T - 1))``.
        sample_weight: None or (N, L) weights (float64).
        mode: 'sorted', 'even' or 'even_eps'.
        which: the counts to return, a subset of ('tp', 'fp', 'tn', 'fn').

    Returns:
        A dict name -> (T, L) float64 array.

    Raises:
        ValueError: on shape mismatches, an unknown mode, unsorted thresholds.
    """
    fn = "threshold_confusion"
    if mode not in _MODES:
        raise ValueError("%s: mode must be one of %s, got %r" % (fn, THRESHOLD_MODES, mode))
    pred = _matrix(y_pred, "y_pred", fn)
    labels = _matrix(y_true, "y_true", fn)
    if labels.shape != pred.shape:
        raise ValueError("%s: y_true has shape %s but y_pred has shape %s"
                         % (fn, labels.shape, pred.shape))
    thr = np.ascontiguousarray(np.asarray(thresholds, dtype=np.float32).reshape(-1))
    T = thr.shape[0]
    if T < (1 if mode == "sorted" else 2):
        raise ValueError("%s: need at least %d thresholds for mode %r, got %d"
                         % (fn, 1 if mode == "sorted" else 2, mode, T))
    if mode == "sorted" and np.any(thr[1:] < thr[:-1]):
        raise ValueError("%s: thresholds must be ascending for mode 'sorted'" % fn)
    weights = None
    if sample_weight is not None:
        weights = _matrix(sample_weight, "sample_weight", fn, np.float64)
        if weights.shape != pred.shape:
            raise ValueError("%s: sample_weight has shape %s but y_pred has shape %s"
                             % (fn, weights.shape, pred.shape))
    bad = set(which) - {"tp", "fp", "tn", "fn"}
    if bad:
        raise ValueError("%s: unknown counts %s" % (fn, sorted(bad)))
    n, L = pred.shape
    counts = np.empty((n, L), dtype=np.int32)
    if n:
        _ext.metric_threshold_counts(pred.reshape(-1), thr, _MODES[mode], counts.reshape(-1))
    out = {k: np.empty((T, max(L, 1)), dtype=np.float64) for k in which}
    if L == 0:
        return {k: v[:, :0] for k, v in out.items()}
    _ext.metric_confusion(counts, labels, weights, T, out.get("tp"), out.get("fp"),
                          out.get("tn"), out.get("fn"))
    return out


def in_top_k(targets, predictions, k):
    """Whether each target class is among the k largest predictions of its row (Keras'
    ``ops.in_top_k``: ties with the k-th value count as inside; a NaN score is lowest).

    Args:
        targets: (N,) integer class ids in [0, C).
        predictions: (N, C) scores.
        k: an integer >= 1.

    Returns:
        (N,) bool array.

    Raises:
        ValueError: bad shapes, k < 1, or a class id outside [0, C).
    """
    fn = "in_top_k"
    k = _pos_int(k, "k", fn)
    pred = _matrix(predictions, "predictions", fn)
    t = np.asarray(targets)
    if t.ndim != 1 or t.shape[0] != pred.shape[0]:
        raise ValueError("%s: targets must have shape (%d,), got %s"
                         % (fn, pred.shape[0], t.shape))
    if t.dtype.kind == "f":
        if not np.all(np.isfinite(t)) or np.any(t != np.floor(t)):
            raise ValueError("%s: targets must be integer class ids" % fn)
    elif t.dtype.kind not in "iub":
        raise TypeError("%s: targets must be integer class ids, got dtype %s" % (fn, t.dtype))
    t = np.ascontiguousarray(t, dtype=np.int64)
    if t.size and (t.min() < 0 or t.max() >= pred.shape[1]):
        raise ValueError("%s: class ids must be in [0, %d), got values in [%d, %d]"
                         % (fn, pred.shape[1], t.min(), t.max()))
    out = np.empty(t.shape[0], dtype=np.uint8)
    if t.size:
        _ext.metric_in_top_k(pred, t, k, out)
    return out.view(np.bool_)


def top_k_filter(predictions, k, fill=-1e10):
    """``predictions`` with every entry outside its row's top k set to ``fill`` (Keras'
    ``_filter_top_k``: the larger value wins, the lower index on ties).

    Args:
        predictions: (N, C) scores.
        k: an integer >= 1 (k >= C keeps everything).
        fill: the value for the other entries (Keras: -1e10).

    Returns:
        (N, C) float32 array.

    Raises:
        ValueError: bad shape or k < 1.
    """
    fn = "top_k_filter"
    k = _pos_int(k, "k", fn)
    pred = _matrix(predictions, "predictions", fn)
    out = np.empty_like(pred)
    if pred.size:
        _ext.metric_top_k_filter(pred, k, float(fill), out)
    return out
