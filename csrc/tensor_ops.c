/* Permute, RepeatVector, Embedding and SpatialDropout kernels (see tensor_ops.h). */
#include <math.h>
#include <string.h>
#include "tensor_ops.h"

/* below this many elements a thread team costs more than the copy */
#define FC_TOPS_PARALLEL_MIN 65536

void fc_permute(const float *x, const int64_t *in_shape, const int64_t *perm, int ndim,
                float *y)
{
    int64_t in_stride[FC_PERMUTE_MAX_NDIM], out_shape[FC_PERMUTE_MAX_NDIM];
    int64_t src_stride[FC_PERMUTE_MAX_NDIM];  /* input stride of each output axis */
    int64_t total = 1, rows, r, inner, inner_stride;
    if (ndim < 1 || ndim > FC_PERMUTE_MAX_NDIM)
        return;
    in_stride[ndim - 1] = 1;
    for (int k = ndim - 2; k >= 0; k--)
        in_stride[k] = in_stride[k + 1] * in_shape[k + 1];
    for (int k = 0; k < ndim; k++) {
        out_shape[k] = in_shape[perm[k]];
        src_stride[k] = in_stride[perm[k]];
        total *= out_shape[k];
    }
    if (total <= 0)
        return;
    inner = out_shape[ndim - 1];
    inner_stride = src_stride[ndim - 1];
    rows = total / inner;
    /* each output row (all axes but the last) is one strided gather from x */
#pragma omp parallel for schedule(static) if (total >= FC_TOPS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        int64_t rem = r, off = 0;
        for (int k = ndim - 2; k >= 0; k--) {
            off += (rem % out_shape[k]) * src_stride[k];
            rem /= out_shape[k];
        }
        float *dst = y + r * inner;
        const float *src = x + off;
        if (inner_stride == 1)
            memcpy(dst, src, (size_t)inner * sizeof(float));
        else
            for (int64_t j = 0; j < inner; j++)
                dst[j] = src[j * inner_stride];
    }
}

void fc_repeat_vector(const float *x, int64_t n, int64_t r, int64_t d, float *y)
{
    int64_t i;
    if (n <= 0 || r <= 0 || d <= 0)
        return;
#pragma omp parallel for schedule(static) if (n * r * d >= FC_TOPS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (i = 0; i < n; i++)
        for (int64_t k = 0; k < r; k++)
            memcpy(y + (i * r + k) * d, x + i * d, (size_t)d * sizeof(float));
}

void fc_repeat_vector_backward(const float *dy, int64_t n, int64_t r, int64_t d, float *dx)
{
    int64_t i;
    if (n <= 0 || d <= 0)
        return;
#pragma omp parallel for schedule(static) if (n * r * d >= FC_TOPS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (i = 0; i < n; i++) {
        float *out = dx + i * d;
        for (int64_t j = 0; j < d; j++)
            out[j] = 0.0f;
        for (int64_t k = 0; k < r; k++) {
            const float *src = dy + (i * r + k) * d;
            for (int64_t j = 0; j < d; j++)
                out[j] += src[j];
        }
    }
}

int64_t fc_embedding_check(const float *idx, int64_t n, int64_t vocab)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = idx[i];
        /* NaN fails every comparison, so it is reported too */
        if (!(v >= 0.0f && v < (double)vocab && v == floorf(v)))
            return i;
    }
    return -1;
}

void fc_embedding_forward(const float *idx, int64_t n, const float *table, int64_t dim,
                          float *out)
{
    int64_t i;
    if (dim <= 0)
        return;
#pragma omp parallel for schedule(static) if (n * dim >= FC_TOPS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (i = 0; i < n; i++)
        memcpy(out + i * dim, table + (int64_t)idx[i] * dim, (size_t)dim * sizeof(float));
}

void fc_embedding_backward(const float *idx, int64_t n, const float *dy, int64_t vocab,
                           int64_t dim, float *dtable)
{
    if (vocab <= 0 || dim <= 0)
        return;
#pragma omp parallel if ((n + vocab) * dim >= FC_TOPS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    {
        const int t = fc_thread_id(), nt = fc_team_size();
        const int64_t v0 = vocab * t / nt, v1 = vocab * (t + 1) / nt;
        memset(dtable + v0 * dim, 0, (size_t)((v1 - v0) * dim) * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            const int64_t row = (int64_t)idx[i];
            if (row < v0 || row >= v1)
                continue;
            float *dst = dtable + row * dim;
            const float *src = dy + i * dim;
            for (int64_t j = 0; j < dim; j++)
                dst[j] += src[j];
        }
    }
}

/* splitmix64's output function (as the dropout kernel's) */
static inline uint64_t tops_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#define FC_TOPS_GOLDEN 0x9E3779B97F4A7C15ULL

void fc_spatial_dropout_mask(uint8_t *mask, int64_t count, double rate, uint64_t seed)
{
    /* kept iff a 32-bit uniform >= rate * 2^32: probability 1 - rate (to 2^-32) */
    const uint64_t key = tops_mix64(seed + FC_TOPS_GOLDEN);
    const uint64_t threshold = (uint64_t)ceil(rate * 4294967296.0);
    for (int64_t i = 0; i < count; i++) {
        const uint64_t h = tops_mix64(key + (uint64_t)(i + 1) * FC_TOPS_GOLDEN);
        mask[i] = (uint8_t)((h >> 32) >= threshold);
    }
}

void fc_channel_mask_apply(const float *x, const uint8_t *mask, int64_t n, int64_t s,
                           int64_t c, float scale, float *y)
{
    int64_t r, rows = n * s;
    if (rows <= 0 || c <= 0)
        return;
#pragma omp parallel for schedule(static) if (rows * c >= FC_TOPS_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        const uint8_t *mr = mask + (r / (s > 0 ? s : 1)) * c;
        const float *xr = x + r * c;
        float *yr = y + r * c;
        for (int64_t j = 0; j < c; j++)
            yr[j] = mr[j] ? xr[j] * scale : 0.0f;
    }
}
