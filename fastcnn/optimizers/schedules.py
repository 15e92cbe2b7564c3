"""Learning-rate schedules (Keras 3 ``keras.optimizers.schedules``): same names, arguments,
defaults and float32 formulas. An optimizer given one evaluates it at each step from its
``raw_iterations`` (the number of ``apply`` calls so far, 0 for the first step).

Subclass :class:`LearningRateSchedule` (``__call__(step)``, ``get_config()``) for your own.
"""
import math
import numbers

import numpy as np

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "PolynomialDecay", "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts",
           "serialize", "deserialize", "get"]

_F = np.float32


def _positive_steps(value, arg, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError("%s: Argument `%s` must be > 0. Received: %s=%r"
                         % (who, arg, arg, value))
    return value


def _number(value, arg, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            value):
        raise ValueError("%s: `%s` must be a finite number. Received: %s=%r"
                         % (who, arg, arg, value))
    return value


class LearningRateSchedule:
    """The learning-rate schedule base class (Keras 3).

    Implement ``__call__(self, step)`` (``step``: the optimizer's step count, an int) returning
    the learning rate, and ``get_config()`` to make it serialisable::

        class MyLRSchedule(LearningRateSchedule):
            def __init__(self, initial_learning_rate):
                self.initial_learning_rate = initial_learning_rate

            def __call__(self, step):
                return self.initial_learning_rate / (step + 1)

            def get_config(self):
                return {"initial_learning_rate": self.initial_learning_rate}
    """

    def __call__(self, step):
        raise NotImplementedError("Learning rate schedule '%s' must override "
                                  "`__call__(self, step)`." % type(self).__name__)

    def get_config(self):
        """The constructor arguments (JSON-serialisable)."""
        raise NotImplementedError("Learning rate schedule '%s' must override `get_config()` "
                                  "in order to be serializable." % type(self).__name__)

    @classmethod
    def from_config(cls, config):
        """Instantiates a schedule from ``get_config()``'s output.

        Args:
            config: the dict ``get_config()`` returned.

        Returns:
            A ``LearningRateSchedule`` instance.
        """
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (floor of the exponent
    with ``staircase``).

    Args:
        initial_learning_rate: float.
        decay_steps: number > 0.
        decay_rate: float.
        staircase: decay at discrete intervals.
        name: string.

    Raises:
        ValueError: decay_steps <= 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate",
                                             "ExponentialDecay")
        self.decay_steps = _positive_steps(decay_steps, "decay_steps", "ExponentialDecay")
        self.decay_rate = _number(decay_rate, "decay_rate", "ExponentialDecay")
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        p = _F(step) / _F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _F(self.initial_learning_rate) * np.power(_F(self.decay_rate), p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.

    Args:
        boundaries: increasing step numbers.
        values: one more value than boundaries.
        name: string.

    Raises:
        ValueError: ``len(boundaries) != len(values) - 1``.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             "values. Received: boundaries=%r of length %d, and values=%r of "
                             "length %d." % (boundaries, len(boundaries), values, len(values)))
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        values = [_F(v) for v in self.values]
        if step <= self.boundaries[0]:
            return values[0]
        for b, v in zip(self.boundaries[1:], values[1:-1]):
            if step <= b:
                return v
        return values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``, ``step`` capped at
    ``decay_steps`` (with ``cycle``, ``decay_steps`` grows to the next multiple instead).

    Args:
        initial_learning_rate: float.
        decay_steps: number > 0.
        end_learning_rate: float.
        power: float.
        cycle: restart after decay_steps.
        name: string.

    Raises:
        ValueError: decay_steps <= 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001,
                 power=1.0, cycle=False, name="PolynomialDecay"):
        who = "PolynomialDecay"
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", who)
        self.decay_steps = _positive_steps(decay_steps, "decay_steps", who)
        self.end_learning_rate = _number(end_learning_rate, "end_learning_rate", who)
        self.power = _number(power, "power", who)
        self.cycle = cycle
        self.name = name

    def __call__(self, step):
        initial, end = _F(self.initial_learning_rate), _F(self.end_learning_rate)
        power = _F(self.power)
        s = _F(step)
        decay_steps = _F(self.decay_steps)
        if self.cycle:
            multiplier = _F(1.0) if s == 0 else np.ceil(s / _F(self.decay_steps))
            decay_steps = decay_steps * multiplier
        else:
            s = min(s, decay_steps)
        p = s / decay_steps
        return (initial - end) * np.power(_F(1) - p, power) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floor of
    ``step / decay_steps`` with ``staircase``).

    Args:
        initial_learning_rate: float.
        decay_steps: number > 0.
        decay_rate: float.
        staircase: decay at discrete intervals.
        name: string.

    Raises:
        ValueError: decay_steps <= 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        who = "InverseTimeDecay"
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", who)
        self.decay_steps = _positive_steps(decay_steps, "decay_steps", who)
        self.decay_rate = _number(decay_rate, "decay_rate", who)
        self.staircase = staircase
        self.name = name

    def __call__(self, step):
        p = _F(step) / _F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return _F(self.initial_learning_rate) / (_F(1) + _F(self.decay_rate) * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` (or, after a linear warm-up of
    ``warmup_steps`` to ``warmup_target``, from ``warmup_target``) to ``alpha`` times it over
    ``decay_steps``.

    Args:
        initial_learning_rate: float.
        decay_steps: number > 0.
        alpha: the final fraction of the rate.
        name: string.
        warmup_target: None (no warm-up) or the rate reached after the warm-up.
        warmup_steps: steps of linear warm-up.

    Raises:
        ValueError: decay_steps <= 0.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        who = "CosineDecay"
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", who)
        self.decay_steps = _positive_steps(decay_steps, "decay_steps", who)
        self.alpha = _number(alpha, "alpha", who)
        self.name = name
        if warmup_target is not None:
            _number(warmup_target, "warmup_target", who)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Real) or (
                warmup_steps < 0):
            raise ValueError("CosineDecay: `warmup_steps` must be a number >= 0. Received: "
                             "warmup_steps=%r" % (warmup_steps,))
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target

    def _decay(self, step, decay_steps, decay_from):
        fraction = step / decay_steps
        cosine = _F(0.5) * (_F(1.0) + np.cos(_F(math.pi) * fraction))
        decayed = _F(1 - self.alpha) * cosine + _F(self.alpha)
        return decay_from * decayed

    def __call__(self, step):
        initial = _F(self.initial_learning_rate)
        decay_steps = _F(self.decay_steps)
        s = _F(step)
        if self.warmup_target is None:
            return self._decay(min(s, decay_steps), decay_steps, initial)
        target = _F(self.warmup_target)
        warmup_steps = _F(self.warmup_steps)
        s = min(s, decay_steps + warmup_steps)
        if s < warmup_steps:
            return (target - initial) * (s / warmup_steps) + initial
        return self._decay(s - warmup_steps, decay_steps, target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): periods of ``first_decay_steps * t_mul**i``
    steps, each starting at ``initial_learning_rate * m_mul**i``.

    Args:
        initial_learning_rate: float.
        first_decay_steps: number > 0.
        t_mul: the period's growth factor.
        m_mul: the restart rate's factor.
        alpha: the final fraction of the rate.
        name: string.

    Raises:
        ValueError: first_decay_steps <= 0.
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        who = "CosineDecayRestarts"
        self.initial_learning_rate = _number(initial_learning_rate, "initial_learning_rate", who)
        self.first_decay_steps = _positive_steps(first_decay_steps, "first_decay_steps", who)
        self._t_mul = _number(t_mul, "t_mul", who)
        self._m_mul = _number(m_mul, "m_mul", who)
        self.alpha = _number(alpha, "alpha", who)
        self.name = name

    def __call__(self, step):
        initial = _F(self.initial_learning_rate)
        alpha, t_mul, m_mul = _F(self.alpha), _F(self._t_mul), _F(self._m_mul)
        fraction = _F(step) / _F(self.first_decay_steps)
        if t_mul == _F(1.0):
            i_restart = np.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = np.floor(np.log(_F(1.0) - fraction * (_F(1.0) - t_mul)) / np.log(t_mul))
            sum_r = (_F(1.0) - np.power(t_mul, i_restart)) / (_F(1.0) - t_mul)
            fraction = (fraction - sum_r) / np.power(t_mul, i_restart)
        m_fac = np.power(m_mul, i_restart)
        cosine = _F(0.5) * m_fac * (_F(1.0) + np.cos(_F(math.pi) * fraction))
        decayed = (_F(1) - alpha) * cosine + alpha
        return initial * decayed

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


_SCHEDULES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                      InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(learning_rate_schedule):
    """A schedule as a JSON-compatible dict (Keras' layout).

    Args:
        learning_rate_schedule: a ``LearningRateSchedule``.

    Returns:
        ``{"module", "class_name", "config", "registered_name"}``.

    Raises:
        TypeError: not a ``LearningRateSchedule``.
    """
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError("schedules.serialize: expected a LearningRateSchedule, got %r"
                        % (learning_rate_schedule,))
    name = type(learning_rate_schedule).__name__
    builtin = _SCHEDULES.get(name) is type(learning_rate_schedule)
    return {"module": "keras.optimizers.schedules" if builtin else None,
            "class_name": name, "config": learning_rate_schedule.get_config(),
            "registered_name": None if builtin else name}


def deserialize(config, custom_objects=None):
    """A schedule from ``serialize()``'s output (``{"class_name", "config"}``).

    Args:
        config: the serialized dict.
        custom_objects: ``{name: class}`` for your own schedules.

    Returns:
        A ``LearningRateSchedule``.

    Raises:
        ValueError: an unknown class name or a malformed dict.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("schedules.deserialize: expected a dict with 'class_name' and "
                         "'config', got %r" % (config,))
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _SCHEDULES.get(name)
    if cls is None:
        raise ValueError("Unknown learning-rate schedule %r: pass it in custom_objects "
                         "(known: %s)" % (name, ", ".join(sorted(_SCHEDULES))))
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier):
    """A schedule from an instance or a serialized dict.

    Args:
        identifier: a ``LearningRateSchedule`` or ``serialize()``'s output.

    Returns:
        A ``LearningRateSchedule``.

    Raises:
        ValueError: anything else.
    """
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError("Could not interpret learning-rate schedule %r" % (identifier,))
