"""Kernels of the per-sample normalisations and small layers: layer / group norm
(csrc/layernorm.c), permute, repeat_vector, embedding, spatial dropout (csrc/tensor_ops.c).

Every function validates its arguments once, converts float64 / non-contiguous input to
C-contiguous float32, allocates (or checks a caller-provided) output and runs the C kernel
with the GIL released. Results are bitwise identical at any thread count.
"""
import collections
import numbers
import operator

import numpy as np

from .. import _ext
from ._validation import as_float32, check_no_overlap, check_output, prepare_output

__all__ = ["layer_norm_forward", "group_norm_forward", "group_norm_backward", "GroupNormCache",
           "permute", "repeat_vector", "repeat_vector_backward", "embedding_lookup",
           "embedding_backward", "spatial_dropout", "spatial_dropout_backward"]

_UINT64_MASK = (1 << 64) - 1

GroupNormCache = collections.namedtuple(
    "GroupNormCache", ["x", "dims", "mean", "inv", "gamma", "rms"])
GroupNormCache.__doc__ = """What group_norm_backward needs from layer_norm_forward /
group_norm_forward: the float32 input (a reference: do not modify it before backward), the
view (n, s, g, cg) of the kernel, the per-(sample, group) mean and 1/sqrt(var + eps), the
scale used (None for ones) and whether it was rms scaling."""


def _epsilon(epsilon, func):
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not epsilon > 0:
        raise ValueError("%s: epsilon: expected a number > 0, got %r" % (func, epsilon))
    return float(epsilon)


def _affine(value, size, name):
    if value is None:
        return None
    a = as_float32(value, name)
    if a.size != size:
        raise ValueError("%s: expected %d values (one per normalised element), got shape %s"
                         % (name, size, a.shape))
    return a.reshape(-1)


def _run_norm(func, x, dims, gamma, beta, epsilon, rms, out):
    n, s, g, cg = dims
    gamma = _affine(gamma, g * cg, "%s: gamma" % func)
    beta = _affine(beta, g * cg, "%s: beta" % func)
    out = prepare_output(func, out, "out", x.shape, [(x, "x")], in_place_ok=("x",))
    mean = np.empty(n * g, np.float32)
    inv = np.empty(n * g, np.float32)
    _ext.group_norm_forward(x.reshape(-1), n, s, g, cg, gamma, beta, epsilon, bool(rms),
                            out.reshape(-1), mean, inv)
    x_kept = x if out is not x else None
    return out, GroupNormCache(x_kept, dims, mean, inv,
                               None if gamma is None else gamma.copy(), bool(rms))


def layer_norm_forward(x, gamma=None, beta=None, epsilon=1e-3, norm_ndim=1,
                       rms_scaling=False, out=None):
    """Keras 3's layer normalisation over the trailing ``norm_ndim`` axes of ``x``.

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta`` with the mean and the biased
    variance of each sample's trailing block (double precision). ``rms_scaling=True`` is
    Keras' (deprecated) variant ``y = x / sqrt(var + epsilon) * gamma`` (no beta).

    Args:
        x: array of rank > norm_ndim.
        gamma: scale with one value per normalised element (any shape of that size), or
            None (ones).
        beta: offset, same size, or None (zeros).
        epsilon: added to the variance (> 0).
        norm_ndim: how many trailing axes are normalised together.
        rms_scaling: Keras' rms_scaling.
        out: optional output buffer of x's shape (may be ``x`` itself).

    Returns:
        (y, cache): cache is the GroupNormCache for ``group_norm_backward`` (with
        ``out=x`` the input is gone, so no backward is possible).

    Raises:
        ValueError: bad shapes or arguments.
    """
    x = as_float32(x, "layer_norm_forward: x")
    if isinstance(norm_ndim, bool) or not isinstance(norm_ndim, numbers.Integral) \
            or not 1 <= norm_ndim < max(x.ndim, 1):
        raise ValueError("layer_norm_forward: norm_ndim: expected an int in [1, %d) for an "
                         "input of rank %d, got %r" % (max(x.ndim, 1), x.ndim, norm_ndim))
    epsilon = _epsilon(epsilon, "layer_norm_forward")
    d = int(np.prod(x.shape[x.ndim - norm_ndim:], dtype=np.int64))
    n = x.size // d if d else 0
    return _run_norm("layer_norm_forward", x, (n, 1, 1, d), gamma, beta, epsilon,
                     rms_scaling, out)


