"""Callbacks with Keras 3's hooks, arguments and behaviour.

Hooks: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_train_batch_begin/end(batch, logs)``, ``on_test_begin/end``,
``on_test_batch_begin/end``, ``on_predict_begin/end``, ``on_predict_batch_begin/end``.
A callback sees the model as ``self.model``; setting ``self.model.stop_training = True``
stops ``fit`` after the current batch. Epoch logs hold the epoch's running means
(``accuracy``, ``loss``) and, with validation data, ``val_accuracy`` and ``val_loss``.
"""
import math
import os
import sys
import warnings

import numpy as np

from . import utils

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping",
           "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler", "TerminateOnNaN",
           "LambdaCallback", "CSVLogger", "Lookahead"]


class Callback:
    """Base class: override any ``on_*`` hook."""

    def __init__(self):
        self.params = {}
        self._model = None

    def set_params(self, params):
        """Receive the run's parameters (``epochs``, ``steps``, ``verbose``).

        Args:
            params: dict set by ``fit``/``evaluate``/``predict`` before the first hook.
        """
        self.params = params

    def set_model(self, model):
        """Attach the model being trained (the ``model`` property returns it).

        Args:
            model: the model whose ``fit``/``evaluate``/``predict`` calls the hooks.
        """
        self._model = model

    @property
    def model(self):
        """The model this callback is attached to (``None`` before ``fit``)."""
        return self._model

    def on_batch_begin(self, batch, logs=None):
        """Legacy alias called by :meth:`~fastcnn.callbacks.Callback.on_train_batch_begin`.

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_batch_end(self, batch, logs=None):
        """Legacy alias called by :meth:`~fastcnn.callbacks.Callback.on_train_batch_end`.

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of each training epoch.

        Args:
            epoch: index of the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of each training epoch, after validation.

        ``logs`` holds the epoch's training metrics and, with validation data, the ``val_`` ones.

        Args:
            epoch: index of the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_train_batch_begin(self, batch, logs=None):
        """Called before each training step.

        Calls :meth:`~fastcnn.callbacks.Callback.on_batch_begin`, as Keras 3 does.

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training step.

        Calls :meth:`~fastcnn.callbacks.Callback.on_batch_end`, as Keras 3 does.

        ``logs`` holds the running means of the loss and metrics over the epoch so far.

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """Called before each batch of ``evaluate`` (and of the validation pass).

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_test_batch_end(self, batch, logs=None):
        """Called after each batch of ``evaluate`` (and of the validation pass).

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        """Called before each batch of ``predict``.

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_predict_batch_end(self, batch, logs=None):
        """Called after each batch of ``predict``.

        Args:
            batch: index of the batch within the epoch (0-based).
            logs: dict of the logs so far (metric name -> float); may be empty.
        """
        pass

    def on_train_begin(self, logs=None):
        """Called once at the start of ``fit``.

        Args:
            logs: dict of the logs (metric name -> float); may be empty.
        """
        pass

    def on_train_end(self, logs=None):
        """Called once at the end of ``fit`` (also after early stopping).

        Args:
            logs: dict of the logs (metric name -> float); may be empty.
        """
        pass

    def on_test_begin(self, logs=None):
        """Called at the start of ``evaluate`` and of each validation pass.

        Args:
            logs: dict of the logs (metric name -> float); may be empty.
        """
        pass

    def on_test_end(self, logs=None):
        """Called at the end of ``evaluate`` and of each validation pass.

        Args:
            logs: dict of the logs (metric name -> float); may be empty.
        """
        pass

    def on_predict_begin(self, logs=None):
        """Called at the start of ``predict``.

        Args:
            logs: dict of the logs (metric name -> float); may be empty.
        """
        pass

    def on_predict_end(self, logs=None):
        """Called at the end of ``predict``.

        Args:
            logs: dict of the logs (metric name -> float); may be empty.
        """
        pass


