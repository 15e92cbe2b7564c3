"""In-place optimizer updates (fastcnn.ops.optim) against NumPy implementations of Keras 3."""
import math

import numpy as np
import pytest

import fastcnn
from fastcnn import ops
from conftest import assert_close, num_threads

f32 = np.float32

SEED_SHAPES = [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,), (3, 3, 64, 64), (64,), (1024, 64),
               (64,), (64, 10), (10,)]


# ----------------------------------------------------------------- NumPy references

def np_adam_f64(w, g, m, v, t, lr, b1, b2, eps):
    """The textbook/Keras formula in float64 (returns new arrays)."""
    w, g, m, v = (np.asarray(a, np.float64) for a in (w, g, m, v))
    lr_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    return w - lr_t * m / (np.sqrt(v) + eps), m, v


def np_adam_keras_f32(w, g, m, v, t, lr, b1, b2, eps):
    """Keras 3's Adam.update_step, op by op in float32 (alpha rounded from double)."""
    alpha = f32(lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t))
    m = m + (g - m) * f32(1 - b1)
    v = v + (g * g - v) * f32(1 - b2)
    return w - (m * alpha) / (np.sqrt(v) + f32(eps)), m, v


def np_sgd(w, g, vel, lr, momentum, nesterov):
    """Keras 3 SGD.update_step in float32."""
    lr, momentum = f32(lr), f32(momentum)
    if vel is None:
        return w - g * lr, None
    vel = vel * momentum - g * lr
    if nesterov:
        return w + (vel * momentum - g * lr), vel
    return w + vel, vel


def np_rmsprop(w, g, vel, lr, rho, eps):
    """Keras 3 RMSprop.update_step (momentum 0, not centered) in float32."""
    vel = f32(rho) * vel + f32(1 - rho) * (g * g)
    return w - (f32(lr) * g) / np.sqrt(vel + f32(eps)), vel


def np_decay(w, wd, lr):
    """Keras 3 BaseOptimizer._apply_weight_decay in float32: w - w * wd * lr (left to right)."""
    return w - w * f32(wd) * f32(lr)


def _arrays(rng, shape, n=4):
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


# ------------------------------------------------------------------------------- Adam

def test_adam_golden_values():
    # Adam(learning_rate=0.5): after one step every weight moves by ~lr (= 0.5)
    w = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    ops.adam_update(w, np.array([1.0, 6.0, 7.0, 2.0], np.float32), m, v, 1, learning_rate=0.5)
    np.testing.assert_allclose(w, [0.5, 1.5, 2.5, 3.5], rtol=0, atol=1e-5)
    np.testing.assert_allclose(m, [0.1, 0.6, 0.7, 0.2], rtol=1e-6)
    np.testing.assert_allclose(v, [0.001, 0.036, 0.049, 0.004], rtol=1e-5)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5, 2), (70001,)])
@pytest.mark.parametrize("hp", [dict(), dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99,
                                             epsilon=1e-4)])
def test_adam_several_steps_match_keras_formula(rng, shape, hp):
    w = rng.standard_normal(shape).astype(np.float32)
    m, v = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    args = dict(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    args.update(hp)
    rw, rm, rv = w.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
    kw, km, kv = w.copy(), m.copy(), v.copy()
    for t in range(1, 8):
        g = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 2)).astype(np.float32)
        ops.adam_update(w, g, m, v, t, **args)
        rw, rm, rv = np_adam_f64(rw, g, rm, rv, t, args["learning_rate"], args["beta_1"],
                                 args["beta_2"], args["epsilon"])
        kw, km, kv = np_adam_keras_f32(kw, g, km, kv, t, args["learning_rate"], args["beta_1"],
                                       args["beta_2"], args["epsilon"])
        # the float64 formula, tightly ...
        assert_close(w, rw, rtol=1e-6, atol=1e-6, what="w step %d" % t)
        assert_close(m, rm, rtol=1e-5, atol=1e-6, what="m step %d" % t)
        assert_close(v, rv, rtol=1e-5, atol=1e-7, what="v step %d" % t)
        # ... and Keras' float32 arithmetic, bit for bit
        assert w.tobytes() == kw.tobytes() and m.tobytes() == km.tobytes()
        assert v.tobytes() == kv.tobytes()


