"""Reading Keras' legacy HDF5 files (``.h5``): Keras 2 whole-model and weight files, and the
``.h5`` that Keras 3 writes with ``model.save("m.h5")``.

The layout (Keras' ``legacy_h5_format``):

* a whole-model file has root attributes ``model_config`` (JSON of the architecture),
  ``training_config`` (JSON of the compile arguments, optional), ``keras_version`` and
  ``backend``, and a group ``model_weights``;
* a weights file (Keras 2 ``model.save_weights("w.h5")``) is that group at the root;
* the weights group has an attribute ``layer_names``; each layer has a group of that name with
  an attribute ``weight_names`` (paths of its datasets inside the group, in the layer's weight
  order, e.g. ``conv/kernel:0``). Attributes over 64 KiB are split into ``name0``, ``name1``...

Keras 2 configs are normalised to Keras 3's before fastcnn rebuilds them: ``batch_input_shape``
becomes an ``InputLayer``'s ``batch_shape``, ``inbound_nodes`` nested lists
(``[[["input_1", 0, 0, {}]]]``) become Keras 3 node dicts, ``class_name: "Model"`` is
``Functional``, single-axis lists become ints, dtype policies become ``"float32"``.

Hostile files: nothing is unpickled or executed (``Lambda`` layers, which hold Python
bytecode, are refused); every dataset's declared size is checked against the bytes HDF5 stores
for it before it is read, the architecture is rebuilt under
:func:`fastcnn.saving.limits.allocation_budget` (no more weights than the file stores), and
every problem is a ``ValueError`` naming the file. Optimizer state in the file is not restored
(``compile`` settings are, where fastcnn has the optimizer/loss/metrics).
"""
import math
import os
import subprocess
import sys
import warnings

import numpy as np

from . import limits
from ._files import fail as _fail, import_h5py as _h5py, is_hdf5, names_file

__all__ = ["is_hdf5", "is_legacy_h5", "load_model", "load_weights", "normalize_model_config"]

# arguments Keras 2 layers wrote that are inert at these values and that fastcnn's Keras 3
# layers do not take
_INERT = {"BatchNormalization": {"fused": (None, True, False), "renorm": (False,),
                                 "renorm_clipping": (None,), "renorm_momentum": None,
                                 "virtual_batch_size": (None,), "adjustment": (None,),
                                 "synchronized": (False,)}}
_CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


# Reads every attribute of every object in a child process first: one flipped bit in a
# variable-length string's global heap can make libhdf5 loop forever (or crash) inside a
# single attribute read, which nothing in this process could interrupt.
_PROBE = """
import sys, h5py
def read(obj):
    for name in obj.attrs:
        obj.attrs[name]
with h5py.File(sys.argv[1], "r") as f:
    read(f)
    f.visititems(lambda name, obj: read(obj))
"""
PROBE_SECONDS = 60


def _probe_attributes(path):
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE, path], capture_output=True,
                              timeout=PROBE_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        _fail(path, "it is damaged: HDF5 did not finish reading its attributes in %d s"
              % PROBE_SECONDS)
    except OSError:
        return  # no child processes here: the in-process checks still apply
    if done.returncode < 0:
        _fail(path, "it is damaged: HDF5 crashed reading its attributes (signal %d)"
              % -done.returncode)
    # an exception in the child: the in-process reader names the attribute


# what h5py raises for a corrupted file besides OSError (HDF5's own errors surface as these)
_H5_ERRORS = (RuntimeError, OSError, KeyError, TypeError, AttributeError, IndexError,
              OverflowError, UnicodeError, RecursionError, ZeroDivisionError)


def is_legacy_h5(filepath):
    """Whether ``filepath`` is a Keras legacy HDF5 model or weights file.

    Args:
        filepath: a path.

    Returns:
        bool: True for an HDF5 file whose root has ``model_config``, ``layer_names`` or a
        ``model_weights`` group (Keras 3's ``.weights.h5`` layout is not legacy).
    """
    if not is_hdf5(filepath):
        return False
    try:
        h5py = _h5py(filepath)
        with h5py.File(filepath, "r") as f:
            return ("model_config" in f.attrs or "layer_names" in f.attrs
                    or "model_weights" in f)
    except Exception:  # unreadable: the loaders report it properly
        return True


