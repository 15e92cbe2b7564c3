"""Regularizers: the C penalty kernels against NumPy and finite differences, bitwise 1 vs 2
threads, and real Keras 3 (JAX) as the oracle for values, gradients, a regularized model's
loss and SGD step, configs and string names."""
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import layers as L
from fastcnn import ops, regularizers
from conftest import assert_close, fd_grad, num_threads

os.environ.setdefault("KERAS_BACKEND", "jax")


def keras_or_skip():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover - another backend preselected
        pytest.skip("the Keras oracle tests run on the JAX backend")
    return keras


# ----------------------------------------------------------------------------- references
def l1l2_ref(w, l1, l2):
    w = np.asarray(w, np.float64)
    return l1 * np.abs(w).sum() + l2 * (w * w).sum()


def orthogonal_ref(w, factor, mode):
    w = np.asarray(w, np.float64)
    if mode == "columns":
        w = w.T
    n = w / np.sqrt((w * w).sum(axis=1, keepdims=True))
    p = n @ n.T
    k = p.shape[0]
    return factor * 0.5 * (np.abs(p).sum() - np.abs(np.diag(p)).sum()) / (k * (k - 1) / 2)


SHAPES = [(7,), (5, 3), (3, 3, 5, 7), (4097,), (70001,)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.03), (0.2, 0.05)])
def test_l1l2_value_and_gradient_match_numpy(shape, l1, l2, rng):
    w = rng.standard_normal(shape).astype(np.float32)
    g0 = rng.standard_normal(shape).astype(np.float32)
    g = g0.copy()
    loss = ops.l1l2_penalty(w, l1, l2, grad=g, scale=0.5)
    assert loss == pytest.approx(l1l2_ref(w, l1, l2), rel=1e-12)
    expected = g0 + 0.5 * (l1 * np.sign(w) + 2 * l2 * w.astype(np.float64))
    assert_close(g, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 3, 5)])
def test_l1l2_gradient_finite_differences(shape, rng):
    # float64 finite differences of the penalty (away from 0, where |w| is smooth)
    w = rng.standard_normal(shape)
    w += np.sign(w) * 0.1
    out = np.empty(shape, np.float32)
    ops.l1l2_penalty(w.astype(np.float32), 0.3, 0.7, out=out)
    assert_close(out, fd_grad(lambda v: l1l2_ref(v, 0.3, 0.7), w), rtol=1e-5, atol=1e-5)


def test_l1_gradient_at_zero_is_zero():
    out = np.full(3, 9.0, np.float32)
    ops.l1l2_penalty(np.zeros(3, np.float32), 0.5, 0.0, out=out)
    assert np.array_equal(out, np.zeros(3, np.float32))


@pytest.mark.parametrize("shape", [(2, 3), (5, 3), (3, 7), (17, 9), (9, 17)])
@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_value_and_finite_differences(shape, mode, rng):
    w = rng.standard_normal(shape)
    k = shape[0] if mode == "rows" else shape[1]
    if k < 2:
        pytest.skip("one vector: no pairs")
    out = np.empty(shape, np.float32)
    loss = ops.orthogonal_penalty(w.astype(np.float32), 0.2, mode, out=out)
    assert loss == pytest.approx(orthogonal_ref(w.astype(np.float32), 0.2, mode), rel=1e-9)
    assert_close(out, fd_grad(lambda v: orthogonal_ref(v, 0.2, mode), w), rtol=1e-4,
                 atol=1e-6)


def test_orthogonal_single_vector_or_empty_is_zero():
    g = np.ones((1, 4), np.float32)
    assert ops.orthogonal_penalty(np.ones((1, 4), np.float32), 0.1, "rows", grad=g) == 0.0
    assert np.array_equal(g, np.ones((1, 4), np.float32))
    assert ops.orthogonal_penalty(np.ones((3, 0), np.float32), 0.1, "rows") == 0.0


