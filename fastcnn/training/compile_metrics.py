"""The metrics of ``compile(metrics=..., weighted_metrics=...)`` for a single-output model
(as keras/src/trainers/compile_utils.py's CompileMetrics).

Accepted as Keras 3 does: None, a list / tuple (nested ones are flattened), or a dict keyed by
the output name whose values are a metric or a list of metrics. Each entry is a name, a
Metric class or instance, or a function ``fn(y_true, y_pred)`` (wrapped in a
MeanMetricWrapper named after it). 'accuracy' / 'acc' become Binary / SparseCategorical /
Categorical accuracy once the target and output shapes are known (``prepare``).

``metrics`` ignore sample weights; ``weighted_metrics`` use them. Log names follow Keras: the
given name (or the instance's name), '_1', '_2'... for repeats among ``metrics``, and a
'weighted_' prefix for a weighted metric whose name is already taken.
"""
import numpy as np

from .. import metrics as metrics_module

__all__ = ["CompileMetrics"]


def _flatten(spec, argument, output_names):
    """Keras' tree.flatten of a metrics argument for one output (dict values by sorted key)."""
    if spec is None:
        return []
    if isinstance(spec, dict):
        unknown = [k for k in spec if k not in output_names]
        if unknown:
            raise ValueError("compile: %s is a dict keyed by output name, but %s %s not an "
                             "output of the model (outputs: %s)"
                             % (argument, unknown, "is" if len(unknown) == 1 else "are",
                                list(output_names)))
        return [m for k in sorted(spec) for m in _flatten(spec[k], argument, output_names)]
    if isinstance(spec, (list, tuple)):
        return [m for item in spec
                for m in ([None] if item is None else _flatten(item, argument, output_names))]
    return [spec]


def _is_accuracy(identifier):
    return isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc")


class _Entry:
    """One compiled metric: the user's identifier, its log name and (once resolved) object."""

    def __init__(self, identifier, argument):
        if identifier is None:
            raise ValueError("compile: Expected metric, received `None` in %s" % argument)
        self.identifier = identifier
        if _is_accuracy(identifier):
            self.metric = None  # resolved by prepare()
            self.name = str(identifier)
            return
        metric = metrics_module.get(identifier)
        if not isinstance(metric, metrics_module.Metric):
            metric = metrics_module.MeanMetricWrapper(metric)
        if isinstance(identifier, str):
            metric.name = identifier  # Keras renames the metric after the string given
        self.metric = metric
        self.name = metric.name

    def resolve(self, y_shape, out_shape):
        if self.metric is not None:
            return
        binary = out_shape[-1] == 1
        sparse = len(y_shape) < len(out_shape) or (y_shape[-1] == 1 and out_shape[-1] > 1)
        if binary:
            cls = metrics_module.BinaryAccuracy
        elif sparse:
            cls = metrics_module.SparseCategoricalAccuracy
        else:
            cls = metrics_module.CategoricalAccuracy
        self.metric = cls(name=self.name)


