"""Batch normalization with statistics over several replicas (synchronized BN), in parts.

``batch_norm_forward`` / ``batch_norm_backward`` (ops.nn) compute their per-channel sums
inside one kernel call. A synchronized batch norm needs those sums from every replica,
so here the same kernels (csrc/normalization.c) run in parts and the caller combines the
per-replica results in between:

1. ``batch_norm_moments(x)`` -> (rows, mean, m2) of this replica (float64);
2. combine over replicas (``combine_moments``) -> the batch mean and biased variance;
3. ``batch_norm_forward_stats(x, ..., mean, var)`` -> (y, cache), moving stats updated;
4. ``batch_norm_backward_sums(dy, cache)`` -> (sum dy, sum dy * x_hat) of this replica,
   and this replica's part of dgamma / dbeta;
5. sum those over replicas, then ``batch_norm_backward_input(dy, cache, sums, total_rows)``.

With one replica the parts give bitwise what batch_norm_forward(training=True) /
batch_norm_backward give; results are bitwise the same at any thread count.
"""
import numbers

import numpy as np

from .. import _ext
from ._validation import as_float32, check_no_overlap, check_output
from .nn import BatchNormCache, relu_cap

__all__ = ["batch_norm_moments", "combine_moments", "batch_norm_forward_stats",
           "batch_norm_backward_sums", "batch_norm_backward_input"]


