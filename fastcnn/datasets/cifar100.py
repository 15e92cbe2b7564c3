"""CIFAR-100: 60,000 32x32 colour images in 100 fine / 20 coarse classes (Keras'
``cifar100.load_data``).

Reads the official python distribution, ``cifar-100-python.tar.gz`` or its unpacked
``cifar-100-python/`` folder: Python 2 pickles ``train`` and ``test`` of dicts whose
``b'data'`` is a uint8 (N, 3072) array of channel planes and ``b'fine_labels'`` /
``b'coarse_labels'`` lists of ints. They are read with CIFAR-10's restricted unpickler
(NumPy's array reconstruction only), so a tampered file cannot run code.
"""
import io
import os
import tarfile
import zlib

import numpy as np

from ._common import (DatasetError, DatasetNotFoundError, UnsafePickleError, cached_arrays,
                      download, expand, get_data_home, keras_datasets_dir, not_found_message)
from .cifar10 import _BatchUnpickler

__all__ = ["load_data", "URL", "MD5"]

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MD5 = "eb9058c3a382ffc7106e4002c42a8d85"  # published on https://www.cs.toronto.edu/~kriz/cifar.html

FOLDER = "cifar-100-python"
SPLITS = ("train", "test")
# inside a searched directory, in order of preference
FOLDERS = [FOLDER, os.path.join("cifar-100-python-target", FOLDER),   # Keras >= 3.6
           os.path.join("cifar-100-python_extracted", FOLDER)]
TARBALLS = ["cifar-100-python.tar.gz", "cifar-100-python-target_archive"]
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # the real train file is about 155 MB
_NAMES = ("x_train", "y_train_fine", "y_train_coarse", "x_test", "y_test_fine",
          "y_test_coarse")


