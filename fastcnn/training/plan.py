"""The execution plan of a model: its graph flattened into steps, with fusion as rules.

A model hands ``build_program`` its graph flattened to leaf layer calls (``LeafNode``:
nested models expanded, one ``slot`` per call of a shared layer). The rules below (like
PyTorch's fuser method mappings: a table from layer patterns to fused steps, kept out of
the layers) rewrite chains of nodes into fused steps; every other node runs as its layer.
``Program.forward`` / ``Program.backward`` then run the steps in order, summing the
gradients of a tensor used by several nodes in a fixed order (so results stay bitwise the
same at any thread count) and accumulating the weight gradients of shared layers.

``Program.describe()`` is the plan's public, stable description (what tests assert on).
"""
import collections

import numpy as np

from .. import ops
from ..layers.convolutional import Conv2D
from ..layers.depthwise import DepthwiseConv2D
from ..layers.core import Activation, ReLU
from ..layers.normalization import BatchNormalization
from ..layers.merging import Add
from ..layers.pooling import MaxPooling2D
from . import fused

__all__ = ["LeafNode", "Graph", "PlanStep", "Program", "FusionRule", "RULES", "build_program"]

LeafNode = collections.namedtuple("LeafNode", ["layer", "inputs", "output", "slot"])
LeafNode.__doc__ = """One call of a (non-model) layer: input tensor keys, output key, call site."""

Graph = collections.namedtuple("Graph", ["inputs", "outputs", "nodes", "shapes"])
Graph.__doc__ = """A flattened model: input keys, output keys, LeafNodes in a topological
order, and the symbolic shape (batch axis None) of every tensor key."""

PlanStep = collections.namedtuple("PlanStep", ["kind", "layers"])
PlanStep.__doc__ = """One step of a plan: ``kind`` (a layer class name, or a fusion rule's
name with its mode, e.g. 'conv2d_relu_max_pool2d[direct]'; '+relu_backward' marks a step
whose ReLU backward runs inside the next max-pool's) and the names of the layers it runs."""


# ----------------------------------------------------------------------------- predicates
def _is_relu_layer(layer):
    # plain relu only: a ReLU with max_value / negative_slope / threshold does not fuse
    return ((isinstance(layer, ReLU) and layer.fuses_relu_backward) or
            (isinstance(layer, Activation) and layer.activation == "relu"))


def _clipped_relu_max(layer):
    """The cap of a clipped ReLU layer (``ReLU(max_value=m)`` with no slope or threshold,
    ``Activation('relu6')``) that batch norm's passes can apply, else None."""
    if isinstance(layer, Activation):
        return 6.0 if layer.activation == "relu6" else None
    if (isinstance(layer, ReLU) and layer.max_value is not None and layer.negative_slope == 0
            and layer.threshold == 0):
        cap = float(layer.max_value)
        # the kernels take a float32 cap; 0 (all zeros) and inf stay unfused
        if 0.0 < cap < float("inf") and float(np.float32(cap)) == cap:
            return cap
    return None


def _is_clipped_relu_layer(layer):
    return _clipped_relu_max(layer) is not None


def _plain_conv(layer):
    """A Conv2D on conv2d's own kernels (no dilation or groups): the fused steps need it."""
    return isinstance(layer, Conv2D) and layer.plain


def _relu_activated(layer):
    """A layer whose own output is ReLU'd (its backward can leave the mask to the pool)."""
    return layer.fuses_relu_backward


def _conv_pool_mode(conv, pool, shape, relu_inside):
    """'direct', 'crop' or None for conv [+ ReLU layer] + pool on per-sample ``shape``."""
    if relu_inside != (conv.activation == "relu"):
        return None
    if relu_inside is False and conv.activation != "linear":
        return None
    if pool.strides != pool.pool_size or pool.padding != "valid" or len(shape) != 4:
        return None
    one = (1,) + tuple(shape[1:])
    if ops.conv2d_relu_max_pool2d_applies(one, conv.kernel.shape, conv.strides, conv.padding,
                                          pool.pool_size):
        return "direct"
    _, oh, ow, _ = ops.conv2d_output_shape(one, conv.kernel.shape, conv.strides, conv.padding)
    ph, pw = pool.pool_size
    if oh >= ph and ow >= pw and (oh % ph or ow % pw):
        return "crop"
    return None


FusionRule = collections.namedtuple("FusionRule", ["name", "pattern", "mode", "build"])
FusionRule.__doc__ = """``pattern``: one predicate per node of a chain (each node the only
consumer of the previous one's output); ``mode(layers, input_shape)`` -> a mode string,
'' or None (None: the rule does not apply to these shapes); ``build(layers, mode, nodes)``
-> the fused step (forward(x | xs, training), backward(dy, need)); the LeafNodes are
there for a step that runs a layer's own forward (it needs the call's slot)."""

