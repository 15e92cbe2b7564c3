"""Rescaling / RandomFlip / RandomTranslation layers and uint8 input to fit/evaluate/predict."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, models


def test_rescaling_forward_backward(rng):
    x = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    layer = layers.Rescaling(0.5, offset=-1.0)
    np.testing.assert_array_equal(layer(x), x * np.float32(0.5) - np.float32(1.0))
    layer.forward(x, training=True)
    dy = rng.normal(size=x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dy), dy * np.float32(0.5))


def test_random_layers_are_identity_at_inference(rng):
    x = rng.normal(size=(5, 6, 7, 3)).astype(np.float32)
    for layer in (layers.RandomFlip("horizontal", seed=3),
                  layers.RandomTranslation(0.3, 0.3, fill_mode="constant", seed=4)):
        np.testing.assert_array_equal(layer(x, training=False), x)


def test_random_layers_augment_when_called_directly(rng):
    """Keras 3: a random augmentation layer called on a batch augments by default (the
    Keras examples' ``data_augmentation(images)``); models still augment only in fit."""
    x = rng.normal(size=(8, 6, 7, 3)).astype(np.float32)
    flip = layers.RandomFlip("horizontal", seed=3)
    assert not np.array_equal(flip(x), x)
    model = fastcnn.Sequential([fastcnn.Input((6, 7, 3)), layers.RandomFlip("horizontal", seed=3)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


def test_random_flip_flips_some_images_exactly(rng):
    x = rng.normal(size=(64, 4, 5, 2)).astype(np.float32)
    y = layers.RandomFlip("horizontal", seed=7)(x, training=True)
    flipped = [np.array_equal(y[i], x[i, :, ::-1]) for i in range(64)]
    kept = [np.array_equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54


def test_random_translation_shifts_by_whole_pixels_with_zero_fill(rng):
    x = rng.uniform(1, 2, size=(50, 8, 8, 1)).astype(np.float32)  # no zeros in the data
    y = layers.RandomTranslation(0.25, 0.25, fill_mode="constant", interpolation="nearest",
                                 seed=1)(x, training=True)
    for i in range(50):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(x[i])
                src = x[i][max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)]
                ref[max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)] = src
                found |= np.array_equal(ref, y[i])
        assert found, "image %d is not a whole-pixel shift of its input" % i


@pytest.mark.parametrize("make", [
    lambda: layers.RandomFlip("horizontal", seed=5),
    lambda: layers.RandomTranslation((-0.3, 0.2), 0.4, fill_mode="constant", seed=6),
])
def test_backward_is_the_adjoint(rng, make):
    layer = make()
    x = rng.normal(size=(6, 5, 7, 3)).astype(np.float32)
    y = np.array(layer.forward(x, training=True), dtype=np.float64)
    dy = rng.normal(size=x.shape).astype(np.float32)
    dx = np.array(layer.backward(dy), dtype=np.float64)
    # <A x, dy> == <x, A^T dy>
    np.testing.assert_allclose((y * dy).sum(), (x * dx).sum(), rtol=1e-5)


def test_same_seed_same_augmentation_and_config_roundtrip(rng):
    x = rng.normal(size=(8, 6, 6, 2)).astype(np.float32)
    a = layers.RandomTranslation(0.3, 0.3, fill_mode="constant", seed=11)
    b = layers.deserialize(layers.serialize(a))
    np.testing.assert_array_equal(a(x, training=True), b(x, training=True))


@pytest.mark.parametrize("bad", [
    lambda: layers.RandomFlip("diagonal"),
    lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="mirror"),
    lambda: layers.RandomTranslation(1.5, 0.1, fill_mode="constant"),
    lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="constant", fill_value=float("inf")),
    lambda: layers.Rescaling(float("nan")),
    lambda: layers.Rescaling([1.0, 2.0]),
])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError):
        bad()


def _small_model(front=()):
    fastcnn.utils.set_random_seed(0)
    m = models.Sequential([layers.Input(shape=(8, 8, 3)), *front,
                           layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                           layers.Dense(3)])
    m.compile(optimizer="adam",
              loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    return m


def test_uint8_input_trains_exactly_like_its_float32_copy(rng):
    x = rng.integers(0, 256, size=(70, 8, 8, 3)).astype(np.uint8)
    y = rng.integers(0, 3, size=(70, 1)).astype(np.uint8)
    runs = []
    for data in (x, x.astype(np.float32)):
        m = _small_model([layers.Rescaling(1 / 255.0)])
        h = m.fit(data, y, batch_size=16, epochs=2, validation_data=(data[:20], y[:20]),
                  verbose=0)
        runs.append((m.get_weights(), h.history, m.predict(data, verbose=0),
                     m.evaluate(data, y, verbose=0)))
    (w1, h1, p1, e1), (w2, h2, p2, e2) = runs
    for a, b in zip(w1, w2):
        assert a.tobytes() == b.tobytes()
    assert h1 == h2 and e1 == e2
    assert p1.tobytes() == p2.tobytes()


def test_fit_with_augmentation_layers_runs_and_is_reproducible(rng):
    x = rng.integers(0, 256, size=(40, 8, 8, 3)).astype(np.uint8)
    y = rng.integers(0, 3, size=(40,))
    front = lambda: [layers.Rescaling(1 / 255.0), layers.RandomFlip("horizontal"),  # noqa: E731
                     layers.RandomTranslation(0.125, 0.125, fill_mode="constant")]
    ws = []
    for _ in range(2):
        m = _small_model(front())
        m.fit(x, y, batch_size=8, epochs=2, verbose=0)
        ws.append(m.get_weights())
    for a, b in zip(*ws):
        assert a.tobytes() == b.tobytes()
