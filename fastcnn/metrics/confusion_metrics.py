"""Threshold metrics (Keras 3 confusion_metrics): TruePositives ... FalseNegatives,
Precision, Recall and AUC.

Each batch is counted by the C kernel ``ops.threshold_confusion``: every prediction is mapped
to the number of thresholds it exceeds (a binary search, or Keras' float32 bucket formula for
evenly spaced thresholds such as AUC's), then weighted counts are histogrammed per label and
prefix-summed. Counts accumulate in float64, so unweighted counts are exact integers.
"""
import numbers

import numpy as np

from ..ops import metrics as kernels
from .base import (Metric, as_array, broadcast, divide_no_nan, positive_int,
                   squeeze_or_expand_to_same_rank, to_result)

__all__ = ["TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives", "Precision",
           "Recall", "AUC"]

NEG_INF = -1e10  # Keras' metrics_utils.NEG_INF: the score of entries outside top_k
_EPSILON = 1e-7


def _thresholds_list(thresholds, default, who):
    """Keras' parse_init_thresholds: a float or a list of floats in [0, 1]."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) \
        else [thresholds]
    if not values:
        raise ValueError("%s: thresholds must not be empty" % who)
    bad = [t for t in values if t is None or not isinstance(t, numbers.Real) or not 0 <= t <= 1]
    if bad:
        raise ValueError("%s: Threshold values must be in [0, 1]. Received: %s" % (who, bad))
    return [float(t) for t in values]


def _evenly_distributed(thresholds):
    """Keras' is_evenly_distributed_thresholds."""
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=_EPSILON))


class _ThresholdCounter:
    """Keras' update_confusion_matrix_variables for one metric's thresholds."""

    def __init__(self, thresholds, evenly, with_epsilon=False):
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.count = len(thresholds)
        if evenly:
            self.mode = "even_eps" if with_epsilon else "even"
            self.order = None
            self.sorted = self.thresholds
        else:
            self.mode = "sorted"
            self.order = np.argsort(self.thresholds, kind="stable")
            self.sorted = self.thresholds[self.order]

    def __call__(self, who, y_true, y_pred, sample_weight, which, top_k=None, class_id=None,
                 multi_label=False, label_weights=None):
        """(T,) or (T, labels) float64 counts of one batch, in the thresholds' order."""
        yp = as_array(y_pred, who, "y_pred")
        yt = as_array(y_true, who, "y_true")
        yp, yt = squeeze_or_expand_to_same_rank(yp, yt)
        sw = None
        if sample_weight is not None:
            sw = as_array(sample_weight, who, "sample_weight", np.float64)[..., None]
            _, sw = squeeze_or_expand_to_same_rank(yt, sw, expand_rank_1=False)
        if top_k is not None:
            if yp.ndim < 1 or yp.size == 0 and yp.ndim < 2:
                raise ValueError("%s: top_k needs y_pred of shape (N, classes)" % who)
            yp = kernels.top_k_filter(yp.reshape(-1, yp.shape[-1]), top_k, NEG_INF
                                      ).reshape(yp.shape)
        if class_id is not None:
            if yp.ndim == 1:
                raise ValueError("%s: When class_id is provided, y_pred must be a 2D array "
                                 "with shape (num_samples, num_classes), found shape: %s"
                                 % (who, yp.shape))
            if not -yp.shape[-1] <= class_id < yp.shape[-1]:
                raise ValueError("%s: class_id %d is out of range for y_pred with %d classes"
                                 % (who, class_id, yp.shape[-1]))
            yt = yt[..., class_id, None]
            yp = yp[..., class_id, None]
        if yt.shape != yp.shape:
            raise ValueError("%s: y_true has shape %s but y_pred has shape %s"
                             % (who, yt.shape, yp.shape))
        weights = None
        if sw is not None:
            weights = broadcast(sw, yp.shape, who, "sample_weight")
        if label_weights is not None and not multi_label:
            lw = broadcast(np.asarray(label_weights, dtype=np.float64)[None], yp.shape, who,
                           "label_weights")
            weights = lw if weights is None else weights * lw
        if multi_label:
            if yp.ndim != 2:
                raise ValueError("%s: y_pred must have rank 2 when multi_label=True, got shape "
                                 "%s" % (who, yp.shape))
            shape2 = yp.shape
        else:
            shape2 = (yp.size, 1)
        counts = kernels.threshold_confusion(
            yp.reshape(shape2), yt.reshape(shape2), self.sorted,
            None if weights is None else weights.reshape(shape2), self.mode, which)
        out = {}
        for k, v in counts.items():
            if self.order is not None:
                unsorted = np.empty_like(v)
                unsorted[self.order] = v
                v = unsorted
            out[k] = v if multi_label else v[:, 0]
        return out


