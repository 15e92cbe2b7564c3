"""Property-based tests (hypothesis) of conv2d, max/avg pooling and dense.

Hypothesis draws the geometry - batch, height, width, channels, filters, kernel / pool size,
strides, padding - including sizes of 1, strides larger than the input and windows larger
than the input. Every VALID combination is compared with the small float64 NumPy references
below (forward and backward); every INVALID one must raise ValueError from the Python side
before any C kernel runs (checked with a spy on the ``_ext`` module the ops call).

Examples are derandomized (CI is reproducible). For a bug hunt, ``FASTCNN_HYPOTHESIS_SCALE=10``
runs ten times as many examples and ``FASTCNN_HYPOTHESIS_RANDOM=1`` draws fresh ones each run;
``pytest -s`` prints how many examples ran.
"""
import collections
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings, strategies as st

from fastcnn import ops
from fastcnn.ops import conv as conv_module
from fastcnn.ops import nn as nn_module
from fastcnn.ops import pool as pool_module
from conftest import num_threads

_SCALE = float(os.environ.get("FASTCNN_HYPOTHESIS_SCALE", "1"))
_DERANDOMIZE = os.environ.get("FASTCNN_HYPOTHESIS_RANDOM", "") != "1"
EXAMPLES = collections.Counter()


