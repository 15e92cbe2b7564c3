"""Threads, fork and resources: concurrent predict/evaluate on one model give the sequential
answers, fork() after using the OpenMP kernels does not hang the child, repeated fit calls
keep memory flat, and set_num_threads handles odd values as documented."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses, models, utils
from conftest import num_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model():
    utils.set_random_seed(11)
    model = models.Sequential([
        layers.Input(shape=(10, 10, 3)), layers.Conv2D(8, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Conv2D(8, 2, padding="same"),
        layers.Flatten(), layers.Dropout(0.3), layers.Dense(4)])
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def _data(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 10, 10, 3)).astype(np.float32),
            rng.integers(0, 4, n).reshape(-1, 1))


def _run_threads(target, jobs):
    """Run target(job) for every job on its own thread, all released at once."""
    results = [None] * len(jobs)
    errors = []
    start = threading.Barrier(len(jobs))

    def work(i):
        try:
            start.wait()
            results[i] = target(jobs[i])
        except BaseException as e:  # reported below, with the job
            errors.append((jobs[i], e))
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results


# ------------------------------------------------------------------ threads

def test_concurrent_predict_gives_the_sequential_results():
    model = _model()
    x, y = _data(96, 0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    # several inputs, same and different batch shapes (the layers keep per-shape buffers)
    inputs = [_data(n, 100 + i)[0] for i, n in enumerate([40, 40, 33, 40, 7, 33, 40, 64])]
    expected = [model.predict(a, batch_size=8, verbose=0) for a in inputs]
    for _ in range(3):
        got = _run_threads(lambda a: model.predict(a, batch_size=8, verbose=0), inputs)
        for g, e in zip(got, expected):
            np.testing.assert_array_equal(g, e)
    got = _run_threads(lambda a: model(a), inputs)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    got = _run_threads(lambda a: model.predict_on_batch(a), inputs)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_concurrent_evaluate_gives_the_sequential_results():
    model = _model()
    x, y = _data(96, 0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    sets = [_data(n, 200 + i) for i, n in enumerate([48, 48, 31, 48, 48, 17])]
    expected = [model.evaluate(a, b, batch_size=8, verbose=0, return_dict=True)
                for a, b in sets]
    for _ in range(3):
        got = _run_threads(lambda s: model.evaluate(s[0], s[1], batch_size=8, verbose=0,
                                                    return_dict=True), sets)
        assert got == expected


def test_predict_while_another_thread_trains_is_safe():
    """fit and predict on one model from two threads: fit's steps stay exactly those of a
    run without the concurrent predictions, and every prediction is a complete one."""
    x, y = _data(64, 1)
    probe = _data(24, 2)[0]
    alone = _model()
    alone.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)
    model = _model()
    stop = threading.Event()
    preds = []

    def predict_loop(_):
        while not stop.is_set():
            preds.append(model.predict(probe, batch_size=8, verbose=0))
        return len(preds)

    def fit(_):
        try:
            model.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)
        finally:
            stop.set()
    _run_threads(lambda job: job(None), [fit, predict_loop])
    for a, b in zip(alone.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(p).all() and p.shape == (24, 4) for p in preds)


# ------------------------------------------------------------------ fork

FORK_CHILD = textwrap.dedent("""
    import os, sys, warnings
    import numpy as np
    import fastcnn
    from fastcnn import ops
    fastcnn.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 24, 24, 8)).astype(np.float32)
    k = rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    parent = ops.conv2d(x, k)          # starts libgomp's thread pool in the parent
    pid = os.fork()
    if pid == 0:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            fastcnn.set_num_threads(2)   # asking for more threads must not bring the hang back
        ok = fastcnn.get_num_threads() == 1 and any("fork" in str(i.message) for i in w)
        child = ops.conv2d(x, k)         # would hang in libgomp with 2 threads
        ok = ok and np.array_equal(child, parent)
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, status
    assert fastcnn.get_num_threads() == 2   # the parent keeps its threads
    assert np.array_equal(ops.conv2d(x, k), parent)
    print("fork ok")
