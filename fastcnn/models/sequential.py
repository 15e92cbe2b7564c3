"""``Sequential``: Keras 3's Sequential model, trained entirely by fastcnn's kernels.

A training step is: forward through each layer (``layer.forward``, kernels writing into
buffers allocated once per batch shape), the loss and its gradient (``ops.softmax_cross_entropy``
or ``ops.mean_squared_error``), backward through the layers in reverse (weight gradients into
preallocated arrays; the first trainable layer skips its input gradient), then one optimizer
kernel call per weight. NumPy only slices/gathers batches and counts accuracy on (N, classes).

Inputs are converted to float32 once per ``fit``/``evaluate``/``predict`` call; shuffled
batches are gathered with ``np.take(..., out=)`` into buffers reused across steps, epochs and
calls, so memory stays flat.
"""
import collections
import functools
import json
import math
import numbers
import os
import threading
import weakref

import numpy as np

from .. import callbacks as callbacks_module
from .. import layers as layers_module
from .. import losses, ops, optimizers, utils
from .. import metrics as metrics_module
from ..layers.base import Layer, _shape_str
from ..layers.core import InputLayer
from . import summary as summary_module

__all__ = ["Sequential"]

_FINITE_CHUNK = 4096
_BUFFER_CACHE = 16


def _check_positive_int(value, what, allow_none_default=None):
    if value is None and allow_none_default is not None:
        return allow_none_default
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError("%s must be a positive integer, got %r" % (what, value))
    return int(value)


def _check_verbose(verbose, who):
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError("%s: verbose must be 'auto', 0, 1 or 2, got %r" % (who, verbose))
    return int(verbose)


def _not_supported(who, **kwargs):
    for k, v in kwargs.items():
        if v is not None:
            raise ValueError("%s: argument `%s` is not supported by fastcnn (got %r)"
                             % (who, k, type(v).__name__ if hasattr(v, "__len__") else v))


# One re-entrant lock per model (kept outside the instance so models stay copyable). The
# layers' per-shape buffers, the metrics and the optimizer state are shared mutable state:
# fit / evaluate / predict / ... on one model from several threads take turns (each call is
# multithreaded by the kernels anyway); different models run concurrently.
_MODEL_LOCKS = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def _model_lock(model):
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


def _forget_locks_after_fork():
    # a lock held by a thread of the parent would stay held forever in the child
    global _MODEL_LOCKS_GUARD
    _MODEL_LOCKS_GUARD = threading.Lock()
    _MODEL_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_after_fork)


