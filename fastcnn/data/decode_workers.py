"""Decoding image batches: the function both decoders run, and the worker processes.

Pillow's per-image Python (header parsing, mode checks) holds the GIL, so on small images
decoding threads mostly wait on each other. Worker processes each decode whole batches and
send them back through a pipe. They are started as ``python -c`` subprocesses, not with
multiprocessing: a spawned or forkserver child re-runs the main script (a tutorial-style
script without an ``if __name__ == "__main__"`` guard would re-run itself), and fork is unsafe
once OpenMP or other threads have started. A pool is kept for the whole process (started
once), used by one iteration at a time, and shut down at exit.
"""
import atexit
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import warnings

import numpy as np

from . import images

__all__ = ["decode_batch", "WorkerPool", "acquire_pool", "release_pool", "prestart",
           "shutdown_pools"]

_HEADER = struct.Struct("<Q")


def decode_batch(paths, shape, decode, on_bad_file):
    """Decodes the files ``paths`` into one uint8 ``(n,) + shape`` array.

    Args:
        paths: the image files.
        shape: ``(height, width, channels)`` of each image.
        decode: keyword arguments of :func:`fastcnn.data.images.decode_image`.
        on_bad_file: "error" (a bad file raises) or "warn" (it is left out).

    Returns:
        ``(x, keep, messages)``: the images of the kept files, a bool mask of the kept files
        and the messages of the files left out.

    Raises:
        BadImageError: a bad file with on_bad_file="error".
    """
    x = np.empty((len(paths),) + tuple(shape), np.uint8)
    keep = np.ones(len(paths), bool)
    messages = []
    size, channels = shape[:2], shape[2]
    for i, path in enumerate(paths):
        try:
            images.decode_image(path, size, channels, out=x[i], **decode)
        except images.BadImageError as e:
            if on_bad_file == "error":
                raise
            messages.append(str(e))
            keep[i] = False
    if not keep.all():
        x = x[keep]
    return x, keep, messages


# ------------------------------------------------------------------------- pipe framing

def _send(stream, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _recv(stream):
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (n,) = _HEADER.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def _worker_main():
    """A worker process: decodes the batches read from stdin, answers on stdout in order."""
    # Ctrl-C reaches the whole process group: the parent handles it and closes our stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    tasks = queue.Queue()

    def read():  # always drains stdin, so the parent never blocks writing a task
        while True:
            try:
                tasks.put(_recv(inp))
            except (EOFError, OSError):
                tasks.put(None)
                return

    threading.Thread(target=read, daemon=True).start()
    while True:
        task = tasks.get()
        if task is None:
            return
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = decode_batch(*task)
            answer = ("ok", (result, [(w.category, str(w.message)) for w in caught]))
        except images.BadImageError as e:
            answer = ("bad", str(e))
        except BaseException as e:  # noqa: B036 - reported to the parent, then go on
            answer = ("error", "%s: %s" % (type(e).__name__, e))
        try:
            _send(out, answer)
        except OSError:  # the parent is gone
            return


class WorkerPool:
    """``n`` decoding processes; batches go round-robin, answers come back in order.

    Args:
        n: the number of processes.
    """

    def __init__(self, n):
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        # bare package modules: the worker needs images.py and this file, not fastcnn's
        # __init__ (its C extension and layers would triple the start-up time)
        code = ("import sys, types\n"
                "for name, path in (('fastcnn', %r), ('fastcnn.data', %r)):\n"
                "    m = types.ModuleType(name); m.__path__ = [path]; sys.modules[name] = m\n"
                "from fastcnn.data.decode_workers import _worker_main\n"
                "_worker_main()\n" % (pkg, os.path.join(pkg, "data")))
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        self.n = n
        self.procs = []
        try:
            for _ in range(n):
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-c", code], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, env=env, close_fds=True))
        except BaseException:
            self.close()
            raise
        self.sent = 0      # tasks written
        self.received = 0  # answers read
        self.broken = False

    def submit(self, task):
        """Sends ``task`` (the arguments of :func:`decode_batch`) to the next worker."""
        proc = self.procs[self.sent % self.n]
        try:
            _send(proc.stdin, task)
        except OSError:
            self.broken = True
            raise RuntimeError("a fastcnn image-decoding worker process exited "
                               "unexpectedly") from None
        self.sent += 1

    def result(self):
        """The next answer in submission order: what :func:`decode_batch` returned.

        Raises:
            BadImageError: the batch had a bad file (on_bad_file="error").
            RuntimeError: the worker failed otherwise or died.
        """
        proc = self.procs[self.received % self.n]
        try:
            kind, value = _recv(proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            self.broken = True
            raise RuntimeError("a fastcnn image-decoding worker process exited "
                               "unexpectedly (exit code %s)" % proc.poll()) from None
        finally:
            self.received += 1
        if kind == "ok":
            result, caught = value
            for category, message in caught:  # Pillow's warnings, as threads would give
                warnings.warn(message, category, stacklevel=2)
            return result
        if kind == "bad":
            raise images.BadImageError(value)
        raise RuntimeError("image decoding failed in a worker process: %s" % value)

    def drain(self):
        """Reads and drops the answers still due (after an early stop or an error)."""
        while self.received < self.sent and not self.broken:
            try:
                self.result()
            except (images.BadImageError, RuntimeError):
                pass

    def close(self):
        """Ends the processes (closing stdin ends a worker; a stuck one is killed)."""
        for p in self.procs:
            try:
                p.stdin.close()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
        self.procs = []


_FREE = []      # idle pools, kept for the next iteration
_ALL = []       # every pool this process started
_LOCK = threading.Lock()


def acquire_pool(n):
    """An idle pool of ``n`` worker processes (started on first use), held by the caller
    until :func:`release_pool`."""
    with _LOCK:
        for i, pool in enumerate(_FREE):
            if pool.n == n:
                return _FREE.pop(i)
    pool = WorkerPool(n)
    with _LOCK:
        _ALL.append(pool)
    return pool


def prestart(n):
    """Starts a pool of ``n`` worker processes now (they boot while the caller goes on),
    unless an idle one exists."""
    release_pool(acquire_pool(n))


def release_pool(pool):
    """Gives ``pool`` back after draining it; a broken pool is closed instead."""
    pool.drain()
    if pool.broken:
        pool.close()
        with _LOCK:
            if pool in _ALL:
                _ALL.remove(pool)
        return
    with _LOCK:
        _FREE.append(pool)


def shutdown_pools():
    """Ends every worker process this process started (run at exit)."""
    with _LOCK:
        pools = list(_ALL)
        _ALL.clear()
        _FREE.clear()
    for pool in pools:
        pool.close()


def _forget_after_fork():
    # a forked child does not own its parent's workers
    global _LOCK
    _LOCK = threading.Lock()
    _ALL.clear()
    _FREE.clear()


atexit.register(shutdown_pools)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
