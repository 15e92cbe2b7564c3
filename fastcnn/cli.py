"""The ``fastcnn`` command line (also ``python -m fastcnn``).

    fastcnn train [--epochs 10] [--batch-size 32] [--model tutorial|strong|resnet20] [--augment] ...
    fastcnn train --data DIR [--image-size 64] [--validation-split 0.2]   (class sub-folders)
    mpiexec -n 4 fastcnn train --distributed ...   (data-parallel, fastcnn.distribution)
    fastcnn evaluate MODEL [--data DIR]
    fastcnn predict MODEL IMAGE [IMAGE ...]
    fastcnn bench [--threads 2] [--profile] ...   (benchmarks/side_by_side.py)
    fastcnn info
"""
import argparse
import os
import sys
import time


def _cmd_info(args):
    import fastcnn
    if args.threads:
        fastcnn.set_num_threads(args.threads)
    fastcnn.show_config()
    return 0


def _load_cifar(args):
    from fastcnn.datasets import cifar10
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(args.data)
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:max(args.limit // 5, 1)], y_test[:max(args.limit // 5, 1)]
    return (x_train, y_train), (x_test, y_test), cifar10.CLASS_NAMES


def _is_image_folder(path):
    """A folder with class sub-folders holding images (not the CIFAR-10 files)."""
    if not path or not os.path.isdir(path):
        return False
    from fastcnn.data.directory import ALLOWLIST_FORMATS
    for entry in sorted(os.listdir(path)):
        sub = os.path.join(path, entry)
        if entry.startswith(".") or not os.path.isdir(sub):
            continue
        for _, _, files in os.walk(sub):
            if any(f.lower().endswith(ALLOWLIST_FORMATS) for f in files):
                return True
    return False


def _load_folder(args):
    """(train_ds, val_ds, class_names, image shape) of an image folder."""
    from fastcnn import data, utils
    size = args.image_size or 64
    split = args.validation_split or 0.2
    train_ds, val_ds = utils.image_dataset_from_directory(
        args.data, validation_split=split, subset="both", seed=args.seed,
        image_size=(size, size), batch_size=args.batch_size,
        label_mode="categorical" if args.label_smoothing else "int")
    names = train_ds.class_names
    n = len(train_ds.file_paths) + len(val_ds.file_paths)
    if n * size * size * 3 <= args.cache_mb * 2 ** 20:  # decoded once, then from memory
        train_ds, val_ds = train_ds.cache(), val_ds.cache()
    return (train_ds.prefetch(data.AUTOTUNE), val_ds.prefetch(data.AUTOTUNE), names,
            (size, size, 3))


def build_training_model(name, augment, input_shape=(32, 32, 3), num_classes=10,
                         images=None, shift=4, fill="constant", flip=True):
    """The zoo model, with a Rescaling(1/255) input layer (the data stays uint8 in memory)
    and, with ``augment``, random flips (unless ``flip`` is False: the data mirrors the
    images itself) and translations of up to ``shift`` pixels (filled as ``fill``: zeros,
    or the reflected image), applied in C during training only. A model
    with a ``whiten`` layer (speedrun) gets it set from ``images`` (uint8 training images,
    or a function returning them; required then)."""
    import numpy as np
    from fastcnn import layers, models, zoo
    core = zoo.MODELS[name](input_shape=input_shape, num_classes=num_classes)
    if any(layer.name == "whiten" for layer in core.layers):
        if images is None:
            raise ValueError("model %r sets its whitening layer from training images; none "
                             "were given" % name)
        images = images() if callable(images) else images
        zoo.init_whitening(core.get_layer("whiten"),
                           np.asarray(images[:5000], dtype=np.float32) / 255)
    front = [layers.Input(shape=input_shape), layers.Rescaling(1.0 / 255)]
    if augment and flip:
        front.append(layers.RandomFlip("horizontal"))
    if augment:
        front += [layers.RandomTranslation(shift / input_shape[0], shift / input_shape[1],
                                           fill_mode=fill, interpolation="nearest")]
    if isinstance(core, models.Sequential):
        return models.Sequential(front + list(core.layers), name=core.name)
    # a graph model: the preprocessing layers feed it as a nested model
    x = front[0]
    for layer in front[1:]:
        x = layer(x)
    return models.Model(front[0], core(x), name=core.name)


def _cosine_schedule(base_lr, epochs, warmup=1, floor=0.02):
    """Per-epoch learning rate: linear warm-up, then cosine decay to floor*base_lr."""
    import math

    def schedule(epoch, lr):
        if epoch < warmup:
            return base_lr * (epoch + 1) / (warmup + 1)
        t = (epoch - warmup) / max(1, epochs - warmup)
        return base_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))
    return schedule


