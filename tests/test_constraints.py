"""Constraints: the C norm kernels against NumPy and real Keras 3 (JAX), bitwise 1 vs 2
threads, application after an optimizer step as Keras does, configs and bad arguments."""
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import constraints, ops
from fastcnn import layers as L
from conftest import assert_close, num_threads

os.environ.setdefault("KERAS_BACKEND", "jax")


def keras_or_skip():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover - another backend preselected
        pytest.skip("the Keras oracle tests run on the JAX backend")
    return keras


def norm_ref(w, kind, axis, min_value=0.0, max_value=1.0, rate=1.0):
    w = np.asarray(w, np.float64)
    axis = tuple(axis) if isinstance(axis, list) else axis
    norms = np.sqrt((w * w).sum(axis=axis, keepdims=True))
    if kind == "max_norm":
        desired = np.minimum(norms, max_value)
    elif kind == "unit_norm":
        desired = 1.0
    else:
        desired = rate * np.clip(norms, min_value, max_value) + (1 - rate) * norms
    return w * (desired / (1e-7 + norms))


CASES = [((7, 5), 0), ((7, 5), 1), ((7, 5), -1), ((3, 3, 5, 9), [0, 1, 2]),
         ((3, 3, 5, 9), 3), ((3, 3, 5, 9), [0, 2]), ((2, 3, 4), [1, 2]), ((70, 130), 0)]


@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("kind,kw", [("max_norm", {"max_value": 1.5}), ("unit_norm", {}),
                                     ("min_max_norm", {"min_value": 0.8, "max_value": 1.6,
                                                       "rate": 0.7})])
def test_norm_constraints_match_numpy(shape, axis, kind, kw, rng):
    w = (rng.standard_normal(shape) * rng.uniform(0.1, 2.0, shape[-1])).astype(np.float32)
    expected = norm_ref(w, kind, axis, **kw)
    out = ops.norm_constraint(w.copy(), kind, axis, **kw)
    assert_close(out, expected, rtol=1e-6, atol=1e-7)


def test_non_neg_and_zero_slices(rng):
    w = rng.standard_normal((5, 4)).astype(np.float32)
    assert np.array_equal(constraints.NonNeg()(w), np.maximum(w, 0))
    z = np.zeros((3, 2), np.float32)
    assert np.array_equal(constraints.UnitNorm()(z), z)  # 0 / (1e-7 + 0) stays 0


def test_constraint_kernels_bitwise_identical_at_1_and_2_threads(rng):
    w = rng.standard_normal((3, 3, 64, 96)).astype(np.float32)
    outs = []
    for n in (1, 2):
        with num_threads(n):
            outs.append([constraints.MaxNorm(0.5, [0, 1, 2])(w),
                         constraints.MinMaxNorm(0.2, 0.9, 0.5, 3)(w),
                         constraints.UnitNorm(0)(w), constraints.NonNeg()(w)])
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda C: C.MaxNorm(0.7, 0), lambda C: C.MaxNorm(1.2, [0, 1, 2]), lambda C: C.NonNeg(),
    lambda C: C.UnitNorm(1), lambda C: C.MinMaxNorm(0.5, 0.9, 0.6, [0, 1, 2]),
])
def test_constraints_match_keras(make, rng):
    keras = keras_or_skip()
    w = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    ours, theirs = make(constraints), make(keras.constraints)
    assert_close(ours(w), np.asarray(theirs(w)), rtol=2e-6, atol=1e-7)
    assert ours.get_config() == theirs.get_config()
    assert type(constraints.get(keras.constraints.serialize(theirs))) is type(ours)


def test_names_match_keras():
    keras = keras_or_skip()
    for name in ("max_norm", "non_neg", "unit_norm", "min_max_norm", "MaxNorm", "NonNeg",
                 "UnitNorm", "MinMaxNorm"):
        ours, theirs = constraints.get(name), keras.constraints.get(name)
        assert type(ours).__name__ == type(theirs).__name__
        assert ours.get_config() == theirs.get_config()


