"""The vector approximations of the activation kernels (csrc/activations_vec.h) over dense
sweeps against float64 (SciPy), with the error bounds we claim, and the AVX2 and AVX-512
instantiations giving the same bits.

Error is measured in float32 ulp of the float64 reference, ``|y - ref| / ulp(max(|ref|,
floor))``, plus an absolute allowance of 2^-126: results below the smallest normal float
may flush to 0 (the exponentials scale by 2^n with n >= -126). ``floor`` is the smallest
normal float, or 1 for derivatives that cross zero (gelu', silu'), where the error is
then absolute in ulp of 1. Each range is swept with 2^24 evenly spaced float32 points,
in chunks so that the float64 temporaries stay small.
"""
import numpy as np
import pytest

from fastcnn import _ext, ops

sp = pytest.importorskip("scipy.special")

POINTS = 1 << 24
CHUNK = 1 << 21
TINY = 2.0 ** -126
SELU_A, SELU_S = 1.6732632423543772, 1.0507009873554805
SQ2PI = np.sqrt(2 / np.pi)


def _gelu(x):
    return 0.5 * x * sp.erfc(-x / np.sqrt(2))


def _gelu_d(x):
    return 0.5 * sp.erfc(-x / np.sqrt(2)) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def _gelu_tanh(x):
    return x * sp.expit(2 * SQ2PI * (x + 0.044715 * x ** 3))


def _gelu_tanh_d(x):
    s = sp.expit(2 * SQ2PI * (x + 0.044715 * x ** 3))
    return s + x * s * (1 - s) * 2 * SQ2PI * (1 + 3 * 0.044715 * x * x)


def _silu_d(x):
    s = sp.expit(x)
    return s * (1 + x * (1 - s))


def _elu(alpha):
    return lambda x: np.where(x > 0, x, alpha * sp.expm1(np.minimum(x, 0)))


# (name, params, range, forward ref, forward bound in ulp,
#  backward ref (derivative, from the input) or None, backward bound, backward floor)
CASES = [
    ("sigmoid", {}, (-88, 88), sp.expit, 3, None, 0, TINY),
    ("tanh", {}, (-10, 10), np.tanh, 3, None, 0, TINY),
    ("elu", {}, (-88, 2), _elu(1.0), 2, None, 0, TINY),
    ("elu", dict(alpha=-0.7), (-88, 2), _elu(-0.7), 2,
     lambda x: np.where(x > 0, 1.0, -0.7 * np.exp(x)), 2, TINY),
    ("selu", {}, (-88, 2), lambda x: SELU_S * _elu(SELU_A)(x), 3, None, 0, TINY),
    ("gelu", {}, (-14, 14), _gelu, 8, _gelu_d, 3, 1.0),
    ("silu", {}, (-88, 88), lambda x: x * sp.expit(x), 3, _silu_d, 3, 1.0),
    ("softplus", {}, (-88, 88), lambda x: np.logaddexp(0.0, x), 3, sp.expit, 3, TINY),
    ("exponential", {}, (-87, 88), np.exp, 2, None, 0, TINY),
    # u = 2 sqrt(2/pi) (x + 0.044715 x^3) rounds in float32 before the exp, so in the
    # negative tail the relative error grows as |u| ulp(u): bounded here on [-4, 10]
    ("gelu", dict(approximate=True), (-4, 10), _gelu_tanh, 24, _gelu_tanh_d, 3, 1.0),
]
IDS = ["%s%s" % (c[0], "".join("-%s=%s" % kv for kv in sorted(c[1].items()))) for c in CASES]


def _ulp_error(got, ref, floor):
    u = np.spacing(np.maximum(np.abs(ref), floor).astype(np.float32)).astype(np.float64)
    err = np.abs(got.astype(np.float64) - ref)
    return np.where(err <= TINY, 0.0, err / u)


def _paths():
    """The vector instantiations this CPU runs: AVX-512 (when present) and AVX2."""
    if _ext.simd_name() == "portable":
        pytest.skip("no vector path on this CPU")
    return (1, 0) if _ext.gemm_avx512() else (0,)


