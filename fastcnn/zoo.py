"""Ready-made models for the CLI and the examples."""
from . import layers, models

import numpy as np

__all__ = ["tutorial_model", "strong_model", "resnet20", "resnet_v1", "speedrun_model",
           "init_whitening", "MODELS"]


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


def speedrun_model(input_shape=(32, 32, 3), num_classes=10, widths=(32, 128, 128),
                   whiten_filters=24, identity_init=True):
    """A CIFAR-10 net built to reach high accuracy in few epochs, after Keller Jordan's
    airbench94 (2024) and David Page's DAWNBench ResNet: a frozen 2x2 patch-whitening
    convolution (set from the data by :func:`init_whitening`) and GELU, three blocks of
    [3x3 conv, 2x2 max pool, BN, GELU, 3x3 conv, BN, GELU] with ``widths`` filters (half of
    airbench's 64/256/256 by default), global max pooling and a bias-free Dense layer whose
    logits are scaled by 1/9. The batch norms learn a shift but no scale (``scale=False``):
    each one's input is a bias-free conv, whose kernel sets the scale already.

    Args:
        input_shape: (height, width, channels); the whitening needs height and width >= 2.
        num_classes: number of logits.
        widths: filters of the three blocks.
        whiten_filters: filters of the whitening convolution, an even number up to
            2 * 4 * channels (each patch direction with both signs).
        identity_init: the first min(filters, input channels) filters of each 3x3
            convolution start as the identity (a centre tap of 1), the rest as Keras'
            default (Glorot uniform), so that every block first passes its input through.

    Example:

        >>> model = fastcnn.zoo.speedrun_model()
        >>> model.get_layer("whiten").trainable
        False
    """
    channels = input_shape[-1]
    if whiten_filters % 2 or not 2 <= whiten_filters <= 8 * channels:
        raise ValueError("speedrun_model: whiten_filters must be even and in [2, %d] for %d "
                         "input channels, got %r" % (8 * channels, channels, whiten_filters))
    inputs = layers.Input(shape=input_shape)
    x = layers.Conv2D(whiten_filters, 2, padding="same", activation="gelu", name="whiten",
                      trainable=False)(inputs)
    convs = []
    for w in widths:
        for pool in (True, False):
            convs.append(layers.Conv2D(w, 3, padding="same", use_bias=False))
            x = convs[-1](x)
            if pool:  # pooling first: batch norm and GELU on a quarter of the pixels
                x = layers.MaxPooling2D(2)(x)
            # momentum 0.6: the moving statistics must follow a net that changes fast
            x = layers.BatchNormalization(momentum=0.6, epsilon=1e-5, scale=False)(x)
            x = layers.Activation("gelu")(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dense(num_classes, use_bias=False)(x)
    outputs = layers.Rescaling(1.0 / 9)(x)
    model = models.Model(inputs, outputs, name="speedrun")
    if identity_init:
        for conv in convs:
            kernel = conv.get_weights()[0]
            n = min(kernel.shape[2:])
            kernel[:, :, :, :n] = 0
            kernel[1, 1, np.arange(n), np.arange(n)] = 1
            conv.set_weights([kernel])
    return model


def init_whitening(layer, images, max_patches=200_000, eps=5e-4, seed=0):
    """Set a 2x2 ``Conv2D`` (``filters`` = 2k) to whiten 2x2 patches of ``images``: its
    filters are the k leading eigenvectors of the patch covariance, divided by the square
    root of their eigenvalue (+ ``eps``), with both signs; the bias centres the patches.

    Args:
        layer: a built ``Conv2D`` with kernel size 2x2.
        images: (N, H, W, C) array, as the layer will see it (e.g. already rescaled).
        max_patches: patches sampled for the covariance.
        eps: added to the eigenvalues.
        seed: the sampling seed.

    Raises:
        ValueError: a layer that is not a 2x2 Conv2D with an even number of filters and a
            bias, or images of another channel count.
    """
    kernel, bias = (layer.get_weights() + [None, None])[:2]
    if kernel is None or bias is None or kernel.shape[:2] != (2, 2) or kernel.shape[3] % 2:
        raise ValueError("init_whitening: %r must be a 2x2 Conv2D with a bias and an even "
                         "number of filters" % (getattr(layer, "name", layer),))
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[3] != kernel.shape[2] or min(x.shape[1:3]) < 2:
        raise ValueError("init_whitening: images must be (N, H>=2, W>=2, %d), got shape %s"
                         % (kernel.shape[2], x.shape))
    rng = np.random.default_rng(seed)
    n, h, w, c = x.shape
    take = min(max_patches, n * (h - 1) * (w - 1))
    i, r, q = (rng.integers(0, n, take), rng.integers(0, h - 1, take),
               rng.integers(0, w - 1, take))
    patches = np.stack([x[i, r + a, q + b] for a in (0, 1) for b in (0, 1)], axis=1)
    patches = patches.reshape(take, 4 * c).astype(np.float64)
    mean = patches.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(patches, rowvar=False))
    k = kernel.shape[3] // 2
    top = vectors[:, ::-1][:, :k] / np.sqrt(values[::-1][:k] + eps)
    filters = np.concatenate([top, -top], axis=1)  # (4c, 2k) in (row, col, channel) order
    layer.set_weights([filters.reshape(2, 2, c, 2 * k).astype(np.float32),
                       (-(mean @ filters)).astype(np.float32)])


MODELS = {"tutorial": tutorial_model, "strong": strong_model, "resnet20": resnet20,
          "speedrun": speedrun_model}