def _rows_channels(x, who):
    x = as_float32(x, "%s: x" % who)
    if x.ndim < 2:
        raise ValueError("%s: x: expected at least 2 axes (N, ..., C), got shape %s"
                         % (who, x.shape))
    c = x.shape[-1]
    return x, (x.size // c if c else 0), c


def _channel_vector(value, c, name, dtype=np.float64):
    v = np.ascontiguousarray(value, dtype=dtype)
    if v.shape != (c,):
        raise ValueError("%s: expected shape (%d,), got %s" % (name, c, v.shape))
    return v


def batch_norm_moments(x):
    """This replica's per-channel statistics of x (every axis but the last reduced).

    Args:
        x: float array (N, ..., C) with at least one value per channel.

    Returns:
        ``(rows, mean, m2)``: the row count, and float64 arrays (C,) of the mean and of
        ``m2 = sum((x - mean) ** 2)``, computed exactly as the training forward does.

    Raises:
        ValueError: x has fewer than 2 axes or no rows.
    """
    x, rows, c = _rows_channels(x, "batch_norm_moments")
    if rows == 0 and c > 0:
        raise ValueError("batch_norm_moments: needs at least one value per channel, got x "
                         "of shape %s" % (x.shape,))
    mean = np.empty((c,), np.float64)
    m2 = np.empty((c,), np.float64)
    _ext.batch_norm_moments(x.reshape(rows, c), mean, m2)
    return rows, mean, m2


def combine_moments(parts):
    """The batch statistics of several replicas' ``batch_norm_moments`` results.

    Merged in the given order (Chan et al.'s pairwise update), so every replica that
    combines the same list gets bitwise the same answer.

    Args:
        parts: a list of (rows, mean, m2); replicas with 0 rows are skipped.

    Returns:
        ``(rows, mean, var)``: total rows, float64 mean and biased variance (C,).

    Raises:
        ValueError: no rows at all, or channel counts differ.
    """
    parts = [(int(n), np.asarray(m, np.float64), np.asarray(q, np.float64))
             for n, m, q in parts if int(n) > 0]
    if not parts:
        raise ValueError("combine_moments: no replica has any rows")
    n, mean, m2 = parts[0][0], parts[0][1].copy(), parts[0][2].copy()
    for nb, mb, qb in parts[1:]:
        if mb.shape != mean.shape:
            raise ValueError("combine_moments: channel counts differ: %s vs %s"
                             % (mean.shape, mb.shape))
        delta = mb - mean
        w_b = nb / float(n + nb)
        w_ab = n * nb / float(n + nb)
        mean += delta * w_b
        m2 += qb + delta * delta * w_ab
        n += nb
    return n, mean, m2 / float(n)


def batch_norm_forward_stats(x, gamma, beta, mean, var, moving_mean, moving_var,
                             momentum=0.99, epsilon=1e-3, out=None, relu=False,
                             relu_max=None):
    """The training forward of batch norm with given batch statistics.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` per channel (``relu``: then
    ReLU, as batch_norm_forward), and ``moving = moving * momentum + stat * (1 -
    momentum)`` in place, as Keras 3.

    Args:
        x: float array (N, ..., C); gamma, beta: (C,) or None (ones / zeros).
        mean, var: (C,) batch mean and biased variance (e.g. from combine_moments).
        moving_mean, moving_var: float32 (C,) arrays, updated in place.
        momentum: in [0, 1]; epsilon: finite, >= 0; out: optional float32 output.
        relu, relu_max: a fused (clipped) ReLU, as batch_norm_forward.

    Returns:
        ``(y, cache)`` for batch_norm_backward_sums / batch_norm_backward_input.

    Raises:
        ValueError: a shape, value or overlap is wrong (named).
    """
    who = "batch_norm_forward_stats"
    cap = relu_cap(relu_max, who)
    x, rows, c = _rows_channels(x, who)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) \
            or not 0.0 <= float(momentum) <= 1.0:
        raise ValueError("%s: momentum: expected a number in [0, 1], got %r" % (who, momentum))
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) \
            or not 0.0 <= float(epsilon) < float("inf"):
        raise ValueError("%s: epsilon: expected a finite number >= 0, got %r" % (who, epsilon))
    gamma = (np.ones((c,), np.float32) if gamma is None
             else _channel_vector(gamma, c, who + ": gamma", np.float32))
    beta = (np.zeros((c,), np.float32) if beta is None
            else _channel_vector(beta, c, who + ": beta", np.float32))
    mean = _channel_vector(mean, c, who + ": mean")
    var = _channel_vector(var, c, who + ": var")
    if np.any(var < 0):
        raise ValueError("%s: var: expected variances >= 0" % who)
    moving_mean = check_output(moving_mean, (c,), who + ": moving_mean (updated in place)")
    moving_var = check_output(moving_var, (c,), who + ": moving_var (updated in place)")
    check_no_overlap(who, moving_var, "moving_var", [(moving_mean, "moving_mean")])
    out = check_output(out, x.shape, who + ": out")
    check_no_overlap(who, out, "out", [(x, "x (kept for the backward pass)"),
                                       (moving_mean, "moving_mean"), (moving_var, "moving_var")])
    mean_out = np.empty((c,), np.float32)
    inv_std = np.empty((c,), np.float32)
    _ext.batch_norm_forward_stats(x.reshape(rows, c), gamma, beta, mean, var, float(momentum),
                                  float(epsilon), moving_mean, moving_var,
                                  out.reshape(rows, c), mean_out, inv_std, bool(relu), cap)
    return out, BatchNormCache(x, mean_out, inv_std, gamma.copy(), True)


