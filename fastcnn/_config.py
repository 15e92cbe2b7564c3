"""Thread count and build/run-time configuration."""
import os
import platform
import sys
import warnings

from . import _ext

__version__ = "0.1.0"

# Far beyond any sensible machine; stops a typo (1e9) from making OpenMP spawn a billion threads.
MAX_THREADS = 1024


# GNU libgomp cannot run a parallel region in a fork()ed child once the parent has started
# its thread pool: the child hangs forever. After fork, fastcnn therefore runs on ONE thread
# in the child (as PyTorch does); use the multiprocessing "spawn" or "forkserver" start
# method for multithreaded worker processes.
_state = {"forked": False}


def _after_fork_in_child():
    _state["forked"] = True
    _ext.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_num_threads(n):
    """Set how many threads fastcnn's kernels use (scikit-learn's convention).

    * ``n >= 1``: use ``n`` threads (capped at 1024; more than the cores oversubscribes).
    * ``n < 0``: ``cpu_count + 1 + n`` threads, so ``-1`` means all cores, ``-2`` all but one;
      never fewer than 1.
    * ``n is None``: back to the default (``OMP_NUM_THREADS`` if set, else all cores).
    * ``n == 0``: ``ValueError``.

    In a child process created by ``fork()`` (e.g. multiprocessing's default start method on
    Linux) fastcnn always uses 1 thread, because OpenMP (libgomp) hangs after fork; asking
    for more warns and keeps 1.

    Results do not depend on the thread count: every kernel splits work over outputs only.

    Example:

        >>> fastcnn.set_num_threads(2)
        >>> fastcnn.get_num_threads()
        2
        >>> fastcnn.set_num_threads(None)  # back to OMP_NUM_THREADS or all cores
    """
    if n is None:
        _ext.set_num_threads(1 if _state["forked"] else 0)
        return
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise TypeError("set_num_threads: expected an int or None, got %r" % (n,))
    n = int(n)
    if n == 0:
        raise ValueError("set_num_threads: n=0 is not a thread count; use n >= 1, "
                         "a negative n (-1 = all cores) or None for the default")
    if n < 0:
        n = max(1, _cpu_count() + 1 + n)
    if _state["forked"] and n > 1 and _ext.openmp_enabled():
        warnings.warn("fastcnn: this process was created by fork(); OpenMP (libgomp) hangs in "
                      "a forked child, so fastcnn keeps using 1 thread here. Start workers "
                      "with multiprocessing's 'spawn' or 'forkserver' method to use %d "
                      "threads." % n, RuntimeWarning, stacklevel=2)
        n = 1
    _ext.set_num_threads(min(n, MAX_THREADS))


def get_num_threads():
    """Threads the kernels will use (honours OMP_NUM_THREADS until set_num_threads is called)."""
    return int(_ext.get_num_threads())


def config():
    """The configuration as a dict (what show_config prints)."""
    try:
        from ._build_config import BUILD_CONFIG
    except ImportError:  # pragma: no cover - only when built without setup.py
        BUILD_CONFIG = {"compiler": "unknown", "openmp": _ext.openmp_enabled(), "cflags": ""}
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "compiler": BUILD_CONFIG.get("compiler", "unknown"),
        "cflags": BUILD_CONFIG.get("cflags", ""),
        "openmp": bool(_ext.openmp_enabled()),
        "simd": _ext.simd_name(),
        "avx512": bool(_ext.gemm_avx512()),
        "num_threads": get_num_threads(),
        "cpu_count": _cpu_count(),
    }


def show_config(file=None):
    """Print version, compiler, OpenMP, the SIMD path in use and the thread count."""
    c = config()
    lines = [
        "fastcnn %s" % c["version"],
        "  python      : %s (%s)" % (c["python"], c["platform"]),
        "  compiler    : %s  [%s]" % (c["compiler"], c["cflags"]),
        "  openmp      : %s" % ("on" if c["openmp"] else "OFF (serial build)"),
        "  simd path   : %s%s" % (c["simd"], ", AVX-512F in GEMM, Winograd and activations"
                                  if c["avx512"] else ""),
        "  threads     : %d (of %d cpus)" % (c["num_threads"], c["cpu_count"]),
    ]
    print("\n".join(lines), file=file if file is not None else sys.stdout)
