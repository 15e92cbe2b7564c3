# fastcnn._ext: per-batch metric counting (csrc/metrics.c). fastcnn.ops.metrics validates
# shapes, dtypes and label ranges; these wrappers take typed memoryviews (so a wrong dtype or
# layout cannot reach C), check the sizes the C loops rely on, and release the GIL.
from libc.stdint cimport int32_t, uint8_t
import numpy as np

cdef extern from "metrics.h":
    int fc_metric_threshold_counts(const float *pred, int64_t n, const float *thr, int64_t T,
                                   int mode, int32_t *counts) nogil
    int fc_metric_confusion(const int32_t *counts, const float *labels, const double *weights,
                            int64_t n, int64_t L, int64_t T, double *tp, double *fp,
                            double *tn, double *fn, double *work) nogil
    void fc_metric_in_top_k(const float *pred, const int64_t *target, int64_t n, int64_t C,
                            int64_t k, uint8_t *out) nogil
    int fc_metric_top_k_filter(const float *pred, int64_t n, int64_t C, int64_t k, float fill,
                               float *out) nogil


cdef double *_out2(object a, int64_t T, int64_t L, str what) except? NULL:
    """Data pointer of a (T, L) float64 output, or NULL for None."""
    cdef double[:, ::1] v
    if a is None:
        return NULL
    v = a
    if v.shape[0] != T or v.shape[1] != L:
        raise ValueError("metric_confusion: %s has shape (%d, %d), expected (%d, %d)"
                         % (what, v.shape[0], v.shape[1], T, L))
    return &v[0, 0]


def metric_threshold_counts(const float[::1] pred, const float[::1] thresholds, int mode,
                            int32_t[::1] counts):
    """counts[i] = thresholds exceeded by pred[i] (metrics.h modes)."""
    cdef int64_t n = pred.shape[0], T = thresholds.shape[0]
    cdef int rc
    if counts.shape[0] != n or T < 1:
        raise ValueError("metric_threshold_counts: %d counts for %d predictions, %d thresholds"
                         % (counts.shape[0], n, T))
    if n == 0:
        return
    with nogil:
        rc = fc_metric_threshold_counts(&pred[0], n, &thresholds[0], T, mode, &counts[0])
    _check(rc, "metric_threshold_counts")


def metric_confusion(const int32_t[:, ::1] counts, const float[:, ::1] labels, weights,
                     int64_t T, tp, fp, tn, fn):
    """(T, L) float64 tp/fp/tn/fn (None: not wanted) of an (n, L) batch; weights (n, L)
    float64 or None."""
    cdef int64_t n = counts.shape[0], L = counts.shape[1]
    cdef const double[:, ::1] w
    cdef const double *pw = NULL
    cdef double *ptp = _out2(tp, T, L, "tp")
    cdef double *pfp = _out2(fp, T, L, "fp")
    cdef double *ptn = _out2(tn, T, L, "tn")
    cdef double *pfn = _out2(fn, T, L, "fn")
    cdef double[::1] work
    cdef int rc
    if labels.shape[0] != n or labels.shape[1] != L or T < 1 or L < 1:
        raise ValueError("metric_confusion: labels %s for counts %s, T=%d"
                         % ((labels.shape[0], labels.shape[1]), (n, L), T))
    if weights is not None:
        w = weights
        if w.shape[0] != n or w.shape[1] != L:
            raise ValueError("metric_confusion: weights %s for counts %s"
                             % ((w.shape[0], w.shape[1]), (n, L)))
        if n > 0:
            pw = &w[0, 0]
    work = np.empty(2 * (T + 1) * L, dtype=np.float64)
    with nogil:
        rc = fc_metric_confusion(&counts[0, 0] if n > 0 else NULL,
                                 &labels[0, 0] if n > 0 else NULL, pw, n, L, T,
                                 ptp, pfp, ptn, pfn, &work[0])
    _check(rc, "metric_confusion")


def metric_in_top_k(const float[:, ::1] pred, const int64_t[::1] target, int64_t k,
                    uint8_t[::1] out):
    """out[i] = target[i] is among the k largest of pred[i] (targets already in range)."""
    cdef int64_t n = pred.shape[0], C = pred.shape[1]
    if target.shape[0] != n or out.shape[0] != n or k < 1 or C < 1:
        raise ValueError("metric_in_top_k: bad sizes")
    if n == 0:
        return
    with nogil:
        fc_metric_in_top_k(&pred[0, 0], &target[0], n, C, k, &out[0])


def metric_top_k_filter(const float[:, ::1] pred, int64_t k, float fill, float[:, ::1] out):
    """out = pred outside each row's top k replaced by fill."""
    cdef int64_t n = pred.shape[0], C = pred.shape[1]
    cdef int rc
    if out.shape[0] != n or out.shape[1] != C or k < 1:
        raise ValueError("metric_top_k_filter: bad sizes")
    if n == 0 or C == 0:
        return
    with nogil:
        rc = fc_metric_top_k_filter(&pred[0, 0], n, C, k, fill, &out[0, 0])
    _check(rc, "metric_top_k_filter")
