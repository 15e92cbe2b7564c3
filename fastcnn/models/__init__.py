"""fastcnn.models: ``Model`` (functional graphs), ``Sequential`` and loading (Keras 3 names)."""
import json

from .. import layers as _layers
from .functional import Functional, Model
from .sequential import Sequential
from ..saving import load_model

__all__ = ["Model", "Functional", "Sequential", "load_model", "clone_model", "model_from_json"]


def model_from_json(json_string, custom_objects=None):
    """Rebuild an (untrained) model from ``model.to_json()``."""
    config = json.loads(json_string)
    if config.get("class_name") not in ("Sequential", "Functional", "Model"):
        raise ValueError("model_from_json: expected a Sequential or Functional model, got %r"
                         % config.get("class_name"))
    return _layers.deserialize(config, custom_objects)


def clone_model(model):
    """A new model with the same architecture and freshly initialised weights."""
    config = model.get_config()
    if isinstance(model, Sequential):
        config = dict(config, name=None)
        for layer in config["layers"]:
            layer["config"] = dict(layer["config"])
            layer["config"].pop("name", None)
        return Sequential.from_config(config)
    return type(model).from_config(config)
