"""The sigmoid activation's C kernels (csrc/losses.c): NumPy reference, gradient by finite
differences through a layer, 1 vs 2 threads, and its use by BinaryCrossentropy's logits path."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses, ops
from conftest import assert_close, fd_grad, num_threads


def test_sigmoid_matches_numpy_and_is_stable(rng):
    x = np.concatenate([rng.standard_normal(1001) * 5, [-200.0, -88.0, 0.0, 88.0, 200.0]])
    x32 = x.astype(np.float32)
    want = 1.0 / (1.0 + np.exp(-x32.astype(np.float64)))
    got = ops.sigmoid(x32)
    assert np.all(np.isfinite(got))
    assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert np.isnan(ops.sigmoid(np.array([np.nan], np.float32)))[0]
    dy = rng.standard_normal(x32.shape).astype(np.float32)
    assert_close(ops.sigmoid_backward(dy, got), dy * got * (1 - got), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="sigmoid_backward: dy and y must have the same shape"):
        ops.sigmoid_backward(dy[:3], got[:4])


def test_sigmoid_bitwise_at_1_and_2_threads(rng):
    x = rng.standard_normal(70001).astype(np.float32)
    out = []
    for n in (1, 2):
        with num_threads(n):
            y = ops.sigmoid(x)
            out.append((y, ops.sigmoid_backward(x, y)))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


@pytest.mark.parametrize("where", ["dense", "activation_layer"])
def test_sigmoid_layer_gradient_by_finite_differences(where, rng):
    """A hidden sigmoid (Dense(activation='sigmoid') or Activation('sigmoid')) on an awkward
    width; the input gradient against float64 central differences of the MSE loss."""
    inp = layers.Input((5,))
    if where == "dense":
        h = layers.Dense(7, activation="sigmoid")(inp)
    else:
        h = layers.Activation("sigmoid")(layers.Dense(7)(inp))
    model = fastcnn.Model(inp, layers.Dense(3)(h))
    x = rng.standard_normal((4, 5)).astype(np.float32)
    t = rng.standard_normal((4, 3)).astype(np.float32)
    model.compile(fastcnn.optimizers.SGD(1.0), "mse")
    w0 = model.get_weights()
    k0 = w0[0].astype(np.float64)

    def loss_at(k):
        model.set_weights([k.astype(np.float32)] + w0[1:])
        return float(((model.predict(x, verbose=0).astype(np.float64) - t) ** 2).mean())
    want = fd_grad(loss_at, k0, eps=1e-3)
    model.set_weights(w0)
    model.train_on_batch(x, t)  # SGD(1.0): w1 = w0 - grad
    got = w0[0] - model.get_weights()[0]
    assert_close(got, want, rtol=2e-3, atol=2e-4)


def test_bce_on_a_sigmoid_model_uses_its_logits(rng):
    """fit on sigmoid + BinaryCrossentropy gives the same step as from_logits=True on the same
    model without the sigmoid (the exact gradient, not the clipped-probability one)."""
    x = rng.standard_normal((9, 4)).astype(np.float32)
    y = (rng.random((9, 1)) > 0.5).astype(np.float32)

    def make(act):
        m = fastcnn.Sequential([layers.Input((4,)), layers.Dense(1, activation=act)])
        m.set_weights([np.full((4, 1), 0.3, np.float32), np.zeros(1, np.float32)])
        return m
    a, b = make("sigmoid"), make(None)
    a.compile(fastcnn.optimizers.SGD(0.5), losses.BinaryCrossentropy())
    b.compile(fastcnn.optimizers.SGD(0.5), losses.BinaryCrossentropy(from_logits=True))
    la, lb = a.train_on_batch(x, y), b.train_on_batch(x, y)
    assert abs(la - lb) < 1e-6
    for u, v in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(u, v)
    # predict still returns probabilities
    assert np.all((a.predict(x, verbose=0) > 0) & (a.predict(x, verbose=0) < 1))