def test_adam_late_step_bias_correction(rng):
    w, g = _arrays(rng, (100,), 2)
    m = rng.standard_normal(100).astype(np.float32)
    v = np.abs(rng.standard_normal(100)).astype(np.float32)
    rw, _, _ = np_adam_f64(w, g, m, v, 5000, 1e-3, 0.9, 0.999, 1e-7)
    ops.adam_update(w, g, m, v, 5000)
    assert_close(w, rw, rtol=1e-6, atol=1e-6)


def test_adam_many_equals_single_tensor_updates_bitwise(rng):
    ws = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES]
    gs = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES]
    ms = [rng.standard_normal(s).astype(np.float32) * 0.1 for s in SEED_SHAPES]
    vs = [np.abs(rng.standard_normal(s)).astype(np.float32) * 0.01 for s in SEED_SHAPES]
    copies = [[a.copy() for a in lst] for lst in (ws, gs, ms, vs)]
    assert sum(a.size for a in ws) == 122570
    ops.adam_update_many(ws, gs, ms, vs, 3, learning_rate=0.01)
    for w, g, m, v in zip(*copies):
        ops.adam_update(w, g, m, v, 3, learning_rate=0.01)
    for a, b in zip(ws + ms + vs, copies[0] + copies[2] + copies[3]):
        assert a.tobytes() == b.tobytes()


# -------------------------------------------------------------------------------- SGD

@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True),
                                               (0.5, True), (1.0, False)])
@pytest.mark.parametrize("shape", [(5,), (3, 3, 3, 7), (50000,)])
def test_sgd_several_steps(rng, shape, momentum, nesterov):
    w = rng.standard_normal(shape).astype(np.float32)
    vel = np.zeros(shape, np.float32) if momentum else None
    rw, rvel = w.copy(), None if vel is None else vel.copy()
    w64 = w.astype(np.float64)
    v64 = np.zeros(shape)
    for _ in range(6):
        g = rng.standard_normal(shape).astype(np.float32)
        ops.sgd_update(w, g, vel, learning_rate=0.05, momentum=momentum, nesterov=nesterov)
        rw, rvel = np_sgd(rw, g, rvel, 0.05, momentum, nesterov)
        assert w.tobytes() == rw.tobytes()
        if vel is not None:
            assert vel.tobytes() == rvel.tobytes()
        # the textbook formula in float64
        v64 = momentum * v64 - 0.05 * g
        w64 = w64 + (momentum * v64 - 0.05 * g if nesterov else v64)
    assert_close(w, w64, rtol=1e-5, atol=1e-5)


def test_sgd_plain_and_zero_momentum_with_velocity_agree(rng):
    w, g = _arrays(rng, (1000,), 2)
    w2 = w.copy()
    ops.sgd_update(w, g, learning_rate=0.1)
    vel = np.zeros_like(w)
    ops.sgd_update(w2, g, vel, learning_rate=0.1, momentum=0.0)
    assert w.tobytes() == w2.tobytes()
    np.testing.assert_array_equal(vel, -(g * f32(0.1)))


def test_sgd_many_with_and_without_velocity(rng):
    ws = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES]
    gs = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES]
    vels = [np.zeros(s, np.float32) for s in SEED_SHAPES]
    refs = [w.copy() for w in ws]
    ops.sgd_update_many(ws, gs, vels, learning_rate=0.01, momentum=0.9, nesterov=True)
    for a, w, g in zip(ws, refs, gs):
        np.testing.assert_array_equal(a, np_sgd(w, g, np.zeros_like(w), 0.01, 0.9, True)[0])
    ws2 = [w.copy() for w in refs]
    ops.sgd_update_many(ws2, gs, learning_rate=0.01)
    for a, w, g in zip(ws2, refs, gs):
        np.testing.assert_array_equal(a, w - g * f32(0.01))


# ---------------------------------------------------------------------------- RMSprop

