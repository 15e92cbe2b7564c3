"""trainable=False (fine-tuning): frozen weights never change in fit (bitwise), a frozen
BatchNormalization runs in inference mode, freezing a nested model freezes its layers,
changing the trainable set after training needs compile() again, and a frozen-base /
trained-head run matches real Keras 3 (its counts, summary lines and numbers)."""
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import layers as L
from conftest import assert_close


def _snapshot(layer):
    return [w.copy() for w in layer.get_weights()]


def _same_bits(a, b):
    return len(a) == len(b) and all(np.array_equal(u.view(np.uint32), v.view(np.uint32))
                                    for u, v in zip(a, b))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_frozen_layers_of_every_kind_keep_their_bits(optimizer):
    fastcnn.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 12, size=(40, 6)).astype(np.float32)
    y = rng.normal(size=(40, 2)).astype(np.float32)
    frozen = [L.Embedding(12, 4, embeddings_regularizer="l2"),
              L.LayerNormalization(gamma_regularizer="l2"),
              L.Dense(4, kernel_regularizer="l1", kernel_constraint="non_neg"),
              L.GroupNormalization(groups=2), L.BatchNormalization()]
    model = fastcnn.Sequential([fastcnn.Input((6,)), frozen[0], frozen[1], L.Reshape((6, 4, 1)),
                                L.Conv2D(4, 3, padding="same"), frozen[3], frozen[4],
                                L.Flatten(), frozen[2], L.Dense(2)])
    for layer in frozen:
        layer.trainable = False
    before = [_snapshot(layer) for layer in frozen]
    head_before = _snapshot(model.layers[-1])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for layer, b in zip(frozen, before):
        assert _same_bits(b, layer.get_weights()), layer.name
    assert not _same_bits(head_before, model.layers[-1].get_weights())


def test_frozen_batch_norm_runs_in_inference_mode():
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, size=(16, 5)).astype(np.float32)
    bn = L.BatchNormalization()
    bn(x)
    bn.set_weights([rng.normal(size=5), rng.normal(size=5), rng.normal(size=5),
                    rng.uniform(0.5, 2.0, size=5)])
    inference = bn(x, training=False)
    bn.trainable = False
    frozen_training = bn(x, training=True)
    assert np.array_equal(inference, frozen_training)
    bn.trainable = True
    assert not np.allclose(bn(x, training=True), inference)


def test_model_trainable_freezes_nested_layers_and_back():
    base = fastcnn.Sequential([fastcnn.Input((8,)), L.Dense(6), L.BatchNormalization()],
                              name="base")
    base.trainable = False
    inp = fastcnn.Input((8,))
    model = fastcnn.Model(inp, L.Dense(2)(base(inp)))
    assert [layer.trainable for layer in base.layers] == [False, False]
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 6
    base.trainable = True
    assert [layer.trainable for layer in base.layers] == [True, True]
    assert len(model.trainable_weights) == 6


def test_changing_trainable_after_training_needs_recompile():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(16, 4)), rng.normal(size=(16, 2))
    model = fastcnn.Sequential([fastcnn.Input((4,)), L.Dense(3), L.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.layers[0].trainable = False  # before the first step: fine, as Keras
    model.fit(x, y, epochs=1, verbose=0)
    model.layers[0].trainable = True
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="compile"):
        model.train_on_batch(x, y)
    model.compile(optimizer="adam", loss="mse")
    before = _snapshot(model.layers[0])
    model.fit(x, y, epochs=1, verbose=0)
    assert not _same_bits(before, model.layers[0].get_weights())


# ---------------------------------------------------------------- against real Keras 3

def _fine_tune_model(lib, name):
    Lk = lib.layers
    base = lib.Sequential([lib.Input((6, 6, 3)), Lk.Conv2D(4, 3, activation="relu"),
                           Lk.BatchNormalization(), Lk.LayerNormalization(),
                           Lk.GlobalAveragePooling2D()], name="base")
    base.trainable = False
    inp = lib.Input((6, 6, 3))
    out = Lk.Dense(3, activation="softmax", name="head")(base(inp))
    return lib.Model(inp, out, name=name), base


def test_fine_tuning_matches_keras(monkeypatch):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover
        pytest.skip("the Keras oracle tests run on the JAX backend")
    keras.utils.clear_session()
    fastcnn.utils.clear_session()
    kmodel, kbase = _fine_tune_model(keras, "ft")
    fmodel, fbase = _fine_tune_model(fastcnn, "ft")
    rng = np.random.default_rng(4)
    assert len(kmodel.weights) == len(fmodel.weights)
    for kv, fv in zip(kmodel.weights, fmodel.weights):
        assert tuple(kv.shape) == fv.shape and kv.trainable == fv.trainable, fv.path
        value = rng.normal(size=fv.shape).astype(np.float32)
        if "moving_variance" in fv.path:
            value = np.abs(value) + 0.5
        kv.assign(value)
        fv.assign(value)
    assert len(kmodel.trainable_weights) == len(fmodel.trainable_weights) == 2
    assert len(kmodel.non_trainable_weights) == len(fmodel.non_trainable_weights)
    monkeypatch.setenv("COLUMNS", "200")
    klines, flines = [], []
    kmodel.summary(print_fn=lambda s, line_break=None: klines.append(s), show_trainable=True)
    fmodel.summary(print_fn=flines.append, show_trainable=True)
    pick = lambda lines: [ln.strip() for ln in "\n".join(lines).splitlines()  # noqa: E731
                          if "params" in ln]
    assert pick(flines) == pick(klines)

    x = rng.normal(size=(24, 6, 6, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=24)
    frozen = [w.numpy() for w in fbase.weights]
    for model, opt in ((kmodel, keras.optimizers.SGD(0.1)), (fmodel, "sgd")):
        model.compile(optimizer=opt if model is kmodel else fastcnn.optimizers.SGD(0.1),
                      loss="sparse_categorical_crossentropy")
    kh = kmodel.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    fh = fmodel.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert _same_bits(frozen, [w.numpy() for w in fbase.weights])
    assert_close(fh.history["loss"], kh.history["loss"], rtol=1e-4, atol=1e-5, what="loss")
    assert len(kmodel.weights) == len(fmodel.weights)
    for kv, fv in zip(kmodel.weights, fmodel.weights):
        assert_close(fv.numpy(), np.asarray(kv), rtol=1e-4, atol=1e-5, what=fv.path)


def test_fully_frozen_model_fits_without_changing_anything():
    rng = np.random.default_rng(6)
    model = fastcnn.Sequential([fastcnn.Input((4,)), L.Dense(3), L.BatchNormalization(),
                                L.LayerNormalization(), L.Dense(2)])
    model.trainable = False
    assert [layer.trainable for layer in model.layers] == [False] * 4
    assert model.trainable_weights == []
    model.compile(optimizer="adam", loss="mse")
    before = [w.copy() for w in model.get_weights()]
    hist = model.fit(rng.normal(size=(16, 4)), rng.normal(size=(16, 2)), epochs=2,
                     shuffle=False, verbose=0)
    assert hist.history["loss"][0] == hist.history["loss"][1]
    assert _same_bits(before, model.get_weights())
