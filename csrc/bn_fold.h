/* Batch norm folded into the layer before it (inference): the kernel and bias of one
 * layer whose output, normalized with the moving statistics, equals the two layers'.
 *
 * Source: bn_fold.c. Arithmetic in double, as the NumPy reference writes it:
 *   scale[c]  = gamma[c] * (1 / sqrt(var[c] + epsilon))
 *   kernel_out[r, c] = (float)(kernel[r, c] * scale[c])
 *   bias_out[c] = (float)((float)(bias[c] - mean[c]) * scale[c] + beta[c])
 * (bias NULL: 0). No FMA contraction (built with -ffp-contract=off), so the bits are
 * those of the NumPy expression; serial (a few thousand multiplies), thread-count free.
 */
#ifndef FC_BN_FOLD_H
#define FC_BN_FOLD_H
#include "fc_common.h"

/* kernel: (rows, channels) (e.g. HWIO flattened to (kh*kw*in, out)); bias may be NULL. */
void fc_bn_fold(const float *kernel, const float *bias, int64_t rows, int64_t channels,
                const float *gamma, const float *beta, const float *moving_mean,
                const float *moving_var, double epsilon, float *kernel_out,
                float *bias_out);

#endif
