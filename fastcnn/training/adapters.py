"""Where fit / evaluate / predict take their batches from (as Keras'
``trainers/data_adapters`` + ``epoch_iterator``).

An adapter turns ``x`` into an iterator of batches per epoch: :class:`ArrayAdapter` gathers
prepared in-memory arrays (shuffled by the caller's permutation, into reused buffers), the
others yield what a dataset, generator or PyDataset yields, which :func:`source_batch` turns
into the same :class:`Batch`. Under a data-parallel distribution every batch is a global
batch of which this rank takes its ``shard``. :class:`EpochIterator` applies
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

__all__ = ["is_batch_source", "get_adapter", "EpochIterator", "unpack_batch", "Batch",
           "ArrayAdapter", "source_batch", "take_rows", "Predictions"]

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

    Args:
        adapter: the source's adapter (``get_adapter`` or :class:`ArrayAdapter`).
        steps_per_epoch: batches per epoch (None: one full pass).
        convert: ``convert(raw batch)`` -> :class:`Batch` (e.g. :func:`source_batch`);
            None when the adapter yields Batch objects already.

    Attributes:
        num_batches: batches per epoch (steps_per_epoch, else the source's length, else
            None until a first pass has counted them).
        exhausted: a one-pass source ran dry (training should stop).
    """

    def __init__(self, adapter, steps_per_epoch=None, convert=None):
        self.adapter = adapter
        self.convert = convert  # raw batch of the source -> Batch (None: already one)
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

    def epoch(self, epoch=None):
        """A generator of ``(step, batch)`` for the next epoch (``epoch``: fit's epoch
        number, which seeds a shuffle; default: the epochs counted by this iterator)."""
        if epoch is not None:
            self._epoch = epoch
        self.adapter.on_epoch_begin()
        try:
            if self.steps_per_epoch is None:
                it = self._new_iterator()
                step = -1
                for step, batch in enumerate(it):
                    yield step, self._converted(batch)
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
                yield step, self._converted(batch)
            if self._source_batches and self._seen >= self._source_batches:
                self._it = None  # a new pass next epoch
        finally:
            self._epoch += 1
            self.adapter.on_epoch_end()

    def _converted(self, batch):
        return batch if self.convert is None else self.convert(batch)

    def close(self):
        """Stop a carried-over iterator's workers."""
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        self._it = None


class Batch:
    """One batch as the train/test/predict steps take it.

    Attributes:
        x: float32 inputs (this rank's rows); y: prepared targets or None;
        sample_weight: float32 per-sample weights or None.
        lo, hi: this rank's rows within the source (arrays) or within the global batch.
        size: rows of the global batch (``hi - lo`` without a distribution).
    """

    __slots__ = ("x", "y", "sample_weight", "lo", "hi", "size")

    def __init__(self, x, y, sample_weight, lo, hi, size):
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.lo, self.hi, self.size = lo, hi, size

    @property
    def rows(self):
        """This rank's number of rows (0 when a short global batch left it none)."""
        return self.hi - self.lo


def take_rows(buffers, x, y, sample_weight, lo, hi, idx=None, tag="xb"):
    """Rows ``lo:hi`` (or ``idx``) of prepared x / y / sample_weight.

    Args:
        buffers: the trainer's ``data.BatchBuffers``.
        x: prepared inputs (float32, or uint8 images).
        y, sample_weight: prepared targets and weights, each may be None.
        lo, hi: the rows (of the permutation ``idx`` when given).
        idx: the shuffled row indices of ``lo:hi``, or None.
        tag: the name of x's buffer.

    Returns:
        ``(x, y, sample_weight)``: x as float32 (uint8 converted in C, shuffled rows
        gathered into reused buffers, unshuffled float32 rows a view), y and weights
        gathered likewise or views.
    """
    if hi == lo:  # no rows for this rank: nothing to gather
        return (x[lo:hi], None if y is None else y[lo:hi],
                None if sample_weight is None else sample_weight[lo:hi])
    if idx is None:
        return (buffers.x_batch(x, lo, hi, tag=tag), None if y is None else y[lo:hi],
                None if sample_weight is None else sample_weight[lo:hi])
    return (buffers.x_batch(x, lo, hi, idx, tag=tag),
            None if y is None else buffers.gather(y, idx, "yb"),
            None if sample_weight is None else buffers.gather(sample_weight, idx, "swb"))


