"""Dataset loaders with Keras' conventions: ``cifar10``, ``cifar100``, ``fashion_mnist``,
``mnist``.

Each module has ``load_data(path=None) -> (x_train, y_train), (x_test, y_test)`` returning
uint8 NumPy arrays exactly as ``keras.datasets.<name>.load_data()`` does, read from the
official file formats. See :mod:`fastcnn.datasets._common` for where files are searched,
downloaded and cached.
"""
from . import cifar10, cifar100, fashion_mnist, mnist
from ._common import (DatasetError, DatasetNotFoundError, UnsafePickleError, get_data_home,
                      keras_datasets_dir)

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist", "DatasetError", "DatasetNotFoundError",
           "UnsafePickleError", "get_data_home", "keras_datasets_dir"]
