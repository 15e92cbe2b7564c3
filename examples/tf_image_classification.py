"""
Image classification from a folder of JPEGs
===========================================

TensorFlow's "Image classification" tutorial (tensorflow.org/tutorials/images/classification)
on fastcnn: the tutorial's code with only its imports changed, and ``.numpy()`` /
``tf.nn.softmax`` / ``tf.expand_dims`` swapped for NumPy.

The tutorial downloads flower photos; there is no network here, so the image folder is made
from the shared CIFAR-10 JPEG copy (``../shared/data/cifar10/cifar10-jpeg.tar.gz``: its
``train/<class>/*.jpg`` become ``data_dir``; a ``test/`` image plays the sunflower). It is
extracted once into a cache folder. The TensorFlow Lite part at the tutorial's end is left out.

::

    python examples/tf_image_classification.py                      # as the tutorial: 180x180
    python examples/tf_image_classification.py --epochs 1 --image-size 32 --per-class 200

Knobs (the tutorial's values by default): --epochs (both fits; the tutorial runs 10 and
15), --image-size (180), --per-class (all 5,000 images of each class), --tarball, --cache.
``FASTCNN_EXAMPLES_QUICK=1`` (what the documentation build sets) runs 1 epoch on 100 images
per class at 64x64 unless the knobs are given.
"""
# ------------------------------------------------------------------ the changed imports
import argparse
import os
import pathlib
import tarfile

import matplotlib
matplotlib.use("Agg")  # figures are drawn without a display; plt.show() does nothing

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL  # noqa: E402
import PIL.Image  # noqa: E402

import fastcnn as keras  # noqa: E402
from fastcnn import layers  # noqa: E402
from fastcnn.models import Sequential  # noqa: E402
import fastcnn  # noqa: E402

tf = argparse.Namespace(keras=keras, data=fastcnn.data)  # tf.keras.* / tf.data.* names

# sphinx-gallery runs this without __file__, from the examples folder
HERE = os.path.dirname(os.path.abspath(globals().get("__file__", "tf_image_classification.py")))
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
QUICK = os.environ.get("FASTCNN_EXAMPLES_QUICK", "0") not in ("", "0")
parser.add_argument("--epochs", type=int, default=1 if QUICK else None,
                    help="epochs of both fits (default: the tutorial's 10 and 15)")
parser.add_argument("--image-size", type=int, default=64 if QUICK else 180)
parser.add_argument("--per-class", type=int, default=100 if QUICK else 0,
                    help="images per class (0: all)")
parser.add_argument("--tarball", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                      "cifar10", "cifar10-jpeg.tar.gz"))
parser.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache",
                                                    "fastcnn", "cifar10-jpeg"))
args = parser.parse_args()


