"""CIFAR-10: 60,000 32x32 colour images in 10 classes (Keras' ``cifar10.load_data``).

Reads both official distributions, packed or unpacked:

* ``cifar-10-python.tar.gz`` / ``cifar-10-batches-py/``: Python 2 pickles of dicts whose
  ``b'data'`` is a uint8 (10000, 3072) array of channel planes (1024 R, 1024 G, 1024 B per
  row) and ``b'labels'`` a list of ints. They are read with a restricted unpickler that
  admits only NumPy's array reconstruction, so a tampered file cannot run code.
* ``cifar-10-binary.tar.gz`` / ``cifar-10-batches-bin/``: 3,073-byte records, a label byte
  then the 3,072 pixel bytes in the same planar layout.
"""
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from ._common import (DatasetError, DatasetNotFoundError, UnsafePickleError, cached_arrays,
                      download, expand, get_data_home, keras_datasets_dir, not_found_message)

try:  # NumPy >= 2 (the module the official files name, numpy.core, is an alias of it)
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

__all__ = ["load_data", "CLASS_NAMES", "URL", "MD5"]

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"  # published on https://www.cs.toronto.edu/~kriz/cifar.html

TRAIN_BATCHES = ["data_batch_%d" % i for i in range(1, 6)]
TEST_BATCH = "test_batch"
BATCHES = TRAIN_BATCHES + [TEST_BATCH]

RECORD_BYTES = 1 + 3 * 32 * 32
# A real batch is 10,000 images (about 31 MB); refuse tar members far beyond that.
MAX_MEMBER_BYTES = 256 * 1024 * 1024

PY_DIR, BIN_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
# Inside a searched directory, in order of preference (unpacked folders read fastest).
FOLDERS = [PY_DIR, os.path.join("cifar-10-batches-py-target", PY_DIR), BIN_DIR]  # Keras >= 3.6
TARBALLS = ["cifar-10-python.tar.gz", "cifar-10-binary.tar.gz",
            "cifar-10-batches-py.tar.gz",          # Keras < 3.6 keeps the download under this name
            "cifar-10-batches-py-target_archive"]  # Keras >= 3.6


# --------------------------------------------------------------------------- safe unpickling

