"""Interleaved timing of fastcnn's conv2d against the NumPy baseline on the seed shapes.

    python benchmarks/conv_ratio.py [--threads 2] [--batch 32] [--rounds 10]

Every round times each (shape, direction, implementation) in turn, so slow phases of a
noisy machine hit both sides alike. Each timing is a block: first WARMUP seconds of
untimed calls, then INNER timed calls (block median). The warm-up matters: after a NumPy
call, OpenBLAS's worker threads keep spinning for ~70 ms and steal a core from whatever
runs next (and an idle vCPU is slow to wake), so back-to-back single calls would measure
the two libraries' thread pools fighting rather than either kernel. Prints the median of
the block medians and ratio = numpy / fastcnn (> 1: fastcnn is faster).
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


def make_cases(batch, seed=0):
    """{(name, direction): {'fastcnn': fn, 'numpy': fn}} for the seed conv shapes."""
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
        cases[(name, "forward")] = {
            "fastcnn": lambda x=x, k=k, b=b, y=y, ws=ws: conv2d(
                x, k, b, activation="relu", out=y, workspace=ws),
            "numpy": lambda x=x, k=k, b=b: nb.conv2d_forward(x, k, b, activation="relu"),
        }
        cases[(name, "backward")] = {
            "fastcnn": lambda x=x, k=k, dy=dy, dx=dx, dk=dk, db=db, ws=ws, nd=need_dx:
                conv2d_backward(dy, x, k, need_input_grad=nd, dx=dx if nd else None,
                                dkernel=dk, dbias=db, workspace=ws),
            "numpy": lambda x=x, k=k, dy=dy, nd=need_dx:
                nb.conv2d_backward(dy, x, k, need_input_grad=nd),
        }
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


def run(batch=32, rounds=10, threads=2):
    fastcnn.set_num_threads(threads)
    cases = make_cases(batch)
    times = {(key, impl): [] for key in cases for impl in ("fastcnn", "numpy")}
    for r in range(rounds):
        for key, fns in cases.items():
            order = ("fastcnn", "numpy") if r % 2 == 0 else ("numpy", "fastcnn")
            for impl in order:
                times[(key, impl)].append(time_block(fns[impl]))
    print("batch %d, fastcnn threads %d, simd %s, numpy BLAS threads: its default"
          % (batch, threads, fastcnn.config()["simd"]))
    print("%-20s %-9s %12s %12s %8s" % ("shape", "direction", "fastcnn ms", "numpy ms", "ratio"))
    ratios = {}
    for key in cases:
        f = float(np.median(times[(key, "fastcnn")])) * 1e3
        n = float(np.median(times[(key, "numpy")])) * 1e3
        ratios[key] = n / f
        print("%-20s %-9s %12.3f %12.3f %8.2f" % (key[0], key[1], f, n, n / f))
    return ratios


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)
    run(args.batch, args.rounds, args.threads)


if __name__ == "__main__":
    main()
