"""Depthwise kernel paths by shape: edge pixels, interior pixel blocks of every width,
8-lane blocks and single lanes, the constant-geometry paths (3-wide windows, stride 1 or 2)
and the run-time one, against float64 NumPy references; bitwise 1 vs 2 threads and portable
vs SIMD on the same shapes."""
import numpy as np
import pytest

import fastcnn
from fastcnn import ops
from conftest import assert_close, num_threads, streaming_stores
from test_depthwise import _pads, ref_depthwise

# (x shape, kernel shape, strides, padding, dilation): widths 1..21 cover every interior
# block length; 8, 16, 19, 24 and 40 channels mix 8-lane blocks with single lanes
SHAPES = [
    ((1, 4, 3, 8), (3, 3, 8, 1), (1, 1), "same", (1, 1)),
    ((2, 5, 1, 16), (3, 3, 16, 1), (1, 1), "same", (1, 1)),
    ((2, 9, 11, 19), (3, 3, 19, 1), (1, 1), "same", (1, 1)),
    ((1, 6, 21, 24), (3, 3, 24, 1), (1, 1), "same", (1, 1)),
    ((2, 9, 11, 19), (3, 3, 19, 1), (2, 2), "same", (1, 1)),
    ((1, 8, 20, 16), (3, 3, 16, 1), (2, 2), "same", (1, 1)),
    ((2, 9, 10, 19), (3, 3, 19, 1), (2, 1), "valid", (1, 1)),
    ((1, 7, 17, 40), (3, 3, 40, 1), (1, 1), "valid", (1, 1)),
    ((2, 12, 13, 24), (5, 5, 24, 1), (1, 1), "same", (1, 1)),
    ((1, 12, 14, 16), (3, 3, 16, 1), (1, 1), "same", (2, 2)),
    ((1, 9, 12, 16), (3, 2, 16, 1), (1, 3), "same", (1, 1)),
    ((2, 6, 7, 8), (1, 1, 8, 1), (1, 1), "valid", (1, 1)),
    ((1, 5, 18, 16), (2, 3, 16, 1), (1, 1), "same", (1, 1)),
    ((2, 7, 9, 16), (3, 3, 16, 2), (1, 1), "same", (1, 1)),
]


def _grads_ref(dy, x, k, s, pad, d):
    """float64 dx and dkernel of sum(depthwise(x, k) * dy): the forward's taps, adjoint."""
    x, k, dy = (np.asarray(a, np.float64) for a in (x, k, dy))
    kh, kw, c, m = k.shape
    n, oh, ow, _ = dy.shape
    (sh, sw), (dh, dw) = s, d
    _, pt, pb = _pads(x.shape[1], (kh - 1) * dh + 1, sh, pad)
    _, pl, pr = _pads(x.shape[2], (kw - 1) * dw + 1, sw, pad)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dxp = np.zeros_like(xp)
    dym = dy.reshape(n, oh, ow, c, m)
    dk = np.zeros_like(k)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            dk[i, j] = np.einsum("nhwc,nhwcm->cm", xp[:, rows, cols], dym)
            dxp[:, rows, cols] += np.einsum("nhwcm,cm->nhwc", dym, k[i, j])
    return dxp[:, pt:pt + x.shape[1], pl:pl + x.shape[2]], dk


@pytest.mark.parametrize("xs,ks,s,pad,d", SHAPES)
def test_paths_match_reference(rng, xs, ks, s, pad, d):
    x = rng.standard_normal(xs).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    b = rng.standard_normal(ks[2] * ks[3]).astype(np.float32)
    want = ref_depthwise(x, k, b, s, pad, d)
    assert_close(ops.depthwise_conv2d(x, k, b, s, pad, d), want, what="forward")
    assert_close(ops.depthwise_conv2d(x, k, b, s, pad, d, activation="relu"),
                 np.maximum(want, 0), what="forward relu")
    dy = rng.standard_normal(want.shape).astype(np.float32)
    dx, dk, db = ops.depthwise_conv2d_backward(dy, x, k, s, pad, d)
    wdx, wdk = _grads_ref(dy, x, k, s, pad, d)
    assert_close(dx, wdx, what="dx")
    assert_close(dk, wdk, what="dkernel")
    assert_close(db, dy.astype(np.float64).sum((0, 1, 2)), what="dbias")
    # without the bias gradient, and into preallocated outputs holding garbage
    out = [np.full(a.shape, np.nan, np.float32) for a in (dx, dk)]
    got = ops.depthwise_conv2d_backward(dy, x, k, s, pad, d, use_bias=False, dx=out[0],
                                        dkernel=out[1])
    assert got[2] is None
    assert got[0].tobytes() == dx.tobytes() and got[1].tobytes() == dk.tobytes()


