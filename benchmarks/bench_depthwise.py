"""Where a depthwise layer's time goes: forward, input gradient and kernel + bias gradient
(one fused pass) of fastcnn's depthwise kernels, and the backward as a layer runs it (both
gradients, in one pass over dy where the shapes allow), with PyTorch's depthwise layer (its
faster layout of NCHW-contiguous and channels_last) for the whole forward + backward.

    python benchmarks/bench_depthwise.py [--threads 1] [--rounds 21] [--quick]
    python benchmarks/bench_depthwise.py --one-pass [--threads 2] [--rounds 31]

With ``--threads 1`` (the default) times are CPU time of the process (``time.process_time``),
steadier than wall-clock on a shared machine; with more threads they are wall-clock. Cases:
the depthwise cases of bench_conv_variants.py and MobileNet's stride-2 layers. Medians in ms;
ratio = best torch forward+backward / fastcnn forward + backward (> 1: fastcnn is faster).

``--one-pass``: the backward as two passes (input gradient, then kernel + bias gradient)
against the one-pass backward, alternating, each call after touching 64 MiB (so that, as in
a training step, the tensors come from memory; --warm leaves them in cache); medians in ms
and the ratio two-pass / one-pass (> 1: one pass is faster). Bits are the same either way
(tests/test_depthwise_paths.py).
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository root (in-place build)

import fastcnn  # noqa: E402
from fastcnn import _ext, ops  # noqa: E402
from fastcnn.ops import depthwise as depthwise_ops  # noqa: E402

# (batch, H=W, channels, stride), 3x3 'same', depth multiplier 1
CASES = [(32, 32, 32, 1), (128, 16, 128, 1), (32, 32, 64, 2), (32, 16, 128, 2)]
QUICK = [(4, 16, 32, 1), (4, 16, 32, 2)]


def _median_ms(fn, rounds, clock):
    fn()
    times = []
    for _ in range(rounds):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(np.median(times)) * 1e3


def fastcnn_parts(n, hw, c, s, rng):
    """{part: fn} of fastcnn's kernels on one case (outputs preallocated, as in a layer)."""
    x = rng.standard_normal((n, hw, hw, c)).astype(np.float32)
    k = rng.standard_normal((3, 3, c, 1)).astype(np.float32)
    shape = ops.depthwise_conv2d_output_shape(x.shape, k.shape, s, "same")
    dy = rng.standard_normal(shape).astype(np.float32)
    out, dx = np.empty(shape, np.float32), np.empty_like(x)
    # the kernel's own arguments, so the input gradient is timed alone
    strides, dilation, pads, _ = depthwise_ops._geometry("bench", x.shape, k.shape, s, "same", 1)
    dk, db = np.empty_like(k), np.empty(c, np.float32)
    return {
        "forward": lambda: ops.depthwise_conv2d(x, k, None, s, "same", out=out),
        "input grad": lambda: _ext.depthwise_backward_input(dy, k, strides, dilation, pads, dx),
        "kernel+bias grad": lambda: ops.depthwise_conv2d_backward(
            dy, x, k, s, "same", need_input_grad=False, dkernel=dk, dbias=db),
        "backward": lambda: _ext.depthwise_backward(dy, x, k, strides, dilation, pads, dx, dk,
                                                    db),
        "two-pass backward": lambda: (
            _ext.depthwise_backward_input(dy, k, strides, dilation, pads, dx),
            _ext.depthwise_backward_kernel(dy, x, strides, dilation, pads, dk, db)),
    }, (x, dy)


def one_pass_ab(args, rng):
    """Two-pass against one-pass backward, alternating, with or without a cache flush."""
    flush = np.zeros(64 << 20, np.uint8)
    rows = []
    print("%6s %6s %5s %3s %10s %10s %7s" % ("batch", "HxW", "ch", "s", "two-pass",
                                             "one-pass", "ratio"))
    for n, hw, c, s in (QUICK if args.quick else CASES + [(32, 16, 64, 1), (32, 16, 128, 1),
                                                           (32, 8, 256, 1)]):
        parts, _ = fastcnn_parts(n, hw, c, s, rng)
        runs = {"two": parts["two-pass backward"], "one": parts["backward"]}
        times = {"two": [], "one": []}
        for i in range(args.rounds):
            for name in (("two", "one") if i % 2 else ("one", "two")):
                if not args.warm:
                    flush[::64] += 1
                t0 = time.perf_counter()
                runs[name]()
                times[name].append(time.perf_counter() - t0)
        two, one = (float(np.median(times[k])) * 1e3 for k in ("two", "one"))
        rows.append(dict(batch=n, hw=hw, channels=c, stride=s, two_pass_ms=two, one_pass_ms=one))
        print("%6d %6s %5d %3d %8.3fms %8.3fms %6.2fx" % (n, "%dx%d" % (hw, hw), c, s, two,
                                                          one, two / one))
    return rows


def torch_step(n, hw, c, s, x, dy):
    import torch
    from torch import nn
    steps = {}
    for name, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        mod = nn.Conv2d(c, c, 3, stride=s, padding=1, groups=c).to(memory_format=fmt)
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
        xt.requires_grad_(True)
        dyt = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)

        def step(mod=mod, xt=xt, dyt=dyt):
            mod.zero_grad(set_to_none=True)
            xt.grad = None
            mod(xt).backward(dyt)

        steps[name] = step
    return steps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--quick", action="store_true", help="small shapes, for a smoke run")
    p.add_argument("--one-pass", action="store_true",
                   help="two-pass against one-pass backward (no torch)")
    p.add_argument("--warm", action="store_true", help="--one-pass without the cache flush")
    args = p.parse_args(argv)
    if args.one_pass:
        fastcnn.set_num_threads(args.threads)
        return one_pass_ab(args, np.random.default_rng(0))
    import torch
    torch.set_num_threads(args.threads)
    fastcnn.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    print("%d thread(s), %s, simd %s" % (args.threads, "CPU time" if args.threads == 1
                                         else "wall-clock", _ext.simd_name()))
    print("%6s %6s %5s %3s %9s %9s %9s %9s %9s %9s %7s" % (
        "batch", "HxW", "ch", "s", "forward", "dx", "dk+db", "backward", "fastcnn", "torch",
        "ratio"))
    rng = np.random.default_rng(0)
    rows = []
    for n, hw, c, s in (QUICK if args.quick else CASES):
        parts, (x, dy) = fastcnn_parts(n, hw, c, s, rng)
        med = {k: _median_ms(f, args.rounds, clock) for k, f in parts.items()
               if k != "two-pass backward"}
        total = med["forward"] + med["backward"]
        best = min(_median_ms(f, args.rounds, clock)
                   for f in torch_step(n, hw, c, s, x, dy).values())
        rows.append(dict(batch=n, hw=hw, channels=c, stride=s, total_ms=total, torch_ms=best,
                         **{k + "_ms": v for k, v in med.items()}))
        print("%6d %6s %5d %3d %7.2fms %7.2fms %7.2fms %7.2fms %7.2fms %7.2fms %6.2fx" % (
            n, "%dx%d" % (hw, hw), c, s, med["forward"], med["input grad"],
            med["kernel+bias grad"], med["backward"], total, best, best / total))
    return rows


if __name__ == "__main__":
    main()
