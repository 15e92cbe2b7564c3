"""conv2d forward/backward (fastcnn.ops.conv) against plain NumPy references."""
import itertools
import os
import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import _ext
from fastcnn.ops import conv2d, conv2d_backward, conv2d_output_shape, conv2d_workspace_size
from conftest import assert_close, fd_grad, num_threads

# ---------------------------------------------------------------------------------------
# NumPy references (float64), written independently of fastcnn


def keras_pads(size, window, stride, padding):
    """(out, before, after) as TensorFlow/Keras: `same` puts the odd extra at the end."""
    if padding == "valid":
        return (size - window) // stride + 1, 0, 0
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def _geom(x_shape, k_shape, strides, padding):
    _, h, w, _ = x_shape
    kh, kw = k_shape[:2]
    oh, pt, pb = keras_pads(h, kh, strides[0], padding)
    ow, pl, pr = keras_pads(w, kw, strides[1], padding)
    return oh, ow, (pt, pb), (pl, pr)


def ref_conv(x, k, b=None, strides=(1, 1), padding="valid", activation=None):
    """Direct convolution: one einsum per kernel tap over the strided input windows."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    oh, ow, ph, pw = _geom(x.shape, k.shape, strides, padding)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    sh, sw = strides
    y = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            win = xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]
            y += np.einsum("nhwc,cf->nhwf", win, k[i, j])
    if b is not None:
        y += np.asarray(b, np.float64)
    if activation == "relu":
        y = np.maximum(y, 0.0)
    return y


def ref_conv_backward(dy, x, k, strides=(1, 1), padding="valid"):
    """Analytic gradients of ref_conv (without activation): (dx, dk, db)."""
    dy, x, k = (np.asarray(a, np.float64) for a in (dy, x, k))
    oh, ow, ph, pw = _geom(x.shape, k.shape, strides, padding)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)))
    dxp = np.zeros_like(xp)
    dk = np.zeros_like(k)
    sh, sw = strides
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            sl = (slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
                  slice(j, j + sw * (ow - 1) + 1, sw), slice(None))
            dk[i, j] = np.einsum("nhwc,nhwf->cf", xp[sl], dy)
            dxp[sl] += np.einsum("nhwf,cf->nhwc", dy, k[i, j])
    dx = dxp[:, ph[0]:ph[0] + x.shape[1], pw[0]:pw[0] + x.shape[2], :]
    return dx, dk, dy.sum(axis=(0, 1, 2))


def _data(rng, x_shape, k_shape, scale=1.0):
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = (rng.standard_normal(k_shape) * scale / np.sqrt(np.prod(k_shape[:3]))).astype(np.float32)
    b = rng.standard_normal(k_shape[3]).astype(np.float32)
    return x, k, b


# ---------------------------------------------------------------------------------------
# forward

_GRID = list(itertools.product((1, 3, 5), (1, 2), ("same", "valid"), (3, 7)))


@pytest.mark.parametrize("idx", range(len(_GRID)))
def test_forward_grid_matches_reference(rng, idx):
    ksize, stride, padding, c = _GRID[idx]
    n = 1 if idx % 2 == 0 else 5                      # batch 1 and a bigger batch
    use_bias, act = idx % 3 != 0, ("relu", None, "linear")[idx % 3]
    x, k, b = _data(rng, (n, 9, 7, c), (ksize, ksize, c, 6))
    b = b if use_bias else None
    y = conv2d(x, k, b, strides=stride, padding=padding, activation=act)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert y.shape == conv2d_output_shape(x.shape, k.shape, stride, padding)
    assert_close(y, ref_conv(x, k, b, (stride, stride), padding, act), 1e-5, 1e-5)


@pytest.mark.parametrize("x_shape,k_shape,strides,padding", [
    ((3, 16, 16, 64), (3, 3, 64, 64), (1, 1), "same"),   # C = F = 64
    ((2, 15, 15, 32), (3, 3, 32, 64), (1, 1), "valid"),  # the seed's second conv
    ((2, 11, 13, 64), (5, 5, 64, 7), (2, 2), "same"),
    ((4, 6, 6, 64), (3, 3, 64, 64), (1, 1), "valid"),
    ((2, 1, 1, 5), (1, 1, 5, 3), (1, 1), "valid"),      # size-1 dims
    ((2, 1, 9, 3), (1, 3, 3, 4), (1, 2), "same"),
    ((2, 5, 5, 3), (5, 5, 3, 4), (1, 1), "valid"),      # kernel covers the image (identity)
    ((1, 3, 3, 1), (3, 3, 1, 1), (1, 1), "valid"),      # ... with a single output pixel
    ((1, 1, 1, 2), (1, 1, 2, 1), (1, 1), "same"),
    ((2, 3, 4, 3), (5, 5, 3, 4), (1, 1), "same"),       # kernel larger than the input
    ((3, 8, 9, 4), (2, 3, 4, 5), (3, 2), "same"),       # kernel smaller than the stride
    ((2, 9, 9, 3), (1, 1, 3, 5), (2, 3), "valid"),
    ((1, 3, 512, 64), (3, 3, 64, 4), (1, 1), "same"),   # one line is bigger than a chunk
])
def test_forward_other_shapes(rng, x_shape, k_shape, strides, padding):
    x, k, b = _data(rng, x_shape, k_shape)
    y = conv2d(x, k, b, strides=strides, padding=padding, activation="relu")
    assert_close(y, ref_conv(x, k, b, strides, padding, "relu"), 1e-5, 1e-5)


def test_forward_batches_span_several_chunks(rng):
    """Chunks of output lines cross image boundaries; the answer must not notice."""
    x_shape, k_shape = (5, 16, 16, 64), (3, 3, 64, 8)
    lines = _ext.conv2d_chunk_lines(x_shape, k_shape, (1, 1), (1, 1), (16, 16))
    assert 1 < lines < 5 * 16 and 16 % lines != 0
    x, k, b = _data(rng, x_shape, k_shape)
    assert_close(conv2d(x, k, b, padding="same"), ref_conv(x, k, b, (1, 1), "same"))


def test_forward_out_argument_is_written_and_returned(rng):
    x, k, b = _data(rng, (2, 7, 7, 3), (3, 3, 3, 4))
    out = np.full((2, 5, 5, 4), np.nan, dtype=np.float32)
    y = conv2d(x, k, b, out=out)
    assert y is out
    assert_close(out, ref_conv(x, k, b))


# ---------------------------------------------------------------------------------------
# backward


@pytest.mark.parametrize("x_shape,k_shape,strides,padding", [
    ((2, 5, 4, 3), (3, 2, 3, 2), (1, 1), "valid"),
    ((2, 5, 4, 3), (3, 3, 3, 2), (1, 1), "same"),
    ((1, 5, 6, 2), (3, 3, 2, 3), (2, 2), "same"),
    ((2, 6, 5, 2), (2, 3, 2, 2), (2, 1), "valid"),
    ((1, 4, 4, 3), (1, 1, 3, 2), (1, 1), "valid"),
    ((1, 3, 3, 2), (5, 5, 2, 2), (1, 1), "same"),
])
def test_backward_matches_finite_differences(rng, x_shape, k_shape, strides, padding):
    x, k, b = _data(rng, x_shape, k_shape)
    oh, ow, _, _ = _geom(x_shape, k_shape, strides, padding)
    g = rng.standard_normal((x_shape[0], oh, ow, k_shape[3]))

    def loss(x_=x, k_=k, b_=b):
        return float(np.sum(ref_conv(x_, k_, b_, strides, padding) * g))

    dx, dk, db = conv2d_backward(g, x, k, strides, padding)
    fd_x = fd_grad(lambda v: loss(x_=v), x)
    fd_k = fd_grad(lambda v: loss(k_=v), k)
    fd_b = fd_grad(lambda v: loss(b_=v), b)
    assert_close(dx, fd_x, 1e-4, 1e-4, "dx")
    assert_close(dk, fd_k, 1e-4, 1e-4, "dkernel")
    assert_close(db, fd_b, 1e-4, 1e-4, "dbias")


@pytest.mark.parametrize("x_shape,k_shape,strides,padding", [
    ((4, 13, 11, 7), (3, 3, 7, 16), (1, 1), "same"),
    ((3, 15, 15, 32), (3, 3, 32, 64), (1, 1), "valid"),
    ((2, 15, 13, 7), (5, 5, 7, 6), (2, 2), "same"),
    ((3, 9, 9, 3), (3, 3, 3, 8), (2, 1), "valid"),
    ((5, 16, 16, 64), (3, 3, 64, 8), (1, 1), "same"),   # several chunks per batch
    ((1, 3, 512, 64), (3, 3, 64, 4), (1, 1), "same"),   # one output line per chunk
    ((3, 8, 9, 4), (2, 2, 4, 5), (3, 3), "same"),       # strides skip input pixels
    ((2, 9, 9, 3), (1, 1, 3, 5), (2, 2), "valid"),
    ((3, 7, 6, 5), (1, 1, 5, 4), (1, 1), "valid"),      # identity im2col (1x1)
    ((3, 7, 6, 5), (1, 1, 5, 4), (1, 1), "same"),
    ((3, 5, 4, 3), (5, 4, 3, 6), (1, 1), "valid"),      # identity im2col (whole image)
    ((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), "same"),
])
def test_backward_matches_analytic_reference(rng, x_shape, k_shape, strides, padding):
    x, k, _ = _data(rng, x_shape, k_shape)
    oh, ow, _, _ = _geom(x_shape, k_shape, strides, padding)
    dy = rng.standard_normal((x_shape[0], oh, ow, k_shape[3])).astype(np.float32)
    dx, dk, db = conv2d_backward(dy, x, k, strides, padding)
    rdx, rdk, rdb = ref_conv_backward(dy, x, k, strides, padding)
    assert dx.dtype == dk.dtype == db.dtype == np.float32
    assert_close(dx, rdx, 1e-5, 1e-5, "dx")
    assert_close(dk, rdk, 1e-5, 1e-5, "dkernel")
    assert_close(db, rdb, 1e-5, 1e-5, "dbias")


def test_backward_optional_outputs(rng):
    x, k, _ = _data(rng, (2, 6, 6, 3), (3, 3, 3, 4))
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    dx, dk, db = conv2d_backward(dy, x, k, need_input_grad=False, use_bias=False)
    assert dx is None and db is None
    _, rdk, _ = ref_conv_backward(dy, x, k)
    assert_close(dk, rdk)
    bufs = [np.full(s, np.nan, dtype=np.float32) for s in (x.shape, k.shape, (4,))]
    got = conv2d_backward(dy, x, k, dx=bufs[0], dkernel=bufs[1], dbias=bufs[2])
    assert all(a is b for a, b in zip(got, bufs))
    for a, r in zip(got, ref_conv_backward(dy, x, k)):
        assert_close(a, r)


def test_empty_batch(rng):
    x = np.zeros((0, 5, 5, 3), np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    assert conv2d(x, k, padding="same").shape == (0, 5, 5, 4)
    dx, dk, db = conv2d_backward(np.zeros((0, 3, 3, 4), np.float32), x, k)
    assert dx.shape == x.shape
    assert not dk.any() and not db.any()


# ---------------------------------------------------------------------------------------
# determinism, dtypes, layouts, SIMD paths, workspace

_DET_CASES = [
    ((6, 32, 32, 3), (3, 3, 3, 32), (1, 1), "valid"),   # the seed's first conv
    ((5, 16, 16, 64), (3, 3, 64, 8), (1, 1), "same"),   # several chunks
    ((4, 13, 11, 7), (5, 5, 7, 16), (2, 2), "same"),
    ((1, 3, 512, 64), (3, 3, 64, 4), (1, 1), "same"),   # one line per chunk
    ((2, 9, 9, 5), (3, 3, 5, 4), (2, 2), "same"),       # fewer images than threads (at 3)
    ((1, 9, 8, 5), (3, 3, 5, 4), (1, 1), "same"),
    ((3, 7, 6, 5), (1, 1, 5, 4), (1, 1), "valid"),      # identity im2col
]


@pytest.mark.skipif(not fastcnn.config()["openmp"], reason="serial build")
@pytest.mark.parametrize("case", range(len(_DET_CASES)))
def test_bitwise_identical_at_1_and_2_threads(rng, case):
    x_shape, k_shape, strides, padding = _DET_CASES[case]
    x, k, b = _data(rng, x_shape, k_shape)
    oh, ow, _, _ = _geom(x_shape, k_shape, strides, padding)
    dy = rng.standard_normal((x_shape[0], oh, ow, k_shape[3])).astype(np.float32)
    results = []
    for t in (1, 2, 3):
        with num_threads(t):
            y = conv2d(x, k, b, strides, padding, activation="relu")
            results.append((y,) + conv2d_backward(dy, x, k, strides, padding))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_float64_and_noncontiguous_inputs_give_the_float32_answer(rng):
    x, k, b = _data(rng, (3, 9, 8, 5), (3, 3, 5, 4))
    dy = rng.standard_normal((3, 5, 4, 4)).astype(np.float32)
    y = conv2d(x, k, b, 2, "same")
    grads = conv2d_backward(dy, x, k, 2, "same")
    # non-contiguous views holding the same values
    x_nc = np.zeros((3, 18, 8, 5), np.float32)[:, ::2]
    x_nc[...] = x
    k_f = np.asfortranarray(k)
    dy_nc = np.zeros((3, 5, 4, 8), np.float32)[..., ::2]
    dy_nc[...] = dy
    assert not x_nc.flags.c_contiguous and not k_f.flags.c_contiguous
    for xs, ks, bs, dys in [(x.astype(np.float64), k.astype(np.float64), b.astype(np.float64),
                             dy.astype(np.float64)),
                            (x_nc, k_f, b, dy_nc),
                            (x.tolist(), k.tolist(), b.tolist(), dy.tolist())]:
        np.testing.assert_array_equal(conv2d(xs, ks, bs, 2, "same"), y)
        for a, r in zip(conv2d_backward(dys, xs, ks, 2, "same"), grads):
            np.testing.assert_array_equal(a, r)


def test_portable_path_matches_default(rng):
    x, k, b = _data(rng, (3, 15, 15, 32), (3, 3, 32, 64))
    dy = rng.standard_normal((3, 13, 13, 64)).astype(np.float32)
    default = (conv2d(x, k, b, activation="relu"),) + conv2d_backward(dy, x, k)
    _ext.force_simd(0)
    try:
        assert fastcnn.config()["simd"] == "generic"
        portable = (conv2d(x, k, b, activation="relu"),) + conv2d_backward(dy, x, k)
    finally:
        _ext.force_simd(-1)
    for a, p, what in zip(default, portable, ("y", "dx", "dkernel", "dbias")):
        assert_close(a, p, 1e-5, 1e-5, what)


def test_workspace_is_bounded_and_zero_for_identity():
    # chunks keep the scratch small whatever the batch size
    big = conv2d_workspace_size((1000, 32, 32, 3), (3, 3, 3, 32))
    assert 0 < big <= 2 ** 20
    assert conv2d_workspace_size((32, 32, 32, 3), (3, 3, 3, 32)) <= big
    assert conv2d_workspace_size((1000, 15, 15, 32), (3, 3, 32, 64), 1, "same") <= 2 ** 20
    assert conv2d_workspace_size((8, 7, 7, 16), (1, 1, 16, 32)) == 0
    assert conv2d_workspace_size((8, 7, 7, 16), (1, 1, 16, 32), 1, "same") == 0
    assert conv2d_workspace_size((8, 7, 7, 16), (7, 7, 16, 32)) == 0
    assert conv2d_workspace_size((8, 7, 7, 16), (1, 1, 16, 32), 2) > 0


def test_workspace_reuse_gives_identical_answers(rng):
    shape, kshape = (5, 16, 16, 64), (3, 3, 64, 8)
    ws = np.full(conv2d_workspace_size(shape, kshape, 1, "same") + 7, np.nan, np.float32)
    for trial in range(2):
        x, k, b = _data(rng, shape, kshape)
        dy = rng.standard_normal((5, 16, 16, 8)).astype(np.float32)
        fresh = (conv2d(x, k, b, padding="same"),) + conv2d_backward(dy, x, k, padding="same")
        reused = ((conv2d(x, k, b, padding="same", workspace=ws),)
                  + conv2d_backward(dy, x, k, padding="same", workspace=ws))
        for a, r in zip(fresh, reused):
            np.testing.assert_array_equal(a, r)
    # a 2-D workspace is fine too, as long as it is big enough
    ws2 = np.empty((2, ws.size // 2 + 1), np.float32)
    np.testing.assert_array_equal(conv2d(x, k, b, padding="same", workspace=ws2), fresh[0])


# ---------------------------------------------------------------------------------------
# Winograd F(2x2, 3x3) and F(4x4, 3x3): 3x3 stride-1 forward, input gradient and kernel
# gradient. Tolerance per tile size: F(4x4)'s constants (1/6, 1/24) and larger transforms
# round more (measured ~1e-5 of the largest value against ~5e-7 for F(2x2)).
_WINO_TOL = {"winograd_f2": 1e-5, "winograd_f4": 5e-5}
_WINO_ALGOS = sorted(_WINO_TOL)

# (x shape, F, padding): odd/even sizes (partial edge tiles), channel counts 7/32/64
# (vector tails), batch 1, outputs of 1 or 2 pixels per side
_WINO_CASES = [
    ((2, 15, 15, 32), 64, "valid"),    # the seed's second conv: 13x13, odd edge tiles
    ((1, 6, 6, 64), 64, "valid"),      # the seed's third conv, batch 1
    ((3, 9, 8, 7), 7, "same"),         # 7 channels: scalar tails only past 4/8 lanes
    ((2, 7, 10, 7), 32, "valid"),      # 5x8 output
    ((1, 11, 5, 64), 7, "same"),       # F = 7: partial output vectors
    ((2, 3, 3, 32), 16, "valid"),      # a single output pixel
    ((2, 4, 3, 16), 9, "valid"),       # 2x1 output
    ((1, 1, 1, 5), 3, "same"),         # 1x1 image, all padding
    ((2, 1, 6, 8), 4, "same"),         # one row
    ((3, 5, 1, 12), 20, "same"),       # one column
    ((2, 5, 4, 136), 130, "same"),     # C * F so big that the kernel gradient is one sum
]


@pytest.mark.parametrize("algo", _WINO_ALGOS)
@pytest.mark.parametrize("case", range(len(_WINO_CASES)))
def test_winograd_forward_matches_reference(rng, case, algo):
    x_shape, f, padding = _WINO_CASES[case]
    x, k, b = _data(rng, x_shape, (3, 3, x_shape[3], f))
    tol = _WINO_TOL[algo]
    for bias, act in [(b, "relu"), (None, None), (b, "linear")]:
        y = conv2d(x, k, bias, padding=padding, activation=act, algorithm=algo)
        ref = ref_conv(x, k, bias, (1, 1), padding, act)
        assert_close(y, ref, tol, tol, "%s %s" % (algo, act))
        y_gemm = conv2d(x, k, bias, padding=padding, activation=act, algorithm="im2col")
        assert_close(y, y_gemm, tol, tol, "%s vs im2col" % algo)
        if act == "linear":
            assert (y < 0).any()  # so that relu had something to clamp


@pytest.mark.parametrize("algo", _WINO_ALGOS)
def test_winograd_relu_clamps_exactly(rng, algo):
    x, k, b = _data(rng, (2, 9, 9, 16), (3, 3, 16, 24))
    lin = conv2d(x, k, b, padding="same", algorithm=algo)
    relu = conv2d(x, k, b, padding="same", activation="relu", algorithm=algo)
    np.testing.assert_array_equal(relu, np.maximum(lin, 0))
    assert (relu == 0).mean() > 0.2


@pytest.mark.parametrize("algo", _WINO_ALGOS)
@pytest.mark.parametrize("case", range(len(_WINO_CASES)))
def test_winograd_backward_matches_reference(rng, case, algo):
    x_shape, f, padding = _WINO_CASES[case]
    x, k, _ = _data(rng, x_shape, (3, 3, x_shape[3], f))
    oh, ow, _, _ = _geom(x_shape, k.shape, (1, 1), padding)
    dy = rng.standard_normal((x_shape[0], oh, ow, f)).astype(np.float32)
    dx, dk, db = conv2d_backward(dy, x, k, padding=padding, algorithm=algo)
    rdx, rdk, rdb = ref_conv_backward(dy, x, k, (1, 1), padding)
    tol = _WINO_TOL[algo]
    assert_close(dx, rdx, tol, tol, "dx")
    assert_close(dk, rdk, tol, tol, "dkernel")
    assert_close(db, rdb, 1e-5, 1e-5, "dbias")


@pytest.mark.parametrize("algo", _WINO_ALGOS)
@pytest.mark.parametrize("x_shape,f,padding", [
    ((2, 5, 6, 7), 5, "same"),
    ((1, 6, 5, 3), 4, "valid"),
    ((2, 3, 3, 2), 3, "valid"),
    ((1, 9, 10, 3), 4, "same"),        # several F(4x4) tiles, partial at the edges
])
def test_winograd_backward_matches_finite_differences(rng, x_shape, f, padding, algo):
    x, k, b = _data(rng, x_shape, (3, 3, x_shape[3], f))
    oh, ow, _, _ = _geom(x_shape, k.shape, (1, 1), padding)
    g = rng.standard_normal((x_shape[0], oh, ow, f))

    def loss(x_=x, k_=k):
        return float(np.sum(ref_conv(x_, k_, b, (1, 1), padding) * g))

    dx, dk, _ = conv2d_backward(g, x, k, padding=padding, algorithm=algo)
    assert_close(dx, fd_grad(lambda v: loss(x_=v), x), 1e-4, 1e-4, "dx")
    assert_close(dk, fd_grad(lambda v: loss(k_=v), k), 1e-4, 1e-4, "dkernel")


@pytest.mark.parametrize("algo", _WINO_ALGOS)
def test_winograd_many_pieces_and_threads(rng, algo):
    """More tiles than one workspace chunk: pieces per thread, several rounds."""
    x, k, b = _data(rng, (9, 32, 30, 32), (3, 3, 32, 32))
    m = 4 if algo == "winograd_f4" else 2
    tiles, floats_per_tile = 9 * (32 // m) * (30 // m + 1), (m + 2) ** 2 * (32 + 32)
    assert tiles * floats_per_tile > 2 * conv2d_workspace_size(x.shape, k.shape, 1, "same")
    tol = _WINO_TOL[algo]
    y = conv2d(x, k, b, padding="same", activation="relu", algorithm=algo)
    assert_close(y, ref_conv(x, k, b, (1, 1), "same", "relu"), tol, tol)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dk, _ = conv2d_backward(dy, x, k, padding="same", algorithm=algo)
    rdx, rdk, _ = ref_conv_backward(dy, x, k, (1, 1), "same")
    assert_close(dx, rdx, tol, tol)
    assert_close(dk, rdk, tol, tol)


_WINO_DET = [
    ((6, 15, 15, 32), 64, "valid"),
    ((1, 13, 11, 32), 16, "same"),     # batch 1: threads split one image's tiles
    ((3, 6, 6, 64), 64, "valid"),
    ((2, 9, 7, 7), 9, "same"),
    ((9, 32, 30, 32), 32, "same"),     # several pieces per thread
    ((3, 7, 6, 136), 130, "same"),     # kernel gradient as one sum, threads in the GEMMs
]


@pytest.mark.skipif(not fastcnn.config()["openmp"], reason="serial build")
@pytest.mark.parametrize("algo", _WINO_ALGOS)
@pytest.mark.parametrize("case", range(len(_WINO_DET)))
def test_winograd_bitwise_identical_at_1_2_3_threads(rng, case, algo):
    x_shape, f, padding = _WINO_DET[case]
    x, k, b = _data(rng, x_shape, (3, 3, x_shape[3], f))
    oh, ow, _, _ = _geom(x_shape, k.shape, (1, 1), padding)
    dy = rng.standard_normal((x_shape[0], oh, ow, f)).astype(np.float32)
    results = []
    for t in (1, 2, 3):
        with num_threads(t):
            results.append((conv2d(x, k, b, padding=padding, activation="relu",
                                   algorithm=algo),)
                           + conv2d_backward(dy, x, k, padding=padding, algorithm=algo))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("algo", _WINO_ALGOS)
@pytest.mark.parametrize("c,f", [(32, 64), (7, 9), (13, 20)])
def test_winograd_portable_path_matches_default(rng, c, f, algo):
    x, k, b = _data(rng, (2, 11, 9, c), (3, 3, c, f))
    dy = rng.standard_normal((2, 11, 9, f)).astype(np.float32)
    tol = _WINO_TOL[algo]

    def run():
        return ((conv2d(x, k, b, padding="same", activation="relu", algorithm=algo),)
                + conv2d_backward(dy, x, k, padding="same", algorithm=algo)[:2])

    default = run()
    _ext.force_simd(0)
    try:
        portable = run()
    finally:
        _ext.force_simd(-1)
    for a, p, r in zip(default, portable,
                       (ref_conv(x, k, b, (1, 1), "same", "relu"),)
                       + ref_conv_backward(dy, x, k, (1, 1), "same")[:2]):
        assert_close(p, r, tol, tol)
        assert_close(a, p, tol, tol)


@pytest.mark.parametrize("algo", _WINO_ALGOS)
def test_winograd_workspace_reuse_and_bound(rng, algo):
    shape, kshape = (4, 15, 15, 32), (3, 3, 32, 64)
    size = conv2d_workspace_size(shape, kshape)
    assert conv2d_workspace_size((1000,) + shape[1:], kshape) <= 2 ** 20
    ws = np.full(size + 5, np.nan, np.float32)
    x, k, b = _data(rng, shape, kshape)
    dy = rng.standard_normal((4, 13, 13, 64)).astype(np.float32)
    fresh = (conv2d(x, k, b, algorithm=algo),) + conv2d_backward(dy, x, k, algorithm=algo)
    for _ in range(2):
        reused = ((conv2d(x, k, b, workspace=ws, algorithm=algo),)
                  + conv2d_backward(dy, x, k, workspace=ws, algorithm=algo))
        for a, r in zip(fresh, reused):
            np.testing.assert_array_equal(a, r)
    # a workspace sized for these shapes serves every algorithm
    with pytest.raises(ValueError, match="workspace: expected at least"):
        conv2d(x, k, b, workspace=ws[:size - 1], algorithm=algo)


# ---------------------------------------------------------------------------------------
# direct small-K kernels (forward and kernel gradient of layers with kh * kw * C <= 64)

_DIRECT_CASES = [
    # F = 32 (16-column tiles), 8 (one 8-column tile), 12 / 20 / 3 (portable column tails),
    # OW not a multiple of 6, stride 2, same padding, batch 1, K = 64 (the limit), K = 1
    ((3, 32, 32, 3), (3, 3, 3, 32), (1, 1), "valid"),
    ((2, 11, 9, 3), (3, 3, 3, 8), (1, 1), "same"),
    ((1, 13, 7, 3), (3, 3, 3, 12), (2, 2), "same"),
    ((2, 9, 10, 1), (3, 3, 1, 20), (2, 1), "valid"),
    ((3, 7, 5, 2), (5, 5, 2, 3), (1, 1), "same"),
    ((2, 6, 6, 4), (4, 4, 4, 16), (1, 2), "same"),
    ((2, 5, 5, 1), (1, 1, 1, 24), (1, 1), "valid"),
]


@pytest.mark.parametrize("case", range(len(_DIRECT_CASES)))
def test_direct_matches_reference(rng, case):
    x_shape, k_shape, strides, padding = _DIRECT_CASES[case]
    x, k, b = _data(rng, x_shape, k_shape)
    oh, ow, _, _ = _geom(x_shape, k_shape, strides, padding)
    dy = rng.standard_normal((x_shape[0], oh, ow, k_shape[3])).astype(np.float32)
    for act in (None, "relu"):
        y = conv2d(x, k, b, strides, padding, activation=act, algorithm="direct")
        assert_close(y, ref_conv(x, k, b, strides, padding, act), 1e-5, 1e-5, "y")
    y = conv2d(x, k, None, strides, padding, algorithm="direct")
    assert_close(y, ref_conv(x, k, None, strides, padding), 1e-5, 1e-5, "y without bias")
    dx, dk, db = conv2d_backward(dy, x, k, strides, padding, algorithm="direct")
    rdx, rdk, rdb = ref_conv_backward(dy, x, k, strides, padding)
    assert_close(dx, rdx, 1e-5, 1e-5, "dx")
    assert_close(dk, rdk, 1e-5, 1e-5, "dkernel")
    assert_close(db, rdb, 1e-5, 1e-5, "dbias")


@pytest.mark.parametrize("x_shape,k_shape,strides,padding", [
    ((2, 6, 5, 3), (3, 3, 3, 8), (1, 1), "valid"),
    ((1, 5, 6, 2), (3, 3, 2, 11), (2, 2), "same"),
])
def test_direct_backward_matches_finite_differences(rng, x_shape, k_shape, strides, padding):
    x, k, b = _data(rng, x_shape, k_shape)
    oh, ow, _, _ = _geom(x_shape, k_shape, strides, padding)
    g = rng.standard_normal((x_shape[0], oh, ow, k_shape[3]))
    _, dk, _ = conv2d_backward(g, x, k, strides, padding, algorithm="direct")
    fd_k = fd_grad(lambda v: float(np.sum(ref_conv(x, v, b, strides, padding) * g)), k)
    assert_close(dk, fd_k, 1e-4, 1e-4, "dkernel")


def test_direct_relu_maps_nan_to_zero_like_im2col():
    x = np.full((1, 4, 4, 3), np.nan, np.float32)
    k = np.ones((3, 3, 3, 16), np.float32)
    for algo in ("direct", "im2col"):
        assert not conv2d(x, k, activation="relu", algorithm=algo).any()


@pytest.mark.skipif(not fastcnn.config()["openmp"], reason="serial build")
@pytest.mark.parametrize("x_shape,k_shape", [
    ((37, 32, 32, 3), (3, 3, 3, 32)),   # many kernel-gradient parts and pieces
    ((2, 9, 9, 3), (3, 3, 3, 20)),      # fewer lines than parts
    ((1, 3, 300, 1), (3, 3, 1, 8)),
])
def test_direct_bitwise_identical_at_1_2_3_threads(rng, x_shape, k_shape):
    x, k, b = _data(rng, x_shape, k_shape)
    oh, ow, _, _ = _geom(x_shape, k_shape, (1, 1), "same")
    dy = rng.standard_normal((x_shape[0], oh, ow, k_shape[3])).astype(np.float32)
    results = []
    for t in (1, 2, 3):
        with num_threads(t):
            results.append((conv2d(x, k, b, padding="same", activation="relu",
                                   algorithm="direct"),)
                           + conv2d_backward(dy, x, k, padding="same", algorithm="direct"))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)
    rdk = ref_conv_backward(dy, x, k, (1, 1), "same")[1]
    assert_close(results[0][2], rdk, 1e-4, 1e-4, "dkernel")


def test_direct_portable_path_matches_reference(rng):
    x, k, b = _data(rng, (2, 9, 11, 3), (3, 3, 3, 20))
    dy = rng.standard_normal((2, 9, 11, 20)).astype(np.float32)
    _ext.force_simd(0)
    try:
        y = conv2d(x, k, b, padding="same", activation="relu", algorithm="direct")
        _, dk, _ = conv2d_backward(dy, x, k, padding="same", algorithm="direct")
    finally:
        _ext.force_simd(-1)
    assert_close(y, ref_conv(x, k, b, (1, 1), "same", "relu"), 1e-5, 1e-5, "y")
    assert_close(dk, ref_conv_backward(dy, x, k, (1, 1), "same")[1], 1e-5, 1e-5, "dkernel")


def test_direct_refuses_large_k(rng):
    x, k, b = _data(rng, (1, 5, 5, 8), (3, 3, 8, 4))
    with pytest.raises(ValueError, match="direct.*<= 64"):
        conv2d(x, k, b, algorithm="direct")


_CROP_CASES = [
    ((2, 15, 15, 32), (3, 3, 32, 16), "valid", (12, 12)),  # the tutorial's conv2d_1 + pool
    ((3, 9, 8, 5), (3, 3, 5, 6), "same", (8, 7)),
    ((2, 6, 7, 3), (3, 3, 3, 8), "valid", (1, 5)),
    ((1, 5, 5, 2), (3, 3, 2, 3), "same", (5, 5)),           # the full output
]


@pytest.mark.parametrize("algorithm,x_shape,k_shape,padding,crop", [
    (algo,) + case
    for algo in ("im2col", "winograd", "winograd_f2", "winograd_f4", "direct", "auto")
    for case in _CROP_CASES if algo != "direct" or np.prod(case[1][:3]) <= 64])
def test_output_size_computes_the_top_left_part(rng, algorithm, x_shape, k_shape, padding,
                                                crop):
    from fastcnn.ops.conv import conv2d_algorithm
    x, k, b = _data(rng, x_shape, k_shape)
    used = conv2d_algorithm(x_shape, k_shape, 1, padding, algorithm=algorithm).values()
    tol = _WINO_TOL["winograd_f4"] if "winograd_f4" in used else 1e-5
    oh, ow, _, _ = _geom(x_shape, k_shape, (1, 1), padding)
    y = conv2d(x, k, b, 1, padding, activation="relu", algorithm=algorithm, output_size=crop)
    full = ref_conv(x, k, b, (1, 1), padding, "relu")
    assert y.shape == (x_shape[0],) + crop + (k_shape[3],)
    assert_close(y, full[:, :crop[0], :crop[1]], tol, tol, "y")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy_full = np.zeros((x_shape[0], oh, ow, k_shape[3]), np.float32)
    dy_full[:, :crop[0], :crop[1]] = dy
    size = conv2d_workspace_size(x_shape, k_shape, 1, padding, output_size=crop)
    dx, dk, db = conv2d_backward(dy, x, k, 1, padding, algorithm=algorithm, output_size=crop,
                                 workspace=np.full(size, np.nan, np.float32))
    for got, want, what in zip((dx, dk, db), ref_conv_backward(dy_full, x, k, (1, 1), padding),
                               ("dx", "dkernel", "dbias")):
        assert_close(got, want, tol, tol, what)


def test_output_size_is_checked(rng):
    x, k, b = _data(rng, (1, 6, 6, 2), (3, 3, 2, 3))
    for bad in [(5, 4), (0, 2), (2, 5)]:
        with pytest.raises(ValueError, match="output_size"):
            conv2d(x, k, b, output_size=bad)
    with pytest.raises(ValueError, match=r"dy.*\(1, 3, 3, 3\)"):
        conv2d_backward(np.zeros((1, 4, 4, 3), np.float32), x, k, output_size=(3, 3))


# ---------------------------------------------------------------------------------------
# Conv2D(relu) + MaxPooling2D(pool == strides, valid) in one kernel (direct geometries)

from fastcnn.ops import (conv2d_relu_max_pool2d, conv2d_relu_max_pool2d_backward,  # noqa: E402
                         max_pool2d, max_pool2d_backward)

_FUSED_CASES = [
    # (x_shape, k_shape, strides, padding, pool)
    ((3, 32, 32, 3), (3, 3, 3, 32), (1, 1), "valid", (2, 2)),   # the tutorial's first pair
    ((2, 11, 9, 3), (3, 3, 3, 20), (1, 1), "same", (2, 2)),     # odd sizes: a row/col left
    ((1, 13, 7, 3), (3, 3, 3, 12), (2, 1), "same", (3, 2)),     # F tail, stride, batch 1
    ((2, 9, 10, 1), (3, 3, 1, 8), (1, 2), "valid", (1, 1)),
    ((2, 8, 8, 4), (4, 4, 4, 16), (1, 1), "valid", (5, 5)),     # K = 64, one window
]


def _fused_data(rng, case):
    x_shape, k_shape, strides, padding, pool = case
    x, k, b = _data(rng, x_shape, k_shape)
    x[0, :3] = 0.25  # flat regions: exact ties and all-zero (ReLU'd) windows
    return x, k, b


@pytest.mark.parametrize("case", range(len(_FUSED_CASES)))
def test_fused_conv_relu_max_pool_forward_is_conv_then_pool(rng, case):
    x_shape, k_shape, strides, padding, pool = _FUSED_CASES[case]
    x, k, b = _fused_data(rng, _FUSED_CASES[case])
    z = conv2d(x, k, b, strides, padding, activation="relu", algorithm="direct")
    y_ref, i_ref = max_pool2d(z, pool, return_indices=True)
    y, idx = conv2d_relu_max_pool2d(x, k, b, strides, padding, pool)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, i_ref)
    y2, _ = conv2d_relu_max_pool2d(x, k, None, strides, padding, pool)
    assert_close(y2, max_pool2d(ref_conv(x, k, None, strides, padding, "relu"), pool), 1e-5,
                 1e-5, "y without bias")


@pytest.mark.parametrize("case", range(len(_FUSED_CASES)))
def test_fused_conv_relu_max_pool_backward_matches_references(rng, case):
    x_shape, k_shape, strides, padding, pool = _FUSED_CASES[case]
    x, k, b = _fused_data(rng, _FUSED_CASES[case])
    y, idx = conv2d_relu_max_pool2d(x, k, b, strides, padding, pool)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dk, db = conv2d_relu_max_pool2d_backward(g, idx, y, x, k, strides, padding, pool)
    # the same gradients through the unfused ops, and through the float64 reference
    z_shape = conv2d_output_shape(x.shape, k.shape, strides, padding)
    dz = max_pool2d_backward(g, idx, z_shape, relu_output=y)
    _, rdk, rdb = conv2d_backward(dz, x, k, strides, padding, need_input_grad=False)
    assert_close(dk, rdk, 1e-5, 1e-5, "dkernel vs unfused")
    assert_close(db, rdb, 1e-5, 1e-5, "dbias vs unfused")
    _, fdk, fdb = ref_conv_backward(dz, x, k, strides, padding)
    assert_close(dk, fdk, 1e-5, 1e-5, "dkernel vs reference")
    assert_close(db, fdb, 1e-5, 1e-5, "dbias vs reference")
    dk2, db2 = conv2d_relu_max_pool2d_backward(g, idx, y, x, k, strides, padding, pool,
                                               use_bias=False)
    assert db2 is None
    np.testing.assert_array_equal(dk2, dk)


def test_fused_conv_relu_max_pool_finite_differences(rng):
    """float64 finite differences of sum(pool(relu(conv)) * g) w.r.t. the kernel and bias."""
    x = (rng.permutation(2 * 7 * 6 * 3).reshape(2, 7, 6, 3) * 0.01 - 1.25).astype(np.float32)
    k = (rng.standard_normal((3, 3, 3, 8)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    y, idx = conv2d_relu_max_pool2d(x, k, b)
    g = rng.standard_normal(y.shape)
    dk, db = conv2d_relu_max_pool2d_backward(g.astype(np.float32), idx, y, x, k)

    def loss(k_=k, b_=b):
        z = ref_conv(x, k_, b_, (1, 1), "valid", "relu")
        pooled = z[:, :4, :4].reshape(2, 2, 2, 2, 2, 8).max(axis=(2, 4))
        return float(np.sum(pooled * g))

    assert_close(dk, fd_grad(lambda v: loss(k_=v), k), 1e-4, 1e-4, "dkernel")
    assert_close(db, fd_grad(lambda v: loss(b_=v), b), 1e-4, 1e-4, "dbias")


@pytest.mark.skipif(not fastcnn.config()["openmp"], reason="serial build")
@pytest.mark.parametrize("case", [0, 1])
def test_fused_conv_relu_max_pool_bitwise_identical_at_1_2_3_threads(rng, case):
    x_shape, k_shape, strides, padding, pool = _FUSED_CASES[case]
    x, k, b = _fused_data(rng, _FUSED_CASES[case])
    x = np.concatenate([x] * 7)  # more pooled lines than parts
    results = []
    for t in (1, 2, 3):
        with num_threads(t):
            y, idx = conv2d_relu_max_pool2d(x, k, b, strides, padding, pool)
            g = np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape)
            results.append((y, idx) + conv2d_relu_max_pool2d_backward(g, idx, y, x, k, strides,
                                                                      padding, pool))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_fused_conv_relu_max_pool_portable_path(rng):
    case = _FUSED_CASES[1]
    x, k, b = _fused_data(rng, case)
    _, _, strides, padding, pool = case
    default = conv2d_relu_max_pool2d(x, k, b, strides, padding, pool)
    g = rng.standard_normal(default[0].shape).astype(np.float32)
    default += conv2d_relu_max_pool2d_backward(g, default[1], default[0], x, k, strides,
                                               padding, pool)
    _ext.force_simd(0)
    try:
        portable = conv2d_relu_max_pool2d(x, k, b, strides, padding, pool)
        portable += conv2d_relu_max_pool2d_backward(g, portable[1], portable[0], x, k,
                                                    strides, padding, pool)
    finally:
        _ext.force_simd(-1)
    np.testing.assert_array_equal(default[1], portable[1])
    for a, p_ in zip(default, portable):
        assert_close(a, p_, 1e-5, 1e-5)


def test_fused_conv_relu_max_pool_bad_input(rng):
    x, k, b = _data(rng, (2, 8, 8, 3), (3, 3, 3, 8))
    y, idx = conv2d_relu_max_pool2d(x, k, b)
    g = np.ones(y.shape, np.float32)
    bad = idx.copy()
    bad[1, 0, 0, 0] = idx[1, 2, 2, 0]  # an element of another window
    with pytest.raises(ValueError, match="own pooling window"):
        conv2d_relu_max_pool2d_backward(g, bad, y, x, k)
    with pytest.raises(ValueError, match="kh \\* kw \\* C <= 64"):
        conv2d_relu_max_pool2d(np.zeros((1, 8, 8, 8), np.float32),
                               np.zeros((3, 3, 8, 4), np.float32))
    with pytest.raises(ValueError, match="pooling window"):
        conv2d_relu_max_pool2d(x, k, b, pool_size=(7, 7))
    with pytest.raises(ValueError, match="dy"):
        conv2d_relu_max_pool2d_backward(g[:, :2], idx, y, x, k)
    with pytest.raises(ValueError, match="indices"):
        conv2d_relu_max_pool2d(x, k, b, indices=np.empty(y.shape, np.int64))


@pytest.mark.parametrize("algo", _WINO_ALGOS)
@pytest.mark.parametrize("c,f", [(64, 64), (32, 64), (7, 9)])
def test_winograd_any_workspace_alignment_gives_the_same_bits(rng, c, f, algo):
    """The Winograd forward and input gradient pack their 16 or 36 kernels once per call
    into the workspace (read with aligned loads): a workspace at any float offset gives
    the same bits, and the answers match the reference."""
    x, k, b = _data(rng, (3, 8, 7, c), (3, 3, c, f))
    dy = rng.standard_normal((3, 8, 7, f)).astype(np.float32)
    size = conv2d_workspace_size(x.shape, k.shape, 1, "same")
    runs = []
    for offset in range(4):
        ws = np.full(size + offset, np.nan, np.float32)[offset:]
        runs.append((conv2d(x, k, b, 1, "same", "relu", workspace=ws, algorithm=algo),
                     conv2d_backward(dy, x, k, 1, "same", workspace=ws, algorithm=algo)[0]))
    for other in runs[1:]:
        for a, b_ in zip(runs[0], other):
            np.testing.assert_array_equal(a, b_)
    assert_close(runs[0][0], ref_conv(x, k, b, (1, 1), "same", "relu"), 1e-4, 1e-4, "y")
    assert_close(runs[0][1], ref_conv_backward(dy, x, k, (1, 1), "same")[0], 1e-4, 1e-4, "dx")


def test_auto_algorithm_choice():
    from fastcnn.ops.conv import conv2d_algorithm
    # the tutorial's second conv: 13x13 (or 12x12 under the pool's crop) fits 4x4 tiles
    seed2 = conv2d_algorithm((32, 15, 15, 32), (3, 3, 32, 64))
    assert set(seed2.values()) == {"winograd_f4"}
    # ... but at batch 1 the per-call kernel transforms outweigh F(4x4)'s saving
    assert set(conv2d_algorithm((1, 15, 15, 32), (3, 3, 32, 64)).values()) == {"winograd_f2"}
    # a 6x6 input gradient needs as many multiplications as im2col's 4x4 output; the 4x4
    # output is one F(4x4) tile per image, worth it from batch 128 (measured)
    assert conv2d_algorithm((32, 6, 6, 64), (3, 3, 64, 64)) == {
        "forward": "winograd_f2", "backward_input": "im2col", "backward_kernel": "winograd_f2"}
    assert conv2d_algorithm((128, 6, 6, 64), (3, 3, 64, 64)) == {
        "forward": "winograd_f4", "backward_input": "im2col", "backward_kernel": "winograd_f4"}
    # 16 x 16 channels: the kernel gradient's 16 x 16 GEMMs pay with F(4x4) tiles
    assert conv2d_algorithm((32, 16, 16, 16), (3, 3, 16, 16), 1, "same") == {
        "forward": "winograd_f4", "backward_input": "winograd_f4",
        "backward_kernel": "winograd_f4"}
    # a thinner kernel gradient GEMM (C * F < 256) stays im2col
    assert conv2d_algorithm((32, 16, 16, 16), (3, 3, 16, 8), 1, "same")[
        "backward_kernel"] == "im2col"
    # 3 input channels (the first conv): K = 27, direct forward and kernel gradient
    assert conv2d_algorithm((32, 32, 32, 3), (3, 3, 3, 32)) == {
        "forward": "direct", "backward_input": "im2col", "backward_kernel": "direct"}
    assert set(conv2d_algorithm((32, 32, 32, 3), (3, 3, 3, 32),
                                algorithm="im2col").values()) == {"im2col"}
    # K = 72 > 64: not direct
    assert "direct" not in conv2d_algorithm((8, 16, 16, 8), (3, 3, 8, 8)).values()
    # a single output pixel: 16 multiplications per tile instead of 9
    assert set(conv2d_algorithm((32, 3, 3, 64), (3, 3, 64, 64)).values()) == {"im2col"}
    # not 3x3 stride 1
    assert set(conv2d_algorithm((8, 16, 16, 32), (3, 3, 32, 32), 2, "same").values()) \
        == {"im2col"}
    assert set(conv2d_algorithm((8, 16, 16, 32), (5, 5, 32, 32)).values()) == {"im2col"}
    # forcing
    assert set(conv2d_algorithm((32, 32, 32, 3), (3, 3, 3, 32),
                                algorithm="winograd").values()) == {"winograd_f4"}
    for tile in ("winograd_f2", "winograd_f4"):
        assert set(conv2d_algorithm((1, 3, 3, 64), (3, 3, 64, 64),
                                    algorithm=tile).values()) == {tile}
    assert set(conv2d_algorithm((32, 15, 15, 32), (3, 3, 32, 64),
                                algorithm="im2col").values()) == {"im2col"}


def test_auto_uses_the_chosen_algorithm_bitwise(rng):
    """'auto' gives exactly what the algorithm conv2d_algorithm names gives."""
    from fastcnn.ops.conv import conv2d_algorithm
    for x_shape, f in [((2, 15, 15, 32), 64), ((2, 32, 32, 3), 32), ((32, 15, 15, 32), 64)]:
        x, k, b = _data(rng, x_shape, (3, 3, x_shape[3], f))
        dy = rng.standard_normal((x_shape[0], x_shape[1] - 2, x_shape[2] - 2, f))
        dy = dy.astype(np.float32)
        algos = conv2d_algorithm(x.shape, k.shape)
        np.testing.assert_array_equal(conv2d(x, k, b),
                                      conv2d(x, k, b, algorithm=algos["forward"]))
        auto = conv2d_backward(dy, x, k)
        np.testing.assert_array_equal(
            auto[0], conv2d_backward(dy, x, k, algorithm=algos["backward_input"])[0])
        np.testing.assert_array_equal(
            auto[1], conv2d_backward(dy, x, k, algorithm=algos["backward_kernel"])[1])
    # and the algorithms really are different computations
    x, k, b = _data(rng, (2, 15, 15, 32), (3, 3, 32, 64))
    ys = [conv2d(x, k, b, algorithm=a) for a in ("im2col", "winograd_f2", "winograd_f4")]
    for i in range(3):
        for j in range(i):
            assert not np.array_equal(ys[i], ys[j])


# ---------------------------------------------------------------------------------------
# Winograd conv + ReLU + 2x2 max-pool in one pass (the pool inside the output transform)

from fastcnn.ops import (conv2d_winograd_relu_max_pool2d,  # noqa: E402
                         conv2d_winograd_relu_max_pool2d_applies)

# (x shape, F, padding, output_size): F(4x4) on the tutorial's cropped 12x12 (batch 32),
# F(2x2) tiles elsewhere; channel tails (F = 13, 9), batch 1, 'same', no crop
_WPOOL_CASES = [
    ((32, 15, 15, 32), 64, "valid", (12, 12)),
    ((3, 10, 10, 32), 20, "same", None),
    ((2, 9, 9, 16), 13, "same", (8, 8)),
    ((1, 6, 6, 64), 64, "valid", None),
    ((2, 5, 7, 24), 9, "valid", (2, 4)),
    ((160, 7, 7, 16), 8, "valid", (4, 4)),
]


def _wpool_reference(x, k, b, padding, crop):
    z = conv2d(x, k, b, padding=padding, activation="relu", output_size=crop)
    return max_pool2d(z, 2, return_indices=True)


@pytest.mark.parametrize("case", range(len(_WPOOL_CASES)))
def test_winograd_relu_max_pool_is_conv_then_pool_bitwise(rng, case):
    x_shape, f, padding, crop = _WPOOL_CASES[case]
    x, k, b = _data(rng, x_shape, (3, 3, x_shape[3], f))
    assert conv2d_winograd_relu_max_pool2d_applies(x_shape, k.shape, padding, crop)
    ry, ridx = _wpool_reference(x, k, b, padding, crop)
    for simd in (-1, 0):  # the AVX2 and the portable transforms
        _ext.force_simd(simd)
        try:
            y, idx = conv2d_winograd_relu_max_pool2d(x, k, b, padding, crop)
            y2, idx2 = _wpool_reference(x, k, b, padding, crop)
        finally:
            _ext.force_simd(-1)
        np.testing.assert_array_equal(y, y2)
        np.testing.assert_array_equal(idx, idx2)
        assert_close(y, ry, 1e-4, 1e-4)
    assert (y == 0).any() and (y > 0).any()
    # no bias; preallocated outputs and workspace (filled with garbage) are honoured
    out, ind = np.full_like(y, np.nan), np.full(idx.shape, -7, np.int32)
    ws = np.full(conv2d_workspace_size(x_shape, k.shape, 1, padding, output_size=crop),
                 np.nan, np.float32)
    y3, idx3 = conv2d_winograd_relu_max_pool2d(x, k, None, padding, crop, out=out,
                                               indices=ind, workspace=ws)
    assert y3 is out and idx3 is ind
    ry3, ridx3 = _wpool_reference(x, k, None, padding, crop)
    np.testing.assert_array_equal(y3, ry3)
    np.testing.assert_array_equal(idx3, ridx3)


def test_winograd_relu_max_pool_ties_take_the_first_maximum(rng):
    """Flat images give equal conv outputs in a window (and all-negative ones relu zeros):
    the index is the first maximum in row-major window order, as max_pool2d records it."""
    x = np.ones((2, 10, 10, 16), np.float32)
    x[1] = -1.0
    k = np.full((3, 3, 16, 8), 0.01, np.float32)
    y, idx = conv2d_winograd_relu_max_pool2d(x, k, None, "valid")
    ry, ridx = _wpool_reference(x, k, None, "valid", None)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert (y[1] == 0).all()


@pytest.mark.skipif(not fastcnn.config()["openmp"], reason="serial build")
def test_winograd_relu_max_pool_bitwise_identical_at_1_2_3_threads(rng):
    x, k, b = _data(rng, (32, 15, 15, 32), (3, 3, 32, 64))
    runs = []
    for t in (1, 2, 3):
        with num_threads(t):
            runs.append(conv2d_winograd_relu_max_pool2d(x, k, b, "valid", (12, 12)))
    for y, idx in runs[1:]:
        np.testing.assert_array_equal(y, runs[0][0])
        np.testing.assert_array_equal(idx, runs[0][1])


def test_winograd_relu_max_pool_applies_and_refuses(rng):
    from fastcnn.ops.conv import conv2d_algorithm
    # im2col forward (3 -> 8 channels), 5x5 kernel, an odd output, tiles that do not fit
    assert not conv2d_winograd_relu_max_pool2d_applies((2, 8, 8, 3), (3, 3, 3, 8))
    assert not conv2d_winograd_relu_max_pool2d_applies((2, 9, 9, 16), (5, 5, 16, 8))
    assert not conv2d_winograd_relu_max_pool2d_applies((2, 9, 9, 16), (3, 3, 16, 8))  # 7x7
    assert conv2d_winograd_relu_max_pool2d_applies((2, 9, 9, 16), (3, 3, 16, 8),
                                                   output_size=(6, 6))
    # batch 32 picks F(4x4) for a 14x14 output, which is not whole 4x4 tiles
    assert conv2d_algorithm((32, 16, 16, 32), (3, 3, 32, 64))["forward"] == "winograd_f4"
    assert not conv2d_winograd_relu_max_pool2d_applies((32, 16, 16, 32), (3, 3, 32, 64))
    x, k, b = _data(rng, (2, 9, 9, 16), (3, 3, 16, 8))
    with pytest.raises(ValueError, match=r"conv output \(7, 7\) exactly"):
        conv2d_winograd_relu_max_pool2d(x, k, b)
    with pytest.raises(ValueError, match="output_size"):
        conv2d_winograd_relu_max_pool2d(x, k, b, output_size=(8, 8))
    with pytest.raises(ValueError, match="indices: expected a writeable C-contiguous int32"):
        conv2d_winograd_relu_max_pool2d(x, k, b, output_size=(6, 6),
                                        indices=np.empty((2, 3, 3, 8), np.int64))
    with pytest.raises(ValueError, match="workspace: expected at least"):
        conv2d_winograd_relu_max_pool2d(x, k, b, output_size=(6, 6),
                                        workspace=np.empty(1, np.float32))


# ---------------------------------------------------------------------------------------
# bad input


def _bad_cases():
    x = np.zeros((2, 6, 6, 3), np.float32)
    k = np.zeros((3, 3, 3, 4), np.float32)
    dy = np.zeros((2, 4, 4, 4), np.float32)
    ws_size = conv2d_workspace_size(x.shape, k.shape)
    yield "x 3-D", lambda: conv2d(x[0], k), "x (N, H, W, C): expected a 4-D array"
    yield "channels", lambda: conv2d(x, np.zeros((3, 3, 5, 4), np.float32)), \
        "kernel: expected shape (3, 3, 3, 4)"
    yield "kernel 3-D", lambda: conv2d(x, k[0]), "kernel (kh, kw, C, F): expected a 4-D"
    yield "zero kernel", lambda: conv2d(x, np.zeros((0, 3, 3, 4), np.float32)), "kh, kw, F >= 1"
    yield "zero channels", lambda: conv2d(np.zeros((2, 6, 6, 0), np.float32),
                                          np.zeros((3, 3, 0, 4), np.float32)), "H, W, C >= 1"
    yield "bias", lambda: conv2d(x, k, np.zeros(5, np.float32)), "bias: expected shape (4)"
    yield "strides", lambda: conv2d(x, k, strides=0), "strides"
    yield "strides len", lambda: conv2d(x, k, strides=(1, 2, 3)), "strides"
    yield "padding", lambda: conv2d(x, k, padding="full"), "`padding` must be 'valid' or 'same'"
    yield "activation", lambda: conv2d(x, k, activation="tanh"), "activation"
    yield "too big", lambda: conv2d(x, np.zeros((7, 3, 3, 4), np.float32)), \
        "larger than the 6x6 input"
    yield "out shape", lambda: conv2d(x, k, out=np.zeros((2, 6, 6, 4), np.float32)), \
        "out: expected shape (2, 4, 4, 4)"
    yield "out dtype", lambda: conv2d(x, k, out=np.zeros((2, 4, 4, 4))), "float32"
    yield "out F-order", lambda: conv2d(x, k, out=np.zeros((2, 4, 4, 4), np.float32, "F")), \
        "C-contiguous"
    xx = np.zeros((2, 4, 4, 3), np.float32)
    yield "out overlaps x", lambda: conv2d(xx, np.zeros((1, 1, 3, 3), np.float32), out=xx), \
        "overlap"
    yield "ws small", lambda: conv2d(x, k, workspace=np.zeros(ws_size - 1, np.float32)), \
        "workspace: expected at least %d" % ws_size
    yield "ws dtype", lambda: conv2d(x, k, workspace=np.zeros(ws_size)), \
        "workspace: expected a writeable C-contiguous float32 array"
    yield "dy shape", lambda: conv2d_backward(dy[:, :3], x, k), "dy"
    yield "dy 3-D", lambda: conv2d_backward(dy[0], x, k), "4-D"
    yield "dx shape", lambda: conv2d_backward(dy, x, k, dx=np.zeros((2, 6, 6, 4), np.float32)), \
        "dx: expected shape (2, 6, 6, 3)"
    yield "dkernel", lambda: conv2d_backward(dy, x, k, dkernel=np.zeros((3, 3, 3), np.float32)), \
        "dkernel: expected shape (3, 3, 3, 4)"
    yield "dbias", lambda: conv2d_backward(dy, x, k, dbias=np.zeros(3, np.float32)), \
        "dbias: expected shape (4,)"
    yield "dx is dy", lambda: conv2d_backward(dy, x, k, dkernel=k), "overlap"
    yield "algorithm", lambda: conv2d(x, k, algorithm="fft"), \
        "algorithm: expected one of 'auto', 'im2col', 'winograd', 'winograd_f2', " \
        "'winograd_f4', 'direct', got 'fft'"
    yield "algorithm None", lambda: conv2d(x, k, algorithm=None), "algorithm: expected"
    yield "winograd 5x5", lambda: conv2d(x, np.zeros((5, 5, 3, 4), np.float32),
                                         algorithm="winograd"), "needs a 3x3 kernel"
    yield "winograd stride", lambda: conv2d(x, k, strides=2, algorithm="winograd"), \
        "strides (1, 1), got kernel 3x3 and strides (2, 2)"
    yield "winograd_f4 5x5", lambda: conv2d(x, np.zeros((5, 5, 3, 4), np.float32),
                                            algorithm="winograd_f4"), \
        "algorithm='winograd_f4' needs a 3x3 kernel"
    yield "backward algorithm", lambda: conv2d_backward(dy, x, k, algorithm="Winograd"), \
        "conv2d_backward: algorithm"


_BAD = list(_bad_cases())


@pytest.mark.parametrize("idx", range(len(_BAD)), ids=[c[0] for c in _BAD])
def test_bad_input_raises_helpful_error(idx):
    _, call, message = _BAD[idx]
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)


def test_non_numeric_input_raises_type_error():
    with pytest.raises(TypeError, match="x"):
        conv2d([["a"]], np.zeros((1, 1, 1, 1), np.float32))
    with pytest.raises(TypeError, match="out"):
        conv2d(np.zeros((1, 2, 2, 1), np.float32), np.zeros((1, 1, 1, 1), np.float32), out=[1])


# ---------------------------------------------------------------------------------------
# the benchmark baseline must compute the same thing (else its timings mean nothing)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import numpy_baseline  # noqa: E402


@pytest.mark.parametrize("strides,padding", [((1, 1), "valid"), ((2, 1), "same")])
def test_numpy_baseline_conv_agrees(rng, strides, padding):
    x, k, b = _data(rng, (3, 9, 8, 5), (3, 3, 5, 4))
    y = numpy_baseline.conv2d_forward(x, k, b, strides, padding, "relu")
    assert_close(y, ref_conv(x, k, b, strides, padding, "relu"))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for a, r in zip(numpy_baseline.conv2d_backward(dy, x, k, strides, padding),
                    ref_conv_backward(dy, x, k, strides, padding)):
        assert_close(a, r)


def test_numpy_baseline_max_pool_agrees(rng):
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    x[0, 0, 0, 0] = x[0, 0, 1, 0] = x[0, 1, 0, 0] = 9.0   # a tie: the first maximum wins
    y, arg = numpy_baseline.max_pool2d_forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = numpy_baseline.max_pool2d_backward(dy, arg, x.shape)
    ry, rdx = np.zeros_like(y), np.zeros_like(x)
    for n, i, j, c in itertools.product(*(range(s) for s in y.shape)):
        win = x[n, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
        ry[n, i, j, c] = win.max()
        a, b_ = np.unravel_index(np.argmax(win), (2, 2))
        rdx[n, 2 * i + a, 2 * j + b_, c] = dy[n, i, j, c]
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(dx, rdx)
    assert dx[0, 0, 0, 0] == dy[0, 0, 0, 0] and dx[0, 0, 1, 0] == 0


# The bound (inference) forms of both fused conv + pool kernels skip the argmax indices
# (no index stores): the pooled values must be the indexed kernels' bits.

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("simd", [-1, 0])
def test_fused_conv_pool_values_only_equal_the_indexed_kernels(rng, threads, simd):
    from fastcnn.ops import bind_conv2d_relu_max_pool2d, bind_conv2d_winograd_relu_max_pool2d
    _ext.force_simd(simd)
    try:
        with num_threads(threads):
            for case in _FUSED_CASES:
                x_shape, k_shape, strides, padding, pool = case
                x, k, b = _fused_data(rng, case)
                x = np.concatenate([x] * 5)  # above the parallel threshold
                y, _ = conv2d_relu_max_pool2d(x, k, b, strides, padding, pool)
                run, out = bind_conv2d_relu_max_pool2d(x.shape, k, b, strides, padding, pool)
                out.fill(np.nan)
                np.testing.assert_array_equal(run(x), y, err_msg=str(case))
            for x_shape, f, padding, crop in _WPOOL_CASES:
                x, k, b = _data(rng, x_shape, (3, 3, x_shape[3], f))
                y, _ = conv2d_winograd_relu_max_pool2d(x, k, b, padding, crop)
                run, out = bind_conv2d_winograd_relu_max_pool2d(x.shape, k, b, padding, crop)
                out.fill(np.nan)
                np.testing.assert_array_equal(run(x), y, err_msg=str((x_shape, f)))
    finally:
        _ext.force_simd(-1)
