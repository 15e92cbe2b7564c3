"""pytest-benchmark cases (bench_*.py) run with fastcnn and NumPy's BLAS on _bench.THREADS
threads, each after a pause that lets the previous case's spinning worker threads sleep."""
import time

import pytest

import fastcnn
from _bench import THREADS
from numpy_baseline import set_blas_threads


@pytest.fixture(autouse=True)
def bench_threads():
    old = fastcnn.get_num_threads()
    fastcnn.set_num_threads(THREADS)
    set_blas_threads(THREADS)
    time.sleep(0.3)  # OpenBLAS's threads spin ~0.1 s after its last call
    yield
    fastcnn.set_num_threads(old)
