"""Optimizers: Keras' golden values and update formulas (NumPy references), state, config."""
import math
import os

import numpy as np
import pytest

from fastcnn import optimizers
from fastcnn.layers.base import Variable
from conftest import assert_close, num_threads

f32 = np.float32


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
    assert isinstance(optimizers.get("AdamW"), optimizers.AdamW)
    with pytest.raises(ValueError, match="Unknown optimizer 'adagrd'.*adadelta, adagrad, adam"):
        optimizers.get("adagrd")
    with pytest.raises(ValueError, match=r"momentum.*between \[0, 1\]"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="`lr` is no longer supported"):
        optimizers.Adam(lr=0.1)
    with pytest.raises(ValueError, match="Only one of `clipnorm`"):
        optimizers.Adam(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="gradient of shape"):
        optimizers.Adam().apply_gradients([(np.zeros(3), var([1.0, 2.0]))])


# ----------------------------------------------------------------------- weight decay
# Keras 3 (BaseOptimizer._apply_weight_decay): before each update, every variable not excluded
# becomes  variable - variable * weight_decay * learning_rate  (float32, current lr).

WD_SHAPES = [(3, 3, 2, 4), (4,), (3, 3, 4, 4), (4,), (40, 7), (7,)]
WD_NAMES = ["kernel", "bias", "kernel", "bias", "kernel", "bias"]


def wd_vars(rng):
    return [Variable(rng.standard_normal(s).astype(np.float32), n, "layer%d/%s" % (i, n))
            for i, (s, n) in enumerate(zip(WD_SHAPES, WD_NAMES))]


def wd_grads(rng, steps=6):
    return [[rng.standard_normal(s).astype(np.float32) for s in WD_SHAPES]
            for _ in range(steps)]


def lr_at(t):
    """The learning rate of step t (0-based): changed mid-way, as a callback would."""
    return 0.01 if t < 3 else 0.002


class RefOptimizer:
    """Keras 3's update_step for SGD / Adam(W) / RMSprop + _apply_weight_decay, op by op in
    float32 (Adam's alpha from double, as fastcnn documents)."""

    def __init__(self, kind, wd, momentum=0.0, nesterov=False, b1=0.9, b2=0.999, eps=1e-7,
                 rho=0.9):
        self.kind, self.wd, self.momentum, self.nesterov = kind, wd, momentum, nesterov
        self.b1, self.b2, self.eps, self.rho = b1, b2, eps, rho
        self.t = 0
        self.state = None

    def step(self, ws, gs, lr, decayed):
        if self.state is None:
            self.state = [[np.zeros_like(w) for w in ws] for _ in range(2)]
        self.t += 1
        s1, s2 = self.state
        lr32 = f32(lr)
        out = []
        for i, (w, g) in enumerate(zip(ws, gs)):
            if self.wd is not None and decayed[i]:
                w = w - w * f32(self.wd) * lr32
            if self.kind == "sgd":
                if self.momentum:
                    mom = f32(self.momentum)
                    s1[i] = s1[i] * mom - g * lr32
                    w = w + (s1[i] * mom - g * lr32) if self.nesterov else w + s1[i]
                else:
                    w = w - g * lr32
            elif self.kind == "adam":
                alpha = f32(float(lr32) * math.sqrt(1 - self.b2 ** self.t) / (1 - self.b1 ** self.t))
                s1[i] = s1[i] + (g - s1[i]) * f32(1 - self.b1)
                s2[i] = s2[i] + (g * g - s2[i]) * f32(1 - self.b2)
                w = w - (s1[i] * alpha) / (np.sqrt(s2[i]) + f32(self.eps))
            else:  # rmsprop
                s1[i] = f32(self.rho) * s1[i] + f32(1 - self.rho) * (g * g)
                w = w - (lr32 * g) / np.sqrt(s1[i] + f32(self.eps))
            out.append(w)
        return out


