"""The optimizer base class: Keras 3's ``BaseOptimizer`` arguments and step order, applied by
one fused C call per step (``fastcnn.ops.optimizer_step``).

Each step follows ``keras/src/optimizers/base_optimizer.py`` (and the JAX backend's
``_backend_apply_gradients``, the oracle the tests run):

1. ``apply`` divides the gradients by ``loss_scale_factor`` (fit's own step does not: it
   never scales the loss, so its gradients are already unscaled);
2. with ``gradient_accumulation_steps=n``, n-1 calls add the gradients to accumulators and the
   n-th applies their mean (``iterations`` counts update steps, ``raw_iterations`` calls);
3. ``clipnorm`` (each gradient by its own norm), ``global_clipnorm`` or ``clipvalue``;
4. the decoupled weight decay ``w -= (w * weight_decay) * learning_rate`` on every variable
   not excluded by :meth:`Optimizer.exclude_from_weight_decay`;
5. the optimizer's own rule;
6. ``use_ema``: ``average = m * average + (1 - m) * w`` (m = 0 on the first step, else
   ``ema_momentum``); with ``ema_overwrite_frequency=k`` the weights take the averages every
   k-th step; :meth:`Optimizer.finalize_variable_values` (called at the end of ``fit``) copies
   them in.

The learning rate is a float (stored as float32, like Keras' variable), a
:class:`~fastcnn.optimizers.schedules.LearningRateSchedule` evaluated at ``raw_iterations``
each step, or a callable without arguments.
"""
import math
import numbers
import re
import warnings

import numpy as np

from .. import ops
from . import schedules

__all__ = ["Optimizer"]


def _check_lr(value, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s: learning_rate must be a float, a LearningRateSchedule or a "
                        "callable, got %r" % (who, value))
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


