"""Utilities of the Keras API: seeding, session-wide layer naming and the progress bar.

fastcnn draws all its randomness (weight initialisation, shuffling, dropout seeds) from ONE
private ``numpy.random.Generator`` owned by this module, never from NumPy's global state.
``set_random_seed(seed)`` resets that generator, so the same seed gives the same initial
weights, the same shuffles, the same dropout masks and, because the kernels are
deterministic at any thread count, bitwise the same trained model.
"""
import math
import numbers
import random
import re
import sys
import time

import numpy as np

__all__ = ["set_random_seed", "clear_session", "Progbar", "to_categorical"]

_MAX_SEED = 2 ** 63 - 1

_state = {"rng": np.random.default_rng(), "names": {}}


def set_random_seed(seed):
    """Seed fastcnn's random generator (and, like Keras, Python's and NumPy's global ones).

    fastcnn itself only uses its own generator: initializers, ``fit`` shuffling and
    ``Dropout`` masks all derive from it, so the same seed reproduces a run exactly.
    Python's ``random`` and ``np.random`` are seeded too because Keras users expect
    ``keras.utils.set_random_seed`` to do that.

    Example:

        >>> fastcnn.utils.set_random_seed(0)
        >>> a = fastcnn.layers.Dense(3)(np.ones((1, 2), np.float32))
        >>> fastcnn.utils.set_random_seed(0)
        >>> b = fastcnn.layers.Dense(3)(np.ones((1, 2), np.float32))
        >>> bool((a == b).all())
        True
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError("set_random_seed: expected an int seed, got %r (type %s)"
                         % (seed, type(seed).__name__))
    seed = int(seed)
    if seed < 0:
        raise ValueError("set_random_seed: the seed must be >= 0, got %d" % seed)
    _state["rng"] = np.random.default_rng(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)


def _rng():
    """fastcnn's global random generator (reset by set_random_seed)."""
    return _state["rng"]


def _draw_seed():
    """A fresh 63-bit seed from fastcnn's generator (for per-layer / per-fit streams)."""
    return int(_state["rng"].integers(0, _MAX_SEED, dtype=np.int64))


def clear_session():
    """Reset the automatic layer/model name counters (``conv2d``, ``conv2d_1``, ... restart)."""
    _state["names"].clear()