@pytest.mark.parametrize("shape", [(3,), (4, 4, 3, 8), (40000,)])
def test_rmsprop_several_steps(rng, shape):
    w = rng.standard_normal(shape).astype(np.float32)
    vel = np.zeros(shape, np.float32)
    rw, rvel = w.copy(), vel.copy()
    w64, v64 = w.astype(np.float64), np.zeros(shape)
    for _ in range(6):
        g = rng.standard_normal(shape).astype(np.float32)
        ops.rmsprop_update(w, g, vel, learning_rate=0.01, rho=0.8, epsilon=1e-6)
        rw, rvel = np_rmsprop(rw, g, rvel, 0.01, 0.8, 1e-6)
        assert w.tobytes() == rw.tobytes() and vel.tobytes() == rvel.tobytes()
        v64 = 0.8 * v64 + 0.2 * g.astype(np.float64) ** 2
        w64 = w64 - 0.01 * g / np.sqrt(v64 + 1e-6)
        assert_close(w, w64, rtol=1e-5, atol=1e-5)


def test_rmsprop_epsilon_is_inside_the_square_root():
    # Keras 3 (and TF's ApplyRMSProp): w -= lr*g / sqrt(v + eps), not lr*g / (sqrt(v) + eps)
    w = np.zeros(1, np.float32)
    vel = np.zeros(1, np.float32)
    ops.rmsprop_update(w, np.array([1e-3], np.float32), vel, learning_rate=1.0, rho=0.0,
                       epsilon=1e-6)
    inside = -1e-3 / math.sqrt(1e-6 + 1e-6)
    outside = -1e-3 / (math.sqrt(1e-6) + 1e-6)
    assert abs(w[0] - inside) < 1e-6 * abs(inside)
    assert abs(w[0] - outside) > 0.1 * abs(outside)


def test_rmsprop_many_equals_single(rng):
    ws = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES]
    gs = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES]
    vels = [np.abs(rng.standard_normal(s)).astype(np.float32) for s in SEED_SHAPES]
    cw, cv = [w.copy() for w in ws], [v.copy() for v in vels]
    ops.rmsprop_update_many(ws, gs, vels)
    for w, g, v in zip(cw, gs, cv):
        ops.rmsprop_update(w, g, v)
    for a, b in zip(ws + vels, cw + cv):
        assert a.tobytes() == b.tobytes()


# ----------------------------------------------------------------------- weight decay

# A mix of small tensors and large ones (more than one 16384-element chunk, and more than
# 32768 elements in all, so the multi-threaded chunked path runs).
DECAY_SHAPES = [(3, 3, 2, 8), (8,), (40000,), (7,), (130, 257)]
DECAY_FACTORS = [0.1, 0.0, 0.004, 0.0, 0.25]   # 0: excluded from the decay
DECAY_LRS = [0.01, 0.01, 0.01, 0.05, 0.05, 0.002, 0.002]   # changed mid-way, like a callback


def _decay_setup(rng, n_state):
    ws = [rng.standard_normal(s).astype(np.float32) for s in DECAY_SHAPES]
    states = [[np.zeros(s, np.float32) for s in DECAY_SHAPES] for _ in range(n_state)]
    return ws, states


def _decay_grads(rng):
    return [(rng.standard_normal(s) * 10.0 ** rng.integers(-3, 1)).astype(np.float32)
            for s in DECAY_SHAPES]


def test_decay_golden_values():
    # SGD with a zero gradient: only the decay acts, w * (1 - wd*lr) (float32)
    w = np.array([1.0, -2.0, 4.0], np.float32)
    ops.sgd_update(w, np.zeros(3, np.float32), learning_rate=0.5, weight_decay=0.1)
    np.testing.assert_array_equal(w, np.array([0.95, -1.9, 3.8], np.float32))
    # decay factor 0 or None: exactly the old update
    w1, w2, g = np.ones(4, np.float32), np.ones(4, np.float32), np.full(4, 0.5, np.float32)
    ops.sgd_update(w1, g, learning_rate=0.1, weight_decay=0.0)
    ops.sgd_update(w2, g, learning_rate=0.1)
    assert w1.tobytes() == w2.tobytes()


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_weight_decay_matches_keras_float32_bitwise(rng, momentum, nesterov):
    ws, (vels,) = _decay_setup(rng, 1)
    ref_w, ref_v = [w.copy() for w in ws], [v.copy() for v in vels]
    for lr in DECAY_LRS:
        gs = _decay_grads(rng)
        ops.sgd_update_many(ws, gs, vels if momentum else None, learning_rate=lr,
                            momentum=momentum, nesterov=nesterov, weight_decay=DECAY_FACTORS)
        for i, (g, wd) in enumerate(zip(gs, DECAY_FACTORS)):
            w = np_decay(ref_w[i], wd, lr) if wd else ref_w[i]
            ref_w[i], v = np_sgd(w, g, ref_v[i] if momentum else None, lr, momentum, nesterov)
            if momentum:
                ref_v[i] = v
        for i in range(len(ws)):
            assert ws[i].tobytes() == ref_w[i].tobytes(), "tensor %d" % i
            if momentum:
                assert vels[i].tobytes() == ref_v[i].tobytes()


