"""Side-by-side speed of a fastcnn zoo model: fastcnn vs NumPy vs PyTorch.

Every framework trains (batch 32 and 128) and predicts (batch 1000) the same model on the
same real CIFAR-10 arrays with the same thread count. Within each round the frameworks take
turns on short blocks of batches so that the machine's drift hits all of them alike; the
report gives medians over rounds (min-max) of images/s, the median per-round ratio to
fastcnn, achieved GFLOP/s and percent of the measured fp32 peak.

    python benchmarks/side_by_side.py --threads 2 --rounds 5
    python benchmarks/side_by_side.py --model resnet20 --threads 2 --rounds 3
    python benchmarks/side_by_side.py --markdown bench.md --png bench.png
    python benchmarks/side_by_side.py --profile      # per-layer table of fastcnn's model

``--model`` picks the zoo model (fastcnn.zoo.MODELS: ``tutorial`` (the default: the Keras
CIFAR-10 tutorial CNN), ``strong`` (the VGG-style accuracy model) or ``resnet20``). fastcnn
trains ``zoo.MODELS[name]()`` with Adam and SparseCategoricalCrossentropy(from_logits=True);
PyTorch trains an architectural twin of it (same layers, same parameter count: checked
before timing; see ``torch_model``). The NumPy baseline (benchmarks/numpy_baseline.py)
exists for the tutorial model only: for the other models it is skipped and the ratios are
to PyTorch only.

PyTorch is optional (``pip install torch==2.13.0``); it is measured in both NCHW and
channels_last layouts when installed. NumPy's OpenBLAS is limited to ``--threads`` too.
The data are the first images of CIFAR-10's training set (``$FASTCNN_CIFAR10_DIR`` or the
usual fastcnn/Keras locations). The fp32 peak is the best of several FMA-probe measurements
taken before and between rounds (the machine is shared: a probe that meets another process
under-reads the peak). FLOP per image: the tutorial's from the TUTORIAL table below, the
other models' from their own graph (``model_flops``: fastcnn.profiler.layer_flops over the
layers; convolutions and matrix products only, as the profiler counts). These are direct
convolution FLOP: fastcnn's Winograd kernels do fewer multiplications, so a "% of peak" above
100 is possible.

``--profile`` prints fastcnn.profiler's per-layer table of the fastcnn ``--model``'s training
step at batch 32 and 128 instead of the comparison.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import fastcnn  # noqa: F401  (an installed fastcnn, or one on PYTHONPATH)
except ImportError:  # run from a checkout built in place: use it
    sys.path.insert(1, os.path.dirname(HERE))

# The tutorial model: (kind, args). Shapes follow from 32x32x3 inputs.
TUTORIAL = [("conv", 32, 3), ("pool", 2), ("conv", 64, 3), ("pool", 2), ("conv", 64, 3),
            ("flatten",), ("dense", 64, "relu"), ("dense", 10, None)]


def tutorial_flops():
    """(forward FLOP per image, training FLOP per image) of the tutorial model.

    Training = forward + weight gradients + input gradients (none for the first conv).
    """
    h, w, c = 32, 32, 3
    fwd = 0
    train = 0
    first = True
    for layer in TUTORIAL:
        if layer[0] == "conv":
            f, k = layer[1], layer[2]
            h, w = h - k + 1, w - k + 1
            macs = h * w * f * k * k * c
            fwd += 2 * macs
            train += 2 * macs * (2 if first else 3)
            c = f
            first = False
        elif layer[0] == "pool":
            h, w = h // 2, w // 2
        elif layer[0] == "flatten":
            c, h, w = h * w * c, 1, 1
        elif layer[0] == "dense":
            macs = c * layer[1]
            fwd += 2 * macs
            train += 6 * macs
            c = layer[1]
    return fwd, train


def _per_image(shape):
    """A layer's symbolic shape with the batch axis (None) set to 1 (lists: each)."""
    if isinstance(shape, list):
        return [_per_image(s) for s in shape]
    return tuple(1 if d is None else int(d) for d in shape)