def _settings(n):
    return settings(max_examples=max(1, int(n * _SCALE)), deadline=None, derandomize=_DERANDOMIZE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def _report_examples():
    yield
    total = sum(EXAMPLES.values())
    print("\nhypothesis examples run: %d (%s)"
          % (total, ", ".join("%s=%d" % kv for kv in sorted(EXAMPLES.items()))))


# ------------------------------------------------------------------ NumPy references

def ref_out_and_pad(size, window, stride, padding):
    """(out, pad_before) along one axis as TF/Keras define it; out <= 0 means impossible."""
    if padding == "valid":
        return (size - window) // stride + 1 if size >= window else 0, 0
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2


def ref_conv(x, k, b, strides, padding, relu=False):
    """Direct loops over output pixels (float64)."""
    x, k = x.astype(np.float64), k.astype(np.float64)
    n, h, w, c = x.shape
    kh, kw, _, f = k.shape
    oh, pt = ref_out_and_pad(h, kh, strides[0], padding)
    ow, pl = ref_out_and_pad(w, kw, strides[1], padding)
    y = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                r = i * strides[0] - pt + di
                if not 0 <= r < h:
                    continue
                for dj in range(kw):
                    s = j * strides[1] - pl + dj
                    if 0 <= s < w:
                        y[:, i, j, :] += x[:, r, s, :] @ k[di, dj]
    if b is not None:
        y += b.astype(np.float64)
    return np.maximum(y, 0) if relu else y


def ref_conv_backward(dy, x, k, strides, padding):
    """(dx, dk, db) of ref_conv without activation, by the same loops."""
    dy, x, k = dy.astype(np.float64), x.astype(np.float64), k.astype(np.float64)
    n, h, w, c = x.shape
    kh, kw, _, f = k.shape
    oh, pt = ref_out_and_pad(h, kh, strides[0], padding)
    ow, pl = ref_out_and_pad(w, kw, strides[1], padding)
    dx, dk = np.zeros_like(x), np.zeros_like(k)
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                r = i * strides[0] - pt + di
                if not 0 <= r < h:
                    continue
                for dj in range(kw):
                    s = j * strides[1] - pl + dj
                    if 0 <= s < w:
                        dx[:, r, s, :] += dy[:, i, j, :] @ k[di, dj].T
                        dk[di, dj] += x[:, r, s, :].T @ dy[:, i, j, :]
    return dx, dk, dy.sum(axis=(0, 1, 2))


def _pool_windows(h, w, pool, strides, padding):
    oh, pt = ref_out_and_pad(h, pool[0], strides[0], padding)
    ow, pl = ref_out_and_pad(w, pool[1], strides[1], padding)
    for i in range(oh):
        r0, r1 = max(i * strides[0] - pt, 0), min(i * strides[0] - pt + pool[0], h)
        for j in range(ow):
            c0, c1 = max(j * strides[1] - pl, 0), min(j * strides[1] - pl + pool[1], w)
            yield i, j, r0, r1, c0, c1


def ref_max_pool(x, pool, strides, padding):
    """Max over the real (non-padding) window and the flat index of its FIRST maximum."""
    n, h, w, c = x.shape
    oh, _ = ref_out_and_pad(h, pool[0], strides[0], padding)
    ow, _ = ref_out_and_pad(w, pool[1], strides[1], padding)
    y = np.empty((n, oh, ow, c))
    idx = np.empty((n, oh, ow, c), dtype=np.int64)
    for i, j, r0, r1, c0, c1 in _pool_windows(h, w, pool, strides, padding):
        for b in range(n):
            for ch in range(c):
                win = x[b, r0:r1, c0:c1, ch]
                a = int(np.argmax(win))            # first maximum in row-major order
                y[b, i, j, ch] = win.flat[a]
                idx[b, i, j, ch] = ((r0 + a // (c1 - c0)) * w + c0 + a % (c1 - c0)) * c + ch
    return y, idx


def ref_max_pool_backward(dy, idx, x_shape):
    dx = np.zeros((x_shape[0], int(np.prod(x_shape[1:]))))
    for b in range(x_shape[0]):
        np.add.at(dx[b], idx[b].ravel(), dy[b].astype(np.float64).ravel())
    return dx.reshape(x_shape)


def ref_avg_pool(x, pool, strides, padding):
    n, h, w, c = x.shape
    oh, _ = ref_out_and_pad(h, pool[0], strides[0], padding)
    ow, _ = ref_out_and_pad(w, pool[1], strides[1], padding)
    y = np.empty((n, oh, ow, c))
    for i, j, r0, r1, c0, c1 in _pool_windows(h, w, pool, strides, padding):
        y[:, i, j, :] = x[:, r0:r1, c0:c1, :].astype(np.float64).mean(axis=(1, 2))
    return y


def ref_avg_pool_backward(dy, x_shape, pool, strides, padding):
    dx = np.zeros(x_shape)
    for i, j, r0, r1, c0, c1 in _pool_windows(x_shape[1], x_shape[2], pool, strides, padding):
        dx[:, r0:r1, c0:c1, :] += dy[:, i, j, None, None, :] / ((r1 - r0) * (c1 - c0))
    return dx


# ------------------------------------------------------------------ data and spies

def _values(seed, shape, integer):
    """Small integers (exact float32 sums, many ties) or standard normal values."""
    rng = np.random.default_rng(seed)
    if integer:
        return rng.integers(-3, 4, size=shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


class _ExtSpy:
    """Stands in for ``fastcnn._ext`` in an ops module and records every call into C."""

    def __init__(self, real):
        self._real = real
        self.calls = []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def record(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)
        return record


def _raises_before_c(module, fn, *args, **kwargs):
    """fn(...) must raise ValueError without calling into C; returns the message."""
    spy = _ExtSpy(module._ext)
    saved = module._ext
    module._ext = spy
    try:
        with pytest.raises(ValueError) as info:
            fn(*args, **kwargs)
    finally:
        module._ext = saved
    assert spy.calls == [], "C ran before the ValueError: %s" % spy.calls
    return str(info.value)


def _close(actual, expected, what, exact=False):
    actual = np.asarray(actual, np.float64)
    assert actual.shape == expected.shape, "%s: shape %s != %s" % (what, actual.shape,
                                                                    expected.shape)
    if exact:
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=what)


# ------------------------------------------------------------------ strategies

sizes = st.integers(1, 9)
windows = st.integers(1, 6)
steps = st.integers(1, 4)
paddings = st.sampled_from(["valid", "same"])


@st.composite
def conv_cases(draw):
    return dict(n=draw(st.integers(1, 3)), h=draw(sizes), w=draw(sizes),
                c=draw(st.sampled_from([1, 2, 3, 7, 8, 9])), f=draw(st.integers(1, 6)),
                kh=draw(windows), kw=draw(windows), sh=draw(steps), sw=draw(steps),
                padding=draw(paddings), bias=draw(st.booleans()), relu=draw(st.booleans()),
                integer=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 32 - 1)))


@st.composite
def pool_cases(draw):
    strides = draw(st.one_of(st.none(), st.tuples(steps, steps)))
    return dict(n=draw(st.integers(1, 3)), h=draw(sizes), w=draw(sizes),
                c=draw(st.integers(1, 9)), pool=(draw(windows), draw(windows)),
                strides=strides, padding=draw(paddings), integer=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 32 - 1)))


