"""batch_norm_forward / batch_norm_backward (fastcnn.ops.nn) against NumPy references."""
import numpy as np
import pytest

import fastcnn._ext as ext
from fastcnn import ops
from conftest import assert_close, fd_grad, num_threads


def bn_ref(x, gamma, beta, moving_mean, moving_var, momentum=0.99, epsilon=1e-3,
           training=False):
    """(y, new_moving_mean, new_moving_var) in float64, Keras 3 semantics."""
    x = np.asarray(x, np.float64)
    gamma, beta, mm, mv = (np.asarray(a, np.float64) for a in (gamma, beta, moving_mean,
                                                                 moving_var))
    axes = tuple(range(x.ndim - 1))
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)  # biased variance
        mm = mm * momentum + mean * (1 - momentum)
        mv = mv * momentum + var * (1 - momentum)
    else:
        mean, var = mm, mv
    y = (x - mean) / np.sqrt(var + epsilon) * gamma + beta
    return y, mm, mv


def bn_backward_ref(dy, x, gamma, epsilon=1e-3, training=True, moving_var=None):
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:
        raise NotImplementedError
    inv_std = 1.0 / np.sqrt(var + epsilon)
    xhat = (x - mean) * inv_std
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = gamma * inv_std * (dy - dbeta / m - xhat * dgamma / m)
    return dx, dgamma, dbeta


def _params(rng, c):
    gamma = (1 + 0.5 * rng.standard_normal(c)).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    mm = rng.standard_normal(c).astype(np.float32)
    mv = (0.5 + rng.random(c)).astype(np.float32)
    return gamma, beta, mm, mv


@pytest.mark.parametrize("shape", [(1, 3), (32, 64), (5, 7), (2, 3, 3, 2), (4, 7, 5, 3),
                                   (3, 1, 1, 64), (2, 9, 11, 7)])
@pytest.mark.parametrize("training", [False, True])
def test_bn_forward_matches_numpy(rng, shape, training):
    x = (2 + 3 * rng.standard_normal(shape)).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, shape[-1])
    ry, rmm, rmv = bn_ref(x, gamma, beta, mm, mv, 0.9, 1e-3, training)
    mm0, mv0 = mm.copy(), mv.copy()
    y, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, momentum=0.9, epsilon=1e-3,
                                      training=training)
    assert y.shape == x.shape and y.dtype == np.float32
    assert_close(y, ry, rtol=1e-5, atol=1e-5, what="y")
    assert_close(mm, rmm, rtol=1e-6, atol=1e-6, what="moving_mean")
    assert_close(mv, rmv, rtol=1e-6, atol=1e-6, what="moving_var")
    if not training:  # inference leaves the moving statistics alone
        np.testing.assert_array_equal(mm, mm0)
        np.testing.assert_array_equal(mv, mv0)
    assert cache.training is training and cache.x.shape == x.shape


def test_bn_moving_update_is_keras_formula(rng):
    """Keras 3: moving = moving*momentum + batch*(1 - momentum), evaluated in float32,
    with the BIASED batch variance."""
    x = rng.standard_normal((16, 5, 5, 8)).astype(np.float32)
    c = x.shape[-1]
    mm, mv = np.zeros(c, np.float32), np.ones(c, np.float32)
    x64 = x.astype(np.float64).reshape(-1, c)
    for step in range(3):
        keras_mm = mm * np.float32(0.99) + x64.mean(0).astype(np.float32) * np.float32(1 - 0.99)
        keras_mv = mv * np.float32(0.99) + x64.var(0).astype(np.float32) * np.float32(1 - 0.99)
        ops.batch_norm_forward(x, None, None, mm, mv, training=True)
        assert_close(mm, keras_mm, rtol=1e-6, atol=1e-7, what="moving_mean step %d" % step)
        assert_close(mv, keras_mv, rtol=1e-6, atol=1e-7, what="moving_var step %d" % step)
    # and not the unbiased (Bessel-corrected) variance of Keras 2's fused kernel
    n = x64.shape[0]
    mv_prev = keras_mv - x64.var(0).astype(np.float32) * np.float32(0.01)
    unbiased = mv_prev + np.float32(0.01) * (x64.var(0) * n / (n - 1))
    assert np.all(np.abs(mv - unbiased) > 1e-6 * unbiased)


