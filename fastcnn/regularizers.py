"""Weight and activity regularizers with Keras 3's names, formulas and configs.

A regularizer maps a weight (or a layer's output) to a scalar penalty that training adds
to the loss. Unlike Keras, fastcnn has no autodiff: each regularizer also knows its
gradient, computed with the penalty in one C call (``fastcnn.ops.l1l2_penalty`` /
``orthogonal_penalty``) and added to the weight's gradient before the optimizer step.
A custom regularizer therefore subclasses ``Regularizer`` and implements both
``__call__`` and ``add_gradient``.

String names (as ``keras.regularizers.get``): ``"l1"``, ``"l2"`` (factor 0.01),
``"l1_l2"`` or Keras 3's ``"l1l2"`` (``L1L2()``, whose factors default to 0 in Keras 3),
``"orthogonal_regularizer"`` and the class names.
"""
import math
import numbers

import numpy as np

from . import ops

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "l1", "l2", "l1_l2",
           "orthogonal_regularizer", "get", "serialize", "deserialize"]


def validate_float_arg(value, name):
    """``value`` as a float if it is a finite number >= 0, else Keras' ValueError."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or math.isinf(value) or math.isnan(value) or value < 0):
        raise ValueError("Invalid value for argument %s: expected a non-negative float. "
                         "Received: %s=%r" % (name, name, value))
    return float(value)


class Regularizer:
    """Base class of regularizers: ``reg(x)`` is the penalty of array ``x``.

    Subclasses implement ``__call__(x) -> float`` and ``add_gradient(x, grad, out=None,
    scale=1.0) -> float`` (the penalty, after adding ``scale * d penalty / dx`` to
    ``grad``), plus ``get_config`` for saving.
    """

    def __call__(self, x):
        """The penalty of ``x`` (a float).

        Args:
            x: an array (a weight's value or a layer's output).

        Returns:
            The scalar penalty (0.0 for the base class).
        """
        return 0.0

    def add_gradient(self, x, grad, out=None, scale=1.0):
        """Add ``scale`` times the penalty's gradient to ``grad`` (into ``out`` if given).

        Args:
            x: float32 array.
            grad: float32 array shaped like ``x``.
            out: optional output (default: ``grad``, updated in place).
            scale: factor on the gradient.

        Returns:
            The penalty of ``x`` (unscaled).
        """
        if out is not None and out is not grad:
            np.copyto(out, grad)
        return 0.0

    def check_weight_shape(self, shape, who):
        """Raise ValueError if this regularizer cannot apply to a weight of ``shape``."""

    def get_config(self):
        """The constructor arguments (JSON-able)."""
        raise NotImplementedError("%s does not implement get_config()" % (self,))

    @classmethod
    def from_config(cls, config):
        """The regularizer built from ``get_config()``'s output."""
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join("%s=%r" % kv for kv in self.get_config().items())
        except NotImplementedError:
            args = ""
        return "%s(%s)" % (type(self).__name__, args)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)``.

    Args:
        l1: L1 factor (>= 0, default 0; None means 0).
        l2: L2 factor (>= 0, default 0; None means 0).

    Raises:
        ValueError: a negative, infinite or non-numeric factor.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = validate_float_arg(0.0 if l1 is None else l1, "l1")
        self.l2 = validate_float_arg(0.0 if l2 is None else l2, "l2")

    def __call__(self, x):
        return ops.l1l2_penalty(np.asarray(x, np.float32), self.l1, self.l2)

    def add_gradient(self, x, grad, out=None, scale=1.0):
        return ops.l1l2_penalty(x, self.l1, self.l2, grad=grad, out=out, scale=scale)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|x|)``; the gradient takes sign(0) = 0.

    Args:
        l1: the factor (>= 0, default 0.01).
    """

    def __init__(self, l1=0.01):
        super().__init__(l1=0.01 if l1 is None else l1, l2=0.0)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(x**2)``.

    Args:
        l2: the factor (>= 0, default 0.01).
    """

    def __init__(self, l2=0.01):
        super().__init__(l1=0.0, l2=0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode='rows'``) or columns of a 2-D weight towards orthogonality:
    ``factor * 0.5 * sum_{i != j} |n_i . n_j| / (k (k - 1) / 2)`` over the k L2-normalised
    rows/columns.

    Args:
        factor: the factor (>= 0, default 0.01).
        mode: 'rows' or 'columns'.

    Raises:
        ValueError: a bad factor or mode; applied to a weight that is not 2-D.
    """

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = validate_float_arg(factor, "factor")
        if mode not in ("rows", "columns"):
            raise ValueError('Invalid value for argument `mode`. Expected one of {"rows", '
                             '"columns"}. Received: mode=%r' % (mode,))
        self.mode = mode

    def __call__(self, x):
        return ops.orthogonal_penalty(np.asarray(x, np.float32), self.factor, self.mode)

    def add_gradient(self, x, grad, out=None, scale=1.0):
        return ops.orthogonal_penalty(x, self.factor, self.mode, grad=grad, out=out,
                                      scale=scale)

    def check_weight_shape(self, shape, who):
        if len(shape) != 2:
            raise ValueError("%s: OrthogonalRegularizer applies to rank-2 weights (a Dense "
                             "kernel); got a weight of shape %s" % (who, tuple(shape)))

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Keras' lower-case aliases are the classes themselves
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer

_CLASSES = {c.__name__: c for c in (Regularizer, L1, L2, L1L2, OrthogonalRegularizer)}
_BY_NAME = dict(_CLASSES)
_BY_NAME.update({"regularizer": Regularizer, "l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2,
                 "orthogonal_regularizer": OrthogonalRegularizer})


def serialize(regularizer):
    """The JSON-able form ``{"class_name": ..., "config": {...}}`` (None for None).

    Raises:
        TypeError: not a Regularizer.
    """
    if regularizer is None:
        return None
    if not isinstance(regularizer, Regularizer):
        raise TypeError("regularizers.serialize: expected a fastcnn Regularizer, got %r"
                        % (regularizer,))
    return {"module": "keras.regularizers", "class_name": type(regularizer).__name__,
            "config": regularizer.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A regularizer from ``serialize``'s output (Keras' form is accepted too).

    Args:
        config: a dict with ``class_name`` and ``config``.
        custom_objects: optional {name: Regularizer subclass}.

    Raises:
        ValueError: an unknown class name or a malformed config.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("regularizers.deserialize: expected a dict with 'class_name' and "
                         "'config', got %r" % (config,))
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _BY_NAME.get(name)
    if cls is None:
        raise ValueError("Unknown regularizer: %r. Valid names are: %s"
                         % (name, ", ".join(sorted(_BY_NAME))))
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """A Regularizer from None, a name ('l1', 'l2', 'l1_l2', 'orthogonal_regularizer' or a
    class name), a config dict, a class or an instance.

    Returns:
        A Regularizer, or None for None.

    Raises:
        ValueError: an unknown name, or a plain function (fastcnn needs the gradient: subclass
            Regularizer and implement ``add_gradient``).
    """
    if identifier is None:
        return None
    if isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise ValueError("Could not interpret regularizer identifier: %r. Valid names "
                             "are: %s" % (identifier, ", ".join(sorted(_BY_NAME))))
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    raise ValueError("Could not interpret regularizer identifier: %r. fastcnn needs a "
                     "regularizer's gradient, so it takes a name, a config dict or a "
                     "fastcnn.regularizers.Regularizer (subclass one and implement __call__ "
                     "and add_gradient for a custom penalty)" % (identifier,))