@pytest.mark.parametrize("xs,ks,s,pad,d", SHAPES[2:6])
def test_paths_bitwise_threads_and_portable(rng, xs, ks, s, pad, d):
    x = rng.standard_normal((7,) + xs[1:]).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    b = rng.standard_normal(ks[2] * ks[3]).astype(np.float32)
    dy = rng.standard_normal(ops.depthwise_conv2d_output_shape(x.shape, ks, s, pad, d))
    dy = dy.astype(np.float32)

    def run():
        return [ops.depthwise_conv2d(x, k, b, s, pad, d, activation="relu")] + list(
            ops.depthwise_conv2d_backward(dy, x, k, s, pad, d))

    with num_threads(1):
        one = run()
    with num_threads(2):
        two = run()
    fastcnn._ext.force_simd(0)
    try:
        slow = run()
    finally:
        fastcnn._ext.force_simd(-1)
    for a, b_, c in zip(one, two, slow):
        assert a.tobytes() == b_.tobytes() == c.tobytes()


def _misaligned(shape):
    """A C-contiguous float32 array of NaNs starting 4 bytes past a 16-byte boundary."""
    n = int(np.prod(shape))
    buf = np.full(n + 8, np.nan, np.float32)
    off = (-(buf.ctypes.data // 4) + 1) % 4
    return buf[off:off + n].reshape(shape)


@pytest.mark.parametrize("xs,ks,s,pad,d", SHAPES)
def test_streamed_outputs_bitwise_as_cached(rng, xs, ks, s, pad, d):
    """Large outputs go out line by line with streaming stores: the same bits as in place,
    into aligned and misaligned outputs, at 1 and 2 threads."""
    x = rng.standard_normal(xs).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    b = rng.standard_normal(ks[2] * ks[3]).astype(np.float32)
    dy = rng.standard_normal(ops.depthwise_conv2d_output_shape(x.shape, ks, s, pad, d))
    dy = dy.astype(np.float32)

    def run():
        y = ops.depthwise_conv2d(x, k, b, s, pad, d, activation="relu",
                                 out=_misaligned(dy.shape))
        return [y, ops.depthwise_conv2d(x, k, b, s, pad, d),
                ops.depthwise_conv2d_backward(dy, x, k, s, pad, d, dx=_misaligned(x.shape))[0]]

    with streaming_stores(False):
        want = run()
    for n in (1, 2):
        with streaming_stores(True), num_threads(n):
            got = run()
        for a, w in zip(got, want):
            assert a.tobytes() == w.tobytes()


def test_streaming_policy_scales_with_threads():
    """6 MiB per thread, counting at least two threads."""
    for n in (1, 2):
        with num_threads(n):
            assert fastcnn._ext.stream_output(12 << 20)
            assert not fastcnn._ext.stream_output((12 << 20) - 4)
    with num_threads(16):
        assert not fastcnn._ext.stream_output(64 << 20)
        assert fastcnn._ext.stream_output(96 << 20)
    with num_threads(2):
        with streaming_stores(True):
            assert fastcnn._ext.stream_output(4)
        with streaming_stores(False):
            assert not fastcnn._ext.stream_output(64 << 20)


@pytest.mark.parametrize("xs,ks,s,pad,d", SHAPES + [
    ((3, 30, 5, 8), (3, 3, 8, 1), (1, 1), "same", (1, 1)),      # several lines per block
    ((5, 17, 9, 11), (3, 3, 11, 1), (1, 1), "same", (2, 2))])   # single lanes, dilated
def test_one_pass_backward_bitwise_as_two_passes(rng, xs, ks, s, pad, d):
    """_ext.depthwise_backward (one pass over dy where the shapes allow) gives the bits of
    the input-gradient and kernel-gradient kernels run one after the other, with and
    without the bias gradient, streamed or not, at 1 and 2 threads."""
    ext = fastcnn._ext
    x = rng.standard_normal(xs).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    dy = rng.standard_normal(ops.depthwise_conv2d_output_shape(x.shape, ks, s, pad, d))
    dy = dy.astype(np.float32)
    _, pt, _ = _pads(xs[1], (ks[0] - 1) * d[0] + 1, s[0], pad)
    _, pl, _ = _pads(xs[2], (ks[1] - 1) * d[1] + 1, s[1], pad)
    geo = (tuple(s), tuple(d), (pt, pl))
    q = ks[2] * ks[3]
    want = [np.empty_like(x), np.empty_like(k), np.empty(q, np.float32)]
    with streaming_stores(False):
        ext.depthwise_backward_input(dy, k, *geo, want[0])
        ext.depthwise_backward_kernel(dy, x, *geo, want[1], want[2])
    for n in (1, 2):
        for stream in (False, True):
            got = [np.full(a.shape, np.nan, np.float32) for a in want]
            with num_threads(n), streaming_stores(stream):
                ext.depthwise_backward(dy, x, k, *geo, got[0], got[1], got[2])
                nob = [np.full(a.shape, np.nan, np.float32) for a in want[:2]]
                ext.depthwise_backward(dy, x, k, *geo, nob[0], nob[1], None)
            for a, w in zip(got + nob, want + want[:2]):
                assert a.tobytes() == w.tobytes()