def test_adam_weight_decay_matches_keras_float32_bitwise(rng):
    ws, (ms, vs) = _decay_setup(rng, 2)
    ref = [[a.copy() for a in lst] for lst in (ws, ms, vs)]
    for t, lr in enumerate(DECAY_LRS, start=1):
        gs = _decay_grads(rng)
        ops.adam_update_many(ws, gs, ms, vs, t, learning_rate=lr, weight_decay=DECAY_FACTORS)
        for i, (g, wd) in enumerate(zip(gs, DECAY_FACTORS)):
            w = np_decay(ref[0][i], wd, lr) if wd else ref[0][i]
            ref[0][i], ref[1][i], ref[2][i] = np_adam_keras_f32(
                w, g, ref[1][i], ref[2][i], t, lr, 0.9, 0.999, 1e-7)
        for i in range(len(ws)):
            assert ws[i].tobytes() == ref[0][i].tobytes(), "tensor %d step %d" % (i, t)
            assert ms[i].tobytes() == ref[1][i].tobytes()
            assert vs[i].tobytes() == ref[2][i].tobytes()


def test_rmsprop_weight_decay_matches_keras_float32_bitwise(rng):
    ws, (vels,) = _decay_setup(rng, 1)
    ref_w, ref_v = [w.copy() for w in ws], [v.copy() for v in vels]
    for lr in DECAY_LRS:
        gs = _decay_grads(rng)
        ops.rmsprop_update_many(ws, gs, vels, learning_rate=lr, rho=0.8, epsilon=1e-6,
                                weight_decay=DECAY_FACTORS)
        for i, (g, wd) in enumerate(zip(gs, DECAY_FACTORS)):
            w = np_decay(ref_w[i], wd, lr) if wd else ref_w[i]
            ref_w[i], ref_v[i] = np_rmsprop(w, g, ref_v[i], lr, 0.8, 1e-6)
        for i in range(len(ws)):
            assert ws[i].tobytes() == ref_w[i].tobytes() and vels[i].tobytes() == ref_v[i].tobytes()


def test_excluded_tensors_get_exactly_the_undecayed_update(rng):
    ws, (ms, vs) = _decay_setup(rng, 2)
    plain = [[a.copy() for a in lst] for lst in (ws, ms, vs)]
    for t in range(1, 4):
        gs = _decay_grads(rng)
        ops.adam_update_many(ws, gs, ms, vs, t, learning_rate=0.01, weight_decay=DECAY_FACTORS)
        ops.adam_update_many(plain[0], gs, plain[1], plain[2], t, learning_rate=0.01)
    for i, wd in enumerate(DECAY_FACTORS):
        same = ws[i].tobytes() == plain[0][i].tobytes()
        assert same == (wd == 0.0), "tensor %d (decay %g)" % (i, wd)
        assert ms[i].tobytes() == plain[1][i].tobytes()   # the moments never see the decay


def test_scalar_weight_decay_applies_to_every_tensor(rng):
    ws, (vels,) = _decay_setup(rng, 1)
    ws2, vels2 = [w.copy() for w in ws], [v.copy() for v in vels]
    gs = _decay_grads(rng)
    ops.rmsprop_update_many(ws, gs, vels, weight_decay=0.01)
    ops.rmsprop_update_many(ws2, gs, vels2, weight_decay=[0.01] * len(ws2))
    for a, b in zip(ws + vels, ws2 + vels2):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("wd,exc,words", [
    (-0.1, ValueError, ["weight_decay", "-0.1"]),
    (float("nan"), ValueError, ["weight_decay", "finite"]),
    (float("inf"), ValueError, ["weight_decay", "finite"]),
    ("0.1", TypeError, ["weight_decay"]),
    (True, TypeError, ["weight_decay"]),
    ([0.1, -1.0], ValueError, ["weight_decay[1]"]),
    ([0.1], ValueError, ["weight_decay has 1 factors but params has 2"]),
])
def test_bad_weight_decay(wd, exc, words):
    w, g, m, v = _good()
    g += 1.0  # an update would move w
    args = ([w, w.copy()], [g, g.copy()], [m, m.copy()], [v, v.copy()], 1)
    for call in (lambda: ops.adam_update_many(*args, weight_decay=wd),
                 lambda: ops.sgd_update_many(args[0], args[1], weight_decay=wd),
                 lambda: ops.rmsprop_update_many(args[0], args[1], args[2], weight_decay=wd)):
        with pytest.raises(exc) as e:
            call()
        for word in words:
            assert word in str(e.value)
    assert not w.any() and not m.any()  # checked before anything was updated


