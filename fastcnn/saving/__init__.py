"""Saving and loading models and weights (``model.save``, ``load_model``, ``save_weights``,
``load_weights``).

Formats live in their own modules: ``keras_v3`` is Keras 3's ``.keras`` zip and
``.weights.h5`` HDF5 layout (what fastcnn writes); ``native`` reads files written by older
fastcnn versions (a zip with an ``.npz`` inside); ``legacy_h5`` reads Keras' legacy HDF5
``.h5`` files (Keras 2 and Keras 3 ``model.save("m.h5")``); ``limits`` bounds what any
loaded file may declare. The public functions below choose the module from a file's
content, not its name.
"""
import os
import zipfile

from . import keras_v3, legacy_h5, limits, native
from ._files import is_hdf5
from .native import FORMAT_VERSION

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]


def _content_kind(filepath):
    """'hdf5', 'keras' (a Keras 3 zip), 'native' (an older fastcnn zip) or None (unknown:
    the native reader then names what is wrong)."""
    if is_hdf5(filepath):
        return "hdf5"
    try:
        with zipfile.ZipFile(filepath) as zf:
            names = set(zf.namelist())
    except Exception:  # not a zip, damaged: the native reader reports it
        return None
    if keras_v3.is_keras_zip(names):
        return "keras"
    return "native"


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Write a model: ``.keras`` in Keras 3's format; ``.h5`` in fastcnn's older zip format
    (an alias kept for existing scripts; Keras 2's HDF5 layout is not written).

    Args:
        model: a built model.
        filepath: a path ending in ``.keras`` (or ``.h5``).
        overwrite: replace an existing file.
        zipped: only ``None``/``True``.
        **kwargs: none accepted.

    Raises:
        ValueError: for another extension or an unbuilt model.
        FileExistsError: if the file exists and ``overwrite=False``.
    """
    if os.fspath(filepath).endswith(".h5"):
        return native.save_model(model, filepath, overwrite=overwrite, zipped=zipped, **kwargs)
    return keras_v3.save_model(model, filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def save_weights(model, filepath, overwrite=True):
    """Write the weights (and a compiled model's optimizer state) as Keras 3's
    ``.weights.h5`` HDF5 file.

    Args:
        model: a built model.
        filepath: a path ending in ``.weights.h5``.
        overwrite: replace an existing file.

    Raises:
        ValueError: for another file name or an unbuilt model.
        FileExistsError: if the file exists and ``overwrite=False``.
    """
    return keras_v3.save_weights(model, filepath, overwrite=overwrite)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Load a model from a Keras 3 ``.keras`` file, a Keras legacy ``.h5`` file or a file of
    an older fastcnn.

    Args:
        filepath: the file.
        custom_objects: dict of name -> class for classes that are not fastcnn's own.
        compile: restore compile settings and optimizer state.
        safe_mode: refuse custom classes (their code would run); Lambda layers are always
            refused.

    Returns:
        The model.

    Raises:
        ValueError: for a damaged, foreign or unsupported file (the message names it).
        FileNotFoundError: if the file does not exist.
    """
    kind = _content_kind(filepath)
    if kind == "keras":
        return keras_v3.load_model(filepath, custom_objects=custom_objects, compile=compile,
                                   safe_mode=safe_mode)
    if kind == "hdf5":
        if legacy_h5.is_legacy_h5(filepath):
            return legacy_h5.load_model(filepath, custom_objects=custom_objects,
                                        compile=compile, safe_mode=safe_mode)
        raise ValueError("Cannot load %s: it is an HDF5 weights file, not a model; load it "
                         "into a built model with load_weights" % os.fspath(filepath))
    return native.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             safe_mode=safe_mode)


def load_weights(model, filepath, skip_mismatch=False):
    """Load weights from a Keras 3 ``.weights.h5``/``.keras`` file, a Keras legacy ``.h5``
    file (Keras 2 ``save_weights("w.h5")`` or a whole-model ``.h5``) or an older fastcnn file.

    Args:
        model: a built model of the same architecture.
        filepath: the file.
        skip_mismatch: skip layers whose weights do not match instead of raising.

    Raises:
        ValueError: for a damaged file or weights that do not match the model.
        FileNotFoundError: if the file does not exist.
    """
    kind = _content_kind(filepath)
    if kind == "hdf5" and legacy_h5.is_legacy_h5(filepath):
        return legacy_h5.load_weights(model, filepath, skip_mismatch=skip_mismatch)
    if kind in ("hdf5", "keras"):
        return keras_v3.load_weights(model, filepath, skip_mismatch=skip_mismatch)
    return native.load_weights(model, filepath, skip_mismatch=skip_mismatch)
