"""The Functional API: graphs of layer calls, merge and shape layers, shared layers, nested
models, configs, saving, and the plan. Gradients are checked against float64 finite
differences of a NumPy reference of the same graph; a residual model trains bitwise the same
at 1 and 2 threads; bad graphs raise ValueError naming the layers."""
import json

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses, models, optimizers, utils
from conftest import assert_close, fd_grad, num_threads


# ----------------------------------------------------------------------------- helpers
def model_grads(model, x, t):
    """{weight path: gradient} of the MSE loss at (x, t), weights unchanged (SGD, lr 0)."""
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse")
    model.train_on_batch(x, t)
    out = {}
    for layer in model.leaf_layers():
        for v, g in zip(layer.trainable_weights, layer.gradients):
            out[v.path] = np.array(g, dtype=np.float64)
    return out


def check_grads(model, x, t, ref, tol=2e-3):
    """Compare the model's gradients with finite differences of ``ref(params, x)`` (float64
    NumPy forward taking {weight path: array}), and the forward itself."""
    params = {v.path: v.numpy().astype(np.float64) for v in model.weights}
    want = ref(params, x.astype(np.float64))
    assert_close(model(x), want, 1e-4, 1e-5, "forward vs reference")
    grads = model_grads(model, x, t)
    assert set(grads) == {v.path for v in model.trainable_weights}

    def loss(path, value):
        p = dict(params)
        p[path] = value
        return float(np.mean((ref(p, x.astype(np.float64)) - t) ** 2))
    for path, g in grads.items():
        num = fd_grad(lambda v: loss(path, v), params[path])
        assert_close(g, num, tol, tol, "gradient of %s" % path)


def dense(p, name, x, relu=False):
    y = x @ p[name + "/kernel"] + p[name + "/bias"]
    return np.maximum(y, 0) if relu else y


def data(n=6, d=5, out=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)).astype(np.float32),
            rng.standard_normal((n, out)).astype(np.float64))


# ----------------------------------------------------------------------------- graphs
def test_fan_out_gradients_are_summed():
    utils.set_random_seed(1)
    inp = fastcnn.Input(shape=(5,))
    h = layers.Dense(4, activation="relu", name="h")(inp)
    a = layers.Dense(3, name="a")(h)          # h feeds a, b and the concatenation
    b = layers.Dense(3, name="b")(h)
    c = layers.Dense(3, name="c")(layers.concatenate([h, inp]))
    out = layers.add([a, b, c])
    model = fastcnn.Model(inp, out)

    def ref(p, x):
        hh = dense(p, "h", x, relu=True)
        cc = dense(p, "c", np.concatenate([hh, x], axis=-1))
        return dense(p, "a", hh) + dense(p, "b", hh) + cc
    x, t = data()
    check_grads(model, x, t, ref)


def test_shared_layer_has_one_set_of_weights_and_accumulates_gradients():
    utils.set_random_seed(2)
    inp = fastcnn.Input(shape=(5,))
    shared = layers.Dense(3, activation="relu", name="shared")
    left = shared(layers.Dense(5, name="l")(inp))
    right = shared(layers.Dense(5, name="r")(inp))
    out = layers.Dense(2, name="o")(layers.concatenate([left, right]))
    model = fastcnn.Model(inp, out)
    assert [l.name for l in model.layers].count("shared") == 1
    assert len([w for w in model.weights if w.path.startswith("shared/")]) == 2
    assert model.count_params() == 2 * (5 * 5 + 5) + (5 * 3 + 3) + (6 * 2 + 2)

    def ref(p, x):
        s = lambda z: dense(p, "shared", z, relu=True)  # noqa: E731
        return dense(p, "o", np.concatenate([s(dense(p, "l", x)), s(dense(p, "r", x))], -1))
    x, t = data(out=2)
    check_grads(model, x, t, ref)


MERGES = {
    "add": (layers.Add, lambda a, b: a + b),
    "subtract": (layers.Subtract, lambda a, b: a - b),
    "multiply": (layers.Multiply, lambda a, b: a * b),
    "average": (layers.Average, lambda a, b: (a + b) / 2),
    "maximum": (layers.Maximum, np.maximum),
    "minimum": (layers.Minimum, np.minimum),
    "concatenate": (layers.Concatenate, lambda a, b: np.concatenate([a, b], -1)),
}


