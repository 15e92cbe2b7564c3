"""Streaming (non-temporal) stores for large outputs, on against off, in one run.

    python benchmarks/stream_stores.py [--threads 2] [--rounds 15] [--quick]

Kernels whose output is past a thread's share of the caches (fc_stream_output) write it
through a cached line buffer and out with streaming stores, skipping the read for ownership
of every output line. This times the layers that do so at CIFAR-sized shapes with the policy
as shipped ("stream") and with streaming turned off ("cached"), alternating the two so
that the host's drift in memory bandwidth hits both alike; medians in ms, and the ratio
cached / stream (> 1: streaming is faster). The outputs are bitwise the same either way
(tests/test_depthwise_paths.py). ``--quick``: small shapes and 2 rounds, a smoke run
(outputs that small are not streamed by default: its ratios say nothing).
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root (in-place build)
from _bench import interleaved_medians_us  # noqa: E402
from side_by_side import machine_info  # noqa: E402

import fastcnn  # noqa: E402
from fastcnn import _ext, layers  # noqa: E402

# (name, layer factory, input shape)
CASES = [
    ("DepthwiseConv2D 3x3", lambda: layers.DepthwiseConv2D(3, padding="same"),
     (128, 16, 16, 128)),
    ("DepthwiseConv2D 3x3", lambda: layers.DepthwiseConv2D(3, padding="same"),
     (128, 32, 32, 32)),
    ("SeparableConv2D 3x3", lambda: layers.SeparableConv2D(128, 3, padding="same"),
     (128, 16, 16, 128)),
]
QUICK = [("DepthwiseConv2D 3x3", lambda: layers.DepthwiseConv2D(3, padding="same"),
          (2, 8, 8, 16)),
         ("SeparableConv2D 3x3", lambda: layers.SeparableConv2D(8, 3, padding="same"),
          (2, 8, 8, 16))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="small shapes, 2 rounds (smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds = 2
    fastcnn.set_num_threads(args.threads)
    info = machine_info(args.threads)
    print("CPU: %s, %d threads" % (info["cpu"], args.threads))
    print("%-20s %-18s %9s %9s %7s" % ("layer", "input", "cached", "stream", "ratio"))
    rng = np.random.default_rng(0)
    rows = []
    for name, make, shape in QUICK if args.quick else CASES:
        layer = make()
        layer.build(shape)
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(layer.compute_output_shape(shape)).astype(np.float32)

        def step():
            layer.forward(x, training=True)
            layer.backward(dy)

        def with_policy(min_bytes):
            def run():
                _ext.set_stream_min_bytes(min_bytes)
                step()
            return run

        try:
            t = interleaved_medians_us({"cached": with_policy(1 << 62),
                                        "stream": with_policy(-1)}, args.rounds)
        finally:
            _ext.set_stream_min_bytes(-1)
        print("%-20s %-18s %7.2fms %7.2fms %6.2fx" % (
            name, "x".join(map(str, shape)), t["cached"] / 1e3, t["stream"] / 1e3,
            t["cached"] / t["stream"]))
        rows.append((name, shape, t["cached"], t["stream"]))
    return rows


if __name__ == "__main__":
    main()
