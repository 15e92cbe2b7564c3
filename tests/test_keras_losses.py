"""Losses vs NumPy references of Keras' formulas; gradients; label validation; names."""
import numpy as np
import pytest

from fastcnn import losses
from conftest import assert_close, fd_grad


def ref_log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def ref_prob_ce(onehot, p, eps=1e-7):
    """Keras (from_logits=False): renormalise, clip to [eps, 1-eps], -sum(y log p), batch mean."""
    p = np.asarray(p, np.float64)
    p = np.clip(p / p.sum(-1, keepdims=True), eps, 1 - eps)
    return float(-(onehot * np.log(p)).sum(-1).mean())


def onehot(ids, c):
    out = np.zeros((len(ids), c))
    out[np.arange(len(ids)), ids] = 1
    return out


@pytest.mark.parametrize("label_shape", ["flat", "column"])
def test_sparse_ce_from_logits_matches_reference(label_shape, rng):
    z = rng.standard_normal((6, 5)) * 3
    ids = rng.integers(0, 5, 6).astype(np.uint8)
    y = ids if label_shape == "flat" else ids.reshape(-1, 1)
    want = float(-(onehot(ids, 5) * ref_log_softmax(z)).sum(-1).mean())
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert abs(loss(y, z) - want) < 1e-5
    # the function form returns per-sample losses, as Keras' does
    assert abs(losses.sparse_categorical_crossentropy(y, z, from_logits=True).mean() - want) < 1e-5


def test_sparse_ce_default_treats_outputs_as_probabilities(rng):
    z = rng.standard_normal((5, 4))
    p = np.exp(ref_log_softmax(z))
    ids = rng.integers(0, 4, 5)
    loss = losses.SparseCategoricalCrossentropy()  # from_logits=False, as Keras
    assert loss.from_logits is False
    assert abs(loss(ids, p) - ref_prob_ce(onehot(ids, 4), p)) < 1e-5
    # clipping: a zero probability for the true class costs -log(1e-7), not inf
    p0 = np.array([[0.0, 1.0]])
    assert abs(loss([0], p0) - (-np.log(1e-7))) < 1e-3


def test_categorical_ce_and_label_smoothing(rng):
    z = rng.standard_normal((4, 3))
    y = onehot(rng.integers(0, 3, 4), 3)
    want = float(-(y * ref_log_softmax(z)).sum(-1).mean())
    assert abs(losses.CategoricalCrossentropy(from_logits=True)(y, z) - want) < 1e-5
    p = np.exp(ref_log_softmax(z))
    assert abs(losses.CategoricalCrossentropy()(y, p) - ref_prob_ce(y, p)) < 1e-5
    ys = y * 0.8 + 0.2 / 3
    want_s = float(-(ys * ref_log_softmax(z)).sum(-1).mean())
    got = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)(y, z)
    assert abs(got - want_s) < 1e-5


def test_mean_squared_error(rng):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    assert abs(losses.MeanSquaredError()(a, b) - ((a - b) ** 2).mean()) < 1e-5
    assert abs(losses.get("mse")(a, b) - ((a - b) ** 2).mean()) < 1e-5
    # (N,) targets for an (N, 1) output, as Keras accepts
    got = losses.mean_squared_error(a[:, 0], b[:, :1])  # per sample, as Keras
    assert np.allclose(got, (a[:, 0] - b[:, 0]) ** 2, atol=1e-5)


def test_compute_gradients_are_those_of_the_loss(rng):
    z = rng.standard_normal((4, 3))
    ids = np.array([0, 2, 1, 2], np.int32)
    y = onehot(ids, 3)
    grad = np.empty((4, 3), np.float32)
    scce = losses.SparseCategoricalCrossentropy(from_logits=True)
    _, g, n_correct = scce.compute(z.astype(np.float32), ids, grad, True)
    want = fd_grad(lambda zz: float(-(y * ref_log_softmax(zz)).sum(-1).mean()), z)
    assert_close(g, want, rtol=1e-4, atol=1e-5)
    assert n_correct == int((z.argmax(1) == ids).sum())
    # probability path: gradient of Keras' renormalised, clipped formula
    p = np.exp(ref_log_softmax(z)) * 0.9 + 0.01
    _, gp, _ = losses.CategoricalCrossentropy().compute(p.astype(np.float32), y.astype(np.float32),
                                                        np.empty((4, 3), np.float32), False)
    assert_close(gp, fd_grad(lambda pp: ref_prob_ce(y, pp), p), rtol=1e-3, atol=1e-4)
    mse = losses.MeanSquaredError()
    t = rng.standard_normal((4, 3)).astype(np.float32)
    _, gm, _ = mse.compute(z.astype(np.float32), t, np.empty((4, 3), np.float32), False)
    assert_close(gm, fd_grad(lambda zz: float(((zz - t) ** 2).mean()), z), rtol=1e-4, atol=1e-5)


def test_label_validation_messages():
    scce = losses.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match=r"class ids in \[0, 10\].*labels must be in \[0, 10\)"):
        scce.prepare_targets(np.array([0, 10]), (2, 10))
    with pytest.raises(ValueError, match=r"class ids in \[-1, 3\]"):
        scce.prepare_targets(np.array([-1, 3]), (2, 10))
    with pytest.raises(ValueError, match="one-hot labels use CategoricalCrossentropy"):
        scce.prepare_targets(np.eye(3), (3, 3))
    with pytest.raises(ValueError, match="non-integer"):
        scce.prepare_targets(np.array([0.5, 1.0]), (2, 3))
    ids = scce.prepare_targets(np.array([[1], [2]], np.uint8), (2, 3))
    assert ids.dtype == np.int64 and ids.shape == (2,)
    cce = losses.CategoricalCrossentropy()
    with pytest.raises(ValueError, match="integer class ids use SparseCategoricalCrossentropy"):
        cce.prepare_targets(np.array([[1], [2]]), (2, 3))
    with pytest.raises(ValueError, match="NaN"):
        losses.MeanSquaredError().prepare_targets(np.array([[np.nan]]), (1, 1))


def test_names_configs_and_unknown_names():
    assert isinstance(losses.get("sparse_categorical_crossentropy"),
                      losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get("categorical_crossentropy"), losses.CategoricalCrossentropy)
    assert isinstance(losses.get("mean_squared_error"), losses.MeanSquaredError)
    assert isinstance(losses.get("MSE"), losses.MeanSquaredError)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    clone = losses.deserialize(losses.serialize(loss))
    assert clone.from_logits is True and clone.name == "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="Unknown loss 'hinge2'.*sparse_categorical_crossentropy"):
        losses.get("hinge2")
    with pytest.raises(TypeError, match="Custom loss functions"):
        losses.get(lambda a, b: 0.0)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="total")