""")


def _python(code, timeout, env=None):
    env = dict(os.environ, **(env or {}))
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_after_running_kernels_does_not_hang_the_child():
    if not fastcnn.config()["openmp"]:
        pytest.skip("serial build: no OpenMP thread pool to inherit")
    try:
        out = _python(FORK_CHILD, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("fork() after running an OpenMP kernel hung the child")
    assert out.returncode == 0 and "fork ok" in out.stdout, out.stderr[-3000:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_multiprocessing_fork_workers_can_train_and_predict():
    code = textwrap.dedent("""
        import multiprocessing as mp
        import numpy as np
        import fastcnn
        from fastcnn import layers, models

        def work(seed):
            fastcnn.utils.set_random_seed(seed)
            m = models.Sequential([layers.Input(shape=(8, 8, 2)), layers.Conv2D(4, 3),
                                   layers.Flatten(), layers.Dense(2)])
            m.compile("sgd", "mse")
            x = np.random.default_rng(seed).standard_normal((16, 8, 8, 2))
            m.fit(x, np.zeros((16, 2)), epochs=1, verbose=0)
            return float(m.predict(x, verbose=0).sum()), fastcnn.get_num_threads()

        if __name__ == "__main__":
            fastcnn.set_num_threads(2)
            first = work(0)                      # parent uses the kernels first
            with mp.get_context("fork").Pool(2) as pool:
                results = pool.map(work, [0, 1, 2])
            assert results[0][0] == first[0], (results, first)
            assert all(n == 1 for _, n in results), results
            print("pool ok")
    """)
    try:
        out = _python(code, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("a forked multiprocessing worker hung")
    assert out.returncode == 0 and "pool ok" in out.stdout, out.stderr[-3000:]


# ------------------------------------------------------------------ memory

MEMORY_CHILD = textwrap.dedent("""
    import resource, gc
    import numpy as np
    import fastcnn
    from fastcnn import layers, losses, models, utils
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Input(shape=(16, 16, 3)), layers.Conv2D(16, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Conv2D(16, 3),
        layers.AveragePooling2D(), layers.Flatten(), layers.Dropout(0.2), layers.Dense(10)])
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((320, 16, 16, 3))          # float64: converted on every call
    y = rng.integers(0, 10, 320)
    xv, yv = x[:64], y[:64]

    def once():
        model.fit(x, y, epochs=1, batch_size=32, verbose=0, validation_data=(xv, yv))
        model.evaluate(xv, yv, verbose=0)
        model.predict(xv, verbose=0)
    for _ in range(2):   # warm-up: every buffer shape exists now
        once()
    def resident_kb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() // 1024
    gc.collect()
    before, res_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resident_kb()
    for _ in range(20):
        once()
    gc.collect()
    after, res_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resident_kb()
    print("RSS_GROWTH_KB", after - before, "PEAK_KB", after,
          "RESIDENT_GROWTH_KB", res_after - res_before)
""")


def test_repeated_fit_keeps_peak_memory_flat():
    out = _python(MEMORY_CHILD, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("RSS_GROWTH_KB")][0]
    words = line.split()
    growth_kb, resident_kb = int(words[1]), int(words[5])
    print("\n20 repeated fit+evaluate+predict calls: peak RSS grew by %d KB, resident memory "
          "by %d KB (%s)" % (growth_kb, resident_kb, line))
    assert growth_kb < 5 * 1024, line
    assert resident_kb < 5 * 1024, line


# ------------------------------------------------------------------ set_num_threads

def test_set_num_threads_odd_values_behave_as_documented():
    cpus = fastcnn.config()["cpu_count"]
    x = np.random.default_rng(0).standard_normal((4, 9, 9, 5)).astype(np.float32)
    k = np.random.default_rng(1).standard_normal((3, 3, 5, 6)).astype(np.float32)
    with num_threads(1):
        ref = fastcnn.ops.conv2d(x, k)
        with pytest.raises(ValueError, match="n=0"):
            fastcnn.set_num_threads(0)
        assert fastcnn.get_num_threads() == 1          # a refused value changes nothing
        for bad in (2.0, "4", object(), [2]):
            with pytest.raises(TypeError):
                fastcnn.set_num_threads(bad)
        assert fastcnn.get_num_threads() == 1
        fastcnn.set_num_threads(np.int64(1))            # NumPy ints are ints
        assert fastcnn.get_num_threads() == 1
        if not fastcnn.config()["openmp"]:
            return
        for n, expected in ((-1, cpus), (-cpus, 1), (-cpus - 1, 1), (-10 ** 30, 1),
                            (cpus + 3, cpus + 3), (10 ** 30, fastcnn._config.MAX_THREADS)):
            fastcnn.set_num_threads(n)
            assert fastcnn.get_num_threads() == expected, n
            if expected <= 64:  # oversubscribed but fine: the result never depends on it
                np.testing.assert_array_equal(fastcnn.ops.conv2d(x, k), ref)
        fastcnn.set_num_threads(None)                   # back to OMP_NUM_THREADS / all cores
        assert fastcnn.get_num_threads() >= 1
