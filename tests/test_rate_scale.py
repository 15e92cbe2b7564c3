"""Optimizer.scale_learning_rate: SGD steps of the chosen variables scaled exactly (against
SGD at the scaled rate, bitwise, and a NumPy oracle with weight decay), the rest untouched,
the caller's gradients unchanged, and its refusals."""
import numpy as np
import pytest

from fastcnn import layers, losses, models, optimizers, utils
from fastcnn.layers.base import Variable


def _vars(seed=0):
    rng = np.random.default_rng(seed)
    return [Variable(rng.normal(size=(3, 4)).astype(np.float32), "kernel", "dense/kernel"),
            Variable(rng.normal(size=(4,)).astype(np.float32), "beta", "bn/beta")]


def _grads(step):
    rng = np.random.default_rng(100 + step)
    return [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)]


def test_scaled_sgd_equals_sgd_at_the_scaled_rate_bitwise():
    scaled_vars, kernel_vars, beta_vars = _vars(), _vars(), _vars()
    scaled = optimizers.SGD(0.1, momentum=0.85, nesterov=True)
    scaled.scale_learning_rate(64, var_names=["beta"])
    plain = optimizers.SGD(0.1, momentum=0.85, nesterov=True)
    fast = optimizers.SGD(6.4, momentum=0.85, nesterov=True)
    for step in range(5):
        g = _grads(step)
        kept = [a.copy() for a in g]
        scaled.apply(g, scaled_vars)
        for a, b in zip(g, kept):  # the caller's arrays are not scaled in place
            np.testing.assert_array_equal(a, b)
        plain.apply([g[0]], [kernel_vars[0]])
        fast.apply([g[1]], [beta_vars[1]])
    np.testing.assert_array_equal(scaled_vars[0].value, kernel_vars[0].value)
    np.testing.assert_array_equal(scaled_vars[1].value, beta_vars[1].value)


def test_scaled_rate_keeps_the_weight_decay_numpy_oracle():
    lr, mom, wd, factor = 0.05, 0.9, 0.01, 3.0
    variables = _vars(1)
    opt = optimizers.SGD(lr, momentum=mom, nesterov=True, weight_decay=wd)
    opt.scale_learning_rate(factor, var_list=[variables[1]])
    w = [v.value.astype(np.float64) for v in variables]
    m = [np.zeros_like(a) for a in w]
    for step in range(4):
        g = _grads(step)
        opt.apply(g, variables)
        for i, s in enumerate((1.0, factor)):
            w[i] = w[i] - w[i] * wd * lr          # Keras' decoupled decay, rate unscaled
            m[i] = mom * m[i] - lr * s * g[i]
            w[i] = w[i] + mom * m[i] - lr * s * g[i]
    for v, ref in zip(variables, w):
        np.testing.assert_allclose(v.value, ref, rtol=1e-5, atol=1e-6)


def test_fit_scales_the_batch_norm_shift_only():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, 3, 32)

    def run(factor):
        utils.set_random_seed(0)
        model = models.Sequential([layers.Input(shape=(6,)),
                                   layers.Dense(5, kernel_initializer="ones"),
                                   layers.BatchNormalization(scale=False), layers.Dense(3)])
        opt = optimizers.SGD(0.1)
        if factor:
            opt.scale_learning_rate(factor, var_names=["beta"])
        model.compile(optimizer=opt, loss=losses.SparseCategoricalCrossentropy(from_logits=True))
        before = [w.copy() for w in model.get_weights()]
        model.train_on_batch(x, y)
        return [a - b for a, b in zip(model.get_weights(), before)]

    base, fast = run(None), run(8.0)
    # weights: kernel, bias, beta, moving mean, moving variance, kernel, bias
    np.testing.assert_allclose(fast[2], 8.0 * base[2], rtol=1e-6)
    for i in (0, 1, 5, 6):
        np.testing.assert_array_equal(fast[i], base[i])


def test_scale_learning_rate_refusals():
    with pytest.raises(ValueError, match="only SGD's step is proportional"):
        optimizers.Adam().scale_learning_rate(2.0, var_names=["beta"])
    with pytest.raises(ValueError, match="clipping would clip"):
        optimizers.SGD(0.1, clipnorm=1.0).scale_learning_rate(2.0, var_names=["beta"])
    for bad in (0, -1.0, float("inf"), float("nan"), True, "2"):
        with pytest.raises(ValueError, match="factor must be a finite number > 0"):
            optimizers.SGD(0.1).scale_learning_rate(bad, var_names=["beta"])
    with pytest.raises(TypeError, match="var_names must be strings"):
        optimizers.SGD(0.1).scale_learning_rate(2.0, var_names=[3])
    opt = optimizers.SGD(0.1)
    variables = _vars()
    opt.apply(_grads(0), variables)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.scale_learning_rate(2.0, var_list=variables)
