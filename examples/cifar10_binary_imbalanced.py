"""
Imbalanced binary classification: AdamW, CosineDecay, class weights, AUC
========================================================================

Keras' "Imbalanced classification: credit card fraud detection" recipe on images: a small
CNN with a sigmoid output trained with ``BinaryCrossentropy``, ``AdamW`` on a ``CosineDecay``
schedule with warm-up, ``class_weight`` inversely proportional to the class counts of a 1:9
split (ships are the rare positives, airplanes the negatives), and ``Precision``, ``Recall``
and ``AUC`` reported on the balanced test images of the two classes. Only the imports differ
from Keras code (``from fastcnn import ...`` for ``from keras import ...``).

::

    python examples/cifar10_binary_imbalanced.py [--epochs 12] [--samples N]

``FASTCNN_EXAMPLES_QUICK=1`` (what the documentation build sets) trains on 2,000 images for
2 epochs unless ``--samples``/``--epochs`` are given.
"""
import argparse
import os

import numpy as np

from fastcnn import datasets, layers, losses, metrics, models, optimizers
import fastcnn

NEGATIVE, POSITIVE = 0, 8  # airplane, ship


def _options(argv=None):
    quick = os.environ.get("FASTCNN_EXAMPLES_QUICK", "0") not in ("", "0")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2 if quick else 12)
    p.add_argument("--samples", type=int, default=2000 if quick else None,
                   help="keep at most this many training images of the two classes")
    return p.parse_args(argv)


def two_class_split(x, y, positive_fraction, rng):
    """Images of the two classes, labels 1 = ship, with ships thinned to ``positive_fraction``."""
    y = y.reshape(-1)
    neg = np.flatnonzero(y == NEGATIVE)
    pos = np.flatnonzero(y == POSITIVE)
    if positive_fraction is not None:
        keep = int(round(len(neg) * positive_fraction / (1 - positive_fraction)))
        pos = rng.choice(pos, size=keep, replace=False)
    idx = np.sort(np.concatenate([neg, pos]))
    return x[idx], (y[idx] == POSITIVE).astype("float32").reshape(-1, 1)


def main(argv=None):
    opts = _options(argv)
    rng = np.random.default_rng(1337)
    (x_train, y_train), (x_test, y_test) = datasets.cifar10.load_data()
    x_train, y_train = two_class_split(x_train, y_train, 0.1, rng)  # 1 ship : 9 airplanes
    x_test, y_test = two_class_split(x_test, y_test, None, rng)
    if opts.samples:
        pick = np.sort(rng.choice(len(x_train), size=min(opts.samples, len(x_train)),
                                  replace=False))
        x_train, y_train = x_train[pick], y_train[pick]
    counts = np.bincount(y_train[:, 0].astype(int), minlength=2)
    print("Training images: %d airplanes, %d ships (%.1f%% positives)"
          % (counts[0], counts[1], 100.0 * counts[1] / counts.sum()))

    # As in Keras' fraud-detection example: weights inversely proportional to the counts.
    class_weight = {0: 1.0 / counts[0], 1: 1.0 / counts[1]}

    model = models.Sequential([
        layers.Input(shape=(32, 32, 3)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(32, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu", padding="same"),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.3),
        layers.Dense(1, activation="sigmoid"),
    ])
    batch_size = 64
    steps = opts.epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=steps, warmup_target=3e-3,
        warmup_steps=max(1, steps // 10))
    model.compile(optimizer=optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4),
                  loss=losses.BinaryCrossentropy(),
                  metrics=[metrics.Precision(name="precision"), metrics.Recall(name="recall"),
                           metrics.AUC(name="auc")])
    model.fit(x_train, y_train, batch_size=batch_size, epochs=opts.epochs,
              class_weight=class_weight, verbose=2)
    results = model.evaluate(x_test, y_test, batch_size=500, return_dict=True, verbose=0)
    print("Test (1,000 airplanes + 1,000 ships): "
          + ", ".join("%s %.4f" % kv for kv in results.items()))
    return results


if __name__ == "__main__":
    main()
