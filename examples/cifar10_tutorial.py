"""
CIFAR-10: TensorFlow's CNN tutorial on fastcnn
==============================================

TensorFlow's "Convolutional Neural Network (CNN)" tutorial
(https://www.tensorflow.org/tutorials/images/cnn), line by line, on fastcnn: only the imports
differ (``from tensorflow.keras import datasets, layers, models`` became
``from fastcnn import ...``).

Shrink it (for tests or a quick look) with environment variables or arguments::

    FASTCNN_TUTORIAL_SAMPLES=500 FASTCNN_TUTORIAL_EPOCHS=1 python examples/cifar10_tutorial.py
    python examples/cifar10_tutorial.py --samples 500 --epochs 1 --plots plots/

``--samples N`` keeps the first N training and the first N // 5 test images; ``--plots DIR``
(or ``FASTCNN_TUTORIAL_PLOTS``) saves the two figures as PNG files instead of showing them.
``FASTCNN_EXAMPLES_QUICK=1`` (what the documentation build sets) means 5,000 images and 2
epochs unless those are given. Plots need matplotlib; without it they are skipped.
"""
import argparse
import os
import sys

import fastcnn
from fastcnn import datasets, layers, models

QUICK = os.environ.get("FASTCNN_EXAMPLES_QUICK", "0") not in ("", "0")


def _options(argv):
    p = argparse.ArgumentParser(description="TensorFlow's CNN tutorial on fastcnn")
    p.add_argument("--samples", type=int,
                   default=int(os.environ.get("FASTCNN_TUTORIAL_SAMPLES", "0"))
                   or (5000 if QUICK else None),
                   help="use only the first N training images (and N // 5 test images)")
    p.add_argument("--epochs", type=int,
                   default=int(os.environ.get("FASTCNN_TUTORIAL_EPOCHS", "2" if QUICK else "10")))
    p.add_argument("--plots", default=os.environ.get("FASTCNN_TUTORIAL_PLOTS") or None,
                   help="save the figures into this folder instead of showing them")
    return p.parse_args(argv)


def _pyplot(save_dir):
    try:
        import matplotlib
    except ImportError:
        print("(matplotlib is not installed: skipping the plots)")
        return None
    if save_dir is not None or not (os.environ.get("DISPLAY") or sys.platform == "darwin"
                                    or os.name == "nt"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _show(plt, save_dir, name):
    """Save the figure (--plots), show it on a display, or leave it open (the docs take it)."""
    if save_dir is not None:
        os.makedirs(save_dir, exist_ok=True)
        plt.savefig(os.path.join(save_dir, name))
        plt.close()
    elif plt.get_backend().lower() != "agg":
        plt.show()


opts = _options(sys.argv[1:])
plt = _pyplot(opts.plots)

# %%
# Download and prepare the CIFAR10 dataset
# ----------------------------------------
# The CIFAR10 dataset contains 60,000 color images in 10 classes, with 6,000 images in each
# class. fastcnn reads the official files from ``~/.fastcnn/datasets`` (or downloads them);
# the arrays are uint8, NHWC, exactly as Keras returns them.

(train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data()
if opts.samples:
    train_images, train_labels = train_images[:opts.samples], train_labels[:opts.samples]
    n_test = max(1, opts.samples // 5)
    test_images, test_labels = test_images[:n_test], test_labels[:n_test]

# Normalize pixel values to be between 0 and 1
train_images, test_images = train_images / 255.0, test_images / 255.0

# %%
# Verify the data
# ---------------
# Plot the first 25 images from the training set and display the class name below each.

class_names = ['airplane', 'automobile', 'bird', 'cat', 'deer',
               'dog', 'frog', 'horse', 'ship', 'truck']
if plt is not None:
    plt.figure(figsize=(10, 10))
    for i in range(min(25, len(train_images))):
        plt.subplot(5, 5, i + 1)
        plt.xticks([])
        plt.yticks([])
        plt.grid(False)
        plt.imshow(train_images[i])
        # The CIFAR labels happen to be arrays,
        # which is why you need the extra index
        plt.xlabel(class_names[train_labels[i][0]])
    _show(plt, opts.plots, "samples.png")

# %%
# Create the convolutional base
# -----------------------------
# A stack of Conv2D and MaxPooling2D layers on NHWC input of shape (32, 32, 3).

model = models.Sequential()
model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(64, (3, 3), activation='relu'))
model.summary()

# %%
# Add Dense layers on top
# -----------------------

model.add(layers.Flatten())
model.add(layers.Dense(64, activation='relu'))
model.add(layers.Dense(10))
model.summary()

# %%
# Compile and train the model
# ---------------------------

model.compile(optimizer='adam',
              loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

history = model.fit(train_images, train_labels, epochs=opts.epochs,
                    validation_data=(test_images, test_labels))

# %%
# Evaluate the model
# ------------------

if plt is not None:
    plt.figure()
    plt.plot(history.history['accuracy'], label='accuracy')
    plt.plot(history.history['val_accuracy'], label='val_accuracy')
    plt.xlabel('Epoch')
    plt.ylabel('Accuracy')
    plt.ylim([0.5 if min(history.history['val_accuracy']) >= 0.5 else 0, 1])
    plt.legend(loc='lower right')
    _show(plt, opts.plots, "accuracy.png")

test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=2)
print(test_acc)
