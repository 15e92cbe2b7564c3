"""Real Keras 3 (JAX backend) as the oracle for LayerNormalization, GroupNormalization,
Permute, RepeatVector, Embedding and SpatialDropout2D: same configs, same forward, and the
backward against jax.grad of Keras' own layer. Skipped without keras/jax."""
import os

import numpy as np
import pytest

import fastcnn
from conftest import assert_close

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - another backend was preselected
    pytest.skip("the Keras oracle tests run on the JAX backend", allow_module_level=True)
jax = pytest.importorskip("jax")
jnp = jax.numpy


def _same_config(kconf, fconf):
    assert set(kconf) == set(fconf), (set(kconf) ^ set(fconf))
    for key, want in kconf.items():
        got = fconf[key]
        if key in ("name", "dtype"):
            continue
        if isinstance(want, dict) and "class_name" in want:
            assert got["class_name"] == want["class_name"], key
            assert got["config"] == want["config"], key
        else:
            assert got == want, (key, got, want)


def _keras_grads(layer, x, w):
    """jax.grad of sum(layer(x) * w) w.r.t. x and the trainable weights."""
    ntv = [v.value for v in layer.non_trainable_variables]

    def f(tv, xx):
        y, _ = layer.stateless_call(tv, ntv, xx)
        return jnp.sum(y * w)

    tv = [v.value for v in layer.trainable_variables]
    gtv, gx = jax.grad(f, argnums=(0, 1))(tv, jnp.asarray(x))
    return np.asarray(gx), [np.asarray(g) for g in gtv]


CASES = [
    ("LayerNormalization", dict(), (3, 5, 7)),
    ("LayerNormalization", dict(axis=[-2, -1], epsilon=1e-2), (2, 3, 4, 5)),
    ("LayerNormalization", dict(axis=[1, 2, 3], center=False), (2, 3, 4, 5)),
    ("LayerNormalization", dict(rms_scaling=True), (4, 9)),
    ("GroupNormalization", dict(groups=3), (2, 5, 4, 6)),
    ("GroupNormalization", dict(groups=-1, scale=False), (2, 7, 5)),
    ("GroupNormalization", dict(groups=1, epsilon=1e-5), (3, 2, 2, 7)),
    ("Permute", dict(dims=(3, 1, 2)), (2, 3, 4, 5)),
    ("RepeatVector", dict(n=3), (4, 7)),
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name,kwargs,shape", CASES)
def test_layer_matches_keras(name, kwargs, shape):
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 2.0, size=shape).astype(np.float32)
    kl = getattr(keras.layers, name)(**kwargs)
    fl = getattr(fastcnn.layers, name)(**kwargs)
    _same_config(kl.get_config(), fl.get_config())
    kl.build(shape)
    fl._build_for((None,) + shape[1:])
    assert [tuple(v.shape) for v in kl.weights] == [v.shape for v in fl.weights]
    assert [v.name for v in kl.weights] == [v.name for v in fl.weights]
    weights = [rng.normal(size=v.shape).astype(np.float32) for v in kl.weights]
    kl.set_weights(weights)
    fl.set_weights(weights)
    _same_config(kl.get_config(), fl.get_config())  # after build (axis, groups change)
    want = np.asarray(kl(x))
    got = fl.forward(x, training=True)
    assert_close(got, want, rtol=1e-4, atol=1e-5, what="forward")
    w = rng.normal(size=want.shape).astype(np.float32)
    gx, gw = _keras_grads(kl, x, w)
    dx = fl.backward(w)
    assert_close(dx, gx, rtol=1e-5, atol=1e-5, what="dx")
    assert len(fl.gradients) == len(gw)
    for ours, theirs in zip(fl.gradients, gw):
        assert_close(ours, theirs, rtol=1e-5, atol=1e-5, what="weight gradient")


def test_embedding_matches_keras():
    rng = np.random.default_rng(4)
    idx = rng.integers(0, 13, size=(5, 6))
    kl = keras.layers.Embedding(13, 4)
    fl = fastcnn.layers.Embedding(13, 4)
    _same_config(kl.get_config(), fl.get_config())
    kl.build(idx.shape)
    fl._build_for((None, 6))
    table = rng.normal(size=(13, 4)).astype(np.float32)
    kl.set_weights([table])
    fl.set_weights([table])
    assert [v.name for v in kl.weights] == [v.name for v in fl.weights]
    want = np.asarray(kl(idx))
    assert_close(fl.forward(idx.astype(np.float32), training=True), want, rtol=0, atol=0)
    w = rng.normal(size=want.shape).astype(np.float32)

    def f(t):
        y, _ = kl.stateless_call([t], [], idx)
        return jnp.sum(y * w)

    fl.backward(w, need_input_grad=False)
    assert_close(fl.gradients[0], np.asarray(jax.grad(f)(jnp.asarray(table))), rtol=1e-5,
                 atol=1e-6)


def test_spatial_dropout_config_and_semantics_match_keras():
    kl = keras.layers.SpatialDropout2D(0.3, seed=5)
    fl = fastcnn.layers.SpatialDropout2D(0.3, seed=5)
    _same_config(kl.get_config(), fl.get_config())
    x = np.ones((4, 3, 3, 16), np.float32)
    ky = np.asarray(kl(x, training=True))
    fy = fl(x, training=True)
    # the random streams differ; the rule is the same: whole channels, kept ones scaled
    for y in (ky, fy):
        assert np.all((y == 0) | np.isclose(y, 1 / 0.7, rtol=1e-6))
        assert np.all(np.ptp(y, axis=(1, 2)) == 0)
    assert np.array_equal(np.asarray(kl(x)), fl(x))
