/* Grouped / dilated convolution on im2col + GEMM: see conv2d_grouped.h. */
#include <string.h>

#include "conv2d_grouped.h"
#include "gemm.h"

#define GC_CHUNK_FLOATS (1 << 19)   /* column buffer target: 2 MiB of floats */

/* Images per chunk: as many as keep the column rows under GC_CHUNK_FLOATS, at least 1. */
static int64_t chunk_images(const fc_conv2d_grouped_geometry *g)
{
    const fc_conv2d_geometry *b = &g->base;
    const int64_t per = b->oh * b->ow * b->kh * b->kw * (b->c / g->groups);
    int64_t nb = per > 0 ? GC_CHUNK_FLOATS / per : b->n;
    if (nb < 1)
        nb = 1;
    return nb < b->n ? nb : b->n;
}

/* Column rows (P, K) of images [n0, n0 + nb) for group gi's channel slice. */
static void im2col(const fc_conv2d_grouped_geometry *g, const float *x, int64_t n0, int64_t nb,
                   int64_t gi, float *cols)
{
    const fc_conv2d_geometry *b = &g->base;
    const int64_t cg = b->c / g->groups, K = b->kh * b->kw * cg, lines = nb * b->oh;
    int64_t r;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (lines * b->ow * K > 65536)
    for (r = 0; r < lines; r++) {
        const int64_t n = n0 + r / b->oh, oh = r % b->oh;
        int64_t ow, i, j;
        for (ow = 0; ow < b->ow; ow++) {
            float *row = cols + (r * b->ow + ow) * K;
            for (i = 0; i < b->kh; i++) {
                const int64_t ih = oh * b->sh - b->pad_top + i * g->dh;
                for (j = 0; j < b->kw; j++) {
                    const int64_t iw = ow * b->sw - b->pad_left + j * g->dw;
                    float *dst = row + (i * b->kw + j) * cg;
                    if (ih < 0 || ih >= b->h || iw < 0 || iw >= b->w)
                        memset(dst, 0, (size_t)cg * sizeof(float));
                    else
                        memcpy(dst, x + ((n * b->h + ih) * b->w + iw) * b->c + gi * cg,
                               (size_t)cg * sizeof(float));
                }
            }
        }
    }
}

int fc_conv2d_grouped_forward(const fc_conv2d_grouped_geometry *g, const float *x,
                              const float *kernel, const float *bias, int relu, float *out)
{
    const fc_conv2d_geometry *b = &g->base;
    const int64_t G = g->groups, cg = b->c / G, fg = b->f / G, K = b->kh * b->kw * cg;
    const int64_t img = b->oh * b->ow, nbmax = chunk_images(g);
    float *cols = (float *)fc_malloc((size_t)(nbmax * img * K) * sizeof(float));
    int64_t n0, gi, r;
    if (!cols)
        return FC_ENOMEM;
    for (n0 = 0; n0 < b->n; n0 += nbmax) {
        const int64_t nb = n0 + nbmax <= b->n ? nbmax : b->n - n0, P = nb * img;
        float *o = out + n0 * img * b->f;
        for (gi = 0; gi < G; gi++) {
            im2col(g, x, n0, nb, gi, cols);
            if (fc_sgemm(0, 0, P, fg, K, 1.0f, cols, K, kernel + gi * fg, b->f, 0.0f,
                         o + gi * fg, b->f) != FC_OK) {
                fc_free(cols);
                return FC_ENOMEM;
            }
        }
        if (bias || relu) {
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (P * b->f > 65536)
            for (r = 0; r < P; r++) {
                float *row = o + r * b->f;
                int64_t f;
                if (bias)
                    for (f = 0; f < b->f; f++)
                        row[f] += bias[f];
                if (relu)
                    for (f = 0; f < b->f; f++)
                        row[f] = row[f] > 0.0f ? row[f] : 0.0f;
            }
        }
    }
    fc_free(cols);
    return FC_OK;
}

