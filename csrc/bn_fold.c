#include <math.h>

#include "bn_fold.h"

/* channels in blocks whose scales sit on the stack, so the kernel is walked row by row
 * (contiguous, vectorisable) instead of column by column */
#define FC_BN_FOLD_BLOCK 256

void fc_bn_fold(const float *kernel, const float *bias, int64_t rows, int64_t channels,
                const float *gamma, const float *beta, const float *moving_mean,
                const float *moving_var, double epsilon, float *kernel_out,
                float *bias_out)
{
    double scale[FC_BN_FOLD_BLOCK];
    for (int64_t c0 = 0; c0 < channels; c0 += FC_BN_FOLD_BLOCK) {
        const int64_t nc = channels - c0 < FC_BN_FOLD_BLOCK ? channels - c0 : FC_BN_FOLD_BLOCK;
        for (int64_t j = 0; j < nc; j++) {
            const int64_t c = c0 + j;
            scale[j] = (double)gamma[c] * (1.0 / sqrt((double)moving_var[c] + epsilon));
            const float shift = (bias ? bias[c] : 0.0f) - moving_mean[c];
            bias_out[c] = (float)((double)shift * scale[j] + (double)beta[c]);
        }
        for (int64_t r = 0; r < rows; r++) {
            const float *k = kernel + r * channels + c0;
            float *o = kernel_out + r * channels + c0;
            for (int64_t j = 0; j < nc; j++)
                o[j] = (float)((double)k[j] * scale[j]);
        }
    }
}
