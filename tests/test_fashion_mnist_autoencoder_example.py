"""examples/fashion_mnist_autoencoder.py (Keras' convolutional autoencoder on Fashion-MNIST)
runs end to end in its quick setting, learns something and saves its figure."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastcnn.datasets import fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.realdata
def test_the_autoencoder_example_runs_quick(tmp_path):
    if not Path(fashion_mnist.SYSTEM_DIR).is_dir():
        pytest.skip("Fashion-MNIST absent (apt-get install dataset-fashion-mnist)")
    pytest.importorskip("matplotlib")
    env = dict(os.environ, PYTHONPATH=ROOT, MPLBACKEND="Agg", FASTCNN_EXAMPLES_QUICK="1")
    figure = tmp_path / "reconstructions.png"
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "fashion_mnist_autoencoder.py"),
         "--figure", str(figure)],
        capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Conv2DTranspose" in out.stdout
    loss = float(re.search(r"test loss \(binary cross-entropy\) ([0-9.]+)", out.stdout).group(1))
    # an untrained sigmoid output (0.5 everywhere) scores ln 2 = 0.693 on these images
    assert loss < 0.62, out.stdout[-2000:]
    assert figure.stat().st_size > 1000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