class _File:
    """An open legacy HDF5 file with checked access to attributes and datasets."""

    def __init__(self, filepath):
        self.path = os.fspath(filepath)
        if not os.path.exists(self.path):
            raise FileNotFoundError("No such file: %s" % self.path)
        if os.path.isdir(self.path):
            _fail(self.path, "it is a directory, not a Keras .h5 file")
        if not is_hdf5(self.path):
            _fail(self.path, "it is not an HDF5 file (no HDF5 signature)")
        h5py = _h5py(self.path)
        _probe_attributes(self.path)
        try:
            self.h5 = h5py.File(self.path, "r")
        except Exception as e:  # truncated / corrupted superblock
            _fail(self.path, "it is not a readable HDF5 file (%s: %s)" % (type(e).__name__, e), e)

    def close(self):
        self.h5.close()

    def fail(self, what, cause=None):
        _fail(self.path, what, cause)

    def text_attr(self, group, name):
        """``group.attrs[name]`` once its stored type is known to be text: HDF5 can crash
        converting a damaged attribute (one flipped bit turns a string into a
        variable-length sequence of garbage), so nothing else is read."""
        h5py = _h5py(self.path)
        aid = h5py.h5a.open(group.id, name.encode("utf-8"))
        tid, space = aid.get_type(), aid.get_space()
        dims = space.get_simple_extent_dims() or ()
        if len(dims) == 1 and dims[0] == 0:
            return np.empty(0, object)  # Keras writes an empty float array for no names
        if not isinstance(tid, h5py.h5t.TypeStringID) or len(dims) > 1:
            self.fail("attribute %r of %s is not text or a list of text (HDF5 type class %d, "
                      "shape %s)" % (name, group.name, tid.get_class(), dims))
        if math.prod(dims) * max(tid.get_size(), 1) > limits.MAX_JSON_BYTES:
            self.fail("attribute %r of %s declares more than %d bytes"
                      % (name, group.name, limits.MAX_JSON_BYTES))
        return group.attrs[name]

    def attr_text(self, group, name):
        """A string attribute (bytes or str in the file), or None when absent."""
        if name not in group.attrs:
            return None
        try:
            value = self.text_attr(group, name)
        except Exception as e:
            if names_file(e):
                raise
            self.fail("attribute %r cannot be read (%s)" % (name, e), e)
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as e:
                self.fail("attribute %r is not UTF-8 text" % name, e)
        if not isinstance(value, str):
            self.fail("attribute %r is not text (%s)" % (name, type(value).__name__))
        return value

    def attr_names(self, group, name):
        """A list-of-strings attribute, joining Keras' chunks ``name0``, ``name1``, ..."""
        try:
            if name in group.attrs:
                raw = [self.text_attr(group, name)]
            else:
                raw, i = [], 0
                while "%s%d" % (name, i) in group.attrs:
                    raw.append(self.text_attr(group, "%s%d" % (name, i)))
                    i += 1
                if not raw:
                    return None
        except Exception as e:
            if names_file(e):
                raise
            self.fail("attribute %r of %s cannot be read (%s)" % (name, group.name, e), e)
        out = []
        for chunk in raw:
            arr = np.asarray(chunk)
            if arr.size == 0:
                continue
            if arr.ndim != 1 or arr.dtype.kind not in "OSU":
                self.fail("attribute %r of %s is not a list of names" % (name, group.name))
            for v in arr.tolist():
                if isinstance(v, bytes):
                    try:
                        v = v.decode("utf-8")
                    except UnicodeDecodeError as e:
                        self.fail("attribute %r of %s holds a name that is not UTF-8"
                                  % (name, group.name), e)
                if not isinstance(v, str):
                    self.fail("attribute %r of %s is not a list of names" % (name, group.name))
                out.append(v)
        if len(out) > limits.MAX_LAYERS * 16:
            self.fail("attribute %r of %s lists %d names" % (name, group.name, len(out)))
        return out

    def json_attr(self, name):
        text = self.attr_text(self.h5, name)
        if text is None:
            return None
        try:
            return limits.loads_json(text, name, self.path)
        except ValueError as e:
            self.fail(str(e).replace(self.path + ": ", "", 1), e)

    def weights_group(self):
        """The group holding the layer groups: ``model_weights`` or the root."""
        group = self.h5["model_weights"] if "model_weights" in self.h5 else self.h5
        if not hasattr(group, "attrs") or not hasattr(group, "keys"):
            self.fail("model_weights is not an HDF5 group")
        return group

    def layer_weights(self):
        """[(layer_name, [(weight_name, dataset), ...])] in the file's layer order, every
        dataset checked (numeric, declared size backed by stored bytes)."""
        group = self.weights_group()
        names = self.attr_names(group, "layer_names")
        if names is None:
            self.fail("it has no layer_names attribute (not a Keras model or weights file)")
        out = []
        for lname in names:
            try:
                g = group[lname]
            except Exception as e:
                self.fail("layer %r is listed in layer_names but its group is missing or "
                          "unreadable (%s)" % (lname, e), e)
            wnames = self.attr_names(g, "weight_names") or []
            pairs = []
            for wname in wnames:
                try:
                    ds = g[wname]
                except Exception as e:
                    self.fail("weight %r of layer %r is missing or unreadable (%s)"
                              % (wname, lname, e), e)
                pairs.append((wname, self._checked_dataset(ds, "weight %r of layer %r"
                                                           % (wname, lname))))
            out.append((lname, pairs))
        return out

    def _checked_dataset(self, ds, what):
        if not hasattr(ds, "shape") or not hasattr(ds, "dtype") or not hasattr(ds, "id"):
            self.fail("%s is not a dataset" % what)
        try:
            shape, dtype = tuple(ds.shape), ds.dtype
            stored = ds.id.get_storage_size()
        except Exception as e:
            self.fail("%s cannot be read (%s)" % (what, e), e)
        if dtype.kind not in "fiu" or dtype.itemsize > 8:
            self.fail("%s has non-numeric dtype %s" % (what, dtype))
        n = math.prod(shape)
        if n > limits.MAX_TENSOR_ELEMENTS:
            self.fail("%s declares shape %s, more than the limit of %d values "
                      "(fastcnn.saving.limits.MAX_TENSOR_ELEMENTS)"
                      % (what, shape, limits.MAX_TENSOR_ELEMENTS))
        try:
            limits.check_expansion(n * dtype.itemsize, stored, "%s (shape %s)" % (what, shape),
                                   self.path)
        except ValueError as e:
            self.fail(str(e).replace(self.path + ": ", "", 1), e)
        return ds

    def read(self, ds, what):
        try:
            value = np.asarray(ds[()])
        except Exception as e:
            self.fail("%s cannot be read (%s: %s)" % (what, type(e).__name__, e), e)
        if value.dtype.kind not in "fiu":
            self.fail("%s has non-numeric dtype %s" % (what, value.dtype))
        return value


