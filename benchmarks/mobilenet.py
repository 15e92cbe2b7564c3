"""A MobileNet-style CIFAR model (32x32x3) in fastcnn and in PyTorch: training-step time at
batch 32 and inference time at batch 1000.

    python benchmarks/mobilenet.py [--threads 2] [--rounds 5] [--quick]
                                   [--json benchmarks/results/mobilenet.json]
    python benchmarks/mobilenet.py --profile [--threads 1] [--rounds 15]

The model: a 3x3 stem Conv2D(32) + BN + ReLU6, then depthwise-separable blocks
(DepthwiseConv2D 3x3 + BN + ReLU6 + 1x1 Conv2D + BN + ReLU6, some with stride 2),
GlobalAveragePooling2D and Dense(10). Both libraries train with Adam on the same shapes
(PyTorch in its faster layout of NCHW and channels_last, measured side by side); every round
times each implementation in turn. Ratios are torch / fastcnn (> 1: fastcnn is faster).

``--profile``: fastcnn's training step only, per plan step (fastcnn.profiler, minimum of
``--rounds`` steps), then the time summed by kind of step (pointwise conv + BN + ReLU6,
depthwise + BN + ReLU6, ...), to see where a step goes.
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

# (pointwise filters, depthwise stride) of the separable blocks
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]
QUICK_BLOCKS = [(32, 1), (64, 2), (64, 1)]


def relu6():
    """ReLU6 as Keras writes it."""
    return layers.ReLU(max_value=6.0)


def fastcnn_model(blocks):
    stack = [fastcnn.Input((32, 32, 3)),
             layers.Conv2D(32, 3, padding="same", use_bias=False),
             layers.BatchNormalization(), relu6()]
    for filters, stride in blocks:
        stack += [layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False),
                  layers.BatchNormalization(), relu6(),
                  layers.Conv2D(filters, 1, use_bias=False),
                  layers.BatchNormalization(), relu6()]
    stack += [layers.GlobalAveragePooling2D(), layers.Dense(10)]
    model = fastcnn.Sequential(stack)
    model.compile(optimizer="adam",
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def torch_model(blocks):
    from torch import nn
    mods = [nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
    c = 32
    for filters, stride in blocks:
        mods += [nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c, bias=False),
                 nn.BatchNorm2d(c), nn.ReLU6(),
                 nn.Conv2d(c, filters, 1, bias=False), nn.BatchNorm2d(filters), nn.ReLU6()]
        c = filters
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    return nn.Sequential(*mods)


def make_impls(blocks, batch, train, seed=0):
    """{name: fn}: one training step (train) or one inference pass of `batch` images."""
    import torch
    rng = np.random.default_rng(seed)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    fastcnn.utils.set_random_seed(seed)
    model = fastcnn_model(blocks)
    if train:
        impls = {"fastcnn": lambda: model.train_on_batch(x, y)}
    else:
        impls = {"fastcnn": lambda: model.predict_on_batch(x)}
    torch.manual_seed(seed)
    for name, fmt in (("torch-nchw", torch.contiguous_format),
                      ("torch-channels_last", torch.channels_last)):
        net = torch_model(blocks).to(memory_format=fmt)
        xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).contiguous(memory_format=fmt)
        yt = torch.from_numpy(y.astype(np.int64))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
        loss = torch.nn.CrossEntropyLoss()

        def step(net=net, xt=xt, yt=yt, opt=opt):
            net.train()
            opt.zero_grad(set_to_none=True)
            loss(net(xt), yt).backward()
            opt.step()

        def infer(net=net, xt=xt):
            net.eval()
            with torch.inference_mode():
                net(xt)

        impls[name] = step if train else infer
    return impls


def profile_step(blocks, batch, repeats):
    """Print fastcnn's training-step profile and its time summed per kind of plan step."""
    import collections
    from fastcnn import profiler
    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    fastcnn.utils.set_random_seed(0)
    model = fastcnn_model(blocks)
    result = profiler.profile(model, x, y, repeats=repeats, stat="min")
    print(profiler.format_profile(result))
    kinds = {layer: step.kind for step in model.plan() for layer in step.layers}
    sums = collections.defaultdict(lambda: [0.0, 0.0])
    for row in result[:-1]:
        kind = kinds.get(row.name, row.name)  # loss / optimizer rows keep their own name
        if row.name == model.layers[0].name:  # the 3x3 stem, apart from the 1x1 convs
            kind = "stem " + kind
        sums[kind][0] += row.forward_ms or 0.0
        sums[kind][1] += row.backward_ms or 0.0
    print("\nby kind of step (ms, min of %d):" % repeats)
    for kind, (f, b) in sorted(sums.items(), key=lambda kv: -sum(kv[1])):
        print("  %-46s fwd %7.2f  bwd %7.2f  sum %7.2f" % (kind, f, b, f + b))
    print("  %-46s %.2f ms" % ("step", result.step_ms))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="3 small blocks, small batches")
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--note", default="", help="a remark stored in the --json file")
    p.add_argument("--profile", action="store_true",
                   help="profile fastcnn's training step per plan step instead")
    args = p.parse_args(argv)
    if args.profile:
        fastcnn.set_num_threads(args.threads)
        blocks = QUICK_BLOCKS if args.quick else BLOCKS
        print("fastcnn training step, %d threads" % args.threads)
        return profile_step(blocks, 8 if args.quick else 32, args.rounds)
    import torch
    torch.set_num_threads(args.threads)
    fastcnn.set_num_threads(args.threads)
    info = machine_info(args.threads)
    blocks = QUICK_BLOCKS if args.quick else BLOCKS
    print("CPU: %s, %d threads (fastcnn and torch %s); %d separable blocks"
          % (info["cpu"], args.threads, torch.__version__, len(blocks)))
    rows = []
    for what, batch, train in (("train step", 8 if args.quick else 32, True),
                               ("inference", 100 if args.quick else 1000, False)):
        med = interleaved_medians_us(make_impls(blocks, batch, train), args.rounds)
        best = min((k for k in med if k.startswith("torch")), key=med.get)
        row = {"what": what, "batch": batch, "fastcnn_ms": med["fastcnn"] / 1e3,
               "torch_nchw_ms": med["torch-nchw"] / 1e3,
               "torch_channels_last_ms": med["torch-channels_last"] / 1e3,
               "torch_best": best, "ratio": med[best] / med["fastcnn"]}
        rows.append(row)
        print("%-11s batch %5d: fastcnn %9.2f ms, %s %9.2f ms, ratio %.2fx"
              % (what, batch, row["fastcnn_ms"], best, med[best] / 1e3, row["ratio"]))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k not in ("json", "note")}
        command = " ".join(["python", "benchmarks/" + os.path.basename(__file__)]
                           + sys.argv[1:])
        doc = {"benchmark": "mobilenet", "command": command, "settings": settings,
               "note": args.note, "machine": info, "blocks": blocks, "rows": rows}
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
    return rows


if __name__ == "__main__":
    main()
