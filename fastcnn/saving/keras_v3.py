"""Keras 3's own ``.keras`` format and its ``.weights.h5`` weights files, read and written.

A ``.keras`` file is a zip archive holding

* ``metadata.json``   -- ``keras_version`` and ``date_saved`` (plus ``fastcnn_version``);
* ``config.json``     -- Keras 3's serialization of the model: every object as
  ``{"module", "class_name", "config", "registered_name"}``, layers with their
  ``build_config``, the model's ``compile_config``, dtypes as ``DTypePolicy`` dicts;
* ``model.weights.h5`` -- an HDF5 file in Keras 3's layout: a layer's variables at
  ``layers/<snake_case class name>[_k]/vars/<i>`` (the ``_k`` counts earlier layers of the
  same class in the same container), a nested model's layers under its own path, the
  optimizer's variables at ``optimizer/vars/<i>`` in Keras' order (iteration count, learning
  rate, then the slots);
* ``fastcnn_state.json`` -- what exact resumption needs and Keras has no place for (fit's
  shuffle seed, the seed counters of dropout/augmentation layers, class names). Keras
  ignores zip entries it does not know, so Keras 3 loads fastcnn's files unchanged.

``*.weights.h5`` files are the same HDF5 layout stored on their own (Keras'
``save_weights``). Reading never executes or unpickles anything: JSON is parsed with
``json``, each HDF5 dataset is read only after its shape and dtype were checked against the
model, ``Lambda`` layers and serialized functions are refused, and classes that are not
fastcnn's own load only with ``safe_mode=False`` and the class given in ``custom_objects``.
"""
import datetime
import io
import json
import os
import re
import warnings
import zipfile

import numpy as np

from .._fileio import atomic_write
from . import limits
from ._files import fail as _fail, is_hdf5, names_file

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "is_keras_zip",
           "KERAS_VERSION"]

# the Keras release whose file layout this module writes (metadata.json's keras_version)
KERAS_VERSION = "3.15.1"
CONFIG_ENTRY = "config.json"
METADATA_ENTRY = "metadata.json"
WEIGHTS_ENTRY = "model.weights.h5"
STATE_ENTRY = "fastcnn_state.json"
_STATE_FORMAT = "fastcnn.resume_state"
_STATE_VERSION = 1
# a zip entry declaring more than this many times its stored size (and over _BOMB_FLOOR
# bytes) is a decompression bomb, not a model
_BOMB_RATIO = 200
_BOMB_FLOOR = 1 << 26
# keys of serialized objects that only Keras' own loader uses
_OBJECT_ONLY_KEYS = ("module", "registered_name", "build_config", "compile_config",
                     "shared_object_id")
# Keras arguments fastcnn has no counterpart for, dropped when they hold the value that
# means "off" (None: any value; the argument has no effect when the others are off)
_NEUTRAL = {"ragged": False, "optional": False, "quantization_config": None,
            "renorm": False, "renorm_clipping": None, "renorm_momentum": Ellipsis,
            "input_axes": None, "output_axes": None}
_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")
# the reverse on writing: keys Keras 3.15 writes for features fastcnn does not have, with
# the "off" value fastcnn implies, so a fastcnn file's config.json is the one Keras writes
_KERAS_ONLY = {"InputLayer": (("ragged", False), ("optional", False)),
               "BatchNormalization": (("renorm", False), ("renorm_clipping", None),
                                      ("renorm_momentum", 0.99)),
               "Dense": (("quantization_config", None),)}
_VARIANCE_SCALING = ("VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
                     "HeNormal", "LecunUniform", "LecunNormal")
_SUFFIX_MODULES = (("_initializer", "keras.initializers"), ("_regularizer", "keras.regularizers"),
                   ("_constraint", "keras.constraints"))
# what rebuilding from a damaged or hostile config.json can raise besides ValueError
_REBUILD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
                   RecursionError)
# fastcnn's slot names where Keras calls them differently
_KERAS_SLOT_NAMES = {"m": "momentum", "v": "velocity", "vhat": "velocity_hat"}
_FRONT_SLOTS = ("average", "gradient_accumulator")  # the base optimizer's, before the rule's


def _version():
    from .. import _config
    return _config.__version__


def _snake(name):
    """Keras' snake_case of a class name (``Conv2D`` -> ``conv2d``, ``ReLU`` -> ``re_lu``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_model(layer):
    return callable(getattr(layer, "leaf_layers", None)) and hasattr(layer, "layers")


def _layer_paths(model, prefix=""):
    """[(HDF5 group path, layer)] in Keras' layout; a layer reached twice is listed once."""
    out, seen = [], set()

    def walk(container, base):
        used = {}
        for layer in container.layers:
            name = _snake(type(layer).__name__)
            if name in used:
                used[name] += 1
                name = "%s_%d" % (name, used[name])
            else:
                used[name] = 0
            if id(layer) in seen:  # Keras counts the name, then skips what it saved
                continue
            seen.add(id(layer))
            path = base + "layers/" + name
            out.append((path, layer))
            if _is_model(layer):
                walk(layer, path + "/")
    seen.add(id(model))
    walk(model, prefix)
    return out


