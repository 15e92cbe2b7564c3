"""Grouped / dilated Conv2D, DepthwiseConv2D and SeparableConv2D: NumPy float64 references,
finite differences, PyTorch float64, bitwise 1 vs 2 threads, bad arguments, models."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, ops
from conftest import assert_close, fd_grad, num_threads


# ------------------------------------------------------------- NumPy references (float64)
def _pads(size, window, stride, padding):
    if padding == "valid":
        return (size - window) // stride + 1, 0, 0
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def ref_conv(x, k, b=None, strides=(1, 1), padding="valid", dilation=(1, 1), groups=1):
    """Grouped, dilated convolution: the kernel spread out with zeros, one einsum per tap."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    kh, kw, cg, f = k.shape
    dh, dw = dilation
    kd = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1, cg, f))
    kd[::dh, ::dw] = k
    oh, pt, pb = _pads(x.shape[1], kd.shape[0], strides[0], padding)
    ow, pl, pr = _pads(x.shape[2], kd.shape[1], strides[1], padding)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    sh, sw = strides
    fg = f // groups
    y = np.zeros((x.shape[0], oh, ow, f))
    for g in range(groups):
        for i in range(kd.shape[0]):
            for j in range(kd.shape[1]):
                win = xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw,
                         g * cg:(g + 1) * cg]
                y[..., g * fg:(g + 1) * fg] += np.einsum(
                    "nhwc,cf->nhwf", win, kd[i, j, :, g * fg:(g + 1) * fg])
    if b is not None:
        y += np.asarray(b, np.float64)
    return y


def ref_depthwise(x, k, b=None, strides=(1, 1), padding="valid", dilation=(1, 1)):
    """Depthwise = grouped with one group per input channel, filter c*M + m = k[..., c, m]."""
    kh, kw, c, m = k.shape
    return ref_conv(x, np.asarray(k).reshape(kh, kw, 1, c * m), b, strides, padding, dilation,
                    groups=c)


# ------------------------------------------------------------- ops vs references
GROUPED = [  # (x shape, kernel shape, strides, padding, dilation, groups)
    ((2, 7, 9, 6), (3, 3, 2, 6), (1, 1), "same", (2, 2), 3),
    ((3, 11, 8, 4), (3, 2, 2, 6), (1, 1), "valid", (3, 3), 2),
    ((2, 9, 9, 6), (3, 3, 3, 4), (2, 2), "same", (1, 1), 2),
    ((1, 5, 7, 3), (3, 3, 3, 5), (1, 1), "valid", (2, 1), 1),
    ((2, 10, 10, 12), (3, 3, 3, 8), (1, 1), "same", (1, 1), 4),
]
DEPTHWISE = [  # (x shape, kernel shape, strides, padding, dilation)
    ((2, 7, 9, 5), (3, 3, 5, 1), (1, 1), "same", (2, 2)),
    ((3, 11, 8, 37), (3, 3, 37, 2), (2, 2), "same", (1, 1)),
    ((2, 9, 9, 40), (5, 3, 40, 3), (1, 1), "valid", (1, 1)),
    ((2, 8, 9, 13), (3, 3, 13, 1), (2, 1), "valid", (1, 2)),
    ((2, 13, 13, 7), (3, 3, 7, 2), (1, 1), "same", (3, 3)),
]


