"""Property-based fuzzing of model files: starting from valid files, bit flips, truncation
and config mutations (sizes huge/negative/float/string, wrong types, deep nesting, very long
strings, missing keys) must load cleanly or raise ValueError naming the file -- never crash,
hang, run out of memory or raise anything else.

Each hypothesis example is a batch of mutated files, loaded in one child process
(tests/hostile_child.py) under RLIMIT_AS and a timeout, so one slow start serves many files.

The valid files come from FACTORIES, a table: add a format by adding an entry (a function
writing the file into a directory and returning a ``Valid``).
"""
import collections
import importlib.util
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from fastcnn import layers, models, utils  # noqa: E402
from fastcnn.saving import native  # noqa: E402

from test_file_limits import load_in_child  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "keras_legacy")
MEMORY_LIMIT = 3 * 2 ** 30
FILES_PER_EXAMPLE = 12
# a longer campaign: FASTCNN_FUZZ_EXAMPLES=200 (and FASTCNN_FUZZ_RANDOM=1 for new examples)
EXAMPLES = int(os.environ.get("FASTCNN_FUZZ_EXAMPLES", "4"))
DERANDOMIZE = not os.environ.get("FASTCNN_FUZZ_RANDOM")
# what a loader may raise for a damaged file (besides succeeding)
ACCEPTED = {"ok", "ValueError"}
OUTCOMES = collections.defaultdict(collections.Counter)  # shown with -s, for tuning

# kind: "model" (load_model) or "weights" (load_weights into the model in `template`);
# json_entries: how to reach the JSON documents to mutate (zip entry names, or HDF5 attributes
# prefixed "h5attr:")
Valid = collections.namedtuple("Valid", "path kind template json_entries")


