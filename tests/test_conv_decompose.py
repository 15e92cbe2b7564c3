"""Dilated / grouped Conv2D run as plain convolutions (ops/conv_decompose.py): float64
NumPy and PyTorch references, finite differences, bitwise 1 vs 2 threads, the layouts."""
import numpy as np
import pytest

from fastcnn import _ext, ops
from fastcnn.ops import conv_decompose
from conftest import assert_close, fd_grad, num_threads
from test_depthwise import _pads, ref_conv

# (x shape, kernel shape, strides, padding, dilation, groups): all take a decomposed path
# (stride-1 dilation: sub-images; groups with >= 8 channels a group: one conv per group);
# wide enough that the plain kernels pick Winograd for several of them.
CASES = [
    ((2, 13, 11, 17), (3, 3, 17, 19), (1, 1), "same", (2, 2), 1),
    ((3, 12, 15, 16), (3, 3, 16, 16), (1, 1), "valid", (3, 2), 1),
    ((2, 9, 10, 24), (3, 2, 24, 9), (1, 1), "same", (2, 1), 1),
    ((2, 11, 9, 27), (3, 3, 9, 30), (1, 1), "same", (1, 1), 3),
    ((2, 11, 13, 32), (3, 3, 16, 32), (2, 2), "same", (1, 1), 2),
    ((1, 10, 9, 20), (1, 1, 10, 16), (1, 1), "valid", (1, 1), 2),
    ((2, 12, 11, 36), (3, 3, 12, 27), (1, 1), "same", (2, 2), 3),
    ((2, 9, 10, 20), (2, 4, 20, 18), (1, 1), "same", (2, 3), 1),
    ((3, 14, 13, 16), (3, 3, 16, 24), (1, 1), "same", (3, 2), 1),
]


def _applies(xs, ks, s, d, g):
    return (conv_decompose.dilated_applies(s, d)
            or (d == (1, 1) and conv_decompose.grouped_applies(xs, ks, g))
            or (d == s == (1, 1) and ks[:2] == (3, 3) and g > 1))


