"""
Convolutional autoencoder on Fashion-MNIST
==========================================

Keras' "Convolutional autoencoder for image denoising" model, written as a Keras user
writes it, on Fashion-MNIST: an encoder of two ``Conv2D`` + ``MaxPooling2D`` blocks
(28x28 -> 7x7x32), a decoder of two stride-2 ``Conv2DTranspose`` layers back to 28x28 and
a sigmoid ``Conv2D`` giving one channel, trained with Adam on the binary cross-entropy
between the reconstruction and the image itself. The data comes from the official IDX
files: ``apt-get install dataset-fashion-mnist`` puts them in
``/usr/share/datasets/fashion-mnist``, which ``fastcnn.datasets.fashion_mnist`` searches.

::

    python examples/fashion_mnist_autoencoder.py [--epochs 10] [--samples N] [--seed 0]
        [--figure reconstructions.png]

``FASTCNN_EXAMPLES_QUICK=1`` (what the documentation build sets) trains on 3,000 images for
one epoch and tests on 1,000 unless ``--samples``/``--epochs`` are given.
"""
import argparse
import os
import sys
import time

import numpy as np

import fastcnn
from fastcnn import datasets, layers

QUICK = os.environ.get("FASTCNN_EXAMPLES_QUICK", "0") not in ("", "0")
p = argparse.ArgumentParser(description="Convolutional autoencoder on Fashion-MNIST")
p.add_argument("--epochs", type=int, default=1 if QUICK else 10)
p.add_argument("--samples", type=int, default=3000 if QUICK else 0,
               help="use only the first N training images (and N/3 test images)")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--figure", default="autoencoder_reconstructions.png",
               help="where to save the originals-vs-reconstructions figure (PNG)")
args = p.parse_args(sys.argv[1:])

# %%
# Load the data
# -------------
# As the Keras example: float32 images in [0, 1] with a channel axis, (N, 28, 28, 1). The
# labels are not used: the image is both the input and the target.

fastcnn.utils.set_random_seed(args.seed)
(x_train, _), (x_test, _) = datasets.fashion_mnist.load_data()
if args.samples:
    x_train, x_test = x_train[:args.samples], x_test[:max(args.samples // 3, 1)]
x_train = (x_train.astype("float32") / 255.0)[..., None]
x_test = (x_test.astype("float32") / 255.0)[..., None]
print("training images:", x_train.shape, " test images:", x_test.shape)

# %%
# The autoencoder
# ---------------
# The encoder halves the resolution twice; each ``Conv2DTranspose(strides=2,
# padding="same")`` doubles it back.

input = layers.Input(shape=(28, 28, 1))

# Encoder
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(input)
x = layers.MaxPooling2D((2, 2), padding="same")(x)
x = layers.Conv2D(32, (3, 3), activation="relu", padding="same")(x)
x = layers.MaxPooling2D((2, 2), padding="same")(x)

# Decoder
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2DTranspose(32, (3, 3), strides=2, activation="relu", padding="same")(x)
x = layers.Conv2D(1, (3, 3), activation="sigmoid", padding="same")(x)

autoencoder = fastcnn.Model(input, x)
autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
autoencoder.summary()

# %%
# Train
# -----

start = time.perf_counter()
autoencoder.fit(x=x_train, y=x_train, epochs=args.epochs, batch_size=128, shuffle=True,
                validation_data=(x_test, x_test), verbose=2)
seconds = time.perf_counter() - start
test_loss = autoencoder.evaluate(x_test, x_test, verbose=0)
print("Fashion-MNIST autoencoder: test loss (binary cross-entropy) %.4f after %d epoch(s) "
      "on %d images, %.1f s of training (%d threads)"
      % (test_loss, args.epochs, len(x_train), seconds, fastcnn.get_num_threads()))

# %%
# Originals and reconstructions
# -----------------------------
# Top row: test images; bottom row: what the autoencoder makes of them.

predictions = autoencoder.predict(x_test[:10], verbose=0)
try:
    import matplotlib
    if not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
    print("(matplotlib is not installed: no figure)")
if plt is not None:
    fig, axes = plt.subplots(2, 10, figsize=(15, 3.4))
    for i in range(10):
        for row, images in enumerate((x_test, predictions)):
            ax = axes[row, i]
            ax.imshow(images[i, ..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("original")
    axes[1, 0].set_ylabel("reconstructed")
    fig.suptitle("Fashion-MNIST autoencoder (test loss %.4f)" % test_loss)
    fig.savefig(args.figure, dpi=80)
    print("figure saved to", args.figure)
    if plt.get_backend().lower() != "agg":
        plt.show()
