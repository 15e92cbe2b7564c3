"""softmax_cross_entropy and mean_squared_error (fastcnn.ops.nn) against NumPy references."""
import numpy as np
import pytest

from fastcnn import ops
from conftest import assert_close, fd_grad, num_threads


# ---------------------------------------------------------------- references

def _targets(labels, n, c):
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        t = np.zeros((n, c))
        t[np.arange(n), labels.reshape(-1)] = 1.0
        return t
    return np.asarray(labels, np.float64)


def log_softmax_ref(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def sce_ref(logits, labels):
    """(mean loss, dlogits, n_correct) in float64."""
    logits = np.asarray(logits, np.float64)
    n, c = logits.shape
    t = _targets(labels, n, c)
    ls = log_softmax_ref(logits)
    loss = -np.sum(np.where(t != 0, t * ls, 0.0)) / n
    grad = (np.exp(ls) * t.sum(axis=1, keepdims=True) - t) / n
    lab = np.asarray(labels)
    target_ids = lab.reshape(-1) if lab.dtype.kind in "iu" else t.argmax(axis=1)
    correct = int(np.sum(logits.argmax(axis=1) == target_ids))
    return loss, grad, correct


def mse_ref(pred, true):
    d = np.asarray(pred, np.float64) - np.asarray(true, np.float64).reshape(np.shape(pred))
    return float(np.mean(d * d)), 2.0 * d / d.size


def _check_sce(logits, labels, rtol=1e-5, atol=1e-6):
    loss, d, correct = ops.softmax_cross_entropy(logits, labels)
    rloss, rgrad, rcorrect = sce_ref(np.asarray(logits, np.float32), labels)
    assert isinstance(loss, float) and isinstance(correct, int)
    assert d.dtype == np.float32 and d.shape == np.shape(logits)
    assert abs(loss - rloss) <= 1e-6 * max(1.0, abs(rloss)), (loss, rloss)
    assert_close(d, rgrad, rtol=rtol, atol=atol, what="dlogits")
    assert correct == rcorrect
    return loss, d, correct


# ---------------------------------------------------------------- softmax cross-entropy

@pytest.mark.parametrize("n,c", [(1, 1), (1, 10), (32, 10), (7, 3), (5, 64)])
def test_sce_int_labels_match_numpy(rng, n, c):
    logits = (3 * rng.standard_normal((n, c))).astype(np.float32)
    labels = rng.integers(0, c, n)
    _check_sce(logits, labels)
    _check_sce(logits, labels.reshape(n, 1))


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint32,
                                   np.uint64])