class ArrayAdapter:
    """Prepared in-memory arrays in batches of ``batch_size``.

    Args:
        buffers: the trainer's ``data.BatchBuffers`` (batches are gathered into them).
        x: prepared inputs (float32, or uint8 images converted per batch).
        y, sample_weight: prepared targets and per-sample weights (each may be None).
        batch_size: rows per (global) batch.
        permutation: ``permutation(epoch)`` -> the row order of that epoch, computed when
            the epoch's first batch is taken; None keeps the order.
        shard: ``shard(lo, hi)`` -> this rank's rows of a global batch (a distribution's
            ``Replica.shard``); None takes every row.
        tag: the name of x's gather buffer.
    """

    def __init__(self, buffers, x, y, sample_weight, batch_size, permutation=None,
                 shard=None, tag="xb"):
        self.buffers, self.x, self.y, self.sample_weight = buffers, x, y, sample_weight
        self.batch_size, self.permutation, self.shard, self.tag = (batch_size, permutation,
                                                                   shard, tag)
        self.num_batches = -(-x.shape[0] // batch_size)

    def batches(self, epoch):
        n = self.x.shape[0]
        perm = None if self.permutation is None else self.permutation(epoch)
        for start in range(0, n, self.batch_size):
            lo, hi = start, min(start + self.batch_size, n)
            if self.shard is not None:
                lo, hi = self.shard(lo, hi)
            xb, yb, swb = take_rows(self.buffers, self.x, self.y, self.sample_weight, lo, hi,
                                    None if perm is None else perm[lo:hi], self.tag)
            yield Batch(xb, yb, swb, lo, hi, min(start + self.batch_size, n) - start)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def source_batch(batch, who, prepare, buffers, shard=None, tag="xb"):
    """The :class:`Batch` of one batch a dataset / generator / PyDataset yielded.

    Args:
        batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``.
        who: the calling method, for error messages.
        prepare: ``prepare(x, y, sample_weight)`` -> the whole batch checked and converted
            (x float32 or uint8, targets, float32 weights; y and weights may be None).
        buffers: the trainer's ``data.BatchBuffers``.
        shard: ``shard(lo, hi)`` -> this rank's rows of the batch; None takes every row.
        tag: the name of x's conversion buffer.
    """
    x, y, sw = prepare(*unpack_batch(batch, who))
    n = x.shape[0]
    lo, hi = (0, n) if shard is None else shard(0, n)
    xb, yb, swb = take_rows(buffers, x, y, sw, lo, hi, tag=tag)
    return Batch(xb, yb, swb, lo, hi, n)


class Predictions:
    """predict's outputs, batch by batch.

    Args:
        sample_shape: the shape of one sample's output.
        rows: the number of rows when known in advance (arrays): outputs are written into
            one array at each batch's ``lo:hi``; None collects a copy of each batch.
        gather: ``gather(local, rows)`` -> every rank's rows (a distribution's
            ``Replica.gather``): applied to each batch when ``rows`` is None, else to the
            whole result (``rows`` is then this rank's part of ``total_rows``).
        total_rows: the rows of every rank together (with ``rows`` and ``gather``).
    """

    def __init__(self, sample_shape, rows=None, gather=None, total_rows=None):
        self.sample_shape = tuple(sample_shape)
        self.gather, self.total_rows = gather, total_rows
        self.out = None if rows is None else np.empty((rows,) + self.sample_shape,
                                                      np.float32)
        self.parts = []

    def add(self, batch, out):
        """Store the outputs ``out`` of ``batch`` (None: the batch had no rows here);
        returns what was stored (a view for arrays)."""
        if self.out is not None:
            self.out[batch.lo:batch.hi] = out
            return self.out[batch.lo:batch.hi]
        local = (np.empty((0,) + self.sample_shape, np.float32) if out is None
                 else np.array(out, dtype=np.float32, copy=True))
        if self.gather is not None:
            local = self.gather(local, batch.size)
        self.parts.append(local)
        return local

    def result(self):
        """Every output, in the order of the input."""
        if self.out is not None:
            return self.out if self.gather is None else self.gather(self.out, self.total_rows)
        if not self.parts:
            return np.empty((0,) + self.sample_shape, np.float32)
        return np.concatenate(self.parts)
