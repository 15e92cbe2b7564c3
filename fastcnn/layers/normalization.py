"""Normalisation layers, Keras 3 defaults and weight order: BatchNormalization over the last
(channel) axis; LayerNormalization and GroupNormalization per sample (csrc/layernorm.c)."""
import collections
import numbers

import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..ops._validation import unsupported
from .base import Layer

__all__ = ["BatchNormalization", "LayerNormalization", "GroupNormalization"]

# the cache of a forward whose statistics came from every replica (synchronized=True)
_SyncedCache = collections.namedtuple("_SyncedCache", ["cache", "replica"])


class BatchNormalization(Layer):
    """Normalize with batch statistics while training, moving statistics at inference.

    Weights (Keras order): gamma, beta (trainable), moving_mean, moving_variance
    (non-trainable; updated in place by the kernel: ``moving = moving*momentum +
    batch*(1-momentum)``). A layer with ``trainable=False`` runs in inference mode, as Keras.

    ``synchronized=True`` (Keras 3's argument): while training data-parallel
    (fastcnn.distribution), the batch statistics are those of the global batch (every
    rank's mean and variance combined, and the sums of the backward pass reduced), so the
    layer trains as it would in one process; without a distribution it changes nothing.
    By default each rank normalizes with its own part of the batch (the moving statistics
    are then averaged over the ranks after every epoch).

    Args:
        axis: the channel axis, ``-1`` (NHWC).
        momentum: moving-average momentum, default 0.99.
        epsilon: added to the variance, default 1e-3.
        center: whether to learn ``beta``.
        scale: whether to learn ``gamma``.
        beta_initializer: initializer of ``beta``, default ``"zeros"``.
        gamma_initializer: initializer of ``gamma``, default ``"ones"``.
        moving_mean_initializer: default ``"zeros"``.
        moving_variance_initializer: default ``"ones"``.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Keras' regularizer and constraint arguments are accepted; ``renorm`` raises
    ValueError.

    Raises:
        ValueError: for an unsupported argument or an axis other than the last.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, synchronized=False, renorm=False,
                 renorm_clipping=None, renorm_momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            axis = axis[0] if len(axis) == 1 else axis
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError("%s: axis must be an int (the channel axis), got %r"
                             % (self.name, axis))
        for arg, val in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(val, bool) or not isinstance(val, numbers.Real):
                raise ValueError("%s: %s must be a number, got %r" % (self.name, arg, val))
        if not 0.0 <= momentum <= 1.0:
            raise ValueError("%s: momentum must be in [0, 1], got %r" % (self.name, momentum))
        if epsilon <= 0:
            raise ValueError("%s: epsilon must be > 0, got %r" % (self.name, epsilon))
        unsupported(self.name, renorm=renorm, renorm_clipping=renorm_clipping)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        if synchronized not in (True, False):
            raise ValueError("%s: synchronized must be True or False, got %r"
                             % (self.name, synchronized))
        self.synchronized = bool(synchronized)
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, min_ndim=2)
        if self.axis not in (-1, len(input_shape) - 1):
            raise ValueError("%s: fastcnn normalizes over the last (channel) axis only; "
                             "got axis=%d for an input of rank %d"
                             % (self.name, self.axis, len(input_shape)))
        if input_shape[-1] is None:
            self._incompatible("the channel axis (-1) must be known", input_shape)
        if self.built:
            self._check_last_axis(input_shape, self.moving_mean.shape[0])
        return tuple(input_shape)

    def build(self, input_shape):
        c = input_shape[-1]
        if self.scale:
            self.gamma = self.add_weight((c,), self.gamma_initializer, "gamma",
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        else:
            self._const_gamma = np.ones((c,), np.float32)
            self._scratch_dgamma = np.zeros((c,), np.float32)
        if self.center:
            self.beta = self.add_weight((c,), self.beta_initializer, "beta",
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)
        else:
            self._const_beta = np.zeros((c,), np.float32)
            self._scratch_dbeta = np.zeros((c,), np.float32)
        self.moving_mean = self.add_weight((c,), self.moving_mean_initializer, "moving_mean",
                                           trainable=False)
        self.moving_variance = self.add_weight((c,), self.moving_variance_initializer,
                                               "moving_variance", trainable=False)
        self.built = True

    def gamma_array(self):
        """The scale the kernels use: gamma's storage, or ones with ``scale=False``."""
        return self.gamma.value if self.scale else self._const_gamma

    def beta_array(self):
        """The offset the kernels use: beta's storage, or zeros with ``center=False``."""
        return self.beta.value if self.center else self._const_beta

    def gradient_arrays(self):
        """(dgamma, dbeta) arrays ``backward`` writes (scratch for an absent weight)."""
        return (self._grad(self.gamma) if self.scale else self._scratch_dgamma,
                self._grad(self.beta) if self.center else self._scratch_dbeta)

    def _replica(self, training):
        """The data-parallel replica whose ranks share this layer's statistics, or None."""
        if not (self.synchronized and training and self.trainable):
            return None
        from ..distribution import runtime
        return runtime.active()

    def normalize(self, x, training, out, relu=False, relu_max=None):
        """``ops.batch_norm_forward`` with this layer's weights (training only while the
        layer is trainable, as Keras); returns (y, cache) for ``normalize_backward``.
        Synchronized while training data-parallel: statistics of the global batch.
        ``relu`` / ``relu_max``: a fused following (clipped) ReLU, as the op's."""
        replica = self._replica(training)
        if replica is None:
            return ops.batch_norm_forward(
                x, self.gamma_array(), self.beta_array(), self.moving_mean.value,
                self.moving_variance.value, momentum=self.momentum, epsilon=self.epsilon,
                training=training and self.trainable, out=out, relu=relu, relu_max=relu_max)
        _, mean, var = replica.combine_moments(*ops.batch_norm_moments(x))
        y, cache = ops.batch_norm_forward_stats(
            x, self.gamma_array(), self.beta_array(), mean, var, self.moving_mean.value,
            self.moving_variance.value, self.momentum, self.epsilon, out=out, relu=relu,
            relu_max=relu_max)
        return y, _SyncedCache(cache, replica)

    def normalize_backward(self, dy, cache, dx, relu_output=None, relu_max=None):
        """Gradients of ``normalize``: dgamma / dbeta into this layer's gradient arrays
        (this rank's part when synchronized), returns dx. ``relu_output`` / ``relu_max``:
        the fused (clipped) ReLU's output and cap, as given to ``normalize``."""
        dgamma, dbeta = self.gradient_arrays()
        if not isinstance(cache, _SyncedCache):
            # the mask recomputed from the input (the same bits): one array less to read
            return ops.batch_norm_backward(dy, cache, dx=dx, dgamma=dgamma, dbeta=dbeta,
                                           relu_max=relu_max,
                                           relu=relu_output is not None)[0]
        sum_dy, sum_dy_xhat, _, _ = ops.batch_norm_backward_sums(
            dy, cache.cache, dgamma=dgamma, dbeta=dbeta, relu_output=relu_output,
            relu_max=relu_max)
        rows, sum_dy, sum_dy_xhat = cache.replica.sum_channels(
            cache.cache.x.size // max(1, sum_dy.shape[0]), sum_dy, sum_dy_xhat)
        return ops.batch_norm_backward_input(dy, cache.cache, sum_dy, sum_dy_xhat, rows,
                                             dx=dx, relu_output=relu_output,
                                             relu_max=relu_max)

    def idle_step(self, replica, backward):
        """Take part in the ranks' exchanges of a training step without rows (a rank whose
        part of a short last batch is empty): the moving statistics still follow the
        global batch's."""
        c = self.moving_mean.shape[0]
        if not backward:
            _, mean, var = replica.combine_moments(0, np.zeros(c), np.zeros(c))
            ops.batch_norm_forward_stats(np.empty((0, c), np.float32), self.gamma_array(),
                                         self.beta_array(), mean, var,
                                         self.moving_mean.value, self.moving_variance.value,
                                         self.momentum, self.epsilon)
        else:
            replica.sum_channels(0, np.zeros(c), np.zeros(c))

    def _forward(self, x, ws, training, return_logits):
        y, ws["cache"] = self.normalize(x, training, ws.buf("out", x.shape))
        return y

    def _backward(self, dy, ws, need_input_grad):
        dx = self.normalize_backward(dy, ws["cache"], ws.buf("dx", dy.shape))
        return dx if need_input_grad else None

    def get_config(self):
        c = super().get_config()
        c.update(axis=self.axis, momentum=self.momentum, epsilon=self.epsilon,
                 center=self.center, scale=self.scale,
                 beta_initializer=initializers.serialize(self.beta_initializer),
                 gamma_initializer=initializers.serialize(self.gamma_initializer),
                 moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
                 moving_variance_initializer=initializers.serialize(
                     self.moving_variance_initializer),
                 beta_regularizer=regularizers.serialize(self.beta_regularizer),
                 gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                 beta_constraint=constraints.serialize(self.beta_constraint),
                 gamma_constraint=constraints.serialize(self.gamma_constraint),
                 synchronized=self.synchronized)
        return c


# ---------------------------------------------------------------- per-sample normalisation

class _SampleNorm(Layer):
    """What LayerNormalization and GroupNormalization share: the optional gamma / beta
    weights, the forward/backward through ``ops.group_norm_backward``, the config keys."""

    def _init_affine(self, epsilon, center, scale, beta_initializer, gamma_initializer,
                     beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint):
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or epsilon <= 0:
            raise ValueError("%s: epsilon must be a number > 0, got %r" % (self.name, epsilon))
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = self.beta = None

    def _add_affine(self, shape, with_gamma, with_beta):
        if with_gamma:
            self.gamma = self.add_weight(shape, self.gamma_initializer, "gamma",
                                         regularizer=self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if with_beta:
            self.beta = self.add_weight(shape, self.beta_initializer, "beta",
                                        regularizer=self.beta_regularizer,
                                        constraint=self.beta_constraint)

    def _affine_values(self):
        return (None if self.gamma is None else self.gamma.value,
                None if self.beta is None else self.beta.value)

    def forward_flops(self, input_shape, output_shape):
        # two passes for the statistics, one to normalise, scale and shift
        return 8 * int(np.prod(input_shape, dtype=np.int64))

    def _backward(self, dy, ws, need_input_grad):
        dx, _, _ = ops.group_norm_backward(
            dy, ws["cache"], dx=ws.buf("dx", dy.shape) if need_input_grad else None,
            dgamma=None if self.gamma is None else self._grad(self.gamma),
            dbeta=None if self.beta is None else self._grad(self.beta),
            need_input_grad=need_input_grad)
        return dx

    def _affine_config(self):
        return dict(epsilon=self.epsilon, center=self.center, scale=self.scale,
                    beta_initializer=initializers.serialize(self.beta_initializer),
                    gamma_initializer=initializers.serialize(self.gamma_initializer),
                    beta_regularizer=regularizers.serialize(self.beta_regularizer),
                    gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
                    beta_constraint=constraints.serialize(self.beta_constraint),
                    gamma_constraint=constraints.serialize(self.gamma_constraint))


class LayerNormalization(_SampleNorm):
    """Normalize each sample over its trailing axes (Keras 3's ``LayerNormalization``).

    ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``, mean and (biased) variance
    taken per sample over ``axis`` (statistics in double precision in the C kernel).
    ``rms_scaling=True`` is Keras' deprecated variant ``x / sqrt(var + epsilon) * gamma``
    (no beta). gamma and beta have the shape of the normalised axes, as in Keras.

    Args:
        axis: an int or a list of ints; fastcnn normalizes over trailing axes (``-1``,
            ``[-2, -1]``, ``[1, 2, 3]`` for a rank-4 input...), never the batch axis.
        epsilon: added to the variance, default 1e-3.
        center: whether to learn ``beta``.
        scale: whether to learn ``gamma``.
        rms_scaling: Keras' rms_scaling (deprecated there too).
        beta_initializer: default ``"zeros"``.
        gamma_initializer: default ``"ones"``.
        beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint: as Keras.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        TypeError: an axis that is not an int or a list of ints.
        ValueError: axes that are not the trailing ones, an unknown axis size, a bad
            epsilon.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if not axis or any(isinstance(a, bool) or not isinstance(a, numbers.Integral)
                               for a in axis):
                raise TypeError("%s: expected an int or a list/tuple of ints for the argument "
                                "'axis', but received: %r" % (self.name, axis))
            axis = [int(a) for a in axis]
        elif isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError("%s: expected an int or a list/tuple of ints for the argument "
                            "'axis', but received: %r" % (self.name, axis))
        else:
            axis = int(axis)
        self.axis = axis
        self.rms_scaling = bool(rms_scaling)
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer,
                          beta_regularizer, gamma_regularizer, beta_constraint,
                          gamma_constraint)

    def _axes(self, rank):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        out = []
        for a in axes:
            if not -rank <= a < rank:
                raise ValueError("%s: axis %d is out of bounds for an input of rank %d. "
                                 "Received: axis=%r" % (self.name, a, rank, self.axis))
            out.append(a % rank)
        out = sorted(set(out))
        if len(out) != len(axes):
            raise ValueError("%s: repeated axis in axis=%r" % (self.name, self.axis))
        if 0 in out or out != list(range(rank - len(out), rank)):
            raise ValueError("%s: fastcnn normalizes over trailing axes only (e.g. -1 or "
                             "[-2, -1]), never the batch axis; got axis=%r for an input of "
                             "rank %d" % (self.name, self.axis, rank))
        return out

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, min_ndim=2)
        axes = self._axes(len(input_shape))
        if any(input_shape[a] is None for a in axes):
            self._incompatible("the normalised axes must have known sizes", input_shape)
        if self.built:
            want = tuple(input_shape[a] for a in axes)
            if want != self._norm_shape:
                self._incompatible("expected the normalised axes to have sizes %s"
                                   % (self._norm_shape,), input_shape)
        return tuple(input_shape)

    def build(self, input_shape):
        axes = self._axes(len(input_shape))
        self._norm_shape = tuple(input_shape[a] for a in axes)
        # as Keras: the axis becomes a sorted list once built
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        self._add_affine(self._norm_shape, self.scale or self.rms_scaling,
                         self.center and not self.rms_scaling)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        gamma, beta = self._affine_values()
        y, ws["cache"] = ops.layer_norm_forward(
            x, gamma, beta, self.epsilon, norm_ndim=len(self._norm_shape),
            rms_scaling=self.rms_scaling, out=ws.buf("y", x.shape))
        return y

    def get_config(self):
        c = super().get_config()
        c["axis"] = list(self.axis) if isinstance(self.axis, list) else self.axis
        c.update(self._affine_config())
        c["rms_scaling"] = self.rms_scaling
        return c


class GroupNormalization(_SampleNorm):
    """Normalize each sample's channel groups (Keras 3's ``GroupNormalization``).

    The channels (last axis) form ``groups`` consecutive groups; each sample's group is
    normalised with the mean and biased variance of all its values (every spatial
    position), then scaled and shifted per channel by ``gamma`` / ``beta`` (shape
    ``(channels,)``). ``groups=-1`` is instance normalization (one group per channel).

    Args:
        groups: number of groups, a divisor of the channel count, or -1. Default 32.
        axis: the channel axis; fastcnn supports the last (``-1``) only.
        epsilon: added to the variance, default 1e-3.
        center, scale: whether to learn ``beta`` / ``gamma``.
        beta_initializer: as Keras; so are ``gamma_initializer``, ``beta_regularizer``,
            ``gamma_regularizer``, ``beta_constraint`` and ``gamma_constraint``.
        **kwargs: ``name``, ``trainable``, ``input_shape``.

    Raises:
        ValueError: bad groups, a channel count that groups does not divide, an axis other
            than the last.
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or \
                (groups <= 0 and groups != -1):
            raise ValueError("%s: received an invalid value for argument `groups`, expected "
                             "a positive integer (or `-1` for instance normalization). "
                             "Received: groups=%r" % (self.name, groups))
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise ValueError("%s: axis must be an int (the channel axis), got %r"
                             % (self.name, axis))
        self.groups = int(groups)
        self.axis = int(axis)
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer,
                          beta_regularizer, gamma_regularizer, beta_constraint,
                          gamma_constraint)

    def compute_output_shape(self, input_shape):
        self._check_ndim(input_shape, min_ndim=2)
        if self.axis not in (-1, len(input_shape) - 1):
            raise ValueError("%s: fastcnn groups channels on the last axis only; got axis=%d "
                             "for an input of rank %d" % (self.name, self.axis,
                                                          len(input_shape)))
        c = input_shape[-1]
        if c is None:
            self._incompatible("the channel axis (-1) must be known", input_shape)
        groups = c if self.groups == -1 else self.groups
        if c < groups:
            raise ValueError("%s: number of groups (%d) cannot be more than the number of "
                             "channels (%d)." % (self.name, groups, c))
        if c % groups:
            raise ValueError("%s: number of groups (%d) must divide the number of channels "
                             "(%d)." % (self.name, groups, c))
        if self.built:
            self._check_last_axis(input_shape, self._channels)
        return tuple(input_shape)

    def build(self, input_shape):
        c = input_shape[-1]
        if self.groups == -1:  # as Keras: -1 becomes the channel count
            self.groups = c
        self._channels = c
        self._add_affine((c,), self.scale, self.center)
        self.built = True

    def _forward(self, x, ws, training, return_logits):
        gamma, beta = self._affine_values()
        y, ws["cache"] = ops.group_norm_forward(x, self.groups, gamma, beta, self.epsilon,
                                                out=ws.buf("y", x.shape))
        return y

    def get_config(self):
        c = super().get_config()
        c.update(groups=self.groups, axis=self.axis)
        c.update(self._affine_config())
        return c
