"""MNIST: 70,000 28x28 grey images of handwritten digits (Keras' ``mnist.load_data``),
from the official IDX ``.gz`` files or Keras' ``mnist.npz``."""
import os

from . import _idx
from ._common import (DatasetNotFoundError, download, expand, get_data_home,
                      keras_datasets_dir, not_found_message)

__all__ = ["load_data", "CLASS_NAMES", "URL", "SHA256"]

CLASS_NAMES = [str(d) for d in range(10)]

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # Keras' checksum
NPZ = "mnist.npz"


def _places(path):
    places = []
    if path is not None:
        path = expand(path)
        if os.path.isfile(path):
            return [("npz", path)]
        places += [path, os.path.join(path, "mnist")]
    home = get_data_home()
    return ([("dir", p) for p in places]
            + [("dir", os.path.join(home, "mnist")), ("npz", os.path.join(home, NPZ)),
               ("npz", os.path.join(keras_datasets_dir(), NPZ))])


def _find(path):
    """('idx', {name: path}) or ('npz', path)."""
    looked = []
    for kind, place in _places(path):
        if kind == "npz":
            if os.path.isfile(place):
                return "npz", place
            looked.append(place + " (does not exist)")
            continue
        if not os.path.isdir(place):
            looked.append(place + " (does not exist)")
            continue
        paths = _idx.idx_files(place)
        if paths is not None:
            return "idx", paths
        if os.path.isfile(os.path.join(place, NPZ)):
            return "npz", os.path.join(place, NPZ)
        looked.append(place)
    dest = os.path.join(get_data_home(), NPZ)
    try:
        download(URL, dest, sha256=SHA256)
    except OSError as exc:
        names = [n + ".gz" for n in _idx.FILES.values()] + [NPZ]
        fix = ("To fix: download %s (SHA-256 %s) into %s, or put the four official IDX .gz "
               "files in %s (or pass load_data(path=...) naming the file or folder)."
               % (URL, SHA256, get_data_home(), os.path.join(get_data_home(), "mnist")))
        raise DatasetNotFoundError(not_found_message("MNIST", looked, names, fix, exc)) from exc
    return "npz", dest


def load_data(path=None):
    """Load MNIST as Keras does: ``(x_train, y_train), (x_test, y_test)``.

    uint8 ``x_train (60000, 28, 28)``, ``y_train (60000,)``, ``x_test (10000, 28, 28)``,
    ``y_test (10000,)``.

    Reads the four official IDX files (``train-images-idx3-ubyte.gz`` ...) or Keras'
    ``mnist.npz`` (loaded with ``allow_pickle=False``). Searched in order: ``path`` (a
    folder, ``path/mnist``, or the ``.npz`` itself), ``$FASTCNN_HOME/datasets/mnist``,
    ``$FASTCNN_HOME/datasets/mnist.npz``, Keras' ``~/.keras/datasets/mnist.npz``; failing
    those, Keras' ``mnist.npz`` is downloaded (SHA-256-checked).
    Malformed files raise :class:`~fastcnn.datasets.DatasetError` naming the file.
    """
    kind, found = _find(path)
    if kind == "npz":
        return _idx.load_npz_dataset(found)
    return _idx.load_idx_dataset("mnist", found)
