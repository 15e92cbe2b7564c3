/* Regularizer penalties and weight constraints (Keras 3 formulas), see penalty.c.
 *
 * Follows fc_common.h: float32 weights, caller-validated shapes, results that do not
 * depend on the thread count (sums run over FIXED chunks in double, added in order).
 * Gradients are ADDED: g_out = g_in + scale * d(penalty)/dw, with g_out == g_in allowed
 * (in place) or g_in == NULL (g_out is overwritten with scale * gradient).
 */
#ifndef FC_PENALTY_H
#define FC_PENALTY_H
#include "fc_common.h"

/* penalty = l1 * sum|w| + l2 * sum w^2 (returned in *loss, unscaled). The gradient uses
 * sign(0) = 0 (TensorFlow's and PyTorch's subgradient). g_out NULL: loss only. */
int fc_l1l2_penalty(const float *w, int64_t n, double l1, double l2, double scale,
                    const float *g_in, float *g_out, double *loss);

/* Keras' OrthogonalRegularizer on a (rows, cols) matrix: the vectors are the rows
 * (columns_mode 0) or the columns (1), L2-normalised with inverse norms capped at 1e7;
 * penalty = factor * 0.5 * sum_{i != j} |n_i . n_j| / (k (k - 1) / 2), k vectors.
 * Requires k >= 2. Returns FC_ENOMEM if scratch cannot be allocated. */
int fc_orthogonal_penalty(const float *w, int64_t rows, int64_t cols, int columns_mode,
                          double factor, double scale, const float *g_in, float *g_out,
                          double *loss);

/* Norm constraints in place on w viewed as (outer, red, inner): for every (o, i) the
 * L2 norm over red is taken and w scaled by desired / (1e-7 + norm), where desired is
 * kind 0 (MaxNorm): min(norm, max_value); kind 1 (UnitNorm): 1;
 * kind 2 (MinMaxNorm): rate * clip(norm, min_value, max_value) + (1 - rate) * norm. */
void fc_norm_constraint(float *w, int64_t outer, int64_t red, int64_t inner, int kind,
                        double min_value, double max_value, double rate);

/* NonNeg: w = max(w, 0) in place (NaN stays NaN). */
void fc_non_neg(float *w, int64_t n);

#endif