def _latin1_encode(text, encoding="latin1"):
    """How Python 3 pickles ``bytes`` at protocol 2 (``_codecs.encode``), Latin-1 only."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1",
                                                                                  "latin-1"):
        raise UnsafePickleError("_codecs.encode is admitted for Latin-1 text only")
    return text.encode("latin-1")


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,   # as in the official files
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,  # re-pickled by NumPy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,  # bytes in a protocol-2 pickle written by Python 3
}


class _BatchUnpickler(pickle.Unpickler):
    """Admits only the globals an official CIFAR-10 pickle (or a faithful re-pickle) needs."""

    def __init__(self, file, where):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                "%s: refusing to unpickle: it asks for %s.%s, which no official CIFAR-10 file "
                "contains (nothing was executed; the file is not the official one)"
                % (self.where, module, name)) from None

    def persistent_load(self, pid):
        raise UnsafePickleError("%s: refusing to unpickle: it uses persistent ids, which no "
                                "official CIFAR-10 file contains" % (self.where,))


def _field(batch, key):
    for k in (key.encode("ascii"), key):
        if k in batch:
            return batch[k]
    return None


def _parse_pickle(data, where):
    """(images (N,32,32,3) uint8, labels (N,) uint8) from one python-distribution batch."""
    try:
        batch = _BatchUnpickler(io.BytesIO(data), where).load()
    except UnsafePickleError as exc:
        if str(exc).startswith(where):
            raise
        raise UnsafePickleError("%s: refusing to unpickle: %s (nothing was executed)"
                                % (where, exc)) from None
    except Exception as exc:  # any unpickling failure means: not a valid batch file
        raise DatasetError("%s: not a readable CIFAR-10 pickle (truncated or corrupt?): %s: %s"
                           % (where, type(exc).__name__, exc)) from exc
    if not isinstance(batch, dict):
        raise DatasetError("%s: expected a pickled dict with b'data' and b'labels', got %s"
                           % (where, type(batch).__name__))
    pixels, labels = _field(batch, "data"), _field(batch, "labels")
    if pixels is None or labels is None:
        raise DatasetError("%s: the pickled dict lacks %s (its keys: %s)" % (
            where, " and ".join(repr(k) for k, v in ((b"data", pixels), (b"labels", labels))
                                if v is None), sorted(map(repr, batch))))
    if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2
            or pixels.shape[1] != 3 * 32 * 32):
        desc = ("%s %s" % (pixels.dtype, pixels.shape) if isinstance(pixels, np.ndarray)
                else type(pixels).__name__)
        raise DatasetError("%s: b'data' must be a uint8 array of shape (N, 3072), got %s"
                           % (where, desc))
    labels = _check_labels(labels, len(pixels), where)
    return _planes_to_hwc(pixels), labels


def _check_labels(labels, n, where):
    try:
        arr = np.asarray(labels)
    except Exception as exc:
        raise DatasetError("%s: b'labels' is not a list of ints: %s" % (where, exc)) from exc
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise DatasetError("%s: b'labels' must be a list of ints, got %s of shape %s"
                           % (where, arr.dtype, arr.shape))
    if len(arr) != n:
        raise DatasetError("%s: %d labels for %d images" % (where, len(arr), n))
    if n and (arr.min() < 0 or arr.max() > 9):
        bad = arr[(arr < 0) | (arr > 9)][0]
        raise DatasetError("%s: label %d is outside 0..9" % (where, bad))
    return arr.astype(np.uint8)


def _planes_to_hwc(rows):
    """(N, 3072) rows of R, G, B planes -> (N, 32, 32, 3) NHWC view."""
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _parse_records(data, where):
    """(images, labels) from one binary-distribution batch of 3,073-byte records."""
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise DatasetError("%s: %d bytes is not a whole number of 3073-byte records "
                           "(truncated or not a CIFAR-10 binary batch)" % (where, len(data)))
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DatasetError("%s: record %d has label %d, outside 0..9"
                           % (where, bad, labels[bad]))
    return _planes_to_hwc(records[:, 1:]), labels.copy()


# ------------------------------------------------------------------------------ the sources

def _batch_name(filename):
    """'data_batch_3' / 'data_batch_3.bin' -> ('data_batch_3', 'py'/'bin'), else None."""
    if filename in BATCHES:
        return filename, "py"
    if filename.endswith(".bin") and filename[:-4] in BATCHES:
        return filename[:-4], "bin"
    return None


def _folder_kind(folder):
    """'py' or 'bin' if ``folder`` holds any batch file of that distribution, else None."""
    if any(os.path.isfile(os.path.join(folder, b)) for b in BATCHES):
        return "py"
    if any(os.path.isfile(os.path.join(folder, b + ".bin")) for b in BATCHES):
        return "bin"
    return None


class _Source:
    """One place the six batches are read from: a folder or a tarball."""

    def __init__(self, path, kind):
        self.path, self.kind = path, kind  # kind: 'py', 'bin' (folders) or 'tar'

    def files(self):
        if self.kind == "tar":
            return [self.path]
        suffix = ".bin" if self.kind == "bin" else ""
        paths = [os.path.join(self.path, b + suffix) for b in BATCHES]
        missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
        if missing:
            raise DatasetError("%s: incomplete CIFAR-10 folder, missing %s"
                               % (self.path, ", ".join(missing)))
        return paths

    def read(self):
        """{batch name: (images, labels)} for the six batches."""
        if self.kind == "tar":
            return self._read_tar()
        parse = _parse_records if self.kind == "bin" else _parse_pickle
        out = _Assembler()
        for path, name in zip(self.files(), BATCHES):
            with open(path, "rb") as f:
                out.add(name, *parse(f.read(), path))
        return out.result()

    def _read_tar(self):
        found = {}  # kind -> {batch name: (where, bytes)}
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    named = _batch_name(os.path.basename(member.name))
                    if named is None:
                        continue
                    name, kind = named
                    where = "%s:%s" % (self.path, member.name)
                    if member.size > MAX_MEMBER_BYTES:
                        raise DatasetError("%s: %d bytes, far more than a CIFAR-10 batch"
                                           % (where, member.size))
                    # parsed at once, so only one batch's raw bytes are held at a time
                    parse = _parse_records if kind == "bin" else _parse_pickle
                    found.setdefault(kind, _Assembler()).add(
                        name, *parse(tar.extractfile(member).read(), where))
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise DatasetError("%s: not a readable tar archive (truncated or corrupt?): %s: %s"
                               % (self.path, type(exc).__name__, exc)) from exc
        kind = "py" if "py" in found else "bin" if "bin" in found else None
        if kind is None:
            raise DatasetError("%s: holds no CIFAR-10 batches (expected %s/data_batch_1.. or "
                               "%s/data_batch_1.bin..)" % (self.path, PY_DIR, BIN_DIR))
        missing = [b for b in BATCHES if b not in found[kind].names]
        if missing:
            raise DatasetError("%s: incomplete CIFAR-10 archive, missing %s"
                               % (self.path, ", ".join(missing)))
        return found[kind].result()


def _scan(directory):
    """The first CIFAR-10 source in ``directory`` (itself a batch folder, a known sub-folder
    or a known tarball), or None."""
    kind = _folder_kind(directory)
    if kind is not None:
        return _Source(directory, kind)
    for sub in FOLDERS:
        folder = os.path.join(directory, sub)
        if os.path.isdir(folder):
            kind = _folder_kind(folder)
            if kind is not None:
                return _Source(folder, kind)
    for name in TARBALLS:
        tarball = os.path.join(directory, name)
        if os.path.isfile(tarball):
            return _Source(tarball, "tar")
    return None


def _find_source(path):
    places = []
    if path is not None:
        path = expand(path)
        if os.path.isfile(path):
            return _Source(path, "tar")
        places.append(path)
    places += [get_data_home(), keras_datasets_dir()]
    looked = []
    for place in places:
        if os.path.isdir(place):
            source = _scan(place)
            if source is not None:
                return source
            looked.append(place)
        else:
            looked.append(place + " (does not exist)")

    dest = os.path.join(get_data_home(), TARBALLS[0])
    try:
        download(URL, dest, md5=MD5)
    except OSError as exc:  # no network, refused, timed out, or the folder is not writable
        names = [f + "/" for f in FOLDERS] + TARBALLS
        fix = ("To fix: on a machine with internet access download %s (MD5 %s) and copy it, "
               "packed or unpacked, into %s (or set FASTCNN_HOME, or pass "
               "load_data(path=...) naming the file or the folder that holds it). The "
               "binary distribution cifar-10-binary.tar.gz works too."
               % (URL, MD5, get_data_home()))
        raise DatasetNotFoundError(
            not_found_message("CIFAR-10", looked, names, fix, exc)) from exc
    return _Source(dest, "tar")


def _check_cached(arrays):
    xtr, ytr, xte, yte = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return (all(a.dtype == np.uint8 for a in (xtr, ytr, xte, yte))
            and xtr.ndim == 4 and xtr.shape[1:] == (32, 32, 3) and ytr.shape == (len(xtr), 1)
            and xte.ndim == 4 and xte.shape[1:] == (32, 32, 3) and yte.shape == (len(xte), 1))


class _Assembler:
    """The four arrays, built as the batches are parsed: each training batch is copied at
    once into its place (slot i of batch data_batch_i+1), so parsed copies never pile up.
    (Freed heap blocks are not always returned to the OS: holding all six parsed batches
    and then concatenating them made the first load peak at ~550 MB.)"""

    def __init__(self):
        self.names = set()
        self.slot = None
        self.x = self.y = None
        self.sizes = {}
        self.extra = {}  # training batches larger than the slot (not the official files)
        self.test = None

    def add(self, name, x, y):
        self.names.add(name)
        if name == TEST_BATCH:
            self.test = (np.ascontiguousarray(x), np.asarray(y, np.uint8).reshape(-1, 1))
            return
        i = TRAIN_BATCHES.index(name)
        if self.x is None:  # np.empty's pages only count once they are written
            self.slot = len(y)
            self.x = np.empty((len(TRAIN_BATCHES) * self.slot, 32, 32, 3), np.uint8)
            self.y = np.empty((len(TRAIN_BATCHES) * self.slot, 1), np.uint8)
        if len(y) <= self.slot:
            lo = i * self.slot
            self.x[lo:lo + len(y)] = x
            self.y[lo:lo + len(y), 0] = y
            self.sizes[name] = len(y)
        else:
            self.extra[name] = (np.array(x), np.array(y, np.uint8).reshape(-1, 1))

    def result(self):
        if not self.extra and all(self.sizes.get(b) == self.slot for b in TRAIN_BATCHES):
            x_train, y_train = self.x, self.y
        else:
            xs, ys = [], []
            for i, b in enumerate(TRAIN_BATCHES):
                if b in self.extra:
                    xs.append(self.extra[b][0])
                    ys.append(self.extra[b][1])
                else:
                    lo = i * self.slot
                    xs.append(self.x[lo:lo + self.sizes[b]])
                    ys.append(self.y[lo:lo + self.sizes[b]])
            x_train, y_train = np.concatenate(xs), np.concatenate(ys)
        return {"x_train": x_train, "y_train": y_train, "x_test": self.test[0],
                "y_test": self.test[1]}


def load_data(path=None):
    """Load CIFAR-10 as Keras does: ``(x_train, y_train), (x_test, y_test)``.

    ``x_train`` is uint8 ``(50000, 32, 32, 3)`` (NHWC), ``y_train`` uint8 ``(50000, 1)``,
    ``x_test``/``y_test`` likewise with 10,000 images, in the official order (data_batch_1
    to data_batch_5, then test_batch). Class names are in :data:`CLASS_NAMES`.

    ``path`` may be a tarball (``cifar-10-python.tar.gz`` or ``cifar-10-binary.tar.gz``),
    an unpacked batch folder, or a directory holding either. Searched in order: ``path``,
    ``$FASTCNN_HOME/datasets`` (default ``~/.fastcnn/datasets``), Keras' cache
    (``~/.keras/datasets``: ``cifar-10-batches-py/`` and the Keras >= 3.6 layout
    ``cifar-10-batches-py-target/cifar-10-batches-py/``); failing those, the official
    tarball is downloaded into ``$FASTCNN_HOME/datasets`` and its MD5 checked.

    Parsed arrays are cached under ``$FASTCNN_HOME/datasets/cache`` (skipped when that is
    not writable), so later loads take a fraction of a second.

    Raises :class:`~fastcnn.datasets.DatasetNotFoundError` (a ``FileNotFoundError``) when the
    data is nowhere and cannot be downloaded, and :class:`~fastcnn.datasets.DatasetError`
    (a ``ValueError``) naming the file when a file is truncated, corrupt or tampered with.
    """
    source = _find_source(path)
    key = "cifar10:%s:%s" % (source.kind, source.path)
    arrays = cached_arrays("cifar10", key, source.files(), source.read,
                           ("x_train", "y_train", "x_test", "y_test"), _check_cached)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
