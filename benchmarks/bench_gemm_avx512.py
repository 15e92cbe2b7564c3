"""A/B of the GEMM's AVX-512F kernels against its AVX2 kernels (same bits), on
Conv2DTranspose 3x3 stride 2 forward + backward (bench_conv_transpose.py's step) and PyTorch.

    python benchmarks/bench_gemm_avx512.py [--threads 1] [--rounds 15] [--batches 64]
                                          [--clock cpu|wall] [--models tutorial,resnet20]

``--models`` adds the training step (train_on_batch, batch 32 and 128) and inference
(predict_on_batch, batch 1000) of those zoo models, AVX-512 against AVX2.

``--clock cpu`` (default) times with ``time.process_time`` (CPU seconds of this process,
all threads), which a busy shared machine disturbs less than wall-clock time; use it with
``--threads 1`` for A/B comparisons and ``--clock wall`` on a quiet machine. Each round
runs every implementation once per case in alternating order; medians over rounds are
printed, with ratio = torch best / fastcnn.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root (in-place build)
import fastcnn  # noqa: E402
from fastcnn import _ext  # noqa: E402
from bench_conv_transpose import CHANNELS, fastcnn_step, torch_step  # noqa: E402


def with_avx512(step, on):
    def run():
        _ext.gemm_force_avx512(on)
        try:
            step()
        finally:
            _ext.gemm_force_avx512(-1)
    return run


def timed(fn, clock, inner):
    t0 = clock()
    for _ in range(inner):
        fn()
    return (clock() - t0) / inner


def run(batches=(64,), rounds=15, threads=1, clock_name="cpu", inner=3):
    import torch
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    fastcnn.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    cases = {}
    for batch in batches:
        for cin, cout in CHANNELS:
            step = fastcnn_step(batch, cin, cout, rng)
            cases["batch %d, %d->%d ch" % (batch, cin, cout)] = {
                "avx512": with_avx512(step, 1), "avx2": with_avx512(step, 0),
                "torch NCHW": torch_step(torch, batch, cin, cout, rng, False),
                "torch ch_last": torch_step(torch, batch, cin, cout, rng, True)}
    for impls in cases.values():  # warm-up
        for fn in impls.values():
            fn()
    times = {(c, i): [] for c in cases for i in cases[c]}
    for r in range(rounds):
        for c, impls in cases.items():
            order = list(impls) if r % 2 == 0 else list(impls)[::-1]
            for i in order:
                times[(c, i)].append(timed(impls[i], clock, inner))
    print("Conv2DTranspose 3x3 s2 fwd+bwd, %d threads, %s clock (ms, median of %d rounds); "
          "gemm avx512 available: %s" % (threads, clock_name, rounds, _ext.gemm_avx512()))
    print("%-22s %9s %9s %11s %14s %9s %9s" % ("case", "avx512", "avx2", "torch NCHW",
                                               "torch ch_last", "avx2/512", "ratio"))
    for c in cases:
        med = {i: float(np.median(times[(c, i)])) * 1e3 for i in cases[c]}
        best = min(med["torch NCHW"], med["torch ch_last"])
        print("%-22s %9.2f %9.2f %11.2f %14.2f %9.2f %9.2f"
              % (c, med["avx512"], med["avx2"], med["torch NCHW"], med["torch ch_last"],
                 med["avx2"] / med["avx512"], best / med["avx512"]))


def model_cases(names, rng):
    from fastcnn import losses, optimizers, zoo
    cases = {}
    for name in names:
        model = zoo.MODELS[name]()
        model.compile(optimizer=optimizers.Adam(),
                      loss=losses.SparseCategoricalCrossentropy(from_logits=True))
        for what, batch in (("train", 32), ("train", 128), ("infer", 1000)):
            x = rng.random((batch, 32, 32, 3), dtype=np.float32)
            y = rng.integers(0, 10, batch)
            if what == "train":
                step = (lambda m, x, y: lambda: m.train_on_batch(x, y))(model, x, y)
            else:
                step = (lambda m, x: lambda: m.predict_on_batch(x))(model, x)
            cases["%s %s b%d" % (name, what, batch)] = {
                "avx512": with_avx512(step, 1), "avx2": with_avx512(step, 0)}
    return cases


def run_models(names, rounds, threads, clock_name, inner):
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    fastcnn.set_num_threads(threads)
    cases = model_cases(names, np.random.default_rng(0))
    for impls in cases.values():  # warm-up
        for fn in impls.values():
            fn()
    times = {(c, i): [] for c in cases for i in cases[c]}
    for r in range(rounds):
        for c, impls in cases.items():
            order = list(impls) if r % 2 == 0 else list(impls)[::-1]
            for i in order:
                times[(c, i)].append(timed(impls[i], clock, inner))
    print("zoo models, %d threads, %s clock (ms per step, median of %d rounds)"
          % (threads, clock_name, rounds))
    print("%-26s %9s %9s %9s" % ("case", "avx512", "avx2", "avx2/512"))
    for c in cases:
        med = {i: float(np.median(times[(c, i)])) * 1e3 for i in cases[c]}
        print("%-26s %9.2f %9.2f %9.3f" % (c, med["avx512"], med["avx2"],
                                           med["avx2"] / med["avx512"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--inner", type=int, default=3)
    ap.add_argument("--batches", default="64")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    ap.add_argument("--models", default="", help="comma-separated zoo models to A/B too")
    ap.add_argument("--no-conv-transpose", action="store_true")
    args = ap.parse_args(argv)
    if args.models:
        run_models(args.models.split(","), args.rounds, args.threads, args.clock, args.inner)
    if args.no_conv_transpose:
        return
    run(tuple(int(b) for b in args.batches.split(",")), args.rounds, args.threads,
        args.clock, args.inner)


if __name__ == "__main__":
    main()
