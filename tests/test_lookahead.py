"""callbacks.Lookahead against a NumPy replay of the same steps: the slow weights, their
decay ramp, the epoch-end copy, batch-norm statistics averaged, and its refusals."""
import numpy as np
import pytest

from fastcnn import callbacks, layers, losses, models, optimizers, utils


def _model():
    model = models.Sequential([layers.Input(shape=(5,)), layers.Dense(7),
                               layers.BatchNormalization(momentum=0.6),
                               layers.Activation("gelu"), layers.Dense(3)])
    model.compile(optimizer=optimizers.SGD(0.2, momentum=0.9),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data(n=40):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n)


def test_lookahead_matches_a_numpy_replay_bitwise():
    x, y = _data()
    epochs, batch, steps = 3, 8, 5
    sync, max_decay, power = 2, 0.6, 1.5
    fitted = _model()
    replay = _model()
    replay.set_weights(fitted.get_weights())
    fitted.fit(x, y, batch_size=batch, epochs=epochs, shuffle=False, verbose=0,
               callbacks=[callbacks.Lookahead(sync_period=sync, max_decay=max_decay,
                                              decay_power=power, start_epoch=1)])
    slow, step, total = None, 0, epochs * steps
    for epoch in range(epochs):
        for b in range(steps):
            replay.train_on_batch(x[b * batch:(b + 1) * batch], y[b * batch:(b + 1) * batch])
            step += 1
            if epoch >= 1 and step % sync == 0:
                fast = replay.get_weights()
                if slow is None:
                    slow = [w.copy() for w in fast]
                else:
                    rho = max_decay * (step / total) ** power
                    for s, f in zip(slow, fast):
                        s[...] = f + (s - f) * np.float32(rho)
                    replay.set_weights(slow)
        if slow is not None:
            replay.set_weights(slow)
    got = fitted.get_weights()
    assert len(got) == 8  # 2 kernels, 2 biases, BN gamma, beta and moving statistics
    for a, b in zip(got, replay.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got, slow):  # fit ends on the slow weights
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("start_epoch, resume_at", [(1, 2), (1, 1), (0, 3), (2, 1)])
def test_lookahead_resumed_run_matches_uninterrupted(tmp_path, start_epoch, resume_at):
    """A run stopped after epoch k, its checkpoint loaded and fitted on with
    initial_epoch=k and a new Lookahead, ends bitwise where the uninterrupted run does."""
    x, y = _data()
    kw = dict(batch_size=8, epochs=4, verbose=0)

    def look():
        return callbacks.Lookahead(sync_period=3, max_decay=0.6, start_epoch=start_epoch)

    class StopAfter(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == resume_at:
                self.model.stop_training = True

    utils.set_random_seed(7)  # the same weights, and shuffle seed drawn at the first fit
    whole = _model()
    whole.fit(x, y, callbacks=[look()], **kw)
    utils.set_random_seed(7)
    stopped = _model()
    ckpt = str(tmp_path / "ckpt.keras")
    stopped.fit(x, y, callbacks=[look(), callbacks.ModelCheckpoint(ckpt), StopAfter()], **kw)
    resumed = models.load_model(ckpt)
    assert resumed.optimizer.iterations == resume_at * 5
    resumed.fit(x, y, initial_epoch=resume_at, callbacks=[look()], **kw)
    for a, b in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_lookahead_with_no_decay_changes_nothing():
    x, y = _data()
    a, b = _model(), _model()
    b.set_weights(a.get_weights())
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
          callbacks=[callbacks.Lookahead(max_decay=0.0, start_epoch=0)])
    b.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_lookahead_validation_sees_the_slow_weights():
    x, y = _data()
    seen = []

    class Probe(callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append([w.copy() for w in self.model.get_weights()])

    look = callbacks.Lookahead(sync_period=1, start_epoch=0)
    model = _model()
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0,
              validation_data=(x, y), callbacks=[look, Probe()])
    assert len(seen) == 2
    for a, b in zip(seen[-1], look.slow):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"sync_period": 0}, "sync_period must be an integer >= 1"),
    ({"sync_period": 2.5}, "sync_period must be an integer >= 1"),
    ({"start_epoch": -1}, "start_epoch must be an integer >= 0"),
    ({"max_decay": 1.5}, r"max_decay must be a number in \[0, 1\]"),
    ({"max_decay": float("nan")}, r"max_decay must be a number in \[0, 1\]"),
    ({"decay_power": -1}, "decay_power must be a number"),
    ({"decay_power": True}, "decay_power must be a number"),
])
def test_lookahead_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        callbacks.Lookahead(**kwargs)


def test_lookahead_needs_a_known_epoch_length():
    x, y = _data()

    def batches():
        for i in range(0, 40, 8):
            yield x[i:i + 8], y[i:i + 8]

    with pytest.raises(ValueError, match="Lookahead: the number of steps per epoch"):
        _model().fit(batches(), epochs=1, verbose=0, callbacks=[callbacks.Lookahead()])