def image_folder(tarball, cache, per_class):
    """``cache/train`` (and ``cache/test``) extracted once; with ``per_class`` a folder of
    links to the first images of each class."""
    done = os.path.join(cache, ".extracted")
    if not os.path.exists(done):
        os.makedirs(cache, exist_ok=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(cache, filter="data")
        open(done, "w").close()
    train = os.path.join(cache, "train")
    if not per_class:
        return pathlib.Path(train)
    small = os.path.join(cache, "train-%d" % per_class)
    if not os.path.exists(os.path.join(small, ".done")):
        for cls in sorted(os.listdir(train)):
            os.makedirs(os.path.join(small, cls), exist_ok=True)
            for name in sorted(os.listdir(os.path.join(train, cls)))[:per_class]:
                link = os.path.join(small, cls, name)
                if not os.path.lexists(link):
                    os.symlink(os.path.join(train, cls, name), link)
        open(os.path.join(small, ".done"), "w").close()
    return pathlib.Path(small)


data_dir = image_folder(args.tarball, args.cache, args.per_class)
# ------------------------------------------------------------------ the tutorial

image_count = len(list(data_dir.glob('*/*.jpg')))
print(image_count)

cats = list(data_dir.glob('cat/*'))
PIL.Image.open(str(cats[0]))

batch_size = 32
img_height = args.image_size
img_width = args.image_size

train_ds = tf.keras.utils.image_dataset_from_directory(
  data_dir,
  validation_split=0.2,
  subset="training",
  seed=123,
  image_size=(img_height, img_width),
  batch_size=batch_size)

val_ds = tf.keras.utils.image_dataset_from_directory(
  data_dir,
  validation_split=0.2,
  subset="validation",
  seed=123,
  image_size=(img_height, img_width),
  batch_size=batch_size)

class_names = train_ds.class_names
print(class_names)

plt.figure(figsize=(10, 10))
for images, labels in train_ds.take(1):
  for i in range(9):
    ax = plt.subplot(3, 3, i + 1)
    plt.imshow(images[i].astype("uint8"))
    plt.title(class_names[labels[i]])
    plt.axis("off")

for image_batch, labels_batch in train_ds:
  print(image_batch.shape)
  print(labels_batch.shape)
  break

AUTOTUNE = tf.data.AUTOTUNE

train_ds = train_ds.cache().shuffle(1000).prefetch(buffer_size=AUTOTUNE)
val_ds = val_ds.cache().prefetch(buffer_size=AUTOTUNE)

normalization_layer = layers.Rescaling(1./255)

normalized_ds = train_ds.map(lambda x, y: (normalization_layer(x), y))
image_batch, labels_batch = next(iter(normalized_ds))
first_image = image_batch[0]
# Notice the pixel values are now in `[0,1]`.
print(np.min(first_image), np.max(first_image))

num_classes = len(class_names)

model = Sequential([
  layers.Rescaling(1./255, input_shape=(img_height, img_width, 3)),
  layers.Conv2D(16, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(32, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(64, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Flatten(),
  layers.Dense(128, activation='relu'),
  layers.Dense(num_classes)
])

model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

model.summary()

epochs=args.epochs or 10
history = model.fit(
  train_ds,
  validation_data=val_ds,
  epochs=epochs
)

acc = history.history['accuracy']
val_acc = history.history['val_accuracy']

loss = history.history['loss']
val_loss = history.history['val_loss']

epochs_range = range(epochs)

plt.figure(figsize=(8, 8))
plt.subplot(1, 2, 1)
plt.plot(epochs_range, acc, label='Training Accuracy')
plt.plot(epochs_range, val_acc, label='Validation Accuracy')
plt.legend(loc='lower right')
plt.title('Training and Validation Accuracy')

plt.subplot(1, 2, 2)
plt.plot(epochs_range, loss, label='Training Loss')
plt.plot(epochs_range, val_loss, label='Validation Loss')
plt.legend(loc='upper right')
plt.title('Training and Validation Loss')
plt.show()

data_augmentation = keras.Sequential(
  [
    layers.RandomFlip("horizontal",
                      input_shape=(img_height,
                                  img_width,
                                  3)),
    layers.RandomRotation(0.1),
    layers.RandomZoom(0.1),
  ]
)

plt.figure(figsize=(10, 10))
for images, _ in train_ds.take(1):
  for i in range(9):
    augmented_images = data_augmentation(images)
    ax = plt.subplot(3, 3, i + 1)
    plt.imshow(augmented_images[0].astype("uint8"))
    plt.axis("off")

model = Sequential([
  data_augmentation,
  layers.Rescaling(1./255),
  layers.Conv2D(16, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(32, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Conv2D(64, 3, padding='same', activation='relu'),
  layers.MaxPooling2D(),
  layers.Dropout(0.2),
  layers.Flatten(),
  layers.Dense(128, activation='relu'),
  layers.Dense(num_classes, name="outputs")
])

model.compile(optimizer='adam',
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])

model.summary()

epochs = args.epochs or 15
history = model.fit(
  train_ds,
  validation_data=val_ds,
  epochs=epochs
)

acc = history.history['accuracy']
val_acc = history.history['val_accuracy']

loss = history.history['loss']
val_loss = history.history['val_loss']

epochs_range = range(epochs)

plt.figure(figsize=(8, 8))
plt.subplot(1, 2, 1)
plt.plot(epochs_range, acc, label='Training Accuracy')
plt.plot(epochs_range, val_acc, label='Validation Accuracy')
plt.legend(loc='lower right')
plt.title('Training and Validation Accuracy')

plt.subplot(1, 2, 2)
plt.plot(epochs_range, loss, label='Training Loss')
plt.plot(epochs_range, val_loss, label='Validation Loss')
plt.legend(loc='upper right')
plt.title('Training and Validation Loss')
plt.show()

# a photo the model has not seen (the tutorial downloads a sunflower)
sunflower_path = sorted((data_dir.parent / "test" / "ship").glob("*.jpg"))[0]

img = tf.keras.utils.load_img(
    sunflower_path, target_size=(img_height, img_width)
)
img_array = tf.keras.utils.img_to_array(img)
img_array = np.expand_dims(img_array, 0) # Create a batch

predictions = model.predict(img_array)
score = np.exp(predictions[0] - predictions[0].max()) / np.exp(predictions[0] - predictions[0].max()).sum()

print(
    "This image most likely belongs to {} with a {:.2f} percent confidence."
    .format(class_names[np.argmax(score)], 100 * np.max(score))
)
