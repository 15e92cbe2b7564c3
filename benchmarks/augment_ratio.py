"""Augmentation layers: fastcnn (C kernels) vs torchvision.transforms.v2 on tensors.

    python benchmarks/augment_ratio.py [--threads 2] [--repeats 15] [--batch 128]

A batch of CIFAR-sized images (batch x 32 x 32 x 3 float32; NCHW tensors for torchvision) goes
through each layer in training mode. torchvision's v2 transforms draw ONE set of random
parameters per call, so they are timed twice: on the whole batch (one draw for all images,
torchvision's fastest path, not the same augmentation) and image by image (one draw per
image, what fastcnn computes; what a DataLoader's workers do per sample). Both libraries run
on the same number of threads. torchvision is a benchmark-only peer
(``pip install torchvision --no-deps`` matching the installed torch).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import fastcnn  # noqa: E402
from _bench import THREADS, interleaved_medians_us  # noqa: E402
from fastcnn import layers  # noqa: E402


def _import_v2():
    """torchvision.transforms.v2. A torchvision wheel whose compiled ops do not load (a CUDA
    build beside a CPU torch) fails on import while registering ``nms``/``qnms``, which the
    transforms never use: declaring those ops' schemas first lets the pure-Python transforms
    load."""
    import torch
    try:
        from torchvision.transforms import v2
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
        for mod in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[mod]
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for op in ("nms", "qnms"):
            lib.define(op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _import_v2.lib = lib  # keep the registration alive
        from torchvision.transforms import v2
    return v2


def cases():
    """(name, fastcnn layer, torchvision transform factory or None)."""
    import torch
    v2 = _import_v2()
    bil = v2.InterpolationMode.BILINEAR
    return [
        ("RandomFlip horizontal", layers.RandomFlip("horizontal", seed=1),
         lambda: v2.RandomHorizontalFlip(0.5)),
        ("RandomFlip both", layers.RandomFlip(seed=1),
         lambda: v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5)])),
        ("RandomRotation 0.1", layers.RandomRotation(0.1, fill_mode="constant", seed=1),
         lambda: v2.RandomRotation(36, interpolation=bil)),
        ("RandomZoom 0.1", layers.RandomZoom(0.1, fill_mode="constant", seed=1),
         lambda: v2.RandomAffine(0, scale=(0.9, 1.1), interpolation=bil)),
        ("RandomTranslation 0.1", layers.RandomTranslation(0.1, 0.1, fill_mode="constant",
                                                           seed=1),
         lambda: v2.RandomAffine(0, translate=(0.1, 0.1), interpolation=bil)),
        ("RandomTranslation reflect", layers.RandomTranslation(0.1, 0.1, seed=1), None),
        ("RandomCrop 28", layers.RandomCrop(28, 28, seed=1), lambda: v2.RandomCrop(28)),
        ("RandomContrast 0.2", layers.RandomContrast(0.2, seed=1),
         lambda: v2.ColorJitter(contrast=0.2)),
        ("RandomBrightness 0.2", layers.RandomBrightness(0.2, seed=1),
         lambda: v2.ColorJitter(brightness=0.2)),
        ("Resizing 64 bilinear", layers.Resizing(64, 64),
         lambda: v2.Resize((64, 64), interpolation=bil, antialias=False)),
        ("CenterCrop 24", layers.CenterCrop(24, 24), lambda: v2.CenterCrop(24)),
        ("Rescaling 1/255", layers.Rescaling(1 / 255.0),
         lambda: v2.ToDtype(torch.float32, scale=True)),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args(argv)
    import torch
    fastcnn.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(args.batch, 32, 32, 3)).astype(np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    xt_u8 = xt.to(torch.uint8)
    print("batch %d x 32x32x3, %d threads; median us per batch (lower is better)"
          % (args.batch, args.threads))
    print("%-26s %10s %12s %14s %9s" % ("layer", "fastcnn", "tv batch", "tv per image",
                                        "per-img x"))
    for name, layer, make in cases():
        layer._build_for((None,) + x.shape[1:])
        impls = {"fastcnn": lambda layer=layer: layer.forward(x, training=True)}
        if make is not None:
            t = make()
            src = xt_u8 if name.startswith("Rescaling") else xt
            impls["batch"] = lambda t=t, src=src: t(src)
            imgs = list(src)
            impls["image"] = lambda t=t, imgs=imgs: [t(i) for i in imgs]
        us = interleaved_medians_us(impls, args.repeats)
        tb, ti = us.get("batch"), us.get("image")
        print("%-26s %10.0f %12s %14s %9s" % (
            name, us["fastcnn"], "-" if tb is None else "%.0f" % tb,
            "-" if ti is None else "%.0f" % ti,
            "-" if ti is None else "%.1f" % (ti / us["fastcnn"])))


if __name__ == "__main__":
    main()