def _to_snake_case(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def _unique_name(base):
    """Keras' session-wide auto names: the first ``conv2d``, then ``conv2d_1``, ..."""
    n = _state["names"].get(base, 0)
    _state["names"][base] = n + 1
    return base if n == 0 else "%s_%d" % (base, n)


def to_categorical(x, num_classes=None):
    """One-hot encoding of class ids, as ``keras.utils.to_categorical``.

    Args:
        x: integer class ids of any shape; a trailing axis of size 1 is dropped, so (N,)
            and (N, 1) both give (N, num_classes).
        num_classes: the number of classes (default: the largest id + 1).

    Returns:
        A float32 array ``x.shape + (num_classes,)`` (Keras returns float64; fastcnn
        trains in float32).

    Raises:
        ValueError: non-integer ids, or ids outside [0, num_classes).
    """
    x = np.asarray(x)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if x.size and (not np.all(np.isfinite(x)) or np.any(x != np.round(x))):
        raise ValueError("to_categorical: expected integer class ids, got %r" % (x.dtype,))
    x = x.astype(np.int64)
    if num_classes is None:
        num_classes = int(x.max()) + 1 if x.size else 0
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError("to_categorical: class ids must be in [0, %d), got values in [%d, %d]"
                         % (num_classes, x.min(), x.max()))
    out = np.zeros(x.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out


def _format_metric(value):
    value = float(np.mean(value))  # a multi-threshold metric shows its mean, as Keras
    return " %.4f" % value if abs(value) > 1e-3 else " %.4e" % value


class Progbar:
    """Keras 3's progress bar: ``1563/1563 ━━━━━━━━━━━━━━━━━━━━ 12s 8ms/step - loss: 1.54``.

    verbose=1 redraws one line in place (``\\r``) at most every ``interval`` seconds when
    stdout is a terminal; when it is not (logs, pipes, CI) only the final line is printed.
    verbose=2 prints one line at the end (``1563/1563 - 12s - 8ms/step - loss: ...``).
    Values are displayed as given (the model passes running epoch means).
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, unit_name="step",
                 file=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self._file = file
        out = self.file
        self._dynamic = bool(getattr(out, "isatty", None) and out.isatty())
        self._values = {}
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._prev_width = 0
        self._seen = 0

    @property
    def file(self):
        """The stream the bar writes to (``sys.stdout`` unless one was given)."""
        return self._file if self._file is not None else sys.stdout

    def _style(self, text, code):
        return "\x1b[%sm%s\x1b[0m" % (code, text) if self._dynamic else text

    def _step_time(self, current, now):
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per = (now - self._time_after_first_step) / (current - 1)
        else:
            per = (now - self._start) / current
        if current == 1 and self._time_after_first_step is None:
            self._time_after_first_step = now
        return per

    def _format_time(self, per):
        if per >= 1 or per == 0:
            return " %.0fs/%s" % (per, self.unit_name)
        if per >= 1e-3:
            return " %.0fms/%s" % (per * 1e3, self.unit_name)
        return " %.0fus/%s" % (per * 1e6, self.unit_name)

    def update(self, current, values=None, finalize=None):
        """Show progress ``current`` of ``target``; ``values`` is a list of (name, value)."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for k, v in values or []:
            self._values[k] = v
        now = time.time()
        per = self._step_time(current, now)
        self._seen = current
        if self.verbose == 1:
            if not finalize and (not self._dynamic or now - self._last_update < self.interval):
                return
            if self.target:
                digits = int(math.log10(self.target)) + 1
                count = "%*d/%d" % (digits, current, self.target)
                done = int(self.width * current / self.target)
                bar = (self._style(count, "1") + " " + self._style("━" * done, "32")
                       + self._style("━" * (self.width - done), "37"))
                plain = len(count) + 1 + self.width
            else:
                bar = "%7d/Unknown" % current
                plain = len(bar)
            if self.target and not finalize:
                eta = per * (self.target - current)
                if eta > 3600:
                    eta_s = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
                elif eta > 60:
                    eta_s = "%d:%02d" % (eta // 60, eta % 60)
                else:
                    eta_s = "%ds" % eta
            else:
                eta_s = "%.0fs" % (now - self._start)
            info = " " + self._style(eta_s, "1") + self._format_time(per)
            plain += 1 + len(eta_s) + len(self._format_time(per))
            for k, v in self._values.items():
                piece = " - %s:%s" % (k, _format_metric(v))
                info += piece
                plain += len(piece)
            line = bar + info
            if self._dynamic:
                pad = " " * max(0, self._prev_width - plain)
                self.file.write("\r" + line + pad + ("\n" if finalize else ""))
            else:
                self.file.write(line + "\n")
            self.file.flush()
            self._prev_width = plain
        elif self.verbose == 2 and finalize:
            if self.target:
                digits = int(math.log10(self.target)) + 1
                count = "%*d/%d" % (digits, current, self.target)
            else:
                count = "%d" % current
            line = "%s - %.0fs -%s" % (count, now - self._start, self._format_time(per))
            for k, v in self._values.items():
                line += " - %s:%s" % (k, _format_metric(v))
            self.file.write(line + "\n")
            self.file.flush()
        self._last_update = now

    def add(self, n, values=None):
        """Advance the bar by ``n`` steps.

        Args:
            n: number of steps done since the last call.
            values: list of ``(name, value)`` pairs to average and show.
        """
        self.update(self._seen + n, values)


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (Keras' ``utils.normalize`` on a
    NumPy array): zero norms are left as 1, so an all-zero slice stays zero.

    Args:
        x: an array.
        axis: the axis the norms run along; None: one vector norm of the whole array.
        order: the norm order (``numpy.linalg.norm``'s ``ord``), 2 by default.

    Returns:
        A new array of x's shape (float64 for integer input, as NumPy's division).

    Raises:
        ValueError: an axis out of range or a bad order.
    """
    x = np.asarray(x)
    try:
        if axis is None:
            norm = np.asarray(np.linalg.norm(x.reshape(-1), order))
        else:
            norm = np.linalg.norm(x, order, axis, keepdims=True)
    except (ValueError, TypeError, np.exceptions.AxisError) as e:
        raise ValueError("normalize: cannot take the order-%r norm of an array of shape %s "
                         "along axis %r (%s)" % (order, x.shape, axis, e)) from None
    norm = np.where(norm == 0, 1, norm)
    return x / norm


__all__ += ["normalize"]


# Keras keeps its data utilities in keras.utils; fastcnn's live in fastcnn.data and are
# imported from there on first use (no import cycle, no Pillow import at start-up).
_DATA_NAMES = ("image_dataset_from_directory", "load_img", "img_to_array", "array_to_img",
               "save_img", "PyDataset")


def __getattr__(name):
    if name in _DATA_NAMES or name == "Sequence":  # keras.utils.Sequence is PyDataset
        from . import data
        return getattr(data, "PyDataset" if name == "Sequence" else name)
    raise AttributeError("module 'fastcnn.utils' has no attribute %r" % name)
