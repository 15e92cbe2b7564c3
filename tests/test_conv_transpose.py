"""Conv2DTranspose and Conv1D (ops and layers): float64 NumPy references, PyTorch float64,
finite differences on awkward shapes, bitwise 1 vs 2 threads, bad arguments."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, ops
from conftest import assert_close, fd_grad, num_threads

# ---------------------------------------------------------------------------------------
# float64 references written from the definitions (independent of fastcnn)


def keras_transpose_axis(size, k, s, padding, op):
    """(output length, left crop) of a transposed conv along one axis, from Keras 3's
    _convert_conv_transpose_padding_args_from_keras_to_jax: the conv of the stride-dilated
    input padded by (left_pad, right_pad) with the flipped kernel."""
    if padding == "valid":
        op = max(k, s) - k if op is None else op
        left, right = k - 1, k - 1 + op
    else:
        pad_len = s + k - 2 if op is None else k + k % 2 - 2 + op
        left = min(pad_len // 2 + pad_len % 2, k - 1)
        right = pad_len - left
    dilated = (size - 1) * s + 1
    return dilated + left + right - k + 1, left


def ref_conv_transpose(x, k, b, strides, padding, op=None):
    """Keras' lowering: dilate x by the strides, pad (left, right), correlate with the
    kernel flipped in space (k is (kh, kw, filters, in))."""
    n, h, w, c = x.shape
    kh, kw, f, _ = k.shape
    ops_ = (None, None) if op is None else op
    oh, lt = keras_transpose_axis(h, kh, strides[0], padding, ops_[0])
    ow, ll = keras_transpose_axis(w, kw, strides[1], padding, ops_[1])
    d = np.zeros((n, (h - 1) * strides[0] + 1, (w - 1) * strides[1] + 1, c))
    d[:, ::strides[0], ::strides[1]] = x
    p = np.zeros((n, oh + kh - 1, ow + kw - 1, c))
    # padded[i] = d[i - lt] (rows beyond the dilated input stay zero)
    hh = min(d.shape[1], p.shape[0 + 1] - lt)
    ww = min(d.shape[2], p.shape[2] - ll)
    p[:, lt:lt + hh, ll:ll + ww] = d[:, :hh, :ww]
    kf = k[::-1, ::-1]  # (kh, kw, f, c)
    y = np.zeros((n, oh, ow, f))
    for t in range(kh):
        for u in range(kw):
            y += np.einsum("nhwc,fc->nhwf", p[:, t:t + oh, u:u + ow], kf[t, u])
    return y + (0 if b is None else b)


def ref_conv1d(x, k, b, s, padding):
    n, length, c = x.shape
    ks = k.shape[0]
    if padding == "causal":
        left, out = ks - 1, (length - 1) // s + 1
    elif padding == "same":
        out = -(-length // s)
        left = max((out - 1) * s + ks - length, 0) // 2
    else:
        out, left = (length - ks) // s + 1, 0
    xp = np.zeros((n, left + length + ks + s * out, c))
    xp[:, left:left + length] = x
    y = np.zeros((n, out, k.shape[2]))
    for i in range(out):
        y[:, i] = np.einsum("nkc,kcf->nf", xp[:, i * s:i * s + ks], k)
    return y + (0 if b is None else b)


TRANSPOSE_CASES = [  # (x shape, kernel (kh, kw, filters, in), strides, padding, op)
    ((2, 5, 7, 5), (3, 3, 6, 5), (2, 2), "same", None),
    ((2, 5, 7, 5), (3, 3, 6, 5), (2, 2), "valid", None),
    ((1, 4, 5, 3), (3, 2, 7, 3), (3, 2), "same", (1, 1)),
    ((2, 4, 5, 9), (4, 4, 5, 9), (2, 2), "same", (0, 1)),
    ((3, 6, 6, 4), (3, 3, 5, 4), (1, 1), "same", None),     # Winograd-eligible geometry
    ((2, 6, 5, 4), (3, 3, 5, 4), (1, 1), "valid", None),
    ((2, 3, 3, 2), (2, 2, 3, 2), (3, 3), "valid", (2, 1)),  # strides > kernel: gaps
    ((2, 4, 4, 3), (1, 1, 5, 3), (3, 3), "valid", None),
    ((2, 5, 5, 3), (5, 5, 2, 3), (2, 2), "same", None),
]


def _data(rng, x_shape, k_shape):
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = rng.standard_normal(k_shape).astype(np.float32)
    b = rng.standard_normal(k_shape[2]).astype(np.float32)
    return x, k, b


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", TRANSPOSE_CASES)
def test_conv2d_transpose_matches_reference(rng, x_shape, k_shape, strides, padding, op):
    x, k, b = _data(rng, x_shape, k_shape)
    y = ops.conv2d_transpose(x, k, b, strides, padding, op)
    ref = ref_conv_transpose(x.astype(np.float64), k.astype(np.float64), b, strides, padding,
                             op)
    assert_close(y, ref, 1e-5, 1e-5, "forward")
    assert y.shape == ops.conv2d_transpose_output_shape(x.shape, k.shape, strides, padding, op)
    relu = ops.conv2d_transpose(x, k, b, strides, padding, op, activation="relu")
    np.testing.assert_array_equal(relu, np.maximum(y, 0))


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", [
    ((2, 3, 4, 3), (3, 3, 2, 3), (2, 2), "same", None),
    ((1, 3, 2, 2), (3, 2, 3, 2), (3, 2), "valid", (1, 1)),
    ((2, 3, 3, 3), (4, 4, 2, 3), (2, 2), "same", (1, 0)),
    ((2, 4, 3, 2), (3, 3, 3, 2), (1, 1), "same", None),
])
def test_conv2d_transpose_backward_finite_differences(rng, x_shape, k_shape, strides, padding,
                                                      op):
    x, k, b = _data(rng, x_shape, k_shape)
    y_shape = ops.conv2d_transpose_output_shape(x.shape, k.shape, strides, padding, op)
    g = rng.standard_normal(y_shape)

    def loss(x_=x, k_=k, b_=b):
        return float(np.sum(ref_conv_transpose(np.asarray(x_, np.float64),
                                               np.asarray(k_, np.float64), b_, strides,
                                               padding, op) * g))

    dx, dk, db = ops.conv2d_transpose_backward(g, x, k, strides, padding, op)
    assert_close(dx, fd_grad(lambda v: loss(x_=v), x), 1e-5, 1e-5, "dx")
    assert_close(dk, fd_grad(lambda v: loss(k_=v), k), 1e-5, 1e-5, "dkernel")
    assert_close(db, fd_grad(lambda v: loss(b_=v), b), 1e-5, 1e-5, "dbias")


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", TRANSPOSE_CASES)
def test_conv2d_transpose_matches_torch_float64(rng, x_shape, k_shape, strides, padding, op):
    torch = pytest.importorskip("torch")
    x, k, b = _data(rng, x_shape, k_shape)
    kh, kw = k.shape[:2]
    ops_ = (None, None) if op is None else op
    crops, extra = [], []
    for axis, (size, ks) in enumerate(((x.shape[1], kh), (x.shape[2], kw))):
        out, left = keras_transpose_axis(size, ks, strides[axis], padding, ops_[axis])
        crops.append(ks - 1 - left)  # torch's padding = rows cropped at the top/left
        extra.append(out - ((size - 1) * strides[axis] + ks - 2 * (ks - 1 - left)))
    if min(extra) < 0 or any(e >= s for e, s in zip(extra, strides)):
        pytest.skip("torch cannot express this geometry (its padding is symmetric)")
    xt = torch.tensor(x.astype(np.float64)).permute(0, 3, 1, 2)
    wt = torch.tensor(k.astype(np.float64)).permute(3, 2, 0, 1)  # (in, out, kh, kw)
    bt = torch.tensor(b.astype(np.float64))
    xt.requires_grad_(True)
    wt.requires_grad_(True)
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride=strides, padding=tuple(crops),
                                              output_padding=tuple(extra))
    y = ops.conv2d_transpose(x, k, b, strides, padding, op)
    assert_close(y, yt.permute(0, 2, 3, 1).detach().numpy(), 1e-5, 1e-5, "forward")
    g = rng.standard_normal(y.shape)
    (yt.permute(0, 2, 3, 1) * torch.tensor(g)).sum().backward()
    dx, dk, _ = ops.conv2d_transpose_backward(g, x, k, strides, padding, op)
    assert_close(dx, xt.grad.permute(0, 2, 3, 1).numpy(), 1e-5, 1e-5, "dx")
    assert_close(dk, wt.grad.permute(2, 3, 1, 0).numpy(), 1e-5, 1e-5, "dkernel")


@pytest.mark.parametrize("x_shape,k_shape,strides,padding,op", [
    ((9, 16, 16, 32), (3, 3, 32, 32), (2, 2), "same", None),   # images split over threads
    ((1, 12, 13, 17), (3, 3, 11, 17), (2, 2), "same", None),   # one image: chunked GEMM
    ((3, 10, 9, 24), (3, 3, 20, 24), (1, 1), "same", None),    # Winograd
    ((2, 7, 9, 5), (4, 3, 6, 5), (3, 2), "valid", (1, 1)),
])
def test_conv2d_transpose_bitwise_1_vs_2_threads(rng, x_shape, k_shape, strides, padding, op):
    x, k, b = _data(rng, x_shape, k_shape)
    y_shape = ops.conv2d_transpose_output_shape(x.shape, k.shape, strides, padding, op)
    g = rng.standard_normal(y_shape).astype(np.float32)
    res = []
    for n in (1, 2):
        with num_threads(n):
            y = ops.conv2d_transpose(x, k, b, strides, padding, op, activation="relu")
            res.append((y,) + ops.conv2d_transpose_backward(g, x, k, strides, padding, op))
    for a, c in zip(*res):
        assert a.tobytes() == c.tobytes()


def test_conv2d_transpose_bad_arguments(rng):
    x, k, b = _data(rng, (1, 4, 4, 3), (3, 3, 2, 3))
    with pytest.raises(ValueError, match="conv2d_transpose: kernel"):
        ops.conv2d_transpose(x, k[:, :, :, :2])
    with pytest.raises(ValueError, match="output_padding"):
        ops.conv2d_transpose(x, k, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="padding"):
        ops.conv2d_transpose(x, k, padding="causal")
    with pytest.raises(ValueError, match="bias"):
        ops.conv2d_transpose(x, k, b[:1])
    with pytest.raises(ValueError, match="empty"):
        ops.conv2d_transpose(np.ones((1, 1, 1, 3), np.float32), np.ones((4, 4, 2, 3)),
                             strides=2, padding="same", output_padding=0)
    with pytest.raises(ValueError, match="dy"):
        ops.conv2d_transpose_backward(np.ones((1, 3, 3, 2)), x, k)
    with pytest.raises(ValueError, match="out"):
        ops.conv2d_transpose(x, k, out=np.empty((1, 6, 6, 2), np.float64))


# ------------------------------------------------------------------------------ Conv1D
CONV1D_CASES = [((2, 11, 3), (3, 3, 4), s, p) for s in (1, 2, 3)
                for p in ("valid", "same", "causal")] + [((3, 8, 9), (1, 9, 5), 1, "valid"),
                                                        ((1, 5, 2), (5, 2, 3), 2, "same")]


@pytest.mark.parametrize("x_shape,k_shape,s,padding", CONV1D_CASES)
def test_conv1d_matches_reference_and_gradients(rng, x_shape, k_shape, s, padding):
    x = rng.standard_normal(x_shape).astype(np.float32)
    k = rng.standard_normal(k_shape).astype(np.float32)
    b = rng.standard_normal(k_shape[2]).astype(np.float32)
    y = ops.conv1d(x, k, b, s, padding)
    assert_close(y, ref_conv1d(x.astype(np.float64), k.astype(np.float64), b, s, padding),
                 1e-5, 1e-5, "forward")
    g = rng.standard_normal(y.shape)

    def loss(x_=x, k_=k, b_=b):
        return float(np.sum(ref_conv1d(np.asarray(x_, np.float64), np.asarray(k_, np.float64),
                                       b_, s, padding) * g))

    dx, dk, db = ops.conv1d_backward(g, x, k, s, padding)
    assert_close(dx, fd_grad(lambda v: loss(x_=v), x), 1e-5, 1e-5, "dx")
    assert_close(dk, fd_grad(lambda v: loss(k_=v), k), 1e-5, 1e-5, "dkernel")
    assert_close(db, fd_grad(lambda v: loss(b_=v), b), 1e-5, 1e-5, "dbias")


@pytest.mark.parametrize("s,padding", [(1, "valid"), (2, "same"), (3, "valid")])
def test_conv1d_matches_torch_float64(rng, s, padding):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 17, 5)).astype(np.float32)
    k = rng.standard_normal((4, 5, 7)).astype(np.float32)
    length = ops.conv1d_output_length(17, 4, s, padding)
    left = (max((length - 1) * s + 4 - 17, 0) // 2) if padding == "same" else 0
    xt = torch.nn.functional.pad(torch.tensor(x.astype(np.float64)).permute(0, 2, 1),
                                 (left, 8))
    wt = torch.tensor(k.astype(np.float64)).permute(2, 1, 0)
    yt = torch.nn.functional.conv1d(xt, wt, stride=s)[:, :, :length]
    assert_close(ops.conv1d(x, k, None, s, padding), yt.permute(0, 2, 1).numpy(), 1e-5, 1e-5)


def test_conv1d_bitwise_1_vs_2_threads(rng):
    x = rng.standard_normal((6, 40, 19)).astype(np.float32)
    k = rng.standard_normal((5, 19, 13)).astype(np.float32)
    b = rng.standard_normal(13).astype(np.float32)
    g = rng.standard_normal((6, 20, 13)).astype(np.float32)
    res = []
    for n in (1, 2):
        with num_threads(n):
            res.append((ops.conv1d(x, k, b, 2, "causal", "relu"),)
                       + ops.conv1d_backward(g, x, k, 2, "causal"))
    for a, c in zip(*res):
        assert a.tobytes() == c.tobytes()


# ------------------------------------------------------------------------------ layers
def _layer_grads(layer, x, g):
    y = layer.forward(x, training=True)
    dx = layer.backward(g.astype(np.float32))
    return y, dx, [np.array(a) for a in layer.gradients]


@pytest.mark.parametrize("activation", ["relu", "sigmoid", None])
def test_conv2d_transpose_layer_gradients(rng, activation):
    x = rng.standard_normal((2, 3, 4, 3)).astype(np.float32)
    layer = layers.Conv2DTranspose(5, 3, strides=2, padding="same", activation=activation)
    layer.build(x.shape)
    k, b = [w.astype(np.float64) for w in layer.get_weights()]
    b += 0.1
    layer.set_weights([k, b])
    act = {"relu": lambda z: np.maximum(z, 0), "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
           None: lambda z: z}[activation]
    g = rng.standard_normal((2, 6, 8, 5))

    def loss(x_=x, k_=k, b_=b):
        return float(np.sum(act(ref_conv_transpose(x_, k_, b_, (2, 2), "same")) * g))

    y, dx, (dk, db) = _layer_grads(layer, x, g)
    assert_close(y, act(ref_conv_transpose(x.astype(np.float64), k, b, (2, 2), "same")),
                 1e-5, 1e-5)
    assert_close(dx, fd_grad(lambda v: loss(x_=v), x), 1e-5, 1e-5, "dx")
    assert_close(dk, fd_grad(lambda v: loss(k_=v), k), 1e-5, 1e-5, "dkernel")
    assert_close(db, fd_grad(lambda v: loss(b_=v), b), 1e-5, 1e-5, "dbias")


def test_conv1d_layer_gradients(rng):
    x = rng.standard_normal((2, 9, 3)).astype(np.float32)
    layer = layers.Conv1D(4, 3, padding="causal", activation="relu", bias_initializer="ones")
    layer.build(x.shape)
    k, b = [w.astype(np.float64) for w in layer.get_weights()]
    g = rng.standard_normal((2, 9, 4))

    def loss(x_=x, k_=k, b_=b):
        return float(np.sum(np.maximum(ref_conv1d(x_, k_, b_, 1, "causal"), 0) * g))

    y, dx, (dk, db) = _layer_grads(layer, x, g)
    assert_close(y, np.maximum(ref_conv1d(x.astype(np.float64), k, b, 1, "causal"), 0),
                 1e-5, 1e-5, "y")
    assert_close(dx, fd_grad(lambda v: loss(x_=v), x), 1e-5, 1e-5, "dx")
    assert_close(dk, fd_grad(lambda v: loss(k_=v), k), 1e-5, 1e-5, "dkernel")
    assert_close(db, fd_grad(lambda v: loss(b_=v), b), 1e-5, 1e-5, "dbias")


def test_layers_shapes_and_weights():
    t = layers.Conv2DTranspose(8, (3, 2), strides=(2, 3), padding="valid", output_padding=1)
    assert t.compute_output_shape((None, 7, 5, 4)) == (None, 16, 15, 8)
    t.build((None, 7, 5, 4))
    assert [w.shape for w in t.get_weights()] == [(3, 2, 8, 4), (8,)]
    assert t.forward_flops((2, 7, 5, 4), (2, 16, 15, 8)) == 2 * 2 * 7 * 5 * 4 * 6 * 8
    c = layers.Conv1D(6, 5, strides=2, padding="same", use_bias=False)
    assert c.compute_output_shape((None, 11, 3)) == (None, 6, 6)
    c.build((None, 11, 3))
    assert [w.shape for w in c.get_weights()] == [(5, 3, 6)]
    assert layers.Conv1D(2, 3).compute_output_shape((None, None, 3)) == (None, None, 2)


@pytest.mark.parametrize("cls,kwargs,match", [
    (layers.Conv2DTranspose, dict(dilation_rate=2), "dilation_rate"),
    (layers.Conv2DTranspose, dict(strides=2, output_padding=2), "output_padding"),
    (layers.Conv2DTranspose, dict(padding="causal"), "padding"),
    (layers.Conv2DTranspose, dict(data_format="channels_first"), "channels_last"),
    (layers.Conv2DTranspose, dict(activation="nope"), "activation|nope"),
    (layers.Conv1D, dict(groups=2), "groups"),
    (layers.Conv1D, dict(dilation_rate=2), "dilation_rate"),
    (layers.Conv1D, dict(padding="full"), "padding"),
    (layers.Conv1D, dict(strides=0), "strides"),
])
def test_layer_bad_arguments_name_the_layer(cls, kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        cls(4, 3, name="my_layer", **kwargs)
    assert "my_layer" in str(info.value)


def test_layer_bad_inputs():
    t = layers.Conv2DTranspose(4, 3, name="dec")
    with pytest.raises(ValueError, match="dec"):
        t.compute_output_shape((None, 5, 3))
    t.build((None, 5, 5, 3))
    with pytest.raises(ValueError, match="dec"):
        t.compute_output_shape((None, 5, 5, 4))
    with pytest.raises(ValueError, match="dec"):
        layers.Conv2DTranspose(4, 4, strides=2, padding="same", output_padding=0,
                               name="dec").compute_output_shape((None, 1, 1, 3))
    with pytest.raises(ValueError, match="c1d"):
        layers.Conv1D(4, 5, name="c1d").compute_output_shape((None, 3, 2))


def test_config_round_trip():
    for layer in (layers.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1,
                                         activation="relu", name="t"),
                  layers.Conv1D(4, 3, padding="causal", name="c")):
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
        assert fastcnn.layers.deserialize(fastcnn.layers.serialize(layer)).get_config() \
            == layer.get_config()


def test_model_with_the_new_layers_saves_and_loads(tmp_path, rng):
    i = layers.Input((12, 3))
    s = layers.MaxPooling1D(2)(layers.Conv1D(4, 3, padding="causal", activation="relu")(i))
    s = layers.GlobalAveragePooling1D()(layers.AveragePooling1D(2)(s))
    j = layers.Input((6, 6, 2))
    x = layers.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1,
                               activation="relu")(j)
    x = layers.GlobalMaxPooling2D()(layers.UpSampling2D(interpolation="bilinear")(x))
    model = fastcnn.Model([i, j], layers.Concatenate()([s, x]))
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = fastcnn.models.load_model(path)
    a = rng.random((2, 12, 3)).astype(np.float32)
    b = rng.random((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(model([a, b])), np.asarray(again([a, b])))
