"""pytest-benchmark: fastcnn conv2d vs the NumPy baseline on the seed model's conv shapes.

    pytest benchmarks/bench_conv.py --benchmark-only --benchmark-group-by=param:case

Batch 32, 3x3 `valid` kernels, fastcnn and NumPy's BLAS on 2 threads (benchmarks/conftest.py).
``fastcnn`` is conv2d's default (algorithm='auto', Winograd where it
wins); ``fastcnn[im2col]`` forces the GEMM-only path. Compare the medians of the
implementations within one run (benchmarks/conv_ratio.py prints interleaved medians and
their ratios directly).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_ratio import make_cases, warm_up  # noqa: E402


BATCH = 32
CASES = make_cases(BATCH, algorithms=("auto", "im2col"))




@pytest.mark.parametrize("impl", ["fastcnn", "fastcnn[im2col]", "numpy"])
@pytest.mark.parametrize("case", ["%s %s" % key for key in CASES])
def test_conv2d(benchmark, case, impl):
    name, direction = case.rsplit(" ", 1)
    benchmark.group = case
    fn = CASES[(name, direction)][impl]
    warm_up(fn)  # let the other library's spinning thread pool go idle first
    benchmark(fn)
