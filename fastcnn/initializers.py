"""Weight initializers with Keras 3's names, formulas and fan conventions.

Fans follow ``keras.initializers``: for a conv kernel ``(kh, kw, in, out)`` the receptive
field ``kh*kw`` multiplies both ``fan_in = kh*kw*in`` and ``fan_out = kh*kw*out``; for a
dense kernel ``(in, out)`` they are ``in`` and ``out``.

An initializer without a seed draws from fastcnn's generator (``fastcnn.utils
.set_random_seed``); one with an int seed gives the same values on every call, as Keras.
Values are produced once, at ``build`` time, so NumPy is fine here.
"""
import math
import numbers

import numpy as np

from . import utils

__all__ = ["Initializer", "VarianceScaling", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
           "TruncatedNormal", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
           "LecunUniform", "LecunNormal", "Identity", "Orthogonal", "get", "serialize",
           "deserialize", "zeros", "ones", "constant", "random_uniform", "random_normal",
           "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
           "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "identity",
           "orthogonal"]

# stddev of a unit normal truncated to [-2, 2]: scaling by 1/this keeps the variance.
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape):
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype='float32') -> float32 array``."""

    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments as a JSON-serialisable dict (Keras 3's keys).

        Returns:
            dict: ``cls.from_config(config)`` makes an equivalent object.
        """
        return {}

    @classmethod
    def from_config(cls, config):
        """Create an instance from the dict of :meth:`get_config`.

        Args:
            config: dict.

        Returns:
            A new instance.
        """
        return cls(**config)

    def _generator(self):
        seed = getattr(self, "seed", None)
        return np.random.default_rng(seed) if seed is not None else utils._rng()

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in self.get_config().items()))


def _check_seed(seed, who):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise ValueError("%s: seed must be None or an int >= 0, got %r" % (who, seed))
    return None if seed is None else int(seed)


class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=np.float32)


class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=np.float32)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype=np.float32)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval = float(minval), float(maxval)
        self.seed = _check_seed(seed, "RandomUniform")

    def __call__(self, shape, dtype="float32"):
        return self._generator().uniform(self.minval, self.maxval, shape).astype(np.float32)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = float(mean), float(stddev)
        self.seed = _check_seed(seed, "RandomNormal")

    def __call__(self, shape, dtype="float32"):
        return (self.mean + self.stddev * self._generator().standard_normal(shape)
                ).astype(np.float32)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(gen, shape, stddev):
    """Normal samples redrawn until inside two standard deviations (Keras' truncated_normal)."""
    x = gen.standard_normal(shape)
    bad = np.abs(x) > 2.0
    while bad.any():
        x[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(x) > 2.0
    return (x * stddev).astype(np.float32)


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = float(mean), float(stddev)
        self.seed = _check_seed(seed, "TruncatedNormal")

    def __call__(self, shape, dtype="float32"):
        return (_truncated_normal(self._generator(), shape, self.stddev)
                + np.float32(self.mean)).astype(np.float32)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """Keras' VarianceScaling: scale / fan (fan_in, fan_out or their average)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        if input_axes is not None or output_axes is not None:
            raise ValueError("%s: input_axes / output_axes are not supported by fastcnn (the "
                             "fans come from the kernel layout); got %r, %r"
                             % (type(self).__name__, input_axes, output_axes))
        if scale <= 0:
            raise ValueError("VarianceScaling: scale must be > 0, got %r" % (scale,))
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError("VarianceScaling: mode must be 'fan_in', 'fan_out' or 'fan_avg', "
                             "got %r" % (mode,))
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError("VarianceScaling: distribution must be 'truncated_normal', "
                             "'untruncated_normal' or 'uniform', got %r" % (distribution,))
        self.scale, self.mode, self.distribution = float(scale), mode, distribution
        self.seed = _check_seed(seed, type(self).__name__)

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out,
               "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        gen = self._generator()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            return gen.uniform(-limit, limit, shape).astype(np.float32)
        if self.distribution == "untruncated_normal":
            return (math.sqrt(scale) * gen.standard_normal(shape)).astype(np.float32)
        return _truncated_normal(gen, shape, math.sqrt(scale) / _TRUNC_STD)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class _Named(VarianceScaling):
    _args = None

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        scale, mode, dist = self._args
        super().__init__(scale, mode, dist, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_Named):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out))."""
    _args = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Named):
    _args = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Named):
    """Uniform in [-limit, limit], limit = sqrt(6 / fan_in)."""
    _args = (2.0, "fan_in", "uniform")