class CallbackList(Callback):
    """Calls every hook on each callback in order (History and the progress bar included)."""

    def __init__(self, callbacks=None, model=None, add_history=False, add_progbar=False,
                 **params):
        super().__init__()
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        else:
            callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError("callbacks must be instances of fastcnn.callbacks.Callback, got "
                                "%r" % (cb,))
        self.callbacks = callbacks
        self.history = None
        if add_history:
            hist = [cb for cb in callbacks if isinstance(cb, History)]
            self.history = hist[0] if hist else History()
            if not hist:
                self.callbacks.append(self.history)
        if add_progbar and not any(isinstance(cb, ProgbarLogger) for cb in callbacks):
            self.callbacks.insert(0, ProgbarLogger())
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def set_model(self, model):
        super().set_model(model)
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for cb in self.callbacks:
            cb.set_params(params)


def _make_dispatch(hook, with_index):
    if with_index:
        def method(self, index, logs=None):
            logs = {} if logs is None else logs
            for cb in self.callbacks:
                getattr(cb, hook)(index, logs)
    else:
        def method(self, logs=None):
            logs = {} if logs is None else logs
            for cb in self.callbacks:
                getattr(cb, hook)(logs)
    method.__name__ = hook
    return method


for _hook in ("on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin",
              "on_predict_batch_end", "on_batch_begin", "on_batch_end"):
    setattr(CallbackList, _hook, _make_dispatch(_hook, True))
for _hook in ("on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
              "on_predict_begin", "on_predict_end"):
    setattr(CallbackList, _hook, _make_dispatch(_hook, False))


