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

from .. import _ext
from ._validation import as_float32, check_no_overlap, check_output

__all__ = [
    "adam_update",
    "adam_update_many",
    "sgd_update",
    "sgd_update_many",
    "rmsprop_update",
    "rmsprop_update_many",
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


def _decay(weight_decay, count, fname):
    """None (no decay anywhere) or a list of ``count`` finite factors >= 0."""
    if weight_decay is None:
        return None
    if isinstance(weight_decay, (list, tuple)):
        if len(weight_decay) != count:
            raise ValueError("%s: weight_decay has %d factors but params has %d arrays"
                             % (fname, len(weight_decay), count))
        factors = [_real(x, fname, "weight_decay[%d]" % i, 0.0, math.inf)
                   for i, x in enumerate(weight_decay)]
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
