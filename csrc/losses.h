/* Keras 3 losses on a model output viewed as (rows, c): c is the last axis, rows every
 * other position. One call computes the per-row losses, their weighted sum and the
 * gradient of the reduced loss.
 *
 * Contract of fc_loss_rows:
 * - row r's loss l_r is Keras' per-sample value (the mean over the last axis for the
 *   element-wise losses, the sum for KL divergence, a row function for the categorical
 *   ones); rows with weight w_r get w_r * l_r;
 * - weights (NULL: all 1) holds one weight per rows_per_weight consecutive rows;
 * - *weighted_sum = sum_r w_r l_r, accumulated in double in row order, so the result is
 *   the same whatever the thread count;
 * - dpred (NULL: skipped) = grad_scale * w_r * d l_r / d pred; it may alias pred, not
 *   target; rows with w_r == 0 get a zero gradient;
 * - row_out (NULL: skipped) receives w_r * l_r per row;
 * - *n_correct (NULL: skipped): for the categorical cross-entropies, rows whose first
 *   argmax of pred equals the label (or first argmax of target); else 0.
 * - labels (sparse kinds only) must lie in [0, c) except rows equal to the ignore class
 *   (params[FC_LP_HAS_IGNORE] != 0), whose loss and gradient are 0.
 * Returns FC_OK, FC_ENOMEM, or FC_EINVAL for an unknown kind or a label outside [0, c)
 * (then nothing else is meaningful). */
#ifndef FC_LOSSES_H
#define FC_LOSSES_H
#include <stdint.h>
#include "fc_common.h"

enum {
    FC_LOSS_MSE = 0,
    FC_LOSS_MAE,
    FC_LOSS_MAPE,
    FC_LOSS_MSLE,
    FC_LOSS_HUBER,
    FC_LOSS_LOGCOSH,
    FC_LOSS_HINGE,
    FC_LOSS_SQUARED_HINGE,
    FC_LOSS_POISSON,
    FC_LOSS_KLD,
    FC_LOSS_BCE,            /* probabilities (clipped to [eps, 1 - eps]) */
    FC_LOSS_BCE_LOGITS,     /* logits: exact log-sigmoid */
    FC_LOSS_BFOCAL,
    FC_LOSS_BFOCAL_LOGITS,
    FC_LOSS_CCE,            /* probabilities: renormalised, clipped */
    FC_LOSS_CCE_LOGITS,     /* logits: exact log-softmax */
    FC_LOSS_SPARSE_CE,
    FC_LOSS_SPARSE_CE_LOGITS,
    FC_LOSS_CFOCAL,
    FC_LOSS_CFOCAL_LOGITS,
    FC_LOSS_CATEGORICAL_HINGE,
    FC_LOSS_COSINE,
    FC_LOSS_NKINDS
};

/* indices into params[] */
enum {
    FC_LP_LABEL_SMOOTHING = 0, /* binary: t(1-s) + s/2; categorical: t(1-s) + s/c */
    FC_LP_DELTA,               /* Huber */
    FC_LP_ALPHA,               /* focal */
    FC_LP_GAMMA,               /* focal */
    FC_LP_CLASS_BALANCING,     /* binary focal: != 0 applies alpha / 1 - alpha */
    FC_LP_IGNORE_CLASS,
    FC_LP_HAS_IGNORE,
    FC_LP_COUNT
};

#define FC_EINVAL (-2)

int fc_loss_rows(int kind, const float *pred, const float *target, const int64_t *labels,
                 int64_t rows, int64_t c, const double *params, const float *weights,
                 int64_t rows_per_weight, double grad_scale, float *dpred, double *row_out,
                 double *weighted_sum, int64_t *n_correct);

/* y = 1 / (1 + exp(-x)) elementwise (stable for either sign; NaN propagates). */
void fc_sigmoid_forward(const float *x, float *y, int64_t n);
/* dx = dy * y * (1 - y) with y the sigmoid OUTPUT; dx may alias dy or y. */
void fc_sigmoid_backward(const float *dy, const float *y, float *dx, int64_t n);

#endif
