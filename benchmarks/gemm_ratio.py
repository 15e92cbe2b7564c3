"""fastcnn GEMM vs NumPy (OpenBLAS) on the seed model's shapes, interleaved in one run.

    python benchmarks/gemm_ratio.py [--threads N] [--repeats R] [--gap S]

The two implementations are timed alternately, shape after shape, R rounds (so machine
noise hits both alike); a sample is one untimed warm-up call, then `number` calls timed one
by one. The table shows, for each, the median over all timed calls as GFLOP/s, the ratio of
the medians (fastcnn / numpy, > 1: fastcnn faster) and the ratio of the fastest calls.

Per-call medians, because on this shared VM a call now and then stalls for a scheduler tick
or two (4-8 ms: a thread of the team waits for a CPU) whichever library runs it. Between
samples the script sleeps --gap seconds: after a call, OpenBLAS' worker threads spin for
tens of milliseconds (and OpenMP's for a few), so back-to-back samples of the two libraries
would mostly measure the other library's idle threads stealing the cores. NumPy's thread
count is whatever its BLAS uses (OPENBLAS_NUM_THREADS); set it to match --threads.
"""
import argparse
import functools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastcnn  # noqa: E402
from fastcnn.ops import matmul  # noqa: E402

# (M, N, K, transpose_a, transpose_b, what)
SHAPES = [
    (5408, 64, 288, False, False, "conv2 fwd (im2col)"),
    (32, 64, 1024, False, False, "dense 1024->64"),
    (1024, 1024, 1024, False, False, "square"),
    (4096, 32, 27, False, False, "conv1 fwd, 4 images"),
    (28800, 32, 27, False, False, "conv1 fwd (im2col)"),
    (512, 64, 576, False, False, "conv3 fwd (im2col)"),
    (32, 10, 64, False, False, "dense 64->10"),
    (288, 64, 5408, True, False, "conv2 dW = cols^T dy"),
    (5408, 288, 64, False, True, "conv2 dcols = dy W^T"),
]


def operands(m, n, k, ta, tb, rng):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


def sample(fn, number):
    """Seconds taken by each of `number` calls, after one untimed call."""
    fn()  # wake the library's thread pool
    times = np.empty(number)
    clock = time.perf_counter
    for i in range(number):
        t = clock()
        fn()
        times[i] = clock() - t
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--min-sample", type=float, default=5e-3,
                    help="seconds of calls per sample (at least 1 call)")
    ap.add_argument("--gap", type=float, default=0.2, help="seconds of sleep between samples")
    args = ap.parse_args()
    fastcnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print("fastcnn threads=%d simd=%s  OPENBLAS_NUM_THREADS=%s  repeats=%d"
          % (fastcnn.get_num_threads(), fastcnn.config()["simd"],
             os.environ.get("OPENBLAS_NUM_THREADS", "(default)"), args.repeats))
    print("%-20s %-3s %9s %9s %7s %7s" % ("(M, N, K)", "op", "fastcnn", "numpy", "ratio",
                                           "best"))
    print("%-20s %-3s %9s %9s %7s %7s" % ("", "", "GFLOP/s", "GFLOP/s", "median", "ratio"))
    cases = []
    for m, n, k, ta, tb, _what in SHAPES:
        a, b = operands(m, n, k, ta, tb, rng)
        an = a.T if ta else a
        bn = b.T if tb else b
        f_ours = functools.partial(matmul, a, b, transpose_a=ta, transpose_b=tb)
        f_np = functools.partial(np.matmul, an, bn)
        t0 = min(sample(f_ours, 3).min(), sample(f_np, 3).min())
        number = max(1, int(args.min_sample / max(t0, 1e-7)))
        cases.append(((m, n, k, ta, tb), f_ours, f_np, number, [], []))
        time.sleep(args.gap)
    # Round-robin over the shapes, alternating which library goes first: a burst of load
    # from elsewhere then spoils a few samples of many shapes, not a whole shape.
    for rep in range(args.repeats):
        for _shape, f_ours, f_np, number, ours, theirs in cases:
            for who in ((0, 1) if rep % 2 == 0 else (1, 0)):
                if who == 0:
                    ours.append(sample(f_ours, number))
                else:
                    theirs.append(sample(f_np, number))
                time.sleep(args.gap)
    for (m, n, k, ta, tb), _f, _g, _number, ours, theirs in cases:
        ours = np.concatenate(ours)
        theirs = np.concatenate(theirs)
        flop = 2.0 * m * n * k
        g_ours = flop / np.median(ours) / 1e9
        g_np = flop / np.median(theirs) / 1e9
        op = ("T" if ta else "N") + ("T" if tb else "N")
        best = theirs.min() / ours.min()
        print("%-20s %-3s %9.1f %9.1f %7.2f %7.2f" % ((m, n, k), op, g_ours, g_np, g_ours / g_np,
                                                    best), flush=True)

if __name__ == "__main__":
    main()
