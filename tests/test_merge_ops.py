"""Merge and shape kernels (fastcnn.ops.merge) against NumPy references."""
import importlib

import numpy as np
import pytest

from fastcnn import _ext, ops
from conftest import assert_close, fd_grad, num_threads

merge_module = importlib.import_module("fastcnn.ops.merge")

ELEMENTWISE = ("add", "subtract", "multiply", "average", "maximum", "minimum")
SHAPES = [(1,), (7,), (3, 5), (2, 5, 7, 3), (1, 1, 1, 1), (0, 4), (4099,), (3, 2051)]


# ---------------------------------------------------------------- references

def merge_ref(op, xs):
    """float64 reference."""
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    if op == "subtract":
        return xs[0] - xs[1]
    if op == "average":
        return sum(xs[1:], xs[0]) / len(xs)
    fold = {"add": np.add, "multiply": np.multiply, "maximum": np.maximum,
            "minimum": np.minimum}[op]
    y = xs[0]
    for x in xs[1:]:
        y = fold(y, x)
    return y


def merge_fold32(op, xs):
    """The documented float32 left-to-right fold, op by op in NumPy float32 (Keras' order)."""
    xs = [np.asarray(x, dtype=np.float32) for x in xs]
    if op == "subtract":
        return xs[0] - xs[1]
    fold = {"add": np.add, "average": np.add, "multiply": np.multiply,
            "maximum": np.maximum, "minimum": np.minimum}[op]
    y = xs[0]
    for x in xs[1:]:
        y = fold(y, x)
    return y / np.float32(len(xs)) if op == "average" else y


def ks_for(op):
    return (2,) if op == "subtract" else (2, 3, 5)


def distinct_inputs(rng, k, shape):
    """k arrays whose values differ by >= 0.3 at every element (no max/min near-ties)."""
    ranks = np.argsort(rng.random((k,) + shape), axis=0)
    return [0.5 * ranks[i] - 1.0 + 0.1 * rng.random(shape) for i in range(k)]


# ---------------------------------------------------------------- elementwise forward

@pytest.mark.parametrize("op", ELEMENTWISE)
@pytest.mark.parametrize("shape", SHAPES)
def test_merge_matches_numpy(rng, op, shape):
    for k in ks_for(op):
        xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(k)]
        y = ops.merge(op, xs)
        assert y.dtype == np.float32 and y.shape == shape
        assert_close(y, merge_ref(op, xs), rtol=1e-6, atol=1e-6, what="%s k=%d" % (op, k))
        # bitwise the documented float32 fold (what Keras' merge layers compute)
        np.testing.assert_array_equal(y, merge_fold32(op, xs))


def test_average_divides_by_k_like_keras():
    # sum / 3 and sum * (1/3) differ in the last bit for these values
    xs = [np.full(1, v, np.float32) for v in (0.016527635976672173, 0.8132702112197876,
                                              0.91275554895401)]
    s = (xs[0] + xs[1]) + xs[2]
    assert s / np.float32(3) != s * (np.float32(1) / np.float32(3))
    np.testing.assert_array_equal(ops.merge("average", xs), s / np.float32(3))


def test_merge_in_place_and_out(rng):
    xs = [rng.standard_normal((5, 9)).astype(np.float32) for _ in range(3)]
    expected = merge_fold32("add", xs)
    out = np.full_like(xs[0], 7.0)
    assert ops.merge("add", xs, out=out) is out
    np.testing.assert_array_equal(out, expected)
    for i in (0, 1):  # exactly inputs[0] or inputs[1]: each element is read before written
        copies = [x.copy() for x in xs]
        assert ops.merge("add", copies, out=copies[i]) is copies[i]
        np.testing.assert_array_equal(copies[i], expected)
    a = rng.standard_normal(10).astype(np.float32)
    square = a * a
    assert ops.merge("multiply", [a, a], out=a) is a  # one array twice, in place
    np.testing.assert_array_equal(a, square)