# ====================================================================== config: writing
def _listify(value):
    if isinstance(value, (tuple, list)):
        return [_listify(v) for v in value]
    return value


def _keras_object(d, module, registered_name=None):
    """A fastcnn ``{"class_name", "config"}`` dict in Keras' serialized-object form."""
    return {"module": module, "class_name": d["class_name"], "config": d.get("config", {}),
            "registered_name": registered_name}


def _policy(name):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def _keras_layer_config(entry, layer):
    """One layer entry of a fastcnn config (``layers.serialize`` output, plus ``name`` and
    ``inbound_nodes`` inside a functional model) as Keras 3 writes it."""
    cls = entry["class_name"]
    cfg = dict(entry.get("config", {}))
    for key, value in list(cfg.items()):
        if key == "dtype" and isinstance(value, str) and cls != "InputLayer":
            cfg[key] = _policy(value)
        elif isinstance(value, dict) and "class_name" in value:
            if value["class_name"] in _VARIANCE_SCALING:
                value = dict(value, config=dict(value.get("config", {}), input_axes=None,
                                                output_axes=None))
            for suffix, module in _SUFFIX_MODULES:
                if key.endswith(suffix):
                    cfg[key] = _keras_object(value, module)
    for key, value in _KERAS_ONLY.get(cls, ()):
        cfg.setdefault(key, value)
    is_model = layer is not None and _is_model(layer)
    if is_model:
        cfg["layers"] = _keras_layers(cfg.get("layers", []), layer)
        if cls == "Sequential":  # Keras gives a Sequential a dtype, a Functional none
            cfg.setdefault("dtype", _policy("float32"))
    if cls in ("Sequential",):
        out = {"module": "keras", "class_name": cls, "config": cfg, "registered_name": None}
    elif is_model:
        out = {"module": "keras.src.models.functional", "class_name": "Functional",
               "config": cfg, "registered_name": "Functional"}
    else:
        out = {"module": "keras.layers", "class_name": cls, "config": cfg,
               "registered_name": None}
    shape = getattr(layer, "input_shape", None) if layer is not None else None
    if shape is not None and cls != "InputLayer":
        out["build_config"] = {"input_shape": _listify(shape)}
    if is_model:
        out["compile_config"] = {}
    for key in ("name", "inbound_nodes"):
        if key in entry:
            out[key] = entry[key]
    return out


def _shift_model_nodes(config, delta):
    """Shift the node index of references to nested functional models by ``delta``, in
    place, through nested configs: Keras counts the node a functional model makes for
    itself when built (its callers' nodes start at 1), fastcnn does not."""
    entries = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(entries, list):
        return
    models = {e.get("name") for e in entries if isinstance(e, dict)
              and e.get("class_name") in ("Functional", "Model")
              and isinstance(e.get("name"), str)}
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("config"), dict):
            _shift_model_nodes(e["config"], delta)

    def ref(r):
        if (isinstance(r, list) and len(r) == 3 and isinstance(r[0], str) and r[0] in models
                and isinstance(r[1], int)
                and not isinstance(r[1], bool)):
            r[1] += delta
            return True
        return False

    def walk(value, depth=0):
        if depth > 64:
            return
        if isinstance(value, dict):
            if value.get("class_name") == "__keras_tensor__" and isinstance(value.get("config"),
                                                                            dict):
                ref(value["config"].get("keras_history"))
            for v in value.values():
                walk(v, depth + 1)
        elif isinstance(value, list):
            for v in value:
                walk(v, depth + 1)
    if models:
        for e in entries:
            if isinstance(e, dict):
                walk(e.get("inbound_nodes"))
        for key in ("input_layers", "output_layers"):
            refs = config.get(key)
            if not ref(refs) and isinstance(refs, list):
                for r in refs:
                    ref(r)


def _keras_layers(entries, model):
    by_name = {}
    for layer in model.layers:
        by_name.setdefault(layer.name, layer)
    return [_keras_layer_config(e, by_name.get(e.get("name", e.get("config", {}).get("name"))))
            for e in entries]


