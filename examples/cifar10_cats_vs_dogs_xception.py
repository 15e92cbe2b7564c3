"""
Image classification from scratch: a small Xception on cats vs dogs
===================================================================

Keras' "Image classification from scratch" example
(keras.io/examples/vision/image_classification_from_scratch) written as a Keras user writes
it, only the imports changed: ``image_dataset_from_directory`` on a folder of JPEGs, data
augmentation (``RandomFlip``, ``RandomRotation``) in the model, ``Rescaling(1/255)``, an entry
``Conv2D(strides=2)`` + ``BatchNormalization`` + ReLU, three Xception-style blocks of
``[ReLU, SeparableConv2D, BatchNormalization] x 2`` + ``MaxPooling2D(3, strides=2)`` with a
strided 1x1 ``Conv2D`` projection of the residual added back (``layers.add``), a final
``SeparableConv2D`` + BN + ReLU, ``GlobalAveragePooling2D``, ``Dropout(0.25)`` and a sigmoid
``Dense(1)`` trained on ``binary_crossentropy`` (the example's earlier form; its current form
returns logits for ``BinaryCrossentropy(from_logits=True)``).

The example's cats-vs-dogs photos cannot be downloaded here, so its folder is CIFAR-10's two
classes cat and dog, from the shared JPEG copy (``../shared/data/cifar10/cifar10-jpeg.tar.gz``,
extracted once into a cache folder): the 10,000 training images (80% train, 20% validation,
split as Keras splits for seed 1337) and the 2,000 test images scored at the end (accuracy and
AUC).

What is scaled, so that a full run takes minutes on two CPU cores rather than hours on a GPU:
the images are CIFAR's 32x32 (the example resizes to 180x180), every width is a quarter of
the example's (entry 32 filters for 128, blocks 64/128/182 for 256/512/728, final 256 for
1024), 6 epochs for 25 at batch 64 for 128, and Adam's learning rate is 1e-3 (the earlier
form's). The ``ModelCheckpoint`` callback and ``plot_model`` are left out (no files are
written next to the script).

::

    python examples/cifar10_cats_vs_dogs_xception.py [--epochs 6] [--per-class N]

``FASTCNN_EXAMPLES_QUICK=1`` (what the documentation build sets) trains for 2 epochs on
1,000 images of each class unless ``--epochs``/``--per-class`` are given.
That is far too few steps for a fair score: batch normalization's moving statistics
(momentum 0.99, as in Keras) still hold much of their initial variance of 1 after 50 steps,
so validation and test predictions come out nearly constant (accuracy 0.5) until a few
hundred steps have run; the full run's 750 steps settle them.
"""
# ------------------------------------------------------------------ the changed imports
import argparse
import os
import pathlib
import tarfile
import time

import numpy as np

import fastcnn as keras
from fastcnn import layers

# sphinx-gallery runs this without __file__, from the examples folder
HERE = os.path.dirname(os.path.abspath(globals().get("__file__",
                                                     "cifar10_cats_vs_dogs_xception.py")))
QUICK = os.environ.get("FASTCNN_EXAMPLES_QUICK", "0") not in ("", "0")
parser = argparse.ArgumentParser(description="Image classification from scratch (cats vs dogs)")
parser.add_argument("--epochs", type=int, default=2 if QUICK else 6)
parser.add_argument("--per-class", type=int, default=1000 if QUICK else 0,
                    help="training images of each class (0: all 5,000)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--tarball", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                      "cifar10", "cifar10-jpeg.tar.gz"))
parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                    "fastcnn", "cifar10-jpeg"))
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

# %%
# The image folder
# ----------------
# ``cats-vs-dogs/{train,test}/{cat,dog}/`` holds links to the CIFAR-10 JPEGs of the two
# classes, made once from the extracted copy (as the example's ``PetImages/{Cat,Dog}``).


