"""Batch norm with a fused clipped ReLU (ReLU6, ``ReLU(max_value=m)``): the kernels' forward
and backward against batch norm then the activation kernels run one after the other
(bitwise), float64 finite differences, 1 vs 2 threads, the portable path, and the fusion
rules that put it in MobileNet-style models (Conv2D / DepthwiseConv2D + BN + ReLU6)."""
import numpy as np
import pytest

import fastcnn
import fastcnn._ext as ext
from fastcnn import layers, ops
from conftest import assert_close, fd_grad, num_threads

SHAPES = [(3000, 8), (2600, 13), (700, 64), (4, 45, 50, 3), (5, 19, 21, 13), (3, 11, 13, 64),
          (2, 9, 7, 29)]
CAPS = [6.0, 1.5]  # 6: the relu6 kernel; 1.5: relu(max_value=) on the general kernel


def _inputs(rng, shape):
    """x, dy and parameters where bn(x) spans both sides of the clip: about a third below
    0, a fifth above 6 (and above 1.5 more often), exact zeros of both signs in the last
    channel (gamma 0, beta -0) and exact 6.0 and 1.5 values in the first."""
    c = shape[-1]
    x = (0.5 + 2 * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = (4 + rng.standard_normal(c)).astype(np.float32)
    beta = (1 + rng.standard_normal(c)).astype(np.float32)
    mm = rng.standard_normal(c).astype(np.float32)
    mv = (0.5 + rng.random(c)).astype(np.float32)
    gamma[-1], beta[-1] = 0.0, -0.0
    # inference: bn(x) of channel 0 is exactly beta where x == moving_mean
    x.reshape(-1, c)[:7, 0] = mm[0]
    beta[0] = 6.0 if rng.random() < 0.5 else 1.5
    return x, dy, gamma, beta, mm, mv


def _unfused(x, dy, gamma, beta, mm, mv, training, cap):
    m1, v1 = mm.copy(), mv.copy()
    z, cache = ops.batch_norm_forward(x, gamma, beta, m1, v1, momentum=0.9, training=training)
    r = ops.activation(z, "relu", max_value=cap)
    dz = ops.activation_backward(dy, r, "relu", max_value=cap)
    grads = ops.batch_norm_backward(dz, cache)
    return z, r, (m1, v1, cache.mean, cache.inv_std), grads


def _fused(x, dy, gamma, beta, mm, mv, training, cap):
    m1, v1 = mm.copy(), mv.copy()
    r, cache = ops.batch_norm_forward(x, gamma, beta, m1, v1, momentum=0.9, training=training,
                                      relu=True, relu_max=cap)
    dy0 = dy.copy()
    grads = ops.batch_norm_backward(dy, cache, relu_output=r, relu_max=cap)
    assert dy.tobytes() == dy0.tobytes()  # the masked dy is never written
    return r, (m1, v1, cache.mean, cache.inv_std), grads


def _assert_bitwise(a, b, what):
    assert a.shape == b.shape and a.dtype == b.dtype, what
    assert a.tobytes() == b.tobytes(), "%s differs in %d elements" % (
        what, int(np.sum(a.view(np.uint32) != b.view(np.uint32))))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cap", CAPS)
def test_fused_clipped_relu_is_bitwise_the_unfused_kernels(rng, shape, training, cap):
    x, dy, gamma, beta, mm, mv = _inputs(rng, shape)
    z, r, stats, grads = _unfused(x, dy, gamma, beta, mm, mv, training, cap)
    rf, stats_f, grads_f = _fused(x, dy, gamma, beta, mm, mv, training, cap)
    # -0 becomes +0 (the scalar relu6 rule; the relu6 kernel's AVX2 lanes keep -0): equal
    # up to the sign of zero, bitwise once zeros are made +0
    _assert_bitwise(rf, r + np.float32(0), "clip(bn(x), 0, %g)" % cap)
    for a, b, name in zip(stats_f, stats, ("moving_mean", "moving_var", "mean", "inv_std")):
        _assert_bitwise(a, b, name)
    for a, b, name in zip(grads_f, grads, ("dx", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name)
    # the test means something: both clips happen, and -0 became +0
    assert (z < 0).mean() > 0.03 and (z > cap).mean() > 0.03
    assert ((z == 0) & np.signbit(z)).any() and not np.signbit(rf).any()
    assert rf.max() == cap and rf.min() == 0.0
    # in place: dx may be dy
    _, cache = ops.batch_norm_forward(x, gamma, beta, mm.copy(), mv.copy(), momentum=0.9,
                                      training=training, relu=True, relu_max=cap)
    buf = dy.copy()
    dx = ops.batch_norm_backward(buf, cache, dx=buf, relu_output=rf, relu_max=cap)[0]
    assert dx is buf
    _assert_bitwise(dx, grads[0], "dx in place")


def test_inference_values_exactly_at_the_cap_get_no_gradient(rng):
    x, dy, gamma, beta, mm, mv = _inputs(rng, (6, 5, 4, 8))
    beta[0] = 6.0
    r, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, relu=True, relu_max=6.0)
    at_cap = r[..., 0].reshape(-1)[:7]
    assert np.all(at_cap == 6.0)
    dx = ops.batch_norm_backward(dy, cache, relu_output=r, relu_max=6.0)[0]
    assert np.all(dx[..., 0].reshape(-1)[:7] == 0.0)
    z, rr, _, grads = _unfused(x, dy, gamma, beta, mm, mv, False, 6.0)
    _assert_bitwise(dx, grads[0], "dx")


@pytest.mark.parametrize("training", [True, False])
def test_nan_propagates_like_the_unfused_kernels(rng, training):
    x, dy, gamma, beta, mm, mv = _inputs(rng, (6, 9, 7, 13))
    x[2, 3, 4, 5] = np.nan
    x[4, 0, 1, 9] = -np.inf
    _, r, _, grads = _unfused(x, dy, gamma, beta, mm, mv, training, 6.0)
    rf, _, grads_f = _fused(x, dy, gamma, beta, mm, mv, training, 6.0)
    assert np.isnan(rf[2, 3, 4, 5])
    _assert_bitwise(rf, r + np.float32(0), "forward with NaN")
    for a, b, name in zip(grads_f, grads, ("dx", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name + " with NaN")


def test_finite_differences():
    """float64 central differences of sum(w * clip(bn(x), 0, 6)) on an awkward shape."""
    rng = np.random.default_rng(3)
    shape = (3, 5, 7, 5)
    x = rng.standard_normal(shape)
    gamma = 4 + rng.standard_normal(5)
    beta = 1 + rng.standard_normal(5)
    mm, mv = np.zeros(5, np.float32), np.ones(5, np.float32)
    w = rng.standard_normal(shape)

    def bn64(xx, gg, bb):
        mean = xx.reshape(-1, 5).mean(0)
        var = xx.reshape(-1, 5).var(0)
        return (xx - mean) / np.sqrt(var + 1e-3) * gg + bb

    pre = bn64(x, gamma, beta)
    # the kinks out of the differences' reach, and both clips present
    assert min(np.abs(pre).min(), np.abs(pre - 6).min()) > 1e-4
    assert (pre < 0).mean() > 0.1 and (pre > 6).mean() > 0.05

    def loss(xx, gg, bb):
        return float(np.sum(w * np.clip(bn64(xx, gg, bb), 0.0, 6.0)))

    y, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=True, relu=True,
                                      relu_max=6.0)
    assert_close(y, np.clip(pre, 0, 6), rtol=1e-5, atol=1e-5, what="y")
    dx, dgamma, dbeta = ops.batch_norm_backward(w, cache, relu_output=y, relu_max=6.0)
    assert_close(dx, fd_grad(lambda v: loss(v, gamma, beta), x), rtol=1e-4, atol=1e-5,
                 what="dx")
    assert_close(dgamma, fd_grad(lambda v: loss(x, v, beta), gamma), rtol=1e-5, atol=1e-5,
                 what="dgamma")
    assert_close(dbeta, fd_grad(lambda v: loss(x, gamma, v), beta), rtol=1e-5, atol=1e-5,
                 what="dbeta")


@pytest.mark.parametrize("c", [64, 13])
def test_threads_bitwise(rng, c):
    x, dy, gamma, beta, mm, mv = _inputs(rng, (16, 13, 13, c))
    res = []
    for t in (1, 2):
        with num_threads(t):
            out = []
            for training in (True, False):
                rf, stats, grads = _fused(x, dy, gamma, beta, mm, mv, training, 6.0)
                out += [rf, *stats, *grads]
        res.append(out)
    for i, (a, b) in enumerate(zip(*res)):
        _assert_bitwise(a, b, "result %d, 1 vs 2 threads" % i)


@pytest.mark.parametrize("c", [100, 64, 45, 29, 16, 13, 7, 3])
def test_portable_path_bitwise_equal(rng, c):
    """Channel blocks of 32 / 16 / 8 and single channels (45 = 32 + 8 + 5, 100 = 3 * 32
    + 4) do each channel's operations in the generic path's order."""
    x, dy, gamma, beta, mm, mv = _inputs(rng, (9, 11, 13, c))
    res = []
    for level in (-1, 0):
        ext.force_simd(level)
        try:
            out = []
            for training in (True, False):
                rf, stats, grads = _fused(x, dy, gamma, beta, mm, mv, training, 6.0)
                out += [rf, *stats, *grads]
            res.append(out)
        finally:
            ext.force_simd(-1)
    for i, (a, b) in enumerate(zip(*res)):
        _assert_bitwise(a, b, "result %d, AVX2 vs portable" % i)


def test_synchronized_parts_match_with_one_replica(rng):
    x, dy, gamma, beta, mm, mv = _inputs(rng, (4, 7, 5, 13))
    rf, stats, grads = _fused(x, dy, gamma, beta, mm, mv, True, 6.0)
    rows, mean, m2 = ops.batch_norm_moments(x)
    m1, v1 = mm.copy(), mv.copy()
    y, cache = ops.batch_norm_forward_stats(x, gamma, beta, mean, m2 / rows, m1, v1,
                                            momentum=0.9, relu=True, relu_max=6.0)
    _assert_bitwise(y, rf, "forward_stats")
    s, sx, dgamma, dbeta = ops.batch_norm_backward_sums(dy, cache, relu_output=y, relu_max=6.0)
    dx = ops.batch_norm_backward_input(dy, cache, s, sx, rows, relu_output=y, relu_max=6.0)
    for a, b, name in zip((dx, dgamma, dbeta), grads, ("dx", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), True, "6", 0.1])
