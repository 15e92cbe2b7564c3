"""Activation kernels against memory bandwidth (and PyTorch when installed).

    python benchmarks/bench_activations.py [--mib 64] [--threads 2] [--repeats 7] [--json]
    python benchmarks/bench_activations.py --cpu-time [--mib 1]


Elementwise activations stream memory: forward reads x and writes y, backward reads dy and
the stored output or input and writes dx. The bandwidth reference is ``np.copyto`` of one
array of ``--mib`` MiB to another (read + write bytes over time). For each activation the
script prints forward and backward GB/s (bytes each pass moves over its median time) and
``ratio`` = bandwidth GB/s / activation GB/s: 1.0 runs at copy speed; the target is <= 1.3.
Softmax and log_softmax run row-wise on a (rows, 1000) view. With torch installed, its time
for the same op on the same threads is printed beside (``F.<op>`` forward, the
``torch.ops.aten.*_backward`` kernel backward). ``--json`` writes
benchmarks/results/activations.json.

``--cpu-time`` measures instead single-thread CPU time per element (``time.process_time``,
medians; ns/element, forward and backward), which stays meaningful on a busy machine: use
it to compare two builds. The vector path in use (AVX2, or AVX-512 where
``fastcnn._ext.gemm_avx512()``) is printed; ``FASTCNN_NO_AVX512=1`` forces AVX2.
"""
import argparse
import json
import os
import shlex
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastcnn  # noqa: E402
from _bench import THREADS  # noqa: E402
from fastcnn import ops  # noqa: E402

# (label, fastcnn name, params); softmax rows are handled apart
ELEMENTWISE = [
    ("relu", "relu", {}), ("relu6", "relu6", {}), ("leaky_relu", "leaky_relu", {}),
    ("relu(max=4,slope=.1,thr=.5)", "relu",
     dict(max_value=4.0, negative_slope=0.1, threshold=0.5)),
    ("sigmoid", "sigmoid", {}), ("tanh", "tanh", {}), ("elu", "elu", {}), ("selu", "selu", {}),
    ("gelu", "gelu", {}), ("gelu(approximate)", "gelu", dict(approximate=True)),
    ("silu", "silu", {}), ("softplus", "softplus", {}), ("softsign", "softsign", {}),
    ("hard_sigmoid", "hard_sigmoid", {}), ("hard_silu", "hard_silu", {}),
    ("exponential", "exponential", {}),
]
ROWS_OF = 1000


def median_s(fn, repeats):
    fn()  # warm: page faults, thread team
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