def test_bn_gamma_beta_none_and_out(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    mm, mv = np.zeros(4, np.float32), np.ones(4, np.float32)
    out = np.empty_like(x)
    y, _ = ops.batch_norm_forward(x, None, None, mm, mv, training=True, out=out)
    assert y is out
    ry, _, _ = bn_ref(x, np.ones(4), np.zeros(4), np.zeros(4), np.ones(4), training=True)
    assert_close(y, ry, rtol=1e-5, atol=1e-6)


def test_bn_large_offset_is_accurate(rng):
    x = (1000 + rng.standard_normal((64, 6))).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, 6)
    ry, rmm, rmv = bn_ref(x, gamma, beta, mm, mv, training=True)
    y, _ = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=True)
    assert_close(y, ry, rtol=1e-4, atol=1e-4, what="y with |mean| >> std")
    assert_close(mv, rmv, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3, 2)])
def test_bn_backward_training_vs_finite_differences(rng, shape):
    x = rng.standard_normal(shape)
    c = shape[-1]
    gamma, beta, mm, mv = (a.astype(np.float64) for a in _params(rng, c))
    w = rng.standard_normal(shape)

    def loss(xx, gg, bb):
        return float(np.sum(w * bn_ref(xx, gg, bb, mm, mv, training=True)[0]))

    _, cache = ops.batch_norm_forward(x, gamma, beta, mm.astype(np.float32),
                                      mv.astype(np.float32), training=True)
    dx, dgamma, dbeta = ops.batch_norm_backward(w, cache)
    assert_close(dx, fd_grad(lambda v: loss(v, gamma, beta), x), rtol=1e-4, atol=1e-5,
                 what="dx")
    assert_close(dgamma, fd_grad(lambda v: loss(x, v, beta), gamma), rtol=1e-5, atol=1e-5,
                 what="dgamma")
    assert_close(dbeta, fd_grad(lambda v: loss(x, gamma, v), beta), rtol=1e-5, atol=1e-5,
                 what="dbeta")


def test_bn_backward_inference_vs_finite_differences(rng):
    shape = (3, 2, 2, 3)
    x = rng.standard_normal(shape)
    gamma, beta, mm, mv = (a.astype(np.float64) for a in _params(rng, 3))
    w = rng.standard_normal(shape)

    def loss(xx, gg, bb):
        return float(np.sum(w * bn_ref(xx, gg, bb, mm, mv, training=False)[0]))

    _, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=False)
    dx, dgamma, dbeta = ops.batch_norm_backward(w, cache)
    assert_close(dx, fd_grad(lambda v: loss(v, gamma, beta), x), rtol=1e-5, atol=1e-6)
    assert_close(dgamma, fd_grad(lambda v: loss(x, v, beta), gamma), rtol=1e-5, atol=1e-6)
    assert_close(dbeta, fd_grad(lambda v: loss(x, gamma, v), beta), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 64), (8, 15, 15, 32), (1, 13, 13, 7)])
def test_bn_backward_analytic(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, shape[-1])
    dy = rng.standard_normal(shape).astype(np.float32)
    _, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=True)
    gamma[:] = 7.0  # the cache holds its own copy of gamma
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, cache)
    rdx, rdg, rdb = bn_backward_ref(dy, x, cache.gamma.astype(np.float64))
    assert_close(dx, rdx, rtol=1e-4, atol=2e-5, what="dx")
    assert_close(dgamma, rdg, rtol=1e-5, atol=1e-5, what="dgamma")
    assert_close(dbeta, rdb, rtol=1e-5, atol=1e-5, what="dbeta")
    # in place: dx may be dy
    dx2, _, _ = ops.batch_norm_backward(dy, cache, dx=dy)
    assert dx2 is dy
    np.testing.assert_array_equal(dy, dx)


