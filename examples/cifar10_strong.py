"""
CIFAR-10: the stronger model with augmentation
==============================================

A VGG-style network with batch normalisation (``fastcnn.zoo.strong_model``), trained with
Adam, a warm-up + cosine learning-rate schedule, random horizontal flips and random
+-4-pixel translations (the classic pad-and-crop), the augmentation running in C on
fastcnn's threads. The full run (``--epochs 30 --batch-size 64``) reaches about 85% test
accuracy. This is exactly what ``fastcnn train --model strong --augment`` runs; this script
passes its arguments through::

    python examples/cifar10_strong.py --epochs 20 --batch-size 64 --out strong-run

``FASTCNN_EXAMPLES_QUICK=1`` (what the documentation build sets) trains one epoch on 2,000
images (``--epochs 1 --limit 2000``) and writes into a temporary folder.
"""
import os
import sys
import tempfile

from fastcnn.cli import main

QUICK = os.environ.get("FASTCNN_EXAMPLES_QUICK", "0") not in ("", "0")
argv = ["train", "--model", "strong", "--augment"] + sys.argv[1:]
if QUICK and len(sys.argv) == 1:
    out = tempfile.mkdtemp(prefix="fastcnn-strong-")
    argv += ["--epochs", "1", "--limit", "2000", "--out", out, "--verbose", "2"]
else:
    out = next((a for a, b in zip(sys.argv[2:], sys.argv[1:]) if b == "--out"), "fastcnn-out")

# %%
# Train
# -----
# ``fastcnn train`` prints the configuration, the model, the epochs and the test accuracy,
# saves ``model.keras`` and draws four figures into ``--out``.

status = main(argv)
if status:
    sys.exit(status)
if "matplotlib.pyplot" in sys.modules:  # figures fastcnn.plot left open: shown from the files
    sys.modules["matplotlib.pyplot"].close("all")

# %%
# The figures ``fastcnn train`` wrote
# -----------------------------------
# Sample test images, the accuracy and loss curves, and the confusion matrix.

try:
    import matplotlib
    if not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None:
    for name in ("samples.png", "accuracy.png", "loss.png", "confusion.png"):
        path = os.path.join(out, name)
        if os.path.exists(path):
            plt.figure(figsize=(8, 6))
            plt.imshow(mpimg.imread(path))
            plt.axis("off")
            plt.title(name)
    if plt.get_backend().lower() != "agg":
        plt.show()
