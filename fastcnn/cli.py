"""The ``fastcnn`` command line (also ``python -m fastcnn``).

    fastcnn train [--epochs 10] [--batch-size 32] [--model tutorial|strong|resnet20] [--augment] ...
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


def build_training_model(name, augment, input_shape=(32, 32, 3), num_classes=10):
    """The zoo model, with a Rescaling(1/255) input layer (the data stays uint8 in memory)
    and, with ``augment``, random flips and +-4-pixel translations (crop of the zero-padded
    image), applied in C during training only."""
    from fastcnn import layers, models, zoo
    core = zoo.MODELS[name](input_shape=input_shape, num_classes=num_classes)
    front = [layers.Input(shape=input_shape), layers.Rescaling(1.0 / 255)]
    if augment:
        front += [layers.RandomFlip("horizontal"),
                  layers.RandomTranslation(4 / input_shape[0], 4 / input_shape[1],
                                           fill_mode="constant", interpolation="nearest")]
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


def _cmd_train(args):
    import numpy as np

    import fastcnn
    from fastcnn import callbacks, losses, optimizers, plot

    if args.threads:
        fastcnn.set_num_threads(args.threads)
    fastcnn.utils.set_random_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    fastcnn.show_config()

    (x_train, y_train), (x_test, y_test), class_names = _load_cifar(args)
    print("CIFAR-10: %d training and %d test images" % (len(x_train), len(x_test)))

    model = build_training_model(args.model, args.augment)
    model.summary()
    lr = args.lr or {"adam": 1e-3 if args.model == "tutorial" else 2e-3, "adamw": 2e-3,
                     "sgd": 0.1}[args.optimizer]
    if args.optimizer == "sgd":
        opt = optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True,
                             weight_decay=args.weight_decay)
    elif args.optimizer == "adamw":
        opt = optimizers.AdamW(learning_rate=lr, weight_decay=args.weight_decay or 0.004)
    else:
        opt = optimizers.Adam(learning_rate=lr, weight_decay=args.weight_decay)
    model.compile(optimizer=opt, loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    ckpt = os.path.join(args.out, "checkpoint.keras")
    cbs = [callbacks.TerminateOnNaN(), callbacks.ModelCheckpoint(ckpt)]
    if args.model != "tutorial":
        cbs.append(callbacks.LearningRateScheduler(
            _cosine_schedule(float(opt.learning_rate), args.epochs)))
    t0 = time.perf_counter()
    try:
        history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                            validation_data=(x_test, y_test), callbacks=cbs,
                            verbose=args.verbose)
    except KeyboardInterrupt:
        model.save(ckpt)
        print("\ninterrupted: model at the last completed step saved to %s" % ckpt)
        return 130
    train_time = time.perf_counter() - t0
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    model_path = os.path.join(args.out, "model.keras")
    model.save(model_path)
    print("test accuracy: %.4f  test loss: %.4f  training wall time: %.1f s"
          % (test_acc, test_loss, train_time))
    if args.tta:  # average the class probabilities of each image and its mirror image
        logits = [model.predict(x, batch_size=500, verbose=0)
                  for x in (x_test, x_test[:, :, ::-1])]
        probs = sum(np.exp(z - z.max(1, keepdims=True))
                    / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True) for z in logits)
        print("test accuracy with horizontal-flip test-time augmentation: %.4f"
              % float((probs.argmax(1) == y_test.reshape(-1)).mean()))
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
    p.add_argument("--data", default=None, help="folder or tarball holding CIFAR-10")
    p.add_argument("--out", default="fastcnn-out", help="where the model and figures go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", choices=["tutorial", "strong", "resnet20"], default="tutorial")
    p.add_argument("--augment", action="store_true",
                   help="random crop (4-pixel zero padding) and horizontal flip, in C")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: Adam 1e-3 for the tutorial, else 2e-3; "
                        "SGD 0.1)")
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam",
                   help="sgd: momentum 0.9, Nesterov")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="decoupled weight decay (Keras' weight_decay; AdamW default 0.004)")
    p.add_argument("--tta", action="store_true",
                   help="also report test accuracy averaging each image and its mirror")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
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
