"""``PyDataset``: Keras 3's base class for Python data sources (``__len__`` + ``__getitem__``)."""
import itertools

__all__ = ["PyDataset"]


class PyDataset:
    """Base class for datasets written in Python (``keras.utils.PyDataset``).

    Subclasses implement ``__getitem__(index)`` returning a batch ``(x, y)`` (or ``(x,)``)
    of NumPy arrays, and ``__len__`` (the number of batches; or a ``num_batches`` property
    returning None for an infinite dataset). ``on_epoch_begin`` / ``on_epoch_end`` are
    called around each epoch of ``fit``. ``fit(shuffle=True)`` visits the batches of a
    finite PyDataset in a new random order each epoch, as Keras does.

    Args:
        workers: threads fetching batches ahead (1: in the training thread).
        use_multiprocessing: must be False (fastcnn runs workers as threads: the decoding
            and the kernels release the GIL).
        max_queue_size: batches fetched ahead at most (with workers > 1).

    Raises:
        ValueError: use_multiprocessing=True, or workers / max_queue_size < 1.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def _check(self):
        """The three settings, checked (subclasses may forget to call __init__)."""
        workers = getattr(self, "_workers", 1)
        multi = getattr(self, "_use_multiprocessing", False)
        queue = getattr(self, "_max_queue_size", 10)
        if multi:
            raise ValueError("%s: use_multiprocessing=True is not supported by fastcnn; its "
                             "workers are threads (Pillow and fastcnn's kernels release the "
                             "GIL), use workers=N alone" % type(self).__name__)
        for name, v in (("workers", workers), ("max_queue_size", queue)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError("%s: %s must be an int >= 1, got %r"
                                 % (type(self).__name__, name, v))
        return workers, queue

    @property
    def workers(self):
        """The number of threads that fetch batches (``__getitem__`` calls) ahead; 1: none."""
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        """Keras' flag; fastcnn fetches with threads, so only False is accepted."""
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        """How many fetched batches may wait in the queue (Keras' default 10)."""
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        """The batch at position ``index``."""
        raise NotImplementedError

    @property
    def num_batches(self):
        """How many batches an epoch has (``len(self)`` by default; None means endless)."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError("You need to implement the `num_batches` property:\n\n"
                                  "@property\ndef num_batches(self):\n  return ...")

    def __iter__(self):
        n = self.num_batches
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the beginning of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""
