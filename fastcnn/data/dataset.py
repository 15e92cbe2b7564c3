"""``fastcnn.data.Dataset``: the subset of ``tf.data.Dataset`` that Keras tutorials use.

A dataset is a lazy pipeline of nodes (from_tensor_slices, an image folder, map, batch,
shuffle, cache, prefetch, ...); iterating it yields NumPy elements, usually ``(images,
labels)`` batches. Only ``cache()`` keeps data: every other node holds a bounded number of
elements, so a dataset larger than memory streams.
"""
import collections
import concurrent.futures
import os
import queue
import threading

import numpy as np

__all__ = ["Dataset", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY"]

AUTOTUNE = -1
INFINITE_CARDINALITY = -1
UNKNOWN_CARDINALITY = -2
_AUTOTUNE_PREFETCH = 2


def _map_structure(fn, element):
    if isinstance(element, tuple):
        return tuple(fn(e) for e in element)
    return fn(element)


def _check_count(value, arg, who, allow_minus_one=False):
    import numbers
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError("Dataset.%s: %s must be an int, got %r" % (who, arg, value))
    value = int(value)
    if value < (-1 if allow_minus_one else 0):
        raise ValueError("Dataset.%s: %s must be >= %d, got %d"
                         % (who, arg, -1 if allow_minus_one else 0, value))
    return value


def _worker_count():
    from .. import get_num_threads
    return max(1, min(os.cpu_count() or 1, get_num_threads()))


class Dataset:
    """A lazy, re-iterable pipeline of NumPy elements (as ``tf.data.Dataset``).

    Datasets are made by :meth:`from_tensor_slices` or
    ``fastcnn.utils.image_dataset_from_directory`` and transformed by :meth:`batch`,
    :meth:`unbatch`, :meth:`map`, :meth:`shuffle`, :meth:`cache`, :meth:`prefetch`,
    :meth:`take`, :meth:`skip` and :meth:`repeat`; each returns a new dataset. Iterating
    (``for images, labels in ds``) yields NumPy arrays (tuples of them); each ``for`` loop
    is a new pass over the data (an epoch).

    Attributes:
        class_names: the class names of an image-folder dataset (kept by transformations),
            else None.
    """

    def __init__(self, class_names=None):
        self.class_names = class_names

    # -- what a node implements
    def _make_iter(self):
        raise NotImplementedError

    def cardinality(self):
        """The number of elements: an int, or ``INFINITE_CARDINALITY`` (-1) /
        ``UNKNOWN_CARDINALITY`` (-2)."""
        raise NotImplementedError

    # -- the Python protocol
    def __iter__(self):
        return self._make_iter()

    def __len__(self):
        n = self.cardinality()
        if n == INFINITE_CARDINALITY:
            raise TypeError("The dataset is infinite.")
        if n == UNKNOWN_CARDINALITY:
            raise TypeError("The dataset length is unknown.")
        return n

    def __bool__(self):
        return True

    def __repr__(self):
        n = self.cardinality()
        size = {INFINITE_CARDINALITY: "infinite", UNKNOWN_CARDINALITY: "unknown"}.get(n, n)
        return "<%s cardinality=%s>" % (type(self).__name__.lstrip("_"), size)

    def as_numpy_iterator(self):
        """An iterator over the elements as NumPy arrays (iterating does the same)."""
        return iter(self)

    # -- sources
    @staticmethod
    def from_tensor_slices(tensors):
        """A dataset whose elements are the rows of ``tensors`` (an array or a tuple of
        arrays with the same first dimension): ``from_tensor_slices((x, y))``.

        Args:
            tensors: an array, or a tuple/list of arrays.

        Returns:
            A Dataset.

        Raises:
            ValueError: the arrays have different lengths, or a scalar is given.
        """
        return _Slices(tensors)

    @staticmethod
    def range(*args):
        """``Dataset.range(stop)`` / ``(start, stop[, step])``: int64 scalars, as
        ``np.arange``."""
        return _Slices(np.arange(*args, dtype=np.int64))

    @staticmethod
    def from_generator(generator, output_signature=None, output_types=None,
                       output_shapes=None, args=None):
        """A dataset whose elements are what ``generator(*args)`` yields (called anew for
        each pass; its length is unknown).

        Args:
            generator: a callable returning an iterator of NumPy arrays / tuples of them.
            output_signature, output_types, output_shapes: accepted for tf.data code
                (fastcnn yields the arrays as they are).
            args: a tuple of arguments for ``generator``.

        Returns:
            A Dataset.
        """
        if not callable(generator):
            raise TypeError("Dataset.from_generator: generator must be callable (a function "
                            "returning an iterator), got %r" % (generator,))
        return _Generator(generator, tuple(args or ()))

    # -- transformations
    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
              deterministic=None):
        """Stack consecutive elements into batches of ``batch_size``.

        Args:
            batch_size: elements per batch.
            drop_remainder: drop a last, smaller batch.
            num_parallel_calls, deterministic: accepted for tf.data code (ignored).

        Returns:
            A Dataset.
        """
        return _Batch(self, _check_count(batch_size, "batch_size", "batch") or _bad_batch(),
                      bool(drop_remainder))

    def unbatch(self):
        """Split each batch into its elements (the inverse of :meth:`batch`)."""
        return _Unbatch(self)

    def map(self, map_func, num_parallel_calls=None, deterministic=None):
        """Apply ``map_func`` to each element (``map_func(*element)`` for tuples).

        Args:
            map_func: a function of NumPy arrays returning arrays.
            num_parallel_calls: None to call it in the iterating thread; an int or
                ``AUTOTUNE`` to call it from worker threads (results stay in order).
            deterministic: accepted for tf.data code (the order is always kept).

        Returns:
            A Dataset.
        """
        if not callable(map_func):
            raise TypeError("Dataset.map: map_func must be callable, got %r" % (map_func,))
        workers = None
        if num_parallel_calls is not None:
            workers = (_worker_count() if num_parallel_calls == AUTOTUNE
                       else _check_count(num_parallel_calls, "num_parallel_calls", "map"))
        return _Map(self, map_func, workers)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True):
        """Shuffle with a buffer of ``buffer_size`` elements (as tf.data: each element
        is drawn at random from the buffer, which is refilled from the input).

        Args:
            buffer_size: the buffer's size (>= the dataset's length: a full shuffle).
            seed: the seed (default: drawn from fastcnn's generator, see
                ``fastcnn.utils.set_random_seed``).
            reshuffle_each_iteration: a new order for each pass.

        Returns:
            A Dataset.
        """
        buffer_size = _check_count(buffer_size, "buffer_size", "shuffle")
        if buffer_size == 0:
            raise ValueError("Dataset.shuffle: buffer_size must be >= 1, got 0")
        if seed is None:
            from .. import utils
            seed = utils._draw_seed()
        return _Shuffle(self, buffer_size, int(seed), bool(reshuffle_each_iteration))

    def cache(self, filename=""):
        """Keep the elements of the first complete pass; later passes replay them.

        Args:
            filename: "" to keep them in memory, else a file path (written on the first
                complete pass, reused by later passes and later datasets naming it).

        Returns:
            A Dataset.
        """
        return _Cache(self, os.fspath(filename))

    def prefetch(self, buffer_size):
        """Produce up to ``buffer_size`` elements ahead in a background thread.

        Args:
            buffer_size: an int, or ``AUTOTUNE``.

        Returns:
            A Dataset.
        """
        n = _check_count(buffer_size, "buffer_size", "prefetch", allow_minus_one=True)
        return _Prefetch(self, _AUTOTUNE_PREFETCH if n == AUTOTUNE else n)

    def take(self, count):
        """The first ``count`` elements (all of them when ``count`` is -1)."""
        return _Take(self, _check_count(count, "count", "take", allow_minus_one=True))

    def skip(self, count):
        """All but the first ``count`` elements (none when ``count`` is -1)."""
        return _Skip(self, _check_count(count, "count", "skip", allow_minus_one=True))

    def repeat(self, count=None):
        """The dataset repeated ``count`` times (forever when None or -1)."""
        count = -1 if count is None else _check_count(count, "count", "repeat",
                                                     allow_minus_one=True)
        return _Repeat(self, count)


