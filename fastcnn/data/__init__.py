"""Input pipelines: :class:`Dataset` (tf.data's subset), image folders, ``PyDataset``.

``fastcnn.utils.image_dataset_from_directory`` returns a :class:`Dataset` of uint8 image
batches decoded by background threads; ``Dataset.from_tensor_slices((x, y))`` wraps arrays.
``fit`` / ``evaluate`` / ``predict`` take datasets, ``PyDataset`` subclasses and Python
iterables of batches (``fastcnn.training.adapters``).
"""
from .dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset
from .flip import AlternatingFlip
from .py_dataset import PyDataset

__all__ = ["Dataset", "AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "PyDataset",
           "AlternatingFlip",
           "image_dataset_from_directory", "load_img", "img_to_array", "array_to_img",
           "save_img"]

_LAZY = {"image_dataset_from_directory": "directory", "load_img": "images",
         "img_to_array": "images", "array_to_img": "images", "save_img": "images"}


def __getattr__(name):
    # the image modules are imported on first use (they need Pillow only when called)
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module("." + _LAZY[name], __name__), name)
    raise AttributeError("module 'fastcnn.data' has no attribute %r" % name)
