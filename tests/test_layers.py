"""Layers vs NumPy oracles (forward), float64 finite differences (input and weight gradients),
Keras' output shapes, configs, initializers and argument validation."""
import math

import numpy as np
import pytest

import fastcnn
from fastcnn import initializers, layers
from fastcnn.layers.base import Variable
from conftest import assert_close, fd_grad, num_threads


# ----------------------------------------------------------------------------- NumPy oracles
def same_pads(size, window, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2, total - total // 2


def pad_input(x, window, strides, padding, value=0.0):
    n, h, w, c = x.shape
    if padding == "valid":
        oh = (h - window[0]) // strides[0] + 1
        ow = (w - window[1]) // strides[1] + 1
        return x, oh, ow, np.ones((h, w))
    oh, t, b = same_pads(h, window[0], strides[0])
    ow, l, r = same_pads(w, window[1], strides[1])
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)
    valid = np.pad(np.ones((h, w)), ((t, b), (l, r)))
    return xp, oh, ow, valid


def ref_conv2d(x, k, b, strides, padding, activation=None):
    kh, kw, c, f = k.shape
    xp, oh, ow, _ = pad_input(np.asarray(x, np.float64), (kh, kw), strides, padding)
    y = np.zeros((x.shape[0], oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw, :]
            y[:, i, j, :] = np.tensordot(patch, k, axes=([1, 2, 3], [0, 1, 2]))
    if b is not None:
        y += b
    return np.maximum(y, 0) if activation == "relu" else y


def ref_max_pool(x, pool, strides, padding):
    xp, oh, ow, _ = pad_input(np.asarray(x, np.float64), pool, strides, padding, -np.inf)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            y[:, i, j, :] = xp[:, i * strides[0]:i * strides[0] + pool[0],
                               j * strides[1]:j * strides[1] + pool[1], :].max(axis=(1, 2))
    return y


def ref_avg_pool(x, pool, strides, padding):
    xp, oh, ow, valid = pad_input(np.asarray(x, np.float64), pool, strides, padding)
    y = np.empty((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            si, sj = i * strides[0], j * strides[1]
            cnt = valid[si:si + pool[0], sj:sj + pool[1]].sum()
            y[:, i, j, :] = xp[:, si:si + pool[0], sj:sj + pool[1], :].sum(axis=(1, 2)) / cnt
    return y


def ref_dense(x, k, b, activation=None):
    y = np.asarray(x, np.float64) @ k + (0 if b is None else b)
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "softmax":
        e = np.exp(y - y.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return y


def ref_batch_norm(x, gamma, beta, eps):
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta, mean, var


def check_grads(layer, x, ref, rng, weights=None, eps=1e-5, tol=2e-3):
    """Compare layer.backward (input grad) and layer.gradients with float64 FD of ``ref``.

    ``ref(x, *weights)`` is the float64 oracle; the scalar is sum(ref(...) * r)."""
    weights = [w.numpy().astype(np.float64) for w in (weights or layer.trainable_weights)]
    y = layer.forward(np.ascontiguousarray(x, np.float32), training=True)
    r = rng.standard_normal(y.shape)
    dx = layer.backward(np.ascontiguousarray(r, np.float32), need_input_grad=True)
    fx = fd_grad(lambda xv: float((ref(xv, *weights) * r).sum()), x, eps)
    assert_close(dx, fx, rtol=tol, atol=tol, what="%s input gradient" % layer.name)
    for i, (w, g) in enumerate(zip(weights, layer.gradients)):
        def f(wv, i=i):
            ws = list(weights)
            ws[i] = wv
            return float((ref(x, *ws) * r).sum())
        assert_close(g, fd_grad(f, w, eps), rtol=tol, atol=tol,
                     what="%s weight %d gradient" % (layer.name, i))


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("make,in_shape,out_shape", [
    (lambda: layers.Conv2D(4, 3), (None, 32, 32, 3), (None, 30, 30, 4)),
    (lambda: layers.Conv2D(4, 3, padding="same"), (None, 32, 32, 3), (None, 32, 32, 4)),
    (lambda: layers.Conv2D(4, 3, strides=2, padding="same"), (None, 32, 32, 3), (None, 16, 16, 4)),
    (lambda: layers.Conv2D(4, 3, strides=2, padding="same"), (None, 33, 33, 3), (None, 17, 17, 4)),
    (lambda: layers.Conv2D(4, 3, strides=2), (None, 32, 32, 3), (None, 15, 15, 4)),
    (lambda: layers.Conv2D(2, (5, 3), strides=(2, 1)), (None, 11, 7, 1), (None, 4, 5, 2)),
    (lambda: layers.MaxPooling2D(), (None, 15, 15, 32), (None, 7, 7, 32)),
    (lambda: layers.MaxPooling2D(padding="same"), (None, 15, 15, 32), (None, 8, 8, 32)),
    (lambda: layers.MaxPooling2D(3, strides=2), (None, 13, 13, 64), (None, 6, 6, 64)),
    (lambda: layers.AveragePooling2D((2, 3)), (None, 9, 9, 5), (None, 4, 3, 5)),
    (lambda: layers.AveragePooling2D(3, 1, padding="same"), (None, 9, 9, 5), (None, 9, 9, 5)),
    (lambda: layers.GlobalAveragePooling2D(), (None, 6, 6, 64), (None, 64)),
    (lambda: layers.GlobalAveragePooling2D(keepdims=True), (None, 6, 6, 64), (None, 1, 1, 64)),
    (lambda: layers.Flatten(), (None, 4, 4, 64), (None, 1024)),
    (lambda: layers.Dense(10), (None, 64), (None, 10)),
    (lambda: layers.Dense(10), (None, 3, 4, 64), (None, 3, 4, 10)),
    (lambda: layers.Dropout(0.5), (None, 7), (None, 7)),
    (lambda: layers.BatchNormalization(), (None, 5, 5, 3), (None, 5, 5, 3)),
    (lambda: layers.Activation("softmax"), (None, 10), (None, 10)),
    (lambda: layers.ReLU(), (None, 3, 3, 2), (None, 3, 3, 2)),
])
def test_output_shapes_match_keras_and_real_outputs(make, in_shape, out_shape, rng):
    layer = make()
    assert layer.compute_output_shape(in_shape) == out_shape
    if in_shape[1] <= 16 or len(in_shape) == 2:
        x = rng.standard_normal((2,) + in_shape[1:]).astype(np.float32)
        assert layer(x).shape == (2,) + out_shape[1:]


def test_too_small_input_names_the_layer():
    layer = layers.Conv2D(4, 5, name="tiny_conv")
    with pytest.raises(ValueError, match="tiny_conv.*too small"):
        layer.compute_output_shape((None, 3, 3, 1))
    with pytest.raises(ValueError, match='"pool".*expected ndim=4, found ndim=2'):
        layers.MaxPooling2D(name="pool").compute_output_shape((None, 10))


def test_built_layer_rejects_other_channel_count(rng):
    conv = layers.Conv2D(4, 3, name="c3")
    conv(rng.standard_normal((1, 5, 5, 3)))
    with pytest.raises(ValueError, match='"c3".*axis -1 of input shape to have value 3'):
        conv(rng.standard_normal((1, 5, 5, 2)))


# ----------------------------------------------------------------------------- forward + grads
CONV_CASES = [((2, 5, 6, 3), 4, (3, 3), (1, 1), "valid", None, True),
              ((1, 5, 5, 3), 7, (3, 3), (1, 1), "same", "relu", True),
              ((2, 7, 6, 2), 3, (3, 2), (2, 2), "same", None, False),
              ((1, 7, 7, 1), 2, (3, 3), (2, 1), "valid", "relu", True)]


@pytest.mark.parametrize("shape,filters,ks,strides,padding,act,use_bias", CONV_CASES)
def test_conv2d_forward_and_gradients(shape, filters, ks, strides, padding, act, use_bias, rng):
    layer = layers.Conv2D(filters, ks, strides=strides, padding=padding, activation=act,
                          use_bias=use_bias, bias_initializer="random_normal")
    x = rng.standard_normal(shape)
    y = layer(x)
    k = layer.kernel.numpy()
    b = layer.bias.numpy() if use_bias else None
    assert layer.kernel.shape == ks + (shape[3], filters)
    assert_close(y, ref_conv2d(x, k, b, strides, padding, act), rtol=1e-4, atol=1e-4)

    def ref(xv, kv, bv=None):
        return ref_conv2d(xv, kv, bv, strides, padding, act)
    check_grads(layer, x, ref, rng)


def test_conv2d_first_layer_skips_input_gradient(rng):
    layer = layers.Conv2D(3, 3)
    x = rng.standard_normal((2, 5, 5, 2)).astype(np.float32)
    layer.build((None, 5, 5, 2))
    y = layer.forward(x, training=True)
    assert layer.backward(np.ones_like(y), need_input_grad=False) is None
    k = layer.kernel.numpy().astype(np.float64)
    fk = fd_grad(lambda kv: float(ref_conv2d(x, kv, None, (1, 1), "valid").sum()), k)
    assert_close(layer.gradients[0], fk, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("act", [None, "relu", "softmax"])
def test_dense_forward_and_gradients(act, rng):
    layer = layers.Dense(5, activation=act, bias_initializer="random_normal")
    x = rng.standard_normal((3, 7))
    assert_close(layer(x), ref_dense(x, layer.kernel.numpy(), layer.bias.numpy(), act),
                 rtol=1e-5, atol=1e-5)
    assert layer.kernel.shape == (7, 5) and layer.bias.shape == (5,)
    check_grads(layer, x, lambda xv, k, b: ref_dense(xv, k, b, act), rng)


def test_dense_on_rank4_input_applies_to_last_axis(rng):
    layer = layers.Dense(3, use_bias=False)
    x = rng.standard_normal((2, 2, 3, 4))
    assert_close(layer(x), x @ layer.kernel.numpy(), rtol=1e-5, atol=1e-5)
    check_grads(layer, x, lambda xv, k: xv @ k, rng)


@pytest.mark.parametrize("pool,strides,padding", [
    ((2, 2), None, "valid"), ((2, 2), None, "same"), ((3, 3), (2, 2), "valid"),
    ((3, 2), (1, 2), "same")])
def test_max_pooling_forward_and_gradient(pool, strides, padding, rng):
    layer = layers.MaxPooling2D(pool, strides, padding)
    x = rng.standard_normal((2, 5, 7, 3))
    st = strides or pool
    assert_close(layer(x), ref_max_pool(x, pool, st, padding), rtol=1e-6, atol=1e-6)
    check_grads(layer, x, lambda xv: ref_max_pool(xv, pool, st, padding), rng, weights=[])


@pytest.mark.parametrize("pool,strides,padding", [((2, 2), None, "valid"),
                                                  ((3, 3), (2, 2), "same")])
def test_average_pooling_forward_and_gradient(pool, strides, padding, rng):
    layer = layers.AveragePooling2D(pool, strides, padding)
    x = rng.standard_normal((2, 5, 6, 3))
    st = strides or pool
    assert_close(layer(x), ref_avg_pool(x, pool, st, padding), rtol=1e-5, atol=1e-5)
    check_grads(layer, x, lambda xv: ref_avg_pool(xv, pool, st, padding), rng, weights=[])


def test_global_average_pooling_and_flatten(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    gap = layers.GlobalAveragePooling2D()
    assert_close(gap(x), x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    check_grads(gap, x, lambda xv: xv.mean(axis=(1, 2)), rng, weights=[])
    flat = layers.Flatten()
    x32 = x.astype(np.float32)
    y = flat.forward(x32)
    assert y.shape == (2, 60) and np.shares_memory(y, x32)  # a view, NHWC order
    assert np.array_equal(y[1], x32[1].reshape(-1))
    dy = rng.standard_normal((2, 60)).astype(np.float32)
    assert np.array_equal(flat.backward(dy), dy.reshape(x.shape))


def test_relu_and_activation_layers(rng):
    x = rng.standard_normal((3, 4))
    for layer in (layers.ReLU(), layers.Activation("relu")):
        assert_close(layer(x), np.maximum(x, 0))
        check_grads(layer, x, lambda xv: np.maximum(xv, 0), rng, weights=[])
    sm = layers.Activation("softmax")
    assert_close(sm(x), ref_dense(x, np.eye(4), None, "softmax"), rtol=1e-5, atol=1e-6)
    check_grads(sm, x, lambda xv: ref_dense(xv, np.eye(4), None, "softmax"), rng, weights=[])
    lin = layers.Activation("linear")
    assert_close(lin(x), x)


def test_batch_normalization_training_inference_and_gradients(rng):
    bn = layers.BatchNormalization(gamma_initializer="random_normal",
                                   beta_initializer="random_normal")
    x = rng.standard_normal((4, 3, 3, 5)) * 2 + 1
    bn.build((None, 3, 3, 5))
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.trainable for w in bn.weights] == [True, True, False, False]
    assert bn.count_params() == 20 and len(bn.trainable_weights) == 2
    g, b = bn.gamma.numpy().astype(np.float64), bn.beta.numpy().astype(np.float64)
    y_train = bn.forward(x.astype(np.float32), training=True)
    want, mean, var = ref_batch_norm(x, g, b, 1e-3)
    assert_close(y_train, want, rtol=1e-4, atol=1e-4)
    # moving stats: 0.99 * initial + 0.01 * batch statistics (biased variance)
    assert_close(bn.moving_mean.numpy(), 0.01 * mean, rtol=1e-4, atol=1e-6)
    assert_close(bn.moving_variance.numpy(), 0.99 + 0.01 * var, rtol=1e-4, atol=1e-6)
    mm, mv = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    y_inf = bn(x)  # inference: moving statistics, which are left unchanged
    assert_close(y_inf, g * (x - mm) / np.sqrt(mv + 1e-3) + b, rtol=1e-4, atol=1e-4)
    assert np.array_equal(bn.moving_mean.numpy(), mm)
    check_grads(bn, x, lambda xv, gv, bv: ref_batch_norm(xv, gv, bv, 1e-3)[0], rng)


def test_dropout_train_vs_inference_and_backward(rng):
    x = (rng.random((64, 50)) + 0.5).astype(np.float32)
    d = layers.Dropout(0.25, seed=3)
    assert np.array_equal(d(x), x)  # inference: identity
    y = d.forward(x, training=True)
    kept = y != 0
    assert 0.6 < kept.mean() < 0.9
    assert_close(y[kept], x[kept] / 0.75, rtol=1e-6, atol=0)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = d.backward(dy)
    assert_close(dx, np.where(kept, dy / 0.75, 0.0), rtol=1e-6, atol=1e-7)
    y2 = d.forward(x, training=True).copy()
    assert not np.array_equal(y2 != 0, kept)  # a new mask on every call
    same = layers.Dropout(0.25, seed=3)
    assert np.array_equal(same.forward(x, training=True) != 0, kept)  # same seed, same masks
    with num_threads(1):
        one = layers.Dropout(0.25, seed=9).forward(x, training=True).copy()
    with num_threads(2):
        two = layers.Dropout(0.25, seed=9).forward(x, training=True).copy()
    assert np.array_equal(one, two)


def test_dropout_seeds_follow_set_random_seed():
    x = np.ones((8, 40), np.float32)
    fastcnn.utils.set_random_seed(5)
    a = layers.Dropout(0.5).forward(x, training=True).copy()
    fastcnn.utils.set_random_seed(5)
    b = layers.Dropout(0.5).forward(x, training=True).copy()
    fastcnn.utils.set_random_seed(6)
    c = layers.Dropout(0.5).forward(x, training=True).copy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# ----------------------------------------------------------------------------- weights & config
def test_weights_api_and_set_weights_validation(rng):
    dense = layers.Dense(3, name="d_api")
    dense.build((None, 4))
    k, b = dense.get_weights()
    assert k.shape == (4, 3) and b.shape == (3,) and k.dtype == np.float32
    new_k = rng.standard_normal((4, 3))
    dense.set_weights([new_k, np.ones(3)])
    assert_close(dense.kernel.numpy(), new_k, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match=r"d_api weight shape \(4, 3\) is not compatible with "
                                         r"provided weight shape \(3, 4\)"):
        dense.set_weights([new_k.T, np.ones(3)])
    with pytest.raises(ValueError, match="length 1, but the layer was expecting 2"):
        dense.set_weights([new_k])
    assert dense.count_params() == 15
    assert isinstance(dense.kernel, Variable) and dense.kernel.path == "d_api/kernel"
    assert np.asarray(dense.kernel).shape == (4, 3)
    assert_close(dense.kernel * 2, 2 * new_k, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="isn't built"):
        layers.Dense(2).count_params()


@pytest.mark.parametrize("layer", [
    layers.Conv2D(8, (3, 5), strides=2, padding="same", activation="relu", use_bias=False),
    layers.Dense(7, activation="softmax", kernel_initializer="he_normal"),
    layers.MaxPooling2D((3, 3), strides=(1, 2), padding="same"),
    layers.AveragePooling2D(), layers.GlobalAveragePooling2D(keepdims=True), layers.Flatten(),
    layers.Dropout(0.3, seed=4), layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
    layers.ReLU(), layers.Activation("softmax"), layers.InputLayer(shape=(4, 4, 2)),
])
def test_get_config_from_config_round_trip(layer):
    config = layer.get_config()
    import json
    json.dumps(config)  # JSON-able
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_conv2d_config_has_keras_defaults():
    c = layers.Conv2D(32, (3, 3)).get_config()
    assert c["strides"] == [1, 1] and c["padding"] == "valid" and c["activation"] == "linear"
    assert c["use_bias"] is True
    assert c["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert c["bias_initializer"]["class_name"] == "Zeros"
    p = layers.MaxPooling2D().get_config()
    assert p["pool_size"] == [2, 2] and p["strides"] == [2, 2] and p["padding"] == "valid"
    bn = layers.BatchNormalization().get_config()
    assert bn["momentum"] == 0.99 and bn["epsilon"] == 1e-3


def test_auto_names_and_clear_session():
    fastcnn.utils.clear_session()
    names = [layers.Conv2D(1, 1).name, layers.Conv2D(1, 1).name, layers.MaxPooling2D().name,
             layers.Dense(1).name, layers.ReLU().name, layers.BatchNormalization().name,
             layers.GlobalAveragePooling2D().name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "dense", "re_lu",
                     "batch_normalization", "global_average_pooling2d"]
    fastcnn.utils.clear_session()
    assert layers.Conv2D(1, 1).name == "conv2d"


# ----------------------------------------------------------------------------- initializers
def test_initializers_follow_keras_formulas():
    fastcnn.utils.set_random_seed(0)
    k = initializers.GlorotUniform()((3, 3, 16, 32))
    limit = math.sqrt(6 / (9 * 16 + 9 * 32))
    assert k.dtype == np.float32 and np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    assert abs(k.std() - limit / math.sqrt(3)) < 0.05 * limit
    he = initializers.HeNormal()((400, 300))
    assert abs(he.std() - math.sqrt(2 / 400)) < 0.05 * math.sqrt(2 / 400)
    assert np.abs(he).max() <= 2 * math.sqrt(2 / 400) / 0.87962566103423978 + 1e-6
    hu = initializers.HeUniform()((200, 10))
    assert np.abs(hu).max() <= math.sqrt(6 / 200)
    assert np.all(initializers.get("zeros")((2, 2)) == 0)
    assert np.all(initializers.get("ones")((2,)) == 1)
    seeded = initializers.GlorotUniform(seed=1)
    assert np.array_equal(seeded((4, 4)), seeded((4, 4)))


def test_same_seed_same_initial_weights():
    def make():
        layer = layers.Conv2D(4, 3)
        layer.build((None, 5, 5, 3))
        return layer.kernel.numpy()
    fastcnn.utils.set_random_seed(11)
    a = make()
    fastcnn.utils.set_random_seed(11)
    b = make()
    assert np.array_equal(a, b) and not np.array_equal(a, make())


# ----------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("make,match", [
    (lambda: layers.Conv2D(0, 3), "filters=0"),
    (lambda: layers.Conv2D(8, (3, 3, 3)), r"kernel_size=\(3, 3, 3\)"),
    (lambda: layers.Conv2D(8, 0), "kernel_size=0"),
    (lambda: layers.Conv2D(8, 3, strides=0), "strides=0"),
    (lambda: layers.Conv2D(8, 3, padding="full"), "padding='full'"),
    (lambda: layers.Conv2D(8, 3, activation="mish"), "'mish'"),
    (lambda: layers.Conv2D(8, 3, data_format="channels_first"), "channels_first"),
    (lambda: layers.Conv2D(8, 3, dilation_rate=0), "dilation_rate=0"),
    (lambda: layers.Conv2D(8, 3, kernel_initializer="nope"), "'nope'"),
    (lambda: layers.Dense(0), "units=0"),
    (lambda: layers.Dense(2.5), "units=2.5"),
    (lambda: layers.Dense(4, kernel_regularizer="l3"), "l3"),
    (lambda: layers.Dropout(1.5), "rate=1.5"),
    (lambda: layers.Dropout(-0.1), "rate=-0.1"),
    (lambda: layers.MaxPooling2D(pool_size=(2, 0)), r"pool_size=\(2, 0\)"),
    (lambda: layers.MaxPooling2D(padding=3), "padding=3"),
    (lambda: layers.BatchNormalization(momentum=2), "momentum"),
    (lambda: layers.BatchNormalization(epsilon=0), "epsilon"),
    (lambda: layers.ReLU(max_value=-1), "max_value"),
    (lambda: layers.Activation("sparsemax"), "'sparsemax'"),
    (lambda: layers.Input(shape=(0, 3)), "input_shape"),
    (lambda: layers.Dense(3, input_shape=(-1,)), "input_shape"),
    (lambda: layers.Dense(3, dtype="float64"), "float32"),
])
def test_bad_arguments_raise_and_echo_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Dense"):
        layers.Dense(3, unitz=4)