class HeNormal(_Named):
    """Truncated normal with stddev sqrt(2 / fan_in)."""
    _args = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Named):
    _args = (1.0, "fan_in", "uniform")


class LecunNormal(_Named):
    _args = (1.0, "fan_in", "truncated_normal")


class Identity(Initializer):
    """``gain * eye(rows, cols)`` for a 2-D shape (Keras' Identity).

    Args:
        gain: the diagonal value (default 1.0).

    Raises:
        ValueError: called for a shape that is not 2-D.
    """

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError("Identity matrix initializer can only be used for 2D matrices. "
                             "Received: shape=%s of rank %d." % (shape, len(shape)))
        return (self.gain * np.eye(*shape)).astype(np.float32)

    def get_config(self):
        return {"gain": self.gain}


class Orthogonal(Initializer):
    """A random orthogonal matrix (Keras' Orthogonal): the Q of the QR decomposition of a
    standard normal (max(rows, cols), min(rows, cols)) matrix, signs fixed by R's diagonal,
    transposed if rows < cols, times ``gain``; rows = product of all but the last axis.

    Args:
        gain: multiplies the matrix (default 1.0).
        seed: None or an int (same values on every call).

    Raises:
        ValueError: a shape of rank < 2.
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = float(gain)
        self.seed = _check_seed(seed, "Orthogonal")

    def __call__(self, shape, dtype="float32"):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional. "
                             "Received: shape=%s of rank %d." % (shape, len(shape)))
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._generator().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(np.float32)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


# Keras' snake_case function-style names are the classes themselves
zeros, ones, constant, identity, orthogonal = Zeros, Ones, Constant, Identity, Orthogonal
random_uniform, random_normal, truncated_normal = RandomUniform, RandomNormal, TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform, glorot_normal, he_uniform, he_normal = (GlorotUniform, GlorotNormal,
                                                        HeUniform, HeNormal)
lecun_uniform, lecun_normal = LecunUniform, LecunNormal

_BY_NAME = {
    "identity": Identity, "orthogonal": Orthogonal,
    "normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros,
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_uniform": RandomUniform, "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
}
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}
_CLASSES.update(IdentityInitializer=Identity, OrthogonalInitializer=Orthogonal)


def get(identifier, what="initializer"):
    """A string name, a config dict, an Initializer instance or a callable -> Initializer."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _BY_NAME:
            return _BY_NAME[key]()
        if identifier in _CLASSES:
            return _CLASSES[identifier]()
        raise ValueError("Unknown %s: %r. Valid names are: %s"
                         % (what, identifier, ", ".join(sorted(_BY_NAME))))
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = _CLASSES.get(identifier["class_name"]) or _BY_NAME.get(identifier["class_name"])
        if cls is None:
            raise ValueError("Unknown %s class %r. Valid: %s"
                             % (what, identifier["class_name"], ", ".join(sorted(_CLASSES))))
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise TypeError("Could not interpret %s: %r (expected a name such as 'glorot_uniform', "
                    "an Initializer or a callable(shape, dtype))" % (what, identifier))


def deserialize(config):
    """An initializer from ``serialize``'s output (Keras' dict form is accepted too).

    Raises:
        ValueError: an unknown class name.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("initializers.deserialize: expected a dict with 'class_name' and "
                         "'config', got %r" % (config,))
    return get(config)


def serialize(init):
    """JSON-able form of an initializer (what get_config stores)."""
    if isinstance(init, Initializer):
        return {"class_name": type(init).__name__, "config": init.get_config()}
    raise TypeError("cannot serialize initializer %r: only fastcnn.initializers classes can be "
                    "saved" % (init,))
