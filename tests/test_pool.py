"""Pooling kernels (fastcnn.ops.pool) against plain NumPy references written here."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastcnn
from fastcnn import ops
from conftest import assert_close, fd_grad, num_threads


# ----------------------------------------------------------------- NumPy references

def keras_geometry(size, k, s, padding):
    """(out, pad_before) along one axis, written out from the Keras/TF definition."""
    if padding == "valid":
        return (size - k) // s + 1, 0
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2


def windows(x_shape, pool, strides, padding):
    """Yield (oh, ow, h0, h1, w0, w1): each output and the real input rows/cols it covers."""
    _, H, W, _ = x_shape
    (ph, pw), (sh, sw) = pool, strides
    OH, pt = keras_geometry(H, ph, sh, padding)
    OW, pl = keras_geometry(W, pw, sw, padding)
    for oh in range(OH):
        h0, h1 = max(oh * sh - pt, 0), min(oh * sh - pt + ph, H)
        for ow in range(OW):
            w0, w1 = max(ow * sw - pl, 0), min(ow * sw - pl + pw, W)
            yield oh, ow, h0, h1, w0, w1


def out_shape(x_shape, pool, strides, padding):
    N, H, W, C = x_shape
    return (N, keras_geometry(H, pool[0], strides[0], padding)[0],
            keras_geometry(W, pool[1], strides[1], padding)[0], C)


def ref_max_pool(x, pool, strides, padding):
    """Max and first-argmax (row-major window order; NaN wins as np.max/np.argmax do)."""
    x = np.asarray(x, dtype=np.float64)
    N, H, W, C = x.shape
    y = np.empty(out_shape(x.shape, pool, strides, padding))
    idx = np.empty(y.shape, dtype=np.int64)
    for oh, ow, h0, h1, w0, w1 in windows(x.shape, pool, strides, padding):
        sub = x[:, h0:h1, w0:w1, :].reshape(N, -1, C)
        y[:, oh, ow] = sub.max(axis=1)
        a = sub.argmax(axis=1)
        h, w = h0 + a // (w1 - w0), w0 + a % (w1 - w0)
        idx[:, oh, ow] = (h * W + w) * C + np.arange(C)
    return y, idx


def ref_max_pool_backward(dy, idx, x_shape):
    N = x_shape[0]
    dx = np.zeros((N, int(np.prod(x_shape[1:]))))
    for n in range(N):
        np.add.at(dx[n], idx[n].ravel(), np.asarray(dy[n], np.float64).ravel())
    return dx.reshape(x_shape)


def ref_avg_pool(x, pool, strides, padding):
    x = np.asarray(x, dtype=np.float64)
    y = np.empty(out_shape(x.shape, pool, strides, padding))
    for oh, ow, h0, h1, w0, w1 in windows(x.shape, pool, strides, padding):
        y[:, oh, ow] = x[:, h0:h1, w0:w1, :].mean(axis=(1, 2))
    return y


def ref_avg_pool_backward(dy, x_shape, pool, strides, padding):
    dx = np.zeros(x_shape)
    for oh, ow, h0, h1, w0, w1 in windows(x_shape, pool, strides, padding):
        count = (h1 - h0) * (w1 - w0)
        dx[:, h0:h1, w0:w1, :] += np.asarray(dy, np.float64)[:, oh, ow, None, None, :] / count
    return dx


def tie_free(rng, shape):
    """Values at least 0.01 apart, so finite differences never swap a window's maximum."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.01 - n * 0.005).astype(np.float64)


GRID = [
    # (N, H, W, C, pool, strides, padding)
    (1, 4, 4, 1, (2, 2), None, "valid"),
    (1, 5, 7, 3, (2, 2), None, "valid"),
    (1, 5, 7, 3, (2, 2), None, "same"),
    (3, 7, 5, 7, (3, 3), (1, 1), "valid"),
    (3, 7, 5, 7, (3, 3), (1, 1), "same"),
    (2, 9, 9, 64, (3, 3), (2, 2), "valid"),
    (2, 9, 9, 64, (3, 3), (2, 2), "same"),
    (2, 6, 8, 7, (2, 3), (1, 2), "same"),
    (4, 6, 6, 3, (3, 3), None, "same"),
    (2, 5, 5, 3, (2, 2), (3, 3), "valid"),   # stride > pool: skipped rows/cols
    (2, 5, 5, 3, (2, 2), (3, 3), "same"),
    (1, 1, 1, 5, (1, 1), None, "valid"),     # size-1 dims
    (2, 1, 6, 3, (1, 2), None, "valid"),
    (1, 2, 2, 3, (3, 3), (1, 1), "same"),    # pool bigger than the input
    (2, 13, 13, 64, (2, 2), None, "valid"),  # seed model's second pool (odd size)
]


