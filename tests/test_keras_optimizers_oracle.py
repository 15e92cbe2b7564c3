"""Real Keras 3 (JAX backend) as the oracle for the optimizers and learning-rate schedules:
the same starting weights and gradients, one and several ``apply`` steps, the same weights and
slots (float32 tolerance); schedules' values at several steps; PyTorch where it has the same
optimizer. Skipped when keras/jax are not installed."""
import os

import numpy as np
import pytest

from fastcnn import ops, optimizers
from fastcnn.layers.base import Variable
from fastcnn.optimizers import schedules
from conftest import assert_close, num_threads

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - another backend was preselected
    pytest.skip("the Keras oracle tests run on the JAX backend", allow_module_level=True)
# Keras' Variable.__array__ predates NumPy 2's copy keyword
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHAPES = [(3, 3, 5, 7), (7,), (13, 4), (1,)]
NAMES = ["kernel", "bias", "kernel", "bias"]


def make_problem(seed, steps):
    rng = np.random.default_rng(seed)
    w0 = [(rng.standard_normal(s) * 0.5).astype(np.float32) for s in SHAPES]
    # magnitudes differ per tensor so clipnorm clips some tensors and not others
    scales = [0.3, 0.02, 1.5, 0.01]
    grads = [[(rng.standard_normal(s) * c).astype(np.float32) for s, c in zip(SHAPES, scales)]
             for _ in range(steps)]
    return w0, grads


def run_fastcnn(opt, w0, grads, exclude=None):
    vs = [Variable(w.copy(), n, "layer%d/%s" % (i, n)) for i, (w, n) in
          enumerate(zip(w0, NAMES))]
    if exclude:
        opt.exclude_from_weight_decay(var_names=exclude)
    history = []
    for g in grads:
        opt.apply(g, vs)
        history.append([v.numpy().copy() for v in vs])
    return history, vs


def run_keras(opt, w0, grads, exclude=None):
    vs = [keras.Variable(w.copy(), name=n) for w, n in zip(w0, NAMES)]
    if exclude:
        opt.exclude_from_weight_decay(var_names=exclude)
    history = []
    for g in grads:
        opt.apply([np.array(x) for x in g], vs)
        history.append([np.asarray(v.numpy()) for v in vs])
    return history


def assert_histories(ours, theirs, rtol=2e-5, atol=2e-6):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, rtol=rtol, atol=atol, what="step %d tensor %d" % (step + 1, i))


OPTIMIZERS = {
    "sgd": ("SGD", dict(learning_rate=0.1)),
    "sgd_momentum": ("SGD", dict(learning_rate=0.05, momentum=0.9)),
    "sgd_nesterov": ("SGD", dict(learning_rate=0.05, momentum=0.8, nesterov=True)),
    "adam": ("Adam", dict(learning_rate=0.01)),
    "adam_amsgrad": ("Adam", dict(learning_rate=0.01, amsgrad=True, beta_2=0.9)),
    "adamw": ("AdamW", dict(learning_rate=0.01, weight_decay=0.05)),
    "adamw_amsgrad": ("AdamW", dict(learning_rate=0.01, amsgrad=True, beta_1=0.8)),
    "rmsprop": ("RMSprop", dict(learning_rate=0.01)),
    "rmsprop_momentum": ("RMSprop", dict(learning_rate=0.01, momentum=0.5)),
    "rmsprop_centered": ("RMSprop", dict(learning_rate=0.01, centered=True)),
    "rmsprop_centered_momentum": ("RMSprop", dict(learning_rate=0.01, centered=True,
                                                  momentum=0.7, rho=0.8)),
    "adagrad": ("Adagrad", dict(learning_rate=0.1)),
    "adagrad_init": ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.5,
                                     epsilon=1e-3)),
    "adadelta": ("Adadelta", dict(learning_rate=1.0)),
    "adamax": ("Adamax", dict(learning_rate=0.02)),
    "nadam": ("Nadam", dict(learning_rate=0.01)),
    "lion": ("Lion", dict(learning_rate=0.003)),
    "ftrl": ("Ftrl", dict(learning_rate=0.1)),
    "ftrl_regularized": ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01,
                                      l2_regularization_strength=0.02,
                                      l2_shrinkage_regularization_strength=0.03, beta=0.1,
                                      learning_rate_power=-0.6)),
}

