"""Fashion-MNIST with a small CNN on fastcnn (the Keras "basic classification" data).

The data comes from the official IDX files: `apt-get install dataset-fashion-mnist` puts them in
/usr/share/datasets/fashion-mnist, which fastcnn.datasets.fashion_mnist searches.

    python examples/fashion_mnist.py [--epochs 5] [--samples N]

The images stay uint8: the model's Rescaling layer converts each batch in C.
"""
import argparse

import fastcnn
from fastcnn import datasets, layers, losses, models


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--samples", type=int, default=0, help="use only the first N training images")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    fastcnn.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist.load_data()
    if args.samples:
        x_train, y_train = x_train[:args.samples], y_train[:args.samples]
    x_train, x_test = x_train[..., None], x_test[..., None]  # add the channel axis (NHWC)

    model = models.Sequential([
        layers.Input(shape=(28, 28, 1)),
        layers.Rescaling(1 / 255.0),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(128, activation="relu"),
        layers.Dense(10),
    ])
    model.summary()
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, validation_data=(x_test, y_test), verbose=2)
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=2)
    print("Fashion-MNIST test accuracy: %.4f" % test_acc)
    return test_acc


if __name__ == "__main__":
    main()
