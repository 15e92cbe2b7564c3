"""The metric base classes: ``Metric`` (state as NumPy arrays), ``Sum``, ``Mean`` and
``MeanMetricWrapper``, with Keras 3's sample-weight rules (``reduce_to_samplewise_values``).

State is kept in float64 (Keras keeps float32), so a streamed result equals the one-shot
result over all batches to float64 rounding, and counts of up to 2**53 samples are exact.
"""
import numbers
import re

import numpy as np

from .. import utils

__all__ = ["Metric", "Sum", "Mean", "MeanMetricWrapper"]


def _snake(name):
    """Keras' to_snake_case for default metric names (``MeanIoU`` -> ``mean_io_u``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def check_dtype(dtype, who, allowed=("float32",)):
    """Metrics compute in float64 and report like Keras' float32; other dtypes are refused."""
    if dtype is None:
        return allowed[0]
    name = getattr(dtype, "name", dtype)
    if name not in allowed:
        raise ValueError("%s: dtype must be None or one of %s, got %r"
                         % (who, ", ".join(repr(a) for a in allowed), dtype))
    return name


def divide_no_nan(a, b):
    """a / b, 0 where b == 0 (Keras' ops.divide_no_nan)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras' rule: when ranks differ by one and the longer ends in 1, squeeze it (or expand
    a rank-1 partner)."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def as_array(x, who, what, dtype=np.float32):
    """x as a numeric NumPy array (a clear error for strings, objects, ragged lists)."""
    try:
        a = np.asarray(x)
    except Exception as e:
        raise TypeError("%s: %s must be an array of numbers (%s)" % (who, what, e)) from None
    if a.dtype.kind not in "biuf":
        raise TypeError("%s: %s must be numeric, got dtype %s" % (who, what, a.dtype))
    return a.astype(dtype, copy=False) if dtype is not None else a


def broadcast(a, shape, who, what, to_what="y_pred"):
    try:
        return np.broadcast_to(a, shape)
    except ValueError:
        raise ValueError("%s: %s of shape %s cannot be broadcast to the %s shape %s"
                         % (who, what, a.shape, to_what, tuple(shape))) from None


def reduce_to_samplewise_values(values, sample_weight, reduce_fn, who):
    """Keras' reduction_metrics.reduce_to_samplewise_values, in float64."""
    values = as_array(values, who, "values", np.float64)
    if sample_weight is not None:
        sample_weight = as_array(sample_weight, who, "sample_weight", np.float64)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        w_nd, v_nd = sample_weight.ndim, values.ndim
        if v_nd > w_nd:
            values = reduce_fn(values, axis=tuple(range(w_nd, v_nd)))
        sample_weight = broadcast(sample_weight, values.shape, who, "sample_weight",
                                  "values")
        values = values * sample_weight
        if w_nd > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, w_nd)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


def to_result(x):
    """A scalar result as a Python float, a vector as a float64 array."""
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


class Metric:
    """Base class of fastcnn's metrics (Keras 3 API).

    A metric keeps its state in arrays created with ``add_variable``: ``update_state``
    accumulates a batch, ``result`` reads the state, ``reset_state`` zeroes it, and calling
    the metric does update_state then result. ``variables`` lists the state arrays.

    Args:
        name: the metric's name (its key in ``fit`` logs); defaults to the class name in
            snake case.
        dtype: None or 'float32' (the state is float64 internally).
    """

    _direction = "up"

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError("%s: name must be a string, got %r" % (type(self).__name__, name))
        # unnamed metrics share Keras' session-wide auto names with layers (auc, auc_1, ...)
        self.name = name or utils._unique_name(_snake(type(self).__name__))
        self._dtype = check_dtype(dtype, type(self).__name__)
        self._variables = []

    @property
    def dtype(self):
        """The dtype of the result (``'float32'``, as Keras; the state is float64)."""
        return self._dtype

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        """A state array owned by the metric, zeroed by ``reset_state`` (Keras' signature).

        Args:
            shape: the array's shape.
            initializer: 'zeros' (the only start a resettable count can have).
            dtype: None (float64) or a NumPy integer/float dtype.
            aggregation: 'sum' (accepted for Keras code; state is not distributed here).
            name: the variable's name.

        Returns:
            The (mutable, in-place updated) NumPy array.

        Raises:
            ValueError: another initializer.
        """
        if initializer not in ("zeros", "Zeros") and not (
                type(initializer).__name__ == "Zeros"):
            raise ValueError("%s.add_variable: only initializer='zeros' is supported, got %r"
                             % (type(self).__name__, initializer))
        v = np.zeros(shape, dtype=np.float64 if dtype is None else dtype)
        self._variables.append((name, v))
        return v

    @property
    def variables(self):
        """The metric's state arrays (float64)."""
        return [v for _, v in self._variables]

    def reset_state(self):
        """Zero the state (a new epoch)."""
        for _, v in self._variables:
            v[...] = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulate one batch. Args: y_true, y_pred: arrays; sample_weight: None or
        per-sample (or broadcastable) weights."""
        raise NotImplementedError

    def result(self):
        """The metric over everything accumulated since the last reset (a float, or an
        array for metrics with several thresholds)."""
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        """update_state(*args, **kwargs), then result()."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        """The constructor arguments as a dict (for ``from_config`` and saving)."""
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        """A new metric from ``get_config()``'s dict."""
        return cls(**config)

    def __repr__(self):
        return "<%s name=%s>" % (type(self).__name__, self.name)


