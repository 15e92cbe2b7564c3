"""What the trainer does differently when a model trains data-parallel over MPI.

The trainer asks ``active()`` once per call; None (no distribution, or a single process)
means it runs exactly as before. Otherwise it gets the ``Replica`` of this process and
calls it at a few fixed points:

* ``begin(model)``: the first time a model is used, rank 0's weights (and fit's shuffle
  seed) are broadcast, so every rank starts from the same model.
* ``shard(lo, hi)``: this rank's contiguous part of the global batch ``lo:hi`` (sizes
  differ by at most one; ``batch_size`` stays the global batch, as in Keras).
* ``gradient_sync(...)``: a ``GradientSync`` that sums the weight gradients of all ranks
  with nonblocking allreduces in buckets, each started as soon as backward has finished
  the layers in it (``Program.backward``'s ``grads_ready`` hook), so communication
  overlaps the rest of the backward pass.
* ``global_logs(compile_metrics, loss_total, count)``: the loss and metrics over all
  ranks (metric states summed, so every metric is exact).
* ``callbacks(cbs)``: callbacks that write files run on rank 0 only.

Every collective is issued in the same order on every rank (the order of the program),
so a job never deadlocks on a mismatched call; sums are in float32 and, for a given
number of ranks, the same on every rank and every run.
"""
import os
import time
import weakref

import numpy as np

__all__ = ["active", "current", "set_current", "Replica", "GradientSync", "BUCKET_BYTES"]

# Gradient bucket size: small enough that the first buckets start while backward still
# runs on the early layers, large enough that per-message latency stays negligible.
BUCKET_BYTES = int(os.environ.get("FASTCNN_MPI_BUCKET_BYTES", 256 * 1024))

_state = {"current": None}


def current():
    """The distribution set with ``set_distribution`` (None: single process)."""
    return _state["current"]


def set_current(value):
    _state["current"] = value


def active():
    """This process's Replica while a data-parallel distribution over more than one rank
    is set; None otherwise (the trainer then runs as a single process)."""
    d = _state["current"]
    if d is None:
        return None
    replica = d.replica()
    return replica if replica.size > 1 else None


