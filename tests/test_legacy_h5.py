"""Keras legacy HDF5 files (fastcnn.saving.legacy_h5): Keras 2 (TensorFlow 2.15) and Keras 3
``.h5`` whole-model files and Keras 2 weight files load and predict as in Keras; Keras 2
configs are normalised; damaged or hostile .h5 files give a ValueError naming the file.

The fixtures under tests/fixtures/keras_legacy/ were written by real Keras with
tests/fixtures/keras_legacy/make_fixtures.py (which says how to rerun it).
"""
import json
import os
import shutil
import warnings

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from fastcnn import layers, losses, models, optimizers  # noqa: E402
from fastcnn.saving import legacy_h5  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_legacy")
LIBS = ["keras2", "keras3"]


def fixture(name):
    return os.path.join(FIX, name)


def expected(lib):
    return np.load(fixture(lib + "_expected.npz"))


def assert_predicts(model, x, y):
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-5 * np.abs(y).max())


def fastcnn_sequential():
    """The fixture's Sequential model written with fastcnn's API (a new one per call)."""
    return models.Sequential([
        layers.Input(shape=(9, 9, 3)), layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(2),
        layers.Conv2D(6, 2, padding="same", use_bias=False), layers.Activation("sigmoid"),
        layers.Flatten(), layers.Dropout(0.3), layers.Dense(5, activation="softmax")])


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_whole_model_files_predict_as_keras(lib, kind):
    e = expected(lib)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the compile settings of these files are all known
        model = models.load_model(fixture("%s_%s.h5" % (lib, kind)))
    assert type(model).__name__ == ("Sequential" if kind == "sequential" else "Functional")
    key = {"sequential": "seq", "functional": "func", "nested": "nested"}[kind]
    assert_predicts(model, e["x_" + key], e["y_" + key])


