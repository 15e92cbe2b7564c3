"""Ready-made models for the CLI and the examples."""
from . import layers, models

__all__ = ["tutorial_model", "strong_model", "resnet20", "resnet_v1", "MODELS"]


def tutorial_model(input_shape=(32, 32, 3), num_classes=10):
    """The Keras CIFAR-10 tutorial CNN (122,570 parameters for 32x32x3 and 10 classes).

    Example:

        >>> model = fastcnn.zoo.tutorial_model()
        >>> model.count_params()
        122570
        >>> model.output_shape
        (None, 10)
    """
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


def _conv_bn(x, filters, kernel_size=3, strides=1, activation="relu", batch_norm=True):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                      kernel_initializer="he_normal")(x)
    if batch_norm:
        x = layers.BatchNormalization()(x)
    if activation is not None:
        x = layers.Activation(activation)(x)
    return x


def resnet_v1(depth=20, input_shape=(32, 32, 3), num_classes=10, width=16, inputs=None):
    """The classic CIFAR-10 ResNet v1 (He et al. 2016, as in Keras' cifar10_resnet example),
    written with the Functional API: a 3x3 conv, then 3 stages of (depth - 2) / 6 basic
    blocks (two 3x3 conv + BN, the second without ReLU, added to the shortcut, then ReLU)
    with width, 2*width, 4*width filters; the first block of stages 2 and 3 halves the size
    with stride 2 and a strided 1x1 projection shortcut; global average pooling and a
    Dense classifier (logits). ``inputs``: a tensor to build on (default a new Input)."""
    if (depth - 2) % 6:
        raise ValueError("resnet_v1: depth must be 6n + 2 (20, 32, 44, 56, ...), got %r"
                         % (depth,))
    blocks = (depth - 2) // 6
    inputs = layers.Input(shape=input_shape) if inputs is None else inputs
    x = _conv_bn(inputs, width)
    filters = width
    for stage in range(3):
        for block in range(blocks):
            strides = 2 if stage > 0 and block == 0 else 1
            y = _conv_bn(x, filters, strides=strides)
            y = _conv_bn(y, filters, activation=None)
            if strides != 1:
                x = _conv_bn(x, filters, kernel_size=1, strides=strides, activation=None,
                             batch_norm=False)
            x = layers.add([x, y])
            x = layers.Activation("relu")(x)
        filters *= 2
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, kernel_initializer="he_normal")(x)
    return models.Model(inputs, outputs, name="resnet%d" % depth)


def resnet20(input_shape=(32, 32, 3), num_classes=10):
    """ResNet-20 v1 for CIFAR-10: 274,442 parameters (1,376 of them BN moving statistics)."""
    return resnet_v1(20, input_shape, num_classes)


MODELS = {"tutorial": tutorial_model, "strong": strong_model, "resnet20": resnet20}
