"""Layer base class, weight Variables and the training protocol shared by all layers.

Training protocol (what Sequential.fit runs, and what tests drive directly):

* ``forward(x, training=False)`` -> y: runs the layer's kernels (fastcnn.ops) writing into
  buffers the layer allocated once for this input shape (its *workspace*), and keeps what
  ``backward`` needs (the input, the output, pooling indices, dropout masks, ...).
* ``backward(dy, need_input_grad=True)`` -> dx (or None): gradients of the weights go into
  arrays preallocated at ``build`` (``layer.gradients``, aligned with
  ``trainable_weights``); dx goes into a workspace buffer.

Workspaces are keyed by input shape and kept in a small LRU, so a fit (full batches, the
last partial batch, validation batches) allocates nothing after its first steps and memory
stays flat across epochs and repeated fit calls. Returned arrays are those buffers: they are
overwritten by the next call with the same shape (``layer(x)`` returns a copy instead).
"""
import collections
import numbers
import operator

import numpy as np

from .. import constraints, initializers, regularizers, utils
from ..saving import limits
from .node import Node, flatten_tensors, is_symbolic

__all__ = ["Layer", "Variable", "SeededLayer", "Workspace", "WorkspaceCache"]

# per layer: (call site, input shape) pairs kept; a shared layer has one call site per use
_WORKSPACE_CACHE = 8


class Variable:
    """A named float32 weight. ``.value`` is the storage the kernels read and update in place.

    Mirrors the parts of ``keras.Variable`` users touch: ``shape``, ``dtype``, ``name``,
    ``path``, ``trainable``, ``numpy()``, ``assign()`` and NumPy interoperability
    (``np.asarray(layer.kernel)``, ``layer.kernel * 2``). Equality stays identity, so
    ``var in model.weights`` works; compare values with ``np.array_equal``.
    """

    __array_priority__ = 100
    # set by Layer.add_weight: the penalty training adds to the loss, the projection it
    # applies after each optimizer step
    regularizer = None
    constraint = None

    def __init__(self, value, name, path, trainable=True):
        self.value = np.ascontiguousarray(value, dtype=np.float32)
        self.name = name
        self.path = path
        self.trainable = trainable

    @property
    def shape(self):
        """The shape of the weight array (a tuple)."""
        return self.value.shape

    @property
    def dtype(self):
        """Always ``"float32"``: fastcnn keeps every weight in float32."""
        return "float32"

    @property
    def ndim(self):
        """Number of dimensions of the weight array."""
        return self.value.ndim

    @property
    def size(self):
        """Number of elements of the weight array."""
        return self.value.size

    def numpy(self):
        """A copy of the value as a NumPy float32 array.

        Returns:
            numpy.ndarray: a copy (changing it does not change the variable).
        """
        return self.value.copy()

    def assign(self, value):
        """Overwrite the value in place (cast to float32).

        Args:
            value: array-like of the variable's shape.

        Returns:
            This variable.

        Raises:
            ValueError: if the shape differs.
        """
        value = np.asarray(value)
        if value.shape != self.value.shape:
            raise ValueError("Variable %s: cannot assign a value of shape %s to a variable of "
                             "shape %s" % (self.path, value.shape, self.value.shape))
        np.copyto(self.value, value, casting="unsafe")
        return self

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != np.float32:
            return self.value.astype(dtype)
        return self.value.copy() if copy else self.value

    def __len__(self):
        return len(self.value)

    def __getitem__(self, item):
        return self.value[item]

    def __repr__(self):
        return "<Variable path=%s, shape=%s, dtype=float32>" % (self.path, self.value.shape)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(i.value if isinstance(i, Variable) else i for i in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)


def _binary(name):
    def op(self, other):
        other = other.value if isinstance(other, Variable) else other
        return getattr(self.value, name)(other)
    op.__name__ = name
    return op


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
              "__truediv__", "__rtruediv__", "__matmul__", "__rmatmul__", "__pow__"):
    setattr(Variable, _name, _binary(_name))
Variable.__neg__ = lambda self: -self.value


class Workspace(dict):
    """Buffers of one layer (or fused step) for one input shape; created on first use, then
    reused."""

    def buf(self, key, shape, dtype=np.float32):
        a = self.get(key)
        if a is None or a.shape != shape:
            a = np.empty(shape, dtype=dtype)
            self[key] = a
        return a


