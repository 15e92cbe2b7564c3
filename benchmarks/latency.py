"""Inference latency of the Keras CIFAR-10 tutorial model: fastcnn vs onnxruntime vs PyTorch.

One forward pass of zoo.tutorial_model on a float32 (batch, 32, 32, 3) array (batch 1 by
default: single-image latency), timed per call for

* fastcnn ``model(x)`` and ``model.predict_on_batch(x)``;
* onnxruntime on an ONNX graph of the SAME model with the SAME weights, written node by node
  with onnx.helper (``onnx_tutorial_model``): NHWC input -> Transpose to NCHW -> 3 x
  (Conv+Relu, the first two followed by MaxPool 2x2) -> Transpose back to NHWC (so Flatten
  has Keras' order) -> Flatten -> Gemm+Relu -> Gemm; intra-op threads = --threads, inter-op
  1, ORT_ENABLE_ALL graph optimisations;
* PyTorch eager (NCHW, inference_mode), when installed, on the twin from side_by_side.py
  with the same weights.

Every runner's output is checked against fastcnn's (max abs difference <= 1e-4) before
timing. Each round, every framework in turn (order alternating) sleeps --settle seconds (the
previous framework's worker threads keep spinning a while after its last call), makes a few
untimed calls, then --calls timed calls (or as many as last about --seconds); the table
gives the median over rounds of microseconds per call (min-max), the median per-round ratio
to onnxruntime, GFLOP/s and the percentage of the measured fp32 FMA peak (the probe of
side_by_side.measure_peak_gflops, best of the probes before and between rounds). The
tutorial's forward pass is 9.10 MFLOP per image (direct convolution, multiply and add = 2);
the title also gives the time that takes at the measured peak. fastcnn's Winograd kernels
do fewer multiplications than that count, so at larger batches its "% of peak" can pass 100.

    python benchmarks/latency.py                      # batch 1, 2 threads
    python benchmarks/latency.py --batch 32 --seconds 0.5 --rounds 7
    python benchmarks/latency.py --threads 1 --markdown latency.md

onnx / onnxruntime / torch are benchmark-only dependencies; without onnxruntime (or onnx)
its rows are skipped and the ratios are to fastcnn's model(x) instead.
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

from side_by_side import measure_peak_gflops, torch_model, tutorial_flops  # noqa: E402

TOLERANCE = 1e-4


def tutorial_weights(model):
    """{layer type and index: {weight name: array}} of a zoo.tutorial_model, in order:
    conv0..conv2, dense0, dense1."""
    out, counts = {}, {}
    for layer in model.layers:
        if not layer.weights:
            continue
        kind = {"Conv2D": "conv", "Dense": "dense"}[type(layer).__name__]
        i = counts.get(kind, 0)
        counts[kind] = i + 1
        out["%s%d" % (kind, i)] = {v.name: np.asarray(v.value) for v in layer.weights}
    return out


def onnx_tutorial_model(model, opset=17):
    """An onnx.ModelProto of fastcnn's tutorial model with its weights (input "x": NHWC
    float32 (N, 32, 32, 3); output "logits" (N, 10)). Written with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = tutorial_weights(model)
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, np.float32), name))
        return name

    nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
    h = "x_nchw"
    for i in range(3):
        k = w["conv%d" % i]
        kernel = const("conv%d_W" % i, k["kernel"].transpose(3, 2, 0, 1))  # (F, C, kh, kw)
        bias = const("conv%d_B" % i, k["bias"])
        kh, kw = k["kernel"].shape[:2]
        nodes.append(helper.make_node("Conv", [h, kernel, bias], ["conv%d" % i],
                                      kernel_shape=[kh, kw], strides=[1, 1],
                                      pads=[0, 0, 0, 0]))
        nodes.append(helper.make_node("Relu", ["conv%d" % i], ["relu%d" % i]))
        h = "relu%d" % i
        if i < 2:
            nodes.append(helper.make_node("MaxPool", [h], ["pool%d" % i], kernel_shape=[2, 2],
                                          strides=[2, 2]))
            h = "pool%d" % i
    # back to NHWC so that Flatten gives Keras' (h, w, c) order the Dense kernel expects
    nodes.append(helper.make_node("Transpose", [h], ["nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Flatten", ["nhwc"], ["flat"], axis=1))
    d0, d1 = w["dense0"], w["dense1"]
    nodes.append(helper.make_node("Gemm", ["flat", const("dense0_W", d0["kernel"]),
                                           const("dense0_B", d0["bias"])], ["dense0"],
                                  transB=0))
    nodes.append(helper.make_node("Relu", ["dense0"], ["dense0_relu"]))
    nodes.append(helper.make_node("Gemm", ["dense0_relu", const("dense1_W", d1["kernel"]),
                                           const("dense1_B", d1["bias"])], ["logits"],
                                  transB=0))
    graph = helper.make_graph(
        nodes, "fastcnn_tutorial",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 32, 32, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["N", d1["kernel"].shape[1]])],
        inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastcnn-benchmarks")
    proto.ir_version = 8  # the IR of opset 17: what any onnxruntime >= 1.13 reads
    onnx.checker.check_model(proto)
    return proto


