"""Sequential: Keras' summary text, weights, fit/evaluate/predict semantics, determinism at 1 and
2 threads, flat memory, verbosity formats and every bad input raising a helpful error."""
import io
import json
import re
import sys
import tracemalloc

import numpy as np
import pytest

from fastcnn import layers, losses, models, optimizers, utils
from conftest import assert_close, num_threads


# ----------------------------------------------------------------------------- helpers
def blobs(n, size=8, classes=4, seed=0):
    """Images with a bright 3x3 blob at a class-dependent place: easily separable."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.uint8).reshape(-1, 1)
    x = rng.uniform(0, 60, size=(n, size, size, 3))
    for k in range(classes):
        r, c = divmod(k, 2)
        sel = y[:, 0] == k
        x[sel, 1 + 3 * r:4 + 3 * r, 1 + 3 * c:4 + 3 * c, k % 3] += 190
    return x / 255.0, y  # float64 in [0, 1], uint8 (N, 1) labels: like the tutorial


def small_cnn(size=8, classes=4, final_activation=None, extra=()):
    return models.Sequential([
        layers.Input(shape=(size, size, 3)),
        layers.Conv2D(6, 3, activation="relu"),
        layers.MaxPooling2D(),
        *extra,
        layers.Flatten(),
        layers.Dense(12, activation="relu"),
        layers.Dense(classes, activation=final_activation),
    ])


def compiled(model, optimizer="adam", loss=None, metrics=("accuracy",)):
    loss = loss or losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    return model


def tutorial_model():
    model = models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(32, 32, 3)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(10))
    return model


TUTORIAL_SUMMARY = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ conv2d (Conv2D)                 │ (None, 30, 30, 32)     │           896 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d (MaxPooling2D)    │ (None, 15, 15, 32)     │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_1 (Conv2D)               │ (None, 13, 13, 64)     │        18,496 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ max_pooling2d_1 (MaxPooling2D)  │ (None, 6, 6, 64)       │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ conv2d_2 (Conv2D)               │ (None, 4, 4, 64)       │        36,928 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ flatten (Flatten)               │ (None, 1024)           │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense (Dense)                   │ (None, 64)             │        65,600 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │           650 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 122,570 (478.79 KB)
 Trainable params: 122,570 (478.79 KB)
 Non-trainable params: 0 (0.00 B)
"""


# ----------------------------------------------------------------------------- summary / structure
def test_tutorial_summary_is_keras_text(capsys):
    utils.clear_session()
    model = tutorial_model()
    model.summary(line_length=76)
    assert capsys.readouterr().out == TUTORIAL_SUMMARY
    assert model.count_params() == 122570
    lines = []
    model.summary(line_length=76, print_fn=lines.append)
    assert lines == [TUTORIAL_SUMMARY.rstrip("\n")]
    assert [l.name for l in model.layers] == [
        "conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1", "conv2d_2", "flatten",
        "dense", "dense_1"]


def test_summary_unbuilt_with_bn_and_after_compile(capsys):
    utils.clear_session()
    model = models.Sequential([layers.Dense(4), layers.BatchNormalization()])
    model.summary(line_length=76)
    out = capsys.readouterr().out
    assert "│ dense (Dense)                   │ ?                      │   0 (unbuilt) │" in out
    assert "│ batch_normalization             │" in out and "│ (BatchNormalization)" in out
    model.build((None, 3))
    compiled(model, loss="mse", metrics=())
    model.fit(np.ones((4, 3)), np.ones((4, 4)), epochs=1, verbose=0)
    model.summary(line_length=76)
    out = capsys.readouterr().out
    assert " Total params: 52 (208.00 B)" not in out  # optimizer params are added, as Keras
    assert " Trainable params: 24 (96.00 B)" in out
    assert " Non-trainable params: 8 (32.00 B)" in out
    # Adam: iterations (int64) + learning_rate (float32) + m and v of the 24 trainable values
    assert " Optimizer params: 50 (204.00 B)" in out
    assert " Total params: 82 (332.00 B)" in out


