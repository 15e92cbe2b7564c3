"""data.AlternatingFlip: every image once per epoch, on alternate sides in consecutive epochs,
targets kept with their images, usable by fit, and its refusals."""
import numpy as np
import pytest

from fastcnn import data, layers, losses, models, optimizers


def _images(n=23):
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (n, 4, 5, 3), dtype=np.uint8), np.arange(n)


def _epoch(ds):
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    ds.on_epoch_end()
    return np.concatenate(xs), np.concatenate(ys)


def test_each_image_once_per_epoch_on_alternate_sides():
    x, y = _images()
    ds = data.AlternatingFlip(x, y, batch_size=5, seed=1)
    assert len(ds) == 5
    sides, orders = [], []
    for _ in range(4):
        bx, by = _epoch(ds)
        assert sorted(by.tolist()) == list(range(len(x)))  # a permutation
        orders.append(by.tolist())
        mirrored = np.array([np.array_equal(img, x[i][:, ::-1]) for img, i in zip(bx, by)])
        plain = np.array([np.array_equal(img, x[i]) for img, i in zip(bx, by)])
        assert np.all(mirrored | plain)
        side = np.empty(len(x), bool)
        side[by] = mirrored
        sides.append(side)
    for a, b in zip(sides, sides[1:]):
        np.testing.assert_array_equal(a, ~b)
    assert 0 < sides[0].sum() < len(x)  # a random half starts mirrored
    assert orders[0] != orders[1]
    x_before = x.copy()
    _epoch(ds)
    np.testing.assert_array_equal(x, x_before)  # the caller's images are not touched


def test_same_seed_same_batches_and_no_targets():
    x, _ = _images()
    a = data.AlternatingFlip(x, None, batch_size=7, seed=5)
    b = data.AlternatingFlip(x, None, batch_size=7, seed=5)
    for _ in range(2):
        for i in range(len(a)):
            assert len(a[i]) == 1
            np.testing.assert_array_equal(a[i][0], b[i][0])
        a.on_epoch_end()
        b.on_epoch_end()


def test_fit_on_alternating_flips():
    x, _ = _images(40)
    y = (x[:, :, :2].mean(axis=(1, 2, 3)) > x[:, :, 3:].mean(axis=(1, 2, 3))).astype(int)
    model = models.Sequential([layers.Input(shape=(4, 5, 3)), layers.Rescaling(1 / 255),
                               layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                               layers.Dense(2)])
    model.compile(optimizer=optimizers.SGD(0.05),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = data.AlternatingFlip(x, y, batch_size=8, seed=0)
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["loss"]))
    assert ds.epoch == 2  # fit ended each epoch through the dataset: the sides alternated


@pytest.mark.parametrize("args, message", [
    ((np.zeros((3, 4, 4)), None, 2), r"x must be images \(N, H, W, C\)"),
    ((np.zeros((3, 4, 4, 1)), np.zeros(2), 2), "y has 2 rows for 3 images"),
    ((np.zeros((3, 4, 4, 1)), None, 0), "batch_size must be an integer >= 1"),
    ((np.zeros((3, 4, 4, 1)), None, 2.0), "batch_size must be an integer >= 1"),
])
def test_alternating_flip_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        data.AlternatingFlip(*args)


def test_alternating_flip_index_out_of_range():
    ds = data.AlternatingFlip(np.zeros((3, 2, 2, 1)), None, batch_size=2)
    with pytest.raises(IndexError, match="batch 2 of 2"):
        ds[2]
