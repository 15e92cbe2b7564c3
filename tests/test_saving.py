"""model.save / load_model / save_weights / load_weights: exact round trips (including the
optimizer, so training resumes bitwise identically), no pickle, atomic writes, and clear
errors for damaged, foreign or newer files."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, losses, models, optimizers, utils
from fastcnn.saving import native


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.uint8).reshape(-1, 1)
    x = rng.uniform(size=(n, 6, 6, 2))
    for k in range(3):
        x[y[:, 0] == k, k:k + 2, 1:3, k % 2] += 1.5
    return x, y


def make_model(optimizer="adam"):
    model = models.Sequential([
        layers.Input(shape=(6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dropout(0.25), layers.Dense(3)])
    model.compile(optimizer=optimizer, loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("make_optimizer", [
    lambda: "adam",
    lambda: "adamw",
    lambda: optimizers.AdamW(learning_rate=0.01, weight_decay=0.05, beta_1=0.8),
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: optimizers.RMSprop(weight_decay=0.02),
    lambda: optimizers.Adam(0.01, amsgrad=True, clipnorm=0.5, use_ema=True, ema_momentum=0.9),
    lambda: optimizers.RMSprop(momentum=0.5, centered=True, global_clipnorm=1.0),
    lambda: optimizers.AdamW(optimizers.schedules.CosineDecay(0.0, 20, warmup_target=0.01,
                                                              warmup_steps=4),
                             gradient_accumulation_steps=3, clipvalue=0.5),
    lambda: optimizers.Nadam(0.01, use_ema=True, ema_overwrite_frequency=3),
    lambda: optimizers.Ftrl(0.1, l1_regularization_strength=0.001),
    lambda: optimizers.Adagrad(0.1),
    lambda: optimizers.Adadelta(1.0),
    lambda: optimizers.Adamax(0.01),
    lambda: optimizers.Lion(optimizers.schedules.ExponentialDecay(0.001, 4, 0.5)),
], ids=["adam", "adamw", "AdamW", "SGD-wd", "RMSprop-wd", "Adam-amsgrad-ema-clip",
        "RMSprop-centered", "AdamW-schedule-accum", "Nadam-ema", "Ftrl", "Adagrad",
        "Adadelta", "Adamax", "Lion-schedule"])
def test_save_load_identical_predictions_and_resumed_training(tmp_path, make_optimizer):
    x, y = data()
    utils.set_random_seed(3)
    model = make_model(make_optimizer())
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "fastcnn_state.json", "metadata.json",
                                         "model.weights.h5"]
    loaded = models.load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.raw_iterations == model.optimizer.raw_iterations == 8
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.loss.from_logits and loaded.metrics_names == ["loss", "accuracy"]
    # one more epoch from each, same shuffles: bitwise identical weights (optimizer state,
    # BatchNorm moving statistics and dropout streams all restored)
    utils.set_random_seed(9)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    utils.set_random_seed(9)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))


def test_weights_only_round_trip_by_layer_position(tmp_path):
    x, y = data(16)
    model = make_model()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    other = make_model()  # same architecture, other names (dense_3 ...) and weights
    other.load_weights(path)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
    also = make_model()
    model.save(tmp_path / "full.keras")
    also.load_weights(tmp_path / "full.keras")  # a model file holds the weights too
    assert np.array_equal(also.predict(x, verbose=0), model.predict(x, verbose=0))


def test_uncompiled_and_config_only_models(tmp_path):
    model = models.Sequential([layers.Input(shape=(3,)), layers.Dense(2, activation="softmax")])
    model.save(tmp_path / "m.keras")
    loaded = models.load_model(tmp_path / "m.keras")
    assert not loaded.compiled and np.array_equal(loaded.get_weights()[0],
                                                  model.get_weights()[0])
    compiled = make_model()
    compiled.save(tmp_path / "c.keras")
    assert not models.load_model(tmp_path / "c.keras", compile=False).compiled


def test_no_pickle_anywhere(tmp_path):
    path = tmp_path / "m.keras"
    make_model().save(path)
    h5py = pytest.importorskip("h5py")
    with zipfile.ZipFile(path) as zf:
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            kinds = []
            f.visititems(lambda name, obj: kinds.append(obj.dtype.kind)
                         if isinstance(obj, h5py.Dataset) else None)
        assert kinds and set(kinds) <= set("fi")
        for name in ("config.json", "metadata.json", "fastcnn_state.json"):
            json.loads(zf.read(name))


def rewrite(path, dest, replace=None, drop=None, add=None):
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(dest, "w") as out:
        for name in src.namelist():
            if name == drop:
                continue
            data = src.read(name)
            if replace and name in replace:
                data = replace[name](data)
            out.writestr(name, data)
        for name, data in (add or {}).items():
            out.writestr(name, data)
    return dest


def test_damaged_or_foreign_files_raise_value_error_naming_the_file(tmp_path):
    # files of an older fastcnn (npz inside) still load: their reader's checks
    good = tmp_path / "good.keras"
    native.save_model(make_model(), good)
    raw = good.read_bytes()
    cases = {}
    (tmp_path / "trunc.keras").write_bytes(raw[:len(raw) // 2])
    cases["trunc.keras"] = "not a valid zip archive or is truncated"
    (tmp_path / "junk.keras").write_bytes(b"\x89HDF\r\n\x1a\n" + b"0" * 100)
    cases["junk.keras"] = "not a readable HDF5 file"  # HDF5 goes to the .h5 readers
    rewrite(good, tmp_path / "nometa.keras", drop="metadata.json")
    cases["nometa.keras"] = "no metadata.json"
    rewrite(good, tmp_path / "noweights.keras", drop="model.weights.npz")
    cases["noweights.keras"] = "model.weights.npz is missing"

    def bump(data):
        meta = json.loads(data)
        meta["format_version"] = 99
        return json.dumps(meta).encode()
    rewrite(good, tmp_path / "newer.keras", replace={"metadata.json": bump})
    cases["newer.keras"] = "format version 99 by a newer fastcnn"
    rewrite(good, tmp_path / "badjson.keras", replace={"config.json": lambda d: d[:-5]})
    cases["badjson.keras"] = "config.json is not valid JSON"

    def pickled(_):
        buf = io.BytesIO()
        np.savez(buf, **{"layers/0/vars/0": np.array([{"a": 1}], dtype=object)})
        return buf.getvalue()
    rewrite(good, tmp_path / "pickle.keras", replace={"model.weights.npz": pickled})
    cases["pickle.keras"] = "weights archive is corrupted|missing"

    def corrupt_npz(data):
        return data[:len(data) // 3]
    rewrite(good, tmp_path / "npz.keras", replace={"model.weights.npz": corrupt_npz})
    cases["npz.keras"] = "weights archive is corrupted"

    def shrink(data):
        buf = io.BytesIO(data)
        arrays = dict(np.load(buf))
        arrays["layers/0/vars/0"] = arrays["layers/0/vars/0"][:2]
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()
    rewrite(good, tmp_path / "shape.keras", replace={"model.weights.npz": shrink})
    cases["shape.keras"] = r"weight 'kernel' of layer 'conv2d.*' has shape \(2, 3, 2, 4\)"
    for name, match in cases.items():
        with pytest.raises(ValueError, match=match) as info:
            models.load_model(tmp_path / name)
        assert name in str(info.value)
    weights = tmp_path / "w.weights.h5"
    native.save_weights(make_model(), weights)
    with pytest.raises(ValueError, match="it is a fastcnn.weights file, expected fastcnn.model"):
        models.load_model(weights)
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.keras")


@pytest.mark.parametrize("writer", ["keras_v3", "native"])
def test_load_weights_into_other_architecture_names_the_layer(tmp_path, writer):
    path = tmp_path / "w.weights.h5"
    getattr(fastcnn.saving, writer).save_weights(make_model(), path)
    small = models.Sequential([layers.Input(shape=(6, 6, 2)), layers.Conv2D(5, 3),
                               layers.BatchNormalization(), layers.Flatten(), layers.Dense(3)])
    with pytest.raises(ValueError, match=r"w.weights.h5.*weight 'kernel' of layer 'conv2d.*' "
                                         r"has shape \(3, 3, 2, 4\) but the model expects "
                                         r"\(3, 3, 2, 5\)"):
        small.load_weights(path)
    tiny = models.Sequential([layers.Input(shape=(6, 6, 2)), layers.Flatten(), layers.Dense(3)])
    match = ("weights for 3 layers.*has 1 layers with weights" if writer == "native" else
             r"w.weights.h5.*weight 'kernel' of layer 'dense.*' has shape")
    with pytest.raises(ValueError, match=match):
        tiny.load_weights(path)


def test_file_names_and_overwrite(tmp_path):
    model = make_model()
    with pytest.raises(ValueError, match="Invalid filepath extension"):
        model.save(tmp_path / "model.pkl")
    with pytest.raises(ValueError, match=".weights.h5"):
        model.save_weights(tmp_path / "w.npz")
    model.save(tmp_path / "legacy.h5")  # accepted alias: same zip format, not HDF5
    assert zipfile.is_zipfile(tmp_path / "legacy.h5")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "legacy.h5", overwrite=False)
    with pytest.raises(ValueError, match="not been built"):
        models.Sequential([layers.Dense(2)]).save(tmp_path / "u.keras")


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    model = make_model()
    model.save(path)
    before = path.read_bytes()

    real = zipfile.ZipFile.writestr

    def boom(self, name, data, *args, **kwargs):
        if name == "model.weights.h5":  # fail midway through writing the archive
            raise OSError("disk full")
        return real(self, name, data, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.keras"]  # no temporary file left behind
    assert fastcnn.saving.FORMAT_VERSION == 1