class _ConditionCount(Metric):
    _which = None

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = _thresholds_list(thresholds, 0.5, type(self).__name__)
        self._counter = _ThresholdCounter(self.thresholds, _evenly_distributed(self.thresholds))
        self.accumulator = self.add_variable((len(self.thresholds),), name="accumulator")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the batch's weighted count at each threshold (prediction > threshold)."""
        counts = self._counter(self.name, y_true, y_pred, sample_weight, (self._which,))
        self.accumulator += counts[self._which]

    def result(self):
        return to_result(self.accumulator[0] if len(self.thresholds) == 1 else self.accumulator)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds}


def _count_doc(what):
    return ("""The (weighted) number of %s: a prediction is positive when it is above the
    threshold, a label when it is non-zero.

    Args:
        thresholds: a float or list of floats in [0, 1] (default 0.5); with a list the
            result is an array, one count per threshold.
        name: the metric's name. dtype: None or 'float32'.

    Raises:
        ValueError: a threshold outside [0, 1].
    """ % what)


class TruePositives(_ConditionCount):
    __doc__ = _count_doc("true positives")
    _which = "tp"


class FalsePositives(_ConditionCount):
    __doc__ = _count_doc("false positives")
    _which = "fp"


class TrueNegatives(_ConditionCount):
    __doc__ = _count_doc("true negatives")
    _which = "tn"


class FalseNegatives(_ConditionCount):
    __doc__ = _count_doc("false negatives")
    _which = "fn"