BASE_ARGS = {
    "plain": {},
    "weight_decay": dict(weight_decay=0.02),
    "clipnorm": dict(clipnorm=0.5),
    "global_clipnorm": dict(global_clipnorm=0.7),
    "clipvalue": dict(clipvalue=0.05),
    "ema": dict(use_ema=True, ema_momentum=0.9),
    "ema_overwrite": dict(use_ema=True, ema_momentum=0.8, ema_overwrite_frequency=2),
    "accumulation": dict(gradient_accumulation_steps=2),
    "loss_scale": dict(loss_scale_factor=8.0),
    "all": dict(clipnorm=0.4, weight_decay=0.01, use_ema=True, ema_momentum=0.7,
                ema_overwrite_frequency=3, gradient_accumulation_steps=3,
                loss_scale_factor=2.0),
}


def check(key, base, steps=5, seed=0, exclude=None):
    cls_name, args = OPTIMIZERS[key]
    kwargs = dict(args, **BASE_ARGS[base])
    w0, grads = make_problem(seed, steps)
    ours, _ = run_fastcnn(getattr(optimizers, cls_name)(**kwargs), w0, grads, exclude)
    theirs = run_keras(getattr(keras.optimizers, cls_name)(**kwargs), w0, grads, exclude)
    assert_histories(ours, theirs)


@pytest.mark.parametrize("key", list(OPTIMIZERS))
@pytest.mark.parametrize("base", ["plain", "weight_decay", "clipnorm"])
def test_every_optimizer_matches_keras(key, base):
    check(key, base)


@pytest.mark.parametrize("key", ["sgd_momentum", "adam", "adamw_amsgrad", "rmsprop_centered",
                                 "adagrad", "nadam", "lion", "ftrl"])
@pytest.mark.parametrize("base", [b for b in BASE_ARGS if b not in ("plain", "weight_decay",
                                                                     "clipnorm")])
def test_base_arguments_match_keras(key, base):
    check(key, base, steps=7)


def test_weight_decay_exclusion_by_name_matches_keras():
    check("adamw", "plain", exclude=["bias"])


def test_one_step_and_the_state_after_it_match_keras():
    w0, grads = make_problem(3, 1)
    ours, vs = run_fastcnn(optimizers.Adam(0.01, amsgrad=True, use_ema=True), w0, grads)
    kopt = keras.optimizers.Adam(0.01, amsgrad=True, use_ema=True)
    theirs = run_keras(kopt, w0, grads)
    assert_histories(ours, theirs)
    opt = optimizers.Adam(0.01, amsgrad=True, use_ema=True)
    _, vs = run_fastcnn(opt, w0, grads)
    for i, v in enumerate(vs):
        slots = dict(opt.slots_of(v))
        assert_close(slots["m"], np.asarray(kopt._momentums[i].numpy()))
        assert_close(slots["v"], np.asarray(kopt._velocities[i].numpy()))
        assert_close(slots["vhat"], np.asarray(kopt._velocity_hats[i].numpy()))
        assert_close(slots["average"],
                     np.asarray(kopt._model_variables_moving_average[i].numpy()))
    assert opt.iterations == int(np.asarray(kopt.iterations)) == 1


def test_iterations_with_accumulation_match_keras():
    opt = optimizers.SGD(0.1, gradient_accumulation_steps=3)
    kopt = keras.optimizers.SGD(0.1, gradient_accumulation_steps=3)
    w0, grads = make_problem(1, 7)
    run_fastcnn(opt, w0, grads)
    run_keras(kopt, w0, grads)
    assert opt.iterations == int(np.asarray(kopt.iterations)) == 2
    assert opt.raw_iterations == 7


def test_finalize_variable_values_copies_the_averages_like_keras():
    w0, grads = make_problem(2, 4)
    opt = optimizers.Adam(0.01, use_ema=True, ema_momentum=0.5)
    _, vs = run_fastcnn(opt, w0, grads)
    kopt = keras.optimizers.Adam(0.01, use_ema=True, ema_momentum=0.5)
    kvs = [keras.Variable(w.copy(), name=n) for w, n in zip(w0, NAMES)]
    for g in grads:
        kopt.apply(g, kvs)
    opt.finalize_variable_values(vs)
    kopt.finalize_variable_values(kvs)
    for v, kv in zip(vs, kvs):
        assert_close(v.numpy(), np.asarray(kv.numpy()))