def test_structure_weights_layouts_and_set_weights(rng):
    model = tutorial_model()
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 3, 3, 32), (32,), (3, 3, 32, 64), (64,),
                                          (3, 3, 64, 64), (64,), (1024, 64), (64,), (64, 10), (10,)]
    assert model.layers[0].kernel.shape == (3, 3, 3, 32)
    assert model.layers[-1].bias.shape == (10,)
    new = [rng.standard_normal(w.shape).astype(np.float32) for w in weights]
    model.set_weights(new)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), new))
    bad = list(new)
    bad[6] = bad[6].T
    with pytest.raises(ValueError, match=r"weight shape \(1024, 64\) is not compatible with "
                                         r"provided weight shape \(64, 1024\)"):
        model.set_weights(bad)
    assert np.array_equal(model.get_weights()[0], new[0])  # nothing half-assigned
    with pytest.raises(ValueError, match="length 3, but the model was expecting 10"):
        model.set_weights(new[:3])


def test_add_pop_input_and_build():
    model = models.Sequential(name="stack")
    model.add(layers.Dense(4, name="first"))
    assert not model.built
    with pytest.raises(ValueError, match="unique names.*'first'"):
        model.add(layers.Dense(2, name="first"))
    with pytest.raises(TypeError, match="Only instances of `fastcnn.layers.Layer`"):
        model.add("dense")
    with pytest.raises(ValueError, match="first layer"):
        model.add(layers.Input(shape=(3,)))
    model.add(layers.Dense(2))
    model.build((None, 3))
    assert model.built and model.output_shape == (None, 2) and model.count_params() == 26
    assert model.pop().output_shape == (None, 2) and len(model.layers) == 1
    m2 = models.Sequential([layers.Input(shape=(5, 5, 1)), layers.Conv2D(2, 3)])
    assert m2.built and m2.layers[0].output_shape == (None, 3, 3, 2)
    with pytest.raises(ValueError, match="too small"):
        m2.add(layers.Conv2D(2, 5))
    assert len(m2.layers) == 1  # the failed layer was not kept


def test_config_json_round_trip():
    model = small_cnn(extra=(layers.Dropout(0.2, seed=1), layers.BatchNormalization()))
    clone = models.model_from_json(model.to_json())
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert clone.get_config() == json.loads(model.to_json())["config"]
    assert clone.count_params() == model.count_params()


# ----------------------------------------------------------------------------- training
def test_fit_learns_a_separable_problem_with_tutorial_dtypes():
    utils.set_random_seed(1)
    x, y = blobs(640)
    assert x.dtype == np.float64 and y.dtype == np.uint8 and y.shape == (640, 1)
    model = compiled(small_cnn())
    hist = model.fit(x[:512], y[:512], epochs=4, batch_size=32,
                     validation_data=(x[512:], y[512:]), verbose=0)
    assert list(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(v) == 4 and all(type(f) is float for f in v) for v in hist.history.values())
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] > 0.9
    assert model.history is hist and hist.epoch == [0, 1, 2, 3]
    test_loss, test_acc = model.evaluate(x[512:], y[512:], verbose=0)
    assert test_acc > 0.9 and abs(test_loss - hist.history["val_loss"][-1]) < 1e-6
    logits = model.predict(x[512:], verbose=0)
    assert logits.dtype == np.float32 and logits.shape == (128, 4)
    assert abs((logits.argmax(1) == y[512:, 0]).mean() - test_acc) < 1e-9


def test_epoch_values_are_sample_weighted_means_over_the_epoch():
    # lr=0: weights never change, so the epoch's running means must equal evaluate() over the
    # same samples, even with a last partial batch (70 = 2*32 + 6).
    x, y = blobs(70, seed=3)
    model = compiled(small_cnn(), optimizer=optimizers.SGD(learning_rate=0.0))
    hist = model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    loss, acc = model.evaluate(x, y, batch_size=7, verbose=0)
    assert abs(hist.history["loss"][0] - loss) < 1e-5 and hist.history["accuracy"][0] == acc
    assert hist.history["loss"][0] == hist.history["loss"][1]
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(d) == {"accuracy", "loss"} and abs(d["loss"] - loss) < 1e-5