def _strides(pool, strides):
    return pool if strides is None else strides


# ------------------------------------------------------------------ max pool forward

@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", GRID)
def test_max_pool_forward_matches_reference(rng, N, H, W, C, pool, strides, padding):
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    y, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
    ry, ridx = ref_max_pool(x, pool, _strides(pool, strides), padding)
    assert y.dtype == np.float32 and idx.dtype == np.int32
    np.testing.assert_array_equal(y, ry.astype(np.float32))
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(ops.max_pool2d(x, pool, strides, padding), y)


@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", GRID)
def test_max_pool_forward_with_ties_matches_first_argmax(rng, N, H, W, C, pool, strides,
                                                         padding):
    # few distinct values: most windows hold their maximum several times
    x = rng.integers(0, 3, size=(N, H, W, C)).astype(np.float32)
    y, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
    ry, ridx = ref_max_pool(x, pool, _strides(pool, strides), padding)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


def test_max_pool_seed_shape_matches_reshape_max(rng):
    x = rng.standard_normal((32, 30, 30, 32)).astype(np.float32)
    x[:, :10] = np.round(x[:, :10])  # plenty of ties
    y, idx = ops.max_pool2d(x, return_indices=True)
    win = x.reshape(32, 15, 2, 15, 2, 32).transpose(0, 1, 3, 2, 4, 5).reshape(32, 15, 15, 4, 32)
    np.testing.assert_array_equal(y, win.max(axis=3))
    a = win.argmax(axis=3)
    oh = np.arange(15)[None, :, None, None]
    ow = np.arange(15)[None, None, :, None]
    h, w = 2 * oh + a // 2, 2 * ow + a % 2
    np.testing.assert_array_equal(idx, (h * 30 + w) * 32 + np.arange(32))


# ----------------------------------------------------------------- max pool backward

@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", [
    (1, 4, 4, 1, (2, 2), None, "valid"),
    (2, 5, 5, 3, (2, 2), None, "same"),
    (1, 5, 4, 2, (3, 3), (1, 1), "valid"),   # overlapping windows
    (2, 5, 5, 2, (3, 3), (2, 2), "same"),
    (1, 5, 5, 2, (2, 2), (3, 3), "valid"),
])
def test_max_pool_backward_matches_finite_differences(rng, N, H, W, C, pool, strides, padding):
    x = tie_free(rng, (N, H, W, C))
    s = _strides(pool, strides)
    r = rng.standard_normal(out_shape(x.shape, pool, s, padding))
    _, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
    dx = ops.max_pool2d_backward(r.astype(np.float32), idx, x.shape)
    num = fd_grad(lambda z: float(np.sum(ref_max_pool(z, pool, s, padding)[0] * r)), x)
    assert_close(dx, num, rtol=1e-5, atol=1e-5, what="max_pool2d_backward vs fd")