def _constrained(L_, C_, M):
    return M([
        L_.Input((6, 6, 2)),
        L_.Conv2D(4, 3, kernel_constraint=C_.MaxNorm(0.3, axis=[0, 1, 2]),
                  bias_constraint=C_.NonNeg()),
        L_.BatchNormalization(gamma_constraint=C_.MinMaxNorm(0.5, 0.9, 1.0, 0),
                              beta_constraint=C_.NonNeg()),
        L_.Flatten(),
        L_.Dense(3, kernel_constraint=C_.UnitNorm(0)),
    ])


def test_constraints_applied_after_a_step_match_keras(rng):
    keras = keras_or_skip()
    keras.utils.clear_session()
    x = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((5, 3)).astype(np.float32)
    km = _constrained(keras.layers, keras.constraints, keras.Sequential)
    fm = _constrained(L, constraints, fastcnn.Sequential)
    weights = [w + 0.05 if w.ndim == 1 else w for w in km.get_weights()]
    km.set_weights(weights)
    fm.set_weights(weights)
    km.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
    fm.compile(optimizer=fastcnn.optimizers.SGD(0.2), loss="mse")
    for _ in range(2):
        assert fm.train_on_batch(x, y) == pytest.approx(float(km.train_on_batch(x, y)),
                                                        rel=1e-5)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        assert_close(a, b, rtol=1e-5, atol=1e-6)
    kernel = fm.layers[0].kernel.numpy()
    assert np.sqrt((kernel ** 2).sum(axis=(0, 1, 2))).max() <= 0.3 + 1e-6


def test_frozen_weights_are_not_constrained(rng):
    m = fastcnn.Sequential([L.Input((4,)), L.Dense(3, kernel_constraint="non_neg"), L.Dense(2)])
    m.layers[0].kernel.assign(-np.ones((4, 3)))
    m.layers[0].trainable = False
    m.compile(optimizer="sgd", loss="mse")
    m.train_on_batch(rng.standard_normal((4, 4)), rng.standard_normal((4, 2)))
    assert np.array_equal(m.layers[0].kernel.numpy(), -np.ones((4, 3), np.float32))
    m.layers[0].trainable = True
    m.compile(optimizer="sgd", loss="mse")
    m.train_on_batch(rng.standard_normal((4, 4)), rng.standard_normal((4, 2)))
    assert (m.layers[0].kernel.numpy() >= 0).all()


def test_config_round_trip_through_save(tmp_path):
    m = _constrained(L, constraints, fastcnn.Sequential)
    m.compile(optimizer="sgd", loss="mse")
    path = str(tmp_path / "c.keras")
    m.save(path)
    loaded = fastcnn.saving.load_model(path)
    for a, b in zip(m.layers, loaded.layers):
        assert a.get_config() == b.get_config()
        assert [repr(v.constraint) for v in a.weights] == [repr(v.constraint)
                                                             for v in b.weights]
    for layer in m.layers:
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == {**layer.get_config(), "name": again.name}


@pytest.mark.parametrize("bad, match", [
    (lambda: constraints.MaxNorm(axis="x"), "axis"),
    (lambda: constraints.MaxNorm(max_value=-1), "max_value"),
    (lambda: constraints.MinMaxNorm(2.0, 1.0), "min_value"),
    (lambda: constraints.MinMaxNorm(rate=float("inf")), "rate"),
    (lambda: constraints.get("max"), "max"),
    (lambda: constraints.get(np.abs), "Constraint"),
    (lambda: constraints.deserialize({"class_name": "Clip", "config": {}}), "Clip"),
    (lambda: constraints.MaxNorm(axis=2)(np.ones((3, 3), np.float32)), "axis"),
    (lambda: constraints.UnitNorm(axis=[0, 0])(np.ones((3, 3), np.float32)), "distinct"),
    (lambda: L.Dense(2, kernel_constraint="nope"), "nope"),
])
def test_bad_arguments_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()
