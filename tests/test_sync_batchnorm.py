"""Synchronized batch norm in parts (fastcnn.ops.sync_norm), replicas simulated in process:
a batch split over "replicas" whose moments and gradient sums are combined must give the
whole batch's batch norm; one replica must give bitwise the single-kernel results."""
import numpy as np
import pytest

import fastcnn._ext as ext
from fastcnn import ops
from conftest import assert_close, fd_grad, num_threads
from test_batchnorm import _params, bn_backward_ref, bn_ref


def replicated(x, dy, gamma, beta, mm, mv, splits, relu=False):
    """Forward + backward of x split at ``splits`` (rows of axis 0) as separate replicas."""
    parts = np.split(x, splits)
    dys = np.split(dy, splits)
    moments = [ops.batch_norm_moments(p) for p in parts]
    rows, mean, var = ops.combine_moments(moments)
    ys, caches, mms, mvs = [], [], [], []
    for p in parts:
        m1, v1 = mm.copy(), mv.copy()
        y, cache = ops.batch_norm_forward_stats(p, gamma, beta, mean, var, m1, v1, relu=relu)
        ys.append(y)
        caches.append(cache)
        mms.append(m1)
        mvs.append(v1)
    sums = [ops.batch_norm_backward_sums(d, c, relu_output=y if relu else None)
            for d, c, y in zip(dys, caches, ys)]
    sum_dy = sum(s[0] for s in sums)
    sum_dyx = sum(s[1] for s in sums)
    dxs = [ops.batch_norm_backward_input(d, c, sum_dy, sum_dyx, rows,
                                         relu_output=y if relu else None)
           for d, c, y in zip(dys, caches, ys)]
    dgamma = sum(s[2].astype(np.float64) for s in sums)
    dbeta = sum(s[3].astype(np.float64) for s in sums)
    for m1, v1 in zip(mms[1:], mvs[1:]):  # every replica updates the same moving stats
        np.testing.assert_array_equal(m1, mms[0])
        np.testing.assert_array_equal(v1, mvs[0])
    return (np.concatenate(ys), mms[0], mvs[0], np.concatenate(dxs), dgamma, dbeta)


@pytest.mark.parametrize("shape,splits", [((7, 3, 5, 13), [2, 3]), ((6, 9), [1]),
                                          ((5, 4, 4, 64), [4]), ((9, 2, 3, 7), [3, 6, 8])])
def test_replicas_together_equal_the_whole_batch(rng, shape, splits):
    x = (2 + 3 * rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, shape[-1])
    y, m1, v1, dx, dgamma, dbeta = replicated(x, dy, gamma, beta, mm, mv, splits)
    ry, rmm, rmv = bn_ref(x, gamma, beta, mm, mv, training=True)
    rdx, rdg, rdb = bn_backward_ref(dy, x, gamma.astype(np.float64))
    assert_close(y, ry, rtol=1e-4, atol=1e-5, what="y")
    assert_close(m1, rmm, rtol=1e-5, atol=1e-6, what="moving_mean")
    assert_close(v1, rmv, rtol=1e-5, atol=1e-6, what="moving_var")
    assert_close(dx, rdx, rtol=1e-4, atol=2e-5, what="dx")
    assert_close(dgamma, rdg, rtol=1e-5, atol=1e-5, what="dgamma")
    assert_close(dbeta, rdb, rtol=1e-5, atol=1e-5, what="dbeta")