def _triangle_schedule(base_lr, total_steps, warmup_steps, start=0.2, end=0.07):
    """airbench's per-step learning rate: linear from start*lr to lr over the warm-up steps,
    then linear to end*lr at the last step (the floor keeps Lookahead's average moving)."""
    def rate(step):
        if step < warmup_steps:
            return base_lr * (start + (1 - start) * step / warmup_steps)
        done = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return base_lr * (1 + (end - 1) * done)
    return rate


def _cmd_train(args):
    import fastcnn

    if args.threads:
        fastcnn.set_num_threads(args.threads)
    chief = True
    if args.distributed:  # one rank of `mpiexec -n N fastcnn train --distributed`
        from fastcnn import distribution
        distribution.set_distribution(distribution.DataParallel())
        chief = distribution.rank() == 0
        if not chief:  # rank 0 reports; the others train silently (errors still show)
            sys.stdout = open(os.devnull, "w")
    args.chief = chief  # only rank 0 writes files
    fastcnn.utils.set_random_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    fastcnn.show_config()

    if _is_image_folder(args.data):
        return _train_folder(args)
    if args.image_size not in (None, 32):
        raise ValueError("--image-size applies to an image folder (--data DIR of class "
                         "sub-folders); CIFAR-10 images are 32x32")
    (x_train, y_train), (x_test, y_test), class_names = _load_cifar(args)
    print("CIFAR-10: %d training and %d test images" % (len(x_train), len(x_test)))
    if args.validation_split:  # hold out the end of the training set instead of the test set
        split = int(len(x_train) * (1 - args.validation_split))
        (x_train, x_test), (y_train, y_test) = ((x_train[:split], x_train[split:]),
                                                (y_train[:split], y_train[split:]))

    steps = -(-len(x_train) // args.batch_size)
    model = _compiled_model(args, (32, 32, 3), len(class_names), x_train, steps)
    model.class_names = list(class_names)
    cbs, ckpt = _callbacks(args, model, steps)
    if args.label_smoothing:  # CategoricalCrossentropy: one-hot targets
        targets = tuple(fastcnn.utils.to_categorical(y, len(class_names))
                        for y in (y_train, y_test))
    else:
        targets = (y_train, y_test)
    train = {"x": x_train, "y": targets[0], "batch_size": args.batch_size}
    if args.augment and args.flip == "alternate":
        from fastcnn import data
        train = {"x": data.AlternatingFlip(x_train, targets[0], args.batch_size, args.seed)}
    t0 = time.perf_counter()
    try:
        history = model.fit(epochs=args.epochs, validation_data=(x_test, targets[1]),
                            callbacks=cbs, verbose=args.verbose, **train)
    except KeyboardInterrupt:
        if args.chief:
            model.save(ckpt)
        print("\ninterrupted: model at the last completed step saved to %s" % ckpt)
        return 130
    return _finish(args, model, history, time.perf_counter() - t0, x_test, y_test,
                   class_names, targets[1])


def _tta_probabilities(model, images):
    """Mean class probabilities over each image and its mirror, and over the four views
    shifted one pixel up-left and down-right (reflect padding), mirrored or not."""
    import numpy as np

    def mean_probs(views):
        total = 0
        for x in views:
            z = model.predict(x, batch_size=500, verbose=0)
            e = np.exp(z - z.max(1, keepdims=True))
            total = total + e / e.sum(1, keepdims=True)
        return total / len(views)

    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    shifts = [padded[:, :h, :w], padded[:, 2:h + 2, 2:w + 2]]
    return (mean_probs([images, images[:, :, ::-1]]),
            mean_probs(shifts + [x[:, :, ::-1] for x in shifts]))


def _sample_images(dataset, count):
    """Up to ``count`` images from the first batches of a dataset of (images, labels)."""
    import numpy as np
    out, n = [], 0
    for images, _ in dataset:
        out.append(np.asarray(images))
        n += len(out[-1])
        if n >= count:
            break
    return np.concatenate(out)[:count]


def _compiled_model(args, input_shape, num_classes, images, steps_per_epoch):
    from fastcnn import losses, optimizers
    if args.schedule in ("step", "triangle") and not 0 <= args.warmup < args.epochs:
        raise ValueError("--warmup must be in [0, --epochs), got %g" % args.warmup)
    if not 0 <= args.shift < min(input_shape[:2]):
        raise ValueError("--shift must be in [0, %d) pixels for %dx%d images, got %d"
                         % (min(input_shape[:2]), input_shape[0], input_shape[1], args.shift))
    if args.flip == "alternate" and callable(images):  # a folder: read lazily
        raise ValueError("--flip alternate needs the images in memory (CIFAR-10), not an "
                         "image folder")
    model = build_training_model(args.model, args.augment, input_shape, num_classes, images,
                                 args.shift, args.fill, flip=args.flip == "random")
    model.summary()
    lr = args.lr or {"adam": 1e-3 if args.model == "tutorial" else 2e-3, "adamw": 2e-3,
                     "sgd": 0.1}[args.optimizer]
    if args.schedule == "step":  # per-step: linear warm-up from lr/10, then cosine to 0
        warmup = max(1, round(args.warmup * steps_per_epoch))
        lr = optimizers.schedules.CosineDecay(
            lr / 10, max(1, args.epochs * steps_per_epoch - warmup), warmup_target=lr,
            warmup_steps=warmup)
    if args.optimizer == "sgd":
        opt = optimizers.SGD(learning_rate=lr, momentum=args.momentum, nesterov=True,
                             weight_decay=args.weight_decay)
    elif args.optimizer == "adamw":
        opt = optimizers.AdamW(learning_rate=lr, weight_decay=args.weight_decay or 0.004)
    else:
        opt = optimizers.Adam(learning_rate=lr, weight_decay=args.weight_decay)
    if args.beta_lr_scale != 1:
        if args.optimizer != "sgd":
            raise ValueError("--beta-lr-scale needs --optimizer sgd")
        opt.scale_learning_rate(args.beta_lr_scale, var_names=["beta"])
    if args.label_smoothing:  # Keras' sparse cross-entropy has none: one-hot targets then
        loss = losses.CategoricalCrossentropy(from_logits=True,
                                              label_smoothing=args.label_smoothing)
    else:
        loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"])
    return model


def _callbacks(args, model, steps_per_epoch):
    from fastcnn import callbacks
    ckpt = os.path.join(args.out, "checkpoint.keras")
    cbs = [callbacks.TerminateOnNaN(), callbacks.ModelCheckpoint(ckpt)]
    if args.model != "tutorial" and args.schedule == "epoch":
        cbs.append(callbacks.LearningRateScheduler(
            _cosine_schedule(float(model.optimizer.learning_rate), args.epochs)))
    if args.schedule == "triangle":  # a float rate set before each step: Keras reads it
        rate = _triangle_schedule(float(model.optimizer.learning_rate),
                                  args.epochs * steps_per_epoch,
                                  round(args.warmup * steps_per_epoch))
        optimizer = model.optimizer

        def set_rate(batch, logs=None):
            optimizer.learning_rate = rate(optimizer.iterations)
        cbs.append(callbacks.LambdaCallback(on_train_batch_begin=set_rate))
    if args.lookahead:  # before the checkpoint: it saves the averaged weights
        cbs.insert(1, callbacks.Lookahead())
    return cbs, ckpt


def _train_folder(args):
    """`fastcnn train --data DIR` on a folder of class sub-folders."""
    train_ds, val_ds, class_names, shape = _load_folder(args)
    model = _compiled_model(args, shape, len(class_names),
                            lambda: _sample_images(train_ds, 5000), len(train_ds))
    model.class_names = list(class_names)  # saved with the model for `fastcnn predict`
    cbs, ckpt = _callbacks(args, model, len(train_ds))
    t0 = time.perf_counter()
    try:
        history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs,
                            callbacks=cbs, verbose=args.verbose)
    except KeyboardInterrupt:
        if args.chief:
            model.save(ckpt)
        print("\ninterrupted: model at the last completed step saved to %s" % ckpt)
        return 130
    train_time = time.perf_counter() - t0
    val_loss, val_acc = model.evaluate(val_ds, verbose=0)
    model_path = os.path.join(args.out, "model.keras")
    if args.chief:
        model.save(model_path)
    print("validation accuracy: %.4f  validation loss: %.4f  training wall time: %.1f s"
          % (val_acc, val_loss, train_time))
    print("model saved to %s (classes: %s)" % (model_path, ", ".join(class_names)))
    try:
        from fastcnn import plot
        plot.plot_accuracy(history, path=os.path.join(args.out, "accuracy.png"))
        plot.plot_loss(history, path=os.path.join(args.out, "loss.png"))
    except ImportError as e:
        print("figures skipped: %s" % e)
    return 0