RULES = (
    FusionRule("conv2d_relu_max_pool2d",
               (_plain_conv, lambda l: isinstance(l, MaxPooling2D)),
               lambda ls, shape: _conv_pool_mode(ls[0], ls[1], shape, True),
               lambda ls, mode, nodes: fused.ConvReluPool(ls[0], ls[-1], mode)),
    FusionRule("conv2d_relu_max_pool2d",
               (_plain_conv, _is_relu_layer,
                lambda l: isinstance(l, MaxPooling2D)),
               lambda ls, shape: _conv_pool_mode(ls[0], ls[2], shape, False),
               lambda ls, mode, nodes: fused.ConvReluPool(ls[0], ls[-1], mode)),
    FusionRule("conv2d_batch_norm_relu",
               (lambda l: _plain_conv(l) and l.activation == "linear",
                lambda l: isinstance(l, BatchNormalization), _is_relu_layer),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.ConvBatchNorm(ls[0], ls[1], True, nodes[0].slot)),
    FusionRule("conv2d_batch_norm",
               (lambda l: _plain_conv(l) and l.activation == "linear",
                lambda l: isinstance(l, BatchNormalization)),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.ConvBatchNorm(ls[0], ls[1], False, nodes[0].slot)),
    FusionRule("batch_norm_relu",
               (lambda l: isinstance(l, BatchNormalization), _is_relu_layer),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.BatchNormRelu(ls[0])),
    FusionRule("conv2d_batch_norm_clipped_relu",
               (lambda l: _plain_conv(l) and l.activation == "linear",
                lambda l: isinstance(l, BatchNormalization), _is_clipped_relu_layer),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.ConvBatchNormClippedRelu(
                   ls[0], ls[1], nodes[0].slot, _clipped_relu_max(ls[2]))),
    FusionRule("depthwise_conv2d_batch_norm_clipped_relu",
               (lambda l: isinstance(l, DepthwiseConv2D) and l.activation == "linear",
                lambda l: isinstance(l, BatchNormalization), _is_clipped_relu_layer),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.DepthwiseBatchNorm(
                   ls[0], ls[1], True, nodes[0].slot, _clipped_relu_max(ls[2]))),
    FusionRule("batch_norm_clipped_relu",
               (lambda l: isinstance(l, BatchNormalization), _is_clipped_relu_layer),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.BatchNormRelu(ls[0], _clipped_relu_max(ls[1]))),
    FusionRule("add_relu",
               (lambda l: isinstance(l, Add), _is_relu_layer),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.AddRelu(ls[0], ls[1])),
    FusionRule("depthwise_conv2d_batch_norm_relu",
               (lambda l: isinstance(l, DepthwiseConv2D) and l.activation == "linear",
                lambda l: isinstance(l, BatchNormalization), _is_relu_layer),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.DepthwiseBatchNorm(ls[0], ls[1], True,
                                                                nodes[0].slot)),
    FusionRule("depthwise_conv2d_batch_norm",
               (lambda l: isinstance(l, DepthwiseConv2D) and l.activation == "linear",
                lambda l: isinstance(l, BatchNormalization)),
               lambda ls, shape: "",
               lambda ls, mode, nodes: fused.DepthwiseBatchNorm(ls[0], ls[1], False,
                                                                nodes[0].slot)),
)


# Backward-only fusion: a ReLU-activated step followed by a max-pool: the pool's scatter
# applies ReLU's mask (a window passes its gradient only if its max > 0), one pass instead
# of two; both steps run their own forward.
RELU_POOL_BACKWARD = (_relu_activated, lambda l: isinstance(l, MaxPooling2D))


# ----------------------------------------------------------------------------- steps
class LayerStep:
    """One node run by its own layer."""

    def __init__(self, node):
        self.layer, self.slot = node.layer, node.slot
        self.layers, self.nodes = (node.layer,), (node,)
        self.inputs, self.output = tuple(node.inputs), node.output
        self.multi = node.layer.multi_input
        self.fused_relu = False
        self.accumulate = ()

    @property
    def kind(self):
        return type(self.layer).__name__ + ("+relu_backward" if self.fused_relu else "")

    def forward(self, xs, training, logits):
        return self.layer.forward(xs if self.multi else xs[0], training, logits, self.slot)

    def backward(self, dy, need):
        if self.multi:
            return self.layer.backward(dy, need, self.fused_relu, self.slot)
        return [self.layer.backward(dy, need[0], self.fused_relu, self.slot)]

    def release(self):
        self.layer.release_inputs()