class History(Callback):
    """Records epoch logs: ``history.history['loss']`` is a list of floats, one per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            # multi-threshold metrics (Precision(thresholds=[...])) log arrays, as Keras
            self.history.setdefault(k, []).append(float(v) if np.ndim(v) == 0 else np.array(v))
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints Keras' progress bar / per-epoch lines (added by fit/evaluate/predict)."""

    def __init__(self):
        super().__init__()
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self.seen = 0
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def _reset(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init(self):
        if self.progbar is None:
            self.progbar = utils.Progbar(target=self.target, verbose=self.verbose)

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset()
            self._maybe_init()

    def on_predict_begin(self, logs=None):
        self._reset()
        self._maybe_init()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()
        self._maybe_init()
        if self.verbose and self.epochs > 1:
            sys.stdout.write("Epoch %d/%d\n" % (epoch + 1, self.epochs))
            sys.stdout.flush()

    def _update(self, batch, logs):
        self._maybe_init()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def _finalize(self, logs):
        self._maybe_init()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.target
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_end(self, logs=None):
        self._finalize(logs)


def _print(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


class _MonitorCallback(Callback):
    """Keras' MonitorCallback: picks min/max from ``mode`` or the monitored name."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn("%s mode '%s' is unknown, fallback to auto mode."
                          % (type(self).__name__, mode), stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
            if name == "loss":
                self.monitor_op = np.less
            model = self.model
            for m in getattr(model, "_compiled_metrics", None) or []:
                if m.name == name:
                    self.monitor_op = np.greater if m._direction == "up" else np.less
            if self.monitor_op is None:
                raise ValueError(
                    "%s callback received monitor=%s, but fastcnn isn't able to automatically "
                    "determine whether that metric should be maximized or minimized. Pass "
                    "`mode='max'` in order to monitor based on the highest metric value, or "
                    "pass `mode='min'` in order to use the lowest value."
                    % (type(self).__name__, self.monitor))
        if self.monitor_op is np.less:
            self.min_delta *= -1
        if self.best is None:
            self.best = np.inf if self.monitor_op is np.less else -np.inf

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        return bool(self.monitor_op(value - self.min_delta, reference))


class EarlyStopping(_MonitorCallback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras semantics).

    Args:
        monitor: the log key to watch, default ``"val_loss"``.
        min_delta: smallest change that counts as an improvement.
        patience: epochs without improvement before stopping.
        verbose: 1 prints a message when training stops.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (``"auto"`` infers it from the name).
        baseline: stop unless the value beats this within ``patience`` epochs.
        restore_best_weights: put the weights of the best epoch back at the end.
        start_from_epoch: epochs to wait before watching.

    Example:
        >>> stop = fastcnn.callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, None, min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0

    def get_monitor_value(self, logs):
        """The monitored quantity in ``logs`` (warns and returns ``None`` when absent).

        Args:
            logs: the epoch's logs.

        Returns:
            The value of ``logs[monitor]``, or ``None``.
        """
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn("Early stopping conditioned on metric `%s` which is not available. "
                          "Available metrics are: %s" % (self.monitor, ",".join(logs or {})),
                          stacklevel=3)
        return value

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print("Epoch %d: early stopping" % (self.stopped_epoch + 1))
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print("Restoring model weights from the end of the best epoch: %d."
                       % (self.best_epoch + 1))
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_MonitorCallback):
    """Save the model (``.keras``) or its weights (``.weights.h5``) every epoch or on
    improvement; ``filepath`` may contain ``{epoch:02d}`` and log keys (``{val_loss:.2f}``).
    The files are fastcnn's own zip format, not HDF5 (see fastcnn.saving).

    Args:
        filepath: where to save; ends in ``.keras``, or ``.weights.h5`` with
            ``save_weights_only=True``.
        monitor: the log key deciding what is best, default ``"val_loss"``.
        verbose: 1 prints a line per save.
        save_best_only: save only when ``monitor`` improves.
        save_weights_only: save the weights only.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        save_freq: ``"epoch"``, or a number of batches between saves.
        initial_value_threshold: the value to beat before the first save.

    Raises:
        ValueError: for a bad ``save_freq`` or a file name that does not fit the mode.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0
        if save_freq != "epoch" and (isinstance(save_freq, bool)
                                     or not isinstance(save_freq, int) or save_freq <= 0):
            raise ValueError("Unrecognized save_freq: %r. Expected save_freq are 'epoch' or "
                             "positive integer values" % (save_freq,))
        if save_weights_only:
            if not self.filepath.endswith(".weights.h5"):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the "
                                 "filepath provided must end in `.weights.h5`. Received: "
                                 "filepath=%s" % self.filepath)
        elif not self.filepath.endswith((".keras", ".h5")):
            raise ValueError("The filepath provided must end in `.keras` (model format). "
                             "Received: filepath=%s" % self.filepath)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        if batch <= self._last_batch_seen:
            add = batch + 1
        else:
            add = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += add
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError('Failed to format this callback filepath: "%s". Reason: %s'
                           % (self.filepath, e)) from None

    def _should_save(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                _print("\nEpoch %d: saving model to %s" % (epoch + 1, filepath))
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn("Can save best model only with %s available." % self.monitor,
                          stacklevel=3)
            return True
        best = "None" if self.best is None else "%.5f" % self.best
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _print("\nEpoch %d: %s improved from %s to %.5f, saving model to %s"
                       % (epoch + 1, self.monitor, best, current, filepath))
            self.best = current
            return True
        if self.verbose > 0:
            _print("\nEpoch %d: %s did not improve from %s" % (epoch + 1, self.monitor, best))
        return False

    def _save(self, epoch, batch, logs):
        logs = dict(logs or {})
        filepath = self._file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. "
                          "Filepath used is an existing directory: %s" % filepath)
        if self._should_save(epoch, logs, filepath):
            if self.save_weights_only:
                self.model.save_weights(filepath, overwrite=True)
            else:
                self.model.save(filepath, overwrite=True)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without
    improvement of ``monitor`` (then wait ``cooldown`` epochs); never below ``min_lr``.

    Args:
        monitor: the log key to watch, default ``"val_loss"``.
        factor: the multiplier, below 1.
        patience: epochs without improvement before a reduction.
        verbose: 1 prints a line per reduction.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        min_delta: smallest change that counts as an improvement.
        cooldown: epochs to wait after a reduction before watching again.
        min_lr: lower bound of the learning rate.

    Raises:
        ValueError: if ``factor >= 1``.
        TypeError: for an unknown argument.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError("ReduceLROnPlateau: unrecognized arguments %r" % sorted(kwargs))
        self.monitor = monitor
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. Received "
                             "factor=%r" % (factor,))
        self.factor = factor
        self.min_lr = min_lr
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0
        self.best = 0
        self.mode = mode
        self.monitor_op = None
        self._reset()

    def _reset(self):
        if self.mode not in ("auto", "min", "max"):
            warnings.warn("Learning rate reduction mode %s is unknown, fallback to auto mode."
                          % self.mode, stacklevel=3)
            self.mode = "auto"
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: np.less(a, b - self.min_delta)
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: np.greater(a, b + self.min_delta)
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        """Whether the callback is waiting out ``cooldown`` epochs after a reduction.

        Returns:
            bool.
        """
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn("Learning rate reduction is conditioned on metric `%s` which is not "
                          "available. Available metrics are: %s."
                          % (self.monitor, ",".join(logs)), stacklevel=3)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        _print("\nEpoch %d: ReduceLROnPlateau reducing learning rate to %s."
                               % (epoch + 1, new_lr))
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class LearningRateScheduler(Callback):
    """Set the learning rate at each epoch start to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``); the value is logged as ``learning_rate``.

    Args:
        schedule: a function of the epoch index (0-based) and the current learning rate,
            returning the new rate as a float.
        verbose: 1 prints the rate at each epoch.

    Raises:
        TypeError: if ``schedule`` is not callable.

    Example:
        >>> halve = fastcnn.callbacks.LearningRateScheduler(
        ...     lambda epoch, lr: lr if epoch < 10 else lr * 0.5)
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be callable, got %r"
                            % (schedule,))
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        lr = float(optimizer.learning_rate)
        try:
            lr = self.schedule(epoch, lr)
        except TypeError:  # the old one-argument form
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, (float, int, np.floating, np.integer)):
            raise ValueError("The output of the `schedule` function should be a float. Got: %r"
                             % (lr,))
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            _print("\nEpoch %d: LearningRateScheduler setting learning rate to %s."
                   % (epoch + 1, float(lr)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stop training as soon as the loss becomes NaN or infinite.

    The message names the epoch (counted from 1, as the progress lines ``Epoch 3/10``) and
    the batch within it (counted from 0, as Keras' ``Batch 7: Invalid loss``);
    ``stopped_epoch`` / ``stopped_batch`` keep both, 0-based."""

    def __init__(self):
        super().__init__()
        self._epoch = 0
        self.stopped_epoch = self.stopped_batch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped_epoch, self.stopped_batch = self._epoch, batch
            _print("Epoch %d, batch %d: Invalid loss, terminating training (loss=%s)"
                   % (self._epoch + 1, batch, float(loss)))
            self.model.stop_training = True