def test_replicated_gradients_vs_finite_differences(rng):
    """float64 finite differences of the whole batch's loss through the split path."""
    shape, splits = (5, 3, 3, 7), [2]
    x = rng.standard_normal(shape)
    gamma, beta, mm, mv = (a.astype(np.float64) for a in _params(rng, 7))
    w = rng.standard_normal(shape)

    def loss(xx, gg, bb):
        return float(np.sum(w * bn_ref(xx, gg, bb, mm, mv, training=True)[0]))

    _, _, _, dx, dgamma, dbeta = replicated(x.astype(np.float32), w.astype(np.float32),
                                            gamma.astype(np.float32), beta.astype(np.float32),
                                            mm.astype(np.float32), mv.astype(np.float32),
                                            splits)
    assert_close(dx, fd_grad(lambda v: loss(v, gamma, beta), x), rtol=1e-4, atol=1e-5)
    assert_close(dgamma, fd_grad(lambda v: loss(x, v, beta), gamma), rtol=1e-4, atol=1e-5)
    assert_close(dbeta, fd_grad(lambda v: loss(x, gamma, v), beta), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("c", [13, 64])
def test_one_replica_is_bitwise_the_single_kernels(rng, relu, c):
    x = (1 + rng.standard_normal((6, 5, 7, c))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, c)
    m0, v0 = mm.copy(), mv.copy()
    y0, cache0 = ops.batch_norm_forward(x, gamma, beta, m0, v0, training=True, relu=relu)
    dx0, dg0, db0 = ops.batch_norm_backward(dy, cache0, relu_output=y0 if relu else None)
    y1, m1, v1, dx1, _, _ = replicated(x, dy, gamma, beta, mm, mv, [], relu=relu)
    for a, b in ((y0, y1), (m0, m1), (v0, v1), (dx0, dx1)):
        assert a.tobytes() == b.tobytes()
    _, cache = ops.batch_norm_forward_stats(
        x, gamma, beta, *ops.combine_moments([ops.batch_norm_moments(x)])[1:],
        mm.copy(), mv.copy(), relu=relu)
    _, _, dg1, db1 = ops.batch_norm_backward_sums(dy, cache, relu_output=y1 if relu else None)
    assert dg0.tobytes() == dg1.tobytes() and db0.tobytes() == db1.tobytes()


@pytest.mark.parametrize("c", [7, 64])
def test_threads_and_simd_paths_bitwise(rng, c):
    x = rng.standard_normal((16, 13, 13, c)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, c)
    res = []
    for t, level in ((1, -1), (2, -1), (2, 0)):
        ext.force_simd(level)
        try:
            with num_threads(t):
                res.append(replicated(x, dy, gamma, beta, mm, mv, [5, 11]))
        finally:
            ext.force_simd(-1)
    for other in res[1:]:
        for a, b in zip(res[0], other):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_a_replica_without_rows_still_updates_the_moving_stats(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, 5)
    rows, mean, var = ops.combine_moments([ops.batch_norm_moments(x), (0, np.zeros(5),
                                                                        np.zeros(5))])
    m1, v1, m2, v2 = mm.copy(), mv.copy(), mm.copy(), mv.copy()
    ops.batch_norm_forward_stats(x, gamma, beta, mean, var, m1, v1)
    y, _ = ops.batch_norm_forward_stats(np.empty((0, 5), np.float32), gamma, beta, mean, var,
                                        m2, v2)
    assert rows == 4 and y.shape == (0, 5)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(v1, v2)


def test_bad_arguments_are_named(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    gamma, beta, mm, mv = _params(rng, 3)
    with pytest.raises(ValueError, match="batch_norm_moments: needs at least one value"):
        ops.batch_norm_moments(np.empty((0, 3), np.float32))
    with pytest.raises(ValueError, match="batch_norm_moments: x: expected at least 2 axes"):
        ops.batch_norm_moments(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="combine_moments: no replica has any rows"):
        ops.combine_moments([(0, np.zeros(3), np.zeros(3))])
    with pytest.raises(ValueError, match="channel counts differ"):
        ops.combine_moments([(1, np.zeros(3), np.zeros(3)), (1, np.zeros(4), np.zeros(4))])
    with pytest.raises(ValueError, match=r"batch_norm_forward_stats: mean: expected shape \(3,\)"):
        ops.batch_norm_forward_stats(x, gamma, beta, np.zeros(4), np.ones(3), mm, mv)
    with pytest.raises(ValueError, match="var: expected variances >= 0"):
        ops.batch_norm_forward_stats(x, gamma, beta, np.zeros(3), -np.ones(3), mm, mv)
    with pytest.raises(ValueError, match="momentum"):
        ops.batch_norm_forward_stats(x, gamma, beta, np.zeros(3), np.ones(3), mm, mv,
                                     momentum=2.0)
    _, cache = ops.batch_norm_forward(x, gamma, beta, mm.copy(), mv.copy(), training=False)
    with pytest.raises(ValueError, match="batch_norm_backward_sums: cache"):
        ops.batch_norm_backward_sums(x, cache)
    _, cache = ops.batch_norm_forward_stats(x, gamma, beta, np.zeros(3), np.ones(3),
                                            mm.copy(), mv.copy())
    with pytest.raises(ValueError, match="dy: expected shape"):
        ops.batch_norm_backward_sums(x[:2], cache)
    with pytest.raises(ValueError, match="total_rows: expected an int >= this replica's 4"):
        ops.batch_norm_backward_input(x, cache, np.zeros(3), np.zeros(3), 3)
    with pytest.raises(ValueError, match="sum_dy: expected shape"):
        ops.batch_norm_backward_input(x, cache, np.zeros(2), np.zeros(3), 8)