class WorkspaceCache:
    """The workspaces of one layer or fused step, by key (input shape, call site): a small
    LRU, so a fit (full batches, the last partial one, validation) allocates nothing after
    its first steps. ``last`` is the workspace of the latest ``get``."""

    def __init__(self, size=_WORKSPACE_CACHE):
        self._by_key = collections.OrderedDict()
        self._size = size
        self.last = None

    def get(self, key):
        ws = self._by_key.get(key)
        if ws is None:
            ws = self._by_key[key] = Workspace()
            if len(self._by_key) > self._size:
                self._by_key.popitem(last=False)
        else:
            self._by_key.move_to_end(key)
        self.last = ws
        return ws

    def arrays(self):
        """Every array the workspaces hold (for memory accounting)."""
        return [a for ws in self._by_key.values() for a in ws.values()
                if isinstance(a, np.ndarray)]

    def release(self, keys=("x", "x2", "cache", "activity_y")):
        """Drop the entries that refer to caller data; the buffers stay."""
        for ws in self._by_key.values():
            for key in keys:
                ws.pop(key, None)


def _shape_str(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


class Layer:
    """Base class of fastcnn layers (Keras 3 names and semantics)."""

    _allowed_kwargs = ("input_shape", "input_dim", "batch_input_shape", "batch_size")

    def __init__(self, trainable=True, name=None, dtype=None, activity_regularizer=None,
                 **kwargs):
        cls = type(self).__name__
        unknown = {k: v for k, v in kwargs.items() if k not in self._allowed_kwargs}
        if unknown:
            raise TypeError("Unrecognized keyword arguments passed to %s: %r" % (cls, unknown))
        if dtype is not None:
            dname = dtype
            if isinstance(dtype, dict):
                dname = dtype.get("config", {}).get("name", dtype)
            try:
                ok = np.dtype(dname) == np.float32
            except TypeError:
                ok = False
            if not ok:
                raise ValueError("%s: fastcnn computes in float32 only; got dtype=%r"
                                 % (cls, dtype))
        if name is None:
            name = utils._unique_name(utils._to_snake_case(cls))
        elif not isinstance(name, str) or not name:
            raise ValueError("%s: name must be a non-empty string, got %r" % (cls, name))
        self.name = name
        # penalty on this layer's output, added to the loss (divided by the batch size)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._trainable = bool(trainable)
        self.built = False
        self._weights = []
        self._grads = {}
        self._workspaces = WorkspaceCache()
        self._slot_ws = {}       # call site -> the workspace of its last forward
        self._inbound_nodes = []  # symbolic calls (fastcnn.layers.node.Node)
        self.input_shape = None
        self.output_shape = None
        shape = kwargs.get("input_shape")
        if kwargs.get("batch_input_shape") is not None:
            shape = tuple(kwargs["batch_input_shape"])[1:]
        if kwargs.get("input_dim") is not None:
            shape = (kwargs["input_dim"],)
        if shape is not None:
            shape = self._validate_input_shape_arg(shape)
        self._input_shape_arg = shape

    def _validate_input_shape_arg(self, shape):
        if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            shape = tuple(None if d is None else operator.index(d) for d in shape)
        except TypeError:
            raise ValueError("%s: input_shape must be a tuple of positive ints (without the "
                             "batch dimension), got %r" % (self.name, shape)) from None
        if any(d is None or d <= 0 for d in shape):
            raise ValueError("%s: input_shape must be a tuple of positive ints (without the "
                             "batch dimension), got %r" % (self.name, shape))
        limits.check_shape((None,) + shape, "the input shape of layer '%s'" % self.name)
        return shape

    # ------------------------------------------------------------------ weights
    @property
    def trainable(self):
        """Whether the layer's weights are updated by training.

        Setting it to ``False`` freezes the layer (as in Keras); weights that are never trainable
        (batch-norm moving statistics) stay non-trainable when it is set back to ``True``.
        """
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for v in self._weights:
            v.trainable = self._trainable and getattr(v, "_trainable_by_nature", True)

    def add_weight(self, shape, initializer="glorot_uniform", name=None, trainable=True,
                   regularizer=None, constraint=None):
        """A new float32 weight of ``shape``, tracked by this layer.

        Args:
            shape: the weight's shape.
            initializer: an initializer name, config or instance.
            name: the weight's name (its path is ``layer_name/name``).
            trainable: whether the optimizer updates it.
            regularizer: a regularizer (name, config or instance) whose penalty training
                adds to the loss.
            constraint: a constraint applied to the weight after each optimizer step.

        Returns:
            The Variable.

        Raises:
            ValueError: the initializer returned the wrong shape, or the regularizer does
                not apply to this shape.
        """
        # a model file being loaded may declare only what it stores (saving.limits)
        limits.charge(shape, "weight %r of layer '%s'" % (name, self.name))
        regularizer = regularizers.get(regularizer)
        constraint = constraints.get(constraint)
        if regularizer is not None:
            regularizer.check_weight_shape(tuple(shape), "%s (weight %r)" % (self.name, name))
        init = initializers.get(initializer)
        value = np.asarray(init(tuple(shape), "float32"), dtype=np.float32)
        if value.shape != tuple(shape):
            raise ValueError("%s: initializer %r returned shape %s, expected %s"
                             % (self.name, initializer, value.shape, tuple(shape)))
        var = Variable(value, name, "%s/%s" % (self.name, name),
                       trainable=trainable and self._trainable)
        var._trainable_by_nature = trainable
        var.regularizer, var.constraint = regularizer, constraint
        self._weights.append(var)
        if trainable:
            self._grads[id(var)] = np.zeros(var.shape, dtype=np.float32)
        return var

    @property
    def weights(self):
        """All weights of the layer (list of :class:`Variable`), in Keras order (kernel, bias, ...)."""
        return list(self._weights)

    @property
    def variables(self):
        """Same as :attr:`weights`."""
        return self.weights

    @property
    def trainable_weights(self):
        """The weights that training updates (list of :class:`Variable`)."""
        return [v for v in self.weights if v.trainable]

    @property
    def non_trainable_weights(self):
        """The weights that training does not update (e.g. batch-norm moving statistics)."""
        return [v for v in self.weights if not v.trainable]

    @property
    def trainable_variables(self):
        """Same as :attr:`trainable_weights`."""
        return self.trainable_weights

    @property
    def non_trainable_variables(self):
        """Same as :attr:`non_trainable_weights`."""
        return self.non_trainable_weights

    @property
    def gradients(self):
        """Gradient arrays written by ``backward``, aligned with ``trainable_weights``."""
        return [self._grads[id(v)] for v in self.trainable_weights]

    def _grad(self, var):
        return self._grads[id(var)]

    def grad_buffer(self, var):
        """The array ``backward`` writes the gradient of ``var`` (one of this layer's
        trainable-by-nature weights) into: fused steps and the trainer share it."""
        return self._grads[id(var)]

    def count_params(self):
        """Number of scalars in the layer's weights.

        Returns:
            int.

        Raises:
            ValueError: if the layer is not built yet.
        """
        if not self.built:
            raise ValueError("You tried to call `count_params` on layer '%s', but the layer "
                             "isn't built. You can build it manually via: "
                             "`layer.build(input_shape)`." % self.name)
        return int(sum(v.size for v in self.weights))

    @property
    def losses(self):
        """The regularization penalties (floats), as Keras' ``layer.losses``: one per
        regularized trainable weight (its current value), then the activity penalty of
        each call site's latest forward (divided by its batch size)."""
        out = [v.regularizer(v.value) for v in self.trainable_weights
               if v.regularizer is not None]
        if self.activity_regularizer is not None:
            out += [ws["activity_loss"] for ws in self._slot_ws.values()
                    if "activity_loss" in ws]
        return out

    def activity_loss(self, slot=0):
        """The activity penalty of the latest forward at call site ``slot`` (0.0 without
        an activity regularizer or before any forward)."""
        ws = self._slot_ws.get(slot)
        return 0.0 if ws is None else ws.get("activity_loss", 0.0)

    def get_weights(self):
        """The weights as NumPy copies, in Keras order (kernel, bias, ...)."""
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights):
        """Set the weights from a list of arrays (the order of :meth:`get_weights`).

        Args:
            weights: list of arrays, one per weight, of the same shapes.

        Raises:
            ValueError: if the number of arrays or a shape does not match.
        """
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError("You called `set_weights(weights)` on layer '%s' with a weight list "
                             "of length %d, but the layer was expecting %d weights."
                             % (self.name, len(weights), len(self._weights)))
        arrays = []
        for var, w in zip(self._weights, weights):
            w = np.asarray(w)
            if w.shape != var.shape:
                raise ValueError("Layer %s weight shape %s is not compatible with provided "
                                 "weight shape %s (weight '%s')."
                                 % (self.name, var.shape, w.shape, var.name))
            if not np.issubdtype(w.dtype, np.number):
                raise TypeError("Layer %s: weight '%s' must be numeric, got dtype %s"
                                % (self.name, var.name, w.dtype))
            arrays.append(w)
        for var, w in zip(self._weights, arrays):
            var.assign(w)

    # ------------------------------------------------------------------ shapes
    def _incompatible(self, what, shape):
        raise ValueError('Input 0 of layer "%s" is incompatible with the layer: %s, but '
                         "received input with shape %s" % (self.name, what, _shape_str(shape)))

    def _check_ndim(self, shape, ndim=None, min_ndim=None):
        if ndim is not None and len(shape) != ndim:
            raise ValueError('Input 0 of layer "%s" is incompatible with the layer: expected '
                             "ndim=%d, found ndim=%d. Full shape received: %s"
                             % (self.name, ndim, len(shape), _shape_str(shape)))
        if min_ndim is not None and len(shape) < min_ndim:
            raise ValueError('Input 0 of layer "%s" is incompatible with the layer: expected '
                             "min_ndim=%d, found ndim=%d. Full shape received: %s"
                             % (self.name, min_ndim, len(shape), _shape_str(shape)))

    def _check_last_axis(self, shape, expected):
        if shape[-1] != expected:
            self._incompatible("expected axis -1 of input shape to have value %d" % expected,
                               shape)

    def compute_output_shape(self, input_shape):
        """The output shape for an input shape (batch dimension included, may be ``None``).

        Args:
            input_shape: tuple (a list of tuples for merge layers).

        Returns:
            tuple: the output shape.

        Raises:
            ValueError: if the input shape does not suit the layer.
        """
        return tuple(input_shape)

    def build(self, input_shape):
        """Create the weights for an input shape (called on the first call, as in Keras).

        Args:
            input_shape: tuple, batch dimension included.
        """
        self.built = True

    # Merge layers take a list of inputs in forward/backward/__call__ (see layers.merging).
    multi_input = False

    def buffers(self):
        """The arrays this layer allocated for running (its workspaces), for accounting."""
        return self._workspaces.arrays()

    def release_inputs(self):
        """Drop the references the workspaces keep to caller data (so converted inputs
        can be freed between fit/predict calls); buffers the layer owns stay."""
        self._workspaces.release()
        self._slot_ws.clear()

    def _build_for(self, input_shape):
        """Check ``input_shape`` (batch dim included, may be None; a list of shapes for a
        merge layer), build, record shapes."""
        def norm(shape):
            return tuple(None if d is None else int(d) for d in shape)
        if self.multi_input:
            input_shape = [norm(s) for s in input_shape]
            recorded = [(None,) + s[1:] for s in input_shape]
        else:
            input_shape = norm(input_shape)
            recorded = (None,) + input_shape[1:]
        out = tuple(self.compute_output_shape(input_shape))
        limits.check_shape(out, "the output of layer '%s'" % self.name)
        if not self.built:
            self.build(input_shape)
            self.built = True
        self.input_shape = recorded
        self.output_shape = (None,) + out[1:]
        return out

    # ------------------------------------------------------------------ config
    def get_config(self):
        """The constructor arguments, as a JSON-serialisable dict (Keras' format).

        Returns:
            dict: ``cls.from_config(config)`` makes an equivalent (unbuilt) layer.
        """
        c = {"name": self.name, "trainable": self.trainable, "dtype": "float32"}
        if self.activity_regularizer is not None:
            c["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return c

    @classmethod
    def from_config(cls, config):
        """Create a layer from the dict of :meth:`get_config`.

        Args:
            config: dict.

        Returns:
            A new layer.
        """
        return cls(**config)

    def extra_state(self):
        """Arrays besides weights needed to resume exactly (saved with the model)."""
        return {}

    def set_extra_state(self, state):
        """Restore the arrays of :meth:`extra_state` (used by loading and exact resume).

        Args:
            state: dict of arrays.
        """
        pass

    # ------------------------------------------------------------------ running
    def forward(self, x, training=False, return_logits=False, slot=0):
        """Run the layer on a float32 C-contiguous batch (a list of them for a merge layer);
        caches what backward needs.

        ``return_logits`` (softmax-activated layers only) skips the final softmax so a
        cross-entropy loss can work from the logits. ``slot`` names the call site: a layer
        used at several places of a graph keeps one workspace per place, so each place's
        backward sees its own forward.
        """
        shape = tuple(a.shape for a in x) if self.multi_input else x.shape
        ws = self._workspaces.get((slot, shape))
        ws["x"] = x
        ws["training"] = bool(training)
        ws["logits"] = bool(return_logits)
        self._slot_ws[slot] = ws
        y = self._forward(x, ws, bool(training), bool(return_logits))
        if self.activity_regularizer is not None:
            self._activity_penalty(y, ws)
        return y

    def _activity_penalty(self, y, ws):
        # Keras divides the penalty of the output by its batch size
        ws["activity_y"] = y
        n = y.shape[0] if y.ndim else 1
        ws["activity_loss"] = (self.activity_regularizer(y) / n) if n else 0.0

    def _activity_backward(self, dy, ws):
        """dy plus the gradient of the activity penalty of this call's output."""
        y = ws["activity_y"]
        n = y.shape[0] if y.ndim else 1
        out = ws.buf("activity_dy", dy.shape)
        self.activity_regularizer.add_gradient(y, dy, out=out, scale=1.0 / max(n, 1))
        return out

    # Layers that can take part in the ReLU -> MaxPooling2D backward fusion (see backward).
    fuses_relu_backward = False

    def backward(self, dy, need_input_grad=True, fused_relu=False, slot=0):
        """Gradient w.r.t. the input of the last ``forward`` (None if not needed).

        ``fused_relu`` (set by the model for a ReLU-activated layer followed by a max-pool):
        the pool applies ReLU's backward inside its own scatter, and the ReLU layer then
        takes ``dy`` as the gradient of its pre-activation output. One pass over the large
        activation instead of two; the gradients are the same numbers.
        """
        if fused_relu and not self.fuses_relu_backward:
            raise ValueError("%s: fused_relu backward is not supported by %s"
                             % (self.name, type(self).__name__))
        ws = self._slot_ws.get(slot)
        if ws is None:
            raise RuntimeError("%s.backward called before forward" % self.name)
        ws["fused_relu"] = bool(fused_relu)
        if self.activity_regularizer is not None:
            dy = self._activity_backward(dy, ws)
        if self.multi_input:
            n = len(ws["x"])
            need = ([bool(need_input_grad)] * n if isinstance(need_input_grad, bool)
                    else [bool(v) for v in need_input_grad])
            return self._backward(dy, ws, need)
        return self._backward(dy, ws, bool(need_input_grad))

    def forward_flops(self, input_shape, output_shape):
        """FLOP of one forward pass on a batch of ``input_shape`` (multiply and add count 2);
        0 for layers that the profiler reports by time only. Backward counts the same again
        for the weight gradient and for the input gradient where they are computed."""
        return 0

    def _forward(self, x, ws, training, return_logits):
        raise NotImplementedError

    def _backward(self, dy, ws, need_input_grad):
        raise NotImplementedError

    def __call__(self, inputs, training=False):
        """On symbolic tensors (``fastcnn.Input`` or another layer's output): build for
        their shape, record a graph node and return the symbolic output. On a NumPy batch:
        run eagerly (building on first use) and return a new array."""
        if is_symbolic(inputs):
            return self._symbolic_call(inputs)
        if self.multi_input:
            xs = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
            self._build_for([(None,) + a.shape[1:] for a in xs])
            out = self.forward(xs, training=training)
            return np.array(out, dtype=np.float32, copy=True)
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        if x.ndim == 0:
            raise ValueError("%s: expected a batch of inputs, got a scalar" % self.name)
        self._build_for((None,) + x.shape[1:])
        return np.array(self.forward(x, training=training), dtype=np.float32, copy=True)

    def _symbolic_call(self, inputs):
        tensors = flatten_tensors(inputs, 'Layer "%s"' % self.name)
        if self.multi_input:
            if isinstance(inputs, (list, tuple)) is False:
                raise ValueError('Layer "%s" (%s) should be called on a list of inputs, got a '
                                 "single tensor" % (self.name, type(self).__name__))
            out = self._build_for([t.shape for t in tensors])
        else:
            if len(tensors) != 1:
                raise ValueError('Layer "%s" (%s) expects 1 input, but it received %d input '
                                 "tensors" % (self.name, type(self).__name__, len(tensors)))
            out = self._build_for(tensors[0].shape)
        return Node(self, tensors, out).output_tensors[0]

    def __repr__(self):
        return "<%s name=%s, built=%s>" % (type(self).__name__, self.name, self.built)


class SeededLayer(Layer):
    """A layer that draws random numbers (Dropout, the random image layers).

    ``seed`` (or one drawn from ``fastcnn.utils.set_random_seed``'s stream) and a call counter
    define every draw, so results are reproducible at any thread count; both are saved with
    the model so a resumed run draws exactly what an uninterrupted one would.
    """

    def _init_seed(self, seed):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise ValueError("%s: seed must be None or an int >= 0, got %r" % (self.name, seed))
        self.seed = None if seed is None else int(seed)
        self._seed = self.seed if seed is not None else utils._draw_seed()
        self._calls = 0

    def get_config(self):
        c = super().get_config()
        c["seed"] = self.seed
        return c

    def extra_state(self):
        return {"seed": np.array(self._seed, dtype=np.int64),
                "calls": np.array(self._calls, dtype=np.int64)}

    def set_extra_state(self, state):
        if "seed" in state:
            self._seed = int(state["seed"])
        if "calls" in state:
            self._calls = int(state["calls"])
