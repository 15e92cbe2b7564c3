"""Pooling: fastcnn vs a NumPy baseline on the seed model's pools (batch 32).

    pytest benchmarks/bench_pool.py --benchmark-only --benchmark-group-by=param:case
    python benchmarks/bench_pool.py [--threads 2] [--repeats 31]   # interleaved medians + ratios

Seed pools: 30x30x32 -> 15x15x32 and 13x13x64 -> 6x6x64 (2x2, stride 2, `valid`). The NumPy
baseline is the usual reshape-and-reduce (max / mean over the window axes); its max-pool
backward routes dy through an equality mask (which, unlike fastcnn, splits nothing on ties but
sends dy to EVERY tied element). fastcnn's max pool also records argmax indices.
"""
import argparse
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastcnn  # noqa: E402
from _bench import THREADS, interleaved_medians_us  # noqa: E402
from fastcnn import ops  # noqa: E402

BATCH = 32
SHAPES = {"pool1 30x30x32": (30, 30, 32), "pool2 13x13x64": (13, 13, 64)}


def make_cases(batch=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    cases = {}
    for name, (H, W, C) in SHAPES.items():
        x = rng.standard_normal((batch, H, W, C)).astype(np.float32)
        OH, OW = H // 2, W // 2
        y = np.empty((batch, OH, OW, C), np.float32)
        idx = np.empty(y.shape, np.int32)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = np.empty_like(x)

        def np_windows(x=x, OH=OH, OW=OW, C=C):
            return x[:, :2 * OH, :2 * OW].reshape(batch, OH, 2, OW, 2, C)

        def np_max_fwd(np_windows=np_windows):
            return np_windows().max(axis=(2, 4))

        def np_max_bwd(np_windows=np_windows, y=y, dy=dy, x=x, OH=OH, OW=OW):
            out = np.zeros_like(x)
            mask = np_windows() == y[:, :, None, :, None, :]
            out[:, :2 * OH, :2 * OW] = (mask * dy[:, :, None, :, None, :]).reshape(
                batch, 2 * OH, 2 * OW, -1)
            return out

        def np_avg_fwd(np_windows=np_windows):
            return np_windows().mean(axis=(2, 4))

        def np_avg_bwd(x=x, dy=dy, OH=OH, OW=OW):
            out = np.zeros_like(x)
            out[:, :2 * OH, :2 * OW] = np.repeat(np.repeat(dy * 0.25, 2, axis=1), 2, axis=2)
            return out

        ops.max_pool2d(x, return_indices=True, out=y, indices=idx)
        cases[name + " max fwd+indices"] = {
            "fastcnn": lambda x=x, y=y, idx=idx: ops.max_pool2d(x, return_indices=True, out=y,
                                                                 indices=idx),
            "numpy": np_max_fwd}
        cases[name + " max fwd"] = {
            "fastcnn": lambda x=x, y=y: ops.max_pool2d(x, out=y), "numpy": np_max_fwd}
        cases[name + " max bwd"] = {
            "fastcnn": lambda dy=dy, idx=idx, x=x, dx=dx: ops.max_pool2d_backward(
                dy, idx, x.shape, dx=dx),
            "numpy": np_max_bwd}
        cases[name + " avg fwd"] = {
            "fastcnn": lambda x=x, y=y: ops.avg_pool2d(x, out=y), "numpy": np_avg_fwd}
        cases[name + " avg bwd"] = {
            "fastcnn": lambda dy=dy, x=x, dx=dx: ops.avg_pool2d_backward(dy, x.shape, dx=dx),
            "numpy": np_avg_bwd}
    return cases


CASES = make_cases()




@pytest.mark.parametrize("impl", ["fastcnn", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_pool(benchmark, case, impl):
    benchmark.group = case
    benchmark(CASES[case][impl])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--repeats", type=int, default=31)
    args = ap.parse_args()
    fastcnn.set_num_threads(args.threads)
    print("fastcnn threads=%d simd=%s batch=%d repeats=%d (median per call)"
          % (fastcnn.get_num_threads(), fastcnn.config()["simd"], BATCH, args.repeats))
    print("%-34s %11s %11s %8s" % ("case", "fastcnn us", "numpy us", "speedup"))
    for case, impls in CASES.items():
        med = interleaved_medians_us(impls, args.repeats)  # interleaved: noise hits all alike
        print("%-34s %11.1f %11.1f %7.1fx" % (case, med["fastcnn"], med["numpy"],
                                             med["numpy"] / med["fastcnn"]))


if __name__ == "__main__":
    main()
