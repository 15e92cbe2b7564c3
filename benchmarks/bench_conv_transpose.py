"""Conv2DTranspose 3x3, stride 2, ``same`` (16x16 -> 32x32): fastcnn against PyTorch.

    python benchmarks/bench_conv_transpose.py [--threads 2] [--rounds 7] [--batches 32,128]
                                             [--clock wall|cpu]
                                             [--json benchmarks/results/conv_transpose.json]

One training step's worth of work per call: the forward (with bias and ReLU) and the
backward (input, kernel and bias gradients), on the decoder shapes of a CIFAR-sized
autoencoder: (in, out) channels (32, 32), (64, 64) and (64, 32). PyTorch runs
``conv_transpose2d(stride=2, padding=1, output_padding=1)`` (the same output size and
work; its window alignment differs from Keras' by one row, which costs nothing) in both its
layouts, NCHW and channels_last, and its faster one counts ("torch best"). Each
(case, implementation) is timed in turn, round after round, as blocks of calls after a
warm-up (see conv_ratio.py for why); the medians over rounds are printed with
ratio = torch best / fastcnn (> 1: fastcnn is faster). Both libraries use ``--threads``
threads. ``--clock cpu`` times process CPU time instead of wall-clock (for A/B runs on a
busy host, with ``--threads 1``: CPU time does not count the time other processes hold
the cores).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root (in-place build)
import fastcnn  # noqa: E402
from fastcnn import ops  # noqa: E402
from conv_ratio import time_block  # noqa: E402

CHANNELS = [(32, 32), (64, 64), (64, 32)]
SIZE = 16
GEOMETRY = dict(strides=(2, 2), padding="same")


def fastcnn_step(batch, cin, cout, rng):
    """A callable running the forward + backward once on preallocated buffers."""
    x = rng.standard_normal((batch, SIZE, SIZE, cin)).astype(np.float32)
    k = (rng.standard_normal((3, 3, cout, cin)) * 0.1).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y_shape = ops.conv2d_transpose_output_shape(x.shape, k.shape, **GEOMETRY)
    y = np.empty(y_shape, np.float32)
    dy = rng.standard_normal(y_shape).astype(np.float32)
    dx, dk, db = np.empty_like(x), np.empty_like(k), np.empty_like(b)
    ws = np.empty(max(ops.conv2d_transpose_workspace_size(x.shape, k.shape, **GEOMETRY), 1),
                  np.float32)

    def step():
        ops.conv2d_transpose(x, k, b, activation="relu", out=y, workspace=ws, **GEOMETRY)
        ops.conv2d_transpose_backward(dy, x, k, dx=dx, dkernel=dk, dbias=db, workspace=ws,
                                      **GEOMETRY)
    return step


def torch_step(torch, batch, cin, cout, rng, channels_last):
    x = torch.tensor(rng.standard_normal((batch, cin, SIZE, SIZE)), dtype=torch.float32)
    w = torch.tensor(rng.standard_normal((cin, cout, 3, 3)) * 0.1, dtype=torch.float32)
    b = torch.tensor(rng.standard_normal(cout), dtype=torch.float32)
    dy = torch.tensor(rng.standard_normal((batch, cout, 2 * SIZE, 2 * SIZE)),
                      dtype=torch.float32)
    if channels_last:
        x, dy = (t.contiguous(memory_format=torch.channels_last) for t in (x, dy))
        w = w.contiguous(memory_format=torch.channels_last)
    for t in (x, w, b):
        t.requires_grad_(True)

    def step():
        x.grad = w.grad = b.grad = None
        y = torch.relu(torch.nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                            output_padding=1))
        y.backward(dy)
    return step


def cpu_time_block(fn, warmup=3, inner=15):
    """Median process CPU seconds per call of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(inner):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return float(np.median(ts))


def run(batches=(32, 128), rounds=7, threads=2, clock="wall"):
    import torch
    fastcnn.set_num_threads(threads)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    timer = cpu_time_block if clock == "cpu" else time_block
    cases = {}
    for batch in batches:
        for cin, cout in CHANNELS:
            name = "batch %d, %d->%d ch" % (batch, cin, cout)
            cases[name] = {"fastcnn": fastcnn_step(batch, cin, cout, rng),
                           "torch NCHW": torch_step(torch, batch, cin, cout, rng, False),
                           "torch channels_last": torch_step(torch, batch, cin, cout, rng,
                                                             True)}
    times = {(c, i): [] for c in cases for i in cases[c]}
    for r in range(rounds):
        for c, impls in cases.items():
            order = list(impls) if r % 2 == 0 else list(impls)[::-1]
            for i in order:
                times[(c, i)].append(timer(impls[i]))
    rows = []
    print("Conv2DTranspose 3x3 stride 2 'same', %dx%d -> %dx%d, forward + backward, %d "
          "threads, %s time, fastcnn simd %s, torch %s"
          % (SIZE, SIZE, 2 * SIZE, 2 * SIZE, threads, "CPU" if clock == "cpu" else "wall",
             fastcnn.config()["simd"], torch.__version__))
    print("%-22s %12s %14s %20s %7s" % ("case", "fastcnn ms", "torch NCHW ms",
                                         "torch ch_last ms", "ratio"))
    for c in cases:
        med = {i: float(np.median(times[(c, i)])) * 1e3 for i in cases[c]}
        best = min(med["torch NCHW"], med["torch channels_last"])
        ratio = best / med["fastcnn"]
        print("%-22s %12.3f %14.3f %20.3f %7.2f" % (c, med["fastcnn"], med["torch NCHW"],
                                                    med["torch channels_last"], ratio))
        rows.append({"case": c, "ms": med, "torch_best_ms": best, "ratio": ratio})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall-clock (default) or process CPU time")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    ap.add_argument("--note", default=None, help="a note stored in the JSON file")
    args = ap.parse_args(argv)
    rows = run(tuple(int(b) for b in args.batches.split(",")), args.rounds, args.threads,
               args.clock)
    if args.json:
        from side_by_side import machine_info
        doc = {"benchmark": "conv_transpose",
               "command": "python benchmarks/bench_conv_transpose.py "
                          + " ".join(argv if argv is not None else sys.argv[1:]),
               "settings": {k: v for k, v in vars(args).items() if k != "json"},
               "note": args.note, "machine": machine_info(args.threads), "results": rows}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print("wrote", args.json)


if __name__ == "__main__":
    main()
