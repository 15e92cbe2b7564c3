"""One rank of the data-parallel tests (tests/test_distribution.py runs it under mpiexec).

    mpiexec -n N python tests/mpi_worker.py TASK OUT_DIR [options]

Every rank writes its results to OUT_DIR/<task>-rank<r>.npz (never to the data it reads).
"""
import argparse
import os
import signal
import sys

import numpy as np

import fastcnn
from fastcnn import callbacks, distribution, layers, losses, models, zoo


def small_model(bn=True, synchronized=False):
    """A conv net with every kind of step the trainer syncs: fused conv+ReLU+pool, BN, dense."""
    body = [layers.Input((12, 12, 3)), layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D()]
    if bn:
        body.append(layers.BatchNormalization(synchronized=synchronized) if synchronized
                    else layers.BatchNormalization())
    body += [layers.Conv2D(6, 3, activation="relu"), layers.Flatten(), layers.Dense(10)]
    return models.Sequential(body)


def synthetic(n, seed=0, size=12):
    """Images whose label is learnable: the brightest of 10 fixed patterns wins."""
    r = np.random.default_rng(seed)
    x = r.random((n, size, size, 3), dtype=np.float32)
    patterns = np.random.default_rng(99).random((10, size * size * 3)).astype(np.float32)
    y = np.argmax(x.reshape(n, -1) @ patterns.T, axis=1)
    return x, y


