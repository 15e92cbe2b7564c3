"""Per-layer timing of a training step: where the time of ``fit`` goes, layer by layer.

``profile(model, x, y)`` runs real training steps of a compiled model on one batch through
the trainer's own ``train_step`` (the plan's steps forward, the loss, the steps backward, one
optimizer step), timing every step through the trainer's hook with ``time.perf_counter``
and taking medians over the repeats. It reports each layer's forward and backward milliseconds, the GFLOP/s of its
convolution / matrix product, and the percentage of this machine's measured fp32 FMA peak
(``fastcnn._ext.fma_peak_gflops`` at the current thread count). The model's weights,
optimizer state and layer state are restored afterwards, so profiling changes nothing.

    rows = model.profile(x_batch, y_batch)          # or fastcnn.profiler.profile(model, ...)
    print(fastcnn.profiler.format_profile(rows))

FLOP counts (multiply and add = 2 FLOP): Conv2D ``2*N*OH*OW*F*kh*kw*C`` forward, Dense
``2*N*in*units`` forward; backward twice that (weight gradient + input gradient), once when
the layer computes no input gradient (the first trainable layer) or has no trainable weights.
Pooling, activations, flatten, dropout, normalisation, the loss and the optimizer are counted
as 0 FLOP: they report time only. With ``y=None`` only the forward pass (inference mode) is
profiled.
"""
import collections
import statistics
import time

import numpy as np

from . import _ext

__all__ = ["ProfileRow", "ProfileResult", "profile", "format_profile", "layer_flops"]

ProfileRow = collections.namedtuple(
    "ProfileRow", ["name", "type", "output_shape", "forward_ms", "backward_ms",
                   "forward_gflops", "backward_gflops", "percent_of_peak", "percent_of_time",
                   "forward_flop", "backward_flop"])
ProfileRow.__doc__ = """One line of a profile. Times are milliseconds, medians (or minima) over
the repeats (None where a pass does not run); GFLOP/s and % of peak are None for layers
counted as 0 FLOP."""


class ProfileResult(list):
    """The list of ProfileRow (layers, then 'loss', 'optimizer', 'total') plus the context:
    ``batch_size``, ``threads``, ``peak_gflops``, ``repeats``, ``training``, ``step_ms``,
    ``stat``."""

    def __init__(self, rows, **context):
        super().__init__(rows)
        self.__dict__.update(context)

    @property
    def total(self):
        """The whole-step row, the last one (forward and backward sums, the step time, GFLOP/s)."""
        return self[-1]


def layer_flops(layer, input_shape, output_shape, need_input_grad=True):
    """(forward FLOP, backward FLOP) of one layer for a batch of ``input_shape``."""
    fwd = layer.forward_flops(input_shape, output_shape)
    if not fwd:
        return 0, 0
    passes = int(bool(layer.trainable_weights)) + int(bool(need_input_grad))
    return int(fwd), int(fwd) * passes


def _ms(samples, stat):
    if not samples:
        return None
    return 1e3 * (statistics.median(samples) if stat == "median" else min(samples))


def _gflops(flop, ms):
    if not flop or not ms:
        return None
    return flop / (ms * 1e-3) / 1e9


class _State:
    """Snapshot of everything a training step changes; ``restore`` puts it back."""

    def __init__(self, model, leaves):
        self.model = model
        self.weights = [v.value.copy() for v in model.weights]
        self.extra = [(l, {k: np.array(a, copy=True) for k, a in l.extra_state().items()})
                      for l in leaves]
        opt = model.optimizer
        self.opt = None
        if opt is not None:
            self.opt = (opt.raw_iterations, {id(v): [a.copy() for _, a in opt.slots_of(v)]
                                         for v in model.trainable_weights})

    def restore(self):
        model = self.model
        for v, w in zip(model.weights, self.weights):
            np.copyto(v.value, w)
        for layer, st in self.extra:
            if st:
                layer.set_extra_state(st)
        if self.opt is not None:
            opt = model.optimizer
            iterations, slots = self.opt
            opt.raw_iterations = iterations
            for v in model.trainable_weights:
                saved = slots.get(id(v), [])
                for j, (_, a) in enumerate(opt.slots_of(v)):
                    if j < len(saved):
                        np.copyto(a, saved[j])
                    else:
                        a[...] = 0