def test_penalty_kernels_bitwise_identical_at_1_and_2_threads(rng):
    w = rng.standard_normal(100003).astype(np.float32)
    m = rng.standard_normal((64, 40)).astype(np.float32)  # 64*64*40 work: parallel
    results = []
    for n in (1, 2):
        with num_threads(n):
            g = np.zeros_like(w)
            gm = np.zeros_like(m)
            a = ops.l1l2_penalty(w, 0.01, 0.02, grad=g)
            b = ops.orthogonal_penalty(m, 0.3, "rows", grad=gm)
            c = ops.orthogonal_penalty(m, 0.3, "columns", out=np.empty_like(m))
            results.append((a, b, c, g, gm))
    for x, y in zip(*results):
        assert np.array_equal(x, y)


def test_regularizer_objects_call_and_add_gradient(rng):
    w = rng.standard_normal((6, 4)).astype(np.float32)
    assert regularizers.L1(0.1)(w) == pytest.approx(l1l2_ref(w, 0.1, 0), rel=1e-12)
    assert regularizers.L2(0.1)(w) == pytest.approx(l1l2_ref(w, 0, 0.1), rel=1e-12)
    assert regularizers.L1L2(0.1, 0.2)(w) == pytest.approx(l1l2_ref(w, 0.1, 0.2), rel=1e-12)
    g = np.zeros_like(w)
    v = regularizers.OrthogonalRegularizer(0.5, "columns").add_gradient(w, g)
    assert v == pytest.approx(orthogonal_ref(w, 0.5, "columns"), rel=1e-9)
    assert np.abs(g).max() > 0
    assert regularizers.l1 is regularizers.L1 and regularizers.l1_l2 is regularizers.L1L2


@pytest.mark.parametrize("bad, match", [
    (lambda: regularizers.L2(-1.0), "l2"),
    (lambda: regularizers.L1(float("nan")), "l1"),
    (lambda: regularizers.L1L2(l1="x"), "l1"),
    (lambda: regularizers.OrthogonalRegularizer(0.1, mode="diag"), "mode"),
    (lambda: regularizers.OrthogonalRegularizer(-0.1), "factor"),
    (lambda: regularizers.get("l3"), "l3"),
    (lambda: regularizers.get(lambda w: 0.0), "add_gradient"),
    (lambda: regularizers.deserialize({"class_name": "Nope", "config": {}}), "Nope"),
    (lambda: fastcnn.Sequential([L.Input((5, 5, 1)), L.Conv2D(
        2, 3, kernel_regularizer="orthogonal_regularizer")]), "rank-2"),
    (lambda: ops.orthogonal_penalty(np.ones((2, 2, 2), np.float32)), "rank 2"),
])
def test_bad_arguments_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


# ----------------------------------------------------------------------------- Keras oracle
def test_names_configs_and_serialization_match_keras():
    keras = keras_or_skip()
    # Keras 3 spells L1L2's snake-case name 'l1l2'; fastcnn takes 'l1_l2' too (its docs' name)
    assert type(regularizers.get("l1_l2")) is regularizers.L1L2
    for name in ("l1", "l2", "l1l2", "orthogonal_regularizer", "L1", "L2", "L1L2",
                 "OrthogonalRegularizer"):
        ours, theirs = regularizers.get(name), keras.regularizers.get(name)
        assert type(ours).__name__ == type(theirs).__name__
        for key, value in theirs.get_config().items():  # Keras keeps l1 as float32
            assert ours.get_config()[key] == (pytest.approx(value, rel=1e-6)
                                              if isinstance(value, float) else value)
    for reg in (regularizers.L2(0.25), regularizers.L1L2(0.1, 0.2),
                regularizers.OrthogonalRegularizer(0.5, "columns")):
        ser = regularizers.serialize(reg)
        k = keras.regularizers.deserialize(ser)
        assert keras.regularizers.serialize(k)["config"] == ser["config"]
        back = regularizers.deserialize(keras.regularizers.serialize(k))
        assert type(back) is type(reg) and back.get_config() == reg.get_config()


