"""Training that loses nothing: Ctrl-C keeps the last completed step and the History so far,
a checkpointed run resumes to bitwise the same weights as an uninterrupted one, non-finite
inputs are refused, and a diverging loss is reported with its epoch and step."""
import math

import numpy as np
import pytest

from fastcnn import callbacks, layers, losses, models, optimizers, utils


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).reshape(-1, 1)
    x = rng.uniform(size=(n, 8, 8, 2))
    for k in range(3):
        x[y[:, 0] == k, k:k + 3, 2:5, k % 2] += 1.0
    return x, y


def make_model(seed=5, optimizer="adam", augment=False):
    """Every kind of training state: Adam slots, BatchNorm statistics, a Dropout stream
    (and, with ``augment``, the random streams of augmentation layers)."""
    utils.set_random_seed(seed)
    extra = [layers.RandomFlip("horizontal"),
             layers.RandomTranslation(0.2, 0.2, fill_mode="constant")] if augment else []
    model = models.Sequential([layers.Input(shape=(8, 8, 2))] + extra + [
        layers.Conv2D(6, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dropout(0.3), layers.Dense(3)])
    model.compile(optimizer=optimizer,
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


class CtrlC(callbacks.Callback):
    """Raises KeyboardInterrupt (what Ctrl-C does) after the given batch of the given epoch."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


class StopAt(CtrlC):
    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            self.model.stop_training = True


def weights_equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


# ------------------------------------------------------------------ Ctrl-C

def test_ctrl_c_keeps_the_last_completed_step_and_the_history_so_far():
    x, y = data()
    steps = 96 // 16
    interrupted = make_model()
    with pytest.raises(KeyboardInterrupt):  # re-raised, as Keras does
        interrupted.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[CtrlC(2, 3)])
    # the model holds exactly the state after the last completed step ...
    assert interrupted.optimizer.iterations == 2 * steps + 4
    reference = make_model()
    reference.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[StopAt(2, 3)])
    assert reference.optimizer.iterations == 2 * steps + 4
    assert weights_equal(interrupted, reference)
    # ... and model.history the two completed epochs
    hist = interrupted.history
    assert isinstance(hist, callbacks.History)
    assert hist.epoch == [0, 1] and len(hist.history["loss"]) == 2
    assert hist.history["loss"] == reference.history.history["loss"][:2]
    # it is still a working model: predict, and continue training
    assert np.isfinite(interrupted.predict(x, verbose=0)).all()
    interrupted.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert interrupted.optimizer.iterations == 3 * steps + 4


def test_ctrl_c_in_the_first_epoch_does_not_leave_a_stale_history():
    x, y = data()
    model = make_model()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    old = model.history
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[CtrlC(0, 1)])
    assert model.history is not old and model.history.epoch == []


# ------------------------------------------------------------------ exact resume

@pytest.mark.parametrize("shuffle,augment", [(True, False), (False, False), (True, True)])
def test_checkpoint_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, shuffle,
                                                                        augment):
    x, y = data()
    xv, yv = data(32, seed=1)
    epochs, crash_epoch = 5, 3
    kw = dict(batch_size=16, verbose=0, shuffle=shuffle, validation_data=(xv, yv))

    straight = make_model(augment=augment)
    straight.fit(x, y, epochs=epochs, **kw)

    # a run checkpointed every epoch that "crashes" in the middle of epoch `crash_epoch`
    ckpt = str(tmp_path / "ckpt-{epoch:02d}.keras")
    crashed = make_model(augment=augment)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(x, y, epochs=epochs, callbacks=[callbacks.ModelCheckpoint(ckpt),
                                                    CtrlC(crash_epoch, 2)], **kw)
    # a new process would start with another global random state: make sure it does not
    # matter (the shuffles come from the model's saved seed, epoch and step)
    utils.set_random_seed(12345)
    np.random.default_rng().random(10)
    resumed = models.load_model(ckpt.format(epoch=crash_epoch))
    assert resumed.optimizer.iterations == crash_epoch * 96 // 16
    history = resumed.fit(x, y, epochs=epochs, initial_epoch=crash_epoch, **kw)
    assert history.epoch == list(range(crash_epoch, epochs))
    assert resumed.optimizer.iterations == straight.optimizer.iterations
    assert weights_equal(resumed, straight)
    for key in ("loss", "val_loss", "accuracy"):
        assert history.history[key] == straight.history.history[key][crash_epoch:]


def test_shuffles_differ_between_epochs_and_between_fit_calls(monkeypatch):
    """The per-epoch permutation is a function of (model seed, epoch, step): a second fit
    call continues with new shuffles instead of replaying the first call's."""
    from fastcnn.training import data as data_module
    x, y = data()
    orders = []
    real = data_module.epoch_permutation

    def spy(*args):
        orders.append(real(*args))
        return orders[-1]
    monkeypatch.setattr(data_module, "epoch_permutation", spy)
    model = make_model()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert len(orders) == 4
    assert all(sorted(o) == list(range(96)) for o in orders)
    assert all(not np.array_equal(orders[i], orders[j])
               for i in range(4) for j in range(i + 1, 4))


# ------------------------------------------------------------------ non-finite data and losses

@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused_before_training(bad):
    x, y = data()
    model = make_model()
    before = model.get_weights()
    x_bad = x.copy()
    x_bad[17, 3, 4, 1] = bad
    with pytest.raises(ValueError, match=r"fit: x contains NaN or infinite values "
                                         r"\(first at sample 17\)"):
        model.fit(x_bad, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_data x contains NaN or infinite"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x_bad, y))
    assert model.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # float64 values beyond float32's range are caught as well
    x_big = x.copy()
    x_big[5, 0, 0, 0] = 1e300
    with pytest.raises(ValueError, match="sample 5.*overflow float32"):
        model.fit(x_big, y, epochs=1, verbose=0)


def diverging():
    """A model whose loss overflows in its second epoch (SGD with an absurd learning rate)."""
    x, y = data(64)
    model = make_model(optimizer=optimizers.SGD(learning_rate=100.0))
    return model, x, y


def test_terminate_on_nan_names_the_epoch_and_step(capsys):
    model, x, y = diverging()
    losses_seen = []
    record = callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: losses_seen.append((epoch, None, None)),
        on_train_batch_end=lambda batch, logs: losses_seen.append(
            (losses_seen[-1][0], batch, logs["loss"])))
    stop = callbacks.TerminateOnNaN()
    hist = model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[record, stop])
    epoch, batch, _ = next(e for e in losses_seen if e[2] is not None and not math.isfinite(e[2]))
    assert epoch == 1  # not trivially the first epoch
    out = capsys.readouterr().out
    assert ("Epoch %d, batch %d: Invalid loss, terminating training" % (epoch + 1, batch)) in out
    assert (stop.stopped_epoch, stop.stopped_batch) == (epoch, batch)
    # it stopped right there: no further step, that epoch is the last one recorded
    assert losses_seen[-1][:2] == (epoch, batch)
    assert model.optimizer.iterations == epoch * 8 + batch + 1
    assert hist.epoch[-1] == epoch and not math.isfinite(hist.history["loss"][-1])


def test_without_terminate_on_nan_training_continues_like_keras():
    model, x, y = diverging()
    hist = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert hist.epoch == [0, 1, 2] and model.optimizer.iterations == 24
    assert not math.isfinite(hist.history["loss"][-1])
