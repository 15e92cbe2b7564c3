"""A bound conv keeps its Winograd kernel transform (and packed GEMM operands) between
calls (fc_conv2d_winograd_cached_forward): the bits of ops.conv2d with the same tile size
on awkward shapes, at 1 and 2 threads; a kernel changed in place is transformed again; the
lean runner picks it where the rule says so and its predictions follow set_weights."""
import numpy as np
import pytest

import fastcnn
from fastcnn import _ext, layers, ops
from fastcnn.ops import conv as conv_ops
from conftest import num_threads


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# (x shape, filters, padding, output_size): ragged tiles, one image and several, C and F
# that are not multiples of the GEMM's blocks, a cropped output (a conv feeding a pool)
CASES = [((1, 15, 15, 32), 64, "valid", (12, 12)),
         ((1, 15, 15, 32), 64, "valid", None),
         ((1, 6, 6, 64), 64, "valid", None),
         ((1, 7, 9, 33), 35, "same", None),
         ((3, 11, 10, 40), 24, "same", None),
         ((1, 4, 4, 32), 32, "same", None)]


def _cached(x, kernel, bias, padding, relu, output_size, m, cache=None):
    _, _, pads, out_hw = conv_ops._geometry("t", x.shape, kernel.shape, (1, 1), padding)
    out_hw = tuple(output_size) if output_size else out_hw
    out = np.full((x.shape[0],) + out_hw + (kernel.shape[3],), np.nan, np.float32)
    if cache is None:
        cache = np.zeros(_ext.conv2d_winograd_cache_size(x.shape, kernel.shape, pads, out_hw,
                                                         m), np.float32)
    ws = np.empty(_ext.conv2d_workspace_size(x.shape, kernel.shape, (1, 1), pads, out_hw),
                  np.float32)
    _ext.conv2d_winograd_cached_forward(x, kernel, bias, pads, relu, out, cache, ws, m)
    return out, cache


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("xs,f,padding,output_size", CASES)
def test_cached_forward_bitwise_as_conv2d(xs, f, padding, output_size, m):
    x = rand(xs, 0)
    kernel = rand((3, 3, xs[3], f), 1)
    bias = rand((f,), 2)
    want = ops.conv2d(x, kernel, bias, padding=padding, activation="relu",
                      algorithm="winograd_f%d" % m, output_size=output_size)
    for threads in (1, 2):
        with num_threads(threads):
            got, cache = _cached(x, kernel, bias, padding, True, output_size, m)
            assert got.tobytes() == want.tobytes()
            x2 = rand(xs, 3)  # the cache holds the kernel's transform, not the input's
            again, _ = _cached(x2, kernel, bias, padding, True, output_size, m, cache)
            assert again.tobytes() == ops.conv2d(
                x2, kernel, bias, padding=padding, activation="relu",
                algorithm="winograd_f%d" % m, output_size=output_size).tobytes()


@pytest.mark.parametrize("m", [2, 4])
def test_cached_transform_follows_the_kernel(m):
    x = rand((1, 10, 10, 32), 4)
    kernel = rand((3, 3, 32, 48), 5)
    first, cache = _cached(x, kernel, None, "same", False, None, m)
    kernel[2, 1, 31, 47] += 0.5  # one weight, changed in place: the transform is redone
    got, _ = _cached(x, kernel, None, "same", False, None, m, cache)
    want = ops.conv2d(x, kernel, padding="same", algorithm="winograd_f%d" % m)
    assert got.tobytes() == want.tobytes() and not np.array_equal(got, first)
    kernel[0, 0, 0, 0] = np.nan  # NaN weights compare by their bits, and propagate
    got, _ = _cached(x, kernel, None, "same", False, None, m, cache)
    assert np.isnan(got).any()
    kernel[0, 0, 0, 0] = 0.0
    got, _ = _cached(x, kernel, None, "same", False, None, m, cache)
    assert got.tobytes() == ops.conv2d(x, kernel, padding="same",
                                       algorithm="winograd_f%d" % m).tobytes()


def test_cached_forward_refuses_bad_arguments():
    x = rand((1, 8, 8, 16), 6)
    kernel = rand((3, 3, 16, 16), 7)
    out = np.empty((1, 8, 8, 16), np.float32)
    size = _ext.conv2d_winograd_cache_size(x.shape, kernel.shape, (1, 1), (8, 8), 2)
    with pytest.raises(ValueError, match="cache needs %d floats" % size):
        _ext.conv2d_winograd_cached_forward(x, kernel, None, (1, 1), False, out,
                                            np.zeros(size - 1, np.float32), None, 2)
    with pytest.raises(ValueError, match="m 2 or 4"):
        _ext.conv2d_winograd_cached_forward(x, kernel, None, (1, 1), False, out,
                                            np.zeros(10 ** 6, np.float32), None, 3)
    with pytest.raises(ValueError, match="3x3"):
        _ext.conv2d_winograd_cached_forward(x, rand((5, 5, 16, 16), 8), None, (2, 2), False,
                                            out, np.zeros(10 ** 6, np.float32), None, 2)


def test_rule_keeps_im2col_where_winograd_does_not_pay():
    tile = ops.winograd_cached_tile
    assert tile((1, 15, 15, 32), (3, 3, 32, 64), output_size=(12, 12)) == 4
    assert tile((1, 6, 6, 64), (3, 3, 64, 64)) == 2  # one F(4x4) tile: F(2x2)
    assert tile((1, 8, 8, 16), (3, 3, 16, 16), padding="same") == 0  # C * F < 1024
    assert tile((1, 8, 8, 32), (3, 3, 32, 32), strides=2, padding="same") == 0
    assert tile((1, 8, 8, 64), (5, 5, 64, 64), padding="same") == 0


def _tutorial():
    model = fastcnn.Sequential([
        fastcnn.Input((32, 32, 3)), layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(10)])
    model.compile(optimizer="adam",
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize("threads", [1, 2])
def test_lean_predictions_follow_the_weights(threads):
    """One image through the lean runner, whose 3x3 convs keep their transforms, after
    set_weights and after a training step: the bits of a fresh model with those weights."""
    assert ops.winograd_cached_tile((1, 15, 15, 32), (3, 3, 32, 64),
                                          output_size=(12, 12)) > 0  # the path under test
    fastcnn.utils.set_random_seed(0)
    model = _tutorial()
    x = rand((1, 32, 32, 3), 9)
    with num_threads(threads):
        before = model.predict_on_batch(x)
        for change in ("set_weights", "fit"):
            if change == "set_weights":
                model.set_weights([w * 1.5 for w in model.get_weights()])
            else:
                model.train_on_batch(rand((4, 32, 32, 3), 10), np.arange(4))
            got = model.predict_on_batch(x)
            fresh = _tutorial()
            fresh.set_weights(model.get_weights())
            assert got.tobytes() == fresh.predict_on_batch(x).tobytes()
            assert not np.array_equal(got, before)
            before = got