def test_sce_any_integer_dtype(rng, dtype):
    logits = rng.standard_normal((9, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 9)
    expected = ops.softmax_cross_entropy(logits, labels)
    got = ops.softmax_cross_entropy(logits, labels.astype(dtype))
    assert got[0] == expected[0] and got[2] == expected[2]
    np.testing.assert_array_equal(got[1], expected[1])
    got = ops.softmax_cross_entropy(logits, list(labels))  # plain Python ints
    assert got[0] == expected[0]


def test_sce_one_hot_and_probabilities_match_numpy(rng):
    n, c = 12, 6
    logits = (2 * rng.standard_normal((n, c))).astype(np.float32)
    labels = rng.integers(0, c, n)
    onehot = np.eye(c, dtype=np.float32)[labels]
    l_int = ops.softmax_cross_entropy(logits, labels)
    l_hot = _check_sce(logits, onehot)
    assert abs(l_int[0] - l_hot[0]) < 1e-12
    assert_close(l_int[1], l_hot[1], rtol=1e-6, atol=1e-8)
    assert l_int[2] == l_hot[2]
    probs = rng.dirichlet(np.ones(c), size=n)
    _check_sce(logits, probs)
    _check_sce(logits, probs.astype(np.float32))


def test_sce_n_correct_ties(rng):
    logits = np.array([[1, 1, 0], [0, 2, 2], [5, 5, 5], [0, 0, 1]], np.float32)
    # first maximum wins: predictions 0, 1, 0, 2
    assert ops.softmax_cross_entropy(logits, [0, 1, 0, 2])[2] == 4
    assert ops.softmax_cross_entropy(logits, [1, 2, 2, 2])[2] == 1
    t = np.array([[0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 1], [0, 1, 0]], np.float32)
    assert ops.softmax_cross_entropy(logits, t)[2] == 2


def test_sce_grad_vs_finite_differences_int(rng):
    logits = rng.standard_normal((4, 5))
    labels = np.array([0, 4, 2, 2])
    _, d, _ = ops.softmax_cross_entropy(logits, labels)
    g = fd_grad(lambda z: sce_ref(z, labels)[0], logits)
    assert_close(d, g, rtol=1e-5, atol=1e-6, what="dlogits (class ids)")


@pytest.mark.parametrize("kind", ["onehot", "probabilities", "unnormalised"])
def test_sce_grad_vs_finite_differences_float(rng, kind):
    n, c = 3, 4
    logits = rng.standard_normal((n, c))
    if kind == "onehot":
        t = np.eye(c)[[1, 3, 0]]
    elif kind == "probabilities":
        t = rng.dirichlet(np.ones(c), size=n)
    else:  # rows not summing to 1: the gradient of the loss as defined is p*sum(t) - t
        t = 2.0 * rng.random((n, c))
    t = t.astype(np.float32).astype(np.float64)
    _, d, _ = ops.softmax_cross_entropy(logits, t)
    g = fd_grad(lambda z: sce_ref(z, t)[0], logits)
    assert_close(d, g, rtol=1e-5, atol=1e-6, what="dlogits (%s)" % kind)


def test_sce_extreme_logits():
    logits = np.array([[1000, -1000, 0], [-1000, 1000, 999], [-1000, -1000, -1000],
                       [3e4, -3e4, 0]], np.float32)
    labels = np.array([1, 2, 0, 0])
    loss, d, correct = _check_sce(logits, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    # row 0 alone costs 2000; row 1 log(1 + e); row 2 log(3); row 3 0
    expected = (2000.0 + np.log1p(np.e) + np.log(3.0) + 0.0) / 4
    assert abs(loss - expected) < 1e-9 * expected
    assert correct == 2  # rows 2 (tie: first max) and 3
    t = np.eye(3, dtype=np.float32)[labels]
    loss_t, d_t, _ = _check_sce(logits, t)
    assert abs(loss_t - expected) < 1e-9 * expected
    assert_close(d_t, d, rtol=1e-6, atol=1e-9)


def test_sce_confident_rows_keep_small_gradients():
    """p - 1 is formed in double: a confident correct row still has a nonzero gradient."""
    logits = np.array([[20.0, 0.0, 0.0]], np.float32)
    _, d, _ = ops.softmax_cross_entropy(logits, [0])
    rloss, rgrad, _ = sce_ref(logits, [0])
    assert d[0, 0] < 0
    assert_close(d, rgrad, rtol=1e-6, atol=0)


def test_sce_threads_bitwise_and_conversions(rng):
    n, c = 2500, 10
    logits = (4 * rng.standard_normal((n, c))).astype(np.float32)
    labels = rng.integers(0, c, n)
    probs = rng.dirichlet(np.ones(c), size=n).astype(np.float32)
    res = []
    for t in (1, 2):
        with num_threads(t):
            res.append(ops.softmax_cross_entropy(logits, labels)
                       + ops.softmax_cross_entropy(logits, probs))
    a, b = res
    assert a[0] == b[0] and a[3] == b[3] and a[2] == b[2] and a[5] == b[5]
    assert a[1].tobytes() == b[1].tobytes() and a[4].tobytes() == b[4].tobytes()
    # float64 / non-contiguous logits give the same answer as float32 C-order
    for variant in (logits.astype(np.float64), np.asfortranarray(logits)):
        loss, d, correct = ops.softmax_cross_entropy(variant, labels)
        assert loss == a[0] and correct == a[2]
        np.testing.assert_array_equal(d, a[1])
    loss, d, _ = ops.softmax_cross_entropy(logits, np.asfortranarray(probs.astype(np.float64)))
    assert loss == a[3]
    np.testing.assert_array_equal(d, a[4])
    _check_sce(logits, labels, rtol=1e-5, atol=1e-7)


def test_sce_in_place_and_out(rng):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 6)
    loss, d, correct = ops.softmax_cross_entropy(logits, labels)
    buf = np.empty_like(logits)
    assert ops.softmax_cross_entropy(logits, labels, dlogits=buf)[1] is buf
    np.testing.assert_array_equal(buf, d)
    t = np.eye(4, dtype=np.float32)[labels]
    for lab in (labels, t):
        z = logits.copy()
        loss2, d2, correct2 = ops.softmax_cross_entropy(z, lab, dlogits=z)
        assert d2 is z and loss2 == loss and correct2 == correct
        np.testing.assert_array_equal(z, d)


def test_sce_bad_labels():
    logits = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 4\).* got -1 \(row 1\)"):
        ops.softmax_cross_entropy(logits, [0, -1, 2])
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 4\).* got 4 \(row 2\)"):
        ops.softmax_cross_entropy(logits, np.array([0, 1, 4], np.uint8))
    with pytest.raises(ValueError, match=r"got 9223372036854775813"):
        ops.softmax_cross_entropy(logits, np.array([0, 2 ** 63 + 5, 1], np.uint64))
    with pytest.raises(ValueError, match=r"integer class ids must have shape \(3,\) or \(3, 1\), "
                                         r"got \(3, 2\)"):
        ops.softmax_cross_entropy(logits, np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"shape \(3,\) or \(3, 1\), got \(4,\)"):
        ops.softmax_cross_entropy(logits, [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"float labels must be one-hot .* shape \(3, 4\), "
                                         r"got \(3,\) .*integer dtype"):
        ops.softmax_cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"got \(3, 5\)"):
        ops.softmax_cross_entropy(logits, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="expected integer class ids or float one-hot rows, "
                                         "got dtype bool"):
        ops.softmax_cross_entropy(logits, np.array([True, False, True]))
    with pytest.raises(ValueError, match="got dtype <U"):
        ops.softmax_cross_entropy(logits, ["a", "b", "c"])