def model_flops(model):
    """(forward FLOP per image, training FLOP per image) of a built fastcnn model, from its
    graph: fastcnn.profiler.layer_flops of every layer at its symbolic input/output shape.

    Training = forward + weight gradients + input gradients, where a layer computes an input
    gradient only when something upstream of it has trainable weights (so not the first
    conv). Layers are visited in ``model.layers`` order (topological); a layer's parents are
    those of its first symbolic call (zoo models call each layer once).
    """
    from fastcnn.profiler import layer_flops
    fwd = train = 0
    upstream = {}  # id(layer) -> its output depends on trainable weights
    prev = None
    for layer in model.layers:
        nodes = getattr(layer, "_inbound_nodes", None)
        parents = ([p.layer for p in nodes[0].parent_nodes] if nodes
                   else [prev] if prev is not None else [])
        need_input_grad = any(upstream.get(id(p), False) for p in parents)
        upstream[id(layer)] = need_input_grad or bool(layer.trainable_weights)
        prev = layer
        if type(layer).__name__ == "InputLayer":
            continue
        f, b = layer_flops(layer, _per_image(layer.input_shape),
                           _per_image(layer.output_shape), need_input_grad)
        fwd += f
        train += f + b
    return fwd, train


def measure_peak_gflops(threads, trials=5, seconds=0.2):
    """fp32 FMA throughput of this machine at `threads` threads (a tight C FMA loop)."""
    from fastcnn import _ext
    import fastcnn
    old = fastcnn.get_num_threads()
    fastcnn.set_num_threads(threads)
    try:
        best = 0.0
        for _ in range(trials):
            best = max(best, _ext.fma_peak_gflops(seconds))
        return best
    finally:
        fastcnn.set_num_threads(old)


# ----------------------------------------------------------------------------- runners
class FastcnnRunner:
    name = "fastcnn"

    def __init__(self, threads, seed=0, model="tutorial"):
        import fastcnn
        from fastcnn import zoo
        fastcnn.set_num_threads(threads)
        fastcnn.utils.set_random_seed(seed)
        m = zoo.MODELS[model]()  # zoo.tutorial_model: the layers of TUTORIAL above
        m.compile(optimizer="adam",
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
        self.model = m

    def train_step(self, x, y):
        self.model.train_on_batch(x, y)

    def predict(self, x):
        self.model.predict_on_batch(x)


class NumpyRunner:
    name = "numpy"

    def __init__(self, threads, seed=0):
        from numpy_baseline import TutorialModel, set_blas_threads
        if not set_blas_threads(threads):
            print("(could not set NumPy's BLAS thread count; it uses its default)",
                  file=sys.stderr)
        self.model = TutorialModel(seed=seed)

    def train_step(self, x, y):
        self.model.train_step(x, y)

    def predict(self, x):
        self.model.forward(x)


def torch_model(name):
    """The PyTorch twin (NCHW) of fastcnn.zoo.MODELS[name]: the same layers and parameters,
    Keras' default initialisers (Glorot-uniform kernels, or He-normal where the zoo says so;
    zero biases), BatchNorm with Keras' defaults (momentum 0.99 = PyTorch's 0.01, eps 1e-3).

    'same' padding with stride 2 (resnet20's down-sampling 3x3 convs): Keras pads the one
    extra row/column at the bottom/right only, PyTorch's padding=1 pads both sides; the
    output shapes and the work are identical (only which pixels the windows see differ),
    which is all a speed comparison needs.
    """
    import math
    import torch
    from torch import nn

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    def he_normal_(w):  # Keras' he_normal: truncated normal, stddev sqrt(2 / fan_in)
        std = math.sqrt(2.0 / (w[0].numel())) / 0.87962566103423978
        nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)

    if name == "tutorial":
        m = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(1024, 64), nn.ReLU(), nn.Linear(64, 10))
        init = nn.init.xavier_uniform_
    elif name == "strong":  # zoo.strong_model(width=32)
        mods, c = [], 3
        for f in (32, 64, 128):
            for _ in range(2):
                mods += [nn.Conv2d(c, f, 3, padding=1, bias=False), bn(f), nn.ReLU()]
                c = f
            mods.append(nn.MaxPool2d(2))
        mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
        m = nn.Sequential(*mods)
        init = nn.init.xavier_uniform_
    elif name == "resnet20":  # zoo.resnet_v1(20): 3 stages of 3 basic blocks
        class Block(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1)  # see the docstring
                self.bn1 = bn(cout)
                self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1)
                self.bn2 = bn(cout)
                # Keras: a strided 1x1 conv (with bias, no BN) when the size halves
                self.shortcut = (nn.Conv2d(cin, cout, 1, stride) if stride != 1
                                 else nn.Identity())

            def forward(self, x):
                y = torch.relu(self.bn1(self.conv1(x)))
                y = self.bn2(self.conv2(y))
                return torch.relu(self.shortcut(x) + y)

        mods, c = [nn.Conv2d(3, 16, 3, padding=1), bn(16), nn.ReLU()], 16
        for stage, f in enumerate((16, 32, 64)):
            for block in range(3):
                mods.append(Block(c, f, 2 if stage > 0 and block == 0 else 1))
                c = f
        mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
        m = nn.Sequential(*mods)
        init = he_normal_
    else:
        raise ValueError("no PyTorch twin of zoo model %r" % (name,))
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            init(mod.weight)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
    return m


