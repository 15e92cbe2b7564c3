"""Losses with Keras 3 names and defaults; the training step computes them with fastcnn.ops.

* ``SparseCategoricalCrossentropy`` / ``CategoricalCrossentropy`` with ``from_logits=True``
  run ``ops.softmax_cross_entropy`` (stable log-sum-exp; gradient ``(softmax - onehot)/N``).
* ``from_logits=False`` (Keras' default) means the model outputs probabilities. When the last
  layer ends in a softmax (``Dense(10, activation='softmax')`` or ``Activation('softmax')``)
  the model hands the loss the pre-softmax logits instead, which gives the exact loss and
  gradient of softmax + cross-entropy in one kernel call. Otherwise the output is treated as
  probabilities the Keras way (renormalised, clipped to [1e-7, 1 - 1e-7], ``-sum(y log p)``).
* ``MeanSquaredError`` runs ``ops.mean_squared_error`` (mean over all elements).

The reduction is Keras' default ``"sum_over_batch_size"``: the mean over the batch.
"""
import numpy as np

from . import ops

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy",
           "MeanSquaredError", "sparse_categorical_crossentropy", "categorical_crossentropy",
           "mean_squared_error", "mse", "get", "serialize", "deserialize"]

_EPSILON = 1e-7


def _fail(msg, *args):
    raise ValueError(msg % args if args else msg)


class Loss:
    """Base class. ``loss(y_true, y_pred)`` returns the mean loss as a Python float."""

    is_crossentropy = False
    from_logits = True

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in ("sum_over_batch_size", "mean", "auto", None):
            raise ValueError("%s: fastcnn supports only reduction='sum_over_batch_size' (the "
                             "batch mean); got reduction=%r" % (type(self).__name__, reduction))
        self.name = name or self._default_name
        self.reduction = "sum_over_batch_size"

    def get_config(self):
        """The constructor arguments as a JSON-serialisable dict (Keras 3's keys).

        Returns:
            dict: ``cls.from_config(config)`` makes an equivalent object.
        """
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        """Create an instance from the dict of :meth:`get_config`.

        Args:
            config: dict.

        Returns:
            A new instance.
        """
        config = dict(config)
        config.pop("dtype", None)
        return cls(**config)

    # -- internal API used by Sequential ------------------------------------------------
    def prepare_targets(self, y, output_shape, what="y"):
        """Check and convert all targets once per fit (returns the array batches slice)."""
        raise NotImplementedError

    def compute(self, output, targets, grad_out, logits):
        """(mean loss, d loss/d output, n_correct or None) for one batch.

        ``output`` is the model's output buffer (pre-softmax logits when ``logits``);
        ``grad_out`` is a preallocated float32 array of output's shape.
        """
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("%s: sample_weight is not supported by fastcnn" % self.name)
        y_pred = np.ascontiguousarray(y_pred, dtype=np.float32)
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        targets = self.prepare_targets(y_true, y_pred.shape, "y_true")
        loss, _, _ = self.compute(y_pred, targets, np.empty_like(y_pred), self.from_logits)
        return float(loss)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in self.get_config().items()))


def _class_ids(y, output_shape, loss_name, what):
    """Integer class ids (N,) int32 from (N,) or (N, 1) labels, checked to be in [0, C)."""
    y = np.asarray(y)
    n, classes = output_shape[0], output_shape[-1]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        _fail("%s expects integer class ids of shape (N,) or (N, 1); %s has shape %s. For "
              "one-hot labels use CategoricalCrossentropy (loss='categorical_crossentropy').",
              loss_name, what, y.shape)
    if y.shape[0] != n:
        _fail("%s: %s has %d labels but there are %d samples", loss_name, what, y.shape[0], n)
    if y.dtype.kind == "b" or y.dtype.kind not in "iuf":
        _fail("%s: %s must hold integer class ids, got dtype %s", loss_name, what, y.dtype)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            _fail("%s: %s must hold integer class ids, got non-integer values (e.g. %r)",
                  loss_name, what, y[np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0]])
    if y.size:
        lo, hi = y.min(), y.max()
        if lo < 0 or hi >= classes:
            _fail("%s: %s contains class ids in [%s, %s], but the model outputs %d classes, "
                  "so labels must be in [0, %d)", loss_name, what, lo, hi, classes, classes)
    return np.ascontiguousarray(y, dtype=np.int64)


