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
    # fastcnn.datasets is imported on first use (it is optional for the rest of the package)
    if name == "datasets":
        import importlib
        return importlib.import_module(".datasets", __name__)
    raise AttributeError("module 'fastcnn' has no attribute %r" % name)