def test_validation_split_takes_the_last_samples():
    x, y = blobs(50, seed=4)
    model = compiled(small_cnn(), optimizer=optimizers.SGD(learning_rate=0.0))
    hist = model.fit(x, y, validation_split=0.2, epochs=1, verbose=0)
    assert abs(hist.history["val_loss"][0] - model.evaluate(x[40:], y[40:], verbose=0)[0]) < 1e-6


def test_softmax_output_with_keras_default_loss_trains_like_logits():
    """Dense(softmax) + SparseCategoricalCrossentropy() (from_logits=False) is trained through
    the fused softmax-cross-entropy kernel: bitwise the same weights as Dense(linear) +
    from_logits=True, while predict() returns probabilities."""
    x, y = blobs(96, seed=5)
    runs = {}
    for final, loss in (("softmax", "sparse_categorical_crossentropy"),
                        (None, losses.SparseCategoricalCrossentropy(from_logits=True))):
        utils.set_random_seed(7)
        model = compiled(small_cnn(final_activation=final), loss=loss)
        model.fit(x, y, epochs=2, verbose=0)
        runs[final] = model
    assert all(np.array_equal(a, b) for a, b in
               zip(runs["softmax"].get_weights(), runs[None].get_weights()))
    probs = runs["softmax"].predict(x[:5], verbose=0)
    logits = runs[None].predict(x[:5], verbose=0)
    e = np.exp(logits - logits.max(1, keepdims=True))
    assert_close(probs, e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_categorical_labels_mse_and_accuracy_resolution():
    x, y = blobs(64, seed=6)
    onehot = utils.to_categorical(y, 4)
    model = compiled(small_cnn(final_activation="softmax"), loss="categorical_crossentropy",
                     metrics=["acc"])
    hist = model.fit(x, onehot, epochs=3, verbose=0)
    assert set(hist.history) == {"acc", "loss"}
    loss, acc = model.evaluate(x, onehot, verbose=0)
    assert abs(acc - (model.predict(x, verbose=0).argmax(1) == y[:, 0]).mean()) < 1e-9
    reg = compiled(small_cnn(), loss="mse", metrics=["mae"])
    h = reg.fit(x, onehot, epochs=4, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0] and "mae" in h.history


def test_training_is_bitwise_identical_at_1_and_2_threads():
    """Same seed -> bitwise identical weights whether the kernels run on 1 or 2 threads."""
    x, y = blobs(80, seed=8)
    results = []
    for threads in (1, 2):
        with num_threads(threads):
            utils.set_random_seed(21)
            model = compiled(small_cnn(extra=(layers.BatchNormalization(),
                                              layers.Dropout(0.3))))
            model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
            results.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*results))


def _one_sgd_step(model, x, y):
    """The weights after one SGD(learning_rate=1) step from fixed weights: equal results mean
    equal gradients."""
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)
    return model.get_weights()


def _kinds(model):
    return [step.kind for step in model.plan()]


@pytest.mark.parametrize("pool", [
    layers.MaxPooling2D(), layers.MaxPooling2D(3, strides=2, padding="same"),
    layers.MaxPooling2D(3, strides=1)])
def test_relu_maxpool_backward_fusion_gives_the_unfused_gradients(pool):
    """Conv2D(relu) -> MaxPooling2D: the pool applies ReLU's mask; gradients are unchanged."""
    x, y = blobs(12, size=9, seed=3)
    x = x.astype(np.float32)
    results = []
    for fuse in (True, False):
        utils.set_random_seed(3)
        model = models.Sequential([
            layers.Input(shape=(9, 9, 3)), layers.Conv2D(5, 3, activation="relu"), pool,
            layers.Conv2D(7, 2, padding="same", activation="relu"), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(4)])
        model.fuse_kernels = fuse
        if fuse:
            first = (["conv2d_relu_max_pool2d[direct]"] if pool.strides == pool.pool_size
                     else ["Conv2D+relu_backward", "MaxPooling2D+relu_backward"])
            assert _kinds(model) == first + ["conv2d_relu_max_pool2d[direct]", "Flatten",
                                             "Dense"]
        else:
            assert _kinds(model) == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D",
                                     "Flatten", "Dense"]
        results.append(_one_sgd_step(model, x, y))
    for a, b in zip(*results):
        assert_close(a, b, 1e-5, 1e-5, "weights after one step")
    with pytest.raises(ValueError, match="fused_relu"):
        model.layers[-1].backward(np.zeros((12, 4), np.float32), fused_relu=True)


