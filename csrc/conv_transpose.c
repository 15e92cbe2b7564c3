/* Conv2DTranspose forward: see conv_transpose.h. */
#include "conv_transpose.h"

#define CT_PARALLEL_MIN 32768

int fc_conv2d_transpose_forward(const fc_conv2d_geometry *g, const float *x,
                                const float *kernel, const float *bias, int relu, float *y,
                                float *workspace, int algorithm)
{
    const int64_t C = g->c, rows = g->n * g->h * g->w;
    int64_t r;
    int rc = fc_conv2d_backward_input(g, x, kernel, y, workspace, algorithm);
    if (rc != FC_OK || (bias == NULL && !relu))
        return rc;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * C >= CT_PARALLEL_MIN)
    for (r = 0; r < rows; r++) {
        float *FC_RESTRICT yr = y + r * C;
        if (bias != NULL)
            for (int64_t c = 0; c < C; c++)
                yr[c] += bias[c];
        if (relu)
            for (int64_t c = 0; c < C; c++)
                yr[c] = yr[c] > 0.0f ? yr[c] : 0.0f;
    }
    return FC_OK;
}