# ------------------------------------------------------------------ config normalisation

def _tensor_ref(ref, where, shifted=()):
    if not (isinstance(ref, (list, tuple)) and len(ref) in (3, 4) and isinstance(ref[0], str)):
        raise ValueError("%s: malformed Keras 2 inbound node entry %.200r" % (where, ref))
    ref = _shift(ref, shifted)
    if len(ref) == 4 and ref[3] not in ({}, None):
        extra = ref[3]
        if not isinstance(extra, dict) or set(extra) - {"training", "mask"} or \
                extra.get("mask") is not None:
            raise ValueError("%s: call arguments %.200r in an inbound node are not supported"
                             % (where, extra))
    return {"class_name": "__keras_tensor__",
            "config": {"keras_history": [ref[0], ref[1], ref[2]]}}


def _shift(ref, shifted):
    """Keras 2 numbers the nodes of a nested model that has its own InputLayer from 1 (its
    first node, made by that input, is not saved); Keras 3 and fastcnn from 0."""
    if ref[0] in shifted and isinstance(ref[1], int) and not isinstance(ref[1], bool):
        return [ref[0], ref[1] - 1] + list(ref[2:])
    return ref


def _own_input(entry):
    """Whether a Keras 2 layer entry is a nested model with its own InputLayer."""
    if not isinstance(entry, dict) or entry.get("class_name") not in _MODEL_CLASSES:
        return False
    if entry["class_name"] != "Sequential":
        return True
    inner = entry.get("config")
    inner = inner.get("layers") if isinstance(inner, dict) else inner
    return (isinstance(inner, list) and bool(inner) and isinstance(inner[0], dict)
            and (inner[0].get("class_name") == "InputLayer"
                 or (isinstance(inner[0].get("config"), dict)
                     and "batch_input_shape" in inner[0]["config"])))


def _normalize_nodes(nodes, where, shifted=()):
    """Keras 2 ``[[[name, node, tensor, kwargs], ...], ...]`` -> Keras 3 node dicts."""
    if not isinstance(nodes, list):
        raise ValueError("%s: inbound_nodes must be a list, got %.100r" % (where, nodes))
    out = []
    for node in nodes:
        if isinstance(node, dict):  # already Keras 3
            out.append(node)
            continue
        if not isinstance(node, list) or not node:
            raise ValueError("%s: malformed inbound node %.200r" % (where, node))
        refs = [_tensor_ref(r, where, shifted) for r in node]
        out.append({"args": refs if len(refs) == 1 else [refs], "kwargs": {}})
    return out


