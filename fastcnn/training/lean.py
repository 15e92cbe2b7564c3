"""Lean inference: a model's plan bound once per input shape to direct kernel calls.

``model(x)``, ``predict_on_batch`` and ``predict`` run inference through a ``LeanRunner``:
for a given batch shape every step is bound once (``ops.bind_*``: validated, buffers and
scratch allocated) to a closure that calls the C kernel directly, so a call costs the
kernels plus a few microseconds of Python per step. Steps without a binder (batch norm,
preprocessing, merges, ...) run their ordinary forward. A table maps step kinds to
binders, like the fusion rules.

Steps whose run can lower itself (``run.lower``, see ops.bound) are recorded once, each run
of consecutive ones into an ``_ext.LeanProgram`` executed by ONE nogil C call: the same
kernels on the same buffers in the same order (so the same bits), without Python between
them. The other steps run from Python between the programs; a model whose steps all lower
is one C call.
"""
import collections

import numpy as np

from .. import _ext, ops
from ..layers.convolutional import Conv2D
from ..layers.core import Activation, Dense, Dropout, Flatten
from ..layers.merging import Concatenate
from ..layers.pooling import GlobalAveragePooling2D, MaxPooling2D
from ..layers.reshaping import ZeroPadding2D
from . import fused
from .plan import FusedStep, LayerStep

__all__ = ["LeanRunner"]


def _bind_conv(step, x_shape, input_padding=None):
    layer = step.layer
    if layer.activation not in ("linear", "relu") or not layer.plain:
        return None
    return ops.bind_conv2d(x_shape, layer.kernel.value,
                           layer.bias.value if layer.use_bias else None, layer.strides,
                           layer.padding, layer.activation, input_padding=input_padding)[0]


def _bind_dense(step, x_shape):
    layer = step.layer
    if len(x_shape) != 2 or layer.activation not in ("linear", "relu"):
        return None
    return ops.bind_dense(x_shape, layer.kernel.value,
                          layer.bias.value if layer.use_bias else None, layer.activation)[0]


def _bind_pool(step, x_shape, input_padding=None):
    layer = step.layer
    return ops.bind_max_pool2d(x_shape, layer.pool_size, layer.strides, layer.padding,
                               input_padding=input_padding)[0]


def _view(fn):
    """A run that only reshapes (no kernel): it lowers to itself."""
    def run(x):
        return fn(x)
    run.lower = lambda program, x: fn(x)
    return run


def _bind_flatten(step, x_shape):
    return _view(lambda x: x.reshape(x.shape[0], -1))


def _bind_identity(step, x_shape):  # Dropout at inference
    return _view(lambda x: x)


