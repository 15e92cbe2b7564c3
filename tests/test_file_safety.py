"""Model files are data, never code, and are never left half-written.

(a) pickles - in an extra zip entry, as object arrays in the .npz, or instead of the .npz -
    are refused with ValueError, and the payload never runs;
(b) truncated, bit-flipped, wrong-version and structurally mangled files raise ValueError
    naming the file and what is wrong (never another exception, never a silently different
    model);
(c) every save is atomic: a process SIGKILLed in the middle of model.save leaves the
    previous file intact and loadable.
"""
import copy
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from fastcnn import layers, losses, models, utils
from fastcnn.saving import native

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_model(seed=0):
    utils.set_random_seed(seed)
    model = models.Sequential([
        layers.Input(shape=(6, 6, 2)), layers.Conv2D(4, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dropout(0.25), layers.Dense(3)])
    model.compile(optimizer="adam", loss=losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained model saved as model.keras and model.weights.h5 in the format of older
    fastcnn versions (npz inside; still read), plus its weights. test_keras_format.py holds
    the same checks for Keras 3's format."""
    d = tmp_path_factory.mktemp("saved")
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(32, 6, 6, 2)), rng.integers(0, 3, 32)
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    native.save_model(model, d / "model.keras")
    native.save_weights(model, d / "model.weights.h5")
    return {"model": d / "model.keras", "weights": d / "model.weights.h5",
            "values": model.get_weights(), "x": x}


def entries(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path, items):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in items.items():
            zf.writestr(name, data)
    return path


def load(kind, path):
    if kind == "model":
        return models.load_model(path).get_weights()
    model = make_model(seed=1)
    model.load_weights(path)
    return model.get_weights()


def refused(kind, path, match=None):
    """Loading must raise ValueError naming the file (and matching `match`)."""
    with pytest.raises(ValueError) as info:
        load(kind, path)
    msg = str(info.value)
    assert str(path) in msg, msg
    if match is not None:
        assert match in msg, msg
    return msg


# ------------------------------------------------------------------ (a) pickles

class Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["model", "weights"])
@pytest.mark.parametrize("how", ["object_array", "extra_entry", "raw_pickle_as_npz",
                                 "pickle_member_in_npz", "object_array_extra_key"])
def test_pickles_are_refused_and_never_run(tmp_path, saved, kind, how):
    marker = str(tmp_path / "PWNED")
    evil = Payload(marker)
    items = entries(saved[kind])
    arrays = dict(np.load(io.BytesIO(items["model.weights.npz"])))
    if how == "object_array":
        arrays["layers/1/vars/0"] = np.array([evil] * 3, dtype=object)
        items["model.weights.npz"] = npz_bytes(arrays)
        expect = "pickled Python objects"
    elif how == "object_array_extra_key":
        arrays["extra"] = np.array([evil], dtype=object)
        items["model.weights.npz"] = npz_bytes(arrays)
        expect = "pickled Python objects"
    elif how == "extra_entry":
        items["evil.pkl"] = pickle.dumps(evil)
        expect = "unexpected entries ['evil.pkl']"
    elif how == "raw_pickle_as_npz":
        items["model.weights.npz"] = pickle.dumps({"layers/0/vars/0": evil})
        expect = "weights archive is corrupted"
    else:  # a non-.npy member inside the npz (np.load would hand back its raw bytes)
        buf = io.BytesIO(items["model.weights.npz"])
        with zipfile.ZipFile(buf, "a") as zf:
            zf.writestr("payload", pickle.dumps(evil))
        items["model.weights.npz"] = buf.getvalue()
        expect = "non-array entry 'payload'"
    path = write_zip(tmp_path / saved[kind].name, items)
    refused(kind, path, expect)
    assert not os.path.exists(marker), "the pickle payload ran"


def test_what_fastcnn_writes_holds_no_pickle(saved):
    for kind in ("model", "weights"):
        items = entries(saved[kind])
        with np.load(io.BytesIO(items["model.weights.npz"]), allow_pickle=False) as npz:
            assert all(npz[k].dtype != object for k in npz.files)
        for name, data in items.items():
            if name.endswith(".json"):
                json.loads(data)
        assert not any(b"\x80\x04\x95" in d or b"\x80\x05\x95" in d for d in items.values())


# ------------------------------------------------------------------ (b) damaged files

