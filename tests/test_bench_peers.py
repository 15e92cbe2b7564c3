"""Benchmarks against optional peers (PyTorch, onnxruntime): the PyTorch twins of the zoo
models, the ResNet-20 comparison and the latency benchmark run end to end (tiny settings).
Skipped when the peer (or, for the comparison, real CIFAR-10) is not installed: these are
optional test dependencies, so they are not real-data tests that CI must run."""
import os
import sys
from pathlib import Path

import pytest

import fastcnn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import side_by_side  # noqa: E402

CIFAR_DIR = Path(os.environ.get("FASTCNN_CIFAR10_DIR")
                 or os.path.expanduser("~/.cache/fastcnn-ci/cifar10"))


@pytest.mark.parametrize("name", ["tutorial", "strong", "resnet20"])
def test_torch_twins_have_the_same_parameter_counts(name):
    pytest.importorskip("torch")
    from fastcnn import zoo
    side_by_side.check_twin(zoo.MODELS[name](), side_by_side.torch_model(name), name)


def test_resnet20_comparison_and_profile(capsys, monkeypatch, tmp_path):
    pytest.importorskip("torch")
    if not CIFAR_DIR.is_dir():
        pytest.skip("real CIFAR-10 absent at %s" % CIFAR_DIR)
    monkeypatch.setenv("FASTCNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FASTCNN_CIFAR10_DIR", str(CIFAR_DIR))
    rows = side_by_side.main(["--model", "resnet20", "--threads", "1", "--rounds", "1",
                              "--images", "32", "--infer-batches", "1", "--settle", "0"])
    assert {r[1] for r in rows} == {"fastcnn", "torch-nchw", "torch-channels_last"}
    assert "no NumPy baseline" in capsys.readouterr().out
    res = side_by_side.main(["--profile", "--model", "resnet20", "--threads", "1",
                             "--repeats", "1"])
    assert [r.batch_size for r in res] == [32, 128]
    assert "add_relu" in [s.kind for s in fastcnn.zoo.resnet20().plan()]


def test_latency_benchmark_runs_and_matches_onnxruntime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import latency
    threads = fastcnn.get_num_threads()
    rows = latency.main(["--threads", "1", "--rounds", "1", "--calls", "5", "--warmup", "1",
                         "--settle", "0", "--no-torch", "--batch", "3"])
    assert fastcnn.get_num_threads() == threads
    assert [r[0] for r in rows] == ["fastcnn model(x)", "fastcnn predict_on_batch",
                                    "onnxruntime"]
    assert rows[2][4] == 1.0 and all(r[1] > 0 for r in rows)
