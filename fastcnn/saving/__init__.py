"""Saving and loading models and weights (``model.save``, ``load_model``, ``save_weights``,
``load_weights``).

Formats live in their own modules: ``native`` is fastcnn's own zip format (npz weights);
``legacy_h5`` reads Keras' legacy HDF5 ``.h5`` files; ``limits`` bounds what any loaded file
may declare. The public functions below choose the format for a path.
"""
from . import legacy_h5, limits, native
from .native import FORMAT_VERSION, save_model, save_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]


def _legacy_h5(filepath):
    """Keras' legacy HDF5 layout behind an ``.h5``/``.hdf5`` name (Keras decides by the
    extension too; fastcnn's own zip files may also carry ``.h5`` names)."""
    return (str(filepath).lower().endswith((".h5", ".hdf5"))
            and legacy_h5.is_legacy_h5(filepath))


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a saved model: fastcnn's ``.keras`` files, or Keras' legacy ``.h5`` files
    (Keras 2 ``model.save("m.h5")``, Keras 3 ``model.save("m.h5")``).

    Args:
        filepath: the file.
        custom_objects: dict of name -> class for layers or other objects of your own.
        compile: restore the compile state too.
        safe_mode: accepted for Keras compatibility; code in a file is never run.

    Returns:
        The model.

    Raises:
        ValueError: a file that is damaged, hostile, of an unknown format or a newer version
            (the message names the file and the problem).
        FileNotFoundError: if the file does not exist.
    """
    if _legacy_h5(filepath):
        return legacy_h5.load_model(filepath, custom_objects=custom_objects, compile=compile,
                                    safe_mode=safe_mode)
    return native.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             safe_mode=safe_mode)


def load_weights(model, filepath, skip_mismatch=False):
    """Load weights into a built model from fastcnn's ``.weights.h5``/``.keras`` files or
    Keras' legacy ``.h5`` files (Keras 2 ``save_weights("w.h5")`` or a whole-model ``.h5``).

    Args:
        model: a built model of the same architecture.
        filepath: the file.
        skip_mismatch: skip layers whose weight shapes differ instead of raising.

    Raises:
        ValueError: a damaged file or one that does not match the model (naming the file).
        FileNotFoundError: if the file does not exist.
    """
    if _legacy_h5(filepath):
        return legacy_h5.load_weights(model, filepath, skip_mismatch=skip_mismatch)
    return native.load_weights(model, filepath, skip_mismatch=skip_mismatch)
