"""Initializers: every keras.initializers name resolves to the same class, the
distributions match Keras' definitions (moments and bounds, against formulas and against
samples drawn by real Keras 3), seeds reproduce, configs round-trip."""
import math
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import initializers as I

os.environ.setdefault("KERAS_BACKEND", "jax")


def keras_or_skip():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover - another backend preselected
        pytest.skip("the Keras oracle tests run on the JAX backend")
    return keras


TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
SHAPE = (3, 3, 64, 128)          # fan_in 576, fan_out 1152, 73728 samples


def fans(shape):
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


def expected_moments(name, shape):
    """(mean, std, bound) of Keras' definition of each random initializer."""
    fan_in, fan_out = fans(shape)
    avg = (fan_in + fan_out) / 2
    uniform = lambda scale: (0.0, math.sqrt(scale), math.sqrt(3 * scale))  # noqa: E731
    normal = lambda scale: (0.0, math.sqrt(scale), 2 * math.sqrt(scale) / TRUNC_STD)  # noqa
    return {
        "random_uniform": (0.0, 0.1 / math.sqrt(12), 0.05),
        "random_normal": (0.0, 0.05, None),
        "truncated_normal": (0.0, 0.05 * TRUNC_STD, 0.1),
        "glorot_uniform": uniform(1 / avg), "glorot_normal": normal(1 / avg),
        "he_uniform": uniform(2 / fan_in), "he_normal": normal(2 / fan_in),
        "lecun_uniform": uniform(1 / fan_in), "lecun_normal": normal(1 / fan_in),
        "variance_scaling": normal(1 / fan_in),
    }[name]


RANDOM = ["random_uniform", "random_normal", "truncated_normal", "glorot_uniform",
          "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
          "variance_scaling"]


@pytest.mark.parametrize("name", RANDOM)
def test_distribution_moments_and_bounds(name):
    x = I.get(name)(SHAPE)
    assert x.dtype == np.float32 and x.shape == SHAPE
    x = x.astype(np.float64)
    mean, std, bound = expected_moments(name, SHAPE)
    n = x.size
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(n)
    assert abs(x.std() / std - 1) < 0.02
    if bound is not None:
        assert np.abs(x).max() <= bound * (1 + 1e-6)
        assert np.abs(x).max() > 0.95 * bound  # the support is used up to its edge


@pytest.mark.parametrize("name", RANDOM)
def test_samples_agree_with_keras_samples(name):
    keras = keras_or_skip()
    ours = I.get(name)(SHAPE)
    theirs = np.asarray(keras.initializers.get(name)(SHAPE))
    assert abs(ours.std() / theirs.std() - 1) < 0.03
    assert abs(ours.mean() - theirs.mean()) < 0.05 * theirs.std()
    if name != "random_normal":  # bounded support: both reach the same edge
        assert abs(np.abs(ours).max() / np.abs(theirs).max() - 1) < 0.02


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("dist", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_variance(mode, dist):
    shape = (5, 5, 16, 48)
    fan_in, fan_out = fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    x = I.VarianceScaling(2.5, mode, dist, seed=1)(shape).astype(np.float64)
    assert abs(x.var() / (2.5 / fan) - 1) < 0.04


@pytest.mark.parametrize("shape", [(6, 6), (10, 4), (4, 10), (3, 3, 4, 8), (2, 2, 3, 20)])
def test_orthogonal(shape):
    q = I.Orthogonal(gain=1.5, seed=3)(shape).astype(np.float64)
    assert q.shape == shape
    m = q.reshape(-1, shape[-1])
    if m.shape[0] >= m.shape[1]:
        assert np.allclose(m.T @ m, 2.25 * np.eye(m.shape[1]), atol=1e-5)
    else:
        assert np.allclose(m @ m.T, 2.25 * np.eye(m.shape[0]), atol=1e-5)


def test_constant_initializers():
    assert np.array_equal(I.get("identity")((2, 3)), np.eye(2, 3, dtype=np.float32))
    assert np.array_equal(I.Identity(2.0)((3, 3)), 2 * np.eye(3, dtype=np.float32))
    assert np.array_equal(I.get("ones")((2,)), np.ones(2, np.float32))
    assert np.array_equal(I.get("zero")((2,)), np.zeros(2, np.float32))
    assert np.array_equal(I.Constant(0.5)((2, 2)), np.full((2, 2), 0.5, np.float32))


def test_seeds_reproduce():
    for cls in (I.RandomUniform, I.RandomNormal, I.TruncatedNormal, I.GlorotUniform,
                I.HeNormal, I.LecunUniform, I.Orthogonal):
        a, b = cls(seed=7)((20, 30)), cls(seed=7)((20, 30))
        assert np.array_equal(a, b), cls.__name__
        assert not np.array_equal(a, cls(seed=8)((20, 30))), cls.__name__
        init = cls(seed=7)
        assert np.array_equal(init((20, 30)), init((20, 30)))  # same values every call
    fastcnn.utils.set_random_seed(11)
    a = I.GlorotUniform()((8, 8))
    fastcnn.utils.set_random_seed(11)
    assert np.array_equal(a, I.GlorotUniform()((8, 8)))


def test_every_keras_name_resolves_to_the_same_class():
    keras = keras_or_skip()
    from keras.src.initializers import ALL_OBJECTS_DICT
    unsupported = {"STFT", "stft", "STFTInitializer", "Initializer", "initializer"}
    for name, cls in ALL_OBJECTS_DICT.items():
        if name in unsupported:
            with pytest.raises(ValueError, match="Unknown initializer"):
                I.get(name)
            continue
        ours = I.get(name)
        assert type(ours).__name__ == cls.__name__, name
        theirs = cls()
        for key, value in theirs.get_config().items():
            if key in ("input_axes", "output_axes"):
                continue
            assert ours.get_config()[key] == value, (name, key)
        # Keras' own serialized form loads in fastcnn
        back = I.get(keras.initializers.serialize(theirs))
        assert type(back).__name__ == cls.__name__
    for attr in ("glorot_uniform", "he_normal", "orthogonal", "identity", "zeros"):
        assert isinstance(getattr(I, attr)(), I.Initializer)


def test_config_round_trip():
    for init in (I.RandomUniform(-1, 2, seed=3), I.TruncatedNormal(0.5, 2.0, seed=1),
                 I.VarianceScaling(2.0, "fan_out", "uniform", seed=4), I.HeUniform(seed=5),
                 I.Orthogonal(0.5, seed=6), I.Identity(3.0), I.Constant(1.5)):
        again = I.deserialize(I.serialize(init))
        assert type(again) is type(init) and again.get_config() == init.get_config()
        assert np.array_equal(again((4, 5)), init((4, 5)))
    layer = fastcnn.layers.Dense(3, kernel_initializer=I.Orthogonal(seed=2))
    copy = fastcnn.layers.Dense.from_config(layer.get_config())
    assert copy.kernel_initializer.get_config() == {"gain": 1.0, "seed": 2}


@pytest.mark.parametrize("bad, match", [
    (lambda: I.Identity()((2, 2, 2)), "2D"),
    (lambda: I.Orthogonal()((5,)), "two-dimensional"),
    (lambda: I.Orthogonal(seed=-1), "seed"),
    (lambda: I.get("glorot"), "glorot"),
    (lambda: I.deserialize({"class_name": "Nope"}), "Nope"),
    (lambda: I.VarianceScaling(mode="fan"), "mode"),
])
def test_bad_arguments_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()
