"""The optimizers (Keras 3 names, arguments, defaults and update rules); each defines its slots
and the per-step hyper-parameters of its C rule (csrc/optim.h), the base class runs the step.

Step-dependent factors are computed in float32 the way Keras computes them (Adam's
bias-corrected rate in double, as fastcnn always did; its error is below float32's).
"""
import math
import numbers

import numpy as np

from .base import Optimizer, _check_positive, _check_unit

__all__ = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam",
           "Lion", "Ftrl"]

_F = np.float32


def _check_epsilon(value, who, name="epsilon"):
    return _check_positive(value, name, who, allow_zero=True)


class SGD(Optimizer):
    """Gradient descent with momentum (Keras 3 ``SGD``).

    ``velocity = momentum * velocity - learning_rate * g; w += velocity``
    (nesterov: ``w += momentum * velocity - learning_rate * g``; momentum 0: ``w -= lr * g``).

    Args:
        learning_rate: float, schedule or callable (default 0.01).
        momentum: float in [0, 1].
        nesterov: use Nesterov momentum.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "sgd"
    _gradient_scales_step = True

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.momentum = _check_unit(momentum, "momentum", "SGD", closed_high=True)
        self.nesterov = bool(nesterov)

    @property
    def _slot_names(self):
        return ("momentum",) if self.momentum != 0.0 else ()

    def _hyper(self, step, lr):
        variant = 0 if self.momentum == 0.0 else (2 if self.nesterov else 1)
        return (lr, self.momentum), variant

    def get_config(self):
        c = super().get_config()
        c.update(momentum=self.momentum, nesterov=self.nesterov)
        return c


class Adam(Optimizer):
    """Adam (Keras 3 ``Adam``): ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
    ``w -= alpha m / (sqrt(v) + epsilon)``, ``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)``;
    ``amsgrad`` uses the running maximum of ``v``.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        beta_1: float in [0, 1).
        beta_2: float in [0, 1).
        epsilon: float >= 0.
        amsgrad: use AMSGrad.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        who = type(self).__name__
        self.beta_1 = _check_unit(beta_1, "beta_1", who)
        self.beta_2 = _check_unit(beta_2, "beta_2", who)
        self.epsilon = _check_epsilon(epsilon, who)
        self.amsgrad = bool(amsgrad)

    @property
    def _slot_names(self):
        return ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _hyper(self, step, lr):
        b1, b2 = self.beta_1, self.beta_2
        alpha = lr * math.sqrt(1.0 - b2 ** step) / (1.0 - b1 ** step)
        return (alpha, 1.0 - b1, 1.0 - b2, self.epsilon), int(self.amsgrad)

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                 amsgrad=self.amsgrad)
        return c


class AdamW(Adam):
    """Keras 3's AdamW: Adam with decoupled weight decay (default 0.004), i.e. each step
    ``w -= w * weight_decay * lr``, then the Adam update (see :class:`Adam`).

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        weight_decay: float >= 0 (not None).
        beta_1, beta_2, epsilon, amsgrad: as :class:`Adam`.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name="adamw", **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW: Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, name=name,
                         weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """Keras 3's RMSprop: ``v = rho v + (1 - rho) g^2``; centered: ``a = rho a + (1 - rho) g``
    and ``v - a^2`` in the root; ``inc = lr g / sqrt(v + epsilon)`` (epsilon inside the root);
    momentum: ``mo = momentum mo + inc, w -= mo``, else ``w -= inc``.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        rho: float in [0, 1).
        momentum: float in [0, 1).
        epsilon: float >= 0.
        centered: normalise by the gradient's estimated variance.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, name="rmsprop", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho = _check_unit(rho, "rho", "RMSprop")
        self.momentum = _check_unit(momentum, "momentum", "RMSprop")
        self.epsilon = _check_epsilon(epsilon, "RMSprop")
        self.centered = bool(centered)

    @property
    def _slot_names(self):
        return ("velocity", "momentum" if self.momentum > 0 else None,
                "average_gradient" if self.centered else None)

    def _hyper(self, step, lr):
        variant = int(self.centered) | (2 if self.momentum > 0 else 0)
        return (lr, self.rho, 1.0 - self.rho, self.epsilon, self.momentum), variant

    def get_config(self):
        c = super().get_config()
        c.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                 centered=self.centered)
        return c


