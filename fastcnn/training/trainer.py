"""The training loop, apart from the model (as keras/src/trainers/trainer.py).

``Trainer`` is mixed into fastcnn's models: ``compile`` keeps the optimizer, loss and metrics;
``fit`` / ``evaluate`` / ``predict`` / ``*_on_batch`` / ``__call__`` run the model's plan
(``training.plan``: its graph as steps, fusion applied) on batches prepared by
``training.data``. fit, evaluate and predict each run one loop over the batches of an
``training.adapters`` EpochIterator, whatever the source (arrays, a dataset, a generator,
a PyDataset), so sample/class weights and data-parallel sharding work for all of them.
A training step is: the plan's forward, the loss and its gradient (one C kernel), the plan's
backward (weight gradients into arrays preallocated by the layers), one optimizer kernel
call for all weights. NumPy only slices/gathers batches and counts metrics.

``train_step`` / ``test_step`` / ``predict_step`` take a ``hook`` through which every step,
the loss and the optimizer run (fastcnn.profiler times them this way).
"""
import functools
import math
import numbers
import os
import threading
import weakref

import numpy as np

from .. import callbacks as callbacks_module
from .. import losses, ops, optimizers
from ..distribution import runtime as distributed
from ..ops._validation import one_of, positive_int, unsupported
from . import adapters, data, lean, penalties, plan
from .compile_metrics import CompileMetrics


def _verbose(verbose, who):
    return 1 if verbose == "auto" else one_of(verbose, "verbose", who, ("auto", 0, 1, 2))

__all__ = ["Trainer"]


# One re-entrant lock per model (kept outside the instance so models stay copyable). The
# layers' per-shape buffers, the metrics and the optimizer state are shared mutable state:
# fit / evaluate / predict / ... on one model from several threads take turns (each call is
# multithreaded by the kernels anyway); different models run concurrently.
_MODEL_LOCKS = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()