def test_bn_threads_bitwise(rng):
    x = rng.standard_normal((16, 13, 13, 64)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, 64)
    res = []
    for t in (1, 2):
        m1, v1 = mm.copy(), mv.copy()
        with num_threads(t):
            y, cache = ops.batch_norm_forward(x, gamma, beta, m1, v1, training=True)
            grads = ops.batch_norm_backward(dy, cache)
            yi, _ = ops.batch_norm_forward(x, gamma, beta, m1, v1, training=False)
        res.append((y, m1, v1, cache.mean, cache.inv_std, yi) + grads)
    for a, b in zip(*res):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("c", [64, 12, 7, 16, 24, 29])
def test_bn_portable_path_bitwise_equal(rng, c):
    """The AVX2 path does the same per-channel operations in the same order."""
    x = (1 + rng.standard_normal((9, 11, 13, c))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, c)
    res = []
    for level in (-1, 0):
        ext.force_simd(level)
        try:
            m1, v1 = mm.copy(), mv.copy()
            y, cache = ops.batch_norm_forward(x, gamma, beta, m1, v1, training=True)
            res.append((y, m1, v1, cache.mean, cache.inv_std) + ops.batch_norm_backward(dy, cache))
        finally:
            ext.force_simd(-1)
    for a, b in zip(*res):
        assert a.tobytes() == b.tobytes()


def test_bn_float64_and_noncontiguous(rng):
    x = rng.standard_normal((4, 5, 5, 3))
    gamma, beta, mm, mv = _params(rng, 3)
    dy = rng.standard_normal(x.shape)
    results = []
    for xv, dyv in ((x.astype(np.float32), dy.astype(np.float32)),
                    (x, dy),
                    (np.asfortranarray(x.astype(np.float32)), np.asfortranarray(dy))):
        m1, v1 = mm.copy(), mv.copy()
        y, cache = ops.batch_norm_forward(xv, gamma.astype(np.float64), beta, m1, v1,
                                          training=True)
        results.append((y, m1, v1) + ops.batch_norm_backward(dyv, cache))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_bn_bad_arguments(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    g, b, mm, mv = _params(rng, 3)
    with pytest.raises(ValueError, match=r"moving_mean \(training updates it in place\): "
                                         r"expected a writeable C-contiguous float32 array"):
        ops.batch_norm_forward(x, g, b, mm.astype(np.float64), mv, training=True)
    with pytest.raises(TypeError, match=r"moving_var \(training updates it in place\)"):
        ops.batch_norm_forward(x, g, b, mm, [1.0, 1.0, 1.0], training=True)
    # inference only reads them: any array-like of the right shape
    ops.batch_norm_forward(x, g, b, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], training=False)
    with pytest.raises(ValueError, match=r"gamma: expected shape \(3,\), got \(4,\)"):
        ops.batch_norm_forward(x, np.ones(4), b, mm, mv)
    with pytest.raises(ValueError, match=r"moving_var: expected shape \(3,\), got \(2,\)"):
        ops.batch_norm_forward(x, g, b, mm, np.ones(2, np.float32), training=True)
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\]"):
        ops.batch_norm_forward(x, g, b, mm, mv, momentum=1.5)
    with pytest.raises(ValueError, match="epsilon: expected a finite number >= 0"):
        ops.batch_norm_forward(x, g, b, mm, mv, epsilon=-1e-3)
    with pytest.raises(ValueError, match=r"x: expected at least 2 axes"):
        ops.batch_norm_forward(np.ones(3), g, b, mm, mv)
    with pytest.raises(ValueError, match="training needs at least one value per channel"):
        ops.batch_norm_forward(np.ones((0, 3)), g, b, mm, mv, training=True)
    with pytest.raises(ValueError, match="out must not overlap x"):
        ops.batch_norm_forward(x, g, b, mm, mv, out=x)
    with pytest.raises(ValueError, match="moving_var must not overlap moving_mean"):
        ops.batch_norm_forward(x, g, b, mm, mm, training=True)
    _, cache = ops.batch_norm_forward(x, g, b, mm, mv, training=True)
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 3\) like the forward input"):
        ops.batch_norm_backward(np.ones((3, 4)), cache)
    with pytest.raises(ValueError, match="cache: expected the BatchNormCache"):
        ops.batch_norm_backward(np.ones((4, 3)), (x, None))
    with pytest.raises(ValueError, match=r"dgamma: expected shape \(3,\)"):
        ops.batch_norm_backward(np.ones((4, 3)), cache, dgamma=np.empty(4, np.float32))


