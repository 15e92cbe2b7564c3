"""Thread scaling of fastcnn's training step: images/s of `fit` at 1, 2, 4, ... threads.

The tutorial model trains one epoch on the first --images CIFAR-10 training images (uint8,
as `fastcnn train` feeds them) at each thread count and batch size; rounds alternate over
the thread counts, and the table gives medians over rounds and the speed-up over 1 thread.

    python benchmarks/thread_scaling.py                       # 1 and 2 threads here
    python benchmarks/thread_scaling.py --threads 1 2 4 8 16  # on a bigger machine

The data are read from $FASTCNN_CIFAR10_DIR (or the usual fastcnn/Keras locations); with
--synthetic, random images of the same shape are used instead.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import fastcnn  # noqa: F401
except ImportError:  # run from a checkout built in place
    sys.path.insert(0, os.path.dirname(HERE))


def load(n, synthetic):
    if synthetic:
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                rng.integers(0, 10, (n, 1)).astype(np.uint8))
    from fastcnn.datasets import cifar10
    (x, y), _ = cifar10.load_data(os.environ.get("FASTCNN_CIFAR10_DIR"))
    return x[:n], y[:n]


def fit_speed(x, y, threads, batch_size):
    import fastcnn
    from fastcnn import zoo
    fastcnn.set_num_threads(threads)
    model = zoo.tutorial_model()
    model.compile(optimizer="adam",
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x[:4 * batch_size], y[:4 * batch_size], batch_size=batch_size, epochs=1,
              verbose=0)  # buffers, thread team
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return len(x) / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    p.add_argument("--images", type=int, default=8192)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--synthetic", action="store_true", help="random images, no dataset")
    p.add_argument("--json", help="also write the results, the CPU and the settings to this "
                   "JSON file (benchmarks/results/; the docs' benchmark page charts them)")
    p.add_argument("--note", default=None, help="a remark stored in the --json file")
    args = p.parse_args(argv)
    if min(args.threads) < 1 or min(args.batch_sizes) < 1 or args.rounds < 1 \
            or args.images < max(args.batch_sizes):
        p.error("--threads, --batch-sizes, --rounds must be >= 1 and --images >= the batch")
    import fastcnn
    old = fastcnn.get_num_threads()
    x, y = load(args.images, args.synthetic)
    speeds = {}
    try:
        for rnd in range(args.rounds):
            for bs in args.batch_sizes:
                for t in args.threads:
                    speeds.setdefault((bs, t), []).append(fit_speed(x, y, t, bs))
            print("  round %d/%d done" % (rnd + 1, args.rounds), file=sys.stderr)
    finally:
        fastcnn.set_num_threads(old)
    base = args.threads[0]
    lines = ["| batch | threads | images/s median (min-max) | speed-up over %d thread%s |"
             % (base, "" if base == 1 else "s"), "|---|---|---|---|"]
    rows = []
    for bs in args.batch_sizes:
        ref = statistics.median(speeds[(bs, base)])
        for t in args.threads:
            v = speeds[(bs, t)]
            med = statistics.median(v)
            rows.append((bs, t, med, med / ref))
            lines.append("| %d | %d | %.0f (%.0f-%.0f) | %.2f |"
                         % (bs, t, med, min(v), max(v), med / ref))
    print("\n".join(lines))
    if args.json:
        import json
        import shlex
        sys.path.insert(0, HERE)
        from side_by_side import machine_info
        doc = {"benchmark": "thread_scaling",
               "command": shlex.join(["python", "benchmarks/thread_scaling.py"] + sys.argv[1:]),
               "settings": {k: v for k, v in vars(args).items() if k != "json"},
               "note": args.note, "machine": machine_info(args.threads),
               "rows": [{"batch_size": bs, "threads": t, "images_per_s": med, "speedup": sp,
                         "samples": speeds[(bs, t)]} for bs, t, med, sp in rows]}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    return rows


if __name__ == "__main__":
    main()