@pytest.mark.parametrize("make", [
    lambda R: R.L1(0.03), lambda R: R.L2(0.07), lambda R: R.L1L2(0.02, 0.05),
    lambda R: R.OrthogonalRegularizer(0.3, "rows"),
    lambda R: R.OrthogonalRegularizer(0.3, "columns"),
])
def test_value_and_gradient_match_keras_autodiff(make, rng):
    keras = keras_or_skip()
    import jax
    w = rng.standard_normal((9, 6)).astype(np.float32)
    theirs = make(keras.regularizers)
    ours = make(regularizers)
    g = np.zeros_like(w)
    value = ours.add_gradient(w, g)
    w = jax.numpy.asarray(w)  # Keras' NumPy path of normalize mishandles axis=0
    assert value == pytest.approx(float(theirs(w)), rel=1e-5)
    assert_close(g, np.asarray(jax.grad(lambda v: theirs(v))(w)), rtol=1e-5, atol=1e-6)


def _regularized_cnn(L_, R, M, act=True):
    return M([
        L_.Input((7, 7, 3)),
        L_.Conv2D(5, 3, activation="relu", kernel_regularizer=R.L2(0.05),
                  bias_regularizer=R.L1(0.02),
                  activity_regularizer=R.L2(0.01) if act else None),
        L_.BatchNormalization(gamma_regularizer=R.L2(0.1), beta_regularizer=R.L1(0.05)),
        L_.MaxPooling2D(),
        L_.Flatten(),
        L_.Dense(6, activation="relu", kernel_regularizer=R.OrthogonalRegularizer(0.1),
                 activity_regularizer=R.L1(0.01) if act else None),
        L_.Dense(4, activation="softmax", kernel_regularizer=R.L1L2(0.01, 0.02),
                 activity_regularizer=R.L2(0.05) if act else None),
    ])