# ---------------------------------------------------------------- fused ReLU (BN -> ReLU)
#
# batch_norm_forward(..., relu=True) must be bitwise ops.relu(batch_norm_forward(...)), and
# batch_norm_backward(dy, cache, relu_output=y) bitwise
# batch_norm_backward(ops.relu_backward(dy, y), cache): the fusion only saves passes.

# channel counts off and on the 8-lane width; every shape spans several fixed row chunks
# (8192 // C rows each), and the first ones are big enough for the parallel path
FUSED_SHAPES = [(12000, 3), (3000, 8), (2600, 13), (700, 64),
                (4, 45, 50, 3), (8, 20, 20, 8), (5, 19, 21, 13), (3, 11, 13, 64)]


def _fused_inputs(rng, shape):
    """x, dy and parameters where about half of bn(x) is negative, and the last channel
    has gamma 0 and beta -0 so bn(x) holds exact zeros of both signs there."""
    c = shape[-1]
    x = (0.5 + 2 * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, c)
    gamma[-1], beta[-1] = 0.0, -0.0
    return x, dy, gamma, beta, mm, mv


def _unfused_pair(x, dy, gamma, beta, mm, mv, training):
    """bn then relu, relu_backward then bn backward: the reference the fusion must match."""
    m1, v1 = mm.copy(), mv.copy()
    y, cache = ops.batch_norm_forward(x, gamma, beta, m1, v1, momentum=0.9, training=training)
    r = ops.relu(y)
    grads = ops.batch_norm_backward(ops.relu_backward(dy, r), cache)
    return y, r, (m1, v1, cache.mean, cache.inv_std), grads


def _fused_pair(x, dy, gamma, beta, mm, mv, training):
    m1, v1 = mm.copy(), mv.copy()
    r, cache = ops.batch_norm_forward(x, gamma, beta, m1, v1, momentum=0.9, training=training,
                                      relu=True)
    dy0 = dy.copy()
    grads = ops.batch_norm_backward(dy, cache, relu_output=r)
    assert dy.tobytes() == dy0.tobytes()  # the masked dy is never written
    return r, (m1, v1, cache.mean, cache.inv_std), grads


def _assert_bitwise(a, b, what):
    assert a.shape == b.shape and a.dtype == b.dtype, what
    assert a.tobytes() == b.tobytes(), "%s differs in %d elements" % (
        what, int(np.sum(a.view(np.uint32) != b.view(np.uint32))))