def _parse(data, where):
    """(images (N,32,32,3), fine (N,), coarse (N,)) of one pickled split."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), where).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # any unpickling failure means: not a valid file
        raise DatasetError("%s: not a readable CIFAR-100 pickle (truncated or corrupt?): %s: "
                           "%s" % (where, type(exc).__name__, exc)) from exc
    if not isinstance(batch, dict):
        raise DatasetError("%s: expected a pickled dict, got %s" % (where, type(batch).__name__))
    get = lambda k: batch.get(k.encode("ascii"), batch.get(k))  # noqa: E731
    pixels = get("data")
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2
            or pixels.shape[1] != 3072):
        raise DatasetError("%s: b'data' must be a uint8 array of shape (N, 3072)" % where)
    labels = []
    for key, top in (("fine_labels", 99), ("coarse_labels", 19)):
        raw = get(key)
        if raw is None:
            raise DatasetError("%s: the pickled dict lacks b'%s'" % (where, key))
        arr = np.asarray(raw)
        if arr.ndim != 1 or arr.dtype.kind not in "iu" or len(arr) != len(pixels):
            raise DatasetError("%s: b'%s' must be %d ints" % (where, key, len(pixels)))
        if len(arr) and (arr.min() < 0 or arr.max() > top):
            raise DatasetError("%s: a %s value is outside 0..%d" % (where, key, top))
        labels.append(arr.astype(np.uint8))
    x = np.ascontiguousarray(pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return x, labels[0], labels[1]


def _read(source):
    """{'x_train', 'y_train_fine', ...} from a folder or a tarball, one split at a time."""
    out = {}

    def add(split, data, where):
        x, fine, coarse = _parse(data, where)
        out["x_" + split], out["y_%s_fine" % split] = x, fine.reshape(-1, 1)
        out["y_%s_coarse" % split] = coarse.reshape(-1, 1)

    path, kind = source
    if kind == "dir":
        for split in SPLITS:
            with open(os.path.join(path, split), "rb") as f:
                add(split, f.read(), os.path.join(path, split))
        return out
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if (not member.isfile() or parts[-1] not in SPLITS or len(parts) < 2
                        or parts[-2] != FOLDER):
                    continue
                where = "%s:%s" % (path, member.name)
                if member.size > MAX_MEMBER_BYTES:
                    raise DatasetError("%s: %d bytes, far more than a CIFAR-100 split"
                                       % (where, member.size))
                add(parts[-1], tar.extractfile(member).read(), where)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetError("%s: not a readable tar archive (truncated or corrupt?): %s: %s"
                           % (path, type(exc).__name__, exc)) from exc
    missing = [s for s in SPLITS if "x_" + s not in out]
    if missing:
        raise DatasetError("%s: not a CIFAR-100 archive: missing %s" % (
            path, ", ".join("%s/%s" % (FOLDER, s) for s in missing)))
    return out


def _scan(directory):
    if all(os.path.isfile(os.path.join(directory, s)) for s in SPLITS):
        return directory, "dir"
    for sub in FOLDERS:
        folder = os.path.join(directory, sub)
        if all(os.path.isfile(os.path.join(folder, s)) for s in SPLITS):
            return folder, "dir"
    for name in TARBALLS:
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name), "tar"
    return None


def _find_source(path):
    places = []
    if path is not None:
        path = expand(path)
        if os.path.isfile(path):
            return path, "tar"
        places.append(path)
    places += [get_data_home(), keras_datasets_dir()]
    looked = []
    for place in places:
        if os.path.isdir(place):
            found = _scan(place)
            if found is not None:
                return found
            looked.append(place)
        else:
            looked.append(place + " (does not exist)")
    dest = os.path.join(get_data_home(), TARBALLS[0])
    try:
        download(URL, dest, md5=MD5)
    except OSError as exc:
        fix = ("To fix: on a machine with internet access download %s (MD5 %s) and copy it, "
               "packed or unpacked, into %s (or set FASTCNN_HOME, or pass "
               "load_data(path=...) naming the file or the folder that holds it)."
               % (URL, MD5, get_data_home()))
        raise DatasetNotFoundError(not_found_message(
            "CIFAR-100", looked, [f + "/" for f in FOLDERS] + TARBALLS, fix, exc)) from exc
    return dest, "tar"


def _check_cached(arrays):
    return (all(arrays[k].dtype == np.uint8 for k in _NAMES)
            and arrays["x_train"].ndim == 4 and arrays["x_train"].shape[1:] == (32, 32, 3)
            and arrays["x_test"].ndim == 4 and arrays["x_test"].shape[1:] == (32, 32, 3)
            and all(arrays["y_%s_%s" % (s, m)].shape == (len(arrays["x_" + s]), 1)
                    for s in SPLITS for m in ("fine", "coarse")))


def load_data(label_mode="fine", path=None):
    """Load CIFAR-100 as Keras does: ``(x_train, y_train), (x_test, y_test)``.

    Args:
        label_mode: "fine" (100 classes) or "coarse" (20 super-classes).
        path: the tarball ``cifar-100-python.tar.gz``, the unpacked
            ``cifar-100-python/`` folder, or a folder holding either. Searched after it:
            ``$FASTCNN_HOME/datasets`` and Keras' ``~/.keras/datasets``; failing those the
            official tarball is downloaded (MD5 checked).

    Returns:
        ``x_train`` uint8 ``(50000, 32, 32, 3)``, ``y_train`` uint8 ``(50000, 1)``, and the
        10,000 test images and labels likewise, in the official order.

    Raises:
        ValueError: an unknown label_mode.
        DatasetNotFoundError: the data is nowhere and cannot be downloaded.
        DatasetError: a file is truncated, corrupt or not CIFAR-100 (named in the message).
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError('`label_mode` must be one of `"fine"`, `"coarse"`. Received: '
                         "label_mode=%r." % (label_mode,))
    source = _find_source(path)
    files = ([source[0]] if source[1] == "tar"
             else [os.path.join(source[0], s) for s in SPLITS])
    arrays = cached_arrays("cifar100", "cifar100:%s:%s" % (source[1], source[0]), files,
                           lambda: _read(source), _NAMES, _check_cached)
    return ((arrays["x_train"], arrays["y_train_" + label_mode]),
            (arrays["x_test"], arrays["y_test_" + label_mode]))
