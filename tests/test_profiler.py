"""fastcnn.profiler / Sequential.profile: structure, FLOP counts, no side effects, and that
the profiled step is a real training step (its gradients match the NumPy oracle)."""
import os
import sys

import numpy as np
import pytest

from fastcnn import layers, models, profiler

from conftest import assert_close
from conftest import cifar_like_batch as batch, compiled_tutorial as tutorial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
from numpy_baseline import TutorialModel  # noqa: E402

PEAK = 100.0  # a fixed peak keeps the tests from spending time measuring it


def test_rows_flops_and_table():
    m = tutorial()
    x, y = batch(4)
    rows = m.profile(x, y, repeats=2, warmup=1, peak_gflops=PEAK)
    assert isinstance(rows, profiler.ProfileResult) and len(rows) == 8 + 3
    assert [r.name for r in rows[:8]] == [l.name for l in m.layers]
    assert [r.name for r in rows[8:]] == ["loss", "optimizer", "total"]
    # each conv runs together with its pool (the first as one kernel, the second computing
    # only the 12x12 outputs the pool reads): timed on the conv's row
    assert [r.type for r in rows[:5]] == ["Conv2D+MaxPooling2D", "MaxPooling2D (fused)",
                                          "Conv2D+MaxPooling2D", "MaxPooling2D (fused)",
                                          "Conv2D"]
    assert rows[1].forward_ms == rows[1].backward_ms == rows[3].forward_ms == 0.0
    assert [r.output_shape for r in rows[:8]] == [
        (4, 30, 30, 32), (4, 15, 15, 32), (4, 13, 13, 64), (4, 6, 6, 64), (4, 4, 4, 64),
        (4, 1024), (4, 64), (4, 10)]
    conv1 = 2 * 4 * 30 * 30 * 32 * 9 * 3
    conv2 = 2 * 4 * 13 * 13 * 64 * 9 * 32
    conv3 = 2 * 4 * 4 * 4 * 64 * 9 * 64
    d1, d2 = 2 * 4 * 1024 * 64, 2 * 4 * 64 * 10
    assert [r.forward_flop for r in rows[:8]] == [conv1, 0, conv2, 0, conv3, 0, d1, d2]
    # the first conv computes no input gradient: 1x; the others 2x
    assert [r.backward_flop for r in rows[:8]] == [conv1, 0, 2 * conv2, 0, 2 * conv3, 0,
                                                   2 * d1, 2 * d2]
    total = rows.total
    assert total.forward_flop == conv1 + conv2 + conv3 + d1 + d2
    assert total.backward_flop == sum(r.backward_flop for r in rows[:8])
    for r in rows[:10]:
        assert r.forward_ms is not None and r.forward_ms >= 0
    for r in rows[:8]:
        assert r.backward_ms is not None and r.backward_ms >= 0
        if r.forward_flop:
            assert r.forward_gflops == pytest.approx(r.forward_flop / r.forward_ms / 1e6)
            assert r.backward_gflops == pytest.approx(r.backward_flop / r.backward_ms / 1e6)
            both = (r.forward_flop + r.backward_flop) / (r.forward_ms + r.backward_ms) / 1e6
            assert r.percent_of_peak == pytest.approx(100 * both / PEAK)
        else:
            assert r.forward_gflops is r.backward_gflops is r.percent_of_peak is None
    assert rows[8].backward_ms is None and rows[9].backward_ms is None
    assert rows[9].output_shape == (sum(w.size for w in m.trainable_weights),)
    assert total.percent_of_time == 100.0 and rows.step_ms > 0
    assert rows.batch_size == 4 and rows.peak_gflops == PEAK and rows.training
    text = profiler.format_profile(rows)
    lines = text.splitlines()
    assert "batch 4" in lines[0] and "100.0 GFLOP/s" in lines[0]
    for l in m.layers:
        assert any(line.startswith(l.name + " ") for line in lines)
    assert lines[-1].startswith("total") and "(4, 30, 30, 32)" in text