def _conv_valid(case):
    oh, _ = ref_out_and_pad(case["h"], case["kh"], case["sh"], case["padding"])
    ow, _ = ref_out_and_pad(case["w"], case["kw"], case["sw"], case["padding"])
    return oh >= 1 and ow >= 1


# ------------------------------------------------------------------ conv2d

@_settings(800)
@given(conv_cases())
def test_conv2d_forward_backward_match_reference(case):
    EXAMPLES["conv2d"] += 1
    n, h, w, c, f = case["n"], case["h"], case["w"], case["c"], case["f"]
    kh, kw, strides, padding = case["kh"], case["kw"], (case["sh"], case["sw"]), case["padding"]
    x = _values(case["seed"], (n, h, w, c), case["integer"])
    k = _values(case["seed"] + 1, (kh, kw, c, f), case["integer"])
    b = _values(case["seed"] + 2, (f,), case["integer"]) if case["bias"] else None
    act = "relu" if case["relu"] else None
    event("valid geometry" if _conv_valid(case) else "invalid geometry")
    if not _conv_valid(case):
        msg = _raises_before_c(conv_module, ops.conv2d, x, k, b, strides, padding, act)
        assert "conv2d" in msg and "larger than" in msg
        dy = np.zeros((n, 1, 1, f), np.float32)
        _raises_before_c(conv_module, ops.conv2d_backward, dy, x, k, strides, padding)
        return
    exact = case["integer"]  # integer data: every float32 sum is exact
    y = ops.conv2d(x, k, b, strides=strides, padding=padding, activation=act)
    _close(y, ref_conv(x, k, b, strides, padding, relu=case["relu"]), "conv2d forward", exact)
    dy = _values(case["seed"] + 3, y.shape, case["integer"])
    dx, dk, db = ops.conv2d_backward(dy, x, k, strides=strides, padding=padding,
                                     use_bias=case["bias"])
    rdx, rdk, rdb = ref_conv_backward(dy, x, k, strides, padding)
    _close(dx, rdx, "conv2d dx", exact)
    _close(dk, rdk, "conv2d dkernel", exact)
    if case["bias"]:
        _close(db, rdb, "conv2d dbias", exact)
    else:
        assert db is None
    # the thread count never changes a bit
    with num_threads(1):
        y1 = ops.conv2d(x, k, b, strides=strides, padding=padding, activation=act)
        g1 = ops.conv2d_backward(dy, x, k, strides=strides, padding=padding)
    with num_threads(2):
        y2 = ops.conv2d(x, k, b, strides=strides, padding=padding, activation=act)
        g2 = ops.conv2d_backward(dy, x, k, strides=strides, padding=padding)
    np.testing.assert_array_equal(y1, y2)
    for a1, a2 in zip(g1, g2):
        np.testing.assert_array_equal(a1, a2)


@_settings(300)
@given(conv_cases())
def test_conv2d_backward_is_the_adjoint_of_forward(case):
    """<conv(x, k), dy> = <x, dx(dy)> = <k, dk(dy)>: needs no reference at all."""
    assume(_conv_valid(case))
    EXAMPLES["conv2d_adjoint"] += 1
    strides, padding = (case["sh"], case["sw"]), case["padding"]
    x = _values(case["seed"], (case["n"], case["h"], case["w"], case["c"]), False)
    k = _values(case["seed"] + 1, (case["kh"], case["kw"], case["c"], case["f"]), False)
    y = ops.conv2d(x, k, strides=strides, padding=padding)
    dy = _values(case["seed"] + 3, y.shape, False)
    dx, dk, _ = ops.conv2d_backward(dy, x, k, strides=strides, padding=padding)
    lhs = float(np.dot(y.ravel().astype(np.float64), dy.ravel()))
    tol = 1e-4 * (np.abs(y).sum() * np.abs(dy).max() + 1.0)
    assert abs(lhs - float(np.dot(x.ravel().astype(np.float64), dx.ravel()))) <= tol
    assert abs(lhs - float(np.dot(k.ravel().astype(np.float64), dk.ravel()))) <= tol