@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", GRID)
def test_max_pool_backward_matches_analytic_reference(rng, N, H, W, C, pool, strides, padding):
    x = rng.integers(0, 4, size=(N, H, W, C)).astype(np.float32)  # with ties
    s = _strides(pool, strides)
    dy = rng.standard_normal(out_shape(x.shape, pool, s, padding)).astype(np.float32)
    _, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
    dx = ops.max_pool2d_backward(dy, idx, x.shape)
    _, ridx = ref_max_pool(x, pool, s, padding)
    assert_close(dx, ref_max_pool_backward(dy, ridx, x.shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", GRID)
def test_max_pool_backward_with_relu_gate_matches_relu_then_pool_backward(
        rng, N, H, W, C, pool, strides, padding):
    # relu outputs: many exact zeros (whole windows of them) and ties, as after a real ReLU
    x = np.maximum(rng.integers(-3, 3, size=(N, H, W, C)), 0).astype(np.float32)
    s = _strides(pool, strides)
    dy = rng.standard_normal(out_shape(x.shape, pool, s, padding)).astype(np.float32)
    y, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
    fused = ops.max_pool2d_backward(dy, idx, x.shape, relu_output=y)
    unfused = ops.relu_backward(ops.max_pool2d_backward(dy, idx, x.shape), x)
    np.testing.assert_array_equal(fused, unfused)
    _, ridx = ref_max_pool(x, pool, s, padding)
    assert_close(fused, ref_max_pool_backward(dy, ridx, x.shape) * (x > 0), rtol=1e-6,
                 atol=1e-6)


def test_max_pool_backward_relu_gate_is_checked():
    x = np.ones((1, 4, 4, 2), np.float32)
    y, idx = ops.max_pool2d(x, return_indices=True)
    with pytest.raises(ValueError, match="relu_output"):
        ops.max_pool2d_backward(y, idx, x.shape, relu_output=np.ones((1, 2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="relu_output"):
        ops.max_pool2d_backward(y, idx, x.shape, relu_output=np.ones((2, 2, 2), np.float32))


def test_tie_gradient_goes_to_the_first_element():
    x = np.full((1, 2, 2, 1), 0.5, dtype=np.float32)
    y, idx = ops.max_pool2d(x, return_indices=True)
    assert y[0, 0, 0, 0] == 0.5 and idx[0, 0, 0, 0] == 0
    dx = ops.max_pool2d_backward(np.full((1, 1, 1, 1), 3.0, np.float32), idx, x.shape)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_tie_in_a_3x3_window_picks_first_in_row_major_order():
    x = np.zeros((1, 3, 3, 2), dtype=np.float32)
    x[0, 1, 2, 0] = x[0, 2, 0, 0] = 7.0    # channel 0: ties at (1,2) and (2,0) -> (1,2)
    x[0, 2, 1, 1] = x[0, 0, 2, 1] = 5.0    # channel 1: ties at (0,2) and (2,1) -> (0,2)
    y, idx = ops.max_pool2d(x, (3, 3), return_indices=True)
    np.testing.assert_array_equal(y.ravel(), [7.0, 5.0])
    np.testing.assert_array_equal(idx.ravel(), [(1 * 3 + 2) * 2 + 0, (0 * 3 + 2) * 2 + 1])


def test_constant_image_with_overlapping_windows():
    # every window's gradient goes to its own top-left element; overlapping windows add up
    x = np.ones((2, 5, 5, 3), dtype=np.float32)
    y, idx = ops.max_pool2d(x, (3, 3), (1, 1), "same", return_indices=True)
    dx = ops.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    expected = np.zeros((5, 5))
    for oh, ow, h0, h1, w0, w1 in windows(x.shape, (3, 3), (1, 1), "same"):
        expected[h0, w0] += 1
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(dx[n, :, :, c], expected)
    assert dx.sum() == y.size


def test_padding_never_wins_even_against_minus_infinity():
    x = np.full((1, 3, 3, 2), -np.inf, dtype=np.float32)
    y, idx = ops.max_pool2d(x, (2, 2), (2, 2), "same", return_indices=True)
    assert np.all(y == -np.inf)
    # with `same` here pad is only bottom/right: each window's first real element is its top-left
    np.testing.assert_array_equal(idx[0, :, :, 0], [[0, 2 * 2], [6 * 2, 8 * 2]])
    x = np.full((1, 2, 2, 1), -5.0, dtype=np.float32)
    y, idx = ops.max_pool2d(x, (3, 3), (1, 1), "same", return_indices=True)  # pads top/left
    np.testing.assert_array_equal(y.ravel(), [-5.0] * 4)
    np.testing.assert_array_equal(idx.ravel(), [0, 0, 0, 0])
    x = np.array([-3.0, -1.0, -2.0, -4.0], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(ops.max_pool2d(x, 3, 1, "same").ravel(), [-1.0] * 4)


@pytest.mark.parametrize("simd", [0, -1])
def test_nan_propagates_and_does_not_crash(simd):
    fastcnn._ext.force_simd(simd)
    try:
        x = np.arange(4 * 4 * 9, dtype=np.float32).reshape(1, 4, 4, 9)
        x[0, 0, 1, 0] = np.nan             # window (0,0): NaN after a smaller value
        x[0, 1, 1, 0] = 1e30               # ... and before a larger one: NaN still wins
        x[0, 2, 2, 8] = np.nan             # window (1,1) channel 8: two NaNs, first one kept
        x[0, 3, 3, 8] = np.nan
        y, idx = ops.max_pool2d(x, return_indices=True)
        ry, ridx = ref_max_pool(x, (2, 2), (2, 2), "valid")
        np.testing.assert_array_equal(y, ry.astype(np.float32))  # NaN positions equal too
        np.testing.assert_array_equal(idx, ridx)
        assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 9
        assert np.isnan(y[0, 1, 1, 8]) and idx[0, 1, 1, 8] == (2 * 4 + 2) * 9 + 8
        assert np.isnan(y).sum() == 2
        dx = ops.max_pool2d_backward(np.ones_like(y), idx, x.shape)
        assert dx[0, 0, 1, 0] == 1.0 and dx[0, 1, 1, 0] == 0.0 and dx.sum() == y.size
        assert np.isnan(ops.max_pool2d(x)[0, 0, 0, 0])
    finally:
        fastcnn._ext.force_simd(-1)


def test_infinity_handling():
    x = np.zeros((1, 2, 2, 1), np.float32)
    x[0, 1, 1, 0] = np.inf
    y, idx = ops.max_pool2d(x, return_indices=True)
    assert y.ravel()[0] == np.inf and idx.ravel()[0] == 3


# ------------------------------------------------------------------------ average pool

@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", GRID)
def test_avg_pool_forward_matches_reference(rng, N, H, W, C, pool, strides, padding):
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    y = ops.avg_pool2d(x, pool, strides, padding)
    assert_close(y, ref_avg_pool(x, pool, _strides(pool, strides), padding), 1e-6, 1e-6)


def test_avg_pool_same_divides_by_real_elements_only():
    x = np.ones((1, 3, 3, 1), np.float32)
    # Keras/TF: every output of a constant image is that constant, borders included
    np.testing.assert_array_equal(ops.avg_pool2d(x, 2, 2, "same"), np.ones((1, 2, 2, 1)))
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    y = ops.avg_pool2d(x, 2, 2, "same")
    np.testing.assert_allclose(y[0, :, :, 0], [[2.0, 3.5], [6.5, 8.0]])


@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", [
    (1, 4, 4, 1, (2, 2), None, "valid"),
    (2, 5, 5, 2, (2, 2), None, "same"),
    (1, 5, 4, 2, (3, 3), (1, 1), "same"),
    (1, 5, 5, 2, (3, 2), (2, 1), "valid"),
    (1, 5, 5, 2, (2, 2), (3, 3), "same"),
])
def test_avg_pool_backward_matches_finite_differences(rng, N, H, W, C, pool, strides, padding):
    x = rng.standard_normal((N, H, W, C))
    s = _strides(pool, strides)
    r = rng.standard_normal(out_shape(x.shape, pool, s, padding))
    dx = ops.avg_pool2d_backward(r, x.shape, pool, strides, padding)
    num = fd_grad(lambda z: float(np.sum(ref_avg_pool(z, pool, s, padding) * r)), x)
    assert_close(dx, num, rtol=1e-5, atol=1e-5, what="avg_pool2d_backward vs fd")


@pytest.mark.parametrize("N,H,W,C,pool,strides,padding", GRID)
def test_avg_pool_backward_matches_analytic_reference(rng, N, H, W, C, pool, strides, padding):
    s = _strides(pool, strides)
    dy = rng.standard_normal(out_shape((N, H, W, C), pool, s, padding)).astype(np.float32)
    dx = ops.avg_pool2d_backward(dy, (N, H, W, C), pool, strides, padding)
    assert_close(dx, ref_avg_pool_backward(dy, (N, H, W, C), pool, s, padding), 1e-6, 1e-6)


# ---------------------------------------------------------------- global average pool

@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 5, 7, 3), (3, 4, 4, 64), (2, 3, 3, 300)])
def test_global_avg_pool_forward_and_backward(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.global_avg_pool2d(x)
    assert y.shape == (shape[0], shape[3])
    assert_close(y, x.astype(np.float64).mean(axis=(1, 2)), 1e-6, 1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.global_avg_pool2d_backward(dy, shape)
    expected = np.broadcast_to(dy[:, None, None, :] / (shape[1] * shape[2]), shape)
    assert_close(dx, expected, 1e-6, 1e-6)


def test_global_avg_pool_backward_matches_finite_differences(rng):
    x = rng.standard_normal((2, 3, 2, 3))
    r = rng.standard_normal((2, 3))
    dx = ops.global_avg_pool2d_backward(r, x.shape)
    num = fd_grad(lambda z: float(np.sum(z.mean(axis=(1, 2)) * r)), x)
    assert_close(dx, num, rtol=1e-5, atol=1e-5)


# --------------------------------------------------- determinism, SIMD paths, layouts

def _all_kernels(x, pool, strides, padding, dy_seed=7):
    r = np.random.default_rng(dy_seed)
    y, idx = ops.max_pool2d(x, pool, strides, padding, return_indices=True)
    dy = r.standard_normal(y.shape).astype(np.float32)
    a = ops.avg_pool2d(x, pool, strides, padding)
    g = ops.global_avg_pool2d(x)
    return [y, idx, ops.max_pool2d(x, pool, strides, padding),
            ops.max_pool2d_backward(dy, idx, x.shape), a,
            ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding), g,
            ops.global_avg_pool2d_backward(g, x.shape)]


@pytest.mark.parametrize("pool,strides,padding", [((2, 2), None, "valid"),
                                                  ((3, 3), (1, 1), "same"),
                                                  ((3, 3), (2, 2), "same")])
def test_bitwise_identical_at_1_and_2_threads(rng, pool, strides, padding):
    x = rng.integers(-3, 4, size=(6, 30, 30, 32)).astype(np.float32)  # big enough to split
    with num_threads(1):
        one = _all_kernels(x, pool, strides, padding)
    with num_threads(2):
        two = _all_kernels(x, pool, strides, padding)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
        assert a.tobytes() == b.tobytes()


def test_portable_and_simd_paths_agree_bitwise(rng):
    x = rng.standard_normal((4, 13, 13, 67)).astype(np.float32)
    x[:, ::3] = np.round(x[:, ::3])
    fastcnn._ext.force_simd(0)
    try:
        portable = _all_kernels(x, (3, 3), (2, 2), "same")
    finally:
        fastcnn._ext.force_simd(-1)
    fast = _all_kernels(x, (3, 3), (2, 2), "same")
    for a, b in zip(portable, fast):
        assert a.tobytes() == b.tobytes()


def test_float64_and_noncontiguous_input_equal_float32(rng):
    base = rng.standard_normal((3, 9, 11, 6)).astype(np.float32)
    x64 = base.astype(np.float64)
    nonc = np.asfortranarray(base)
    strided = np.empty((3, 9, 11, 12), np.float32)
    strided[..., ::2] = base
    strided = strided[..., ::2]
    ref = _all_kernels(base, (3, 3), (2, 2), "same")
    for x in (x64, nonc, strided):
        assert not (x.dtype == np.float32 and x.flags.c_contiguous)
        y, idx = ops.max_pool2d(x, 3, 2, "same", return_indices=True)
        np.testing.assert_array_equal(y, ref[0])
        np.testing.assert_array_equal(idx, ref[1])
        np.testing.assert_array_equal(ops.avg_pool2d(x, 3, 2, "same"), ref[4])
        np.testing.assert_array_equal(ops.global_avg_pool2d(x), ref[6])
    dy = np.random.default_rng(7).standard_normal(ref[0].shape)
    np.testing.assert_array_equal(ops.max_pool2d_backward(dy, ref[1].astype(np.int64),
                                                          base.shape), ref[3])
    np.testing.assert_array_equal(
        ops.avg_pool2d_backward(np.asfortranarray(dy), base.shape, 3, 2, "same"), ref[5])


def test_preallocated_outputs_are_filled_and_returned(rng):
    x = rng.standard_normal((2, 6, 6, 5)).astype(np.float32)
    out = np.empty((2, 3, 3, 5), np.float32)
    ind = np.empty((2, 3, 3, 5), np.int32)
    y, idx = ops.max_pool2d(x, out=out, indices=ind, return_indices=True)
    assert y is out and idx is ind
    ref_y, ref_i = ref_max_pool(x, (2, 2), (2, 2), "valid")
    np.testing.assert_array_equal(out, ref_y.astype(np.float32))
    np.testing.assert_array_equal(ind, ref_i)
    ind2 = np.full_like(ind, -1)
    assert ops.max_pool2d(x, indices=ind2) is not None
    np.testing.assert_array_equal(ind2, ref_i)   # a given indices array is always filled
    dx = np.full(x.shape, 9.0, np.float32)       # stale values must be overwritten
    assert ops.max_pool2d_backward(np.ones_like(out), ind, x.shape, dx=dx) is dx
    assert dx.sum() == out.size
    dx[...] = 9.0
    assert ops.avg_pool2d_backward(np.ones_like(out), x.shape, dx=dx) is dx
    assert_close(dx, np.full(x.shape, 0.25), 1e-7, 1e-7)
    o = np.empty((2, 3, 3, 5), np.float32)
    assert ops.avg_pool2d(x, out=o) is o
    g = np.empty((2, 5), np.float32)
    assert ops.global_avg_pool2d(x, out=g) is g
    dxg = np.full(x.shape, 9.0, np.float32)
    assert ops.global_avg_pool2d_backward(g, x.shape, dx=dxg) is dxg


def test_empty_batch_is_fine():
    x = np.zeros((0, 4, 4, 3), np.float32)
    y, idx = ops.max_pool2d(x, return_indices=True)
    assert y.shape == (0, 2, 2, 3) and idx.shape == (0, 2, 2, 3)
    assert ops.max_pool2d_backward(y, idx, x.shape).shape == x.shape
    assert ops.avg_pool2d(x).shape == (0, 2, 2, 3)
    assert ops.avg_pool2d_backward(y, x.shape).shape == x.shape
    assert ops.global_avg_pool2d(x).shape == (0, 3)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.integers(1, 9),
       st.integers(1, 4), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.sampled_from(["valid", "same"]), st.integers(0, 2**32 - 1))