class _PrecisionRecall(Metric):
    _other = None

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        who = type(self).__name__
        if top_k is not None:
            top_k = positive_int(top_k, "top_k", who)
        if class_id is not None and (isinstance(class_id, bool)
                                     or not isinstance(class_id, numbers.Integral)):
            raise ValueError("%s: class_id must be an integer, got %r" % (who, class_id))
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        self.thresholds = _thresholds_list(thresholds, 0.5 if top_k is None else NEG_INF, who)
        self._counter = _ThresholdCounter(self.thresholds, _evenly_distributed(self.thresholds))
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), name="true_positives")
        self._others = self.add_variable((n,), name=self._other_name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the batch's weighted counts (prediction > threshold, label non-zero)."""
        counts = self._counter(self.name, y_true, y_pred, sample_weight, ("tp", self._other),
                               top_k=self.top_k, class_id=self.class_id)
        self.true_positives += counts["tp"]
        self._others += counts[self._other]

    def result(self):
        r = divide_no_nan(self.true_positives, self.true_positives + self._others)
        return to_result(r[0] if len(self.thresholds) == 1 else r)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


_PR_ARGS = """
    Args:
        thresholds: a float or list of floats in [0, 1]; default 0.5 (or, with top_k,
            every top-k prediction counts as positive). A list gives an array result.
        top_k: only the k highest predictions of each sample can be positive.
        class_id: compute the metric for this class column only.
        name: the metric's name. dtype: None or 'float32'.

    Raises:
        ValueError: a threshold outside [0, 1], top_k < 1, a class_id out of range.
    """


class Precision(_PrecisionRecall):
    __doc__ = ("Precision: true positives / (true positives + false positives).\n" + _PR_ARGS)
    _other = "fp"
    _other_name = "false_positives"

    @property
    def false_positives(self):
        """The false-positive counts per threshold (float64 array)."""
        return self._others


class Recall(_PrecisionRecall):
    __doc__ = ("Recall: true positives / (true positives + false negatives).\n" + _PR_ARGS)
    _other = "fn"
    _other_name = "false_negatives"

    @property
    def false_negatives(self):
        """The false-negative counts per threshold (float64 array)."""
        return self._others


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = ("interpolation", "majoring", "minoring")


class AUC(Metric):
    """Area under the ROC or PR curve, by a Riemann sum over ``num_thresholds`` thresholds
    (Keras 3's approximation, exactly: same thresholds, bucketing and interpolation).

    Args:
        num_thresholds: thresholds to discretize the curve (default 200, > 1).
        curve: 'ROC' (default), 'PR' or 'PRGAIN'.
        summation_method: 'interpolation' (default), 'minoring' or 'majoring'.
        name: the metric's name. dtype: None or 'float32'.
        thresholds: explicit thresholds in [0, 1] (num_thresholds is then ignored).
        multi_label: treat each column as its own label (AUC per label, then averaged).
        num_labels: the number of labels when multi_label (else taken from the data).
        label_weights: per-label weights (the average's weights with multi_label; else they
            weigh the flattened counts).
        from_logits: y_pred are logits (a sigmoid is applied first).

    Raises:
        ValueError: num_thresholds < 2, an unknown curve or summation method, thresholds
            outside [0, 1], num_labels without multi_label.
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        if not isinstance(curve, str) or curve.lower() not in _CURVES:
            raise ValueError('AUC: Invalid AUC curve value: "%s". Expected values are '
                             '["PR", "ROC", "PRGAIN"]' % (curve,))
        if not isinstance(summation_method, str) or summation_method.lower() not in _SUMMATIONS:
            raise ValueError('AUC: Invalid AUC summation method value: "%s". Expected values '
                             'are ["interpolation", "majoring", "minoring"]'
                             % (summation_method,))
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_thresholds_list(thresholds, 0.5, "AUC"))
            self.num_thresholds = len(inner) + 2
            evenly = _evenly_distributed(np.array([0.0] + inner + [1.0]))
        else:
            if (isinstance(num_thresholds, bool) or not isinstance(num_thresholds, numbers.Integral)
                    or num_thresholds <= 1):
                raise ValueError("AUC: Argument `num_thresholds` must be an integer > 1. "
                                 "Received: num_thresholds=%r" % (num_thresholds,))
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1)
                     for i in range(self.num_thresholds - 2)]
            evenly = True
        self._thresholds = np.array([0.0 - _EPSILON] + inner + [1.0 + _EPSILON])
        self._counter = _ThresholdCounter(self._thresholds, evenly, with_epsilon=True)
        self.curve = _CURVES[curve.lower()]
        self.summation_method = summation_method.lower()
        self.multi_label = bool(multi_label)
        if num_labels is not None and not self.multi_label:
            raise ValueError("AUC: `num_labels` is needed only when `multi_label` is True.")
        self.num_labels = num_labels
        self.label_weights = (None if label_weights is None
                              else np.asarray(label_weights, dtype=np.float64).reshape(-1))
        self._from_logits = bool(from_logits)
        self._built = False
        if self.multi_label:
            if num_labels:
                self._build(positive_int(num_labels, "num_labels", "AUC"))
        else:
            self._build(None)

    @property
    def thresholds(self):
        """The thresholds the curve is evaluated at (a list of floats, as Keras)."""
        return list(self._thresholds)

    def _build(self, labels):
        shape = (self.num_thresholds,) if labels is None else (self.num_thresholds, labels)
        self._num_labels = labels
        self._variables = []
        self.true_positives = self.add_variable(shape, name="true_positives")
        self.false_positives = self.add_variable(shape, name="false_positives")
        self.true_negatives = self.add_variable(shape, name="true_negatives")
        self.false_negatives = self.add_variable(shape, name="false_negatives")
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the batch's weighted confusion counts at every threshold."""
        yp = as_array(y_pred, self.name, "y_pred")
        if not self._built:
            if yp.ndim != 2:
                raise ValueError("AUC: y_pred must have rank 2 when multi_label=True. Found "
                                 "rank %d (shape %s)" % (yp.ndim, yp.shape))
            self._build(yp.shape[1])
        if self.multi_label and (yp.ndim != 2 or yp.shape[1] != self._num_labels):
            raise ValueError("AUC: expected y_pred of shape (N, %d) (multi_label), got %s"
                             % (self._num_labels, yp.shape))
        if self._from_logits:
            with np.errstate(over="ignore"):
                yp = (1.0 / (1.0 + np.exp(-yp.astype(np.float64)))).astype(np.float32)
        counts = self._counter(self.name, y_true, yp, sample_weight, ("tp", "fp", "tn", "fn"),
                               multi_label=self.multi_label,
                               label_weights=None if self.multi_label else self.label_weights)
        self.true_positives += counts["tp"]
        self.false_positives += counts["fp"]
        self.true_negatives += counts["tn"]
        self.false_negatives += counts["fn"]

    def _average(self, by_label):
        if not self.multi_label:
            return by_label
        if self.label_weights is None:
            return np.mean(by_label)
        return divide_no_nan(np.sum(by_label * self.label_weights), np.sum(self.label_weights))

    def _interpolate_pr_auc(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        prec_slope = divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        safe_p_ratio = np.where((p[:-1] > 0) & (p[1:] > 0),
                                divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        increment = divide_no_nan(prec_slope * (dtp + intercept * np.log(safe_p_ratio)),
                                  np.maximum(tp[1:] + fn[1:], 0))
        return self._average(np.sum(increment, axis=0))

    def result(self):
        if not self._built:
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            return to_result(self._interpolate_pr_auc())
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        recall = divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, divide_no_nan(tp, tp + fp)
        else:
            scale = divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scale * divide_no_nan(fn, tp)
            precision_gain = 1.0 - scale * divide_no_nan(fp, tp)
            recall_gain = np.maximum(np.where(tp == 0, 0.0, recall_gain), 0.0)
            precision_gain = np.where(tp == 0, 1.0, precision_gain)
            x, y = recall_gain, precision_gain
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return to_result(self._average(np.sum((x[:-1] - x[1:]) * heights, axis=0)))

    def reset_state(self):
        if self._built:
            super().reset_state()

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds,
                  "curve": self.curve, "summation_method": self.summation_method,
                  "multi_label": self.multi_label, "num_labels": self.num_labels,
                  "label_weights": (None if self.label_weights is None
                                    else self.label_weights.tolist()),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
