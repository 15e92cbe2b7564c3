"""Conv2DTranspose's strided paths (csrc/conv_transpose.c): the phase decomposition and its
Winograd F(2, 2) variant, each against float64 NumPy references of the forward and of all
three gradients, on awkward shapes; finite differences; the paths bitwise at 1 and 2
threads; the portable (non-AVX2) transforms."""
import numpy as np
import pytest

import fastcnn
from fastcnn import _ext, ops
from fastcnn.ops.conv_transpose import _conv_shapes, _transpose_geometry
from conftest import assert_close, fd_grad, num_threads
from test_conv_transpose import keras_transpose_axis, ref_conv_transpose

ALGORITHMS = ("phase", "phase_winograd", "im2col", "auto")

CASES = [  # (x shape, kernel (kh, kw, filters, in), strides, padding, output_padding)
    ((3, 5, 7, 5), (3, 3, 6, 5), (2, 2), "same", None),       # Winograd, odd sizes
    ((2, 5, 6, 3), (3, 3, 4, 3), (2, 2), "valid", None),      # odd output (2H + 1)
    ((2, 4, 5, 7), (3, 3, 5, 7), (2, 2), "same", (1, 0)),
    ((2, 4, 5, 3), (3, 3, 2, 3), (2, 2), "valid", (1, 1)),
    ((1, 4, 5, 3), (3, 2, 7, 3), (3, 2), "same", (1, 1)),     # 1- and 2-tap phases
    ((2, 4, 5, 9), (4, 4, 5, 9), (2, 2), "same", (0, 1)),     # 2 taps in every phase
    ((2, 3, 3, 2), (2, 2, 3, 2), (3, 3), "valid", (2, 1)),    # phases with no taps
    ((2, 4, 4, 3), (1, 1, 5, 3), (3, 3), "valid", None),
    ((2, 5, 5, 3), (5, 5, 2, 3), (2, 2), "same", None),       # 3 taps: no Winograd
    ((2, 5, 4, 3), (3, 3, 4, 3), (2, 1), "same", None),       # stride 1 along w
    ((2, 4, 5, 3), (3, 3, 4, 3), (1, 3), "valid", (0, 2)),
    ((1, 3, 4, 2), (7, 3, 3, 2), (5, 5), "same", None),       # stride > 4: phase only
    ((9, 6, 7, 17), (3, 3, 11, 17), (2, 2), "same", None),    # several image chunks
]


def ref_conv_transpose_grads(x, k, g, strides, padding, op=None):
    """float64 (dx, dkernel, dbias) of ref_conv_transpose given dL/dy = g: the adjoint of
    its dilate, pad and correlate steps."""
    n, h, w, c = x.shape
    kh, kw, f, _ = k.shape
    ops_ = (None, None) if op is None else op
    oh, lt = keras_transpose_axis(h, kh, strides[0], padding, ops_[0])
    ow, ll = keras_transpose_axis(w, kw, strides[1], padding, ops_[1])
    d = np.zeros((n, (h - 1) * strides[0] + 1, (w - 1) * strides[1] + 1, c))
    d[:, ::strides[0], ::strides[1]] = x
    p = np.zeros((n, oh + kh - 1, ow + kw - 1, c))
    hh = min(d.shape[1], p.shape[1] - lt)
    ww = min(d.shape[2], p.shape[2] - ll)
    p[:, lt:lt + hh, ll:ll + ww] = d[:, :hh, :ww]
    kf = k[::-1, ::-1]
    dp = np.zeros_like(p)
    dkf = np.zeros_like(kf)
    for t in range(kh):
        for u in range(kw):
            dp[:, t:t + oh, u:u + ow] += np.einsum("nhwf,fc->nhwc", g, kf[t, u])
            dkf[t, u] = np.einsum("nhwc,nhwf->fc", p[:, t:t + oh, u:u + ow], g)
    dd = np.zeros_like(d)
    dd[:, :hh, :ww] = dp[:, lt:lt + hh, ll:ll + ww]
    return dd[:, ::strides[0], ::strides[1]], dkf[::-1, ::-1], g.sum(axis=(0, 1, 2))


def _data(rng, x_shape, k_shape):
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = rng.standard_normal(k_shape).astype(np.float32)
    b = rng.standard_normal(k_shape[2]).astype(np.float32)
    return x, k, b


def _geometry(x, k, strides, padding, op):
    s, pads, out_hw = _transpose_geometry("test", x.shape, k.shape, strides, padding, op)
    y_shape, _ = _conv_shapes(x.shape, k.shape, out_hw)
    return s, pads, y_shape


