"""Forward + backward time of fastcnn's depthwise, separable, dilated and grouped 3x3
convolutions against PyTorch (its faster layout of NCHW-contiguous and channels_last).

    python benchmarks/bench_conv_variants.py [--threads 2] [--rounds 7] [--quick]
                                             [--only dilated,grouped] [--ceiling]
                                             [--json benchmarks/results/conv_variants.json]

Each case is one layer on a CIFAR-sized batch: fastcnn's layer ``forward(x, training=True)``
then ``backward(dy)`` (input, kernel and bias gradients), PyTorch's module forward then
``backward(dy)`` with the input requiring a gradient, on the same thread count. Every round
times each implementation in turn (interleaved, so a noisy machine hits all alike); the
table gives medians in ms and ratio = best torch / fastcnn (> 1: fastcnn is faster).
``--only`` keeps the named variants; ``--ceiling`` adds, after each dilated or grouped
case, a "plain" row: the undilated, ungrouped Conv2D of the same shapes against torch's
plain conv (what the decomposed paths' kernels reach at best).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # the repository root (in-place build)
from _bench import interleaved_medians_us  # noqa: E402
from side_by_side import machine_info  # noqa: E402

import fastcnn  # noqa: E402
from fastcnn import layers  # noqa: E402

# (variant, batch, H=W, in channels, out channels)
CASES = [
    ("depthwise", 32, 32, 32, 32), ("depthwise", 128, 16, 128, 128),
    ("separable", 32, 32, 32, 64), ("separable", 128, 16, 128, 128),
    ("dilated", 32, 32, 32, 32), ("dilated", 128, 16, 64, 64),
    ("grouped", 32, 32, 64, 64), ("grouped", 128, 16, 128, 128),
]
QUICK = [("depthwise", 8, 16, 32, 32), ("separable", 8, 16, 32, 32),
         ("dilated", 8, 16, 32, 32), ("grouped", 8, 16, 32, 32)]


def fastcnn_layer(variant, c, f):
    if variant == "plain":
        return layers.Conv2D(f, 3, padding="same")
    if variant == "depthwise":
        return layers.DepthwiseConv2D(3, padding="same")
    if variant == "separable":
        return layers.SeparableConv2D(f, 3, padding="same")
    if variant == "dilated":
        return layers.Conv2D(f, 3, padding="same", dilation_rate=2)
    return layers.Conv2D(f, 3, padding="same", groups=4)


def torch_module(variant, c, f):
    from torch import nn
    if variant == "plain":
        return nn.Conv2d(c, f, 3, padding=1)
    if variant == "depthwise":
        return nn.Conv2d(c, c, 3, padding=1, groups=c)
    if variant == "separable":
        return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
                             nn.Conv2d(c, f, 1))
    if variant == "dilated":
        return nn.Conv2d(c, f, 3, padding=2, dilation=2)
    return nn.Conv2d(c, f, 3, padding=1, groups=4)


def make_impls(variant, n, hw, c, f, seed=0):
    """{name: fn} running one forward + backward of the case."""
    import torch
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, hw, hw, c)).astype(np.float32)
    layer = fastcnn_layer(variant, c, f)
    layer.build((None, hw, hw, c))
    out_c = c if variant == "depthwise" else f
    dy = rng.standard_normal((n, hw, hw, out_c)).astype(np.float32)

    def run_fastcnn():
        layer.forward(x, training=True)
        layer.backward(dy)

    impls = {"fastcnn": run_fastcnn}
    for name, fmt in (("torch-nchw", torch.contiguous_format),
                      ("torch-channels_last", torch.channels_last)):
        mod = torch_module(variant, c, f).to(memory_format=fmt)
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
        xt.requires_grad_(True)
        dyt = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)

        def run_torch(mod=mod, xt=xt, dyt=dyt):
            mod.zero_grad(set_to_none=True)
            xt.grad = None
            mod(xt).backward(dyt)

        impls[name] = run_torch
    return impls


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="small shapes, for a smoke run")
    p.add_argument("--only", help="comma-separated variants to run (default: all)")
    p.add_argument("--ceiling", action="store_true",
                   help="add a plain Conv2D row of the same shapes after each dilated / "
                        "grouped case")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--note", default="", help="a remark stored in the --json file")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    fastcnn.set_num_threads(args.threads)
    info = machine_info(args.threads)
    print("CPU: %s, %d threads (fastcnn and torch %s)" % (info["cpu"], args.threads,
                                                          torch.__version__))
    print("%-10s %6s %8s %5s %5s %10s %10s %10s %7s" % (
        "variant", "batch", "HxW", "in", "out", "fastcnn", "torch", "layout", "ratio"))
    rows = []
    cases = QUICK if args.quick else CASES
    if args.only:
        keep = set(args.only.split(","))
        unknown = keep - {case[0] for case in CASES}
        if unknown:
            p.error("--only: unknown variants %s" % ", ".join(sorted(unknown)))
        cases = [case for case in cases if case[0] in keep]
    if args.ceiling:
        cases = [row for case in cases for row in (
            (case, ("plain",) + case[1:]) if case[0] in ("dilated", "grouped") else (case,))]
    for variant, n, hw, c, f in cases:
        med = interleaved_medians_us(make_impls(variant, n, hw, c, f), args.rounds)
        best = min((k for k in med if k.startswith("torch")), key=med.get)
        row = {"variant": variant, "batch": n, "hw": hw, "in": c, "out": f,
               "fastcnn_ms": med["fastcnn"] / 1e3,
               "torch_nchw_ms": med["torch-nchw"] / 1e3,
               "torch_channels_last_ms": med["torch-channels_last"] / 1e3,
               "torch_best": best, "ratio": med[best] / med["fastcnn"]}
        rows.append(row)
        print("%-10s %6d %8s %5d %5d %8.2fms %8.2fms %10s %6.2fx" % (
            variant, n, "%dx%d" % (hw, hw), c, f, row["fastcnn_ms"], med[best] / 1e3,
            best[6:], row["ratio"]))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "note")}
        command = " ".join(["python", "benchmarks/" + os.path.basename(__file__)]
                           + sys.argv[1:])
        doc = {"benchmark": "conv_variants", "command": command, "settings": settings,
               "note": args.note, "machine": info, "rows": rows}
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
    return rows


if __name__ == "__main__":
    main()
