"""Smoke test: benchmarks/side_by_side.py runs end to end on real CIFAR-10 (tiny settings,
no PyTorch) and its --profile mode prints both tables. Timings are not checked."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcnn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import side_by_side  # noqa: E402

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

CIFAR_DIR = Path(os.environ.get("FASTCNN_CIFAR10_DIR")
                 or os.path.expanduser("~/.cache/fastcnn-ci/cifar10"))


@pytest.fixture(autouse=True)
def cifar(tmp_path, monkeypatch):
    if not CIFAR_DIR.is_dir():
        pytest.skip("real CIFAR-10 absent at %s (set FASTCNN_CIFAR10_DIR)" % CIFAR_DIR)
    monkeypatch.setenv("FASTCNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASTCNN_CIFAR10_DIR", str(CIFAR_DIR))


def test_tutorial_flops():
    fwd, train = side_by_side.tutorial_flops()
    convs = 2 * (30 * 30 * 32 * 27 + 13 * 13 * 64 * 288 + 4 * 4 * 64 * 576)
    dense = 2 * (1024 * 64 + 64 * 10)
    assert fwd == convs + dense
    first = 2 * 30 * 30 * 32 * 27
    assert train == 3 * fwd - first


def test_comparison_runs(capsys, tmp_path):
    threads = fastcnn.get_num_threads()
    md = tmp_path / "t.md"
    rows = side_by_side.main(["--threads", "1", "--rounds", "1", "--images", "64",
                              "--infer-batches", "1", "--no-torch", "--settle", "0", "--markdown", str(md)])
    assert fastcnn.get_num_threads() == threads  # restored
    assert [(r[0], r[1]) for r in rows] == [(c, f) for c in ("train b32", "train b128",
                                                              "infer b1000")
                                            for f in ("fastcnn", "numpy")]
    for case, name, med, lo, hi, ratio, gflops, pct in rows:
        assert lo <= med <= hi and med > 0 and gflops > 0 and pct > 0
        assert (ratio == 1.0) if name == "fastcnn" else ratio > 0
    out = capsys.readouterr().out
    assert "| train b32 | numpy |" in out and "threads=1" in out
    assert md.read_text().count("| infer b1000 |") == 2


def test_profile_mode(capsys):
    results = side_by_side.main(["--profile", "--threads", "1", "--repeats", "1"])
    assert [r.batch_size for r in results] == [32, 128]
    out = capsys.readouterr().out
    assert out.count("training step, batch") == 2 and out.count(" Conv2D ") == 2
    assert out.count("Conv2D+MaxPooling2D") == 4  # both conv + pool pairs run together
    assert all(np.isfinite(r.step_ms) for r in results)


def test_thread_scaling_runs_and_restores_threads(capsys):
    import thread_scaling
    threads = fastcnn.get_num_threads()
    rows = thread_scaling.main(["--threads", "1", "2", "--batch-sizes", "16", "--images", "64",
                                "--rounds", "1"])
    assert fastcnn.get_num_threads() == threads
    assert [(r[0], r[1]) for r in rows] == [(16, 1), (16, 2)]
    assert rows[0][3] == 1.0 and all(r[2] > 0 for r in rows)
    assert "| 16 | 2 |" in capsys.readouterr().out


def test_model_flops_matches_the_tutorial_table():
    from fastcnn import zoo
    assert side_by_side.model_flops(zoo.tutorial_model()) == side_by_side.tutorial_flops()
    assert side_by_side.model_flops(zoo.resnet20())[0] == 81626368
