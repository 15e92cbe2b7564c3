"""fastcnn's format before it wrote Keras 3's own (no pickle, no HDF5): the reader of files
from older fastcnn versions, and the writer behind ``model.save("x.h5")``. ``.keras`` and
``.weights.h5`` files are now written by :mod:`fastcnn.saving.keras_v3`.

The format is a zip archive holding:

* ``metadata.json``  -- format name and version, fastcnn version;
* ``config.json``    -- the architecture (each layer's ``get_config``) and compile settings
  (optimizer / loss / metrics configs);
* ``model.weights.npz`` -- every weight, extra layer state (dropout seed counters), the
  optimizer state (iterations, learning rate, slot arrays) and fit's shuffle seed, so
  ``load_model`` + ``fit(initial_epoch=k)`` resumes bitwise exactly.

Weights-only files of that format are the same kind of zip with the weights only (older
``x.weights.h5`` files, whose content is NOT HDF5). Everything is read with ``json`` and
``np.load(allow_pickle=False)``: nothing in a file is ever unpickled or executed, and a file
with entries fastcnn does not write is refused. Files are written atomically (a crash never
leaves a half file in place). Damaged, truncated, foreign or newer-version files raise
ValueError naming the file and the problem.
"""
import datetime
import io
import json
import math
import os
import zipfile

import numpy as np

from .._fileio import atomic_write
from . import limits

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_MODEL_FORMAT = "fastcnn.model"
_WEIGHTS_FORMAT = "fastcnn.weights"
_WEIGHTS_ENTRY = "model.weights.npz"
_SHUFFLE_SEED = "model/shuffle_seed"
_MODEL_CLASSES = ("Sequential", "Functional")
_ENTRIES = {_MODEL_FORMAT: ("metadata.json", "config.json", _WEIGHTS_ENTRY),
            _WEIGHTS_FORMAT: ("metadata.json", _WEIGHTS_ENTRY)}
# What rebuilding a model from a damaged/hostile config.json can raise besides ValueError.
_REBUILD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
                   RecursionError)


def _version():
    from .. import _config
    return _config.__version__


def _weight_keys(model):
    """[(layer_index, layer, [(key, variable), ...])] for every (leaf) layer."""
    out = []
    for i, layer in enumerate(model.leaf_layers()):
        out.append((i, layer, [("layers/%d/vars/%d" % (i, j), v)
                               for j, v in enumerate(layer.weights)]))
    return out


def _arrays_for(model, with_optimizer):
    arrays = {}
    layout = []
    var_keys = {}
    for i, layer, pairs in _weight_keys(model):
        layout.append({"index": i, "name": layer.name, "class_name": type(layer).__name__,
                       "weights": [[v.name, list(v.shape)] for _, v in pairs]})
        for key, var in pairs:
            arrays[key] = var.value
            var_keys[id(var)] = key
        for name, arr in layer.extra_state().items():
            arrays["layers/%d/state/%s" % (i, name)] = np.asarray(arr)
    if with_optimizer and model.optimizer is not None:
        opt = model.optimizer
        # raw count of apply calls (= iterations without gradient accumulation)
        arrays["optimizer/iterations"] = np.array(opt.raw_iterations, dtype=np.int64)
        if isinstance(opt.get_config()["learning_rate"], float):  # not a schedule
            arrays["optimizer/learning_rate"] = np.array(float(opt.learning_rate), np.float32)
        for var in model.trainable_weights:
            for slot, arr in opt.slots_of(var):
                arrays["optimizer/%s/%s" % (var_keys[id(var)], slot)] = arr
    return arrays, layout


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _check_overwrite(filepath, overwrite):
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError("%s already exists and overwrite=False" % filepath)


