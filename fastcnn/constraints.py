"""Weight constraints with Keras 3's names and formulas, applied after each optimizer step.

``constraint(w)`` returns the projected weight (a new array, as Keras); training calls
``constraint.apply(array)``, which projects a weight's storage in place with one C call
(``fastcnn.ops.norm_constraint`` / ``non_neg``). Norms are L2 norms over ``axis`` and
weights are scaled by ``desired / (1e-7 + norm)``, Keras' epsilon included.
"""
import numbers

import numpy as np

from . import ops

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm",
           "non_neg", "unit_norm", "min_max_norm", "get", "serialize", "deserialize"]


def _axis_arg(axis, who):
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    if not items or any(isinstance(a, bool) or not isinstance(a, numbers.Integral)
                        for a in items):
        raise ValueError("%s: axis must be an int or a list of ints, got %r" % (who, axis))
    return [int(a) for a in axis] if isinstance(axis, (list, tuple)) else int(axis)


def _number(value, name, who, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError("%s: %s must be a finite number, got %r" % (who, name, value))
    if minimum is not None and value < minimum:
        raise ValueError("%s: %s must be >= %s, got %r" % (who, name, minimum, value))
    return value


class Constraint:
    """Base class: ``constraint(w)`` is the projection of ``w`` (identity here).

    Subclasses implement ``apply(array)`` (in place on a float32 array) and ``get_config``.
    """

    def __call__(self, w):
        """The projected weight, as a new float32 array.

        Args:
            w: an array or a Variable.

        Returns:
            A float32 array shaped like ``w``.
        """
        out = np.array(w, dtype=np.float32, copy=True, order="C")
        self.apply(out)
        return out

    def apply(self, array):
        """Project a writeable C-contiguous float32 ``array`` in place; returns it."""
        return array

    def get_config(self):
        """The constructor arguments (JSON-able)."""
        return {}

    @classmethod
    def from_config(cls, config):
        """The constraint built from ``get_config()``'s output."""
        return cls(**config)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in self.get_config().items()))


class MaxNorm(Constraint):
    """Rescale so the L2 norm over ``axis`` is at most ``max_value``.

    Args:
        max_value: the largest norm (default 2).
        axis: the axis (or list of axes) the norm runs over; 0 for a Dense kernel
            ``(in, units)``, ``[0, 1, 2]`` for a Conv2D kernel.
    """

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "max_value", "MaxNorm", 0)
        self.axis = _axis_arg(axis, "MaxNorm")

    def apply(self, array):
        return ops.norm_constraint(array, "max_norm", self.axis, max_value=self.max_value)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """``max(w, 0)``: non-negative weights."""

    def apply(self, array):
        return ops.non_neg(array)


class UnitNorm(Constraint):
    """Rescale to unit L2 norm over ``axis`` (default 0).

    Args:
        axis: an int or a list of ints.
    """

    def __init__(self, axis=0):
        self.axis = _axis_arg(axis, "UnitNorm")

    def apply(self, array):
        return ops.norm_constraint(array, "unit_norm", self.axis)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Move the L2 norm over ``axis`` into [min_value, max_value] at ``rate``:
    ``norm' = rate * clip(norm, min_value, max_value) + (1 - rate) * norm``.

    Args:
        min_value: the smallest norm (default 0).
        max_value: the largest norm (default 1).
        rate: 1.0 projects fully, smaller values move part of the way.
        axis: an int or a list of ints (default 0).

    Raises:
        ValueError: non-finite or negative bounds, or min_value > max_value.
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value", "MinMaxNorm", 0)
        self.max_value = _number(max_value, "max_value", "MinMaxNorm", 0)
        if self.min_value > self.max_value:
            raise ValueError("MinMaxNorm: min_value (%r) must be <= max_value (%r)"
                             % (min_value, max_value))
        self.rate = _number(rate, "rate", "MinMaxNorm")
        self.axis = _axis_arg(axis, "MinMaxNorm")

    def apply(self, array):
        return ops.norm_constraint(array, "min_max_norm", self.axis, self.min_value,
                                   self.max_value, self.rate)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


max_norm, non_neg, unit_norm, min_max_norm = MaxNorm, NonNeg, UnitNorm, MinMaxNorm

_CLASSES = {c.__name__: c for c in (Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_BY_NAME = dict(_CLASSES)
_BY_NAME.update({"constraint": Constraint, "max_norm": MaxNorm, "non_neg": NonNeg,
                 "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm})


def serialize(constraint):
    """The JSON-able form ``{"class_name": ..., "config": {...}}`` (None for None).

    Raises:
        TypeError: not a Constraint.
    """
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise TypeError("constraints.serialize: expected a fastcnn Constraint, got %r"
                        % (constraint,))
    return {"module": "keras.constraints", "class_name": type(constraint).__name__,
            "config": constraint.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A constraint from ``serialize``'s output (Keras' form is accepted too).

    Raises:
        ValueError: an unknown class name or a malformed config.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("constraints.deserialize: expected a dict with 'class_name' and "
                         "'config', got %r" % (config,))
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _BY_NAME.get(name)
    if cls is None:
        raise ValueError("Unknown constraint: %r. Valid names are: %s"
                         % (name, ", ".join(sorted(_BY_NAME))))
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """A Constraint from None, a name ('max_norm', 'non_neg', 'unit_norm', 'min_max_norm'
    or a class name), a config dict, a class or an instance.

    Raises:
        ValueError: an unknown name or an object that is not a fastcnn Constraint.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise ValueError("Could not interpret constraint identifier: %r. Valid names "
                             "are: %s" % (identifier, ", ".join(sorted(_BY_NAME))))
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Constraint):
        return identifier()
    raise ValueError("Could not interpret constraint identifier: %r (expected a name, a "
                     "config dict or a fastcnn.constraints.Constraint; subclass it and "
                     "implement apply(array) for a custom projection)" % (identifier,))