class FusedStep:
    """A chain of nodes matched by a FusionRule, run by the rule's fused implementation."""

    def __init__(self, rule, mode, nodes, impl):
        self.kind = rule.name + ("[%s]" % mode if mode else "")
        self.layers, self.nodes = tuple(n.layer for n in nodes), tuple(nodes)
        self.inputs, self.output = tuple(nodes[0].inputs), nodes[-1].output
        self.multi = nodes[0].layer.multi_input
        self.impl = impl
        self.accumulate = ()

    def forward(self, xs, training, logits):
        return self.impl.forward(xs if self.multi else xs[0], training)

    def backward(self, dy, need):
        if self.multi:
            return self.impl.backward(dy, need)
        return [self.impl.backward(dy, need[0])]

    def release(self):
        self.impl.release()
        for layer in self.layers:
            layer.release_inputs()


def _consumers(graph):
    users = collections.defaultdict(list)
    for i, node in enumerate(graph.nodes):
        for k in node.inputs:
            users[k].append(i)
    return users


def _match(graph, users, i, pattern, taken):
    """The node indices of a chain starting at node i that fits ``pattern``, or None."""
    chain = [i]
    for pred_index, pred in enumerate(pattern):
        node = graph.nodes[chain[-1]]
        # a fused step never runs its layers' forward: no place for an activity penalty
        if (chain[-1] in taken or not pred(node.layer)
                or node.layer.activity_regularizer is not None):
            return None
        if pred_index == len(pattern) - 1:
            return chain
        nxt = users.get(node.output, [])
        if len(nxt) != 1 or node.output in graph.outputs:
            return None
        if len(graph.nodes[nxt[0]].inputs) != 1:
            return None
        chain.append(nxt[0])
    return None


def build_program(graph, fuse=True):
    """The steps of ``graph`` (a Graph), with the fusion rules applied when ``fuse``."""
    users = _consumers(graph)
    taken, placed = set(), {}
    if fuse:
        for i in range(len(graph.nodes)):
            for rule in sorted(RULES, key=lambda r: -len(r.pattern)):
                chain = _match(graph, users, i, rule.pattern, taken)
                if chain is None:
                    continue
                layers = [graph.nodes[j].layer for j in chain]
                mode = rule.mode(layers, graph.shapes[graph.nodes[i].inputs[0]])
                if mode is None:
                    continue
                nodes = [graph.nodes[j] for j in chain]
                placed[i] = FusedStep(rule, mode, nodes, rule.build(layers, mode, nodes))
                taken.update(chain)
                break
    steps = []
    for i, node in enumerate(graph.nodes):
        if i in placed:
            steps.append(placed[i])
        elif i not in taken:
            steps.append(LayerStep(node))
    if fuse:  # ReLU's backward into the following max-pool's scatter
        producer = {s.output: s for s in steps}
        step_users = collections.Counter(k for s in steps for k in s.inputs)
        for s in steps:
            if not isinstance(s, LayerStep) or not RELU_POOL_BACKWARD[1](s.layer):
                continue
            p = producer.get(s.inputs[0])
            if (isinstance(p, LayerStep) and RELU_POOL_BACKWARD[0](p.layer)
                    and p.layer.activity_regularizer is None
                    and step_users[p.output] == 1 and p.output not in graph.outputs):
                p.fused_relu = s.fused_relu = True
    return Program(graph, steps)


