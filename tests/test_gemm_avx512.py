"""The GEMM's AVX-512F kernels (csrc/gemm.c): the same bits as the AVX2 kernels, close to
float64 NumPy, bitwise at 1 and 2 threads, and switchable. Skipped where the CPU has no
AVX-512F (the AVX2 and portable paths are covered by test_gemm.py)."""
import numpy as np
import pytest

from fastcnn import _ext, ops
from conftest import num_threads
from test_gemm import assert_gemm_close, operands

pytestmark = pytest.mark.skipif(
    not _ext.gemm_avx512(), reason="the GEMM's AVX-512F kernels are not in use on this CPU")

# (M, N, K): odd edges in every direction; N from one panel (a partial one: AVX2 only; a
# full one: the 12-row kernel, e.g. a 16-channel conv's forward and kernel gradient) through
# pairs with a partial second panel and an odd last panel; K small (A read in place) and
# large (packed A, several kc blocks); M * N * K large enough for the threaded modes.
SHAPES = [(1, 1, 1), (7, 17, 5), (13, 31, 129), (6, 32, 64), (5, 33, 300), (37, 48, 77),
          (61, 100, 257), (200, 576, 64), (129, 47, 513), (300, 80, 600), (1000, 40, 36),
          (96, 4100, 40), (200, 16, 144), (25, 16, 300), (144, 16, 2000)]


def run(a, b, transpose_a, transpose_b, alpha, beta, c, avx512):
    out = c.copy()
    _ext.gemm_force_avx512(1 if avx512 else 0)
    try:
        _ext.sgemm(transpose_a, transpose_b, alpha, a, b, beta, out)
    finally:
        _ext.gemm_force_avx512(-1)
    return out


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("transpose_a,transpose_b",
                         [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 1.0), (-1.25, 0.75)])
def test_same_bits_as_avx2_and_close_to_float64(rng, m, n, k, transpose_a, transpose_b,
                                                alpha, beta):
    a, b = operands(rng, m, n, k, transpose_a, transpose_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    for threads in (1, 2):
        with num_threads(threads):
            wide = run(a, b, transpose_a, transpose_b, alpha, beta, c, True)
            narrow = run(a, b, transpose_a, transpose_b, alpha, beta, c, False)
        np.testing.assert_array_equal(wide, narrow, err_msg="threads=%d" % threads)
        if threads == 1:
            first = wide
        else:
            np.testing.assert_array_equal(wide, first, err_msg="1 vs 2 threads")
    assert_gemm_close(first, a, b, transpose_a, transpose_b, alpha, beta, c,
                      what="avx512 %dx%dx%d" % (m, n, k))


def test_leading_dimensions_and_no_writes_outside_c(rng):
    # column slices of wider arrays: lda, ldb, ldc > the logical widths; the masked stores of
    # a partial second panel must not touch C's neighbours
    a = rng.standard_normal((37, 90)).astype(np.float32)
    b = rng.standard_normal((90, 70)).astype(np.float32)
    wide_c = rng.standard_normal((37, 60)).astype(np.float32)
    before = wide_c.copy()
    _ext.gemm_force_avx512(1)
    try:
        _ext.sgemm(False, False, 1.0, a[:, 3:80], b[3:80, 5:26], 1.0, wide_c[:, 2:23])
    finally:
        _ext.gemm_force_avx512(-1)
    np.testing.assert_array_equal(wide_c[:, :2], before[:, :2])
    np.testing.assert_array_equal(wide_c[:, 23:], before[:, 23:])
    assert_gemm_close(wide_c[:, 2:23], a[:, 3:80], b[3:80, 5:26], beta=1.0, c=before[:, 2:23])


def test_force_switches_and_restores():
    _ext.gemm_force_avx512(0)
    try:
        assert not _ext.gemm_avx512()
    finally:
        _ext.gemm_force_avx512(-1)
    assert _ext.gemm_avx512()
    _ext.force_simd(0)  # the portable level uses neither AVX2 nor AVX-512
    try:
        assert not _ext.gemm_avx512()
    finally:
        _ext.force_simd(-1)


def test_conv_transpose_same_bits_with_and_without_avx512(rng):
    # the hot path the kernels were written for: forward and all three gradients
    x = rng.standard_normal((3, 7, 9, 19)).astype(np.float32)
    k = (rng.standard_normal((3, 3, 35, 19)) * 0.2).astype(np.float32)
    b = rng.standard_normal(35).astype(np.float32)
    geometry = dict(strides=(2, 2), padding="same")
    results = []
    for on in (1, 0):
        _ext.gemm_force_avx512(on)
        try:
            y = ops.conv2d_transpose(x, k, b, activation="relu", **geometry)
            dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
            grads = ops.conv2d_transpose_backward(dy, x, k, **geometry)
        finally:
            _ext.gemm_force_avx512(-1)
        results.append([y] + [np.asarray(g) for g in grads])
    for wide, narrow in zip(*results):
        np.testing.assert_array_equal(wide, narrow)