def test_random_geometries_match_reference(N, H, W, C, ph, pw, sh, sw, padding, seed):
    if padding == "valid" and (ph > H or pw > W):
        return
    r = np.random.default_rng(seed)
    x = r.integers(-2, 3, size=(N, H, W, C)).astype(np.float32)
    y, idx = ops.max_pool2d(x, (ph, pw), (sh, sw), padding, return_indices=True)
    ry, ridx = ref_max_pool(x, (ph, pw), (sh, sw), padding)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    dy = r.standard_normal(y.shape).astype(np.float32)
    assert_close(ops.max_pool2d_backward(dy, idx, x.shape),
                 ref_max_pool_backward(dy, ridx, x.shape), 1e-6, 1e-6)
    assert_close(ops.avg_pool2d(x, (ph, pw), (sh, sw), padding),
                 ref_avg_pool(x, (ph, pw), (sh, sw), padding), 1e-6, 1e-6)
    assert_close(ops.avg_pool2d_backward(dy, x.shape, (ph, pw), (sh, sw), padding),
                 ref_avg_pool_backward(dy, x.shape, (ph, pw), (sh, sw), padding), 1e-6, 1e-6)


# --------------------------------------------------------------------- bad input

X = np.zeros((2, 6, 6, 3), np.float32)


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(pool_size=0), ValueError, ["pool_size", ">= 1"]),
    (dict(pool_size=(2, 2, 2)), ValueError, ["pool_size", "2 ints"]),
    (dict(pool_size=2.5), ValueError, ["pool_size"]),
    (dict(strides=(1, 0)), ValueError, ["strides", ">= 1"]),
    (dict(strides=-1), ValueError, ["strides"]),
    (dict(padding="full"), ValueError, ["padding", "'valid' or 'same'"]),
    (dict(pool_size=7), ValueError, ["does not fit", "6x6", "valid"]),
    (dict(pool_size=(1, 7)), ValueError, ["does not fit"]),
])
@pytest.mark.parametrize("fn", [ops.max_pool2d, ops.avg_pool2d])
def test_bad_pool_arguments(fn, kwargs, exc, words):
    with pytest.raises(exc) as e:
        fn(X, **kwargs)
    for w in words:
        assert w in str(e.value)
    assert fn.__name__ in str(e.value)