WD_CASES = [
    ("sgd", lambda: optimizers.SGD(0.01, weight_decay=0.5), dict(wd=0.5)),
    ("sgd", lambda: optimizers.SGD(0.01, momentum=0.9, weight_decay=0.3),
     dict(wd=0.3, momentum=0.9)),
    ("sgd", lambda: optimizers.SGD(0.01, momentum=0.9, nesterov=True, weight_decay=0.3),
     dict(wd=0.3, momentum=0.9, nesterov=True)),
    ("adam", lambda: optimizers.Adam(0.01, weight_decay=0.2), dict(wd=0.2)),
    ("adam", lambda: optimizers.AdamW(0.01), dict(wd=0.004)),
    ("adam", lambda: optimizers.AdamW(0.01, weight_decay=0.1, beta_1=0.8, beta_2=0.99,
                                      epsilon=1e-5), dict(wd=0.1, b1=0.8, b2=0.99, eps=1e-5)),
    ("rmsprop", lambda: optimizers.RMSprop(0.01, rho=0.8, weight_decay=0.2),
     dict(wd=0.2, rho=0.8)),
]


@pytest.mark.parametrize("exclude", [None, "names", "vars"])
@pytest.mark.parametrize("kind,make,ref_args", WD_CASES)
def test_weight_decay_matches_keras_float32_bitwise(rng, kind, make, ref_args, exclude):
    opt = make()
    variables = wd_vars(rng)
    decayed = [True] * len(variables)
    if exclude == "names":
        opt.exclude_from_weight_decay(var_names=["bias"])
        decayed = [n != "bias" for n in WD_NAMES]
    elif exclude == "vars":
        opt.exclude_from_weight_decay(var_list=variables[:2])
        decayed = [i >= 2 for i in range(len(variables))]
    ref = RefOptimizer(kind, **ref_args)
    ref_ws = [v.numpy() for v in variables]
    for t, gs in enumerate(wd_grads(rng)):
        opt.learning_rate = lr_at(t)
        opt.apply_gradients(zip(gs, variables))
        ref_ws = ref.step(ref_ws, gs, lr_at(t), decayed)
        for i, (v, r) in enumerate(zip(variables, ref_ws)):
            assert v.numpy().tobytes() == r.tobytes(), "variable %d, step %d" % (i, t + 1)
    assert opt.iterations == 6


@pytest.mark.parametrize("kind,make,ref_args", WD_CASES[2:5])
def test_excluded_variables_are_not_decayed(rng, kind, make, ref_args):
    opt = make()
    variables = wd_vars(rng)
    plain = make()
    plain.weight_decay = None
    same = wd_vars(np.random.default_rng(1234))
    opt.exclude_from_weight_decay(var_names=["bia"])  # a substring of the name is enough
    for v, w in zip(variables, same):
        w.assign(v.numpy())
    for gs in wd_grads(rng, 3):
        opt.apply_gradients(zip(gs, variables))
        plain.apply_gradients(zip(gs, same))
    for v, w in zip(variables, same):
        assert np.array_equal(v.numpy(), w.numpy()) == (v.name == "bias"), v.path


def test_exclusion_rules_like_keras():
    opt = optimizers.AdamW()
    a, b, c = var([1.0], "kernel"), var([1.0], "bias"), var([1.0], "gamma")
    opt.exclude_from_weight_decay(var_list=[a], var_names=["gam", "^bi"])
    assert [opt._use_weight_decay(x) for x in (a, b, c)] == [False, False, False]
    opt.exclude_from_weight_decay(var_names=["bias"])  # replaces the previous exclusions
    assert [opt._use_weight_decay(x) for x in (a, b, c)] == [True, False, True]
    opt.exclude_from_weight_decay()
    assert [opt._use_weight_decay(x) for x in (a, b, c)] == [True, True, True]
    opt.apply_gradients([(np.zeros(1), a)])
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["bias"])