def _check_positive(value, name, who, allow_zero=False):
    """A finite float > 0 (>= 0 with allow_zero)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError("%s: `%s` must be a finite float %s 0. Received: %s=%r"
                         % (who, name, ">=" if allow_zero else ">", name, value))
    return float(value)


def _check_clip(value, name, who):
    """None or a finite float >= 0 (Keras: 0 means no clipping)."""
    if value is None:
        return None
    return _check_positive(value, name, who, allow_zero=True)


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
    """Base class of fastcnn's optimizers (Keras 3 ``keras.optimizers.Optimizer``).

    Subclasses set ``_rule`` (a key of ``fastcnn.ops.OPTIMIZER_RULES``), ``_slot_names``
    (their state arrays, in the kernel's s0, s1, s2 order; ``None`` for an unused position)
    and implement ``_hyper(step, lr)`` -> (hyper-parameters, variant) for Keras' 1-based
    ``step``.

    Args:
        learning_rate: float, a ``LearningRateSchedule``, or a callable taking no argument.
        weight_decay: None or a float >= 0: decoupled weight decay.
        clipnorm: None or float: clip each gradient to this L2 norm.
        clipvalue: None or float: clip each gradient element to [-clipvalue, clipvalue].
        global_clipnorm: None or float: clip all gradients to this global L2 norm.
        use_ema: keep an exponential moving average of the weights.
        ema_momentum: the EMA momentum, in [0, 1].
        ema_overwrite_frequency: None or int >= 1: every this many steps the weights take
            their averages.
        loss_scale_factor: None or float: ``apply`` divides the gradients by it
            (``scale_loss`` multiplies a loss by it).
        gradient_accumulation_steps: None or int >= 2: update every this many calls with the
            mean gradient.
        name: the optimizer's name.

    Raises:
        ValueError: a bad or unknown argument (Keras' wording).
    """

    _rule = None
    _slot_names = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        who = type(self).__name__
        if "lr" in kwargs:
            raise ValueError("%s: argument `lr` is no longer supported. Use `learning_rate` "
                             "instead." % who)
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.")
        if kwargs:
            raise ValueError("%s: Argument(s) not recognized: %r" % (who, kwargs))
        self.name = name or who.lower()
        self.clipnorm = _check_clip(clipnorm, "clipnorm", who)
        self.clipvalue = _check_clip(clipvalue, "clipvalue", who)
        self.global_clipnorm = _check_clip(global_clipnorm, "global_clipnorm", who)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("%s: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` "
                             "can be set. Received: clipnorm=%r, clipvalue=%r, "
                             "global_clipnorm=%r" % (who, clipnorm, clipvalue, global_clipnorm))
        if gradient_accumulation_steps is not None and (
                isinstance(gradient_accumulation_steps, bool)
                or not isinstance(gradient_accumulation_steps, numbers.Integral)
                or gradient_accumulation_steps < 2):
            raise ValueError("%s: `gradient_accumulation_steps` must be an integer >= 2. "
                             "Received: gradient_accumulation_steps=%r"
                             % (who, gradient_accumulation_steps))
        self.gradient_accumulation_steps = (None if gradient_accumulation_steps is None
                                            else int(gradient_accumulation_steps))
        self.use_ema = bool(use_ema)
        if isinstance(ema_momentum, bool) or not isinstance(ema_momentum, numbers.Real) or not (
                0.0 <= ema_momentum <= 1.0):
            raise ValueError("%s: `ema_momentum` must be in the range [0, 1]. Received: "
                             "ema_momentum=%r" % (who, ema_momentum))
        self.ema_momentum = float(ema_momentum)
        if ema_overwrite_frequency is not None and (
                isinstance(ema_overwrite_frequency, bool)
                or not isinstance(ema_overwrite_frequency, numbers.Integral)
                or ema_overwrite_frequency < 1):
            raise ValueError("%s: `ema_overwrite_frequency` must be an integer >= 1 or None. "
                             "Received: ema_overwrite_frequency=%r"
                             % (who, ema_overwrite_frequency))
        self.ema_overwrite_frequency = (None if ema_overwrite_frequency is None
                                        else int(ema_overwrite_frequency))
        if loss_scale_factor is not None:
            if isinstance(loss_scale_factor, bool) or not isinstance(
                    loss_scale_factor, numbers.Real) or not math.isfinite(
                    loss_scale_factor) or loss_scale_factor == 0:
                raise ValueError("%s: `loss_scale_factor` must be None or a finite non-zero "
                                 "float. Received: loss_scale_factor=%r"
                                 % (who, loss_scale_factor))
            loss_scale_factor = float(loss_scale_factor)
        self.loss_scale_factor = loss_scale_factor
        self._set_learning_rate(learning_rate, initial=True)
        self.weight_decay = weight_decay          # validated by the property setter
        self._raw_iterations = 0
        self._slots = {}     # id(variable) -> list of slot arrays (see _all_slot_names)
        self._vars = {}      # id(variable) -> variable (keeps ids valid)
        self._exclude_vars = {}      # id(variable) -> variable, excluded from weight decay
        self._exclude_pattern = None
        self._decay_cache = {}       # id(variable) -> bool (is decayed)
        self._rate_scale = None      # (factor, ids, name pattern): scale_learning_rate's

    # ------------------------------------------------------------------ learning rate
    def _set_learning_rate(self, value, initial=False):
        who = type(self).__name__
        if isinstance(value, schedules.LearningRateSchedule) or (
                callable(value) and not isinstance(value, numbers.Real)):
            self._learning_rate = value
            return
        if not initial and not isinstance(self._learning_rate, float):
            if isinstance(self._learning_rate, schedules.LearningRateSchedule):
                raise TypeError("This optimizer was created with a `LearningRateSchedule` "
                                "object as its `learning_rate` constructor argument, hence its "
                                "learning rate is not settable. If you need the learning rate "
                                "to be settable, you should instantiate the optimizer with a "
                                "float `learning_rate` argument.")
        self._learning_rate = _check_lr(value, who)

    def _current_learning_rate(self):
        """The learning rate of the coming step, as a float32-rounded Python float."""
        lr = self._learning_rate
        if isinstance(lr, float):
            return lr
        if isinstance(lr, schedules.LearningRateSchedule):
            value = lr(self._raw_iterations)
        else:
            value = lr()
        value = float(np.float32(np.asarray(value, dtype=np.float32)))
        if not math.isfinite(value):
            raise ValueError("%s: the learning-rate schedule returned %r at step %d"
                             % (type(self).__name__, value, self._raw_iterations))
        return value

    @property
    def learning_rate(self):
        """The current learning rate (a schedule is evaluated at ``raw_iterations``)."""
        return _LearningRate(self._current_learning_rate(), self)

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_learning_rate(value)

    # Keras 2 name
    lr = learning_rate

    @property
    def weight_decay(self):
        """The decoupled weight decay rate (None or a float >= 0; settable)."""
        return self._weight_decay

    @weight_decay.setter
    def weight_decay(self, value):
        self._weight_decay = _check_weight_decay(value, type(self).__name__)
        self._plans = {}

    # ------------------------------------------------------------------ iterations
    @property
    def iterations(self):
        """How many update steps were applied (as Keras, ``apply`` calls divided by
        ``gradient_accumulation_steps``). Setting it sets ``raw_iterations`` to ``value * gradient_accumulation_steps``."""
        steps = self.gradient_accumulation_steps
        return self._raw_iterations // steps if steps else self._raw_iterations

    @iterations.setter
    def iterations(self, value):
        self.raw_iterations = int(value) * (self.gradient_accumulation_steps or 1)

    @property
    def raw_iterations(self):
        """``apply`` calls so far (Keras' internal ``_iterations``; schedules read it); equal
        to ``iterations`` without gradient accumulation."""
        return self._raw_iterations

    @raw_iterations.setter
    def raw_iterations(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError("%s: iterations must be an int >= 0, got %r"
                             % (type(self).__name__, value))
        self._raw_iterations = int(value)

    # ------------------------------------------------------------------ weight decay
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude variables from weight decay (Keras 3 semantics).

        Must be called before the optimizer is built (before the first ``fit``/``apply``).
        Each call replaces the previous exclusions; not part of ``get_config`` (as in Keras).

        Args:
            var_list: variables excluded by identity.
            var_names: strings; a variable is excluded when any of them occurs in its
                ``name`` (Keras joins them into one regular expression and uses
                ``re.search`` on the short name -- ``"kernel"``, ``"bias"``, ``"gamma"``).

        Raises:
            ValueError: the optimizer is already built.
            TypeError: a name that is not a string.
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
        self._plans = {}

    # rules whose update is linear in the gradient: scaling one scales the step (SGD)
    _gradient_scales_step = False

    def scale_learning_rate(self, factor, var_list=None, var_names=None):
        """Multiply the learning rate of some variables by ``factor``, leaving their weight
        decay as it is (as airbench94 trains batch-norm shifts 64x faster). A fastcnn
        extension: Keras has no per-variable rates.

        The chosen variables' gradients are multiplied by ``factor`` before each step,
        which scales their step exactly for SGD (with or without momentum), the one
        optimizer that takes it. Must be called before the optimizer is built; each call
        replaces the previous one; not part of ``get_config`` (a reloaded optimizer must be
        told again).

        Args:
            factor: a finite number > 0.
            var_list: variables chosen by identity.
            var_names: strings; a variable is chosen when any of them occurs in its
                ``name`` (as in :meth:`exclude_from_weight_decay`), e.g. ``["beta"]``.

        Raises:
            ValueError: the optimizer is not SGD, is built already, clips gradients, or
                ``factor`` is not a finite number > 0.
            TypeError: a name that is not a string.
        """
        who = "%s.scale_learning_rate" % type(self).__name__
        if not self._gradient_scales_step:
            raise ValueError("%s: only SGD's step is proportional to the gradient; scaling "
                             "another optimizer's gradients would not scale its rate" % who)
        if self.built:
            raise ValueError("%s: call it before the optimizer is built (before the first "
                             "fit or apply)" % who)
        if self.clipnorm or self.global_clipnorm or self.clipvalue:
            raise ValueError("%s: gradient clipping would clip the scaled gradients" % who)
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not (
                math.isfinite(factor) and factor > 0):
            raise ValueError("%s: factor must be a finite number > 0, got %r" % (who, factor))
        pattern = None
        if var_names:
            names = list(var_names)
            for n in names:
                if not isinstance(n, str):
                    raise TypeError("%s: var_names must be strings, got %r" % (who, n))
            pattern = re.compile("|".join(set(names)))
        self._rate_scale = (float(factor), {id(v) for v in (var_list or ())}, pattern)
        self._plans = {}

    def _gradient_factors(self, variables):
        """One gradient factor per variable (scale_learning_rate's), or None (all 1)."""
        if self._rate_scale is None:
            return None
        factor, ids, pattern = self._rate_scale
        factors = [factor if id(v) in ids or (
            pattern is not None and pattern.search(str(getattr(v, "name", "")))) else None
            for v in variables]
        return factors if any(factors) else None

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

    # ------------------------------------------------------------------ slots
    def _all_slot_names(self):
        """The rule's slots (without unused positions), then the accumulator and average."""
        names = [n for n in self._slot_names if n is not None]
        if self.gradient_accumulation_steps:
            names.append("gradient_accumulator")
        if self.use_ema:
            names.append("average")
        return names

    def _slot_init(self, name):
        """The initial value of slot ``name`` (0; Adagrad's and Ftrl's accumulators differ)."""
        return 0.0

    @property
    def built(self):
        """Whether the optimizer has made its slots or taken a step."""
        return bool(self._slots) or self._raw_iterations > 0

    def build(self, var_list):
        """Create the slot arrays (zeros, or the rule's initial value) for each variable not
        seen before.

        Args:
            var_list: the trainable variables.
        """
        names = self._all_slot_names()
        for var in var_list:
            if id(var) not in self._slots:
                self._slots[id(var)] = [np.full(var.shape, self._slot_init(n), dtype=np.float32)
                                        for n in names]
                self._vars[id(var)] = var

    def slots_of(self, var):
        """[(slot name, array)] of ``var`` (empty until ``build`` has seen it)."""
        return list(zip(self._all_slot_names(), self._slots.get(id(var), ())))

    @property
    def variables(self):
        """The optimizer's state in Keras' order (the raw iteration count, the learning
        rate when it is a float, then the slots of each variable)."""
        out = [np.array(self._raw_iterations, dtype=np.int64)]
        if isinstance(self._learning_rate, float):
            out.append(np.array(self._learning_rate, dtype=np.float32))
        for slots in self._slots.values():
            out.extend(slots)
        return out

    # ------------------------------------------------------------------ steps
    def scale_loss(self, loss):
        """``loss * loss_scale_factor`` (the loss unchanged without one), as Keras."""
        return loss * self.loss_scale_factor if self.loss_scale_factor is not None else loss

    def apply_gradients(self, grads_and_vars):
        """Keras API: ``[(grad, variable), ...]`` -> one step; returns ``iterations``."""
        pairs = list(grads_and_vars)
        grads = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        self.apply(grads, variables)
        return self.iterations

    def apply(self, grads, trainable_variables=None):
        """One step on ``trainable_variables`` with ``grads`` (divided by
        ``loss_scale_factor`` first, as Keras).

        Args:
            grads: one gradient (array-like of the variable's shape) per variable.
            trainable_variables: fastcnn variables (``.value`` arrays updated in place);
                None: the variables the optimizer was built with, in build order.

        Raises:
            ValueError: mismatched counts or shapes, or no variables and not built.
        """
        grads = list(grads)
        if trainable_variables is None:
            if not self._vars:
                raise ValueError("When passing `grads` without `variables`, the optimizer "
                                 "must already be built on a list of variables. Call "
                                 "`optimizer.build(trainable_variables)` first.")
            trainable_variables = self._vars.values()
        variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError("%s.apply: got %d gradients for %d variables"
                             % (type(self).__name__, len(grads), len(variables)))
        if not grads:
            return
        checked = []
        for g, v in zip(grads, variables):
            g = np.ascontiguousarray(g, dtype=np.float32)
            if g.shape != v.shape:
                raise ValueError("%s.apply: gradient of shape %s for variable %s of shape %s"
                                 % (type(self).__name__, g.shape, getattr(v, "path", "?"),
                                    v.shape))
            checked.append(g)
        self.build(variables)
        self._step(variables, checked, self.loss_scale_factor)

    def update(self, variables, grads):
        """fit's step: one fused update of every (variable, grad) pair, the gradients of the
        unscaled loss (fit never scales it, so ``loss_scale_factor`` is not divided out)."""
        self._step(variables, grads, None)

    def _step(self, variables, grads, loss_scale):
        raw = self._raw_iterations
        steps = self.gradient_accumulation_steps
        if variables:
            it = raw // steps if steps else raw
            updating = not steps or (raw + 1) % steps == 0
            lr = self._current_learning_rate()
            hyper, variant = self._hyper(it + 1, lr)
            key = tuple(map(id, variables))
            plan = self._plans.get(key)
            if plan is None:
                plan = self._plans[key] = self._plan(variables)
            slot_lists, acc, avg, decay, factors = plan
            if factors is not None:  # scale_learning_rate: fresh arrays, the caller's stay
                grads = [g if f is None else g * np.float32(f) for g, f in zip(grads, factors)]
            ema_m = None
            overwrite = False
            if self.use_ema:
                ema_m = self.ema_momentum if it != 0 else 0.0
                freq = self.ema_overwrite_frequency
                overwrite = bool(freq) and (it + 1) % freq == 0
            clip, clip_value = None, None
            if self.clipnorm:
                clip, clip_value = "norm", self.clipnorm
            elif self.global_clipnorm:
                clip, clip_value = "global_norm", self.global_clipnorm
            elif self.clipvalue:
                clip, clip_value = "value", self.clipvalue
            ops.optimizer_step(self._rule, [v.value for v in variables], list(grads),
                               slot_lists, hyper, lr, variant=variant, accumulators=acc,
                               averages=avg, weight_decay=decay,
                               loss_scale=loss_scale, accumulation_steps=steps,
                               update=updating, clip=clip, clip_value=clip_value,
                               ema_momentum=ema_m, ema_overwrite=overwrite)
        self._raw_iterations = raw + 1

    def _plan(self, variables):
        """(slot lists in the kernel's s0..s2 order, accumulators, averages, decay factors)
        of a list of built variables: what every step over that list passes to the kernel."""
        per_var = [self._slots[id(v)] for v in variables]
        k = 0
        slot_lists = []
        for name in self._slot_names:
            if name is None:
                slot_lists.append(None)
            else:
                slot_lists.append([s[k] for s in per_var])
                k += 1
        acc = avg = None
        if self.gradient_accumulation_steps:
            acc = [s[k] for s in per_var]
            k += 1
        if self.use_ema:
            avg = [s[k] for s in per_var]
        return (slot_lists, acc, avg, self._decay_factors(variables),
                self._gradient_factors(variables))

    def _hyper(self, step, lr):
        """(hyper-parameters, variant) of the rule for Keras' 1-based ``step``."""
        raise NotImplementedError

    def finalize_variable_values(self, var_list):
        """With ``use_ema``, copy the moving averages into the variables (Keras calls this at
        the end of ``fit``); otherwise nothing.

        Args:
            var_list: the trainable variables.
        """
        if not self.use_ema:
            return
        k = self._all_slot_names().index("average")
        for var in var_list:
            slots = self._slots.get(id(var))
            if slots is not None:
                np.copyto(var.value, slots[k])

    # ------------------------------------------------------------------ config / state
    def get_config(self):
        """The constructor arguments (Keras 3 keys); a schedule is serialized."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif not isinstance(lr, float):
            lr = {"module": "builtins", "class_name": "function",
                  "config": getattr(lr, "__name__", repr(lr)), "registered_name": "function"}
        return {"name": self.name, "learning_rate": lr,
                "weight_decay": self._weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue, "use_ema": self.use_ema,
                "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency,
                "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild from ``get_config()`` (a serialized schedule or function is looked up,
        functions in ``custom_objects``)."""
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            if lr.get("class_name") == "function":
                fn = (custom_objects or {}).get(lr.get("config"))
                if fn is None:
                    raise ValueError("%s: the learning-rate function %r is unknown; pass it in "
                                     "custom_objects" % (cls.__name__, lr.get("config")))
                config["learning_rate"] = fn
            else:
                config["learning_rate"] = schedules.deserialize(lr, custom_objects)
        return cls(**config)

    def _get_state(self, variables):
        """{"iterations": int64 array (raw), "<var.path>/<slot>": array} for saving."""
        state = {"iterations": np.array(self._raw_iterations, dtype=np.int64)}
        if isinstance(self._learning_rate, float):
            state["learning_rate"] = np.array(self._learning_rate, dtype=np.float32)
        for var in variables:
            for name, arr in self.slots_of(var):
                state["%s/%s" % (var.path, name)] = arr
        return state

    def _set_state(self, state, variables, where="optimizer state"):
        """Restore what ``_get_state`` produced (validating every shape)."""
        if "iterations" not in state:
            raise ValueError("%s: missing 'iterations'" % where)
        self.build(variables)
        for var in variables:
            for name, arr in self.slots_of(var):
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
        self.raw_iterations = int(state["iterations"])
        if "learning_rate" in state and isinstance(self._learning_rate, float):
            self._learning_rate = _check_lr(float(state["learning_rate"]), type(self).__name__)

    def __repr__(self):
        wd = "" if self._weight_decay is None else " weight_decay=%g" % self._weight_decay
        lr = self._learning_rate
        lr_s = "%g" % lr if isinstance(lr, float) else type(lr).__name__
        return "<%s learning_rate=%s%s iterations=%d>" % (
            type(self).__name__, lr_s, wd, self.iterations)
