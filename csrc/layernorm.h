/* Layer and group normalisation (Keras 3 LayerNormalization / GroupNormalization).
 *
 * One kernel pair serves both. x is viewed as (n, s, g, cg): statistics are taken per
 * (sample n, group g) over its s * cg values; the affine weights gamma / beta have one
 * value per channel c = g * cg + j (length g * cg). LayerNormalization over trailing axes
 * is n = leading size, s = 1, g = 1, cg = normalised size; GroupNormalization of an NHWC
 * batch is s = H * W, g = groups, cg = channels / groups.
 *
 * Statistics are computed in double (two passes: mean, then sum of squared deviations)
 * by one thread per (n, g); dgamma / dbeta are reduced over fixed row chunks merged in
 * chunk order, so every result is bitwise identical at any thread count.
 */
#ifndef FC_LAYERNORM_H
#define FC_LAYERNORM_H
#include "fc_common.h"

/* y = (x - mean) * inv * gamma + beta with inv = 1 / sqrt(var + epsilon) (var biased).
 * rms != 0 is Keras' rms_scaling: y = x * inv * gamma (var still about the mean, no beta).
 * gamma / beta may be NULL (ones / zeros). mean_out / inv_out (n * g) receive the
 * statistics backward needs. y may alias x. */
void fc_group_norm_forward(const float *x, int64_t n, int64_t s, int64_t g, int64_t cg,
                           const float *gamma, const float *beta, double epsilon, int rms,
                           float *y, float *mean_out, float *inv_out);

/* Gradients of fc_group_norm_forward: dx (may be NULL: skipped; must not alias x),
 * dgamma / dbeta (length g * cg; either may be NULL: skipped). Returns FC_OK or
 * FC_ENOMEM. */
int fc_group_norm_backward(const float *dy, const float *x, int64_t n, int64_t s, int64_t g,
                           int64_t cg, const float *mean, const float *inv,
                           const float *gamma, int rms, float *dx, float *dgamma,
                           float *dbeta);
#endif