def _write_zip(filepath, entries):
    with atomic_write(filepath, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in entries:
                zf.writestr(name, data)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Write architecture, weights and optimizer state of ``model`` to ``filepath``.

    Args:
        model: a built model.
        filepath: a path ending in ``.keras`` (``.h5`` is accepted as an alias; the content
            is fastcnn's zip format either way, never HDF5).
        overwrite: replace an existing file.
        zipped: only ``None``/``True``.

    Raises:
        ValueError: for another extension or an unbuilt model.
        FileExistsError: if the file exists and ``overwrite=False``.
    """
    if kwargs:
        raise TypeError("save: unexpected arguments %s" % sorted(kwargs))
    if zipped is False:
        raise ValueError("save: zipped=False is not supported; fastcnn always writes one file")
    filepath = os.fspath(filepath)
    if not filepath.endswith((".keras", ".h5")):
        raise ValueError("Invalid filepath extension for saving. Please add a `.keras` "
                         "extension (fastcnn's zip model format; `.h5` is accepted as an alias "
                         "but is not HDF5). Received: filepath=%s" % filepath)
    if not model.built:
        raise ValueError("save: the model '%s' has not been built yet, so it has no weights to "
                         "save; build it (model.build or an input shape) first" % model.name)
    _check_overwrite(filepath, overwrite)
    from .. import losses, optimizers
    config = {"class_name": type(model).__name__, "config": model.get_config()}
    if model.compiled:
        config["compile_config"] = {
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": losses.serialize(model.loss) if model.loss is not None else None,
        }
        config["compile_config"].update(model._compile_metrics_config())
    arrays, layout = _arrays_for(model, with_optimizer=model.compiled)
    if model.shuffle_seed is not None:  # fit's shuffles continue exactly
        arrays[_SHUFFLE_SEED] = np.array(model.shuffle_seed, dtype=np.int64)
    metadata = {"format": _MODEL_FORMAT, "format_version": FORMAT_VERSION,
                "fastcnn_version": _version(), "layout": layout,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    class_names = getattr(model, "class_names", None)  # set by `fastcnn train --data DIR`
    if isinstance(class_names, (list, tuple)) and all(isinstance(c, str) for c in class_names):
        metadata["class_names"] = list(class_names)  # an optional key: older files lack it
    _write_zip(filepath, [("metadata.json", json.dumps(metadata, indent=1)),
                          ("config.json", json.dumps(config, indent=1)),
                          (_WEIGHTS_ENTRY, _npz_bytes(arrays))])


def save_weights(model, filepath, overwrite=True):
    """Write the model's weights (not the optimizer) to ``filepath`` (``*.weights.h5``).

    Args:
        model: a built model.
        filepath: a path ending in ``.weights.h5`` (fastcnn's zip format, not HDF5).
        overwrite: replace an existing file.

    Raises:
        ValueError: for another file name or an unbuilt model.
        FileExistsError: if the file exists and ``overwrite=False``.
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".weights.h5"):
        raise ValueError("The filename must end in `.weights.h5` (fastcnn's zip weights format, "
                         "not HDF5). Received: filepath=%s" % filepath)
    if not model.built:
        raise ValueError("save_weights: the model '%s' has not been built yet" % model.name)
    _check_overwrite(filepath, overwrite)
    arrays, layout = _arrays_for(model, with_optimizer=False)
    metadata = {"format": _WEIGHTS_FORMAT, "format_version": FORMAT_VERSION,
                "fastcnn_version": _version(), "layout": layout}
    _write_zip(filepath, [("metadata.json", json.dumps(metadata, indent=1)),
                          (_WEIGHTS_ENTRY, _npz_bytes(arrays))])


class _Archive:
    """A checked view of a saved file: metadata, optional config and the arrays."""

    def __init__(self, filepath, expected_formats):
        self.path = os.fspath(filepath)
        if not os.path.exists(self.path):
            raise FileNotFoundError("No such file: %s" % self.path)
        if os.path.isdir(self.path):
            raise ValueError("%s is a directory, not a fastcnn model/weights file" % self.path)
        try:
            with zipfile.ZipFile(self.path, "r") as zf:
                names = set(zf.namelist())
                if "metadata.json" not in names:
                    self._fail("it has no metadata.json (not a file written by fastcnn)")
                self.metadata = self._json(zf, "metadata.json")
                fmt = self.metadata.get("format") if isinstance(self.metadata, dict) else None
                if fmt not in (_MODEL_FORMAT, _WEIGHTS_FORMAT):
                    self._fail("unknown format %r (not a file written by fastcnn)" % (fmt,))
                if fmt not in expected_formats:
                    self._fail("it is a %s file, expected %s"
                               % (fmt, " or ".join(expected_formats)))
                version = self.metadata.get("format_version")
                if not isinstance(version, int) or version < 1:
                    self._fail("invalid format_version %r" % (version,))
                if version > FORMAT_VERSION:
                    self._fail("it was written in format version %d by a newer fastcnn (%s); "
                               "this fastcnn reads up to version %d"
                               % (version, self.metadata.get("fastcnn_version"), FORMAT_VERSION))
                self.format = fmt
                unexpected = sorted(names - set(_ENTRIES[fmt]))
                if unexpected:
                    self._fail("it contains unexpected entries %s (a %s file holds only %s); "
                               "refusing to load it" % (unexpected[:5], fmt,
                                                        ", ".join(_ENTRIES[fmt])))
                self.config = (self._json(zf, "config.json") if "config.json" in names
                               else None)
                if fmt == _MODEL_FORMAT and self.config is None:
                    self._fail("config.json is missing")
                if _WEIGHTS_ENTRY not in names:
                    self._fail("%s is missing" % _WEIGHTS_ENTRY)
                info = zf.getinfo(_WEIGHTS_ENTRY)
                try:  # a deflated entry must not expand far beyond its stored bytes
                    limits.check_expansion(info.file_size, info.compress_size, _WEIGHTS_ENTRY,
                                           self.path)
                except ValueError as e:
                    self._fail(str(e).replace(self.path + ": ", "", 1), e)
                raw = zf.read(_WEIGHTS_ENTRY)
        except zipfile.BadZipFile as e:
            self._fail("it is not a valid zip archive or is truncated/corrupted (%s)" % e)
        except (NotImplementedError, RuntimeError) as e:  # compression method, encryption
            self._fail("it uses a zip feature fastcnn does not write (%s)" % e)
        except (EOFError, OSError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            self._fail("it could not be read (%s)" % e)
        self._check_npy_headers(raw)
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                self.arrays = {k: npz[k] for k in npz.files}
        except Exception as e:  # zip/npy parse errors of the inner archive
            if "allow_pickle" in str(e):
                self._fail("its weights archive is corrupted: it holds pickled Python objects "
                           "(object arrays), which fastcnn never writes and refuses to "
                           "unpickle", e)
            self._fail("its weights archive is corrupted (%s: %s)" % (type(e).__name__, e), e)
        for k, v in self.arrays.items():
            if not isinstance(v, np.ndarray):  # an npz member that is not a .npy array
                self._fail("its weights archive holds a non-array entry %r" % (k,))

    def _fail(self, what, cause=None):
        """Raise ValueError naming the file and what is wrong with it."""
        err = ValueError("Cannot load %s: %s" % (self.path, what))
        if cause is not None:
            raise err from cause
        raise err

    def _json(self, zf, name):
        try:  # sizes and nesting are bounded before and after parsing (saving.limits)
            limits.check_json_size(zf.getinfo(name).file_size, name, self.path)
            return limits.loads_json(zf.read(name), name, self.path)
        except ValueError as e:
            self._fail(str(e).replace(self.path + ": ", "", 1), e)

    def _check_npy_headers(self, raw):
        """Every array in the weights archive must store the bytes its header declares,
        so np.load never allocates more than the file holds."""
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as inner:
                for info in inner.infolist():
                    limits.check_expansion(info.file_size, info.compress_size,
                                           "weights archive member %r" % info.filename,
                                           self.path)
                    if not info.filename.endswith(".npy"):
                        continue  # np.load reports non-array members; checked below
                    with inner.open(info) as f:
                        version = np.lib.format.read_magic(f)
                        if version == (1, 0):
                            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                        else:
                            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    if dtype.hasobject:
                        continue  # refused by np.load(allow_pickle=False) below
                    declared = math.prod(shape) * dtype.itemsize
                    if declared > info.file_size:
                        self._fail("its weights archive is corrupted: array %r declares shape "
                                   "%s (%d bytes) but stores only %d bytes"
                                   % (info.filename[:-4], shape, declared, info.file_size))
        except ValueError as e:
            if str(e).startswith("Cannot load "):
                raise
            self._fail(str(e).replace(self.path + ": ", "", 1), e)
        except Exception as e:  # zip/npy header parse errors of the inner archive
            self._fail("its weights archive is corrupted (%s: %s)" % (type(e).__name__, e), e)

    def stored_weight_values(self):
        """The number of layer weight values the file holds (the allocation budget)."""
        return sum(int(v.size) for k, v in self.arrays.items()
                   if k.startswith("layers/") and "/vars/" in k)

    def layout(self):
        """The metadata's per-layer layout, every entry checked (index, name, weights)."""
        layout = self.metadata.get("layout")
        if not isinstance(layout, list):
            self._fail("metadata has no valid layer layout")
        for pos, entry in enumerate(layout):
            if not (isinstance(entry, dict) and _is_count(entry.get("index"))
                    and isinstance(entry.get("name"), str)
                    and isinstance(entry.get("class_name", ""), str)
                    and isinstance(entry.get("weights", []), list)
                    and all(isinstance(w, list) and len(w) == 2 and isinstance(w[0], str)
                            and isinstance(w[1], list) and all(_is_count(d) for d in w[1])
                            for w in entry.get("weights", []))):
                self._fail("metadata layout entry %d is malformed: %.200r" % (pos, entry))
        return layout

    def get(self, key, shape=None, what=None):
        if key not in self.arrays:
            self._fail("%s is missing (%s)" % (what or key, key))
        arr = self.arrays[key]
        if shape is not None and tuple(arr.shape) != tuple(shape):
            self._fail("%s has shape %s but the model expects %s"
                       % (what or key, tuple(arr.shape), tuple(shape)))
        if arr.dtype.kind not in "biuf":
            self._fail("%s has non-numeric dtype %s" % (what or key, arr.dtype))
        return arr


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _load_arrays_into(model, archive, skip_mismatch=False):
    """Assign layer weights (by layer position) and extra state from an archive."""
    layout = archive.layout()
    saved_with_weights = [e for e in layout if e.get("weights")]
    leaves = model.leaf_layers()
    own_with_weights = [(i, l) for i, l in enumerate(leaves) if l.weights]
    if len(saved_with_weights) != len(own_with_weights) and not skip_mismatch:
        archive._fail("it holds weights for %d layers (%s) but model '%s' has %d layers with "
                      "weights (%s)"
                      % (len(saved_with_weights), ", ".join(e["name"] for e in saved_with_weights),
                         model.name, len(own_with_weights),
                         ", ".join(l.name for _, l in own_with_weights)))
    pending = []
    for entry, (i, layer) in zip(saved_with_weights, own_with_weights):
        src = entry["index"]
        values = []
        mismatch = len(entry["weights"]) != len(layer.weights)
        for j, var in enumerate(layer.weights):
            key = "layers/%d/vars/%d" % (src, j)
            if mismatch or key not in archive.arrays or \
                    archive.arrays[key].shape != var.shape:
                if skip_mismatch:
                    values = None
                    break
                what = "weight '%s' of layer '%s' (saved as layer '%s')" % (
                    var.name, layer.name, entry["name"])
                if mismatch:
                    archive._fail("%s: saved layer has %d weights, model layer has %d"
                                  % (what, len(entry["weights"]), len(layer.weights)))
            values.append(archive.get(key, var.shape, "weight '%s' of layer '%s'"
                                      % (var.name, layer.name)))
        if values is not None:
            pending.append((layer, values, src))
    for layer, values, src in pending:
        for var, val in zip(layer.weights, values):
            var.assign(val)
    # extra state (e.g. dropout seed streams) when the layer stacks are the same
    if [e.get("class_name") for e in layout] == [type(l).__name__ for l in leaves]:
        for i, layer in enumerate(leaves):
            prefix = "layers/%d/state/" % layout[i]["index"]
            state = {k[len(prefix):]: v for k, v in archive.arrays.items()
                     if k.startswith(prefix)}
            if state:
                if any(v.shape != () or v.dtype.kind not in "iu" for v in state.values()):
                    archive._fail("the saved state of layer '%s' is malformed" % layer.name)
                layer.set_extra_state(state)


def load_weights(model, filepath, skip_mismatch=False):
    """Load weights saved by ``save_weights`` or ``save`` into a built model.

    Args:
        model: a built model of the same architecture.
        filepath: a ``.weights.h5`` or ``.keras`` file written by fastcnn.
        skip_mismatch: skip layers whose weight shapes differ instead of raising.

    Raises:
        ValueError: for an unbuilt model, a file that is not fastcnn's, damaged or does not
            match the model (the message names the file and the problem).
    """
    archive = _Archive(filepath, (_WEIGHTS_FORMAT, _MODEL_FORMAT))
    if not model.built:
        raise ValueError("load_weights: the model '%s' has not been built yet; build it with the "
                         "same architecture first" % model.name)
    _load_arrays_into(model, archive, skip_mismatch)


def _compiled_metrics(saved, custom_objects):
    """compile()'s metrics from their saved form (names stay names: 'accuracy' resolves
    against the data again)."""
    from .. import metrics
    return [m if isinstance(m, str) else metrics.deserialize(m, custom_objects)
            for m in saved or []]


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved by ``model.save``: architecture, weights, compile state and the
    optimizer state (so ``fit`` continues exactly where it stopped).

    Args:
        filepath: a ``.keras`` file written by fastcnn.
        custom_objects: dict of name -> class for layers or other objects of your own.
        compile: restore the compile state (optimizer, loss, metrics) too.
        safe_mode: accepted for Keras compatibility; fastcnn files never contain code.

    Returns:
        The model.

    Raises:
        ValueError: for a file that is not a fastcnn model, is damaged, truncated or of a
            newer format version (the message names the file and the problem).
        FileNotFoundError: if the file does not exist.

    Example:
        >>> model = fastcnn.zoo.tutorial_model()
        >>> model.save("tutorial.keras")
        >>> fastcnn.models.load_model("tutorial.keras").count_params()
        122570
    """
    from .. import layers, losses, optimizers
    archive = _Archive(filepath, (_MODEL_FORMAT,))
    config = archive.config
    if not isinstance(config, dict) or config.get("class_name") not in _MODEL_CLASSES:
        archive._fail("config.json does not describe a model (class_name %.80r; expected one "
                      "of %s)" % (config.get("class_name") if isinstance(config, dict) else None,
                                  ", ".join(_MODEL_CLASSES)))
    try:  # the architecture may declare no more weights than the file stores
        with limits.allocation_budget(archive.stored_weight_values(), archive.path):
            model = layers.deserialize({"class_name": config["class_name"],
                                        "config": config.get("config", {})}, custom_objects)
    except _REBUILD_ERRORS as e:
        archive._fail("its architecture could not be rebuilt (%s: %s)"
                      % (type(e).__name__, str(e).replace(archive.path + ": ", "", 1)), e)
    if not model.built:
        archive._fail("the saved architecture has no input shape")
    _load_arrays_into(model, archive)
    class_names = archive.metadata.get("class_names")
    if isinstance(class_names, list) and all(isinstance(c, str) for c in class_names):
        model.class_names = class_names
    if _SHUFFLE_SEED in archive.arrays:
        seed = archive.get(_SHUFFLE_SEED, (), "the shuffle seed")
        if seed.dtype.kind not in "iu" or int(seed) < 0:
            archive._fail("the shuffle seed %r is not an integer >= 0" % (seed.item(),))
        model.shuffle_seed = int(seed)
    compile_config = config.get("compile_config")
    if compile and compile_config:
        try:
            model.compile(
                optimizer=optimizers.deserialize(compile_config["optimizer"], custom_objects),
                loss=(losses.deserialize(compile_config["loss"], custom_objects)
                      if compile_config.get("loss") else None),
                metrics=_compiled_metrics(compile_config.get("metrics"), custom_objects),
                weighted_metrics=_compiled_metrics(compile_config.get("weighted_metrics"),
                                                   custom_objects))
        except _REBUILD_ERRORS as e:
            archive._fail("its compile settings could not be restored (%s: %s)"
                          % (type(e).__name__, e), e)
        if "optimizer/iterations" in archive.arrays:
            _restore_optimizer(model, archive)
    return model


def _restore_optimizer(model, archive):
    opt = model.optimizer
    keys = {}
    for i, layer in enumerate(model.leaf_layers()):
        for j, v in enumerate(layer.weights):
            keys[id(v)] = "layers/%d/vars/%d" % (i, j)
    variables = model.trainable_weights
    iterations = archive.get("optimizer/iterations", (), "optimizer iterations")
    if iterations.dtype.kind not in "iu" or int(iterations) < 0:
        archive._fail("the optimizer iteration count %r is not an integer >= 0"
                      % (iterations.item(),))
    iterations = int(iterations)
    opt.build(variables)
    for var in variables:
        for slot, arr in opt.slots_of(var):
            key = "optimizer/%s/%s" % (keys[id(var)], slot)
            if key not in archive.arrays and iterations == 0:
                continue
            np.copyto(arr, archive.get(key, arr.shape, "optimizer slot '%s' of %s"
                                       % (slot, var.path)), casting="unsafe")
    opt.raw_iterations = iterations
    if "optimizer/learning_rate" in archive.arrays:
        lr = float(archive.get("optimizer/learning_rate", (), "optimizer learning rate"))
        try:
            opt.learning_rate = lr
        except ValueError as e:
            archive._fail("its optimizer learning rate is invalid (%s)" % e, e)
