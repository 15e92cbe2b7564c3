"""Images/s of one epoch of the TensorFlow "Image classification" tutorial model fed from an
image folder, against the same model fed from arrays, and torchvision + PyTorch beside it.

    python benchmarks/bench_loader.py [--threads 2] [--per-class 1000] [--image-size 32]

Rows (one run, same machine, same thread count T everywhere):
  fastcnn arrays            fit on uint8 arrays already in memory            (a)
  fastcnn folder            fit on image_dataset_from_directory, no cache    (b)
  fastcnn folder cached     the tutorial's .cache().shuffle(1000).prefetch,
                            second epoch (the first fills the cache)         (c)
  torch ImageFolder         torchvision ImageFolder + DataLoader(num_workers=T) + the same
                            model in PyTorch (T threads)
  loader fastcnn / torch    iterating the decoded batches without training (fastcnn's
                            decoder "auto": worker processes from 2048 files, started
                            when the dataset is made; and decoder="threads")

The folder is CIFAR-10's JPEG copy (../shared/data/cifar10/cifar10-jpeg.tar.gz, train/),
extracted once into --cache; --per-class links the first N images of each class. Transforms
are the same: decode, resize to --image-size (none at 32), uint8 -> x/255 in the model.
Targets (issue 12): (c) within 5% of (a); (b) >= 1.5x torch end to end; loader >= DataLoader.
torchvision's PyPI wheel is built for CUDA torch: only its pure-Python ImageFolder and
transforms are used (its C ops are not loaded).
"""
import argparse
import os
import sys
import tarfile
import time
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_TARBALL = os.path.join(HERE, "..", "..", "shared", "data", "cifar10",
                               "cifar10-jpeg.tar.gz")