def test_relu_layer_between_conv_and_pool_is_fused_and_exact():
    """Conv2D (no activation) -> ReLU layer -> MaxPooling2D (the strong model's order without
    BN) runs as one fused step; Conv2D -> BN -> ReLU runs as conv + batch norm with the ReLU
    inside (folded into the conv at inference). The same predictions (up to the folding's
    rounding) and the same one-step gradients as unfused."""
    x, y = blobs(10, size=9, seed=4)
    x = x.astype(np.float32)
    results = []
    for fuse in (True, False):
        utils.set_random_seed(8)
        model = models.Sequential([
            layers.Input(shape=(9, 9, 3)), layers.Conv2D(6, 3), layers.ReLU(),
            layers.MaxPooling2D(), layers.Conv2D(5, 2, padding="same", use_bias=False),
            layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(4)])
        model.fuse_kernels = fuse
        if fuse:
            names = tuple(l.name for l in model.layers[:3])
            assert model.plan()[0] == ("conv2d_relu_max_pool2d[direct]", names)
            assert _kinds(model)[1:3] == ["conv2d_batch_norm_relu", "MaxPooling2D"]
        out = model.predict(x, verbose=0)
        results.append((out, _one_sgd_step(model, x, y)))
    assert_close(results[0][0], results[1][0], 1e-5, 1e-6, "predictions")
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(a, b, 1e-5, 1e-5, "weights after one step")


def _conv_pool_model(pool, kernel=2, padding="valid"):
    return compiled(models.Sequential([
        layers.Input(shape=(12, 11, 3)),
        layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),     # direct (first)
        layers.Conv2D(8, kernel, padding=padding, activation="relu"), pool,
        layers.Flatten(), layers.Dense(4)]))


@pytest.mark.parametrize("pool,kernel,mode", [
    (layers.MaxPooling2D(), 2, "direct"),          # 2*2*16 = 64: one fused kernel
    (layers.MaxPooling2D((2, 1)), 2, "direct"),
    (layers.MaxPooling2D(), 3, "crop"),            # 3x3 output: the conv skips row/col 2
    (layers.MaxPooling2D((2, 1)), 3, "crop"),
    (layers.MaxPooling2D((3, 2)), 3, "relu"),        # 3x2 output: nothing to skip
    (layers.MaxPooling2D(2, strides=1), 2, "relu"),  # overlapping windows: ReLU only
    (layers.MaxPooling2D(padding="same"), 2, "relu"),
])
def test_conv_pool_fusion_matches_the_layer_by_layer_model(pool, kernel, mode):
    """Conv2D(relu) + MaxPooling2D(pool == strides, valid) run together ('direct': one
    kernel; 'crop': the conv computes only what the pool reads; 'relu': only ReLU's backward
    fused), the first pair without an input gradient, the second with one: same outputs,
    same training up to summation order, as the model run layer by layer."""
    x, y = blobs(24, size=12, seed=5)
    x = x[:, :, :11].astype(np.float32)
    second = (["Conv2D+relu_backward", "MaxPooling2D+relu_backward"] if mode == "relu"
              else ["conv2d_relu_max_pool2d[%s]" % mode])
    results = []
    for fuse in (True, False):
        utils.set_random_seed(4)
        model = _conv_pool_model(pool, kernel)
        model.fuse_kernels = fuse
        out0 = model.predict(x, verbose=0)
        assert _kinds(model) == (["conv2d_relu_max_pool2d[direct]"] + second
                                 + ["Flatten", "Dense"] if fuse else
                                 ["Conv2D", "MaxPooling2D"] * 2 + ["Flatten", "Dense"])
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        results.append((out0, model.predict(x, verbose=0), model.get_weights()))
    np.testing.assert_array_equal(results[0][0], results[1][0])  # same kernels, same bits
    assert_close(results[0][1], results[1][1], 1e-4, 1e-4, "predictions after training")
    for a, b in zip(results[0][2], results[1][2]):
        assert_close(a, b, 1e-4, 1e-4, "weights after training")