def _serialized(method):
    """Run ``method`` holding the model's lock (see _MODEL_LOCKS)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with _model_lock(self):
            return method(self, *args, **kwargs)
    return locked


def _epoch_permutation(seed, epoch, step, n):
    """fit's shuffle for one epoch, a pure function of (model seed, epoch, optimizer step):
    resuming from a checkpoint (load_model + fit(initial_epoch=k)) replays exactly the
    shuffles of an uninterrupted run, whatever the global random state is by then."""
    return np.random.default_rng([seed, epoch, step]).permutation(n)


class Sequential:
    """A linear stack of layers (``Sequential([...])`` or ``.add(layer)``)."""

    def __init__(self, layers=None, trainable=True, name=None):
        if name is None:
            name = utils._unique_name("sequential")
        self.name = name
        self.trainable = bool(trainable)
        self._input_layer = None
        self._layers = []
        self.built = False
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self._compiled_metrics = []
        self._compile_args = None
        self.stop_training = False
        self.history = None
        self._buffers = collections.OrderedDict()
        self._rows = None  # 0..n-1, the indices of unshuffled uint8 batches
        self._train_ready = None
        # ReLU layer + MaxPooling2D pairs run fused (see _layer_plan); False turns every
        # cross-layer fusion off (tests compare both ways).
        self._fuse_kernels = True
        self._plan_key, self._plan, self._steps = None, (), {}
        if layers is not None:
            if isinstance(layers, (Layer,)):
                layers = [layers]
            for layer in layers:
                self.add(layer)

    # ================================================================ structure
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer (or set the input with ``layers.Input(shape=...)``)."""
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("Sequential model '%s': an Input / InputLayer can only be the "
                                 "first layer of the model (it already has %s)"
                                 % (self.name, "an input" if self._input_layer is not None
                                    else "layers"))
            self._input_layer = layer
            self._rebuild()
            return
        if not isinstance(layer, Layer):
            raise TypeError("Only instances of `fastcnn.layers.Layer` can be added to a "
                            "Sequential model. Received: %r (of type %s)"
                            % (layer, type(layer).__name__))
        if any(l.name == layer.name for l in self._layers):
            raise ValueError("All layers added to a Sequential model should have unique names. "
                             "Name '%s' is already the name of a layer in this model. Update "
                             "the `name` argument to pass a unique name." % layer.name)
        if not self._layers and self._input_layer is None and layer._input_shape_arg is not None:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        self._layers.append(layer)
        if self._input_layer is not None:
            try:
                prev = (self._input_layer.shape if len(self._layers) == 1
                        else self._layers[-2].output_shape)
                layer._build_for(prev)
            except Exception:
                self._layers.pop()
                raise
        self._set_built()

    def pop(self):
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        self._set_built()
        self._train_ready = None
        return layer

    def _set_built(self):
        self.built = (self._input_layer is not None and bool(self._layers)
                      and all(l.built and l.output_shape is not None for l in self._layers))
        self._train_ready = None

    def _rebuild(self):
        if self._input_layer is None:
            return
        shape = self._input_layer.shape
        for layer in self._layers:
            shape = layer._build_for(shape)
        self._set_built()

    def build(self, input_shape=None):
        """Create all weights for inputs of ``input_shape`` (batch dim included, may be None)."""
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("Sequential.build: you must provide an `input_shape` argument "
                                 "(e.g. model.build((None, 32, 32, 3))) or declare the input with "
                                 "layers.Input(shape=...) / input_shape= on the first layer")
        else:
            shape = tuple(input_shape)
            if len(shape) < 2:
                raise ValueError("Sequential.build: input_shape must include the batch "
                                 "dimension, e.g. (None, 32, 32, 3); got %r" % (input_shape,))
            if self._input_layer is None:
                self._input_layer = InputLayer(shape=shape[1:])
            elif tuple(shape[1:]) != self._input_layer._shape:
                raise ValueError("Sequential model '%s' expects inputs of shape %s, cannot build "
                                 "it for %s" % (self.name, _shape_str(self.input_shape),
                                                _shape_str((None,) + tuple(shape[1:]))))
        if not self._layers:
            raise ValueError("Sequential model '%s' has no layers to build" % self.name)
        self._rebuild()

    @property
    def input_shape(self):
        if self._input_layer is None:
            raise AttributeError("The model '%s' has no defined input shape yet" % self.name)
        return (None,) + self._input_layer._shape

    @property
    def output_shape(self):
        if not self.built:
            raise AttributeError("The model '%s' has not been built yet" % self.name)
        return self._layers[-1].output_shape

    def get_layer(self, name=None, index=None):
        if index is not None:
            if name is not None:
                raise ValueError("Provide only a layer name or a layer index, not both")
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError("Was asked to retrieve layer at index %d but model only has %d "
                                 "layers." % (index, len(self._layers)))
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError("No such layer: %s. Existing layers are: %s"
                         % (name, [l.name for l in self._layers]))

    # ================================================================ weights
    @property
    def weights(self):
        return [w for l in self._layers for w in l.weights]

    variables = weights

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for l in self._layers for w in l.trainable_weights]

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for l in self._layers for w in l.non_trainable_weights]

    non_trainable_variables = non_trainable_weights

    def count_params(self):
        if not self.built:
            raise ValueError("You tried to call `count_params` on model '%s', but the model "
                             "isn't built. Build it with model.build(input_shape), by giving "
                             "the first layer an input shape, or by calling fit()." % self.name)
        return int(sum(l.count_params() for l in self._layers))

    def get_weights(self):
        """All weights as NumPy copies in Keras order (per layer: kernel, bias, ...)."""
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        """Set all weights (same order as get_weights); every shape is checked first."""
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError("You called `set_weights(weights)` on model '%s' with a weight "
                             "list of length %d, but the model was expecting %d weights "
                             "(%s)." % (self.name, len(weights), len(own),
                                        ", ".join("%s %s" % (w.path, w.shape) for w in own)))
        for var, w in zip(own, weights):
            if np.shape(w) != var.shape:
                layer = var.path.rsplit("/", 1)[0]
                raise ValueError("Layer %s weight shape %s is not compatible with provided "
                                 "weight shape %s (weight '%s')."
                                 % (layer, var.shape, np.shape(w), var.path))
        for var, w in zip(own, weights):
            var.assign(w)

    # ================================================================ summary / config
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print Keras 3's summary table (works before fit; unbuilt layers show '?')."""
        summary_module.print_summary(self, line_length, positions, print_fn)

    def get_config(self):
        layers = []
        if self._input_layer is not None:
            layers.append(layers_module.serialize(self._input_layer))
        layers += [layers_module.serialize(l) for l in self._layers]
        config = {"name": self.name, "trainable": self.trainable, "layers": layers}
        if self._input_layer is not None:
            config["build_input_shape"] = list(self.input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config.get("layers", []):
            model.add(layers_module.deserialize(layer_config, custom_objects))
        shape = config.get("build_input_shape")
        if shape is not None and not model.built and model._layers:
            model.build(shape)
        return model

    def to_json(self, **kwargs):
        return json.dumps({"class_name": "Sequential", "config": self.get_config()}, **kwargs)

    # ================================================================ compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer, loss and metrics (names or objects, as Keras)."""
        _not_supported("compile", loss_weights=loss_weights, weighted_metrics=weighted_metrics)
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss) if loss is not None else None
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, metrics_module.Metric)):
            metrics = [metrics]
        elif isinstance(metrics, dict):
            raise ValueError("compile: metrics must be a list (multi-output dicts are not "
                             "supported), got %r" % (metrics,))
        self._compiled_metrics = [metrics_module.get(m) for m in metrics]
        names = [m.name for m in self._compiled_metrics]
        if "loss" in names or len(set(names)) != len(names):
            raise ValueError("compile: metric names must be unique and not 'loss', got %s"
                             % names)
        self.compiled = True
        self._train_ready = None

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for m in self._compiled_metrics]

    @property
    def metrics(self):
        return list(self._compiled_metrics)

    def reset_metrics(self):
        for m in self._compiled_metrics:
            m.reset_state()

    # ================================================================ input handling
    def _assert_compiled(self, who):
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model (in %s)."
                               % who)
        if self.loss is None:
            raise ValueError("%s: the model was compiled without a loss; call "
                             "compile(optimizer, loss=..., metrics=...)" % who)

    def _assert_built(self, who):
        if not self.built:
            if not self._layers:
                raise ValueError("%s: the model '%s' has no layers" % (who, self.name))
            raise ValueError(
                "%s: the model '%s' has not been built, so it has no weights yet. Give the first "
                "layer an input shape (input_shape=... or layers.Input(shape=...)), call "
                "model.build((None, ...)), or train it with fit() first." % (who, self.name))

    def _prepare_x(self, x, who, what="x", keep_uint8=False):
        """Convert x to C-contiguous float32 once; check it is finite and fits the model.

        With ``keep_uint8``, 4-D uint8 images stay uint8 (C-contiguous) and each batch is
        converted in C as it is assembled (``_x_batch``): no float copy of a whole dataset.
        """
        if x is None:
            raise ValueError("%s: %s is None; pass the input data as a NumPy array" % (who, what))
        try:
            arr = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError("%s: %s must be an array of numbers (%s)" % (who, what, e)) from None
        if arr.dtype.kind not in "biuf":
            raise TypeError("%s: %s must be numeric, got dtype %s" % (who, what, arr.dtype))
        if arr.ndim < 2:
            raise ValueError("%s: %s must be a batch of samples with shape (N, ...), got shape "
                             "%s" % (who, what, arr.shape))
        if self._input_layer is not None:
            expected = self._input_layer._shape
            if arr.shape[1:] != expected:
                hint = ""
                if arr.shape[1:] == expected[:-1] and expected[-1] == 1:
                    hint = " (add the channel axis: x[..., None])"
                first = self._layers[0].name if self._layers else self.name
                raise ValueError('Input 0 of layer "%s" is incompatible with the layer: '
                                 "expected shape=%s, found shape=%s (%s has shape %s)%s"
                                 % (first, _shape_str((None,) + expected),
                                    _shape_str((None,) + arr.shape[1:]), what, arr.shape, hint))
        if keep_uint8 and arr.dtype == np.uint8 and arr.ndim == 4:
            return np.ascontiguousarray(arr)
        if arr.dtype == np.uint8 and arr.size:
            x32 = ops.to_float32(arr)  # converted in C
        else:
            x32 = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.dtype.kind == "f" and x32.size and ops.count_nonfinite(x32):
            for lo in range(0, x32.shape[0], _FINITE_CHUNK):
                chunk = x32[lo:lo + _FINITE_CHUNK].reshape(-1, int(np.prod(x32.shape[1:])))
                ok = np.isfinite(chunk).all(axis=1)
                if not ok.all():
                    bad = lo + int(np.flatnonzero(~ok)[0])
                    overflow = bool(np.isfinite(arr[bad]).all())
                    raise ValueError("%s: %s contains NaN or infinite values (first at sample %d)"
                                     "%s" % (who, what, bad,
                                             "; its values overflow float32" if overflow else ""))
        return x32

    def _prepare_y(self, y, n, who, what="y"):
        if y is None:
            raise ValueError("%s: %s is None; pass the targets (labels) as an array" % (who, what))
        y_shape = np.shape(y)
        if len(y_shape) == 0 or y_shape[0] != n:
            raise ValueError("%s: data cardinality is ambiguous. Make sure all arrays contain "
                             "the same number of samples. 'x' sizes: %d, '%s' sizes: %s"
                             % (who, n, what, y_shape[0] if y_shape else "a scalar"))
        out_shape = (n,) + tuple(self.output_shape[1:])
        targets = self.loss.prepare_targets(y, out_shape, what)
        for m in self._compiled_metrics:
            if isinstance(m, metrics_module._ResolvedAccuracy) and m._impl is None:
                m.resolve(y_shape, out_shape)
        return targets

    # ================================================================ step machinery
    def _buffer(self, tag, shape, dtype=np.float32):
        key = (tag, shape, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
            if len(self._buffers) > _BUFFER_CACHE:
                self._buffers.popitem(last=False)
        else:
            self._buffers.move_to_end(key)
        return buf

    def _x_batch(self, x, lo, hi, idx=None, tag="xb"):
        """Rows lo:hi (or idx) of prepared input x as float32: a view where possible."""
        if x.dtype == np.uint8:
            if idx is None:  # a slice of one cached arange: no allocation per step
                rows = self._rows
                if rows is None or rows.shape[0] < x.shape[0]:
                    rows = self._rows = np.arange(x.shape[0], dtype=np.int64)
                idx = rows[lo:hi]
            out = self._buffer(tag, (len(idx),) + x.shape[1:])
            return ops.gather_batch(x, idx, out=out)  # uint8 -> float32 in C
        if idx is None:
            return x[lo:hi]
        return self._gather(x, idx, tag)

    def _gather(self, arr, idx, tag):
        out = self._buffer(tag, (len(idx),) + arr.shape[1:], arr.dtype)
        if arr.ndim == 4 and arr.dtype == np.float32:
            return ops.gather_batch(arr, idx, out=out)  # C, multithreaded
        return np.take(arr, idx, axis=0, out=out, mode="clip")

    def _prepare_training(self):
        """Per-fit setup: which layers need backward, the (weight, grad) lists, fusion."""
        signature = (self.trainable, self.optimizer, self.loss,
                     tuple(id(v) for v in self.trainable_weights))
        if self._train_ready == signature:
            return
        train_vars, train_grads, first = [], [], len(self._layers)
        for i, layer in enumerate(self._layers):
            tw = layer.trainable_weights if self.trainable else []
            if tw and first == len(self._layers):
                first = i
            for v in tw:
                train_vars.append(v)
                train_grads.append(layer._grad(v))
        self.optimizer.build(train_vars)
        self._train_vars, self._train_grads, self._first_trainable = \
            train_vars, train_grads, first
        self._set_output_mode()
        self._train_ready = signature

    def _set_output_mode(self):
        last = self._layers[-1]
        self._fused_softmax = bool(self.loss._is_crossentropy and not self.loss.from_logits
                                   and getattr(last, "activation", None) == "softmax")
        self._loss_on_logits = self._fused_softmax or self.loss.from_logits
        self._metrics_need_probs = self._fused_softmax and any(
            not m.uses_ce_count for m in self._compiled_metrics)

    def _layer_plan(self, input_shape):
        """Per layer i followed by a MaxPooling2D, how the pair runs for inputs of
        `input_shape` (None elsewhere):

        - 'direct': Conv2D.forward_pooled as one fused kernel (the conv output never written);
        - 'crop': Conv2D.forward_pooled computing only the conv outputs the pool reads
          (pooled inside the Winograd output transform where its tiles cover them);
        - 'relu': each layer on its own, but ReLU's backward runs inside the pool's scatter
          (``backward(fused_relu=True)`` on both).

        Cached per layer structure and input shape, with the step lists built from it."""
        layers = self._layers
        key = (tuple(id(l) for l in layers), tuple(input_shape[1:]), self._fuse_kernels)
        if self._plan_key == key:
            return self._plan
        plan = [None] * len(layers)
        shape = (None,) + tuple(input_shape[1:])
        i = 0
        while i < len(layers):
            layer = layers[i]
            pool = layers[i + 1] if i + 1 < len(layers) else None
            mode = None
            if self._fuse_kernels and isinstance(pool, layers_module.MaxPooling2D):
                if isinstance(layer, layers_module.Conv2D):
                    mode = layer._pool_fusion(pool, shape)
                if (mode is None and getattr(layer, "activation", None) == "relu"
                        and layer._fuses_relu_backward):
                    mode = "relu"
            shape = layer.compute_output_shape(shape)
            if mode is not None:
                plan[i] = mode
                shape = pool.compute_output_shape(shape)
                i += 2
                continue
            i += 1
        self._plan_key, self._plan, self._steps = key, tuple(plan), {}
        return self._plan

    def _forward_steps(self, input_shape, training, logits):
        """[(first layer, layers covered, fn(h) -> h)] of a forward pass under the plan."""
        plan = self._layer_plan(input_shape)
        key = ("forward", bool(training), bool(logits))
        steps = self._steps.get(key)
        if steps is None:
            layers, last, steps, i = self._layers, len(self._layers) - 1, [], 0
            while i <= last:
                if plan[i] in ("direct", "crop"):
                    steps.append((i, 2, functools.partial(
                        layers[i].forward_pooled, pool=layers[i + 1], training=training,
                        mode=plan[i])))
                    i += 2
                else:
                    steps.append((i, 1, functools.partial(
                        layers[i].forward, training=training,
                        return_logits=logits and i == last)))
                    i += 1
            self._steps[key] = steps
        return steps

    def _backward_steps(self, input_shape, stop):
        """[(first layer, layers covered, fn(g) -> g)] of a backward pass down to layer
        `stop` (the first trainable one, which computes no input gradient)."""
        plan = self._layer_plan(input_shape)
        key = ("backward", stop)
        steps = self._steps.get(key)
        if steps is None:
            layers, steps, i = self._layers, [], len(self._layers) - 1
            while i >= stop:
                if i >= 1 and plan[i - 1] in ("direct", "crop"):  # the pool ran in the conv
                    steps.append((i - 1, 2, functools.partial(
                        layers[i - 1].backward_pooled, need_input_grad=i - 1 > stop)))
                    i -= 2
                else:
                    fused = plan[i] == "relu" or (i >= 1 and plan[i - 1] == "relu")
                    steps.append((i, 1, functools.partial(
                        layers[i].backward, need_input_grad=i > stop, fused_relu=fused)))
                    i -= 1
            self._steps[key] = steps
        return steps

    def _forward(self, x, training, logits):
        h = x
        for _, _, step in self._forward_steps(x.shape, training, logits):
            h = step(h)
        return h

    def _update_metrics(self, yb, out, n_correct):
        if not self._compiled_metrics:
            return
        probs = None
        for m in self._compiled_metrics:
            if m.uses_ce_count and n_correct is not None:
                m._update_batch(yb, out, n_correct)
                continue
            if self._fused_softmax:
                if probs is None:
                    probs = ops.softmax(out, out=self._buffer("probs", out.shape))
                m._update_batch(yb, probs, None)
            else:
                m._update_batch(yb, out, None)

    def _train_step(self, xb, yb):
        h = self._forward(xb, True, self._fused_softmax)
        loss, dout, n_correct = self.loss.compute(h, yb, self._buffer("dout", h.shape),
                                                  self._loss_on_logits)
        g = dout
        for _, _, step in self._backward_steps(xb.shape, self._first_trainable):
            g = step(g)
        self.optimizer._step(self._train_vars, self._train_grads)
        self._update_metrics(yb, h, n_correct)
        return float(loss)

    def _test_step(self, xb, yb):
        h = self._forward(xb, False, self._fused_softmax)
        loss, _, n_correct = self.loss.compute(h, yb, self._buffer("dout", h.shape),
                                               self._loss_on_logits)
        self._update_metrics(yb, h, n_correct)
        return float(loss)

    def _logs(self, loss_total, count):
        logs = {m.name: m.result() for m in self._compiled_metrics}
        logs["loss"] = loss_total / count if count else 0.0
        return logs

    def _release_inputs(self):
        """Drop workspace references to caller data so converted inputs can be freed."""
        for layer in self._layers:
            for ws in layer._workspaces.values():
                for key in ("x", "x2", "cache"):
                    ws.pop(key, None)
            layer._ws = None

    def _run_evaluation(self, x, y, batch_size, cbs):
        self.reset_metrics()
        cbs.on_test_begin()
        n = x.shape[0]
        total, count, logs = 0.0, 0, {}
        for step, lo in enumerate(range(0, n, batch_size)):
            hi = min(lo + batch_size, n)
            cbs.on_test_batch_begin(step)
            loss = self._test_step(self._x_batch(x, lo, hi, tag="xv"), y[lo:hi])
            total += loss * (hi - lo)
            count += hi - lo
            logs = self._logs(total, count)
            cbs.on_test_batch_end(step, logs)
        logs = self._logs(total, count)
        cbs.on_test_end(logs)
        return logs

    # ================================================================ fit / evaluate / predict
    @_serialized
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a History (``history.history['loss']``...)."""
        self._assert_compiled("fit")
        _not_supported("fit", class_weight=class_weight, sample_weight=sample_weight,
                       steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)
        batch_size = _check_positive_int(batch_size, "fit: batch_size", 32)
        vbatch = _check_positive_int(validation_batch_size, "fit: validation_batch_size",
                                     batch_size)
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError("fit: epochs must be an integer >= 0, got %r" % (epochs,))
        if (isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral)
                or initial_epoch < 0):
            raise ValueError("fit: initial_epoch must be an integer >= 0, got %r"
                             % (initial_epoch,))
        validation_freq = _check_positive_int(validation_freq, "fit: validation_freq")
        verbose = _check_verbose(verbose, "fit")
        if not isinstance(validation_split, numbers.Real) or not 0 <= validation_split < 1:
            raise ValueError("fit: validation_split must be a float in [0, 1), got %r"
                             % (validation_split,))
        if shuffle not in (True, False):
            raise ValueError("fit: shuffle must be True or False, got %r" % (shuffle,))

        x_all = self._prepare_x(x, "fit", keep_uint8=True)
        if not self.built:
            if not self._layers:
                raise ValueError("fit: the model '%s' has no layers" % self.name)
            self.build((None,) + x_all.shape[1:])
        n_all = x_all.shape[0]
        y_all = self._prepare_y(y, n_all, "fit")

        x_val = y_val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val), got %s"
                                 % type(validation_data).__name__)
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise ValueError("fit: validation sample weights are not supported by fastcnn")
            x_val = self._prepare_x(validation_data[0], "fit", "validation_data x",
                                   keep_uint8=True)
            y_val = self._prepare_y(validation_data[1], x_val.shape[0], "fit",
                                    "validation_data y")
            x_tr, y_tr = x_all, y_all
        elif validation_split:
            split = int(math.floor(n_all * (1.0 - validation_split)))
            if split == 0 or split == n_all:
                raise ValueError("fit: validation_split=%r leaves %d training and %d validation "
                                 "samples out of %d" % (validation_split, split, n_all - split,
                                                        n_all))
            x_tr, y_tr, x_val, y_val = x_all[:split], y_all[:split], x_all[split:], y_all[split:]
        else:
            x_tr, y_tr = x_all, y_all
        n = x_tr.shape[0]
        if n == 0:
            raise ValueError("fit: x has no samples")
        steps = -(-n // batch_size)

        self._prepare_training()
        if getattr(self, "_shuffle_seed", None) is None:  # drawn once, saved with the model
            self._shuffle_seed = utils._draw_seed()
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_history=True,
                                            add_progbar=verbose != 0, verbose=verbose,
                                            epochs=epochs, steps=steps)
        self.stop_training = False
        self.history = cbs.history  # holds the epochs done so far if fit is interrupted
        logs = {}
        try:
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                perm = (_epoch_permutation(self._shuffle_seed, epoch,
                                           self.optimizer.iterations, n) if shuffle else None)
                total, count = 0.0, 0
                for step in range(steps):
                    lo = step * batch_size
                    hi = min(lo + batch_size, n)
                    if perm is None:
                        xb, yb = self._x_batch(x_tr, lo, hi), y_tr[lo:hi]
                    else:
                        idx = perm[lo:hi]
                        xb = self._x_batch(x_tr, lo, hi, idx)
                        yb = self._gather(y_tr, idx, "yb")
                    cbs.on_train_batch_begin(step)
                    loss = self._train_step(xb, yb)
                    total += loss * (hi - lo)
                    count += hi - lo
                    logs = self._logs(total, count)
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                epoch_logs = dict(logs)
                if x_val is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = self._run_evaluation(x_val, y_val, vbatch, cbs)
                    epoch_logs.update(("val_" + k, v) for k, v in val_logs.items())
                cbs.on_epoch_end(epoch, epoch_logs)
                logs = epoch_logs
                if self.stop_training:
                    break
            cbs.on_train_end(logs)
        finally:
            self._release_inputs()
        self.history = cbs.history
        return cbs.history

    @_serialized
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics over (x, y): ``[loss, acc, ...]`` (scalar loss without metrics)."""
        self._assert_compiled("evaluate")
        _not_supported("evaluate", sample_weight=sample_weight, steps=steps)
        if kwargs:
            raise TypeError("evaluate: unexpected arguments %s" % sorted(kwargs))
        batch_size = _check_positive_int(batch_size, "evaluate: batch_size", 32)
        verbose = _check_verbose(verbose, "evaluate")
        self._assert_built("evaluate")
        x32 = self._prepare_x(x, "evaluate", keep_uint8=True)
        if x32.shape[0] == 0:
            raise ValueError("evaluate: x has no samples")
        targets = self._prepare_y(y, x32.shape[0], "evaluate")
        self._set_output_mode()
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0,
                                            verbose=verbose, epochs=1,
                                            steps=-(-x32.shape[0] // batch_size))
        try:
            logs = self._run_evaluation(x32, targets, batch_size, cbs)
        finally:
            self._release_inputs()
        if return_dict:
            return logs
        if not self._compiled_metrics:
            return logs["loss"]
        return [logs["loss"]] + [logs[m.name] for m in self._compiled_metrics]

    @_serialized
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for x as float32 (N, ...) (logits unless the model ends in softmax)."""
        _not_supported("predict", steps=steps)
        batch_size = _check_positive_int(batch_size, "predict: batch_size", 32)
        verbose = _check_verbose(verbose, "predict")
        self._assert_built("predict")
        x32 = self._prepare_x(x, "predict", keep_uint8=True)
        n = x32.shape[0]
        out = np.empty((n,) + tuple(self.output_shape[1:]), dtype=np.float32)
        if n == 0:
            return out
        cbs = callbacks_module.CallbackList(callbacks, model=self, add_progbar=verbose != 0,
                                            verbose=verbose, epochs=1,
                                            steps=-(-n // batch_size))
        try:
            cbs.on_predict_begin()
            for step, lo in enumerate(range(0, n, batch_size)):
                hi = min(lo + batch_size, n)
                cbs.on_predict_batch_begin(step)
                h = self._forward(self._x_batch(x32, lo, hi), False, False)
                out[lo:hi] = h
                cbs.on_predict_batch_end(step, {"outputs": out[lo:hi]})
            cbs.on_predict_end()
        finally:
            self._release_inputs()
        return out

    def _batch_result(self, logs, return_dict):
        if return_dict:
            return logs
        if not self._compiled_metrics:
            return logs["loss"]
        return [logs["loss"]] + [logs[m.name] for m in self._compiled_metrics]

    @_serialized
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on one batch; returns that batch's loss (and metrics)."""
        self._assert_compiled("train_on_batch")
        _not_supported("train_on_batch", sample_weight=sample_weight, class_weight=class_weight)
        x32 = self._prepare_x(x, "train_on_batch")
        if x32.shape[0] == 0:
            raise ValueError("train_on_batch: x has no samples")
        if not self.built:
            self.build((None,) + x32.shape[1:])
        targets = self._prepare_y(y, x32.shape[0], "train_on_batch")
        self._prepare_training()
        self.reset_metrics()
        try:
            loss = self._train_step(x32, targets)
        finally:
            self._release_inputs()
        return self._batch_result(self._logs(loss * x32.shape[0], x32.shape[0]), return_dict)

    @_serialized
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) of one batch, without updating the model."""
        self._assert_compiled("test_on_batch")
        _not_supported("test_on_batch", sample_weight=sample_weight)
        self._assert_built("test_on_batch")
        x32 = self._prepare_x(x, "test_on_batch")
        if x32.shape[0] == 0:
            raise ValueError("test_on_batch: x has no samples")
        targets = self._prepare_y(y, x32.shape[0], "test_on_batch")
        self._set_output_mode()
        self.reset_metrics()
        try:
            loss = self._test_step(x32, targets)
        finally:
            self._release_inputs()
        return self._batch_result(self._logs(loss * x32.shape[0], x32.shape[0]), return_dict)

    @_serialized
    def predict_on_batch(self, x):
        """Outputs for one batch (float32)."""
        self._assert_built("predict_on_batch")
        x32 = self._prepare_x(x, "predict_on_batch")
        try:
            return np.array(self._forward(x32, False, False), dtype=np.float32, copy=True)
        finally:
            self._release_inputs()

    @_serialized
    def __call__(self, inputs, training=False):
        """Eager call on a NumPy batch (builds the model from its shape if needed)."""
        x32 = self._prepare_x(inputs, "Sequential.__call__", "inputs")
        if not self.built:
            self.build((None,) + x32.shape[1:])
        try:
            return np.array(self._forward(x32, bool(training), False), dtype=np.float32,
                            copy=True)
        finally:
            self._release_inputs()

    def profile(self, x, y=None, **kwargs):
        """Per-layer forward/backward times of a training step on (x, y): fastcnn.profiler."""
        from .. import profiler
        return profiler.profile(self, x, y, **kwargs)

    # ================================================================ saving
    @_serialized
    def save(self, filepath, overwrite=True, **kwargs):
        """Architecture + weights + optimizer state in one file (``.keras``; see saving)."""
        from .. import saving
        saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    @_serialized
    def save_weights(self, filepath, overwrite=True):
        """Weights only (``*.weights.h5``; fastcnn's zip format, not HDF5)."""
        from .. import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    @_serialized
    def load_weights(self, filepath, skip_mismatch=False):
        from .. import saving
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def __repr__(self):
        return "<Sequential name=%s, built=%s, layers=%d>" % (self.name, self.built,
                                                              len(self._layers))
