"""Batch assembly kernels (gather, uint8 scaling, crop+flip) against NumPy."""
import numpy as np
import pytest

import fastcnn
from fastcnn import ops
from conftest import num_threads


def reference_gather(src, idx, scale, shift, oy=None, ox=None, flips=None):
    x = src[idx].astype(np.float32)
    b, h, w, c = x.shape
    out = np.empty_like(x)
    for i in range(b):
        img = x[i][:, ::-1] if flips is not None and flips[i] else x[i]
        img = img * np.float32(scale) + np.float32(shift)
        dy = 0 if oy is None else int(oy[i])
        dx = 0 if ox is None else int(ox[i])
        shifted = np.zeros_like(img)
        # out[h, w] = img[h + dy, w + dx] where inside
        hs, he = max(0, -dy), min(h, h - dy)
        ws, we = max(0, -dx), min(w, w - dx)
        if hs < he and ws < we:
            shifted[hs:he, ws:we] = img[hs + dy:he + dy, ws + dx:we + dx]
        out[i] = shifted
    return out


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 7, 9, 3), (3, 1, 1, 1), (4, 8, 8, 16)])
def test_gather_with_crop_and_flip_matches_numpy(rng, dtype, shape):
    src = rng.integers(0, 256, size=shape).astype(dtype)
    idx = rng.integers(0, shape[0], size=6)
    oy, ox, fl = ops.random_crop_flip_params(rng, 6, pad=4)
    got = ops.gather_batch(src, idx, scale=1 / 255.0, shift=-0.5, shifts=(oy, ox), flips=fl)
    np.testing.assert_array_equal(got, reference_gather(src, idx, 1 / 255.0, -0.5, oy, ox, fl))


def test_plain_gather_and_u8_conversion(rng):
    src = rng.integers(0, 256, size=(10, 4, 4, 3)).astype(np.uint8)
    idx = np.array([3, 3, 0, 9])
    np.testing.assert_array_equal(ops.gather_batch(src, idx, 2.0),
                                  src[idx].astype(np.float32) * 2)
    np.testing.assert_array_equal(ops.to_float32(src, 1 / 255.0),
                                  src.astype(np.float32) * np.float32(1 / 255.0))


def test_same_result_at_1_and_2_threads(rng):
    src = rng.integers(0, 256, size=(64, 32, 32, 3)).astype(np.uint8)
    idx = rng.permutation(64)
    oy, ox, fl = ops.random_crop_flip_params(rng, 64, pad=4)
    with num_threads(1):
        a = ops.gather_batch(src, idx, 1 / 255.0, shifts=(oy, ox), flips=fl)
    with num_threads(2):
        b = ops.gather_batch(src, idx, 1 / 255.0, shifts=(oy, ox), flips=fl)
    assert a.tobytes() == b.tobytes()  # bitwise


def test_count_nonfinite():
    x = np.ones(100_000, np.float32)
    assert ops.count_nonfinite(x) == 0
    x[[5, 70_000, 99_999]] = [np.nan, np.inf, -np.inf]
    assert ops.count_nonfinite(x) == 3


@pytest.mark.parametrize("n", [1, 7, 4095, 4096, 4097, 65_537, 200_003])
def test_count_nonfinite_matches_numpy(rng, n):
    """Every kind of non-finite bit pattern (quiet/signalling NaNs with payloads, both signs,
    +-inf) counted, and none of the extreme finite ones (max, denormals, -0), at block
    edges, at 1 and 2 threads."""
    specials = np.array([0x7fc00000, 0xffc00001, 0x7f800001, 0xff800000, 0x7f800000,
                         0x7fffffff, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000000,
                         0x007fffff], np.uint32).view(np.float32)
    x = rng.standard_normal(n).astype(np.float32)
    at = rng.integers(0, n, max(1, n // 50))
    x[at] = specials[rng.integers(0, len(specials), len(at))]
    want = int((~np.isfinite(x)).sum())
    for threads in (1, 2):
        with num_threads(threads):
            assert ops.count_nonfinite(x) == want


def test_bad_input_raises(rng):
    src = np.zeros((4, 2, 2, 1), np.uint8)
    with pytest.raises(ValueError, match="indices must lie in"):
        ops.gather_batch(src, [0, 4])
    with pytest.raises(ValueError, match="4-D"):
        ops.gather_batch(np.zeros((4, 2)), [0])
    with pytest.raises(ValueError, match="shifts"):
        ops.gather_batch(src, [0, 1], shifts=([0], [0]))
    with pytest.raises(ValueError, match="gather_batch: out: expected a writeable C-contiguous "
                                         "float32 array"):
        ops.gather_batch(src, [0, 1], out=np.zeros((2, 2, 2, 1), np.float64))
    with pytest.raises(ValueError, match="pad"):
        ops.random_crop_flip_params(rng, 3, pad=-1)