def test_conv_pool_fusion_trains_bitwise_identically_at_1_and_2_threads():
    x, y = blobs(40, size=12, seed=6)
    x = x[:, :, :11]
    weights = []
    for threads in (1, 2):
        with num_threads(threads):
            utils.set_random_seed(9)
            model = _conv_pool_model(layers.MaxPooling2D(), kernel=3)
            model.fit(x, y, epochs=2, batch_size=16, verbose=0)
            assert _kinds(model)[:2] == ["conv2d_relu_max_pool2d[direct]",
                                         "conv2d_relu_max_pool2d[crop]"]
            weights.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


@pytest.mark.parametrize("batch", [8, 160])
def test_winograd_crop_pool_runs_fused_and_matches_the_layer_by_layer_model(batch):
    """A 'crop' pair whose conv is Winograd (16 -> 8 channels, 5x5 output, the pool reads
    4x4) pools inside the Winograd output transform (F(2x2) tiles at batch 8, F(4x4) at
    160): the same forward (bitwise with F(2x2) tiles, which the layer-by-layer model's
    5x5 conv also uses) and the same training as the model run layer by layer."""
    from fastcnn import _ext
    x, y = blobs(2 * batch, size=16, seed=7)
    # the fused kernel's tile size for a 4x4 crop of the 7x7x16 -> 5x5x8 conv
    assert _ext.conv2d_winograd_relu_maxpool2_tile((batch, 7, 7, 16), (3, 3, 16, 8), (0, 0),
                                                   (4, 4)) == (2 if batch == 8 else 4)
    results = []
    for fuse in (True, False):
        utils.set_random_seed(5)
        model = compiled(models.Sequential([
            layers.Input(shape=(16, 16, 3)),
            layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),  # direct
            layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),   # crop, Winograd
            layers.Flatten(), layers.Dense(4)]))
        model.fuse_kernels = fuse
        out0 = model.predict(x, batch_size=batch, verbose=0)
        model.fit(x, y, epochs=2, batch_size=batch, verbose=0, shuffle=False)
        if fuse:
            assert _kinds(model)[:2] == ["conv2d_relu_max_pool2d[direct]",
                                         "conv2d_relu_max_pool2d[crop]"]
        results.append((out0, model.predict(x, batch_size=batch, verbose=0),
                        model.get_weights()))
    if batch == 8:
        np.testing.assert_array_equal(results[0][0], results[1][0])
    assert_close(results[0][0], results[1][0], 1e-5, 1e-5, "predictions")
    assert_close(results[0][1], results[1][1], 1e-4, 1e-4, "predictions after training")
    for a, b in zip(results[0][2], results[1][2]):
        assert_close(a, b, 1e-4, 1e-4, "weights after training")


def test_frozen_first_pair_is_not_visited_by_backward():
    """A 'relu' pair passes the mask to the pool; a frozen first pair is not run backward at
    all (its kernels keep their bits and training still works)."""
    model = compiled(models.Sequential([
        layers.Input(shape=(8, 8, 3)), layers.Conv2D(4, 3, activation="relu"),
        layers.MaxPooling2D(2, strides=1),                     # overlapping: 'relu'
        layers.Conv2D(9, 3, activation="relu"), layers.MaxPooling2D(),   # 3x3 -> 'direct'
        layers.Flatten(), layers.Dense(4)]))
    assert _kinds(model) == ["Conv2D+relu_backward", "MaxPooling2D+relu_backward",
                             "conv2d_relu_max_pool2d[direct]", "Flatten", "Dense"]
    x, y = blobs(6, seed=2)
    rows = model.profile(x, y, repeats=1, warmup=0, peak_gflops=1.0)
    assert rows[0].backward_ms is not None and rows[1].backward_ms is not None
    assert rows[2].backward_flop == 2 * rows[2].forward_flop  # kernel and input gradients
    model.layers[0].trainable = False
    before = model.layers[0].get_weights()
    rows = model.profile(x, y, repeats=1, warmup=0, peak_gflops=1.0)
    # the frozen pair runs no backward at all, and the next pair (now the first trainable
    # one) computes its kernel gradient only, no input gradient
    assert rows[0].backward_ms is None and rows[1].backward_ms is None
    assert rows[2].backward_ms is not None and rows[2].backward_flop == rows[2].forward_flop
    model.fit(x, y, epochs=1, batch_size=3, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.layers[0].get_weights()))


