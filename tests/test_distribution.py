"""Data-parallel training over MPI (fastcnn.distribution).

The multi-process tests launch ``mpiexec -n N python tests/mpi_worker.py ...`` on loopback,
one kernel thread per rank, and skip cleanly without mpi4py / mpiexec
(``pip install "fastcnn[mpi]"``). The in-process tests need neither.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import distribution, layers, losses, models
from fastcnn.distribution import _mpi, runtime

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "mpi_worker.py"
sys.path.insert(0, str(WORKER.parent))  # the worker's model and data helpers
CIFAR_DIR = Path(os.environ.get("FASTCNN_CIFAR10_DIR")
                 or os.path.expanduser("~/.cache/fastcnn-ci/cifar10"))


def _mpiexec():
    if not _mpi.installed():
        pytest.skip("mpi4py is not installed (pip install \"fastcnn[mpi]\")")
    exe = shutil.which("mpiexec")
    if exe is None:
        pytest.skip("mpiexec is not on PATH (pip install \"fastcnn[mpi]\" brings mpich's)")
    return exe


def run_ranks(n, *args, timeout=240, check=True):
    """Run the worker on n ranks; (CompletedProcess, wall seconds)."""
    return run_command(n, [sys.executable, str(WORKER)] + [str(a) for a in args], timeout,
                       check)


def run_command(n, command, timeout=240, check=True):
    """Run ``command`` on n ranks with this checkout's fastcnn, 1 thread per rank."""
    # OMPI_*: should the mpiexec on PATH be Open MPI's, let it run as root (CI containers)
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [_mpiexec(), "-n", str(n)] + command
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT))
    wall = time.monotonic() - t0
    if check and proc.returncode != 0:
        raise AssertionError("mpiexec -n %d failed (%d):\n%s\n%s"
                             % (n, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc, wall


def load(out, name, rank):
    with np.load(os.path.join(out, "%s-rank%d.npz" % (name, rank))) as f:
        return {k: f[k] for k in f.files}


def weights_of(result):
    return [result["w%d" % i] for i in range(sum(k.startswith("w") for k in result))]


# ----------------------------------------------------------------------------- in process
def test_without_mpi4py_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(_mpi, "_state", {"comm": None, "hooked": False})
    with pytest.raises(ImportError, match=r'pip install "fastcnn\[mpi\]"'):
        distribution.set_distribution(distribution.DataParallel())
    assert distribution.distribution() is None


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="device_mesh"):
        distribution.DataParallel(device_mesh=object())
    with pytest.raises(ValueError, match="auto_shard_dataset"):
        distribution.DataParallel(auto_shard_dataset=False)
    with pytest.raises(ValueError, match="num_processes"):
        distribution.initialize(num_processes=4)
    with pytest.raises(TypeError, match="set_distribution"):
        distribution.set_distribution("data_parallel")
    with pytest.raises(ValueError, match="device_type"):
        distribution.list_devices("gpu")


def test_shards_cover_each_batch_once_in_rank_order():
    for n in (0, 1, 5, 64, 67):
        for size in (1, 2, 3, 8):
            parts = [runtime._shard_bounds(10, 10 + n, r, size) for r in range(size)]
            assert parts[0][0] == 10 and parts[-1][1] == 10 + n
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            sizes = [hi - lo for lo, hi in parts]
            assert max(sizes) - min(sizes) <= 1


def test_grads_ready_reports_each_layer_once_after_its_last_gradient():
    """The backward hook the gradient allreduce starts from: a shared Dense used twice is
    reported only after its second (earlier in graph order) use has accumulated."""
    inp = layers.Input((6,))
    shared = layers.Dense(6, activation="relu")
    h = shared(shared(inp))
    out = layers.Dense(3)(layers.BatchNormalization()(h))
    model = models.Model(inp, out)
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    model.prepare(training=True)
    program = model._program()
    order, snapshots = [], {}

    def ready(ls):
        for layer in ls:
            order.append(layer.name)
            snapshots[layer.name] = [np.array(g) for g in layer.gradients]
    x = np.random.default_rng(0).random((5, 6), np.float32)
    outs = program.forward([x], True, False)
    dout = np.random.default_rng(1).random(outs[0].shape).astype(np.float32)
    program.backward([dout], grads_ready=ready)
    trainable = [l.name for l in model.leaf_layers() if l.trainable_weights]
    assert sorted(order) == sorted(trainable) and len(order) == len(set(order))
    assert order[0] == model.leaf_layers()[-1].name  # the last layer is ready first
    for layer in model.leaf_layers():  # nothing changed after it was reported
        for g, s in zip(layer.gradients, snapshots.get(layer.name, [])):
            np.testing.assert_array_equal(g, s)


def test_synchronized_batch_norm_without_a_distribution_changes_nothing():
    x = np.random.default_rng(0).random((40, 12, 12, 3), np.float32)
    y = np.arange(40) % 10
    results = []
    for synchronized in (False, True):
        fastcnn.utils.set_random_seed(3)
        import mpi_worker
        model = mpi_worker.compile_(mpi_worker.small_model(bn=True, synchronized=synchronized))
        hist = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        results.append((hist.history["loss"], model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)
    bn = layers.BatchNormalization(synchronized=True)
    assert bn.get_config()["synchronized"] is True
    assert layers.BatchNormalization.from_config(bn.get_config()).synchronized is True
    with pytest.raises(ValueError, match="synchronized must be True or False"):
        layers.BatchNormalization(synchronized="yes")


# ----------------------------------------------------------------------------- mpiexec
def test_two_ranks_end_with_bitwise_identical_weights(tmp_path):
    run_ranks(2, "train", tmp_path)
    r0, r1 = load(tmp_path, "train", 0), load(tmp_path, "train", 1)
    for a, b in zip(weights_of(r0), weights_of(r1)):
        np.testing.assert_array_equal(a, b)
    for key in ("loss", "acc", "val_loss", "evaluate", "predict", "on_batch"):
        np.testing.assert_array_equal(r0[key], r1[key])  # global values, the same everywhere
    # evaluate / predict split the data over the ranks and gather it: one process's answers
    import mpi_worker
    model = mpi_worker.compile_(mpi_worker.small_model())
    x, y = mpi_worker.synthetic(300)
    model.build((None,) + x.shape[1:])
    model.set_weights(weights_of(r0))
    np.testing.assert_allclose(r0["predict"], model.predict(x[:37], verbose=0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(r0["evaluate"], model.evaluate(x[:101], y[:101], batch_size=32,
                                                              verbose=0), rtol=1e-5)
    assert r0["loss"][1] < r0["loss"][0]  # it learns


def test_a_dataset_trains_on_two_ranks_as_the_arrays_do(tmp_path):
    """Dataset batches are global batches: each rank takes its shard, with the batches'
    sample weights; the weights equal the arrays' bit for bit on both ranks."""
    run_ranks(2, "dataset", tmp_path)
    r0, r1 = load(tmp_path, "dataset", 0), load(tmp_path, "dataset", 1)
    n = sum(k.startswith("arrays_w") for k in r0)
    assert n > 0
    for r in (r0, r1):
        for i in range(n):
            np.testing.assert_array_equal(r["dataset_w%d" % i], r0["arrays_w%d" % i])
        for key in ("loss", "val_loss", "evaluate"):
            np.testing.assert_array_equal(r["dataset_" + key], r0["arrays_" + key])
    np.testing.assert_array_equal(r0["dataset_predict"], r1["dataset_predict"])
    np.testing.assert_allclose(r0["dataset_predict"], r0["arrays_predict"], rtol=1e-5,
                               atol=1e-6)


def test_precision_recall_auc_are_exact_over_ranks(tmp_path):
    """Metric states (confusion counts, AUC buckets) are summed over the ranks: 2 ranks
    report what one process does, not the mean of two shards' results."""
    run_ranks(1, "metrics", tmp_path)
    run_ranks(2, "metrics", tmp_path, "--distributed")
    one = load(tmp_path, "metrics1", 0)
    for rank in (0, 1):
        two = load(tmp_path, "metrics2", rank)
        for key in ("p", "r", "auc"):
            assert two[key] == pytest.approx(one[key], rel=1e-12, abs=1e-12), key
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)


def test_rank0_checkpoint_holds_the_weights_of_every_rank(tmp_path):
    run_ranks(2, "checkpoint", tmp_path, "--epochs", 1)
    model = fastcnn.saving.load_model(str(tmp_path / "ckpt.keras"))
    for rank in (0, 1):
        for a, b in zip(weights_of(load(tmp_path, "ckpt0-2", rank)), model.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_synchronized_batch_norm_trains_as_one_process(tmp_path):
    """synchronized=True: the global batch's statistics, so 2 ranks follow the 1-process
    run up to rounding; per-rank statistics (the default) visibly do not."""
    run_ranks(1, "bn", tmp_path, "--sync-bn", "--epochs", 2)
    run_ranks(2, "bn", tmp_path, "--sync-bn", "--epochs", 2, "--distributed")
    run_ranks(2, "bn", tmp_path, "--epochs", 2, "--distributed")
    one, sync, local = (load(tmp_path, "bnsync1", 0), load(tmp_path, "bnsync2", 0),
                        load(tmp_path, "bn2", 0))
    sync1 = load(tmp_path, "bnsync2", 1)
    for a, b in zip(weights_of(sync), weights_of(sync1)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sync["loss"], one["loss"], rtol=1e-4)
    err_sync = max(np.abs(a - b).max() for a, b in zip(weights_of(sync), weights_of(one)))
    err_local = max(np.abs(a - b).max() for a, b in zip(weights_of(local), weights_of(one)))
    assert err_sync < 1e-3 and err_sync < err_local / 10, (err_sync, err_local)


def test_ranks_without_rows_in_the_last_batch_keep_in_step(tmp_path):
    """257 samples at global batch 64 on 3 ranks: the last batch has 1 row, so two ranks
    have none; they still take part in every exchange (synchronized BN included)."""
    run_ranks(3, "bn", tmp_path, "--sync-bn", "--samples", 257, "--distributed", timeout=120)
    results = [load(tmp_path, "bnsync3", r) for r in range(3)]
    for r in results[1:]:
        for a, b in zip(weights_of(results[0]), weights_of(r)):
            np.testing.assert_array_equal(a, b)
    assert np.isfinite(results[0]["loss"]).all()


def test_every_rank_stops_after_the_same_epoch(tmp_path):
    run_ranks(2, "stop", tmp_path, timeout=120)
    r0, r1 = load(tmp_path, "stop", 0), load(tmp_path, "stop", 1)
    assert int(r0["early"]) == int(r1["early"]) == 2  # EarlyStopping on the global loss
    assert int(r0["own"]) == int(r1["own"]) == 3      # rank 0's own stop, shared


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_job_naming_the_rank(tmp_path, how):
    proc, wall = run_ranks(2, "fail", tmp_path, "--how", how, timeout=60, check=False)
    assert proc.returncode != 0
    assert wall < 30, "the job took %.1f s to end after rank 1 failed" % wall
    err = proc.stdout + proc.stderr
    if how == "raise":
        assert "rank 1 of 2 failed: RuntimeError: rank one fails on purpose" in err, err
    else:  # mpiexec names a dead process's PID; fastcnn's start-up line maps it to its rank
        pid = re.search(r"PID (\d+)", err)
        assert pid is not None, err
        pids = dict(re.findall(r"rank (\d+) pid (\d+)@", err))
        assert sorted(pids) == ["0", "1"], err
        # usually the killed rank 1, but hydra may report rank 0 instead, which it killed
        # while cleaning up, when it reaps both in the same poll (seen once in CI)
        assert pid.group(1) in pids.values(), err


def test_resume_from_rank0_checkpoint_same_and_different_ranks(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    run_ranks(2, "checkpoint", full, "--epochs", 3)
    part = tmp_path / "part"
    part.mkdir()
    run_ranks(2, "checkpoint", part, "--epochs", 2)
    assert (part / "ckpt.keras").is_file() and (part / "log-0.csv").is_file()
    same = tmp_path / "same"
    shutil.copytree(part, same)
    run_ranks(2, "checkpoint", same, "--epochs", 3, "--resume")
    # resuming on the same number of ranks replays the uninterrupted run exactly
    a, b = load(full, "ckpt0-2", 0), load(same, "ckpt2-2", 1)
    for wa, wb in zip(weights_of(a), weights_of(b)):
        np.testing.assert_array_equal(wa, wb)
    assert b["loss"][0] == pytest.approx(a["loss"][2], rel=1e-6)
    other = tmp_path / "other"
    shutil.copytree(part, other)
    run_ranks(3, "checkpoint", other, "--epochs", 3, "--resume")  # a different N
    results = [load(other, "ckpt2-3", r) for r in range(3)]
    for r in results[1:]:
        for wa, wb in zip(weights_of(results[0]), weights_of(r)):
            np.testing.assert_array_equal(wa, wb)
    assert results[0]["loss"][0] == pytest.approx(a["loss"][2], rel=0.05)


def _loss_and_accuracy_match(tmp_path, data, epochs):
    run_ranks(1, "tutorial", tmp_path, "--data", data, "--epochs", epochs)
    run_ranks(2, "tutorial", tmp_path, "--data", data, "--epochs", epochs, "--distributed")
    one, two = load(tmp_path, "tutorial1", 0), load(tmp_path, "tutorial2", 0)
    print("loss per epoch: 1 process %s, 2 ranks %s" % (one["loss"], two["loss"]))
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=0.01)
    return float(one["test_acc"]), float(two["test_acc"])


def test_one_epoch_on_two_ranks_matches_one_process(tmp_path):
    import mpi_worker
    x, y = mpi_worker.synthetic(1024, size=32)
    xt, yt = mpi_worker.synthetic(500, seed=5, size=32)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y, xt=xt, yt=yt)
    _loss_and_accuracy_match(tmp_path, data, 1)


@pytest.mark.realdata
@pytest.mark.slow
def test_tutorial_on_two_ranks_matches_one_process_on_cifar10(tmp_path):
    """3 epochs of the tutorial on 10,000 CIFAR-10 images, global batch 64: loss history
    within 1% and test accuracy within 1 point of one process."""
    if not CIFAR_DIR.is_dir():
        pytest.skip("real CIFAR-10 absent at %s (set FASTCNN_CIFAR10_DIR)" % CIFAR_DIR)
    _mpiexec()
    from fastcnn.datasets import cifar10
    (x, y), (xt, yt) = cifar10.load_data(str(CIFAR_DIR))
    data = tmp_path / "cifar.npz"
    np.savez(data, x=x[:10000].astype(np.float32) / 255, y=y[:10000],
             xt=xt[:2000].astype(np.float32) / 255, yt=yt[:2000])
    acc1, acc2 = _loss_and_accuracy_match(tmp_path, data, 3)
    print("tutorial, 3 epochs on 10k CIFAR-10, test accuracy: 1 process %.4f, 2 ranks %.4f"
          % (acc1, acc2))
    assert abs(acc1 - acc2) <= 0.01, (acc1, acc2)


@pytest.mark.realdata
def test_command_line_trains_distributed(tmp_path):
    if not CIFAR_DIR.is_dir():
        pytest.skip("real CIFAR-10 absent at %s (set FASTCNN_CIFAR10_DIR)" % CIFAR_DIR)
    out = tmp_path / "out"
    proc, _ = run_command(2, [sys.executable, "-m", "fastcnn", "train", "--distributed",
                              "--limit", "1000", "--epochs", "1", "--batch-size", "64",
                              "--verbose", "2", "--data", str(CIFAR_DIR), "--out", str(out)],
                          timeout=300)
    assert proc.stdout.count("test accuracy:") == 1  # rank 0 reports, rank 1 is silent
    assert (out / "model.keras").is_file() and (out / "checkpoint.keras").is_file()
