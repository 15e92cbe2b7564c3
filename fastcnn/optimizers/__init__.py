"""Optimizers with Keras 3 names, arguments, defaults and update rules, applied by one fused
C call per step (see ``fastcnn.optimizers.base`` for the step order: loss-scale,
gradient accumulation, clipping, decoupled weight decay, the rule, EMA).

The optimizer's state (``iterations`` and every slot: moments, accumulators, EMA averages) is
saved with the model, so training resumes exactly. Learning-rate schedules live in
:mod:`fastcnn.optimizers.schedules`.
"""
from . import schedules
from .base import Optimizer
from .rules import (SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Ftrl, Lion, Nadam,
                    RMSprop)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax",
           "Nadam", "Lion", "Ftrl", "schedules", "get", "serialize", "deserialize"]

_CLASSES = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax,
                                    Nadam, Lion, Ftrl)}
_BY_NAME = {name.lower(): c for name, c in _CLASSES.items()}


def get(identifier):
    """An optimizer from a name (any case: 'adam', 'adamw', 'sgd', 'rmsprop', 'adagrad',
    'adadelta', 'adamax', 'nadam', 'lion', 'ftrl'), a class, an instance, or a config dict.

    Args:
        identifier: the name, class, instance or ``serialize()`` dict.

    Returns:
        An ``Optimizer``.

    Raises:
        ValueError: an unknown name.
        TypeError: anything else.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError("Unknown optimizer %r. Valid names: %s"
                             % (identifier, ", ".join(sorted(_BY_NAME))))
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, dict) and "class_name" in identifier:
        return deserialize(identifier)
    raise TypeError("Could not interpret optimizer %r: expected one of %s or an Optimizer "
                    "instance" % (identifier, ", ".join(sorted(_BY_NAME))))


def serialize(optimizer):
    """``{"class_name", "config"}`` of an optimizer.

    Args:
        optimizer: an ``Optimizer``.

    Returns:
        A JSON-compatible dict.
    """
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    """An optimizer from ``serialize()``'s output.

    Args:
        config: the dict.
        custom_objects: ``{name: class or function}`` for your own optimizers, schedules or
            learning-rate functions.

    Returns:
        An ``Optimizer``.

    Raises:
        ValueError: an unknown class.
    """
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name) or _BY_NAME.get(
        str(name).lower())
    if cls is None:
        raise ValueError("Unknown optimizer class %r. Known: %s"
                         % (name, ", ".join(sorted(_CLASSES))))
    return cls.from_config(config.get("config", {}), custom_objects=custom_objects)