def test_same_seed_same_run_other_seed_differs():
    x, y = blobs(48, seed=9)
    out = []
    for seed in (3, 3, 4):
        utils.set_random_seed(seed)
        model = compiled(small_cnn(extra=(layers.Dropout(0.5),)))
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        out.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(out[0], out[1]))
    assert not np.array_equal(out[0][0], out[2][0])


def test_buffers_are_reused_and_memory_stays_flat():
    x, y = blobs(100, seed=10)
    model = compiled(small_cnn())
    model.fit(x, y, epochs=1, batch_size=32, validation_data=(x[:30], y[:30]), verbose=0)

    def arrays():
        return {id(a) for a in model.buffers()}
    before = arrays()
    tracemalloc.start()
    try:
        model.fit(x, y, epochs=1, batch_size=32, validation_data=(x[:30], y[:30]), verbose=0)
        first = tracemalloc.get_traced_memory()[0]
        model.fit(x, y, epochs=3, batch_size=32, validation_data=(x[:30], y[:30]), verbose=0)
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert arrays() == before  # the very same buffers, no new ones
    assert abs(second - first) < 64 * 1024, (first, second)


def test_batch_methods_and_call():
    x, y = blobs(40, seed=11)
    model = compiled(small_cnn())
    loss0 = model.test_on_batch(x[:16], y[:16])[0]
    res = model.train_on_batch(x[:16], y[:16], return_dict=True)
    assert set(res) == {"accuracy", "loss"} and abs(res["loss"] - loss0) < 1e-5
    assert model.optimizer.iterations == 1
    assert model.test_on_batch(x[:16], y[:16])[0] < loss0
    out = model.predict_on_batch(x[:3])
    assert out.dtype == np.float32 and out.shape == (3, 4)
    assert_close(model(x[:3]), out)
    model.compile(optimizer="sgd", loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    assert isinstance(model.evaluate(x, y, verbose=0), float)  # no metrics: the scalar loss


def test_models_with_every_layer_kind_train():
    x, y = blobs(64, seed=12)
    model = models.Sequential([
        layers.Input(shape=(8, 8, 3)),
        layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(), layers.ReLU(),
        layers.AveragePooling2D(), layers.Conv2D(6, 3, strides=2, padding="same",
                                                 activation="relu"),
        layers.Dropout(0.2), layers.GlobalAveragePooling2D(), layers.Dense(4),
        layers.Activation("softmax")])
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.layers[1].moving_mean.numpy()
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert not np.array_equal(model.layers[1].moving_mean.numpy(), before)
    p = model.predict(x[:4], verbose=0)
    assert_close(p.sum(1), np.ones(4), rtol=1e-5, atol=1e-5)
    assert np.array_equal(p, model.predict(x[:4], verbose=0))  # inference is deterministic


# ----------------------------------------------------------------------------- verbosity
class _TTY(io.StringIO):
    def isatty(self):
        return True


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = blobs(40, seed=13)
    model = compiled(small_cnn())
    model.fit(x, y, epochs=2, batch_size=16, validation_data=(x, y), verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[2] == "Epoch 2/2" and len(out) == 4
    assert re.fullmatch(r"3/3 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: \d\.\d{4}"
                        r" - val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}", out[1]), out[1]
    model.evaluate(x, y, verbose=2)
    line = capsys.readouterr().out
    assert re.fullmatch(r"2/2 - \d+s - \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: "
                        r"\d\.\d{4}\n", line), line
    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_1_progress_bar_pipe_and_tty(capsys, monkeypatch):
    x, y = blobs(40, seed=14)
    model = compiled(small_cnn())
    model.fit(x, y, epochs=1, batch_size=8)  # stdout is not a TTY here: final line only
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    assert re.fullmatch(r"5/5 ━{20} \d+s \d+(ms|us|s)/step - accuracy: \d\.\d{4} - loss: "
                        r"\d\.\d{4}\n", out), out
    tty = _TTY()
    monkeypatch.setattr(sys, "stdout", tty)
    model.fit(x, y, epochs=2, batch_size=8)
    text = tty.getvalue()
    assert text.startswith("Epoch 1/2\n") and "\rx" not in text
    assert "\r\x1b[1m5/5\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m" in text
    assert text.count("\n") == 4


# ----------------------------------------------------------------------------- bad input
@pytest.fixture
def trained():
    x, y = blobs(40, seed=15)
    model = compiled(small_cnn())
    return model, x, y


def test_bad_inputs_raise_helpful_errors(trained):
    model, x, y = trained
    with pytest.raises(ValueError, match=r'layer "conv2d.*" is incompatible.*expected '
                                         r'shape=\(None, 8, 8, 3\), found shape=\(None, 8, 8, 1\)'):
        model.fit(x[..., :1], y, verbose=0)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 8, 8, 3\)"):
        model.predict(np.zeros((2, 9, 9, 3)), verbose=0)
    with pytest.raises(ValueError, match=r"cardinality.*'x' sizes: 40.*'y' sizes: 39"):
        model.fit(x, y[:39], verbose=0)
    with pytest.raises(ValueError, match=r"class ids in \[0, 4\].*outputs 4 classes"):
        model.fit(x, np.where(y == 3, 4, y), verbose=0)
    with pytest.raises(ValueError, match=r"class ids in \[-1"):
        model.evaluate(x, y.astype(np.int64) - 1, verbose=0)
    bad = x.copy()
    bad[7, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values.*sample 7"):
        model.fit(bad, y, verbose=0)
    bad[7, 1, 2, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match="validation_data x contains NaN or infinite"):
        model.fit(x, y, validation_data=(bad, y), verbose=0)
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["a"] * 3] * 2), verbose=0)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer. Received batch_size=0"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="one-hot labels use CategoricalCrossentropy"):
        model.fit(x, utils.to_categorical(y, 4), verbose=0)
    with pytest.raises(ValueError, match="sample_weight has 39 entries"):
        model.fit(x, y, sample_weight=np.ones(39), verbose=0)


