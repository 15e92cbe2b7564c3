"""What the benchmark files share: the thread count and interleaved per-call medians."""
import os
import time

import numpy as np

# fastcnn (and NumPy's BLAS, for the baselines) run on this many threads in the benchmarks:
# the machine's 2 cores unless FASTCNN_BENCH_THREADS says otherwise.
THREADS = int(os.environ.get("FASTCNN_BENCH_THREADS", "2"))


def sample(fn, number):
    """Seconds per call of fn over `number` back-to-back calls."""
    t = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t) / number


def interleaved_medians_us(impls, repeats):
    """{name: median microseconds per call} of the callables in `impls`, measured in turns
    (each sample ~2 ms of back-to-back calls) so that the machine's drift hits all alike.
    Each sample follows one untimed call: the first call after a switch finds the caches
    holding the other implementation's data and, when two libraries with their own OpenMP
    thread pools share the process, the other pool still spinning on the cores."""
    number = {k: max(1, int(2e-3 / max(sample(f, 1), 1e-7))) for k, f in impls.items()}
    times = {k: [] for k in impls}
    for _ in range(repeats):
        for k, f in impls.items():
            f()
            times[k].append(sample(f, number[k]))
    return {k: float(np.median(v)) * 1e6 for k, v in times.items()}
