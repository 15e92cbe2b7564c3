"""Batch sources of fit / evaluate / predict other than in-memory arrays (as Keras'
``trainers/data_adapters`` + ``epoch_iterator``).

An adapter turns ``x`` into an iterator of batches per epoch; :class:`EpochIterator` applies
Keras 3's ``steps_per_epoch`` rules: without it an epoch is one full pass; with it an
epoch is ``steps_per_epoch`` batches taken from an iterator that carries over to the next
epoch, restarting once a source of known length is used up, and a source that runs dry early
stops training with Keras' warning.
"""
import collections
import collections.abc
import concurrent.futures
import warnings

import numpy as np

from ..data.dataset import Dataset
from ..data.py_dataset import PyDataset

__all__ = ["is_batch_source", "get_adapter", "EpochIterator", "unpack_batch"]

_RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset "
            "or generator can generate at least `steps_per_epoch * epochs` batches. You may "
            "need to use the `.repeat()` function when building your dataset.")


def is_batch_source(x):
    """Whether ``x`` is a dataset, a PyDataset or an iterable of batches (not arrays)."""
    if isinstance(x, (Dataset, PyDataset)):
        return True
    if x is None or isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return False
    return isinstance(x, collections.abc.Iterable)


def unpack_batch(batch, who):
    """``(x, y, sample_weight)`` of one batch (``x``, ``(x,)``, ``(x, y)`` or
    ``(x, y, sw)``; y and sw None when absent)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if len(batch) not in (1, 2, 3):
        raise ValueError("%s: a batch must be x, (x,), (x, y) or (x, y, sample_weight); got "
                         "a tuple of %d items" % (who, len(batch)))
    return batch + (None,) * (3 - len(batch))


class _DatasetAdapter:
    def __init__(self, ds):
        self.ds = ds
        n = ds.cardinality()
        self.num_batches = n if n >= 0 else None

    def batches(self, epoch):
        return iter(self.ds)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class _IterableAdapter(_DatasetAdapter):
    """A Python generator / iterator (one pass only) or a re-iterable object."""

    def __init__(self, it):
        self.it = it
        self.num_batches = None
        self.one_pass = iter(it) is it

    def batches(self, epoch):
        return self.it if self.one_pass else iter(self.it)


class _PyDatasetAdapter:
    def __init__(self, pyds, shuffle, seed):
        self.pyds = pyds
        self.workers, self.queue = pyds._check()
        self.num_batches = pyds.num_batches
        self.shuffle, self.seed = shuffle and self.num_batches is not None, seed

    def _indices(self, epoch):
        if self.num_batches is None:
            import itertools
            return itertools.count()
        if self.shuffle:
            return iter(np.random.default_rng([self.seed, epoch, 1]).permutation(
                self.num_batches).tolist())
        return iter(range(self.num_batches))

    def batches(self, epoch):
        indices = self._indices(epoch)
        if self.workers <= 1:
            return (self.pyds[i] for i in indices)
        return self._threaded(indices)

    def _threaded(self, indices):
        pool = concurrent.futures.ThreadPoolExecutor(self.workers, "fastcnn-pydataset")
        window = collections.deque()
        try:
            for i in indices:
                window.append(pool.submit(self.pyds.__getitem__, i))
                if len(window) >= self.queue:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for f in window:
                f.cancel()
            pool.shutdown(wait=True)

    def on_epoch_begin(self):
        self.pyds.on_epoch_begin()

    def on_epoch_end(self):
        self.pyds.on_epoch_end()


def get_adapter(x, who, shuffle=False, seed=0):
    """The adapter of batch source ``x``."""
    if isinstance(x, Dataset):
        return _DatasetAdapter(x)
    if isinstance(x, PyDataset):
        return _PyDatasetAdapter(x, shuffle, seed)
    if is_batch_source(x):
        return _IterableAdapter(x)
    raise TypeError("%s: expected arrays, a fastcnn.data.Dataset, a PyDataset or an iterable "
                    "of batches, got %s" % (who, type(x).__name__))


class EpochIterator:
    """Batches per epoch from an adapter, with Keras 3's ``steps_per_epoch`` semantics.

    Attributes:
        num_batches: batches per epoch (steps_per_epoch, else the source's length, else
            None until a first pass has counted them).
        exhausted: a one-pass source ran dry (training should stop).
    """

    def __init__(self, adapter, steps_per_epoch=None):
        self.adapter = adapter
        self.steps_per_epoch = steps_per_epoch
        self._source_batches = adapter.num_batches
        self._it = None
        self._seen = 0
        self._epoch = 0
        self.exhausted = False

    @property
    def num_batches(self):
        return self.steps_per_epoch or self._source_batches

    def _new_iterator(self):
        if self.exhausted:
            return iter(())
        self._it = iter(self.adapter.batches(self._epoch))
        self._seen = 0
        return self._it

    def epoch(self):
        """A generator of ``(step, batch)`` for the next epoch."""
        self.adapter.on_epoch_begin()
        try:
            if self.steps_per_epoch is None:
                it = self._new_iterator()
                step = -1
                for step, batch in enumerate(it):
                    yield step, batch
                if step == -1 and isinstance(self.adapter, _IterableAdapter) \
                        and self.adapter.one_pass:
                    self.exhausted = True
                    warnings.warn(_RAN_OUT, stacklevel=3)
                elif self._source_batches is None:
                    self._source_batches = step + 1
                return
            if self._it is None:
                self._new_iterator()
            for step in range(self.steps_per_epoch):
                if self._source_batches and self._seen >= self._source_batches:
                    warnings.warn(_RAN_OUT, stacklevel=3)
                    break
                try:
                    batch = next(self._it)
                except StopIteration:
                    if self._source_batches is None:
                        self._source_batches = self._seen
                    warnings.warn(_RAN_OUT, stacklevel=3)
                    self._it = None
                    if isinstance(self.adapter, _IterableAdapter) and self.adapter.one_pass:
                        self.exhausted = True
                    break
                self._seen += 1
                yield step, batch
            if self._source_batches and self._seen >= self._source_batches:
                self._it = None  # a new pass next epoch
        finally:
            self._epoch += 1
            self.adapter.on_epoch_end()

    def close(self):
        """Stop a carried-over iterator's workers."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        self._it = None


class _ArrayAdapter:
    """In-memory (x, y) in batches, reshuffled per epoch (fit with a dataset as
    validation_data, or arrays as validation_data of a dataset)."""

    def __init__(self, x, y, batch_size, shuffle=False, seed=0):
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.num_batches = -(-len(x) // batch_size)

    def batches(self, epoch):
        n = len(self.x)
        order = (np.random.default_rng([self.seed, epoch, 2]).permutation(n)
                 if self.shuffle else None)
        for lo in range(0, n, self.batch_size):
            hi = min(lo + self.batch_size, n)
            if order is None:
                yield self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                yield self.x[idx], self.y[idx]

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def array_adapter(x, y, batch_size, shuffle=False, seed=0):
    """An adapter over arrays ``x`` / ``y`` (each a NumPy array)."""
    return _ArrayAdapter(np.asarray(x), np.asarray(y), batch_size, shuffle, seed)
