"""Training on the real datasets: one epoch of the tutorial model on a CIFAR-10 slice, and a
small Fashion-MNIST CNN. These are the end-to-end checks that the kernels learn real data.

Thresholds (chance is 10%): measured here with seed 0, the tutorial model reaches 37.5% test
accuracy after one epoch on 10,000 CIFAR-10 images; we require 30%. The Fashion-MNIST CNN
reaches 77.8% after one epoch on 10,000 images; we require 70%.
"""
import os
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses, models, zoo
from fastcnn.datasets import cifar10, fashion_mnist

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

CIFAR_DIR = Path(os.environ.get("FASTCNN_CIFAR10_DIR")
                 or os.path.expanduser("~/.cache/fastcnn-ci/cifar10"))


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCNN_HOME", str(tmp_path / "home"))


def test_tutorial_model_learns_cifar10_in_one_epoch_on_10k_images():
    if not CIFAR_DIR.is_dir():
        pytest.skip("real CIFAR-10 absent at %s (set FASTCNN_CIFAR10_DIR)" % CIFAR_DIR)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(str(CIFAR_DIR))
    fastcnn.utils.set_random_seed(0)
    model = zoo.tutorial_model()
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    x = x_train[:10000] / 255.0  # float64, as in the tutorial
    hist = model.fit(x, y_train[:10000], epochs=1, batch_size=32, verbose=0,
                     validation_data=(x_test[:2000] / 255.0, y_test[:2000]))
    _, acc = model.evaluate(x_test[:2000] / 255.0, y_test[:2000], verbose=0)
    assert acc == pytest.approx(hist.history["val_accuracy"][0])
    print("tutorial model, 1 epoch on 10k CIFAR-10: test accuracy %.4f" % acc)
    assert acc > 0.30, "one epoch on 10k CIFAR-10 images gave only %.3f test accuracy" % acc


def test_small_cnn_learns_fashion_mnist():
    if not Path(fashion_mnist.SYSTEM_DIR).is_dir():
        pytest.skip("Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    fastcnn.utils.set_random_seed(0)
    model = models.Sequential([
        layers.Input(shape=(28, 28, 1)),
        layers.Rescaling(1 / 255.0),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10),
    ])
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train[:10000, ..., None], y_train[:10000], epochs=1, verbose=0)
    _, acc = model.evaluate(x_test[:2000, ..., None], y_test[:2000], verbose=0)
    print("Fashion-MNIST small CNN, 1 epoch on 10k: test accuracy %.4f" % acc)
    assert acc > 0.70, "Fashion-MNIST test accuracy only %.3f" % acc