def ref_conv_taps(x, k, strides, padding):
    """The same convolution vectorised per kernel tap (fast enough for bigger shapes)."""
    x, k = x.astype(np.float64), k.astype(np.float64)
    n, h, w, c = x.shape
    kh, kw, _, f = k.shape
    (oh, pt), (ow, pl) = (ref_out_and_pad(h, kh, strides[0], padding),
                          ref_out_and_pad(w, kw, strides[1], padding))
    hp = max((oh - 1) * strides[0] + kh, h + pt)
    wp = max((ow - 1) * strides[1] + kw, w + pl)
    xp = np.zeros((n, hp, wp, c))
    xp[:, pt:pt + h, pl:pl + w] = x
    y = np.zeros((n, oh, ow, f))
    for di in range(kh):
        for dj in range(kw):
            win = xp[:, di:di + strides[0] * (oh - 1) + 1:strides[0],
                     dj:dj + strides[1] * (ow - 1) + 1:strides[1]]
            y += win @ k[di, dj]
    return y


@_settings(30)
@given(n=st.integers(4, 12), h=st.integers(24, 40), w=st.integers(24, 40),
       c=st.sampled_from([16, 33]), f=st.sampled_from([1, 8, 17, 32]),
       kh=st.integers(2, 5), kw=st.integers(2, 5), s=st.integers(1, 2), padding=paddings,
       simd=st.sampled_from([0, -1]), seed=st.integers(0, 2 ** 32 - 1))
def test_conv2d_bigger_shapes_several_chunks_both_simd_paths(n, h, w, c, f, kh, kw, s, padding,
                                                             simd, seed):
    """Shapes whose column buffer spans several workspace chunks, portable and SIMD path."""
    from fastcnn import _ext
    EXAMPLES["conv2d_big"] += 1
    x = _values(seed, (n, h, w, c), False)
    k = _values(seed + 1, (kh, kw, c, f), False) / np.float32(np.sqrt(kh * kw * c))
    _ext.force_simd(simd)
    try:
        y = ops.conv2d(x, k, strides=s, padding=padding)
        pads = (ref_out_and_pad(h, kh, s, padding)[1], ref_out_and_pad(w, kw, s, padding)[1])
        lines = _ext.conv2d_chunk_lines(x.shape, k.shape, (s, s), pads, y.shape[1:3])
        event("several workspace chunks" if lines < n * y.shape[1] else "one chunk")
        dy = _values(seed + 2, y.shape, False)
        dx, dk, db = ops.conv2d_backward(dy, x, k, strides=s, padding=padding)
    finally:
        _ext.force_simd(-1)
    _close(y, ref_conv_taps(x, k, (s, s), padding), "conv2d forward (big)")
    # backward: the adjoint identities against the forward, plus dbias exactly summed
    lhs = float(np.dot(y.ravel().astype(np.float64), dy.ravel()))
    tol = 1e-4 * (np.abs(y).sum() * np.abs(dy).max() + 1.0)
    assert abs(lhs - float(np.dot(x.ravel().astype(np.float64), dx.ravel()))) <= tol
    assert abs(lhs - float(np.dot(k.ravel().astype(np.float64), dk.ravel()))) <= tol
    _close(db, dy.astype(np.float64).sum(axis=(0, 1, 2)), "conv2d dbias (big)")


@_settings(150)
@given(n=st.integers(1, 5), h=st.integers(1, 19), w=st.integers(1, 19),
       c=st.sampled_from([1, 5, 16, 20]), f=st.sampled_from([1, 3, 8, 17]), padding=paddings,
       algorithm=st.sampled_from(["winograd_f2", "winograd_f4"]), crop=st.booleans(),
       simd=st.sampled_from([0, -1]), seed=st.integers(0, 2 ** 32 - 1))
