"""Input handling of the trainer: checking and converting x / y once per call, and batches.

Inputs are converted to float32 once per ``fit``/``evaluate``/``predict`` call (4-D uint8
images stay uint8 and each batch is converted in C as it is gathered, so a float copy of a
dataset is never made); shuffled batches are gathered into buffers reused across steps,
epochs and calls, so memory stays flat.
"""
import collections
import numbers

import numpy as np

from .. import ops
from ..layers.base import _shape_str

__all__ = ["prepare_x", "prepare_y", "prepare_sample_weight", "class_weight_to_sample_weight",
           "BatchBuffers", "epoch_permutation"]

_FINITE_CHUNK = 4096
_BUFFER_CACHE = 16


def prepare_x(x, expected, first_layer, who, what="x", keep_uint8=False):
    """``x`` as C-contiguous float32 (or uint8 images with ``keep_uint8``), checked to be a
    finite batch of samples of shape ``expected`` (None: any)."""
    if x is None:
        raise ValueError("%s: %s is None; pass the input data as a NumPy array" % (who, what))
    try:
        arr = np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise TypeError("%s: %s must be an array of numbers (%s)" % (who, what, e)) from None
    if arr.dtype.kind not in "biuf":
        raise TypeError("%s: %s must be numeric, got dtype %s" % (who, what, arr.dtype))
    if arr.ndim < 2:
        raise ValueError("%s: %s must be a batch of samples with shape (N, ...), got shape "
                         "%s" % (who, what, arr.shape))
    if expected is not None and arr.shape[1:] != tuple(expected):
        hint = ""
        if arr.shape[1:] == tuple(expected[:-1]) and expected[-1] == 1:
            hint = " (add the channel axis: x[..., None])"
        raise ValueError('Input 0 of layer "%s" is incompatible with the layer: '
                         "expected shape=%s, found shape=%s (%s has shape %s)%s"
                         % (first_layer, _shape_str((None,) + tuple(expected)),
                            _shape_str((None,) + arr.shape[1:]), what, arr.shape, hint))
    if keep_uint8 and arr.dtype == np.uint8 and arr.ndim == 4:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint8 and arr.size:
        x32 = ops.to_float32(arr)  # converted in C
    else:
        x32 = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind == "f" and x32.size and ops.count_nonfinite(x32):
        for lo in range(0, x32.shape[0], _FINITE_CHUNK):
            chunk = x32[lo:lo + _FINITE_CHUNK].reshape(-1, int(np.prod(x32.shape[1:])))
            ok = np.isfinite(chunk).all(axis=1)
            if not ok.all():
                bad = lo + int(np.flatnonzero(~ok)[0])
                overflow = bool(np.isfinite(arr[bad]).all())
                raise ValueError("%s: %s contains NaN or infinite values (first at sample %d)"
                                 "%s" % (who, what, bad,
                                         "; its values overflow float32" if overflow else ""))
    return x32


def prepare_y(loss, metrics, y, n, output_shape, who, what="y"):
    """Targets for ``loss`` (checked against n samples and the model's output shape)."""
    if y is None:
        raise ValueError("%s: %s is None; pass the targets (labels) as an array" % (who, what))
    y_shape = np.shape(y)
    if len(y_shape) == 0 or y_shape[0] != n:
        raise ValueError("%s: data cardinality is ambiguous. Make sure all arrays contain "
                         "the same number of samples. 'x' sizes: %d, '%s' sizes: %s"
                         % (who, n, what, y_shape[0] if y_shape else "a scalar"))
    out_shape = (n,) + tuple(output_shape[1:])
    targets = loss.prepare_targets(y, out_shape, what)
    for m in metrics:
        m.prepare(y_shape, out_shape)
    return targets


def epoch_permutation(seed, epoch, step, n):
    """fit's shuffle for one epoch, a pure function of (model seed, epoch, optimizer step):
    resuming from a checkpoint (load_model + fit(initial_epoch=k)) replays exactly the
    shuffles of an uninterrupted run, whatever the global random state is by then."""
    return np.random.default_rng([seed, epoch, step]).permutation(n)


