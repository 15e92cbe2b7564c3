"""An imported ONNX model in fastcnn vs onnxruntime on the same ONNX file (issue 15's target:
fastcnn >= 2x onnxruntime's throughput at batch 1000, and a batch-1 latency no worse).

For each model (the committed torch.onnx.export fixtures tests/fixtures/onnx/
tutorial_cnn.onnx and small_resnet.onnx, a ResNet-style net with BatchNorm) the file is
imported with ``fastcnn.onnx.load_model`` and run

* in fastcnn through ``model.predict_on_batch(x)`` and ``model(x)`` on NHWC input;
* in onnxruntime (CPUExecutionProvider, intra_op_num_threads = --threads, inter_op 1,
  ORT_ENABLE_ALL, sequential) on the same file with NCHW input.

Both get the same images (each in its layout, transposed once outside the timing) and their
outputs are compared (relative difference <= 1e-4) before timing. Each round, every runner in
turn (the order alternating) pauses --settle seconds (the other runtime's threads spin a
while after its last call), makes 2 untimed calls, then about --seconds of timed calls
(at least --min-calls); the table gives the median over --rounds of the time per call,
images per second, and the median per-round ratio of onnxruntime's time to the runner's
(> 1: faster than onnxruntime).

    python benchmarks/onnx_inference.py                    # batches 1000 and 1, 2 threads
    python benchmarks/onnx_inference.py --rounds 2 --seconds 0.2 --batches 64 1   # quick
    python benchmarks/onnx_inference.py --json   # also benchmarks/results/onnx_inference.json
    python benchmarks/onnx_inference.py --threads 1 --clock cpu   # A/B on a busy machine
    python benchmarks/onnx_inference.py --steps --batches 1   # where the lean program's time goes

``--steps`` prints, instead of the comparison, the time of each step of the model's compiled
lean program (training/lean.py): programs of the first k steps are timed (--clock) and each
step's time is the difference, so it is the C kernels' time without Python.

``--clock cpu`` times with the process's CPU time (all its threads) instead of the wall
clock: with ``--threads 1`` it is the A/B measure that other processes on a loaded host
disturb least (spinning OpenMP/onnxruntime threads would count with more threads).

onnx and onnxruntime are benchmark-only dependencies.
"""
import argparse
import json
import os
import shlex
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if any(f.startswith("_ext") and f.endswith((".so", ".pyd"))
       for f in os.listdir(os.path.join(ROOT, "fastcnn"))):
    sys.path.insert(0, ROOT)  # a checkout built in place: measure it, not an installed copy

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "onnx")
MODELS = ("tutorial_cnn", "small_resnet")
JSON_PATH = os.path.join(HERE, "results", "onnx_inference.json")
TOLERANCE = 1e-4


class OrtRunner:
    name = "onnxruntime"

    def __init__(self, path, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.version = ort.__version__

    def __call__(self, x_nchw, x_nhwc):
        return self.session.run(None, {self.input: x_nchw})[0]


class FastcnnPredict:
    name = "fastcnn predict_on_batch"

    def __init__(self, model):
        self.model = model

    def __call__(self, x_nchw, x_nhwc):
        return self.model.predict_on_batch(x_nhwc)


class FastcnnCall(FastcnnPredict):
    name = "fastcnn model(x)"

    def __call__(self, x_nchw, x_nhwc):
        return self.model(x_nhwc)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def time_calls(fn, args, n):
    t0 = _clock()
    for _ in range(n):
        fn(*args)
    return _clock() - t0


def bench_one(name, batch, args):
    """Rows (dicts) for one model at one batch size."""
    import fastcnn
    import fastcnn.onnx
    path = os.path.join(FIXTURES, name + ".onnx")
    model = fastcnn.onnx.load_model(path)
    ort_runner = OrtRunner(path, args.threads)
    runners = [FastcnnPredict(model), FastcnnCall(model), ort_runner]
    shape = (batch,) + tuple(ort_runner.session.get_inputs()[0].shape[1:])
    x_nchw = np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)
    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    inputs = (x_nchw, x_nhwc)
    expected = ort_runner(*inputs)
    for r in runners[:2]:
        out = np.asarray(r(*inputs))
        out = out.transpose(0, 3, 1, 2) if out.ndim == 4 else out
        err = float(np.max(np.abs(out - expected)) / max(np.max(np.abs(expected)), 1e-6))
        if out.shape != expected.shape or not err <= TOLERANCE:
            raise AssertionError("%s on %s: output differs from onnxruntime's by %g (> %g)"
                                 % (r.name, name, err, TOLERANCE))
    calls = {}
    for r in runners:
        time_calls(r, inputs, args.warmup)
        one = time_calls(r, inputs, 2) / 2
        calls[r.name] = max(args.min_calls, int(args.seconds / max(one, 1e-7)))
    times = {r.name: [] for r in runners}
    for rnd in range(args.rounds):
        for r in (runners if rnd % 2 == 0 else runners[::-1]):
            time.sleep(args.settle)
            time_calls(r, inputs, 2)
            n = calls[r.name]
            times[r.name].append(time_calls(r, inputs, n) / n)
    base = times[ort_runner.name]
    rows = []
    for r in runners:
        v = times[r.name]
        med = statistics.median(v)
        rows.append({"model": name, "batch": batch, "runner": r.name,
                     "ms_per_call_median": med * 1e3, "ms_min": min(v) * 1e3,
                     "ms_max": max(v) * 1e3, "images_per_s": batch / med,
                     "speedup_vs_onnxruntime": statistics.median(
                         b / t for t, b in zip(v, base)),
                     "rounds": args.rounds, "calls_per_round": calls[r.name]})
    return rows, ort_runner.version


