"""utils.to_categorical / utils.normalize and count_params against real Keras 3."""
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import layers as L
from fastcnn import utils

os.environ.setdefault("KERAS_BACKEND", "jax")


def keras_or_skip():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover - another backend preselected
        pytest.skip("the Keras oracle tests run on the JAX backend")
    return keras


@pytest.mark.parametrize("ids,num_classes", [([0, 2, 1], None), ([[1], [3]], 5),
                                             (np.array([[0, 1], [2, 0]]), 3), ([4.0], None)])
def test_to_categorical_matches_keras(ids, num_classes):
    keras = keras_or_skip()
    ours = utils.to_categorical(ids, num_classes)
    theirs = keras.utils.to_categorical(ids, num_classes)
    assert ours.dtype == np.float32  # Keras gives float64; fastcnn trains in float32
    assert ours.shape == theirs.shape and np.array_equal(ours, theirs)


@pytest.mark.parametrize("ids,num_classes,match", [([0, 3], 3, "class ids"),
                                                   ([-1], None, "class ids"),
                                                   ([0.5], None, "integer")])
def test_to_categorical_rejects_bad_ids(ids, num_classes, match):
    with pytest.raises(ValueError, match=match):
        utils.to_categorical(ids, num_classes)


@pytest.mark.parametrize("axis", [-1, 1, 2])
@pytest.mark.parametrize("order", [1, 2, np.inf])
def test_normalize_matches_keras(axis, order, rng):
    keras = keras_or_skip()
    x = rng.standard_normal((3, 4, 5))
    x[0, :, 1] = 0  # a zero slice stays zero
    ours = utils.normalize(x, axis, order)
    np.testing.assert_allclose(ours, keras.utils.normalize(x, axis, order), rtol=1e-12)
    assert ours.dtype == x.dtype


def test_normalize_axis_zero_and_none(rng):
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(np.linalg.norm(utils.normalize(x, 0), axis=0), 1.0)
    np.testing.assert_allclose(np.linalg.norm(utils.normalize(x, None)), 1.0)
    assert np.array_equal(utils.normalize(np.zeros(3)), np.zeros(3))
    with pytest.raises(ValueError, match="normalize"):
        utils.normalize(x, axis=3)


def test_count_params_matches_keras():
    keras = keras_or_skip()

    def build(L_, M):
        return M([L_.Input((12, 12, 3)), L_.Conv2D(8, 3), L_.BatchNormalization(),
                  L_.MaxPooling2D(), L_.Flatten(), L_.Dense(5, use_bias=False)])

    km, fm = build(keras.layers, keras.Sequential), build(L, fastcnn.Sequential)
    assert fm.count_params() == km.count_params()
    for a, b in zip(fm.layers, km.layers):
        assert a.count_params() == b.count_params(), a.name
    with pytest.raises(ValueError, match="isn't built"):
        L.Dense(3).count_params()
