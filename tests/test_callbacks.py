"""Callbacks behave as Keras documents: hook order, stop_training, EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau, LearningRateScheduler, TerminateOnNaN, History, custom subclasses."""
import os

import numpy as np
import pytest

from fastcnn import callbacks, layers, losses, models, optimizers, utils


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.uint8)
    x = rng.normal(size=(n, 6)) + np.eye(3)[y].repeat(2, axis=1) * 2
    return x, y


def mlp(optimizer="adam"):
    model = models.Sequential([layers.Input(shape=(6,)), layers.Dense(8, activation="relu"),
                               layers.Dense(3)])
    model.compile(optimizer=optimizer,
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


class StubModel:
    """What callbacks touch on a model, with weights we can recognise."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(1)]
        self.optimizer = optimizers.SGD(learning_rate=1.0)
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = [a.copy() for a in w]


def drive(cb, values, key="val_loss", model=None):
    """Run epochs feeding ``values`` as the monitored quantity; weights record the epoch."""
    model = model or StubModel()
    cb.set_model(model)
    cb.on_train_begin()
    epochs = 0
    for epoch, v in enumerate(values):
        model.weights = [np.array([float(epoch)])]
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {key: v})
        epochs += 1
        if model.stop_training:
            break
    cb.on_train_end()
    return model, epochs


# ----------------------------------------------------------------------------- hooks
class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            def hook(*args, _name=name):
                self.calls.append(_name if not args or isinstance(args[0], dict) or args[0] is None
                                  else (_name, args[0]))
            return hook
        return super().__getattribute__(name)


def test_hook_order_and_params_in_fit():
    x, y = data(20)
    rec = Recorder()
    model = mlp()
    model.fit(x, y, batch_size=10, epochs=2, validation_data=(x[:5], y[:5]), callbacks=[rec],
              verbose=0)
    assert rec.model is model and rec.params == {"verbose": 0, "epochs": 2, "steps": 2}
    epoch0 = ["on_train_begin", ("on_epoch_begin", 0),
              ("on_train_batch_begin", 0), ("on_train_batch_end", 0),
              ("on_train_batch_begin", 1), ("on_train_batch_end", 1),
              "on_test_begin", ("on_test_batch_begin", 0), ("on_test_batch_end", 0),
              "on_test_end", ("on_epoch_end", 0)]
    assert rec.calls[:len(epoch0)] == epoch0
    assert rec.calls[-1] == "on_train_end" and rec.calls[-2] == ("on_epoch_end", 1)
    rec.calls.clear()
    model.predict(x, batch_size=10, callbacks=[rec], verbose=0)
    assert rec.calls == ["on_predict_begin", ("on_predict_batch_begin", 0),
                         ("on_predict_batch_end", 0), ("on_predict_batch_begin", 1),
                         ("on_predict_batch_end", 1), "on_predict_end"]


def test_custom_callback_sees_logs_and_can_stop_mid_epoch():
    class StopAfterThree(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batch_logs = []

        def on_train_batch_end(self, batch, logs=None):
            self.batch_logs.append(dict(logs))
            if len(self.batch_logs) == 3:
                self.model.stop_training = True

    x, y = data(60)
    cb = StopAfterThree()
    model = mlp()
    hist = model.fit(x, y, batch_size=10, epochs=5, callbacks=[cb], verbose=0)
    assert len(cb.batch_logs) == 3 and set(cb.batch_logs[0]) == {"accuracy", "loss"}
    assert len(hist.history["loss"]) == 1 and model.optimizer.iterations == 3


def test_lambda_callback_and_history_object():
    x, y = data(20)
    seen = []
    model = mlp()
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, round(logs["loss"], 6))))])
    assert [e for e, _ in seen] == [0, 1, 2]
    assert [l for _, l in seen] == [round(v, 6) for v in hist.history["loss"]]
    assert isinstance(hist, callbacks.History) and hist.model is model


# ----------------------------------------------------------------------------- EarlyStopping
def test_early_stopping_patience_counts_epochs_without_improvement():
    cb = callbacks.EarlyStopping(monitor="val_loss", patience=2)
    model, epochs = drive(cb, [1.0, 0.9, 0.95, 0.91, 0.5, 0.4])
    # best at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3 (4 epochs run)
    assert epochs == 4 and cb.stopped_epoch == 3 and model.stop_training
    assert model.weights[0][0] == 3.0  # no restore requested


def test_early_stopping_restore_best_weights_min_delta_and_max_mode():
    cb = callbacks.EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True,
                                 mode="max")
    model, epochs = drive(cb, [0.5, 0.7, 0.6, 0.65], key="val_accuracy")
    assert epochs == 3 and cb.best_epoch == 1 and model.weights[0][0] == 1.0
    cb = callbacks.EarlyStopping(monitor="loss", min_delta=0.1, patience=1)
    _, epochs = drive(cb, [1.0, 0.95, 0.93, 0.5], key="loss")  # improvements < 0.1 don't count
    assert epochs == 2


def test_early_stopping_baseline_and_start_from_epoch():
    cb = callbacks.EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    _, epochs = drive(cb, [0.9, 0.8, 0.7, 0.6, 0.4])  # improving: runs on (Keras semantics)
    assert epochs == 5
    cb = callbacks.EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    _, epochs = drive(cb, [0.9, 0.95, 0.97, 0.4])  # not beating the baseline: stops
    assert epochs == 2
    cb = callbacks.EarlyStopping(monitor="val_loss", patience=0, start_from_epoch=3)
    _, epochs = drive(cb, [1, 2, 3, 4, 5, 6])
    assert epochs == 5  # epochs 0-2 ignored; 3 sets best; 4 does not improve -> stop


def test_early_stopping_in_fit_stops_and_restores():
    x, y = data(30)
    model = mlp(optimizer=optimizers.SGD(learning_rate=0.0))  # nothing ever improves
    cb = callbacks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    hist = model.fit(x, y, epochs=10, callbacks=[cb], verbose=0, shuffle=False)
    assert len(hist.history["loss"]) == 3 and cb.stopped_epoch == 2
    auto = callbacks.EarlyStopping(monitor="val_accuracy", patience=0)  # metric: maximise
    model.fit(x, y, epochs=3, validation_data=(x, y), callbacks=[auto], verbose=0, shuffle=False)
    assert auto.monitor_op is np.greater and auto.stopped_epoch == 1
    with pytest.warns(UserWarning, match="not available"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


# ----------------------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_best_only_and_formatting(tmp_path):
    x, y = data(40)
    model = mlp()
    path = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.keras")
    cb = callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    hist = model.fit(x, y, epochs=3, validation_data=(x, y), callbacks=[cb], verbose=0)
    files = sorted(os.listdir(tmp_path))
    want = ["ckpt-%02d-%.2f.keras" % (e + 1, v) for e, v in enumerate(hist.history["val_loss"])
            if v == min(hist.history["val_loss"][:e + 1])]
    assert files == want
    restored = models.load_model(tmp_path / files[-1])
    assert np.array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_model_checkpoint_best_only_skips_worse_epochs(tmp_path):
    cb = callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"), save_best_only=True,
                                   save_weights_only=True)
    saves = []

    class M(StubModel):
        def save_weights(self, filepath, overwrite=True):
            saves.append(filepath)
    drive(cb, [1.0, 1.2, 0.8, 0.9], model=M())
    assert len(saves) == 2


def test_model_checkpoint_validates_its_path():
    with pytest.raises(ValueError, match="must end in `.keras`"):
        callbacks.ModelCheckpoint("model.ckpt")
    with pytest.raises(ValueError, match="must end in `.weights.h5`"):
        callbacks.ModelCheckpoint("model.keras", save_weights_only=True)


# ----------------------------------------------------------------------------- learning rate
def test_reduce_lr_on_plateau_changes_the_optimizer_learning_rate():
    cb = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1,
                                     min_lr=0.2)
    model = StubModel()
    drive(cb, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], model=model)
    # epoch 2: 1.0 -> 0.5; cooldown epoch 3; epochs 4, 5 wait -> 0.25; then clipped at 0.2
    assert model.optimizer.learning_rate == pytest.approx(0.2)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=2)


def test_reduce_lr_on_plateau_in_fit_logs_learning_rate():
    x, y = data(20)
    model = mlp(optimizer=optimizers.SGD(learning_rate=1e-9))  # ~frozen: the loss plateaus
    cb = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.0)
    hist = model.fit(x, y, epochs=3, callbacks=[cb], verbose=0, shuffle=False)
    assert hist.history["learning_rate"][0] == pytest.approx(1e-9)
    assert model.optimizer.learning_rate < 1e-9


def test_learning_rate_scheduler_sets_lr_each_epoch():
    x, y = data(20)
    model = mlp()
    seen = []
    cb = callbacks.LearningRateScheduler(lambda epoch, lr: seen.append(lr) or 0.1 / (epoch + 1))
    hist = model.fit(x, y, epochs=3, callbacks=[cb], verbose=0)
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert seen[0] == pytest.approx(1e-3) and seen[1] == pytest.approx(0.1)
    old_style = callbacks.LearningRateScheduler(lambda epoch: 0.01)
    model.fit(x, y, epochs=1, callbacks=[old_style], verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    with pytest.raises(ValueError, match="should be a float"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[callbacks.LearningRateScheduler(lambda e, lr: "fast")])


# ----------------------------------------------------------------------------- TerminateOnNaN
def test_terminate_on_nan_stops_at_the_first_bad_batch(capsys):
    x, y = data(40)
    model = mlp(optimizer=optimizers.SGD(learning_rate=1e30))
    hist = model.fit(x * 1e10, y, batch_size=4, epochs=5, callbacks=[callbacks.TerminateOnNaN()],
                     verbose=0)
    out = capsys.readouterr().out
    assert "Invalid loss, terminating training" in out
    assert len(hist.history["loss"]) == 1 and not np.isfinite(hist.history["loss"][0])
    assert model.optimizer.iterations < 10
    stub = StubModel()
    cb = callbacks.TerminateOnNaN()
    cb.set_model(stub)
    cb.on_train_batch_end(0, {"loss": 1.0})
    assert not stub.stop_training
    cb.on_train_batch_end(1, {"loss": float("inf")})
    assert stub.stop_training


def test_csv_logger(tmp_path):
    x, y = data(20)
    path = tmp_path / "log.csv"
    mlp().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.CSVLogger(str(path))])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss" and len(lines) == 3


def test_callbacks_must_be_callback_instances():
    x, y = data(10)
    with pytest.raises(TypeError, match="Callback"):
        mlp().fit(x, y, verbose=0, callbacks=[lambda: None])
    utils.clear_session()
