"""``image_dataset_from_directory``: a folder of class sub-folders as a Dataset of batches.

The file list, its order, the labels and the train/validation split are computed exactly as
Keras 3 does (``keras/src/utils/dataset_utils.py``: sorted walk, one global shuffle by
``np.random.RandomState(seed)``, the last ``int(validation_split * n)`` files validate), so
the same folder and seed give the same files in each subset. Images are decoded and resized
a few batches ahead of the consumer by worker processes (decode_workers.py) or, for small
folders, by a pool of threads (Pillow releases the GIL while it decodes).
"""
import collections
import concurrent.futures
import numbers
import os
import threading
import warnings

import numpy as np

from . import decode_workers, images
from .dataset import Dataset, _worker_count

__all__ = ["image_dataset_from_directory", "index_directory", "ALLOWLIST_FORMATS"]

ALLOWLIST_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_BAD_FILE_OPTIONS = ("error", "warn")
_DECODERS = ("auto", "threads", "processes")
# decoder="auto" starts worker processes (once per Python process) for at least this many
# files; fewer decode sooner in threads than the processes take to start
_PROCESS_MIN_FILES = 2048


_POOL = {"pool": None, "workers": 0}
_POOL_LOCK = threading.Lock()


def _decode_pool(workers):
    """The process-wide decoding threads (kept across passes: new threads per epoch would
    each bring fresh malloc arenas, and memory would creep up)."""
    with _POOL_LOCK:
        if _POOL["pool"] is None or _POOL["workers"] < workers:
            old = _POOL["pool"]
            _POOL["pool"] = concurrent.futures.ThreadPoolExecutor(workers, "fastcnn-decode")
            _POOL["workers"] = workers
            if old is not None:
                old.shutdown(wait=False)
        return _POOL["pool"]