@pytest.mark.parametrize("lib", LIBS)
def test_compile_settings_are_restored_and_training_goes_on(lib):
    model = models.load_model(fixture(lib + "_sequential.h5"))
    assert isinstance(model.optimizer, optimizers.Adam)
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(1e-3)
    e = expected(lib)
    before = [w.copy() for w in model.get_weights()]
    model.fit(e["x_seq"], np.array([0, 1, 2, 3]), epochs=1, batch_size=4, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    uncompiled = models.load_model(fixture(lib + "_sequential.h5"), compile=False)
    assert not uncompiled.compiled


@pytest.mark.parametrize("lib", LIBS)
def test_loss_and_optimizer_objects_are_restored(lib):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = models.load_model(fixture(lib + "_mlp_compiled.h5"))
    cfg = model.optimizer.get_config()
    assert isinstance(model.optimizer, optimizers.SGD) and cfg["nesterov"]
    assert cfg["momentum"] == pytest.approx(0.9) and cfg["learning_rate"] == pytest.approx(0.01)
    assert isinstance(model.loss, losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True
    assert model.loss.get_config()["reduction"] == "sum_over_batch_size"


def test_keras2_weights_file_loads_into_a_fastcnn_model():
    e = expected("keras2")
    model = fastcnn_sequential()
    model.load_weights(fixture("keras2_sequential_weights.h5"))
    assert_predicts(model, e["x_seq"], e["y_seq"])
    # a whole-model file works as a weights file too (Keras 2's load_weights does the same)
    other = fastcnn_sequential()
    other.load_weights(fixture("keras2_sequential.h5"))
    assert_predicts(other, e["x_seq"], e["y_seq"])


def test_weights_into_a_different_model_are_refused_or_skipped():
    path = fixture("keras2_sequential_weights.h5")
    wrong = models.Sequential([layers.Input(shape=(9, 9, 3)), layers.Conv2D(4, 3),
                               layers.Flatten(), layers.Dense(5)])
    with pytest.raises(ValueError, match="holds weights for 4 layers"):
        wrong.load_weights(path)
    bigger = fastcnn_sequential()  # the same but Dense(6) at the end: skip that layer
    bigger = models.Sequential([layers.Input(shape=(9, 9, 3))] + bigger.layers[:-1]
                               + [layers.Dense(6)])
    before = bigger.layers[-1].get_weights()[0].copy()
    with pytest.raises(ValueError, match="has shape"):
        bigger.load_weights(path)
    bigger.load_weights(path, skip_mismatch=True)
    np.testing.assert_array_equal(bigger.layers[-1].get_weights()[0], before)


def test_keras2_config_normalisation():
    keras2 = {"class_name": "Model", "config": {
        "name": "m", "layers": [
            {"class_name": "InputLayer", "name": "in", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 4, 4, 2], "dtype": "float32",
                        "sparse": False, "ragged": False, "name": "in"}},
            {"class_name": "Conv2D", "name": "c", "inbound_nodes": [[["in", 0, 0, {}]]],
             "config": {"name": "c", "filters": 3, "kernel_size": [1, 1],
                        "dtype": {"class_name": "Policy", "config": {"name": "float32"}},
                        "kernel_initializer": {"class_name": "VarianceScaling", "config": {
                            "scale": 1.0, "mode": "fan_in", "distribution": "normal",
                            "seed": None}}}},
            {"class_name": "BatchNormalization", "name": "bn",
             "inbound_nodes": [[["c", 0, 0, {}]]],
             "config": {"name": "bn", "axis": [3], "fused": None, "renorm": False,
                        "renorm_clipping": None, "renorm_momentum": 0.99,
                        "virtual_batch_size": None, "adjustment": None}},
            {"class_name": "Concatenate", "name": "cat",
             "inbound_nodes": [[["bn", 0, 0, {}], ["c", 0, 0, {}]]],
             "config": {"name": "cat", "axis": -1}}],
        "input_layers": [["in", 0, 0]], "output_layers": [["cat", 0, 0]]}}
    normal = legacy_h5.normalize_model_config(keras2)
    assert normal["class_name"] == "Functional"
    model = layers.deserialize(normal)
    assert model.output_shape == (None, 4, 4, 6)
    assert model.layers[2].get_config()["axis"] == 3
    # Keras <= 2.2 Sequential: the config is the list of layers, the first has the input
    old = {"class_name": "Sequential", "config": [
        {"class_name": "Dense", "config": {"name": "d", "units": 3,
                                           "batch_input_shape": [None, 5]}},
        {"class_name": "Dense", "config": {"name": "e", "units": 2}}]}
    model = layers.deserialize(legacy_h5.normalize_model_config(old))
    assert model.built and model.output_shape == (None, 2)


# ------------------------------------------------------------------ damaged / hostile files

def copy_fixture(tmp_path, name="keras2_sequential.h5"):
    dst = tmp_path / name
    shutil.copy(fixture(name), dst)
    return dst


def set_config(path, mutate):
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        mutate(cfg)
        f.attrs["model_config"] = json.dumps(cfg)


def refused(path, match, loader=None):
    with pytest.raises(ValueError) as info:
        (loader or models.load_model)(path)
    msg = str(info.value)
    assert str(path) in msg and match in msg, msg


def test_lambda_layers_are_refused(tmp_path):
    path = copy_fixture(tmp_path)
    set_config(path, lambda c: c["config"]["layers"].insert(2, {
        "class_name": "Lambda", "config": {"name": "evil", "function": ["4wEAAAAAAAAA", None,
                                                                       None]}}))
    refused(path, "holds Python code")


def test_declared_sizes_beyond_the_stored_weights_are_refused(tmp_path):
    path = copy_fixture(tmp_path)
    set_config(path, lambda c: c["config"]["layers"][1]["config"].update(filters=10 ** 5))
    refused(path, "the file stores only")
    path = copy_fixture(tmp_path, "keras2_functional.h5")
    set_config(path, lambda c: c["config"]["layers"][0]["config"].update(
        batch_input_shape=[None, 10 ** 5, 10 ** 5, 3]))
    refused(path, "MAX_SAMPLE_ELEMENTS")


