"""fastcnn: Keras-style convolutional networks trained by our own C/OpenMP kernels."""
from ._config import __version__, config, get_num_threads, set_num_threads, show_config
from . import ops
from . import (callbacks, initializers, layers, losses, metrics, models, optimizers,  # noqa: E402
               saving, utils)
from . import constraints, regularizers  # noqa: E402
from . import distribution
from . import activations  # noqa: E402
from .models import Model, Sequential
from . import zoo
from .layers import Input

__all__ = ["__version__", "config", "get_num_threads", "set_num_threads", "show_config", "ops",
           "Model", "Sequential", "Input", "layers", "models", "optimizers", "losses", "metrics", "callbacks",
           "utils", "initializers", "saving", "zoo", "datasets", "regularizers",
           "constraints", "distribution",
           "activations"]


def __getattr__(name):
    # fastcnn.datasets / fastcnn.onnx are imported on first use (optional for the rest)
    if name in ("datasets", "onnx"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'fastcnn' has no attribute %r" % name)