def _normalize_objects(value):
    """Nested objects (initializers ...): Keras 2 spellings -> Keras 3."""
    if isinstance(value, dict):
        value = {k: _normalize_objects(v) for k, v in value.items()}
        if value.get("class_name") == "VarianceScaling" and isinstance(value.get("config"), dict):
            if value["config"].get("distribution") == "normal":  # Keras 2.0's name
                value["config"]["distribution"] = "truncated_normal"
        return value
    if isinstance(value, list):
        return [_normalize_objects(v) for v in value]
    return value


def _dtype_name(dtype):
    if isinstance(dtype, dict):  # a DTypePolicy / Policy config
        cfg = dtype.get("config")
        if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
            return cfg["name"]
    return dtype


def _normalize_layer(entry, where, shifted=()):
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError("%s: malformed layer entry %.200r" % (where, entry))
    cls = entry["class_name"]
    if cls in _MODEL_CLASSES:
        out = dict(entry)
        out.update(normalize_model_config(entry, where))
    else:
        if cls in _CODE_LAYERS:
            raise ValueError("%s: layer %r is a %s, which holds Python code; fastcnn never runs "
                             "code from a file" % (where, entry.get("name"), cls))
        config = entry.get("config", {})
        if not isinstance(config, dict):
            raise ValueError("%s: layer %r has a malformed config" % (where, entry.get("name")))
        config = _normalize_objects(dict(config))
        if "dtype" in config:
            config["dtype"] = _dtype_name(config["dtype"])
        if cls == "InputLayer":
            if "batch_input_shape" in config and "batch_shape" not in config:
                config["batch_shape"] = config.pop("batch_input_shape")
            if "input_shape" in config and "batch_shape" not in config and "shape" not in config:
                config["shape"] = config.pop("input_shape")
        for key, inert in _INERT.get(cls, {}).items():
            if key in config and (inert is None or config[key] in inert):
                config.pop(key)
        axis = config.get("axis")
        if isinstance(axis, list) and len(axis) == 1:
            config["axis"] = axis[0]
        out = dict(entry, config=config)
        out["class_name"] = cls
    if "inbound_nodes" in out:
        out["inbound_nodes"] = _normalize_nodes(out["inbound_nodes"], where, shifted)
    return out


def normalize_model_config(config, where="model_config"):
    """Turn a Keras 2 (or Keras 3) model config into the Keras 3 form fastcnn rebuilds.

    Args:
        config: ``{"class_name": "Sequential"|"Functional"|"Model", "config": ...}``.
        where: the file, named in errors.

    Returns:
        dict: ``{"class_name", "config"}`` with Keras 3 spellings.

    Raises:
        ValueError: for a malformed config or a layer that holds code (``Lambda``).
    """
    if not isinstance(config, dict) or config.get("class_name") not in _MODEL_CLASSES:
        raise ValueError("%s: model_config does not describe a model (class_name %.80r; "
                         "expected one of %s)" % (where, config.get("class_name")
                                                  if isinstance(config, dict) else None,
                                                  ", ".join(_MODEL_CLASSES)))
    cls = "Functional" if config["class_name"] == "Model" else config["class_name"]
    inner = config.get("config", {})
    if isinstance(inner, list):  # Keras <= 2.2 Sequential: the list of layers itself
        inner = {"layers": inner}
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise ValueError("%s: the %s config has no list of layers" % (where, cls))
    inner = dict(inner)
    keras2_nodes = any(isinstance(n, list) for e in inner["layers"] if isinstance(e, dict)
                       and isinstance(e.get("inbound_nodes"), list) for n in e["inbound_nodes"])
    shifted = ({e.get("name") for e in inner["layers"] if _own_input(e)} if keras2_nodes
               else set())
    layers = [_normalize_layer(e, where, shifted) for e in inner["layers"]]
    for key in ("input_layers", "output_layers"):
        refs = inner.get(key)
        if shifted and isinstance(refs, list):
            if len(refs) == 3 and isinstance(refs[0], str):
                inner[key] = _shift(refs, shifted)
            else:
                inner[key] = [_shift(r, shifted) if isinstance(r, list) and r else r
                              for r in refs]
    if cls == "Sequential":
        first = layers[0]["config"] if layers else {}
        shape = first.pop("batch_input_shape", None) if isinstance(first, dict) else None
        for entry in layers[1:]:
            if isinstance(entry.get("config"), dict):
                entry["config"].pop("batch_input_shape", None)
        if shape is not None and layers[0]["class_name"] != "InputLayer":
            layers.insert(0, {"class_name": "InputLayer",
                              "config": {"batch_shape": shape,
                                         "name": "%s_input" % first.get("name", "model")}})
    else:
        for entry in layers:
            if entry["class_name"] != "InputLayer" and isinstance(entry.get("config"), dict):
                entry["config"].pop("batch_input_shape", None)
    inner["layers"] = layers
    inner.pop("dtype", None)
    return {"class_name": cls, "config": inner}


