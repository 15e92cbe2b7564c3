"""Per-batch cost of metric updates (what fit adds to every training step).

Times ``update_state`` of the compiled 'accuracy' shortcut (the loss kernel's count), AUC,
Precision/Recall with top_k, top-k accuracy and MeanIoU on batch-sized inputs, and AUC's C
counting against a NumPy version of Keras' tiled comparison (O(thresholds x batch)).

    python benchmarks/bench_metrics.py [--repeats 200] [--batch 128]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fastcnn import metrics as M  # noqa: E402
from fastcnn.training.compile_metrics import CompileMetrics  # noqa: E402


def per_call_us(fn, repeats):
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e6


def numpy_auc_counts(y, p, thresholds):
    """Keras' non-bucketed formula in NumPy: a (T, N) comparison per batch."""
    above = p.reshape(1, -1) > thresholds[:, None]
    pos = (y.reshape(1, -1) != 0)
    return (above & pos).sum(1), (above & ~pos).sum(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, r = args.batch, args.repeats
    probs = rng.dirichlet(np.ones(10), n).astype(np.float32)
    ids = rng.integers(0, 10, n)
    onehot = np.eye(10, dtype=np.float32)[ids]
    yb = rng.integers(0, 2, (n, 1)).astype(np.float32)
    pb = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    big = rng.dirichlet(np.ones(100), n).astype(np.float32)
    big_ids = rng.integers(0, 100, n)

    acc = CompileMetrics(["accuracy"], None, ["out"])
    acc.prepare(ids.shape, probs.shape)
    rows = [
        ("compiled 'accuracy' (loss kernel count)",
         lambda: acc.update_state(ids, probs, n_correct=17)),
        ("SparseCategoricalAccuracy (argmax)",
         lambda: M.SparseCategoricalAccuracy().update_state(ids, probs)),
        ("AUC() (N, 1)", lambda: auc.update_state(yb, pb)),
        ("AUC(multi_label) (N, 10)", lambda: auc_ml.update_state(onehot, probs)),
        ("Precision(top_k=5) (N, 100)",
         lambda: prec.update_state(np.eye(100, dtype=np.float32)[big_ids], big)),
        ("SparseTopKCategoricalAccuracy(5) (N, 100)",
         lambda: top5.update_state(big_ids, big)),
        ("MeanIoU(10) (N,)", lambda: iou.update_state(ids, probs.argmax(1))),
        ("numpy reference: AUC counts, tiled (200 x N)",
         lambda: numpy_auc_counts(yb, pb, thr)),
    ]
    auc, auc_ml = M.AUC(), M.AUC(multi_label=True)
    prec, top5, iou = M.Precision(top_k=5), M.SparseTopKCategoricalAccuracy(5), M.MeanIoU(10)
    thr = np.linspace(0, 1, 200).astype(np.float32)
    print("batch %d, %d repeats: microseconds per update_state" % (n, r))
    for name, fn in rows:
        print("  %-48s %9.1f" % (name, per_call_us(fn, r)))


if __name__ == "__main__":
    main()
