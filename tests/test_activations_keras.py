"""fastcnn.activations, the activation kernels and the activation layers against float64
references, finite differences and real Keras 3 (JAX backend) as the oracle."""
import math
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import activations, layers, ops
from conftest import assert_close, fd_grad, num_threads

os.environ.setdefault("KERAS_BACKEND", "jax")

SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805
_erfc = np.vectorize(math.erfc)


def _sig(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _relu_general(x, slope, mx, thr):
    # Keras 3: no clipping without a max_value, so a negative threshold passes x in (thr, 0)
    v = np.where(x > thr, x, 0.0)
    if mx is not None:
        v = np.clip(v, 0.0, mx)
    return v - slope * np.maximum(thr - x, 0.0)


# (fastcnn name, params, float64 reference, keras.activations name, keras kwargs)
CASES = [
    ("linear", {}, lambda x: x, "linear", {}),
    ("relu", {}, lambda x: np.maximum(x, 0), "relu", {}),
    ("relu", dict(negative_slope=0.1, max_value=4.0, threshold=0.5),
     lambda x: _relu_general(x, 0.1, 4.0, 0.5), "relu",
     dict(negative_slope=0.1, max_value=4.0, threshold=0.5)),
    ("relu", dict(max_value=2.5), lambda x: _relu_general(x, 0.0, 2.5, 0.0), "relu",
     dict(max_value=2.5)),
    ("relu", dict(negative_slope=0.2, threshold=-0.5), lambda x: _relu_general(x, 0.2, None, -0.5),
     "relu", dict(negative_slope=0.2, threshold=-0.5)),
    ("leaky_relu", {}, lambda x: np.where(x >= 0, x, 0.2 * x), "leaky_relu", {}),
    ("leaky_relu", dict(negative_slope=-0.5), lambda x: np.where(x >= 0, x, -0.5 * x),
     "leaky_relu", dict(negative_slope=-0.5)),
    ("relu6", {}, lambda x: np.clip(x, 0, 6), "relu6", {}),
    ("sigmoid", {}, _sig, "sigmoid", {}),
    ("tanh", {}, np.tanh, "tanh", {}),
    ("elu", {}, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), "elu", {}),
    ("elu", dict(alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0))),
     "elu", dict(alpha=0.5)),
    ("elu", dict(alpha=-0.7), lambda x: np.where(x > 0, x, -0.7 * np.expm1(np.minimum(x, 0))),
     "elu", dict(alpha=-0.7)),
    ("selu", {}, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0))),
     "selu", {}),
    ("gelu", {}, lambda x: 0.5 * x * _erfc(-x / np.sqrt(2)), "gelu", {}),
    ("gelu", dict(approximate=True),
     lambda x: x * _sig(2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)), "gelu",
     dict(approximate=True)),
    ("silu", {}, lambda x: x * _sig(x), "silu", {}),
    ("softplus", {}, lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), "softplus", {}),
    ("softsign", {}, lambda x: x / (1 + np.abs(x)), "softsign", {}),
    ("hard_sigmoid", {}, lambda x: np.clip(x + 3, 0, 6) / 6, "hard_sigmoid", {}),
    ("hard_silu", {}, lambda x: x * np.clip(x + 3, 0, 6) / 6, "hard_silu", {}),
    ("exponential", {}, np.exp, "exponential", {}),
]
IDS = ["%s%s" % (c[0], "".join("-%s=%s" % kv for kv in sorted(c[1].items()))) for c in CASES]
KINKS = np.array([0.0, 0.5, -0.5, 2.5, 4.0, 6.0, 3.0, -3.0])


def _away_from_kinks(x, gap=1e-2):
    bad = np.min(np.abs(x.reshape(-1, 1) - KINKS), axis=1) < gap
    x = x.copy()
    x.reshape(-1)[bad] += 3 * gap
    return x


def _inputs(rng, n=1001, scale=3.0):
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    x[:7] = [0.0, -0.0, 1e-6, -1e-6, 20.0, -20.0, 1e-30]
    return x


def _backward(name, params, x, dy):
    y = ops.activation(x, name, **params)
    src = y if ops.activation_backward_uses_output(name, **params) else x
    return ops.activation_backward(dy, src, name, **params)


