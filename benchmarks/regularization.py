"""Cost of regularization in a training step: the tutorial model's train_step (batch 32)
plain, with L2(1e-4) on every kernel (the Keras CIFAR-10 ResNet example's choice), with
L2 on kernels + L1 activity penalties on the dense layers, and with MaxNorm constraints.

    python benchmarks/regularization.py [--threads 2] [--repeats 15] [--batch 32]

Prints interleaved median milliseconds per step and each variant's ratio to the plain model.
The plain model's step runs exactly as without this feature (one truth test per step), so
compare its figure with the same script on a tree without regularizers (``--plain-only``).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastcnn  # noqa: E402
from _bench import THREADS, interleaved_medians_us  # noqa: E402
from fastcnn import layers  # noqa: E402


def tutorial(kernel_regularizer=None, activity_regularizer=None, kernel_constraint=None):
    extra = {}
    if kernel_regularizer is not None:
        extra["kernel_regularizer"] = kernel_regularizer
    if kernel_constraint is not None:
        extra["kernel_constraint"] = kernel_constraint
    act = {} if activity_regularizer is None else {"activity_regularizer":
                                                    activity_regularizer}
    return fastcnn.Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(32, 3, activation="relu", **extra), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu", **extra), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu", **extra), layers.Flatten(),
        layers.Dense(64, activation="relu", **extra, **act), layers.Dense(10, **extra, **act),
    ])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--plain-only", action="store_true",
                    help="only the unregularized model (runs on trees without regularizers)")
    args = ap.parse_args()
    fastcnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    variants = {"plain": {}}
    if not args.plain_only:
        from fastcnn import constraints, regularizers
        variants["l2 kernels"] = {"kernel_regularizer": regularizers.L2(1e-4)}
        variants["l2 + activity l1"] = {"kernel_regularizer": regularizers.L2(1e-4),
                                        "activity_regularizer": regularizers.L1(1e-5)}
        variants["max_norm kernels"] = {"kernel_constraint": constraints.MaxNorm(3.0)}
    steps = {}
    for name, kw in variants.items():
        fastcnn.utils.set_random_seed(0)
        model = tutorial(**kw)
        model.compile(optimizer="adam",
                      loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.prepare(training=True)
        steps[name] = (lambda m: lambda: m.train_step(x, y))(model)
        steps[name]()
    med = interleaved_medians_us(steps, args.repeats)
    print("tutorial model train_step, batch %d, %d threads" % (args.batch, args.threads))
    for name, us in med.items():
        print("  %-18s %8.2f ms  %.3fx" % (name, us / 1e3, us / med["plain"]))


if __name__ == "__main__":
    main()
