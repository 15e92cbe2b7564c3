"""Losses with Keras 3 names, arguments, defaults and numerics, computed by C kernels.

Every loss's value and gradient for a batch come from one call of ``csrc/losses.c``
(``fc_loss_rows``): the model output is viewed as ``(rows, classes)`` (the last axis against
every other position), each row gets Keras' per-sample loss, the rows are weighted by the
sample weights and summed in order (the same bits at any thread count), and the gradient of
the reduced loss is written in the same pass.

* Cross-entropies take probabilities by default (``from_logits=False``, as Keras). When the
  model's last layer ends in the activation the loss undoes (softmax for the categorical
  ones, sigmoid for the binary ones), the trainer hands the loss the pre-activation logits
  instead, which is the exact loss and gradient of activation + cross-entropy in one kernel.
* ``reduction``: ``"sum_over_batch_size"`` (default) and ``"mean"`` divide the weighted sum
  by the number of per-sample losses (the batch size for (N, classes) outputs, *not* the sum
  of the weights), ``"sum"`` keeps the sum, ``"mean_with_sample_weight"`` divides by the sum
  of the weights, ``None``/``"none"`` returns the weighted per-sample losses.
* Function forms (``binary_crossentropy(y_true, y_pred)``...) return per-sample losses like
  Keras' functions.
"""
import numbers

import numpy as np

from . import _ext

__all__ = [
    "Loss", "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy", "SparseCategoricalCrossentropy", "MeanSquaredError",
    "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
    "Huber", "LogCosh", "KLDivergence", "Poisson", "Hinge", "SquaredHinge",
    "CategoricalHinge", "CosineSimilarity",
    "binary_crossentropy", "binary_focal_crossentropy", "categorical_crossentropy",
    "categorical_focal_crossentropy", "sparse_categorical_crossentropy",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "huber", "log_cosh", "kl_divergence", "poisson",
    "hinge", "squared_hinge", "categorical_hinge", "cosine_similarity",
    "mse", "mae", "mape", "msle", "kld", "bce", "MSE", "MAE", "MAPE", "MSLE", "KLD", "BCE",
    "logcosh", "kullback_leibler_divergence", "huber_loss",
    "get", "serialize", "deserialize",
]

# kernel kinds and parameter slots (csrc/losses.h)
(_MSE, _MAE, _MAPE, _MSLE, _HUBER, _LOGCOSH, _HINGE, _SQUARED_HINGE, _POISSON, _KLD, _BCE,
 _BCE_LOGITS, _BFOCAL, _BFOCAL_LOGITS, _CCE, _CCE_LOGITS, _SPARSE_CE, _SPARSE_CE_LOGITS,
 _CFOCAL, _CFOCAL_LOGITS, _CATEGORICAL_HINGE, _COSINE) = range(22)
_P_SMOOTHING, _P_DELTA, _P_ALPHA, _P_GAMMA, _P_BALANCING, _P_IGNORE, _P_HAS_IGNORE = range(7)
_N_PARAMS = 7

_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def _fail(msg, *args):
    raise ValueError(msg % args if args else msg)