# ------------------------------------------------------------------------ schedules
SCHEDULES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.5)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.5,
                              staircase=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[2, 5, 9], values=[1.0, 0.5, 0.1, 0.01])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=6)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=4, power=2.0,
                             end_learning_rate=0.01, cycle=True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.2, decay_steps=2, decay_rate=0.3)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.2, decay_steps=2, decay_rate=0.3,
                              staircase=True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=8)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=8, alpha=0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=8, warmup_target=0.2,
                         warmup_steps=4, alpha=0.05)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=3)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=3, t_mul=1.0,
                                 m_mul=0.5, alpha=0.1)),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES)
def test_schedule_values_match_keras(name, kwargs):
    ours = getattr(schedules, name)(**kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
    for step in range(0, 25):
        assert_close(float(ours(step)), float(np.asarray(theirs(step))), rtol=1e-5, atol=1e-7,
                     what="%s step %d" % (name, step))
    assert ours.get_config() == theirs.get_config()
    again = schedules.deserialize(schedules.serialize(ours))
    assert type(again) is type(ours) and again.get_config() == ours.get_config()


@pytest.mark.parametrize("key", ["sgd_momentum", "adamw", "nadam"])
def test_optimizer_with_schedule_matches_keras(key):
    cls_name, args = OPTIMIZERS[key]
    args = dict(args)
    w0, grads = make_problem(4, 9)
    sched = dict(initial_learning_rate=0.0, decay_steps=5, warmup_target=0.05, warmup_steps=3)
    ours, _ = run_fastcnn(getattr(optimizers, cls_name)(
        **dict(args, learning_rate=schedules.CosineDecay(**sched))), w0, grads)
    theirs = run_keras(getattr(keras.optimizers, cls_name)(
        **dict(args, learning_rate=keras.optimizers.schedules.CosineDecay(**sched))), w0, grads)
    assert_histories(ours, theirs)


class HalvingSchedule(schedules.LearningRateSchedule):
    def __init__(self, initial):
        self.initial = initial

    def __call__(self, step):
        return self.initial * 0.5 ** step

    def get_config(self):
        return {"initial": self.initial}


def test_custom_schedule_and_callable_learning_rate():
    w0, grads = make_problem(5, 4)
    ours, _ = run_fastcnn(optimizers.SGD(HalvingSchedule(0.4)), w0, grads)
    ref, _ = run_fastcnn(optimizers.SGD(0.4), w0, grads[:1])
    assert_histories(ours[:1], ref)
    opt = optimizers.SGD(HalvingSchedule(0.4))
    assert opt.learning_rate == pytest.approx(0.4)
    run_fastcnn(opt, w0, grads)
    assert opt.learning_rate == pytest.approx(0.4 / 16)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.1
    config = optimizers.serialize(opt)
    with pytest.raises(ValueError, match="HalvingSchedule"):
        optimizers.deserialize(config)
    clone = optimizers.deserialize(config, custom_objects={"HalvingSchedule": HalvingSchedule})
    assert isinstance(clone._learning_rate, HalvingSchedule)
    calls = []

    def lr_fn():
        calls.append(1)
        return 0.25

    opt = optimizers.SGD(lr_fn)
    _, vs = run_fastcnn(opt, w0, grads[:2])
    ref, _ = run_fastcnn(optimizers.SGD(0.25), w0, grads[:2])
    assert np.array_equal(vs[0].numpy(), ref[-1][0]) and len(calls) >= 2
    clone = optimizers.deserialize(optimizers.serialize(opt), custom_objects={"lr_fn": lr_fn})
    assert clone.learning_rate == 0.25


def test_configs_round_trip_and_match_keras_keys():
    for key, (cls_name, args) in OPTIMIZERS.items():
        opt = getattr(optimizers, cls_name)(**dict(args, **BASE_ARGS["all"]))
        kopt = getattr(keras.optimizers, cls_name)(**dict(args, **BASE_ARGS["all"]))
        ours, theirs = opt.get_config(), kopt.get_config()
        assert set(ours) == set(theirs), key
        for k in ours:
            if k != "name":
                assert ours[k] == pytest.approx(theirs[k]), (key, k)
        clone = optimizers.deserialize(optimizers.serialize(opt))
        assert clone.get_config() == ours
    opt = optimizers.AdamW(schedules.ExponentialDecay(0.1, 10, 0.5))
    clone = optimizers.deserialize(optimizers.serialize(opt))
    assert clone.get_config() == opt.get_config()


# ------------------------------------------------------------------------ threads, errors
@pytest.mark.parametrize("base", ["all", "global_clipnorm", "clipvalue"])
@pytest.mark.parametrize("key", ["adam", "rmsprop_centered_momentum", "ftrl_regularized",
                                 "nadam", "lion", "adadelta", "adamax"])
def test_fused_step_is_bitwise_identical_at_1_and_2_threads(key, base):
    cls_name, args = OPTIMIZERS[key]
    rng = np.random.default_rng(7)
    shapes = [(70001,), (3, 3, 33, 65), (17,)]   # several chunks, so both threads work
    w0 = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[(rng.standard_normal(s) * 0.1).astype(np.float32) for s in shapes]
             for _ in range(4)]
    results = []
    for threads in (1, 2):
        with num_threads(threads):
            opt = getattr(optimizers, cls_name)(**dict(args, **BASE_ARGS[base]))
            vs = [Variable(w.copy(), "kernel", "l%d/kernel" % i) for i, w in enumerate(w0)]
            for g in grads:
                opt.apply(g, vs)
            results.append([v.numpy().copy() for v in vs] +
                           [a.copy() for v in vs for _, a in opt.slots_of(v)])
    for a, b in zip(*results):
        assert np.array_equal(a, b)