def _native_model(tmp):
    utils.set_random_seed(0)
    model = models.Sequential([
        layers.Input(shape=(7, 7, 3)), layers.Conv2D(5, 3, activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dropout(0.2), layers.Dense(4, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(8, 7, 7, 3)).astype("float32")
    model.fit(x, np.arange(8) % 4, epochs=1, batch_size=4, verbose=0)
    return model


def native_keras(tmp):
    """An older fastcnn's model file (a zip with an .npz inside)."""
    path = os.path.join(tmp, "native.keras")
    native.save_model(_native_model(tmp), path)
    return Valid(path, "model", None, ["config.json", "metadata.json"])


def native_weights(tmp):
    """An older fastcnn's weights file (a zip with an .npz inside)."""
    model = _native_model(tmp)
    template = os.path.join(tmp, "template.keras")
    model.save(template)
    path = os.path.join(tmp, "native.weights.h5")
    native.save_weights(model, path)
    return Valid(path, "weights", template, ["metadata.json"])


def _functional_model():
    utils.set_random_seed(0)  # the same file whatever ran before
    inp = layers.Input(shape=(6, 6, 2))
    a = layers.Conv2D(3, 3, padding="same", activation="relu")(inp)
    b = layers.Conv2D(3, 1)(a)
    return models.Model(inp, layers.Dense(2)(layers.GlobalAveragePooling2D()(
        layers.Add()([a, b]))))


def native_functional(tmp):
    path = os.path.join(tmp, "functional.keras")
    native.save_model(_functional_model(), path)
    return Valid(path, "model", None, ["config.json"])


def keras_v3_model(tmp):
    """fastcnn's Keras 3 .keras (saving/keras_v3.py): a compiled model with its optimizer
    state and fastcnn's resume-state entry."""
    path = os.path.join(tmp, "model.keras")
    _native_model(tmp).save(path)
    return Valid(path, "model", None, ["config.json", "metadata.json", "fastcnn_state.json"])


def keras_v3_functional(tmp):
    """A nested functional model with new layers (depthwise, transposed conv, LayerNorm)."""
    inner_in = layers.Input(shape=(6, 6, 4))
    inner = models.Model(inner_in, layers.LayerNormalization()(
        layers.DepthwiseConv2D(3, padding="same")(inner_in)))
    inp = layers.Input(shape=(6, 6, 2))
    x = inner(layers.SeparableConv2D(4, 3, padding="same", activation="relu6")(inp))
    x = layers.Conv2DTranspose(2, 3, strides=2)(x)
    out = layers.Dense(2)(layers.GlobalMaxPooling2D()(x))
    path = os.path.join(tmp, "functional.keras")
    models.Model(inp, out).save(path)
    return Valid(path, "model", None, ["config.json"])


def keras_v3_weights(tmp):
    """fastcnn's Keras 3 .weights.h5 (HDF5, optimizer state included)."""
    model = _native_model(tmp)
    template = os.path.join(tmp, "template.keras")
    model.save(template)
    path = os.path.join(tmp, "model.weights.h5")
    model.save_weights(path)
    return Valid(path, "weights", template, [])


def onnx_model(tmp):
    """An ONNX file from fastcnn's export, read back by fastcnn.onnx.load_model (None
    without the onnx package: only this factory's test then skips)."""
    if importlib.util.find_spec("onnx") is None:
        return None
    path = os.path.join(tmp, "model.onnx")
    _functional_model().export(path, format="onnx", verbose=False)
    return Valid(path, "onnx", None, [])


def legacy_h5_keras2(tmp):
    path = os.path.join(tmp, "keras2_functional.h5")
    shutil.copy(os.path.join(FIX, "keras2_functional.h5"), path)
    return Valid(path, "model", None, ["h5attr:model_config"])


def legacy_h5_keras3(tmp):
    path = os.path.join(tmp, "keras3_sequential.h5")
    shutil.copy(os.path.join(FIX, "keras3_sequential.h5"), path)
    return Valid(path, "model", None, ["h5attr:model_config", "h5attr:training_config"])


def legacy_h5_nested(tmp):
    path = os.path.join(tmp, "keras2_nested.h5")
    shutil.copy(os.path.join(FIX, "keras2_nested.h5"), path)
    return Valid(path, "model", None, ["h5attr:model_config"])


def legacy_h5_weights(tmp):
    path = os.path.join(tmp, "keras2_weights.h5")
    shutil.copy(os.path.join(FIX, "keras2_sequential_weights.h5"), path)
    template = os.path.join(tmp, "template.keras")
    models.load_model(os.path.join(FIX, "keras2_sequential.h5"), compile=False).save(template)
    return Valid(path, "weights", template, [])


FACTORIES = {"native_keras": native_keras, "native_weights": native_weights,
             "native_functional": native_functional, "legacy_h5_keras2": legacy_h5_keras2,
             "legacy_h5_keras3": legacy_h5_keras3, "legacy_h5_weights": legacy_h5_weights,
             "legacy_h5_nested": legacy_h5_nested, "keras_v3_model": keras_v3_model,
             "keras_v3_functional": keras_v3_functional, "keras_v3_weights": keras_v3_weights,
             "onnx_model": onnx_model}


# ------------------------------------------------------------------ mutations

HOSTILE_VALUES = [
    10 ** 9, 10 ** 12, 2 ** 63, 2 ** 31 - 1, -1, -10 ** 9, 0, 0.5, -3.7, 1e300, float("inf"),
    "x" * 200_000, "", "relu", "\u0000", None, True, False, [], {}, [None], [10 ** 9, 10 ** 9],
    [-1, -1], {"class_name": "Lambda", "config": {}}, {"class_name": "X" * 1000},
]


def deep(n):
    value = 1
    for _ in range(n):
        value = [value]
    return value


def json_paths(obj, prefix=()):
    """Every (path, value) in a JSON document, containers included."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += json_paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += json_paths(v, prefix + (i,))
    return out


def set_path(obj, path, value, delete=False):
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return obj


@st.composite
def mutations(draw, valid):
    """One mutation of a valid file: ("flip", [(pos, bit)...]), ("truncate", fraction),
    ("json", entry, path index, replacement) or ("garbage", bytes)."""
    kinds = ["flip", "truncate"] + (["json"] * 3 if valid.json_entries else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "flip":
        return ("flip", draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                st.integers(0, 7)), min_size=1, max_size=8)))
    if kind == "truncate":
        return ("truncate", draw(st.floats(0, 1, exclude_max=True)))
    entry = draw(st.sampled_from(valid.json_entries))
    what = draw(st.one_of(st.sampled_from(HOSTILE_VALUES).map(lambda v: ("value", v)),
                          st.just(("delete", None)),
                          st.integers(150, 3000).map(lambda n: ("deep", n)),
                          st.integers(-2 ** 70, 2 ** 70).map(lambda v: ("value", v))))
    return ("json", entry, draw(st.integers(0, 10 ** 6)), what)


def read_json_entry(path, entry):
    if entry.startswith("h5attr:"):
        import h5py
        with h5py.File(path, "r") as f:
            raw = f.attrs[entry[7:]]
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(entry))


def write_json_entry(src, dst, entry, text):
    if entry.startswith("h5attr:"):
        import h5py
        shutil.copy(src, dst)
        with h5py.File(dst, "r+") as f:
            f.attrs[entry[7:]] = text
        return
    with zipfile.ZipFile(src) as zf:
        items = [(n, zf.read(n)) for n in zf.namelist()]
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in items:
            zf.writestr(name, text if name == entry else data)


def apply(valid, mutation, dst):
    """Write the mutated file to dst; returns a description for failure messages."""
    data = open(valid.path, "rb").read()
    if mutation[0] == "flip":
        buf = bytearray(data)
        for frac, bit in mutation[1]:
            buf[int(frac * len(buf))] ^= 1 << bit
        open(dst, "wb").write(bytes(buf))
        return "bit flips %s" % [(int(f * len(buf)), b) for f, b in mutation[1]]
    if mutation[0] == "truncate":
        cut = int(mutation[1] * len(data))
        open(dst, "wb").write(data[:cut])
        return "truncated to %d of %d bytes" % (cut, len(data))
    _, entry, index, (op, value) = mutation
    doc = read_json_entry(valid.path, entry)
    paths = json_paths(doc)
    path = paths[index % len(paths)]
    if op == "delete":
        if not path:
            return apply(valid, ("truncate", 0.0), dst)
        doc = set_path(doc, path, None, delete=True)
    else:
        doc = set_path(doc, path, deep(value) if op == "deep" else value)
    text = json.dumps(doc, allow_nan=True) if op != "deep" else _dumps_deep(doc)
    write_json_entry(valid.path, dst, entry, text)
    return "%s: %s at %r -> %.80r" % (entry, op, path, value)


def _dumps_deep(doc):
    # json.dumps recurses too; nesting deeper than its limit is written by hand
    try:
        return json.dumps(doc)
    except RecursionError:
        return '{"class_name": "Sequential", "config": %s}' % ("[" * 5000 + "]" * 5000)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    out = {}
    for name, factory in FACTORIES.items():
        tmp = str(tmp_path_factory.mktemp(name))
        out[name] = factory(tmp)
    return out


def test_factories_make_loadable_files(valid_files):
    made = {name: v for name, v in valid_files.items() if v is not None}
    jobs = [(v.path, v.kind) + ((v.template,) if v.template else ()) for v in made.values()]
    for name, result in zip(made, load_in_child(jobs)):
        assert result["outcome"] == "ok", (name, result)


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_mutated_files_fail_cleanly(factory, valid_files, tmp_path_factory):
    valid = valid_files[factory]
    if valid is None:
        pytest.skip("%s needs a package that is not installed" % factory)
    counter = iter(range(10 ** 9))

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(mutations(valid), min_size=FILES_PER_EXAMPLE, max_size=FILES_PER_EXAMPLE))
    def check(batch):
        tmp = tmp_path_factory.mktemp("fuzz_%s_%d" % (factory, next(counter)))
        jobs, described = [], []
        suffix = os.path.basename(valid.path).split(".", 1)[1]
        for i, mutation in enumerate(batch):
            dst = os.path.join(str(tmp), "m%02d.%s" % (i, suffix))
            described.append(apply(valid, mutation, dst))
            jobs.append((dst, valid.kind) + ((valid.template,) if valid.template else ()))
        try:
            results = load_in_child(jobs, timeout=60, limit=MEMORY_LIMIT)
        except AssertionError as e:  # the child died: name the first file it did not finish
            raise AssertionError("%s\nmutations: %s" % (e, described)) from None
        for desc, result in zip(described, results):
            OUTCOMES[factory][result["outcome"]] += 1
            assert result["outcome"] in ACCEPTED, (desc, result)
            if result["outcome"] != "ok":
                assert result["path"] in result["message"], (desc, result)

    check()
    print(factory, dict(OUTCOMES[factory]))