class Adagrad(Optimizer):
    """Keras 3's Adagrad: ``acc += g^2; w -= lr g / sqrt(acc + epsilon)``.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        initial_accumulator_value: float >= 0, the accumulators' start.
        epsilon: float >= 0.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "adagrad"
    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name="adagrad", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = _check_positive(
            initial_accumulator_value, "initial_accumulator_value", "Adagrad", allow_zero=True)
        self.epsilon = _check_epsilon(epsilon, "Adagrad")

    def _slot_init(self, name):
        return self.initial_accumulator_value if name == "accumulator" else 0.0

    def _hyper(self, step, lr):
        return (lr, self.epsilon), 0

    def get_config(self):
        c = super().get_config()
        c.update(initial_accumulator_value=self.initial_accumulator_value, epsilon=self.epsilon)
        return c


class Adadelta(Optimizer):
    """Keras 3's Adadelta: ``ag = rho ag + (1 - rho) g^2``,
    ``d = -sqrt(ad + eps) g / sqrt(ag + eps)``, ``ad = rho ad + (1 - rho) d^2``, ``w += lr d``.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        rho: float in [0, 1).
        epsilon: float >= 0.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "adadelta"
    _slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="adadelta", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.rho = _check_unit(rho, "rho", "Adadelta")
        self.epsilon = _check_epsilon(epsilon, "Adadelta")

    def _hyper(self, step, lr):
        return (lr, self.rho, 1.0 - self.rho, self.epsilon), 0

    def get_config(self):
        c = super().get_config()
        c.update(rho=self.rho, epsilon=self.epsilon)
        return c


class Adamax(Optimizer):
    """Keras 3's Adamax: ``m += (g - m)(1 - b1)``, ``u = max(b2 u, |g|)``,
    ``w -= lr m / ((1 - b1^t)(u + epsilon))``.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        beta_1: float in [0, 1).
        beta_2: float in [0, 1).
        epsilon: float >= 0.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "adamax"
    _slot_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="adamax", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1 = _check_unit(beta_1, "beta_1", "Adamax")
        self.beta_2 = _check_unit(beta_2, "beta_2", "Adamax")
        self.epsilon = _check_epsilon(epsilon, "Adamax")

    def _hyper(self, step, lr):
        b1t = _F(self.beta_1) ** _F(step)
        return (lr, 1.0 - self.beta_1, self.beta_2, self.epsilon, float(_F(1) - b1t)), 0

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return c


class Nadam(Optimizer):
    """Keras 3's Nadam (Adam with Nesterov momentum and the 0.96 momentum schedule).

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        beta_1: float in [0, 1).
        beta_2: float in [0, 1).
        epsilon: float >= 0.
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "nadam"
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="nadam", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        self.beta_1 = _check_unit(beta_1, "beta_1", "Nadam")
        self.beta_2 = _check_unit(beta_2, "beta_2", "Nadam")
        self.epsilon = _check_epsilon(epsilon, "Nadam")
        self._u_cache = (0, _F(1.0))   # (t, Keras' _u_product after t steps), float32

    def _u_product(self, t):
        """prod_{k<=t} beta_1 (1 - 0.5 * 0.96^k), accumulated in float32 as Keras does
        (continued from the last step's value; recomputed from 1 after a jump back)."""
        k, up = self._u_cache if self._u_cache[0] <= t else (0, _F(1.0))
        while k < t:
            k += 1
            up = up * _F(self.beta_1) * (_F(1.0) - _F(0.5) * _F(0.96) ** _F(k))
        self._u_cache = (t, up)
        return up

    def _hyper(self, step, lr):
        b1, b2, t = _F(self.beta_1), _F(self.beta_2), _F(step)
        decay = _F(0.96)
        u_t = b1 * (_F(1.0) - _F(0.5) * decay ** t)
        u_t1 = b1 * (_F(1.0) - _F(0.5) * decay ** (t + _F(1)))
        prod_t = self._u_product(step)
        prod_t1 = prod_t * u_t1
        one = _F(1)
        return (lr, float(one - b1), float(one - b2), self.epsilon, float(u_t1),
                float(one - prod_t1), float(one - u_t), float(one - prod_t),
                float(one - b2 ** t)), 0

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return c