def test_merge_float64_and_noncontiguous(rng):
    x64 = [rng.standard_normal((6, 10)) for _ in range(3)]
    x32 = [x.astype(np.float32) for x in x64]
    for op in ("add", "multiply", "maximum"):
        expected = ops.merge(op, x32)
        np.testing.assert_array_equal(ops.merge(op, x64), expected)
        np.testing.assert_array_equal(ops.merge(op, [np.asfortranarray(x) for x in x32]),
                                      expected)
        big = [np.repeat(x, 2, axis=1) for x in x32]
        np.testing.assert_array_equal(ops.merge(op, [b[:, ::2] for b in big]), expected)
        np.testing.assert_array_equal(ops.merge(op, [x.tolist() for x in x32]), expected)


# ---------------------------------------------------------------- elementwise backward

@pytest.mark.parametrize("op", ELEMENTWISE)
def test_merge_backward_vs_finite_differences(rng, op):
    shape = (3, 4, 5)
    for k in ks_for(op):
        if op in ("maximum", "minimum"):
            xs = distinct_inputs(rng, k, shape)
        else:
            xs = [rng.standard_normal(shape) for _ in range(k)]
        w = rng.standard_normal(shape)
        y = ops.merge(op, xs)
        dxs = ops.merge_backward(op, w, xs, y)
        assert len(dxs) == k
        for i in range(k):
            def loss(v, i=i):
                return float(np.sum(w * merge_ref(op, xs[:i] + [v] + xs[i + 1:])))
            g = fd_grad(loss, xs[i])
            assert dxs[i].dtype == np.float32 and dxs[i].shape == shape
            assert_close(dxs[i], g, rtol=1e-5, atol=1e-6, what="%s k=%d dx%d" % (op, k, i))


@pytest.mark.parametrize("op", ELEMENTWISE)
def test_merge_backward_exact_formulas(rng, op):
    shape = (4099,)
    for k in ks_for(op):
        xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(k)]
        dy = rng.standard_normal(shape).astype(np.float32)
        dxs = ops.merge_backward(op, dy, xs)
        for i in range(k):
            if op == "add":
                expected = dy
            elif op == "subtract":
                expected = dy if i == 0 else -dy
            elif op == "average":
                expected = dy / np.float32(k)
            elif op == "multiply":
                others = [x for j, x in enumerate(xs) if j != i]
                p = others[0]
                for x in others[1:]:
                    p = p * x
                expected = dy * p
            else:
                y = merge_fold32(op, xs)
                first = np.argmax(np.stack(xs) == y, axis=0)
                expected = np.where(first == i, dy, np.float32(0))
            np.testing.assert_array_equal(dxs[i], expected, err_msg="%s k=%d dx%d" % (op, k, i))


def test_merge_backward_need_and_outs(rng):
    xs = [rng.standard_normal((3, 7)).astype(np.float32) for _ in range(3)]
    dy = rng.standard_normal((3, 7)).astype(np.float32)
    full = ops.merge_backward("multiply", dy, xs)
    part = ops.merge_backward("multiply", dy, xs, need=[False, True, False])
    assert part[0] is None and part[2] is None
    np.testing.assert_array_equal(part[1], full[1])
    outs = [np.full((3, 7), 9.0, np.float32) for _ in range(3)]
    got = ops.merge_backward("multiply", dy, xs, need=(1, 0, 1), outs=outs)
    assert got[0] is outs[0] and got[1] is None and got[2] is outs[2]
    np.testing.assert_array_equal(outs[0], full[0])
    np.testing.assert_array_equal(outs[1], 9.0)  # not requested: untouched
    np.testing.assert_array_equal(outs[2], full[2])
    # the forward output is optional (no op needs it)
    for op in ELEMENTWISE:
        args = xs[:2] if op == "subtract" else xs
        a = ops.merge_backward(op, dy, args)
        b = ops.merge_backward(op, dy, args, ops.merge(op, args))
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


# ---------------------------------------------------------------- maximum / minimum: ties, NaN