# ------------------------------------------------------------------ loading

def _assign(target_layer, arrays, f, lname, skip_mismatch):
    # Keras' legacy order: trainable weights first (it matters for nested models)
    variables = target_layer.trainable_weights + target_layer.non_trainable_weights
    if len(variables) != len(arrays):
        if skip_mismatch:
            return False
        f.fail("layer '%s' of the model has %d weights but the file stores %d for layer %r"
               % (target_layer.name, len(variables), len(arrays), lname))
    for var, arr in zip(variables, arrays):
        if tuple(var.shape) != tuple(arr.shape):
            if skip_mismatch:
                return False
            f.fail("weight '%s' of layer '%s' has shape %s but the file stores shape %s for "
                   "layer %r" % (var.name, target_layer.name, tuple(var.shape),
                                 tuple(arr.shape), lname))
    for var, arr in zip(variables, arrays):
        var.assign(arr)
    return True


def _read_layers(f, entries):
    return {lname: [f.read(ds, "weight %r of layer %r" % (wname, lname)) for wname, ds in pairs]
            for lname, pairs in entries}


def load_weights(model, filepath, skip_mismatch=False):
    """Load a Keras legacy ``.h5`` (weights file or whole-model file) into a built model.

    Layers are matched in order, as Keras 2's ``load_weights`` does: the file's layers that
    have weights against the model's layers that have weights.

    Args:
        model: a built fastcnn model of the same architecture.
        filepath: the ``.h5`` file.
        skip_mismatch: skip layers whose weight count or shapes differ instead of raising.

    Raises:
        ValueError: a damaged file or one that does not match the model (naming the file).
        FileNotFoundError: if the file does not exist.
    """
    f = _File(filepath)
    try:
        _load_weights(model, f, skip_mismatch)
    except ValueError as e:
        if names_file(e):
            raise
        f.fail(str(e), e)  # h5py's own ValueError for a damaged datatype or layout
    except _H5_ERRORS as e:
        f.fail("it is damaged: HDF5 could not read it (%s: %s)" % (type(e).__name__, e), e)
    finally:
        f.close()