def cats_vs_dogs_folder(tarball, cache, per_class):
    """The ``train`` and ``test`` folders of cat and dog images (``per_class`` > 0: only the
    first ``per_class`` training images of each class)."""
    done = os.path.join(cache, ".extracted")
    if not os.path.exists(done):
        os.makedirs(cache, exist_ok=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(cache, filter="data")
        open(done, "w").close()
    root = os.path.join(cache, "cats-vs-dogs-%s" % (per_class or "all"))
    if not os.path.exists(os.path.join(root, ".done")):
        for split, limit in (("train", per_class), ("test", 0)):
            for cls in ("cat", "dog"):
                src = os.path.join(cache, split, cls)
                dst = os.path.join(root, split, cls)
                os.makedirs(dst, exist_ok=True)
                names = sorted(os.listdir(src))
                for name in names[:limit] if limit else names:
                    if not os.path.lexists(os.path.join(dst, name)):
                        os.symlink(os.path.join(src, name), os.path.join(dst, name))
        open(os.path.join(root, ".done"), "w").close()
    return pathlib.Path(root, "train"), pathlib.Path(root, "test")


train_dir, test_dir = cats_vs_dogs_folder(args.tarball, args.cache, args.per_class)

# %%
# Generate a Dataset
# ------------------

image_size = (32, 32)
batch_size = 64

train_ds, val_ds = keras.utils.image_dataset_from_directory(
    train_dir,
    validation_split=0.2,
    subset="both",
    seed=1337,
    image_size=image_size,
    batch_size=batch_size,
)
print("classes:", train_ds.class_names)
train_images = len(train_ds.file_paths)

# %%
# Data augmentation, as part of the model
# ---------------------------------------
# Random horizontal flips and small rotations, active only while training.

data_augmentation = keras.Sequential(
    [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
    ]
)

train_ds = train_ds.prefetch(buffer_size=32)
val_ds = val_ds.prefetch(buffer_size=32)

# %%
# Build a model
# -------------
# A small version of the Xception network, the example's ``make_model`` with a quarter of
# its widths.


def make_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    # Image augmentation block
    x = data_augmentation(inputs)

    # Entry block
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(32, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    previous_block_activation = x  # Set aside residual

    for size in [64, 128, 182]:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)

        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

        # Project residual
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(
            previous_block_activation
        )
        x = layers.add([x, residual])  # Add back residual
        previous_block_activation = x  # Set aside next residual

    x = layers.SeparableConv2D(256, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)

    x = layers.GlobalAveragePooling2D()(x)
    if num_classes == 2:
        activation = "sigmoid"
        units = 1
    else:
        activation = "softmax"
        units = num_classes

    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(units, activation=activation)(x)
    return keras.Model(inputs, outputs)


model = make_model(input_shape=image_size + (3,), num_classes=2)
model.summary()

# %%
# Train the model
# ---------------

epochs = args.epochs

model.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss="binary_crossentropy",
    metrics=["accuracy"],
)
start = time.perf_counter()
model.fit(
    train_ds, epochs=epochs, validation_data=val_ds, verbose=2,
)
seconds = time.perf_counter() - start

# %%
# Score the test images
# ---------------------
# The 2,000 test images of the two classes, never seen in training: accuracy and the area
# under the ROC curve of the sigmoid scores.

test_ds = keras.utils.image_dataset_from_directory(
    test_dir, image_size=image_size, batch_size=batch_size, shuffle=False)
labels = np.concatenate([y for _, y in test_ds]).astype("float32")
scores = model.predict(test_ds, verbose=0)[:, 0]
auc = keras.metrics.AUC()
auc.update_state(labels, scores)
accuracy = float(np.mean((scores > 0.5) == (labels > 0.5)))
print("cats vs dogs: test accuracy %.4f, AUC %.4f on %d images after %d epoch(s) on %d "
      "images, %.1f s of training (%d threads)"
      % (accuracy, float(auc.result()), len(labels), epochs, train_images,
         seconds, keras.get_num_threads()))

# %%
# Run inference on new data
# -------------------------

img = keras.utils.load_img(sorted(test_dir.glob("cat/*.jpg"))[0], target_size=image_size)
img_array = keras.utils.img_to_array(img)
img_array = np.expand_dims(img_array, 0)  # Create batch axis

predictions = model.predict(img_array, verbose=0)
score = float(predictions[0][0])
print(f"This image is {100 * (1 - score):.2f}% cat and {100 * score:.2f}% dog.")