def _measure_peak(trials=3, seconds=0.2):
    return max(_ext.fma_peak_gflops(seconds) for _ in range(trials))


class _Timer:
    """The hook fit's own steps run through: times each plan step, the loss, the optimizer."""

    def __init__(self, clock):
        self.clock = clock
        self.timed = False
        self.order = []          # plan steps in forward order (first repeat)
        self.seen = set()
        self.fwd = collections.defaultdict(list)
        self.bwd = collections.defaultdict(list)
        self.shapes = {}         # id(step) -> (input shape, output shape)
        self.need = {}           # id(step) -> whether its backward computed an input gradient
        self.loss, self.opt, self.step = [], [], []
        self._sum = 0.0

    def __call__(self, phase, step, fn, *args):
        t0 = self.clock()
        out = fn(*args)
        dt = self.clock() - t0
        self._sum += dt
        if phase == "forward":
            if id(step) not in self.seen:
                self.seen.add(id(step))
                self.order.append(step)
            xs = args[0]
            self.shapes[id(step)] = ([a.shape for a in xs] if len(xs) > 1 else xs[0].shape,
                                     out.shape)
        elif phase == "backward":
            self.need[id(step)] = bool(args[1][0])
        if self.timed:
            {"forward": lambda: self.fwd[id(step)].append(dt),
             "backward": lambda: self.bwd[id(step)].append(dt),
             "loss": lambda: self.loss.append(dt),
             "optimizer": lambda: self.opt.append(dt)}[phase]()
        return out

    def end_step(self):
        if self.timed:
            self.step.append(self._sum)
        self._sum = 0.0


def profile(model, x, y=None, repeats=10, warmup=2, peak_gflops=None, stat="median"):
    """Profile training steps of ``model`` (a compiled, buildable model) on one batch.

    Args:
        model: a fastcnn model (``Sequential`` or ``Model``) with one input and one output;
            compiled (optimizer and loss) unless ``y`` is None. Built from ``x`` if needed.
        x, y: one batch (its size is the batch size profiled) and its targets; ``y=None``
            profiles the forward pass only (``training=False``, as ``predict``).
        repeats: timed steps (medians are reported); warmup: untimed steps before them.
        peak_gflops: the fp32 peak to compare with; measured (best of 3 x 0.2 s of
            ``fastcnn._ext.fma_peak_gflops`` at the current thread count) when None.
        stat: "median" (default) or "min" of the repeats; the minimum is the better
            estimate of the code's own speed when other processes share the cores.

    Returns:
        ProfileResult: a list of ProfileRow, one per layer call (a fused step is timed on
        its first layer's row, the others read 0 and '(fused)'), then 'loss' and
        'optimizer' (training only) and 'total' (median of the per-step sums).
    """
    from . import get_num_threads
    from .training import data
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError("profile: repeats must be a positive integer, got %r" % (repeats,))
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError("profile: warmup must be an integer >= 0, got %r" % (warmup,))
    if stat not in ("median", "min"):
        raise ValueError("profile: stat must be 'median' or 'min', got %r" % (stat,))
    training = y is not None
    if training and (not model.compiled or model.loss is None):
        raise RuntimeError("You must call `compile()` with a loss before using the model (in "
                           "profile).")
    expected = tuple(model.inputs[0].shape[1:]) if model.built else None
    x32 = data.prepare_x(x, expected, model.name, "profile")
    if x32.shape[0] == 0:
        raise ValueError("profile: x has no samples")
    if not model.built:
        model.build((None,) + x32.shape[1:])
    if training:
        targets = data.prepare_y(model.loss, (), y, x32.shape[0],
                                 model.outputs[0].shape, "profile")
    model.prepare(training)

    timer = _Timer(time.perf_counter)
    saved = _State(model, model.leaf_layers())
    try:
        for rep in range(warmup + repeats):
            timer.timed = rep >= warmup
            if training:
                model.train_step(x32, targets, hook=timer)
            else:
                model.predict_step(x32, hook=timer)
            timer.end_step()
    finally:
        saved.restore()
        model.release_inputs()

    peak = float(peak_gflops) if peak_gflops is not None else _measure_peak()
    total_ms = _ms(timer.step, stat)
    rows = []
    tot_f = tot_b = 0
    for s in timer.order:
        in_shape, out_shape = timer.shapes[id(s)]
        runs_backward = training and id(s) in timer.need
        shape = in_shape
        for j, layer in enumerate(s.layers):
            last = j == len(s.layers) - 1
            o = out_shape if last else tuple(layer.compute_output_shape(shape))
            ff, bf = layer_flops(layer, shape, o, need_input_grad=timer.need.get(id(s), False)
                                 or j > 0)
            if not runs_backward:
                bf = 0
            tot_f += ff
            tot_b += bf
            if j == 0:
                fm, bm = _ms(timer.fwd[id(s)], stat), _ms(timer.bwd[id(s)], stat)
                kind = "+".join(type(l).__name__ for l in s.layers)
            else:
                fm, bm = 0.0, (0.0 if runs_backward else None)
                kind = type(layer).__name__ + " (fused)"
            rows.append(_row(layer.name, kind, o, fm, bm, ff, bf, peak, total_ms))
            shape = o
    n_layers = len(rows)
    if training:
        rows.append(_row("loss", type(model.loss).__name__, out_shape,
                         _ms(timer.loss, stat), None, 0, 0, peak, total_ms))
        rows.append(_row("optimizer", type(model.optimizer).__name__,
                         (sum(int(v.size) for v in model.trainable_weights),),
                         _ms(timer.opt, stat), None, 0, 0, peak, total_ms))
    # the total: the whole-step time's statistic; forward/backward sums of the rows
    fsum = sum(r.forward_ms or 0.0 for r in rows[:n_layers])
    bsum = sum(r.backward_ms or 0.0 for r in rows[:n_layers])
    gf = _gflops(tot_f + tot_b, total_ms)
    rows.append(ProfileRow("total", "step" if training else "forward", tuple(x32.shape),
                           fsum, bsum if training else None, _gflops(tot_f, fsum),
                           _gflops(tot_b, bsum) if training else None,
                           None if gf is None else 100.0 * gf / peak, 100.0, tot_f, tot_b))
    return ProfileResult(rows, batch_size=int(x32.shape[0]), threads=get_num_threads(),
                         peak_gflops=peak, repeats=repeats, training=training,
                         step_ms=total_ms, stat=stat)