def group_norm_forward(x, groups, gamma=None, beta=None, epsilon=1e-3, out=None):
    """Keras 3's group normalisation of a channels-last batch ``(N, ..., C)``.

    The C channels form ``groups`` consecutive groups; each sample's group is normalised
    with the mean and biased variance of its ``spatial * C/groups`` values, then scaled
    and shifted per channel: ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``.

    Args:
        x: array of rank >= 2, channels last.
        groups: a divisor of C.
        gamma, beta: (C,) or None (ones / zeros).
        epsilon: added to the variance (> 0).
        out: optional output buffer (may be ``x``).

    Returns:
        (y, cache) for ``group_norm_backward``.

    Raises:
        ValueError: bad shapes or arguments.
    """
    x = as_float32(x, "group_norm_forward: x")
    if x.ndim < 2:
        raise ValueError("group_norm_forward: x: expected rank >= 2 (batch, ..., channels), "
                         "got shape %s" % (x.shape,))
    c = x.shape[-1]
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups <= 0 \
            or c % groups:
        raise ValueError("group_norm_forward: groups: expected a positive divisor of the %d "
                         "channels, got %r" % (c, groups))
    epsilon = _epsilon(epsilon, "group_norm_forward")
    n = x.shape[0]
    s = int(np.prod(x.shape[1:-1], dtype=np.int64))
    return _run_norm("group_norm_forward", x, (n, s, int(groups), c // int(groups)),
                     gamma, beta, epsilon, False, out)


def group_norm_backward(dy, cache, dx=None, dgamma=None, dbeta=None, need_input_grad=True):
    """Gradients of ``layer_norm_forward`` / ``group_norm_forward``.

    Args:
        dy: gradient of the output (x's shape).
        cache: the GroupNormCache the forward returned.
        dx: optional buffer for the input gradient (must not overlap x or dy).
        dgamma, dbeta: optional buffers (one value per normalised element / channel, any
            shape of that size) for the weight gradients, summed over samples (and space)
            in a fixed order.
        need_input_grad: False skips dx (returned as None).

    Returns:
        (dx, dgamma, dbeta).

    Raises:
        ValueError: for a wrong cache, shapes or overlapping buffers.
    """
    if not isinstance(cache, GroupNormCache) or cache.x is None:
        raise ValueError("group_norm_backward: cache: expected the GroupNormCache of a forward "
                         "that did not overwrite its input, got %r" % (type(cache).__name__,))
    x = cache.x
    n, s, g, cg = cache.dims
    dy = as_float32(dy, "group_norm_backward: dy")
    if dy.shape != x.shape:
        raise ValueError("group_norm_backward: dy: expected shape %s like the forward input, "
                         "got %s" % (x.shape, dy.shape))
    c = g * cg
    outs = []
    for arr, name in ((dgamma, "dgamma"), (dbeta, "dbeta")):
        if arr is None:
            arr = np.empty(c, np.float32)
        else:
            check_output(arr, None, "group_norm_backward: %s" % name)
            if arr.size != c:
                raise ValueError("group_norm_backward: %s: expected %d values, got shape %s"
                                 % (name, c, arr.shape))
            check_no_overlap("group_norm_backward", arr, name, [(x, "x"), (dy, "dy")])
        outs.append(arr)
    dgamma, dbeta = outs
    if need_input_grad:
        dx = prepare_output("group_norm_backward", dx, "dx", x.shape,
                            [(x, "x"), (dy, "dy"), (dgamma, "dgamma"), (dbeta, "dbeta")])
    else:
        dx = None
    _ext.group_norm_backward(dy.reshape(-1), x.reshape(-1), n, s, g, cg, cache.mean,
                             cache.inv, cache.gamma, cache.rms,
                             None if dx is None else dx.reshape(-1), dgamma.reshape(-1),
                             dbeta.reshape(-1))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------- copies

def _perm(perm, ndim, func):
    try:
        p = tuple(operator.index(v) for v in perm)
    except TypeError:
        raise ValueError("%s: perm: expected a permutation of range(%d), got %r"
                         % (func, ndim, perm)) from None
    if sorted(p) != list(range(ndim)):
        raise ValueError("%s: perm: expected a permutation of range(%d), got %r"
                         % (func, ndim, perm))
    return p


def permute(x, perm, out=None):
    """``x.transpose(perm)`` written contiguously by the C copy kernel (rank <= 8).

    Args:
        x: array.
        perm: a permutation of ``range(x.ndim)`` (the batch axis included).
        out: optional output buffer of the permuted shape (must not overlap x).

    Returns:
        The permuted array.

    Raises:
        ValueError: a bad permutation or rank above 8.
    """
    x = as_float32(x, "permute: x")
    if not 1 <= x.ndim <= 8:
        raise ValueError("permute: x: expected rank 1 to 8, got shape %s" % (x.shape,))
    p = _perm(perm, x.ndim, "permute")
    shape = tuple(x.shape[k] for k in p)
    out = prepare_output("permute", out, "out", shape, [(x, "x")])
    _ext.permute(x.reshape(-1), x.shape, p, out.reshape(-1))
    return out


def repeat_vector(x, n, out=None):
    """``(batch, d) -> (batch, n, d)``: each row repeated ``n`` times (Keras RepeatVector).

    Args:
        x: 2-D array.
        n: positive int.
        out: optional output buffer ``(batch, n, d)``.

    Returns:
        The repeated array.
    """
    x = as_float32(x, "repeat_vector: x", ndim=2)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
        raise ValueError("repeat_vector: n: expected a positive int, got %r" % (n,))
    b, d = x.shape
    out = prepare_output("repeat_vector", out, "out", (b, int(n), d), [(x, "x")])
    _ext.repeat_vector(x.reshape(-1), b, int(n), d, out.reshape(-1))
    return out


def repeat_vector_backward(dy, out=None):
    """Gradient of repeat_vector: ``dx[b] = sum_r dy[b, r]`` (summed in r order).

    Args:
        dy: array ``(batch, n, d)``.
        out: optional buffer ``(batch, d)``.

    Returns:
        dx.
    """
    dy = as_float32(dy, "repeat_vector_backward: dy", ndim=3)
    b, r, d = dy.shape
    out = prepare_output("repeat_vector_backward", out, "out", (b, d), [(dy, "dy")])
    _ext.repeat_vector_backward(dy.reshape(-1), b, r, d, out.reshape(-1))
    return out


# ---------------------------------------------------------------- embedding

def _indices(indices, vocab, who):
    """Indices as a flat float32 array whose every value is checked to be an integer in
    [0, vocab) (by the C kernel); ValueError naming ``who`` otherwise."""
    idx = np.asarray(indices)
    if idx.dtype.kind not in "biuf":
        raise TypeError("%s: expected integer indices, got an array of dtype %s"
                        % (who, idx.dtype))
    if idx.dtype.kind in "iu" and idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= vocab:
            bad = lo if lo < 0 else hi
            raise ValueError("%s: index %d is out of range [0, %d) (input_dim=%d)"
                             % (who, bad, vocab, vocab))
    flat = as_float32(idx, who).reshape(-1)
    pos = _ext.embedding_check(flat, vocab)
    if pos >= 0:
        raise ValueError("%s: index %r at flat position %d is not an integer in [0, %d) "
                         "(input_dim=%d)" % (who, idx.reshape(-1)[pos].item(), pos, vocab,
                                              vocab))
    return idx.shape, flat


def embedding_lookup(indices, table, out=None, who="embedding_lookup"):
    """``table[indices]``: rows of a ``(input_dim, output_dim)`` table gathered in C.

    Args:
        indices: integer-valued array (ints or floats holding integers) of any shape;
            every value must lie in ``[0, input_dim)``.
        table: ``(input_dim, output_dim)`` float32 array.
        out: optional buffer of shape ``indices.shape + (output_dim,)``.
        who: the name that starts error messages (a layer name).

    Returns:
        The gathered rows.

    Raises:
        ValueError: an index that is not an integer in range (the message gives it).
    """
    table = as_float32(table, "%s: table" % who, ndim=2)
    vocab, dim = table.shape
    shape, flat = _indices(indices, vocab, who)
    out = prepare_output(who, out, "out", shape + (dim,), [(table, "table"), (flat, "indices")])
    _ext.embedding_forward(flat, table.reshape(-1), dim, out.reshape(-1))
    return out


def embedding_backward(indices, dy, input_dim, dtable=None, who="embedding_backward"):
    """Gradient of embedding_lookup w.r.t. the table: zeros, then ``dy`` rows added at
    their indices in index order (deterministic at any thread count).

    Args:
        indices: the indices of the forward (checked again).
        dy: ``indices.shape + (output_dim,)``.
        input_dim: the table's row count.
        dtable: optional buffer ``(input_dim, output_dim)``.
        who: the name that starts error messages.

    Returns:
        dtable.
    """
    shape, flat = _indices(indices, int(input_dim), who)
    dy = as_float32(dy, "%s: dy" % who)
    if dy.shape[:-1] != shape or dy.ndim != len(shape) + 1:
        raise ValueError("%s: dy: expected shape %s + (output_dim,), got %s"
                         % (who, shape, dy.shape))
    dim = dy.shape[-1]
    dtable = prepare_output(who, dtable, "dtable", (int(input_dim), dim),
                            [(dy, "dy"), (flat, "indices")])
    _ext.embedding_backward(flat, dy.reshape(-1), int(input_dim), dim, dtable.reshape(-1))
    return dtable


# ---------------------------------------------------------------- spatial dropout

def _rate(rate, func):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
        raise ValueError("%s: rate: expected a number in [0, 1), got %r" % (func, rate))
    return float(rate)


def spatial_dropout(x, rate, seed, out=None, mask=None):
    """Drop whole channels: ``y[b, ..., c] = x[b, ..., c] * mask[b, c] / (1 - rate)``.

    The uint8 mask ``(batch, channels)`` (1 = kept) is a pure function of ``(seed,
    b * channels + c)``, so it does not depend on the thread count.

    Args:
        x: channels-last array of rank >= 2.
        rate: in [0, 1).
        seed: int (taken modulo 2**64).
        out: optional output buffer (may be ``x``).
        mask: optional uint8 buffer ``(batch, channels)``.

    Returns:
        (y, mask).
    """
    rate = _rate(rate, "spatial_dropout")
    if isinstance(seed, bool):
        raise TypeError("spatial_dropout: seed: expected an int, got %r" % (seed,))
    try:
        seed = operator.index(seed) & _UINT64_MASK
    except TypeError:
        raise TypeError("spatial_dropout: seed: expected an int, got %r" % (seed,)) from None
    x = as_float32(x, "spatial_dropout: x")
    if x.ndim < 2:
        raise ValueError("spatial_dropout: x: expected rank >= 2, got shape %s" % (x.shape,))
    n, c = x.shape[0], x.shape[-1]
    out = prepare_output("spatial_dropout", out, "out", x.shape, [(x, "x")],
                         in_place_ok=("x",))
    mask = prepare_output("spatial_dropout", mask, "mask", (n, c), [(x, "x"), (out, "out")],
                          dtype=np.uint8)
    _ext.spatial_dropout_mask(mask.reshape(-1), rate, seed)
    s = x.size // (n * c) if n * c else 0
    _ext.channel_mask_apply(x.reshape(-1), mask.reshape(-1), n, s, c,
                            np.float32(1.0 / (1.0 - rate)), out.reshape(-1))
    return out, mask


def spatial_dropout_backward(dy, mask, rate, out=None):
    """Gradient of spatial_dropout: ``dx = dy * mask[b, c] / (1 - rate)``.

    Args:
        dy: gradient of the output.
        mask: the uint8 ``(batch, channels)`` mask of the forward.
        rate: the forward's rate.
        out: optional buffer (may be ``dy``).

    Returns:
        dx.
    """
    rate = _rate(rate, "spatial_dropout_backward")
    dy = as_float32(dy, "spatial_dropout_backward: dy")
    if dy.ndim < 2:
        raise ValueError("spatial_dropout_backward: dy: expected rank >= 2, got shape %s"
                         % (dy.shape,))
    n, c = dy.shape[0], dy.shape[-1]
    if not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != (n, c):
        raise ValueError("spatial_dropout_backward: mask: expected the uint8 (%d, %d) mask "
                         "of spatial_dropout, got %r" % (n, c, getattr(mask, "shape", mask)))
    mask = np.ascontiguousarray(mask)
    out = prepare_output("spatial_dropout_backward", out, "out", dy.shape,
                         [(dy, "dy"), (mask, "mask")], in_place_ok=("dy",))
    s = dy.size // (n * c) if n * c else 0
    _ext.channel_mask_apply(dy.reshape(-1), mask.reshape(-1), n, s, c,
                            np.float32(1.0 / (1.0 - rate)), out.reshape(-1))
    return out
