"""Real Keras 3 (JAX backend) as the oracle for fastcnn.losses: every loss, reduction, label
smoothing, ignore_class and sample/class weights, values and gradients (jax.grad through
the Keras loss); plus float64 finite differences of the C kernel, 1 vs 2 threads, bad
inputs, and a weighted training step against Keras' train_on_batch."""
import os

import zlib

import numpy as np
import pytest

import fastcnn
from fastcnn import losses
from conftest import assert_close, fd_grad, num_threads

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - another backend was preselected
    pytest.skip("the Keras oracle tests run on the JAX backend", allow_module_level=True)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

KL = keras.losses
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None]


def _probs(rng, shape):
    return (rng.random(shape) * 0.9 + 0.05).astype(np.float32)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def _data(kind, rng, shape):
    """(y_true, y_pred) suited to a loss family, away from kinks and clip edges."""
    if kind == "binary":
        return (rng.random(shape) > 0.5).astype(np.float32), _probs(rng, shape)
    if kind == "binary_logits":
        return (rng.random(shape) > 0.5).astype(np.float32), \
            rng.standard_normal(shape).astype(np.float32) * 2
    if kind == "onehot":
        ids = rng.integers(0, shape[-1], shape[:-1])
        return np.eye(shape[-1], dtype=np.float32)[ids], _softmax(rng.standard_normal(shape))
    if kind == "onehot_logits":
        ids = rng.integers(0, shape[-1], shape[:-1])
        return np.eye(shape[-1], dtype=np.float32)[ids], \
            rng.standard_normal(shape).astype(np.float32) * 2
    if kind == "sparse":
        return rng.integers(0, shape[-1], shape[:-1]), _softmax(rng.standard_normal(shape))
    if kind == "sparse_logits":
        return rng.integers(0, shape[-1], shape[:-1]), \
            rng.standard_normal(shape).astype(np.float32) * 2
    if kind == "dist":
        return _probs(rng, shape), _probs(rng, shape)
    if kind == "positive":
        return (rng.random(shape) * 3 + 0.1).astype(np.float32), \
            (rng.random(shape) * 3 + 0.2).astype(np.float32)
    if kind == "pm1":
        return np.where(rng.random(shape) > 0.5, 1.0, -1.0).astype(np.float32), \
            rng.standard_normal(shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32), \
        rng.standard_normal(shape).astype(np.float32) * 1.5


# (fastcnn class, Keras class, constructor kwargs, data kind)
CASES = [
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True}, "binary_logits"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "binary_logits"),
    ("BinaryFocalCrossentropy", {}, "binary"),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5,
                                 "label_smoothing": 0.1}, "binary"),
    ("BinaryFocalCrossentropy", {"from_logits": True, "gamma": 3.0}, "binary_logits"),
    ("CategoricalCrossentropy", {}, "onehot"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.2}, "onehot"),
    ("CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1}, "onehot_logits"),
    ("CategoricalFocalCrossentropy", {}, "onehot"),
    ("CategoricalFocalCrossentropy", {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1},
     "onehot"),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, "onehot_logits"),
    ("SparseCategoricalCrossentropy", {}, "sparse"),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse_logits"),
    ("MeanSquaredError", {}, "real"),
    ("MeanAbsoluteError", {}, "real"),
    ("MeanAbsolutePercentageError", {}, "positive"),
    ("MeanSquaredLogarithmicError", {}, "positive"),
    ("Huber", {}, "real"),
    ("Huber", {"delta": 0.4}, "real"),
    ("LogCosh", {}, "real"),
    ("KLDivergence", {}, "dist"),
    ("Poisson", {}, "positive"),
    ("Hinge", {}, "binary_logits"),
    ("Hinge", {}, "pm1"),
    ("SquaredHinge", {}, "binary_logits"),
    ("CategoricalHinge", {}, "onehot_logits"),
    ("CosineSimilarity", {}, "real"),
]


def ours(loss, y, p, sw=None, logits=None):
    """fastcnn's (reduced loss, gradient w.r.t. p) through the trainer's entry points."""
    p32 = np.array(p, np.float32)
    t = loss.prepare_targets(y, p32.shape, "y")
    w = None if sw is None else loss.prepare_sample_weight(sw, p32.shape)
    g = np.empty_like(p32)
    value, g, _ = loss.compute(p32, t, g, loss.from_logits if logits is None else logits, w)
    return value, g