def test_profile_changes_nothing():
    ref = TutorialModel(seed=3)
    m = tutorial(ref.get_weights())
    x, y = batch(6, seed=1)
    m.train_on_batch(x, y)  # optimizer state that the profile must put back
    w = m.get_weights()
    slots = {k: [a.copy() for a in v] for k, v in m.optimizer._slots.items()}
    m.profile(x, y, repeats=2, warmup=1, peak_gflops=PEAK)
    assert m.optimizer.iterations == 1
    assert all(np.array_equal(a, b) for a, b in zip(w, m.get_weights()))
    for k, v in slots.items():
        assert all(np.array_equal(a, b) for a, b in zip(v, m.optimizer._slots[k]))
    # and training continues exactly as if no profile had run
    twin = tutorial(ref.get_weights())
    twin.train_on_batch(x, y)
    x2, y2 = batch(6, seed=2)
    assert m.train_on_batch(x2, y2) == twin.train_on_batch(x2, y2)
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), twin.get_weights()))


def test_profiled_step_is_a_real_training_step():
    ref = TutorialModel(seed=5)
    m = tutorial(ref.get_weights())
    x, y = batch(3, seed=7)
    m.profile(x, y, repeats=1, warmup=0, peak_gflops=PEAK)
    # one step at the initial weights: the layers' gradient arrays hold its gradients
    _, want = ref.gradients(x, y)
    got = [g for l in m.layers for g in l.gradients]
    for k, (a, b) in enumerate(zip(got, want)):
        assert_close(a, b, rtol=1e-4, atol=1e-5, what="gradient %d" % k)


def test_forward_only_profile_and_unbuilt_model():
    m = models.Sequential([layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                           layers.Dropout(0.5), layers.Dense(3)])
    x = np.random.default_rng(0).random((2, 7, 7, 2), dtype=np.float32)
    rows = profiler.profile(m, x, repeats=1, warmup=0, peak_gflops=PEAK)  # builds the model
    assert m.built and [r.name for r in rows] == [l.name for l in m.layers] + ["total"]
    assert not rows.training and all(r.backward_ms is None for r in rows)
    assert rows[0].forward_flop == 2 * 2 * 5 * 5 * 4 * 9 * 2 and rows[0].backward_flop == 0
    assert "forward (inference)" in profiler.format_profile(rows)
    low = profiler.profile(m, x, repeats=3, warmup=0, peak_gflops=PEAK, stat="min")
    assert low.stat == "min" and "min of 3" in profiler.format_profile(low)


def test_dropout_stream_restored_and_frozen_first_layer():
    m = models.Sequential([layers.Input(shape=(6,)), layers.Dense(5, activation="relu"),
                           layers.Dropout(0.3, seed=1), layers.Dense(2)])
    m.layers[0].trainable = False
    m.compile(optimizer="sgd", loss="mse")
    r = np.random.default_rng(0)
    x, y = r.random((4, 6)), r.random((4, 2))
    state = m.layers[1].extra_state()
    rows = m.profile(x, y, repeats=2, warmup=1, peak_gflops=PEAK)
    assert {k: int(v) for k, v in m.layers[1].extra_state().items()} == \
        {k: int(v) for k, v in state.items()}
    # the frozen first Dense runs no backward; the last Dense is the first trainable layer
    assert rows[0].backward_ms is None and rows[0].backward_flop == 0
    assert rows[1].backward_ms is None
    assert rows[2].backward_flop == 2 * 4 * 5 * 2  # weight gradient only
    assert [r.name for r in rows[3:]] == ["loss", "optimizer", "total"]


def test_bad_arguments():
    m = tutorial()
    x, y = batch(2)
    with pytest.raises(ValueError, match="repeats"):
        m.profile(x, y, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        m.profile(x, y, warmup=-1)
    with pytest.raises(ValueError, match="stat"):
        m.profile(x, y, stat="mean")
    with pytest.raises(ValueError, match="no samples"):
        m.profile(x[:0], y[:0])
    with pytest.raises(ValueError, match="incompatible"):
        m.profile(np.zeros((2, 8, 8, 3), np.float32), y)
    uncompiled = models.Sequential([layers.Input(shape=(3,)), layers.Dense(2)])
    with pytest.raises(RuntimeError, match="compile"):
        uncompiled.profile(np.zeros((2, 3)), np.zeros((2, 2)))
