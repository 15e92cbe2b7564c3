"""Saving and loading models and weights (``model.save``, ``load_model``, ``save_weights``,
``load_weights``).

Formats live in their own modules: ``native`` is fastcnn's own zip format (npz weights);
the public functions below choose the format for a path.
"""
from .native import FORMAT_VERSION, load_model, load_weights, save_model, save_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]
