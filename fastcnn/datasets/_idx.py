"""The IDX format of MNIST and Fashion-MNIST, and a loader shared by both datasets.

An IDX file: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions,
one big-endian uint32 per dimension, then the data in row-major order. The official files
are gzipped (``train-images-idx3-ubyte.gz``); unpacked copies are read as well.
"""
import gzip
import os
import zlib

import numpy as np

from ._common import DatasetError, cached_arrays

FILES = {  # array name -> official file name without ".gz"
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NAMES = ("x_train", "y_train", "x_test", "y_test")
# Far beyond the 47 MB of MNIST's training images: refuse to inflate gzip bombs.
MAX_BYTES = 512 * 1024 * 1024


def _read_bytes(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError("%s: unreadable (truncated or corrupt gzip?): %s: %s"
                           % (path, type(exc).__name__, exc)) from exc
    if len(data) > MAX_BYTES:
        raise DatasetError("%s: more than %d bytes, far beyond any (Fashion-)MNIST file"
                           % (path, MAX_BYTES))
    return data


def read_idx(path, ndim):
    """The uint8 array in IDX file ``path`` (gzipped if it ends in .gz), which must have
    ``ndim`` dimensions; DatasetError naming the file for anything malformed."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError("%s: %d bytes, too short for an IDX header" % (path, len(data)))
    zero, dtype_code, nd = data[0:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise DatasetError("%s: bad IDX magic number 0x%s (expected 0x0000080%d)"
                           % (path, data[:4].hex(), ndim))
    if dtype_code != 0x08:
        raise DatasetError("%s: IDX element type 0x%02x, expected 0x08 (unsigned byte)"
                           % (path, dtype_code))
    if nd != ndim:
        raise DatasetError("%s: IDX file has %d dimensions, expected %d" % (path, nd, ndim))
    header = 4 + 4 * nd
    if len(data) < header:
        raise DatasetError("%s: truncated IDX header" % (path,))
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=nd, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != expected:
        raise DatasetError("%s: holds %d data bytes but its header %s says %d (truncated?)"
                           % (path, len(data) - header, shape, expected))
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def idx_file(directory, name):
    """Path of IDX file ``name`` in ``directory`` (``name.gz`` or unpacked ``name``), or None."""
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def idx_files(directory):
    """{array name: path} when ``directory`` holds all four IDX files; None when it holds
    none; DatasetError when it holds only some."""
    paths = {key: idx_file(directory, name) for key, name in FILES.items()}
    present = [p for p in paths.values() if p is not None]
    if not present:
        return None
    if len(present) < len(paths):
        missing = [FILES[k] + ".gz" for k, p in paths.items() if p is None]
        raise DatasetError("%s: incomplete IDX dataset, missing %s"
                           % (directory, ", ".join(missing)))
    return paths


def check_split(images, labels, images_path, labels_path, image_shape=(28, 28), classes=10):
    if images.shape[1:] != image_shape:
        raise DatasetError("%s: images are %s, expected %s"
                           % (images_path, "x".join(map(str, images.shape[1:])),
                              "x".join(map(str, image_shape))))
    if len(images) != len(labels):
        raise DatasetError("%s has %d labels but %s has %d images"
                           % (labels_path, len(labels), images_path, len(images)))
    if len(labels) and labels.max() >= classes:
        bad = int(np.argmax(labels >= classes))
        raise DatasetError("%s: label %d at index %d is outside 0..%d"
                           % (labels_path, labels[bad], bad, classes - 1))


def parse_idx_dataset(paths):
    arrays = {}
    for key in NAMES:
        arrays[key] = read_idx(paths[key], 3 if key.startswith("x") else 1)
    for split in ("train", "test"):
        check_split(arrays["x_" + split], arrays["y_" + split],
                    paths["x_" + split], paths["y_" + split])
    return arrays


def _check_cached(arrays):
    return (all(a.dtype == np.uint8 for a in arrays.values())
            and arrays["x_train"].shape[1:] == (28, 28) and arrays["x_test"].shape[1:] == (28, 28)
            and arrays["y_train"].shape == (len(arrays["x_train"]),)
            and arrays["y_test"].shape == (len(arrays["x_test"]),))


def load_idx_dataset(dataset, paths):
    """The four arrays from the IDX files ``paths`` (via the parsed-array cache)."""
    key = "%s:idx:%s" % (dataset, os.path.dirname(paths["x_train"]))
    files = [paths[k] for k in NAMES]
    arrays = cached_arrays(dataset, key, files, lambda: parse_idx_dataset(paths), NAMES,
                           _check_cached)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def load_npz_dataset(path):
    """Keras' ``mnist.npz`` (x_train, y_train, x_test, y_test), read without pickle."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            missing = [k for k in NAMES if k not in npz.files]
            if missing:
                raise DatasetError("%s: lacks %s (has %s)" % (path, ", ".join(missing),
                                                               ", ".join(npz.files)))
            arrays = {k: npz[k] for k in NAMES}
    except DatasetError:
        raise
    except Exception as exc:  # zip/npy errors, object arrays refused without pickle
        raise DatasetError("%s: not a readable .npz of uint8 arrays: %s: %s"
                           % (path, type(exc).__name__, exc)) from exc
    for key, arr in arrays.items():
        ndim = 3 if key.startswith("x") else 1
        if arr.ndim != ndim or arr.dtype.kind not in "iu":
            raise DatasetError("%s: %s is %s of shape %s, expected %d-d uint8"
                               % (path, key, arr.dtype, arr.shape, ndim))
        if key.startswith("x") and arr.dtype != np.uint8:
            raise DatasetError("%s: %s is %s, expected uint8" % (path, key, arr.dtype))
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        where = "%s[%s]" % (path, "y_" + split)
        if len(y) and (y.min() < 0):
            raise DatasetError("%s: negative label" % (where,))
        check_split(x, y, "%s[x_%s]" % (path, split), where)
        arrays["y_" + split] = y.astype(np.uint8)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
