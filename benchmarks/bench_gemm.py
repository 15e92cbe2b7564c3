"""pytest-benchmark: fastcnn's SGEMM vs NumPy (OpenBLAS) on the seed model's GEMM shapes.

    pytest benchmarks/bench_gemm.py --benchmark-only --benchmark-group-by=param:shape \
        --benchmark-columns=median,iqr,rounds

Batch 32: conv = im2col + GEMM (NHWC), dense = x @ W, plus the transposed products of the
backward pass. fastcnn and NumPy's BLAS run on 2 threads (conftest.py); both sides write into a
preallocated output. OpenBLAS threads spin for a while after each call and steal the cores
from the next benchmark, so a short pause precedes each benchmark (setup, not timed). For an
interleaved side-by-side table with ratios, use benchmarks/gemm_ratio.py.
"""

import numpy as np
import pytest

import fastcnn
from fastcnn.ops import matmul


# id: (M, N, K, transpose_a, transpose_b)
SHAPES = {
    "conv2_fwd_5408x64x288": (5408, 64, 288, False, False),
    "dense1_fwd_32x64x1024": (32, 64, 1024, False, False),
    "square_1024": (1024, 1024, 1024, False, False),
    "conv1_fwd_4img_4096x32x27": (4096, 32, 27, False, False),
    "conv1_fwd_28800x32x27": (28800, 32, 27, False, False),
    "conv3_fwd_512x64x576": (512, 64, 576, False, False),
    "dense2_fwd_32x10x64": (32, 10, 64, False, False),
    "conv2_dW_TN_288x64x5408": (288, 64, 5408, True, False),
    "conv2_dcols_NT_5408x288x64": (5408, 288, 64, False, True),
}




def _operands(m, n, k, ta, tb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b, np.empty((m, n), np.float32)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_fastcnn(benchmark, shape):
    m, n, k, ta, tb = SHAPES[shape]
    a, b, out = _operands(m, n, k, ta, tb)
    benchmark.extra_info["gflop"] = 2e-9 * m * n * k
    benchmark(matmul, a, b, ta, tb, out)
    np.testing.assert_allclose(out, (a.T if ta else a) @ (b.T if tb else b), rtol=1e-3,
                               atol=1e-3 * np.sqrt(k))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_numpy(benchmark, shape):
    m, n, k, ta, tb = SHAPES[shape]
    a, b, out = _operands(m, n, k, ta, tb)
    a = a.T if ta else a
    b = b.T if tb else b
    benchmark.extra_info["gflop"] = 2e-9 * m * n * k
    benchmark(np.matmul, a, b, out=out)
