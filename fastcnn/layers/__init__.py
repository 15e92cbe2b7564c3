"""fastcnn.layers: Keras 3 layer classes running on fastcnn's C kernels.

Every layer has ``build(input_shape)``, ``compute_output_shape``, ``get_config`` /
``from_config``, ``get_weights`` / ``set_weights`` in Keras layouts, and the training
protocol ``forward(x, training)`` / ``backward(dy)`` described in ``fastcnn.layers.base``.
"""
from .base import Layer, Variable
from .node import KerasTensor
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer, ReLU
from .convolutional import Conv2D
from .pooling import (AveragePooling2D, AvgPool2D, AveragePool2D, GlobalAveragePooling2D,
                      GlobalAvgPool2D, MaxPool2D, MaxPooling2D)
from .normalization import BatchNormalization
from .preprocessing import (CenterCrop, RandomBrightness, RandomContrast, RandomCrop, RandomFlip,
                            RandomRotation, RandomTranslation, RandomZoom, Rescaling, Resizing)
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add,
                      average, concatenate, maximum, minimum, multiply, subtract)
from .reshaping import Cropping2D, Identity, Reshape, ZeroPadding2D
from .activations import ELU, LeakyReLU, PReLU, Softmax
from .depthwise import DepthwiseConv2D, SeparableConv2D

Convolution2D = Conv2D

__all__ = ["Layer", "Variable", "Input", "InputLayer", "Dense", "Flatten", "Dropout",
           "Activation", "ReLU", "Conv2D", "Convolution2D", "MaxPooling2D", "MaxPool2D",
           "AveragePooling2D", "AvgPool2D", "AveragePool2D", "GlobalAveragePooling2D",
           "GlobalAvgPool2D", "BatchNormalization", "Rescaling", "RandomFlip",
           "RandomTranslation", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "Concatenate", "add", "subtract", "multiply", "average", "maximum", "minimum",
           "concatenate", "ZeroPadding2D", "Cropping2D", "Reshape", "Identity", "KerasTensor",
           "get", "serialize", "deserialize", "register"]

_REGISTRY = {cls.__name__: cls for cls in (
    InputLayer, Dense, Flatten, Dropout, Activation, ReLU, Conv2D, MaxPooling2D,
    AveragePooling2D, GlobalAveragePooling2D, BatchNormalization, Rescaling, RandomFlip,
    RandomTranslation, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate,
    ZeroPadding2D, Cropping2D, Reshape, Identity)}

# the image preprocessing and augmentation layers beyond the first three (layers.preprocessing)
_IMAGE_LAYERS = (RandomRotation, RandomZoom, RandomCrop, RandomContrast, RandomBrightness,
                 Resizing, CenterCrop)
__all__ += [cls.__name__ for cls in _IMAGE_LAYERS]
_REGISTRY.update({cls.__name__: cls for cls in _IMAGE_LAYERS})
# activation layers (layers.activations)
__all__ += ["LeakyReLU", "PReLU", "ELU", "Softmax"]
_REGISTRY.update({cls.__name__: cls for cls in (LeakyReLU, PReLU, ELU, Softmax)})

# per-sample normalisation, channel dropout, permute/repeat and embedding (issue 13)
from .normalization import GroupNormalization, LayerNormalization  # noqa: E402
from .regularization import SpatialDropout2D  # noqa: E402
from .repeat_permute import Permute, RepeatVector  # noqa: E402
from .embedding import Embedding  # noqa: E402
_NORM_LAYERS = (LayerNormalization, GroupNormalization, SpatialDropout2D, Permute,
                RepeatVector, Embedding)
__all__ += [cls.__name__ for cls in _NORM_LAYERS]
_REGISTRY.update({cls.__name__: cls for cls in _NORM_LAYERS})
# transposed / 1-D convolution, 1-D and global max pooling, up-sampling (issue 13)
from .convolutional import Conv1D, Conv2DTranspose  # noqa: E402
from .pooling import (AveragePooling1D, AvgPool1D, GlobalAveragePooling1D,  # noqa: E402
                      GlobalAvgPool1D, GlobalMaxPool2D, GlobalMaxPooling2D, MaxPool1D,
                      MaxPooling1D)
from .reshaping import UpSampling2D  # noqa: E402

Convolution2DTranspose = Conv2DTranspose
Convolution1D = Conv1D
_CONVT_LAYERS = (Conv2DTranspose, Conv1D, MaxPooling1D, AveragePooling1D,
                 GlobalAveragePooling1D, GlobalMaxPooling2D, UpSampling2D)
__all__ += [cls.__name__ for cls in _CONVT_LAYERS]
__all__ += ["Convolution2DTranspose", "Convolution1D", "MaxPool1D", "AvgPool1D",
            "GlobalAvgPool1D", "GlobalMaxPool2D"]
_REGISTRY.update({cls.__name__: cls for cls in _CONVT_LAYERS})
__all__ += ["DepthwiseConv2D", "SeparableConv2D", "SeparableConvolution2D"]
_REGISTRY.update({cls.__name__: cls for cls in (DepthwiseConv2D, SeparableConv2D)})
SeparableConvolution2D = SeparableConv2D


def register(cls, name=None):
    """Make ``deserialize`` (and so ``load_model``) know a class by ``name`` (default: the
    class name). fastcnn.models registers its model classes here, so a saved model, or a
    model nested in one, is rebuilt without saving importing any model class."""
    _REGISTRY[name or cls.__name__] = cls
    return cls


def serialize(layer):
    """``{"class_name": ..., "config": ...}`` (JSON-able) for a layer."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None):
    """Rebuild a layer from ``serialize`` output (custom layer classes via custom_objects)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("layers.deserialize: expected a dict with 'class_name' and 'config', "
                         "got %r" % (config,))
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _REGISTRY.get(name)
    if cls is None:
        raise ValueError("Unknown layer class %r. Known layers: %s (pass custom layer classes "
                         "via custom_objects={'%s': MyLayer})"
                         % (name, ", ".join(sorted(_REGISTRY)), name))
    cfg = dict(config.get("config", {}))
    if getattr(cls, "from_config_takes_custom_objects", False):
        return cls.from_config(cfg, custom_objects=custom_objects)
    return cls.from_config(cfg)


get = deserialize