def _load_weights(model, f, skip_mismatch):
    if not model.built:
        raise ValueError("load_weights: the model '%s' has not been built yet; build it with "
                         "the same architecture first" % model.name)
    entries = [(n, p) for n, p in f.layer_weights() if p]
    own = [l for l in model.layers if l.weights]
    if len(entries) != len(own):
        f.fail("it holds weights for %d layers (%s) but model '%s' has %d layers with "
               "weights (%s)" % (len(entries), ", ".join(n for n, _ in entries)[:500],
                                 model.name, len(own), ", ".join(l.name for l in own)[:500]))
    values = _read_layers(f, entries)
    for (lname, _), layer in zip(entries, own):
        _assign(layer, values[lname], f, lname, skip_mismatch)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model from a Keras legacy ``.h5`` whole-model file (Keras 2, or Keras 3's
    ``model.save("m.h5")``): architecture, weights and, where fastcnn has them, the compile
    settings (optimizer state is not restored).

    Args:
        filepath: the ``.h5`` file.
        custom_objects: dict of name -> class for layers of your own.
        compile: restore the compile settings.
        safe_mode: accepted for Keras compatibility; code in a file (``Lambda``) is always
            refused.

    Returns:
        The model.

    Raises:
        ValueError: a damaged, hostile or unsupported file (naming the file and the problem).
        FileNotFoundError: if the file does not exist.
    """
    f = _File(filepath)
    try:
        return _load_model(f, custom_objects, compile)
    except ValueError as e:
        if names_file(e):
            raise
        f.fail(str(e), e)  # h5py's own ValueError for a damaged datatype or layout
    except _H5_ERRORS as e:
        f.fail("it is damaged: HDF5 could not read it (%s: %s)" % (type(e).__name__, e), e)
    finally:
        f.close()


def _load_model(f, custom_objects, compile):
    from .. import layers
    raw = f.json_attr("model_config")
    if raw is None:
        f.fail("it has no model_config attribute: it is a weights file; build the model "
               "and call model.load_weights on it")
    try:
        config = normalize_model_config(raw, f.path)
    except ValueError as e:
        f.fail(str(e).replace(f.path + ": ", "", 1), e)
    entries = f.layer_weights()
    stored = sum(math.prod(ds.shape) for _, pairs in entries for _, ds in pairs)
    try:  # the architecture may declare no more weights than the file stores
        with limits.allocation_budget(stored, f.path):
            model = layers.deserialize(config, custom_objects)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
            RecursionError) as e:
        f.fail("its architecture could not be rebuilt (%s: %s)"
               % (type(e).__name__, str(e).replace(f.path + ": ", "", 1)), e)
    if not model.built:
        f.fail("the saved architecture has no input shape")
    values = _read_layers(f, entries)
    by_name = {l.name: l for l in model.layers}
    for lname, arrays in values.items():
        layer = by_name.get(lname)
        if layer is None:
            if arrays:
                f.fail("it stores weights for layer %r, which the architecture lacks"
                       % lname)
            continue
        _assign(layer, arrays, f, lname, False)
    missing = [l.name for l in model.layers if l.weights and l.name not in values]
    if missing:
        f.fail("it stores no weights for layers %s" % missing[:10])
    if compile:
        training = f.json_attr("training_config")
        if training is not None:
            _compile(model, training, f, custom_objects)
    return model


def _optimizer(config, custom_objects):
    from .. import optimizers
    if isinstance(config, str):
        return optimizers.get(config)
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError("malformed optimizer config %.200r" % (config,))
    name = config["class_name"].split(">")[-1]  # Keras 2.11+ "Custom>Adam"
    cfg = dict(config.get("config") or {})
    if "lr" in cfg and "learning_rate" not in cfg:  # Keras 2 before 2.3
        cfg["learning_rate"] = cfg.pop("lr")
    template = optimizers.get(name.lower()).get_config()
    dropped = {k: v for k, v in cfg.items() if k not in template}
    # arguments of Keras 2's optimizers with no effect at these values
    harmless = {"is_legacy_optimizer", "jit_compile", "decay", "name"}
    bad = {k: v for k, v in dropped.items() if k not in harmless and v not in (None, False, 0)}
    if bad or dropped.get("decay", 0) not in (0, 0.0, None):
        raise ValueError("optimizer %s arguments %s are not supported" % (name, sorted(bad)
                                                                          or ["decay"]))
    return optimizers.deserialize({"class_name": name,
                                   "config": {k: v for k, v in cfg.items() if k in template}},
                                  custom_objects)


def _metric_names(metrics):
    out = []
    for m in metrics or []:
        if isinstance(m, list):
            out.extend(_metric_names(m))
        elif isinstance(m, str):
            out.append(m)
        elif isinstance(m, dict) and isinstance(m.get("config"), dict) and \
                isinstance(m["config"].get("name"), str):
            out.append(m["config"]["name"])
        elif m is not None:
            raise ValueError("malformed metric %.200r" % (m,))
    return out


def _compile(model, training, f, custom_objects):
    """compile() from a legacy training_config; what fastcnn lacks is warned about."""
    from .. import losses
    try:
        if not isinstance(training, dict):
            raise ValueError("training_config is not a dict")
        loss = training.get("loss")
        if isinstance(loss, dict):
            loss = dict(loss)
            cfg = dict(loss.get("config") or {})
            if cfg.get("reduction") == "auto":  # Keras 2's default, Keras 3's sum_over_batch_size
                cfg["reduction"] = "sum_over_batch_size"
            loss["config"] = cfg
            loss = losses.deserialize(loss, custom_objects)
        model.compile(optimizer=_optimizer(training.get("optimizer_config"), custom_objects),
                      loss=loss, metrics=_metric_names(training.get("metrics")),
                      weighted_metrics=_metric_names(training.get("weighted_metrics")) or None)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        warnings.warn("%s: the model was loaded uncompiled; its compile settings could not be "
                      "restored (%s: %s)" % (f.path, type(e).__name__, e), stacklevel=5)