def _bad_batch():
    raise ValueError("Dataset.batch: batch_size must be >= 1, got 0")


class _Node(Dataset):
    def __init__(self, source):
        super().__init__(getattr(source, "class_names", None))
        self._source = source


# ------------------------------------------------------------------------------ sources

class _Slices(Dataset):
    def __init__(self, tensors):
        super().__init__()
        self._tuple = isinstance(tensors, (tuple, list))
        parts = list(tensors) if self._tuple else [tensors]
        if not parts:
            raise ValueError("Dataset.from_tensor_slices: got an empty tuple")
        self._parts = [np.asarray(p) for p in parts]
        lengths = set()
        for p in self._parts:
            if p.ndim == 0:
                raise ValueError("Dataset.from_tensor_slices: cannot slice a scalar (each "
                                 "component needs a first dimension)")
            lengths.add(p.shape[0])
        if len(lengths) != 1:
            raise ValueError("Dataset.from_tensor_slices: the components have different "
                             "lengths %s" % [p.shape[0] for p in self._parts])
        self._n = lengths.pop()

    def cardinality(self):
        return self._n

    def _element(self, lo, hi=None):
        rows = [p[lo] if hi is None else p[lo:hi] for p in self._parts]
        return tuple(rows) if self._tuple else rows[0]

    def _make_iter(self):
        for i in range(self._n):
            yield self._element(i)

    def _batches(self, batch_size, drop_remainder):
        n = self._n - (self._n % batch_size if drop_remainder else 0)
        for lo in range(0, n, batch_size):
            yield self._element(lo, min(lo + batch_size, n))