@pytest.mark.parametrize("xs,ks,s,pad,d,g", CASES)
def test_decomposed_conv2d_matches_references(rng, xs, ks, s, pad, d, g):
    assert _applies(xs, ks, s, d, g)
    x = rng.standard_normal(xs).astype(np.float32)
    k = (rng.standard_normal(ks) / np.sqrt(ks[0] * ks[1] * ks[2])).astype(np.float32)
    b = rng.standard_normal(ks[3]).astype(np.float32)
    want = ref_conv(x, k, b, s, pad, d, g)
    y = ops.conv2d(x, k, b, strides=s, padding=pad, dilation_rate=d, groups=g)
    assert y.shape == want.shape
    assert_close(y, want, rtol=1e-5, atol=1e-5)
    assert_close(ops.conv2d(x, k, b, s, pad, "relu", dilation_rate=d, groups=g),
                 np.maximum(want, 0), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dk, db = ops.conv2d_backward(dy, x, k, s, pad, dilation_rate=d, groups=g)
    torch = pytest.importorskip("torch")
    X = torch.tensor(x.astype(np.float64), requires_grad=True)
    K = torch.tensor(k.astype(np.float64), requires_grad=True)
    _, pt, pb = _pads(xs[1], (ks[0] - 1) * d[0] + 1, s[0], pad)
    _, pl, pr = _pads(xs[2], (ks[1] - 1) * d[1] + 1, s[1], pad)
    Xp = torch.nn.functional.pad(X.permute(0, 3, 1, 2), (pl, pr, pt, pb))
    Y = torch.nn.functional.conv2d(Xp, K.permute(3, 2, 0, 1), stride=s, dilation=d, groups=g)
    (Y.permute(0, 2, 3, 1) * torch.tensor(dy.astype(np.float64))).sum().backward()
    assert_close(dx, X.grad.numpy(), rtol=1e-5, atol=1e-5, what="dx")
    assert_close(dk, K.grad.numpy(), rtol=1e-5, atol=1e-5, what="dkernel")
    assert_close(db, dy.astype(np.float64).sum((0, 1, 2)), rtol=1e-5, atol=1e-5, what="dbias")
    # only dkernel: the same kernel gradient
    _, dk2, _ = ops.conv2d_backward(dy, x, k, s, pad, need_input_grad=False, use_bias=False,
                                    dilation_rate=d, groups=g)
    assert dk2.tobytes() == dk.tobytes()


@pytest.mark.parametrize("xs,ks,s,pad,d,g", [
    ((1, 7, 6, 8), (3, 3, 8, 8), (1, 1), "same", (2, 2), 1),
    ((1, 6, 7, 8), (2, 3, 8, 9), (1, 1), "valid", (2, 3), 1),
    ((2, 5, 5, 16), (3, 3, 8, 16), (2, 2), "same", (1, 1), 2),
    ((1, 5, 6, 12), (3, 3, 4, 9), (1, 1), "same", (1, 1), 3),
    ((1, 6, 5, 6), (3, 3, 2, 6), (1, 1), "same", (2, 1), 3)])
def test_decomposed_conv2d_finite_differences(rng, xs, ks, s, pad, d, g):
    assert _applies(xs, ks, s, d, g)
    x = rng.standard_normal(xs)
    k = rng.standard_normal(ks) / np.sqrt(ks[0] * ks[1] * ks[2])
    dy = rng.standard_normal(ref_conv(x, k, None, s, pad, d, g).shape)
    dx, dk, _ = ops.conv2d_backward(dy, x, k, s, pad, dilation_rate=d, groups=g,
                                    use_bias=False)
    fx = fd_grad(lambda v: float((ref_conv(v, k, None, s, pad, d, g) * dy).sum()), x)
    fk = fd_grad(lambda v: float((ref_conv(x, v, None, s, pad, d, g) * dy).sum()), k)
    assert_close(dx, fx, rtol=1e-5, atol=1e-5, what="dx vs finite differences")
    assert_close(dk, fk, rtol=1e-5, atol=1e-5, what="dkernel vs finite differences")


def test_decomposed_bitwise_one_vs_two_threads(rng):
    for xs, ks, s, pad, d, g in (CASES[0], CASES[4], CASES[6],
                                 ((9, 17, 15, 24), (3, 3, 24, 16), (1, 1), "same", (2, 2), 1)):
        x = rng.standard_normal(xs).astype(np.float32)
        k = rng.standard_normal(ks).astype(np.float32)
        b = rng.standard_normal(ks[3]).astype(np.float32)
        dy = rng.standard_normal(ops.conv2d_output_shape(xs, ks, s, pad, d, g))
        dy = dy.astype(np.float32)

        def run():
            return [ops.conv2d(x, k, b, s, pad, "relu", dilation_rate=d, groups=g)] + list(
                ops.conv2d_backward(dy, x, k, s, pad, dilation_rate=d, groups=g))
        with num_threads(1):
            one = [a.copy() for a in run()]
        with num_threads(2):
            two = run()
        for a, b2 in zip(one, two):
            assert a.tobytes() == b2.tobytes()


@pytest.mark.parametrize("hw,k,pad,d", [((7, 9), (3, 3), "same", (2, 2)),
                                         ((11, 8), (3, 2), "valid", (3, 3)),
                                         ((5, 6), (3, 3), "same", (4, 1)),
                                         ((9, 10), (2, 4), "same", (2, 3)),
                                         ((6, 7), (4, 2), "same", (3, 2))])
def test_sub_images_round_trip(rng, hw, k, pad, d):
    """Sub-image pixel (s, u) of lattice (a, b) is input pixel (a - rh + dh*s, b - rw + dw*u)
    (zero outside, NumPy reference); each input pixel lies in one sub-image once
    (merge_input_grad inverts split_input) and merge_output inverts split_output_grad."""
    xs = (2,) + hw + (3,)
    oh, pt, _ = _pads(hw[0], (k[0] - 1) * d[0] + 1, 1, pad)
    ow, pl, _ = _pads(hw[1], (k[1] - 1) * d[1] + 1, 1, pad)
    sub = conv_decompose.SubImages(xs, k + (3, 5), (pt, pl), (oh, ow), d)
    x = rng.standard_normal(xs).astype(np.float32)
    parts = sub.split_input(x, np.full(sub.x_shape, np.nan, np.float32))
    rh, rw = sub.offsets
    want = np.zeros(sub.x_shape, np.float32)
    for a in range(d[0]):
        for b in range(d[1]):
            k0 = (a * d[1] + b) * xs[0]
            for s in range(sub.x_shape[1]):
                for u in range(sub.x_shape[2]):
                    r, c = a - rh + d[0] * s, b - rw + d[1] * u
                    if 0 <= r < hw[0] and 0 <= c < hw[1]:
                        want[k0:k0 + xs[0], s, u] = x[:, r, c]
    assert parts.tobytes() == want.tobytes()
    assert np.count_nonzero(parts) == x.size
    back = sub.merge_input_grad(parts, np.full(xs, np.nan, np.float32))
    assert back.tobytes() == x.tobytes()
    y = rng.standard_normal((2, oh, ow, 5)).astype(np.float32)
    dys = sub.split_output_grad(y, np.full(sub.y_shape, np.nan, np.float32))
    out = sub.merge_output(dys, np.full(y.shape, np.nan, np.float32))
    assert out.tobytes() == y.tobytes()
    with pytest.raises(ValueError, match="lattice_gather"):
        _ext.lattice_gather(x, d, sub.offsets, np.empty((1, 2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="lattice_scatter"):
        _ext.lattice_scatter(parts, d, (d[0], 0), x)


def test_channel_slice_copies(rng):
    a = rng.standard_normal((6, 10)).astype(np.float32)
    packed = np.empty((6, 4), np.float32)
    _ext.channel_slice_gather(a, packed, 3)
    assert packed.tobytes() == a[:, 3:7].copy().tobytes()
    b = np.zeros_like(a)
    _ext.channel_slice_scatter(packed, b, 3)
    want = np.zeros_like(a)
    want[:, 3:7] = a[:, 3:7]
    assert b.tobytes() == want.tobytes()
    with pytest.raises(ValueError, match="channel_slice_gather"):
        _ext.channel_slice_gather(a, packed, 7)
    with pytest.raises(ValueError, match="channel_slice_scatter"):
        _ext.channel_slice_scatter(np.empty((5, 4), np.float32), b, 0)


def test_narrow_groups_keep_the_grouped_kernels():
    assert not conv_decompose.grouped_applies((1, 8, 8, 12), (3, 3, 3, 12), 4)
    assert conv_decompose.grouped_applies((1, 8, 8, 32), (3, 3, 8, 32), 4)
    assert not conv_decompose.dilated_applies((2, 2), (1, 1))
    assert not conv_decompose.dilated_applies((1, 1), (1, 1))


def test_depthwise_wide_channels_kernel_gradient(rng):
    """Wide channels cap the kernel gradient's partial sums (fewer blocks than lines): still
    the float64 reference, and the same bits at 1 and 2 threads; input pixel pairs too."""
    from test_depthwise import ref_depthwise
    x = rng.standard_normal((3, 7, 9, 131)).astype(np.float32)
    k = rng.standard_normal((3, 3, 131, 1)).astype(np.float32)
    dy = rng.standard_normal((3, 7, 9, 131)).astype(np.float32)

    def run():
        return ops.depthwise_conv2d_backward(dy, x, k, padding="same")
    with num_threads(1):
        one = [a.copy() for a in run()]
    with num_threads(2):
        two = run()
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()
    torch = pytest.importorskip("torch")
    X = torch.tensor(x.astype(np.float64), requires_grad=True)
    K = torch.tensor(k.astype(np.float64), requires_grad=True)
    Xp = torch.nn.functional.pad(X.permute(0, 3, 1, 2), (1, 1, 1, 1))
    Y = torch.nn.functional.conv2d(Xp, K.reshape(3, 3, 131).permute(2, 0, 1).unsqueeze(1),
                                   groups=131)
    assert_close(Y.permute(0, 2, 3, 1).detach().numpy(), ref_depthwise(x, k, None, (1, 1),
                                                                       "same"), 1e-9, 1e-9)
    (Y.permute(0, 2, 3, 1) * torch.tensor(dy.astype(np.float64))).sum().backward()
    assert_close(one[0], X.grad.numpy(), rtol=1e-5, atol=1e-5, what="dx")
    assert_close(one[1], K.grad.numpy(), rtol=1e-5, atol=1e-5, what="dkernel")


# Grouped 3x3 stride-1 convs run as grouped Winograd (csrc/winograd.c's grouped entry
# points): odd sizes, channels not multiples of 8, groups from 2 to one channel a group.
WINO_CASES = [
    ((3, 7, 10, 20), (3, 3, 5, 12), "valid", 4),
    ((2, 13, 6, 18), (3, 3, 3, 12), "same", 6),
    ((2, 8, 9, 6), (3, 3, 1, 12), "same", 6),
    ((2, 9, 11, 34), (3, 3, 17, 22), "same", 2),
]


def _wino_args(xs, ks, pad, g):
    oh, pt, _ = _pads(xs[1], 3, 1, pad)
    ow, pl, _ = _pads(xs[2], 3, 1, pad)
    size = _ext.conv2d_grouped_wino_workspace_size(xs, ks, (pt, pl), (oh, ow), g)
    return (pt, pl), (oh, ow), np.empty(size, np.float32)


@pytest.mark.parametrize("simd", [None, 0])
@pytest.mark.parametrize("xs,ks,pad,g", WINO_CASES)
def test_grouped_winograd_matches_float64_reference(rng, xs, ks, pad, g, simd):
    """Forward, input and kernel gradients against float64 NumPy (the AVX2 path and the
    portable one)."""
    assert _ext.conv2d_grouped_wino_applies(xs, ks, *_wino_args(xs, ks, pad, g)[:2], g)
    x = rng.standard_normal(xs).astype(np.float32)
    k = (rng.standard_normal(ks) / np.sqrt(9 * ks[2])).astype(np.float32)
    b = rng.standard_normal(ks[3]).astype(np.float32)
    pads, ohw, ws = _wino_args(xs, ks, pad, g)
    want = ref_conv(x, k, b, (1, 1), pad, (1, 1), g)
    dy = rng.standard_normal(want.shape).astype(np.float32)
    y, dx, dk = (np.empty(want.shape, np.float32), np.empty(xs, np.float32),
                 np.empty(ks, np.float32))
    if simd is not None:
        _ext.force_simd(simd)
    try:
        _ext.conv2d_grouped_wino_forward(x, k, b, pads, g, False, y, ws)
        _ext.conv2d_grouped_wino_backward_input(dy, k, pads, g, dx, ws)
        _ext.conv2d_grouped_wino_backward_kernel(dy, x, pads, g, dk, ws)
    finally:
        _ext.force_simd(-1)
    assert_close(y, want, rtol=1e-5, atol=1e-5, what="forward")
    # the exact gradients by linearity: dk[i, j, c, :] = <conv(x, one-hot kernel), dy>,
    # dx[n, h, w, c] = <conv(one-hot x, k), dy> (the loss is linear in each)
    X = x.astype(np.float64)
    ex = np.zeros(xs)
    e = np.zeros((1,) + xs[1:])
    for h in range(xs[1]):
        for w in range(xs[2]):
            for c in range(xs[3]):
                e[:] = 0.0
                e[0, h, w, c] = 1.0
                ex[:, h, w, c] = np.einsum("nhwf,hwf->n", dy, ref_conv(e, k, None, (1, 1), pad,
                                                                     (1, 1), g)[0])
    ek = np.zeros(ks)
    for i in range(3):
        for j in range(3):
            for c in range(ks[2]):
                e = np.zeros(ks)
                e[i, j, c] = 1.0
                ek[i, j, c] = (ref_conv(X, e, None, (1, 1), pad, (1, 1), g) * dy).sum(
                    axis=(0, 1, 2))
    assert_close(dk, ek, rtol=1e-5, atol=1e-5, what="dkernel")
    assert_close(dx, ex, rtol=1e-5, atol=1e-5, what="dx")
    # and ops.conv2d / conv2d_backward take this path
    assert_close(ops.conv2d(x, k, b, padding=pad, groups=g), want, rtol=1e-5, atol=1e-5)
    dx2, dk2, _ = ops.conv2d_backward(dy, x, k, padding=pad, groups=g)
    assert dx2.tobytes() == dx.tobytes() or simd is not None
    assert dk2.tobytes() == dk.tobytes() or simd is not None


def test_grouped_winograd_bitwise_one_vs_two_threads(rng):
    """Large enough for the parallel regions: the same bits at 1 and 2 threads."""
    # 20 filters a group: a 16-wide AVX-512 block and a 4-wide tail
    xs, ks, pad, g = (6, 20, 19, 48), (3, 3, 12, 80), "same", 4
    x = rng.standard_normal(xs).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    b = rng.standard_normal(ks[3]).astype(np.float32)
    dy = rng.standard_normal((6, 20, 19, 80)).astype(np.float32)
    pads, ohw, ws = _wino_args(xs, ks, pad, g)

    def run():
        y, dx, dk = (np.empty(dy.shape, np.float32), np.empty(xs, np.float32),
                     np.empty(ks, np.float32))
        _ext.conv2d_grouped_wino_forward(x, k, b, pads, g, True, y, ws)
        _ext.conv2d_grouped_wino_backward_input(dy, k, pads, g, dx, ws)
        _ext.conv2d_grouped_wino_backward_kernel(dy, x, pads, g, dk, ws)
        return y, dx, dk
    with num_threads(1):
        one = run()
    with num_threads(2):
        two = run()
    for a, b2 in zip(one, two):
        assert a.tobytes() == b2.tobytes()
    assert_close(one[0], np.maximum(ref_conv(x, k, b, (1, 1), pad, (1, 1), g), 0),
                 rtol=1e-5, atol=1e-5)
    # the AVX-512 block kernels (where the CPU has them) give the AVX2 ones' bits
    _ext.gemm_force_avx512(0)
    try:
        avx2 = run()
    finally:
        _ext.gemm_force_avx512(-1)
    for a, b2 in zip(one, avx2):
        assert a.tobytes() == b2.tobytes()


def test_grouped_winograd_rejects_what_it_cannot_run(rng):
    x = np.zeros((1, 6, 6, 8), np.float32)
    with pytest.raises(ValueError, match="conv2d_grouped_wino_forward"):
        _ext.conv2d_grouped_wino_forward(x, np.zeros((3, 3, 4, 8), np.float32), None,
                                         (1, 1), 2, False, np.zeros((1, 6, 6, 8), np.float32),
                                         np.zeros(4, np.float32))  # workspace too small
    assert not _ext.conv2d_grouped_wino_applies((1, 6, 6, 8), (5, 5, 4, 8), (2, 2), (6, 6), 2)
    assert not _ext.conv2d_grouped_wino_applies((1, 6, 6, 8), (3, 3, 8, 8), (1, 1), (6, 6), 1)


@pytest.mark.parametrize("d,g", [((2, 2), 1), ((1, 1), 2), ((2, 1), 2)])
def test_decomposed_empty_batch(d, g):
    """An empty batch: empty outputs, a zero kernel gradient (written over NaNs)."""
    x = np.zeros((0, 7, 6, 4), np.float32)
    k = np.ones((3, 3, 4 // g, 4), np.float32)
    y = ops.conv2d(x, k, padding="same", dilation_rate=d, groups=g)
    assert y.shape == (0, 7, 6, 4)
    dk = np.full(k.shape, np.nan, np.float32)
    dx, _, db = ops.conv2d_backward(y, x, k, padding="same", dilation_rate=d, groups=g,
                                    dkernel=dk)
    assert dx.shape == x.shape and not dk.any() and not db.any()