def _forget_pool_after_fork():
    # the parent's threads do not exist in a forked child
    global _POOL_LOCK
    _POOL_LOCK = threading.Lock()
    _POOL.update(pool=None, workers=0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _check_walk(root, dirnames, follow_links, on_bad_file):
    """With follow_links, drop (or refuse) sub-folders that are links to an ancestor."""
    if not follow_links:
        return
    here = os.path.realpath(root)
    for d in list(dirnames):
        path = os.path.join(root, d)
        if not os.path.islink(path):
            continue
        target = os.path.realpath(path)
        if here == target or here.startswith(target.rstrip(os.sep) + os.sep):
            msg = ("image_dataset_from_directory: %s is a symlink loop (it points to %s, a "
                   "folder above it)" % (path, target))
            if on_bad_file == "error":
                raise ValueError(msg + "; remove the link, or pass follow_links=False or "
                                 "on_bad_file='warn' to skip it")
            warnings.warn(msg + "; skipped", stacklevel=4)
            dirnames.remove(d)


def _iter_valid_files(directory, follow_links, formats, on_bad_file):
    """Keras' iter_valid_files: (root, fname) sorted by root, then by name."""
    walked = []
    for root, dirnames, files in os.walk(directory, followlinks=follow_links):
        _check_walk(root, dirnames, follow_links, on_bad_file)
        walked.append((root, files))
    for root, files in sorted(walked, key=lambda x: x[0]):
        for fname in sorted(files):
            if fname.lower().endswith(formats):
                yield root, fname


def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None,
                    follow_links=False, verbose=True, on_bad_file="error"):
    """All files of ``directory`` with their labels, in Keras' order.

    Args:
        directory: the folder.
        labels: "inferred" (from sub-folder names), None, or a list of int labels (one per
            file in the sorted walk order).
        formats: a tuple of allowed extensions (lower case, with the dot).
        class_names: with "inferred": the sub-folders to use, in this order.
        shuffle: shuffle the list with ``np.random.RandomState(seed)`` (as Keras).
        seed: the shuffle's seed (default: drawn from np.random, as Keras).
        follow_links: descend into symlinked sub-folders.
        verbose: print how many files and classes were found.
        on_bad_file: "error" or "warn" for an empty class folder or a symlink loop.

    Returns:
        ``(file_paths, labels, class_names)``: labels an int32 array (None without labels).

    Raises:
        ValueError: class_names do not match the sub-folders, a label count mismatch, an
            empty class folder or a symlink loop (with on_bad_file="error").
    """
    if not os.path.isdir(directory):
        raise ValueError("image_dataset_from_directory: %r is not a folder" % (directory,))
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(set(subdirs)):
                raise ValueError("The `class_names` passed did not match the names of the "
                                 "subdirectories of the target directory. Expected: %s (or a "
                                 "subset of it), but received: class_names=%s"
                                 % (subdirs, class_names))
            subdirs = list(class_names)
    else:
        subdirs = [""]
        if class_names is not None:
            raise ValueError("When argument `labels` is specified, argument `class_names` "
                             "cannot be specified (the `class_names` will be the sorted "
                             "list of labels)." if labels is not None else
                             "When `labels=None` (no labels), argument `class_names` cannot "
                             "be specified.")
    class_names = subdirs
    filenames, per_class = [], []
    for subdir in subdirs:
        dirpath = os.path.join(directory, subdir)
        found = 0
        for root, fname in _iter_valid_files(dirpath, follow_links, formats, on_bad_file):
            abs_path = os.path.join(root, fname)
            filenames.append(os.path.join(os.path.basename(dirpath),
                                          os.path.relpath(abs_path, dirpath)))
            found += 1
        per_class.append(found)
        if labels == "inferred" and found == 0:
            msg = ("image_dataset_from_directory: the class folder %s holds no image files "
                   "(%s)" % (dirpath, ", ".join(formats)))
            if on_bad_file == "error":
                raise ValueError(msg + "; remove it, or pass class_names without it, or "
                                 "on_bad_file='warn' to keep the class with no images")
            warnings.warn(msg, stacklevel=3)
    if labels == "inferred":
        labels = np.repeat(np.arange(len(subdirs), dtype=np.int32), per_class)
    elif labels is None:
        class_names = None
    else:
        if len(labels) != len(filenames):
            raise ValueError("Expected the lengths of `labels` to match the number of files "
                             "in the target directory. len(labels) is %d while we found %d "
                             "files in directory %s." % (len(labels), len(filenames),
                                                          directory))
        class_names = [str(label) for label in sorted(set(labels))]
        labels = list(labels)
    if verbose:
        if labels is None:
            print("Found %d files." % len(filenames))
        else:
            print("Found %d files belonging to %d classes." % (len(filenames),
                                                                len(class_names)))
    file_paths = [os.path.join(directory, f) for f in filenames]
    if shuffle:  # as Keras: shuffle globally to erase the folders' structure
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(file_paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int32)
    return file_paths, labels, class_names


def _split(samples, labels, validation_split, subset, verbose):
    """Keras' get_training_or_validation_split."""
    if not validation_split:
        return samples, labels
    num_val = int(validation_split * len(samples))
    if subset == "training":
        if verbose:
            print("Using %d files for training." % (len(samples) - num_val))
        return samples[:-num_val], (labels[:-num_val] if labels is not None else None)
    if verbose:
        print("Using %d files for validation." % num_val)
    return samples[-num_val:], (labels[-num_val:] if labels is not None else None)