def prepare_folder(tarball, cache, per_class):
    """``cache/train`` extracted once, or a folder of links to N images per class."""
    done = os.path.join(cache, ".extracted")
    if not os.path.exists(done):
        os.makedirs(cache, exist_ok=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(cache, filter="data")
        open(done, "w").close()
    train = os.path.join(cache, "train")
    if not per_class:
        return train
    small = os.path.join(cache, "train-%d" % per_class)
    if not os.path.exists(os.path.join(small, ".done")):
        for cls in sorted(os.listdir(train)):
            os.makedirs(os.path.join(small, cls), exist_ok=True)
            for name in sorted(os.listdir(os.path.join(train, cls)))[:per_class]:
                link = os.path.join(small, cls, name)
                if not os.path.lexists(link):
                    os.symlink(os.path.join(train, cls, name), link)
        open(os.path.join(small, ".done"), "w").close()
    return small


def tutorial_model(size, num_classes):
    from fastcnn import layers, losses
    from fastcnn.models import Sequential
    model = Sequential([
        layers.Rescaling(1. / 255, input_shape=(size, size, 3)),
        layers.Conv2D(16, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding='same', activation='relu'), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(128, activation='relu'), layers.Dense(num_classes)])
    model.compile(optimizer='adam',
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    return model


class _EpochTimes:
    """A callback recording each epoch's wall time."""

    def __new__(cls):
        from fastcnn import callbacks

        class Times(callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self._t)
        return Times()


def _folder_ds(folder, size, seed=123, decoder="auto"):
    from fastcnn import utils
    return utils.image_dataset_from_directory(folder, image_size=(size, size), batch_size=32,
                                              seed=seed, verbose=False, decoder=decoder)


def bench_fastcnn(folder, size, threads):
    import fastcnn
    from fastcnn import data
    fastcnn.set_num_threads(threads)
    fastcnn.utils.set_random_seed(0)
    rows = {}
    raw = _folder_ds(folder, size)
    n = len(raw.file_paths)
    # loader alone: one pass over decoded batches
    t = time.perf_counter()
    count = sum(len(y) for _, y in raw.prefetch(data.AUTOTUNE))
    rows["loader fastcnn"] = count / (time.perf_counter() - t)
    # the same with decoder="threads" (what "auto" picks below 2048 files)
    threads = _folder_ds(folder, size, decoder="threads")
    t = time.perf_counter()
    count = sum(len(y) for _, y in threads.prefetch(data.AUTOTUNE))
    rows["loader fastcnn (threads)"] = count / (time.perf_counter() - t)
    # (a) arrays in memory
    xs, ys = zip(*list(_folder_ds(folder, size, seed=1)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    del xs, ys
    model = tutorial_model(size, len(raw.class_names))
    model.fit(x[:64], y[:64], epochs=1, verbose=0)  # builds the plan and buffers
    cb = _EpochTimes()  # epochs of ~1 s: the median of three, as for (c)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[cb])
    rows["fastcnn arrays (a)"] = n / float(np.median(cb.times))
    del x, y
    # (b) the folder, decoded every epoch
    model = tutorial_model(size, len(raw.class_names))
    model.fit(raw.take(2), epochs=1, verbose=0)
    cb = _EpochTimes()
    model.fit(raw.prefetch(data.AUTOTUNE), epochs=1, verbose=0, callbacks=[cb])
    rows["fastcnn folder (b)"] = n / cb.times[0]
    # (c) the tutorial's pipeline; the second epoch reads the cache
    model = tutorial_model(size, len(raw.class_names))
    model.fit(raw.take(2), epochs=1, verbose=0)
    cb = _EpochTimes()
    cached = raw.cache().shuffle(1000).prefetch(buffer_size=data.AUTOTUNE)
    model.fit(cached, epochs=4, verbose=0, callbacks=[cb])
    rows["fastcnn folder cached (c)"] = n / float(np.median(cb.times[1:]))
    return rows


def _torchvision():
    # torchvision's PyPI wheel targets CUDA torch; its C ops fail to register on CPU torch,
    # and only the pure-Python ImageFolder and transforms are needed here
    sys.modules.setdefault("torchvision._meta_registrations",
                           types.ModuleType("torchvision._meta_registrations"))
    from torchvision import datasets, transforms
    return datasets, transforms


def bench_torch(folder, size, threads, workers):
    import torch
    from torch import nn
    datasets, transforms = _torchvision()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ops = [transforms.PILToTensor()]
    if size != 32:  # CIFAR-10 images are 32x32: no resize, as in fastcnn's loader
        ops.insert(0, transforms.Resize((size, size),
                                        interpolation=transforms.InterpolationMode.BILINEAR))
    ds = datasets.ImageFolder(folder, transform=transforms.Compose(ops))
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)
    rows = {}
    t = time.perf_counter()
    count = sum(len(y) for _, y in loader)
    rows["loader torch DataLoader"] = count / (time.perf_counter() - t)
    flat = 64 * (size // 8) * (size // 8)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, len(ds.classes)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    t = time.perf_counter()
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb.float() / 255.0), yb)  # the Rescaling(1/255) layer
        loss.backward()
        opt.step()
    rows["torch ImageFolder + DataLoader"] = count / (time.perf_counter() - t)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers (default: --threads, as fastcnn's decoders)")
    p.add_argument("--per-class", type=int, default=1000, help="0: all 5,000 per class")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--tarball", default=DEFAULT_TARBALL)
    p.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                   "fastcnn", "cifar10-jpeg"))
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args(argv)
    folder = prepare_folder(args.tarball, args.cache, args.per_class)
    rows = bench_fastcnn(folder, args.image_size, args.threads)
    if not args.no_torch:
        rows.update(bench_torch(folder, args.image_size, args.threads,
                                args.workers if args.workers is not None else args.threads))
    print("%d images %dx%d, %d threads" % (args.per_class * 10 if args.per_class else 50000,
                                           args.image_size, args.image_size, args.threads))
    for name, rate in rows.items():
        print("  %-34s %8.0f images/s" % (name, rate))
    a, b, c = (rows.get(k) for k in ("fastcnn arrays (a)", "fastcnn folder (b)",
                                     "fastcnn folder cached (c)"))
    print("  (c)/(a) = %.3f  (target >= 0.95)" % (c / a))
    if "torch ImageFolder + DataLoader" in rows:
        print("  (b)/torch = %.2f  (target >= 1.5)" % (b / rows["torch ImageFolder + DataLoader"]))
        print("  loader fastcnn/DataLoader = %.2f  (target >= 1)"
              % (rows["loader fastcnn"] / rows["loader torch DataLoader"]))
    return rows


if __name__ == "__main__":
    main()