class BatchBuffers:
    """Batch-sized buffers reused across steps and calls (a small LRU by tag and shape)."""

    def __init__(self):
        self._buffers = collections.OrderedDict()
        self._rows = None  # 0..n-1, the indices of unshuffled uint8 batches

    def get(self, tag, shape, dtype=np.float32):
        key = (tag, shape, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
            if len(self._buffers) > _BUFFER_CACHE:
                self._buffers.popitem(last=False)
        else:
            self._buffers.move_to_end(key)
        return buf

    def x_batch(self, x, lo, hi, idx=None, tag="xb"):
        """Rows lo:hi (or idx) of prepared input x as float32: a view where possible."""
        if x.dtype == np.uint8:
            if idx is None:  # a slice of one cached arange: no allocation per step
                rows = self._rows
                if rows is None or rows.shape[0] < x.shape[0]:
                    rows = self._rows = np.arange(x.shape[0], dtype=np.int64)
                idx = rows[lo:hi]
            out = self.get(tag, (len(idx),) + x.shape[1:])
            return ops.gather_batch(x, idx, out=out)  # uint8 -> float32 in C
        if idx is None:
            return x[lo:hi]
        return self.gather(x, idx, tag)

    def gather(self, arr, idx, tag):
        out = self.get(tag, (len(idx),) + arr.shape[1:], arr.dtype)
        if arr.ndim == 4 and arr.dtype == np.float32:
            return ops.gather_batch(arr, idx, out=out)  # C, multithreaded
        return np.take(arr, idx, axis=0, out=out, mode="clip")

    def arrays(self):
        return list(self._buffers.values())


def class_ids_for_weights(targets, who):
    """One integer class per sample from prepared targets, as Keras' class_weight does:
    the labels themselves, the argmax of one-hot rows, or the rounded 0/1 of a single
    column."""
    t = np.asarray(targets)
    if t.ndim == 2:
        t = np.round(t[:, 0]) if t.shape[1] == 1 else t.argmax(axis=-1)
    elif t.ndim != 1:
        raise ValueError("%s: class_weight needs one class per sample (targets of shape (N,), "
                         "(N, 1) or one-hot (N, classes)), got targets of shape %s; pass "
                         "sample_weight instead" % (who, t.shape))
    return np.round(t).astype(np.int64)


def class_weight_to_sample_weight(class_weight, targets, who):
    """float32 (N,) weights ``class_weight.get(class of sample i, 1.0)`` (Keras' rule).

    Raises:
        ValueError: class_weight is not a dict of integer class ids >= 0 to finite weights
            >= 0.
    """
    if not isinstance(class_weight, dict):
        raise ValueError("%s: class_weight must be a dict {class id: weight}, got %s"
                         % (who, type(class_weight).__name__))
    table = {}
    for k, v in class_weight.items():
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral):
            raise ValueError("%s: class_weight keys must be integer class ids, got %r"
                             % (who, k))
        if k < 0:
            raise ValueError("%s: class_weight keys must be class ids >= 0, got %r" % (who, k))
        if (isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real)
                or not np.isfinite(v) or v < 0):
            raise ValueError("%s: class_weight[%r] must be a finite number >= 0, got %r"
                             % (who, k, v))
        table[int(k)] = float(v)
    ids = class_ids_for_weights(targets, who)
    out = np.ones(ids.shape[0], np.float32)
    for k, v in table.items():
        out[ids == k] = v
    return out


def prepare_sample_weight(loss, sample_weight, class_weight, targets, n, output_shape, who,
                          what="sample_weight"):
    """Per-sample float32 weights for ``n`` samples from sample_weight or class_weight
    (None when neither is given); checked once per call."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError("%s: you cannot pass `class_weight` and `sample_weight` at the same "
                         "time" % who)
    if class_weight is not None:
        return class_weight_to_sample_weight(class_weight, targets, who)
    if sample_weight is None:
        return None
    shape = np.shape(sample_weight)
    if shape[:1] != (n,):
        raise ValueError("%s: %s has %s entries but there are %d samples"
                         % (who, what, shape[0] if shape else "no", n))
    return loss.prepare_sample_weight(sample_weight, (n,) + tuple(output_shape[1:]),
                                      "%s: %s" % (who, what))
