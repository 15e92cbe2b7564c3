"""Per-layer timing of a training step: where the time of ``fit`` goes, layer by layer.

``profile(model, x, y)`` runs real training steps of a compiled ``Sequential`` on one batch
through the same layer protocol ``fit`` uses (``layer.forward(training=True)``, the loss, then
``layer.backward`` in reverse, the first trainable layer skipping its input gradient, then one
optimizer step), timing every call with ``time.perf_counter`` and taking medians over the
repeats. It reports each layer's forward and backward milliseconds, the GFLOP/s of its
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
        return self[-1]


def layer_flops(layer, input_shape, output_shape, need_input_grad=True):
    """(forward FLOP, backward FLOP) of one layer for a batch of ``input_shape``."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        n, oh, ow, f = output_shape
        kh, kw = layer.kernel_size
        fwd = 2 * n * oh * ow * f * kh * kw * input_shape[-1]
    elif kind == "Dense":
        rows = int(np.prod(input_shape[:-1], dtype=np.int64))
        fwd = 2 * rows * input_shape[-1] * layer.units
    else:
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

    def __init__(self, model):
        self.model = model
        self.weights = [v.value.copy() for v in model.weights]
        self.extra = [{k: np.array(a, copy=True) for k, a in l._extra_state().items()}
                      for l in model._layers]
        opt = model.optimizer
        self.opt = None
        if opt is not None:
            self.opt = (opt.iterations, {k: [a.copy() for a in slots]
                                         for k, slots in opt._slots.items()})

    def restore(self):
        model = self.model
        for v, w in zip(model.weights, self.weights):
            np.copyto(v.value, w)
        for l, st in zip(model._layers, self.extra):
            if st:
                l._set_extra_state(st)
        if self.opt is not None:
            opt = model.optimizer
            iterations, slots = self.opt
            opt.iterations = iterations
            for k in list(opt._slots):
                if k in slots:
                    for a, saved in zip(opt._slots[k], slots[k]):
                        np.copyto(a, saved)
                else:
                    for a in opt._slots[k]:
                        a[...] = 0


def _measure_peak(trials=3, seconds=0.2):
    return max(_ext.fma_peak_gflops(seconds) for _ in range(trials))