class Sum(Metric):
    """The (weighted) sum of the given values.

    Args:
        name: default 'sum'. dtype: None or 'float32'.
    """

    _direction = "up"

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")

    def update_state(self, values, sample_weight=None):
        """Add ``sum(values * sample_weight)``."""
        values, _ = reduce_to_samplewise_values(values, sample_weight, np.sum, self.name)
        self.total += values.sum()

    def result(self):
        return float(self.total)


class Mean(Metric):
    """The (weighted) mean of the given values: ``total / count``.

    Args:
        name: default 'mean'. dtype: None or 'float32'.
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._total = self.add_variable((), name="total")
        self._count = self.add_variable((), name="count")
        self._pending = None  # (total, count) added by add_counts, as Python floats

    def _flush(self):
        if self._pending is not None:
            self._total += self._pending[0]
            self._count += self._pending[1]
            self._pending = None

    @property
    def total(self):
        """The (weighted) sum of the values so far (a 0-d float64 array)."""
        self._flush()
        return self._total

    @property
    def count(self):
        """The (weighted) number of values so far (a 0-d float64 array)."""
        self._flush()
        return self._count

    @property
    def variables(self):
        self._flush()
        return super().variables

    def update_state(self, values, sample_weight=None):
        """Add a batch of values (per-sample means over non-batch axes), weighted."""
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, np.mean,
                                                            self.name)
        self.total[...] += values.sum()
        if sample_weight is not None:
            self._count += np.sum(sample_weight)
        else:
            self._count += values.shape[0] if values.ndim >= 1 else 1

    def add_counts(self, total, count):
        """Add a pre-reduced batch: ``total`` over ``count`` samples (the trainer's shortcut
        for accuracy counts the loss kernel already computed; kept as Python floats until
        read, so a training step pays no NumPy call for it)."""
        p = self._pending
        self._pending = (total, count) if p is None else (p[0] + total, p[1] + count)

    def reset_state(self):
        self._pending = None
        super().reset_state()

    def result(self):
        total, count = float(self._total), float(self._count)
        if self._pending is not None:  # read without flushing: fit asks every batch
            total, count = total + self._pending[0], count + self._pending[1]
        return total / count if count != 0 else 0.0


class MeanMetricWrapper(Mean):
    """The mean of a per-sample metric function ``fn(y_true, y_pred, **kwargs)``.

    Args:
        fn: the function (returns one value per sample, or per element).
        name: the metric's name (default: the function's name).
        dtype: None or 'float32'.
        **kwargs: passed to ``fn``.
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError("MeanMetricWrapper: fn must be callable, got %r" % (fn,))
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"),
                         dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        from . import functions
        if fn in functions.LOSS_FUNCTIONS:  # a loss is minimised (callbacks' mode='auto')
            self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add ``fn(y_true, y_pred)`` for the batch, weighted by sample_weight."""
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config["fn"] = getattr(self._fn, "__name__", repr(self._fn))
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config):
        if cls is not MeanMetricWrapper:  # subclasses take their own constructor arguments
            return cls(**config)
        config = dict(config)
        fn = config.pop("fn", None)
        if isinstance(fn, str):
            from . import functions
            resolved = getattr(functions, fn, None)
            if resolved is None:
                raise ValueError("MeanMetricWrapper.from_config: unknown function %r" % fn)
            fn = resolved
        return cls(fn, **config)


def positive_int(value, arg, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError("%s: %s must be an integer >= 1, got %r" % (who, arg, value))
    return int(value)
