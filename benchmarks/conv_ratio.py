"""Interleaved timing of fastcnn's conv2d against the NumPy baseline on the seed shapes.

    python benchmarks/conv_ratio.py [--threads 2] [--batch 32] [--rounds 10]
                                    [--algorithms auto,im2col]

Every round times each (shape, direction, implementation) in turn, so slow phases of a
noisy machine hit both sides alike. Each timing is a block: first WARMUP seconds of
untimed calls, then INNER timed calls (block median). The warm-up matters: after a NumPy
call, OpenBLAS's worker threads keep spinning for ~70 ms and steal a core from whatever
runs next (and an idle vCPU is slow to wake), so back-to-back single calls would measure
the two libraries' thread pools fighting rather than either kernel. Prints the median of
the block medians and ratio = numpy / fastcnn (> 1: fastcnn is faster), for each conv2d
``algorithm=`` listed (default: 'auto' only; 'auto,im2col' also times the GEMM-only path,
i.e. fastcnn before its Winograd path, in the same interleaved rounds).
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root (in-place build)
import numpy_baseline as nb  # noqa: E402

import fastcnn  # noqa: E402
from fastcnn.ops import conv2d, conv2d_backward, conv2d_workspace_size  # noqa: E402

# (name, input (H, W, C), filters): all 3x3 `valid`, stride 1, as in the seed model
SEED_SHAPES = [
    ("32x32x3->30x30x32", (32, 32, 3), 32),
    ("15x15x32->13x13x64", (15, 15, 32), 64),
    ("6x6x64->4x4x64", (6, 6, 64), 64),
]


def make_cases(batch, seed=0, algorithms=("auto",)):
    """{(name, direction): {'fastcnn': fn, 'numpy': fn}} for the seed conv shapes.

    'fastcnn' uses algorithms[0]; every further algorithm a adds a 'fastcnn[a]' entry.
    """
    rng = np.random.default_rng(seed)
    cases = {}
    for name, (h, w, c), f in SEED_SHAPES:
        x = rng.standard_normal((batch, h, w, c)).astype(np.float32)
        k = (rng.standard_normal((3, 3, c, f)) * 0.1).astype(np.float32)
        b = rng.standard_normal(f).astype(np.float32)
        dy = rng.standard_normal((batch, h - 2, w - 2, f)).astype(np.float32)
        ws = np.empty(conv2d_workspace_size(x.shape, k.shape), np.float32)
        y = np.empty(dy.shape, np.float32)
        dx, dk, db = np.empty_like(x), np.empty_like(k), np.empty_like(b)
        # the first conv of a model needs no input gradient
        need_dx = c != 3
        fwd = {"numpy": lambda x=x, k=k, b=b: nb.conv2d_forward(x, k, b, activation="relu")}
        bwd = {"numpy": lambda x=x, k=k, dy=dy, nd=need_dx:
               nb.conv2d_backward(dy, x, k, need_input_grad=nd)}
        for i, algo in enumerate(algorithms):
            key = "fastcnn" if i == 0 else "fastcnn[%s]" % algo
            fwd[key] = lambda x=x, k=k, b=b, y=y, ws=ws, a=algo: conv2d(
                x, k, b, activation="relu", out=y, workspace=ws, algorithm=a)
            bwd[key] = lambda x=x, k=k, dy=dy, dx=dx, dk=dk, db=db, ws=ws, nd=need_dx, a=algo: \
                conv2d_backward(dy, x, k, need_input_grad=nd, dx=dx if nd else None,
                                dkernel=dk, dbias=db, workspace=ws, algorithm=a)
        cases[(name, "forward")] = fwd
        cases[(name, "backward")] = bwd
    return cases


WARMUP = 0.12  # seconds of untimed calls before each timed block
INNER = 10     # timed calls per block


def warm_up(fn, seconds=WARMUP):
    """Call fn for `seconds` (until the other library's spinning threads have gone idle)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()


def time_block(fn, warmup=WARMUP, inner=INNER):
    """Median seconds per call of fn after `warmup` seconds of untimed calls."""
    warm_up(fn, warmup)
    ts = []
    for _ in range(inner):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def run(batch=32, rounds=10, threads=2, algorithms=("auto",)):
    fastcnn.set_num_threads(threads)
    cases = make_cases(batch, algorithms=algorithms)
    impls = list(next(iter(cases.values())))
    times = {(key, impl): [] for key in cases for impl in impls}
    for r in range(rounds):
        for key, fns in cases.items():
            order = impls if r % 2 == 0 else impls[::-1]
            for impl in order:
                times[(key, impl)].append(time_block(fns[impl]))
    print("batch %d, fastcnn threads %d, simd %s, numpy BLAS threads: its default"
          % (batch, threads, fastcnn.config()["simd"]))
    fast = [i for i in impls if i != "numpy"]
    names = ["fastcnn[%s]" % algorithms[0]] + fast[1:]
    print("%-20s %-9s %12s" % ("shape", "direction", "numpy ms")
          + "".join(" %18s %6s" % (n + " ms", "ratio") for n in names))
    ratios = {}
    for key in cases:
        n = float(np.median(times[(key, "numpy")])) * 1e3
        line = "%-20s %-9s %12.3f" % (key[0], key[1], n)
        for impl in fast:
            f = float(np.median(times[(key, impl)])) * 1e3
            ratios[key if impl == "fastcnn" else key + (impl,)] = n / f
            line += " %18.3f %6.2f" % (f, n / f)
        print(line)
    return ratios


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--algorithms", default="auto",
                    help="comma-separated conv2d algorithms to time (auto, im2col, winograd, "
                         "winograd_f2, winograd_f4, direct)")
    args = ap.parse_args(argv)
    run(args.batch, args.rounds, args.threads, tuple(args.algorithms.split(",")))


if __name__ == "__main__":
    main()
