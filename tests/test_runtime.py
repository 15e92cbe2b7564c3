import os
import subprocess
import sys

import numpy as np
import pytest

import fastcnn
from conftest import num_threads


def test_show_config_prints_the_essentials(capsys):
    fastcnn.show_config()
    out = capsys.readouterr().out
    for word in ("fastcnn", "compiler", "openmp", "simd path", "threads"):
        assert word in out


def test_config_reports_a_known_simd_path():
    assert fastcnn.config()["simd"] in ("avx2+fma", "generic")


def test_show_config_says_when_avx512_kernels_run(capsys):
    """An AVX-512 host must not read as AVX2-only: the GEMM's wider kernels are named."""
    old = fastcnn._ext.gemm_avx512()
    try:
        for on in (0, 1):
            fastcnn._ext.gemm_force_avx512(on)
            fastcnn.show_config()
            line = [ln for ln in capsys.readouterr().out.splitlines() if "simd path" in ln][0]
            assert fastcnn.config()["avx512"] == fastcnn._ext.gemm_avx512()
            assert ("AVX-512F" in line) == fastcnn._ext.gemm_avx512()
    finally:
        fastcnn._ext.gemm_force_avx512(-1)
    assert fastcnn._ext.gemm_avx512() == old


def test_set_num_threads_conventions():
    cpus = fastcnn.config()["cpu_count"]
    with num_threads(1):
        assert fastcnn.get_num_threads() == 1
        if fastcnn.config()["openmp"]:
            fastcnn.set_num_threads(2)
            assert fastcnn.get_num_threads() == 2
            fastcnn.set_num_threads(-1)
            assert fastcnn.get_num_threads() == cpus
            fastcnn.set_num_threads(-10 * cpus)
            assert fastcnn.get_num_threads() == 1
            fastcnn.set_num_threads(10**12)
            assert fastcnn.get_num_threads() == fastcnn._config.MAX_THREADS


@pytest.mark.parametrize("bad", [0, 1.5, "2", True])
def test_set_num_threads_rejects_nonsense(bad):
    with pytest.raises((ValueError, TypeError)):
        fastcnn.set_num_threads(bad)


def test_omp_num_threads_is_honoured():
    code = "import fastcnn; print(fastcnn.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "1"