def test_gradients_are_not_modified():
    w0, grads = make_problem(6, 3)
    kept = [[g.copy() for g in gs] for gs in grads]
    run_fastcnn(optimizers.AdamW(0.01, clipnorm=0.1, gradient_accumulation_steps=2,
                                 loss_scale_factor=3.0), w0, grads)
    for a, b in zip(grads, kept):
        for x, y in zip(a, b):
            assert np.array_equal(x, y)


@pytest.mark.parametrize("kwargs,match", [
    (dict(clipnorm=1.0, global_clipnorm=1.0), "Only one of `clipnorm`, `clipvalue` and "
                                              "`global_clipnorm` can be set"),
    (dict(gradient_accumulation_steps=1), "`gradient_accumulation_steps` must be an integer "
                                          ">= 2"),
    (dict(gradient_accumulation_steps=2.5), "`gradient_accumulation_steps` must be an integer"),
    (dict(use_ema=True, ema_momentum=1.5), r"`ema_momentum` must be in the range \[0, 1\]"),
    (dict(use_ema=True, ema_overwrite_frequency=0), "`ema_overwrite_frequency` must be an "
                                                    "integer >= 1 or None"),
    (dict(clipnorm=-1.0), "clipnorm"),
    (dict(clipvalue=float("nan")), "clipvalue"),
    (dict(loss_scale_factor=0.0), "loss_scale_factor"),
    (dict(foo=1), "Argument\\(s\\) not recognized"),
])
def test_bad_base_arguments_raise_keras_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimizers.Adam(**kwargs)


def test_bad_rule_arguments_raise():
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="learning_rate_power"):
        optimizers.Ftrl(learning_rate_power=0.5)
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        optimizers.Ftrl(initial_accumulator_value=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.RMSprop(momentum=1.5)
    with pytest.raises(ValueError, match="decay_steps` must be > 0"):
        schedules.CosineDecay(0.1, 0)
    with pytest.raises(ValueError, match="length of boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [0.1])
    with pytest.raises(ValueError, match="Unknown learning-rate schedule"):
        schedules.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match="unknown rule"):
        ops.optimizer_step("adamm", [], [], [], [], 0.1)


# ------------------------------------------------------------------------ PyTorch
torch = None
try:  # optional second oracle
    import torch  # noqa: F811
except ImportError:  # pragma: no cover
    pass


def torch_run(make, w0, grads):
    params = [torch.nn.Parameter(torch.tensor(w.copy())) for w in w0]
    opt = make(params)
    for g in grads:
        for p, x in zip(params, g):
            p.grad = torch.tensor(x.copy())
        opt.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("ours,make", [
    (lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-10),
     lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=0.0)),
    (lambda: optimizers.Adamax(0.02, epsilon=0.0),
     lambda p: torch.optim.Adamax(p, lr=0.02, eps=1e-30)),
    (lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, rho=0.9, epsilon=0.0),
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=0.0, momentum=0.5,
                                   centered=True)),
    (lambda: optimizers.AdamW(0.01, weight_decay=0.1, amsgrad=True, epsilon=1e-8),
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1, amsgrad=True, eps=1e-8)),
])
def test_matches_pytorch_where_the_rule_is_the_same(ours, make):
    w0, grads = make_problem(8, 6)
    mine, _ = run_fastcnn(ours(), w0, grads)
    theirs = torch_run(make, w0, grads)
    for a, b in zip(mine[-1], theirs):
        assert_close(a, b, rtol=2e-4, atol=2e-5)
