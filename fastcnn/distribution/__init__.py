"""Data-parallel training over MPI, with Keras 3's ``keras.distribution`` names.

Launch the same script on N processes with ``mpiexec -n N python train.py`` and set the
distribution before ``fit``::

    from fastcnn import distribution
    distribution.set_distribution(distribution.DataParallel())
    model.fit(x, y, batch_size=128, epochs=10)   # 128 = the global batch over all ranks

Every rank builds the same model (rank 0's weights are broadcast at the first
``fit``/``evaluate``/``predict``), takes its part of every global batch, and the weight
gradients are summed with MPI allreduces that overlap the backward pass. The loss and
metrics ``fit`` reports are global; ``evaluate`` / ``predict`` split the data over the
ranks and combine the results; ModelCheckpoint and CSVLogger write on rank 0 only.
A rank that fails ends the whole job (MPI abort) with its rank and error on stderr.

MPI comes from mpi4py (``pip install "fastcnn[mpi]"``: mpi4py and the mpich wheel, which
ships ``mpiexec``). Run one process per rank with ``set_num_threads`` (or
``OMP_NUM_THREADS``) set so that ranks x threads does not exceed the cores; without
either, ``initialize`` gives each rank an equal share of its node's cores.
"""
import contextlib
import os
import sys

from . import _mpi, runtime

__all__ = ["Distribution", "DataParallel", "set_distribution", "distribution", "initialize",
           "rank", "world_size", "list_devices"]

_init = {"done": False}


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Start MPI for this process (idempotent; ``DataParallel()`` calls it for you).

    The processes come from the launcher (``mpiexec -n N``), so Keras' arguments for
    other backends must stay None. Unless the thread count was chosen (``OMP_NUM_THREADS``
    or ``fastcnn.set_num_threads`` before this call), each rank gets ``cores // ranks on
    this node`` kernel threads (at least one).

    Args:
        job_addresses, num_processes, process_id: accepted for Keras code; must be None.

    Returns:
        The number of processes in the job.

    Raises:
        ValueError: one of Keras' arguments was given.
        ImportError: mpi4py or an MPI library is missing (the message says what to install).
    """
    for name, value in (("job_addresses", job_addresses), ("num_processes", num_processes),
                        ("process_id", process_id)):
        if value is not None:
            raise ValueError("fastcnn.distribution.initialize: %s=%r is not supported; the "
                             "processes come from the MPI launcher (mpiexec -n N)"
                             % (name, value))
    comm = _mpi.world()
    if not _init["done"]:
        _init["done"] = True
        if comm.Get_size() > 1:
            if "OMP_NUM_THREADS" not in os.environ:
                _share_cores(comm)
            _announce(comm)
    return comm.Get_size()


def _announce(comm):
    # mpiexec names a rank that died by its PID only: one line maps PIDs to ranks
    import socket
    who = comm.gather("rank %d pid %d@%s" % (comm.Get_rank(), os.getpid(),
                                             socket.gethostname()), root=0)
    if comm.Get_rank() == 0:
        print("fastcnn.distribution: %d ranks: %s" % (len(who), ", ".join(who)),
              file=sys.stderr, flush=True)


def _share_cores(comm):
    from mpi4py import MPI
    from .. import _config
    if _config.get_num_threads() != _config._cpu_count():
        return  # the user chose a thread count already
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        _config.set_num_threads(max(1, _config._cpu_count() // local.Get_size()))
    finally:
        local.Free()


def rank():
    """This process's rank in the MPI job (0 when not running under MPI or without
    mpi4py): e.g. ``if distribution.rank() == 0: model.save(...)``."""
    if not _mpi.installed():
        return 0
    return _mpi.world().Get_rank()


def world_size():
    """The number of processes in the MPI job (1 when not under MPI or without mpi4py)."""
    if not _mpi.installed():
        return 1
    return _mpi.world().Get_size()


def list_devices(device_type=None):
    """The devices this process trains on: its CPU (``['cpu:0']``), as Keras' call.

    Args:
        device_type: None or 'cpu'.

    Raises:
        ValueError: another device type was asked for.
    """
    if device_type not in (None, "cpu", "CPU"):
        raise ValueError("fastcnn.distribution.list_devices: fastcnn runs on CPUs only, got "
                         "device_type=%r" % (device_type,))
    return ["cpu:0"]


class Distribution:
    """The base of fastcnn's distributions (Keras' ``keras.distribution.Distribution``)."""

    @contextlib.contextmanager
    def scope(self):
        """A context in which this is the distribution (the previous one comes back on
        exit)::

            with distribution.DataParallel().scope():
                model.fit(...)
        """
        previous = distribution()
        set_distribution(self)
        try:
            yield
        finally:
            set_distribution(previous)


class DataParallel(Distribution):
    """Synchronous data parallelism over the processes of an MPI job: every process holds
    the whole model and trains on its part of each global batch; gradients are summed
    with MPI allreduces.

    Args:
        device_mesh, devices: accepted for Keras code; must be None (one CPU per process).
        auto_shard_dataset: must be True: fit / evaluate / predict split the data.

    Raises:
        ValueError: an unsupported argument.
        ImportError: mpi4py or an MPI library is missing (the message says what to install).
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True):
        if device_mesh is not None or devices is not None:
            raise ValueError("DataParallel: device_mesh / devices are not supported by "
                             "fastcnn: one process is one replica (launch N with mpiexec -n N)")
        if auto_shard_dataset is not True:
            raise ValueError("DataParallel: auto_shard_dataset must be True (each rank takes "
                             "its part of every global batch), got %r" % (auto_shard_dataset,))
        self.auto_shard_dataset = True
        initialize()
        self._replica = runtime.Replica(_mpi.world())

    @property
    def batch_dim_name(self):
        """The name of the data-parallel axis, ``"batch"`` (as Keras' ``DeviceMesh``)."""
        return "batch"

    @property
    def num_processes(self):
        """The number of processes (replicas) in the job."""
        return self._replica.size

    @property
    def process_id(self):
        """This process's rank."""
        return self._replica.rank

    def replica(self):
        """This process's runtime.Replica (what the trainer calls)."""
        return self._replica

    def __repr__(self):
        return "<DataParallel rank %d of %d>" % (self._replica.rank, self._replica.size)


def set_distribution(value):
    """Make ``value`` (a DataParallel, or None for single-process) the distribution that
    fit / evaluate / predict use.

    Args:
        value: a Distribution or None.

    Raises:
        TypeError: value is neither.
    """
    if value is not None and not isinstance(value, Distribution):
        raise TypeError("set_distribution: expected a fastcnn.distribution.DataParallel or "
                        "None, got %r" % (value,))
    runtime.set_current(value)


def distribution():
    """The distribution set with ``set_distribution`` (None when single-process)."""
    return runtime.current()