def check_twin(fastcnn_model, torch_module, name):
    """Assert the PyTorch twin has fastcnn's parameter counts (trainable, and in all with
    BN's moving statistics)."""
    trainable = sum(int(v.size) for v in fastcnn_model.trainable_weights)
    t_trainable = sum(p.numel() for p in torch_module.parameters())
    t_stats = sum(b.numel() for n, b in torch_module.named_buffers()
                  if n.endswith(("running_mean", "running_var")))
    if t_trainable != trainable or t_trainable + t_stats != fastcnn_model.count_params():
        raise AssertionError("PyTorch twin of %r: %d trainable + %d BN statistics, fastcnn: "
                             "%d trainable of %d" % (name, t_trainable, t_stats, trainable,
                                                     fastcnn_model.count_params()))


class TorchRunner:
    def __init__(self, threads, channels_last, seed=0, model="tutorial"):
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.name = "torch-" + ("channels_last" if channels_last else "nchw")
        self.fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = torch_model(model).to(memory_format=self.fmt)
        self.model.train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
        self.loss = nn.CrossEntropyLoss()
        self._cache = {}

    def _tensor(self, x):
        key = (x.__array_interface__["data"][0], x.shape)
        t = self._cache.get(key)
        if t is None:  # convert once per distinct batch array, outside the timed region
            t = self.torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            t = t.contiguous(memory_format=self.fmt)
            self._cache[key] = t
        return t

    def prepare(self, x, y):
        return self._tensor(x), self.torch.from_numpy(y.astype(np.int64).reshape(-1))

    def train_step(self, x, y):
        xt, yt = self._pre[(id(x), id(y))]
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.model(xt), yt).backward()
        self.opt.step()

    def predict(self, x):
        self.model.eval()  # BatchNorm: moving statistics, as fastcnn's predict
        try:
            with self.torch.inference_mode():
                self.model(self._tensor(x))
        finally:
            self.model.train()

    def warm(self, batches):
        self._pre = {(id(x), id(y)): self.prepare(x, y) for x, y in batches}


# ----------------------------------------------------------------------------- driver
def load_cifar(n):
    from fastcnn.datasets import cifar10
    (x, y), _ = cifar10.load_data(os.environ.get("FASTCNN_CIFAR10_DIR"))
    x = (x[:n].astype(np.float32) / np.float32(255.0))
    return x, y[:n].reshape(-1).astype(np.int64)


def machine_info(threads):
    """The context a result file records: CPU model, cores, threads, versions, date."""
    import datetime
    import platform

    import fastcnn
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "threads": threads,
            "fastcnn": fastcnn.__version__, "numpy": np.__version__,
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def write_json(path, kind, args, body):
    """Write one result file (benchmarks/results/*.json; docs/benchmarks.rst charts them)."""
    import json
    import shlex
    command = None
    if sys.argv and sys.argv[0].endswith("side_by_side.py"):  # not when run by `fastcnn bench`
        command = shlex.join(["python", "benchmarks/side_by_side.py"] + sys.argv[1:])
    doc = {"benchmark": kind, "command": command,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "markdown", "png")},
        "note": args.note, "machine": machine_info(args.threads)}
    doc.update(body)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def time_round(fn, items):
    t0 = time.perf_counter()
    for it in items:
        fn(*it)
    return time.perf_counter() - t0


