/* The "metrics" kernel family: the per-batch counting behind Keras 3's streaming metrics.
 *
 * Sources: metrics.c. Threshold confusion counts (TruePositives ... AUC, Precision, Recall),
 * the top-k test of TopKCategoricalAccuracy and the top-k filter of Precision/Recall(top_k).
 *
 * fc_common.h conventions: float32 C-contiguous inputs, caller-allocated outputs. Every
 * output element (a prediction's threshold count, a row's top-k result, one label's
 * counts) is computed by one thread in a fixed order, so 1 and N threads agree bitwise.
 */
#ifndef FC_METRICS_H
#define FC_METRICS_H
#include "fc_common.h"

/* How fc_metric_threshold_counts maps a prediction p to "thresholds exceeded". */
#define FC_THRESH_SORTED 0    /* count of thr[j] (ascending) with p > thr[j] (float32 compare) */
#define FC_THRESH_EVEN 1      /* Keras' evenly spaced thresholds 0, 1/(T-1), ..., 1:
                                 ceil(clip(p, 0, 1) * (T - 1)) in float32 */
#define FC_THRESH_EVEN_EPS 2  /* same for -eps, 1/(T-1), ..., 1 + eps (AUC): at least 1 */
#define FC_METRICS_EBADARG (-2)

/* counts[i] = how many of the T thresholds pred[i] is strictly above (0..T), by mode.
 * Keras' bucket formula (metrics_utils._update_confusion_matrix_variables_optimized) is
 * reproduced exactly for the even modes; a NaN prediction counts 0 (1 in EVEN_EPS).
 * Returns FC_OK or FC_METRICS_EBADARG (unknown mode, T < 1, or T < 2 for an even mode). */
int fc_metric_threshold_counts(const float *pred, int64_t n, const float *thr, int64_t T,
                               int mode, int32_t *counts);

/* Weighted confusion counts of an (n, L) batch for T thresholds, per label column l:
 *   tp[t*L+l] = sum of w over rows i with label != 0 and counts[i*L+l] > t,
 *   fn[t*L+l] = ... label != 0 and counts <= t;  fp / tn: the same for label == 0.
 * w = weights[i*L+l] (NULL: 1). Outputs (T, L) are overwritten; any may be NULL. Counts are
 * histogrammed per label in row order, then prefix/suffix-summed in double. work: 2*(T+1)*L
 * doubles of scratch. Returns FC_OK or FC_METRICS_EBADARG (a count outside 0..T). */
int fc_metric_confusion(const int32_t *counts, const float *labels, const double *weights,
                        int64_t n, int64_t L, int64_t T, double *tp, double *fp, double *tn,
                        double *fn, double *work);

/* out[i] = 1 if pred[i, target[i]] is among the k largest of row i, else 0 (Keras/JAX
 * in_top_k: 1 + #{j: pred[i,j] > pred[i,target]} <= k; a NaN target value is -inf).
 * target values must be in [0, C) (the caller checks). */
void fc_metric_in_top_k(const float *pred, const int64_t *target, int64_t n, int64_t C,
                        int64_t k, uint8_t *out);

/* out = pred with every entry outside its row's top k replaced by fill (Keras'
 * metrics_utils._filter_top_k: top_k picks the larger value, the lower index on ties).
 * k >= C keeps everything. Returns FC_OK or FC_ENOMEM. out may not alias pred. */
int fc_metric_top_k_filter(const float *pred, int64_t n, int64_t C, int64_t k, float fill,
                           float *out);

#endif
