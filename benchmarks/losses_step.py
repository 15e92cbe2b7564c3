"""The loss part of a training step: fastcnn.losses (fc_loss_rows, weighted or not) against
the previous dedicated softmax cross-entropy kernel, and a few other losses.

    python benchmarks/losses_step.py [--repeats 15] [--batch 128] [--classes 10]

Prints interleaved medians in microseconds per call (value + gradient, outputs preallocated).
"""
import argparse
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(_HERE), _HERE]  # this checkout's fastcnn, then _bench
import fastcnn  # noqa: E402
from fastcnn import losses, ops  # noqa: E402
from _bench import THREADS, interleaved_medians_us  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args(argv)
    fastcnn.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    n, c = args.batch, args.classes
    z = rng.standard_normal((n, c)).astype(np.float32)
    ids = rng.integers(0, c, n)
    onehot = np.eye(c, dtype=np.float32)[ids]
    sw = rng.random(n).astype(np.float32)
    g = np.empty_like(z)
    scce = losses.SparseCategoricalCrossentropy(from_logits=True)
    cce = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    bce = losses.BinaryCrossentropy(from_logits=True)
    huber = losses.Huber()
    impls = {
        "ops.softmax_cross_entropy (previous path)": lambda: ops.softmax_cross_entropy(
            z, ids, dlogits=g),
        "SparseCategoricalCrossentropy": lambda: scce.compute(z, ids, g, True),
        "SparseCategoricalCrossentropy weighted": lambda: scce.compute(z, ids, g, True, sw),
        "CategoricalCrossentropy smoothed": lambda: cce.compute(z, onehot, g, True),
        "BinaryCrossentropy (logits)": lambda: bce.compute(z, onehot, g, True),
        "Huber": lambda: huber.compute(z, onehot, g, True),
    }
    res = interleaved_medians_us(impls, args.repeats)
    print("batch %d, %d classes, %d threads" % (n, c, THREADS))
    for k, v in res.items():
        print("%-45s %8.1f us" % (k, v))


if __name__ == "__main__":
    main()