def _finish(args, model, history, train_time, x_test, y_test, class_names, test_targets):
    import numpy as np
    from fastcnn import plot
    test_loss, test_acc = model.evaluate(x_test, test_targets, verbose=0)
    model_path = os.path.join(args.out, "model.keras")
    if args.chief:
        model.save(model_path)
    print("test accuracy: %.4f  test loss: %.4f  training wall time: %.1f s"
          % (test_acc, test_loss, train_time))
    if args.tta:
        flip, shifted = _tta_probabilities(model, x_test)
        labels = y_test.reshape(-1)
        print("test accuracy with horizontal-flip test-time augmentation: %.4f"
              % float((flip.argmax(1) == labels).mean()))
        print("test accuracy with flip and 1-pixel-shift test-time augmentation (6 views): "
              "%.4f" % float(((flip + shifted).argmax(1) == labels).mean()))
    print("model saved to %s" % model_path)

    try:
        plot.plot_samples(x_test, y_test, class_names,
                          path=os.path.join(args.out, "samples.png"))
        plot.plot_accuracy(history, path=os.path.join(args.out, "accuracy.png"))
        plot.plot_loss(history, path=os.path.join(args.out, "loss.png"))
        pred = np.argmax(model.predict(x_test, batch_size=args.batch_size, verbose=0), axis=1)
        plot.plot_confusion_matrix(y_test.reshape(-1), pred, class_names,
                                   path=os.path.join(args.out, "confusion.png"))
        print("figures written to %s (samples.png, accuracy.png, loss.png, confusion.png)"
              % args.out)
    except ImportError as e:
        print("figures skipped: %s" % e)
    return 0


