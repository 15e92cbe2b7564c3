"""fit's epoch loop against the bare train steps it runs: the overhead of fastcnn's one
loop over adapters (NumPy arrays, a fastcnn.data.Dataset) per step.

    python benchmarks/fit_loop.py [--repeats 5] [--samples 2048] [--batch 64] [--checkout DIR]

A small conv net on uint8 32x32x3 images (where per-step overhead shows most); prints the
median milliseconds per step of each way. ``--checkout DIR`` imports fastcnn from another
checkout (with its extension built) to compare two trees with the same command.
"""
import argparse
import os
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--checkout", default=os.path.dirname(_HERE))
    ap.add_argument("--cpu-time", action="store_true",
                    help="CPU seconds of this process instead of wall time (steadier on a "
                         "busy machine; with FASTCNN_BENCH_THREADS=1)")
    args = ap.parse_args(argv)
    sys.path[:0] = [os.path.abspath(args.checkout), _HERE]
    import fastcnn
    from fastcnn import layers, losses
    from _bench import THREADS
    fastcnn.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    n, bs = args.samples, args.batch
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.Sequential([layers.Input((32, 32, 3)), layers.Rescaling(1 / 255),
                                layers.Conv2D(8, 3, activation="relu"),
                                layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10)])
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    steps = -(-n // bs)
    xf = x.astype(np.float32)
    ds = fastcnn.data.Dataset.from_tensor_slices((x, y)).batch(bs)

    def bare():  # the floor: the steps alone on batches converted beforehand
        model.prepare(training=True)
        model.reset_metrics()
        for lo in range(0, n, bs):
            model.train_step(xf[lo:lo + bs], y[lo:lo + bs])

    ways = {"train_step alone": bare,
            "fit(arrays, shuffle)": lambda: model.fit(x, y, batch_size=bs, verbose=0),
            "fit(arrays, shuffle=False)": lambda: model.fit(x, y, batch_size=bs,
                                                            shuffle=False, verbose=0),
            "fit(Dataset)": lambda: model.fit(ds, verbose=0)}
    times = {k: [] for k in ways}
    clock = time.process_time if args.cpu_time else time.perf_counter
    for f in ways.values():
        f()  # warm: buffers and plans
    for _ in range(args.repeats):
        for k, f in ways.items():  # in turns, so drift hits all alike
            t = clock()
            f()
            times[k].append((clock() - t) / steps)
    print("fastcnn from %s: %d samples, batch %d, %d threads" % (
        os.path.dirname(fastcnn.__file__), n, bs, THREADS))
    rows = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    for k, v in rows.items():
        print("  %-28s %8.3f ms/step" % (k, v))
    return rows


if __name__ == "__main__":
    main()
