"""``AlternatingFlip``: in-memory images served with airbench's alternating mirror."""
import numpy as np

from .py_dataset import PyDataset

__all__ = ["AlternatingFlip"]


class AlternatingFlip(PyDataset):
    """Batches ``(x, y)`` of in-memory images in a new random order each epoch, each image
    mirrored left-right in every other epoch: a random half of the images starts mirrored
    and every image changes side at each epoch (Keller Jordan's "alternating flip", from
    airbench). Random flips show an image the same way in two epochs running half of the
    time; this shows both sides in any two epochs running. Use it in place of a
    ``RandomFlip("horizontal")`` layer.

    Args:
        x: images, (N, H, W, C) (any dtype; uint8 stays uint8).
        y: targets, N rows, or None (batches are then ``(x,)``).
        batch_size: images per batch, >= 1 (the last batch may be smaller).
        seed: seeds the order and the starting sides.

    Raises:
        ValueError: ``x`` not 4-D, ``y`` of another length, or a bad ``batch_size``.

    Example:
        >>> x = np.arange(6, dtype=np.uint8).reshape(2, 1, 3, 1)  # two 1x3 images
        >>> data = fastcnn.data.AlternatingFlip(x, None, batch_size=2, seed=0)
        >>> seen = []
        >>> for epoch in range(2):
        ...     seen += [image[0, :, 0].tolist() for image in data[0][0]]
        ...     data.on_epoch_end()
        >>> sorted(seen)  # each image once each way
        [[0, 1, 2], [2, 1, 0], [3, 4, 5], [5, 4, 3]]
    """

    def __init__(self, x, y=None, batch_size=32, seed=None, **kwargs):
        super().__init__(**kwargs)
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError("AlternatingFlip: x must be images (N, H, W, C), got shape %s"
                             % (x.shape,))
        if y is not None:
            y = np.asarray(y)
            if len(y) != len(x):
                raise ValueError("AlternatingFlip: y has %d rows for %d images" % (len(y), len(x)))
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError("AlternatingFlip: batch_size must be an integer >= 1, got %r"
                             % (batch_size,))
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self._rng = np.random.default_rng(seed)
        self._start_mirrored = self._rng.random(len(x)) < 0.5
        self.epoch = 0
        self._order = self._rng.permutation(len(x))

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        """Batch ``index`` of this epoch's order, its images on this epoch's side."""
        if not 0 <= index < len(self):
            raise IndexError("AlternatingFlip: batch %d of %d" % (index, len(self)))
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.x[rows]
        mirrored = self._start_mirrored[rows] ^ bool(self.epoch % 2)
        images[mirrored] = images[mirrored, :, ::-1]
        return (images,) if self.y is None else (images, self.y[rows])

    def on_epoch_end(self):
        """The next epoch: a new order, every image on its other side."""
        self.epoch += 1
        self._order = self._rng.permutation(len(self.x))
