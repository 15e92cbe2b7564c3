"""Limits that keep a hostile model file from exhausting memory or the stack.

A model file declares sizes (``Conv2D(filters=...)``, ``Dense(units=...)``, input shapes) that
rebuilding the model turns into allocations before any weight is read. Loaders therefore
rebuild the architecture inside :func:`allocation_budget`: while it is active,
``Layer.add_weight`` calls :func:`charge` before allocating, and shapes declared for inputs
and computed for layer outputs go through :func:`check_shape`. The budget is the number of
floats the file actually stores (plus a small slack), so an architecture can never create
more weights than the file holds values for; a declaration beyond the budget raises
``ValueError`` naming the file, before anything is allocated.

Absolute caps (documented here, the one place they live):

* ``MAX_TENSOR_ELEMENTS`` = 2**28 (1 GiB of float32) for any single declared weight; the
  largest layers of common CNNs (VGG16's first dense kernel: 25088 x 4096, about 2**26.6)
  fit with room.
* ``MAX_SAMPLE_ELEMENTS`` = 2**28 for the elements of one sample of any declared input or
  layer output, and ``MAX_DIM`` (the same number) for any single dimension of it (so a zero
  elsewhere cannot hide a huge one).
* ``MAX_EXPANSION`` = 100: compressed content (a deflated zip entry, a compressed HDF5
  dataset) may declare at most 100 times the bytes it stores (+ 64 KiB), so a small file
  cannot expand into gigabytes (random float32 weights compress by about 1.1x).
* ``MAX_JSON_BYTES`` = 64 MiB for a JSON config before it is parsed, ``MAX_JSON_DEPTH`` = 200
  levels of nesting, ``MAX_JSON_NODES`` = 2,000,000 values, ``MAX_STRING_CHARS`` = 1 MiB per
  string and ``MAX_LAYERS`` = 10,000 layer entries.

Other loaders (the Keras-format reader, ONNX import) use the same functions:
``with limits.allocation_budget(n_floats, filepath): model = layers.deserialize(config)``.
"""
import contextlib
import contextvars
import json
import math
import numbers

__all__ = ["MAX_TENSOR_ELEMENTS", "MAX_SAMPLE_ELEMENTS", "MAX_DIM", "MAX_JSON_BYTES",
           "MAX_JSON_DEPTH", "MAX_JSON_NODES", "MAX_STRING_CHARS", "MAX_LAYERS", "SLACK_FLOATS",
           "MAX_EXPANSION", "check_expansion",
           "allocation_budget", "active_budget", "charge", "check_shape", "check_json_size",
           "check_json_structure", "loads_json"]

MAX_TENSOR_ELEMENTS = 2 ** 28
MAX_SAMPLE_ELEMENTS = 2 ** 28
MAX_DIM = MAX_SAMPLE_ELEMENTS
MAX_JSON_BYTES = 64 * 2 ** 20
MAX_EXPANSION = 100
MAX_JSON_DEPTH = 200
MAX_JSON_NODES = 2_000_000
MAX_STRING_CHARS = 2 ** 20
MAX_LAYERS = 10_000
# weights a file may leave out (e.g. a seed generator's state) without being refused
SLACK_FLOATS = 4096

_BUDGET = contextvars.ContextVar("fastcnn_allocation_budget", default=None)


class _Budget:
    """What may still be allocated while one file is being loaded."""

    def __init__(self, max_floats, source):
        self.left = max_floats
        self.total = max_floats
        self.source = source


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@contextlib.contextmanager
def allocation_budget(max_floats, source, slack=SLACK_FLOATS):
    """Bound the weights that layers may create inside the ``with`` block.

    Args:
        max_floats: number of weight values the file stores (an int >= 0).
        source: what is being loaded (a file path), named in every error.
        slack: extra floats allowed on top of ``max_floats``.

    Yields:
        None. Inside the block, ``Layer.add_weight`` refuses a weight larger than
        ``MAX_TENSOR_ELEMENTS`` or than what is left of the budget, and declared input/output
        shapes are checked by :func:`check_shape`.

    Raises:
        ValueError: (from inside the block) when a declared size exceeds a limit; the
            message names ``source``.
    """
    if not _is_int(max_floats) or max_floats < 0:
        raise ValueError("allocation_budget: max_floats must be an int >= 0, got %r"
                         % (max_floats,))
    token = _BUDGET.set(_Budget(int(max_floats) + int(slack), str(source)))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def active_budget():
    """Whether a file is being loaded under :func:`allocation_budget` (bool)."""
    return _BUDGET.get() is not None


def _checked_shape(shape, what, source):
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError("%s: %s has an invalid shape %.100r" % (source, what, shape)) from None
    for d in dims:
        if not _is_int(d) or d < 0:
            raise ValueError("%s: %s has an invalid shape %.100r (dimensions must be ints "
                             ">= 0)" % (source, what, shape))
    return dims


def charge(shape, what):
    """Account for a weight of ``shape`` about to be allocated (no-op without a budget).

    Args:
        shape: the weight's shape.
        what: a description for the error (e.g. ``"weight 'kernel' of layer 'conv2d'"``).

    Raises:
        ValueError: the shape is invalid, larger than ``MAX_TENSOR_ELEMENTS``, or more than
            the file stores; the message names the file.
    """
    budget = _BUDGET.get()
    if budget is None:
        return
    dims = _checked_shape(shape, what, budget.source)
    n = math.prod(dims)
    if n > MAX_TENSOR_ELEMENTS:
        raise ValueError("%s: %s declares shape %s (%d values), more than the limit of %d "
                         "values for one tensor (fastcnn.saving.limits.MAX_TENSOR_ELEMENTS)"
                         % (budget.source, what, dims, n, MAX_TENSOR_ELEMENTS))
    if n > budget.left:
        raise ValueError("%s: %s declares shape %s (%d values) but the file stores only %d "
                         "weight values in all (%d left for this layer); refusing to allocate "
                         "weights the file does not hold"
                         % (budget.source, what, dims, n, budget.total - SLACK_FLOATS,
                            budget.left))
    budget.left -= n