def _shard_bounds(lo, hi, rank, size):
    n = hi - lo
    base, extra = divmod(n, size)
    start = lo + rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class Replica:
    """One rank's part in data-parallel training (see the module docstring)."""

    def __init__(self, comm):
        self.comm = comm
        # synchronized batch norm talks on its own communicator: its exchanges interleave
        # with the gradient buckets' in different orders on a rank without rows
        self.norm_comm = comm.Dup() if comm.Get_size() > 1 else comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.global_batch = None
        self._started = weakref.WeakSet()
        self._syncs = weakref.WeakKeyDictionary()

    @property
    def is_chief(self):
        """Rank 0: the rank that prints progress and writes files."""
        return self.rank == 0

    # ------------------------------------------------------------------ model state
    def begin(self, model):
        """Broadcast rank 0's weights to every rank the first time ``model`` is used (and
        check that all ranks built the same model); every later call is a no-op."""
        if model in self._started:
            return
        weights = model.get_weights()
        signature = [(tuple(w.shape), w.dtype.str) for w in weights]
        signatures = self.comm.allgather(signature)
        for r, sig in enumerate(signatures):
            if sig != signatures[0]:
                raise ValueError(
                    "fastcnn.distribution: rank %d built a different model than rank 0 (%d "
                    "weights %s vs %d weights %s); every rank must build the same model"
                    % (r, len(sig), [s for s, _ in sig][:4], len(signatures[0]),
                       [s for s, _ in signatures[0]][:4]))
        weights = [np.ascontiguousarray(w) for w in weights]
        for w in weights:
            self.comm.Bcast(w, root=0)
        model.set_weights(weights)
        self._started.add(model)

    def average_state(self, model):
        """Average the moving statistics of per-rank BatchNormalization layers over the
        ranks (after each epoch), so every rank evaluates and saves the same model."""
        from ..layers.normalization import BatchNormalization
        layers = model.leaf_layers() if hasattr(model, "leaf_layers") else model.layers
        state = [v.value for layer in layers
                 if isinstance(layer, BatchNormalization) and layer.built
                 and not getattr(layer, "synchronized", False)
                 for v in (layer.moving_mean, layer.moving_variance)]
        if not state:
            return
        flat = np.concatenate([a.reshape(-1) for a in state])
        self.comm.Allreduce(flat.copy(), flat)
        flat *= np.float32(1.0 / self.size)
        off = 0
        for a in state:
            np.copyto(a, flat[off:off + a.size].reshape(a.shape))
            off += a.size

    def broadcast_seed(self, seed):
        """Rank 0's value of ``seed`` (fit's shuffle seed), on every rank."""
        return self.comm.bcast(seed, root=0)

    # ------------------------------------------------------------------ data
    def shard(self, lo, hi):
        """This rank's rows of the global batch ``lo:hi`` (remembered as the current
        global batch, for the gradient's scale)."""
        self.global_batch = hi - lo
        return _shard_bounds(lo, hi, self.rank, self.size)

    def gather(self, local, total_rows):
        """Concatenate every rank's ``local`` rows (rank order) into one array of
        ``total_rows`` rows, on every rank."""
        from mpi4py import MPI
        row = int(np.prod(local.shape[1:], dtype=np.int64))
        counts = [(_shard_bounds(0, total_rows, r, self.size)[1]
                   - _shard_bounds(0, total_rows, r, self.size)[0]) * row
                  for r in range(self.size)]
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
        out = np.empty((total_rows,) + local.shape[1:], np.float32)
        self.comm.Allgatherv(np.ascontiguousarray(local, np.float32),
                             [out, counts, displs, MPI.FLOAT])
        return out

    # ------------------------------------------------------------------ logs
    def global_logs(self, compile_metrics, loss_total, count):
        """The loss and every compiled metric over all ranks: the loss total and sample
        count are summed, and so is each metric's state (counts, totals, confusion
        matrices, AUC buckets: all sums), so Precision, AUC and the like are exact, not
        averages of per-rank results. The local state is left as it was."""
        states = [v for m in compile_metrics.metrics for v in m.variables]
        vec = np.concatenate([np.array([loss_total, count], np.float64)]
                             + [np.asarray(v, np.float64).ravel() for v in states])
        self.comm.Allreduce(vec.copy(), vec)
        saved = [v.copy() for v in states]
        try:
            off = 2
            for v in states:
                v[...] = vec[off:off + v.size].reshape(v.shape)
                off += v.size
            logs = compile_metrics.result()
        finally:
            for v, s in zip(states, saved):
                v[...] = s
        logs["loss"] = vec[0] / vec[1] if vec[1] else 0.0
        return logs

    def combine_moments(self, rows, mean, m2):
        """Synchronized batch norm: (rows, mean, biased variance) of the global batch from
        every rank's (rows, mean, m2), combined in rank order (the same bits everywhere)."""
        from .. import ops
        c = mean.shape[0]
        mine = np.empty(2 * c + 1, np.float64)
        mine[0], mine[1:c + 1], mine[c + 1:] = rows, mean, m2
        every = np.empty((self.size, 2 * c + 1), np.float64)
        self.norm_comm.Allgather(mine, every)
        return ops.combine_moments([(int(p[0]), p[1:c + 1], p[c + 1:]) for p in every])

    def sum_channels(self, rows, *arrays):
        """Synchronized batch norm: (total rows, each array summed over the ranks), the
        sums taken in rank order (the same bits everywhere)."""
        sizes = [a.shape[0] for a in arrays]
        mine = np.concatenate([[float(rows)]] + [np.asarray(a, np.float64) for a in arrays])
        every = np.empty((self.size, mine.shape[0]), np.float64)
        self.norm_comm.Allgather(mine, every)
        total = every[0].copy()
        for part in every[1:]:
            total += part
        out, off = [int(total[0])], 1
        for n in sizes:
            out.append(total[off:off + n])
            off += n
        return tuple(out)

    def any(self, flag):
        """True on every rank if ``flag`` is true on any rank (a shared stop decision)."""
        return bool(self.comm.allreduce(1 if flag else 0) > 0)

    def callbacks(self, callbacks):
        """``callbacks`` without, on ranks other than 0, the ones that write files."""
        from ..callbacks import Callback, CSVLogger, ModelCheckpoint
        if self.is_chief or callbacks is None:
            return callbacks
        if isinstance(callbacks, Callback):
            callbacks = [callbacks]
        return [cb for cb in callbacks if not isinstance(cb, (ModelCheckpoint, CSVLogger))]

    # ------------------------------------------------------------------ gradients
    def gradient_sync(self, program, variables, grads):
        """The GradientSync for these (variable, gradient array) lists, kept per program."""
        key = tuple(id(g) for g in grads)
        sync = self._syncs.get(program)
        if sync is None or sync.key != key:
            sync = GradientSync(self, variables, grads, program=program)
            self._syncs[program] = sync
        return sync


    def gradient_wait(self):
        """(seconds, steps): time training steps spent waiting for gradient sums after
        backward (the communication that did not overlap), over all models so far."""
        syncs = list(self._syncs.values())
        return sum(x.wait_seconds for x in syncs), sum(x.steps for x in syncs)