def test_pool_larger_than_input_is_fine_with_same():
    assert ops.max_pool2d(X, 7, padding="same").shape == (2, 1, 1, 3)


@pytest.mark.parametrize("fn", [ops.max_pool2d, ops.avg_pool2d, ops.global_avg_pool2d])
def test_non_4d_input_raises(fn):
    with pytest.raises(ValueError, match="4-D"):
        fn(np.zeros((6, 6, 3), np.float32))
    with pytest.raises(TypeError):
        fn("not an array")


def test_bad_out_arrays():
    with pytest.raises(ValueError, match="shape"):
        ops.max_pool2d(X, out=np.empty((2, 3, 3, 4), np.float32))
    with pytest.raises(ValueError, match="float32"):
        ops.avg_pool2d(X, out=np.empty((2, 3, 3, 3), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.avg_pool2d(X, out=np.empty((2, 3, 3, 6), np.float32)[..., ::2])
    with pytest.raises(ValueError, match="int32"):
        ops.max_pool2d(X, indices=np.empty((2, 3, 3, 3), np.int64))
    with pytest.raises(ValueError, match="indices"):
        ops.max_pool2d(X, indices=np.empty((2, 3, 3, 2), np.int32))
    buf = np.zeros(2 * 6 * 6 * 3, np.float32)
    with pytest.raises(ValueError, match="dx must not overlap dy"):
        ops.max_pool2d_backward(buf[:54].reshape(2, 3, 3, 3), np.zeros((2, 3, 3, 3), np.int32),
                                X.shape, dx=buf.reshape(X.shape))
    with pytest.raises(ValueError, match="out must not overlap x"):
        ops.avg_pool2d(buf.reshape(X.shape), out=buf[:54].reshape(2, 3, 3, 3))


def test_bad_max_pool_backward_arguments():
    y, idx = ops.max_pool2d(X, return_indices=True)
    dy = np.ones_like(y)
    with pytest.raises(ValueError, match="input_shape"):
        ops.max_pool2d_backward(dy, idx, (2, 6, 6))
    with pytest.raises(ValueError, match=r"dy: expected shape \(3, OH, OW, 3\).*got \(2, 3"):
        ops.max_pool2d_backward(dy, idx, (3, 6, 6, 3))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, OH, OW, 4\)"):
        ops.max_pool2d_backward(dy, idx, (2, 6, 6, 4))
    with pytest.raises(ValueError, match="indices: expected the shape of dy"):
        ops.max_pool2d_backward(dy, idx[:, :2], X.shape)
    with pytest.raises(TypeError, match="integer"):
        ops.max_pool2d_backward(dy, idx.astype(np.float32), X.shape)
    with pytest.raises(TypeError, match="int32 array"):
        ops.max_pool2d_backward(dy, idx.tolist(), X.shape)
    bad = idx.copy()
    bad[1, 2, 2, 1] = 6 * 6 * 3
    with pytest.raises(ValueError, match=r"\[0, 108\)"):
        ops.max_pool2d_backward(dy, bad, X.shape)
    bad[1, 2, 2, 1] = -1
    with pytest.raises(ValueError, match=r"\[0, 108\)"):
        ops.max_pool2d_backward(dy, bad, X.shape)
    with pytest.raises(ValueError, match=r"\[0, 108\)"):
        ops.max_pool2d_backward(dy, bad.astype(np.int64) + 2**32, X.shape)


def test_bad_avg_and_global_backward_arguments():
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3, 3, 3\)"):
        ops.avg_pool2d_backward(np.zeros((2, 2, 2, 3), np.float32), X.shape)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 2, 2, 3\)"):
        ops.avg_pool2d_backward(np.zeros((2, 3, 3, 3), np.float32), X.shape, 3, padding="valid")
    with pytest.raises(ValueError, match="does not fit"):
        ops.avg_pool2d_backward(np.zeros((2, 1, 1, 3), np.float32), (2, 1, 1, 3))
    with pytest.raises(ValueError, match="input_shape"):
        ops.avg_pool2d_backward(np.zeros((2, 3, 3, 3), np.float32), (2, -6, 6, 3))
    with pytest.raises(ValueError, match=r"expected shape \(2, 3\)"):
        ops.global_avg_pool2d_backward(np.zeros((2, 4), np.float32), X.shape)
    with pytest.raises(ValueError, match="empty"):
        ops.global_avg_pool2d(np.zeros((2, 0, 3, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        ops.global_avg_pool2d_backward(np.zeros((2, 3), np.float32), (2, 3, 0, 3))
