"""The one place fastcnn touches MPI: importing mpi4py, the world communicator, and ending
the whole job when one rank fails.

mpi4py is an optional dependency (``pip install "fastcnn[mpi]"``); it is imported only
when a distribution is initialized. Nothing here imports the rest of fastcnn.
"""
import os
import sys
import time
import threading

__all__ = ["INSTALL_HINT", "world", "installed", "abort_job"]

INSTALL_HINT = ('fastcnn.distribution needs mpi4py and an MPI library: pip install '
                '"fastcnn[mpi]" (mpi4py and the mpich wheel, which ships mpiexec), or '
                'pip install mpi4py on top of a system MPI (e.g. Debian\'s openmpi-bin and '
                'libopenmpi-dev); then launch with mpiexec -n N python script.py')

_state = {"comm": None, "hooked": False}
_lock = threading.Lock()


def installed():
    """Whether mpi4py can be imported (without initializing MPI)."""
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


def world():
    """MPI.COMM_WORLD, initializing MPI on first use; ImportError with INSTALL_HINT when
    mpi4py (or the MPI library under it) is missing."""
    with _lock:
        if _state["comm"] is not None:
            return _state["comm"]
        try:
            import mpi4py
            # Only the Python thread that runs fit calls MPI; OpenMP threads never do.
            mpi4py.rc.thread_level = "funneled"
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError("%s (%s)" % (INSTALL_HINT, e)) from None
        except RuntimeError as e:  # mpi4py present but its MPI library is not loadable
            raise ImportError("%s (mpi4py could not load an MPI library: %s)"
                              % (INSTALL_HINT, e)) from None
        comm = MPI.COMM_WORLD
        _state["comm"] = comm
        if comm.Get_size() > 1:
            _install_abort_hooks(comm)
        return comm


def abort_job(comm, rank, what):
    """Name the failing rank on stderr and end every rank of the job (MPI_Abort)."""
    try:
        sys.stderr.write("fastcnn.distribution: rank %d of %d failed: %s; aborting all %d "
                         "ranks of the job\n" % (rank, comm.Get_size(), what, comm.Get_size()))
        sys.stderr.flush()
        sys.stdout.flush()
        # mpiexec's output forwarder can drop what is still in the pipe when the abort
        # kills the job: give it a moment to pass the message on
        time.sleep(1.0)
    finally:
        comm.Abort(1)
        os._exit(1)  # Abort does not return; should an MPI not honour it, still end here


def _install_abort_hooks(comm):
    """An uncaught exception on one rank would leave the others waiting in a collective
    forever: print the traceback as usual, then abort the whole job."""
    if _state["hooked"]:
        return
    _state["hooked"] = True
    rank = comm.Get_rank()
    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        try:
            previous(exc_type, exc, tb)
        finally:
            abort_job(comm, rank, "%s: %s" % (exc_type.__name__, exc))

    sys.excepthook = excepthook
