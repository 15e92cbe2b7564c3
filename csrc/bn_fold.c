#include <math.h>

#include "bn_fold.h"

void fc_bn_fold(const float *kernel, const float *bias, int64_t rows, int64_t channels,
                const float *gamma, const float *beta, const float *moving_mean,
                const float *moving_var, double epsilon, float *kernel_out,
                float *bias_out)
{
    for (int64_t c = 0; c < channels; c++) {
        const double scale = (double)gamma[c] * (1.0 / sqrt((double)moving_var[c] + epsilon));
        const float shift = (bias ? bias[c] : 0.0f) - moving_mean[c];
        bias_out[c] = (float)((double)shift * scale + (double)beta[c]);
        for (int64_t r = 0; r < rows; r++)
            kernel_out[r * channels + c] = (float)((double)kernel[r * channels + c] * scale);
    }
}