def compile_(model, lr=1e-3):
    model.compile(optimizer=fastcnn.optimizers.Adam(lr),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def save(out, task, **arrays):
    path = os.path.join(out, "%s-rank%d.npz" % (task, distribution.rank()))
    np.savez(path, **arrays)


def task_train(opts):
    """Identical weights, history, evaluate and predict on every rank."""
    fastcnn.utils.set_random_seed(distribution.rank())  # different init: the broadcast fixes it
    with distribution.DataParallel().scope():
        model = compile_(small_model(bn=True, synchronized=opts.sync_bn))
        x, y = synthetic(300)
        hist = model.fit(x, y, batch_size=64, epochs=2, verbose=0,
                         validation_data=synthetic(45, seed=1))
        on_batch = model.train_on_batch(x[:9], y[:9])
        ev = model.evaluate(x[:101], y[:101], batch_size=32, verbose=0)
        pred = model.predict(x[:37], batch_size=8, verbose=0)
    save(opts.out, "train", loss=hist.history["loss"], acc=hist.history["accuracy"],
         val_loss=hist.history["val_loss"], evaluate=np.array(ev), predict=pred,
         on_batch=np.array(on_batch), **{"w%d" % i: w for i, w in enumerate(model.get_weights())})


def task_dataset(opts):
    """fit / evaluate / predict on a fastcnn.data.Dataset of (x, y, sample_weight) batches
    and, from the same start, on the arrays: both on this rank."""
    distribution.set_distribution(distribution.DataParallel())
    x, y = synthetic(300)
    sw = np.linspace(0.25, 2.0, 300).astype(np.float32)
    results = {}
    for source in ("arrays", "dataset"):
        fastcnn.utils.set_random_seed(0)
        model = compile_(small_model(bn=True))
        if source == "arrays":
            hist = model.fit(x, y, sample_weight=sw, batch_size=64, epochs=2, shuffle=False,
                             verbose=0, validation_data=(x[:45], y[:45]))
            ev = model.evaluate(x[:101], y[:101], batch_size=32, verbose=0)
            pred = model.predict(x[:37], batch_size=8, verbose=0)
        else:
            ds = fastcnn.data.Dataset.from_tensor_slices((x, y, sw)).batch(64)
            val = fastcnn.data.Dataset.from_tensor_slices((x[:45], y[:45])).batch(64)
            hist = model.fit(ds, epochs=2, verbose=0, validation_data=val)
            ev = model.evaluate(fastcnn.data.Dataset.from_tensor_slices(
                (x[:101], y[:101])).batch(32), verbose=0)
            pred = model.predict(fastcnn.data.Dataset.from_tensor_slices(x[:37]).batch(8),
                                 verbose=0)
        results.update({"%s_loss" % source: hist.history["loss"],
                        "%s_val_loss" % source: hist.history["val_loss"],
                        "%s_evaluate" % source: np.array(ev), "%s_predict" % source: pred})
        results.update({"%s_w%d" % (source, i): w for i, w in enumerate(model.get_weights())})
    save(opts.out, "dataset", **results)


def task_metrics(opts):
    """evaluate with Precision / Recall / AUC on a sigmoid model: on N ranks the metric
    states are summed, so the results equal one process's (not averages of shards)."""
    fastcnn.utils.set_random_seed(0)
    if opts.distributed:
        distribution.set_distribution(distribution.DataParallel())
    model = models.Sequential([layers.Input((12, 12, 3)), layers.Conv2D(4, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=[fastcnn.metrics.Precision(name="p"), fastcnn.metrics.Recall(name="r"),
                           fastcnn.metrics.AUC(name="auc")])
    x, y = synthetic(203)
    y = (y < 4).astype("float32")
    logs = model.evaluate(x, y, batch_size=50, verbose=0, return_dict=True)
    save(opts.out, "metrics%d" % distribution.world_size(),
         **{k: np.float64(v) for k, v in logs.items()})


def task_bn(opts):
    """A BatchNormalization model (synchronized or per-rank) on --samples images."""
    fastcnn.utils.set_random_seed(0)
    if opts.distributed:
        distribution.set_distribution(distribution.DataParallel())
    model = compile_(small_model(bn=True, synchronized=opts.sync_bn), lr=3e-3)
    x, y = synthetic(opts.samples)
    hist = model.fit(x, y, batch_size=64, epochs=opts.epochs, verbose=0)
    save(opts.out, "bn%s%d" % ("sync" if opts.sync_bn else "", distribution.world_size()),
         loss=hist.history["loss"],
         **{"w%d" % i: w for i, w in enumerate(model.get_weights())})


def task_stop(opts):
    """EarlyStopping on the global loss, and a callback that stops rank 0 only: every rank
    stops after the same epoch either way."""
    distribution.set_distribution(distribution.DataParallel())
    fastcnn.utils.set_random_seed(0)
    model = compile_(small_model())
    x, y = synthetic(128)
    early = callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    h1 = model.fit(x, y, batch_size=32, epochs=6, verbose=0, callbacks=[early])

    class StopRank0(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2 and distribution.rank() == 0:
                self.model.stop_training = True
    h2 = model.fit(x, y, batch_size=32, epochs=6, verbose=0, callbacks=[StopRank0()])
    save(opts.out, "stop", early=np.array(len(h1.history["loss"])),
         own=np.array(len(h2.history["loss"])))


def task_tutorial(opts):
    """The tutorial model on data from a .npz (global batch 64); losses and test accuracy."""
    data = np.load(opts.data)
    fastcnn.utils.set_random_seed(0)
    if opts.distributed:
        distribution.set_distribution(distribution.DataParallel())
    model = zoo.tutorial_model(input_shape=data["x"].shape[1:])
    compile_(model)
    hist = model.fit(data["x"], data["y"], batch_size=64, epochs=opts.epochs, verbose=0)
    _, acc = model.evaluate(data["xt"], data["yt"], batch_size=500, verbose=0)
    save(opts.out, "tutorial%d" % distribution.world_size(), loss=hist.history["loss"],
         test_acc=np.array(acc))


def task_fail(opts):
    """Rank 1 dies (SIGKILL) or raises in the middle of fit."""
    rank = distribution.rank()

    class Fail(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3 and rank == 1:
                if opts.how == "raise":
                    raise RuntimeError("rank one fails on purpose")
                os.kill(os.getpid(), signal.SIGKILL)

    distribution.set_distribution(distribution.DataParallel())
    model = compile_(small_model())
    x, y = synthetic(2000)
    model.fit(x, y, batch_size=32, epochs=100, verbose=0, callbacks=[Fail()])


def task_checkpoint(opts):
    """Train (or resume from rank 0's checkpoint) with ModelCheckpoint + CSVLogger."""
    distribution.set_distribution(distribution.DataParallel())
    ckpt = os.path.join(opts.out, "ckpt.keras")
    if opts.resume:
        model = fastcnn.saving.load_model(ckpt)
        initial = 2
    else:
        fastcnn.utils.set_random_seed(0)
        model = compile_(small_model())
        initial = 0
    x, y = synthetic(256)
    cbs = [callbacks.ModelCheckpoint(ckpt),
           callbacks.CSVLogger(os.path.join(opts.out, "log-%d.csv" % initial))]
    hist = model.fit(x, y, batch_size=64, epochs=opts.epochs, initial_epoch=initial,
                     verbose=0, callbacks=cbs)
    save(opts.out, "ckpt%d-%d" % (initial, distribution.world_size()),
         loss=hist.history["loss"],
         **{"w%d" % i: w for i, w in enumerate(model.get_weights())})


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("task")
    p.add_argument("out")
    p.add_argument("--data")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--how", default="kill")
    p.add_argument("--distributed", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--samples", type=int, default=256)
    opts = p.parse_args(argv)
    globals()["task_" + opts.task](opts)


if __name__ == "__main__":
    sys.exit(main())
