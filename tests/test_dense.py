"""dense / dense_backward (fastcnn.ops.nn) against NumPy references."""
import numpy as np
import pytest

import fastcnn._ext as ext
from fastcnn import ops
from conftest import assert_close, fd_grad, num_threads


def dense_ref(x, kernel, bias=None, activation=None):
    y = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    if activation == "relu":
        y = np.maximum(y, 0.0)
    return y


def dense_backward_ref(dy, x, kernel):
    dy, x, kernel = (np.asarray(a, np.float64) for a in (dy, x, kernel))
    return dy @ kernel.T, x.T @ dy, dy.sum(axis=0)


def _data(rng, n, k, u):
    x = rng.standard_normal((n, k)).astype(np.float32)
    w = (rng.standard_normal((k, u)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(u).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("n,k,u", [(1, 3, 7), (5, 7, 3), (32, 1024, 64), (32, 64, 10),
                                   (1, 1, 1), (3, 64, 1)])
@pytest.mark.parametrize("activation", [None, "linear", "relu"])
def test_dense_forward_matches_numpy(rng, n, k, u, activation):
    x, w, b = _data(rng, n, k, u)
    y = ops.dense(x, w, b, activation=activation)
    assert y.shape == (n, u) and y.dtype == np.float32
    assert_close(y, dense_ref(x, w, b, activation), rtol=1e-5, atol=1e-5, what="dense")
    assert_close(ops.dense(x, w, activation=activation), dense_ref(x, w, None, activation),
                 rtol=1e-5, atol=1e-5, what="dense without bias")


def test_dense_activation_names_and_out(rng):
    x, w, b = _data(rng, 4, 6, 5)
    out = np.full((4, 5), np.nan, np.float32)
    assert ops.dense(x, w, b, activation="ReLU", out=out) is out
    assert_close(out, dense_ref(x, w, b, "relu"))
    assert (out >= 0).all()


def test_dense_float64_and_noncontiguous(rng):
    x, w, b = _data(rng, 6, 9, 4)
    expected = ops.dense(x, w, b, "relu")
    np.testing.assert_array_equal(ops.dense(x.astype(np.float64), w.astype(np.float64),
                                            b.astype(np.float64), "relu"), expected)
    np.testing.assert_array_equal(ops.dense(np.asfortranarray(x), np.asfortranarray(w), b,
                                            "relu"), expected)
    big = np.zeros((12, 18), np.float32)
    big[::2, ::2] = x
    np.testing.assert_array_equal(ops.dense(big[::2, ::2], w, b, "relu"), expected)
    dy = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    ref = ops.dense_backward(dy, x, w)
    for got, want in zip(ops.dense_backward(dy.astype(np.float64), big[::2, ::2],
                                            np.asfortranarray(w)), ref):
        np.testing.assert_array_equal(got, want)


def test_dense_backward_vs_finite_differences(rng):
    n, k, u = 3, 4, 5
    x = rng.standard_normal((n, k))
    w = rng.standard_normal((k, u))
    b = rng.standard_normal(u)
    g = rng.standard_normal((n, u))  # loss = sum(g * dense(x))
    loss = lambda xx, ww, bb: float(np.sum(g * dense_ref(xx, ww, bb)))
    dx, dw, db = ops.dense_backward(g, x, w)
    assert_close(dx, fd_grad(lambda v: loss(v, w, b), x), rtol=1e-5, atol=1e-5, what="dx")
    assert_close(dw, fd_grad(lambda v: loss(x, v, b), w), rtol=1e-5, atol=1e-5, what="dkernel")
    assert_close(db, fd_grad(lambda v: loss(x, w, v), b), rtol=1e-5, atol=1e-5, what="dbias")


def test_dense_relu_chain_vs_finite_differences(rng):
    """dense(relu) then relu_backward then dense_backward = gradient of the fused layer."""
    n, k, u = 4, 3, 6
    x = rng.standard_normal((n, k))
    w = rng.standard_normal((k, u))
    b = rng.standard_normal(u)
    pre = dense_ref(x, w, b)
    b[np.abs(pre).min(axis=0) < 1e-2] += 0.1  # no pre-activation at the kink
    g = rng.standard_normal((n, u))
    loss = lambda xx, ww, bb: float(np.sum(g * dense_ref(xx, ww, bb, "relu")))
    y = ops.dense(x, w, b, activation="relu")
    dpre = ops.relu_backward(g, y)
    dx, dw, db = ops.dense_backward(dpre, x, w)
    assert_close(dx, fd_grad(lambda v: loss(v, w, b), x), rtol=1e-5, atol=1e-5, what="dx")
    assert_close(dw, fd_grad(lambda v: loss(x, v, b), w), rtol=1e-5, atol=1e-5, what="dkernel")
    assert_close(db, fd_grad(lambda v: loss(x, w, v), b), rtol=1e-5, atol=1e-5, what="dbias")


@pytest.mark.parametrize("n,k,u", [(32, 1024, 64), (32, 64, 10), (1, 7, 3), (300, 130, 257)])
def test_dense_backward_analytic(rng, n, k, u):
    x, w, _ = _data(rng, n, k, u)
    dy = rng.standard_normal((n, u)).astype(np.float32)
    dx, dw, db = ops.dense_backward(dy, x, w)
    rdx, rdw, rdb = dense_backward_ref(dy, x, w)
    assert_close(dx, rdx, rtol=1e-5, atol=1e-5, what="dx")
    assert_close(dw, rdw, rtol=1e-5, atol=2e-5, what="dkernel")
    assert_close(db, rdb, rtol=1e-5, atol=1e-5, what="dbias")


def test_dense_backward_flags_and_outputs(rng):
    x, w, _ = _data(rng, 5, 6, 7)
    dy = rng.standard_normal((5, 7)).astype(np.float32)
    dx, dw, db = ops.dense_backward(dy, x, w, need_input_grad=False, use_bias=False)
    assert dx is None and db is None
    assert_close(dw, x.astype(np.float64).T @ dy)
    bufs = (np.empty((5, 6), np.float32), np.empty((6, 7), np.float32), np.empty(7, np.float32))
    got = ops.dense_backward(dy, x, w, dx=bufs[0], dkernel=bufs[1], dbias=bufs[2])
    assert all(g is b for g, b in zip(got, bufs))


def test_dense_empty_batch(rng):
    w = rng.standard_normal((5, 3)).astype(np.float32)
    y = ops.dense(np.zeros((0, 5), np.float32), w, np.ones(3, np.float32))
    assert y.shape == (0, 3)
    dx, dw, db = ops.dense_backward(np.zeros((0, 3), np.float32), np.zeros((0, 5), np.float32), w)
    assert dx.shape == (0, 5)
    np.testing.assert_array_equal(dw, np.zeros((5, 3)))
    np.testing.assert_array_equal(db, np.zeros(3))


def test_dense_threads_bitwise(rng):
    x, w, b = _data(rng, 600, 200, 150)
    dy = rng.standard_normal((600, 150)).astype(np.float32)
    res = []
    for t in (1, 2):
        with num_threads(t):
            res.append((ops.dense(x, w, b, "relu"),) + ops.dense_backward(dy, x, w))
    for a, c in zip(*res):
        assert a.tobytes() == c.tobytes()


def test_dense_portable_path_agrees(rng):
    x, w, b = _data(rng, 32, 64, 10)
    dy = rng.standard_normal((32, 10)).astype(np.float32)
    fast = (ops.dense(x, w, b, "relu"),) + ops.dense_backward(dy, x, w)
    ext.force_simd(0)
    try:
        slow = (ops.dense(x, w, b, "relu"),) + ops.dense_backward(dy, x, w)
    finally:
        ext.force_simd(-1)
    for a, c in zip(fast, slow):
        assert_close(a, c, rtol=1e-5, atol=1e-5)


def test_dense_bad_arguments(rng):
    x, w, b = _data(rng, 4, 6, 5)
    with pytest.raises(ValueError, match=r"dense: kernel: expected shape \(6, units\)"):
        ops.dense(x, w.T, b)
    with pytest.raises(ValueError, match=r"dense: x: expected a 2-D array .*flatten first"):
        ops.dense(x.reshape(2, 2, 6), w)
    with pytest.raises(ValueError, match=r"dense: bias: expected shape \(5,\)"):
        ops.dense(x, w, np.ones(4))
    with pytest.raises(ValueError, match=r"dense: activation: expected None, 'linear' or 'relu'"):
        ops.dense(x, w, b, activation="tanh")
    with pytest.raises(ValueError, match=r"dense: out: expected shape \(4, 5\)"):
        ops.dense(x, w, b, out=np.empty((5, 4), np.float32))
    with pytest.raises(ValueError, match="dense: out must not overlap x"):
        buf = np.zeros((4, 6), np.float32)
        ops.dense(buf, np.ones((6, 5), np.float32), out=buf.reshape(-1)[:20].reshape(4, 5))
    with pytest.raises(ValueError, match=r"dense_backward: dy: expected shape \(4, 5\)"):
        ops.dense_backward(np.ones((4, 6)), x, w)
    with pytest.raises(ValueError, match=r"dense_backward: dkernel: expected shape \(6, 5\)"):
        ops.dense_backward(np.ones((4, 5)), x, w, dkernel=np.empty((5, 6), np.float32))
    with pytest.raises(ValueError, match=r"dense_backward: dbias must not overlap dkernel"):
        dk = np.empty((6, 5), np.float32)
        ops.dense_backward(np.ones((4, 5)), x, w, dkernel=dk, dbias=dk[0])