def _keras_compile_config(model):
    from .. import losses, optimizers
    opt = optimizers.serialize(model.optimizer)
    lr = opt["config"].get("learning_rate")
    if isinstance(lr, dict) and lr.get("class_name") != "function":
        opt["config"]["learning_rate"] = _keras_object(lr, "keras.optimizers.schedules")
    loss = model.loss
    if loss is not None and not isinstance(loss, str):
        loss = _keras_object(losses.serialize(loss), "keras.losses")
    metrics = model._compile_metrics_config()

    def keras_metrics(ms):
        if not ms:
            return None
        return [_keras_object(m, "keras.metrics") if isinstance(m, dict) and "class_name" in m
                else m for m in ms]
    return {"optimizer": _keras_object(opt, "keras.optimizers"), "loss": loss,
            "loss_weights": None, "metrics": keras_metrics(metrics.get("metrics")),
            "weighted_metrics": keras_metrics(metrics.get("weighted_metrics")),
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}


def _model_config(model):
    """The whole ``config.json`` of a model, in Keras 3's form."""
    entry = {"class_name": type(model).__name__, "config": model.get_config()}
    out = _keras_layer_config(entry, model)
    out.pop("compile_config", None)
    out["build_config"] = {"input_shape": (_listify(model.input_shape)
                                           if out["class_name"] == "Sequential" else None)}
    if model.compiled:
        out["compile_config"] = _keras_compile_config(model)
    _shift_model_nodes(out["config"], +1)
    return out


# ====================================================================== weights: writing
def _optimizer_layout(opt, variables):
    """[(kind, variable or None, fastcnn slot name or None)] in Keras' variable order:
    the iteration count, the learning rate (a float, not a schedule), the base optimizer's
    per-variable slots (EMA average, gradient accumulator), then the rule's slots in groups
    as Keras creates them (a group interleaves its slots per variable), then Nadam's
    running momentum product."""
    out = [("iterations", None, None)]
    if isinstance(opt.get_config()["learning_rate"], float):
        out.append(("learning_rate", None, None))
    names = [n for n, _ in opt.slots_of(variables[0])] if variables else []
    rule = [n for n in names if n not in _FRONT_SLOTS]
    groups = [[n] for n in _FRONT_SLOTS if n in names]
    if type(opt).__name__ == "RMSprop":  # Keras adds velocity, momentum, average apart
        groups += [[n] for n in rule]
    else:  # Adam's amsgrad velocity_hat comes after the momentum/velocity pairs
        groups += [[n for n in rule if n != "vhat"]] + ([["vhat"]] if "vhat" in rule else [])
    for group in groups:
        for var in variables:
            for name in group:
                if name:
                    out.append(("slot", var, name))
    if type(opt).__name__ == "Nadam":
        out.append(("u_product", None, None))
    return out


def _nadam_u_product(beta_1, steps):
    """Keras' Nadam ``_u_product`` after ``steps`` steps (float32, accumulated as Keras)."""
    f = np.float32
    up = f(1.0)
    for k in range(1, steps + 1):
        up = up * f(beta_1) * (f(1.0) - f(0.5) * f(0.96) ** f(k))
    return up


def _optimizer_arrays(model):
    opt = model.optimizer
    variables = model.trainable_weights
    if not opt.built:
        layout = [e for e in _optimizer_layout(opt, []) if e[0] != "u_product"]
    else:
        layout = _optimizer_layout(opt, variables)
    out = []
    for kind, var, name in layout:
        if kind == "iterations":
            out.append(np.array(opt.raw_iterations, dtype=np.int64))
        elif kind == "learning_rate":
            out.append(np.array(float(opt.learning_rate), dtype=np.float32))
        elif kind == "u_product":
            out.append(np.array(_nadam_u_product(opt.beta_1, opt.iterations), np.float32))
        else:
            out.append(dict(opt.slots_of(var))[name])
    return out


def _write_h5(f, model, with_optimizer):
    """Write the Keras 3 weights layout of ``model`` into the open h5py file ``f``."""
    f.create_group("layers")
    for path, layer in _layer_paths(model):
        group = f.create_group(path + "/vars")
        group.attrs["name"] = layer.name
        if _is_model(layer):
            continue  # a nested model's weights are its layers'
        for i, var in enumerate(layer.weights):
            group.create_dataset(str(i), data=np.asarray(var.value))
    if with_optimizer and model.optimizer is not None:
        group = f.create_group("optimizer/vars")
        group.attrs["name"] = model.optimizer.name
        for i, arr in enumerate(_optimizer_arrays(model)):
            group.create_dataset(str(i), data=arr)
    f.create_group("vars").attrs["name"] = model.name


def _h5_bytes(model, with_optimizer):
    import h5py
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write_h5(f, model, with_optimizer)
    return buf.getvalue()