def profile(model, x, y=None, repeats=10, warmup=2, peak_gflops=None, stat="median"):
    """Profile training steps of ``model`` (a compiled, buildable Sequential) on one batch.

    Args:
        model: ``fastcnn.models.Sequential``; compiled (optimizer and loss) unless ``y`` is
            None. Built from ``x`` if needed.
        x, y: one batch (its size is the batch size profiled) and its targets; ``y=None``
            profiles the forward pass only (``training=False``, as ``predict``).
        repeats: timed steps (medians are reported); warmup: untimed steps before them.
        peak_gflops: the fp32 peak to compare with; measured (best of 3 x 0.2 s of
            ``fastcnn._ext.fma_peak_gflops`` at the current thread count) when None.
        stat: "median" (default) or "min" of the repeats; the minimum is the better
            estimate of the code's own speed when other processes share the cores.

    Returns:
        ProfileResult: a list of ProfileRow, one per layer, then 'loss' and 'optimizer'
        (training only) and 'total' (median of the per-step sums).
    """
    from . import get_num_threads
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError("profile: repeats must be a positive integer, got %r" % (repeats,))
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError("profile: warmup must be an integer >= 0, got %r" % (warmup,))
    if stat not in ("median", "min"):
        raise ValueError("profile: stat must be 'median' or 'min', got %r" % (stat,))
    training = y is not None
    if training:
        model._assert_compiled("profile")
    x32 = model._prepare_x(x, "profile")
    if x32.shape[0] == 0:
        raise ValueError("profile: x has no samples")
    if not model.built:
        model.build((None,) + x32.shape[1:])
    layers = model._layers
    if training:
        targets = model._prepare_y(y, x32.shape[0], "profile")
        model._prepare_training()
        first = model._first_trainable
    else:
        first = len(layers)
    logits = training and model._fused_softmax

    saved = _State(model)
    n_layers = len(layers)
    fwd_t = [[] for _ in layers]
    bwd_t = [[] for _ in layers]
    loss_t, opt_t, step_t = [], [], []
    in_shapes, out_shapes = [None] * n_layers, [None] * n_layers
    clock = time.perf_counter
    try:
        for rep in range(warmup + repeats):
            timed = rep >= warmup
            step = 0.0
            h = x32
            for i, count, fwd in model._forward_steps(x32.shape, training, logits):
                in_shapes[i] = h.shape
                t0 = clock()
                h = fwd(h)
                dt = clock() - t0
                step += dt
                out_shapes[i] = h.shape
                if count == 2:  # a conv and its pool run together: timed on the conv's row
                    out_shapes[i] = layers[i].compute_output_shape(in_shapes[i])
                    in_shapes[i + 1], out_shapes[i + 1] = out_shapes[i], h.shape
                if timed:
                    fwd_t[i].append(dt)
                    if count == 2:
                        fwd_t[i + 1].append(0.0)
            if training:
                t0 = clock()
                _, g, _ = model.loss.compute(h, targets, model._buffer("dout", h.shape),
                                             model._loss_on_logits)
                dt = clock() - t0
                step += dt
                if timed:
                    loss_t.append(dt)
                for i, count, bwd in model._backward_steps(x32.shape, first):
                    t0 = clock()
                    g = bwd(g)
                    dt = clock() - t0
                    step += dt
                    if timed:
                        bwd_t[i].append(dt)
                        if count == 2:
                            bwd_t[i + 1].append(0.0)
                t0 = clock()
                model.optimizer._step(model._train_vars, model._train_grads)
                dt = clock() - t0
                step += dt
                if timed:
                    opt_t.append(dt)
            if timed:
                step_t.append(step)
    finally:
        saved.restore()
        model._release_inputs()

    plan = model._layer_plan(x32.shape)
    peak = float(peak_gflops) if peak_gflops is not None else _measure_peak()
    total_ms = _ms(step_t, stat)
    rows = []
    tot_f = tot_b = 0
    for i, layer in enumerate(layers):
        runs_backward = training and i >= first
        ff, bf = layer_flops(layer, in_shapes[i], out_shapes[i], need_input_grad=i > first)
        if not runs_backward:
            bf = 0
        tot_f += ff
        tot_b += bf
        fm, bm = _ms(fwd_t[i], stat), _ms(bwd_t[i], stat)
        kind = type(layer).__name__
        if plan[i] in ("direct", "crop"):
            kind += "+" + type(layers[i + 1]).__name__
        elif i >= 1 and plan[i - 1] in ("direct", "crop"):
            kind += " (fused)"
        rows.append(_row(layer.name, kind, out_shapes[i], fm, bm, ff, bf, peak, total_ms))
    if training:
        rows.append(_row("loss", type(model.loss).__name__, out_shapes[-1],
                         _ms(loss_t, stat), None, 0, 0, peak, total_ms))
        rows.append(_row("optimizer", type(model.optimizer).__name__,
                         (sum(int(v.size) for v in model._train_vars),), _ms(opt_t, stat),
                         None, 0, 0, peak, total_ms))
    # the total: the whole-step time's statistic; forward/backward sums of the rows
    fsum = sum(r.forward_ms or 0.0 for r in rows[:n_layers])
    bsum = sum(r.backward_ms or 0.0 for r in rows[:n_layers])
    gf = _gflops(tot_f + tot_b, total_ms)
    rows.append(ProfileRow("total", "step" if training else "forward", tuple(x32.shape),
                           fsum, bsum if training else None, _gflops(tot_f, fsum),
                           _gflops(tot_b, bsum) if training else None,
                           None if gf is None else 100.0 * gf / peak, 100.0, tot_f, tot_b))
    result = ProfileResult(rows, batch_size=int(x32.shape[0]), threads=get_num_threads(),
                           peak_gflops=peak, repeats=repeats, training=training,
                           step_ms=total_ms, stat=stat)
    return result


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