def _run(name, params, x, wide, backward):
    _ext.gemm_force_avx512(wide)
    try:
        y = ops.activation(x, name, **params)
        g = ops.activation_backward(np.ones_like(x), x, name, **params) if backward else None
    finally:
        _ext.gemm_force_avx512(-1)
    return y, g


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dense_sweep_error_bound(case):
    name, params, (lo, hi), ref, bound, dref, dbound, dfloor = case
    if dref is not None:
        assert not ops.activation_backward_uses_output(name, **params)
    grid = np.linspace(lo, hi, POINTS, dtype=np.float64).astype(np.float32)
    worst, dworst = 0.0, 0.0
    for start in range(0, POINTS, CHUNK):
        x = grid[start:start + CHUNK]
        xd = x.astype(np.float64)
        outs = [_run(name, params, x, wide, dref is not None) for wide in _paths()]
        for other in outs[1:]:  # AVX-512 and AVX2: the same bits
            np.testing.assert_array_equal(outs[0][0], other[0])
            if dref is not None:
                np.testing.assert_array_equal(outs[0][1], other[1])
        y, g = outs[0]
        worst = max(worst, float(_ulp_error(y, ref(xd), TINY).max()))
        if dref is not None:
            dworst = max(dworst, float(_ulp_error(g, dref(xd), dfloor).max()))
    assert worst <= bound, "%s forward: %.2f ulp > %g" % (name, worst, bound)
    assert dworst <= dbound, "%s backward: %.2f ulp > %g" % (name, dworst, dbound)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_avx2_and_avx512_give_the_same_bits_forward_and_backward(rng, case):
    """Every path of the kernels (odd length: the padded tail too), from output or input."""
    name, params = case[:2]
    if _ext.simd_name() == "portable" or not _ext.gemm_avx512():
        pytest.skip("this CPU runs one vector path only")
    x = (rng.standard_normal(100_003) * 4).astype(np.float32)
    x[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30]
    dy = rng.standard_normal(x.shape).astype(np.float32)
    res = []
    for wide in (1, 0):
        _ext.gemm_force_avx512(wide)
        try:
            y = ops.activation(x, name, **params)
            src = y if ops.activation_backward_uses_output(name, **params) else x
            res.append((y, ops.activation_backward(dy, src, name, **params)))
        finally:
            _ext.gemm_force_avx512(-1)
    for y, g in res[1:]:
        np.testing.assert_array_equal(res[0][0], y)
        np.testing.assert_array_equal(res[0][1], g)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("cols", [1, 7, 15, 16, 17, 1001])
def test_softmax_rows_on_each_vector_path(rng, log, cols):
    """Row-wise (log_)softmax and its gradient on the AVX2 and the AVX-512 instantiation
    against float64, with subnormal probabilities (x - max down to -100) kept."""
    x = (rng.standard_normal((5, cols)) * 20).astype(np.float32)
    x[0, :] = np.linspace(0, -100, cols)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    xd = x.astype(np.float64)
    z = xd - xd.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    want = z - np.log(np.exp(z).sum(-1, keepdims=True)) if log else p
    for wide in _paths():
        _ext.gemm_force_avx512(wide)
        try:
            y = ops.softmax_axis(x, -1, log=log)
            g = ops.softmax_axis_backward(dy, y, -1, log=log)
        finally:
            _ext.gemm_force_avx512(-1)
        if log:
            np.testing.assert_allclose(y, want, rtol=2e-6, atol=1e-6)
            want_g = dy - p * dy.sum(-1, keepdims=True)
        else:  # relative accuracy down to the subnormal probabilities; x - max itself
            # rounds to float32 (half an ulp of |z|), which exp turns into relative error
            tol = (2e-6 + 6e-8 * np.abs(z)) * want + 1e-44
            bad = np.abs(y - want) > tol
            assert not bad.any(), (x[bad], y[bad], want[bad])
            want_g = p * (dy - (dy * p).sum(-1, keepdims=True))
        np.testing.assert_allclose(g, want_g, rtol=1e-5, atol=1e-6)