@pytest.mark.parametrize("xs,ks,s,pad,d,g", GROUPED)
def test_grouped_dilated_conv2d_matches_reference(rng, xs, ks, s, pad, d, g):
    x = rng.standard_normal(xs).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    b = rng.standard_normal(ks[3]).astype(np.float32)
    want = ref_conv(x, k, b, s, pad, d, g)
    y = ops.conv2d(x, k, b, strides=s, padding=pad, dilation_rate=d, groups=g)
    assert y.shape == ops.conv2d_output_shape(xs, ks, s, pad, d, g) == want.shape
    assert_close(y, want, rtol=1e-5, atol=1e-5)
    assert_close(ops.conv2d(x, k, b, s, pad, "relu", dilation_rate=d, groups=g),
                 np.maximum(want, 0), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dk, db = ops.conv2d_backward(dy, x, k, s, pad, dilation_rate=d, groups=g)
    # the references' gradients by autodiff-free means: torch float64
    torch = pytest.importorskip("torch")
    X = torch.tensor(x.astype(np.float64), requires_grad=True)
    K = torch.tensor(k.astype(np.float64), requires_grad=True)
    oh, pt, pb = _pads(xs[1], (ks[0] - 1) * d[0] + 1, s[0], pad)
    ow, pl, pr = _pads(xs[2], (ks[1] - 1) * d[1] + 1, s[1], pad)
    Xp = torch.nn.functional.pad(X.permute(0, 3, 1, 2), (pl, pr, pt, pb))
    Y = torch.nn.functional.conv2d(Xp, K.permute(3, 2, 0, 1), stride=s, dilation=d, groups=g)
    assert_close(Y.permute(0, 2, 3, 1).detach().numpy(), want - b, rtol=1e-9, atol=1e-9)
    (Y.permute(0, 2, 3, 1) * torch.tensor(dy.astype(np.float64))).sum().backward()
    assert_close(dx, X.grad.numpy(), rtol=1e-5, atol=1e-5, what="dx")
    assert_close(dk, K.grad.numpy(), rtol=1e-5, atol=1e-5, what="dkernel")
    assert_close(db, dy.astype(np.float64).sum((0, 1, 2)), rtol=1e-5, atol=1e-5, what="dbias")


@pytest.mark.parametrize("xs,ks,s,pad,d", DEPTHWISE)
def test_depthwise_conv2d_matches_reference(rng, xs, ks, s, pad, d):
    x = rng.standard_normal(xs).astype(np.float32)
    k = rng.standard_normal(ks).astype(np.float32)
    b = rng.standard_normal(ks[2] * ks[3]).astype(np.float32)
    want = ref_depthwise(x, k, b, s, pad, d)
    y = ops.depthwise_conv2d(x, k, b, strides=s, padding=pad, dilation_rate=d)
    assert y.shape == ops.depthwise_conv2d_output_shape(xs, ks, s, pad, d) == want.shape
    assert_close(y, want, rtol=1e-5, atol=1e-5)
    assert_close(ops.depthwise_conv2d(x, k, b, s, pad, d, activation="relu"),
                 np.maximum(want, 0), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dk, db = ops.depthwise_conv2d_backward(dy, x, k, s, pad, d)
    torch = pytest.importorskip("torch")
    X = torch.tensor(x.astype(np.float64), requires_grad=True)
    K = torch.tensor(k.astype(np.float64), requires_grad=True)
    kh, kw, c, m = ks
    oh, pt, pb = _pads(xs[1], (kh - 1) * d[0] + 1, s[0], pad)
    ow, pl, pr = _pads(xs[2], (kw - 1) * d[1] + 1, s[1], pad)
    Xp = torch.nn.functional.pad(X.permute(0, 3, 1, 2), (pl, pr, pt, pb))
    W = K.reshape(kh, kw, c * m).permute(2, 0, 1).unsqueeze(1)
    Y = torch.nn.functional.conv2d(Xp, W, stride=s, dilation=d, groups=c)
    assert_close(Y.permute(0, 2, 3, 1).detach().numpy(), want - b, rtol=1e-9, atol=1e-9)
    (Y.permute(0, 2, 3, 1) * torch.tensor(dy.astype(np.float64))).sum().backward()
    assert_close(dx, X.grad.numpy(), rtol=1e-5, atol=1e-5, what="dx")
    assert_close(dk, K.grad.numpy(), rtol=1e-5, atol=1e-5, what="dkernel")
    assert_close(db, dy.astype(np.float64).sum((0, 1, 2)), rtol=1e-5, atol=1e-5, what="dbias")


def _fd_check(forward, backward, x, k, dy):
    """float64 finite differences of sum(forward(x, k) * dy) vs the kernels' gradients."""
    dx, dk = backward(dy, x, k)
    fx = fd_grad(lambda v: float((forward(v, k) * dy).sum()), x)
    fk = fd_grad(lambda v: float((forward(x, v) * dy).sum()), k)
    assert_close(dx, fx, rtol=1e-5, atol=1e-5, what="dx vs finite differences")
    assert_close(dk, fk, rtol=1e-5, atol=1e-5, what="dkernel vs finite differences")


@pytest.mark.parametrize("xs,ks,s,pad,d,g", [
    ((2, 5, 7, 6), (3, 3, 2, 3), (1, 1), "same", (2, 2), 3),
    ((1, 7, 6, 4), (2, 3, 2, 4), (1, 1), "valid", (3, 2), 2),
    ((2, 5, 5, 6), (3, 3, 3, 2), (2, 2), "same", (1, 1), 2)])
def test_grouped_conv2d_finite_differences(rng, xs, ks, s, pad, d, g):
    x = rng.standard_normal(xs)
    k = rng.standard_normal(ks)
    dy = rng.standard_normal(ref_conv(x, k, None, s, pad, d, g).shape)
    _fd_check(lambda a, w: ref_conv(a, w, None, s, pad, d, g),
              lambda dy_, a, w: ops.conv2d_backward(dy_, a, w, s, pad, dilation_rate=d,
                                                    groups=g, use_bias=False)[:2],
              x, k, dy)


@pytest.mark.parametrize("xs,ks,s,pad,d", [
    ((2, 5, 7, 3), (3, 3, 3, 2), (2, 2), "same", (1, 1)),
    ((1, 7, 6, 5), (3, 2, 5, 1), (1, 1), "valid", (2, 3)),
    ((2, 6, 5, 4), (3, 3, 4, 3), (1, 2), "same", (1, 1))])
def test_depthwise_finite_differences(rng, xs, ks, s, pad, d):
    x = rng.standard_normal(xs)
    k = rng.standard_normal(ks)
    dy = rng.standard_normal(ref_depthwise(x, k, None, s, pad, d).shape)
    _fd_check(lambda a, w: ref_depthwise(a, w, None, s, pad, d),
              lambda dy_, a, w: ops.depthwise_conv2d_backward(dy_, a, w, s, pad, d,
                                                              use_bias=False)[:2],
              x, k, dy)


def test_separable_layer_finite_differences(rng):
    """SeparableConv2D's backward (dx, depthwise and pointwise kernels, bias) against float64
    finite differences of depthwise-then-1x1 references (sigmoid: no kinks)."""
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    layer = layers.SeparableConv2D(5, 3, strides=2, depth_multiplier=2, padding="same",
                                   activation="sigmoid")
    layer.build(x.shape)
    dk, pk, b = [w.astype(np.float64) for w in layer.get_weights()]
    b += 0.1
    layer.set_weights([dk, pk, b])

    def forward(x_=x.astype(np.float64), dk_=dk, pk_=pk, b_=b):
        z = ref_conv(ref_depthwise(x_, dk_, None, (2, 2), "same"), pk_, b_)
        return 1 / (1 + np.exp(-z))

    y = layer.forward(x, training=True)
    assert_close(y, forward(), rtol=1e-5, atol=1e-5, what="y")
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g.astype(np.float32))
    got = [np.array(a) for a in layer.gradients]
    assert len(got) == 3

    def loss(**kw):
        return float(np.sum(forward(**kw) * g))
    assert_close(dx, fd_grad(lambda v: loss(x_=v), x.astype(np.float64)), rtol=1e-5,
                 atol=1e-5, what="dx")
    for name, value, grad in (("dk_", dk, got[0]), ("pk_", pk, got[1]), ("b_", b, got[2])):
        assert_close(grad, fd_grad(lambda v: loss(**{name: v}), value), rtol=1e-5,
                     atol=1e-5, what=name)


def _run_all(fn):
    with num_threads(1):
        one = [np.array(a) for a in fn()]
    with num_threads(2):
        two = [np.array(a) for a in fn()]
    for a, b in zip(one, two):
        assert a.tobytes() == b.tobytes()


def test_bitwise_one_vs_two_threads(rng):
    kg = rng.standard_normal((3, 3, 8, 12)).astype(np.float32)
    # 9 images: chunks spread over the threads; 1 image: one chunk, threads inside the GEMM
    for xg in (rng.standard_normal((9, 17, 15, 24)), rng.standard_normal((1, 33, 31, 24))):
        xg = xg.astype(np.float32)
        dyg = rng.standard_normal(ops.conv2d_output_shape(xg.shape, kg.shape, 1, "same", 2, 3))
        dyg = dyg.astype(np.float32)
        _run_all(lambda: (ops.conv2d(xg, kg, None, 1, "same", "relu", dilation_rate=2,
                                     groups=3),)
                 + ops.conv2d_backward(dyg, xg, kg, 1, "same", dilation_rate=2, groups=3))
    x = rng.standard_normal((9, 17, 15, 24)).astype(np.float32)
    for m, s in ((1, 1), (2, 2), (3, 1)):
        kd = rng.standard_normal((3, 3, 24, m)).astype(np.float32)
        b = rng.standard_normal(24 * m).astype(np.float32)
        dy = rng.standard_normal(ops.depthwise_conv2d_output_shape(x.shape, kd.shape, s,
                                                                   "same")).astype(np.float32)
        _run_all(lambda: (ops.depthwise_conv2d(x, kd, b, s, "same", activation="relu"),)
                 + ops.depthwise_conv2d_backward(dy, x, kd, s, "same"))


def test_depthwise_portable_path_matches_simd(rng):
    x = rng.standard_normal((3, 9, 10, 45)).astype(np.float32)
    k = rng.standard_normal((3, 3, 45, 1)).astype(np.float32)
    dy = rng.standard_normal((3, 9, 10, 45)).astype(np.float32)
    fast = [ops.depthwise_conv2d(x, k, padding="same")] + list(
        ops.depthwise_conv2d_backward(dy, x, k, padding="same")[:2])
    fastcnn._ext.force_simd(0)
    try:
        slow = [ops.depthwise_conv2d(x, k, padding="same")] + list(
            ops.depthwise_conv2d_backward(dy, x, k, padding="same")[:2])
    finally:
        fastcnn._ext.force_simd(-1)
    for a, b in zip(fast, slow):
        assert a.tobytes() == b.tobytes()


# ------------------------------------------------------------- bad arguments
def test_bad_arguments_raise_value_error():
    x = np.zeros((1, 8, 8, 6), np.float32)
    with pytest.raises(ValueError, match="divisible by groups"):
        ops.conv2d(np.zeros((1, 8, 8, 5), np.float32), np.zeros((3, 3, 2, 4), np.float32),
                   groups=2)
    with pytest.raises(ValueError, match="kernel"):
        ops.conv2d(x, np.zeros((3, 3, 3, 5), np.float32), groups=2)
    with pytest.raises(ValueError, match="strides > 1"):
        ops.conv2d(x, np.zeros((3, 3, 6, 4), np.float32), strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="algorithm"):
        ops.conv2d(x, np.zeros((3, 3, 3, 4), np.float32), groups=2, algorithm="winograd")
    with pytest.raises(ValueError, match="larger than"):
        ops.depthwise_conv2d(x, np.zeros((3, 3, 6, 1), np.float32), dilation_rate=4)
    with pytest.raises(ValueError, match="depth_multiplier"):
        ops.depthwise_conv2d(x, np.zeros((3, 3, 5, 1), np.float32))
    with pytest.raises(ValueError, match="groups"):
        layers.Conv2D(6, 3, groups=4)
    with pytest.raises(ValueError, match="strides > 1"):
        layers.Conv2D(6, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="divisible"):
        layers.Conv2D(6, 3, groups=3)(np.zeros((1, 5, 5, 4), np.float32))
    with pytest.raises(ValueError, match="channels_last"):
        layers.DepthwiseConv2D(3, data_format="channels_first")
    with pytest.raises(ValueError, match="channels_last"):
        layers.SeparableConv2D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="depth_multiplier"):
        layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match="filters"):
        layers.SeparableConv2D(0, 3)
    with pytest.raises(ValueError, match="activation"):
        layers.DepthwiseConv2D(3, activation="nope")