def run_profile(args):
    """Print the per-layer profile of a fastcnn zoo model at batch 32 and 128."""
    from fastcnn.profiler import format_profile
    import fastcnn
    fastcnn.set_num_threads(args.threads)
    x, y = load_cifar(128)
    peak = measure_peak_gflops(args.threads)
    model = FastcnnRunner(args.threads, model=args.model).model
    print("fastcnn zoo model %r, %d parameters, CIFAR-10 training images\n"
          % (args.model, model.count_params()))
    results = []
    for bs in (32, 128):
        rows = model.profile(x[:bs], y[:bs], repeats=args.repeats, warmup=2,
                             peak_gflops=peak, stat=args.stat)
        print(format_profile(rows) + "\n")
        results.append(rows)
    if args.json:
        write_json(args.json, "profile", args, {"peak_gflops": peak, "model": args.model,
                                                "tables": [
            {"batch_size": r.batch_size, "step_ms": r.step_ms, "peak_gflops": r.peak_gflops,
             "rows": [row._asdict() for row in r]} for r in results]})
    return results


def run(args):
    import fastcnn
    fastcnn.set_num_threads(args.threads)
    x, y = load_cifar(max(args.images, 1000))
    peak = measure_peak_gflops(args.threads)

    fc = FastcnnRunner(args.threads, model=args.model)
    # the tutorial's FLOP from its hand-written table (model_flops gives the same), the
    # other models' from their graph
    fwd_flop, train_flop = (tutorial_flops() if args.model == "tutorial"
                            else model_flops(fc.model))
    runners = [fc]
    if args.model == "tutorial":
        runners.append(NumpyRunner(args.threads))
    else:
        print("(no NumPy baseline for %r: benchmarks/numpy_baseline.py implements the tutorial "
              "model only; the ratios are to PyTorch only)" % args.model)
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("(PyTorch not installed: pip install torch==2.13.0 to compare)")
        else:
            for channels_last in (False, True):
                runners.append(TorchRunner(args.threads, channels_last, model=args.model))
                check_twin(fc.model, runners[-1].model, args.model)

    cases = [("train b32", 32, True), ("train b128", 128, True), ("infer b1000", 1000, False)]
    results = {(r.name, c[0]): [] for r in runners for c in cases}
    for case, bs, train in cases:
        nb = max(1, args.images // bs) if train else max(1, args.infer_batches)
        batches = [(x[(i * bs) % (len(x) - bs + 1):][:bs], y[(i * bs) % (len(x) - bs + 1):][:bs])
                   for i in range(nb)]
        for r in runners:
            if hasattr(r, "warm"):
                r.warm(batches)
            # one untimed pass: first-touch allocations, thread pools, caches
            (r.train_step if train else r.predict)(*((batches[0]) if train else (batches[0][0],)))
        # Each round is cut into short blocks that every framework runs in turn (order
        # alternating), so that a change in the machine's load hits all of them alike. Each
        # block starts after a pause of --settle seconds, because the previous framework's
        # worker threads keep spinning after its last call (OpenBLAS's for ~0.1 s: that made
        # whoever ran next 2-3x slower), and then one untimed step (buffers back in cache).
        block = max(1, args.block if train else 1)
        for rnd in range(args.rounds):
            spent = {r.name: 0.0 for r in runners}
            for bi, lo in enumerate(range(0, len(batches), block)):
                part = batches[lo:lo + block]
                order = runners if (rnd + bi) % 2 == 0 else runners[::-1]
                for r in order:
                    time.sleep(args.settle)
                    if train:
                        r.train_step(*part[0])
                        spent[r.name] += time_round(r.train_step, part)
                    else:
                        r.predict(part[0][0])
                        spent[r.name] += time_round(r.predict, [(b[0],) for b in part])
            for r in runners:
                results[(r.name, case)].append(len(batches) * bs / spent[r.name])
            peak = max(peak, measure_peak_gflops(args.threads, trials=2, seconds=0.1))
            print("  round %d/%d of %s done" % (rnd + 1, args.rounds, case), file=sys.stderr)

    rows = []
    for case, bs, train in cases:
        base = results[("fastcnn", case)]
        for r in runners:
            v = results[(r.name, case)]
            med = statistics.median(v)
            # paired: the median over rounds of fastcnn's speed / this framework's speed
            ratio = statistics.median(f / o for f, o in zip(base, v))
            gflops = med * (train_flop if train else fwd_flop) / 1e9
            rows.append((case, r.name, med, min(v), max(v), ratio, gflops,
                         100.0 * gflops / peak))
    header = ("| case | framework | images/s median (min-max) | fastcnn is x faster | "
              "GFLOP/s | % of peak |\n|---|---|---|---|---|---|")
    lines = [header] + ["| %s | %s | %.0f (%.0f-%.0f) | %.2f | %.1f | %.1f |" % r for r in rows]
    table = "\n".join(lines)
    title = ("model %s (%d parameters), threads=%d, rounds=%d, %d training images per "
             "round, measured fp32 peak %.0f GFLOP/s, %.2f MFLOP/image forward, %.2f "
             "MFLOP/image training"
             % (args.model, fc.model.count_params(), args.threads, args.rounds, args.images,
                peak, fwd_flop / 1e6, train_flop / 1e6))
    print("\n" + title)
    print(table)
    table = title + "\n\n" + table
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.png:
        _bar_chart(rows, cases, [r.name for r in runners], args.png)
    if args.json:
        keys = ("case", "framework", "images_per_s", "min", "max", "fastcnn_speedup",
                "gflops", "percent_of_peak")
        write_json(args.json, "side_by_side", args, {
            "model": args.model, "parameters": fc.model.count_params(), "peak_gflops": peak,
            "forward_mflop_per_image": fwd_flop / 1e6, "train_mflop_per_image": train_flop / 1e6,
            "rows": [dict(zip(keys, r)) for r in rows],
            "samples": {"%s|%s" % k: v for k, v in results.items()}})
    return rows


def _bar_chart(rows, cases, names, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        vals = [next(r[2] for r in rows if r[0] == c[0] and r[1] == name) for c in cases]
        ax.bar(np.arange(len(cases)) + j * width, vals, width, label=name)
    ax.set_xticks(np.arange(len(cases)) + width * (len(names) - 1) / 2)
    ax.set_xticklabels([c[0] for c in cases])
    ax.set_ylabel("images / s (median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--images", type=int, default=2048, help="training images per round")
    p.add_argument("--infer-batches", type=int, default=2,
                   help="batches of 1000 images predicted per round")
    p.add_argument("--block", type=int, default=8,
                   help="training batches a framework runs before the next one takes over")
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds of pause before each block (lets other frameworks' "
                        "spinning worker threads go to sleep)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--png", help="also draw a bar chart (needs matplotlib)")
    p.add_argument("--json", help="also write the results, the CPU and the settings to this "
                   "JSON file (benchmarks/results/; the docs' benchmark page charts them)")
    p.add_argument("--note", default=None,
                   help="a remark stored in the --json file (e.g. 'short run')")
    p.add_argument("--profile", action="store_true",
                   help="print fastcnn's per-layer profile at batch 32 and 128 instead")
    p.add_argument("--repeats", type=int, default=10, help="timed steps per --profile table")
    p.add_argument("--stat", default="median", choices=["median", "min"],
                   help="--profile: median or minimum of the repeats")
    p.add_argument("--model", default="tutorial", choices=["tutorial", "strong", "resnet20"],
                   help="zoo model to compare (or to --profile); NumPy: tutorial only")
    args = p.parse_args(argv)
    if args.threads < 1 or args.rounds < 1 or args.images < 1 or args.infer_batches < 1:
        p.error("--threads, --rounds, --images and --infer-batches must be >= 1")
    if args.settle < 0:
        p.error("--settle must be >= 0")
    import fastcnn
    old = fastcnn.get_num_threads()
    try:
        return run_profile(args) if args.profile else run(args)
    finally:
        fastcnn.set_num_threads(old)


if __name__ == "__main__":
    main()
