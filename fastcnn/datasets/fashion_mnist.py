"""Fashion-MNIST: 70,000 28x28 grey images of clothing in 10 classes
(Keras' ``fashion_mnist.load_data``), read from the official IDX ``.gz`` files."""
import os

from . import _idx
from ._common import (DatasetNotFoundError, download, expand, get_data_home,
                      keras_datasets_dir, not_found_message)

__all__ = ["load_data", "CLASS_NAMES", "BASE_URL", "MD5"]

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

BASE_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
MD5 = {  # published in the Fashion-MNIST README
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"  # Debian/Ubuntu: apt install dataset-fashion-mnist


def _places(path):
    places = []
    if path is not None:
        path = expand(path)
        places += [path, os.path.join(path, "fashion-mnist")]
    return places + [os.path.join(get_data_home(), "fashion-mnist"),
                     os.path.join(keras_datasets_dir(), "fashion-mnist"), SYSTEM_DIR]


def _find(path):
    looked = []
    for place in _places(path):
        if not os.path.isdir(place):
            looked.append(place + " (does not exist)")
            continue
        paths = _idx.idx_files(place)
        if paths is not None:
            return paths
        looked.append(place)
    dest = os.path.join(get_data_home(), "fashion-mnist")
    try:
        for name, md5 in MD5.items():
            if not os.path.isfile(os.path.join(dest, name)):
                download(BASE_URL + name, os.path.join(dest, name), md5=md5)
    except OSError as exc:
        fix = ("To fix: `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download "
               "the four files from %s and put them in %s (or pass load_data(path=...) naming "
               "the folder that holds them)." % (BASE_URL, dest))
        raise DatasetNotFoundError(not_found_message(
            "Fashion-MNIST", looked, list(MD5), fix, exc)) from exc
    return _idx.idx_files(dest)


def load_data(path=None):
    """Load Fashion-MNIST as Keras does: ``(x_train, y_train), (x_test, y_test)``.

    uint8 ``x_train (60000, 28, 28)``, ``y_train (60000,)``, ``x_test (10000, 28, 28)``,
    ``y_test (10000,)``; class names in :data:`CLASS_NAMES`.

    Looks for the four official IDX files (``train-images-idx3-ubyte.gz`` ...; unpacked
    copies without ``.gz`` work too) in: ``path`` (or ``path/fashion-mnist``),
    ``$FASTCNN_HOME/datasets/fashion-mnist``, Keras' ``~/.keras/datasets/fashion-mnist``,
    ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``); failing
    those, downloads them (MD5-checked) into ``$FASTCNN_HOME/datasets/fashion-mnist``.
    Malformed files raise :class:`~fastcnn.datasets.DatasetError` naming the file.
    """
    return _idx.load_idx_dataset("fashion_mnist", _find(path))
