"""F-scores (Keras 3 f_score_metrics) and IoU metrics (iou_metrics): per-class counts
accumulated in float64 (IoU's confusion matrix in int64, Keras' integer dtype)."""
import numbers

import numpy as np

from .base import Metric, as_array, broadcast, check_dtype, positive_int, to_result

__all__ = ["FBetaScore", "F1Score", "IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU", "BinaryIoU"]

_EPSILON = 1e-7


class FBetaScore(Metric):
    """F-beta score: (1 + beta^2) * precision * recall / (beta^2 * precision + recall).

    Args:
        average: None (one score per class), 'micro' (global counts), 'macro' (mean of the
            class scores) or 'weighted' (weighted by each class's support).
        beta: a positive Python float (default 1.0).
        threshold: None (the row's largest prediction is the positive one) or a float in
            (0, 1]: predictions above it are positive.
        name: default 'fbeta_score'. dtype: None or 'float32'.

    Raises:
        ValueError: an unknown average, beta <= 0 or not a float, a bad threshold, inputs not
            of shape (N, classes).
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("%s: Invalid `average` argument value. Expected one of: {None, "
                             "'micro', 'macro', 'weighted'}. Received: average=%r"
                             % (type(self).__name__, average))
        if not isinstance(beta, float):
            raise ValueError("%s: Invalid `beta` argument value. It should be a Python float. "
                             "Received: beta=%r" % (type(self).__name__, beta))
        if beta <= 0.0:
            raise ValueError("%s: Invalid `beta` argument value. It should be > 0. Received: "
                             "beta=%r" % (type(self).__name__, beta))
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError("%s: Invalid `threshold` argument value. It should be a "
                                 "Python float. Received: threshold=%r"
                                 % (type(self).__name__, threshold))
            if not 0.0 < threshold <= 1.0:
                raise ValueError("%s: Invalid `threshold` argument value. It should verify "
                                 "0 < threshold <= 1. Received: threshold=%r"
                                 % (type(self).__name__, threshold))
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        self._built = False

    def _build(self, classes):
        shape = () if self.average == "micro" else (classes,)
        self.true_positives = self.add_variable(shape, name="true_positives")
        self.false_positives = self.add_variable(shape, name="false_positives")
        self.false_negatives = self.add_variable(shape, name="false_negatives")
        self.intermediate_weights = self.add_variable(shape, name="intermediate_weights")
        self._classes = classes
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the batch's (weighted) per-class counts."""
        yt = as_array(y_true, self.name, "y_true").astype(np.float64)
        yp = as_array(y_pred, self.name, "y_pred")
        if yp.ndim != 2 or yt.ndim != 2:
            raise ValueError("%s expects 2D inputs with shape (batch_size, output_dim). "
                             "Received input shapes: y_pred.shape=%s and y_true.shape=%s."
                             % (type(self).__name__, yp.shape, yt.shape))
        if not self._built:
            self._build(yp.shape[-1])
        if yp.shape[-1] != self._classes or yt.shape != yp.shape:
            raise ValueError("%s: expected y_true and y_pred of shape (N, %d), got %s and %s"
                             % (type(self).__name__, self._classes, yt.shape, yp.shape))
        if self.threshold is None:
            top = np.max(yp, axis=-1, keepdims=True)
            pos = (yp >= top) & (np.abs(yp) > 1e-9)
        else:
            pos = yp > np.float32(self.threshold)
        pos = pos.astype(np.float64)
        w = None
        if sample_weight is not None:
            w = as_array(sample_weight, self.name, "sample_weight", np.float64)
            w = broadcast(w.reshape(w.shape[0], 1) if w.ndim == 1 else w, yp.shape, self.name,
                          "sample_weight")

        def wsum(v):
            if w is not None:
                v = v * w
            return np.sum(v, axis=self.axis)
        self.true_positives += wsum(pos * yt)
        self.false_positives += wsum(pos * (1 - yt))
        self.false_negatives += wsum((1 - pos) * yt)
        self.intermediate_weights += wsum(yt)

    def result(self):
        if not self._built:
            return 0.0
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + _EPSILON)
        recall = tp / (tp + self.false_negatives + _EPSILON)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + _EPSILON) * (1 + b2)
        if self.average == "weighted":
            weights = self.intermediate_weights / (np.sum(self.intermediate_weights) + _EPSILON)
            f = np.sum(f * weights)
        elif self.average is not None:
            f = np.mean(f)
        return to_result(f)

    def reset_state(self):
        if self._built:
            super().reset_state()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "average": self.average,
                "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """F1 score: the harmonic mean of precision and recall (FBetaScore with beta = 1).

    Args:
        average: None, 'micro', 'macro' or 'weighted' (see FBetaScore).
        threshold: None or a float in (0, 1] (see FBetaScore).
        name: default 'f1_score'. dtype: None or 'float32'.
    """

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name,
                         dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


class IoU(Metric):
    """Intersection-over-union of the given classes, averaged: TP / (TP + FP + FN) per
    class from a confusion matrix accumulated over batches.

    Args:
        num_classes: the number of classes (>= 1).
        target_class_ids: the classes to average over.
        name: the metric's name. dtype: None or 'int32' (Keras' integer counts; float
            weights are truncated) or 'float32'.
        ignore_class: a label to skip.
        sparse_y_true, sparse_y_pred: whether labels / predictions are class ids (True) or
            scores to argmax over ``axis``. Non-integer class ids are truncated, as Keras.
        axis: the class axis for the argmax (default -1).

    Raises:
        ValueError: num_classes < 1 or a target class id out of range.
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        Metric.__init__(self, name=name, dtype=None)
        self._dtype = check_dtype(dtype, type(self).__name__, ("int32", "float32", "int"))
        if self._dtype == "int":
            self._dtype = "int32"
        self.num_classes = positive_int(num_classes, "num_classes", type(self).__name__)
        ids = list(target_class_ids)
        if not ids or any(isinstance(i, bool) or not isinstance(i, numbers.Integral)
                          or not 0 <= i < self.num_classes for i in ids):
            raise ValueError("%s: target_class_ids must be class ids in [0, %d), got %r"
                             % (type(self).__name__, self.num_classes, target_class_ids))
        self.target_class_ids = [int(i) for i in ids]
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        cm_dtype = np.int64 if self._dtype == "int32" else np.float64
        self.total_cm = self.add_variable((self.num_classes, self.num_classes),
                                          dtype=cm_dtype, name="total_confusion_matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the batch's (weighted) confusion matrix."""
        yt = as_array(y_true, self.name, "y_true", None)
        yp = as_array(y_pred, self.name, "y_pred", None)
        if not self.sparse_y_true:
            yt = np.argmax(yt, axis=self.axis)
        if not self.sparse_y_pred:
            yp = np.argmax(yp, axis=self.axis)
        as_int = self._dtype == "int32"
        cast = (lambda a: np.trunc(a.astype(np.float64)).astype(np.int64)) if as_int else \
            (lambda a: a.astype(np.float64))
        yt = cast(yt).reshape(-1)
        yp = cast(yp).reshape(-1)
        if yt.shape != yp.shape:
            raise ValueError("%s: y_true has %d entries but y_pred has %d"
                             % (self.name, yt.size, yp.size))
        w = np.ones(1) if sample_weight is None else as_array(sample_weight, self.name,
                                                             "sample_weight", None)
        w = cast(w).reshape(-1) if w.ndim > 1 else cast(w)
        w = broadcast(w, yt.shape, self.name, "sample_weight", "labels")
        n = self.num_classes
        ok = (yt >= 0) & (yt < n) & (yp >= 0) & (yp < n)
        if self.ignore_class is not None:
            ok &= yt != self.ignore_class
        t = np.where(ok, yt, 0).astype(np.int64)
        p = np.where(ok, yp, 0).astype(np.int64)
        w = np.where(ok, w, 0)
        cm = np.bincount(t * n + p, weights=w.astype(np.float64), minlength=n * n)
        self.total_cm += cm.reshape(n, n).astype(self.total_cm.dtype)

    def result(self):
        cm = self.total_cm.astype(np.float64)
        tp = np.diag(cm)
        denominator = cm.sum(axis=0) + cm.sum(axis=1) - tp
        ids = self.target_class_ids
        tp, denominator = tp[ids].astype(np.float32), denominator[ids].astype(np.float32)
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + np.float32(_EPSILON)), 0.0)
        return float(np.sum(iou) / (np.sum(valid) + _EPSILON))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class MeanIoU(IoU):
    """Mean intersection-over-union over all classes (see IoU).

    Args:
        num_classes: the number of classes. name: default 'mean_io_u'.
        dtype, ignore_class, sparse_y_true, sparse_y_pred, axis: as IoU.
    """

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        n = positive_int(num_classes, "num_classes", type(self).__name__)
        super().__init__(n, list(range(n)), name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """IoU for one-hot labels and score predictions (both argmax'ed over ``axis``).

    Args:
        num_classes, target_class_ids, name, dtype, ignore_class, axis: as IoU.
        sparse_y_pred: False (default): y_pred holds scores.
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
                "name": self.name, "dtype": self.dtype, "ignore_class": self.ignore_class,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """Mean IoU for one-hot labels and score predictions (both argmax'ed over ``axis``).

    Args:
        num_classes, name, dtype, ignore_class, axis: as MeanIoU.
        sparse_y_pred: False (default): y_pred holds scores.
    """

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of a binary task: predictions above ``threshold`` are class 1.

    Args:
        target_class_ids: the classes (0 and/or 1) to average (default (0, 1)).
        threshold: the decision threshold (default 0.5).
        name, dtype: as IoU.
    """

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(2, target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        yp = as_array(y_pred, self.name, "y_pred")
        yt = as_array(y_true, self.name, "y_true")
        super().update_state((yt > self.threshold).astype(np.int64),
                             (yp > np.float32(self.threshold)).astype(np.int64), sample_weight)

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold,
                "name": self.name, "dtype": self.dtype}