def test_conv2d_winograd_tile_sizes_match_reference(n, h, w, c, f, padding, algorithm, crop,
                                                   simd, seed):
    """Both Winograd tile sizes on any 3x3 stride-1 geometry (partial edge tiles, 1-pixel
    images, channel tails, output_size crops), portable and SIMD path: the reference
    within a tolerance (their constants are not exact), the adjoint identities, and the
    thread count changes no bit."""
    from fastcnn import _ext
    oh, _ = ref_out_and_pad(h, 3, 1, padding)
    ow, _ = ref_out_and_pad(w, 3, 1, padding)
    assume(oh >= 1 and ow >= 1)
    EXAMPLES["conv2d_winograd"] += 1
    out = (max(1, oh - 1), max(1, ow - 1)) if crop else None
    event("%s%s" % (algorithm, " crop" if crop else ""))
    x = _values(seed, (n, h, w, c), False)
    k = _values(seed + 1, (3, 3, c, f), False) / np.float32(3 * np.sqrt(c))
    b = _values(seed + 2, (f,), False)
    _ext.force_simd(simd)
    try:
        runs = []
        for threads in (1, 2):
            with num_threads(threads):
                y = ops.conv2d(x, k, b, padding=padding, algorithm=algorithm, output_size=out)
                dy = _values(seed + 3, y.shape, False)
                runs.append((y,) + ops.conv2d_backward(dy, x, k, padding=padding,
                                                       algorithm=algorithm, output_size=out))
    finally:
        _ext.force_simd(-1)
    for a1, a2 in zip(*runs):
        np.testing.assert_array_equal(a1, a2)
    y, dx, dk, db = runs[0]
    full = ref_conv(x, k, b, (1, 1), padding)
    _close(y, full[:, :y.shape[1], :y.shape[2]], "%s forward" % algorithm)
    yb = y - b  # the adjoint identities hold for the linear part
    lhs = float(np.dot(yb.ravel().astype(np.float64), dy.ravel()))
    tol = 1e-4 * (np.abs(yb).sum() * np.abs(dy).max() + 1.0)
    assert abs(lhs - float(np.dot(x.ravel().astype(np.float64), dx.ravel()))) <= tol
    assert abs(lhs - float(np.dot(k.ravel().astype(np.float64), dk.ravel()))) <= tol


# ------------------------------------------------------------------ pooling

def _pool_geometry(case):
    strides = case["strides"] if case["strides"] is not None else case["pool"]
    oh, _ = ref_out_and_pad(case["h"], case["pool"][0], strides[0], case["padding"])
    ow, _ = ref_out_and_pad(case["w"], case["pool"][1], strides[1], case["padding"])
    return strides, oh, ow


@_settings(600)
@given(pool_cases())
def test_max_pool_forward_backward_match_reference(case):
    EXAMPLES["max_pool2d"] += 1
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = _values(case["seed"], shape, case["integer"])  # integers: many tied maxima
    pool, padding = case["pool"], case["padding"]
    strides, oh, ow = _pool_geometry(case)
    event("valid geometry" if oh >= 1 and ow >= 1 else "invalid geometry")
    if oh < 1 or ow < 1:
        msg = _raises_before_c(pool_module, ops.max_pool2d, x, pool, case["strides"], padding)
        assert "does not fit" in msg
        return
    y, idx = ops.max_pool2d(x, pool, case["strides"], padding, return_indices=True)
    ry, ridx = ref_max_pool(x, pool, strides, padding)
    np.testing.assert_array_equal(y, ry.astype(np.float32))
    np.testing.assert_array_equal(idx, ridx)
    dy = _values(case["seed"] + 1, y.shape, case["integer"])
    dx = ops.max_pool2d_backward(dy, idx, shape)
    _close(dx, ref_max_pool_backward(dy, ridx, shape), "max_pool2d dx", case["integer"])


@_settings(600)
@given(pool_cases())
def test_avg_pool_forward_backward_match_reference(case):
    EXAMPLES["avg_pool2d"] += 1
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = _values(case["seed"], shape, case["integer"])
    pool, padding = case["pool"], case["padding"]
    strides, oh, ow = _pool_geometry(case)
    event("valid geometry" if oh >= 1 and ow >= 1 else "invalid geometry")
    if oh < 1 or ow < 1:
        msg = _raises_before_c(pool_module, ops.avg_pool2d, x, pool, case["strides"], padding)
        assert "does not fit" in msg
        dy = np.zeros((case["n"], 1, 1, case["c"]), np.float32)
        _raises_before_c(pool_module, ops.avg_pool2d_backward, dy, shape, pool,
                         case["strides"], padding)
        return
    y = ops.avg_pool2d(x, pool, case["strides"], padding)
    _close(y, ref_avg_pool(x, pool, strides, padding), "avg_pool2d forward")
    dy = _values(case["seed"] + 1, y.shape, case["integer"])
    dx = ops.avg_pool2d_backward(dy, shape, pool, case["strides"], padding)
    _close(dx, ref_avg_pool_backward(dy, shape, pool, strides, padding), "avg_pool2d dx")


# ------------------------------------------------------------------ dense

