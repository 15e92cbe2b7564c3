"""Data-parallel training over MPI: what it costs here, and a model of many machines.

Measured on this machine (synthetic CIFAR-shaped uint8 data, the models of fastcnn.zoo):

* compute: the time of one training step (``fit``) at ``--batch`` images in one process
  with all cores;
* allreduce: the time to sum the model's gradients (its parameter bytes, float32) over
  ``mpiexec -n 2`` on loopback, one blocking ``Allreduce`` and as fastcnn's training step
  does it (``Iallreduce`` in buckets);
* throughput: images/s of ``fit`` at global batch ``--batch`` on 2 ranks x 1 thread
  against 1 process x 2 threads (the target is >= 0.9x), and how long the 2-rank steps
  waited for gradient sums after backward (what overlap did not hide).

Modelled for N = 2 ... 64 nodes (one rank per node, each as fast as this machine), a
ring allreduce over a stated network: ``t_ar = 2 (N-1)/N * bytes / bandwidth + 2 (N-1) *
latency``; 10 Gb/s Ethernet (latency 20 us) and 100 Gb/s (InfiniBand-class, 3 us). A step
takes ``t_compute + t_ar`` without overlap and ``max(t_compute, t_ar)`` with perfect overlap;
the table gives the speed-up over one node with the per-node batch fixed (weak scaling)
and with a fixed global batch of ``--global-batch`` split over the nodes (strong scaling,
compute per image taken as constant, which flatters small per-node batches). Timings are
the best of ``--rounds`` rounds (1 process and 2 ranks alternate, so both see the same load).

    python benchmarks/mpi_scaling.py                  # both models, a few minutes here
    python benchmarks/mpi_scaling.py --quick          # short settings (checks it runs)

Needs ``pip install "fastcnn[mpi]"`` (mpi4py + mpiexec) for the measured allreduce and
throughput; without it only compute is measured and the allreduce is modelled.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if os.path.isdir(os.path.join(ROOT, "fastcnn")):  # this checkout's fastcnn, built in place
    sys.path.insert(0, ROOT)

NETWORKS = (("10 Gb/s", 10e9 / 8, 20e-6), ("100 Gb/s", 100e9 / 8, 3e-6))
NODES = (1, 2, 4, 8, 16, 32, 64)


def _data(n):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
            rng.integers(0, 10, (n,)).astype(np.int64))


def _model(name):
    import fastcnn
    from fastcnn import layers, models, zoo
    core = zoo.MODELS[name]()
    # uint8 in, /255 in the first layer: as `fastcnn train` feeds CIFAR-10
    if isinstance(core, models.Sequential):
        model = models.Sequential([layers.Input((32, 32, 3)), layers.Rescaling(1 / 255)]
                                  + list(core.layers))
    else:
        inp = layers.Input((32, 32, 3))
        model = models.Model(inp, core(layers.Rescaling(1 / 255)(inp)))
    model.compile(optimizer="adam",
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def step_time(name, batch, steps, rounds):
    """Seconds per training step of ``fit`` (one process, current threads), best round."""
    model = _model(name)
    x, y = _data(batch * steps)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # buffers, thread team
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        times.append((time.perf_counter() - t0) / steps)
    return min(times), 4 * sum(int(np.prod(w.shape))
                                             for w in model.trainable_weights)


# ----------------------------------------------------------------------------- MPI workers
def worker_allreduce(args):
    from mpi4py import MPI
    from fastcnn.distribution import runtime
    comm = MPI.COMM_WORLD
    out = {}
    for nbytes in args.bytes:
        buf = np.ones(nbytes // 4, np.float32)
        res = np.empty_like(buf)
        blocking = []
        for _ in range(args.repeats + 2):
            comm.Barrier()
            t0 = time.perf_counter()
            comm.Allreduce(buf, res)
            blocking.append(time.perf_counter() - t0)
        # as the training step: gradients of many layers in buckets, Iallreduce, wait
        sizes = [nbytes // 4 // 8] * 8
        grads = [np.ones(s, np.float32) for s in sizes]

        class _V:
            pass
        variables = [_V() for _ in grads]

        class _Replica:
            pass
        rep = _Replica()
        rep.comm, rep.global_batch = comm, 1
        sync = runtime.GradientSync(rep, variables, grads)
        bucketed = []
        for _ in range(args.repeats + 2):
            comm.Barrier()
            t0 = time.perf_counter()
            sync.contribute_nothing()
            sync.finish()
            bucketed.append(time.perf_counter() - t0)
        out[str(nbytes)] = {"allreduce": statistics.median(blocking[2:]),
                            "bucketed": statistics.median(bucketed[2:])}
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps(out))


def worker_fit(args):
    import fastcnn
    from fastcnn import distribution
    fastcnn.set_num_threads(args.threads)
    dist = distribution.DataParallel()  # with one rank: inactive, fit runs as usual
    distribution.set_distribution(dist)
    model = _model(args.model)
    n = args.batch * args.steps
    x, y = _data(n)
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # buffers, first broadcast
    w0, s0 = dist.replica().gradient_wait()
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False)
        times.append(time.perf_counter() - t0)
    w1, s1 = dist.replica().gradient_wait()
    if distribution.rank() == 0:
        nbytes = 4 * sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        print("RESULT " + json.dumps({"images_per_s": n / min(times),
                                      "wait_per_step": (w1 - w0) / max(1, s1 - s0),
                                      "bytes": nbytes}))


def run_mpi(n, argv, timeout=900):
    exe = shutil.which("mpiexec")
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # one core per rank (MPICH/hydra: -bind-to core): unpinned ranks drift between cores
    # and the slower one sets every step's pace; one process keeps all cores for its threads
    bind = ["-bind-to", "core"] if n > 1 else []
    proc = subprocess.run([exe] + bind + ["-n", str(n), sys.executable,
                                          os.path.abspath(__file__)]
                          + argv, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError("mpiexec failed:\n%s\n%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))


# ----------------------------------------------------------------------------- model
def ring_allreduce(nbytes, nodes, bandwidth, latency):
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes / bandwidth + 2 * (nodes - 1) * latency


def table(name, t_step, batch, nbytes, global_batch):
    t_image = t_step / batch
    lines = ["", "### %s: %.2f MB of gradients, %.1f ms compute per step of %d images"
             % (name, nbytes / 1e6, 1e3 * t_step, batch), "",
             "| nodes | network | allreduce ms | weak speed-up (no overlap / overlap) | "
             "strong speed-up, global batch %d (no overlap / overlap) |" % global_batch,
             "|---:|---|---:|---|---|"]
    stops = {}
    for net, bw, lat in NETWORKS:
        prev = 0.0
        for n in NODES[1:]:
            t_ar = ring_allreduce(nbytes, n, bw, lat)
            weak = (n * t_step / (t_step + t_ar), n * t_step / max(t_step, t_ar))
            tc = t_image * global_batch / n
            one = t_image * global_batch
            strong = (one / (tc + t_ar), one / max(tc, t_ar))
            lines.append("| %d | %s | %.2f | %.1f / %.1f | %.1f / %.1f |"
                         % (n, net, 1e3 * t_ar, weak[0], weak[1], strong[0], strong[1]))
            if net not in stops and (strong[0] < 0.5 * n or strong[0] <= prev):
                stops[net] = n
            prev = strong[0]
    for net, _, _ in NETWORKS:
        lines.append("")
        lines.append("- %s: strong scaling (no overlap) %s" % (
            net, "falls below 50%% efficiency at %d nodes" % stops[net] if net in stops
            else "stays above 50% efficiency up to 64 nodes"))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", choices=["allreduce", "fit"], help=argparse.SUPPRESS)
    p.add_argument("--bytes", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    p.add_argument("--models", nargs="+", default=["tutorial", "resnet20"])
    p.add_argument("--model", default="tutorial", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--global-batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--quick", action="store_true", help="short settings: checks it runs")
    p.add_argument("--compute-ms", nargs="*", default=[], metavar="MODEL=MS",
                   help="model with this compute time per step (e.g. from a quiet machine) "
                        "instead of measuring; MODEL=MS for each of --models")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.rounds, args.repeats = 6, 2, 5
    if args.worker == "allreduce":
        return worker_allreduce(args)
    if args.worker == "fit":
        return worker_fit(args)

    import fastcnn
    from fastcnn.distribution import _mpi
    have_mpi = _mpi.installed() and shutil.which("mpiexec") is not None
    cores = fastcnn._config._cpu_count()
    print("fastcnn %s, %d cores; batch %d, %d steps x %d rounds%s"
          % (fastcnn.__version__, cores, args.batch, args.steps, args.rounds,
             "" if have_mpi else " (no mpi4py/mpiexec: allreduce and throughput not measured)"))
    measured = {}
    given = dict(item.split("=") for item in args.compute_ms)
    if given:
        for name in args.models:
            model = _model(name)
            nbytes = 4 * sum(int(np.prod(w.shape)) for w in model.trainable_weights)
            measured[name] = (float(given[name]) / 1e3, nbytes)
        have_mpi = False
        args.models = []
    if not have_mpi:
        for name in args.models:
            fastcnn.set_num_threads(None)
            measured[name] = step_time(name, args.batch, args.steps, args.rounds)
            print("%s: compute %.1f ms per step of %d at %d threads; gradients %.2f MB"
                  % (name, 1e3 * measured[name][0], args.batch, fastcnn.get_num_threads(),
                     measured[name][1] / 1e6))
    for name in args.models if have_mpi else ():
        # 1 process x all cores and 2 ranks x 1 thread, alternating rounds so that both
        # see the same load on a shared machine
        common = ["--worker", "fit", "--model", name, "--batch", str(args.batch),
                  "--steps", str(args.steps), "--rounds", "1"]
        ones, twos = [], []
        for _ in range(args.rounds):
            ones.append(run_mpi(1, common + ["--threads", str(cores)]))
            twos.append(run_mpi(2, common + ["--threads", "1"]))
        # the best round of each: on a shared machine the slow rounds measure the others
        one = max(r["images_per_s"] for r in ones)
        two = max(r["images_per_s"] for r in twos)
        wait = statistics.median(r["wait_per_step"] for r in twos)
        nbytes = ones[0]["bytes"]
        # this machine as one node: the faster of its two ways to use its cores
        t_step = args.batch / max(one, two)
        measured[name] = (t_step, nbytes)
        print("%s: compute %.1f ms per step of %d on this machine (%s); gradients %.2f MB"
              % (name, 1e3 * t_step, args.batch, "1 process x %d threads" % cores
                 if one >= two else "2 ranks x 1 thread", nbytes / 1e6))
        print("%s: throughput at batch %d: 1 process x %d threads %.0f img/s, 2 ranks x "
              "1 thread %.0f img/s = %.2fx (target >= 0.9x); gradient wait after backward "
              "%.2f ms per step" % (name, args.batch, cores, one, two, two / one, 1e3 * wait))
    if have_mpi and measured:
        sizes = sorted({nb for _, nb in measured.values()})
        ar = run_mpi(2, ["--worker", "allreduce", "--repeats", str(args.repeats), "--bytes"]
                     + [str(s) for s in sizes])
        for name, (t_step, nbytes) in measured.items():
            r = ar[str(nbytes)]
            print("%s: loopback N=2 allreduce of %.2f MB: %.2f ms blocking, %.2f ms in "
                  "buckets (%.1f%% of a compute step)"
                  % (name, nbytes / 1e6, 1e3 * r["allreduce"], 1e3 * r["bucketed"],
                     100 * r["bucketed"] / t_step))
    print("\nModelled: one rank per node, %s; ring allreduce (10 Gb/s: 20 us latency; "
          "100 Gb/s: 3 us)" % ("compute per step as given" if given
                               else "each node as fast as this machine"))
    for name, (t_step, nbytes) in measured.items():
        print(table(name, t_step, args.batch, nbytes, args.global_batch))


if __name__ == "__main__":
    sys.exit(main())
