"""Real Keras 3 (JAX backend) as the oracle for Conv2DTranspose, Conv1D, the 1-D pools,
GlobalAveragePooling1D, GlobalMaxPooling2D and UpSampling2D: same config keys and values,
same weight shapes, same outputs, and the gradients jax.grad gives. Skipped without keras."""
import json
import os

import numpy as np
import pytest

from fastcnn import layers
from conftest import assert_close

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - another backend was preselected
    pytest.skip("the Keras oracle tests run on the JAX backend", allow_module_level=True)
import jax  # noqa: E402

CASES = [  # (class name, args, kwargs, input shape)
    ("Conv2DTranspose", (6, 3), dict(strides=2, padding="same", activation="relu"),
     (2, 5, 7, 5)),
    ("Conv2DTranspose", (4, (3, 2)), dict(strides=(3, 2), padding="same",
                                          output_padding=(1, 1)), (2, 4, 5, 3)),
    ("Conv2DTranspose", (5, 4), dict(strides=2, padding="valid", output_padding=1,
                                     activation="sigmoid"), (1, 3, 4, 9)),
    ("Conv2DTranspose", (3, 3), dict(padding="same", use_bias=False), (2, 6, 6, 4)),
    ("Conv2DTranspose", (3, 2), dict(strides=3), (2, 3, 3, 2)),
    ("Conv1D", (4, 3), dict(strides=2, padding="causal", activation="relu"), (2, 11, 3)),
    ("Conv1D", (5, 4), dict(strides=3, padding="same"), (2, 13, 7)),
    ("Conv1D", (2, 1), dict(use_bias=False), (3, 5, 9)),
    ("MaxPooling1D", (), dict(), (2, 9, 3)),
    ("MaxPooling1D", (3,), dict(strides=2, padding="same"), (2, 10, 3)),
    ("AveragePooling1D", (3,), dict(strides=2, padding="same"), (2, 10, 3)),
    ("AveragePooling1D", (2,), dict(strides=1), (2, 7, 5)),
    ("GlobalAveragePooling1D", (), dict(keepdims=True), (2, 7, 5)),
    ("GlobalMaxPooling2D", (), dict(), (2, 5, 4, 3)),
    ("GlobalMaxPooling2D", (), dict(keepdims=True), (2, 3, 3, 6)),
    ("UpSampling2D", (), dict(), (2, 3, 4, 3)),
    ("UpSampling2D", ((3, 2),), dict(interpolation="bilinear"), (2, 5, 4, 3)),
    ("UpSampling2D", (4,), dict(interpolation="bilinear"), (1, 3, 3, 2)),
]
IDS = ["%s-%d" % (c[0], i) for i, c in enumerate(CASES)]


def _pair(name, args, kwargs, shape, rng):
    k = getattr(keras.layers, name)(*args, **kwargs)
    f = getattr(layers, name)(*args, **kwargs)
    k.build(shape)
    f.build(shape)
    weights = [rng.standard_normal(np.shape(w)).astype(np.float32) * 0.5 for w in k.weights]
    for var, w in zip(k.weights, weights):
        var.assign(w)
    if weights:
        f.set_weights(weights)
    return k, f


def _jsonable(config):
    return json.loads(json.dumps(config))


@pytest.mark.parametrize("name,args,kwargs,shape", CASES, ids=IDS)
def test_config_and_weights_as_keras(name, args, kwargs, shape):
    k = getattr(keras.layers, name)(*args, name="x", **kwargs)
    f = getattr(layers, name)(*args, name="x", **kwargs)
    kc, fc = _jsonable(k.get_config()), _jsonable(f.get_config())
    assert set(fc) == set(kc)
    for key in kc:
        if key in ("dtype",) or key.endswith("initializer"):
            continue
        if key == "activation":
            assert fc[key] == kc[key] or (fc[key] is None and kc[key] == "linear"), key
            continue
        assert fc[key] == kc[key], key
    k.build(shape)
    f.build(shape)
    assert [tuple(w.shape) for w in f.get_weights()] == [tuple(w.shape) for w in k.weights]
    # fastcnn builds from Keras' own config too
    again = type(f).from_config({key: v for key, v in kc.items() if key != "dtype"})
    assert again.compute_output_shape(shape) == tuple(k.compute_output_shape(shape))