@_settings(300)
@given(n=st.integers(1, 9), fan_in=st.integers(1, 40), units=st.integers(1, 20),
       bias=st.booleans(), relu=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_dense_forward_backward_match_reference(n, fan_in, units, bias, relu, seed):
    EXAMPLES["dense"] += 1
    x = _values(seed, (n, fan_in), False)
    k = _values(seed + 1, (fan_in, units), False)
    b = _values(seed + 2, (units,), False) if bias else None
    y = ops.dense(x, k, b, activation="relu" if relu else None)
    ref = x.astype(np.float64) @ k + (0 if b is None else b)
    if relu:
        ref = np.maximum(ref, 0)
    _close(y, ref, "dense forward")
    dy = _values(seed + 3, (n, units), False)
    dx, dk, db = ops.dense_backward(dy, x, k, use_bias=bias)
    _close(dx, dy.astype(np.float64) @ k.T, "dense dx")
    _close(dk, x.astype(np.float64).T @ dy, "dense dkernel")
    if bias:
        _close(db, dy.astype(np.float64).sum(axis=0), "dense dbias")


# ------------------------------------------------------------------ invalid arguments

bad_ints = st.one_of(st.integers(-3, 0), st.just(True), st.just(1.5), st.just((1,)),
                     st.just((1, 1, 1)), st.just("2"))


@_settings(300)
@given(case=conv_cases(), which=st.sampled_from(["strides", "zero_dim", "channels", "padding",
                                                  "bias", "dy", "ndim"]),
       bad=bad_ints, axis=st.integers(0, 3))
def test_conv2d_invalid_arguments_raise_before_c(case, which, bad, axis):
    EXAMPLES["conv2d_invalid"] += 1
    x = np.ones((case["n"], case["h"], case["w"], case["c"]), np.float32)
    k = np.ones((1, 1, case["c"], case["f"]), np.float32)  # always fits: isolate the defect
    args = dict(strides=(1, 1), padding=case["padding"])
    if which == "strides":
        args["strides"] = bad if not isinstance(bad, int) or isinstance(bad, bool) \
            else (1, bad) if axis % 2 else bad
    elif which == "zero_dim":
        if axis == 3:  # a zero-size kernel dimension (kh, kw or F)
            kshape = list(k.shape)
            kshape[[0, 1, 3][case["seed"] % 3]] = 0
            k = np.ones(kshape, np.float32)
        else:          # a zero-size H, W or C (C: the kernel follows)
            shape = list(x.shape)
            shape[1 + axis] = 0
            x = np.ones(shape, np.float32)
            k = np.ones((1, 1, shape[3], case["f"]), np.float32)
    elif which == "channels":
        k = np.ones((1, 1, case["c"] + 1, case["f"]), np.float32)
    elif which == "padding":
        args["padding"] = ["full", "SAME ", "", None, 0][axis]
    elif which == "ndim":
        x = x[0]
    msg = None
    if which == "bias":
        msg = _raises_before_c(conv_module, ops.conv2d, x, k,
                               np.ones(case["f"] + 1, np.float32), **args)
    elif which == "dy":
        y_shape = ops.conv2d_output_shape(x.shape, k.shape, **args)
        bad_dy = np.ones(y_shape[:axis] + (y_shape[axis] + 1,) + y_shape[axis + 1:],
                         np.float32)
        msg = _raises_before_c(conv_module, ops.conv2d_backward, bad_dy, x, k, **args)
        assert "dy" in msg
    else:
        msg = _raises_before_c(conv_module, ops.conv2d, x, k, **args)
        if x.ndim == 4 and k.shape[2] == x.shape[3] and min(x.shape[1:]) > 0 \
                and min(k.shape) > 0:
            y_shape = (x.shape[0], 1, 1, k.shape[3])
        else:
            y_shape = (1, 1, 1, 1)
        _raises_before_c(conv_module, ops.conv2d_backward, np.ones(y_shape, np.float32), x,
                         k, **args)
    assert msg.startswith("conv2d")


@_settings(300)
@given(case=pool_cases(), which=st.sampled_from(["pool", "strides", "zero_hw", "padding",
                                                  "dy", "input_shape", "indices"]),
       bad=bad_ints, axis=st.integers(0, 3))
def test_pooling_invalid_arguments_raise_before_c(case, which, bad, axis):
    EXAMPLES["pool_invalid"] += 1
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = np.ones(shape, np.float32)
    args = dict(pool_size=(1, 1), strides=None, padding=case["padding"])
    if which == "pool":
        args["pool_size"] = bad
    elif which == "strides":
        args["strides"] = bad
    elif which == "zero_hw":
        shape = shape[:1 + axis % 2] + (0,) + shape[2 + axis % 2:]
        x = np.ones(shape, np.float32)
    elif which == "padding":
        args["padding"] = ["full", "SAME ", "", None, 0][axis]
    if which in ("pool", "strides", "zero_hw", "padding"):
        for fn in (ops.max_pool2d, ops.avg_pool2d):
            msg = _raises_before_c(pool_module, fn, x, **args)
            assert msg.startswith(fn.__name__)
        _raises_before_c(pool_module, ops.avg_pool2d_backward, np.ones((1, 1, 1, 1), np.float32),
                         shape, **args)
        return
    y, idx = ops.max_pool2d(x, return_indices=True, **args)
    if which == "dy":
        bad_dy = np.ones(y.shape[:axis] + (y.shape[axis] + 1,) + y.shape[axis + 1:], np.float32)
        _raises_before_c(pool_module, ops.avg_pool2d_backward, bad_dy, shape, **args)
        _raises_before_c(pool_module, ops.max_pool2d_backward, bad_dy, idx, shape)
    elif which == "input_shape":
        bad_shape = list(shape)
        bad_shape[axis] = -1 - axis
        _raises_before_c(pool_module, ops.avg_pool2d_backward, y, tuple(bad_shape), **args)
        _raises_before_c(pool_module, ops.max_pool2d_backward, y, idx, tuple(bad_shape))
    else:  # indices outside the image: detected by the Python side for non-int32 input
        bad_idx = idx.astype(np.int64)
        bad_idx.flat[case["seed"] % bad_idx.size] = [-1, int(np.prod(shape[1:])),
                                                    2 ** 40, -2 ** 40][axis]
        _raises_before_c(pool_module, ops.max_pool2d_backward, y, bad_idx, shape)


@_settings(150)
@given(n=st.integers(1, 5), fan_in=st.integers(1, 8), units=st.integers(1, 8),
       which=st.sampled_from(["kernel_rows", "kernel_ndim", "bias", "x_ndim", "dy",
                              "activation"]))
def test_dense_invalid_arguments_raise_before_c(n, fan_in, units, which):
    EXAMPLES["dense_invalid"] += 1
    x = np.ones((n, fan_in), np.float32)
    k = np.ones((fan_in, units), np.float32)
    if which == "kernel_rows":
        _raises_before_c(nn_module, ops.dense, x, np.ones((fan_in + 1, units), np.float32))
    elif which == "kernel_ndim":
        _raises_before_c(nn_module, ops.dense, x, k[None])
    elif which == "bias":
        _raises_before_c(nn_module, ops.dense, x, k, np.ones(units + 1, np.float32))
    elif which == "x_ndim":
        _raises_before_c(nn_module, ops.dense, x[None], k)
    elif which == "activation":
        _raises_before_c(nn_module, ops.dense, x, k, None, "tanh")
    else:
        _raises_before_c(nn_module, ops.dense_backward, np.ones((n, units + 1), np.float32),
                         x, k)


# ------------------------------------------------------------------ empty batches

@pytest.mark.parametrize("padding", ["valid", "same"])
def test_empty_batch_is_valid_and_gives_empty_outputs_and_zero_weight_grads(padding):
    """N = 0 is not an error (as in Keras); weight gradients of nothing are zeros."""
    x = np.ones((0, 5, 4, 3), np.float32)
    k = np.ones((3, 2, 3, 4), np.float32)
    y = ops.conv2d(x, k, np.ones(4, np.float32), padding=padding)
    assert y.shape[0] == 0 and y.shape[3] == 4
    dx, dk, db = ops.conv2d_backward(y, x, k, padding=padding,
                                     dkernel=np.full(k.shape, np.nan, np.float32),
                                     dbias=np.full(4, np.nan, np.float32))
    assert dx.shape == x.shape and not dk.any() and not db.any()
    for fn in (ops.max_pool2d, ops.avg_pool2d):
        assert fn(x, 2, padding=padding).shape[0] == 0
    dense_dx, dense_dk, dense_db = ops.dense_backward(np.ones((0, 2), np.float32),
                                                      np.ones((0, 3), np.float32),
                                                      np.ones((3, 2), np.float32))
    assert dense_dx.shape == (0, 3) and not dense_dk.any() and not dense_db.any()