def test_sce_bad_logits_and_out():
    with pytest.raises(ValueError, match=r"logits: expected a 2-D array \(N, C\)"):
        ops.softmax_cross_entropy(np.zeros(4, np.float32), [0])
    with pytest.raises(ValueError, match="at least one row and one class"):
        ops.softmax_cross_entropy(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match=r"dlogits: expected shape \(2, 3\)"):
        ops.softmax_cross_entropy(np.zeros((2, 3)), [0, 1], dlogits=np.empty((3, 2), np.float32))
    t = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="dlogits must not overlap labels"):
        ops.softmax_cross_entropy(np.zeros((2, 3)), t, dlogits=t)


# ---------------------------------------------------------------- mean squared error

@pytest.mark.parametrize("shape", [(1,), (32, 1), (32, 10), (3, 5, 7), (100_003,)])
def test_mse_matches_numpy(rng, shape):
    p = rng.standard_normal(shape).astype(np.float32)
    t = rng.standard_normal(shape).astype(np.float32)
    loss, d = ops.mean_squared_error(p, t)
    rloss, rgrad = mse_ref(p, t)
    assert isinstance(loss, float)
    assert abs(loss - rloss) <= 1e-12 * rloss
    assert_close(d, rgrad, rtol=1e-6, atol=1e-9)


def test_mse_grad_vs_finite_differences(rng):
    p = rng.standard_normal((4, 3))
    t = rng.standard_normal((4, 3))
    _, d = ops.mean_squared_error(p, t)
    assert_close(d, fd_grad(lambda v: mse_ref(v, t)[0], p), rtol=1e-5, atol=1e-7)


def test_mse_keras_shapes_and_in_place(rng):
    p = rng.standard_normal((8, 1)).astype(np.float32)
    t = rng.standard_normal(8).astype(np.float32)
    loss, d = ops.mean_squared_error(p, t)
    assert d.shape == (8, 1)
    assert abs(loss - mse_ref(p, t)[0]) < 1e-12
    loss2, d2 = ops.mean_squared_error(t, p)
    assert loss2 == loss and d2.shape == (8,)
    q = p.copy()
    loss3, d3 = ops.mean_squared_error(q, t, dy_pred=q)
    assert d3 is q and loss3 == loss
    np.testing.assert_array_equal(q, d)


def test_mse_threads_bitwise_and_conversions(rng):
    p = rng.standard_normal((300, 401)).astype(np.float32)
    t = rng.standard_normal((300, 401)).astype(np.float32)
    with num_threads(1):
        l1, d1 = ops.mean_squared_error(p, t)
    with num_threads(2):
        l2, d2 = ops.mean_squared_error(p, t)
    assert l1 == l2 and d1.tobytes() == d2.tobytes()
    l3, d3 = ops.mean_squared_error(p.astype(np.float64), np.asfortranarray(t))
    assert l3 == l1
    np.testing.assert_array_equal(d3, d1)


def test_mse_bad_arguments():
    with pytest.raises(ValueError, match=r"y_true: expected shape \(3, 2\) like y_pred, got \(2, 3\)"):
        ops.mean_squared_error(np.zeros((3, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="y_pred is empty"):
        ops.mean_squared_error(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"dy_pred: expected shape \(3,\)"):
        ops.mean_squared_error(np.zeros(3), np.zeros(3), dy_pred=np.empty(4, np.float32))