def step_times(name, batch, args):
    """[(step, µs per call)] of the lean program of ``name`` at ``batch`` (see --steps)."""
    import fastcnn.onnx
    from fastcnn.training.lean import LeanRunner
    model = fastcnn.onnx.load_model(os.path.join(FIXTURES, name + ".onnx"))
    model.predict_on_batch(np.zeros((1,) + tuple(model.inputs[0].shape[1:]), np.float32))
    shape = (batch,) + tuple(model.inputs[0].shape[1:])
    x = np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)
    runner = LeanRunner(model._program(), x.shape)
    if runner.program is None:
        raise SystemExit("%s: its steps do not all lower into one program" % name)
    keys = runner.keys
    times = []
    for k in range(len(keys) + 1):
        program = runner.lower_steps(keys[:k])[0][1] if k else None
        call = (lambda p=program: p.run([x])) if program is not None else (lambda: None)
        n = max(args.min_calls, int(args.seconds / max(time_calls(call, (), 3) / 3, 1e-7)))
        times.append(min(time_calls(call, (), n) / n for _ in range(args.rounds)))
    return [(keys[i][0].__qualname__.split(".")[0] + " -> %s" % (keys[i][2],),
             (times[i + 1] - times[i]) * 1e6) for i in range(len(keys))] + \
        [("whole program", times[-1] * 1e6)]


def run(args, argv=None):
    import fastcnn
    global _clock
    _clock = CLOCKS[args.clock]
    old = fastcnn.get_num_threads()
    fastcnn.set_num_threads(args.threads)
    rows, version = [], None
    if args.steps:
        try:
            for name in args.models:
                for batch in args.batches:
                    print("\n%s batch %d, threads=%d, %s clock: µs per step"
                          % (name, batch, args.threads, args.clock))
                    for what, us in step_times(name, batch, args):
                        print("  %-45s %10.2f" % (what, us))
        finally:
            fastcnn.set_num_threads(old)
        return []
    try:
        for name in args.models:
            for batch in args.batches:
                got, version = bench_one(name, batch, args)
                rows += got
                print("  %s batch %d done" % (name, batch), file=sys.stderr)
    finally:
        fastcnn.set_num_threads(old)
    title = ("imported ONNX models, fastcnn vs onnxruntime %s, threads=%d, %d rounds of ~%gs"
             "%s" % (version, args.threads, args.rounds, args.seconds,
                     ", process CPU time" if args.clock == "cpu" else ""))
    lines = ["| model | batch | runner | ms per call median (min-max) | images/s | "
             "onnxruntime time / runner time |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %d | %s | %.3f (%.3f-%.3f) | %.0f | %.2f |"
                     % (r["model"], r["batch"], r["runner"], r["ms_per_call_median"],
                        r["ms_min"], r["ms_max"], r["images_per_s"],
                        r["speedup_vs_onnxruntime"]))
    print("\n" + title + "\n\n" + "\n".join(lines))
    if args.json:
        sys.path.insert(0, HERE)
        from side_by_side import machine_info
        machine = machine_info(args.threads)
        machine["onnxruntime"] = version
        os.makedirs(os.path.dirname(args.json_path), exist_ok=True)
        with open(args.json_path, "w") as f:
            json.dump({"benchmark": "onnx_inference", "title": title,
                       "command": shlex.join(["python", "benchmarks/onnx_inference.py"]
                                             + list(argv if argv is not None
                                                    else sys.argv[1:])),
                       "note": args.note, "machine": machine, "rows": rows}, f, indent=1)
            f.write("\n")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--batches", nargs="+", type=int, default=[1000, 1])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0,
                   help="about this many seconds of timed calls per runner per round")
    p.add_argument("--min-calls", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before round 1")
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds of pause before each runner's block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall: elapsed time; cpu: the process's CPU time (A/B under load)")
    p.add_argument("--steps", action="store_true",
                   help="per-step times of fastcnn's compiled lean program (no comparison)")
    p.add_argument("--json", action="store_true", help="write %s" % JSON_PATH)
    p.add_argument("--json-path", default=JSON_PATH, help=argparse.SUPPRESS)
    p.add_argument("--note", default="", help="a remark stored in the JSON (e.g. 'quiet host')")
    args = p.parse_args(argv)
    if min(args.threads, args.rounds, args.min_calls, *args.batches) < 1 or args.warmup < 0:
        p.error("--threads, --rounds, --min-calls, --batches must be >= 1, --warmup >= 0")
    if args.settle < 0 or args.seconds <= 0:
        p.error("--settle must be >= 0 and --seconds > 0")
    return run(args, argv)


if __name__ == "__main__":
    main()
