/* Dense (fully connected) layer: GEMM (gemm.h) plus a fused bias/ReLU epilogue,
 * and its backward pass. */
#include <string.h>
#include "nn.h"
#include "gemm.h"

/* column block handled by one thread in fc_column_sums (fits a double[] on the stack) */
#define FC_COLSUM_BLOCK 64
#define FC_EPILOGUE_PARALLEL_MIN 65536

static void bias_relu_epilogue(float *y, const float *bias, int64_t n, int64_t units,
                               int relu)
{
    int64_t r;
#pragma omp parallel for schedule(static) if (n * units >= FC_EPILOGUE_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < n; r++) {
        float *row = y + r * units;
        if (bias)
            for (int64_t j = 0; j < units; j++)
                row[j] += bias[j];
        if (relu)
            for (int64_t j = 0; j < units; j++) {
                float v = row[j];
                row[j] = (v > 0.0f || v != v) ? v : 0.0f;
            }
    }
}

int fc_dense_forward(const float *x, const float *kernel, const float *bias,
                     int64_t n, int64_t in, int64_t units, int relu, float *y)
{
    int rc = FC_OK;
    if (n <= 0 || units <= 0)
        return FC_OK;
    if (in > 0)
        rc = fc_sgemm(0, 0, n, units, in, 1.0f, x, in, kernel, units, 0.0f, y, units);
    else
        memset(y, 0, (size_t)(n * units) * sizeof(float));
    if (rc != FC_OK)
        return rc;
    if (bias || relu)
        bias_relu_epilogue(y, bias, n, units, relu);
    return FC_OK;
}

void fc_column_sums(const float *a, int64_t rows, int64_t cols, float *out)
{
    int64_t blk, nblk = (cols + FC_COLSUM_BLOCK - 1) / FC_COLSUM_BLOCK;
    /* every column is summed over the rows in order by exactly one thread,
     * so the result does not depend on the thread count */
#pragma omp parallel for schedule(static) \
    if (nblk > 1 && rows * cols >= FC_EPILOGUE_PARALLEL_MIN) num_threads(fc_get_num_threads())
    for (blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * FC_COLSUM_BLOCK;
        int64_t w = cols - c0 < FC_COLSUM_BLOCK ? cols - c0 : FC_COLSUM_BLOCK;
        double acc[FC_COLSUM_BLOCK];
        for (int64_t j = 0; j < w; j++)
            acc[j] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const float *row = a + r * cols + c0;
            for (int64_t j = 0; j < w; j++)
                acc[j] += row[j];
        }
        for (int64_t j = 0; j < w; j++)
            out[c0 + j] = (float)acc[j];
    }
}

int fc_dense_backward(const float *dy, const float *x, const float *kernel,
                      int64_t n, int64_t in, int64_t units,
                      float *dx, float *dkernel, float *dbias)
{
    int rc = FC_OK;
    if (in > 0 && units > 0) {
        if (n > 0) /* dkernel (in, units) = x^T (in, n) @ dy (n, units) */
            rc = fc_sgemm(1, 0, in, units, n, 1.0f, x, in, dy, units, 0.0f, dkernel, units);
        else
            memset(dkernel, 0, (size_t)(in * units) * sizeof(float));
        if (rc != FC_OK)
            return rc;
    }
    if (dx && n > 0 && in > 0) {
        if (units > 0) /* dx (n, in) = dy (n, units) @ kernel^T (units, in) */
            rc = fc_sgemm(0, 1, n, in, units, 1.0f, dy, units, kernel, units, 0.0f, dx, in);
        else
            memset(dx, 0, (size_t)(n * in) * sizeof(float));
        if (rc != FC_OK)
            return rc;
    }
    if (dbias && units > 0)
        fc_column_sums(dy, n, units, dbias);
    return FC_OK;
}