# ------------------------------------------------------------------ kernels: float64 oracle

@pytest.mark.parametrize("simd", [None, 0], ids=["auto", "portable"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_float64_reference(rng, case, simd):
    name, params, ref = case[:3]
    x = _inputs(rng)
    if name == "exponential":
        x = np.clip(x, -80, 80)
    if simd is not None:
        fastcnn._ext.force_simd(simd)
    try:
        y = ops.activation(x, name, **params)
    finally:
        fastcnn._ext.force_simd(-1)
    want = ref(x.astype(np.float64))
    assert y.dtype == np.float32 and y.shape == x.shape
    # a few float32 ulp of each value, with an absolute floor for results near 0
    np.testing.assert_allclose(y, want, rtol=4e-6 if name != "gelu" or params else 8e-6,
                               atol=1e-7 if name != "gelu" or not params else 1e-6)


@pytest.mark.parametrize("simd", [None, 0], ids=["auto", "portable"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_matches_float64_finite_differences(rng, case, simd):
    """Our float32 backward vs central differences of the float64 formula, on an awkward
    (3, 7) shape with values away from the kinks."""
    name, params, ref = case[:3]
    x = _away_from_kinks(rng.standard_normal((3, 7)) * 2.5).astype(np.float32)
    dy = rng.standard_normal((3, 7)).astype(np.float32)
    want = fd_grad(lambda v: float(np.sum(ref(v) * dy)), x.astype(np.float64))
    if simd is not None:
        fastcnn._ext.force_simd(simd)
    try:
        got = _backward(name, params, x, dy)
    finally:
        fastcnn._ext.force_simd(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bitwise_same_at_1_and_2_threads(rng, case):
    name, params = case[:2]
    x = (rng.standard_normal(200_003) * 3).astype(np.float32)  # above the parallel threshold
    dy = rng.standard_normal(x.shape).astype(np.float32)
    res = []
    for t in (1, 2):
        with num_threads(t):
            res.append((ops.activation(x, name, **params), _backward(name, params, x, dy)))
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_array_equal(res[0][1], res[1][1])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_nan_propagates_and_infinities_saturate(case):
    name, params, ref = case[:3]
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, -0.0], np.float32)
    y = ops.activation(x, name, **params)
    assert np.isnan(y[0])
    with np.errstate(all="ignore"):
        want = ref(x.astype(np.float64)[1:])
    # the float64 formula's value, where it is a number (x * 0 at -inf is NaN in both)
    np.testing.assert_allclose(y[1:], want.astype(np.float32), rtol=1e-6, equal_nan=True)


def test_in_place_and_aliasing(rng):
    x = rng.standard_normal((5, 9)).astype(np.float32)
    want = ops.activation(x, "tanh")
    buf = x.copy()
    assert ops.activation(buf, "tanh", out=buf) is buf
    np.testing.assert_array_equal(buf, want)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    g = ops.activation_backward(dy, want, "tanh")
    dyc = dy.copy()
    assert ops.activation_backward(dyc, want, "tanh", out=dyc) is dyc
    np.testing.assert_array_equal(dyc, g)
    with pytest.raises(ValueError, match="overlap|share|alias|memory"):
        ops.activation_backward(dy, want, "tanh", out=want)


def test_bad_names_and_params_raise():
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="expected one of .*gelu.*tanh"):
        ops.activation(x, "mish")
    with pytest.raises(ValueError, match="alpha"):
        ops.activation(x, "tanh", alpha=1.0)
    with pytest.raises(ValueError, match="negative_slope"):
        ops.activation(x, "relu", negative_slope="a")
    with pytest.raises(ValueError, match="supports: None, .*gelu.*hard_swish.*swish"):
        activations.get("mish")
    with pytest.raises(ValueError, match="supports"):
        activations.get(42)
    with pytest.raises(ValueError, match="dense.*'mish'.*supports: None, linear, relu"):
        layers.Dense(2, activation="mish", name="dense")
    for bad in (dict(threshold=-1.0), dict(negative_slope=-0.1), dict(max_value=-2.0)):
        with pytest.raises(ValueError, match="cannot be negative"):
            layers.ReLU(**bad)
    with pytest.raises(ValueError, match="negative_slope"):
        layers.LeakyReLU(negative_slope=None)
    with pytest.raises(ValueError, match="several axes"):
        layers.Softmax(axis=(1, 2))
    with pytest.raises(ValueError, match="shared_axes"):
        layers.PReLU(shared_axes=0)
    with pytest.raises(ValueError, match="serialize"):
        activations.serialize(lambda v: v)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        activations.softmax(np.zeros((2, 3), np.float32), axis=3)


def test_get_serialize_deserialize_round_trip():
    for name in ("relu", "swish", "hard_swish", "gelu", "log_softmax", "linear"):
        f = activations.get(name)
        assert activations.get(activations.serialize(f)) is f
    assert activations.serialize(activations.swish) == "silu"
    assert activations.serialize(activations.hard_swish) == "hard_silu"
    assert activations.get(None) is activations.linear
    assert activations.deserialize({"module": "keras.activations", "class_name": "function",
                                    "config": "elu", "registered_name": "function"}) \
        is activations.elu
    assert layers.Dense(2, activation=activations.swish).get_config()["activation"] == "silu"


# ------------------------------------------------------------------ softmax / log_softmax

@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("axis", [-1, 1, 0, 2])
def test_softmax_axis_reference_and_gradient(rng, log, axis):
    x = (rng.standard_normal((3, 5, 7)) * 4).astype(np.float32)
    y = ops.softmax_axis(x, axis, log=log)
    x64 = x.astype(np.float64)
    m = x64.max(axis=axis, keepdims=True)
    lse = m + np.log(np.exp(x64 - m).sum(axis=axis, keepdims=True))
    ref = (lambda v: v - (v.max(axis=axis, keepdims=True) + np.log(np.exp(
        v - v.max(axis=axis, keepdims=True)).sum(axis=axis, keepdims=True))))
    want = x64 - lse if log else np.exp(x64 - lse)
    assert_close(y, want, rtol=2e-6, atol=1e-6)
    # on the portable path, bitwise what the last-axis kernel gives on the transposed array
    xt = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    fastcnn._ext.force_simd(0)
    try:
        np.testing.assert_array_equal(
            np.moveaxis(ops.softmax_axis(xt, -1, log=log), -1, axis),
            ops.softmax_axis(x, axis, log=log))
    finally:
        fastcnn._ext.force_simd(-1)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    f = (lambda v: float(np.sum(ref(v) * dy))) if log else \
        (lambda v: float(np.sum(np.exp(ref(v)) * dy)))
    want_g = fd_grad(f, x64)
    got = ops.softmax_axis_backward(dy, y, axis, log=log)
    assert_close(got, want_g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cols", [1, 7, 8, 13, 1000])
def test_softmax_rows_both_paths(rng, cols):
    """Row lengths around the vector width; the portable path is bitwise ops.softmax."""
    x = (rng.standard_normal((9, cols)) * 5).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    x64 = x.astype(np.float64)
    p = np.exp(x64 - x64.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    for simd in (-1, 0):
        fastcnn._ext.force_simd(simd)
        try:
            y, ly = ops.softmax_axis(x), ops.log_softmax(x)
            g, lg = ops.softmax_axis_backward(dy, y), ops.softmax_axis_backward(dy, ly, log=True)
            if simd == 0:
                np.testing.assert_array_equal(y, ops.softmax(x))
        finally:
            fastcnn._ext.force_simd(-1)
        assert_close(y, p, rtol=2e-6, atol=1e-7)
        assert_close(ly, np.log(p), rtol=2e-6, atol=1e-6)
        want = p * (dy - (dy * p).sum(-1, keepdims=True))
        assert_close(g, want, rtol=1e-5, atol=1e-6)
        assert_close(lg, dy - p * dy.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_axis_bitwise_threads(rng, log):
    x = rng.standard_normal((40, 101, 33)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    res = []
    for t in (1, 2):
        with num_threads(t):
            y = ops.softmax_axis(x, 1, log=log)
            res.append((y, ops.softmax_axis_backward(dy, y, 1, log=log)))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ PReLU kernel

def test_prelu_kernel_reference_and_gradients(rng):
    x = _away_from_kinks(rng.standard_normal((5, 3, 7))).astype(np.float32)
    alpha = rng.standard_normal((3, 7)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ref = lambda v, a: np.where(v > 0, v, a * v)  # noqa: E731
    np.testing.assert_allclose(ops.prelu(x, alpha), ref(x.astype(np.float64), alpha), rtol=1e-6)
    dx, da = ops.prelu_backward(dy, x, alpha)
    assert_close(dx, fd_grad(lambda v: float(np.sum(ref(v, alpha) * dy)), x), rtol=1e-5)
    assert_close(da, fd_grad(lambda a: float(np.sum(ref(x.astype(np.float64), a) * dy)),
                             alpha), rtol=1e-5)
    with pytest.raises(ValueError, match="per-sample shape"):
        ops.prelu(x, alpha[:, :3])


def test_prelu_kernel_bitwise_threads(rng):
    x = rng.standard_normal((300, 1031)).astype(np.float32)
    alpha = rng.standard_normal(1031).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    res = []
    for t in (1, 2):
        with num_threads(t):
            res.append((ops.prelu(x, alpha),) + ops.prelu_backward(dy, x, alpha))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ plan / fusion contract

def test_only_plain_relu_fuses_with_pooling():
    from fastcnn.training import plan
    assert plan._is_relu_layer(layers.ReLU())
    assert plan._is_relu_layer(layers.Activation("relu"))
    for layer in (layers.ReLU(max_value=6.0), layers.ReLU(negative_slope=0.1),
                  layers.ReLU(threshold=0.5), layers.Activation("relu6"),
                  layers.LeakyReLU()):
        assert not plan._is_relu_layer(layer)
    assert layers.Dense(3, activation="relu").fuses_relu_backward
    assert not layers.Dense(3, activation="leaky_relu").fuses_relu_backward
    assert not layers.ReLU(max_value=6.0).fuses_relu_backward


# ------------------------------------------------------------------ real Keras 3 as the oracle

@pytest.fixture(scope="module")
def K():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover
        pytest.skip("the Keras oracle tests run on the JAX backend")
    import jax
    return keras, jax


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_activation_matches_keras_forward_and_gradient(rng, K, case):
    keras, jax = K
    name, params, _, kname, kkw = case
    x = _away_from_kinks(_inputs(rng, 999)).astype(np.float32)
    if name == "exponential":
        x = np.clip(x, -60, 60)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    kfn = getattr(keras.activations, kname)
    want = np.asarray(kfn(x, **kkw))
    got = getattr(activations, name)(x, **params)
    # element by element: assert_close scales atol by max|want|, which exp(20) makes useless
    np.testing.assert_allclose(got, want, rtol=3e-5, atol=1e-6, err_msg=name)
    kg = np.asarray(jax.grad(lambda v: (kfn(v, **kkw) * dy).sum())(x))
    np.testing.assert_allclose(_backward(name, params, x, dy), kg, rtol=2e-4, atol=1e-5,
                               err_msg=name)


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_matches_keras(rng, K, name, axis):
    keras, jax = K
    x = (rng.standard_normal((4, 6, 5)) * 3).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    kfn = getattr(keras.activations, name)
    y = getattr(activations, name)(x, axis=axis)
    assert_close(y, np.asarray(kfn(x, axis=axis)), rtol=1e-5, atol=1e-6)
    kg = np.asarray(jax.grad(lambda v: (kfn(v, axis=axis) * dy).sum())(x))
    got = ops.softmax_axis_backward(dy, y, axis, log=name == "log_softmax")
    assert_close(got, kg, rtol=1e-4, atol=1e-5)


LAYER_CASES = [
    ("ReLU", {}), ("ReLU", dict(max_value=3.0)),
    ("ReLU", dict(max_value=6.0, negative_slope=0.1, threshold=0.5)),
    ("ReLU", dict(negative_slope=0.2, threshold=1.0)),
    ("LeakyReLU", {}), ("LeakyReLU", dict(negative_slope=0.05)),
    ("ELU", {}), ("ELU", dict(alpha=0.4)),
    ("Softmax", {}), ("Softmax", dict(axis=1)), ("Softmax", dict(axis=[2])),
    ("PReLU", {}), ("PReLU", dict(shared_axes=[1, 2])), ("PReLU", dict(shared_axes=2)),
    ("Activation", dict(activation="gelu")), ("Activation", dict(activation="swish")),
    ("Activation", dict(activation="log_softmax")),
]


@pytest.mark.parametrize("cls,kwargs", LAYER_CASES,
                         ids=["%s-%s" % (c, k) for c, k in LAYER_CASES])
def test_layer_matches_keras(rng, K, cls, kwargs):
    keras, jax = K
    x = _away_from_kinks(rng.standard_normal((3, 4, 5, 6)) * 2).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    kl = getattr(keras.layers, cls)(**kwargs)
    fl = getattr(layers, cls)(**kwargs)
    kl.build(x.shape)
    fl(x)  # build
    if cls == "PReLU":  # a non-trivial alpha, the same in both
        a = rng.standard_normal(kl.alpha.shape).astype(np.float32)
        kl.alpha.assign(a)
        fl.set_weights([a])
    # config: Keras' keys (dtype is fastcnn's own float32 string)
    kc, fc = kl.get_config(), fl.get_config()
    assert set(fc) == set(kc), (sorted(fc), sorted(kc))
    for key in fc:
        if key not in ("dtype", "name", "alpha_initializer"):
            assert fc[key] == kc[key], key
    y = fl.forward(x, training=True)
    assert_close(y, np.asarray(kl(x)), rtol=3e-5, atol=1e-6)
    dx = fl.backward(dy)
    tv = [v.value for v in kl.trainable_variables]

    def loss(tv, v):
        out, _ = kl.stateless_call(tv, [w.value for w in kl.non_trainable_variables], v)
        return (out * dy).sum()
    gw, gx = jax.grad(loss, argnums=(0, 1))(tv, x)
    assert_close(dx, np.asarray(gx), rtol=2e-4, atol=1e-5)
    assert len(fl.gradients) == len(gw)
    for g_ours, g_keras in zip(fl.gradients, gw):
        assert_close(g_ours, np.asarray(g_keras), rtol=2e-4, atol=1e-4)


TRAIN_ACTS = ["tanh", "sigmoid", "softmax", "elu", "selu", "gelu", "silu", "softplus",
              "softsign", "hard_sigmoid", "hard_silu", "leaky_relu", "relu6", "exponential",
              "log_softmax", "swish", "linear", "relu"]


def _train_pair(keras, make, x, y):
    """One SGD train_on_batch step of the same model in Keras and fastcnn; their weights."""
    km, fm = make(keras), make(fastcnn)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=False)
    fm.compile(optimizer=fastcnn.optimizers.SGD(0.05), loss="mse")
    kl = float(np.asarray(km.train_on_batch(x, y)))
    fl = float(np.asarray(fm.train_on_batch(x, y)))
    return kl, fl, km.get_weights(), fm.get_weights()


@pytest.mark.parametrize("act", TRAIN_ACTS)
def test_dense_with_activation_trains_like_keras(rng, K, act):
    keras, _ = K
    x = (rng.standard_normal((8, 5)) * 0.5).astype(np.float32)
    y = rng.standard_normal((8, 3)).astype(np.float32) * 0.3

    def make(lib):
        return lib.Sequential([lib.Input(shape=(5,)), lib.layers.Dense(4, activation=act),
                               lib.layers.Dense(3, activation=act)])
    kl, fl, kw, fw = _train_pair(keras, make, x, y)
    assert abs(kl - fl) <= 1e-4 * max(1.0, abs(kl))
    for a, b in zip(fw, kw):
        assert_close(a, b, rtol=1e-4, atol=1e-5, what=act)


@pytest.mark.parametrize("act", ["tanh", "gelu", "leaky_relu", "elu", "softmax", "hard_silu",
                                 "silu", "sigmoid"])
def test_conv2d_with_activation_trains_like_keras(rng, K, act):
    keras, _ = K
    x = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
    y = rng.standard_normal((2, 5, 5, 5)).astype(np.float32) * 0.3

    def make(lib):
        return lib.Sequential([lib.Input(shape=(7, 7, 3)),
                               lib.layers.Conv2D(5, 3, activation=act)])
    kl, fl, kw, fw = _train_pair(keras, make, x, y)
    assert abs(kl - fl) <= 1e-4 * max(1.0, abs(kl))
    for a, b in zip(fw, kw):
        assert_close(a, b, rtol=1e-4, atol=1e-5, what=act)


def test_activation_layers_in_a_model_train_like_keras(rng, K):
    keras, _ = K
    x = rng.standard_normal((6, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((6, 4)).astype(np.float32)

    def make(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(6, 6, 2)), L.Conv2D(4, 3), L.PReLU(
            shared_axes=[1, 2]), L.Conv2D(4, 3), L.LeakyReLU(), L.ReLU(max_value=2.0),
            L.Flatten(), L.Dense(6), L.ELU(alpha=0.5), L.Dense(4), L.Softmax()])
    kl, fl, kw, fw = _train_pair(keras, make, x, y)
    assert abs(kl - fl) <= 1e-4 * max(1.0, abs(kl))
    for a, b in zip(fw, kw):
        assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_model_with_activation_layers_saves_and_loads(rng, tmp_path):
    L = layers
    model = fastcnn.Sequential([
        fastcnn.Input(shape=(6, 6, 2)), L.Conv2D(4, 3, activation="gelu"),
        L.PReLU(shared_axes=[1, 2], alpha_initializer="ones"), L.LeakyReLU(0.1),
        L.ReLU(max_value=3.0, threshold=0.2), L.Flatten(), L.Dense(5, activation="swish"),
        L.ELU(alpha=0.3), L.Activation("log_softmax"), L.Softmax()])
    x = rng.standard_normal((3, 6, 6, 2)).astype(np.float32)
    want = model.predict(x, verbose=0)
    path = tmp_path / "acts.keras"
    model.save(path)
    loaded = fastcnn.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    assert [type(la).__name__ for la in loaded.layers] == [type(la).__name__
                                                           for la in model.layers]
    assert loaded.layers[5].get_config()["activation"] == "silu"


@pytest.mark.parametrize("act", ["tanh", "gelu", "leaky_relu", "softplus", "log_softmax"])
def test_activation_layer_never_writes_its_input(rng, act):
    x = rng.standard_normal((4, 9)).astype(np.float32)
    keep = x.copy()
    layer = layers.Activation(act)
    y = layer.forward(x, training=True)
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(y, getattr(activations, act)(x))
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(x, keep)
    assert dx.shape == x.shape


@pytest.mark.parametrize("act", ["tanh", "elu", "gelu", "hard_silu"])
def test_dense_activation_predict_matches_manual(rng, act):
    model = fastcnn.Sequential([fastcnn.Input(shape=(5,)), layers.Dense(7, activation=act)])
    x = rng.standard_normal((6, 5)).astype(np.float32)
    k, b = model.layers[0].get_weights()
    want = getattr(activations, act)((x.astype(np.float64) @ k + b).astype(np.float32))
    assert_close(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


class _Spy:
    """Stands in for fastcnn._ext in ops.activation: any C call is recorded."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append(name)
        return call


@pytest.mark.parametrize("call", [
    lambda: ops.activation(np.zeros(3, np.float32), "mish"),
    lambda: ops.activation(np.zeros(3, np.float32), "elu", alpha=float("nan")),
    lambda: ops.activation(np.zeros(3, np.float32), "relu", out=np.zeros(4, np.float32)),
    lambda: ops.activation_backward(np.zeros(3, np.float32), np.zeros(4, np.float32), "tanh"),
    lambda: ops.softmax_axis(np.zeros((2, 3), np.float32), axis=2),
    lambda: ops.softmax_axis(np.float32(1.0)),
    lambda: ops.softmax_axis_backward(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)),
    lambda: ops.prelu(np.zeros((2, 3), np.float32), np.zeros(2, np.float32)),
    lambda: ops.prelu_backward(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32),
                               np.zeros(3, np.float32), dalpha=np.zeros(2, np.float32)),
])
def test_invalid_input_raises_before_any_c_call(monkeypatch, call):
    import importlib
    module = importlib.import_module("fastcnn.ops.activation")  # the name is the function
    spy = _Spy()
    monkeypatch.setattr(module, "_ext", spy)
    with pytest.raises(ValueError):
        call()
    assert spy.calls == []