def _check_dy(dy, cache, who, relu_output):
    if not isinstance(cache, BatchNormCache) or not cache.training:
        raise ValueError("%s: cache: expected the BatchNormCache of a training forward "
                         "(batch_norm_forward_stats), got %r" % (who, type(cache).__name__))
    x = cache.x
    dy = as_float32(dy, who + ": dy")
    if dy.shape != x.shape:
        raise ValueError("%s: dy: expected shape %s like the forward input, got %s"
                         % (who, x.shape, dy.shape))
    ry = None
    if relu_output is not None:
        if not isinstance(relu_output, np.ndarray) or relu_output.dtype != np.float32 \
                or relu_output.shape != x.shape:
            raise ValueError("%s: relu_output: expected the float32 output (shape %s) of the "
                             "forward with relu=True" % (who, x.shape))
        ry = np.ascontiguousarray(relu_output)
    c = x.shape[-1]
    return x, dy, ry, (x.size // c if c else 0), c


def batch_norm_backward_sums(dy, cache, dgamma=None, dbeta=None, relu_output=None,
                             relu_max=None):
    """This replica's per-channel gradient sums of a training batch norm.

    Args:
        dy: the gradient w.r.t. the forward's output (x's shape).
        cache: from batch_norm_forward_stats.
        dgamma, dbeta: optional float32 (C,) outputs.
        relu_output: the forward's output when it ran with relu=True (dy is then masked).
        relu_max: the forward's relu_max (a clipped ReLU's mask), or None.

    Returns:
        ``(sum_dy, sum_dy_xhat, dgamma, dbeta)``: float64 (C,) sums, and this replica's
        weight gradients ``dgamma = sum(dy * x_hat)``, ``dbeta = sum(dy)`` as float32.

    Raises:
        ValueError: a shape or the cache is wrong, or outputs overlap inputs.
    """
    who = "batch_norm_backward_sums"
    cap = relu_cap(relu_max, who)
    x, dy, ry, rows, c = _check_dy(dy, cache, who, relu_output)
    dgamma = check_output(dgamma, (c,), who + ": dgamma")
    dbeta = check_output(dbeta, (c,), who + ": dbeta")
    check_no_overlap(who, dbeta, "dbeta", [(dgamma, "dgamma"), (dy, "dy"), (x, "x")])
    check_no_overlap(who, dgamma, "dgamma", [(dy, "dy"), (x, "x")])
    sum_dy = np.empty((c,), np.float64)
    sum_dy_xhat = np.empty((c,), np.float64)
    _ext.batch_norm_backward_sums(dy.reshape(rows, c), x.reshape(rows, c), cache.mean,
                                  cache.inv_std, sum_dy, sum_dy_xhat, dgamma, dbeta,
                                  None if ry is None else ry.reshape(rows, c), cap)
    return sum_dy, sum_dy_xhat, dgamma, dbeta


def batch_norm_backward_input(dy, cache, sum_dy, sum_dy_xhat, total_rows, dx=None,
                              relu_output=None, relu_max=None):
    """The input gradient of a training batch norm from the sums over all replicas.

    ``dx = gamma * inv_std * (dy - sum_dy / M - x_hat * sum_dy_xhat / M)``, M the rows
    of all replicas together.

    Args:
        dy, cache, relu_output, relu_max: as batch_norm_backward_sums.
        sum_dy, sum_dy_xhat: (C,) sums over every replica.
        total_rows: M, the rows of every replica together (>= this replica's rows).
        dx: optional float32 output (may be dy).

    Returns:
        dx.

    Raises:
        ValueError: a shape, the cache or total_rows is wrong.
    """
    who = "batch_norm_backward_input"
    cap = relu_cap(relu_max, who)
    x, dy, ry, rows, c = _check_dy(dy, cache, who, relu_output)
    sum_dy = _channel_vector(sum_dy, c, who + ": sum_dy")
    sum_dy_xhat = _channel_vector(sum_dy_xhat, c, who + ": sum_dy_xhat")
    if isinstance(total_rows, bool) or not isinstance(total_rows, numbers.Integral) \
            or total_rows < max(rows, 1):
        raise ValueError("%s: total_rows: expected an int >= this replica's %d rows, got %r"
                         % (who, rows, total_rows))
    dx = check_output(dx, x.shape, who + ": dx")
    check_no_overlap(who, dx, "dx", [(dy, "dy"), (x, "x"), (ry, "relu_output")],
                     in_place_ok=("dy",))
    _ext.batch_norm_backward_input(dy.reshape(rows, c), x.reshape(rows, c), cache.mean,
                                   cache.inv_std, cache.gamma, sum_dy, sum_dy_xhat,
                                   int(total_rows), dx.reshape(rows, c),
                                   None if ry is None else ry.reshape(rows, c), cap)
    return dx
