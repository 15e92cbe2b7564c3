"""Symbolic tensors and nodes: the graph the Functional API builds (as keras/src/ops/node.py).

Calling a layer on a ``KerasTensor`` runs no kernel: it builds the layer for the tensor's
shape, records a ``Node`` (layer, input tensors, output tensors) on the layer, and returns
new symbolic outputs whose ``_keras_history`` points back at that node. A model is then the
set of nodes between its inputs and outputs.
"""
from .. import utils

__all__ = ["KerasTensor", "Node", "is_symbolic", "flatten_tensors"]


class KerasTensor:
    """A symbolic batch: ``shape`` (batch axis first, usually None) and ``dtype`` only."""

    def __init__(self, shape, dtype="float32", name=None, history=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype
        self.name = name or utils._unique_name("keras_tensor")
        self._keras_history = history  # (layer, node_index, tensor_index)

    @property
    def ndim(self):
        """Number of dimensions (batch dimension included)."""
        return len(self.shape)

    def __repr__(self):
        return ("<KerasTensor shape=%s, dtype=%s, sparse=False, name=%s>"
                % (self.shape, self.dtype, self.name))

    def __array__(self, *args, **kwargs):
        raise TypeError("A KerasTensor is symbolic: it has no value. Build a model with "
                        "fastcnn.Model(inputs, outputs) and call the model on NumPy data.")

    def _no_ops(self, *args):
        raise TypeError("fastcnn's symbolic tensors support no arithmetic operators; use the "
                        "merge layers (layers.Add, layers.add([...]), layers.Multiply, ...)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _no_ops
    __hash__ = object.__hash__


class Node:
    """One call of a layer on symbolic inputs (appended to ``layer._inbound_nodes``)."""

    def __init__(self, layer, input_tensors, output_shape):
        self.layer = layer
        self.input_tensors = list(input_tensors)
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        self.output_tensors = [KerasTensor(output_shape, history=(layer, self.index, 0))]

    @property
    def parent_nodes(self):
        """The nodes that produced this node's inputs (InputLayer nodes included)."""
        return [t._keras_history[0]._inbound_nodes[t._keras_history[1]]
                for t in self.input_tensors]

    def __repr__(self):
        return "<Node %s[%d]>" % (self.layer.name, self.index)


def is_symbolic(inputs):
    """True for a KerasTensor or a list/tuple holding one."""
    if isinstance(inputs, KerasTensor):
        return True
    return isinstance(inputs, (list, tuple)) and any(isinstance(t, KerasTensor) for t in inputs)


def flatten_tensors(inputs, who):
    """A KerasTensor or a flat list/tuple of them -> list; anything else -> ValueError."""
    if isinstance(inputs, KerasTensor):
        return [inputs]
    tensors = list(inputs)
    if not all(isinstance(t, KerasTensor) for t in tensors):
        raise ValueError("%s: a symbolic call takes KerasTensors only (from fastcnn.Input or "
                         "another layer's output); got %s"
                         % (who, [type(t).__name__ for t in tensors]))
    return tensors