def _row(name, kind, shape, fm, bm, ff, bf, peak, total_ms):
    gf_f, gf_b = _gflops(ff, fm), _gflops(bf, bm)
    t = (fm or 0.0) + (bm or 0.0)
    gf = _gflops(ff + bf, t)
    return ProfileRow(name, kind, tuple(shape), fm, bm, gf_f, gf_b,
                      None if gf is None else 100.0 * gf / peak,
                      100.0 * t / total_ms if total_ms else None, ff, bf)


def format_profile(rows):
    """The profile as a text table (one line per row; '-' where a value does not apply)."""
    def num(v, fmt):
        return "-" if v is None else fmt % v

    header = ("layer", "type", "output shape", "fwd ms", "bwd ms", "fwd GFLOP/s",
              "bwd GFLOP/s", "% peak", "% time")
    body = []
    for r in rows:
        body.append((r.name, r.type, "(" + ", ".join(str(d) for d in r.output_shape) + ")",
                     num(r.forward_ms, "%.3f"), num(r.backward_ms, "%.3f"),
                     num(r.forward_gflops, "%.1f"), num(r.backward_gflops, "%.1f"),
                     num(r.percent_of_peak, "%.1f"), num(r.percent_of_time, "%.1f")))
    widths = [max(len(header[j]), *(len(b[j]) for b in body)) for j in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if j < 3 else c.rjust(w)
                         for j, (c, w) in enumerate(zip(cells, widths)))

    out = []
    ctx = getattr(rows, "peak_gflops", None)
    if ctx is not None:
        out.append("%s, batch %d, %d thread%s, %s of %d; fp32 FMA peak %.1f GFLOP/s; "
                   "step %.3f ms"
                   % ("training step" if rows.training else "forward (inference)",
                      rows.batch_size, rows.threads, "" if rows.threads == 1 else "s",
                      rows.stat, rows.repeats, rows.peak_gflops, rows.step_ms))
    out.append(line(header))
    out.append("  ".join("-" * w for w in widths))
    for j, b in enumerate(body):
        if j == len(body) - 1 and rows[j].name == "total":
            out.append("  ".join("-" * w for w in widths))
        out.append(line(b))
    return "\n".join(out)