def theirs(kloss, y, p, sw=None):
    yj = jnp.asarray(y)
    swj = None if sw is None else jnp.asarray(sw, jnp.float32)
    return jax.value_and_grad(lambda pp: kloss(yj, pp, sample_weight=swj))(
        jnp.asarray(p, jnp.float32))


def _ids(case):
    name, kw, kind = case
    return "%s-%s-%s" % (name, kind, "-".join("%s=%s" % kv for kv in kw.items()))


@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_value_and_gradient_match_keras(case, reduction, weighted):
    name, kw, kind = case
    rng = np.random.default_rng(zlib.crc32(_ids(case).encode()))  # hash() varies per process
    y, p = _data(kind, rng, (7, 5))
    sw = (rng.random(7) * 2).astype(np.float32) if weighted else None
    f = getattr(losses, name)(reduction=reduction, **kw)
    k = getattr(KL, name)(reduction=reduction, **kw)
    if reduction is None:
        got = f(y, p, sample_weight=sw)
        want = k(y, p, sample_weight=sw)
        assert_close(got, np.asarray(want), rtol=2e-5, atol=2e-5, what=name)
        return
    got, g = ours(f, y, p, sw)
    want, gk = theirs(k, y, p, sw)
    assert_close(got, float(want), rtol=2e-5, atol=2e-5, what=name + " value")
    assert_close(g, np.asarray(gk), rtol=2e-4, atol=2e-5, what=name + " gradient")
    assert_close(f(y, p, sample_weight=sw), float(want), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("case", [c for c in CASES if c[2] in ("real", "binary", "dist",
                                                                "positive", "binary_logits")],
                         ids=_ids)
def test_elementwise_losses_on_rank3_outputs_match_keras(case):
    name, kw, kind = case
    rng = np.random.default_rng(7)
    y, p = _data(kind, rng, (3, 4, 5))
    sw = (rng.random((3, 4)) + 0.1).astype(np.float32)
    f, k = getattr(losses, name)(**kw), getattr(KL, name)(**kw)
    got, g = ours(f, y, p, sw)
    want, gk = theirs(k, y, p, sw)
    assert_close(got, float(want), rtol=2e-5, atol=2e-5)
    assert_close(g, np.asarray(gk), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("fn,kw,kind", [
    ("binary_crossentropy", {"label_smoothing": 0.1}, "binary"),
    ("binary_focal_crossentropy", {"gamma": 1.0}, "binary"),
    ("categorical_crossentropy", {"from_logits": True}, "onehot_logits"),
    ("categorical_focal_crossentropy", {}, "onehot"),
    ("sparse_categorical_crossentropy", {"from_logits": True}, "sparse_logits"),
    ("mean_squared_error", {}, "real"), ("mean_absolute_error", {}, "real"),
    ("mean_absolute_percentage_error", {}, "positive"),
    ("mean_squared_logarithmic_error", {}, "positive"), ("huber", {"delta": 0.5}, "real"),
    ("log_cosh", {}, "real"), ("kl_divergence", {}, "dist"), ("poisson", {}, "positive"),
    ("hinge", {}, "pm1"), ("squared_hinge", {}, "binary_logits"),
    ("categorical_hinge", {}, "onehot_logits"), ("cosine_similarity", {}, "real"),
])
def test_function_forms_return_per_sample_losses_like_keras(fn, kw, kind):
    y, p = _data(kind, np.random.default_rng(3), (6, 4))
    got = getattr(losses, fn)(y, p, **kw)
    want = np.asarray(getattr(KL, fn)(jnp.asarray(y), jnp.asarray(p), **kw))
    assert got.shape == want.shape == (6,)
    assert_close(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("logits", [False, True])
def test_sparse_ignore_class_matches_keras(reduction, logits):
    rng = np.random.default_rng(11)
    y, p = _data("sparse_logits" if logits else "sparse", rng, (9, 4))
    y = y.copy()
    y[[1, 4, 5]] = 255  # the ignored label may lie outside [0, classes)
    sw = (rng.random(9) + 0.5).astype(np.float32)
    f = losses.SparseCategoricalCrossentropy(from_logits=logits, ignore_class=255,
                                             reduction=reduction)
    k = KL.SparseCategoricalCrossentropy(from_logits=logits, ignore_class=255,
                                         reduction=reduction)
    for w in (None, sw):
        if reduction is None:
            assert_close(f(y, p, sample_weight=w), np.asarray(k(y, p, sample_weight=w)),
                         rtol=2e-5, atol=2e-5)
            continue
        got, g = ours(f, y, p, w)
        want, gk = theirs(k, y, p, w)
        assert_close(got, float(want), rtol=2e-5, atol=2e-5)
        assert_close(g, np.asarray(gk), rtol=2e-4, atol=2e-5)
        assert not g[[1, 4, 5]].any()


def test_names_aliases_and_configs_round_trip():
    for alias, cls in [("binary_crossentropy", "BinaryCrossentropy"), ("bce", "BinaryCrossentropy"),
                       ("BCE", "BinaryCrossentropy"), ("mae", "MeanAbsoluteError"),
                       ("MAE", "MeanAbsoluteError"), ("mape", "MeanAbsolutePercentageError"),
                       ("msle", "MeanSquaredLogarithmicError"), ("huber", "Huber"),
                       ("kld", "KLDivergence"), ("KLD", "KLDivergence"),
                       ("kl_divergence", "KLDivergence"), ("log_cosh", "LogCosh"),
                       ("logcosh", "LogCosh"), ("poisson", "Poisson"), ("hinge", "Hinge"),
                       ("squared_hinge", "SquaredHinge"),
                       ("categorical_hinge", "CategoricalHinge"),
                       ("cosine_similarity", "CosineSimilarity"),
                       ("binary_focal_crossentropy", "BinaryFocalCrossentropy"),
                       ("categorical_focal_crossentropy", "CategoricalFocalCrossentropy"),
                       ("mean_squared_error", "MeanSquaredError"), ("mse", "MeanSquaredError")]:
        assert type(losses.get(alias)).__name__ == cls, alias
        if alias != "logcosh":  # a Keras 2 alias Keras 3 keeps only under keras._legacy
            kobj = KL.get(alias)  # Keras knows the alias too, as the same loss
            kname = getattr(kobj, "__name__", type(kobj).__name__)
            assert type(losses.get(kname)).__name__ == cls, alias
    for name, kw, _ in CASES:
        loss = getattr(losses, name)(reduction="sum", name="x_" + name, **kw)
        clone = losses.deserialize(losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()
        # Keras' config keys (Keras' Huber drops its delta; fastcnn keeps it)
        kconf = getattr(KL, name)(**kw).get_config()
        assert set(kconf) - {"dtype"} <= set(loss.get_config()), name
        assert losses.get(losses.serialize(loss)).get_config() == loss.get_config()
    sc = losses.SparseCategoricalCrossentropy(ignore_class=-1, reduction=None)
    assert losses.deserialize(losses.serialize(sc)).get_config() == sc.get_config()
    assert isinstance(losses.get(losses.binary_crossentropy), losses.BinaryCrossentropy)


def test_compiled_loss_survives_save_and_load(tmp_path):
    model = fastcnn.Sequential([fastcnn.layers.Input((3,)), fastcnn.layers.Dense(2)])
    model.compile("sgd", losses.BinaryFocalCrossentropy(alpha=0.4, gamma=1.0,
                                                        label_smoothing=0.1,
                                                        reduction="sum"))
    path = str(tmp_path / "m.keras")
    model.save(path)
    back = fastcnn.models.load_model(path)
    assert back.loss.get_config() == model.loss.get_config()


# ---------------------------------------------------------------- the C kernel on its own
KERNEL_CASES = [(n, kw, kind) for n, kw, kind in CASES if "logits" not in kind or
                kw.get("from_logits")]


@pytest.mark.parametrize("case", KERNEL_CASES, ids=_ids)
def test_kernel_gradient_matches_float64_finite_differences(case):
    """fc_loss_rows' gradient against central differences of its own loss value, on an
    awkward shape (odd rows, 11 classes), weighted, summed."""
    name, kw, kind = case
    rng = np.random.default_rng(5)
    y, p = _data(kind, rng, (9, 11))
    if kind in ("real", "positive"):  # errors away from the kinks at 0, 0.4 (delta) and 1
        e = rng.choice([-2.1, -0.7, -0.2, 0.25, 0.8, 1.6], p.shape)
        e = e * (1 + 0.05 * rng.random(p.shape))
        p = (y + e).astype(np.float32)
        if kind == "positive":
            y = np.abs(y) + 0.1
            p = (y + np.abs(e)).astype(np.float32)
    if kind in ("binary_logits", "pm1"):  # margins away from the hinge at |p| = 1
        p = np.where(np.abs(np.abs(p) - 1) < 0.1, p * 1.3, p).astype(np.float32)
    sw = (rng.random(9) + 0.25).astype(np.float32)
    f = getattr(losses, name)(reduction="sum", **kw)
    t = f.prepare_targets(y, p.shape)
    w = f.prepare_sample_weight(sw, p.shape)
    g = np.empty_like(p)
    f.compute(p.copy(), t, g, f.from_logits, w)

    def value(pp):  # the kernel reads float32 inputs: eps must stay well above their ulp
        return f.compute(pp.astype(np.float32), t, None, f.from_logits, w)[0]
    want = fd_grad(value, p.astype(np.float64), eps=1e-3)
    assert_close(g, want, rtol=5e-3, atol=5e-3, what=name)


def _py_reference(name, y, p):
    """Plain NumPy float64 per-sample reference for a few kernel kinds."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    eps = 1e-7
    if name == "MeanAbsoluteError":
        return np.abs(p - y).mean(-1)
    if name == "Huber":
        e = np.abs(p - y)
        return np.where(e <= 1, 0.5 * e * e, e - 0.5).mean(-1)
    if name == "BinaryCrossentropy":
        pc = np.clip(p, eps, 1 - eps)
        return -(y * np.log(pc) + (1 - y) * np.log(1 - pc)).mean(-1)
    if name == "KLDivergence":
        yc, pc = np.clip(y, eps, 1), np.clip(p, eps, 1)
        return (yc * np.log(yc / pc)).sum(-1)
    if name == "CategoricalHinge":
        return np.maximum(((1 - y) * p).max(-1) - (y * p).sum(-1) + 1, 0)
    raise KeyError(name)


@pytest.mark.parametrize("name,kind", [("MeanAbsoluteError", "real"), ("Huber", "real"),
                                       ("BinaryCrossentropy", "binary"),
                                       ("KLDivergence", "dist"),
                                       ("CategoricalHinge", "onehot_logits")])
def test_kernel_matches_numpy_reference(name, kind):
    y, p = _data(kind, np.random.default_rng(9), (13, 7))
    got = getattr(losses, name)(reduction=None)(y, p)
    assert_close(got, _py_reference(name, y, p), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES[::3], ids=_ids)
def test_kernel_is_bitwise_identical_at_1_and_2_threads(case):
    name, kw, kind = case
    y, p = _data(kind, np.random.default_rng(2), (300, 67))  # above the parallel threshold
    sw = np.random.default_rng(3).random(300).astype(np.float32)
    f = getattr(losses, name)(**kw)
    t = f.prepare_targets(y, p.shape)
    w = f.prepare_sample_weight(sw, p.shape)
    res = []
    for n in (1, 2):
        with num_threads(n):
            g = np.empty_like(p)
            v = f.compute(p.copy(), t, g, f.from_logits, w)[0]
            res.append((v, g))
    assert res[0][0] == res[1][0]
    assert np.array_equal(res[0][1], res[1][1])


def test_unweighted_cross_entropy_is_bitwise_the_old_kernel():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((33, 10)).astype(np.float32)
    ids = rng.integers(0, 10, 33)
    g = np.empty_like(z)
    v, _, nc = losses.SparseCategoricalCrossentropy(from_logits=True).compute(z, ids, g, True)
    v0, g0, nc0 = fastcnn.ops.softmax_cross_entropy(z, ids)
    assert v == v0 and nc == nc0 and np.array_equal(g, g0)


def test_bad_inputs_raise_clear_errors():
    bce = losses.BinaryCrossentropy()
    with pytest.raises(ValueError, match=r"BinaryCrossentropy: y_true has shape \(3, 2\)"):
        bce(np.zeros((3, 2)), np.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="y_pred contains NaN"):
        bce(np.zeros((2, 1)), np.array([[np.nan], [0.5]]))
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        bce(np.zeros((2, 1)), np.full((2, 1), 0.5), sample_weight=[1.0, np.nan])
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(2,\)"):
        bce(np.zeros((2, 1)), np.full((2, 1), 0.5), sample_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must be >= 0"):
        bce(np.zeros((2, 1)), np.full((2, 1), 0.5), sample_weight=[1.0, -2.0])
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0.0, 1.0\]"):
        losses.BinaryCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="only axis=-1"):
        losses.CategoricalCrossentropy(axis=0)
    with pytest.raises(ValueError, match="reduction"):
        losses.Huber(reduction="avg")
    with pytest.raises(ValueError, match="delta"):
        losses.Huber(delta=float("nan"))
    with pytest.raises(ValueError, match="gamma"):
        losses.BinaryFocalCrossentropy(gamma=-1)
    with pytest.raises(ValueError, match="ignore_class must be an integer"):
        losses.SparseCategoricalCrossentropy(ignore_class=1.5)
    scce = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    with pytest.raises(ValueError, match=r"class ids in \[0, 7\].*or equal ignore_class=-1"):
        scce([0, 7, -1], np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match=r"class ids in \[-2, 0\]"):
        scce([0, -2, -1], np.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="reduction=None gives per-sample losses"):
        losses.MeanSquaredError(reduction=None).compute(
            np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32),
            np.zeros((2, 2), np.float32), True)
    with pytest.raises(ValueError, match=r"class id outside \[0, 4\)"):  # compute, unchecked
        losses.SparseCategoricalCrossentropy().compute(
            np.full((2, 4), 0.25, np.float32), np.array([1, 9]), np.empty((2, 4), np.float32),
            True)
    with pytest.raises(ValueError, match="grad_out must be a C-contiguous float32"):
        losses.MeanSquaredError().compute(np.zeros((2, 2), np.float32),
                                          np.zeros((2, 2), np.float32),
                                          np.zeros((2, 2), np.float64), True)


# ---------------------------------------------------------------- training with weights
def _pair(out_units, activation, seed=0):
    rng = np.random.default_rng(seed)
    kw = [rng.standard_normal((6, 8)).astype(np.float32) * 0.5,
          rng.standard_normal(8).astype(np.float32) * 0.1,
          rng.standard_normal((8, out_units)).astype(np.float32) * 0.5,
          rng.standard_normal(out_units).astype(np.float32) * 0.1]
    keras.utils.clear_session()
    k = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(out_units, activation=activation)])
    f = fastcnn.Sequential([fastcnn.layers.Input((6,)),
                            fastcnn.layers.Dense(8, activation="relu"),
                            fastcnn.layers.Dense(out_units, activation=activation)])
    k.set_weights(kw)
    f.set_weights(kw)
    return k, f


STEP_CASES = [
    ("BinaryCrossentropy", 1, "sigmoid", "binary", {}),
    ("BinaryCrossentropy", 1, "sigmoid", "binary", {"label_smoothing": 0.1}),
    ("BinaryCrossentropy", 3, None, "binary", {"from_logits": True}),
    ("SparseCategoricalCrossentropy", 4, "softmax", "sparse", {}),
    ("CategoricalCrossentropy", 4, "softmax", "onehot", {"label_smoothing": 0.2}),
    ("BinaryFocalCrossentropy", 1, "sigmoid", "binary", {"apply_class_balancing": True}),
    ("Huber", 3, None, "real", {"delta": 0.5}),
]


# class weights need class labels: not for the regression loss
@pytest.mark.parametrize("loss_name,units,activation,kind,kw,weights",
                         [c + ("sample",) for c in STEP_CASES]
                         + [c + ("class",) for c in STEP_CASES if c[3] != "real"])
def test_weighted_train_on_batch_matches_keras(loss_name, units, activation, kind, kw,
                                               weights):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((10, 6)).astype(np.float32)
    y, _ = _data(kind, rng, (10, units))
    if weights == "class":
        wargs = {"class_weight": {0: 0.3, 1: 2.5, 3: 1.7}}
    else:
        wargs = {"sample_weight": (rng.random(10) * 2).astype(np.float32)}
    k, f = _pair(units, activation)
    k.compile(keras.optimizers.SGD(0.1), getattr(KL, loss_name)(**kw))
    f.compile(fastcnn.optimizers.SGD(0.1), getattr(losses, loss_name)(**kw))
    want = float(k.train_on_batch(x, y, **wargs))
    got = f.train_on_batch(x, y, **wargs)
    assert_close(got, want, rtol=1e-5, atol=1e-6)
    for a, b in zip(f.get_weights(), k.get_weights()):
        assert_close(a, np.asarray(b), rtol=1e-5, atol=1e-6)
    # test_on_batch / evaluate with the same weights on the trained models
    sw = wargs.get("sample_weight")
    want = float(k.test_on_batch(x, y, sample_weight=sw))
    assert_close(f.test_on_batch(x, y, sample_weight=sw), want, rtol=1e-5, atol=1e-6)
    want = float(k.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0))
    assert_close(f.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0), want,
                 rtol=1e-5, atol=1e-6)


def test_weighted_fit_epoch_matches_keras():
    """An unshuffled fit epoch with class weights on a sigmoid + BCE model (fused to its
    logits) against Keras' fit; validation_data with sample weights too."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    y = (rng.random((20, 1)) > 0.7).astype(np.float32)
    xv = rng.standard_normal((7, 6)).astype(np.float32)
    yv = (rng.random((7, 1)) > 0.5).astype(np.float32)
    swv = rng.random(7).astype(np.float32)
    k, f = _pair(1, "sigmoid", seed=3)
    k.compile(keras.optimizers.SGD(0.2), "binary_crossentropy")
    f.compile(fastcnn.optimizers.SGD(0.2), "binary_crossentropy")
    cw = {0: 0.25, 1: 3.0}
    hk = k.fit(x, y, batch_size=6, epochs=2, shuffle=False, class_weight=cw,
               validation_data=(xv, yv, swv), verbose=0).history
    hf = f.fit(x, y, batch_size=6, epochs=2, shuffle=False, class_weight=cw,
               validation_data=(xv, yv, swv), verbose=0).history
    assert_close(hf["loss"], hk["loss"], rtol=1e-5, atol=1e-6)
    assert_close(hf["val_loss"], hk["val_loss"], rtol=1e-5, atol=1e-6)
    for a, b in zip(f.get_weights(), k.get_weights()):
        assert_close(a, np.asarray(b), rtol=1e-5, atol=1e-6)
    assert_close(f.predict(xv, verbose=0), np.asarray(k.predict(xv, verbose=0)),
                 rtol=1e-5, atol=1e-6)


def test_sigmoid_output_trains_from_logits():
    _, f = _pair(1, "sigmoid")
    f.compile("sgd", losses.BinaryCrossentropy())
    f.prepare(training=True)
    assert f._loss_on_logits  # the exact log-sigmoid path, not clipped probabilities


def test_weight_argument_errors():
    _, f = _pair(3, "softmax")
    f.compile("sgd", "sparse_categorical_crossentropy")
    x = np.zeros((4, 6), np.float32)
    y = np.array([0, 1, 2, 1])
    with pytest.raises(ValueError, match="cannot pass `class_weight` and `sample_weight`"):
        f.train_on_batch(x, y, sample_weight=np.ones(4), class_weight={0: 1.0})
    with pytest.raises(ValueError, match="class_weight keys must be class ids >= 0, got -1"):
        f.fit(x, y, class_weight={-1: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight keys must be integer class ids"):
        f.fit(x, y, class_weight={"cat": 2.0}, verbose=0)
    with pytest.raises(ValueError, match=r"class_weight\[1\] must be a finite number"):
        f.fit(x, y, class_weight={1: float("nan")}, verbose=0)
    with pytest.raises(ValueError, match="class_weight must be a dict"):
        f.fit(x, y, class_weight=[1.0, 2.0], verbose=0)
    with pytest.raises(ValueError, match="sample_weight has 3 entries but there are 4"):
        f.fit(x, y, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match="sample_weight contains NaN"):
        f.evaluate(x, y, sample_weight=np.array([1, np.nan, 1, 1]), verbose=0)
    with pytest.raises(ValueError, match="validation_data sample_weight has 2 entries"):
        f.fit(x, y, validation_data=(x, y, np.ones(2)), verbose=0)
    with pytest.raises(ValueError, match="reduction=None"):
        f.compile("sgd", losses.MeanSquaredError(reduction=None))


def test_hidden_sigmoid_layers_train_like_keras():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    y = rng.standard_normal((8, 3)).astype(np.float32)
    ws = [rng.standard_normal(s).astype(np.float32) * 0.5 for s in [(6, 5), (5,), (5, 3), (3,)]]

    def build(L, Seq, Inp):
        return Seq([Inp((6,)), L.Dense(5, activation="sigmoid"), L.Dense(3),
                    L.Activation("sigmoid")])
    keras.utils.clear_session()
    k = build(keras.layers, keras.Sequential, keras.Input)
    f = build(fastcnn.layers, fastcnn.Sequential, fastcnn.layers.Input)
    k.set_weights(ws)
    f.set_weights(ws)
    k.compile(keras.optimizers.SGD(0.5), "log_cosh")
    f.compile(fastcnn.optimizers.SGD(0.5), "log_cosh")
    sw = rng.random(8).astype(np.float32)
    assert_close(f.train_on_batch(x, y, sample_weight=sw),
                 float(k.train_on_batch(x, y, sample_weight=sw)), rtol=1e-5, atol=1e-6)
    for a, b in zip(f.get_weights(), k.get_weights()):
        assert_close(a, np.asarray(b), rtol=1e-5, atol=1e-6)
