"""fastcnn's SGEMM (csrc/gemm.c) against float64 NumPy, through fastcnn.ops.matmul and _ext."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastcnn
from fastcnn import _ext
from fastcnn.ops import matmul
from conftest import num_threads

EPS32 = np.finfo(np.float32).eps


def reference(a, b, transpose_a=False, transpose_b=False, alpha=1.0, beta=0.0, c=None):
    """alpha * op(a) @ op(b) + beta * c in float64 (NumPy)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a.T if transpose_a else a
    b = b.T if transpose_b else b
    out = alpha * (a @ b)
    if beta != 0.0:
        out = out + beta * np.asarray(c, np.float64)
    return out


def assert_gemm_close(got, a, b, transpose_a=False, transpose_b=False, alpha=1.0, beta=0.0,
                      c=None, factor=4.0, what=""):
    """Elementwise bound: |got - exact| <= factor * sqrt(K+1) * eps * (|alpha| |op a| |op b|
    + |beta c|) (+ one rounding of the result), the statistical float32 dot-product error."""
    exact = reference(a, b, transpose_a, transpose_b, alpha, beta, c)
    mag = reference(np.abs(a), np.abs(b), transpose_a, transpose_b, abs(alpha), abs(beta),
                    None if c is None else np.abs(c))
    k = (a.shape[0] if transpose_a else a.shape[1]) if a.ndim == 2 else 0
    tol = factor * np.sqrt(k + 1.0) * EPS32 * mag + np.finfo(np.float32).tiny
    got = np.asarray(got, np.float64)
    assert got.shape == exact.shape, "%s: shape %s != %s" % (what, got.shape, exact.shape)
    assert np.all(np.isfinite(got)), what
    bad = np.abs(got - exact) > tol
    assert not bad.any(), "%s: %d of %d elements off; worst err %.3g vs tol %.3g" % (
        what, bad.sum(), bad.size, np.abs(got - exact).max(), tol[bad].min())


def operands(rng, m, n, k, transpose_a=False, transpose_b=False, dtype=np.float32):
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
    return a, b


TRANSPOSES = [(False, False), (True, False), (False, True), (True, True)]

# edges around MR=6, NR=16, KC=256, MC=144 and the in-place-A switches (N <= 64, K <= 128)
EDGE_SHAPES = [
    (1, 1, 1), (1, 33, 17), (33, 1, 17), (2, 2, 2), (7, 17, 7), (6, 16, 256), (7, 17, 257),
    (17, 7, 255), (13, 64, 65), (13, 65, 64), (145, 31, 300), (255, 256, 3), (257, 255, 513),
    (32, 10, 64),
    (128, 48, 200), (256, 40, 37),  # A^T with a power-of-two row stride: packed, not in place
]


@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
@pytest.mark.parametrize("m,n,k", EDGE_SHAPES)
def test_matches_numpy_float64(rng, m, n, k, transpose_a, transpose_b):
    a, b = operands(rng, m, n, k, transpose_a, transpose_b)
    got = matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
    assert got.dtype == np.float32 and got.shape == (m, n) and got.flags.c_contiguous
    assert_gemm_close(got, a, b, transpose_a, transpose_b, what=str((m, n, k)))


# the last two have a packed B too big to keep whole (> 4 MiB): blocked over N and K
@pytest.mark.parametrize("m,n,k", [(5408, 64, 288), (4096, 32, 27), (32, 64, 1024),
                                   (288, 64, 5408), (300, 4100, 5), (20, 4200, 300),
                                   (13, 1100, 1000)])
def test_model_shapes(rng, m, n, k):
    for transpose_a, transpose_b in TRANSPOSES if m * n * k < 10**7 else [(False, False),
                                                                           (True, False)]:
        a, b = operands(rng, m, n, k, transpose_a, transpose_b)
        got = matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
        assert_gemm_close(got, a, b, transpose_a, transpose_b,
                          what=str((m, n, k, transpose_a, transpose_b)))


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (5, 0, 3), (0, 0, 0)])
def test_empty_output(rng, m, n, k):
    a, b = operands(rng, m, n, k)
    got = matmul(a, b)
    assert got.shape == (m, n)


@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
def test_k_zero_gives_beta_c(transpose_a, transpose_b):
    a = np.zeros((0, 5) if transpose_a else (5, 0), np.float32)
    b = np.zeros((7, 0) if transpose_b else (0, 7), np.float32)
    out = np.full((5, 7), np.nan, np.float32)
    got = matmul(a, b, transpose_a, transpose_b, out=out)
    assert got is out and np.array_equal(out, np.zeros((5, 7), np.float32))
    c = np.arange(35, dtype=np.float32).reshape(5, 7)
    out = c.copy()
    matmul(a, b, transpose_a, transpose_b, out=out, beta=0.5)
    np.testing.assert_array_equal(out, 0.5 * c)


