"""In-place optimizer updates (Keras 3 ``Adam``, ``SGD``, ``RMSprop``) on fastcnn's C kernels.

The weights and the optimizer state (``m``, ``v``, ``velocity``) are updated IN PLACE, so
they must already be writeable C-contiguous float32 ndarrays: anything else raises
(TypeError for something that is not a numpy array, ValueError for the wrong dtype, layout
or shape, or arrays that overlap) instead of silently updating a copy. Gradients are only
read and may be any array-like of the weight's shape (converted to float32 if needed).

Arithmetic mirrors Keras 3 operation by operation in float32 (hyper-parameters are rounded to
float32 as Keras casts them to the variable dtype); Adam's bias-corrected rate is computed in
double before rounding. Every ``*_update`` has a ``*_update_many`` twin taking lists of
tensors, which updates a whole model in one C call (one parallel region per step).

Weight decay (Keras 3 ``weight_decay=``, decoupled as in ``BaseOptimizer._apply_weight_decay``
and AdamW): every function takes ``weight_decay`` -- ``None``/``0`` (none), one factor for
every tensor, or (``*_many``) one factor per tensor with 0 for tensors excluded from the
decay. A decayed tensor first gets ``w = w - (w * weight_decay) * learning_rate`` (float32,
Keras' operation order, ``learning_rate`` the current one, NOT Adam's bias-corrected rate),
then the usual update from the unchanged gradient -- both in the same pass over the weights.
"""
import math
import numbers

import numpy as np

from .. import _ext
from ._validation import as_float32, check_no_overlap, check_output

__all__ = [
    "adam_update",
    "adam_update_many",
    "sgd_update",
    "sgd_update_many",
    "rmsprop_update",
    "rmsprop_update_many",
    "optimizer_step",
    "OPTIMIZER_RULES",
]