def _cmd_evaluate(args):
    import fastcnn
    if args.threads:
        fastcnn.set_num_threads(args.threads)
    model = fastcnn.models.load_model(args.model)
    _, (x_test, y_test), _ = _load_cifar(args)
    loss, acc = model.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=0)
    print("test accuracy: %.4f  test loss: %.4f  (%d images)" % (acc, loss, len(x_test)))
    return 0


def _read_image(path, size):
    import numpy as np
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("fastcnn predict needs Pillow: pip install 'fastcnn[image]'")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as e:
        raise SystemExit("fastcnn predict: cannot read image %s: %s" % (path, e))


def _cmd_predict(args):
    import numpy as np

    import fastcnn
    from fastcnn.datasets import cifar10
    model = fastcnn.models.load_model(args.model)
    h, w = model.input_shape[1:3]
    x = np.stack([_read_image(p, (h, w)) for p in args.images])
    first = model.layers[0]
    if type(first).__name__ != "Rescaling":  # a model trained on /255 inputs
        x = x.astype(np.float32) / 255.0
    logits = model.predict(x, verbose=0)
    probs = fastcnn.ops.softmax(logits)
    names = getattr(model, "class_names", None)  # saved by `fastcnn train`
    if not names or len(names) != probs.shape[1]:  # older files: CIFAR-10's when it fits
        names = list(cifar10.CLASS_NAMES) if probs.shape[1] == 10 else None
    for path, p in zip(args.images, probs):
        top = np.argsort(-p)[:3]
        desc = ", ".join("%s %.1f%%" % (names[i] if names else str(i), 100 * p[i]) for i in top)
        print("%s: %s" % (path, desc))
    return 0