def test_bad_relu_max_is_refused(rng, bad):
    x, dy, gamma, beta, mm, mv = _inputs(rng, (4, 5, 3))
    y, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, relu=True)
    with pytest.raises(ValueError, match="batch_norm_forward: relu_max: expected"):
        ops.batch_norm_forward(x, gamma, beta, mm, mv, relu=True, relu_max=bad)
    with pytest.raises(ValueError, match="batch_norm_backward: relu_max: expected"):
        ops.batch_norm_backward(dy, cache, relu_output=y, relu_max=bad)
    with pytest.raises(ValueError, match="batch_norm_forward_stats: relu_max: expected"):
        ops.batch_norm_forward_stats(x, gamma, beta, np.zeros(3), np.ones(3), mm.copy(),
                                     mv.copy(), relu=True, relu_max=bad)


# ------------------------------------------------------------------- in models
def _mobilenet_block(relu):
    return [fastcnn.Input((10, 10, 5)),
            layers.Conv2D(8, 3, padding="same", use_bias=False), layers.BatchNormalization(),
            relu(),
            layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(), relu(),
            layers.Conv2D(12, 1, use_bias=False), layers.BatchNormalization(), relu(),
            layers.BatchNormalization(), relu(),
            layers.GlobalAveragePooling2D(), layers.Dense(3)]