@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_ties_send_the_gradient_to_the_first_input(op):
    sign = 1.0 if op == "maximum" else -1.0
    x0 = np.array([1.0, 0.0, 2.0, 5.0, -0.0, 0.0], np.float32) * sign
    x1 = np.array([1.0, 3.0, 2.0, 1.0, 0.0, -0.0], np.float32) * sign
    x2 = np.array([0.0, 3.0, 2.0, 5.0, 0.0, 0.0], np.float32) * sign
    dy = np.arange(1, 7, dtype=np.float32)
    y = ops.merge(op, [x0, x1, x2])
    np.testing.assert_array_equal(y, sign * np.array([1, 3, 2, 5, 0, 0], np.float32))
    d0, d1, d2 = ops.merge_backward(op, dy, [x0, x1, x2])
    # element: 0 tie x0=x1, 1 tie x1=x2, 2 all equal, 3 tie x0=x2, 4/5 -0 vs +0
    np.testing.assert_array_equal(d0, [1, 0, 3, 4, 5, 6])
    np.testing.assert_array_equal(d1, [0, 2, 0, 0, 0, 0])
    np.testing.assert_array_equal(d2, [0, 0, 0, 0, 0, 0])
    # the winner is the first input equal to the output, and exactly one input wins
    assert np.all(d0 + d1 + d2 == dy)
    # -0 vs +0 compare equal, so the first stays (NumPy's rule): the sign bit is x0's
    assert np.signbit(y[4]) == np.signbit(x0[4]) and np.signbit(y[5]) == np.signbit(x0[5])


@pytest.mark.parametrize("op", ELEMENTWISE)
def test_nan_propagates(op):
    nan, inf = np.float32(np.nan), np.float32(np.inf)
    x0 = np.array([nan, 1.0, 1.0, nan, inf, -inf, 2.0], np.float32)
    x1 = np.array([1.0, nan, 1.0, nan, 1.0, 1.0, 3.0], np.float32)
    x2 = np.array([1.0, 1.0, nan, 1.0, 1.0, 1.0, 1.0], np.float32)
    xs = [x0, x1] if op == "subtract" else [x0, x1, x2]
    y = ops.merge(op, xs)
    with np.errstate(invalid="ignore"):
        expected = merge_fold32(op, xs)
    np.testing.assert_array_equal(y, expected)  # NaN == NaN here; inf handled like NumPy
    assert np.all(np.isnan(y[:4 if op != "subtract" else 2]))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_nan_gradient_goes_to_the_first_nan(op):
    nan = np.float32(np.nan)
    x0 = np.array([1.0, nan, 5.0], np.float32)
    x1 = np.array([nan, 2.0, nan], np.float32)
    x2 = np.array([nan, nan, 9.0], np.float32)
    y = ops.merge(op, [x0, x1, x2])
    assert np.all(np.isnan(y))
    dy = np.array([1.0, 2.0, 3.0], np.float32)
    d0, d1, d2 = ops.merge_backward(op, dy, [x0, x1, x2])
    np.testing.assert_array_equal(d0, [0, 2, 0])
    np.testing.assert_array_equal(d1, [1, 0, 3])
    np.testing.assert_array_equal(d2, [0, 0, 0])


# ---------------------------------------------------------------- add + relu

@pytest.mark.parametrize("shape", SHAPES)
def test_add_relu_matches_numpy(rng, shape):
    for k in (2, 3, 5):
        xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(k)]
        y = ops.add_relu(xs)
        np.testing.assert_array_equal(y, np.maximum(merge_fold32("add", xs), 0))
        assert_close(y, np.maximum(merge_ref("add", xs), 0), rtol=1e-6, atol=1e-6)


def test_add_relu_special_values_and_in_place(rng):
    nan = np.float32(np.nan)
    x0 = np.array([nan, -0.0, 1.0, -2.0, np.inf], np.float32)
    x1 = np.array([1.0, -0.0, -1.0, 1.0, -1.0], np.float32)
    y = ops.add_relu([x0, x1])
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:], [0, 0, 0, np.inf])
    assert not np.signbit(y[1]) and not np.signbit(y[2])  # -0 and +0 sums become +0
    a = rng.standard_normal((4, 9)).astype(np.float32)
    b = rng.standard_normal((4, 9)).astype(np.float32)
    expected = ops.add_relu([a, b])
    assert ops.add_relu([a, b], out=a) is a
    np.testing.assert_array_equal(a, expected)


