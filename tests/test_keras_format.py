"""`.keras` and `.weights.h5` in Keras 3's own format (fastcnn/saving/keras_v3.py).

(a) files written by Keras 3 (tests/fixtures/keras, made by make_fixtures.py there) load in
    fastcnn: same predictions, optimizer state restored so one more training step matches
    the step Keras took; fastcnn writes the same layout;
(b) live round trips with real Keras 3 (JAX backend) when it is installed: save with each
    library, load with the other, for the tutorial model, a ResNet-style model, a nested
    model, every optimizer fastcnn has and every layer class fastcnn registers;
(c) files are data: Lambda layers and custom classes are refused (custom classes load only
    with safe_mode=False and custom_objects), damaged files raise ValueError naming the file;
(d) fastcnn's resume state travels in an entry Keras ignores: exact resumption.
"""
import importlib.util
import io
import json
import os
import zipfile

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, models, optimizers, utils
from fastcnn.saving import keras_v3, native

h5py = pytest.importorskip("h5py")

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures", "keras")
_spec = importlib.util.spec_from_file_location("keras_fixtures",
                                               os.path.join(FIXTURES, "make_fixtures.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)
FC = fx.library(fastcnn)


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover - another backend preselected
        pytest.skip("the Keras round trips run on the JAX backend")
    return keras


def assert_rel(a, b, tol=1e-5):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-6)
    assert np.abs(a - b).max() <= tol * scale, np.abs(a - b).max() / scale


def assert_weights_close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def h5_layout(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(
        name, tuple(obj.shape) if isinstance(obj, h5py.Dataset) else None))
    return out


def zip_h5(path):
    with zipfile.ZipFile(path) as zf:
        return h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")


def sparse_loss():
    return fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True)


# ====================================================================== (a) Keras' files
@pytest.mark.parametrize("name", sorted(fx.FIXTURES))
def test_keras_written_file_predicts_and_takes_the_same_next_step(name):
    expected = np.load(os.path.join(FIXTURES, name + ".expected.npz"))
    model = models.load_model(os.path.join(FIXTURES, name + ".keras"))
    assert_rel(model.predict(expected["x"], verbose=0), expected["pred"])
    opt_name = fx.FIXTURES[name][1]
    assert type(model.optimizer).__name__ == opt_name
    assert model.optimizer.iterations == 1
    assert model.metrics_names == ["loss", "accuracy"]
    model.train_on_batch(expected["x"], expected["y"])
    assert_weights_close(model.get_weights(),
                         [expected["after_%d" % i] for i in range(len(model.get_weights()))])


def test_keras_weights_file_loads_into_the_same_architecture():
    expected = np.load(os.path.join(FIXTURES, "tutorial.expected.npz"))
    model = fx.tutorial(FC)
    model.load_weights(os.path.join(FIXTURES, "tutorial.weights.h5"))
    assert_rel(model.predict(expected["x"], verbose=0), expected["pred"])
    other = fx.tutorial(FC)  # a .keras file holds the weights too
    other.load_weights(os.path.join(FIXTURES, "tutorial.keras"))
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), model.get_weights()))


@pytest.mark.parametrize("name", sorted(fx.FIXTURES))
def test_fastcnn_writes_the_layout_keras_writes(tmp_path, name):
    build, opt = fx.FIXTURES[name]
    keras_path = os.path.join(FIXTURES, name + ".keras")
    model = build(FC)
    model.compile(optimizer=getattr(optimizers, opt)(**fx.OPTIMIZERS[opt]), loss=sparse_loss(),
                  metrics=["accuracy"])
    x, y = fx.data(model.input_shape, model.output_shape[-1], vocab=fx.VOCAB.get(name))
    model.train_on_batch(x, y)
    model.save(tmp_path / "m.keras")
    with zip_h5(keras_path) as theirs, zip_h5(tmp_path / "m.keras") as ours:
        assert h5_layout(ours) == h5_layout(theirs)
        assert ours["layers"].keys() == theirs["layers"].keys()
    with zipfile.ZipFile(keras_path) as a, zipfile.ZipFile(tmp_path / "m.keras") as b:
        theirs, ours = json.loads(a.read("config.json")), json.loads(b.read("config.json"))
        meta = json.loads(b.read("metadata.json"))
    assert set(meta) >= {"keras_version", "date_saved"}

    def skeleton(c):
        """Each serialized object's (module, class_name, registered_name), in order, and
        where layers come from (names differ between two runs, node indices do not)."""
        out = []

        def walk(v):
            if isinstance(v, dict):
                if "class_name" in v and "module" in v:
                    out.append((v["module"], v["class_name"], v.get("registered_name")))
                if "keras_history" in v:
                    out.append(("history", v["keras_history"][1:]))
                for k in sorted(v):
                    if k not in ("shared_object_id", "name"):
                        walk(v[k])
            elif isinstance(v, list):
                for item in v:
                    walk(item)
        walk(c)
        return out
    assert skeleton(ours) == skeleton(theirs)
    assert ours["compile_config"]["optimizer"]["config"].keys() == \
        theirs["compile_config"]["optimizer"]["config"].keys()