class Lookahead(Callback):
    """Lookahead weight averaging, as Keller Jordan's airbench94 applies it: slow weights
    that follow the trained (fast) ones with a lag, the model going on from the slow ones.

    From epoch ``start_epoch`` on, every ``sync_period`` training steps the slow weights
    move toward the model's, ``slow = model + rho * (slow - model)``, and the model takes
    them; ``rho = max_decay * (t / T) ** decay_power`` grows from 0 (no averaging, the model
    moves freely) to ``max_decay`` at the last of the T = ``epochs * steps`` steps of the
    ``fit`` call, so the average is strongest while the learning rate anneals. After each
    epoch's last step the model takes the slow weights, so the epoch's validation, its
    checkpoint and the model ``fit`` returns are the average; a run resumed from such a
    checkpoint with ``fit(initial_epoch=k)`` goes on with the ramp at epoch k and the
    loaded weights as the slow ones, the steps of the uninterrupted run.
    Every weight is averaged, batch-norm moving statistics included; the optimizer's own
    state (momentum) is left alone.

    Args:
        sync_period: training steps between two updates, an integer >= 1.
        max_decay: the largest ``rho``, in [0, 1] (default ``0.95 ** 5``).
        decay_power: the exponent of the ramp, >= 0.
        start_epoch: the first epoch (0-based) that averages; the slow weights start as
            the model's weights at its first update.

    Raises:
        ValueError: an argument out of range, or (at the start of ``fit``) data whose
            number of steps per epoch is unknown.

    Example:
        >>> look = fastcnn.callbacks.Lookahead()  # model.fit(..., callbacks=[look])
        >>> look.sync_period, round(look.max_decay, 4)
        (5, 0.7738)
    """

    def __init__(self, sync_period=5, max_decay=0.95 ** 5, decay_power=3.0, start_epoch=3):
        super().__init__()
        for name, value, low, high in (("max_decay", max_decay, 0.0, 1.0),
                                       ("decay_power", decay_power, 0.0, math.inf)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or \
                    not low <= float(value) <= high:
                raise ValueError("Lookahead: %s must be a number in [%g, %g], got %r"
                                 % (name, low, high, value))
        for name, value, low in (("sync_period", sync_period, 1), ("start_epoch", start_epoch, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError("Lookahead: %s must be an integer >= %d, got %r"
                                 % (name, low, value))
        self.sync_period, self.start_epoch = int(sync_period), int(start_epoch)
        self.max_decay, self.decay_power = float(max_decay), float(decay_power)
        self.slow = None
        self._step = self._epoch = self._total = 0

    def on_train_begin(self, logs=None):
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps or not epochs:
            raise ValueError("Lookahead: the number of steps per epoch is unknown (a generator "
                             "without steps_per_epoch); its decay ramp needs it")
        self._total = int(steps) * int(epochs)
        self._step, self.slow = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._step == 0 and epoch > 0:
            self._resume(epoch)

    def _resume(self, epoch):
        """fit(initial_epoch=epoch) after a checkpoint: the ramp goes on from that step, and
        where earlier epochs averaged, the model (saved after an epoch's end, when it took
        the slow weights) is the slow weights, so the run continues as if uninterrupted."""
        steps = int(self.params["steps"])
        self._step = epoch * steps
        # a sync step in (start_epoch * steps, epoch * steps]: earlier epochs averaged
        if self._step // self.sync_period > self.start_epoch * steps // self.sync_period:
            self.slow = [np.array(w) for w in self.model.get_weights()]

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._epoch >= self.start_epoch and self._step % self.sync_period == 0:
            self._sync()
        if batch + 1 == self.params["steps"]:
            self.on_epoch_end(self._epoch)

    def _sync(self):
        weights = self.model.get_weights()
        if self.slow is None:
            self.slow = [np.array(w) for w in weights]
            return
        rho = self.max_decay * min(1.0, self._step / self._total) ** self.decay_power
        for slow, fast in zip(self.slow, weights):
            if slow.dtype.kind == "f":  # fast + rho * (slow - fast): exactly fast at rho = 0
                slow -= fast
                slow *= slow.dtype.type(rho)
                slow += fast
        self.model.set_weights(self.slow)

    def on_epoch_end(self, epoch, logs=None):
        if self.slow is not None:
            self.model.set_weights(self.slow)


class LambdaCallback(Callback):
    """Callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError("LambdaCallback: unknown hook %r" % name)
            setattr(self, name, fn)


class CSVLogger(Callback):
    """Append one CSV row per epoch (``epoch`` then the sorted log keys)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self._keys = None
        self._file = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) \
            and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._keys = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            if not self._header_written:
                self._file.write(self.sep.join(["epoch"] + self._keys) + "\n")
        row = [str(epoch)] + [repr(float(logs[k])) if k in logs else "NA" for k in self._keys]
        self._file.write(self.sep.join(row) + "\n")
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