def test_weight_decay_zero_or_none_is_the_plain_update(rng):
    variables = [wd_vars(rng) for _ in range(3)]
    for k in range(1, 3):
        for a, b in zip(variables[0], variables[k]):
            b.assign(a.numpy())
    opts = [optimizers.Adam(0.01), optimizers.Adam(0.01, weight_decay=0.0),
            optimizers.AdamW(0.01, weight_decay=0.0)]
    for gs in wd_grads(rng, 3):
        for opt, vs in zip(opts, variables):
            opt.apply_gradients(zip(gs, vs))
    for k in (1, 2):
        assert all(np.array_equal(a.numpy(), b.numpy())
                   for a, b in zip(variables[0], variables[k]))


def test_weight_decay_bitwise_at_1_and_2_threads(rng):
    shapes = [(3, 3, 16, 32), (32,), (200, 300), (300,)]   # > 32768 elements: chunked path
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    results = []
    for n in (1, 2):
        for make in (lambda: optimizers.AdamW(0.01, weight_decay=0.1),
                     lambda: optimizers.SGD(0.01, momentum=0.9, weight_decay=0.1),
                     lambda: optimizers.RMSprop(0.01, weight_decay=0.1)):
            opt = make()
            opt.exclude_from_weight_decay(var_names=["bias"])
            vs = [Variable(w.copy(), "bias" if len(s) == 1 else "kernel", "l%d" % i)
                  for i, (w, s) in enumerate(zip(w0, shapes))]
            with num_threads(n):
                for gs in grads:
                    opt.apply_gradients(zip(gs, vs))
            results.append(b"".join(v.value.tobytes() for v in vs))
    assert results[:3] == results[3:]


def test_adamw_defaults_config_round_trip_and_registration():
    opt = optimizers.AdamW()
    c = opt.get_config()
    assert (c["learning_rate"], c["weight_decay"], c["beta_1"], c["beta_2"], c["epsilon"],
            c["amsgrad"], c["name"]) == (f32(1e-3), 0.004, 0.9, 0.999, 1e-7, False, "adamw")
    assert set(c) == {"name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm",
                      "clipvalue", "use_ema", "ema_momentum", "ema_overwrite_frequency",
                      "loss_scale_factor", "gradient_accumulation_steps", "beta_1", "beta_2",
                      "epsilon", "amsgrad"}
    assert isinstance(optimizers.get("adamw"), optimizers.AdamW)
    for o in (optimizers.AdamW(learning_rate=0.02, weight_decay=0.05, beta_1=0.8, epsilon=1e-5),
              optimizers.SGD(0.1, momentum=0.5, weight_decay=0.01),
              optimizers.RMSprop(weight_decay=0.3), optimizers.Adam(weight_decay=1e-4),
              optimizers.Adam()):
        s = optimizers.serialize(o)
        clone = optimizers.deserialize(s)
        assert type(clone) is type(o) and clone.get_config() == o.get_config()
        assert clone.weight_decay == o.weight_decay
        assert type(o).from_config(o.get_config()).get_config() == o.get_config()
    assert optimizers.serialize(optimizers.AdamW())["class_name"] == "AdamW"
    assert optimizers.Adam().get_config()["weight_decay"] is None
    assert "weight_decay=0.004" in repr(optimizers.AdamW())


@pytest.mark.parametrize("cls", [optimizers.SGD, optimizers.Adam, optimizers.AdamW,
                                 optimizers.RMSprop])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True, [0.1]])
def test_bad_weight_decay_values(cls, bad):
    with pytest.raises(ValueError) as e:
        cls(weight_decay=bad)
    msg = str(e.value)
    assert cls.__name__ + ":" in msg and "weight_decay" in msg and repr(bad) in msg
    opt = cls()
    with pytest.raises(ValueError, match="weight_decay"):
        opt.weight_decay = bad


def test_adamw_rejects_none_and_amsgrad():
    with pytest.raises(ValueError, match="AdamW: .*`weight_decay` must be a float.*None"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="AdamW.*beta_1"):
        optimizers.AdamW(beta_1=1.5)