def _real(value, arg, who, lo=None, hi=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        _fail("%s: %s must be a finite number, got %r", who, arg, value)
    value = float(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        _fail("%s: %s must be in [%s, %s], got %r", who, arg, lo, hi, value)
    return value


def _last_axis(axis, who):
    if axis != -1:
        _fail("%s: only axis=-1 (the last axis) is supported by fastcnn, got axis=%r",
              who, axis)
    return -1


class Loss:
    """Base class of fastcnn's losses (Keras' ``keras.losses.Loss``).

    ``loss(y_true, y_pred, sample_weight=None)`` returns the reduced loss as a Python float
    (a NumPy array of weighted per-sample losses with ``reduction=None``).

    Args:
        name: the loss's name (default: its Keras name, e.g. ``"binary_crossentropy"``).
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"`` or ``None``/``"none"`` (see the module docstring).
        dtype: accepted for Keras code; only ``None`` or ``"float32"``.

    Raises:
        ValueError: for an unknown reduction or dtype.
    """

    _default_name = "loss"
    #: True for the cross-entropies (the ``accuracy`` metric can use their hit count).
    is_crossentropy = False
    #: Whether ``compute`` receives logits; the cross-entropies set it from their argument.
    from_logits = True
    #: The activation whose pre-activation output this loss can take instead of its output
    #: (``"softmax"`` / ``"sigmoid"``), or None.
    logits_activation = None

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            _fail("%s: invalid value for argument `reduction`. Expected one of %s, received "
                  "reduction=%r", type(self).__name__,
                  ", ".join(repr(r) for r in _REDUCTIONS), reduction)
        if dtype not in (None, "float32", np.float32):
            _fail("%s: fastcnn computes losses in float32 (double accumulation); dtype=%r is "
                  "not supported", type(self).__name__, dtype)
        self.name = name or self._default_name
        self.reduction = reduction

    def get_config(self):
        """The loss's constructor arguments (what ``from_config`` takes back)."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        """A loss from ``get_config()``'s dictionary."""
        config = dict(config)
        config.pop("dtype", None)
        config.pop("fn", None)
        return cls(**config)

    # -- what the trainer uses ------------------------------------------------------------
    def prepare_targets(self, y, output_shape, what="y"):
        """Check and convert all targets once per call (an array the batches slice).

        Args:
            y: the targets as given by the user.
            output_shape: the model output's shape for these samples (N, ...).
            what: the argument's name for error messages.

        Returns:
            The targets in the form ``compute`` takes.

        Raises:
            ValueError: when y does not fit the loss or the output shape.
        """
        raise NotImplementedError

    def compute(self, output, targets, grad_out, logits, sample_weight=None):
        """(loss, d loss / d output, n_correct or None) for one batch.

        Args:
            output: the model's output (pre-activation logits when ``logits``).
            targets: a batch of ``prepare_targets``' result.
            grad_out: a float32 array of output's shape for the gradient, or None.
            logits: whether ``output`` holds logits.
            sample_weight: per-sample weights (N,) or per-loss-value weights, or None.

        Returns:
            The reduced loss (float), the gradient (``grad_out``) and, for the categorical
            cross-entropies, the number of rows whose argmax matches the target.
        """
        raise NotImplementedError

    def prepare_sample_weight(self, sample_weight, output_shape, what="sample_weight"):
        """Check per-sample weights once per call: float32 of shape (N,) or of the
        per-sample loss shape ``output_shape[:-1]``.

        Raises:
            ValueError: for a wrong shape, NaN/infinite or negative weights.
        """
        return _sample_weights(sample_weight, output_shape, type(self).__name__, what)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of ``y_pred`` against ``y_true`` (see the class docstring).

        Args:
            y_true: targets; y_pred: predictions (probabilities unless ``from_logits``).
            sample_weight: optional weights (N,) or of the per-sample loss shape.

        Returns:
            A Python float, or the weighted per-sample losses with ``reduction=None``.

        Raises:
            ValueError: for shapes, labels or weights that do not fit.
        """
        y_pred = np.asarray(y_pred)
        if y_pred.dtype.kind not in "biuf":
            _fail("%s: y_pred must be numeric, got dtype %s", self.name, y_pred.dtype)
        y_pred = np.ascontiguousarray(y_pred, dtype=np.float32)
        if y_pred.ndim == 0:
            _fail("%s: y_pred must have at least one dimension, got a scalar", self.name)
        if not np.all(np.isfinite(y_pred)):
            _fail("%s: y_pred contains NaN or infinite values", self.name)
        targets = self.prepare_targets(y_true, y_pred.shape, "y_true")
        sw = None
        if sample_weight is not None:
            sw = self.prepare_sample_weight(sample_weight, y_pred.shape)
        return self.compute(y_pred, targets, None, self.from_logits, sw)[0]

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in self.get_config().items()))


def _sample_weights(sw, output_shape, who, what):
    sw = np.asarray(sw)
    if sw.dtype.kind not in "biuf":
        _fail("%s: %s must be numeric, got dtype %s", who, what, sw.dtype)
    n = output_shape[0]
    loss_shape = tuple(output_shape[:-1]) if len(output_shape) > 1 else ()
    if sw.ndim == 2 and sw.shape == (n, 1) and loss_shape != (n, 1):
        sw = sw.reshape(n)
    if sw.shape != (n,) and sw.shape != loss_shape:
        _fail("%s: %s must have shape (%d,) (one weight per sample)%s, got %s", who, what, n,
              " or %s" % (loss_shape,) if len(loss_shape) > 1 else "", sw.shape)
    sw = np.ascontiguousarray(sw, dtype=np.float32)
    if not np.all(np.isfinite(sw)):
        _fail("%s: %s contains NaN or infinite values", who, what)
    if sw.size and sw.min() < 0:
        _fail("%s: %s must be >= 0, got %r", who, what, float(sw.min()))
    return sw


def _class_ids(y, output_shape, loss_name, what, ignore_class=None):
    """Integer class ids of shape output_shape[:-1] (int64), checked to be in [0, C)
    (labels equal to ``ignore_class`` may be anything)."""
    y = np.asarray(y)
    n, classes = output_shape[0], output_shape[-1]
    want = tuple(output_shape[:-1])
    if y.shape == want + (1,):
        y = y.reshape(want)
    if y.ndim != len(want):
        if len(want) == 1:
            _fail("%s expects integer class ids of shape (N,) or (N, 1); %s has shape %s. For "
                  "one-hot labels use CategoricalCrossentropy "
                  "(loss='categorical_crossentropy').", loss_name, what, y.shape)
        _fail("%s expects integer class ids of shape %s; %s has shape %s", loss_name,
              (None,) + want[1:], what, y.shape)
    if y.shape[0] != n:
        _fail("%s: %s has %d labels but there are %d samples", loss_name, what, y.shape[0], n)
    if y.shape != want:
        _fail("%s: %s has shape %s but the model output needs class ids of shape %s",
              loss_name, what, y.shape, (None,) + want[1:])
    if y.dtype.kind == "b" or y.dtype.kind not in "iuf":
        _fail("%s: %s must hold integer class ids, got dtype %s", loss_name, what, y.dtype)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if np.any(bad):
            _fail("%s: %s must hold integer class ids, got non-integer values (e.g. %r)",
                  loss_name, what, y.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]])
    if y.size:
        check = y if ignore_class is None else y[y != ignore_class]
        if check.size:
            lo, hi = check.min(), check.max()
            if lo < 0 or hi >= classes:
                _fail("%s: %s contains class ids in [%s, %s], but the model outputs %d classes, "
                      "so labels must be in [0, %d)%s", loss_name, what, lo, hi, classes,
                      classes, "" if ignore_class is None else
                      " (or equal ignore_class=%r)" % (ignore_class,))
    return np.ascontiguousarray(y, dtype=np.int64)


def _float_targets(y, output_shape, loss_name, what):
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        _fail("%s: %s must be numeric, got dtype %s", loss_name, what, y.dtype)
    want = tuple(output_shape)
    if y.shape != want:
        if y.size == int(np.prod(want)) and y.shape[:1] == want[:1] and (
                y.shape + (1,) == want or want + (1,) == y.shape):
            y = y.reshape(want)  # (N,) targets for an (N, 1) output, as Keras
        else:
            _fail("%s: %s has shape %s but the model output has shape %s",
                  loss_name, what, y.shape, (None,) + want[1:])
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        _fail("%s: %s contains NaN or infinite values", loss_name, what)
    return y


class _KernelLoss(Loss):
    """A loss computed by ``fc_loss_rows``: subclasses name their kernel kind(s)."""

    _kind = None         # the kernel on the output as given
    _kind_logits = None  # the kernel on logits (cross-entropies)
    _sparse = False
    _ignore_class = None

    def _params(self):
        p = np.zeros(_N_PARAMS, np.float64)
        p[_P_SMOOTHING] = getattr(self, "label_smoothing", 0.0)
        return p

    def prepare_targets(self, y, output_shape, what="y"):
        if len(output_shape) < 1:
            _fail("%s: y_pred must have at least one dimension", type(self).__name__)
        if self._sparse:
            return _class_ids(y, output_shape, type(self).__name__, what, self._ignore_class)
        return _float_targets(y, output_shape, type(self).__name__, what)

    def compute(self, output, targets, grad_out, logits, sample_weight=None):
        name = type(self).__name__
        # losses without a logits form (from_logits is True for them) take the output as is
        kind = self._kind_logits if logits and self._kind_logits is not None else self._kind
        if grad_out is not None and self.reduction in (None, "none"):
            _fail("%s: reduction=%r gives per-sample losses; training needs a scalar loss "
                  "(use 'sum_over_batch_size', 'sum', 'mean' or 'mean_with_sample_weight')",
                  name, self.reduction)
        shape = output.shape
        c = shape[-1] if len(shape) > 1 else shape[0]
        rows = output.size // c if c else 0
        pred = np.ascontiguousarray(output, dtype=np.float32).reshape(rows, c)
        labels = target = None
        if self._sparse:
            labels = np.ascontiguousarray(targets, dtype=np.int64).reshape(-1)
            if labels.shape[0] != rows:
                _fail("%s: got %d labels for %d rows of predictions", name, labels.shape[0],
                      rows)
        else:
            target = np.ascontiguousarray(targets, dtype=np.float32)
            if target.size != output.size:
                _fail("%s: targets of shape %s do not match predictions of shape %s", name,
                      target.shape, shape)
            target = target.reshape(rows, c)
        params = self._params()
        valid = None
        if self._sparse and self._ignore_class is not None:
            params[_P_IGNORE] = self._ignore_class
            params[_P_HAS_IGNORE] = 1.0
            valid = labels != self._ignore_class
        weights, per = None, 1
        if sample_weight is not None:
            weights = sample_weight.reshape(-1)
            per = rows // weights.shape[0] if weights.shape[0] else 1
        # the divisor of the weighted sum (keras.losses.loss.reduce_weighted_values)
        red = self.reduction
        if red == "sum":
            divisor = 1.0
        elif red == "mean_with_sample_weight" and (weights is not None or valid is not None):
            w_rows = (np.repeat(weights, per) if weights is not None and per > 1
                      else weights)
            if valid is None:
                divisor = float(np.sum(w_rows, dtype=np.float64))
            elif w_rows is None:
                divisor = float(np.count_nonzero(valid))
            else:
                divisor = float(np.sum(w_rows[valid], dtype=np.float64))
        elif valid is not None and red not in (None, "none"):
            divisor = float(np.count_nonzero(valid))
        else:
            divisor = float(rows if len(shape) > 1 else 1)
        scale = 1.0 / divisor if divisor != 0.0 else 0.0
        row_out = np.empty(rows, np.float64) if red in (None, "none") else None
        d = None
        if grad_out is not None:
            if (not isinstance(grad_out, np.ndarray) or grad_out.dtype != np.float32
                    or grad_out.shape != shape or not grad_out.flags.c_contiguous):
                _fail("%s: grad_out must be a C-contiguous float32 array of shape %s", name,
                      shape)
            d = grad_out.reshape(rows, c)
        total, correct = _ext.loss_rows(kind, pred, target, labels, params, weights, per,
                                        scale, d, row_out)
        if row_out is not None:
            out = row_out.astype(np.float32).reshape(shape[:-1] if len(shape) > 1 else ())
            return (out if out.ndim else float(out)), grad_out, None
        n_correct = int(correct) if self.is_crossentropy and self.logits_activation == \
            "softmax" else None
        return total * scale, grad_out, n_correct


# ================================================================ probabilistic losses
class BinaryCrossentropy(_KernelLoss):
    """Binary cross-entropy (Keras ``keras.losses.BinaryCrossentropy``).

    The per-sample loss is the mean over the last axis of
    ``-(y log p + (1 - y) log(1 - p))``, p clipped to [1e-7, 1 - 1e-7]; with
    ``from_logits=True`` the exact ``softplus(x) - x y``.

    Args:
        from_logits: whether y_pred holds logits (default False: probabilities). A model
            ending in a sigmoid trains from its logits either way (exact gradient).
        label_smoothing: in [0, 1]; targets become ``y (1 - s) + s / 2``.
        axis: -1 only.
        reduction, name, dtype: see ``Loss``.

    Raises:
        ValueError: for label_smoothing outside [0, 1] or another axis.
    """

    _default_name = "binary_crossentropy"
    _kind, _kind_logits = _BCE, _BCE_LOGITS
    is_crossentropy = True
    logits_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        who = type(self).__name__
        self.from_logits = bool(from_logits)
        self.label_smoothing = _real(label_smoothing, "label_smoothing", who, 0.0, 1.0)
        self.axis = _last_axis(axis, who)

    def get_config(self):
        c = super().get_config()
        c.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                 axis=self.axis)
        return c


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """Focal binary cross-entropy (Keras ``keras.losses.BinaryFocalCrossentropy``):
    ``(1 - p_t)^gamma * bce``, times ``alpha`` / ``1 - alpha`` for positives / negatives
    with ``apply_class_balancing``; mean over the last axis.

    Args:
        apply_class_balancing: weigh positives by alpha, negatives by 1 - alpha.
        alpha: the balancing weight (default 0.25); gamma: the focusing power (default 2).
        from_logits, label_smoothing, axis, reduction, name, dtype: as BinaryCrossentropy.

    Raises:
        ValueError: for a negative gamma or a non-finite alpha.
    """

    _default_name = "binary_focal_crossentropy"
    _kind, _kind_logits = _BFOCAL, _BFOCAL_LOGITS

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_focal_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        who = type(self).__name__
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = _real(alpha, "alpha", who)
        self.gamma = _real(gamma, "gamma", who, 0.0)

    def _params(self):
        p = super()._params()
        p[_P_ALPHA], p[_P_GAMMA] = self.alpha, self.gamma
        p[_P_BALANCING] = float(self.apply_class_balancing)
        return p

    def get_config(self):
        c = super().get_config()
        c.update(apply_class_balancing=self.apply_class_balancing, alpha=self.alpha,
                 gamma=self.gamma)
        return c


class CategoricalCrossentropy(_KernelLoss):
    """Cross-entropy for one-hot (or probability) targets (Keras
    ``keras.losses.CategoricalCrossentropy``): ``-sum(y log p)`` per sample, p renormalised
    and clipped to [1e-7, 1 - 1e-7]; from logits an exact log-softmax.

    Args:
        from_logits: whether y_pred holds logits (default False). A model ending in a
            softmax trains from its logits either way (exact gradient).
        label_smoothing: in [0, 1]; targets become ``y (1 - s) + s / classes``.
        axis: -1 only.
        reduction, name, dtype: see ``Loss``.

    Raises:
        ValueError: for label_smoothing outside [0, 1], another axis, or targets that are
            integer class ids (use SparseCategoricalCrossentropy).
    """

    _default_name = "categorical_crossentropy"
    _kind, _kind_logits = _CCE, _CCE_LOGITS
    is_crossentropy = True
    logits_activation = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        who = type(self).__name__
        self.axis = _last_axis(axis, who)
        self.label_smoothing = _real(label_smoothing, "label_smoothing", who, 0.0, 1.0)
        self.from_logits = bool(from_logits)

    def get_config(self):
        c = super().get_config()
        c.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing,
                 axis=self.axis)
        return c

    def prepare_targets(self, y, output_shape, what="y"):
        y_arr = np.asarray(y)
        name = type(self).__name__
        if len(output_shape) < 2:
            _fail("%s: expected a model output of shape (N, classes), got %s",
                  name, tuple(output_shape))
        if y_arr.shape != tuple(output_shape):
            if y_arr.shape == tuple(output_shape[:-1]) or \
                    y_arr.shape == tuple(output_shape[:-1]) + (1,):
                _fail("%s expects one-hot targets of shape (N, %d); %s has shape %s. For integer "
                      "class ids use SparseCategoricalCrossentropy "
                      "(loss='sparse_categorical_crossentropy') or "
                      "fastcnn.utils.to_categorical(y, %d).", name, output_shape[-1], what,
                      y_arr.shape, output_shape[-1])
            _fail("%s: %s has shape %s but the model output has shape %s", name, what,
                  y_arr.shape, (None,) + tuple(output_shape[1:]))
        return _float_targets(y_arr, output_shape, name, what)


class CategoricalFocalCrossentropy(CategoricalCrossentropy):
    """Focal categorical cross-entropy (Keras ``keras.losses.CategoricalFocalCrossentropy``):
    ``sum(alpha (1 - p)^gamma * -y log p)`` per sample, p renormalised and clipped.

    Args:
        alpha: the weighting factor (default 0.25); gamma: the focusing power (default 2).
        from_logits, label_smoothing, axis, reduction, name, dtype: as
            CategoricalCrossentropy.

    Raises:
        ValueError: for a negative gamma or a non-finite alpha.
    """

    _default_name = "categorical_focal_crossentropy"
    _kind, _kind_logits = _CFOCAL, _CFOCAL_LOGITS
    is_crossentropy = False  # not the cross-entropy hit count of "accuracy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy",
                 dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)
        who = type(self).__name__
        self.alpha = _real(alpha, "alpha", who)
        self.gamma = _real(gamma, "gamma", who, 0.0)

    def _params(self):
        p = super()._params()
        p[_P_ALPHA], p[_P_GAMMA] = self.alpha, self.gamma
        return p

    def get_config(self):
        c = super().get_config()
        c.update(alpha=self.alpha, gamma=self.gamma)
        return c


class SparseCategoricalCrossentropy(_KernelLoss):
    """Cross-entropy for integer class ids (Keras
    ``keras.losses.SparseCategoricalCrossentropy``); labels of shape (N,) or (N, 1), any
    int/uint dtype (or integral floats).

    Args:
        from_logits: whether y_pred holds logits (default False). A model ending in a
            softmax trains from its logits either way (exact gradient).
        ignore_class: a label value whose samples get no loss and no gradient;
            ``sum_over_batch_size`` then divides by the number of the other samples.
        axis: -1 only.
        reduction, name, dtype: see ``Loss``.

    Raises:
        ValueError: for labels out of [0, classes) (other than ignore_class) or
            non-integer labels.
    """

    _default_name = "sparse_categorical_crossentropy"
    _kind, _kind_logits = _SPARSE_CE, _SPARSE_CE_LOGITS
    _sparse = True
    is_crossentropy = True
    logits_activation = "softmax"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 axis=-1, name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        who = type(self).__name__
        if ignore_class is not None and (isinstance(ignore_class, bool) or
                                         not isinstance(ignore_class, numbers.Integral)):
            _fail("%s: ignore_class must be an integer or None, got %r", who, ignore_class)
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self._ignore_class = self.ignore_class
        self.axis = _last_axis(axis, who)
        self.from_logits = bool(from_logits)

    def get_config(self):
        c = super().get_config()
        c.update(from_logits=self.from_logits, ignore_class=self.ignore_class)
        return c


class KLDivergence(_KernelLoss):
    """Kullback-Leibler divergence (Keras ``keras.losses.KLDivergence``):
    ``sum(y log(y / p))`` over the last axis, y and p clipped to [1e-7, 1].

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "kl_divergence"
    _kind = _KLD

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name, reduction, dtype)


class Poisson(_KernelLoss):
    """Poisson loss (Keras ``keras.losses.Poisson``): mean of ``p - y log(p + 1e-7)``.

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "poisson"
    _kind = _POISSON

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(name, reduction, dtype)


# ================================================================ regression losses
class MeanSquaredError(_KernelLoss):
    """Mean of ``(y_pred - y_true)^2`` over the last axis (Keras
    ``keras.losses.MeanSquaredError``).

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "mean_squared_error"
    _kind = _MSE

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype)