# ------------------------------------------------- threads, SIMD paths, input handling

def _run_all(shapes, seed=5, decay=False):
    r = np.random.default_rng(seed)
    out = []
    ws = [r.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [r.standard_normal(s).astype(np.float32) for s in shapes]
    ms = [r.standard_normal(s).astype(np.float32) for s in shapes]
    vs = [np.abs(r.standard_normal(s)).astype(np.float32) for s in shapes]
    # with decay: every other tensor excluded (factor 0), the others decayed
    wd = [0.0 if i % 2 else 0.05 for i in range(len(shapes))] if decay else None
    ops.adam_update_many(ws, gs, ms, vs, 2, learning_rate=0.01, weight_decay=wd)
    ops.sgd_update_many(ws, gs, ms, learning_rate=0.01, momentum=0.9, nesterov=True,
                        weight_decay=wd)
    ops.sgd_update_many(ws, gs, ms, learning_rate=0.02, momentum=0.9, weight_decay=wd)
    ops.sgd_update_many(ws, gs, learning_rate=0.03, weight_decay=wd)
    ops.rmsprop_update_many(ws, gs, vs, weight_decay=wd)
    ops.adam_update(ws[0], gs[0], ms[0], vs[0], 7, weight_decay=0.1 if decay else None)
    for lst in (ws, ms, vs):
        out.extend(a.tobytes() for a in lst)
    return out


@pytest.mark.parametrize("decay", [False, True])
def test_bitwise_identical_at_1_and_2_threads(decay):
    shapes = SEED_SHAPES + [(300001,)]
    with num_threads(1):
        one = _run_all(shapes, decay=decay)
    with num_threads(2):
        two = _run_all(shapes, decay=decay)
    assert one == two


@pytest.mark.parametrize("decay", [False, True])
def test_portable_and_simd_paths_agree_bitwise(decay):
    shapes = [(1037,), (64, 10), (70000,)]
    fastcnn._ext.force_simd(0)
    try:
        portable = _run_all(shapes, decay=decay)
    finally:
        fastcnn._ext.force_simd(-1)
    assert portable == _run_all(shapes, decay=decay)


def test_gradient_may_be_float64_or_noncontiguous(rng):
    w, m, v = _arrays(rng, (6, 5), 3)
    v = np.abs(v)
    g = rng.standard_normal((6, 5)).astype(np.float32)
    ref = [a.copy() for a in (w, m, v)]
    ops.adam_update(ref[0], g, ref[1], ref[2], 1)
    ops.adam_update(w, np.asfortranarray(g.astype(np.float64)), m, v, 1)
    for a, b in zip((w, m, v), ref):
        assert a.tobytes() == b.tobytes()


def test_tuples_and_converted_gradients_take_the_checked_path_with_same_result(rng):
    ws = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES[:4]]
    gs = [rng.standard_normal(s).astype(np.float32) for s in SEED_SHAPES[:4]]
    ms = [np.zeros(s, np.float32) for s in SEED_SHAPES[:4]]
    vs = [np.zeros(s, np.float32) for s in SEED_SHAPES[:4]]
    copies = [[a.copy() for a in lst] for lst in (ws, ms, vs)]
    ops.adam_update_many(ws, gs, ms, vs, 1)                       # fast pre-check path
    ops.adam_update_many(tuple(copies[0]), [g.astype(np.float64) for g in gs],
                         tuple(copies[1]), tuple(copies[2]), 1)  # one-by-one checks
    for a, b in zip(ws + ms + vs, copies[0] + copies[1] + copies[2]):
        assert a.tobytes() == b.tobytes()