def test_add_relu_backward_is_relu_backward(rng):
    xs = [rng.standard_normal((3, 4, 5)) for _ in range(3)]
    s = merge_ref("add", xs)
    for x in xs:
        x[np.abs(s) < 0.05] += 0.2  # keep every sum away from the kink
    w = rng.standard_normal(xs[0].shape)
    y = ops.add_relu(xs)
    dx = ops.relu_backward(w, y)
    for i in range(3):
        g = fd_grad(lambda v, i=i: float(np.sum(
            w * np.maximum(merge_ref("add", xs[:i] + [v] + xs[i + 1:]), 0))), xs[i])
        assert_close(dx, g, rtol=1e-5, atol=1e-6, what="add_relu dx%d" % i)


# ---------------------------------------------------------------- concatenate

CONCAT_CASES = [
    ([(2, 3), (2, 4)], -1),
    ([(2, 3), (2, 4)], 1),
    ([(2, 3), (5, 3), (1, 3)], 0),
    ([(2, 3, 4, 5), (2, 3, 1, 5), (2, 3, 7, 5)], 2),
    ([(2, 3, 4, 5), (2, 3, 4, 1), (2, 3, 4, 3), (2, 3, 4, 2), (2, 3, 4, 9)], -1),
    ([(2, 1, 4, 5), (2, 6, 4, 5)], -3),
    ([(1,), (1,)], 0),
    ([(3, 5)], 1),
    ([(2, 0, 3), (2, 4, 3)], 1),
    ([(0, 3), (0, 2)], 1),
    ([(64, 33, 5), (64, 7, 5), (64, 1, 5)], 1),
]


@pytest.mark.parametrize("shapes,axis", CONCAT_CASES)
def test_concatenate_matches_numpy(rng, shapes, axis):
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    y = ops.concatenate(xs, axis=axis)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=axis))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dxs = ops.concatenate_backward(dy, shapes, axis=axis)
    splits = np.cumsum([s[axis] for s in shapes])[:-1]
    for d, e in zip(dxs, np.split(dy, splits, axis=axis)):
        np.testing.assert_array_equal(d, e)


def test_concatenate_backward_vs_finite_differences(rng):
    shapes, axis = [(2, 3, 2), (2, 1, 2), (2, 4, 2)], 1
    xs = [rng.standard_normal(s) for s in shapes]
    w = rng.standard_normal((2, 8, 2))
    dxs = ops.concatenate_backward(w, shapes, axis)
    for i in range(3):
        g = fd_grad(lambda v, i=i: float(np.sum(
            w * np.concatenate(xs[:i] + [v] + xs[i + 1:], axis=axis))), xs[i])
        assert_close(dxs[i], g, rtol=1e-5, atol=1e-6, what="concat dx%d" % i)


def test_concatenate_need_outs_float64_noncontiguous(rng):
    a = rng.standard_normal((4, 3, 5))
    b = rng.standard_normal((4, 2, 5))
    expected = np.concatenate([a, b], axis=1).astype(np.float32)
    np.testing.assert_array_equal(ops.concatenate([a, b], axis=1), expected)
    np.testing.assert_array_equal(
        ops.concatenate([np.asfortranarray(a), b[:, ::-1][:, ::-1]], axis=1), expected)
    out = np.empty((4, 5, 5), np.float32)
    assert ops.concatenate([a, b], axis=1, out=out) is out
    np.testing.assert_array_equal(out, expected)
    dy = rng.standard_normal((4, 5, 5))
    d = ops.concatenate_backward(dy, [a.shape, b.shape], 1, need=[False, True])
    assert d[0] is None
    np.testing.assert_array_equal(d[1], dy[:, 3:].astype(np.float32))
    o = [np.zeros(a.shape, np.float32), np.zeros(b.shape, np.float32)]
    d = ops.concatenate_backward(dy, [a.shape, b.shape], 1, outs=o)
    assert d[0] is o[0] and d[1] is o[1]
    np.testing.assert_array_equal(o[0], dy[:, :3].astype(np.float32))


# ---------------------------------------------------------------- zero padding / cropping