def _float_targets(y, output_shape, loss_name, what):
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        _fail("%s: %s must be numeric, got dtype %s", loss_name, what, y.dtype)
    want = tuple(output_shape)
    if y.shape != want:
        if y.size == int(np.prod(want)) and y.shape[:1] == want[:1]:
            y = y.reshape(want)  # e.g. (N,) targets for an (N, 1) output
        else:
            _fail("%s: %s has shape %s but the model output has shape %s",
                  loss_name, what, y.shape, (None,) + want[1:])
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        _fail("%s: %s contains NaN or infinite values", loss_name, what)
    return y


def _probability_crossentropy(p, onehot_or_ids, grad_out):
    """Keras' cross-entropy on probabilities: renormalise, clip, -sum(y log p); with gradient.

    O(N * classes) NumPy on the model output only (the fallback when the model does not end
    in a softmax the loss could fuse with).
    """
    n, c = p.shape
    s = p.sum(axis=-1, keepdims=True)
    s = np.where(s == 0, 1.0, s)
    q = p / s
    qc = np.clip(q, _EPSILON, 1.0 - _EPSILON)
    if onehot_or_ids.ndim == 1:
        y = np.zeros((n, c), dtype=np.float32)
        y[np.arange(n), onehot_or_ids] = 1.0
        true_cls = onehot_or_ids
    else:
        y = onehot_or_ids
        true_cls = y.argmax(axis=-1)
    loss = float(-(y * np.log(qc)).sum() / max(n, 1))
    g = -(y / qc) * ((q > _EPSILON) & (q < 1.0 - _EPSILON))
    dp = (g - (g * q).sum(axis=-1, keepdims=True)) / s / max(n, 1)
    np.copyto(grad_out, dp, casting="unsafe")
    n_correct = int(np.count_nonzero(p.argmax(axis=-1) == true_cls))
    return loss, grad_out, n_correct


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy for integer class ids (shape (N,) or (N, 1), any int/uint dtype)."""

    _default_name = "sparse_categorical_crossentropy"
    is_crossentropy = True

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        if ignore_class is not None:
            raise ValueError("SparseCategoricalCrossentropy: ignore_class is not supported by "
                             "fastcnn")
        self.from_logits = bool(from_logits)

    def get_config(self):
        c = super().get_config()
        c.update(from_logits=self.from_logits, ignore_class=None)
        return c

    def prepare_targets(self, y, output_shape, what="y"):
        if len(output_shape) != 2:
            _fail("%s: expected a model output of shape (N, classes), got %s",
                  type(self).__name__, (None,) + tuple(output_shape[1:]))
        return _class_ids(y, output_shape, type(self).__name__, what)

    def compute(self, output, targets, grad_out, logits):
        if logits:
            return ops.softmax_cross_entropy(output, targets, dlogits=grad_out)
        return _probability_crossentropy(output, targets, grad_out)


class CategoricalCrossentropy(Loss):
    """Cross-entropy for one-hot (or probability) targets of shape (N, classes)."""

    _default_name = "categorical_crossentropy"
    is_crossentropy = True

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name, reduction, dtype)
        if axis != -1:
            raise ValueError("CategoricalCrossentropy: only axis=-1 is supported, got %r"
                             % (axis,))
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError("CategoricalCrossentropy: label_smoothing must be in [0, 1], got %r"
                             % (label_smoothing,))
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)

    def get_config(self):
        c = super().get_config()
        c.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=-1)
        return c

    def prepare_targets(self, y, output_shape, what="y"):
        y_arr = np.asarray(y)
        name = type(self).__name__
        if len(output_shape) != 2:
            _fail("%s: expected a model output of shape (N, classes), got %s",
                  name, (None,) + tuple(output_shape[1:]))
        if y_arr.shape != tuple(output_shape):
            if y_arr.ndim == 1 or (y_arr.ndim == 2 and y_arr.shape[1] == 1):
                _fail("%s expects one-hot targets of shape (N, %d); %s has shape %s. For integer "
                      "class ids use SparseCategoricalCrossentropy "
                      "(loss='sparse_categorical_crossentropy') or "
                      "fastcnn.utils.to_categorical(y, %d).", name, output_shape[-1], what,
                      y_arr.shape, output_shape[-1])
            _fail("%s: %s has shape %s but the model output has shape %s", name, what,
                  y_arr.shape, (None,) + tuple(output_shape[1:]))
        y = _float_targets(y_arr, output_shape, name, what)
        if self.label_smoothing:
            y = y * (1.0 - self.label_smoothing) + self.label_smoothing / y.shape[-1]
            y = np.ascontiguousarray(y, dtype=np.float32)
        return y

    def compute(self, output, targets, grad_out, logits):
        if logits:
            return ops.softmax_cross_entropy(output, targets, dlogits=grad_out)
        return _probability_crossentropy(output, targets, grad_out)


class MeanSquaredError(Loss):
    """mean((y_pred - y_true)^2) over all elements (Keras: over the last axis, then batch)."""

    _default_name = "mean_squared_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name, reduction, dtype)

    def prepare_targets(self, y, output_shape, what="y"):
        return _float_targets(y, output_shape, type(self).__name__, what)

    def compute(self, output, targets, grad_out, logits):
        loss, d = ops.mean_squared_error(output, targets, dy_pred=grad_out)
        return loss, d, None


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """Sparse categorical cross-entropy of integer labels (Keras' function).

    Args:
        y_true: class ids, shape ``(N,)`` or ``(N, 1)``.
        y_pred: probabilities (or logits with ``from_logits=True``), shape ``(N, classes)``.
        from_logits: whether ``y_pred`` are logits.

    Returns:
        float: the mean over the batch.
    """
    return SparseCategoricalCrossentropy(from_logits=from_logits)(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Categorical cross-entropy of one-hot targets (Keras' function).

    Args:
        y_true: one-hot (or soft) targets, shape ``(N, classes)``.
        y_pred: probabilities (or logits with ``from_logits=True``), same shape.
        from_logits: whether ``y_pred`` are logits.
        label_smoothing: float in [0, 1].

    Returns:
        float: the mean over the batch.
    """
    return CategoricalCrossentropy(from_logits=from_logits,
                                   label_smoothing=label_smoothing)(y_true, y_pred)


def mean_squared_error(y_true, y_pred):
    """Mean squared error (Keras' function; ``mse`` is an alias).

    Args:
        y_true: targets.
        y_pred: predictions of the same shape.

    Returns:
        float: the mean over the batch.
    """
    return MeanSquaredError()(y_true, y_pred)


mse = MSE = mean_squared_error

_BY_NAME = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
}
_CLASSES = {c.__name__: c for c in (SparseCategoricalCrossentropy, CategoricalCrossentropy,
                                    MeanSquaredError)}
_FUNCTIONS = {sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
              categorical_crossentropy: CategoricalCrossentropy,
              mean_squared_error: MeanSquaredError}


def get(identifier):
    """Loss name ('sparse_categorical_crossentropy', 'mse', ...), class, instance or config."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError("Unknown loss %r. Valid names: %s"
                             % (identifier, ", ".join(sorted(_BY_NAME))))
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
    """``{"class_name": ..., "config": ...}`` of a loss (Keras' format).

    Args:
        loss: a :class:`Loss`.

    Returns:
        dict.
    """
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config, custom_objects=None):
    """The loss of a :func:`serialize` dict.

    Args:
        config: dict with ``class_name`` and ``config``.
        custom_objects: optional dict of name -> class.

    Returns:
        Loss.

    Raises:
        ValueError: for an unknown class name.
    """
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError("Unknown loss class %r. Known: %s" % (name, ", ".join(sorted(_CLASSES))))
    return cls.from_config(config.get("config", {}))