@pytest.mark.parametrize("kind", ["model", "weights"])
def test_every_truncation_raises_value_error_naming_the_file(tmp_path, saved, kind):
    raw = saved[kind].read_bytes()
    path = tmp_path / saved[kind].name
    cuts = sorted(set(np.linspace(0, len(raw) - 1, 60).astype(int)) | {1, 22, len(raw) - 22})
    for cut in cuts:
        path.write_bytes(raw[:cut])
        refused(kind, path)


@pytest.mark.parametrize("kind", ["model", "weights"])
def test_bit_flips_raise_or_load_the_very_same_weights(tmp_path, saved, kind):
    raw = saved[kind].read_bytes()
    path = tmp_path / saved[kind].name
    rng = np.random.default_rng(7)
    outcomes = {"refused": 0, "same": 0}
    for pos in rng.choice(len(raw), 250, replace=False):
        data = bytearray(raw)
        data[pos] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))
        try:
            values = load(kind, path)
        except ValueError as e:
            assert str(path) in str(e)
            outcomes["refused"] += 1
            continue
        # a flip the format does not cover (zip timestamps, ...) must change nothing
        assert all(np.array_equal(a, b) for a, b in zip(values, saved["values"]))
        outcomes["same"] += 1
    assert outcomes["refused"] > 200, outcomes


def edit_json(path, dest, name, edit):
    items = entries(path)
    doc = json.loads(items[name])
    edit(doc)
    items[name] = json.dumps(doc)
    return write_zip(dest, items)


@pytest.mark.parametrize("version,expect", [
    (2, "format version 2 by a newer fastcnn"), (99, "format version 99"),
    (0, "invalid format_version 0"), (-1, "invalid format_version -1"),
    ("1", "invalid format_version '1'"), (1.0, "invalid format_version 1.0"),
    (None, "invalid format_version None"), ("missing", "invalid format_version None")])
@pytest.mark.parametrize("kind", ["model", "weights"])
def test_wrong_format_versions_are_refused(tmp_path, saved, kind, version, expect):
    def edit(meta):
        if version == "missing":
            del meta["format_version"]
        else:
            meta["format_version"] = version
    path = edit_json(saved[kind], tmp_path / saved[kind].name, "metadata.json", edit)
    refused(kind, path, expect)


@pytest.mark.parametrize("kind", ["model", "weights"])
def test_foreign_and_empty_files_are_refused(tmp_path, saved, kind):
    path = tmp_path / saved[kind].name
    path.write_bytes(b"")
    refused(kind, path, "not a valid zip archive")
    write_zip(path, {"metadata.json": json.dumps({"keras_version": "3.3.3"}),
                     "config.json": "{}", "model.weights.h5": b"\x89HDF\r\n\x1a\n"})
    refused(kind, path, "HDF5 weights are damaged or truncated")  # a Keras zip, bad HDF5
    write_zip(path, {"readme.txt": "hello"})
    refused(kind, path, "no metadata.json")
    path.unlink()
    path.mkdir()
    refused(kind, path, "is a directory")


def test_unsupported_zip_features_are_refused(tmp_path, saved):
    items = entries(saved["model"])
    path = tmp_path / "lzma.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name, data in items.items():
            zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    # mark every entry as compressed with method 99 (AES/unknown): zipfile cannot read it
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (i := raw.find(sig, start)) >= 0:
            raw[i + off:i + off + 2] = (99).to_bytes(2, "little")
            start = i + 4
    path.write_bytes(bytes(raw))
    refused("model", path, "zip feature")


def json_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from json_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from json_paths(v, prefix + (i,))


MANGLED = [None, -1, 1.5, "x", [], {}, [1], {"a": 1}, True, 10 ** 30, "DELETE"]


@pytest.mark.parametrize("name", ["metadata.json", "config.json"])
def test_mangled_json_structure_raises_value_error_or_loads(tmp_path, saved, name):
    """Replace every node of the JSON documents, one at a time, by values of other types
    (or delete it): loading either fails with ValueError naming the file, or succeeds."""
    items = entries(saved["model"])
    doc = json.loads(items[name])
    path = tmp_path / "mangled.keras"
    tried = loaded = 0
    for where in list(json_paths(doc)):
        for value in MANGLED[::3] if len(where) > 2 else MANGLED:
            if value == "DELETE" and not where:
                continue
            new = copy.deepcopy(doc)
            if not where:
                new = value
            else:
                parent = new
                for k in where[:-1]:
                    parent = parent[k]
                if value == "DELETE":
                    del parent[where[-1]]
                else:
                    parent[where[-1]] = value
            write_zip(path, dict(items, **{name: json.dumps(new)}))
            tried += 1
            try:
                model = models.load_model(path)
            except ValueError as e:
                assert str(path) in str(e), (where, value, e)
                continue
            loaded += 1
            model.predict(saved["x"][:2], verbose=0)  # what loads also runs
    assert tried > 300 and loaded < tried


