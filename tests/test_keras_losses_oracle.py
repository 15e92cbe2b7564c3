"""Real Keras 3 (JAX backend) as the oracle for fastcnn.losses: every loss, reduction, label
smoothing, ignore_class and sample/class weights, values and gradients (jax.grad through
the Keras loss); plus float64 finite differences of the C kernel, 1 vs 2 threads, bad
inputs, and a weighted training step against Keras' train_on_batch."""
import os

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
    rng = np.random.default_rng(hash(_ids(case)) % 2**32)
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