# ------------------------------------------------------------ real Keras 3 as the oracle

def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover - another backend preselected
        pytest.skip("the Keras comparison runs on the JAX backend")
    return keras


@pytest.mark.parametrize("name,kwargs", [
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.1)),
    ("AdamW", dict()),
    ("SGD", dict(learning_rate=0.05, weight_decay=0.2)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=0.2)),
    ("RMSprop", dict(learning_rate=0.01, weight_decay=0.3)),
])
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras'
def test_weight_decay_matches_real_keras(rng, name, kwargs):
    keras = _keras()
    ko = getattr(keras.optimizers, name)(**kwargs)
    fo = getattr(optimizers, name)(**kwargs)
    w0 = [rng.standard_normal(s).astype(np.float32) for s in WD_SHAPES]
    kv = [keras.Variable(w, name=n) for w, n in zip(w0, WD_NAMES)]
    fv = [Variable(w.copy(), n, "layer%d/%s" % (i, n))
          for i, (w, n) in enumerate(zip(w0, WD_NAMES))]
    ko.exclude_from_weight_decay(var_names=["bias"])
    fo.exclude_from_weight_decay(var_names=["bias"])
    for t, gs in enumerate(wd_grads(rng)):
        if t == 3:
            ko.learning_rate = fo.learning_rate = kwargs.get("learning_rate", 0.001) / 5
        ko.apply_gradients(zip(gs, kv))
        fo.apply_gradients(zip(gs, fv))
    for k, f in zip(kv, fv):
        kw = np.asarray(k.value)
        assert_close(f.numpy(), kw, rtol=1e-6, atol=1e-6, what=f.path)
        # SGD / RMSprop: the same float32 operations, bit for bit. (Adam: fastcnn computes the
        # bias-corrected rate alpha in double, Keras in float32, hence last-bit differences.)
        if name != "AdamW":
            assert f.numpy().tobytes() == kw.tobytes(), f.path
    kc, fc = ko.get_config(), fo.get_config()
    assert set(fc) == set(kc)
    assert {k: v for k, v in fc.items() if k != "name"} == {
        k: v for k, v in kc.items() if k != "name"}


# ----------------------------------------------------------------------- fit integration
def _tiny_model(optimizer):
    from fastcnn import layers, losses, models
    model = models.Sequential([layers.Input(shape=(4, 4, 1)), layers.Conv2D(3, 3),
                               layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer=optimizer,
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_fit_swaps_in_the_ema_weights_at_the_end(rng):
    x = rng.standard_normal((24, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 2, (24, 1))
    opt = optimizers.Adam(0.01, use_ema=True, ema_momentum=0.5)
    model = _tiny_model(opt)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert opt.iterations == 6
    for v in model.trainable_weights:
        assert np.array_equal(v.numpy(), dict(opt.slots_of(v))["average"])
    plain = _tiny_model(optimizers.Adam(0.01))
    plain.set_weights(model.get_weights())
    plain.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not all(np.array_equal(v.numpy(), dict(opt.slots_of(w))["average"])
                   for v, w in zip(plain.trainable_weights, model.trainable_weights))


def test_fit_with_accumulation_counts_update_steps(rng):
    x = rng.standard_normal((24, 4, 4, 1)).astype(np.float32)
    y = rng.integers(0, 2, (24, 1))
    opt = optimizers.SGD(0.1, gradient_accumulation_steps=2)
    model = _tiny_model(opt)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x[:8], y[:8])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.train_on_batch(x[8:16], y[8:16])
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert (opt.iterations, opt.raw_iterations) == (1, 2)


def test_apply_without_variables_uses_the_built_ones(rng):
    opt, w = optimizers.SGD(0.5), var([1.0, 2.0])
    with pytest.raises(ValueError, match="must already be built"):
        opt.apply([np.ones(2)])
    opt.build([w])
    opt.apply([np.ones(2)])
    assert_close(w.numpy(), [0.5, 1.5])
    assert opt.iterations == 1
