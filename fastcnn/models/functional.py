"""``Model(inputs, outputs)``: a graph of layer calls (Keras 3's Functional model).

The model holds structure (the nodes between its inputs and outputs, found as Keras'
``map_graph`` does), weights, config and, through ``Trainer``, the compile state and the
training loop. A model is also a layer: called on symbolic tensors it becomes one node of
another graph (a ``data_augmentation = Sequential([...])`` block, a backbone); when a graph
runs, nested models are expanded into their layers (``flatten_graph``), so fusion rules and
shared-layer bookkeeping see one flat graph.
"""
import collections
import json

import numpy as np

from .. import layers as layers_module
from ..layers.base import Layer, _shape_str
from ..layers.core import InputLayer
from ..layers.node import KerasTensor
from ..training.plan import Graph, LeafNode
from ..training.trainer import Trainer
from . import summary as summary_module

__all__ = ["Functional", "Model"]


def _as_list(tensors):
    return [tensors] if isinstance(tensors, KerasTensor) else list(tensors)


def map_graph(inputs, outputs):
    """(nodes in execution order, layers in Keras' order) of the graph inputs -> outputs.

    Depth-first from the outputs (a node met again while in progress is a cycle), then
    nodes and layers ordered by depth, deepest (the inputs) first, ties in traversal
    order; ValueError naming the layer for a tensor no model input reaches."""
    finished, in_progress, order, layer_index = set(), set(), [], {}
    input_ids = {id(t) for t in inputs}

    def visit(tensor):
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        if id(node) in finished:
            return
        if id(node) in in_progress:
            raise ValueError('Tensor %s from layer "%s" is part of a cycle.'
                             % (tensor.name, layer.name))
        layer_index.setdefault(id(layer), (len(layer_index), layer))
        in_progress.add(id(node))
        if id(tensor) not in input_ids:
            for t in node.input_tensors:
                visit(t)
        finished.add(id(node))
        in_progress.discard(id(node))
        order.append(node)

    for t in outputs:
        visit(t)
    node_depth, layer_depth = {}, {}
    for node in reversed(order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for parent in node.parent_nodes:
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:  # inputs that reach no output still belong to the model
        layer = t._keras_history[0]
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            layer_index[id(layer)] = (-1, layer)
            node_depth[id(layer._inbound_nodes[0])] = 0
            order.append(layer._inbound_nodes[0])
    by_id = {id(n): n for n in order}
    nodes = sorted(by_id.values(), key=lambda n: (-node_depth[id(n)],
                                                  order.index(n)))
    layers = sorted((l for _, l in layer_index.values()),
                    key=lambda l: (-layer_depth[id(l)], layer_index[id(l)][0]))
    computable = set(input_ids)
    done = []
    for node in nodes:
        for t in node.input_tensors:
            if id(t) not in computable:
                raise ValueError(
                    'Graph disconnected: cannot obtain value for tensor %s (the output of '
                    'layer "%s") at layer "%s": it is not computed from the model inputs. '
                    "The following previous layers were accessed without issue: %s"
                    % (t.name, t._keras_history[0].name, node.layer.name, done))
        if not node.input_tensors and id(node.output_tensors[0]) not in input_ids:
            continue  # an Input that is not one of the model's inputs
        done.append(node.layer.name)
        computable.update(id(t) for t in node.output_tensors)
    names = [l.name for l in layers]
    for name in names:
        if names.count(name) != 1:
            raise ValueError('The name "%s" is used %d times in the model. All layer names '
                             "should be unique." % (name, names.count(name)))
    return nodes, layers


class Functional(Trainer, Layer):
    """A model built from symbolic tensors: ``Model(inputs=Input(...), outputs=...)``.

    Args:
        inputs: a KerasTensor from ``fastcnn.Input`` or a list of them.
        outputs: the KerasTensor(s) computed from them by calling layers.
        name: the model's name (default ``functional``, ``functional_1``, ...).
        trainable: False freezes every layer of the model.
    """

    from_config_takes_custom_objects = True

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if inputs is None or outputs is None:
            raise ValueError("Model: pass `inputs` and `outputs` (symbolic tensors from "
                             "fastcnn.Input and layer calls); subclassed models with a "
                             "custom call() are not supported by fastcnn")
        Layer.__init__(self, name=name, **kwargs)
        Trainer.__init__(self)
        self._graph_version = 0
        self._init_graph(inputs, outputs)
        if not trainable:
            self.trainable = False

    # ================================================================ structure
    def _init_graph(self, inputs, outputs):
        self._single_input = isinstance(inputs, KerasTensor)
        self._single_output = isinstance(outputs, KerasTensor)
        ins, outs = _as_list(inputs), _as_list(outputs)
        if not ins or not outs:
            raise ValueError("Model '%s': inputs and outputs must not be empty" % self.name)
        for t in ins + outs:
            if not isinstance(t, KerasTensor):
                raise ValueError("Model '%s': inputs and outputs must be symbolic tensors "
                                 "(fastcnn.Input / layer outputs), got %s"
                                 % (self.name, type(t).__name__))
        for t in ins:
            if not isinstance(t._keras_history[0], InputLayer):
                raise ValueError("Model '%s': every input must come from fastcnn.Input (got "
                                 'the output of layer "%s")'
                                 % (self.name, t._keras_history[0].name))
        self._nodes, self._layers_ordered = map_graph(ins, outs)
        self._node_ids = {id(n) for n in self._nodes}
        self._inputs, self._outputs = ins, outs
        self.built = True
        self.input_shape = ins[0].shape if self._single_input else [t.shape for t in ins]
        self.output_shape = outs[0].shape if self._single_output else [t.shape for t in outs]
        self._graph_version += 1

    @property
    def layers(self):
        """Every layer of the model (InputLayers included, as Keras' Functional)."""
        return list(self._layers_ordered)

    @property
    def inputs(self):
        """The model's input tensors (list of :class:`fastcnn.layers.KerasTensor`)."""
        return list(self._inputs)

    @property
    def outputs(self):
        """The model's output tensors (list of :class:`fastcnn.layers.KerasTensor`)."""
        return list(self._outputs)

    @property
    def input(self):
        """The input tensor (a list of them for a model with several inputs)."""
        return self._inputs[0] if self._single_input else list(self._inputs)

    @property
    def output(self):
        """The output tensor (a list of them for a model with several outputs)."""
        return self._outputs[0] if self._single_output else list(self._outputs)

    @property
    def multi_input(self):
        """Whether the model takes several inputs (then it is called on a list)."""
        return self.built and len(self._inputs) > 1

    def get_layer(self, name=None, index=None):
        """A layer by name or by index in ``model.layers``."""
        layers = self.layers
        if index is not None:
            if name is not None:
                raise ValueError("Provide only a layer name or a layer index, not both")
            if not -len(layers) <= index < len(layers):
                raise ValueError("Was asked to retrieve layer at index %d but model only has %d "
                                 "layers." % (index, len(layers)))
            return layers[index]
        if name is None:
            raise ValueError("Provide either a layer name or layer index at `get_layer`.")
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError("No such layer: %s. Existing layers are: %s"
                         % (name, [l.name for l in layers]))

    def flatten_graph(self):
        """The model as a plan.Graph of leaf layer calls (nested models expanded)."""
        nodes, shapes, slots = [], {}, collections.Counter()
        keys = {}
        ins = []
        for i, t in enumerate(self._inputs):
            keys[id(t)] = ("in", i)
            shapes[("in", i)] = t.shape
            ins.append(("in", i))
        self._expand(keys, (), nodes, shapes, slots)
        return Graph(tuple(ins), tuple(keys[id(t)] for t in self._outputs), nodes, shapes)

    def _expand(self, keys, prefix, nodes, shapes, slots):
        for n, node in enumerate(self._nodes):
            if not node.input_tensors:  # an InputLayer: its tensor is a model input
                continue
            in_keys = [keys[id(t)] for t in node.input_tensors]
            out = node.output_tensors[0]
            key = prefix + (n,)
            keys[id(out)] = key
            shapes[key] = out.shape
            layer = node.layer
            if isinstance(layer, Functional):  # nested model: its nodes, inputs mapped
                inner = {id(t): k for t, k in zip(layer._inputs, in_keys)}
                layer._expand(inner, key + ("/",), nodes, shapes, slots)
                keys[id(out)] = inner[id(layer._outputs[0])]
                continue
            nodes.append(LeafNode(layer, tuple(in_keys), key, slots[id(layer)]))
            slots[id(layer)] += 1

    # ================================================================ the layer protocol
    def compute_output_shape(self, input_shape):
        own = self._inputs[0].shape
        shape = tuple(input_shape)
        if self.multi_input or len(shape) != len(own) or any(
                a is not None and b is not None and a != b for a, b in zip(shape[1:], own[1:])):
            raise ValueError('Input 0 of layer "%s" is incompatible with the layer: expected '
                             "shape=%s, found shape=%s"
                             % (self.name, _shape_str(own), _shape_str(shape)))
        return (shape[0],) + tuple(self._outputs[0].shape[1:])

    def build(self, input_shape=None):
        self.built = True

    def release_inputs(self):
        """Drop every reference the model keeps to caller data (after fit/predict/...)."""
        for layer in self.leaf_layers():
            layer.release_inputs()
        self._release_inputs()

    def leaf_layers(self):
        """Every layer with nested models expanded, each once, in model order."""
        out, seen = [], set()
        for layer in self.layers:
            inner = layer.leaf_layers() if isinstance(layer, Functional) else [layer]
            for l in inner:
                if id(l) not in seen:
                    seen.add(id(l))
                    out.append(l)
        return out

    # ================================================================ weights
    @property
    def trainable(self):
        """Whether training updates the model's weights; setting it sets every layer's."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = value

    @property
    def weights(self):
        """All weights of every layer, each once (shared layers included once), in layer order."""
        seen, out = set(), []
        for layer in self.layers:
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    @property
    def losses(self):
        """The regularization penalties of every layer (Keras' ``model.losses``): each
        regularized trainable weight's, then each activity penalty of the latest call."""
        return [p for layer in self.leaf_layers() for p in layer.losses]

    def count_params(self):
        if not self.built:
            raise ValueError("You tried to call `count_params` on model '%s', but the model "
                             "isn't built. Build it with model.build(input_shape), by giving "
                             "the first layer an input shape, or by calling fit()." % self.name)
        return super().count_params()

    def set_weights(self, weights):
        """Set all weights (same order as get_weights); every shape is checked first."""
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError("You called `set_weights(weights)` on model '%s' with a weight "
                             "list of length %d, but the model was expecting %d weights "
                             "(%s)." % (self.name, len(weights), len(own),
                                        ", ".join("%s %s" % (w.path, w.shape) for w in own)))
        for var, w in zip(own, weights):
            if np.shape(w) != var.shape:
                layer = var.path.rsplit("/", 1)[0]
                raise ValueError("Layer %s weight shape %s is not compatible with provided "
                                 "weight shape %s (weight '%s')."
                                 % (layer, var.shape, np.shape(w), var.path))
        for var, w in zip(own, weights):
            var.assign(w)

    # ================================================================ summary / config
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print Keras 3's summary table ("Connected to" column for graphs).

        Args:
            line_length: total width (default: the terminal's, at most 88 / 108 for graphs).
            positions: column boundaries, fractions of line_length or absolute.
            print_fn: called with the whole text instead of print.
            expand_nested: also list the layers of nested models, indented.
            show_trainable: add a "Trainable" column (Y/N).
            layer_range: (first, last) layer names: only that part of the table.
        """
        return summary_module.print_summary(self, line_length, positions, print_fn,
                                            expand_nested=expand_nested,
                                            show_trainable=show_trainable,
                                            layer_range=layer_range)

    def nodes_of(self, layer):
        """The calls (graph nodes) of ``layer`` that belong to this model, in order."""
        return [n for n in layer._inbound_nodes if id(n) in self._node_ids]

    def node_index(self, layer, node_index):
        """The position, among ``nodes_of(layer)``, of ``layer``'s node ``node_index``."""
        node = layer._inbound_nodes[node_index]
        return self.nodes_of(layer).index(node) if id(node) in self._node_ids else node_index

    def _node_key_index(self):
        """{id(node): index among its layer's nodes that belong to this model}."""
        index = {}
        for layer in self.layers:
            k = 0
            for node in layer._inbound_nodes:
                if id(node) in self._node_ids:
                    index[id(node)] = k
                    k += 1
        return index

    def get_config(self):
        """Keras 3's functional config: layers with their ``inbound_nodes``, input_layers
        and output_layers as [layer name, node index, tensor index] (a list of those for a
        list of tensors)."""
        index = self._node_key_index()

        def ref(t):
            layer, node_index, tensor_index = t._keras_history
            node = layer._inbound_nodes[node_index]
            return [layer.name, index[id(node)], tensor_index]

        def tensor_config(t):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(t.shape), "dtype": t.dtype,
                               "keras_history": ref(t)}}
        layer_configs = []
        for layer in self.layers:
            inbound = []
            for node in layer._inbound_nodes:
                if id(node) not in self._node_ids or not node.input_tensors:
                    continue
                args = [tensor_config(t) for t in node.input_tensors]
                inbound.append({"args": [args] if layer.multi_input else args, "kwargs": {}})
            entry = layers_module.serialize(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = inbound
            layer_configs.append(entry)
        return {"name": self.name, "trainable": self.trainable, "layers": layer_configs,
                "input_layers": (ref(self._inputs[0]) if self._single_input
                                 else [ref(t) for t in self._inputs]),
                "output_layers": (ref(self._outputs[0]) if self._single_output
                                  else [ref(t) for t in self._outputs])}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild a functional model from ``get_config`` (Keras 3's format)."""
        return _functional_from_config(cls, config, custom_objects)

    def to_json(self, **kwargs):
        """The architecture as a JSON string (``{"class_name": ..., "config": get_config()}``).

        Args:
            **kwargs: passed to :func:`json.dumps` (e.g. ``indent=2``).

        Returns:
            str.
        """
        return json.dumps({"class_name": type(self).__name__, "config": self.get_config()},
                          **kwargs)

    def __repr__(self):
        return "<%s name=%s, built=%s>" % (type(self).__name__, self.name, self.built)


Model = Functional


def _functional_from_config(cls, config, custom_objects):
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("Functional.from_config: expected a dict with a 'layers' list, got "
                         "%.200r" % (config,))
    by_name, pending = {}, []
    for entry in config["layers"]:
        if not isinstance(entry, dict):
            raise ValueError("Functional.from_config: malformed layer entry %.200r" % (entry,))
        layer = layers_module.deserialize(entry, custom_objects)
        name = entry.get("name", layer.name)
        if name in by_name:
            raise ValueError('Functional.from_config: two layers are named "%s"' % name)
        by_name[name] = layer
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, (list, tuple)):
            raise ValueError('Functional.from_config: layer "%s" has malformed inbound_nodes'
                             % name)
        for node_data in nodes:
            pending.append((layer, node_data))
    created = collections.defaultdict(list)  # layer name -> output tensors of its nodes
    for layer in by_name.values():
        if isinstance(layer, InputLayer):
            created[layer.name].append(layer.output)

    def lookup(ref):
        if not (isinstance(ref, (list, tuple)) and len(ref) == 3 and isinstance(ref[0], str)
                and isinstance(ref[1], int)):
            raise ValueError("Functional.from_config: malformed tensor reference %.200r"
                             % (ref,))
        outs = created.get(ref[0], [])
        return outs[ref[1]] if 0 <= ref[1] < len(outs) else None

    def parse_args(node_data, layer):
        if not isinstance(node_data, dict) or not isinstance(node_data.get("args"),
                                                             (list, tuple)):
            raise ValueError('Functional.from_config: layer "%s" has a malformed inbound '
                             "node %.200r" % (layer.name, node_data))
        args = node_data["args"]
        flat = args[0] if (len(args) == 1 and isinstance(args[0], (list, tuple))) else args
        refs = []
        for a in flat:
            if not (isinstance(a, dict) and isinstance(a.get("config"), dict)
                    and a["config"].get("keras_history") is not None):
                raise ValueError('Functional.from_config: layer "%s" has a malformed input '
                                 "%.200r" % (layer.name, a))
            refs.append(a["config"]["keras_history"])
        return refs

    # process nodes whose inputs exist, until no progress (what is left is a cycle or
    # refers to layers that do not exist)
    while pending:
        progress, left = False, []
        for layer, node_data in pending:
            refs = parse_args(node_data, layer)
            tensors = [lookup(r) for r in refs]
            if any(t is None for t in tensors):
                left.append((layer, node_data))
                continue
            out = layer(tensors if (layer.multi_input or len(tensors) > 1) else tensors[0])
            created[layer.name].append(out)
            progress = True
        if not progress:
            names = sorted({l.name for l, _ in left})
            raise ValueError("Functional.from_config: the nodes of layers %s refer to inputs "
                             "that never become available (a cycle, or a missing layer)"
                             % names)
        pending = left

    def ends(key):
        refs = config.get(key)
        if not isinstance(refs, (list, tuple)) or not refs:
            raise ValueError("Functional.from_config: missing or malformed %s" % key)
        if len(refs) == 3 and isinstance(refs[0], str):
            refs = [refs]
        tensors = [lookup(r) for r in refs]
        if any(t is None for t in tensors):
            raise ValueError("Functional.from_config: %s refers to unknown tensors %s"
                             % (key, refs))
        return tensors[0] if len(tensors) == 1 else tensors

    return cls(ends("input_layers"), ends("output_layers"), name=config.get("name"),
               trainable=config.get("trainable", True))


layers_module.register(Functional, "Functional")
layers_module.register(Functional, "Model")