RELUS = {"ReLU(max_value=6)": lambda: layers.ReLU(max_value=6.0),
         "Activation(relu6)": lambda: layers.Activation("relu6"),
         "ReLU(max_value=2.5)": lambda: layers.ReLU(max_value=2.5)}


@pytest.mark.parametrize("relu", sorted(RELUS))
def test_mobilenet_block_fuses_and_trains_as_unfused(rng, relu):
    x = rng.standard_normal((16, 10, 10, 5)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    results = []
    for fuse in (True, False):
        fastcnn.utils.set_random_seed(5)
        model = fastcnn.Sequential(_mobilenet_block(RELUS[relu]))
        model.compile(optimizer="adam",
                      loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fuse_kernels = fuse
        kinds = [s.kind for s in model.plan()]
        if fuse:
            assert kinds == ["conv2d_batch_norm_clipped_relu",
                             "depthwise_conv2d_batch_norm_clipped_relu",
                             "conv2d_batch_norm_clipped_relu", "batch_norm_clipped_relu",
                             "GlobalAveragePooling2D", "Dense"]
        else:
            assert "ReLU" in kinds or "Activation" in kinds
        losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
        results.append((losses, model.get_weights(), model.predict(x, verbose=0)))
    (l1, w1, p1), (l0, w0, p0) = results
    assert l1 == l0  # training runs the same kernels' bits
    for a, b in zip(w1, w0):
        _assert_bitwise(np.asarray(a), np.asarray(b), "weights after 3 steps")
    # inference folds batch norm into the convs: the same up to that rounding
    assert_close(p1, p0, rtol=1e-5, atol=1e-5, what="predictions")


def test_relu_with_slope_or_threshold_or_zero_cap_is_not_fused():
    for relu in (layers.ReLU(max_value=6.0, negative_slope=0.1),
                 layers.ReLU(max_value=6.0, threshold=0.5), layers.ReLU(max_value=0.0),
                 layers.ReLU(max_value=0.1)):  # 0.1 is not exact in float32
        model = fastcnn.Sequential([fastcnn.Input((6, 6, 3)), layers.BatchNormalization(),
                                    relu])
        assert [s.kind for s in model.plan()] == ["BatchNormalization", "ReLU"]


# ------------------------------------------- the mask recomputed from x (relu=True)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cap", [None] + CAPS)
def test_mask_from_x_is_bitwise_the_mask_from_the_output(rng, shape, training, cap):
    x, dy, gamma, beta, mm, mv = _inputs(rng, shape)
    x[0, 0] = np.nan  # NaN: the mask drops it either way
    r, cache = ops.batch_norm_forward(x, gamma, beta, mm.copy(), mv.copy(), training=training,
                                      relu=True, relu_max=cap)
    want = ops.batch_norm_backward(dy, cache, relu_output=r, relu_max=cap)
    got = ops.batch_norm_backward(dy, cache, relu=True, relu_max=cap)
    for a, b, name in zip(got, want, ("dx", "dgamma", "dbeta")):
        _assert_bitwise(a, b, name)
    buf = dy.copy()  # in place
    dx = ops.batch_norm_backward(buf, cache, dx=buf, relu=True, relu_max=cap)[0]
    _assert_bitwise(dx, want[0], "dx in place")
    # the mask matters here: without it the gradients differ
    plain = ops.batch_norm_backward(dy, cache)[0]
    assert not np.array_equal(plain, want[0])


@pytest.mark.parametrize("c", [100, 64, 45, 29, 16, 13, 7, 3])
def test_mask_from_x_threads_and_portable_path(rng, c):
    x, dy, gamma, beta, mm, mv = _inputs(rng, (9, 11, 13, c))
    res = []
    for threads, level in ((1, -1), (2, -1), (1, 0), (2, 0)):
        ext.force_simd(level)
        try:
            with num_threads(threads):
                out = []
                for training in (True, False):
                    for cap in (None, 6.0):
                        r, cache = ops.batch_norm_forward(x, gamma, beta, mm.copy(), mv.copy(),
                                                          training=training, relu=True,
                                                          relu_max=cap)
                        out += ops.batch_norm_backward(dy, cache, relu=True, relu_max=cap)
                res.append(out)
        finally:
            ext.force_simd(-1)
    for other in res[1:]:
        for i, (a, b) in enumerate(zip(res[0], other)):
            _assert_bitwise(a, b, "result %d, across threads / SIMD paths" % i)


def test_mask_from_x_bad_calls(rng):
    x, dy, gamma, beta, mm, mv = _inputs(rng, (4, 5, 3))
    r, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, relu=True)
    with pytest.raises(ValueError, match="pass relu_output or relu=True, not both"):
        ops.batch_norm_backward(dy, cache, relu_output=r, relu=True)
    with pytest.raises(ValueError, match="relu: expected True or False"):
        ops.batch_norm_backward(dy, cache, relu="yes")
    rows, mean, m2 = ops.batch_norm_moments(x)
    _, synced = ops.batch_norm_forward_stats(x, gamma, beta, mean, m2 / rows, mm.copy(),
                                             mv.copy(), relu=True)
    with pytest.raises(ValueError, match="relu=True needs the cache of batch_norm_forward"):
        ops.batch_norm_backward(dy, synced, relu=True)