def _bind_conv_pool(step, x_shape):
    impl = step.impl
    conv, pool = impl.conv, impl.pool
    bias = conv.bias.value if conv.use_bias else None
    if impl.mode == "direct":
        return ops.bind_conv2d_relu_max_pool2d(x_shape, conv.kernel.value, bias, conv.strides,
                                               conv.padding, pool.pool_size)[0]
    _, oh, ow, _ = ops.conv2d_output_shape(x_shape, conv.kernel.shape, conv.strides,
                                           conv.padding)
    (ph, pw) = pool.pool_size
    crop = (oh // ph * ph, ow // pw * pw)
    if ((ph, pw) == (2, 2) and conv.strides == (1, 1)
            and ops.latency_algorithm(x_shape, conv.kernel.shape, conv.strides, conv.padding,
                                      crop) == "auto"
            and ops.conv2d_winograd_relu_max_pool2d_applies(x_shape, conv.kernel.shape,
                                                            conv.padding, crop)):
        return ops.bind_conv2d_winograd_relu_max_pool2d(x_shape, conv.kernel.value, bias,
                                                        conv.padding, crop)[0]
    conv_run, z = ops.bind_conv2d(x_shape, conv.kernel.value, bias, conv.strides,
                                  conv.padding, "relu", output_size=crop)
    pool_run, _ = ops.bind_max_pool2d(z.shape, (ph, pw))

    def run(x):
        return pool_run(conv_run(x))
    run.lower = lambda program, x: pool_run.lower(program, conv_run.lower(program, x))
    return run


def _bind_zero_pad(step, x_shape):
    return ops.bind_zero_pad2d(x_shape, step.layer.padding)[0]


def _bind_activation(step, x_shape):
    if step.layer.activation == "sigmoid":
        return ops.bind_sigmoid(x_shape)[0]
    if step.layer.activation == "linear":
        return _view(lambda x: x)
    return None


def _bind_global_avg_pool(step, x_shape):
    return ops.bind_global_avg_pool2d(x_shape, step.layer.keepdims)[0]


def _bind_add_relu(step, x_shapes):
    return ops.bind_add_relu(x_shapes)[0]


def _bind_concatenate(step, x_shapes):
    return ops.bind_concatenate(x_shapes, step.layer.axis)[0]


def _bind_conv_batch_norm(step, x_shape, input_padding=None):
    impl = step.impl
    conv, bn = impl.conv, impl.bn
    return ops.bind_conv2d_batch_norm(
        x_shape, conv.kernel.value, conv.bias.value if conv.use_bias else None,
        bn.gamma_array(), bn.beta_array(), bn.moving_mean.value, bn.moving_variance.value,
        bn.epsilon, conv.strides, conv.padding, "relu" if impl.relu else None,
        input_padding=input_padding)[0]


def _conv_of(step):
    """The Conv2D a step that _bind_conv / _bind_conv_batch_norm binds runs, else None."""
    if isinstance(step, LayerStep) and type(step.layer) is Conv2D:
        layer = step.layer
        return layer if layer.plain and layer.activation in ("linear", "relu") else None
    if isinstance(step, FusedStep) and type(step.impl) is fused.ConvBatchNorm:
        return step.impl.conv
    return None


def _nonnegative(step):
    """Whether every output of the step is >= 0 (it ends in a plain ReLU)."""
    if isinstance(step, FusedStep):
        impl = step.impl
        return (type(impl) is fused.AddRelu or type(impl) is fused.ConvReluPool
                or (type(impl) is fused.ConvBatchNorm and bool(impl.relu)))
    return _conv_of(step) is not None and step.layer.activation == "relu"


def _absorbs_padding(step, pad_step, x_shape, nonneg):
    """Whether ``step`` (the only reader of ZeroPadding2D ``pad_step``'s output, whose
    input has ``x_shape``) can take the padding into its own kernel call, with the same
    bits: a 'valid' im2col conv, or a 'valid' max pool of inputs >= 0."""
    padding = pad_step.layer.padding
    conv = _conv_of(step)
    if conv is not None:
        return ops.zero_pad_conv2d_applies(x_shape, padding, conv.kernel.shape,
                                           conv.strides, conv.padding)
    if nonneg and isinstance(step, LayerStep) and type(step.layer) is MaxPooling2D:
        layer = step.layer
        (top, bottom), (left, right) = padding  # ZeroPadding2D keeps it as pairs
        (ph, pw) = layer.pool_size
        return (layer.padding == "valid" and max(top, bottom) < ph
                and max(left, right) < pw)
    return False


# (step type, layer or fused-step type) -> binder(step, input shape) -> run(x) | None;
# a step with several inputs gets the list of their shapes and its run takes a list
BINDERS = {
    (LayerStep, Conv2D): _bind_conv,
    (LayerStep, Dense): _bind_dense,
    (LayerStep, MaxPooling2D): _bind_pool,
    (LayerStep, Flatten): _bind_flatten,
    (LayerStep, Dropout): _bind_identity,
    (FusedStep, fused.ConvReluPool): _bind_conv_pool,
    (LayerStep, ZeroPadding2D): _bind_zero_pad,
    (LayerStep, Activation): _bind_activation,
    (LayerStep, GlobalAveragePooling2D): _bind_global_avg_pool,
    (LayerStep, Concatenate): _bind_concatenate,
    (FusedStep, fused.AddRelu): _bind_add_relu,
    (FusedStep, fused.ConvBatchNorm): _bind_conv_batch_norm,
}


def _binder(step):
    key = (LayerStep, type(step.layer)) if isinstance(step, LayerStep) else \
        (FusedStep, type(step.impl))
    return BINDERS.get(key)


class LeanRunner:
    """The program's inference forward for inputs of one shape, steps bound once."""

    def __init__(self, program, x_shape):
        n = x_shape[0]
        shapes = {k: (n,) + tuple(s[1:]) for k, s in program.graph.shapes.items()}
        self.x_shape = tuple(x_shape)
        self.keys = []
        self.holds_inputs = False
        absorbed = self._absorbed_padding(program, shapes)
        for i, s in enumerate(program.steps):
            if i in absorbed.values():
                continue  # its reader pads inside its own kernel call
            inputs = s.inputs
            binder = _binder(s)
            run = None
            if i in absorbed:
                pad_step = program.steps[absorbed[i]]
                inputs = pad_step.inputs
                run = binder(s, shapes[inputs[0]], pad_step.layer.padding)
            elif binder is not None:
                run = binder(s, shapes[s.inputs[0]] if len(s.inputs) == 1 and not s.multi
                             else [shapes[k] for k in s.inputs])
            if run is None:
                self.holds_inputs = True
                run = self._generic(s)
            self.keys.append((run, inputs, s.output))
        self.input_key = program.input_keys[0]
        self.output_key = program.output_keys[0]
        self._shapes = {**shapes, self.input_key: self.x_shape}
        self.items = self._segments()
        whole = len(self.items) == 1 and self.items[0][0] == "program"
        # the whole chain in one program: __call__'s fast path
        self.program = self.items[0][1] if whole else None
        self.result = self.items[0][3][self.output_key] if whole else None

    def _segments(self):
        """What a call runs in order: ("program", LeanProgram, input keys, {key: array})
        for each run of consecutive steps that lower themselves, ("step", run, ins, out)
        for each other step."""
        items, group = [], []
        for key in self.keys + [None]:
            if key is not None and hasattr(key[0], "lower"):
                group.append(key)
                continue
            items += self.lower_steps(group)
            group = []
            if key is not None:
                items.append(("step",) + key)
        return items

    def lower_steps(self, group):
        """The steps ``group`` (entries of ``keys``, in order) as one program.

        Args:
            group: a list of ``(run, input keys, output key)`` entries of ``self.keys``
                whose runs all have ``lower``.

        Returns:
            ``[("program", LeanProgram, input keys, {output key: array})]``, or one
            ``("step", run, input keys, output key)`` item per step where a program cannot
            hold them (too many inputs, empty arrays, an output that is an input's view);
            ``[]`` for an empty group.
        """
        if not group:
            return []
        produced = {out for _, _, out in group}
        inputs = list(dict.fromkeys(k for _, ins, _ in group for k in ins
                                    if k not in produced))
        fallback = [("step",) + key for key in group]
        if len(inputs) > 8:
            return fallback
        placeholders = [np.zeros(self._shapes[k], np.float32) for k in inputs]
        values = dict(zip(inputs, placeholders))
        try:
            program = _ext.LeanProgram(placeholders)
            for run, ins, out in group:
                values[out] = run.lower(program, values[ins[0]] if len(ins) == 1
                                        else [values[k] for k in ins])
        except ValueError:  # e.g. a batch of 0 samples: nothing to point at
            return fallback
        outputs = {k: values[k] for k in produced}
        if any(np.shares_memory(v, p) for v in outputs.values() for p in placeholders):
            return fallback  # a view of an input would not follow the call's arrays
        return [("program", program, inputs, outputs)]

    @staticmethod
    def _absorbed_padding(program, shapes):
        """{reader step index: ZeroPadding2D step index} for each padding whose only reader
        takes it into its kernel call (ZeroPadding2D + conv, + max pool after a ReLU)."""
        steps = program.steps
        readers = collections.defaultdict(list)
        for i, s in enumerate(steps):
            for k in s.inputs:
                readers[k].append(i)
        producer = {s.output: i for i, s in enumerate(steps)}
        absorbed = {}
        for i, s in enumerate(steps):
            if not (isinstance(s, LayerStep) and type(s.layer) is ZeroPadding2D) \
                    or s.output in program.output_keys or len(readers[s.output]) != 1:
                continue
            j = readers[s.output][0]
            src = producer.get(s.inputs[0])
            nonneg = src is not None and _nonnegative(steps[src])
            if _absorbs_padding(steps[j], s, shapes[s.inputs[0]], nonneg):
                absorbed[j] = i
        return absorbed

    @staticmethod
    def _generic(step):
        if step.multi:
            return lambda xs: step.forward(xs, False, False)
        return lambda x: step.forward([x], False, False)

    def __call__(self, x):
        if self.program is not None:
            self.program.run([x])
            return self.result
        values = {self.input_key: x}
        for kind, a, ins, out in self.items:
            if kind == "program":  # a Python step's output may be a strided view
                a.run([values[k] if k == self.input_key
                       else np.ascontiguousarray(values[k], np.float32) for k in ins])
                values.update(out)
            else:
                values[out] = a(values[ins[0]]) if len(ins) == 1 else a([values[k] for k in ins])
        return values[self.output_key]


class LeanCache:
    """A few LeanRunners of one program, by input shape (training's batch, the last one)."""

    def __init__(self, program, size=4):
        self.program, self.size = program, size
        self._runners = collections.OrderedDict()

    def get(self, x_shape):
        runner = self._runners.get(x_shape)
        if runner is None:
            runner = self._runners[x_shape] = LeanRunner(self.program, x_shape)
            if len(self._runners) > self.size:
                self._runners.popitem(last=False)
        else:
            self._runners.move_to_end(x_shape)
        return runner