class _Generator(Dataset):
    def __init__(self, fn, args):
        super().__init__()
        self._fn, self._args = fn, args

    def cardinality(self):
        return UNKNOWN_CARDINALITY

    def _make_iter(self):
        return iter(self._fn(*self._args))


# -------------------------------------------------------------------------- transformations

def _stack(elements):
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(np.stack([e[i] for e in elements]) for i in range(len(first)))
    return np.stack(elements)


class _Batch(_Node):
    def __init__(self, source, batch_size, drop_remainder):
        super().__init__(source)
        self._size, self._drop = batch_size, drop_remainder

    def cardinality(self):
        n = self._source.cardinality()
        if n < 0:
            return n
        return n // self._size if self._drop else -(-n // self._size)

    def _make_iter(self):
        if isinstance(self._source, _Slices):  # contiguous rows: slices, no per-row loop
            yield from self._source._batches(self._size, self._drop)
            return
        pending = []
        for element in self._source:
            pending.append(element)
            if len(pending) == self._size:
                yield _stack(pending)
                pending = []
        if pending and not self._drop:
            yield _stack(pending)


class _Unbatch(_Node):
    def cardinality(self):
        n = self._source.cardinality()
        return n if n == INFINITE_CARDINALITY else UNKNOWN_CARDINALITY

    def _make_iter(self):
        for element in self._source:
            n = (element[0] if isinstance(element, tuple) else element).shape[0]
            for i in range(n):
                yield _map_structure(lambda a, i=i: a[i], element)


class _Map(_Node):
    def __init__(self, source, fn, workers):
        super().__init__(source)
        self._fn, self._workers = fn, workers

    def cardinality(self):
        return self._source.cardinality()

    def _call(self, element):
        return self._fn(*element) if isinstance(element, tuple) else self._fn(element)

    def _make_iter(self):
        if not self._workers:
            for element in self._source:
                yield self._call(element)
            return
        window = collections.deque()
        pool = concurrent.futures.ThreadPoolExecutor(self._workers)
        try:
            for element in self._source:
                window.append(pool.submit(self._call, element))
                if len(window) >= 2 * self._workers:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for f in window:
                f.cancel()
            pool.shutdown(wait=True)


class _Shuffle(_Node):
    def __init__(self, source, buffer_size, seed, reshuffle):
        super().__init__(source)
        self._buffer, self._seed, self._reshuffle = buffer_size, seed, reshuffle
        self._passes = 0
        self._lock = threading.Lock()

    def cardinality(self):
        return self._source.cardinality()

    def _make_iter(self):
        with self._lock:
            epoch = self._passes if self._reshuffle else 0
            self._passes += 1
        rng = np.random.default_rng([self._seed, epoch])
        buf = []
        for element in self._source:
            if len(buf) < self._buffer:
                buf.append(element)
                continue
            j = int(rng.integers(len(buf)))
            out, buf[j] = buf[j], element
            yield out
        while buf:  # drain in random order
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            yield buf.pop()