def _real(value, fname, name, lo=None, hi=None, hi_open=False):
    """A finite real hyper-parameter as a Python float, within [lo, hi] (or [lo, hi))."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s: %s must be a real number, got %r" % (fname, name, value))
    value = float(value)
    bad = not math.isfinite(value) or (lo is not None and value < lo) or (
        hi is not None and (value >= hi if hi_open else value > hi))
    if bad:
        rng = "" if lo is None else " in [%g, %g%s" % (lo, hi, ")" if hi_open else "]")
        raise ValueError("%s: %s must be a finite number%s, got %r" % (fname, name, rng, value))
    return value


_PLAIN_NUMBERS = {float, int}


def _reals(values, fname, name, lo=None):
    """A list of finite reals (>= lo) as given; the common case (Python floats/ints) is
    checked at C speed, anything else goes through :func:`_real` for its message."""
    values = list(values)
    if set(map(type, values)) <= _PLAIN_NUMBERS and all(map(math.isfinite, values)) and (
            lo is None or not values or min(values) >= lo):
        return values
    return [_real(x, fname, "%s[%d]" % (name, i), lo, None if lo is None else math.inf)
            for i, x in enumerate(values)]


def _decay(weight_decay, count, fname):
    """None (no decay anywhere) or a list of ``count`` finite factors >= 0."""
    if weight_decay is None:
        return None
    if isinstance(weight_decay, (list, tuple)):
        if len(weight_decay) != count:
            raise ValueError("%s: weight_decay has %d factors but params has %d arrays"
                             % (fname, len(weight_decay), count))
        factors = _reals(weight_decay, fname, "weight_decay", 0.0)
    else:
        factors = [_real(weight_decay, fname, "weight_decay", 0.0, math.inf)] * count
    return factors if any(factors) else None


def _step(step, fname):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError("%s: step must be an int (1 for the first update), got %r"
                        % (fname, step))
    if step < 1:
        raise ValueError("%s: step is 1-based (1 for the first update), got %d" % (fname, step))
    return int(step)


def _state(arr, fname, name, shape):
    """An array updated in place: must be usable by the kernel as it is."""
    arr = check_output(arr, None, "%s: %s (updated in place)" % (fname, name))
    if shape is not None and arr.shape != shape:
        raise ValueError("%s: %s: expected the weight's shape %s, got %s"
                         % (fname, name, shape, arr.shape))
    return arr


def _lists(fname, w, g, states, state_names):
    """Validate parallel lists (w, g, *states); returns (ws, gs, [state lists]).

    A C-speed pre-check accepts the common case (everything already float32, contiguous,
    matching, non-overlapping) without per-array Python work; otherwise the checks below
    run one by one, converting gradients where allowed and explaining what is wrong.
    """
    if type(w) is list and type(g) is list and all(type(s) is list for s in states):
        if _ext.optim_arrays_ok(w, g, list(states)):
            return w, g, list(states)
    seqs = [w, g] + list(states)
    names = ["params", "grads"] + list(state_names)
    for seq, name in zip(seqs, names):
        if not isinstance(seq, (list, tuple)):
            raise TypeError("%s: %s must be a list of arrays, got %s"
                            % (fname, name, type(seq).__name__))
    count = len(w)
    for seq, name in zip(seqs[1:], names[1:]):
        if len(seq) != count:
            raise ValueError("%s: %s has %d arrays but params has %d"
                             % (fname, name, len(seq), count))
    ws, gs, ss = [], [], [[] for _ in states]
    for i in range(count):
        wi = _state(w[i], fname, "params[%d]" % i, None)
        gi = as_float32(g[i], "%s: grads[%d]" % (fname, i))
        if gi.shape != wi.shape:
            raise ValueError("%s: grads[%d]: expected the weight's shape %s, got %s"
                             % (fname, i, wi.shape, gi.shape))
        group = [(wi, "params[%d]" % i)]
        for k, name in enumerate(state_names):
            si_name = "%s[%d]" % (name, i)
            si = _state(states[k][i], fname, si_name, wi.shape)
            check_no_overlap(fname, si, si_name, group)
            group.append((si, si_name))
            ss[k].append(si)
        check_no_overlap(fname, gi, "grads[%d]" % i, group)
        ws.append(wi)
        gs.append(gi)
    return ws, gs, ss


def adam_update_many(params, grads, ms, vs, step, learning_rate=1e-3, beta_1=0.9,
                     beta_2=0.999, epsilon=1e-7, weight_decay=None):
    """Adam on lists of tensors, in place, in one C call (see :func:`adam_update`).

    ``weight_decay``: None, one factor for all tensors, or one per tensor (0: not decayed)."""
    fname = "adam_update"
    step = _step(step, fname)
    lr = _real(learning_rate, fname, "learning_rate")
    b1 = _real(beta_1, fname, "beta_1", 0.0, 1.0, hi_open=True)
    b2 = _real(beta_2, fname, "beta_2", 0.0, 1.0, hi_open=True)
    eps = _real(epsilon, fname, "epsilon", 0.0, math.inf)
    ws, gs, (m, v) = _lists(fname, params, grads, (ms, vs), ("m", "v"))
    wd = _decay(weight_decay, len(ws), fname)
    alpha = lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
    _ext.adam_update_many(ws, gs, m, v, alpha, 1.0 - b1, 1.0 - b2, eps, lr, wd)


def adam_update(w, g, m, v, step, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                weight_decay=None):
    """One Adam step on ``w`` (in place), with first/second moments ``m``/``v`` (in place).

    Keras 3 arithmetic, ``t = step`` (1 for the first update)::

        w -= (w * weight_decay) * learning_rate  # only with weight_decay (AdamW)
        alpha = learning_rate * sqrt(1 - beta_2**t) / (1 - beta_1**t)   # in double
        m += (g - m) * (1 - beta_1)          # = beta_1*m + (1-beta_1)*g
        v += (g*g - v) * (1 - beta_2)        # = beta_2*v + (1-beta_2)*g^2
        w -= (m * alpha) / (sqrt(v) + epsilon)
    """
    adam_update_many([w], [g], [m], [v], step, learning_rate, beta_1, beta_2, epsilon,
                     weight_decay)


def sgd_update_many(params, grads, velocities=None, learning_rate=0.01, momentum=0.0,
                    nesterov=False, weight_decay=None):
    """SGD on lists of tensors, in place, in one C call (see :func:`sgd_update`)."""
    fname = "sgd_update"
    lr = _real(learning_rate, fname, "learning_rate")
    mom = _real(momentum, fname, "momentum", 0.0, 1.0)
    if velocities is None:
        if mom != 0.0:
            raise ValueError("%s: momentum=%g needs a velocity array per weight (zeros at the "
                             "start)" % (fname, mom))
        ws, gs, _ = _lists(fname, params, grads, (), ())
        wd = _decay(weight_decay, len(ws), fname)
        _ext.sgd_update_many(ws, gs, None, lr, 0.0, False, wd)
    else:
        ws, gs, (vel,) = _lists(fname, params, grads, (velocities,), ("velocity",))
        wd = _decay(weight_decay, len(ws), fname)
        _ext.sgd_update_many(ws, gs, vel, lr, mom, bool(nesterov), wd)


def sgd_update(w, g, velocity=None, learning_rate=0.01, momentum=0.0, nesterov=False,
               weight_decay=None):
    """One SGD step on ``w`` in place (Keras 3).

    With ``weight_decay``, first ``w -= (w * weight_decay) * lr``. Then, without ``velocity``
    (momentum 0): ``w -= g * lr``; with ``velocity`` (in place)::

        velocity = momentum * velocity - lr * g
        w += velocity                                   # nesterov=False
        w += momentum * velocity - lr * g               # nesterov=True
    """
    sgd_update_many([w], [g], None if velocity is None else [velocity], learning_rate,
                    momentum, nesterov, weight_decay)


def rmsprop_update_many(params, grads, velocities, learning_rate=1e-3, rho=0.9, epsilon=1e-7,
                        weight_decay=None):
    """RMSprop on lists of tensors, in place, in one C call (see :func:`rmsprop_update`)."""
    fname = "rmsprop_update"
    lr = _real(learning_rate, fname, "learning_rate")
    rho = _real(rho, fname, "rho", 0.0, 1.0)
    eps = _real(epsilon, fname, "epsilon", 0.0, math.inf)
    if velocities is None:
        raise ValueError("%s: velocity arrays are required (zeros at the start)" % fname)
    ws, gs, (vel,) = _lists(fname, params, grads, (velocities,), ("velocity",))
    wd = _decay(weight_decay, len(ws), fname)
    _ext.rmsprop_update_many(ws, gs, vel, lr, rho, 1.0 - rho, eps, wd)


def rmsprop_update(w, g, velocity, learning_rate=1e-3, rho=0.9, epsilon=1e-7,
                   weight_decay=None):
    """One RMSprop step (Keras 3 with momentum=0, centered=False), in place::

        w -= (w * weight_decay) * lr                   # only with weight_decay
        velocity = rho * velocity + (1 - rho) * g*g
        w -= lr * g / sqrt(velocity + epsilon)

    Note: Keras 3 (and TF's ApplyRMSProp) put epsilon INSIDE the square root, unlike Adam.
    """
    rmsprop_update_many([w], [g], [velocity], learning_rate, rho, epsilon, weight_decay)


# fc_optim_step's rules and clipping modes (csrc/optim.h).
OPTIMIZER_RULES = {"sgd": 0, "adam": 1, "rmsprop": 2, "adagrad": 3, "adadelta": 4, "adamax": 5,
                   "nadam": 6, "lion": 7, "ftrl": 8}
_CLIP_MODES = {None: 0, "norm": 1, "global_norm": 2, "value": 3}


def optimizer_step(rule, params, grads, slots, hyper, learning_rate, variant=0,
                   accumulators=None, averages=None, weight_decay=None, loss_scale=None,
                   accumulation_steps=None, update=True, clip=None, clip_value=None,
                   ema_momentum=None, ema_overwrite=False):
    """One fused optimizer step over lists of tensors, in place, in one C call.

    The order is Keras 3's ``BaseOptimizer.apply`` (JAX backend): gradients divided by
    ``loss_scale``; gradient accumulation (``update=False``: ``acc = g + acc`` only;
    ``update=True``: ``g = (g + acc) / accumulation_steps``, ``acc = 0``); clipping; the
    decoupled weight decay ``w -= (w * wd) * learning_rate``; the rule's update; the EMA
    ``avg = m * avg + (1 - m) * w`` (and ``w = avg`` with ``ema_overwrite``). The gradients
    are only read.

    Args:
        rule: one of ``OPTIMIZER_RULES`` ('sgd', 'adam', 'rmsprop', 'adagrad', 'adadelta',
            'adamax', 'nadam', 'lion', 'ftrl').
        params: list of weight arrays (float32, C-contiguous, writeable), updated in place.
        grads: list of gradient arrays of the same shapes (converted to float32 if needed).
        slots: list of up to three lists of slot arrays (the rule's state, ``None`` for an
            unused position), updated in place; see csrc/optim.h for each rule's layout.
        hyper: the rule's hyper-parameters (csrc/optim.h), rounded to float32.
        learning_rate: the current learning rate (multiplies the weight decay).
        variant: the rule's variant flag (SGD momentum/nesterov, Adam amsgrad, RMSprop
            centered/momentum).
        accumulators: list of accumulator arrays (with ``accumulation_steps``).
        averages: list of EMA arrays (with ``ema_momentum``).
        weight_decay: None, one factor, or one factor per tensor (0: not decayed).
        loss_scale: None or the factor the gradients are divided by.
        accumulation_steps: None or an int >= 2.
        update: with accumulation, whether this call is an update step.
        clip: None, 'norm' (each tensor by its norm), 'global_norm' or 'value'.
        clip_value: the clipnorm / global_clipnorm / clipvalue.
        ema_momentum: None (no EMA) or this step's momentum (0 on the first step).
        ema_overwrite: copy the averages into the weights after the EMA update.

    Raises:
        ValueError: unknown rule or clip mode, mismatched lists or bad arrays.
        TypeError: an array that is not a numpy array.
    """
    fname = "optimizer_step"
    code = OPTIMIZER_RULES.get(rule) if isinstance(rule, str) else None
    if code is None:
        raise ValueError("%s: unknown rule %r; expected one of %s"
                         % (fname, rule, ", ".join(sorted(OPTIMIZER_RULES))))
    if clip not in _CLIP_MODES:
        raise ValueError("%s: clip must be None, 'norm', 'global_norm' or 'value', got %r"
                         % (fname, clip))
    if len(slots) > 3:
        raise ValueError("%s: at most 3 slot lists, got %d" % (fname, len(slots)))
    lr = _real(learning_rate, fname, "learning_rate")
    hyper = _reals(hyper, fname, "hyper")
    states = [s for s in slots if s is not None]
    if accumulators is not None:
        states.append(accumulators)
    if averages is not None:
        states.append(averages)
    if (type(params) is list and type(grads) is list
            and all(type(s) is list for s in states)
            and _ext.optim_arrays_ok(params, grads, states)):
        ws, gs, checked = params, grads, list(slots)   # the common case: all usable as is
        acc, avg = accumulators, averages
    else:
        used = [k for k, s in enumerate(slots) if s is not None]
        names = ["slots[%d]" % k for k in used] + (
            ["accumulators"] if accumulators is not None else []) + (
            ["averages"] if averages is not None else [])
        ws, gs, ss = _lists(fname, params, grads, states, names)
        checked = [None] * len(slots)
        for k, s in zip(used, ss):
            checked[k] = s
        acc = ss[len(used)] if accumulators is not None else None
        avg = ss[-1] if averages is not None else None
    steps = 0
    if accumulation_steps is not None:
        if isinstance(accumulation_steps, bool) or not isinstance(
                accumulation_steps, numbers.Integral) or accumulation_steps < 2:
            raise ValueError("%s: accumulation_steps must be an int >= 2, got %r"
                             % (fname, accumulation_steps))
        if acc is None:
            raise ValueError("%s: accumulation_steps needs accumulators" % fname)
        steps = int(accumulation_steps)
    if ema_momentum is not None and avg is None:
        raise ValueError("%s: ema_momentum needs averages" % fname)
    ls = 0.0
    if loss_scale is not None:
        ls = _real(loss_scale, fname, "loss_scale")
        if ls == 0.0:
            raise ValueError("%s: loss_scale must be non-zero" % fname)
    cv = 0.0 if clip is None else _real(clip_value, fname, "clip_value", 0.0, math.inf)
    wd = _decay(weight_decay, len(ws), fname)
    em, eom = 0.0, 0.0
    if ema_momentum is not None:   # Keras: m and 1 - m in float32
        em32 = np.float32(_real(ema_momentum, fname, "ema_momentum", 0.0, 1.0))
        em, eom = float(em32), float(np.float32(1.0) - em32)
    _ext.optim_step(code, int(variant), hyper, lr, ws, gs, checked, acc, avg,
                    wd, ls, steps, bool(update), _CLIP_MODES[clip], cv,
                    (1.0 / cv) if cv > 0 else 0.0, ema_momentum is not None, em, eom,
                    bool(ema_overwrite))
