"""Matrix multiply on fastcnn's GEMM kernel."""
import numpy as np

from .. import _ext
from ._validation import as_float32, prepare_output

__all__ = ["matmul"]


def _as_operand(x, transpose, name):
    """x as a C-contiguous float32 matrix and its transpose flag. A Fortran-ordered float32
    matrix (e.g. ``y.T``) is used in place as the transpose of its C-ordered view."""
    if type(x) is np.ndarray and x.ndim == 2 and x.dtype == np.float32:
        flags = x.flags
        if flags.c_contiguous:
            return x, bool(transpose)
        if flags.f_contiguous:
            return x.T, not transpose
    return as_float32(x, name, ndim=2), bool(transpose)


def matmul(a, b, transpose_a=False, transpose_b=False, out=None, alpha=1.0, beta=0.0,
           reference=False):
    """``alpha * op(a) @ op(b) + beta * out`` for 2-D arrays, in float32.

    ``op(x)`` is ``x.T`` when the matching ``transpose_*`` flag is set. Inputs of another
    dtype or layout are converted to float32 (a Fortran-ordered float32 matrix such as
    ``y.T`` is used in place, as a transpose). ``out`` (optional) must be a C-contiguous
    float32 array of shape ``(M, N)`` not overlapping the inputs; with ``beta == 0`` it is
    overwritten without being read (NaNs in it do not matter), otherwise accumulated into;
    it is returned. ``alpha == 0`` or an empty inner dimension gives ``beta * out`` without
    reading ``a`` and ``b``. The result does not depend on the thread count (bitwise).
    ``reference=True`` runs the naive C loop (double accumulation) kept as the test oracle.
    """
    a, transpose_a = _as_operand(a, transpose_a, "matmul: a")
    b, transpose_b = _as_operand(b, transpose_b, "matmul: b")
    m, ka = (a.shape[1], a.shape[0]) if transpose_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if transpose_b else b.shape
    if ka != kb:
        raise ValueError("matmul: inner dimensions differ: op(a) is %dx%d but op(b) is %dx%d"
                         % (m, ka, kb, n))
    if out is None:
        if beta != 0.0:
            raise ValueError("matmul: beta != 0 needs an `out` array to accumulate into")
        out = np.empty((m, n), dtype=np.float32)
    else:
        out = prepare_output("matmul", out, "out", (m, n), [(a, "a"), (b, "b")])
    _ext.sgemm(transpose_a, transpose_b, float(alpha), a, b, float(beta), out, bool(reference))
    return out