@pytest.mark.parametrize("kind", sorted(MERGES))
def test_each_merge_layer_forward_and_gradients(kind):
    cls, fn = MERGES[kind]
    utils.set_random_seed(3)
    inp = fastcnn.Input(shape=(5,))
    a = layers.Dense(4, name="a")(inp)
    b = layers.Dense(4, name="b")(inp)
    out = layers.Dense(3, name="o")(cls()([a, b]))
    model = fastcnn.Model(inp, out)

    def ref(p, x):
        return dense(p, "o", fn(dense(p, "a", x), dense(p, "b", x)))
    x, t = data(seed=4)
    check_grads(model, x, t, ref)


def test_functional_forms_and_shape_layers():
    utils.set_random_seed(5)
    inp = fastcnn.Input(shape=(4, 5, 2))
    x = layers.ZeroPadding2D(((1, 2), (0, 1)))(inp)       # (7, 6, 2)
    x = layers.Conv2D(3, 3, name="conv")(x)               # (5, 4, 3)
    x = layers.Cropping2D(((1, 0), (1, 1)))(x)            # (4, 2, 3)
    x = layers.Reshape((-1, 3))(x)                        # (8, 3)
    x = layers.Identity()(x)
    y = layers.subtract([x, layers.multiply([x, x])])
    out = layers.Flatten()(layers.maximum([y, layers.minimum([x, y])]))
    model = fastcnn.Model(inp, layers.Dense(2, name="o")(out))
    assert model.output_shape == (None, 2)

    def conv(p, z):
        k, bias = p["conv/kernel"], p["conv/bias"]
        n, h, w, _ = z.shape
        o = np.zeros((n, h - 2, w - 2, k.shape[3]))
        for i in range(h - 2):
            for j in range(w - 2):
                o[:, i, j] = np.einsum("nabc,abcf->nf", z[:, i:i + 3, j:j + 3], k)
        return o + bias

    def ref(p, z):
        z = np.pad(z, ((0, 0), (1, 2), (0, 1), (0, 0)))
        z = conv(p, z)[:, 1:, 1:-1].reshape(z.shape[0], -1, 3)
        yy = z - z * z
        return dense(p, "o", np.maximum(yy, np.minimum(z, yy)).reshape(z.shape[0], -1))
    rng = np.random.default_rng(6)
    xs = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    t = rng.standard_normal((3, 2))
    check_grads(model, xs, t, ref)


def test_multi_input_model_runs_on_a_list():
    utils.set_random_seed(6)
    a, b = fastcnn.Input(shape=(3,), name="a"), fastcnn.Input(shape=(3,), name="b")
    model = fastcnn.Model([a, b], layers.Dense(2, name="d")(layers.concatenate([a, b])))
    assert [l.name for l in model.layers][:2] == ["a", "b"] and len(model.inputs) == 2
    xa, xb = np.ones((4, 3), np.float32), np.arange(12, dtype=np.float32).reshape(4, 3)
    w = model.get_layer("d").get_weights()
    assert_close(model([xa, xb]), np.concatenate([xa, xb], -1) @ w[0] + w[1])
    with pytest.raises(ValueError, match="2 inputs"):
        model(xa)
    with pytest.raises(ValueError, match="one input and one output"):
        model.compile("sgd", "mse")
        model.fit(xa, np.zeros((4, 2)), verbose=0)


# ----------------------------------------------------------------------------- nesting
def test_nested_sequential_and_frozen_submodel():
    utils.set_random_seed(7)
    block = models.Sequential([layers.Dense(4, activation="relu"), layers.Dense(4)],
                              name="block")
    inp = fastcnn.Input(shape=(5,))
    out = layers.Dense(3, name="head")(block(inp))
    model = fastcnn.Model(inp, out)
    assert model.get_layer("block") is block and block.built
    assert model.count_params() == (5 * 4 + 4) + (4 * 4 + 4) + (4 * 3 + 3)
    d0, d1 = block.layers

    def ref(p, x):
        h = dense(p, d0.name, x, relu=True)
        return dense(p, "head", dense(p, d1.name, h))
    x, t = data(seed=8)
    check_grads(model, x, t, ref)

    block.trainable = False
    assert not d0.trainable and len(model.trainable_weights) == 2
    before = block.get_weights()
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, t, epochs=2, batch_size=3, verbose=0)
    assert all(np.array_equal(u, v) for u, v in zip(before, block.get_weights()))