@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
@pytest.mark.parametrize("m,n,k", [(7, 17, 5), (37, 70, 300), (200, 48, 513)])
@pytest.mark.parametrize("alpha,beta", [(0.5, 0.0), (1.0, 1.0), (-1.5, 0.25), (2.0, -1.0)])
def test_alpha_beta(rng, m, n, k, transpose_a, transpose_b, alpha, beta):
    a, b = operands(rng, m, n, k, transpose_a, transpose_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    out = c.copy()
    if beta == 0.0:
        out[:] = np.nan  # beta == 0 must overwrite C without reading it
    got = matmul(a, b, transpose_a, transpose_b, out=out, alpha=alpha, beta=beta)
    assert got is out
    assert_gemm_close(out, a, b, transpose_a, transpose_b, alpha, beta, c,
                      what=str((m, n, k, alpha, beta)))


def test_beta_one_accumulates_exactly_like_two_calls(rng):
    a, b = operands(rng, 50, 40, 30)
    a2, b2 = operands(rng, 50, 40, 30)
    out = matmul(a, b)
    matmul(a2, b2, out=out, beta=1.0)
    expected = reference(a, b) + reference(a2, b2)
    mag = reference(np.abs(a), np.abs(b)) + reference(np.abs(a2), np.abs(b2))
    assert np.all(np.abs(out - expected) <= 4 * np.sqrt(31) * EPS32 * mag)


def test_alpha_zero_does_not_read_a_or_b():
    a = np.full((4, 3), np.nan, np.float32)
    b = np.full((3, 5), np.inf, np.float32)
    out = np.ones((4, 5), np.float32)
    matmul(a, b, out=out, alpha=0.0, beta=2.0)
    np.testing.assert_array_equal(out, np.full((4, 5), 2.0, np.float32))


def test_float64_and_noncontiguous_inputs_match_float32_c_order(rng):
    a64 = rng.standard_normal((90, 130))
    b64 = rng.standard_normal((130, 70))
    expected = matmul(a64.astype(np.float32), b64.astype(np.float32))
    np.testing.assert_array_equal(matmul(a64, b64), expected)  # float64 in
    np.testing.assert_array_equal(matmul(a64.tolist(), b64), expected)  # nested lists
    a32f = np.asfortranarray(a64.astype(np.float32))
    b32f = np.asfortranarray(b64.astype(np.float32))
    np.testing.assert_array_equal(matmul(a32f, b32f), expected)  # F order (no copy)
    big_a = np.zeros((180, 260), np.float32)
    big_a[::2, ::2] = a64
    big_b = np.zeros((130, 140), np.float32)
    big_b[:, 1::2] = b64
    np.testing.assert_array_equal(matmul(big_a[::2, ::2], big_b[:, 1::2]), expected)  # strided
    assert_gemm_close(expected, a64.astype(np.float32), b64.astype(np.float32))


def test_fortran_order_with_transpose_flags(rng):
    a, b = operands(rng, 33, 45, 57)
    expected = matmul(a, b)
    # a.T is F-ordered: transposing it back is a free flag flip, same kernel, same bits
    np.testing.assert_array_equal(matmul(np.asfortranarray(a.T), b, transpose_a=True), expected)
    np.testing.assert_array_equal(matmul(a, np.asfortranarray(b.T), transpose_b=True), expected)
    np.testing.assert_array_equal(matmul(np.ascontiguousarray(a.T).T, b), expected)


def test_strided_leading_dimensions_and_no_writes_outside_c(rng):
    """_ext.sgemm on views of wider arrays (lda > K etc.); C's neighbours stay untouched."""
    for transpose_a, transpose_b in TRANSPOSES:
        for m, n, k in [(13, 21, 9), (40, 70, 300), (7, 3, 260)]:
            a, b = operands(rng, m, n, k, transpose_a, transpose_b)
            wide_a = rng.standard_normal((a.shape[0], a.shape[1] + 5)).astype(np.float32)
            wide_b = rng.standard_normal((b.shape[0], b.shape[1] + 3)).astype(np.float32)
            wide_a[:, 2:2 + a.shape[1]] = a
            wide_b[:, 1:1 + b.shape[1]] = b
            wide_c = np.full((m + 2, n + 9), 7.0, np.float32)
            for beta in (0.0, 1.0):
                wide_c[:] = 7.0
                view = wide_c[1:1 + m, 4:4 + n]
                _ext.sgemm(transpose_a, transpose_b, 1.0, wide_a[:, 2:2 + a.shape[1]],
                           wide_b[:, 1:1 + b.shape[1]], beta, view)
                c = np.full((m, n), 7.0, np.float32)
                assert_gemm_close(view, a, b, transpose_a, transpose_b, 1.0, beta, c,
                                  what=str((m, n, k, transpose_a, transpose_b, beta)))
                mask = np.ones(wide_c.shape, bool)
                mask[1:1 + m, 4:4 + n] = False
                assert np.all(wide_c[mask] == 7.0), "wrote outside C"


def test_ext_rejects_what_the_kernel_would_misread():
    a = np.ones((4, 8), np.float32)
    c = np.zeros((4, 4), np.float32)
    for bad_a in (a[::-1, :4], a[:, ::2], np.lib.stride_tricks.as_strided(a, (4, 4), (8, 4))):
        with pytest.raises(ValueError, match="contiguous"):
            _ext.sgemm(False, False, 1.0, bad_a, a[:4, :4], 0.0, c)
    with pytest.raises(ValueError, match="contiguous"):
        _ext.sgemm(False, False, 1.0, a[:1, ::2], a[:4, :4], 0.0, c[:1])
    with pytest.raises(ValueError, match="2-D float32"):
        _ext.sgemm(False, False, 1.0, a[:, :4].astype(np.float64), a[:4, :4], 0.0, c)
    read_only = c.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _ext.sgemm(False, False, 1.0, a[:, :4], a[:4, :4], 0.0, read_only)
    with pytest.raises(ValueError, match="contiguous"):
        strided_c = np.zeros((4, 8), np.float32)[:, ::2]
        _ext.sgemm(False, False, 1.0, a[:, :4], a[:4, :4], 0.0, strided_c)


@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
def test_avx2_and_portable_paths_agree(rng, transpose_a, transpose_b):
    shapes = [(1, 1, 1), (7, 17, 257), (50, 64, 300), (61, 100, 70), (300, 33, 27)]
    try:
        for m, n, k in shapes:
            a, b = operands(rng, m, n, k, transpose_a, transpose_b)
            c = rng.standard_normal((m, n)).astype(np.float32)
            _ext.force_simd(0)
            assert fastcnn.config()["simd"] == "generic"
            portable = matmul(a, b, transpose_a, transpose_b, out=c.copy(), alpha=0.75,
                              beta=-0.5)
            _ext.force_simd(-1)
            simd = matmul(a, b, transpose_a, transpose_b, out=c.copy(), alpha=0.75, beta=-0.5)
            for got in (portable, simd):
                assert_gemm_close(got, a, b, transpose_a, transpose_b, 0.75, -0.5, c,
                                  what="%s %s" % ((m, n, k), fastcnn.config()["simd"]))
            np.testing.assert_allclose(portable, simd, rtol=1e-5,
                                       atol=1e-5 * np.sqrt(k) * np.abs(simd).max())
    finally:
        _ext.force_simd(-1)


# big enough to run in parallel (M*N*K >= 2**18), shapes that split M, split N, or both
PARALLEL_SHAPES = [(5408, 64, 288, False, False), (37, 64, 1024, False, False),
                   (1000, 32, 27, False, False), (288, 64, 5408, True, False),
                   (530, 288, 64, False, True), (200, 200, 600, True, True),
                   (7, 300, 400, False, False), (150, 150, 150, True, False),
                   (1200, 1040, 1010, False, False), (20, 4200, 300, True, True)]


@pytest.mark.parametrize("m,n,k,transpose_a,transpose_b", PARALLEL_SHAPES)
def test_bitwise_identical_across_thread_counts(rng, m, n, k, transpose_a, transpose_b):
    a, b = operands(rng, m, n, k, transpose_a, transpose_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    results = []
    for threads in (1, 2, 3, 4):
        with num_threads(threads):
            plain = matmul(a, b, transpose_a, transpose_b)
            scaled = matmul(a, b, transpose_a, transpose_b, out=c.copy(), alpha=-0.5, beta=1.0)
        results.append((plain, scaled))
    for plain, scaled in results[1:]:
        assert np.array_equal(plain, results[0][0])
        assert np.array_equal(scaled, results[0][1])
    assert_gemm_close(results[0][0], a, b, transpose_a, transpose_b)


@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
def test_serial_gemm_inside_parallel_region(rng, transpose_a, transpose_b):
    """fc_sgemm_serial called per matrix from an OpenMP loop gives fc_sgemm's exact bits."""
    batch, m, n, k = 6, 45, 70, 300
    a = np.stack([operands(rng, m, n, k, transpose_a, transpose_b)[0] for _ in range(batch)])
    b = np.stack([operands(rng, m, n, k, transpose_a, transpose_b)[1] for _ in range(batch)])
    c0 = rng.standard_normal((batch, m, n)).astype(np.float32)
    for threads in (1, 2):
        with num_threads(threads):
            c = c0.copy()
            _ext.sgemm_batch_serial(transpose_a, transpose_b, 1.5, a, b, 0.5, c)
            for i in range(batch):
                single = matmul(a[i], b[i], transpose_a, transpose_b, out=c0[i].copy(),
                                alpha=1.5, beta=0.5)
                assert np.array_equal(c[i], single)
    assert_gemm_close(c[0], a[0], b[0], transpose_a, transpose_b, 1.5, 0.5, c0[0])


@pytest.mark.parametrize("transpose_a,transpose_b", TRANSPOSES)
def test_reference_kernel_matches_numpy(rng, transpose_a, transpose_b):
    for m, n, k in [(1, 1, 1), (9, 13, 31), (40, 33, 300)]:
        a, b = operands(rng, m, n, k, transpose_a, transpose_b)
        c = rng.standard_normal((m, n)).astype(np.float32)
        got = matmul(a, b, transpose_a, transpose_b, reference=True)
        # double accumulation: one float32 rounding of the exact result
        exact = reference(a, b, transpose_a, transpose_b)
        np.testing.assert_allclose(got, exact, rtol=2 * EPS32, atol=1e-30)
        got = matmul(a, b, transpose_a, transpose_b, out=c.copy(), alpha=0.5, beta=2.0,
                     reference=True)
        assert_gemm_close(got, a, b, transpose_a, transpose_b, 0.5, 2.0, c, factor=1.0)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 300),
       transpose_a=st.booleans(), transpose_b=st.booleans(),
       alpha=st.sampled_from([1.0, -2.0, 0.3]), beta=st.sampled_from([0.0, 1.0, -0.7]),
       seed=st.integers(0, 2**31 - 1))