def test_empty_tensors_are_fine():
    w = np.zeros((0, 3), np.float32)
    ops.adam_update(w, w.copy(), w.copy(), w.copy(), 1)
    ops.sgd_update_many([], [], learning_rate=0.1)
    ops.rmsprop_update_many([], [], [])


# ------------------------------------------------------------------------ bad input

def _good(n=4):
    return [np.zeros(n, np.float32) for _ in range(4)]


@pytest.mark.parametrize("which", [0, 2, 3])
def test_state_arrays_must_be_float32_contiguous_writeable(which):
    args = _good()
    args[which] = np.zeros(4, np.float64)
    with pytest.raises(ValueError, match="float32"):
        ops.adam_update(*args, step=1)
    args = _good()
    args[which] = np.zeros(8, np.float32)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.adam_update(*args, step=1)
    args = _good()
    args[which].flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.adam_update(*args, step=1)
    args = _good()
    args[which] = [0.0] * 4
    with pytest.raises(TypeError, match="numpy array"):
        ops.adam_update(*args, step=1)


def test_shape_mismatches_raise():
    w, g, m, v = _good()
    with pytest.raises(ValueError, match=r"grads\[0\]: expected the weight's shape \(4,\)"):
        ops.adam_update(w, np.zeros(5, np.float32), m, v, 1)
    with pytest.raises(ValueError, match=r"v\[0\]: expected the weight's shape \(4,\), got \(2, 2\)"):
        ops.adam_update(w, g, m, np.zeros((2, 2), np.float32), 1)
    with pytest.raises(ValueError, match=r"velocity\[0\]"):
        ops.sgd_update(w, g, np.zeros(3, np.float32), momentum=0.9)
    with pytest.raises(ValueError, match=r"velocity\[0\]"):
        ops.rmsprop_update(w, g, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="grads has 1 arrays but params has 2"):
        ops.adam_update_many([w, w.copy()], [g], [m, m.copy()], [v, v.copy()], 1)
    with pytest.raises(TypeError, match="list"):
        ops.adam_update_many(w, g, m, v, 1)


def test_aliasing_raises():
    w, g, m, v = _good()
    with pytest.raises(ValueError, match=r"v\[0\] must not overlap m\[0\]"):
        ops.adam_update(w, g, m, m, 1)
    with pytest.raises(ValueError, match=r"grads\[0\] must not overlap params\[0\]"):
        ops.adam_update(w, w, m, v, 1)
    with pytest.raises(ValueError, match=r"velocity\[0\] must not overlap params\[0\]"):
        ops.sgd_update(w, g, w, momentum=0.5)


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(step=0), ValueError, ["1-based"]),
    (dict(step=True), TypeError, ["step"]),
    (dict(step=1.0), TypeError, ["step"]),
    (dict(step=1, beta_1=1.0), ValueError, ["beta_1", "[0, 1)"]),
    (dict(step=1, beta_2=-0.1), ValueError, ["beta_2"]),
    (dict(step=1, epsilon=-1e-7), ValueError, ["epsilon"]),
    (dict(step=1, learning_rate=float("nan")), ValueError, ["learning_rate", "finite"]),
    (dict(step=1, learning_rate="0.1"), TypeError, ["learning_rate"]),
])
def test_bad_adam_hyperparameters(kwargs, exc, words):
    with pytest.raises(exc) as e:
        ops.adam_update(*_good(), **kwargs)
    for w in words:
        assert w in str(e.value)
    assert "adam_update" in str(e.value)


def test_bad_sgd_and_rmsprop_hyperparameters():
    w, g, vel, _ = _good()
    with pytest.raises(ValueError, match="needs a velocity"):
        ops.sgd_update(w, g, momentum=0.9)
    with pytest.raises(ValueError, match="momentum"):
        ops.sgd_update(w, g, vel, momentum=1.5)
    with pytest.raises(ValueError, match="rho"):
        ops.rmsprop_update(w, g, vel, rho=2.0)
    with pytest.raises(ValueError, match="velocity arrays are required"):
        ops.rmsprop_update_many([w], [g], None)
    with pytest.raises(TypeError, match="velocity"):
        ops.rmsprop_update(w, g, None)
