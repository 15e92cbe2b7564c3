"""Optimizers with Keras 3 names, defaults and update rules, applied by fastcnn's C kernels.

All (weight, gradient) pairs are updated in place by one multi-tensor kernel call per step
(``ops.adam_update_many`` / ``ops.sgd_update_many`` / ``ops.rmsprop_update_many``).
``learning_rate`` can be changed at any time (callbacks do), ``iterations`` counts applied
steps, and the state (iterations + slot arrays) is saved with the model so training resumes
exactly.

Like Keras, the learning rate is stored as a float32 value (``optimizer.learning_rate``
returns that value as a Python float).

``weight_decay`` (every optimizer; ``AdamW`` defaults to 0.004) is Keras 3's decoupled decay
(``BaseOptimizer._apply_weight_decay``): at each step, before the gradient update, every
variable not excluded by :meth:`Optimizer.exclude_from_weight_decay` becomes
``variable - variable * weight_decay * learning_rate`` (float32, the current learning rate).
fastcnn does this inside the same kernel pass as the update (bitwise what Keras computes).
"""
import math
import numbers
import re

import numpy as np

from . import ops

__all__ = ["Optimizer", "Adam", "AdamW", "SGD", "RMSprop", "get", "serialize", "deserialize"]


def _check_lr(value, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if callable(value):
            raise TypeError("%s: learning-rate schedules are not supported; pass a float and use "
                            "callbacks.LearningRateScheduler" % who)
        raise TypeError("%s: learning_rate must be a float, got %r" % (who, value))
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError("%s: learning_rate must be a finite number >= 0, got %r" % (who, value))
    return float(np.float32(value))


def _check_weight_decay(value, who):
    """None, or a finite float >= 0 (kept as the given Python float, like Keras; the kernels
    round it to float32 as Keras casts it to the variable dtype)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value >= 0):
        raise ValueError("%s: `weight_decay` must be None or a finite float >= 0. Received: "
                         "weight_decay=%r" % (who, value))
    return float(value)


def _check_unit(value, name, who, closed_high=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError("%s: %s must be a float, got %r" % (who, name, value))
    ok = 0.0 <= value <= 1.0 if closed_high else 0.0 <= value < 1.0
    if not ok:
        raise ValueError("%s: `%s` must be a float between [0, 1%s. Received: %s=%r"
                         % (who, name, "]" if closed_high else ")", name, value))
    return float(value)


class _LearningRate(float):
    """The value of ``optimizer.learning_rate``: a float that also supports Keras' variable
    idioms ``optimizer.learning_rate.assign(0.01)`` and ``.numpy()``."""

    def __new__(cls, value, optimizer):
        obj = float.__new__(cls, value)
        obj._optimizer = optimizer
        return obj

    def assign(self, value):
        self._optimizer.learning_rate = value
        return self._optimizer.learning_rate

    def numpy(self):
        return np.float32(self)

    def __reduce__(self):
        return (float, (float(self),))


class Optimizer:
    """Base class; subclasses define ``_slot_names`` and ``_update_many(...)``."""

    _slot_names = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        who = type(self).__name__
        if "lr" in kwargs:
            raise ValueError("%s: argument `lr` is no longer supported. Use `learning_rate` "
                             "instead." % who)
        if kwargs:
            raise TypeError("%s: unrecognized keyword arguments %r" % (who, sorted(kwargs)))
        for arg, val in (("clipnorm", clipnorm),
                         ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm),
                         ("use_ema", use_ema), ("loss_scale_factor", loss_scale_factor),
                         ("gradient_accumulation_steps", gradient_accumulation_steps),
                         ("ema_overwrite_frequency", ema_overwrite_frequency)):
            if val is not None and val is not False:
                raise ValueError("%s: argument `%s` is not supported by fastcnn (got %r)"
                                 % (who, arg, val))
        self.name = name or who.lower()
        self._learning_rate = _check_lr(learning_rate, who)
        self.weight_decay = weight_decay          # validated by the property setter
        self.iterations = 0
        self._slots = {}     # id(variable) -> list of slot arrays
        self._vars = {}      # id(variable) -> variable (keeps ids valid)
        self._exclude_vars = {}      # id(variable) -> variable, excluded from weight decay
        self._exclude_pattern = None
        self._decay_cache = {}       # id(variable) -> bool (is decayed)

    # ------------------------------------------------------------------ public API
    @property
    def learning_rate(self):
        """The learning rate (a float that also has Keras' ``assign``/``numpy``).

        Setting it (or calling ``optimizer.learning_rate.assign(v)``) changes the rate of the next
        update, as ``LearningRateScheduler`` and ``ReduceLROnPlateau`` do. ``lr`` is the Keras 2 alias.
        """
        return _LearningRate(self._learning_rate, self)

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = _check_lr(value, type(self).__name__)

    # Keras 2 name
    lr = learning_rate

    @property
    def weight_decay(self):
        """Keras 3's decoupled weight decay factor (``None``: off), applied inside the update kernel."""
        return self._weight_decay

    @weight_decay.setter
    def weight_decay(self, value):
        self._weight_decay = _check_weight_decay(value, type(self).__name__)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude variables from weight decay (Keras 3 semantics; call before the optimizer
        is built, i.e. before the first ``fit``/``apply``).

        ``var_list``: variables excluded by identity. ``var_names``: strings; a variable is
        excluded when any of them occurs in its ``name`` (Keras joins them into one regular
        expression ``"|".join(var_names)`` and uses ``re.search`` on ``variable.name``, so
        plain words are substring matches, e.g. ``var_names=["bias"]`` excludes every bias;
        ``name`` is the short name -- ``"kernel"``, ``"bias"``, ``"gamma"`` -- not the path).
        Each call replaces the previous exclusions. Not part of ``get_config`` (as in Keras).
        """
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the "
                             "optimizer is built.")
        self._exclude_vars = {id(v): v for v in (var_list or ())}
        if var_names:
            names = list(var_names)
            for n in names:
                if not isinstance(n, str):
                    raise TypeError("%s.exclude_from_weight_decay: var_names must be strings, "
                                    "got %r" % (type(self).__name__, n))
            self._exclude_pattern = re.compile("|".join(set(names)))
        else:
            self._exclude_pattern = None
        self._decay_cache = {}

    def _use_weight_decay(self, variable):
        """Keras' rule: not excluded by identity nor by a ``var_names`` match on the name."""
        key = id(variable)
        use = self._decay_cache.get(key)
        if use is None:
            use = key not in self._exclude_vars and not (
                self._exclude_pattern is not None
                and self._exclude_pattern.search(str(getattr(variable, "name", ""))))
            self._decay_cache[key] = use
        return use

    def _decay_factors(self, variables):
        """One weight-decay factor per variable (0.0: excluded), or None (no decay)."""
        wd = self._weight_decay
        if not wd:
            return None
        factors = [wd if self._use_weight_decay(v) else 0.0 for v in variables]
        return factors if any(factors) else None

    @property
    def built(self):
        """Whether the slot variables (moments, momenta) exist."""
        return bool(self._slots) or self.iterations > 0

    def build(self, var_list):
        """Create the slot arrays (zeros) for each variable not seen before."""
        for var in var_list:
            if id(var) not in self._slots:
                self._slots[id(var)] = [np.zeros(var.shape, dtype=np.float32)
                                        for _ in self._slot_names]
                self._vars[id(var)] = var

    def slots_of(self, var):
        """[(slot name, array)] of ``var`` (empty until ``build`` has seen it)."""
        return list(zip(self._slot_names, self._slots.get(id(var), ())))

    @property
    def variables(self):
        """The optimizer's variables in Keras' order (iterations, learning_rate, then the slots)."""
        out = [np.array(self.iterations, dtype=np.int64),
               np.array(self._learning_rate, dtype=np.float32)]
        for slots in self._slots.values():
            out.extend(slots)
        return out

    def apply_gradients(self, grads_and_vars):
        """Keras API: ``[(grad, variable), ...]`` -> one step (iterations += 1)."""
        pairs = list(grads_and_vars)
        grads = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        self.apply(grads, variables)
        return self.iterations

    def apply(self, grads, trainable_variables):
        """One update of ``trainable_variables`` with ``grads`` (Keras 3's ``apply``).

        Args:
            grads: list of arrays, one per variable, of the same shapes.
            trainable_variables: list of :class:`fastcnn.layers.Variable`.

        Raises:
            ValueError: if the lists differ in length or a gradient's shape differs.
        """
        grads = list(grads)
        variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError("%s.apply: got %d gradients for %d variables"
                             % (type(self).__name__, len(grads), len(variables)))
        checked = []
        for g, v in zip(grads, variables):
            g = np.ascontiguousarray(g, dtype=np.float32)
            if g.shape != v.shape:
                raise ValueError("%s.apply: gradient of shape %s for variable %s of shape %s"
                                 % (type(self).__name__, g.shape, getattr(v, "path", "?"),
                                    v.shape))
            checked.append(g)
        self.build(variables)
        self.update(variables, checked)

    def update(self, variables, grads):
        """One update of every (variable, grad) pair: ONE multi-tensor kernel call (which
        also applies the weight decay, if any)."""
        step = self.iterations + 1
        if variables:
            params = [v.value for v in variables]
            slots = [[self._slots[id(v)][k] for v in variables]
                     for k in range(len(self._slot_names))]
            decay = self._decay_factors(variables)
            if decay is None:
                self._update_many(params, list(grads), slots, step)
            else:
                self._update_many(params, list(grads), slots, step, weight_decay=decay)
        self.iterations = step

    def _update_many(self, params, grads, slots, step, weight_decay=None):
        """Update ``params`` in place; ``weight_decay``: None or one factor per param (0: not
        decayed), applied as ``p -= (p * wd) * learning_rate`` before the update."""
        raise NotImplementedError

    # ------------------------------------------------------------------ config / state
    def get_config(self):
        """The constructor arguments as a JSON-serialisable dict (Keras 3's keys).

        Returns:
            dict: ``cls.from_config(config)`` makes an equivalent object.
        """
        return {"name": self.name, "learning_rate": self._learning_rate,
                "weight_decay": self._weight_decay,
                "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                "loss_scale_factor": None, "gradient_accumulation_steps": None}

    @classmethod
    def from_config(cls, config):
        """Create an instance from the dict of :meth:`get_config`.

        Args:
            config: dict.

        Returns:
            A new instance.
        """
        return cls(**config)

    def _get_state(self, variables):
        """{"iterations": int64 array, "<var.path>/<slot>": array} for saving."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64),
                 "learning_rate": np.array(self._learning_rate, dtype=np.float32)}
        for var in variables:
            slots = self._slots.get(id(var))
            if slots is None:
                continue
            for name, arr in zip(self._slot_names, slots):
                state["%s/%s" % (var.path, name)] = arr
        return state

    def _set_state(self, state, variables, where="optimizer state"):
        """Restore what ``_get_state`` produced (validating every shape)."""
        if "iterations" not in state:
            raise ValueError("%s: missing 'iterations'" % where)
        self.build(variables)
        for var in variables:
            for name, arr in zip(self._slot_names, self._slots[id(var)]):
                key = "%s/%s" % (var.path, name)
                if key not in state:
                    if int(state["iterations"]) > 0:
                        raise ValueError("%s: missing slot %r" % (where, key))
                    continue
                value = np.asarray(state[key])
                if value.shape != arr.shape:
                    raise ValueError("%s: slot %r has shape %s, expected %s"
                                     % (where, key, value.shape, arr.shape))
                np.copyto(arr, value, casting="unsafe")
        self.iterations = int(state["iterations"])
        if "learning_rate" in state:
            self._learning_rate = _check_lr(float(state["learning_rate"]), type(self).__name__)

    def __repr__(self):
        wd = "" if self._weight_decay is None else " weight_decay=%g" % self._weight_decay
        return "<%s learning_rate=%g%s iterations=%d>" % (
            type(self).__name__, self._learning_rate, wd, self.iterations)


class Adam(Optimizer):
    """Keras' Adam: lr_t = lr*sqrt(1-b2^t)/(1-b1^t); w -= lr_t*m/(sqrt(v)+eps)."""

    _slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        who = type(self).__name__
        if amsgrad:
            raise ValueError("%s: amsgrad=True is not supported by fastcnn" % who)
        self.beta_1 = _check_unit(beta_1, "beta_1", who)
        self.beta_2 = _check_unit(beta_2, "beta_2", who)
        if not epsilon > 0:
            raise ValueError("%s: epsilon must be > 0, got %r" % (who, epsilon))
        self.epsilon = float(epsilon)
        self.amsgrad = False

    def _update_many(self, params, grads, slots, step, weight_decay=None):
        ops.adam_update_many(params, grads, slots[0], slots[1], step,
                             learning_rate=self._learning_rate, beta_1=self.beta_1,
                             beta_2=self.beta_2, epsilon=self.epsilon,
                             weight_decay=weight_decay)

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, amsgrad=False)
        return c


class AdamW(Adam):
    """Keras 3's AdamW: Adam with decoupled weight decay (default 0.004), i.e. each step
    w -= w * weight_decay * lr, then the Adam update (see :class:`Adam`)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, name=name,
                         weight_decay=weight_decay, **kwargs)


class SGD(Optimizer):
    """Keras' SGD: v = momentum*v - lr*g; w += v (nesterov: w += momentum*v - lr*g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.momentum = _check_unit(momentum, "momentum", "SGD", closed_high=True)
        self.nesterov = bool(nesterov)

    @property
    def _slot_names(self):
        return ("momentum",) if self.momentum != 0.0 else ()

    def _update_many(self, params, grads, slots, step, weight_decay=None):
        ops.sgd_update_many(params, grads, slots[0] if slots else None,
                            learning_rate=self._learning_rate, momentum=self.momentum,
                            nesterov=self.nesterov, weight_decay=weight_decay)

    def get_config(self):
        c = super().get_config()
        c.update(momentum=self.momentum, nesterov=self.nesterov)
        return c


class RMSprop(Optimizer):
    """Keras 3's RMSprop (momentum=0, centered=False): v = rho*v + (1-rho)*g^2;
    w -= lr*g / sqrt(v + epsilon) (epsilon inside the root, as Keras 3)."""

    _slot_names = ("velocity",)

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, name="rmsprop", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        if momentum != 0.0 or centered:
            raise ValueError("RMSprop: fastcnn supports only momentum=0 and centered=False; got "
                             "momentum=%r, centered=%r" % (momentum, centered))
        self.rho = _check_unit(rho, "rho", "RMSprop")
        if not epsilon > 0:
            raise ValueError("RMSprop: epsilon must be > 0, got %r" % (epsilon,))
        self.epsilon = float(epsilon)
        self.momentum = 0.0
        self.centered = False

    def _update_many(self, params, grads, slots, step, weight_decay=None):
        ops.rmsprop_update_many(params, grads, slots[0], learning_rate=self._learning_rate,
                                rho=self.rho, epsilon=self.epsilon, weight_decay=weight_decay)

    def get_config(self):
        c = super().get_config()
        c.update(rho=self.rho, momentum=0.0, epsilon=self.epsilon, centered=False)
        return c


_BY_NAME = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop}
_CLASSES = {"Adam": Adam, "AdamW": AdamW, "SGD": SGD, "RMSprop": RMSprop}


def get(identifier):
    """'adam' / 'adamw' / 'sgd' / 'rmsprop' (any case), an Optimizer instance, or a config
    dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError("Unknown optimizer %r. Valid names: %s"
                             % (identifier, ", ".join(sorted(_BY_NAME))))
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return deserialize(identifier)
    raise TypeError("Could not interpret optimizer %r: expected one of %s or an Optimizer "
                    "instance" % (identifier, ", ".join(sorted(_BY_NAME))))


def serialize(optimizer):
    """``{"class_name": ..., "config": ...}`` of an optimizer (Keras' format).

    Args:
        optimizer: an :class:`Optimizer`.

    Returns:
        dict.
    """
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    """The optimizer of a :func:`serialize` dict.

    Args:
        config: dict with ``class_name`` and ``config``.
        custom_objects: optional dict of name -> class for your own optimizers.

    Returns:
        Optimizer.

    Raises:
        ValueError: for an unknown class name.
    """
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _BY_NAME.get(
        str(name).lower())
    if cls is None:
        raise ValueError("Unknown optimizer class %r. Known: %s"
                         % (name, ", ".join(sorted(_CLASSES))))
    return cls.from_config(config.get("config", {}))