def _forward(x, k, b, s, pads, y_shape, relu, algorithm):
    y = np.empty(y_shape, np.float32)
    _ext.conv2d_transpose_forward(x, k, b, s, pads, relu, y, None, algorithm)
    return y


def _backward(g, x, k, s, pads, winograd, need_dx=True):
    dx = np.empty_like(x) if need_dx else None
    dk, db = np.empty_like(k), np.empty(k.shape[2], np.float32)
    _ext.conv2d_transpose_phase_backward(g, x, k, s, pads, dx, dk, db, winograd)
    return dx, dk, db


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", CASES)
def test_every_forward_algorithm_matches_reference(rng, x_shape, k_shape, strides, padding,
                                                   op):
    x, k, b = _data(rng, x_shape, k_shape)
    s, pads, y_shape = _geometry(x, k, strides, padding, op)
    ref = ref_conv_transpose(x.astype(np.float64), k.astype(np.float64), b, strides, padding,
                             op)
    for algorithm in ALGORITHMS:
        y = _forward(x, k, b, s, pads, y_shape, False, algorithm)
        assert_close(y, ref, 1e-5, 1e-5, "forward " + algorithm)
        relu = _forward(x, k, b, s, pads, y_shape, True, algorithm)
        np.testing.assert_array_equal(relu, np.maximum(y, 0), err_msg=algorithm)
        nob = _forward(x, k, None, s, pads, y_shape, False, algorithm)
        assert_close(nob, ref - b, 1e-5, 1e-5, "no bias " + algorithm)


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", CASES)
def test_backward_both_paths_match_reference(rng, x_shape, k_shape, strides, padding, op):
    x, k, _ = _data(rng, x_shape, k_shape)
    s, pads, y_shape = _geometry(x, k, strides, padding, op)
    g = rng.standard_normal(y_shape).astype(np.float32)
    rdx, rdk, rdb = ref_conv_transpose_grads(x.astype(np.float64), k.astype(np.float64),
                                             g.astype(np.float64), strides, padding, op)
    for winograd in (False, True):
        dx, dk, db = _backward(g, x, k, s, pads, winograd)
        assert_close(dx, rdx, 1e-5, 1e-5, "dx winograd=%s" % winograd)
        assert_close(dk, rdk, 1e-5, 1e-5, "dkernel winograd=%s" % winograd)
        assert_close(db, rdb, 1e-5, 1e-5, "dbias winograd=%s" % winograd)
        _, dk2, db2 = _backward(g, x, k, s, pads, winograd, need_dx=False)
        assert dk2.tobytes() == dk.tobytes() and db2.tobytes() == db.tobytes()


def test_reference_gradients_match_finite_differences(rng):
    """The adjoint reference above is itself the gradient of ref_conv_transpose."""
    x, k, _ = _data(rng, (2, 3, 4, 3), (3, 3, 2, 3))
    for strides, padding, op in (((2, 2), "valid", (1, 0)), ((3, 2), "same", None)):
        y_shape = ops.conv2d_transpose_output_shape(x.shape, k.shape, strides, padding, op)
        g = rng.standard_normal(y_shape)

        def loss(x_=x, k_=k):
            return float(np.sum(ref_conv_transpose(np.asarray(x_, np.float64),
                                                   np.asarray(k_, np.float64), None,
                                                   strides, padding, op) * g))

        rdx, rdk, _ = ref_conv_transpose_grads(x.astype(np.float64), k.astype(np.float64),
                                               g, strides, padding, op)
        assert_close(rdx, fd_grad(lambda v: loss(x_=v), x), 1e-6, 1e-6, "dx")
        assert_close(rdk, fd_grad(lambda v: loss(k_=v), k), 1e-6, 1e-6, "dkernel")


@pytest.mark.parametrize("strides,padding,op", [((2, 2), "same", None),
                                                ((2, 2), "valid", (1, 0)),
                                                ((3, 2), "same", (2, 1))])