def test_weights_files_carry_the_optimizer_state_as_keras_does(tmp_path):
    x, y = fx.data((None, 8, 8, 3))
    model = fx.bn_dropout(FC, 0.0)
    model.compile(optimizer=optimizers.Adam(0.01), loss=sparse_loss())
    model.train_on_batch(x, y)
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r") as f:
        assert f["optimizer/vars"].attrs["name"] == "adam" and len(f["optimizer/vars"]) == 12
    same = fx.bn_dropout(FC, 0.0)
    same.compile(optimizer=optimizers.Adam(0.01), loss=sparse_loss())
    same.load_weights(tmp_path / "w.weights.h5")
    assert same.optimizer.iterations == 1
    model.train_on_batch(x, y)
    same.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), same.get_weights()))
    other = fx.bn_dropout(FC, 0.0)
    other.compile(optimizer=optimizers.RMSprop(), loss=sparse_loss())
    other.train_on_batch(x, y)
    with pytest.warns(UserWarning, match="optimizer state was not restored"):
        other.load_weights(tmp_path / "w.weights.h5")
    plain = fx.bn_dropout(FC, 0.0)  # not compiled: the optimizer state is ignored
    plain.load_weights(tmp_path / "w.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), plain.get_weights()))
    assert other.optimizer.iterations == 1


def test_a_sequential_built_without_input_layer_round_trips(tmp_path):
    model = models.Sequential([layers.Dense(3)])
    model.build((None, 5))
    model.save(tmp_path / "m.keras")
    x = np.ones((2, 5), np.float32)
    assert np.array_equal(models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                          model.predict(x, verbose=0))


def test_older_fastcnn_files_still_load(tmp_path):
    model = fx.bn_dropout(FC)
    model.compile(optimizer="adam", loss=sparse_loss())
    x, y = fx.data(model.input_shape)
    model.train_on_batch(x, y)
    native.save_model(model, tmp_path / "old.keras")
    native.save_weights(model, tmp_path / "old.weights.h5")
    loaded = models.load_model(tmp_path / "old.keras")
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.iterations == 1
    other = fx.bn_dropout(FC)
    other.load_weights(tmp_path / "old.weights.h5")
    assert np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


# ====================================================================== (d) resumption
def test_resume_state_travels_and_fit_continues_bitwise(tmp_path):
    def build():
        utils.set_random_seed(5)
        inputs = layers.Input(shape=(8, 8, 3))
        x = layers.RandomFlip()(inputs)
        x = layers.Conv2D(4, 3, activation="relu")(x)
        x = layers.Dropout(0.3)(layers.Flatten()(x))
        model = models.Model(inputs, layers.Dense(3)(x))
        model.compile(optimizer=optimizers.AdamW(0.01), loss=sparse_loss())
        return model
    rng = np.random.default_rng(1)
    x, y = rng.uniform(size=(40, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, 40)
    straight = build()
    straight.fit(x, y, epochs=3, batch_size=8, verbose=0)
    first = build()
    first.fit(x, y, epochs=2, batch_size=8, verbose=0)
    first.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        state = json.loads(zf.read(keras_v3.STATE_ENTRY))
    assert state["shuffle_seed"] == first.shuffle_seed and state["layers"]
    resumed = models.load_model(tmp_path / "m.keras")
    resumed.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(straight.get_weights(),
                                                    resumed.get_weights()))


# ====================================================================== (c) safety
def edit_config(src, dest, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config)
            zout.writestr(name, data)
    return dest


def layer_entries(config):
    return config["config"]["layers"]


@pytest.fixture
def saved(tmp_path):
    model = fx.bn_dropout(FC)
    model.compile(optimizer="adam", loss=sparse_loss())
    x, y = fx.data(model.input_shape)
    model.train_on_batch(x, y)
    model.save(tmp_path / "good.keras")
    return tmp_path / "good.keras"


def refused(path, match, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        models.load_model(path, **kwargs)
    assert str(path) in str(info.value)


def test_lambda_and_custom_classes_are_refused(tmp_path, saved):
    def add_lambda(config):
        layer_entries(config).insert(2, {
            "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "evil", "function": {"class_name": "__lambda__", "config": {
                "code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}}})
    refused(edit_config(saved, tmp_path / "lambda.keras", add_lambda), "Python code")
    refused(tmp_path / "lambda.keras", "Python code", safe_mode=False)

    class Scale(layers.Layer):
        """A custom layer (identity) standing in for user code."""

        def compute_output_shape(self, input_shape):
            return input_shape

        def forward(self, x, training=False):
            return x

    def add_custom(config):
        layer_entries(config).insert(2, {"module": "mine", "class_name": "Scale",
                                         "registered_name": "Custom>Scale",
                                         "config": {"name": "scale"}})
    path = edit_config(saved, tmp_path / "custom.keras", add_custom)
    refused(path, "custom class 'Scale'.*custom_objects")
    refused(path, "safe_mode=False", custom_objects={"Custom>Scale": Scale})
    refused(path, "custom_objects", safe_mode=False)


def test_unknown_layers_and_arguments_name_the_layer_and_the_file(tmp_path, saved):
    def rename(config):
        layer_entries(config)[1]["class_name"] = "ConvLSTM2D"
    refused(edit_config(saved, tmp_path / "unknown.keras", rename),
            r"layer 'conv2d.*' \(ConvLSTM2D\) cannot be built: .*Unknown layer class")

    def renorm(config):
        bn = [e for e in layer_entries(config) if e["class_name"] == "BatchNormalization"][0]
        bn["config"]["renorm"] = True
    refused(edit_config(saved, tmp_path / "renorm.keras", renorm),
            "BatchNormalization 'batch_normalization.*' uses the Keras argument renorm=True")

    def extra_arg(config):
        layer_entries(config)[1]["config"]["frobnicate"] = 3
    refused(edit_config(saved, tmp_path / "extra.keras", extra_arg),
            r"layer 'conv2d.*' \(Conv2D\) cannot be built: .*frobnicate")

    def wider(config):
        layer_entries(config)[-1]["config"]["units"] = 5
    refused(edit_config(saved, tmp_path / "wider.keras", wider),
            r"weight 'kernel' of layer 'dense.*' has shape \(54, 3\) but the model expects "
            r"\(54, 5\)")


def test_values_of_the_wrong_type_found_by_fuzzing_are_refused(tmp_path, saved):
    def listed_class(config):
        layer_entries(config)[1]["registered_name"] = []
    refused(edit_config(saved, tmp_path / "cls.keras", listed_class), "must be strings")

    def int_build_config(config):
        config["build_config"] = 10 ** 12
    refused(edit_config(saved, tmp_path / "build.keras", int_build_config), "build_config")


def test_h5py_value_errors_name_the_file(tmp_path, saved, monkeypatch):
    """h5py raises a bare ValueError for a damaged datatype (seen from one flipped bit)."""
    def damaged(self, *args):
        raise ValueError("Insufficient precision in available types to represent "
                         "(31, 23, 8, 0, 23)")
    monkeypatch.setattr(h5py.Dataset, "__getitem__", damaged)
    refused(saved, "could not be read.*Insufficient precision")


def rewrite_h5(src, dest, edit):
    with zipfile.ZipFile(src) as zin:
        items = {n: zin.read(n) for n in zin.namelist()}
    buf = io.BytesIO(items["model.weights.h5"])
    with h5py.File(buf, "a") as f:
        edit(f)
    items["model.weights.h5"] = buf.getvalue()
    with zipfile.ZipFile(dest, "w") as zout:
        for n, data in items.items():
            zout.writestr(n, data)
    return dest


def test_hostile_weights_are_refused_before_reading(tmp_path, saved):
    def strings(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.array([b"x" * 10] * 54 * 3).reshape(54, 3)
    refused(rewrite_h5(saved, tmp_path / "str.keras", strings), "dtype")

    def huge(f):
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", shape=(10 ** 6, 10 ** 6), dtype="f4")
    refused(rewrite_h5(saved, tmp_path / "huge.keras", huge), r"shape \(1000000, 1000000\)")

    def missing(f):
        del f["layers/conv2d"]
    refused(rewrite_h5(saved, tmp_path / "missing.keras", missing),
            "holds no weights for layer 'conv2d")

    def nan(f):
        f["layers/dense/vars/1"][0] = np.nan
    refused(rewrite_h5(saved, tmp_path / "nan.keras", nan), "NaN")

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(54 * 3, np.float32).tobytes())

    def external_data(f):
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", shape=(54, 3), dtype="f4",
                         external=[(str(secret), 0, secret.stat().st_size)])
    refused(rewrite_h5(saved, tmp_path / "ext.keras", external_data), "outside the file")

    def external_link(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(secret), "/data")
    refused(rewrite_h5(saved, tmp_path / "link.keras", external_link), "link to elsewhere")

    def soft_group(f):
        del f["layers/dense"]
        f["layers/dense"] = h5py.SoftLink("/layers/conv2d")
    refused(rewrite_h5(saved, tmp_path / "soft.keras", soft_group), "link")

    def optimizer(f):
        del f["optimizer/vars/3"]
    refused(rewrite_h5(saved, tmp_path / "opt.keras", optimizer), "optimizer state holds")


def test_declared_sizes_beyond_the_stored_weights_are_refused(tmp_path, saved):
    """Sizes in config.json are checked against the weights the file stores before any
    weight is allocated (saving/limits.py's allocation budget)."""
    def huge_dense(config):
        layer_entries(config)[-1]["config"]["units"] = 2 * 10 ** 6
    refused(edit_config(saved, tmp_path / "dense.keras", huge_dense),
            r"declares shape \(54, 2000000\).*file stores only")

    def huge_input(config):
        layer_entries(config)[0]["config"]["batch_shape"] = [None, 10 ** 5, 10 ** 5, 3]
    refused(edit_config(saved, tmp_path / "input.keras", huge_input), "limit")

    def deep(config):
        value = 1
        for _ in range(500):
            value = [value]
        layer_entries(config)[1]["config"]["kernel_size"] = value
    refused(edit_config(saved, tmp_path / "deep.keras", deep), "nested more than")


def test_decompression_bombs_are_refused(tmp_path, saved):
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(tmp_path / "bomb.keras", "w",
                                                        zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":  # valid JSON padded with 80 MB of spaces
                data = data + b" " * (80 << 20)
            zout.writestr(name, data)
    refused(tmp_path / "bomb.keras", "decompression bomb")
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(tmp_path / "small.keras", "w",
                                                        zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "model.weights.h5":  # 20 MiB of zeros after the HDF5 file
                data = data + bytes(20 << 20)
            zout.writestr(name, data)
    refused(tmp_path / "small.keras", "MAX_EXPANSION")


def test_truncated_and_bit_flipped_files_raise_or_load_the_same(tmp_path, saved):
    raw = saved.read_bytes()
    reference = models.load_model(saved).get_weights()
    for cut in (0, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30):
        path = tmp_path / ("cut%d.keras" % cut)
        path.write_bytes(raw[:cut])
        refused(path, "Cannot load")
    rng = np.random.default_rng(0)
    for k, pos in enumerate(rng.integers(0, len(raw), 40)):
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / ("flip%d.keras" % k)
        path.write_bytes(bytes(flipped))
        try:
            got = models.load_model(path).get_weights()
        except ValueError as e:
            assert str(path) in str(e)
            continue
        # the zip's CRC-32 refuses any flip in a stored entry: what loads is a flip in
        # bytes no reader uses, so the weights are the same
        assert len(got) == len(reference)
        assert all(np.array_equal(a, b) for a, b in zip(got, reference))


def test_files_are_written_atomically_and_keep_names(tmp_path, saved):
    model = fx.bn_dropout(FC)
    with pytest.raises(ValueError, match=r"\.keras"):
        keras_v3.save_model(model, tmp_path / "m.zip")
    with pytest.raises(FileExistsError):
        model.save(saved, overwrite=False)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(tmp_path / "w.h5")
    model.save_weights(tmp_path / "w.weights.h5")
    with open(tmp_path / "w.weights.h5", "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    with pytest.raises(ValueError, match="HDF5"):
        models.load_model(tmp_path / "w.weights.h5")


# ====================================================================== (b) live Keras
def keras_predict(model, x):
    return np.asarray(model(x, training=False))


def random_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, np.shape(w)).astype(np.float32)
                       for w in model.get_weights()])


LIVE_MODELS = {
    "tutorial": lambda lib: fx.tutorial(lib, (32, 32, 3), (32, 64, 64, 64), 10),
    "resnet": fx.resnet,
    "nested": fx.nested,
    "bn_dropout": fx.bn_dropout,
    "mobilenet": fx.mobilenet,
    "decoder": fx.decoder,
    "text": fx.text,
}


@pytest.mark.parametrize("name", sorted(LIVE_MODELS))
def test_live_round_trips_both_ways(tmp_path, keras, name):
    build = LIVE_MODELS[name]
    ours = build(FC)
    x, _ = fx.data(ours.input_shape, n=4, vocab=fx.VOCAB.get(name))
    ours.save(tmp_path / "fastcnn.keras")
    theirs = keras.models.load_model(tmp_path / "fastcnn.keras")
    assert_rel(keras_predict(theirs, x), ours.predict(x, verbose=0))
    keras.utils.set_random_seed(1)
    theirs = build(fx.library(keras))
    theirs.save(tmp_path / "keras.keras")
    back = models.load_model(tmp_path / "keras.keras")
    assert_rel(back.predict(x, verbose=0), keras_predict(theirs, x))
    theirs.save_weights(tmp_path / "keras.weights.h5")
    again = build(FC)
    again.load_weights(tmp_path / "keras.weights.h5")
    assert_rel(again.predict(x, verbose=0), keras_predict(theirs, x))
    ours.save_weights(tmp_path / "fastcnn.weights.h5")
    theirs.load_weights(tmp_path / "fastcnn.weights.h5")
    assert_rel(keras_predict(theirs, x), ours.predict(x, verbose=0))


@pytest.mark.parametrize("opt", sorted(fx.OPTIMIZERS))
def test_live_optimizer_state_continues_in_the_other_library(tmp_path, keras, opt):
    kw = fx.OPTIMIZERS[opt]
    klib = fx.library(keras)
    x, y = fx.data((None, 8, 8, 3), n=8)
    # Keras trains and saves, fastcnn continues; Keras takes the same step
    keras.utils.set_random_seed(2)
    km = fx.bn_dropout(klib, 0.0)
    km.compile(optimizer=getattr(keras.optimizers, opt)(**kw),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    km.train_on_batch(x, y)
    km.train_on_batch(x, y)
    km.save(tmp_path / "k.keras")
    fm = models.load_model(tmp_path / "k.keras")
    assert type(fm.optimizer).__name__ == opt and fm.optimizer.iterations == 2
    km.train_on_batch(x, y)
    fm.train_on_batch(x, y)
    assert_weights_close(fm.get_weights(), [np.asarray(w) for w in km.get_weights()])
    # fastcnn trains and saves, Keras continues
    fm2 = fx.bn_dropout(FC, 0.0)
    fm2.compile(optimizer=getattr(optimizers, opt)(**kw), loss=sparse_loss())
    fm2.train_on_batch(x, y)
    fm2.train_on_batch(x, y)
    fm2.save(tmp_path / "f.keras")
    km2 = keras.models.load_model(tmp_path / "f.keras")
    assert int(km2.optimizer.iterations) == 2
    fm2.train_on_batch(x, y)
    km2.train_on_batch(x, y)
    assert_weights_close([np.asarray(w) for w in km2.get_weights()], fm2.get_weights())


# every class fastcnn.layers registers: (input shape, fn(lib, input tensor) -> output)
LAYER_CASES = {
    "InputLayer": ((6, 6, 4), lambda lib, t: t),
    "Dense": ((5,), lambda lib, t: lib.layers.Dense(3, activation="relu")(t)),
    "Flatten": ((6, 6, 4), lambda lib, t: lib.layers.Flatten()(t)),
    "Dropout": ((5,), lambda lib, t: lib.layers.Dropout(0.4)(t)),
    "Activation": ((5,), lambda lib, t: lib.layers.Activation("sigmoid")(t)),
    "ReLU": ((5,), lambda lib, t: lib.layers.ReLU()(t)),
    "Conv2D": ((7, 7, 3), lambda lib, t: lib.layers.Conv2D(5, 3, strides=2, padding="same")(t)),
    "MaxPooling2D": ((7, 7, 3), lambda lib, t: lib.layers.MaxPooling2D(3, 2)(t)),
    "AveragePooling2D": ((6, 6, 3), lambda lib, t: lib.layers.AveragePooling2D(2)(t)),
    "GlobalAveragePooling2D": ((6, 6, 3), lambda lib, t: lib.layers.GlobalAveragePooling2D()(t)),
    "BatchNormalization": ((6, 6, 3), lambda lib, t: lib.layers.BatchNormalization()(t)),
    "Rescaling": ((6, 6, 3), lambda lib, t: lib.layers.Rescaling(0.5, offset=-1.0)(t)),
    "RandomFlip": ((6, 6, 3), lambda lib, t: lib.layers.RandomFlip()(t)),
    "RandomTranslation": ((6, 6, 3), lambda lib, t: lib.layers.RandomTranslation(0.2, 0.2)(t)),
    "Add": ((6, 6, 3), lambda lib, t: lib.layers.Add()([t, lib.layers.ReLU()(t)])),
    "Subtract": ((6, 6, 3), lambda lib, t: lib.layers.Subtract()([t, lib.layers.ReLU()(t)])),
    "Multiply": ((6, 6, 3), lambda lib, t: lib.layers.Multiply()([t, lib.layers.ReLU()(t)])),
    "Average": ((6, 6, 3), lambda lib, t: lib.layers.Average()([t, lib.layers.ReLU()(t)])),
    "Maximum": ((6, 6, 3), lambda lib, t: lib.layers.Maximum()([t, lib.layers.ReLU()(t)])),
    "Minimum": ((6, 6, 3), lambda lib, t: lib.layers.Minimum()([t, lib.layers.ReLU()(t)])),
    "Concatenate": ((6, 6, 3), lambda lib, t: lib.layers.Concatenate()(
        [t, lib.layers.ReLU()(t)])),
    "ZeroPadding2D": ((6, 6, 3), lambda lib, t: lib.layers.ZeroPadding2D(((1, 0), (2, 1)))(t)),
    "Cropping2D": ((6, 6, 3), lambda lib, t: lib.layers.Cropping2D(((1, 0), (2, 1)))(t)),
    "Reshape": ((6, 6, 3), lambda lib, t: lib.layers.Reshape((9, 12))(t)),
    "Identity": ((5,), lambda lib, t: lib.layers.Identity()(t)),
    "RandomRotation": ((6, 6, 3), lambda lib, t: lib.layers.RandomRotation(0.1)(t)),
    "RandomZoom": ((6, 6, 3), lambda lib, t: lib.layers.RandomZoom(0.1)(t)),
    "RandomCrop": ((6, 6, 3), lambda lib, t: lib.layers.RandomCrop(4, 5)(t)),
    "RandomContrast": ((6, 6, 3), lambda lib, t: lib.layers.RandomContrast(0.2)(t)),
    "RandomBrightness": ((6, 6, 3), lambda lib, t: lib.layers.RandomBrightness(0.2)(t)),
    "Resizing": ((6, 6, 3), lambda lib, t: lib.layers.Resizing(4, 9)(t)),
    "CenterCrop": ((6, 6, 3), lambda lib, t: lib.layers.CenterCrop(4, 5)(t)),
    "Sequential": ((6, 6, 3), lambda lib, t: lib.models.Sequential(
        [lib.layers.Input(shape=(6, 6, 3)), lib.layers.Conv2D(2, 1)])(t)),
    "Functional": ((6, 6, 3), lambda lib, t: _inner_functional(lib)(t)),
}
LAYER_CASES["Model"] = LAYER_CASES["Functional"]
LAYER_CASES.update({
    "LeakyReLU": ((5,), lambda lib, t: lib.layers.LeakyReLU(negative_slope=0.1)(t)),
    "PReLU": ((6, 6, 3), lambda lib, t: lib.layers.PReLU(shared_axes=[1, 2])(t)),
    "ELU": ((5,), lambda lib, t: lib.layers.ELU(alpha=0.7)(t)),
    "Softmax": ((4, 5), lambda lib, t: lib.layers.Softmax(axis=1)(t)),
    "ReLU(args)": ((5,), lambda lib, t: lib.layers.ReLU(
        max_value=1.2, negative_slope=0.1, threshold=0.9)(t)),
    "Conv2D(dilation)": ((9, 9, 3), lambda lib, t: lib.layers.Conv2D(
        5, 3, dilation_rate=2, padding="same", activation="relu6")(t)),
    "Conv2D(groups)": ((7, 7, 6), lambda lib, t: lib.layers.Conv2D(4, 3, groups=2)(t)),
    "DepthwiseConv2D": ((7, 7, 3), lambda lib, t: lib.layers.DepthwiseConv2D(
        3, strides=2, padding="same", depth_multiplier=2)(t)),
    "SeparableConv2D": ((7, 7, 3), lambda lib, t: lib.layers.SeparableConv2D(
        5, 3, padding="same", depth_multiplier=2, activation="relu")(t)),
    "Conv2DTranspose": ((5, 5, 3), lambda lib, t: lib.layers.Conv2DTranspose(
        4, 3, strides=2, padding="same", output_padding=1)(t)),
    "Conv2DTranspose(valid)": ((5, 5, 3), lambda lib, t: lib.layers.Conv2DTranspose(
        4, 3, strides=2, activation="tanh")(t)),
    "Conv1D": ((9, 3), lambda lib, t: lib.layers.Conv1D(4, 3, strides=2, padding="same")(t)),
    "Conv1D(causal)": ((9, 3), lambda lib, t: lib.layers.Conv1D(
        4, 3, padding="causal", activation="gelu")(t)),
    "MaxPooling1D": ((9, 3), lambda lib, t: lib.layers.MaxPooling1D(3, 2)(t)),
    "AveragePooling1D": ((9, 3), lambda lib, t: lib.layers.AveragePooling1D(
        2, padding="same")(t)),
    "GlobalAveragePooling1D": ((9, 3), lambda lib, t: lib.layers.GlobalAveragePooling1D()(t)),
    "GlobalMaxPooling2D": ((6, 6, 3), lambda lib, t: lib.layers.GlobalMaxPooling2D()(t)),
    "UpSampling2D": ((4, 5, 3), lambda lib, t: lib.layers.UpSampling2D((2, 3))(t)),
    "UpSampling2D(bilinear)": ((4, 5, 3), lambda lib, t: lib.layers.UpSampling2D(
        2, interpolation="bilinear")(t)),
    "LayerNormalization": ((6, 6, 3), lambda lib, t: lib.layers.LayerNormalization()(t)),
    "LayerNormalization(axes)": ((6, 6, 3), lambda lib, t: lib.layers.LayerNormalization(
        axis=[1, 2, 3], epsilon=1e-3, center=False)(t)),
    "GroupNormalization": ((6, 6, 6), lambda lib, t: lib.layers.GroupNormalization(
        groups=3)(t)),
    "SpatialDropout2D": ((6, 6, 3), lambda lib, t: lib.layers.SpatialDropout2D(0.3)(t)),
    "Permute": ((4, 5, 3), lambda lib, t: lib.layers.Permute((3, 1, 2))(t)),
    "RepeatVector": ((5,), lambda lib, t: lib.layers.RepeatVector(3)(t)),
    "Embedding": ((6,), lambda lib, t: lib.layers.Embedding(7, 4)(t)),
})
# every activation string Keras 3 and fastcnn share, in a Conv2D and a Dense (the Rescaling
# keeps "exponential" of random weights finite)
ACTIVATIONS = sorted(set(fastcnn.activations.__all__) - {"get", "serialize", "deserialize"})


def _activated(lib, t, activation):
    x = lib.layers.Conv2D(2, 1, activation=activation)(t)
    x = lib.layers.Rescaling(0.05)(lib.layers.GlobalAveragePooling2D()(x))
    return lib.layers.Dense(3, activation=activation)(x)


for _act in ACTIVATIONS:
    LAYER_CASES["Conv2D+Dense(%s)" % _act] = (
        (5, 5, 3), lambda lib, t, a=_act: _activated(lib, t, a))
# layers fed something other than uniform [0, 1) floats
CASE_INPUTS = {
    "Embedding": lambda shape: np.random.default_rng(3).integers(0, 7, shape).astype(np.float32),
}
# Keras 3.15's RandomCrop declares the cropped output shape but returns its input uncropped
# at inference (both model(x, training=False) and predict): only the file is compared
KERAS_INFERENCE_DIFFERS = {"RandomCrop"}


def _inner_functional(lib):
    inputs = lib.layers.Input(shape=(6, 6, 3))
    return lib.models.Model(inputs, lib.layers.Dense(2)(inputs))


def case_model(lib, name):
    shape, fn = LAYER_CASES[name]
    inputs = lib.layers.Input(shape=shape)
    return lib.models.Model(inputs, fn(lib, inputs))


def case_input(name, model):
    shape = (2,) + tuple(model.input_shape[1:])
    if name in CASE_INPUTS:
        return CASE_INPUTS[name](shape)
    return np.random.default_rng(3).uniform(0, 1, shape).astype(np.float32)


def test_every_registered_layer_has_a_round_trip_case():
    missing = sorted(set(layers._REGISTRY) - set(LAYER_CASES))
    assert not missing, "add these layer classes to LAYER_CASES: %s" % missing


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_every_layer_round_trips_through_fastcnn(tmp_path, name):
    model = case_model(FC, name)
    random_weights(model)
    x = case_input(name, model)
    model.save(tmp_path / "m.keras")
    loaded = models.load_model(tmp_path / "m.keras")
    assert [type(l).__name__ for l in loaded.leaf_layers()] == \
        [type(l).__name__ for l in model.leaf_layers()]
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_every_layer_round_trips_through_keras(tmp_path, keras, name):
    model = case_model(FC, name)
    random_weights(model)
    x = case_input(name, model)
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    assert theirs.output_shape == model.output_shape
    if name not in KERAS_INFERENCE_DIFFERS:
        assert_rel(keras_predict(theirs, x), model.predict(x, verbose=0))
    theirs.save(tmp_path / "k.keras")
    back = models.load_model(tmp_path / "k.keras")
    assert_rel(back.predict(x, verbose=0), model.predict(x, verbose=0))


# config values fastcnn writes differently from Keras 3.15, with the same meaning on loading:
# a factor f is written as the range [-f, f] it means; Keras picks a random seed for
# RandomCrop when none was given; Keras writes SpatialDropout2D's dtype as a bare string
EQUIVALENT_CONFIG_KEYS = {("RandomTranslation", "height_factor"),
                          ("RandomTranslation", "width_factor"),
                          ("RandomZoom", "height_factor"), ("RandomCrop", "seed"),
                          ("SpatialDropout2D", "dtype")}


def _without_object_ids(value):
    if isinstance(value, dict):
        return {k: _without_object_ids(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_without_object_ids(v) for v in value]
    return value


def _layer_configs(path):
    """Each layer entry's (class_name, config without names) in a saved file's config.json."""
    with zipfile.ZipFile(path) as zf:
        config = _without_object_ids(json.loads(zf.read("config.json")))
    out = []

    def walk(entry):
        inner = dict(entry["config"])
        for key in ("name", "layers", "input_layers", "output_layers"):
            inner.pop(key, None)
        for cls, key in EQUIVALENT_CONFIG_KEYS:
            if entry["class_name"] == cls:
                inner.pop(key, None)
        out.append((entry["class_name"], inner))
        for sub in entry["config"].get("layers", []):
            walk(sub)
    walk(config)
    return out


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_every_layer_built_in_keras_loads_in_fastcnn(tmp_path, keras, name):
    """Keras builds and saves the case model: fastcnn predicts the same from the file, and
    fastcnn's own file for the same model holds the same layer configs."""
    keras.utils.set_random_seed(4)
    theirs = case_model(fx.library(keras), name)
    random_weights(theirs)
    theirs.save(tmp_path / "k.keras")
    ours = models.load_model(tmp_path / "k.keras")
    x = case_input(name, ours)
    if name not in KERAS_INFERENCE_DIFFERS:
        assert_rel(ours.predict(x, verbose=0), keras_predict(theirs, x))
    ours.save(tmp_path / "f.keras")
    case_model(FC, name).save(tmp_path / "fresh.keras")
    assert _layer_configs(tmp_path / "f.keras") == _layer_configs(tmp_path / "k.keras")
    assert _layer_configs(tmp_path / "fresh.keras") == _layer_configs(tmp_path / "k.keras")


def test_a_frozen_layer_stays_frozen_both_ways(tmp_path, keras):
    def build(lib):
        inputs = lib.layers.Input(shape=(6, 6, 3))
        x = lib.layers.Conv2D(4, 3, trainable=False)(inputs)
        x = lib.layers.BatchNormalization(trainable=False)(x)
        return lib.models.Model(inputs, lib.layers.Dense(2)(lib.layers.Flatten()(x)))

    def frozen(model):
        return [layer.trainable for layer in model.layers[1:]]
    want = [False, False, True, True]
    ours = build(FC)
    assert frozen(ours) == want
    ours.save(tmp_path / "f.keras")
    assert frozen(models.load_model(tmp_path / "f.keras")) == want
    theirs = keras.models.load_model(tmp_path / "f.keras")
    assert frozen(theirs) == want
    keras.utils.set_random_seed(5)
    build(fx.library(keras)).save(tmp_path / "k.keras")
    back = models.load_model(tmp_path / "k.keras")
    assert frozen(back) == want
    assert len(back.trainable_weights) == 2