class CompileMetrics:
    """The compiled metrics of a one-output model: resolution, updates, results, names.

    Args:
        metrics: the ``metrics`` argument of compile (updated without sample weights).
        weighted_metrics: the ``weighted_metrics`` argument (updated with them).
        output_names: the model's output names (the keys a dict may use).

    Raises:
        ValueError: an argument that is not None, a list, tuple or dict; an unknown name; a
            dict key that is not an output name; a metric named 'loss'.
        TypeError: an entry that is not a name, Metric or function.
    """

    def __init__(self, metrics=None, weighted_metrics=None, output_names=()):
        for arg, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is not None and not isinstance(value, (list, tuple, dict)):
                raise ValueError("compile: Expected `%s` argument to be a list, tuple, or dict. "
                                 "Received instead: %s=%r of type %s"
                                 % (arg, arg, value, type(value)))
        self._plain = [_Entry(m, "metrics")
                       for m in _flatten(metrics, "metrics", output_names)]
        self._weighted = [_Entry(m, "weighted_metrics")
                          for m in _flatten(weighted_metrics, "weighted_metrics", output_names)]
        self._log_names = self._names()
        self._resolved = False
        self._only_counts = ()  # set by prepare: the metrics, if all take n_correct
        if "loss" in self._log_names:
            raise ValueError("compile: a metric may not be named 'loss' (the loss is logged "
                             "under that name)")

    def _names(self):
        """Keras' CompileMetrics.result naming, in order: plain metrics, then weighted."""
        names, seen = [], {}
        for e in self._plain:
            name = e.name
            if name in seen:
                index = seen[name]
                seen[name] += 1
                name = "%s_%d" % (name, index)
            else:
                seen[name] = 1
            names.append(name)
        for e in self._weighted:
            name = e.name
            if name not in seen:
                seen[name] = 1
            else:
                name = "weighted_" + e.name
                if name not in seen:
                    seen[name] = 1
                else:
                    index = seen[name]
                    seen[name] += 1
                    name = "%s_%d" % (name, index)
            names.append(name)
        return names

    @property
    def names(self):
        """The log keys of the metrics, in order."""
        return list(self._log_names)

    @property
    def metrics(self):
        """The resolved Metric objects (plain, then weighted); 'accuracy' entries appear once
        the data shapes are known."""
        return [e.metric for e in self._plain + self._weighted if e.metric is not None]

    def __bool__(self):
        return bool(self._plain or self._weighted)

    def prepare(self, y_shape, out_shape):
        """Resolve 'accuracy' / 'acc' from the target and (N, ...) output shapes (the first
        data seen decides, as Keras builds its metrics once)."""
        if self._resolved:
            return
        for e in self._plain + self._weighted:
            e.resolve(tuple(y_shape), tuple(out_shape))
        self._resolved = True
        # the tutorial's case: every metric is an accuracy the loss kernel already counted
        if not self._weighted and all(getattr(e.metric, "counts_from_loss", False)
                                      for e in self._plain):
            self._only_counts = tuple(e.metric for e in self._plain)

    def reset_state(self):
        for m in self.metrics:
            m.reset_state()

    def update_state(self, y_true, y_pred, n_correct=None, sample_weight=None):
        """Update every metric with one batch.

        Args:
            y_true: the batch targets. y_pred: the batch outputs (probabilities where the
                model ends in a softmax).
            n_correct: the batch's correct-argmax count if the loss kernel computed it (used
                by unweighted (sparse) categorical accuracy instead of an argmax).
            sample_weight: the batch's sample weights (only weighted_metrics use them).
        """
        self.prepare(np.shape(y_true), np.shape(y_pred))
        n = len(y_pred)
        if n_correct is not None and self._only_counts:
            for m in self._only_counts:
                m.add_counts(n_correct, n)
            return
        for entries, weights in ((self._plain, None), (self._weighted, sample_weight)):
            for e in entries:
                m = e.metric
                if (weights is None and n_correct is not None
                        and getattr(m, "counts_from_loss", False)):
                    m.add_counts(float(n_correct), n)
                else:
                    m.update_state(y_true, y_pred, sample_weight=weights)

    def wants_outputs(self, n_correct):
        """Whether update_state needs y_pred (False when every metric takes n_correct)."""
        if n_correct is not None and self._only_counts:
            return False
        return any(not (n_correct is not None and getattr(e.metric, "counts_from_loss", False))
                   for e in self._plain) or bool(self._weighted)

    def result(self):
        """{log name: value} in order (a float, or an array for multi-threshold metrics)."""
        out = {}
        for name, e in zip(self._log_names, self._plain + self._weighted):
            out[name] = e.metric.result() if e.metric is not None else 0.0
        return out

    def directions(self):
        """{log name: 'up' or 'down'} (for callbacks choosing min or max)."""
        return {name: getattr(e.metric, "_direction", "up")
                for name, e in zip(self._log_names, self._plain + self._weighted)
                if e.metric is not None}

    def get_config(self):
        """{'metrics': [...], 'weighted_metrics': [...]}: names and serialized metrics."""
        def ser(entries):
            return [metrics_module.serialize(e.identifier if isinstance(e.identifier, str)
                                             else e.metric) for e in entries]
        return {"metrics": ser(self._plain), "weighted_metrics": ser(self._weighted)}
