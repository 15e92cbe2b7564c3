"""The stronger CIFAR-10 model with augmentation (the accuracy goal: >= 85% test accuracy).

A VGG-style network with batch normalisation (fastcnn.zoo.strong_model), trained with Adam,
a warm-up + cosine learning-rate schedule, random horizontal flips and random +-4-pixel
translations (the classic pad-and-crop), the augmentation running in C on fastcnn's threads.
This is exactly what `fastcnn train --model strong --augment` runs; see that command's
options (this script passes its arguments through).

    python examples/cifar10_strong.py --epochs 20 --batch-size 64 --out strong-run
"""
import sys

from fastcnn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--model", "strong", "--augment"] + sys.argv[1:]))