class Program:
    """The steps of one model, run forward and backward (optionally through a hook)."""

    def __init__(self, graph, steps):
        self.graph = graph
        self.steps = steps
        self.input_keys, self.output_keys = tuple(graph.inputs), tuple(graph.outputs)
        self._acc = {}     # tensor key -> the buffer its summed gradient goes into
        self._saved = {}   # (shared layer, weight index) -> its gradient before this use
        self._needs = None
        self._final = {}   # step index -> layers whose weight gradients are final after it

    def describe(self):
        """[PlanStep(kind, layer names)] in execution order."""
        return [PlanStep(s.kind, tuple(l.name for l in s.layers)) for s in self.steps]

    # ------------------------------------------------------------------ training setup
    def prepare_backward(self):
        """Work out, from the layers' current trainable flags, which tensors need a
        gradient and which shared layers accumulate weight gradients; returns the
        (trainable variables, their gradient arrays) in graph order."""
        needs = {k: False for k in self.input_keys}
        for s in self.steps:
            own = any(l.trainable_weights for l in s.layers)
            needs[s.output] = own or any(needs[k] for k in s.inputs)
        seen = set()
        for s in reversed(self.steps):
            s.accumulate = ()
            if not needs[s.output]:
                continue
            s.accumulate = tuple(l for l in s.layers if l.trainable_weights and id(l) in seen)
            seen.update(id(l) for l in s.layers)
        self._needs = needs
        # after which step (in backward order) each layer's weight gradients are final:
        # its first step in graph order (a shared layer accumulates until then)
        first = {}
        for i, s in enumerate(self.steps):
            for layer in s.layers:
                if needs[s.output] and layer.trainable_weights:
                    first.setdefault(id(layer), (i, layer))
        self._final = collections.defaultdict(list)
        for i, layer in first.values():
            self._final[i].append(layer)
        variables, grads, done = [], [], set()
        for s in self.steps:
            for layer in s.layers:
                if id(layer) in done:
                    continue
                done.add(id(layer))
                for v in layer.trainable_weights:
                    variables.append(v)
                    grads.append(layer.grad_buffer(v))
        return variables, grads

    def needs_grad(self, key):
        """Whether backward computes the gradient of tensor ``key`` (prepare_backward)."""
        if self._needs is None:
            self.prepare_backward()
        return self._needs[key]

    # ------------------------------------------------------------------ running
    def forward(self, inputs, training=False, logits=False, hook=None):
        """Outputs (a list) for ``inputs`` (a list, one array per model input).
        ``logits``: the output step skips its softmax (the loss works from logits)."""
        values = dict(zip(self.input_keys, inputs))
        last = self.steps[-1] if self.steps else None
        for s in self.steps:
            xs = [values[k] for k in s.inputs]
            lg = logits and s is last
            values[s.output] = (s.forward(xs, training, lg) if hook is None
                                else hook("forward", s, s.forward, xs, training, lg))
        return [values[k] for k in self.output_keys]

    def _accumulate(self, key, g):
        acc = self._acc.get(key)
        if acc is None or acc.shape != g.shape:
            acc = self._acc[key] = np.empty(g.shape, np.float32)
        return acc

    def _save_gradients(self, layer):
        """Copies of a shared layer's gradients so far, in buffers kept across steps."""
        out = []
        for j, g in enumerate(layer.gradients):
            buf = self._saved.get((id(layer), j))
            if buf is None or buf.shape != g.shape:
                buf = self._saved[(id(layer), j)] = np.empty(g.shape, np.float32)
            np.copyto(buf, g)
            out.append(buf)
        return out

    def backward(self, output_grads, hook=None, grads_ready=None):
        """Run every needed step's backward for the loss gradients of the outputs; weight
        gradients land in the layers' gradient arrays (see prepare_backward).
        ``grads_ready(layers)``, when given, is called as soon as the weight gradients of
        ``layers`` are final for this pass (e.g. to start communicating them while the
        earlier layers' backward still runs); every trainable layer is reported once."""
        if self._needs is None:
            self.prepare_backward()
        needs = self._needs
        grads = dict(zip(self.output_keys, output_grads))
        for index in reversed(range(len(self.steps))):
            s = self.steps[index]
            dy = grads.pop(s.output, None)
            if dy is None or not needs[s.output]:
                if grads_ready is not None and self._final.get(index):
                    grads_ready(self._final[index])
                continue
            need = [needs[k] for k in s.inputs]
            saved = [self._save_gradients(layer) for layer in s.accumulate]
            dxs = s.backward(dy, need) if hook is None else hook("backward", s, s.backward,
                                                                 dy, need)
            for layer, before in zip(s.accumulate, saved):
                for g, b in zip(layer.gradients, before):
                    ops.merge("add", [g, b], out=g)
            for k, dx, n in zip(s.inputs, dxs, need):
                if not n or dx is None:
                    continue
                prev = grads.get(k)
                if prev is None:
                    grads[k] = dx
                else:  # fan-out: summed in reverse step order, the same every run
                    acc = self._accumulate(k, dx)
                    grads[k] = ops.merge("add", [prev, dx], out=acc)
            if grads_ready is not None and self._final.get(index):
                grads_ready(self._final[index])
        return grads

    def release(self):
        """Drop the references the steps keep to caller data (converted inputs)."""
        for s in self.steps:
            s.release()

    def arrays(self):
        """Every buffer the program itself owns (fused steps, gradient sums)."""
        out = list(self._acc.values()) + list(self._saved.values())
        for s in self.steps:
            if isinstance(s, FusedStep):
                out += s.impl.arrays()
        return out