def cpu_ns(fn, n, repeats):
    """Median single-thread CPU time of fn in ns per element (loops of >= 2^24 elements)."""
    fn()
    loops = max(1, (1 << 24) // n)
    t = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(loops):
            fn()
        t.append(time.process_time() - t0)
    return float(np.median(t)) / loops / n * 1e9


def path_name():
    simd = fastcnn._ext.simd_name()
    return simd + (" + AVX-512 activations" if simd != "portable" and
                   fastcnn._ext.gemm_avx512() else "")


def cpu_time_table(args):
    """--cpu-time: single-thread ns/element of every case, forward and backward."""
    fastcnn.set_num_threads(1)
    n = int(args.mib * 2 ** 20) // 4 // ROWS_OF * ROWS_OF
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    y, dx = np.ones(n, np.float32), np.ones(n, np.float32)
    print("single-thread CPU time, %d elements, %s path, medians of %d"
          % (n, path_name(), args.repeats))
    print("%-28s %9s" % ("copy", "%.3f" % cpu_ns(lambda: np.copyto(y, x), n, args.repeats)))
    print("%-28s %9s %9s   (ns/element)" % ("activation", "fwd", "bwd"))
    for label, name, params in ELEMENTWISE + [("softmax", None, {}), ("log_softmax", None, {})]:
        if name is None:
            log = label == "log_softmax"
            x2, y2, dy2, dx2 = (a.reshape(-1, ROWS_OF) for a in (x, y, dy, dx))
            fwd = lambda: ops.softmax_axis(x2, -1, log=log, out=y2)  # noqa: E731
            fwd()
            bwd = lambda: ops.softmax_axis_backward(dy2, y2, -1, log=log, out=dx2)  # noqa
        else:
            fwd = lambda: ops.activation(x, name, out=y, **params)  # noqa: E731
            fwd()
            src = y if ops.activation_backward_uses_output(name, **params) else x
            bwd = lambda: ops.activation_backward(dy, src, name, out=dx, **params)  # noqa
        print("%-28s %9.3f %9.3f" % (label, cpu_ns(fwd, n, args.repeats),
                                     cpu_ns(bwd, n, args.repeats)))


def torch_ops(torch):
    """label -> (forward(x, out?), backward(dy, x, y)) with PyTorch's own kernels."""
    F, A = torch.nn.functional, torch.ops.aten
    return {
        "relu": (lambda x: torch.relu(x), lambda g, x, y: A.threshold_backward(g, y, 0.0)),
        "relu6": (lambda x: F.relu6(x), lambda g, x, y: A.hardtanh_backward(g, x, 0.0, 6.0)),
        "leaky_relu": (lambda x: F.leaky_relu(x, 0.2),
                       lambda g, x, y: A.leaky_relu_backward(g, x, 0.2, False)),
        "sigmoid": (lambda x: torch.sigmoid(x), lambda g, x, y: A.sigmoid_backward(g, y)),
        "tanh": (lambda x: torch.tanh(x), lambda g, x, y: A.tanh_backward(g, y)),
        "elu": (lambda x: F.elu(x), lambda g, x, y: A.elu_backward(g, 1.0, 1.0, 1.0, True, y)),
        "selu": (lambda x: F.selu(x),
                 lambda g, x, y: A.elu_backward(g, 1.6732632423543772, 1.0507009873554805,
                                                1.0, True, y)),
        "gelu": (lambda x: F.gelu(x), lambda g, x, y: A.gelu_backward(g, x)),
        "gelu(approximate)": (lambda x: F.gelu(x, approximate="tanh"),
                              lambda g, x, y: A.gelu_backward(g, x, approximate="tanh")),
        "silu": (lambda x: F.silu(x), lambda g, x, y: A.silu_backward(g, x)),
        "softplus": (lambda x: F.softplus(x),
                     lambda g, x, y: A.softplus_backward(g, x, 1.0, 20.0)),
        "softsign": (lambda x: F.softsign(x), None),
        "hard_sigmoid": (lambda x: F.hardsigmoid(x),
                         lambda g, x, y: A.hardsigmoid_backward(g, x)),
        "hard_silu": (lambda x: F.hardswish(x), lambda g, x, y: A.hardswish_backward(g, x)),
        "exponential": (lambda x: torch.exp(x), lambda g, x, y: g * y),
        "softmax": (lambda x: torch.softmax(x, -1),
                    lambda g, x, y: A._softmax_backward_data(g, y, -1, torch.float32)),
        "log_softmax": (lambda x: torch.log_softmax(x, -1),
                        lambda g, x, y: A._log_softmax_backward_data(g, y, -1, torch.float32)),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=float, default=64.0, help="size of one array in MiB")
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", action="store_true",
                    help="write benchmarks/results/activations.json")
    ap.add_argument("--note", default=None, help="a note stored in the JSON file")
    ap.add_argument("--cpu-time", action="store_true",
                    help="single-thread CPU ns/element instead (for A/B on a busy machine)")
    args = ap.parse_args(argv)
    if args.cpu_time:
        cpu_time_table(args)
        return
    fastcnn.set_num_threads(args.threads)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            torch = None
    n = int(args.mib * 2 ** 20) // 4 // ROWS_OF * ROWS_OF
    nbytes = 4 * n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    dy = rng.standard_normal(n).astype(np.float32)
    y = np.ones(n, np.float32)
    dx = np.ones(n, np.float32)
    copy_s = median_s(lambda: np.copyto(y, x), args.repeats)
    bw = 2 * nbytes / copy_s / 1e9
    print("arrays of %.0f MiB, %d threads, %s path, medians of %d"
          % (nbytes / 2 ** 20, args.threads, path_name(), args.repeats))
    print("bandwidth (np.copyto, read+write): %.1f GB/s (%.2f ms)" % (bw, copy_s * 1e3))
    head = "%-28s %9s %7s %9s %7s" % ("activation", "fwd GB/s", "ratio", "bwd GB/s", "ratio")
    if torch is not None:
        head += " %10s %10s" % ("torch fwd", "torch bwd")
    print(head + "   (ratio = bandwidth / activation GB/s; target <= 1.3)")
    tops = torch_ops(torch) if torch is not None else {}
    xt, dyt = (torch.from_numpy(x), torch.from_numpy(dy)) if torch is not None else (None, None)
    from side_by_side import machine_info
    results = {"benchmark": "activations", "note": args.note,
               "command": shlex.join(["python", "benchmarks/bench_activations.py"]
                                     + list(sys.argv[1:] if argv is None else argv)),
               "machine": machine_info(args.threads),
               "mib": nbytes / 2 ** 20, "threads": args.threads,
               "simd": path_name(), "copy_ms": copy_s * 1e3,
               "bandwidth_gbs": bw, "activations": {}}
    cases = [(label, name, params) for label, name, params in ELEMENTWISE]
    cases += [("softmax", None, {}), ("log_softmax", None, {})]
    for label, name, params in cases:
        if name is None:  # row-wise on (rows, 1000)
            log = label == "log_softmax"
            x2, y2, dy2, dx2 = (a.reshape(-1, ROWS_OF) for a in (x, y, dy, dx))
            fwd = lambda: ops.softmax_axis(x2, -1, log=log, out=y2)  # noqa: E731
            fwd()
            bwd = lambda: ops.softmax_axis_backward(dy2, y2, -1, log=log, out=dx2)  # noqa
            shape = (-1, ROWS_OF)
        else:
            fwd = lambda: ops.activation(x, name, out=y, **params)  # noqa: E731
            fwd()
            src = y if ops.activation_backward_uses_output(name, **params) else x
            bwd = lambda: ops.activation_backward(dy, src, name, out=dx, **params)  # noqa
            shape = (-1,)
        tf, tb = median_s(fwd, args.repeats), median_s(bwd, args.repeats)
        gf, gb = 2 * nbytes / tf / 1e9, 3 * nbytes / tb / 1e9
        row = {"forward_ms": tf * 1e3, "backward_ms": tb * 1e3, "forward_gbs": gf,
               "backward_gbs": gb, "forward_ratio": bw / gf, "backward_ratio": bw / gb}
        line = "%-28s %9.1f %7.2f %9.1f %7.2f" % (label, gf, bw / gf, gb, bw / gb)
        if label in tops:
            tfwd, tbwd = tops[label]
            xs, gs = xt.reshape(shape), dyt.reshape(shape)
            ys = tfwd(xs)
            row["torch_forward_ms"] = median_s(lambda: tfwd(xs), args.repeats) * 1e3
            line += " %8.2fms" % row["torch_forward_ms"]
            if tbwd is not None:
                row["torch_backward_ms"] = median_s(lambda: tbwd(gs, xs, ys),
                                                    args.repeats) * 1e3
                line += " %8.2fms" % row["torch_backward_ms"]
            line += "  (ours %.2f / %.2f ms)" % (tf * 1e3, tb * 1e3)
        print(line)
        results["activations"][label] = row
    if args.json:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                            "activations.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        print("wrote", path)


if __name__ == "__main__":
    main()
