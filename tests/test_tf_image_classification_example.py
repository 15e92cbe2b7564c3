"""examples/tf_image_classification.py (TensorFlow's "Image classification" tutorial) runs end
to end on a few CIFAR-10 JPEGs (needs the augmentation layers and the shared data copy)."""
import os
import subprocess
import sys

import pytest

import fastcnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = os.path.join(ROOT, "..", "shared", "data", "cifar10", "cifar10-jpeg.tar.gz")


@pytest.mark.skipif(not os.path.exists(TARBALL), reason="no shared CIFAR-10 JPEG copy")
@pytest.mark.skipif(not all(hasattr(fastcnn.layers, n) for n in
                            ("RandomFlip", "RandomRotation", "RandomZoom")),
                    reason="the tutorial's augmentation layers are not in this build")
def test_the_tutorial_runs(tmp_path):
    pytest.importorskip("PIL")
    pytest.importorskip("matplotlib")
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg")
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "tf_image_classification.py"),
         "--epochs", "1", "--image-size", "32", "--per-class", "20",
         "--tarball", TARBALL, "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Found 200 files belonging to 10 classes." in out.stdout
    assert "This image most likely belongs to" in out.stdout