class MeanAbsoluteError(_KernelLoss):
    """Mean of ``|y_pred - y_true|`` over the last axis (Keras
    ``keras.losses.MeanAbsoluteError``).

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "mean_absolute_error"
    _kind = _MAE

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name, reduction, dtype)


class MeanAbsolutePercentageError(_KernelLoss):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))`` over the last axis (Keras
    ``keras.losses.MeanAbsolutePercentageError``).

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "mean_absolute_percentage_error"
    _kind = _MAPE

    def __init__(self, reduction="sum_over_batch_size",
                 name="mean_absolute_percentage_error", dtype=None):
        super().__init__(name, reduction, dtype)


class MeanSquaredLogarithmicError(_KernelLoss):
    """Mean of ``(log(max(p, 1e-7) + 1) - log(max(y, 1e-7) + 1))^2`` over the last axis
    (Keras ``keras.losses.MeanSquaredLogarithmicError``).

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "mean_squared_logarithmic_error"
    _kind = _MSLE

    def __init__(self, reduction="sum_over_batch_size",
                 name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(name, reduction, dtype)


class Huber(_KernelLoss):
    """Huber loss (Keras ``keras.losses.Huber``): per element ``0.5 e^2`` for
    ``|e| <= delta``, else ``delta |e| - 0.5 delta^2``; mean over the last axis.

    Args:
        delta: where the loss turns from quadratic to linear (default 1.0).
        reduction, name, dtype: see ``Loss`` (default name ``"huber_loss"``).

    Raises:
        ValueError: for a negative or non-finite delta.
    """

    _default_name = "huber_loss"
    _kind = _HUBER

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        super().__init__(name, reduction, dtype)
        self.delta = _real(delta, "delta", type(self).__name__, 0.0)

    def _params(self):
        p = super()._params()
        p[_P_DELTA] = self.delta
        return p

    def get_config(self):
        c = super().get_config()
        c["delta"] = self.delta
        return c


class LogCosh(_KernelLoss):
    """Mean of ``log(cosh(y_pred - y_true))`` over the last axis, computed without
    overflow (Keras ``keras.losses.LogCosh``).

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "log_cosh"
    _kind = _LOGCOSH

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(name, reduction, dtype)


class CosineSimilarity(_KernelLoss):
    """``-sum(normalize(y_true) * normalize(y_pred))`` over the last axis (Keras
    ``keras.losses.CosineSimilarity``; -1 for parallel vectors).

    Args:
        axis: -1 only.
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "cosine_similarity"
    _kind = _COSINE

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity",
                 dtype=None):
        super().__init__(name, reduction, dtype)
        self.axis = _last_axis(axis, type(self).__name__)


