"""
Fashion-MNIST with a small CNN
==============================

The Keras "basic classification" data, classified by a small convolutional network on
fastcnn. The data comes from the official IDX files: ``apt-get install
dataset-fashion-mnist`` puts them in ``/usr/share/datasets/fashion-mnist``, which
``fastcnn.datasets.fashion_mnist`` searches.

::

    python examples/fashion_mnist.py [--epochs 5] [--samples N] [--seed 0]

The images stay uint8 in memory: the model's ``Rescaling`` layer converts each batch in C.
``FASTCNN_EXAMPLES_QUICK=1`` (what the documentation build sets) trains on 6,000 images for
2 epochs unless ``--samples``/``--epochs`` are given.
"""
import argparse
import os
import sys

import numpy as np

import fastcnn
from fastcnn import datasets, layers, losses, models

QUICK = os.environ.get("FASTCNN_EXAMPLES_QUICK", "0") not in ("", "0")
p = argparse.ArgumentParser(description="Fashion-MNIST with a small CNN on fastcnn")
p.add_argument("--epochs", type=int, default=2 if QUICK else 5)
p.add_argument("--samples", type=int, default=6000 if QUICK else 0,
               help="use only the first N training images")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args(sys.argv[1:])

# %%
# Load the data
# -------------
# uint8 arrays of shape (N, 28, 28); a channel axis makes them NHWC.

fastcnn.utils.set_random_seed(args.seed)
(x_train, y_train), (x_test, y_test) = datasets.fashion_mnist.load_data()
if args.samples:
    x_train, y_train = x_train[:args.samples], y_train[:args.samples]
x_train, x_test = x_train[..., None], x_test[..., None]  # add the channel axis (NHWC)
class_names = datasets.fashion_mnist.CLASS_NAMES
print("training images:", x_train.shape, x_train.dtype, " test images:", x_test.shape)

# %%
# The model
# ---------
# ``Rescaling(1/255)`` first, so the uint8 images are fed as they are.

model = models.Sequential([
    layers.Input(shape=(28, 28, 1)),
    layers.Rescaling(1 / 255.0),
    layers.Conv2D(32, (3, 3), activation="relu"),
    layers.MaxPooling2D((2, 2)),
    layers.Conv2D(64, (3, 3), activation="relu"),
    layers.MaxPooling2D((2, 2)),
    layers.Flatten(),
    layers.Dropout(0.3),
    layers.Dense(128, activation="relu"),
    layers.Dense(10),
])
model.summary()

# %%
# Train and evaluate
# ------------------

model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=args.epochs, validation_data=(x_test, y_test),
                    verbose=2)
test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
print("Fashion-MNIST test accuracy: %.4f" % test_acc)

# %%
# Look at some predictions
# ------------------------
# The first test images with the predicted class (green when right, red when wrong).

try:
    import matplotlib
    if not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
    print("(matplotlib is not installed: no figure)")
if plt is not None:
    pred = np.argmax(model.predict(x_test[:24], verbose=0), axis=1)
    fig, axes = plt.subplots(3, 8, figsize=(12, 5))
    for ax, img, p_, t in zip(axes.ravel(), x_test[:24, ..., 0], pred, y_test[:24]):
        ax.imshow(img, cmap="binary")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(class_names[p_], color="green" if p_ == t else "red", fontsize=8)
    fig.suptitle("predictions on test images (test accuracy %.3f)" % test_acc)
    if plt.get_backend().lower() != "agg":
        plt.show()
