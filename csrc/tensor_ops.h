/* Copy, gather and mask kernels of the small Keras layers: Permute, RepeatVector,
 * Embedding, SpatialDropout2D. fc_common.h conventions: float32, C-contiguous,
 * caller-allocated outputs, results independent of the thread count. */
#ifndef FC_TENSOR_OPS_H
#define FC_TENSOR_OPS_H
#include "fc_common.h"

#define FC_PERMUTE_MAX_NDIM 8

/* y = x.transpose(perm): x has shape in_shape[ndim] (1 <= ndim <= FC_PERMUTE_MAX_NDIM),
 * y has shape in_shape[perm[k]] for k = 0..ndim-1; perm is a permutation of 0..ndim-1.
 * y must not overlap x. */
void fc_permute(const float *x, const int64_t *in_shape, const int64_t *perm, int ndim,
                float *y);

/* y (n, r, d) = x (n, d) repeated r times along a new axis 1. */
void fc_repeat_vector(const float *x, int64_t n, int64_t r, int64_t d, float *y);
/* dx (n, d) = sum over r of dy (n, r, d), summed in r order (float). */
void fc_repeat_vector_backward(const float *dy, int64_t n, int64_t r, int64_t d, float *dx);

/* Index check of an embedding lookup: returns -1 when every idx[i] (i < n) is an
 * integer in [0, vocab), else the position of the first one that is not. */
int64_t fc_embedding_check(const float *idx, int64_t n, int64_t vocab);
/* out (n, dim) = table[idx[i]] (indices already checked by fc_embedding_check). */
void fc_embedding_forward(const float *idx, int64_t n, const float *table, int64_t dim,
                          float *out);
/* dtable (vocab, dim) = 0, then dtable[idx[i]] += dy[i] for i in increasing order: each
 * thread owns a range of table rows, so the order of the additions to a row never
 * depends on the thread count. */
void fc_embedding_backward(const float *idx, int64_t n, const float *dy, int64_t vocab,
                           int64_t dim, float *dtable);

/* SpatialDropout mask: mask[i] (i < count, one per (sample, channel)) = 1 (kept) with
 * probability 1 - rate, a pure function of (seed, i). 0 <= rate < 1. */
void fc_spatial_dropout_mask(uint8_t *mask, int64_t count, double rate, uint64_t seed);
/* y (n, s, c) = x * mask[n, c] * scale (a dropped channel gives +0). y may alias x. */
void fc_channel_mask_apply(const float *x, const uint8_t *mask, int64_t n, int64_t s,
                           int64_t c, float scale, float *y);
#endif
