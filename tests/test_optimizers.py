"""Optimizers: Keras' golden values and update formulas (NumPy references), state, config."""
import numpy as np
import pytest

from fastcnn import optimizers
from fastcnn.layers.base import Variable
from conftest import assert_close


def var(values, name="w"):
    return Variable(np.asarray(values, np.float32), name, "layer/" + name)


def test_adam_golden_value_from_keras_tests():
    # keras/src/optimizers/adam_test.py: one step of Adam(0.5) from [1,2,3,4], grads [1,6,7,2]
    opt = optimizers.Adam(learning_rate=0.5)
    w = var([1.0, 2.0, 3.0, 4.0])
    opt.apply_gradients([(np.array([1.0, 6.0, 7.0, 2.0]), w)])
    assert_close(w.numpy(), [0.5, 1.5, 2.5, 3.5], rtol=1e-4, atol=1e-4)
    assert opt.iterations == 1


def ref_adam(w, grads, lr, b1, b2, eps):
    w = w.astype(np.float64).copy()
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w -= lr_t * m / (np.sqrt(v) + eps)
    return w


def test_adam_several_steps_match_keras_formula(rng):
    w0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(6)]
    opt = optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    w = var(w0)
    for g in grads:
        opt.apply_gradients([(g, w)])
    assert_close(w.numpy(), ref_adam(w0, grads, 0.01, 0.8, 0.99, 1e-6), rtol=1e-5, atol=1e-6)
    assert opt.iterations == 6
    defaults = optimizers.Adam().get_config()
    assert (defaults["learning_rate"], defaults["beta_1"], defaults["beta_2"],
            defaults["epsilon"]) == (np.float32(1e-3), 0.9, 0.999, 1e-7)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_keras_formula(momentum, nesterov, rng):
    w0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    opt = optimizers.SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    w = var(w0)
    for g in grads:
        opt.apply_gradients([(g, w)])
    ref, v = w0.copy(), np.zeros(5)
    for g in grads:
        if momentum == 0:
            ref -= 0.1 * g
        else:
            v = momentum * v - 0.1 * g
            ref += momentum * v - 0.1 * g if nesterov else v
    assert_close(w.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert optimizers.SGD().learning_rate == np.float32(0.01)


def test_rmsprop_matches_keras_formula(rng):
    w0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(3)]
    opt = optimizers.RMSprop(learning_rate=0.01)
    w = var(w0)
    for g in grads:
        opt.apply_gradients([(g, w)])
    ref, v = w0.copy(), np.zeros(6)
    for g in grads:  # Keras 3: epsilon inside the square root
        v = 0.9 * v + 0.1 * g * g
        ref -= 0.01 * g / np.sqrt(v + 1e-7)
    assert_close(w.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_learning_rate_is_settable_and_float32_like_keras():
    opt = optimizers.get("adam")
    opt.learning_rate = 0.1
    assert opt.learning_rate == float(np.float32(0.1))
    opt.learning_rate = 0.5
    w = var([1.0])
    opt.apply_gradients([(np.array([1.0]), w)])
    assert_close(w.numpy(), [0.5], rtol=1e-4, atol=1e-4)  # first Adam step moves by ~lr
    opt.learning_rate.assign(0.25)  # Keras' variable idiom
    assert opt.learning_rate == 0.25 and opt.learning_rate.numpy() == np.float32(0.25)
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    with pytest.raises(TypeError, match="learning_rate"):
        opt.learning_rate = "fast"


def test_state_round_trip_continues_identically(rng):
    w0 = rng.standard_normal(8)
    grads = [rng.standard_normal(8) for _ in range(4)]
    a, wa = optimizers.Adam(0.05), var(w0)
    for g in grads[:2]:
        a.apply_gradients([(g, wa)])
    state = {k: np.array(v) for k, v in a._get_state([wa]).items()}
    b, wb = optimizers.Adam(0.05), var(wa.numpy())
    b._set_state(state, [wb])
    assert b.iterations == 2
    for g in grads[2:]:
        a.apply_gradients([(g, wa)])
        b.apply_gradients([(g, wb)])
    assert np.array_equal(wa.numpy(), wb.numpy())


def test_names_configs_and_bad_arguments():
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    assert isinstance(optimizers.get("sgd"), optimizers.SGD)
    assert isinstance(optimizers.get("rmsprop"), optimizers.RMSprop)
    opt = optimizers.SGD(learning_rate=0.2, momentum=0.5, nesterov=True)
    clone = optimizers.deserialize(optimizers.serialize(opt))
    assert (clone.learning_rate, clone.momentum, clone.nesterov) == (opt.learning_rate, 0.5, True)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamw'.*adam, rmsprop, sgd"):
        optimizers.get("adamw")
    with pytest.raises(ValueError, match=r"momentum.*between \[0, 1\]"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="`lr` is no longer supported"):
        optimizers.Adam(lr=0.1)
    with pytest.raises(ValueError, match="clipnorm"):
        optimizers.Adam(clipnorm=1.0)
    with pytest.raises(ValueError, match="gradient of shape"):
        optimizers.Adam().apply_gradients([(np.zeros(3), var([1.0, 2.0]))])
