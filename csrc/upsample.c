/* UpSampling2D kernels: see upsample.h for the semantics. */
#include <math.h>
#include <string.h>
#include "upsample.h"

/* Below this many output elements a kernel runs on one thread (fork/join costs more). */
#define UPSAMPLE_PARALLEL_MIN 32768

void fc_upsample2d_nearest_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                   int64_t sh, int64_t sw, float *y)
{
    const int64_t OH = H * sh, OW = W * sw, rows = N * OH;
    int64_t r;
    if (rows <= 0 || OW <= 0 || C <= 0)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * OW * C >= UPSAMPLE_PARALLEL_MIN)
    for (r = 0; r < rows; r++) {
        const int64_t n = r / OH, i = (r % OH) / sh;
        const float *FC_RESTRICT src = x + (n * H + i) * W * C;
        float *FC_RESTRICT dst = y + r * OW * C;
        for (int64_t w = 0; w < W; w++)
            for (int64_t k = 0; k < sw; k++)
                memcpy(dst + (w * sw + k) * C, src + w * C, (size_t)C * sizeof(float));
    }
}

void fc_upsample2d_nearest_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                    int64_t C, int64_t sh, int64_t sw, float *dx)
{
    const int64_t OW = W * sw, rows = N * H;
    int64_t r;
    if (rows <= 0 || W <= 0 || C <= 0)
        return;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * sh * OW * C >= UPSAMPLE_PARALLEL_MIN)
    for (r = 0; r < rows; r++) {
        float *FC_RESTRICT d = dx + r * W * C;
        const float *src = dy + r * sh * OW * C; /* output rows r*sh .. r*sh + sh - 1 */
        memset(d, 0, (size_t)(W * C) * sizeof(float));
        /* block elements summed in row-major order (i, then j) */
        for (int64_t i = 0; i < sh; i++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t k = 0; k < sw; k++) {
                    const float *FC_RESTRICT s = src + (i * OW + w * sw + k) * C;
                    float *FC_RESTRICT dd = d + w * C;
                    for (int64_t c = 0; c < C; c++)
                        dd[c] += s[c];
                }
    }
}

/* The two taps (i0, i1) and weights (w0, w1) of each of the size*scale outputs along one
 * axis; a tap outside [0, size) is dropped (the other gets weight 1, i1 = i0, w1 = 0). */
typedef struct {
    int64_t i0, i1;
    float w0, w1;
} tap;

static void taps(int64_t size, int64_t scale, tap *t)
{
    for (int64_t o = 0; o < size * scale; o++) {
        const double s = ((double)o + 0.5) / (double)scale - 0.5;
        const double f = floor(s);
        const int64_t i0 = (int64_t)f;
        const float frac = (float)(s - f);
        if (i0 < 0) {
            t[o].i0 = t[o].i1 = 0;
            t[o].w0 = 1.0f;
            t[o].w1 = 0.0f;
        } else if (i0 + 1 >= size) {
            t[o].i0 = t[o].i1 = size - 1;
            t[o].w0 = 1.0f;
            t[o].w1 = 0.0f;
        } else {
            t[o].i0 = i0;
            t[o].i1 = i0 + 1;
            t[o].w0 = 1.0f - frac;
            t[o].w1 = frac;
        }
    }
}

static int make_taps(int64_t H, int64_t W, int64_t sh, int64_t sw, tap **th, tap **tw)
{
    *th = fc_malloc((size_t)(H * sh) * sizeof(tap));
    *tw = fc_malloc((size_t)(W * sw) * sizeof(tap));
    if (*th == NULL || *tw == NULL) {
        fc_free(*th);
        fc_free(*tw);
        return FC_ENOMEM;
    }
    taps(H, sh, *th);
    taps(W, sw, *tw);
    return FC_OK;
}

int fc_upsample2d_bilinear_forward(const float *x, int64_t N, int64_t H, int64_t W, int64_t C,
                                   int64_t sh, int64_t sw, float *y)
{
    const int64_t OH = H * sh, OW = W * sw, rows = N * OH;
    tap *th, *tw;
    int64_t r;
    if (rows <= 0 || OW <= 0 || C <= 0)
        return FC_OK;
    if (make_taps(H, W, sh, sw, &th, &tw) != FC_OK)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (rows * OW * C >= UPSAMPLE_PARALLEL_MIN)
    for (r = 0; r < rows; r++) {
        const int64_t n = r / OH;
        const tap ty = th[r % OH];
        const float *r0 = x + (n * H + ty.i0) * W * C, *r1 = x + (n * H + ty.i1) * W * C;
        float *FC_RESTRICT dst = y + r * OW * C;
        for (int64_t j = 0; j < OW; j++) {
            const tap tx = tw[j];
            const float *FC_RESTRICT a = r0 + tx.i0 * C, *FC_RESTRICT b = r0 + tx.i1 * C;
            const float *FC_RESTRICT c_ = r1 + tx.i0 * C, *FC_RESTRICT d = r1 + tx.i1 * C;
            float *FC_RESTRICT o = dst + j * C;
            for (int64_t c = 0; c < C; c++)
                o[c] = ty.w0 * (tx.w0 * a[c] + tx.w1 * b[c])
                       + ty.w1 * (tx.w0 * c_[c] + tx.w1 * d[c]);
        }
    }
    fc_free(th);
    fc_free(tw);
    return FC_OK;
}

int fc_upsample2d_bilinear_backward(const float *dy, int64_t N, int64_t H, int64_t W,
                                    int64_t C, int64_t sh, int64_t sw, float *dx)
{
    const int64_t OH = H * sh, OW = W * sw, HWC = H * W * C;
    tap *th, *tw;
    int64_t n;
    if (N <= 0 || HWC <= 0)
        return FC_OK;
    if (make_taps(H, W, sh, sw, &th, &tw) != FC_OK)
        return FC_ENOMEM;
    /* a scatter: one thread owns each image's dx and adds in output order */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (N * OH * OW * C >= UPSAMPLE_PARALLEL_MIN)
    for (n = 0; n < N; n++) {
        float *img = dx + n * HWC;
        memset(img, 0, (size_t)HWC * sizeof(float));
        for (int64_t i = 0; i < OH; i++) {
            const tap ty = th[i];
            float *r0 = img + ty.i0 * W * C, *r1 = img + ty.i1 * W * C;
            const float *src = dy + (n * OH + i) * OW * C;
            for (int64_t j = 0; j < OW; j++) {
                const tap tx = tw[j];
                const float *FC_RESTRICT g = src + j * C;
                const float w00 = ty.w0 * tx.w0, w01 = ty.w0 * tx.w1;
                const float w10 = ty.w1 * tx.w0, w11 = ty.w1 * tx.w1;
                float *a = r0 + tx.i0 * C, *b = r0 + tx.i1 * C;
                float *c_ = r1 + tx.i0 * C, *d = r1 + tx.i1 * C;
                /* (a..d may coincide at the edges: the adds stay in this order) */
                for (int64_t c = 0; c < C; c++) {
                    a[c] += w00 * g[c];
                    b[c] += w01 * g[c];
                    c_[c] += w10 * g[c];
                    d[c] += w11 * g[c];
                }
            }
        }
    }
    fc_free(th);
    fc_free(tw);
    return FC_OK;
}
