"""relu, softmax and dropout (fastcnn.ops.nn) against NumPy references."""
import numpy as np
import pytest

from fastcnn import ops
from conftest import assert_close, fd_grad, num_threads


# ---------------------------------------------------------------- references

def relu_ref(x):
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def softmax_ref(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def dropout_ref(x, mask, rate):
    return np.asarray(x, dtype=np.float64) * mask / (1.0 - rate)


# ---------------------------------------------------------------- relu

@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 5, 7, 3), (1, 1, 1, 1), (0, 4)])
def test_relu_matches_numpy(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.relu(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, relu_ref(x).astype(np.float32))


def test_relu_special_values():
    x = np.array([np.nan, -0.0, 0.0, -np.inf, np.inf, -1e-30, 1e-30], dtype=np.float32)
    y = ops.relu(x)
    assert np.isnan(y[0])  # NaN propagates
    np.testing.assert_array_equal(y[1:], [0, 0, 0, np.inf, 0, np.float32(1e-30)])
    assert not np.signbit(y[1])  # relu(-0) = +0


def test_relu_in_place_and_out(rng):
    x = rng.standard_normal((4, 9)).astype(np.float32)
    expected = relu_ref(x).astype(np.float32)
    out = np.full_like(x, 7.0)
    assert ops.relu(x, out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert ops.relu(x, out=x) is x
    np.testing.assert_array_equal(x, expected)


def test_relu_float64_and_noncontiguous(rng):
    x64 = rng.standard_normal((6, 10))
    x32 = x64.astype(np.float32)
    expected = ops.relu(x32)
    np.testing.assert_array_equal(ops.relu(x64), expected)
    np.testing.assert_array_equal(ops.relu(np.asfortranarray(x32)), expected)
    np.testing.assert_array_equal(ops.relu(x32.T.copy().T), expected)
    big = rng.standard_normal((8, 20)).astype(np.float32)
    np.testing.assert_array_equal(ops.relu(big[::2, 1::3]), ops.relu(big[::2, 1::3].copy()))


def test_relu_backward_vs_finite_differences(rng):
    x = rng.standard_normal((3, 4, 5))
    x[np.abs(x) < 0.05] = 0.5  # keep away from the kink
    w = rng.standard_normal(x.shape)
    y = ops.relu(x)
    dx = ops.relu_backward(w, y)
    g = fd_grad(lambda v: float(np.sum(w * relu_ref(v))), x)
    assert_close(dx, g, rtol=1e-5, atol=1e-6, what="relu dx")


def test_relu_backward_analytic_and_in_place(rng):
    x = rng.standard_normal((32, 30, 30, 32)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y = ops.relu(x)
    expected = np.where(x > 0, dy, 0).astype(np.float32)
    np.testing.assert_array_equal(ops.relu_backward(dy, y), expected)
    assert ops.relu_backward(dy, y, out=dy) is dy
    np.testing.assert_array_equal(dy, expected)


def test_relu_threads_bitwise(rng):
    x = rng.standard_normal((32, 30, 30, 32)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    with num_threads(1):
        y1 = ops.relu(x)
        d1 = ops.relu_backward(dy, y1)
    with num_threads(2):
        y2 = ops.relu(x)
        d2 = ops.relu_backward(dy, y2)
    assert y1.tobytes() == y2.tobytes() and d1.tobytes() == d2.tobytes()


def test_relu_bad_arguments():
    x = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"relu: out: expected shape \(2, 3\)"):
        ops.relu(x, out=np.empty((3, 2), np.float32))
    with pytest.raises(ValueError, match="relu: out: expected a writeable C-contiguous float32"):
        ops.relu(x, out=np.empty((2, 3), np.float64))
    ro = np.empty((2, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.relu(x, out=ro)
    buf = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="exactly x .in place. or not overlap"):
        ops.relu(buf[:6], out=buf[2:8])
    with pytest.raises(ValueError, match="dy and y must have the same shape"):
        ops.relu_backward(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="relu: x: expected an array of numbers"):
        ops.relu("abc")


# ---------------------------------------------------------------- softmax

@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (32, 10), (5, 7), (3,), (2, 3, 4)])
def test_softmax_matches_numpy(rng, shape):
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    y = ops.softmax(x)
    assert_close(y, softmax_ref(x), rtol=1e-6, atol=1e-7, what="softmax")
    assert_close(y.sum(axis=-1), np.ones(shape[:-1]), rtol=1e-6, atol=1e-6)


def test_softmax_extreme_and_in_place():
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -999.0], [88.0, 89.0, 90.0]],
                 dtype=np.float32)
    expected = softmax_ref(x)
    y = ops.softmax(x)
    assert np.all(np.isfinite(y))
    assert_close(y, expected, rtol=1e-6, atol=1e-7)
    assert ops.softmax(x, out=x) is x
    assert_close(x, expected, rtol=1e-6, atol=1e-7)


def test_softmax_float64_noncontiguous_and_threads(rng):
    x = rng.standard_normal((2048, 20))
    x32 = x.astype(np.float32)
    with num_threads(1):
        y1 = ops.softmax(x32)
    with num_threads(2):
        y2 = ops.softmax(x32)
    assert y1.tobytes() == y2.tobytes()
    np.testing.assert_array_equal(ops.softmax(x), y1)
    np.testing.assert_array_equal(ops.softmax(np.asfortranarray(x32)), y1)


# ---------------------------------------------------------------- dropout