def test_random_shapes(m, n, k, transpose_a, transpose_b, alpha, beta, seed):
    rng = np.random.default_rng(seed)
    a, b = operands(rng, m, n, k, transpose_a, transpose_b)
    c = rng.standard_normal((m, n)).astype(np.float32)
    got = matmul(a, b, transpose_a, transpose_b, out=c.copy(), alpha=alpha, beta=beta)
    assert_gemm_close(got, a, b, transpose_a, transpose_b, alpha, beta, c)


# ------------------------------------------------------------------ bad input

def test_mismatched_inner_dimensions():
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match="inner dimensions differ"):
        matmul(a, b)
    with pytest.raises(ValueError, match="inner dimensions"):
        matmul(a, b, transpose_a=True)
    with pytest.raises(ValueError, match="inner dimensions"):
        matmul(a, np.ones((4, 6), np.float32), transpose_b=True)


@pytest.mark.parametrize("which", ["a", "b"])
@pytest.mark.parametrize("shape", [(2, 3, 4), (4,), ()])
def test_wrong_ndim(which, shape):
    good = np.ones((4, 4), np.float32)
    bad = np.ones(shape, np.float32)
    args = (bad, good) if which == "a" else (good, bad)
    with pytest.raises(ValueError, match="matmul: %s: expected a 2-D array" % which):
        matmul(*args)