def check_shape(shape, what, source=None):
    """Check a declared input or output shape (batch axis first, ``None`` allowed).

    Without ``source`` the check runs only while an :func:`allocation_budget` is active (its
    source is named); with ``source`` it always runs.

    Args:
        shape: tuple with the batch axis first; ``None`` entries are unknown sizes.
        what: a description for the error.
        source: the file being loaded, or None.

    Raises:
        ValueError: a dimension is not an int/None, is over ``MAX_DIM``, or one sample has
            more than ``MAX_SAMPLE_ELEMENTS`` elements.
    """
    if source is None:
        budget = _BUDGET.get()
        if budget is None:
            return
        source = budget.source
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError("%s: %s has an invalid shape %.100r" % (source, what, shape)) from None
    sample = dims[1:]
    for d in sample:
        if d is not None and (not _is_int(d) or d < 0):
            raise ValueError("%s: %s has an invalid shape %.100r" % (source, what, shape))
        if d is not None and d > MAX_DIM:
            raise ValueError("%s: %s declares a dimension of %d, more than the limit of %d "
                             "(fastcnn.saving.limits.MAX_DIM)" % (source, what, d, MAX_DIM))
    n = math.prod(d for d in sample if d is not None)
    if n > MAX_SAMPLE_ELEMENTS:
        raise ValueError("%s: %s declares %d values per sample (shape %s), more than the limit "
                         "of %d (fastcnn.saving.limits.MAX_SAMPLE_ELEMENTS)"
                         % (source, what, n, dims, MAX_SAMPLE_ELEMENTS))


def check_expansion(declared_bytes, stored_bytes, what, source):
    """Refuse content that declares far more bytes than the file stores for it.

    Args:
        declared_bytes: the size it will have once read (uncompressed).
        stored_bytes: the bytes the file holds for it.
        what: its name, for the error.
        source: the file.

    Raises:
        ValueError: ``declared_bytes > MAX_EXPANSION * stored_bytes + 64 KiB``.
    """
    if declared_bytes > MAX_EXPANSION * max(int(stored_bytes), 0) + 65536:
        raise ValueError("%s: %s declares %d bytes but the file stores only %d bytes for it "
                         "(more than fastcnn.saving.limits.MAX_EXPANSION = %d times)"
                         % (source, what, declared_bytes, stored_bytes, MAX_EXPANSION))


def check_json_size(nbytes, what, source):
    """Refuse a JSON document larger than ``MAX_JSON_BYTES`` before reading it.

    Args:
        nbytes: its declared size in bytes.
        what: its name (e.g. ``"config.json"``).
        source: the file it is in.

    Raises:
        ValueError: it is too large.
    """
    if not _is_int(nbytes) or nbytes < 0 or nbytes > MAX_JSON_BYTES:
        raise ValueError("%s: %s is %s bytes, more than the limit of %d "
                         "(fastcnn.saving.limits.MAX_JSON_BYTES)"
                         % (source, what, nbytes, MAX_JSON_BYTES))


def check_json_structure(obj, what, source):
    """Walk parsed JSON without recursion and bound its depth, size, strings and layers.

    Args:
        obj: the parsed document.
        what: its name, for the error.
        source: the file it came from.

    Raises:
        ValueError: nesting deeper than ``MAX_JSON_DEPTH``, more than ``MAX_JSON_NODES``
            values, a string longer than ``MAX_STRING_CHARS`` or more than ``MAX_LAYERS``
            layer entries (dicts with ``class_name``).
    """
    stack = [(obj, 1)]
    nodes = layers = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise ValueError("%s: %s holds more than %d values (fastcnn.saving.limits"
                             ".MAX_JSON_NODES)" % (source, what, MAX_JSON_NODES))
        if depth > MAX_JSON_DEPTH:
            raise ValueError("%s: %s is nested more than %d levels deep (fastcnn.saving.limits"
                             ".MAX_JSON_DEPTH)" % (source, what, MAX_JSON_DEPTH))
        if isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                raise ValueError("%s: %s holds a string of %d characters, more than the limit "
                                 "of %d" % (source, what, len(value), MAX_STRING_CHARS))
        elif isinstance(value, dict):
            if "class_name" in value:
                layers += 1
                if layers > MAX_LAYERS:
                    raise ValueError("%s: %s declares more than %d layers/objects "
                                     "(fastcnn.saving.limits.MAX_LAYERS)"
                                     % (source, what, MAX_LAYERS))
            for k, v in value.items():
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def loads_json(data, what, source):
    """Parse a JSON document from a file with every limit of this module applied.

    Args:
        data: bytes or str.
        what: its name (e.g. ``"config.json"``).
        source: the file it is in.

    Returns:
        The parsed object.

    Raises:
        ValueError: invalid JSON (including nesting too deep for the parser) or a limit
            exceeded; the message names ``source`` and ``what``.
    """
    check_json_size(len(data), what, source)
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        detail = type(e).__name__ if isinstance(e, RecursionError) else str(e)[:200]
        raise ValueError("%s: %s is not valid JSON (%s)" % (source, what, detail)) from None
    check_json_structure(obj, what, source)
    return obj