def test_dataset_declaring_more_than_it_stores_is_refused(tmp_path):
    path = copy_fixture(tmp_path, "keras2_sequential_weights.h5")
    with h5py.File(path, "r+") as f:  # an unwritten dataset: HDF5 would return fill values
        del f["dense/dense/kernel:0"]
        f["dense/dense"].create_dataset("kernel:0", shape=(10 ** 7, 5), dtype="f4")
    refused(path, "but the file stores only 0 bytes", fastcnn_sequential().load_weights)


def test_truncated_and_garbage_files_are_refused(tmp_path):
    data = open(fixture("keras2_sequential.h5"), "rb").read()
    for cut in (100, len(data) // 2, len(data) - 100):
        path = tmp_path / ("cut%d.h5" % cut)
        path.write_bytes(data[:cut])
        refused(path, "not a readable HDF5 file")
    path = tmp_path / "missing_group.h5"
    shutil.copy(fixture("keras2_sequential.h5"), path)
    with h5py.File(path, "r+") as f:
        del f["model_weights/conv"]
    refused(path, "'conv'")


def test_attributes_are_read_only_as_text(tmp_path):
    """One flipped bit once made model_config a variable-length sequence, and HDF5
    crashed converting it: attributes are type-checked before they are read."""
    path = copy_fixture(tmp_path, "keras2_sequential.h5")
    with h5py.File(path, "r+") as f:
        del f.attrs["model_config"]
        data = np.empty(1, object)
        data[0] = np.arange(3, dtype="i4")
        f.attrs.create("model_config", data=data, dtype=h5py.vlen_dtype(np.dtype("i4")))
    refused(path, "'model_config' of / is not text or a list of text (HDF5 type class 9")
    path = copy_fixture(tmp_path, "keras2_sequential_weights.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["layer_names"] = np.arange(6, dtype="f4").reshape(2, 3)
    refused(path, "'layer_names' of / is not text", fastcnn_sequential().load_weights)


def test_a_damaged_heap_that_makes_hdf5_loop_is_refused(tmp_path, monkeypatch):
    """This one flipped bit makes libhdf5 loop forever reading layer_names (found by a
    bit-flip scan): the attributes are read in a child process with a time limit first."""
    monkeypatch.setattr(legacy_h5, "PROBE_SECONDS", 3)
    data = bytearray(open(fixture("keras2_functional.h5"), "rb").read())
    data[15281] ^= 1 << 3
    path = tmp_path / "loops.h5"
    path.write_bytes(bytes(data))
    refused(path, "HDF5 did not finish reading its attributes in 3 s")
    data[15281] ^= 1 << 3
    data[1009] ^= 1 << 3  # model_config made a variable-length sequence: HDF5 crashed on it
    path.write_bytes(bytes(data))
    refused(path, "HDF5 crashed reading its attributes")


def test_dispatch_leaves_fastcnn_files_alone(tmp_path):
    model = fastcnn_sequential()
    model.save(tmp_path / "native.h5")  # fastcnn's zip format under an .h5 name
    assert not legacy_h5.is_legacy_h5(tmp_path / "native.h5")
    assert legacy_h5.is_legacy_h5(fixture("keras2_sequential_weights.h5"))
    assert models.load_model(tmp_path / "native.h5").count_params() == model.count_params()


def test_live_keras3_h5_round_trip(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(3)
    inp = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4, activation="softmax")(x)
    km = keras.Model(inp, out)
    km.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="categorical_crossentropy")
    km.save(tmp_path / "live.h5")
    x = np.random.default_rng(0).normal(size=(3, 6, 6, 2)).astype("float32")
    model = models.load_model(tmp_path / "live.h5")
    assert_predicts(model, x, np.asarray(km.predict(x, verbose=0)))
    assert isinstance(model.optimizer, optimizers.SGD)
    assert isinstance(model.loss, (str, losses.Loss))