def test_data_augmentation_submodel_in_both_apis():
    """Keras' tutorials: data_augmentation = Sequential([...]) used as the first layer of a
    Sequential and of a functional model; identity at inference, active while training."""
    utils.set_random_seed(9)
    aug = models.Sequential([layers.RandomFlip("horizontal")], name="data_augmentation")
    seq = models.Sequential([layers.Input(shape=(6, 6, 2)), aug, layers.Flatten(),
                             layers.Dense(3)])
    inp = fastcnn.Input(shape=(6, 6, 2))
    fun = fastcnn.Model(inp, layers.Dense(3)(layers.Flatten()(aug(inp))))
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 2)).astype(np.float32)
    for model in (seq, fun):
        flat_w = model.layers[-1].get_weights()
        assert_close(model(x), x.reshape(4, -1) @ flat_w[0] + flat_w[1])
        model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    assert [p.layers for p in seq.plan()][0] == (aug.layers[0].name,)


# ----------------------------------------------------------------------------- residual model
def residual_model():
    inp = fastcnn.Input(shape=(8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same")(inp)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    y = layers.Conv2D(6, 3, padding="same")(x)
    y = layers.BatchNormalization()(y)
    x = layers.Activation("relu")(layers.add([x, y]))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return fastcnn.Model(inp, layers.Dense(4)(x), name="residual")


def test_residual_model_plan_and_bitwise_training_at_1_and_2_threads():
    rng = np.random.default_rng(10)
    x = rng.uniform(0, 1, (40, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 40)
    weights = []
    for threads in (1, 2):
        with num_threads(threads):
            utils.set_random_seed(11)
            model = residual_model()
            assert "add_relu" in [s.kind for s in model.plan()]
            model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            model.fit(x, y, epochs=2, batch_size=8, verbose=0)
            weights.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_fusion_off_gives_the_same_training():
    rng = np.random.default_rng(12)
    x = rng.uniform(0, 1, (16, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    results = []
    for fuse in (True, False):
        utils.set_random_seed(13)
        model = residual_model()
        model.fuse_kernels = fuse
        model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
        results.append(model.get_weights())
    for a, b in zip(*results):
        assert_close(a, b, 1e-4, 1e-5, "weights")


# ----------------------------------------------------------------------------- config / saving
def test_config_is_keras_functional_format_and_round_trips():
    utils.set_random_seed(14)
    model = residual_model()
    config = model.get_config()
    assert config["input_layers"] == [model.layers[0].name, 0, 0]
    add = [e for e in config["layers"] if e["class_name"] == "Add"][0]
    args = add["inbound_nodes"][0]["args"][0]
    assert [a["class_name"] for a in args] == ["__keras_tensor__"] * 2
    assert all(len(a["config"]["keras_history"]) == 3 for a in args)
    clone = fastcnn.Model.from_config(json.loads(json.dumps(config)))
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert clone.count_params() == model.count_params()
    again = models.model_from_json(model.to_json())
    assert again.get_config() == config


def test_save_load_round_trip_of_functional_and_nested_models(tmp_path):
    rng = np.random.default_rng(15)
    x = rng.uniform(0, 1, (12, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 12)
    utils.set_random_seed(16)
    inner = residual_model()
    inp = fastcnn.Input(shape=(8, 8, 3))
    outer = fastcnn.Model(inp, inner(layers.Rescaling(2.0)(inp)), name="outer")
    for model in (residual_model(), outer):
        model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        path = tmp_path / (model.name + ".keras")
        model.save(path)
        loaded = models.load_model(path)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
        h1 = model.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
        h2 = loaded.fit(x, y, epochs=1, batch_size=4, verbose=0, shuffle=False)
        assert h1.history["loss"] == h2.history["loss"]


def test_summary_has_connected_to_column():
    utils.set_random_seed(17)
    lines = []
    residual_model().summary(print_fn=lines.append, line_length=108)
    text = lines[0]
    assert "Connected to" in text and "batch_normalization" in text
    assert "[0][0]" in text
    assert "Total params:" in text
    lines = []
    model = residual_model()
    names = [l.name for l in model.layers]
    model.summary(print_fn=lines.append, line_length=120, show_trainable=True,
                  layer_range=[names[6], names[-1]])
    assert "Trainable" in lines[0] and names[1] + " (Conv2D)" not in lines[0]
    assert names[6] + " (Add)" in lines[0]


# ----------------------------------------------------------------------------- bad graphs
def test_bad_graphs_raise_value_errors_naming_the_layers():
    a = fastcnn.Input(shape=(4,), name="in_a")
    b = fastcnn.Input(shape=(4,), name="in_b")
    out = layers.add([layers.Dense(3, name="da")(a), layers.Dense(3, name="db")(b)])
    with pytest.raises(ValueError, match="Graph disconnected.*in_b"):
        fastcnn.Model(a, out)
    with pytest.raises(ValueError, match=r'"bad_add".*\(None, 3\) from layer "d3".*'
                                         r'\(None, 5\) from layer "d5"'):
        layers.Add(name="bad_add")([layers.Dense(3, name="d3")(a),
                                     layers.Dense(5, name="d5")(a)])
    img = fastcnn.Input(shape=(4, 4, 2))
    with pytest.raises(ValueError, match=r'Concatenate.*"cat".*\(None, 3, 3'):
        layers.Concatenate(name="cat")([img, layers.Conv2D(2, 2)(img)])
    shared = layers.Dense(2, name="shared_dense")
    shared(a)
    with pytest.raises(ValueError, match='"shared_dense".*expected axis -1.*4'):
        shared(fastcnn.Input(shape=(5,)))
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Add()(a)
    with pytest.raises(ValueError, match="fastcnn.Input"):
        fastcnn.Model(layers.Dense(2)(a), out)
    with pytest.raises(ValueError, match="used 2 times"):
        fastcnn.Model(a, layers.Dense(2, name="twin")(layers.Dense(4, name="twin")(a)))


def test_cycle_in_a_config_is_refused():
    utils.set_random_seed(18)
    inp = fastcnn.Input(shape=(3,), name="x")
    h = layers.Dense(3, name="h1")(inp)
    config = fastcnn.Model(inp, layers.Dense(3, name="h2")(h)).get_config()
    h1 = [e for e in config["layers"] if e["name"] == "h1"][0]
    # h1 now reads h2's output, which reads h1: a cycle
    h1["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["h2", 0, 0]
    with pytest.raises(ValueError, match="h1.*h2|cycle"):
        fastcnn.Model.from_config(config)


# ----------------------------------------------------------------------------- lean inference
def _through_hook(model, x):
    """The plan's ordinary forward (a hook turns the lean path off)."""
    return np.array(model.predict_step(x, hook=lambda phase, step, fn, *a: fn(*a)))


@pytest.mark.parametrize("make", ["tutorial", "strong", "resnet", "softmax"])
def test_lean_inference_path_is_bitwise_the_plan_forward(make):
    """model(x) / predict_on_batch / predict bind each step once per batch shape to a direct
    kernel call: the same bits as the checked path, before and after training (weights are
    updated in place, the bound calls see them) and for several batch shapes."""
    from fastcnn import zoo
    import gc
    import weakref
    utils.set_random_seed(19)
    S = 20 if make == "tutorial" else 16
    model = {"tutorial": lambda: zoo.tutorial_model(input_shape=(S, S, 3)),
             "strong": lambda: zoo.strong_model(input_shape=(S, S, 3), width=8),
             "resnet": lambda: zoo.resnet_v1(8, input_shape=(S, S, 3), width=4),
             "softmax": lambda: models.Sequential([
                 layers.Input(shape=(S, S, 3)), layers.Conv2D(4, 3, activation="relu"),
                 layers.MaxPooling2D(), layers.Dropout(0.5), layers.Flatten(),
                 layers.Dense(5, activation="softmax")])}[make]()
    rng = np.random.default_rng(20)
    x = rng.uniform(0, 1, (5, S, S, 3)).astype(np.float32)
    for n in (1, 5, 1):
        if n == 1:  # a single image may use im2col where auto picks Winograd
            assert_close(model(x[:n]), _through_hook(model, x[:n]), 1e-5, 1e-6, "batch 1")
        else:
            np.testing.assert_array_equal(model(x[:n]), _through_hook(model, x[:n]))
        np.testing.assert_array_equal(model.predict_on_batch(x[:n]), model(x[:n]))
    model.compile("adam", losses.SparseCategoricalCrossentropy(from_logits=make != "softmax"))
    model.fit(x, rng.integers(0, 5, 5), epochs=1, batch_size=2, verbose=0)
    np.testing.assert_array_equal(model(x), _through_hook(model, x))
    np.testing.assert_array_equal(model.predict(x[:4], batch_size=2, verbose=0),
                                  np.concatenate([_through_hook(model, x[i:i + 2])
                                                  for i in (0, 2)]))
    y = rng.uniform(0, 1, (1, S, S, 3)).astype(np.float32)
    ref = weakref.ref(y)
    model(y)
    del y
    gc.collect()
    assert ref() is None  # nothing keeps the caller's array