@pytest.mark.parametrize("act", [False, True])
@pytest.mark.parametrize("fuse", [True, False])
def test_regularized_model_loss_and_sgd_step_match_keras(act, fuse, rng):
    keras = keras_or_skip()
    keras.utils.clear_session()
    x = rng.standard_normal((8, 7, 7, 3)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    km = _regularized_cnn(keras.layers, keras.regularizers, keras.Sequential, act)
    fm = _regularized_cnn(L, regularizers, fastcnn.Sequential, act)
    fm.fuse_kernels = fuse
    # nonzero biases: the L1 subgradient at exactly 0 differs between backends
    weights = [w + 0.1 if w.ndim == 1 else w for w in km.get_weights()]
    km.set_weights(weights)
    fm.set_weights(weights)
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    fm.compile(optimizer=fastcnn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    assert fm.evaluate(x, y, verbose=0) == pytest.approx(km.evaluate(x, y, verbose=0),
                                                         rel=1e-5)
    assert fm.train_on_batch(x, y) == pytest.approx(float(km.train_on_batch(x, y)), rel=1e-5)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert_close(sorted(fm.losses), sorted(float(v) for v in km.losses), rtol=1e-5)


def test_fit_reports_the_regularized_loss(rng):
    x = rng.standard_normal((8, 7, 7, 3)).astype(np.float32)
    y = rng.integers(0, 4, 8)
    fastcnn.utils.set_random_seed(3)
    m = _regularized_cnn(L, regularizers, fastcnn.Sequential)
    w0 = m.get_weights()
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    first = m.train_on_batch(x, y)
    m.set_weights(w0)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    hist = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(first, rel=1e-6)
    # the same model without regularizers, same weights: its loss plus the penalties
    class NoRegularizers:
        def __getattr__(self, name):
            return lambda *args: None
    bare = _regularized_cnn(L, NoRegularizers(), fastcnn.Sequential)
    bare.set_weights(w0)
    bare.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    plain = bare.evaluate(x, y, verbose=0)
    m.set_weights(w0)
    total = m.evaluate(x, y, verbose=0)
    weight_penalties = sum(m.losses)
    assert weight_penalties > 0.01
    assert total > plain + weight_penalties + 1e-3  # + the activity penalties


def _graph(L_, R, M, I, shared_activity):
    inp = I(shape=(5,))
    shared = L_.Dense(4, kernel_regularizer=R.L1(0.01),
                      activity_regularizer=R.L2(0.1) if shared_activity else None)
    a, b = shared(inp), shared(L_.Dense(5)(inp))
    s = L_.Add(activity_regularizer=R.L1(0.2))([a, b])
    return M(inp, L_.Dense(3, activity_regularizer=R.L2(0.03))(s))


def test_merge_and_shared_layer_penalties_match_keras(rng):
    keras = keras_or_skip()
    keras.utils.clear_session()
    x = rng.standard_normal((6, 5)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)
    km = _graph(keras.layers, keras.regularizers, keras.Model, keras.Input, False)
    fm = _graph(L, regularizers, fastcnn.Model, fastcnn.Input, False)
    fm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    fm.compile(optimizer=fastcnn.optimizers.SGD(0.05), loss="mse")
    assert fm.train_on_batch(x, y) == pytest.approx(float(km.train_on_batch(x, y)), rel=1e-5)
    for a, b in zip(fm.get_weights(), km.get_weights()):
        assert_close(a, b, rtol=1e-5, atol=1e-6)
    # A shared layer's activity penalty counts once per call, as Keras' eager
    # ``model(x)`` + ``model.losses`` (Keras' compiled evaluate keeps only the last call's).
    km = _graph(keras.layers, keras.regularizers, keras.Model, keras.Input, True)
    fm = _graph(L, regularizers, fastcnn.Model, fastcnn.Input, True)
    fm.set_weights(km.get_weights())
    fm.compile(optimizer="sgd", loss="mse")
    expected = float(np.mean((np.asarray(km(x)) - y) ** 2)) + sum(float(v) for v in km.losses)
    assert fm.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_layers_with_activity_regularizers_are_not_fused():
    m = fastcnn.Sequential([
        L.Input((8, 8, 3)),
        L.Conv2D(4, 3, padding="same", activity_regularizer="l2"), L.BatchNormalization(),
        L.ReLU(), L.Conv2D(4, 3, padding="same"), L.BatchNormalization(),
        L.ReLU(activity_regularizer="l1"), L.MaxPooling2D(), L.Flatten(), L.Dense(2)])
    kinds = [s.kind for s in m.plan()]
    assert kinds[0] == "Conv2D"  # not fused with the BN after it
    assert "conv2d_batch_norm" in kinds  # the second conv fuses with its BN only
    assert "ReLU" in kinds and "MaxPooling2D" in kinds


def test_unregularized_model_has_no_losses():
    m = fastcnn.zoo.tutorial_model()
    assert m.losses == []
    m2 = _regularized_cnn(L, regularizers, fastcnn.Sequential)
    assert len(m2.losses) == 6  # 6 regularized weights; activity penalties need a call


def test_config_round_trip_through_get_config_and_save(tmp_path):
    m = _regularized_cnn(L, regularizers, fastcnn.Sequential)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    for layer in m.layers:
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == {**layer.get_config(), "name": again.name}
    path = str(tmp_path / "reg.keras")
    m.save(path)
    loaded = fastcnn.saving.load_model(path)
    for a, b in zip(m.layers, loaded.layers):
        assert a.get_config() == b.get_config()
        assert [repr(v.regularizer) for v in a.weights] == \
            [repr(v.regularizer) for v in b.weights]
    x = np.random.default_rng(0).standard_normal((4, 7, 7, 3)).astype(np.float32)
    y = np.arange(4)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(m.evaluate(x, y, verbose=0))


def test_layer_config_matches_keras_keys():
    keras = keras_or_skip()
    ours = L.Dense(3, kernel_regularizer=regularizers.L2(0.5),
                   activity_regularizer="l1").get_config()
    theirs = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.5),
                                activity_regularizer="l1").get_config()
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
        if theirs[key] is None:
            assert ours[key] is None
            continue
        assert {k: v for k, v in ours[key].items() if k != "config"} == \
            {k: v for k, v in theirs[key].items() if k != "config"}
        assert ours[key]["config"] == pytest.approx(theirs[key]["config"], rel=1e-6)


def test_regularized_training_bitwise_identical_at_1_and_2_threads(rng):
    x = rng.standard_normal((16, 7, 7, 3)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    results = []
    for n in (1, 2):
        with num_threads(n):
            fastcnn.utils.set_random_seed(5)
            m = _regularized_cnn(L, regularizers, fastcnn.Sequential)
            m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            hist = m.fit(x, y, batch_size=8, epochs=2, verbose=0)
            results.append((hist.history["loss"], m.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert np.array_equal(a, b)