def test_hostile_array_contents_are_refused(tmp_path, saved):
    items = entries(saved["model"])
    arrays = dict(np.load(io.BytesIO(items["model.weights.npz"])))
    cases = {
        "negative optimizer step": ("optimizer/iterations", np.array(-3, np.int64),
                                    "iteration count -3"),
        "fractional optimizer step": ("optimizer/iterations", np.array(2.5),
                                      "iteration count 2.5"),
        "NaN learning rate": ("optimizer/learning_rate", np.array(np.nan, np.float32),
                              "learning rate is invalid"),
        "text weights": ("layers/0/vars/0", np.full((3, 3, 2, 4), "a"), "non-numeric dtype"),
        "vector dropout state": ("layers/5/state/calls", np.arange(3), "saved state of layer"),
        "negative shuffle seed": ("model/shuffle_seed", np.array(-1), "shuffle seed -1"),
    }
    for what, (key, value, expect) in cases.items():
        path = write_zip(tmp_path / "hostile.keras",
                         dict(items, **{"model.weights.npz": npz_bytes(dict(arrays,
                                                                          **{key: value}))}))
        msg = refused("model", path, expect)
        assert what and msg


# ------------------------------------------------------------------ (c) atomic writes

SAVER = textwrap.dedent("""
    import sys, time, zipfile
    import numpy as np
    from fastcnn import layers, models
    path, mode = sys.argv[1], sys.argv[2]
    # ~2.2 M parameters: each model file (weights + Adam slots) is about 27 MB
    model = models.Sequential([layers.Input(shape=(1024,)), layers.Dense(1024),
                               layers.Dense(1024), layers.Dense(64)])
    model.compile("adam", "mse")
    model.fit(np.zeros((4, 1024)), np.zeros((4, 64)), epochs=1, verbose=0)
    if mode == "slow":  # the second save stalls after writing part of the archive
        real = zipfile.ZipFile.writestr
        def slow(self, name, data, *a, **k):
            real(self, name, data, *a, **k)
            if version == 2 and name == "config.json":
                print("MIDWAY", flush=True)
                time.sleep(600)
        zipfile.ZipFile.writestr = slow
    version = 0
    while True:
        version += 1
        model.set_weights([np.full(w.shape, version, np.float32) for w in model.get_weights()])
        model.save(path)
        print("SAVED", version, flush=True)
""")


def start_saver(path, mode):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-c", SAVER, str(path), mode], env=env,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)


def read_until(proc, word, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(word):
            return line.split()
    proc.kill()
    pytest.fail("the saver process never printed %s" % word)


def constant_version(path):
    """Load `path`: every weight must hold the same version number (never a mix)."""
    model = models.load_model(path)
    values = {float(v) for w in model.get_weights() for v in np.unique(w)}
    assert len(values) == 1, "a mixed file: %s" % sorted(values)[:5]
    return int(values.pop())


def test_kill_in_the_middle_of_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "big.keras"
    proc = start_saver(path, "slow")
    try:
        read_until(proc, "SAVED")          # version 1 is complete on disk
        before = path.read_bytes()
        read_until(proc, "MIDWAY")         # version 2 is half written (to a temporary file)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdout.close()
    assert path.read_bytes() == before
    assert constant_version(path) == 1
    leftovers = [p for p in os.listdir(tmp_path) if p != "big.keras"]
    assert all(p.startswith(".big.keras.tmp-") for p in leftovers), leftovers


def test_kill_at_random_moments_of_repeated_saves_never_corrupts(tmp_path):
    path = tmp_path / "loop.keras"
    rng = np.random.default_rng(0)
    for round_ in range(4):
        proc = start_saver(path, "loop")
        try:
            last = int(read_until(proc, "SAVED")[1])
            time.sleep(float(rng.uniform(0.0, 0.4)))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            for line in proc.stdout:  # what it reported before dying
                if line.startswith("SAVED"):
                    last = int(line.split()[1])
        finally:
            proc.kill()
            proc.stdout.close()
        version = constant_version(path)
        # the last reported save, or the one whose rename landed just before the kill
        assert version in (last, last + 1), (version, last)