def _find_side_by_side():
    """benchmarks/side_by_side.py of a source checkout (editable install or the cwd)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for base in (here, os.getcwd()):
        path = os.path.join(base, "benchmarks", "side_by_side.py")
        if os.path.isfile(path):
            return path
    return None


def _cmd_bench(args):
    import runpy
    path = _find_side_by_side()
    if path is None:
        raise FileNotFoundError("fastcnn bench runs benchmarks/side_by_side.py from a source "
                                "checkout; run it inside the fastcnn repository (or install "
                                "it with pip install -e .)")
    module = runpy.run_path(path, run_name="fastcnn_bench")
    module["main"](args.bench_args)
    return 0


def build_parser():
    """The ``argparse`` parser of the ``fastcnn`` command (its sub-commands and options).

    Returns:
        argparse.ArgumentParser.
    """
    parser = argparse.ArgumentParser(
        prog="fastcnn", description="Train and run Keras-style CNNs on fastcnn's C kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="print version, compiler, OpenMP, SIMD path and threads")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("train", help="train on CIFAR-10 (default: the Keras tutorial run)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="0: the default (all cores)")
    p.add_argument("--data", default=None,
                   help="folder or tarball holding CIFAR-10, or a folder of class "
                        "sub-folders of images (JPEG/PNG/BMP/GIF)")
    p.add_argument("--image-size", type=int, default=None,
                   help="image folder: the side images are resized to (default 64)")
    p.add_argument("--validation-split", type=float, default=0.0,
                   help="fraction held out for validation (image folder: default 0.2; "
                        "CIFAR-10: the end of the training set instead of the test set)")
    p.add_argument("--cache-mb", type=int, default=1024,
                   help="image folder: keep the decoded images in memory when they fit in "
                        "this many MB (else decode every epoch)")
    p.add_argument("--out", default="fastcnn-out", help="where the model and figures go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", choices=["tutorial", "strong", "resnet20", "speedrun"],
                   default="tutorial")
    p.add_argument("--augment", action="store_true",
                   help="random translation (--shift, --fill) and horizontal flip, in C")
    p.add_argument("--shift", type=int, default=4,
                   help="--augment: largest random translation in pixels (default 4)")
    p.add_argument("--flip", choices=["random", "alternate"], default="random",
                   help="--augment: mirror each image at random, or on alternate epochs "
                        "(data.AlternatingFlip; in-memory images only)")
    p.add_argument("--fill", choices=["constant", "reflect"], default="constant",
                   help="--augment: pixels shifted in are zeros or the reflected image")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: Adam 1e-3 for the tutorial, else 2e-3; "
                        "SGD 0.1)")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam",
                   help="sgd: Nesterov momentum (--momentum)")
    p.add_argument("--momentum", type=float, default=0.9, help="--optimizer sgd: momentum")
    p.add_argument("--beta-lr-scale", type=float, default=1.0,
                   help="--optimizer sgd: learning rate of batch-norm shifts (beta) times "
                        "this, their weight decay unchanged (airbench: 64)")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="decoupled weight decay (Keras' weight_decay; AdamW default 0.004)")
    p.add_argument("--schedule", choices=["epoch", "step", "triangle"], default="epoch",
                   help="learning rate for models other than the tutorial: epoch: per-epoch "
                        "cosine with a 1-epoch warm-up; step: Keras' CosineDecay per step, "
                        "warming up linearly from lr/10 over --warmup epochs, to 0; "
                        "triangle: per step, linear from lr/5 to lr over --warmup epochs, "
                        "then linear to 0.07 lr (airbench's)")
    p.add_argument("--warmup", type=float, default=1.0,
                   help="warm-up epochs of --schedule step")
    p.add_argument("--label-smoothing", type=float, default=0.0,
                   help="cross-entropy on one-hot targets smoothed by this much (Keras' "
                        "CategoricalCrossentropy(label_smoothing=...))")
    p.add_argument("--lookahead", action="store_true",
                   help="average the weights as airbench does (callbacks.Lookahead)")
    p.add_argument("--tta", action="store_true",
                   help="also report test accuracy averaging each image and its mirror")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of `mpiexec -n N fastcnn train "
                        "--distributed` (--batch-size is the global batch); needs "
                        "pip install \"fastcnn[mpi]\"")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a saved model on the CIFAR-10 test set")
    p.add_argument("model")
    p.add_argument("--data", default=None)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--limit", type=int, default=0)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("bench", help="side-by-side speed: fastcnn vs NumPy vs PyTorch "
                       "(benchmarks/side_by_side.py; --profile for per-layer times)",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("predict", help="top-3 classes of image files (PNG/JPEG, Pillow)")
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.set_defaults(func=_cmd_predict)
    return parser


def main(argv=None):
    """Run the ``fastcnn`` command line (``fastcnn ...`` and ``python -m fastcnn ...``).

    Args:
        argv: list of arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        int: the exit status (0 success, 1 a data/model error, 2 usage, 130 interrupted).
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after 'bench' belongs to side_by_side.py
        args = argparse.Namespace(command="bench", func=_cmd_bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:  # missing/corrupt data or model files
        print("fastcnn %s: error: %s" % (args.command, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
