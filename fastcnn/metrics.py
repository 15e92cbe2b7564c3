"""Metrics with Keras 3 names. During fit they are running sample-weighted means over the
epoch (what Keras reports); ``update_state`` / ``result`` / ``reset_state`` work standalone.

``'accuracy'`` / ``'acc'`` resolve as Keras' compile does, from the shapes of the targets and
the model output: one output unit -> binary accuracy; integer labels ((N,) or (N, 1)) with
several units -> sparse categorical accuracy; otherwise categorical accuracy. The counting
work is an argmax over the (N, classes) output, or the count the cross-entropy kernel already
returns.
"""
import numpy as np

__all__ = ["Metric", "Mean", "SparseCategoricalAccuracy", "CategoricalAccuracy",
           "BinaryAccuracy", "MeanSquaredError", "MeanAbsoluteError", "get", "serialize"]


class Metric:
    """A running mean: ``total / count`` (counts are samples)."""

    _direction = "up"
    _default_name = "metric"
    uses_ce_count = False

    def __init__(self, name=None, dtype=None):
        self.name = name or self._default_name
        self.reset_state()

    def reset_state(self):
        """Forget every update (the result is 0 again)."""
        self._total = 0.0
        self._count = 0

    def result(self):
        """The current value: the mean over the samples seen since the last reset.

        Returns:
            float.
        """
        return float(self._total / self._count) if self._count else 0.0

    def _batch_sum(self, y, out, n_correct):
        """Sum of the per-sample metric over the batch (float)."""
        raise NotImplementedError

    def prepare(self, y_shape, out_shape):
        """Called by the trainer with the target and output shapes before the first batch
        (a metric whose kind depends on them, like 'accuracy', settles it here)."""

    def update_batch(self, y, out, n_correct=None):
        """Add one batch (the trainer's fast path; arrays already checked).

        Args:
            y: targets of the batch.
            out: model outputs of the batch, shape ``(N, ...)``.
            n_correct: the count of correct predictions when the loss kernel computed it, else ``None``.
        """
        self._total += self._batch_sum(y, out, n_correct)
        self._count += out.shape[0]

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add one batch of targets and predictions (Keras' API).

        Args:
            y_true: targets.
            y_pred: predictions, shape ``(N, ...)``.
            sample_weight: not supported (must be ``None``).

        Raises:
            ValueError: if ``sample_weight`` is given.
        """
        if sample_weight is not None:
            raise ValueError("%s: sample_weight is not supported by fastcnn" % self.name)
        y_pred = np.asarray(y_pred, dtype=np.float32)
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        self.update_batch(np.asarray(y_true), y_pred, None)

    def get_config(self):
        """The constructor arguments as a JSON-serialisable dict (Keras 3's keys).

        Returns:
            dict: ``cls.from_config(config)`` makes an equivalent object.
        """
        return {"name": self.name, "dtype": "float32"}

    @classmethod
    def from_config(cls, config):
        """Create an instance from the dict of :meth:`get_config`.

        Args:
            config: dict.

        Returns:
            A new instance.
        """
        return cls(**config)

    def __repr__(self):
        return "<%s name=%s result=%.4f>" % (type(self).__name__, self.name, self.result())


class Mean(Metric):
    _default_name = "mean"
    _direction = "down"

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        self._total += float(values.sum())
        self._count += values.size


def _labels_as_ids(y):
    """Class ids from (N,), (N, 1) or one-hot (N, C) targets."""
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=-1)
    return y.reshape(-1)


class SparseCategoricalAccuracy(Metric):
    """Fraction of samples whose argmax output equals the integer label."""

    _default_name = "sparse_categorical_accuracy"
    uses_ce_count = True

    def _batch_sum(self, y, out, n_correct):
        if n_correct is not None:
            return float(n_correct)
        return float(np.count_nonzero(out.argmax(axis=-1) == _labels_as_ids(y)))


class CategoricalAccuracy(SparseCategoricalAccuracy):
    """Fraction of samples whose argmax output equals the argmax of the one-hot target."""

    _default_name = "categorical_accuracy"


class BinaryAccuracy(Metric):
    """Fraction of outputs on the same side of ``threshold`` (0.5) as the 0/1 target."""

    _default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name, dtype)

    def _batch_sum(self, y, out, n_correct):
        y = y.reshape(out.shape)
        hits = (out > self.threshold) == (y > 0.5)
        return float(np.count_nonzero(hits)) / max(1, out[0].size)

    def get_config(self):
        c = super().get_config()
        c["threshold"] = self.threshold
        return c


class MeanSquaredError(Metric):
    _default_name = "mean_squared_error"
    _direction = "down"

    def _batch_sum(self, y, out, n_correct):
        d = out - y.reshape(out.shape)
        return float(np.mean(np.square(d, dtype=np.float64), axis=tuple(range(1, out.ndim))
                             ).sum()) if out.ndim > 1 else float(np.square(d).sum())


class MeanAbsoluteError(Metric):
    _default_name = "mean_absolute_error"
    _direction = "down"

    def _batch_sum(self, y, out, n_correct):
        d = np.abs(out - y.reshape(out.shape), dtype=np.float64)
        return float(d.mean(axis=tuple(range(1, out.ndim))).sum()) if out.ndim > 1 \
            else float(d.sum())


class _ResolvedAccuracy(Metric):
    """'accuracy' / 'acc': becomes sparse/categorical/binary accuracy once shapes are known."""

    def __init__(self, name):
        self._impl = None
        super().__init__(name)

    def resolve(self, y_shape, out_shape):
        if out_shape[-1] == 1:
            self._impl = BinaryAccuracy()
        elif len(y_shape) < len(out_shape) or (len(y_shape) == len(out_shape)
                                               and y_shape[-1] == 1):
            self._impl = SparseCategoricalAccuracy()
        else:
            self._impl = CategoricalAccuracy()
        self.uses_ce_count = self._impl.uses_ce_count

    def prepare(self, y_shape, out_shape):
        if self._impl is None:
            self.resolve(y_shape, out_shape)

    def _batch_sum(self, y, out, n_correct):
        if self._impl is None:
            self.resolve(y.shape, out.shape)
        return self._impl._batch_sum(y, out, n_correct)

    def get_config(self):
        return {"name": self.name}


_BY_NAME = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}
_CLASSES = {c.__name__: c for c in (SparseCategoricalAccuracy, CategoricalAccuracy,
                                    BinaryAccuracy, MeanSquaredError, MeanAbsoluteError)}


def get(identifier):
    """A metric name ('accuracy', 'acc', 'sparse_categorical_accuracy', 'mse', ...) or
    Metric instance -> a fresh Metric whose ``name`` is the key used in logs/History."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            return _ResolvedAccuracy(identifier)
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise ValueError("Unknown metric %r. Valid names: %s"
                             % (identifier, ", ".join(["accuracy", "acc"] + sorted(_BY_NAME))))
        return cls(name=identifier)
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise TypeError("Could not interpret metric %r: expected a name such as 'accuracy' or a "
                    "fastcnn.metrics.Metric instance" % (identifier,))


def serialize(metric):
    """Metrics given by name are saved as that name; objects as {class_name, config}."""
    if isinstance(metric, _ResolvedAccuracy):
        return metric.name
    return {"class_name": type(metric).__name__, "config": metric.get_config()}
