"""benchmarks/numpy_baseline.TutorialModel: a whole-model test oracle for fastcnn.

The NumPy tutorial model is checked on its own (Keras layouts and initialisation, float64
directional finite differences of its backward pass, Adam's Keras form), then fastcnn's
Sequential model of the same layers is checked against it: same logits, same loss, and the
same weights after Adam steps on the same batches.
"""
import os
import sys

import numpy as np
import pytest

import fastcnn
from fastcnn import zoo

from conftest import assert_close, num_threads
from conftest import cifar_like_batch as batch, compiled_tutorial as fastcnn_tutorial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
from numpy_baseline import TutorialModel  # noqa: E402

SHAPES = [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 64), (64,), (1024, 64), (64,),
          (64, 10), (10,)]


# ----------------------------------------------------------------------------- the oracle
def test_weights_in_keras_order_and_glorot_init():
    m = TutorialModel(seed=0)
    w = m.get_weights()
    assert [a.shape for a in w] == SHAPES
    assert all(a.dtype == np.float32 for a in w)
    for a in w[1::2]:
        assert not a.any()  # zero biases
    for a in w[0::2]:
        receptive = int(np.prod(a.shape[:-2])) if a.ndim > 2 else 1
        limit = np.sqrt(6.0 / (receptive * (a.shape[-2] + a.shape[-1])))
        assert np.abs(a).max() <= limit
        assert np.abs(a).max() > 0.9 * limit  # uniform over the whole range
        assert abs(float(a.mean())) < 0.1 * limit
    assert all(np.array_equal(a, b) for a, b in zip(w, TutorialModel(seed=0).get_weights()))
    assert not np.array_equal(w[0], TutorialModel(seed=1).get_weights()[0])
    w[0][...] = 7.0  # get_weights returns copies
    assert not (m.get_weights()[0] == 7.0).any()


def test_set_weights_checks_shapes():
    m = TutorialModel(seed=0)
    w = m.get_weights()
    with pytest.raises(ValueError, match="expected 10 arrays"):
        m.set_weights(w[:-1])
    bad = list(w)
    bad[6] = np.zeros((64, 1024), np.float32)
    with pytest.raises(ValueError, match=r"\(64, 1024\)"):
        m.set_weights(bad)
    other = TutorialModel(seed=3)
    other.set_weights(w)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), w))


def test_loss_is_softmax_cross_entropy():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]], np.float64)
    labels = np.array([0, 2])
    loss, d = TutorialModel.loss_and_grad(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[[0, 1], labels])), rel=1e-12)
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(d, (p - onehot) / 2, rtol=1e-12)
    big, _ = TutorialModel.loss_and_grad(np.array([[1000.0, 0.0]]), np.array([1]))
    assert big == pytest.approx(1000.0)  # stable log-sum-exp


def test_backward_matches_float64_finite_differences():
    m = TutorialModel(seed=2, dtype=np.float64)
    r = np.random.default_rng(5)
    for w in m.weights[1::2]:  # non-zero biases so their gradients are exercised too
        w[...] = r.normal(0, 0.05, w.shape)
    x = r.random((2, 32, 32, 3))
    y = np.array([3, 7])
    loss, grads = m.gradients(x, y)
    assert loss == pytest.approx(m.loss_and_grad(m.forward(x), y)[0], rel=1e-12)
    w0 = [w.copy() for w in m.weights]
    eps = 1e-6
    for k, g in enumerate(grads):
        assert g.shape == SHAPES[k]
        for trial in range(2):
            d = r.normal(size=g.shape)
            m.weights[k][...] = w0[k] + eps * d
            lp = m.loss_and_grad(m.forward(x), y)[0]
            m.weights[k][...] = w0[k] - eps * d
            lm = m.loss_and_grad(m.forward(x), y)[0]
            m.weights[k][...] = w0[k]
            fd = (lp - lm) / (2 * eps)
            assert float(np.sum(g * d)) == pytest.approx(fd, rel=1e-5, abs=1e-8), (k, trial)


def test_adam_is_keras_form():
    m = TutorialModel(seed=0, dtype=np.float64)
    w0 = [w.copy() for w in m.weights]
    r = np.random.default_rng(1)
    g1 = [r.normal(size=w.shape) for w in w0]
    g2 = [r.normal(size=w.shape) for w in w0]
    m.apply_gradients(g1)
    m.apply_gradients(g2)
    for k in range(len(w0)):
        w, mm, vv = w0[k].copy(), 0.0, 0.0
        for t, g in ((1, g1[k]), (2, g2[k])):
            mm = 0.9 * mm + 0.1 * g
            vv = 0.999 * vv + 0.001 * g * g
            lr_t = 1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            w = w - lr_t * mm / (np.sqrt(vv) + 1e-7)
        np.testing.assert_allclose(m.weights[k], w, rtol=1e-12, atol=1e-15)
    assert m.iterations == 2


def test_training_reduces_the_loss():
    m = TutorialModel(seed=0)
    x, y = batch(16, seed=4)
    first = m.train_step(x, y)
    for _ in range(39):  # memorises 16 noise images: ~0.8 after 40 steps
        last = m.train_step(x, y)
    assert first > 2.0 and last < 0.5 * first


# ----------------------------------------------------------------------------- vs fastcnn
def test_fastcnn_logits_match():
    ref = TutorialModel(seed=0)
    fc = fastcnn_tutorial(ref.get_weights())
    x, _ = batch(5, seed=1)
    want = ref.forward(x)
    assert_close(fc.predict(x, verbose=0), want, rtol=1e-4, atol=1e-4, what="predict")
    assert_close(fc.predict_on_batch(x), want, rtol=1e-4, atol=1e-4, what="predict_on_batch")
    with num_threads(1):
        assert_close(fc(x), want, rtol=1e-4, atol=1e-4, what="1 thread")


@pytest.mark.parametrize("n", [1, 32])
def test_fastcnn_train_steps_match(n):
    ref = TutorialModel(seed=7)
    fc = fastcnn_tutorial(ref.get_weights())
    for step in range(2):
        x, y = batch(n, seed=10 + step)
        want_loss = ref.train_step(x, y)
        got_loss = fc.train_on_batch(x, y)
        assert got_loss == pytest.approx(want_loss, rel=1e-5, abs=1e-6)
        for k, (got, want) in enumerate(zip(fc.get_weights(), ref.get_weights())):
            assert_close(got, want, rtol=1e-5, atol=1e-5, what="step %d weight %d" % (step, k))
    # the weights did move (by ~lr per element per step), so the comparison has teeth
    start = TutorialModel(seed=7).get_weights()
    assert all(np.abs(a - b).max() > 5e-4 for a, b in zip(ref.get_weights(), start))


def test_zoo_tutorial_model_is_the_same_model():
    ref = TutorialModel(seed=4)
    m = zoo.tutorial_model()
    assert [w.shape for w in m.get_weights()] == SHAPES
    m.set_weights(ref.get_weights())
    x, _ = batch(3, seed=9)
    assert_close(m.predict(x, verbose=0), ref.forward(x), rtol=1e-4, atol=1e-4)