def test_unknown_names_and_missing_compile_or_build():
    model = small_cnn()
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'. Valid names: adadelta, "
                                         "adagrad, adam, adamax, adamw, ftrl"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="Unknown loss 'sparse_crossentropy'. Valid names:.*"
                                         "sparse_categorical_crossentropy"):
        model.compile(optimizer="adam", loss="sparse_crossentropy")
    with pytest.raises(ValueError, match="Unknown metric 'accuracyy'.*accuracy"):
        model.compile(optimizer="adam", loss="mse", metrics=["accuracyy"])
    fresh = small_cnn()
    x, y = blobs(8)
    with pytest.raises(RuntimeError, match="must call `compile\\(\\)`.*fit"):
        fresh.fit(x, y)
    with pytest.raises(RuntimeError, match="compile.*evaluate"):
        fresh.evaluate(x, y)
    unbuilt = models.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="has not been built.*input shape"):
        unbuilt.predict(np.ones((2, 4)))
    with pytest.raises(ValueError, match="count_params.*isn't built"):
        unbuilt.count_params()
    unbuilt.compile("adam", "mse")
    unbuilt.fit(np.ones((4, 4)), np.ones((4, 3)), verbose=0)  # fit builds from the data
    assert unbuilt.built and unbuilt.input_shape == (None, 4)
    with pytest.raises(ValueError, match="without a loss"):
        m = small_cnn()
        m.compile(optimizer="adam")
        m.fit(x, y)