int fc_conv2d_grouped_backward_input(const fc_conv2d_grouped_geometry *g, const float *dy,
                                     const float *kernel, float *dx)
{
    const fc_conv2d_geometry *b = &g->base;
    const int64_t G = g->groups, cg = b->c / G, fg = b->f / G, K = b->kh * b->kw * cg;
    const int64_t img = b->oh * b->ow, nbmax = chunk_images(g);
    float *dcols = (float *)fc_malloc((size_t)(nbmax * img * K) * sizeof(float));
    int64_t n0, gi, k;
    if (!dcols)
        return FC_ENOMEM;
    memset(dx, 0, (size_t)(b->n * b->h * b->w * b->c) * sizeof(float));
    for (n0 = 0; n0 < b->n; n0 += nbmax) {
        const int64_t nb = n0 + nbmax <= b->n ? nbmax : b->n - n0, P = nb * img;
        for (gi = 0; gi < G; gi++) {
            /* dcols (P, K) = dy_g (P, fg) @ W_g^T, W_g the (K, fg) columns of the kernel */
            if (fc_sgemm(0, 1, P, K, fg, 1.0f, dy + n0 * img * b->f + gi * fg, b->f,
                         kernel + gi * fg, b->f, 0.0f, dcols, K) != FC_OK) {
                fc_free(dcols);
                return FC_ENOMEM;
            }
            /* col2im: each image's outputs only touch that image, in a fixed order */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) \
    if (P * K > 65536)
            for (k = 0; k < nb; k++) {
                const int64_t n = n0 + k;
                int64_t oh, ow, i, j, c;
                for (oh = 0; oh < b->oh; oh++)
                    for (ow = 0; ow < b->ow; ow++) {
                        const float *row = dcols + ((k * b->oh + oh) * b->ow + ow) * K;
                        for (i = 0; i < b->kh; i++) {
                            const int64_t ih = oh * b->sh - b->pad_top + i * g->dh;
                            if (ih < 0 || ih >= b->h)
                                continue;
                            for (j = 0; j < b->kw; j++) {
                                const int64_t iw = ow * b->sw - b->pad_left + j * g->dw;
                                const float *src = row + (i * b->kw + j) * cg;
                                float *dst;
                                if (iw < 0 || iw >= b->w)
                                    continue;
                                dst = dx + ((n * b->h + ih) * b->w + iw) * b->c + gi * cg;
                                for (c = 0; c < cg; c++)
                                    dst[c] += src[c];
                            }
                        }
                    }
            }
        }
    }
    fc_free(dcols);
    return FC_OK;
}

int fc_conv2d_grouped_backward_kernel(const fc_conv2d_grouped_geometry *g, const float *dy,
                                      const float *x, float *dkernel)
{
    const fc_conv2d_geometry *b = &g->base;
    const int64_t G = g->groups, cg = b->c / G, fg = b->f / G, K = b->kh * b->kw * cg;
    const int64_t img = b->oh * b->ow, nbmax = chunk_images(g);
    float *cols = (float *)fc_malloc((size_t)(nbmax * img * K) * sizeof(float));
    int64_t n0, gi;
    if (!cols)
        return FC_ENOMEM;
    for (n0 = 0; n0 < b->n; n0 += nbmax) {
        const int64_t nb = n0 + nbmax <= b->n ? nbmax : b->n - n0, P = nb * img;
        for (gi = 0; gi < G; gi++) {
            im2col(g, x, n0, nb, gi, cols);
            /* dW_g (K, fg) (+)= cols^T @ dy_g: chunks add up in chunk order */
            if (fc_sgemm(1, 0, K, fg, P, 1.0f, cols, K, dy + n0 * img * b->f + gi * fg, b->f,
                         n0 == 0 ? 0.0f : 1.0f, dkernel + gi * fg, b->f) != FC_OK) {
                fc_free(cols);
                return FC_ENOMEM;
            }
        }
    }
    fc_free(cols);
    return FC_OK;
}