def test_dropout_forward_matches_mask(rng):
    x = rng.standard_normal((4, 7, 7, 3)).astype(np.float32)
    rate = 0.3
    y, mask = ops.dropout(x, rate, seed=42)
    assert mask.dtype == np.uint8 and mask.shape == x.shape
    assert set(np.unique(mask)) <= {0, 1}
    scale = np.float32(1.0 / (1.0 - rate))
    np.testing.assert_array_equal(y, np.where(mask == 1, x * scale, 0).astype(np.float32))
    assert_close(y, dropout_ref(x, mask, rate), rtol=1e-6, atol=1e-7)


def test_dropout_rate_zero_is_identity(rng):
    x = rng.standard_normal((5, 11)).astype(np.float32)
    y, mask = ops.dropout(x, 0.0, seed=3)
    np.testing.assert_array_equal(y, x)
    assert mask.all()
    np.testing.assert_array_equal(ops.dropout_backward(x, mask, 0.0), x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_keep_fraction(rate):
    n = 400_000
    _, mask = ops.dropout(np.ones(n, np.float32), rate, seed=123)
    keep = mask.mean()
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(keep - (1 - rate)) < 5 * sigma, keep
    # neighbours are independent: P(both kept) ~ (1 - rate)^2
    both = np.mean(mask[:-1] & mask[1:])
    assert abs(both - (1 - rate) ** 2) < 6 * np.sqrt((1 - rate) ** 2 / n)


def test_dropout_seed_determinism_and_threads(rng):
    x = rng.standard_normal((32, 30, 30, 8)).astype(np.float32)
    with num_threads(1):
        y1, m1 = ops.dropout(x, 0.25, seed=7)
        d1 = ops.dropout_backward(x, m1, 0.25)
    with num_threads(2):
        y2, m2 = ops.dropout(x, 0.25, seed=7)
        d2 = ops.dropout_backward(x, m2, 0.25)
    assert m1.tobytes() == m2.tobytes() and y1.tobytes() == y2.tobytes()
    assert d1.tobytes() == d2.tobytes()
    # the mask depends on (seed, flat index) only: not on the values or the shape
    _, m3 = ops.dropout(np.zeros(x.size, np.float32), 0.25, seed=7)
    np.testing.assert_array_equal(m3, m1.reshape(-1))
    # another seed gives a different, roughly independent mask
    _, m4 = ops.dropout(x, 0.25, seed=8)
    agree = np.mean(m4 == m1)
    assert abs(agree - (0.75 ** 2 + 0.25 ** 2)) < 0.01
    # seeds are taken modulo 2**64
    _, m5 = ops.dropout(x, 0.25, seed=7 + 2 ** 64)
    np.testing.assert_array_equal(m5, m1)
    _, m6 = ops.dropout(x, 0.25, seed=np.int64(-1))
    _, m7 = ops.dropout(x, 0.25, seed=2 ** 64 - 1)
    np.testing.assert_array_equal(m6, m7)


def test_dropout_backward_vs_finite_differences(rng):
    x = rng.standard_normal((3, 5, 4))
    rate = 0.4
    _, mask = ops.dropout(x, rate, seed=99)
    w = rng.standard_normal(x.shape)
    g = fd_grad(lambda v: float(np.sum(w * dropout_ref(v, mask, rate))), x)
    assert_close(ops.dropout_backward(w, mask, rate), g, rtol=1e-5, atol=1e-6)
    # a bool / float mask of the same meaning is accepted
    assert_close(ops.dropout_backward(w, mask.astype(bool), rate), g, rtol=1e-5, atol=1e-6)
    assert_close(ops.dropout_backward(w, mask.astype(np.float32), rate), g, rtol=1e-5,
                 atol=1e-6)


def test_dropout_float64_noncontiguous_in_place(rng):
    x = rng.standard_normal((6, 10))
    y32, m32 = ops.dropout(x.astype(np.float32), 0.5, seed=1)
    y64, m64 = ops.dropout(x, 0.5, seed=1)
    np.testing.assert_array_equal(y64, y32)
    np.testing.assert_array_equal(m64, m32)
    xf = np.asfortranarray(x.astype(np.float32))
    yf, mf = ops.dropout(xf, 0.5, seed=1)
    np.testing.assert_array_equal(yf, y32)
    x32 = x.astype(np.float32)
    out, _ = ops.dropout(x32, 0.5, seed=1, out=x32)
    assert out is x32
    np.testing.assert_array_equal(x32, y32)


def test_dropout_bad_arguments():
    x = np.ones((2, 3), np.float32)
    for rate in (-0.1, 1.0, 1.5, float("nan"), "0.5", None, True):
        with pytest.raises(ValueError, match=r"dropout: rate: expected a number in \[0, 1\)"):
            ops.dropout(x, rate, seed=0)
    with pytest.raises(ValueError, match=r"dropout_backward: rate"):
        ops.dropout_backward(x, np.ones((2, 3), np.uint8), 1.0)
    for seed in (1.5, "1", None, True):
        with pytest.raises(TypeError, match="dropout: seed: expected an int"):
            ops.dropout(x, 0.5, seed=seed)
    with pytest.raises(ValueError, match=r"dropout: mask: expected a writeable C-contiguous uint8"):
        ops.dropout(x, 0.5, seed=0, mask=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"dropout_backward: mask: expected shape \(2, 3\)"):
        ops.dropout_backward(x, np.ones((3, 2), np.uint8), 0.5)
    with pytest.raises(ValueError, match="expected the uint8 mask"):
        ops.dropout_backward(x, np.array([["a"] * 3] * 2), 0.5)