@pytest.mark.parametrize("shape", FUSED_SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_bn_fused_relu_forward_bitwise(rng, shape, training):
    x, dy, gamma, beta, mm, mv = _fused_inputs(rng, shape)
    y, r, stats, _ = _unfused_pair(x, dy, gamma, beta, mm, mv, training)
    rf, stats_f, _ = _fused_pair(x, dy, gamma, beta, mm, mv, training)
    _assert_bitwise(rf, r, "fused relu(bn(x))")
    for a, b, name in zip(stats_f, stats, ("moving_mean", "moving_var", "mean", "inv_std")):
        _assert_bitwise(a, b, name)
    # the test means something: both signs, and -0 from bn(x) became +0
    assert (y < 0).mean() > 0.1 and (y > 0).mean() > 0.1
    neg_zero = (y == 0) & np.signbit(y)
    assert neg_zero.any()
    assert not np.signbit(rf).any() and np.all(rf[neg_zero] == 0)


@pytest.mark.parametrize("shape", FUSED_SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_bn_fused_relu_backward_bitwise(rng, shape, training):
    x, dy, gamma, beta, mm, mv = _fused_inputs(rng, shape)
    _, r, _, grads = _unfused_pair(x, dy, gamma, beta, mm, mv, training)
    rf, _, grads_f = _fused_pair(x, dy, gamma, beta, mm, mv, training)
    for a, b, name in zip(grads_f, grads, ("dx", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name)
    # in place: dx may be dy (each dy element is read before dx overwrites it)
    _, cache = ops.batch_norm_forward(x, gamma, beta, mm.copy(), mv.copy(), momentum=0.9,
                                      training=training, relu=True)
    buf = dy.copy()
    dgamma, dbeta = np.empty_like(gamma), np.empty_like(gamma)
    dx, dg, db = ops.batch_norm_backward(buf, cache, dx=buf, dgamma=dgamma, dbeta=dbeta,
                                         relu_output=rf)
    assert dx is buf and dg is dgamma and db is dbeta
    for a, b, name in zip((dx, dg, db), grads, ("dx in place", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name)


def test_bn_fused_relu_vs_finite_differences(rng):
    """float64 central differences of sum(w * relu(bn(x))) on an awkward shape."""
    shape = (3, 5, 7, 5)
    x = rng.standard_normal(shape)
    gamma, beta, mm, mv = (a.astype(np.float64) for a in _params(rng, shape[-1]))
    w = rng.standard_normal(shape)

    def fwd(xx, gg, bb):
        return np.maximum(bn_ref(xx, gg, bb, mm, mv, training=True)[0], 0.0)

    ref = fwd(x, gamma, beta)
    # keep the kink out of the differences' reach (and out of float32 rounding's)
    pre = bn_ref(x, gamma, beta, mm, mv, training=True)[0]
    assert np.abs(pre).min() > 1e-4 and (pre < 0).mean() > 0.2

    def loss(xx, gg, bb):
        return float(np.sum(w * fwd(xx, gg, bb)))

    y, cache = ops.batch_norm_forward(x, gamma, beta, mm.astype(np.float32),
                                      mv.astype(np.float32), training=True, relu=True)
    assert_close(y, ref, rtol=1e-5, atol=1e-5, what="y")
    dx, dgamma, dbeta = ops.batch_norm_backward(w, cache, relu_output=y)
    assert_close(dx, fd_grad(lambda v: loss(v, gamma, beta), x), rtol=1e-4, atol=1e-5,
                 what="dx")
    assert_close(dgamma, fd_grad(lambda v: loss(x, v, beta), gamma), rtol=1e-5, atol=1e-5,
                 what="dgamma")
    assert_close(dbeta, fd_grad(lambda v: loss(x, gamma, v), beta), rtol=1e-5, atol=1e-5,
                 what="dbeta")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("c", [13, 64])
def test_bn_fused_relu_nan_propagates_like_unfused(rng, training, c):
    shape = (6, 9, 7, c)
    x, dy, gamma, beta, mm, mv = _fused_inputs(rng, shape)
    x[2, 3, 4, 5] = np.nan  # training: all of channel 5 is NaN; inference: one element
    x[4, 0, 1, 9] = -np.inf
    y, r, _, grads = _unfused_pair(x, dy, gamma, beta, mm, mv, training)
    rf, _, grads_f = _fused_pair(x, dy, gamma, beta, mm, mv, training)
    assert np.isnan(rf[2, 3, 4, 5]) and np.array_equal(np.isnan(rf), np.isnan(y))
    if training:
        assert np.isnan(rf[..., 5]).all()
    _assert_bitwise(rf, r, "fused relu(bn(x)) with NaN")
    for a, b, name in zip(grads_f, grads, ("dx", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name + " with NaN")
    # NaN in dy where the ReLU passes it propagates too, and is masked where it does not
    dy2 = dy.copy()
    on, off = np.argwhere(r > 0)[0], np.argwhere(r == 0)[0]
    dy2[tuple(on)] = dy2[tuple(off)] = np.nan
    _, _, _, grads = _unfused_pair(x, dy2, gamma, beta, mm, mv, training)
    _, _, grads_f = _fused_pair(x, dy2, gamma, beta, mm, mv, training)
    for a, b, name in zip(grads_f, grads, ("dx", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name + " with NaN in dy")


@pytest.mark.parametrize("c", [64, 13])
def test_bn_fused_relu_threads_bitwise(rng, c):
    x, dy, gamma, beta, mm, mv = _fused_inputs(rng, (16, 13, 13, c))
    res = []
    for t in (1, 2):
        with num_threads(t):
            out = []
            for training in (True, False):
                rf, stats, grads = _fused_pair(x, dy, gamma, beta, mm, mv, training)
                out += [rf, *stats, *grads]
        res.append(out)
    for i, (a, b) in enumerate(zip(*res)):
        _assert_bitwise(a, b, "result %d, 1 vs 2 threads" % i)


@pytest.mark.parametrize("c", [64, 29, 16, 13, 7, 3])
def test_bn_fused_relu_portable_path_bitwise_equal(rng, c):
    x, dy, gamma, beta, mm, mv = _fused_inputs(rng, (9, 11, 13, c))
    res = []
    for level in (-1, 0):
        ext.force_simd(level)
        try:
            out = []
            for training in (True, False):
                rf, stats, grads = _fused_pair(x, dy, gamma, beta, mm, mv, training)
                out += [rf, *stats, *grads]
            res.append(out)
        finally:
            ext.force_simd(-1)
    for i, (a, b) in enumerate(zip(*res)):
        _assert_bitwise(a, b, "result %d, AVX2 vs portable" % i)


def test_bn_fused_relu_bad_relu_output(rng):
    x, dy, gamma, beta, mm, mv = _fused_inputs(rng, (4, 5, 3))
    y, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=True, relu=True)
    with pytest.raises(ValueError, match=r"relu_output: expected shape \(4, 5, 3\) like the "
                                         r"forward input, got \(4, 15\)"):
        ops.batch_norm_backward(dy, cache, relu_output=y.reshape(4, 15))
    with pytest.raises(ValueError, match=r"relu_output: expected the float32 output .* "
                                         r"got dtype float64"):
        ops.batch_norm_backward(dy, cache, relu_output=y.astype(np.float64))
    with pytest.raises(TypeError, match="relu_output: expected the float32 output"):
        ops.batch_norm_backward(dy, cache, relu_output=y.tolist())
    with pytest.raises(ValueError, match="dgamma must not overlap relu_output"):
        ops.batch_norm_backward(dy, cache, dgamma=y.reshape(-1)[:3], relu_output=y)
    with pytest.raises(ValueError, match="dbeta must not overlap relu_output"):
        ops.batch_norm_backward(dy, cache, dbeta=y.reshape(-1)[6:9], relu_output=y)
    with pytest.raises(ValueError, match="dx must not overlap relu_output"):
        ops.batch_norm_backward(dy, cache, dx=y, relu_output=y)
    with pytest.raises(ValueError, match="dx must not overlap relu_output"):
        ops.batch_norm_backward(y, cache, dx=y, relu_output=y)  # dx is dy, but dy is it too
    # a non-contiguous float32 view is fine (read only; copied), and y stays untouched
    y0 = y.copy()
    want = ops.batch_norm_backward(dy, cache, relu_output=y)
    got = ops.batch_norm_backward(dy, cache, relu_output=np.asfortranarray(y))
    for a, b in zip(want, got):
        _assert_bitwise(a, b, "non-contiguous relu_output")
    _assert_bitwise(y, y0, "relu_output after backward")
