"""Activation functions with Keras 3's names, arguments and formulas (``keras.activations``).

Each function takes an array (converted to float32) and returns a new float32 NumPy array
computed by fastcnn's C kernels. ``get``/``serialize``/``deserialize`` map between these
functions and their names, as Keras does; the names are what ``activation=`` accepts in
``Dense``, ``Conv2D`` and ``Activation``.

Example:
    >>> fastcnn.activations.elu(np.array([-1.0, 2.0], np.float32))
    array([-0.63212055,  2.        ], dtype=float32)
"""
from . import ops

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid",
    "hard_sigmoid", "hard_silu", "hard_swish", "tanh", "softplus", "softsign",
    "exponential", "linear", "softmax", "log_softmax", "get", "serialize", "deserialize",
]


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Rectified linear unit with Keras 3's options.

    ``x`` above ``threshold`` is kept (clipped to ``[0, max_value]``), anything else gives 0;
    then ``negative_slope * (threshold - x)`` is subtracted where ``x < threshold``.

    Args:
        x: input array.
        negative_slope: slope below the threshold (default 0).
        max_value: saturation value (default ``None``: none).
        threshold: the value below which the slope part applies (default 0).

    Returns:
        float32 array of x's shape.

    Raises:
        ValueError: when a parameter is not a real number.
    """
    return ops.activation(x, "relu", negative_slope=negative_slope, max_value=max_value,
                          threshold=threshold)


def relu6(x):
    """``min(max(x, 0), 6)``.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "relu6")


def leaky_relu(x, negative_slope=0.2):
    """``x`` where ``x >= 0``, else ``negative_slope * x``.

    Args:
        x: input array.
        negative_slope: slope of the negative part (default 0.2).

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "leaky_relu", negative_slope=negative_slope)


def elu(x, alpha=1.0):
    """Exponential linear unit: ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Args:
        x: input array.
        alpha: scale of the negative part (default 1.0).

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "elu", alpha=alpha)


def selu(x):
    """Scaled ELU: ``scale * elu(x, alpha)`` with Keras' constants (1.0507..., 1.6732...).

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "selu")


def gelu(x, approximate=False):
    """Gaussian error linear unit: ``x * Phi(x)``.

    Args:
        x: input array.
        approximate: use the tanh approximation
            ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` instead of the exact
            erf form (default False).

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "gelu", approximate=bool(approximate))


def silu(x):
    """Sigmoid linear unit (swish): ``x * sigmoid(x)``.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "silu")


swish = silu


def sigmoid(x):
    """``1 / (1 + exp(-x))``.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "sigmoid")


def hard_sigmoid(x):
    """Keras 3's hard sigmoid: ``relu6(x + 3) / 6``.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "hard_sigmoid")


def hard_silu(x):
    """Hard SiLU (hard swish): ``x * relu6(x + 3) / 6``.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "hard_silu")


hard_swish = hard_silu


def tanh(x):
    """Hyperbolic tangent.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "tanh")


def softplus(x):
    """``log(1 + exp(x))``, computed without overflow.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "softplus")


def softsign(x):
    """``x / (1 + |x|)``.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "softsign")


def exponential(x):
    """``exp(x)``.

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "exponential")


def linear(x):
    """The identity (as a float32 copy).

    Args:
        x: input array.

    Returns:
        float32 array of x's shape.
    """
    return ops.activation(x, "linear")


def softmax(x, axis=-1):
    """Softmax along ``axis``: ``exp(x - max) / sum(exp(x - max))``.

    Args:
        x: input array of rank >= 1.
        axis: the axis to normalise (default -1).

    Returns:
        float32 array of x's shape.

    Raises:
        ValueError: for a scalar input or an axis out of range.
    """
    return ops.softmax_axis(x, axis)


def log_softmax(x, axis=-1):
    """Log-softmax along ``axis``: ``x - max - log(sum(exp(x - max)))``.

    Args:
        x: input array of rank >= 1.
        axis: the axis to normalise (default -1).

    Returns:
        float32 array of x's shape.

    Raises:
        ValueError: for a scalar input or an axis out of range.
    """
    return ops.softmax_axis(x, axis, log=True)


# name -> function; Keras' aliases (swish, hard_swish) resolve to the canonical function
_BY_NAME = {f.__name__: f for f in (
    relu, relu6, leaky_relu, elu, selu, gelu, silu, sigmoid, hard_sigmoid, hard_silu, tanh,
    softplus, softsign, exponential, linear, softmax, log_softmax)}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def _supported():
    return ", ".join(sorted(list(_BY_NAME) + list(_ALIASES)))


def _lookup(name):
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _BY_NAME:
        raise ValueError("Could not interpret activation function identifier: %r. fastcnn "
                         "supports: None, %s" % (name, _supported()))
    return _BY_NAME[key]


def deserialize(config, custom_objects=None):
    """The activation function for a serialized form (a name or Keras' config dict).

    Args:
        config: a name such as ``"relu"`` or a dict ``{"class_name": "function",
            "config": "relu", ...}`` as Keras writes them.
        custom_objects: refused unless ``None`` or empty (fastcnn runs its own kernels).

    Returns:
        The function of this module.

    Raises:
        ValueError: for an unknown name or a config fastcnn cannot run.
    """
    if custom_objects:
        raise ValueError("activations.deserialize: custom_objects are not supported by "
                         "fastcnn (its activations run in C kernels)")
    if isinstance(config, dict):
        inner = config.get("config")
        if config.get("class_name") == "function" and isinstance(inner, str):
            return _lookup(inner)
        raise ValueError("activations.deserialize: expected a Keras function config "
                         "{'class_name': 'function', 'config': name}, got %r" % (config,))
    if isinstance(config, str):
        return _lookup(config)
    raise ValueError("activations.deserialize: expected a name or a config dict, got %r"
                     % (config,))


def serialize(activation):
    """The name Keras stores for a built-in activation (``swish`` -> ``"silu"``).

    Args:
        activation: a function of this module (or of ``keras.activations``).

    Returns:
        Its canonical name (str).

    Raises:
        ValueError: for a function that is not one of the supported activations.
    """
    name = getattr(activation, "__name__", None)
    if not callable(activation) or not isinstance(name, str) or \
            _ALIASES.get(name, name) not in _BY_NAME:
        raise ValueError("activations.serialize: unknown activation function %r. fastcnn "
                         "supports: %s" % (activation, _supported()))
    return _ALIASES.get(name, name)


def get(identifier):
    """Retrieve an activation function, as ``keras.activations.get``.

    Args:
        identifier: ``None`` (linear), a name (``"relu"``, ``"swish"``, ...), a Keras
            config dict, or a function (returned as is when it is a supported activation,
            including Keras' own functions of the same names).

    Returns:
        The activation function.

    Raises:
        ValueError: for anything fastcnn cannot run, listing the supported names.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if callable(identifier):
        return _lookup(serialize(identifier))
    raise ValueError("Could not interpret activation function identifier: %r. fastcnn "
                     "supports: None, %s" % (identifier, _supported()))