def model_lock(model):
    """The model's re-entrant lock (what fit/evaluate/predict/... hold while running)."""
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
    """Run ``method`` holding the model's lock."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with model_lock(self):
            return method(self, *args, **kwargs)
    return locked


def _check_fit_arguments(epochs, initial_epoch, validation_split, shuffle):
    for arg, v in (("epochs", epochs), ("initial_epoch", initial_epoch)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError("fit: %s must be an integer >= 0, got %r" % (arg, v))
    if not isinstance(validation_split, numbers.Real) or not 0 <= validation_split < 1:
        raise ValueError("fit: validation_split must be a float in [0, 1), got %r"
                         % (validation_split,))
    if shuffle not in (True, False):
        raise ValueError("fit: shuffle must be True or False, got %r" % (shuffle,))


class _Prepared:
    """Validation arrays fit already prepared (split off its training arrays)."""

    def __init__(self, arrays):
        self.arrays = tuple(arrays)


def _run(hook, phase, fn, *args):
    return fn(*args) if hook is None else hook(phase, None, fn, *args)


class Trainer:
    """compile / fit / evaluate / predict for a model that can flatten itself to a graph."""

    def __init__(self):
        self.compiled = False
        self.optimizer = None
        self.loss = None
        self._compile_metrics = CompileMetrics()
        self.stop_training = False
        self.history = None
        self.shuffle_seed = None  # drawn at the first fit, saved with the model
        # False runs every layer on its own (no fusion rule applies); tests compare both.
        self.fuse_kernels = True
        self._batches = data.BatchBuffers()
        self._program_key, self._program_obj = None, None
        self._train_ready = None
        self._grad_sync = None  # a distribution's GradientSync while fit trains data-parallel

    # ================================================================ compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer, loss and metrics (names or objects, as Keras).

        Args:
            optimizer: an optimizer name ('adam', 'sgd', 'rmsprop') or instance.
            loss: a loss name or instance (e.g. SparseCategoricalCrossentropy(from_logits=True)).
            metrics: metrics updated without sample weights: a list (or a dict keyed by
                the output name) of metric names, fastcnn.metrics instances or classes, or
                functions fn(y_true, y_pred), as Keras (e.g. ['accuracy', AUC()]).
            weighted_metrics: metrics updated with the batches' sample weights (same forms).
            run_eagerly, jit_compile, auto_scale_loss: accepted for Keras code; fastcnn always
                runs its own kernels eagerly, so only their defaults (False, 'auto' or
                False, True) are allowed.
            steps_per_execution: 1 only.
        """
        unsupported("compile", loss_weights=loss_weights)
        if run_eagerly not in (False, True):
            raise ValueError("compile: run_eagerly must be True or False, got %r"
                             % (run_eagerly,))
        if jit_compile not in ("auto", False, True):
            raise ValueError("compile: jit_compile must be 'auto', True or False, got %r"
                             % (jit_compile,))
        if jit_compile is True:
            raise ValueError("compile: jit_compile=True is not supported by fastcnn (its "
                             "kernels are compiled C already); leave it at 'auto' or False")
        if steps_per_execution != 1:
            raise ValueError("compile: steps_per_execution other than 1 is not supported by "
                             "fastcnn (got %r)" % (steps_per_execution,))
        if auto_scale_loss not in (True, False):
            raise ValueError("compile: auto_scale_loss must be True or False, got %r"
                             % (auto_scale_loss,))
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss) if loss is not None else None
        if self.loss is not None and self.loss.reduction in (None, "none"):
            raise ValueError("compile: the loss %r has reduction=%r (per-sample losses); "
                             "training and evaluation need a scalar loss, e.g. the default "
                             "'sum_over_batch_size'" % (self.loss.name, self.loss.reduction))
        self._compile_metrics = CompileMetrics(metrics, weighted_metrics,
                                               self._output_names())
        self.compiled = True
        self._train_ready = None

    def _output_names(self):
        """The names of the layers that produce the outputs (the keys of a metrics dict)."""
        try:
            return [t._keras_history[0].name for t in self.outputs]
        except (AttributeError, IndexError, TypeError, ValueError):
            layers = getattr(self, "layers", None)
            return [layers[-1].name] if layers else []

    @property
    def _compiled_metrics(self):
        """The compiled Metric objects (what callbacks read for a metric's direction)."""
        return self._compile_metrics.metrics

    @property
    def metrics_names(self):
        """'loss' then the compiled metrics' log names."""
        return ["loss"] + self._compile_metrics.names

    @property
    def metrics(self):
        """The compiled Metric objects ('accuracy' ones once data has been seen)."""
        return self._compile_metrics.metrics

    def _compile_metrics_config(self):
        """{'metrics': [...], 'weighted_metrics': [...]} as saved with the model."""
        return self._compile_metrics.get_config()

    def reset_metrics(self):
        """Reset the state of every compiled metric (``fit``/``evaluate`` do it themselves)."""
        self._compile_metrics.reset_state()

    # ================================================================ the plan
    def _program(self):
        key = (self._graph_version, bool(self.fuse_kernels))
        if self._program_key != key:
            self._program_obj = plan.build_program(self.flatten_graph(), fuse=key[1])
            self._lean = lean.LeanCache(self._program_obj)
            self._penalties = penalties.Penalties(self._program_obj)
            self._program_key = key
            self._train_ready = None
        return self._program_obj

    def plan(self):
        """The model's execution plan: [PlanStep(kind, layer names)] in order (which
        layers run fused, e.g. 'conv2d_relu_max_pool2d[direct]'); builds nothing new."""
        self._assert_built("plan")
        return self._program().describe()

    # ================================================================ checks
    def _assert_compiled(self, who):
        if not self.compiled:
            raise RuntimeError("You must call `compile()` before using the model (in %s)."
                               % who)
        if self.loss is None:
            raise ValueError("%s: the model was compiled without a loss; call "
                             "compile(optimizer, loss=..., metrics=...)" % who)

    def _assert_built(self, who):
        if not self.built:
            if not self.layers:
                raise ValueError("%s: the model '%s' has no layers" % (who, self.name))
            raise ValueError(
                "%s: the model '%s' has not been built, so it has no weights yet. Give the first "
                "layer an input shape (input_shape=... or layers.Input(shape=...)), call "
                "model.build((None, ...)), or train it with fit() first." % (who, self.name))

    def _assert_single_io(self, who):
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise ValueError("%s: fastcnn trains and evaluates models with one input and one "
                             "output; model '%s' has %d inputs and %d outputs (call it on a "
                             "list of arrays to run it)" % (who, self.name, len(self.inputs),
                                                            len(self.outputs)))

    def _declared_input_shape(self):
        """The per-sample input shape, or None while an unbuilt model has no input yet."""
        return tuple(self.inputs[0].shape[1:]) if self.built else None

    def _input_layer_name(self):
        return self.name

    def _x(self, x, who, what="x", keep_uint8=False):
        x32 = data.prepare_x(x, self._declared_input_shape(), self._input_layer_name(), who,
                             what, keep_uint8)
        return x32

    def _y(self, y, n, who, what="y"):
        return data.prepare_y(self.loss, (self._compile_metrics,), y, n,
                              self.outputs[0].shape, who, what)

    def _sample_weight(self, sample_weight, class_weight, targets, n, who,
                       what="sample_weight"):
        return data.prepare_sample_weight(self.loss, sample_weight, class_weight, targets, n,
                                          self.outputs[0].shape, who, what)

    def _build_from(self, x32, who):
        if not self.built:
            if not self.layers:
                raise ValueError("%s: the model '%s' has no layers" % (who, self.name))
            self.build((None,) + x32.shape[1:])

    # ================================================================ steps
    def _prepare_training(self):
        """Per-fit setup: which steps run backward, the (weight, grad) lists."""
        program = self._program()
        signature = (self.optimizer, self.loss, tuple(id(v) for v in self.trainable_weights))
        if self._train_ready == signature:
            return
        ready = self._train_ready
        if ready is not None and ready[:2] == signature[:2] and \
                self.optimizer.raw_iterations > 0:
            # as Keras 3: the optimizer's state belongs to the weights it was trained with
            raise ValueError(
                "Model '%s': the set of trainable weights changed (a layer's `trainable` "
                "was set) after the optimizer was built and used for this compile(). Call "
                "`model.compile(...)` again after freezing or unfreezing layers, as in "
                "Keras." % self.name)
        self._train_vars, self._train_grads = program.prepare_backward()
        self.optimizer.build(self._train_vars)
        self._set_output_mode()
        self._train_ready = signature

    def prepare(self, training=True):
        """Set the plan up for ``train_step`` (training) or ``test_step`` (the loss's output
        mode); fit and the *_on_batch methods do this themselves."""
        self._assert_built("prepare")
        if training:
            self._assert_compiled("prepare")
            self._prepare_training()
        elif self.loss is not None:
            self._set_output_mode()

    def _set_output_mode(self):
        # A cross-entropy on probabilities after the activation it undoes (softmax, sigmoid)
        # runs on the logits instead: the exact loss and gradient in one kernel.
        last = self._program().steps[-1]
        act = getattr(last.layer, "activation", None) if isinstance(last, plan.LayerStep) \
            else None
        wanted = getattr(self.loss, "logits_activation", None)
        # an activity regularizer needs the activation's output itself: no fusion then
        fused = (not self.loss.from_logits and wanted is not None and act == wanted
                 and last.layer.activity_regularizer is None)
        self._fused_softmax = fused  # the last step skips its activation ("softmax" or not)
        self._fused_activation = act if fused else None
        self._loss_on_logits = fused or self.loss.from_logits

    def _probs(self, out):
        buf = self._batches.get("probs", out.shape)
        if self._fused_activation == "sigmoid":
            return ops.sigmoid(out, out=buf)
        return ops.softmax(out, out=buf)


    def _update_metrics(self, yb, out, n_correct, sample_weight=None):
        """Stream one batch into the compiled metrics: ``metrics`` ignore sample_weight,
        ``weighted_metrics`` use it; (sparse) categorical accuracy takes the loss kernel's
        n_correct count when it has one (no argmax, no softmax)."""
        cm = self._compile_metrics
        if not cm:
            return
        if self._fused_softmax and cm.wants_outputs(n_correct):
            out = self._probs(out)
        cm.update_state(yb, out, n_correct, sample_weight)

    def train_step(self, x, y, hook=None, sample_weight=None):
        """One optimizer step on a prepared batch (float32 x, targets from the loss, optional
        float32 sample weights); the batch loss. Each plan step, the loss and the optimizer
        run through ``hook(phase, step, fn, *args)`` when given (phase: 'forward',
        'backward', 'loss', 'optimizer')."""
        program = self._program()
        sync = self._grad_sync
        if sync is not None and x.shape[0] == 0:  # no rows on this rank: zeros to the sums
            sync.contribute_nothing()
            sync.finish()
            self._apply_gradients(hook)
            return 0.0
        h = program.forward([x], True, self._fused_softmax, hook)[0]
        loss, dout, n_correct = _run(hook, "loss", self.loss.compute, h, y,
                                     self._batches.get("dout", h.shape), self._loss_on_logits,
                                     sample_weight)
        if sync is not None:  # this rank's share of the global batch's mean
            np.multiply(dout, np.float32(sync.scale(x.shape[0])), out=dout)
        program.backward([dout], hook, None if sync is None else sync.ready)
        if sync is not None:
            sync.finish()
        loss += self._apply_gradients(hook)
        self._update_metrics(y, h, n_correct, sample_weight=sample_weight)
        return float(loss)

    def _apply_gradients(self, hook):
        # Penalty gradients come after the allreduce: they are the same on every rank, and
        # summing them over ranks would count them N times.
        penalty = self._penalties.loss_and_gradients() if self._penalties.active else 0.0
        _run(hook, "optimizer", self.optimizer.update, self._train_vars, self._train_grads)
        if self._penalties.constrains:
            self._penalties.constrain()
        return penalty

    def test_step(self, x, y, hook=None, sample_weight=None):
        """The loss (and metric updates) of a prepared batch, without training."""
        h = self._program().forward([x], False, self._fused_softmax, hook)[0]
        loss, _, n_correct = _run(hook, "loss", self.loss.compute, h, y, None,
                                  self._loss_on_logits, sample_weight)
        if self._penalties.active:
            loss += self._penalties.loss()
        self._update_metrics(y, h, n_correct, sample_weight=sample_weight)
        return float(loss)

    def predict_step(self, x, hook=None):
        """The outputs (a view of the plan's buffers) of a prepared batch, inference mode.
        A single-input, single-output model without a hook runs its lean path (steps bound
        once per batch shape to direct kernel calls, training.lean)."""
        program = self._program()
        if hook is None and not isinstance(x, list) and len(program.output_keys) == 1:
            return self._lean.get(x.shape)(x)
        outs = program.forward(x if isinstance(x, list) else [x], False, False, hook)
        return outs if isinstance(x, list) else outs[0]

    def _logs(self, loss_total, count, rt=None):
        # data-parallel: the loss and every metric's state summed over the ranks
        if rt is not None:
            return rt.global_logs(self._compile_metrics, loss_total, count)
        logs = self._compile_metrics.result()
        logs["loss"] = loss_total / count if count else 0.0
        return logs

    def _release_inputs(self):
        """Drop workspace references to caller data so converted inputs can be freed."""
        if self._program_obj is not None:
            self._program_obj.release()

    def buffers(self):
        """Every buffer the model's layers, the plan and the trainer hold (for memory
        accounting; steady across steps once every batch shape was seen)."""
        out = [a for layer in self.leaf_layers() for a in layer.buffers()]
        out += self._batches.arrays()
        if self._program_obj is not None:
            out += self._program_obj.arrays()
        return out

    # ================================================================ fit / evaluate / predict
    @_serialized
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs; returns a History (``history.history['loss']``...).

        Args:
            x, y: inputs (N, ...) float or uint8 images, and targets for the loss; or x a
                fastcnn.data.Dataset, a PyDataset or an iterable of ``(x, y)`` /
                ``(x, y, sample_weight)`` batches (then y is None).
            batch_size: samples per step (default 32; arrays only); epochs: passes over
                the data.
            verbose: 'auto', 0, 1 (progress bar) or 2 (one line per epoch).
            callbacks: a list of fastcnn.callbacks.Callback.
            validation_split: the last fraction of x/y held out for validation (arrays).
            validation_data: (x_val, y_val), (x_val, y_val, val_sample_weight) or a batch
                source as x, evaluated after each epoch.
            shuffle: reshuffle the training data every epoch (reproducibly; arrays and
                PyDataset).
            class_weight: {class id: weight} applied to the training samples (Keras' rule:
                the class of a sample is its label, the argmax of a one-hot row or a rounded
                0/1 target; classes not in the dict weigh 1), per batch for a batch source.
            sample_weight: per-sample weights (N,) for training arrays (not with
                class_weight; a batch source yields them in its batches). The loss is then
                sum(w * loss) / batch size for the default reduction, as Keras.
            initial_epoch: the epoch to start at (to resume a run).
            validation_batch_size, validation_freq: as Keras.
            steps_per_epoch, validation_steps: batches per epoch (batch sources) / per
                validation (training.adapters has Keras 3's rules).

        Raises:
            ValueError: bad arguments or data (named in the message).
        """
        self._assert_compiled("fit")
        _check_fit_arguments(epochs, initial_epoch, validation_split, shuffle)
        batch_size = positive_int(batch_size, "batch_size", "fit", 32)
        vbatch = positive_int(validation_batch_size, "validation_batch_size", "fit", batch_size)
        validation_freq = positive_int(validation_freq, "validation_freq", "fit")
        if validation_steps is not None:
            validation_steps = positive_int(validation_steps, "validation_steps", "fit")
        verbose = _verbose(verbose, "fit")
        rt = distributed.active()
        if rt is not None:  # files are written by rank 0 only
            callbacks = rt.callbacks(callbacks)
        train, validation_data = self._train_iterator(
            x, y, sample_weight, class_weight, batch_size, shuffle, validation_split,
            validation_data, steps_per_epoch, rt)
        val = self._validation_iterator(validation_data, validation_steps, vbatch, rt)
        ready = self.built and self._start_training(rt)  # before on_train_begin if we can
        cbs = self._callback_list(callbacks, verbose, rt, train.num_batches, epochs, True)
        self.stop_training = False
        self.history = cbs.history  # holds the epochs done so far if fit is interrupted
        logs = {}
        try:
            cbs.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                self.reset_metrics()
                cbs.on_epoch_begin(epoch)
                total, count, steps = 0.0, 0, 0
                for step, b in train.epoch(epoch):
                    ready = ready or self._start_training(rt)  # a source built the model
                    cbs.on_train_batch_begin(step)
                    loss = self.train_step(b.x, b.y, sample_weight=b.sample_weight)
                    total += loss * b.rows
                    count += b.rows
                    steps += 1
                    logs = self._logs(total, count, rt)
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
                if steps == 0:
                    if epoch == initial_epoch:
                        raise ValueError("fit: the input yielded no batches (an empty dataset "
                                         "or an exhausted generator)")
                    break  # a one-pass generator ran dry: Keras stops here
                if train.exhausted:
                    self.stop_training = True
                if rt is not None:
                    rt.average_state(self)
                epoch_logs = dict(logs)
                if val is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = self._evaluate_epoch(val, "fit", cbs, rt)
                    epoch_logs.update(("val_" + k, v) for k, v in val_logs.items())
                cbs.on_epoch_end(epoch, epoch_logs)
                logs = epoch_logs
                if rt is not None:  # every rank stops together
                    self.stop_training = rt.any(self.stop_training)
                if self.stop_training:
                    break
            if epochs > 0:  # Keras: EMA weights replace the trained ones (use_ema)
                self.optimizer.finalize_variable_values(self.trainable_weights)
            cbs.on_train_end(logs)
        finally:
            self._grad_sync = None
            train.close()
            if val is not None:
                val.close()
            self._release_inputs()
        self.history = cbs.history
        return cbs.history

    def _train_iterator(self, x, y, sample_weight, class_weight, batch_size, shuffle,
                        validation_split, validation_data, steps_per_epoch, rt):
        """fit's EpochIterator over x (and its validation data, split off arrays)."""
        arrays = None if adapters.is_batch_source(x) else self._fit_arrays(
            x, y, sample_weight, class_weight, validation_split, validation_data,
            steps_per_epoch)
        if self.shuffle_seed is None:  # drawn after building, as the weights come first
            from .. import utils
            self.shuffle_seed = utils._draw_seed()
        if rt is not None:  # data-parallel: the same shuffles on every rank
            self.shuffle_seed = rt.broadcast_seed(self.shuffle_seed)
        if arrays is None:
            if validation_split:
                raise ValueError("fit: validation_split is only supported for NumPy arrays; "
                                 "with a dataset, generator or PyDataset pass validation_data")
            return self._source_iterator(x, y, sample_weight, steps_per_epoch, "fit", rt,
                                         shuffle, class_weight), validation_data
        x_tr, y_tr, sw_tr, validation_data = arrays
        permutation = (functools.partial(self._epoch_permutation, x_tr.shape[0]) if shuffle
                       else None)
        return adapters.EpochIterator(adapters.ArrayAdapter(
            self._batches, x_tr, y_tr, sw_tr, batch_size, permutation,
            None if rt is None else rt.shard)), validation_data

    def _fit_arrays(self, x, y, sample_weight, class_weight, validation_split,
                    validation_data, steps_per_epoch):
        """fit's prepared training arrays (x, y, sample weights) and its validation data
        (arrays split off x, the given arrays, or a batch source)."""
        if steps_per_epoch is not None:
            raise ValueError("fit: steps_per_epoch with NumPy arrays is not supported by "
                             "fastcnn; pass a dataset for that")
        if (x is None or y is None) and adapters.is_batch_source(validation_data):
            raise ValueError("fit: x and y are needed (arrays), or x a dataset, "
                             "generator or PyDataset of (x, y) batches")
        if sample_weight is not None and class_weight is not None:  # as Keras
            raise ValueError("fit: you cannot pass `class_weight` and `sample_weight` at the "
                             "same time")
        x_all = self._x(x, "fit", keep_uint8=True)
        self._build_from(x_all, "fit")
        self._assert_single_io("fit")
        n_all = x_all.shape[0]
        y_all = self._y(y, n_all, "fit")
        sw_all = self._sample_weight(sample_weight, None, y_all, n_all, "fit")
        x_tr, y_tr, sw_tr = x_all, y_all, sw_all
        if validation_data is None and validation_split:
            split = int(math.floor(n_all * (1.0 - validation_split)))
            if split == 0 or split == n_all:
                raise ValueError("fit: validation_split=%r leaves %d training and %d validation "
                                 "samples out of %d" % (validation_split, split, n_all - split,
                                                        n_all))
            x_tr, y_tr, sw_tr = x_all[:split], y_all[:split], None
            validation_data = (x_all[split:], y_all[split:])
            if sw_all is not None:
                sw_tr, validation_data = sw_all[:split], validation_data + (sw_all[split:],)
            validation_data = _Prepared(validation_data)
        if class_weight is not None:  # the training samples only, as Keras
            sw_tr = self._sample_weight(None, class_weight, y_tr, y_tr.shape[0], "fit")
        if x_tr.shape[0] == 0:
            raise ValueError("fit: x has no samples")
        return x_tr, y_tr, sw_tr, validation_data

    def _epoch_permutation(self, n, epoch):
        # drawn when the epoch's first batch is taken: the optimizer step of the epoch start
        return data.epoch_permutation(self.shuffle_seed, epoch, self.optimizer.iterations, n)

    def _validation_iterator(self, validation_data, steps, batch_size, rt):
        """fit's EpochIterator over validation_data (None without it)."""
        if validation_data is None:
            return None
        if adapters.is_batch_source(validation_data):
            return self._source_iterator(validation_data, None, None, steps, "fit", rt,
                                         tag="xv")
        if isinstance(validation_data, _Prepared):  # split off the training arrays
            x_val, y_val, sw_val = validation_data.arrays + (None,) * (
                3 - len(validation_data.arrays))
        elif not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, val_sample_weight), or a dataset, generator or "
                             "PyDataset, got %s" % type(validation_data).__name__)
        elif not self.built:  # a batch source builds the model: prepare these per batch
            from ..data.dataset import Dataset
            return self._source_iterator(
                Dataset.from_tensor_slices(tuple(validation_data)).batch(batch_size), None,
                None, steps, "fit", rt, tag="xv")
        else:
            x_val = self._x(validation_data[0], "fit", "validation_data x", keep_uint8=True)
            y_val = self._y(validation_data[1], x_val.shape[0], "fit", "validation_data y")
            sw_val = None
            if len(validation_data) == 3:
                sw_val = self._sample_weight(validation_data[2], None, y_val, x_val.shape[0],
                                             "fit", "validation_data sample_weight")
        return adapters.EpochIterator(adapters.ArrayAdapter(
            self._batches, x_val, y_val, sw_val, batch_size,
            shard=None if rt is None else rt.shard, tag="xv"), steps)

    def _start_training(self, rt):
        """Once per fit, when the model is built: backward set up, and under a
        distribution rank 0's weights everywhere and the gradient sums. Returns True."""
        self._assert_single_io("fit")
        self._prepare_training()
        if rt is not None:
            rt.begin(self)
            self._grad_sync = rt.gradient_sync(self._program(), self._train_vars,
                                               self._train_grads)
        return True

    def _source_iterator(self, x, y, sample_weight, steps, who, rt, shuffle=False,
                         class_weight=None, need_y=True, tag="xb"):
        """The EpochIterator of a dataset / generator / PyDataset ``x``: each batch
        prepared whole (class_weight applied), then this rank's shard of it taken."""
        if y is not None:
            raise ValueError("%s: y must not be given when x is a %s (its batches hold the "
                             "targets)" % (who, type(x).__name__))
        if sample_weight is not None:
            raise ValueError("%s: sample_weight must not be given when x is a %s; yield "
                             "(x, y, sample_weight) batches instead" % (who, type(x).__name__))
        if steps is not None:
            steps = positive_int(steps, "steps", who)
        seed = self.shuffle_seed if self.shuffle_seed is not None else 0
        prepare = functools.partial(self._prepare_batch, who=who, need_y=need_y,
                                    class_weight=class_weight)
        convert = functools.partial(adapters.source_batch, who=who, prepare=prepare,
                                    buffers=self._batches,
                                    shard=None if rt is None else rt.shard, tag=tag)
        return adapters.EpochIterator(adapters.get_adapter(x, who, shuffle, seed), steps,
                                      convert)

    def _prepare_batch(self, x, y, sample_weight, who, need_y=True, class_weight=None):
        """One batch of a batch source checked and converted whole (building the model
        from the first): (x float32 or uint8, targets, float32 weights)."""
        x = self._x(x, who, keep_uint8=True)
        n = x.shape[0]
        if n == 0:
            raise ValueError("%s: the input yielded a batch with no samples" % who)
        self._build_from(x, who)
        if not need_y:
            return x, None, None
        if y is None:
            raise ValueError("%s: the batches hold no targets; yield (x, y) pairs" % who)
        targets = self._y(y, n, who)
        return x, targets, self._sample_weight(sample_weight, class_weight, targets, n, who)

    def _callback_list(self, callbacks, verbose, rt, steps, epochs=1, add_history=False):
        # progress is printed by rank 0 only
        return callbacks_module.CallbackList(
            callbacks, model=self, add_history=add_history,
            add_progbar=verbose != 0 and (rt is None or rt.is_chief), verbose=verbose,
            epochs=epochs, steps=steps)

    def _evaluate_epoch(self, it, who, cbs, rt):
        """One pass of ``it`` through test_step; the logs (over every rank)."""
        self.reset_metrics()
        self._set_output_mode()
        cbs.on_test_begin()
        total, count, steps, logs = 0.0, 0, 0, {}
        for step, b in it.epoch():
            cbs.on_test_batch_begin(step)
            if b.rows:
                loss = self.test_step(b.x, b.y, sample_weight=b.sample_weight)
                total += loss * b.rows
                count += b.rows
            steps += 1
            logs = self._logs(total, count)
            cbs.on_test_batch_end(step, logs)
        if steps == 0:
            raise ValueError("%s: the evaluation data yielded no batches" % who)
        logs = self._logs(total, count, rt)
        cbs.on_test_end(logs)
        return logs

    @_serialized
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics over (x, y): ``[loss, acc, ...]`` (scalar loss without metrics).

        Args:
            x, y: arrays, or x a dataset / generator / PyDataset of (x, y) or
                (x, y, sample_weight) batches (then y is None).
            batch_size: samples per batch for arrays (default 32).
            verbose: 'auto', 0 or 1.
            sample_weight: (N,) weights of the samples' losses for arrays (Keras'
                normalisation: the weighted sum over the batch size for the default
                reduction).
            steps: batches to evaluate (batch sources).
            callbacks: a list of fastcnn.callbacks.Callback.
            return_dict: return ``{name: value}`` instead of a list.

        Returns:
            The loss, or ``[loss, metric...]``, or a dict.
        """
        self._assert_compiled("evaluate")
        if kwargs:
            raise TypeError("evaluate: unexpected arguments %s" % sorted(kwargs))
        verbose = _verbose(verbose, "evaluate")
        self._assert_built("evaluate")
        self._assert_single_io("evaluate")
        rt = distributed.active()
        if adapters.is_batch_source(x):
            it = self._source_iterator(x, y, sample_weight, steps, "evaluate", rt, tag="xv")
        else:
            unsupported("evaluate", steps=steps)
            batch_size = positive_int(batch_size, "batch_size", "evaluate", 32)
            x32 = self._x(x, "evaluate", keep_uint8=True)
            if x32.shape[0] == 0:
                raise ValueError("evaluate: x has no samples")
            targets = self._y(y, x32.shape[0], "evaluate")
            sw = self._sample_weight(sample_weight, None, targets, x32.shape[0], "evaluate")
            it = adapters.EpochIterator(adapters.ArrayAdapter(
                self._batches, x32, targets, sw, batch_size,
                shard=None if rt is None else rt.shard, tag="xv"))
        if rt is not None:
            rt.begin(self)
        cbs = self._callback_list(callbacks, verbose, rt, it.num_batches)
        try:
            logs = self._evaluate_epoch(it, "evaluate", cbs, rt)
        finally:
            it.close()
            self._release_inputs()
        return self._batch_result(logs, return_dict)

    @_serialized
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for x as float32 (N, ...) (logits unless the model ends in softmax).

        Args:
            x: inputs (N, ...), or a dataset / generator / PyDataset (targets in its
                batches are ignored).
            batch_size: samples per batch for arrays (default 32).
            verbose: 'auto', 0 or 1.
            steps: batches to predict (batch sources).
            callbacks: a list of fastcnn.callbacks.Callback.

        Returns:
            float32 array of the outputs, in the order of the inputs.
        """
        verbose = _verbose(verbose, "predict")
        self._assert_built("predict")
        self._assert_single_io("predict")
        rt = distributed.active()
        sample_shape = tuple(self.outputs[0].shape[1:])
        if adapters.is_batch_source(x):
            it = self._source_iterator(x, None, None, steps, "predict", rt, need_y=False)
            outputs = adapters.Predictions(sample_shape,
                                           gather=None if rt is None else rt.gather)
        else:
            unsupported("predict", steps=steps)
            batch_size = positive_int(batch_size, "batch_size", "predict", 32)
            x32 = self._x(x, "predict", keep_uint8=True)
            n_all = x32.shape[0]
            if n_all == 0:
                return np.empty((0,) + sample_shape, dtype=np.float32)
            if rt is not None:  # each rank predicts its part of the whole; gathered below
                lo, hi = rt.shard(0, n_all)
                x32 = x32[lo:hi]
            it = adapters.EpochIterator(adapters.ArrayAdapter(self._batches, x32, None, None,
                                                              batch_size))
            outputs = adapters.Predictions(sample_shape, rows=x32.shape[0],
                                           gather=None if rt is None else rt.gather,
                                           total_rows=n_all)
        if rt is not None:
            rt.begin(self)
        cbs = self._callback_list(callbacks, verbose, rt, it.num_batches)
        try:
            cbs.on_predict_begin()
            for step, b in it.epoch():
                cbs.on_predict_batch_begin(step)
                out = outputs.add(b, self.predict_step(b.x) if b.rows else None)
                cbs.on_predict_batch_end(step, {"outputs": out})
            cbs.on_predict_end()
        finally:
            it.close()
            self._release_inputs()
        return outputs.result()

    def _batch_result(self, logs, return_dict):
        if return_dict:
            return logs
        names = self._compile_metrics.names
        if not names:
            return logs["loss"]
        return [logs["loss"]] + [logs[name] for name in names]

    @_serialized
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on one batch; returns that batch's loss (and metrics)."""
        return self._on_batch("train_on_batch", x, y, True, return_dict,
                              sample_weight=sample_weight, class_weight=class_weight)

    @_serialized
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) of one batch, without updating the model."""
        return self._on_batch("test_on_batch", x, y, False, return_dict,
                              sample_weight=sample_weight)

    def _on_batch(self, who, x, y, training, return_dict, sample_weight=None,
                  class_weight=None):
        self._assert_compiled(who)
        if not training:
            self._assert_built(who)
        x32 = self._x(x, who)
        if x32.shape[0] == 0:
            raise ValueError("%s: x has no samples" % who)
        self._build_from(x32, who)
        self._assert_single_io(who)
        targets = self._y(y, x32.shape[0], who)
        sw = self._sample_weight(sample_weight, class_weight, targets, x32.shape[0], who)
        if training:
            self._prepare_training()
        else:
            self._set_output_mode()
        rt = distributed.active()
        if rt is not None:  # x is the global batch: this rank takes its part
            rt.begin(self)
            lo, hi = rt.shard(0, x32.shape[0])
            x32, targets = x32[lo:hi], targets[lo:hi]
            if training:
                self._grad_sync = rt.gradient_sync(self._program(), self._train_vars,
                                                   self._train_grads)
        self.reset_metrics()
        try:
            step = self.train_step if training else self.test_step
            loss = step(x32, targets, sample_weight=sw) if training or x32.shape[0] else 0.0
            if rt is not None and training:
                rt.average_state(self)
        finally:
            self._grad_sync = None
            self._release_inputs()
        logs = self._logs(loss * x32.shape[0], x32.shape[0], rt)
        return self._batch_result(logs, return_dict)

    @_serialized
    def predict_on_batch(self, x):
        """Outputs for one batch (float32)."""
        self._assert_built("predict_on_batch")
        return self._eager(x, "predict_on_batch", False)

    def _eager(self, inputs, who, training):
        if len(self.inputs) > 1:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != len(self.inputs):
                raise ValueError("%s: model '%s' has %d inputs; pass a list of %d arrays"
                                 % (who, self.name, len(self.inputs), len(self.inputs)))
            xs = [data.prepare_x(a, t.shape[1:], self.name, who, "inputs[%d]" % i)
                  for i, (a, t) in enumerate(zip(inputs, self.inputs))]
        else:
            xs = [self._x(inputs, who, "inputs")]
            self._build_from(xs[0], who)
        program = self._program()
        if not training and len(xs) == 1 and len(program.output_keys) == 1:
            runner = self._lean.get(xs[0].shape)
            try:
                return np.array(runner(xs[0]), dtype=np.float32, copy=True)
            finally:
                if runner.holds_inputs:
                    self._release_inputs()
        try:
            outs = program.forward(xs, bool(training), False)
            outs = [np.array(o, dtype=np.float32, copy=True) for o in outs]
        finally:
            self._release_inputs()
        return outs[0] if len(outs) == 1 else outs

    def __call__(self, inputs, training=False):
        """On symbolic tensors: this model becomes one node of another graph. On NumPy
        data: run it (building it from the data's shape if needed); returns a new array."""
        from ..layers.node import is_symbolic
        if is_symbolic(inputs):
            return self._symbolic_call(inputs)
        with model_lock(self):
            return self._eager(inputs, "%s.__call__" % type(self).__name__, training)

    def profile(self, x, y=None, **kwargs):
        """Per-layer forward/backward times of a training step on (x, y): fastcnn.profiler."""
        from .. import profiler
        return profiler.profile(self, x, y, **kwargs)

    # ================================================================ saving
    @_serialized
    def save(self, filepath, overwrite=True, **kwargs):
        """Architecture, weights and optimizer state in one file, in Keras 3's ``.keras``
        format (Keras 3 loads it; see :mod:`fastcnn.saving`).

        Args:
            filepath: a path ending in ``.keras``.
            overwrite: replace an existing file.
            **kwargs: ``zipped`` (only ``None``/``True``).

        Raises:
            ValueError: for another extension or an unbuilt model.
            FileExistsError: if the file exists and ``overwrite=False``.
        """
        from .. import saving
        saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    @_serialized
    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               **kwargs):
        """Export the model for inference, as Keras 3's ``model.export``; fastcnn exports
        ``format="onnx"`` (see ``fastcnn.onnx.export_model``).

        Args:
            filepath: the ``.onnx`` file to write.
            format: ``"onnx"``; Keras' other formats raise a ValueError.
            verbose: print where the file went.
            input_signature: optional input shapes, one per input (see
                ``fastcnn.onnx.export.to_onnx``).
            **kwargs: ``opset_version`` (Keras' name) or ``opset``: the ONNX opset
                (default 17, at least 17).

        Raises:
            ValueError: another format, an unknown keyword, or a model that cannot be
                exported (naming the layer).
            ImportError: without the ``onnx`` package (``pip install "fastcnn[onnx]"``).
        """
        if format != "onnx":
            raise ValueError("Model.export: fastcnn exports format='onnx' only (Keras' "
                             "'tf_saved_model', 'openvino', 'litert' and 'torch' need their "
                             "backends); received format=%r" % (format,))
        opset, alias = kwargs.pop("opset_version", None), kwargs.pop("opset", None)
        if alias is not None:
            if opset is not None:
                raise ValueError("Model.export: pass opset_version or opset, not both")
            opset = alias
        if kwargs:
            raise ValueError("Model.export: unsupported keyword arguments for format='onnx': "
                             "%s (supported: opset_version)" % sorted(kwargs))
        from ..onnx import export as onnx_export
        if opset is None:
            opset = onnx_export.DEFAULT_OPSET
        onnx_export.export_model(self, filepath, opset=opset,
                                 verbose=verbose, input_signature=input_signature)

    @_serialized
    def save_weights(self, filepath, overwrite=True):
        """Weights (and the optimizer state when compiled) in Keras 3's ``.weights.h5``
        HDF5 layout.

        Args:
            filepath: a path ending in ``.weights.h5``.
            overwrite: replace an existing file.

        Raises:
            ValueError: for another file name or an unbuilt model.
            FileExistsError: if the file exists and ``overwrite=False``.
        """
        from .. import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    @_serialized
    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights from a ``.weights.h5`` or ``.keras`` file (written by Keras 3 or
        fastcnn, or by an older fastcnn), into this model of the same architecture.

        Args:
            filepath: path of the file.
            skip_mismatch: skip layers whose weight shapes differ instead of raising.

        Raises:
            ValueError: if the file is damaged or does not match the model.
            FileNotFoundError: if the file does not exist.
        """
        from .. import saving
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)