def test_winograd_gradients_finite_differences(rng, strides, padding, op):
    """The Winograd backward against float64 finite differences of the reference forward,
    on odd sizes."""
    x, k, b = _data(rng, (2, 3, 5, 3), (3, 3, 4, 3))
    s, pads, y_shape = _geometry(x, k, strides, padding, op)
    g = rng.standard_normal(y_shape).astype(np.float32)

    def loss(x_=x, k_=k, b_=b):
        return float(np.sum(ref_conv_transpose(np.asarray(x_, np.float64),
                                               np.asarray(k_, np.float64), b_, strides,
                                               padding, op) * g))

    dx, dk, db = _backward(g, x, k, s, pads, True)
    assert_close(dx, fd_grad(lambda v: loss(x_=v), x), 1e-5, 1e-5, "dx")
    assert_close(dk, fd_grad(lambda v: loss(k_=v), k), 1e-5, 1e-5, "dkernel")
    assert_close(db, fd_grad(lambda v: loss(b_=v), b), 1e-5, 1e-5, "dbias")


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", [
    ((9, 16, 16, 20), (3, 3, 12, 20), (2, 2), "same", None),  # 3 chunks of images
    ((7, 5, 6, 9), (3, 3, 10, 9), (2, 2), "valid", (1, 1)),
    ((6, 4, 5, 3), (5, 4, 7, 3), (2, 3), "same", None),
])
def test_paths_bitwise_1_vs_2_threads_and_simd(rng, x_shape, k_shape, strides, padding, op):
    x, k, b = _data(rng, x_shape, k_shape)
    s, pads, y_shape = _geometry(x, k, strides, padding, op)
    g = rng.standard_normal(y_shape).astype(np.float32)
    for algorithm, winograd in (("phase", False), ("phase_winograd", True)):
        res = []
        for n in (1, 2):
            with num_threads(n):
                y = _forward(x, k, b, s, pads, y_shape, True, algorithm)
                res.append((y,) + _backward(g, x, k, s, pads, winograd))
        for a, c in zip(*res):
            assert a.tobytes() == c.tobytes(), algorithm


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", [CASES[0], CASES[4], CASES[12]])
def test_portable_transforms_match_reference(rng, x_shape, k_shape, strides, padding, op):
    """With the AVX2 paths off (the GEMM's too, so no bitwise comparison with them): the
    portable Winograd transforms, tails included (channels not a multiple of 8)."""
    x, k, b = _data(rng, x_shape, k_shape)
    s, pads, y_shape = _geometry(x, k, strides, padding, op)
    g = rng.standard_normal(y_shape).astype(np.float32)
    ref = ref_conv_transpose(x.astype(np.float64), k.astype(np.float64), b, strides, padding,
                             op)
    rdx, rdk, rdb = ref_conv_transpose_grads(x.astype(np.float64), k.astype(np.float64),
                                             g.astype(np.float64), strides, padding, op)
    fastcnn._ext.force_simd(0)
    try:
        y = _forward(x, k, b, s, pads, y_shape, False, "phase_winograd")
        dx, dk, db = _backward(g, x, k, s, pads, True)
    finally:
        fastcnn._ext.force_simd(-1)
    assert_close(y, ref, 1e-5, 1e-5, "forward")
    assert_close(dx, rdx, 1e-5, 1e-5, "dx")
    assert_close(dk, rdk, 1e-5, 1e-5, "dkernel")
    assert_close(db, rdb, 1e-5, 1e-5, "dbias")


@pytest.mark.parametrize("cin,cout,winograd", [(48, 33, True), (31, 40, False),
                                               (8, 7, False)])
def test_auto_takes_winograd_with_enough_channels(rng, cin, cout, winograd):
    """3x3 stride 2 with >= 32 channels both sides: the op's forward and backward give the
    Winograd path's bits; else the input-gradient (im2col) path's."""
    x, k, b = _data(rng, (5, 6, 5, cin), (3, 3, cout, cin))
    s, pads, y_shape = _geometry(x, k, (2, 2), "same", None)
    g = rng.standard_normal(y_shape).astype(np.float32)
    assert _ext.conv2d_transpose_winograd_preferred(y_shape, k.shape, s, pads,
                                                    x.shape[1:3]) == winograd
    y = ops.conv2d_transpose(x, k, b, (2, 2), "same")
    expect = _forward(x, k, b, s, pads, y_shape, False,
                      "phase_winograd" if winograd else "im2col")
    assert y.tobytes() == expect.tobytes()
    got = ops.conv2d_transpose_backward(g, x, k, (2, 2), "same")
    if winograd:
        expect = _backward(g, x, k, s, pads, True)
    else:
        expect = (np.empty_like(x), np.empty_like(k), np.empty(cout, np.float32))
        _ext.conv2d_forward(g, k, None, s, pads, False, expect[0], None)
        _ext.conv2d_backward_kernel(x, g, s, pads, expect[1], None)
        _ext.conv2d_backward_bias(g, expect[2])
    for a, c in zip(got, expect):
        assert a.tobytes() == c.tobytes()