PAD_CASES = [
    ((1, 1, 1, 1), ((0, 0), (0, 0))),
    ((1, 1, 1, 1), ((1, 2), (3, 4))),
    ((2, 5, 7, 3), ((1, 0), (0, 2))),
    ((2, 5, 7, 3), 2),
    ((3, 4, 6, 5), (1, 3)),
    ((0, 4, 4, 2), 1),
    ((2, 3, 3, 17), ((2, 1), (1, 2))),
]


@pytest.mark.parametrize("shape,padding", PAD_CASES)
def test_zero_pad2d_and_crop2d_match_numpy(rng, shape, padding):
    x = rng.standard_normal(shape).astype(np.float32)
    (t, b), (l, r) = merge_module._amounts(padding, "test", "padding")
    y = ops.zero_pad2d(x, padding)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (t, b), (l, r), (0, 0))))
    assert y.dtype == np.float32
    # cropping the same amounts undoes it (the gradient of one is the other)
    np.testing.assert_array_equal(ops.crop2d(y, padding), x)
    big = rng.standard_normal((shape[0], shape[1] + 5, shape[2] + 4, shape[3]))
    np.testing.assert_array_equal(ops.crop2d(big, ((2, 3), (1, 3))),
                                  big[:, 2:-3, 1:-3].astype(np.float32))


def test_pad_and_crop_gradients_vs_finite_differences(rng):
    x = rng.standard_normal((2, 3, 4, 2))
    pad = ((1, 2), (0, 1))
    w = rng.standard_normal((2, 6, 5, 2))
    g = fd_grad(lambda v: float(np.sum(w * np.pad(v, ((0, 0), (1, 2), (0, 1), (0, 0))))), x)
    assert_close(ops.crop2d(w, pad), g, rtol=1e-5, atol=1e-6, what="pad dx")
    crop = ((1, 0), (2, 1))
    w2 = rng.standard_normal((2, 2, 1, 2))
    g2 = fd_grad(lambda v: float(np.sum(w2 * v[:, 1:, 2:-1])), x)
    assert_close(ops.zero_pad2d(w2, crop), g2, rtol=1e-5, atol=1e-6, what="crop dx")