# ----------------------------------------------------------------------------- runners
class FastcnnCall:
    name = "fastcnn model(x)"

    def __init__(self, model):
        self.model = model

    def __call__(self, x):
        return self.model(x)


class FastcnnPredict(FastcnnCall):
    name = "fastcnn predict_on_batch"

    def __call__(self, x):
        return self.model.predict_on_batch(x)


class OrtRunner:
    name = "onnxruntime"

    def __init__(self, model, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(onnx_tutorial_model(model).SerializeToString(),
                                            so, providers=["CPUExecutionProvider"])
        self.version = ort.__version__

    def __call__(self, x):
        return self.session.run(["logits"], {"x": x})[0]


class TorchRunner:
    name = "torch eager (NCHW)"

    def __init__(self, model, threads):
        import torch
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = torch_model("tutorial").eval()
        w = tutorial_weights(model)
        convs = [m for m in self.model.modules() if isinstance(m, torch.nn.Conv2d)]
        denses = [m for m in self.model.modules() if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for i, m in enumerate(convs):
                m.weight.copy_(torch.from_numpy(w["conv%d" % i]["kernel"].transpose(3, 2, 0, 1)
                                                .copy()))
                m.bias.copy_(torch.from_numpy(w["conv%d" % i]["bias"]))
            for i, m in enumerate(denses):
                k = w["dense%d" % i]["kernel"]
                if i == 0:  # Keras flattens (h, w, c), torch (c, h, w): permute the rows
                    k = k.reshape(4, 4, -1, k.shape[1]).transpose(2, 0, 1, 3).reshape(k.shape)
                m.weight.copy_(torch.from_numpy(k.T.copy()))
                m.bias.copy_(torch.from_numpy(w["dense%d" % i]["bias"]))
        self._cache = {}

    def _tensor(self, x):
        key = (x.__array_interface__["data"][0], x.shape)
        t = self._cache.get(key)
        if t is None:  # NHWC -> NCHW once per input array, outside the timed calls
            t = self._cache[key] = self.torch.from_numpy(
                np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return t

    def __call__(self, x):
        with self.torch.inference_mode():
            return self.model(self._tensor(x)).numpy()


# ----------------------------------------------------------------------------- driver
def time_calls(fn, x, n):
    t0 = time.perf_counter()
    for _ in range(n):
        fn(x)
    return time.perf_counter() - t0


def run(args):
    import fastcnn
    from fastcnn import zoo
    fastcnn.set_num_threads(args.threads)
    fastcnn.utils.set_random_seed(args.seed)
    model = zoo.tutorial_model()
    rng = np.random.default_rng(args.seed)
    # non-zero biases, so that the checks below see them too
    for layer in model.layers:
        for v in layer.weights:
            if v.name == "bias":
                v.value[...] = rng.uniform(-0.1, 0.1, v.value.shape).astype(np.float32)
    x = rng.random((args.batch, 32, 32, 3), dtype=np.float32)
    fwd_flop = tutorial_flops()[0] * args.batch
    peak = measure_peak_gflops(args.threads)

    runners = [FastcnnCall(model), FastcnnPredict(model)]
    notes = []
    try:
        runners.append(OrtRunner(model, args.threads))
        notes.append("onnxruntime %s" % runners[-1].version)
    except ImportError as e:
        print("(onnxruntime / onnx not installed (%s): no ONNX Runtime rows)" % e)
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("(PyTorch not installed: no PyTorch row)")
        else:
            runners.append(TorchRunner(model, args.threads))
            notes.append("torch %s" % torch.__version__)
    ref_name = "onnxruntime" if any(r.name == "onnxruntime" for r in runners) \
        else runners[0].name

    expected = model(x)
    for r in runners:
        out = np.asarray(r(x))
        err = float(np.max(np.abs(out - expected)))
        if out.shape != expected.shape or not err <= TOLERANCE:
            raise AssertionError("%s: output differs from fastcnn's by %g (> %g)"
                                 % (r.name, err, TOLERANCE))
        print("  %-26s max |output - fastcnn's| = %.2g" % (r.name, err), file=sys.stderr)

    calls = {}
    for r in runners:
        time_calls(r, x, args.warmup)  # first-touch buffers, thread pools, caches
        if args.seconds:
            one = time_calls(r, x, 20) / 20
            calls[r.name] = max(1, int(args.seconds / max(one, 1e-7)))
        else:
            calls[r.name] = args.calls

    results = {r.name: [] for r in runners}
    for rnd in range(args.rounds):
        order = runners if rnd % 2 == 0 else runners[::-1]
        for r in order:
            time.sleep(args.settle)
            time_calls(r, x, 5)  # untimed: threads awake, buffers back in cache
            n = calls[r.name]
            results[r.name].append(time_calls(r, x, n) / n * 1e6)
        peak = max(peak, measure_peak_gflops(args.threads, trials=2, seconds=0.1))
        print("  round %d/%d done" % (rnd + 1, args.rounds), file=sys.stderr)

    base = results[ref_name]
    rows = []
    for r in runners:
        v = results[r.name]
        med = statistics.median(v)
        ratio = statistics.median(t / b for t, b in zip(v, base))
        gflops = fwd_flop / (med * 1e-6) / 1e9
        rows.append((r.name, med, min(v), max(v), ratio, gflops, 100.0 * gflops / peak))
    title = ("tutorial model forward, batch %d, threads=%d, %d rounds of %s calls; %.2f "
             "MFLOP per call (%.2f MFLOP/image) = %.1f us at the measured fp32 FMA peak "
             "%.0f GFLOP/s%s"
             % (args.batch, args.threads, args.rounds,
                ("~%.2g s of" % args.seconds) if args.seconds else "%d" % args.calls,
                fwd_flop / 1e6, fwd_flop / args.batch / 1e6, fwd_flop / (peak * 1e3), peak,
                ("; " + ", ".join(notes)) if notes else ""))
    lines = ["| framework | us per call median (min-max) | x %s's time | GFLOP/s | "
             "%% of peak |" % ref_name, "|---|---|---|---|---|"]
    lines += ["| %s | %.1f (%.1f-%.1f) | %.2f | %.1f | %.1f |" % row for row in rows]
    table = title + "\n\n" + "\n".join(lines)
    print("\n" + table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1, help="images per call")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=2000,
                   help="timed calls per framework per round")
    p.add_argument("--seconds", type=float, default=None,
                   help="instead of --calls: about this many seconds of calls per framework "
                        "per round")
    p.add_argument("--warmup", type=int, default=50, help="untimed calls before round 1")
    p.add_argument("--settle", type=float, default=0.25,
                   help="seconds of pause before each framework's block")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args(argv)
    if min(args.threads, args.batch, args.rounds, args.calls) < 1 or args.warmup < 0:
        p.error("--threads, --batch, --rounds, --calls must be >= 1, --warmup >= 0")
    if args.settle < 0 or (args.seconds is not None and args.seconds <= 0):
        p.error("--settle must be >= 0 and --seconds > 0")
    import fastcnn
    old = fastcnn.get_num_threads()
    try:
        return run(args)
    finally:
        fastcnn.set_num_threads(old)


if __name__ == "__main__":
    main()
