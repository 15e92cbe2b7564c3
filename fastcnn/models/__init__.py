"""fastcnn.models: ``Sequential`` and ``load_model`` (Keras 3 names)."""
from .sequential import Sequential
from ..saving import load_model

__all__ = ["Sequential", "load_model", "clone_model", "model_from_json"]


def model_from_json(json_string, custom_objects=None):
    """Rebuild an (untrained) model from ``model.to_json()``."""
    import json
    config = json.loads(json_string)
    if config.get("class_name") != "Sequential":
        raise ValueError("model_from_json: only Sequential models are supported, got %r"
                         % config.get("class_name"))
    return Sequential.from_config(config["config"], custom_objects=custom_objects)


def clone_model(model):
    """A new model with the same architecture and freshly initialised weights."""
    config = model.get_config()
    config = dict(config, name=None)
    for layer in config["layers"]:
        layer["config"] = dict(layer["config"])
        layer["config"].pop("name", None)
    return Sequential.from_config(config)