def test_pad_crop_out_float64_noncontiguous(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    expected = np.pad(x, ((0, 0), (1, 1), (2, 0), (0, 0))).astype(np.float32)
    np.testing.assert_array_equal(ops.zero_pad2d(x, ((1, 1), (2, 0))), expected)
    xt = np.ascontiguousarray(x.astype(np.float32).transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    assert not xt.flags.c_contiguous
    np.testing.assert_array_equal(ops.zero_pad2d(xt, ((1, 1), (2, 0))), expected)
    out = np.full((2, 5, 6, 5), 3.0, np.float32)
    assert ops.zero_pad2d(x, ((1, 1), (2, 0)), out=out) is out
    np.testing.assert_array_equal(out, expected)
    out = np.full((2, 1, 2, 5), 3.0, np.float32)
    assert ops.crop2d(x, ((1, 1), (2, 0)), out=out) is out
    np.testing.assert_array_equal(out, x[:, 1:2, 2:].astype(np.float32))


# ---------------------------------------------------------------- threads, SIMD paths

def _all_results(rng_seed=5):
    rng = np.random.default_rng(rng_seed)
    xs = [rng.standard_normal((64, 3000)).astype(np.float32) for _ in range(3)]
    xs[1][0, :7] = xs[0][0, :7]  # ties
    xs[2][1, 3] = np.nan
    dy = rng.standard_normal((64, 3000)).astype(np.float32)
    res = []
    for op in ELEMENTWISE:
        args = xs[:2] if op == "subtract" else xs
        res.append(ops.merge(op, args))
        res.extend(ops.merge_backward(op, dy, args))
    res.append(ops.add_relu(xs))
    c = ops.concatenate([x.reshape(64, 30, 100) for x in xs], axis=1)
    res.append(c)
    res.extend(ops.concatenate_backward(c, [(64, 30, 100)] * 3, axis=1))
    res.append(ops.concatenate(xs, axis=0))
    img = xs[0].reshape(16, 20, 25, 24)
    res.append(ops.zero_pad2d(img, ((3, 1), (2, 5))))
    res.append(ops.crop2d(img, ((3, 1), (2, 5))))
    return res


def test_threads_bitwise():
    with num_threads(1):
        r1 = _all_results()
    with num_threads(2):
        r2 = _all_results()
    assert len(r1) == len(r2)
    for a, b in zip(r1, r2):
        assert a.tobytes() == b.tobytes()


def test_portable_and_simd_paths_agree_bitwise():
    simd = _all_results()
    _ext.force_simd(0)
    try:
        portable = _all_results()
    finally:
        _ext.force_simd(-1)
    for a, b in zip(simd, portable):
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- bad input

def _bad_cases():
    a = np.ones((2, 3), np.float32)
    b = np.ones((3, 2), np.float32)
    x = np.ones((2, 4, 5, 3), np.float32)
    buf = np.zeros(12, np.float32)
    yield "shapes", lambda: ops.merge("add", [a, b]), ValueError, \
        "merge (add): inputs[1] has shape (3, 2) but inputs[0] has shape (2, 3)"
    yield "shapes k=3", lambda: ops.merge("maximum", [a, a, b]), ValueError, \
        "merge (maximum): inputs[2] has shape (3, 2)"
    yield "k=1", lambda: ops.merge("add", [a]), ValueError, \
        "merge (add): inputs: expected at least 2 arrays, got 1"
    yield "k=0", lambda: ops.merge("multiply", []), ValueError, "merge (multiply): inputs"
    yield "not a list", lambda: ops.merge("add", a), TypeError, \
        "merge (add): inputs: expected a list or tuple"
    yield "subtract k=3", lambda: ops.merge("subtract", [a, a, a]), ValueError, \
        "merge (subtract): subtract takes exactly 2 inputs, got 3"
    yield "bad op", lambda: ops.merge("concat", [a, a]), ValueError, \
        "merge: op: expected one of 'add'"
    yield "op None", lambda: ops.merge(None, [a, a]), ValueError, "merge: op"
    yield "non-numeric", lambda: ops.merge("add", [a, [["x"] * 3] * 2]), TypeError, \
        "merge (add): inputs[1]: expected an array of numbers"
    yield "out shape", lambda: ops.merge("add", [a, a], out=b), ValueError, \
        "merge (add): out: expected shape (2, 3), got (3, 2)"
    yield "out dtype", lambda: ops.merge("add", [a, a], out=np.ones((2, 3))), ValueError, \
        "merge (add): out: expected a writeable C-contiguous float32 array, got float64"
    yield "out F-order", lambda: ops.merge("add", [a, a], out=np.ones((3, 2), np.float32).T), \
        ValueError, "merge (add): out: expected a writeable C-contiguous float32 array"
    yield "out list", lambda: ops.merge("add", [a, a], out=[[0.0] * 3] * 2), TypeError, \
        "merge (add): out: expected a writeable C-contiguous float32 numpy array, got list"
    yield "out overlaps", lambda: ops.merge("add", [buf[:6].reshape(2, 3), a],
                                            out=buf[3:9].reshape(2, 3)), ValueError, \
        "merge (add): out must be either exactly inputs[0] (in place) or not overlap it"
    c = a.copy()
    yield "out is inputs[2]", lambda: ops.merge("add", [a, a, c], out=c), ValueError, \
        "merge (add): out must not overlap inputs[2]"
    yield "backward dy", lambda: ops.merge_backward("add", b, [a, a]), ValueError, \
        "merge_backward (add): dy has shape (3, 2) but the inputs have shape (2, 3)"
    yield "backward output", lambda: ops.merge_backward("add", a, [a, a], b), ValueError, \
        "merge_backward (add): output has shape (3, 2)"
    yield "backward k=1", lambda: ops.merge_backward("add", a, [a]), ValueError, \
        "merge_backward (add): inputs: expected at least 2"
    yield "backward subtract k=3", lambda: ops.merge_backward("subtract", a, [a, a, a]), \
        ValueError, "merge_backward (subtract): subtract takes exactly 2 inputs"
    yield "backward need len", lambda: ops.merge_backward("add", a, [a, a], need=[True]), \
        ValueError, "merge_backward (add): need: expected a sequence of 2 bools"
    yield "backward need type", lambda: ops.merge_backward("add", a, [a, a], need=["y", 1]), \
        TypeError, "merge_backward (add): need"
    yield "backward outs len", lambda: ops.merge_backward("add", a, [a, a], outs=[None]), \
        ValueError, "merge_backward (add): outs: expected 2 entries"
    d = np.zeros((2, 3), np.float32)
    yield "backward outs overlap dy", lambda: ops.merge_backward("add", d, [a, a],
                                                                 outs=[None, d]), \
        ValueError, "merge_backward (add): outs[1] must not overlap dy"
    o = np.zeros((2, 3), np.float32)
    yield "backward outs overlap each other", lambda: ops.merge_backward(
        "add", a, [a, a], outs=[o, o]), ValueError, \
        "merge_backward (add): outs[1] must not overlap outs[0]"
    yield "backward outs dtype", lambda: ops.merge_backward(
        "add", a, [a, a], outs=[np.zeros((2, 3)), None]), ValueError, \
        "merge_backward (add): outs[0]: expected a writeable C-contiguous float32"
    yield "add_relu shapes", lambda: ops.add_relu([a, b]), ValueError, \
        "add_relu: inputs[1] has shape (3, 2) but inputs[0] has shape (2, 3)"
    yield "add_relu k=1", lambda: ops.add_relu([a]), ValueError, \
        "add_relu: inputs: expected at least 2"
    yield "add_relu out", lambda: ops.add_relu([a, a], out=b), ValueError, \
        "add_relu: out: expected shape (2, 3)"
    yield "concat axis", lambda: ops.concatenate([a, a], axis=2), ValueError, \
        "concatenate: axis 2 is out of range for 2-D inputs"
    yield "concat axis -3", lambda: ops.concatenate([a, a], axis=-3), ValueError, \
        "concatenate: axis -3 is out of range"
    yield "concat axis float", lambda: ops.concatenate([a, a], axis=1.0), TypeError, \
        "concatenate: axis: expected an int"
    yield "concat other axis", lambda: ops.concatenate([a, np.ones((3, 3))], axis=1), \
        ValueError, "concatenate: inputs[1] has shape (3, 3) but inputs[0] has shape (2, 3); " \
        "they must match on every axis but axis 1"
    yield "concat ndim", lambda: ops.concatenate([a, np.ones((2, 3, 1))], axis=0), \
        ValueError, "concatenate: inputs[1] has shape (2, 3, 1)"
    yield "concat k=0", lambda: ops.concatenate([], axis=0), ValueError, \
        "concatenate: inputs: expected at least 1"
    yield "concat scalar", lambda: ops.concatenate_backward(a, [(), ()]), ValueError, \
        "concatenate_backward: inputs must have at least one axis"
    yield "concat out", lambda: ops.concatenate([a, a], axis=0, out=a), ValueError, \
        "concatenate: out: expected shape (4, 3), got (2, 3)"
    big = np.zeros((4, 3), np.float32)
    yield "concat out overlaps", lambda: ops.concatenate([big[:2], big[2:]], axis=0, out=big), \
        ValueError, "concatenate: out must not overlap inputs[0]"
    yield "concat backward dy", lambda: ops.concatenate_backward(a, [(2, 1), (2, 1)]), \
        ValueError, "concatenate_backward: dy has shape (2, 3), expected (2, 2)"
    yield "concat backward shapes", lambda: ops.concatenate_backward(a, [(2, 1), (3, 2)]), \
        ValueError, "concatenate_backward: shapes[1] has shape (3, 2)"
    yield "concat backward shape ints", lambda: ops.concatenate_backward(a, [(2, 1), "ab"]), \
        ValueError, "concatenate_backward: shapes[1]: expected a tuple of ints"
    yield "concat backward empty", lambda: ops.concatenate_backward(a, []), ValueError, \
        "concatenate_backward: shapes: expected a non-empty list"
    yield "pad negative", lambda: ops.zero_pad2d(x, ((1, -1), (0, 0))), ValueError, \
        "zero_pad2d: padding: every amount must be >= 0"
    yield "pad malformed", lambda: ops.zero_pad2d(x, (1, 2, 3)), ValueError, \
        "zero_pad2d: padding: expected an int, a pair of ints or ((top, bottom), (left, right))"
    yield "pad float", lambda: ops.zero_pad2d(x, 1.5), ValueError, "zero_pad2d: padding"
    yield "pad bool", lambda: ops.zero_pad2d(x, True), ValueError, "zero_pad2d: padding"
    yield "pad 3-D", lambda: ops.zero_pad2d(x[0], 1), ValueError, \
        "zero_pad2d: x (N, H, W, C): expected a 4-D array"
    yield "pad out", lambda: ops.zero_pad2d(x, 1, out=x), ValueError, \
        "zero_pad2d: out: expected shape (2, 6, 7, 3), got (2, 4, 5, 3)"
    yield "pad out dtype", lambda: ops.zero_pad2d(x, 0, out=np.zeros((2, 4, 5, 3))), \
        ValueError, "zero_pad2d: out: expected a writeable C-contiguous float32"
    yield "pad out overlaps", lambda: ops.zero_pad2d(x, 0, out=x), ValueError, \
        "zero_pad2d: out must not overlap x"
    yield "crop too much rows", lambda: ops.crop2d(x, ((2, 2), (0, 0))), ValueError, \
        "crop2d: cropping ((2, 2), (0, 0)) leaves no rows or columns of the 4x5 input"
    yield "crop too much cols", lambda: ops.crop2d(x, ((0, 0), (5, 0))), ValueError, \
        "crop2d: cropping ((0, 0), (5, 0)) leaves no rows or columns"
    yield "crop negative", lambda: ops.crop2d(x, -1), ValueError, \
        "crop2d: cropping: every amount must be >= 0"
    yield "crop malformed", lambda: ops.crop2d(x, ((1, 2), (3,))), ValueError, \
        "crop2d: cropping: expected an int"
    yield "crop 2-D", lambda: ops.crop2d(a, 0), ValueError, "crop2d: x (N, H, W, C): expected"
    yield "crop out", lambda: ops.crop2d(x, 1, out=np.zeros((2, 2, 2, 3), np.float32)), \
        ValueError, "crop2d: out: expected shape (2, 2, 3, 3)"


_BAD = list(_bad_cases())


@pytest.mark.parametrize("idx", range(len(_BAD)), ids=[c[0] for c in _BAD])
def test_bad_input_raises_before_c(idx):
    _, call, exc, message = _BAD[idx]
    calls = []

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(_ext, name)

    saved = merge_module._ext
    merge_module._ext = Spy()
    try:
        with pytest.raises(exc) as err:
            call()
    finally:
        merge_module._ext = saved
    assert message in str(err.value)
    assert calls == [], "C ran before the error: %s" % calls


def test_ext_wrappers_reject_mismatched_sizes():
    a = np.ones(6, np.float32)
    y = np.empty(6, np.float32)
    with pytest.raises(ValueError, match="input 1 has 5 elements, expected 6"):
        _ext.merge_forward(0, [a, a[:5]], y)
    with pytest.raises(ValueError, match="output 1 has 5 elements"):
        _ext.merge_backward(0, a, [a, a], [None, y[:5]])
    with pytest.raises(RuntimeError, match="code -2"):
        _ext.merge_forward(1, [a, a, a], y)  # subtract with 3 inputs: refused by C too
    with pytest.raises(RuntimeError, match="code -2"):
        _ext.merge_forward(9, [a, a], y)
    with pytest.raises(ValueError):
        _ext.merge_forward(0, [a, a.astype(np.float64)], y)
    with pytest.raises(ValueError, match="widths add up to 4"):
        _ext.concat_forward([a.reshape(3, 2), a.reshape(3, 2)], np.empty((3, 5), np.float32))
    with pytest.raises(ValueError, match="pad2d"):
        _ext.pad2d(a.reshape(1, 2, 3, 1), 1, 0, 0, 0, np.empty((1, 2, 3, 1), np.float32))
    with pytest.raises(ValueError, match="crop2d"):
        _ext.crop2d(a.reshape(1, 2, 3, 1), 2, 1, 0, 0, np.empty((1, 1, 3, 1), np.float32))