class ImageFolderDataset(Dataset):
    """The dataset ``image_dataset_from_directory`` returns: ``(images, labels)`` batches
    (or single images) decoded by worker processes or threads a few batches ahead.

    Attributes:
        class_names: the class names (label i is ``class_names[i]``).
        file_paths: the image files in Keras' order (its global shuffle by ``seed``). With
            shuffle=True each pass visits them in a new order (a full permutation drawn
            from (seed, pass); tf.data's shuffle buffer of 8 batches is replaced by it).
    """

    def __init__(self, file_paths, labels, label_mode, num_classes, image_size, channels,
                 interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio, batch_size,
                 shuffle, seed, class_names, on_bad_file, workers=None, decoder="auto"):
        super().__init__(class_names)
        self.file_paths = list(file_paths)
        self._labels = labels
        self._label_mode, self._num_classes = label_mode, num_classes
        self._shape = (int(image_size[0]), int(image_size[1]), channels)
        self._decode = dict(interpolation=interpolation,
                            crop_to_aspect_ratio=crop_to_aspect_ratio,
                            pad_to_aspect_ratio=pad_to_aspect_ratio)
        self._batch = batch_size
        self._shuffle, self._seed = shuffle, seed
        self._on_bad_file = on_bad_file
        self._workers = workers
        self._decoder = decoder
        self._passes = 0
        self._lock = threading.Lock()

    def cardinality(self):
        n = len(self.file_paths)
        return n if self._batch is None else -(-n // self._batch)

    def _label_batch(self, idx):
        y = self._labels[idx]
        if self._label_mode == "int":
            return y.astype(np.int32)
        if self._label_mode == "binary":
            return y.astype(np.float32).reshape(-1, 1)
        out = np.zeros((len(idx), self._num_classes), np.float32)
        out[np.arange(len(idx)), y] = 1.0
        return out

    def _task(self, idx):
        return ([self.file_paths[j] for j in idx], self._shape, self._decode,
                self._on_bad_file)

    def _finish(self, idx, decoded):
        """The batch of ``decoded`` (decode_batch's answer): warnings, labels."""
        x, keep, messages = decoded
        for m in messages:
            warnings.warn("%s; the file is skipped" % m, stacklevel=3)
        if self._label_mode is None:
            return x
        return x, self._label_batch(np.asarray(idx)[keep])

    def _make_iter(self):
        with self._lock:
            epoch = self._passes
            self._passes += 1
        n = len(self.file_paths)
        order = np.arange(n)
        if self._shuffle:  # a full reshuffle per pass, a pure function of (seed, pass)
            order = np.random.default_rng([self._seed, epoch]).permutation(n)
        size = self._batch or 32
        chunks = [order[lo:lo + size] for lo in range(0, n, size)]
        return self._produce(chunks)

    def _use_processes(self):
        if self._decoder == "auto":
            return len(self.file_paths) >= _PROCESS_MIN_FILES
        return self._decoder == "processes"

    def _prestart(self):
        """Boots the worker processes now, while the caller builds its model."""
        if self._use_processes():
            decode_workers.prestart(self._workers or _worker_count())

    def _produce(self, chunks):
        workers = self._workers or _worker_count()
        depth = 2 * workers  # batches in flight: bounds memory, keeps every worker busy
        if self._use_processes():
            batches = self._from_processes(chunks, workers, depth)
        else:
            batches = self._from_threads(chunks, workers, depth)
        try:
            for out in batches:
                size = len(out[0] if isinstance(out, tuple) else out)
                if size == 0:
                    continue
                if self._batch is not None:
                    yield out
                else:
                    for i in range(size):
                        yield (out[0][i], out[1][i]) if isinstance(out, tuple) else out[i]
        finally:  # an early stop reaches the decoders now, not when collected
            batches.close()

    def _from_threads(self, chunks, workers, depth):
        pool = _decode_pool(workers)
        window = collections.deque()
        try:
            nxt = 0
            while nxt < len(chunks) or window:
                while nxt < len(chunks) and len(window) < depth:
                    window.append(pool.submit(decode_workers.decode_batch,
                                              *self._task(chunks[nxt])))
                    nxt += 1
                yield self._finish(chunks[nxt - len(window)], window.popleft().result())
        finally:
            for f in window:  # an early stop: drop what was not started, wait for the rest
                f.cancel()
            concurrent.futures.wait(window)

    def _from_processes(self, chunks, workers, depth):
        pool = decode_workers.acquire_pool(workers)
        try:
            nxt = done = 0
            while done < len(chunks):
                while nxt < len(chunks) and nxt - done < depth:
                    pool.submit(self._task(chunks[nxt]))
                    nxt += 1
                decoded = pool.result()
                done += 1
                yield self._finish(chunks[done - 1], decoded)
        finally:  # an early stop or an error: read what is still due, keep the pool
            decode_workers.release_pool(pool)


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, format="tf",
                                 verbose=True, on_bad_file="error", decoder="auto"):
    """Generates a Dataset of images from the files of a folder (Keras 3's
    ``keras.utils.image_dataset_from_directory``).

    With ``labels="inferred"`` the folder holds one sub-folder per class::

        main_directory/
        ...class_a/
        ......a_image_1.jpg
        ...class_b/
        ......b_image_1.jpg

    Files are listed, shuffled and split exactly as Keras does for the same ``seed``.
    Images are uint8 ``(batch, height, width, channels)`` (Keras yields float32 with the
    same values; a model starting with ``Rescaling`` takes them directly), resized with
    Pillow's filters (which smooth when shrinking).

    Args:
        directory: the folder of images (with class sub-folders when labels="inferred").
        labels: "inferred", None, or a list/tuple of int labels in the sorted order of the
            image paths.
        label_mode: "int" (int32 ``(batch,)``), "categorical" (float32 one-hot),
            "binary" (float32 ``(batch, 1)``, two classes), or None (images only).
        class_names: with labels="inferred", the sub-folders to use and their order.
        color_mode: "grayscale", "rgb" or "rgba" (1, 3 or 4 channels).
        batch_size: images per batch (default 32); None yields single images.
        image_size: ``(height, width)`` the images are resized to (default (256, 256)).
        shuffle: shuffle the files (default True); False sorts them alphanumerically.
        seed: the seed of the shuffle and the split.
        validation_split: the fraction of the files kept for validation.
        subset: "training", "validation" or "both" (a tuple of two datasets).
        interpolation: "bilinear", "nearest", "bicubic", "area" or "lanczos3".
        follow_links: descend into symlinked sub-folders.
        crop_to_aspect_ratio: resize the largest centred crop of the target's aspect.
        pad_to_aspect_ratio: resize to fit, keeping the aspect, and pad with zeros.
        data_format: None or "channels_last".
        format: "tf" (fastcnn's Dataset either way).
        verbose: print how many files were found.
        on_bad_file: "error" (default): a corrupt, truncated, non-image or oversized file,
            an empty class folder or a symlink loop raises an error naming it; "warn": a
            warning, and the file skipped (labels stay aligned with their images).
        decoder: who decodes (fastcnn only): "threads" (Pillow in threads of this
            process), "processes" (as many worker processes, started once and kept), or
            "auto" (default): processes for 2048 files or more, else threads. Both give
            bitwise the same batches.

    Returns:
        A :class:`fastcnn.data.Dataset` with ``class_names`` and ``file_paths``, or a tuple
        ``(train_ds, val_ds)`` with subset="both".

    Raises:
        ValueError: invalid arguments, no images, or a bad file / folder (on_bad_file).
        ImportError: Pillow is not installed.
    """
    who = "image_dataset_from_directory"
    directory = os.fspath(directory)
    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple, np.ndarray)):
            raise ValueError("`labels` argument should be a list/tuple of integer labels, of "
                             "the same size as the number of image files in the target "
                             "directory. If you wish to infer the labels from the "
                             'subdirectory names in the target directory, pass '
                             '`labels="inferred"`. If you wish to get a dataset that only '
                             "contains images (no labels), pass `labels=None`. Received: "
                             "labels=%r" % (labels,))
        if class_names:
            raise ValueError('You can only pass `class_names` if `labels="inferred"`. '
                             "Received: labels=%r, and class_names=%r" % (labels, class_names))
        labels = [int(v) for v in labels]
        if any(v < 0 for v in labels):
            raise ValueError("%s: labels must be >= 0, got %d" % (who, min(labels)))
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError('`label_mode` argument must be one of "int", "categorical", '
                         '"binary", or None. Received: label_mode=%r' % (label_mode,))
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    if color_mode not in images._CHANNELS:
        raise ValueError('`color_mode` must be one of {"rgb", "rgba", "grayscale"}. '
                         "Received: color_mode=%r" % (color_mode,))
    channels = images._CHANNELS[color_mode]
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                       for v in image_size)):
        raise ValueError("Invalid `image_size` value. Expected a tuple of 2 positive "
                         "integers. Received: image_size=%r" % (image_size,))
    interpolation = str(interpolation).lower()
    if interpolation not in images.INTERPOLATIONS:
        raise ValueError("Argument `interpolation` should be one of %s (fastcnn resizes with "
                         "Pillow, which has no lanczos5, gaussian or mitchellcubic). "
                         "Received: interpolation=%r"
                         % (tuple(images.INTERPOLATIONS), interpolation))
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio`, `crop_to_aspect_ratio` can be "
                         "set to `True`.")
    if data_format not in (None, "channels_last"):
        raise ValueError("%s: fastcnn is channels_last only; data_format=%r is not supported"
                         % (who, data_format))
    if format != "tf":
        raise ValueError('%s: format must be "tf" (fastcnn returns its own Dataset); '
                         "got %r" % (who, format))
    if on_bad_file not in _BAD_FILE_OPTIONS:
        raise ValueError("%s: on_bad_file must be 'error' or 'warn', got %r"
                         % (who, on_bad_file))
    if decoder not in _DECODERS:
        raise ValueError("%s: decoder must be 'auto', 'threads' or 'processes', got %r"
                         % (who, decoder))
    if batch_size is not None:
        if (isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral)
                or batch_size < 1):
            raise ValueError("%s: batch_size must be a positive int or None, got %r"
                             % (who, batch_size))
    # Keras' check_validation_split_arg
    if validation_split and not 0 < validation_split < 1:
        raise ValueError("`validation_split` must be between 0 and 1, received: %r"
                         % (validation_split,))
    if (validation_split or subset) and not (validation_split and subset):
        raise ValueError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise ValueError('`subset` must be either "training", "validation" or "both", '
                         "received: %r" % (subset,))
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must "
                         "provide a `seed` argument, to make sure that there is no overlap "
                         "between the training and validation subset.")
    images._pil()  # a clear ImportError before any work
    if seed is None:
        seed = np.random.randint(1e6)
    paths, labels, class_names = index_directory(
        directory, labels, formats=ALLOWLIST_FORMATS, class_names=class_names,
        shuffle=shuffle, seed=seed, follow_links=follow_links, verbose=verbose,
        on_bad_file=on_bad_file)
    if label_mode == "binary" and len(class_names) != 2:
        raise ValueError('When passing `label_mode="binary"`, there must be exactly 2 '
                         "class_names. Received: class_names=%s" % (class_names,))
    num_classes = len(class_names) if class_names else 0
    if labels is not None and label_mode == "categorical" and len(labels) \
            and labels.max() >= num_classes:
        raise ValueError("%s: label %d is outside the %d classes" % (who, labels.max(),
                                                                    num_classes))

    def make(p, y, shuffle_batches):
        ds = ImageFolderDataset(p, y, label_mode, num_classes, image_size, channels,
                                interpolation, crop_to_aspect_ratio, pad_to_aspect_ratio,
                                batch_size, shuffle_batches, seed, class_names, on_bad_file,
                                decoder=decoder)
        ds._prestart()
        return ds

    if subset == "both":
        p_tr, y_tr = _split(paths, labels, validation_split, "training", verbose)
        p_va, y_va = _split(paths, labels, validation_split, "validation", verbose)
        if not p_tr:
            raise ValueError("No training images found in directory %s. Allowed formats: %s"
                             % (directory, ALLOWLIST_FORMATS))
        if not p_va:
            raise ValueError("No validation images found in directory %s. Allowed formats: "
                             "%s" % (directory, ALLOWLIST_FORMATS))
        return make(p_tr, y_tr, shuffle), make(p_va, y_va, False)
    paths, labels = _split(paths, labels, validation_split, subset, verbose)
    if not paths:
        raise ValueError("No images found in directory %s. Allowed formats: %s"
                         % (directory, ALLOWLIST_FORMATS))
    return make(paths, labels, shuffle)