def test_non_numeric_input():
    with pytest.raises(TypeError, match="matmul: a"):
        matmul([["x", "y"]], np.ones((2, 2)))


@pytest.mark.parametrize("out,match", [
    (np.empty((3, 6), np.float32), r"expected shape \(3, 5\)"),
    (np.empty((5, 3), np.float32), r"expected shape \(3, 5\)"),
    (np.empty((3, 5), np.float64), "float32"),
    (np.empty((5, 3), np.float32).T, "C-contiguous"),
    (np.empty((3, 10), np.float32)[:, ::2], "C-contiguous"),
])
def test_bad_out(out, match):
    with pytest.raises(ValueError, match=match):
        matmul(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32), out=out)


def test_out_that_is_not_an_array():
    # TypeError: not a numpy array at all (every ops function, see ops._validation)
    with pytest.raises(TypeError, match="matmul: out: .*float32 numpy array, got list"):
        matmul(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32), out=[[0.0] * 5] * 3)


def test_read_only_out():
    out = np.empty((3, 5), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        matmul(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32), out=out)


def test_beta_without_out():
    with pytest.raises(ValueError, match="beta != 0 needs an `out`"):
        matmul(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32), beta=1.0)


def test_out_overlapping_input():
    buf = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        matmul(buf, np.ones((4, 4), np.float32), out=buf)