class _Take(_Node):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def cardinality(self):
        n = self._source.cardinality()
        if self._count == -1:
            return n
        if n == INFINITE_CARDINALITY:
            return self._count
        return n if n == UNKNOWN_CARDINALITY else min(n, self._count)

    def _make_iter(self):
        if self._count == -1:
            yield from self._source
            return
        if self._count == 0:
            return
        it = iter(self._source)
        try:
            for i, element in enumerate(it):
                yield element
                if i + 1 >= self._count:
                    break
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # stops the source's workers now


class _Skip(_Node):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def cardinality(self):
        n = self._source.cardinality()
        if self._count == -1:
            return 0 if n >= 0 else n
        return n if n < 0 else max(0, n - self._count)

    def _make_iter(self):
        if self._count == -1:
            for _ in self._source:
                pass
            return
        for i, element in enumerate(self._source):
            if i >= self._count:
                yield element


class _Repeat(_Node):
    def __init__(self, source, count):
        super().__init__(source)
        self._count = count

    def cardinality(self):
        n = self._source.cardinality()
        if self._count == -1:
            return 0 if n == 0 else INFINITE_CARDINALITY
        return n if n < 0 else n * self._count

    def _make_iter(self):
        i = 0
        while self._count == -1 or i < self._count:
            produced = False
            for element in self._source:
                produced = True
                yield element
            if not produced:
                return  # an empty dataset repeated forever is still empty
            i += 1


class _Cache(_Node):
    def __init__(self, source, filename):
        super().__init__(source)
        self._filename = filename
        self._memory = None
        self._lock = threading.Lock()

    def cardinality(self):
        return self._source.cardinality()

    def _make_iter(self):
        if self._filename:
            if os.path.exists(self._filename):
                return _read_cache_file(self._filename)
            return self._fill_file()
        if self._memory is not None:
            return iter(self._memory)
        return self._fill_memory()

    def _fill_memory(self):
        kept = []
        for element in self._source:
            kept.append(_map_structure(_own, element))
            yield element
        with self._lock:  # only a complete pass is kept (a partial one is discarded)
            if self._memory is None:
                self._memory = kept

    def _fill_file(self):
        from .._fileio import atomic_write
        with atomic_write(self._filename) as f:  # renamed into place only when complete
            for element in self._source:
                _write_element(f, element)
                yield element


def _own(a):
    """A copy unless ``a`` owns its memory (a view would pin its whole base)."""
    a = np.asarray(a)
    return a if a.base is None and a.flags.c_contiguous else np.ascontiguousarray(a).copy()


def _write_element(f, element):
    parts = element if isinstance(element, tuple) else (element,)
    np.save(f, np.array([len(parts), int(isinstance(element, tuple))], np.int64),
            allow_pickle=False)
    for p in parts:
        np.save(f, np.asarray(p), allow_pickle=False)


def _read_cache_file(filename):
    with open(filename, "rb") as f:
        while True:
            try:
                head = np.load(f, allow_pickle=False)
            except EOFError:
                return
            except ValueError as e:
                raise ValueError("Dataset.cache: %s is not a cache file written by fastcnn "
                                 "(or is damaged): %s; delete it to rebuild the cache"
                                 % (filename, e)) from None
            n, is_tuple = int(head[0]), bool(head[1])
            parts = tuple(np.load(f, allow_pickle=False) for _ in range(n))
            yield parts if is_tuple else parts[0]


_DONE = object()


class _Prefetch(_Node):
    def __init__(self, source, buffer_size):
        super().__init__(source)
        self._size = buffer_size

    def cardinality(self):
        return self._source.cardinality()

    def _make_iter(self):
        if self._size == 0:
            return iter(self._source)
        return _background(self._source, self._size)


def _background(source, size):
    """Iterate ``source`` in a daemon thread, ``size`` elements ahead; closing (or dropping)
    the returned generator stops the thread."""
    q = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run():
        it = iter(source)
        try:
            for element in it:
                if not put((element, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # re-raised in the consumer
            put((_DONE, e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name="fastcnn-prefetch", daemon=True)
    thread.start()

    def consume():
        try:
            while True:
                element, error = q.get()
                if element is _DONE:
                    if error is not None:
                        raise error
                    return
                yield element
        finally:
            stop.set()
    return consume()
