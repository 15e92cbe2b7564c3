"""The loaders on the real datasets.

CIFAR-10: ``$FASTCNN_CIFAR10_DIR`` (CI builds it with
``python ../shared/data/cifar10/make_cifar10.py DIR --extract``), else
``~/.cache/fastcnn-ci/cifar10``. Fashion-MNIST: ``/usr/share/datasets/fashion-mnist``
(``apt-get install dataset-fashion-mnist``). Each test skips, saying why, when its data is
absent. Caches go to a temporary FASTCNN_HOME, never to ~/.fastcnn.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from fastcnn.datasets import cifar10, fashion_mnist

pytestmark = pytest.mark.realdata

REPO = Path(__file__).resolve().parents[1]
CIFAR_DIR = Path(os.environ.get("FASTCNN_CIFAR10_DIR")
                 or os.path.expanduser("~/.cache/fastcnn-ci/cifar10"))
FASHION_DIR = Path(fashion_mnist.SYSTEM_DIR)
BATCHES = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]

# The first ten labels of the official batches (frog truck truck deer automobile ... /
# cat ship ship airplane frog ...): fixed facts of CIFAR-10, independent of any file here.
FIRST_TRAIN_LABELS = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
FIRST_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
# Likewise for Fashion-MNIST (Ankle boot, T-shirt/top, ... / Ankle boot, Pullover, ...).
FIRST_FASHION_TRAIN = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
FIRST_FASHION_TEST = [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


def _official_order_file():
    """../shared/data/cifar10/official-order.txt beside the repository (or an ancestor)."""
    for base in [REPO] + list(REPO.parents):
        candidate = base / "shared" / "data" / "cifar10" / "official-order.txt"
        if candidate.is_file():
            return candidate
    return None


def _cifar_location(*names):
    """The first of ``names`` present in CIFAR_DIR, or skip."""
    if not CIFAR_DIR.is_dir():
        pytest.skip("real CIFAR-10 absent: %s does not exist (set FASTCNN_CIFAR10_DIR or run "
                    "make_cifar10.py %s --extract)" % (CIFAR_DIR, CIFAR_DIR))
    for name in names:
        if (CIFAR_DIR / name).exists():
            return CIFAR_DIR / name
    pytest.skip("real CIFAR-10: none of %s in %s" % (", ".join(names), CIFAR_DIR))


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FASTCNN_HOME", str(tmp_path_factory.mktemp("fastcnn-home")))
        mp.delenv("FASTCNN_DATASET_CACHE", raising=False)
        yield


@pytest.fixture(scope="module")
def cifar_python():
    return cifar10.load_data(_cifar_location("cifar-10-batches-py", "cifar-10-python.tar.gz"))


def test_cifar10_shapes_and_dtypes(cifar_python):
    (x_train, y_train), (x_test, y_test) = cifar_python
    assert x_train.shape == (50000, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (50000, 1) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 32, 32, 3) and x_test.dtype == np.uint8
    assert y_test.shape == (10000, 1) and y_test.dtype == np.uint8
    assert np.array_equal(np.bincount(y_train[:, 0], minlength=10), [5000] * 10)
    assert np.array_equal(np.bincount(y_test[:, 0], minlength=10), [1000] * 10)
    # real photographs: mid-range mean, the full range used, channels not identical
    assert 100 < x_train.mean() < 140
    assert x_train.min() == 0 and x_train.max() == 255
    assert not np.array_equal(x_test[..., 0], x_test[..., 2])


def test_cifar10_labels_in_official_order(cifar_python):
    (_, y_train), (_, y_test) = cifar_python
    assert y_train[:10, 0].tolist() == FIRST_TRAIN_LABELS
    assert y_test[:10, 0].tolist() == FIRST_TEST_LABELS
    order_file = _official_order_file()
    if order_file is None:
        pytest.skip("shared/data/cifar10/official-order.txt not found beside %s" % REPO)
    order = {}
    for line in order_file.read_text().split("\n"):
        if line.strip():
            name, digits = line.split()
            order[name] = np.frombuffer(digits.encode(), np.uint8) - ord("0")
    assert sorted(order) == sorted(BATCHES)
    np.testing.assert_array_equal(y_train[:, 0], np.concatenate([order[b] for b in BATCHES[:5]]))
    np.testing.assert_array_equal(y_test[:, 0], order["test_batch"])


def test_cifar10_images_are_upright_hwc(cifar_python):
    # Neighbouring pixels of a photograph are alike along rows and columns. The same bytes
    # in a wrong layout (the planar rows read as interleaved RGB) are far less smooth.
    (x_train, _), _ = cifar_python
    x = x_train[:500]
    wrong = x.transpose(0, 3, 1, 2).reshape(500, 32, 32, 3)

    def roughness(img, axis):
        return np.abs(np.diff(img.astype(np.float64), axis=axis)).mean()

    assert roughness(x, 1) < 20 and roughness(x, 2) < 20
    assert roughness(wrong, 2) > 2 * roughness(x, 2)


@pytest.fixture
def no_cache(monkeypatch):
    """Skip writing another 180 MB cache for loads made only to compare arrays."""
    monkeypatch.setenv("FASTCNN_DATASET_CACHE", "0")


def test_cifar10_binary_distribution_is_identical(cifar_python, no_cache):
    binary = cifar10.load_data(_cifar_location("cifar-10-batches-bin", "cifar-10-binary.tar.gz"))
    for got, want in zip(binary[0] + binary[1], cifar_python[0] + cifar_python[1]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("tarball", ["cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"])
def test_cifar10_tarballs_are_identical(cifar_python, tarball, no_cache):
    packed = cifar10.load_data(_cifar_location(tarball))
    for got, want in zip(packed[0] + packed[1], cifar_python[0] + cifar_python[1]):
        np.testing.assert_array_equal(got, want)


def test_cifar10_second_load_is_served_from_the_cache(cifar_python, monkeypatch):
    location = _cifar_location("cifar-10-batches-py", "cifar-10-python.tar.gz")

    def boom(self):
        raise AssertionError("parsed CIFAR-10 again instead of using the cache")
    monkeypatch.setattr(cifar10._Source, "read", boom)
    again = cifar10.load_data(location)
    for got, want in zip(again[0] + again[1], cifar_python[0] + cifar_python[1]):
        np.testing.assert_array_equal(got, want)


def test_fashion_mnist_real_files():
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("real Fashion-MNIST absent: %s (apt-get install dataset-fashion-mnist)"
                    % FASHION_DIR)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(FASHION_DIR)
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert y_train[:10].tolist() == FIRST_FASHION_TRAIN
    assert y_test[:10].tolist() == FIRST_FASHION_TEST
    assert np.array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    assert np.array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    assert 60 < x_train.mean() < 85  # mostly black background (about 72.9)
    # with nothing in FASTCNN_HOME or Keras' cache, the default search finds these files
    if not os.path.isdir(os.path.expanduser("~/.keras/datasets/fashion-mnist")):
        (x_default, _), _ = fashion_mnist.load_data()
        np.testing.assert_array_equal(x_default, x_train)
