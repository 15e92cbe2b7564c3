"""Real Keras 3 (JAX backend) as the oracle for graph models: the same functional model built
in both gives the same summary text, the same config structure and, with the same weights,
the same outputs. Skipped when keras/jax are not installed (pip install keras jax jaxlib)."""
import os

import numpy as np
import pytest

import fastcnn
from conftest import assert_close

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - another backend was preselected
    pytest.skip("the Keras oracle tests run on the JAX backend", allow_module_level=True)


def residual(L, Model, Input, name):
    inputs = Input(shape=(12, 12, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.BatchNormalization()(y)
    x = L.Activation("relu")(L.add([x, y]))
    s = L.Conv2D(16, 1, strides=2)(x)
    z = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Concatenate()([L.Maximum()([s, z]), L.Subtract()([s, z])])
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = L.Cropping2D(((0, 1), (1, 0)))(x)
    x = L.MaxPooling2D()(x)
    x = L.GlobalAveragePooling2D()(x)
    return Model(inputs, L.Dense(5)(x), name=name)


@pytest.fixture
def pair():
    keras.utils.clear_session()
    fastcnn.utils.clear_session()
    fastcnn.utils.set_random_seed(0)
    return (residual(keras.layers, keras.Model, keras.Input, "res"),
            residual(fastcnn.layers, fastcnn.Model, fastcnn.Input, "res"))


def test_summary_text_is_keras(pair, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich would clip Keras' table to the terminal
    k, f = pair
    for kwargs in (dict(line_length=108), dict(line_length=130, show_trainable=True)):
        want, got = [], []
        k.summary(print_fn=lambda s, line_break=None: want.append(s), **kwargs)
        f.summary(print_fn=got.append, **kwargs)
        assert "\n".join(got).strip() == "\n".join(want).strip()


def test_config_structure_is_keras(pair):
    k, f = pair
    kc, fc = k.get_config(), f.get_config()
    assert fc["input_layers"] == kc["input_layers"]
    assert fc["output_layers"] == kc["output_layers"]
    assert [e["class_name"] for e in fc["layers"]] == [e["class_name"] for e in kc["layers"]]
    assert [e["name"] for e in fc["layers"]] == [e["name"] for e in kc["layers"]]

    def history(entry):
        out = []
        for node in entry["inbound_nodes"]:
            args = node["args"]
            flat = args[0] if len(args) == 1 and isinstance(args[0], list) else args
            out.append([a["config"]["keras_history"] for a in flat])
        return out
    for ke, fe in zip(kc["layers"], fc["layers"]):
        assert history(fe) == history(ke), fe["name"]
    # fastcnn rebuilds a model from Keras' own config
    rebuilt = fastcnn.Model.from_config(kc)
    assert [l.name for l in rebuilt.layers] == [l.name for l in k.layers]
    assert rebuilt.count_params() == k.count_params()


def test_same_weights_same_outputs(pair):
    k, f = pair
    assert [tuple(w.shape) for w in k.weights] == [w.shape for w in f.weights]
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in f.weights]
    # positive moving variances
    weights = [np.abs(w) + 0.5 if "variance" in v.path else w
               for w, v in zip(weights, f.weights)]
    f.set_weights(weights)
    k.set_weights(weights)
    x = rng.uniform(0, 1, (4, 12, 12, 3)).astype(np.float32)
    want = np.asarray(k(x, training=False))
    assert_close(f(x), want, 1e-4, 1e-5, "inference vs Keras")
    assert_close(f.predict(x, verbose=0), want, 1e-4, 1e-5, "predict vs Keras")
