"""fastcnn: Keras-style convolutional networks trained by our own C/OpenMP kernels."""
from ._config import __version__, config, get_num_threads, set_num_threads, show_config
from . import ops

__all__ = ["__version__", "config", "get_num_threads", "set_num_threads", "show_config", "ops"]
