"""Ready-made models for the CLI and the examples."""
from . import layers, models

__all__ = ["tutorial_model", "strong_model", "MODELS"]


def tutorial_model(input_shape=(32, 32, 3), num_classes=10):
    """The Keras CIFAR-10 tutorial CNN (122,570 parameters for 32x32x3 and 10 classes)."""
    return models.Sequential([
        layers.Input(shape=input_shape),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(num_classes),
    ], name="tutorial")


def strong_model(input_shape=(32, 32, 3), num_classes=10, width=32):
    """A VGG-style CNN with batch normalisation for the accuracy goal (>= 85% on CIFAR-10
    with crop+flip augmentation): three stages of two 3x3 `same` convolutions (width,
    2*width, 4*width filters), each followed by 2x2 max pooling, then global average pooling
    and a dense classifier."""
    stack = [layers.Input(shape=input_shape)]
    for i, f in enumerate((width, 2 * width, 4 * width)):
        for _ in range(2):
            stack += [layers.Conv2D(f, (3, 3), padding="same", use_bias=False),
                      layers.BatchNormalization(),
                      layers.ReLU()]
        stack.append(layers.MaxPooling2D((2, 2)))
    stack += [layers.GlobalAveragePooling2D(), layers.Dense(num_classes)]
    return models.Sequential(stack, name="strong")


MODELS = {"tutorial": tutorial_model, "strong": strong_model}
