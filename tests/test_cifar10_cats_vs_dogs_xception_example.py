"""examples/cifar10_cats_vs_dogs_xception.py (Keras' "Image classification from scratch":
SeparableConv2D blocks with residual adds, sigmoid output) runs end to end on a few CIFAR-10
cat and dog JPEGs. A few steps leave batch norm's moving statistics unsettled, so this
checks the run and its report, not accuracy (the README gives a full run's figures)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = os.path.join(ROOT, "..", "shared", "data", "cifar10", "cifar10-jpeg.tar.gz")


@pytest.mark.realdata
def test_the_xception_example_runs_quick(tmp_path):
    if not os.path.exists(TARBALL):
        pytest.skip("no shared CIFAR-10 JPEG copy at %s" % TARBALL)
    pytest.importorskip("PIL")
    env = dict(os.environ, PYTHONPATH=ROOT, FASTCNN_EXAMPLES_QUICK="1")
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "cifar10_cats_vs_dogs_xception.py"),
         "--epochs", "1", "--per-class", "100",
         "--tarball", TARBALL, "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Found 200 files belonging to 2 classes." in out.stdout  # training folder
    assert "Found 2000 files belonging to 2 classes." in out.stdout  # all test cats and dogs
    assert "classes: ['cat', 'dog']" in out.stdout
    for name in ("(SeparableConv2D)", "(Add)", "(Sequential)", "(Dense)"):
        assert name in out.stdout, name
    m = re.search(r"test accuracy ([0-9.]+), AUC ([0-9.]+) on 2000 images after 1 epoch\(s\) "
                  r"on 160 images", out.stdout)
    assert m, out.stdout[-2000:]
    assert re.search(r"This image is [0-9.]+% cat and [0-9.]+% dog", out.stdout)
    assert len(os.listdir(tmp_path / "cache" / "cats-vs-dogs-100" / "train" / "dog")) == 100
