"""examples/cifar10_tutorial.py runs end to end on a small synthetic CIFAR-10 written in the
official python-pickle batch format (found through $FASTCNN_HOME/datasets)."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "cifar10_tutorial.py")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def write_cifar(folder, per_batch=40, test=40, seed=0):
    """data_batch_1..5 and test_batch: dicts of rows (N, 3072) uint8 in R,G,B planes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test if name == "test_batch" else per_batch
        labels = rng.integers(0, 10, n)
        rows = rng.integers(0, 120, size=(n, 3, 32, 32)).astype(np.uint8)
        for i, k in enumerate(labels):  # a learnable class pattern: a bright square per class
            r, c = divmod(int(k), 5)
            rows[i, int(k) % 3, 4 + 12 * r:14 + 12 * r, 1 + 6 * c:6 + 6 * c] = 250
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                         b"data": rows.reshape(n, 3072)}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, f, protocol=2)


def test_tutorial_runs_on_synthetic_cifar(tmp_path):
    pytest.importorskip("fastcnn.datasets", reason="fastcnn.datasets is not merged yet")
    home = tmp_path / "fastcnn-home"
    write_cifar(home / "datasets" / "cifar-10-batches-py")
    env = dict(os.environ, FASTCNN_HOME=str(home), KERAS_HOME=str(tmp_path / "no-keras"),
               HOME=str(tmp_path), FASTCNN_TUTORIAL_SAMPLES="160", FASTCNN_TUTORIAL_EPOCHS="2",
               FASTCNN_TUTORIAL_PLOTS=str(tmp_path / "plots"), MPLBACKEND="Agg",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert out.count('Model: "sequential"') == 2
    assert "Total params: 56,320 (220.00 KB)" in out  # the convolutional base
    assert "Total params: 122,570 (478.79 KB)" in out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "val_accuracy:" in out
    lines = out.strip().splitlines()
    assert lines[-2].startswith("1/1 - ") and " - accuracy: " in lines[-2]  # evaluate(verbose=2)
    test_acc = float(lines[-1])
    assert 0.0 <= test_acc <= 1.0
    if os.path.isdir(tmp_path / "plots"):  # matplotlib installed
        assert sorted(os.listdir(tmp_path / "plots")) == ["accuracy.png", "samples.png"]