# ================================================================ hinge losses
class Hinge(_KernelLoss):
    """Mean of ``max(1 - y p, 0)`` over the last axis (Keras ``keras.losses.Hinge``);
    labels in {0, 1} (all of a batch) are mapped to {-1, 1} first, as Keras does.

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "hinge"
    _kind = _HINGE

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(name, reduction, dtype)


class SquaredHinge(_KernelLoss):
    """Mean of ``max(1 - y p, 0)^2`` over the last axis (Keras
    ``keras.losses.SquaredHinge``; {0, 1} labels mapped to {-1, 1}).

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "squared_hinge"
    _kind = _SQUARED_HINGE

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(name, reduction, dtype)


class CategoricalHinge(_KernelLoss):
    """``max(max((1 - y) p) - sum(y p) + 1, 0)`` per sample (Keras
    ``keras.losses.CategoricalHinge``).

    Args:
        reduction, name, dtype: see ``Loss``.
    """

    _default_name = "categorical_hinge"
    _kind = _CATEGORICAL_HINGE

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(name, reduction, dtype)


# ================================================================ function forms
def _per_sample(loss, y_true, y_pred):
    return loss(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample binary cross-entropy (Keras ``keras.losses.binary_crossentropy``).

    Args:
        y_true: targets in [0, 1]; y_pred: probabilities (or logits with from_logits).
        from_logits, label_smoothing, axis: as BinaryCrossentropy.

    Returns:
        float32 array of shape ``y_pred.shape[:-1]`` (a float for 1-D inputs).
    """
    return _per_sample(BinaryCrossentropy(from_logits, label_smoothing, axis, reduction=None),
                       y_true, y_pred)


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample focal binary cross-entropy (see BinaryFocalCrossentropy).

    Returns:
        float32 array of shape ``y_pred.shape[:-1]``.
    """
    return _per_sample(BinaryFocalCrossentropy(apply_class_balancing, alpha, gamma,
                                               from_logits, label_smoothing, axis,
                                               reduction=None), y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample categorical cross-entropy (see CategoricalCrossentropy).

    Returns:
        float32 array of shape ``y_pred.shape[:-1]``.
    """
    return _per_sample(CategoricalCrossentropy(from_logits, label_smoothing, axis,
                                               reduction=None), y_true, y_pred)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):
    """Per-sample focal categorical cross-entropy (see CategoricalFocalCrossentropy).

    Returns:
        float32 array of shape ``y_pred.shape[:-1]``.
    """
    return _per_sample(CategoricalFocalCrossentropy(alpha, gamma, from_logits, label_smoothing,
                                                    axis, reduction=None), y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-sample sparse categorical cross-entropy (see SparseCategoricalCrossentropy).

    Returns:
        float32 array of shape ``y_pred.shape[:-1]`` (0 where the label is ignore_class).
    """
    return _per_sample(SparseCategoricalCrossentropy(from_logits, ignore_class, None, axis),
                       y_true, y_pred)


def _simple(cls, doc):
    def fn(y_true, y_pred):
        return _per_sample(cls(reduction=None), y_true, y_pred)
    fn.__doc__ = ("Per-sample %s (Keras ``keras.losses.%s``; see %s).\n\n"
                  "    Args:\n        y_true: targets; y_pred: predictions (same shape).\n\n"
                  "    Returns:\n        float32 array of shape ``y_pred.shape[:-1]``.\n"
                  % (doc, cls._default_name if cls is not Huber else "huber", cls.__name__))
    return fn


mean_squared_error = _simple(MeanSquaredError, "mean squared error")
mean_squared_error.__name__ = "mean_squared_error"
mean_absolute_error = _simple(MeanAbsoluteError, "mean absolute error")
mean_absolute_error.__name__ = "mean_absolute_error"
mean_absolute_percentage_error = _simple(MeanAbsolutePercentageError,
                                         "mean absolute percentage error")
mean_absolute_percentage_error.__name__ = "mean_absolute_percentage_error"
mean_squared_logarithmic_error = _simple(MeanSquaredLogarithmicError,
                                         "mean squared logarithmic error")
mean_squared_logarithmic_error.__name__ = "mean_squared_logarithmic_error"
log_cosh = _simple(LogCosh, "log-cosh error")
log_cosh.__name__ = "log_cosh"
kl_divergence = _simple(KLDivergence, "Kullback-Leibler divergence")
kl_divergence.__name__ = "kl_divergence"
poisson = _simple(Poisson, "Poisson loss")
poisson.__name__ = "poisson"
hinge = _simple(Hinge, "hinge loss")
hinge.__name__ = "hinge"
squared_hinge = _simple(SquaredHinge, "squared hinge loss")
squared_hinge.__name__ = "squared_hinge"
categorical_hinge = _simple(CategoricalHinge, "categorical hinge loss")
categorical_hinge.__name__ = "categorical_hinge"


def huber(y_true, y_pred, delta=1.0):
    """Per-sample Huber loss (Keras ``keras.losses.huber``; see Huber).

    Returns:
        float32 array of shape ``y_pred.shape[:-1]``.
    """
    return _per_sample(Huber(delta, reduction=None), y_true, y_pred)


def cosine_similarity(y_true, y_pred, axis=-1):
    """Per-sample negative cosine similarity (Keras ``keras.losses.cosine_similarity``).

    Returns:
        float32 array of shape ``y_pred.shape[:-1]``.
    """
    return _per_sample(CosineSimilarity(axis, reduction=None), y_true, y_pred)


# Keras' short and legacy aliases
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
bce = BCE = binary_crossentropy
logcosh = log_cosh
huber_loss = huber

_LOSS_CLASSES = (BinaryCrossentropy, BinaryFocalCrossentropy, CategoricalCrossentropy,
                 CategoricalFocalCrossentropy, SparseCategoricalCrossentropy, MeanSquaredError,
                 MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
                 Huber, LogCosh, KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge,
                 CosineSimilarity)
_CLASSES = {c.__name__: c for c in _LOSS_CLASSES}
# function -> (class, the function's keyword arguments the class takes)
_FUNCTIONS = {
    binary_crossentropy: BinaryCrossentropy,
    binary_focal_crossentropy: BinaryFocalCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    categorical_focal_crossentropy: CategoricalFocalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    huber: Huber,
    log_cosh: LogCosh,
    kl_divergence: KLDivergence,
    poisson: Poisson,
    hinge: Hinge,
    squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge,
    cosine_similarity: CosineSimilarity,
}
_BY_NAME = {fn.__name__: cls for fn, cls in _FUNCTIONS.items()}
_BY_NAME.update({
    "mse": MeanSquaredError, "mae": MeanAbsoluteError, "mape": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "kld": KLDivergence, "bce": BinaryCrossentropy,
    "kullback_leibler_divergence": KLDivergence, "logcosh": LogCosh, "huber_loss": Huber,
})


def get(identifier):
    """A loss instance from a name, class, instance, function or config.

    Args:
        identifier: a Keras loss name or alias (``"binary_crossentropy"``, ``"bce"``,
            ``"mae"``, ``"huber"``, ``"kld"``, ``"CategoricalHinge"``...), a Loss class or
            instance, one of this module's loss functions, or a ``{"class_name", "config"}``
            dictionary.

    Returns:
        A ``Loss`` instance (names and functions give the class with Keras' defaults).

    Raises:
        ValueError: for an unknown name; TypeError: for a custom function or other object.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        cls = (_CLASSES.get(identifier) or _BY_NAME.get(identifier)
               or _BY_NAME.get(identifier.lower()))
        if cls is None:
            raise ValueError("Unknown loss %r. Valid names: %s"
                             % (identifier, ", ".join(sorted(set(_BY_NAME) | set(_CLASSES)))))
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return deserialize(identifier)
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if callable(identifier):
        raise TypeError("Custom loss functions (%r) are not supported: fastcnn trains with "
                        "losses that have a kernel gradient. Use one of: %s, or a "
                        "fastcnn.losses.Loss subclass." % (identifier, ", ".join(sorted(_BY_NAME))))
    raise TypeError("Could not interpret loss %r; expected one of %s or a Loss instance"
                    % (identifier, ", ".join(sorted(_BY_NAME))))


def serialize(loss):
    """``{"class_name": ..., "config": ...}`` for a loss instance (or a loss function,
    serialised as its class with Keras' defaults).

    Raises:
        TypeError: for something that is not a fastcnn loss.
    """
    if not isinstance(loss, Loss):
        loss = get(loss)
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config, custom_objects=None):
    """The loss ``serialize`` described (a name string is accepted too, as ``get``).

    Args:
        config: ``{"class_name": ..., "config": {...}}`` or a loss name.
        custom_objects: optional {class name: Loss subclass} for user losses.

    Raises:
        ValueError: for an unknown class name.
    """
    if isinstance(config, str):
        cls = (custom_objects or {}).get(config)
        return cls() if cls is not None else get(config)
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError("Unknown loss class %r. Known: %s" % (name, ", ".join(sorted(_CLASSES))))
    return cls.from_config(config.get("config", {}))