class Lion(Optimizer):
    """Keras 3's Lion: ``w -= lr sign(b1 m + (1 - b1) g)``, ``m = b2 m + (1 - b2) g``.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        beta_1: float in (0, 1].
        beta_2: float in [0, 1].
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "lion"
    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name="lion", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        if isinstance(beta_1, bool) or not isinstance(beta_1, numbers.Real) or not (
                0 < beta_1 <= 1):
            raise ValueError("Lion: Argument `beta_1` must be in the [0, 1] range. Otherwise, "
                             "the optimizer degenerates to SignSGD. Received: beta_1=%r."
                             % (beta_1,))
        self.beta_1 = float(beta_1)
        self.beta_2 = _check_unit(beta_2, "beta_2", "Lion", closed_high=True)

    def _hyper(self, step, lr):
        b1, b2 = _F(self.beta_1), _F(self.beta_2)
        return (lr, float(b1), float(_F(1) - b1), float(b2), float(_F(1) - b2)), 0

    def get_config(self):
        c = super().get_config()
        c.update(beta_1=self.beta_1, beta_2=self.beta_2)
        return c


class Ftrl(Optimizer):
    """Keras 3's FTRL-proximal optimizer (with L1/L2 and L2-shrinkage regularisation).

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        learning_rate_power: float <= 0.
        initial_accumulator_value: float >= 0.
        l1_regularization_strength: float >= 0.
        l2_regularization_strength: float >= 0.
        l2_shrinkage_regularization_strength: float >= 0.
        beta: float (default 0).
        **kwargs: the base arguments of :class:`~fastcnn.optimizers.Optimizer`.
    """

    _rule = "ftrl"
    _slot_names = ("accumulator", "linear")

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1, l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, l2_shrinkage_regularization_strength=0.0,
                 beta=0.0, name="ftrl", **kwargs):
        super().__init__(learning_rate, name=name, **kwargs)
        checks = (("initial_accumulator_value", initial_accumulator_value,
                   "needs to be positive or zero"),
                  ("learning_rate_power", -learning_rate_power, "needs to be negative or zero"),
                  ("l1_regularization_strength", l1_regularization_strength,
                   "needs to be positive or zero"),
                  ("l2_regularization_strength", l2_regularization_strength,
                   "needs to be positive or zero"),
                  ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength,
                   "needs to be positive or zero"))
        for arg, value, what in checks:
            if not value >= 0.0:
                raise ValueError("Ftrl: `%s` %s. Received: %s=%r."
                                 % (arg, what, arg, -value if arg == "learning_rate_power"
                                    else value))
        self.learning_rate_power = float(learning_rate_power)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.l1_regularization_strength = float(l1_regularization_strength)
        self.l2_regularization_strength = float(l2_regularization_strength)
        self.l2_shrinkage_regularization_strength = float(l2_shrinkage_regularization_strength)
        self.beta = float(beta)

    def _slot_init(self, name):
        return self.initial_accumulator_value if name == "accumulator" else 0.0

    def _hyper(self, step, lr):
        lr32 = _F(lr)
        l2 = _F(self.l2_regularization_strength) + _F(self.beta) / (_F(2.0) * lr32)
        return (lr, -self.learning_rate_power, 2 * self.l2_shrinkage_regularization_strength,
                float(_F(2) * l2), self.l1_regularization_strength), 0

    def get_config(self):
        c = super().get_config()
        c.update(learning_rate_power=self.learning_rate_power,
                 initial_accumulator_value=self.initial_accumulator_value,
                 l1_regularization_strength=self.l1_regularization_strength,
                 l2_regularization_strength=self.l2_regularization_strength,
                 l2_shrinkage_regularization_strength=self.l2_shrinkage_regularization_strength,
                 beta=self.beta)
        return c