@pytest.mark.parametrize("name,args,kwargs,shape", CASES, ids=IDS)
def test_forward_and_gradients_match_keras(name, args, kwargs, shape, rng):
    k, f = _pair(name, args, kwargs, shape, rng)
    x = rng.standard_normal(shape).astype(np.float32)
    if name == "GlobalMaxPooling2D":
        x = np.round(x, 0)  # ties: both split the gradient equally
    yk = np.asarray(k(x))
    yf = f.forward(x, training=True)
    assert_close(yf, yk, 2e-5, 2e-5, "forward")
    g = rng.standard_normal(yk.shape).astype(np.float32)

    def loss(trainable, x_):
        y, _ = k.stateless_call(trainable, [], x_)
        return (y * g).sum()

    tv = [v.value for v in k.trainable_variables]
    gk_w, gk_x = jax.grad(loss, argnums=(0, 1))(tv, x)
    dx = f.backward(g)
    assert_close(dx, np.asarray(gk_x), 2e-5, 2e-5, "dx")
    assert len(f.gradients) == len(gk_w)
    for mine, theirs in zip(f.gradients, gk_w):
        assert_close(mine, np.asarray(theirs), 2e-5, 2e-5, "weight gradient")


def _autoencoder(L, Model):
    inputs = L.Input(shape=(12, 12, 1))
    x = L.Conv2D(8, 3, activation="relu", padding="same")(inputs)
    x = L.MaxPooling2D(2, padding="same")(x)
    x = L.Conv2DTranspose(6, 3, strides=2, activation="relu", padding="same")(x)
    x = L.MaxPooling2D(2)(x)  # a ReLU-activated layer before a max-pool: fused backward
    x = L.UpSampling2D(2, interpolation="bilinear")(x)
    x = L.Conv2DTranspose(5, 3, strides=2, activation="relu", padding="same")(x)
    x = L.Conv2D(1, 3, strides=2, activation="sigmoid", padding="same")(x)
    return Model(inputs, x)


def _sequence_model(L, Model):
    inputs = L.Input(shape=(16, 3))
    x = L.Conv1D(8, 3, padding="causal", activation="relu")(inputs)
    x = L.MaxPooling1D(2)(x)
    x = L.Conv1D(8, 3, strides=2, padding="same")(x)
    y = L.AveragePooling1D(2, padding="same")(x)
    return Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(y)))


@pytest.mark.parametrize("build,loss", [(_autoencoder, "binary_crossentropy"),
                                        (_sequence_model, "mse")])
def test_one_sgd_step_matches_keras(build, loss, rng):
    import fastcnn
    keras.utils.clear_session()
    fastcnn.utils.clear_session()
    km = build(keras.layers, keras.Model)
    fm = build(fastcnn.layers, fastcnn.Model)
    fm.set_weights([np.asarray(w) for w in km.get_weights()])
    shape = (4,) + tuple(km.input_shape[1:])
    x = rng.random(shape).astype(np.float32)
    y = (rng.random((4,) + tuple(km.output_shape[1:])).astype(np.float32)
         if loss == "mse" else x)
    km.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
    fm.compile(optimizer=fastcnn.optimizers.SGD(0.5), loss=loss)
    assert_close(fm.predict(x, verbose=0), np.asarray(km.predict(x, verbose=0)), 1e-5, 1e-5)
    lk = float(km.train_on_batch(x, y))
    lf = fm.train_on_batch(x, y)
    lf = float(lf[0] if isinstance(lf, (list, tuple)) else lf)
    assert abs(lk - lf) < 1e-5 * max(1.0, abs(lk))
    for a, b in zip(fm.get_weights(), km.get_weights()):
        assert_close(a, np.asarray(b), 1e-4, 1e-5, "weights after one step")