def _resume_state(model):
    """What exact resumption needs beyond Keras' variables (fastcnn_state.json)."""
    layers_state = {}
    for path, layer in _layer_paths(model):
        state = layer.extra_state()
        if state:
            layers_state[path] = {k: {"value": int(np.asarray(v)),
                                      "dtype": np.asarray(v).dtype.name}
                                  for k, v in state.items()}
    state = {"format": _STATE_FORMAT, "version": _STATE_VERSION, "layers": layers_state,
             "shuffle_seed": model.shuffle_seed}
    class_names = getattr(model, "class_names", None)  # set by `fastcnn train --data DIR`
    if isinstance(class_names, (list, tuple)) and all(isinstance(c, str) for c in class_names):
        state["class_names"] = list(class_names)
    return state


def _check_writable(model, filepath, overwrite, who):
    if not model.built:
        raise ValueError("%s: the model '%s' has not been built yet, so it has no weights to "
                         "save; build it (model.build or an input shape) first"
                         % (who, model.name))
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError("%s already exists and overwrite=False" % filepath)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """Write ``model`` to a ``.keras`` file in Keras 3's format (loadable by Keras 3).

    Args:
        model: a built model.
        filepath: a path ending in ``.keras``.
        overwrite: replace an existing file.
        zipped: only ``None``/``True`` (Keras' unzipped directory form is not written).
        **kwargs: none are accepted (a clear TypeError instead of silently ignoring one).

    Raises:
        ValueError: for another extension or an unbuilt model.
        FileExistsError: if the file exists and ``overwrite=False``.
        TypeError: for an unknown keyword argument.
    """
    if kwargs:
        raise TypeError("save: unexpected arguments %s" % sorted(kwargs))
    if zipped is False:
        raise ValueError("save: zipped=False is not supported; fastcnn always writes one file")
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError("Invalid filepath extension for saving. Please add a `.keras` "
                         "extension. Received: filepath=%s" % filepath)
    _check_writable(model, filepath, overwrite, "save")
    metadata = {"keras_version": KERAS_VERSION, "fastcnn_version": _version(),
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    entries = [(METADATA_ENTRY, json.dumps(metadata)),
               (CONFIG_ENTRY, json.dumps(_model_config(model))),
               (WEIGHTS_ENTRY, _h5_bytes(model, with_optimizer=model.compiled)),
               (STATE_ENTRY, json.dumps(_resume_state(model)))]
    with atomic_write(filepath, "wb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in entries:
                zf.writestr(name, data)


def save_weights(model, filepath, overwrite=True):
    """Write the weights (and, when compiled, the optimizer state) as Keras 3's
    ``.weights.h5`` HDF5 file.

    Args:
        model: a built model.
        filepath: a path ending in ``.weights.h5``.
        overwrite: replace an existing file.

    Raises:
        ValueError: for another file name or an unbuilt model.
        FileExistsError: if the file exists and ``overwrite=False``.
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".weights.h5"):
        raise ValueError("The filename must end in `.weights.h5`. Received: filepath=%s"
                         % filepath)
    _check_writable(model, filepath, overwrite, "save_weights")
    data = _h5_bytes(model, with_optimizer=model.compiled)
    with atomic_write(filepath, "wb") as f:
        f.write(data)


# ====================================================================== reading
def is_keras_zip(names):
    """Whether a zip with these entry names is a Keras 3 ``.keras`` file.

    Args:
        names: the zip's entry names.

    Returns:
        bool: it holds ``config.json`` and ``model.weights.h5``.
    """
    return CONFIG_ENTRY in names and WEIGHTS_ENTRY in names


class _Source:
    """A checked view of a ``.keras`` zip or a ``.weights.h5`` file: JSON entries parsed,
    the HDF5 weights opened read-only (nothing read from them yet)."""

    def __init__(self, filepath, want_config):
        import h5py
        self.path = os.fspath(filepath)
        if not os.path.exists(self.path):
            raise FileNotFoundError("No such file: %s" % self.path)
        if os.path.isdir(self.path):
            _fail(self.path, "it is a directory, not a .keras or .weights.h5 file")
        self.config = self.metadata = self.state = None
        if is_hdf5(self.path):
            if want_config:
                _fail(self.path, "it is an HDF5 file, not a .keras zip archive")
            raw = None
        else:
            raw = self._read_zip(want_config)
        try:
            self.h5 = h5py.File(io.BytesIO(raw) if raw is not None else self.path, "r")
        except Exception as e:  # h5py raises OSError/ValueError/KeyError on damaged files
            _fail(self.path, "its HDF5 weights are damaged or truncated (%s: %s)"
                  % (type(e).__name__, e), e)

    def _read_zip(self, want_config):
        try:
            with zipfile.ZipFile(self.path, "r") as zf:
                names = set(zf.namelist())
                for info in zf.infolist():
                    if info.filename not in (CONFIG_ENTRY, METADATA_ENTRY, STATE_ENTRY,
                                             WEIGHTS_ENTRY):
                        continue
                    if info.file_size > _BOMB_FLOOR and \
                            info.file_size > _BOMB_RATIO * max(info.compress_size, 1):
                        _fail(self.path, "its entry %s declares %d bytes stored in %d (a "
                              "decompression bomb)" % (info.filename, info.file_size,
                                                       info.compress_size))
                    limits.check_expansion(info.file_size, info.compress_size,
                                           "zip entry " + info.filename, self.path)
                    if info.filename != WEIGHTS_ENTRY:
                        limits.check_json_size(info.file_size, info.filename, self.path)
                if WEIGHTS_ENTRY not in names:
                    _fail(self.path, "it holds no %s (not a Keras 3 .keras file)" % WEIGHTS_ENTRY)
                if want_config or CONFIG_ENTRY in names:
                    if CONFIG_ENTRY not in names:
                        _fail(self.path, "%s is missing" % CONFIG_ENTRY)
                    self.config = self._json(zf, CONFIG_ENTRY)
                if METADATA_ENTRY in names:
                    self.metadata = self._json(zf, METADATA_ENTRY)
                if STATE_ENTRY in names:
                    self.state = self._json(zf, STATE_ENTRY)
                return zf.read(WEIGHTS_ENTRY)
        except zipfile.BadZipFile as e:
            _fail(self.path, "it is not a valid zip archive or is truncated/corrupted (%s)" % e,
                  e)
        except (NotImplementedError, RuntimeError) as e:  # compression method, encryption
            _fail(self.path, "it uses a zip feature fastcnn cannot read (%s)" % e, e)
        except (EOFError, OSError, zipfile.LargeZipFile) as e:
            _fail(self.path, "it could not be read (%s)" % e, e)

    def _json(self, zf, name):
        return limits.loads_json(zf.read(name), name, self.path)

    def close(self):
        self.h5.close()

    def stored_floats(self):
        """How many weight values the HDF5 weights hold: each dataset counts its declared
        size, but no more than its stored bytes may expand to (limits.MAX_EXPANSION), so
        a dataset declared huge but stored empty cannot widen the allocation budget."""
        import h5py
        total = [0]

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                try:
                    stored = obj.id.get_storage_size()
                    itemsize = max(obj.dtype.itemsize, 1)
                    size = int(obj.size or 0)
                except Exception:  # a damaged object header: nothing usable stored
                    return
                room = (limits.MAX_EXPANSION * stored + 65536) // itemsize
                total[0] += min(size, room)
        try:
            self.h5.visititems(visit)
        except Exception as e:  # h5py errors on a damaged file structure
            _fail(self.path, "its HDF5 weights are damaged (%s: %s)" % (type(e).__name__, e), e)
        return total[0]

    def group(self, path):
        """The h5py group at ``path`` or None; only hard links are followed (an external or
        soft link could make HDF5 open another file)."""
        import h5py
        obj = self.h5
        try:
            for part in path.split("/"):
                if not isinstance(obj, h5py.Group) or part not in obj:
                    return None
                if not isinstance(obj.get(part, getlink=True), h5py.HardLink):
                    _fail(self.path, "its HDF5 weights link %s/%s elsewhere (only plain groups "
                          "and datasets are read)" % (obj.name.rstrip("/"), part))
                obj = obj[part]
        except ValueError as e:
            if names_file(e):
                raise
            return None  # h5py: a damaged link or object header
        except Exception:  # a damaged link or object header
            return None
        return obj if isinstance(obj, h5py.Group) else None

    def dataset(self, group, key, shape, what, kinds="fiu"):
        """``group[key]`` read as an array after its shape and dtype were checked."""
        import h5py
        try:
            link = group.get(key, getlink=True)
            if link is not None and not isinstance(link, h5py.HardLink):
                _fail(self.path, "%s is a link to elsewhere (only plain datasets are read)"
                      % what)
            ds = group.get(key)
            if not isinstance(ds, h5py.Dataset):
                _fail(self.path, "%s is missing" % what)
            if ds.external or ds.is_virtual:
                _fail(self.path, "%s keeps its data outside the file (external or virtual "
                      "dataset)" % what)
            if tuple(ds.shape or ()) != tuple(shape):
                _fail(self.path, "%s has shape %s but the model expects %s (stored at %s/%s)"
                      % (what, tuple(ds.shape or ()), tuple(shape), group.name, key))
            if ds.dtype.kind not in kinds:
                _fail(self.path, "%s has dtype %s, expected a number" % (what, ds.dtype))
            arr = np.asarray(ds[()])
        except Exception as e:  # h5py errors on damaged data (ValueError among them)
            if names_file(e):
                raise
            _fail(self.path, "%s could not be read (%s: %s)" % (what, type(e).__name__, e), e)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            _fail(self.path, "%s holds NaN or infinite values" % what)
        return arr


def _keras_var_count(group):
    try:
        return len(group.keys())
    except Exception:
        return -1


def _load_layer_weights(model, src, skip_mismatch=False):
    """Check every layer's stored variables, then assign them (all or nothing unless
    ``skip_mismatch``)."""
    pending = []
    for path, layer in _layer_paths(model):
        if _is_model(layer) or not layer.weights:
            continue
        what_layer = "layer '%s' (%s)" % (layer.name, path)
        group = src.group(path + "/vars")
        n = len(layer.weights)
        if group is None or _keras_var_count(group) != n:
            if skip_mismatch:
                continue
            if group is None:
                _fail(src.path, "it holds no weights for %s of model '%s'"
                      % (what_layer, model.name))
            _fail(src.path, "it holds %d variables for %s but the layer has %d"
                  % (_keras_var_count(group), what_layer, n))
        if skip_mismatch and any(tuple(getattr(group.get(str(i)), "shape", ()) or ()) != v.shape
                                 for i, v in enumerate(layer.weights)):
            continue
        values = [src.dataset(group, str(i), v.shape, "weight '%s' of layer '%s'"
                              % (v.name, layer.name))
                  for i, v in enumerate(layer.weights)]
        pending.append((layer, values))
    for layer, values in pending:
        for var, val in zip(layer.weights, values):
            var.assign(val)


def _restore_optimizer(model, src):
    """Optimizer state from ``optimizer/vars`` (Keras' order); a file of an optimizer
    that never stepped (iterations and learning rate only) sets just those."""
    group = src.group("optimizer/vars")
    if group is None or model.optimizer is None:
        return
    opt = model.optimizer
    variables = model.trainable_weights
    opt.build(variables)
    layout = _optimizer_layout(opt, variables)
    scalars = [e for e in layout if e[0] in ("iterations", "learning_rate")]
    count = _keras_var_count(group)
    if count == len(scalars):
        layout = scalars
    elif count != len(layout):
        _fail(src.path, "its optimizer state holds %d variables but optimizer %s of model '%s' "
              "has %d (another optimizer configuration or other trainable weights?)"
              % (count, type(opt).__name__, model.name, len(layout)))
    values = []
    for i, (kind, var, name) in enumerate(layout):
        if kind == "slot":
            values.append(src.dataset(group, str(i), var.shape, "optimizer slot '%s' of %s"
                                      % (_KERAS_SLOT_NAMES.get(name, name), var.path)))
        elif kind == "iterations":
            it = src.dataset(group, str(i), (), "the optimizer iteration count", "iu")
            if int(it) < 0:
                _fail(src.path, "the optimizer iteration count %d is negative" % int(it))
            values.append(int(it))
        else:
            values.append(float(src.dataset(group, str(i), (), "optimizer variable %d" % i)))
    for (kind, var, name), value in zip(layout, values):
        if kind == "slot":
            np.copyto(dict(opt.slots_of(var))[name], value, casting="unsafe")
        elif kind == "iterations":
            opt.raw_iterations = value
        elif kind == "learning_rate":
            try:
                opt.learning_rate = value
            except ValueError as e:
                _fail(src.path, "its optimizer learning rate is invalid (%s)" % e, e)


def _restore_resume_state(model, src, model_state=True):
    """Layer seed counters; with ``model_state`` also fit's shuffle seed and class names."""
    state = src.state
    if state is None:
        return
    if not (isinstance(state, dict) and state.get("format") == _STATE_FORMAT
            and isinstance(state.get("version"), int)):
        _fail(src.path, "%s is malformed" % STATE_ENTRY)
    if state["version"] > _STATE_VERSION:
        _fail(src.path, "%s has version %d, written by a newer fastcnn (this one reads up to "
              "%d)" % (STATE_ENTRY, state["version"], _STATE_VERSION))
    seed = state.get("shuffle_seed")
    if seed is not None and model_state:
        if not _is_count(seed):
            _fail(src.path, "the shuffle seed %.40r is not an integer >= 0" % (seed,))
        model.shuffle_seed = seed
    saved_layers = state.get("layers", {})
    if not isinstance(saved_layers, dict):
        _fail(src.path, "%s: 'layers' is malformed" % STATE_ENTRY)
    paths = dict(_layer_paths(model))
    for path, entries in saved_layers.items():
        layer = paths.get(path)
        if layer is None or not isinstance(entries, dict):
            continue  # another architecture: weights matched, seeds start afresh
        restored = {}
        for key, item in entries.items():
            try:
                dtype = np.dtype(item["dtype"])
                if dtype.kind not in "iu" or not isinstance(item["value"], int):
                    raise ValueError("not an integer")
                restored[key] = np.array(item["value"], dtype=dtype)
            except (TypeError, KeyError, ValueError, OverflowError) as e:
                _fail(src.path, "the saved state %r of layer '%s' is malformed (%s)"
                      % (key, layer.name, e), e)
        layer.set_extra_state(restored)
    class_names = state.get("class_names")
    if model_state and isinstance(class_names, list) and \
            all(isinstance(c, str) for c in class_names):
        model.class_names = class_names


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---------------------------------------------------------------- config: reading
class _Translator:
    """Turns Keras 3's serialized objects into fastcnn's ``{"class_name", "config"}``
    form, refusing code (Lambda layers, serialized lambdas) and, in safe mode, classes
    that are not fastcnn's own."""

    def __init__(self, path, custom_objects, safe_mode):
        self.path = path
        self.custom = dict(custom_objects or {})
        self.safe_mode = safe_mode

    def object(self, value, depth=0):
        if depth > 64:
            _fail(self.path, "config.json nests objects deeper than 64 levels")
        if isinstance(value, list):
            return [self.object(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            return value
        cls = value.get("class_name")
        if cls in _POLICY_CLASSES and isinstance(value.get("config"), dict):
            return value["config"].get("name")
        if isinstance(cls, str) and "config" in value:
            self._check_class(value)
            out = {k: self.object(v, depth + 1) for k, v in value.items()
                   if k not in _OBJECT_ONLY_KEYS}
            if isinstance(out.get("config"), dict):
                out["config"] = self._drop_neutral(cls, out["config"])
            return out
        return {k: self.object(v, depth + 1) for k, v in value.items()}

    def _check_class(self, value):
        cls = value["class_name"]
        registered = value.get("registered_name")
        if not isinstance(cls, str) or not isinstance(registered, (str, type(None))):
            _fail(self.path, "class_name and registered_name must be strings, not %.80r and "
                  "%.80r" % (cls, registered))
        if cls in ("Lambda", "__lambda__"):
            _fail(self.path, "it holds Python code (a %s); fastcnn never runs code from a "
                  "file" % cls)
        custom = registered not in (None, cls, "Functional") or cls in self.custom
        if custom and not (registered in self.custom or cls in self.custom):
            _fail(self.path, "it uses the custom class %r (registered as %r); pass the class in "
                  "custom_objects and safe_mode=False to load it" % (cls, registered))
        if custom and self.safe_mode:
            _fail(self.path, "it uses the custom class %r; custom classes are loaded only with "
                  "safe_mode=False (their code then runs)" % cls)
        if registered not in (None, cls) and registered in self.custom:
            self.custom.setdefault(cls, self.custom[registered])

    def _drop_neutral(self, cls, cfg):
        out = {}
        for key, value in cfg.items():
            if key in _NEUTRAL:
                neutral = _NEUTRAL[key]
                if neutral is Ellipsis or value == neutral:
                    continue
                _fail(self.path, "%s '%s' uses the Keras argument %s=%.60r, which fastcnn does "
                      "not support" % (cls, cfg.get("name", "?"), key, value))
            out[key] = value
        return out


def _check_layers(src, config, custom, depth=0):
    """Build each (non-model) layer of a model config alone first, so that a class or an
    argument fastcnn does not have is reported with the layer's name."""
    from .. import layers
    entries = config.get("layers") if isinstance(config, dict) else None
    if not isinstance(entries, list) or depth > 64:
        return
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        cls, cfg = entry.get("class_name"), entry.get("config")
        if cls in ("Sequential", "Functional", "Model"):
            _check_layers(src, cfg, custom, depth + 1)
            continue
        try:
            layers.deserialize({"class_name": cls, "config": cfg}, custom)
        except _REBUILD_ERRORS as e:
            name = cfg.get("name") if isinstance(cfg, dict) else None
            _fail(src.path, "layer %.80r (%.80s) cannot be built: %s: %s"
                  % (name, cls, type(e).__name__, e), e)


def _rebuild(src, custom_objects, safe_mode):
    from .. import layers
    config = src.config
    if not (isinstance(config, dict) and config.get("class_name") in
            ("Sequential", "Functional", "Model")):
        _fail(src.path, "config.json does not describe a Sequential or Functional model "
              "(class_name %.80r)" % (config.get("class_name") if isinstance(config, dict)
                                       else None))
    tr = _Translator(src.path, custom_objects, safe_mode)
    top = tr.object({k: v for k, v in config.items() if k != "compile_config"})
    if isinstance(top.get("config"), dict):
        _shift_model_nodes(top["config"], -1)
        _check_layers(src, top["config"], tr.custom or None)
    try:
        model = layers.deserialize({"class_name": top["class_name"],
                                    "config": top.get("config", {})}, tr.custom or None)
    except _REBUILD_ERRORS as e:
        _fail(src.path, "its architecture could not be rebuilt (%s: %s)" % (type(e).__name__, e),
              e)
    build_config = config.get("build_config") or {}
    if not isinstance(build_config, dict):
        _fail(src.path, "its build_config must be a dict, not %.80r" % (build_config,))
    shape = build_config.get("input_shape")
    if not model.built and isinstance(shape, list) and len(shape) > 1:
        try:  # Keras' build_config of a model saved after model.build(shape)
            model.build(tuple(shape))
        except _REBUILD_ERRORS as e:
            _fail(src.path, "the model cannot be built for its saved input shape %.80r (%s)"
                  % (shape, e), e)
    if not model.built:
        _fail(src.path, "the saved architecture has no input shape")
    return model, tr


def _compile_from(model, src, tr):
    from .. import losses, metrics, optimizers
    cc = src.config.get("compile_config")
    if not isinstance(cc, dict) or not cc.get("optimizer"):
        return
    try:
        cc = tr.object(cc)
        custom = tr.custom or None
        loss = cc.get("loss")
        if isinstance(loss, dict):
            loss = losses.deserialize(_loss_config(loss), custom)
        elif isinstance(loss, str):
            loss = losses.deserialize(loss, custom)

        def metric_list(ms):
            return [m if isinstance(m, str) else metrics.deserialize(m, custom)
                    for m in ms or []]
        kwargs = {}
        if cc.get("loss_weights") is not None:
            kwargs["loss_weights"] = cc["loss_weights"]
        optimizer = cc["optimizer"]
        optimizer = (optimizers.get(optimizer) if isinstance(optimizer, str)
                     else optimizers.deserialize(optimizer, custom))
        model.compile(optimizer=optimizer, loss=loss, metrics=metric_list(cc.get("metrics")),
                      weighted_metrics=metric_list(cc.get("weighted_metrics")), **kwargs)
    except _REBUILD_ERRORS as e:
        if isinstance(e, ValueError) and str(e).startswith("Cannot load "):
            raise
        _fail(src.path, "its compile settings could not be restored (%s: %s)"
              % (type(e).__name__, e), e)


def _loss_config(loss):
    """A Keras loss config for fastcnn: Keras' ``dtype: None`` has no counterpart."""
    cfg = dict(loss.get("config") or {})
    if cfg.get("dtype", "float32") in (None, "float32"):
        cfg.pop("dtype", None)
    return {"class_name": loss["class_name"], "config": cfg}


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model from a Keras 3 ``.keras`` file (written by Keras 3 on any backend, or
    by fastcnn): architecture, weights, compile state and the optimizer state.

    Args:
        filepath: path of the ``.keras`` file.
        custom_objects: dict of name -> class for classes that are not fastcnn's own.
        compile: restore the compile state (optimizer, loss, metrics) and the optimizer's
            variables too.
        safe_mode: refuse custom classes (their code would run); Lambda layers and
            serialized functions are refused in any mode.

    Returns:
        The model.

    Raises:
        ValueError: for a damaged file, a layer class or argument fastcnn does not have, or
            weights that do not match the architecture (the message names the file).
        FileNotFoundError: if the file does not exist.
    """
    src = _Source(filepath, want_config=True)
    try:
        # the architecture may declare no more weights than the file stores
        with limits.allocation_budget(src.stored_floats(), src.path):
            model, tr = _rebuild(src, custom_objects, safe_mode)
        _load_layer_weights(model, src)
        if compile:
            _compile_from(model, src, tr)
            if model.compiled:
                _restore_optimizer(model, src)
        _restore_resume_state(model, src)
    finally:
        src.close()
    return model


def load_weights(model, filepath, skip_mismatch=False):
    """Load Keras 3 weights (a ``.weights.h5`` file or the weights of a ``.keras`` file)
    into a built model of the same architecture; the optimizer state too when the model is
    compiled and the file holds a matching one (a non-matching one is skipped with a
    warning, as Keras does).

    Args:
        model: a built model.
        filepath: a ``.weights.h5`` or ``.keras`` file.
        skip_mismatch: skip layers whose stored variables do not match instead of raising.

    Raises:
        ValueError: for an unbuilt model, a damaged file, or weights that do not match.
    """
    src = _Source(filepath, want_config=False)
    try:
        if not model.built:
            raise ValueError("load_weights: the model '%s' has not been built yet; build it "
                             "with the same architecture first" % model.name)
        _load_layer_weights(model, src, skip_mismatch)
        if model.compiled and model.optimizer is not None:
            try:
                _restore_optimizer(model, src)
            except ValueError as e:  # as Keras: the weights load, the optimizer starts afresh
                warnings.warn("load_weights: the optimizer state was not restored (%s)" % e,
                              stacklevel=3)
        _restore_resume_state(model, src, model_state=False)
    finally:
        src.close()