class GradientSync:
    """Sums weight gradients over all ranks in buckets, overlapping backward.

    Gradients are grouped in backward order (the reverse of the graph's) into float32
    buckets of about ``BUCKET_BYTES``. ``ready(layers)`` (called by ``Program.backward``
    after each step) copies finished gradients into their bucket; a full bucket starts a
    nonblocking ``Iallreduce``, in bucket order so every rank issues the same sequence.
    ``finish()`` waits for all of them and writes the sums back into the gradient arrays.
    """

    def __init__(self, replica, variables, grads, bucket_bytes=None, program=None):
        self.replica = replica
        self.program = program
        self.comm = replica.comm
        self.key = tuple(id(g) for g in grads)
        self.grads = list(grads)
        limit = max(1, int(bucket_bytes or BUCKET_BYTES) // 4)
        self._index = {id(v): i for i, v in enumerate(variables)}
        self._where = [None] * len(grads)      # grad index -> (bucket, offset)
        self.buckets = []                      # lists of grad indices
        sizes = []
        for i in reversed(range(len(grads))):
            size = int(grads[i].size)
            if not self.buckets or (sizes[-1] + size > limit and sizes[-1] > 0):
                self.buckets.append([])
                sizes.append(0)
            self._where[i] = (len(self.buckets) - 1, sizes[-1])
            self.buckets[-1].append(i)
            sizes[-1] += size
        self._flat = [np.zeros(s, np.float32) for s in sizes]
        self._requests = []
        self.bytes = 4 * sum(sizes)
        self.wait_seconds = 0.0   # time finish() spent waiting for sums (not overlapped)
        self.steps = 0
        self.reset()

    def reset(self):
        self._pending = [len(b) for b in self.buckets]
        self._next = 0
        self._requests = []

    def scale(self, local_rows):
        """The factor for this rank's loss gradient: its share of the global batch (the
        local loss is a mean over local rows; the global loss a mean over all rows)."""
        total = self.replica.global_batch
        return float(local_rows) / float(total) if total else 0.0

    def ready(self, layers):
        """Gradients of ``layers`` are final for this step (Program.backward's hook)."""
        for layer in layers:
            for v in layer.trainable_weights:
                i = self._index.get(id(v))
                if i is None:
                    continue
                b, off = self._where[i]
                g = self.grads[i]
                self._flat[b][off:off + g.size] = g.reshape(-1)
                self._pending[b] -= 1
        self._start_full()

    def _start_full(self):
        from mpi4py import MPI
        while self._next < len(self.buckets) and self._pending[self._next] <= 0:
            buf = self._flat[self._next]
            self._requests.append(self.comm.Iallreduce(MPI.IN_PLACE, [buf, MPI.FLOAT],
                                                       op=MPI.SUM))
            self._next += 1
        if self._requests:
            MPI.Request.Testall(self._requests)  # lets MPI progress the started sums

    def contribute_nothing(self):
        """This rank has no rows in the batch: it adds zeros to every sum (and takes part
        in the exchanges of synchronized batch norms, in the order the program runs them)."""
        if self.program is not None:
            synced = [(s, layer) for s in self.program.steps for layer in s.layers
                      if getattr(layer, "synchronized", False) and layer.trainable]
            for _, layer in synced:
                layer.idle_step(self.replica, backward=False)
            for s, layer in reversed(synced):
                if self.program.needs_grad(s.output):
                    layer.idle_step(self.replica, backward=True)
        for b, flat in enumerate(self._flat):
            flat.fill(0.0)
            self._pending[b] = 0
        self._start_full()

    def finish(self):
        """Start what is left, wait for every sum and write it into the gradients."""
        from mpi4py import MPI
        for b in range(len(self.buckets)):
            if self._pending[b] > 0:   # a gradient backward never reached this step
                for i in self.buckets[b]:
                    _, off = self._where[i]
                    g = self.grads[i]
                    self._flat[b][off:off + g.size] = g.reshape(-1)
                self._pending[b] = 0
        self._start_full()
        t0 = time.perf_counter()
        MPI.Request.Waitall(self._requests)
        self.wait_seconds += time.perf_counter() - t0
        self.steps += 1
        for i, g in enumerate(self.grads):
            b, off = self._where[i]
            np.copyto(g, self._flat[b][off:off + g.size].reshape(g.shape))
        self.reset()