# ------------------------------------------------------------- layers in models
def _model(block):
    return fastcnn.Sequential([fastcnn.Input((12, 12, 6))] + block + [
        layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")])


@pytest.mark.parametrize("block", [
    lambda: [layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu")],
    lambda: [layers.SeparableConv2D(8, 3, strides=2, padding="same", activation="relu")],
    lambda: [layers.Conv2D(6, 3, padding="same", groups=3, activation="relu"),
             layers.MaxPooling2D()],
    lambda: [layers.Conv2D(4, 3, dilation_rate=2, activation="relu"),
             layers.BatchNormalization(), layers.ReLU()],
    lambda: [layers.DepthwiseConv2D(3, padding="same", use_bias=False),
             layers.BatchNormalization(), layers.ReLU()],
    lambda: [layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2),
             layers.BatchNormalization(), layers.Conv2D(5, 1, groups=1)],
])
def test_layers_train_and_predict_in_a_model(rng, block):
    fastcnn.utils.set_random_seed(0)
    model = _model(block())
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((32, 12, 12, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    hist = model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    losses = hist.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    kinds = [step.kind for step in model.plan()]
    if isinstance(model.layers[1], layers.BatchNormalization) and isinstance(
            model.layers[0], layers.DepthwiseConv2D):
        # batch norm folded into the depthwise kernel at inference
        assert kinds[0] == ("depthwise_conv2d_batch_norm_relu"
                            if isinstance(model.layers[2], layers.ReLU)
                            else "depthwise_conv2d_batch_norm")
    if isinstance(model.layers[0], layers.Conv2D):
        assert kinds[0].split("+")[0] == "Conv2D"  # not in conv2d fusions
    # predict (lean inference path) equals the layers run one by one
    h = x[:5]
    for layer in model.layers:
        h = layer(h)
    assert_close(model.predict(x[:5], verbose=0), h, rtol=1e-5, atol=1e-6)
    again = fastcnn.Sequential.from_config(model.get_config())
    again.build((None, 12, 12, 6))
    again.set_weights(model.get_weights())
    assert_close(again.predict(x[:5], verbose=0), h, rtol=1e-5, atol=1e-6)


def test_weights_shapes_and_flops():
    sep = layers.SeparableConv2D(10, 3, depth_multiplier=2, padding="same")
    sep.build((None, 8, 8, 6))
    assert [w.shape for w in sep.get_weights()] == [(3, 3, 6, 2), (1, 1, 12, 10), (10,)]
    assert [w.name for w in sep.weights] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    dw = layers.DepthwiseConv2D(3, depth_multiplier=3)
    dw.build((None, 8, 8, 5))
    assert [w.shape for w in dw.get_weights()] == [(3, 3, 5, 3), (15,)]
    assert dw.forward_flops((2, 8, 8, 5), (2, 6, 6, 15)) == 2 * 2 * 36 * 15 * 9
    conv = layers.Conv2D(8, 3, groups=4)
    conv.build((None, 8, 8, 12))
    assert conv.get_weights()[0].shape == (3, 3, 3, 8)
    assert conv.forward_flops((2, 8, 8, 12), (2, 6, 6, 8)) == 2 * 2 * 36 * 8 * 9 * 3
