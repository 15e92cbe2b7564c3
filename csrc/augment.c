/* Image augmentation and preprocessing kernels; see augment.h. */
#include <math.h>
#include <string.h>
#include "augment.h"

/* Coordinates beyond this are clamped before the integer conversion (no overflow): any such
 * neighbour is outside the image, and every fill mode treats the clamped index the same way
 * for the purpose of an augmentation (constant: fill; others: a valid folded index). */
#define FC_AUG_COORD_MAX 1.0e9f

/* Index i of an axis of length n after the fill mode; *valid = 0 where constant fill reads
 * the fill value instead. Matches jax.scipy.ndimage's index fixers. */
static inline int64_t fix_index(int64_t i, int64_t n, int fill, int *valid)
{
    *valid = 1;
    if (i >= 0 && i < n)
        return i;
    switch (fill) {
    case FC_FILL_CONSTANT:
        *valid = 0;
        return 0;
    case FC_FILL_NEAREST:
        return i < 0 ? 0 : n - 1;
    case FC_FILL_WRAP: {
        int64_t m = i % n;
        return m < 0 ? m + n : m;
    }
    default: { /* reflect: period 2n, the second half mirrored */
        int64_t p = 2 * n, m = i % p;
        if (m < 0)
            m += p;
        return m >= n ? p - 1 - m : m;
    }
    }
}

/* Source coordinate of output pixel (x, y) under t; returns 0 if it is not a number
 * (a projective transform's horizon), which reads as fill everywhere. */
static inline int source_coords(const float *t, int proj, int64_t x, int64_t y, float *sx,
                                float *sy)
{
    const float xf = (float)x, yf = (float)y;
    /* the order of Keras/JAX's einsum: y * row0 + x * row1, then the offset */
    float u = (yf * t[1] + xf * t[0]) + t[2];
    float v = (yf * t[4] + xf * t[3]) + t[5];
    if (proj) {
        const float k = (t[6] * xf + t[7] * yf) + 1.0f;
        u /= k;
        v /= k;
    }
    if (isnan(u) || isnan(v))
        return 0;
    *sx = u > FC_AUG_COORD_MAX ? FC_AUG_COORD_MAX : u < -FC_AUG_COORD_MAX ? -FC_AUG_COORD_MAX : u;
    *sy = v > FC_AUG_COORD_MAX ? FC_AUG_COORD_MAX : v < -FC_AUG_COORD_MAX ? -FC_AUG_COORD_MAX : v;
    return 1;
}

/* The (up to) two taps of one axis: index, validity and weight of each. */
typedef struct {
    int64_t i0, i1;
    int ok0, ok1;
    float w0, w1;
} taps_t;

static inline void axis_taps(float s, int64_t n, int interp, int fill, taps_t *tp)
{
    if (interp == FC_INTERP_NEAREST) {
        tp->i0 = fix_index((int64_t)roundf(s), n, fill, &tp->ok0); /* half away from zero */
        tp->w0 = 1.0f;
        tp->i1 = 0;
        tp->ok1 = 0;
        tp->w1 = 0.0f;
        return;
    }
    const float f = floorf(s);
    tp->w1 = s - f;
    tp->w0 = 1.0f - tp->w1;
    tp->i0 = fix_index((int64_t)f, n, fill, &tp->ok0);
    tp->i1 = fix_index((int64_t)f + 1, n, fill, &tp->ok1);
}

#define AFFINE_BODY(SRC_T)                                                                    \
    int64_t row;                                                                              \
    _Pragma("omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*H*W*C > 32768)") \
    for (row = 0; row < B * H; row++) {                                                       \
        const int64_t b = row / H, y = row % H;                                               \
        const float *tb = t + 8 * b;                                                          \
        const int proj = tb[6] != 0.0f || tb[7] != 0.0f;                                      \
        const SRC_T *img = src + b * H * W * C;                                               \
        float *out = dst + row * W * C;                                                       \
        for (int64_t x = 0; x < W; x++) {                                                     \
            float *o = out + x * C;                                                           \
            float sx, sy;                                                                     \
            taps_t tx, ty;                                                                    \
            if (!source_coords(tb, proj, x, y, &sx, &sy)) {                                   \
                for (int64_t c = 0; c < C; c++) o[c] = fill_value;                            \
                continue;                                                                     \
            }                                                                                 \
            axis_taps(sx, W, interp, fill, &tx);                                              \
            axis_taps(sy, H, interp, fill, &ty);                                              \
            if (interp == FC_INTERP_NEAREST) {                                                \
                if (tx.ok0 && ty.ok0) {                                                       \
                    const SRC_T *p = img + (ty.i0 * W + tx.i0) * C;                           \
                    for (int64_t c = 0; c < C; c++) o[c] = (float)p[c];                       \
                } else {                                                                      \
                    for (int64_t c = 0; c < C; c++) o[c] = fill_value;                        \
                }                                                                             \
                continue;                                                                     \
            }                                                                                 \
            const float w00 = ty.w0 * tx.w0, w01 = ty.w0 * tx.w1;                             \
            const float w10 = ty.w1 * tx.w0, w11 = ty.w1 * tx.w1;                             \
            const SRC_T *p00 = (ty.ok0 && tx.ok0) ? img + (ty.i0 * W + tx.i0) * C : NULL;     \
            const SRC_T *p01 = (ty.ok0 && tx.ok1) ? img + (ty.i0 * W + tx.i1) * C : NULL;     \
            const SRC_T *p10 = (ty.ok1 && tx.ok0) ? img + (ty.i1 * W + tx.i0) * C : NULL;     \
            const SRC_T *p11 = (ty.ok1 && tx.ok1) ? img + (ty.i1 * W + tx.i1) * C : NULL;     \
            for (int64_t c = 0; c < C; c++) {                                                 \
                const float v00 = p00 ? (float)p00[c] : fill_value;                           \
                const float v01 = p01 ? (float)p01[c] : fill_value;                           \
                const float v10 = p10 ? (float)p10[c] : fill_value;                           \
                const float v11 = p11 ? (float)p11[c] : fill_value;                           \
                o[c] = ((w00 * v00 + w01 * v01) + w10 * v10) + w11 * v11;                     \
            }                                                                                 \
        }                                                                                     \
    }

void fc_aug_affine_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                      const float *t, int interp, int fill, float fill_value, float *dst)
{
    AFFINE_BODY(uint8_t)
}

void fc_aug_affine_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                       const float *t, int interp, int fill, float fill_value, float *dst)
{
    AFFINE_BODY(float)
}

void fc_aug_affine_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                            const float *t, int interp, int fill, float *dx)
{
    int64_t b;
    /* one image per iteration: its scatter runs in a fixed order, so any thread count
     * gives the same sums */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*H*W*C > 32768)
    for (b = 0; b < B; b++) {
        const float *tb = t + 8 * b;
        const int proj = tb[6] != 0.0f || tb[7] != 0.0f;
        float *img = dx + b * H * W * C;
        memset(img, 0, (size_t)(H * W * C) * sizeof(float));
        for (int64_t y = 0; y < H; y++) {
            for (int64_t x = 0; x < W; x++) {
                const float *g = dy + ((b * H + y) * W + x) * C;
                float sx, sy;
                taps_t tx, ty;
                if (!source_coords(tb, proj, x, y, &sx, &sy))
                    continue;
                axis_taps(sx, W, interp, fill, &tx);
                axis_taps(sy, H, interp, fill, &ty);
                const int64_t iy[2] = {ty.i0, ty.i1}, ix[2] = {tx.i0, tx.i1};
                const int oky[2] = {ty.ok0, ty.ok1}, okx[2] = {tx.ok0, tx.ok1};
                const float wy[2] = {ty.w0, ty.w1}, wx[2] = {tx.w0, tx.w1};
                for (int a = 0; a < 2; a++) {
                    for (int e = 0; e < 2; e++) {
                        if (!oky[a] || !okx[e])
                            continue;
                        const float w = wy[a] * wx[e];
                        float *p = img + (iy[a] * W + ix[e]) * C;
                        for (int64_t c = 0; c < C; c++)
                            p[c] += w * g[c];
                    }
                }
            }
        }
    }
}

/* Pass 1: tmp[b, oy, xp, :] = sum_k wy[oy, k] * padded(ys[oy] + k, xp); pass 2 along xp. */
#define RESIZE_BODY(SRC_T)                                                                    \
    int64_t row;                                                                              \
    _Pragma("omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*OH*Wp*C > 32768)") \
    for (row = 0; row < B * OH; row++) {                                                      \
        const int64_t b = row / OH, oy = row % OH;                                            \
        const SRC_T *img = src + b * H * W * C;                                               \
        const float *wyr = wy + oy * ny;                                                      \
        float *t = tmp + row * Wp * C;                                                        \
        for (int64_t i = 0; i < Wp * C; i++) t[i] = 0.0f;                                     \
        for (int64_t ky = 0; ky < ny; ky++) {                                                 \
            const int64_t sy = (int64_t)ys[oy] + ky - pad_y;                                  \
            const float w = wyr[ky];                                                          \
            const int row_ok = sy >= 0 && sy < H;                                             \
            if (row_ok && pad_x <= 0 && Wp - pad_x <= W) { /* no padding: one contiguous run */ \
                const SRC_T *p = img + (sy * W - pad_x) * C;                                  \
                for (int64_t i = 0; i < Wp * C; i++) t[i] += w * (float)p[i];                 \
                continue;                                                                     \
            }                                                                                 \
            for (int64_t xp = 0; xp < Wp; xp++) {                                             \
                const int64_t sx = xp - pad_x;                                                \
                float *o = t + xp * C;                                                        \
                if (row_ok && sx >= 0 && sx < W) {                                            \
                    const SRC_T *p = img + (sy * W + sx) * C;                                 \
                    for (int64_t c = 0; c < C; c++) o[c] += w * (float)p[c];                  \
                } else {                                                                      \
                    for (int64_t c = 0; c < C; c++) o[c] += w * fill_value;                   \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    _Pragma("omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*OH*OW*C > 32768)") \
    for (row = 0; row < B * OH; row++) {                                                      \
        const float *t = tmp + row * Wp * C;                                                  \
        float *out = dst + row * OW * C;                                                      \
        for (int64_t ox = 0; ox < OW; ox++) {                                                 \
            const float *wxr = wx + ox * nx;                                                  \
            const float *p = t + (int64_t)xs[ox] * C;                                         \
            if (nx == 2) { /* bilinear: the same sums, unrolled (0 + a + b == a + b) */       \
                const float w0 = wxr[0], w1 = wxr[1];                                         \
                for (int64_t c = 0; c < C; c++) out[ox * C + c] = w0 * p[c] + w1 * p[C + c];  \
                continue;                                                                     \
            }                                                                                 \
            for (int64_t c = 0; c < C; c++) {                                                 \
                float acc = 0.0f;                                                             \
                for (int64_t kx = 0; kx < nx; kx++) acc += wxr[kx] * p[kx * C + c];           \
                out[ox * C + c] = acc;                                                        \
            }                                                                                 \
        }                                                                                     \
    }

#define RESIZE_ARGS(SRC_T)                                                                    \
    const SRC_T *src, int64_t B, int64_t H, int64_t W, int64_t C, int64_t OH, int64_t OW,    \
    int64_t Wp, int64_t pad_y, int64_t pad_x, float fill_value, const int32_t *ys,           \
    int64_t ny, const float *wy, const int32_t *xs, int64_t nx, const float *wx, float *tmp,  \
    float *dst

void fc_aug_resize_u8(RESIZE_ARGS(uint8_t))
{
    RESIZE_BODY(uint8_t)
}

void fc_aug_resize_f32(RESIZE_ARGS(float))
{
    RESIZE_BODY(float)
}

#define CROP_BODY(SRC_T)                                                                      \
    int64_t row;                                                                              \
    _Pragma("omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*OH*OW*C > 32768)") \
    for (row = 0; row < B * OH; row++) {                                                      \
        const int64_t b = row / OH, oy = row % OH;                                            \
        const int fl = flip ? flip[b] : 0;                                                    \
        const int64_t sy = y0[b] + ((fl & 2) ? OH - 1 - oy : oy);                             \
        const SRC_T *in = src + ((b * H + sy) * W + x0[b]) * C;                               \
        float *out = dst + row * OW * C;                                                      \
        if (!(fl & 1)) {                                                                      \
            for (int64_t i = 0; i < OW * C; i++) out[i] = (float)in[i];                       \
            continue;                                                                         \
        }                                                                                     \
        for (int64_t ox = 0; ox < OW; ox++) {                                                 \
            const SRC_T *p = in + (OW - 1 - ox) * C;                                          \
            for (int64_t c = 0; c < C; c++) out[ox * C + c] = (float)p[c];                    \
        }                                                                                     \
    }

void fc_aug_crop_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                    int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                    const uint8_t *flip, float *dst)
{
    CROP_BODY(uint8_t)
}

void fc_aug_crop_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                     int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                     const uint8_t *flip, float *dst)
{
    CROP_BODY(float)
}

void fc_aug_crop_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                          int64_t OH, int64_t OW, const int32_t *y0, const int32_t *x0,
                          const uint8_t *flip, float *dx)
{
    int64_t b;
    /* each image's window is written after its zeroing, by the same thread */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*H*W*C > 32768)
    for (b = 0; b < B; b++) {
        const int fl = flip ? flip[b] : 0;
        float *img = dx + b * H * W * C;
        memset(img, 0, (size_t)(H * W * C) * sizeof(float));
        for (int64_t oy = 0; oy < OH; oy++) {
            const int64_t sy = y0[b] + ((fl & 2) ? OH - 1 - oy : oy);
            const float *g = dy + (b * OH + oy) * OW * C;
            float *r = img + (sy * W + x0[b]) * C;
            for (int64_t ox = 0; ox < OW; ox++) {
                const int64_t sx = (fl & 1) ? OW - 1 - ox : ox;
                for (int64_t c = 0; c < C; c++)
                    r[sx * C + c] = g[ox * C + c];
            }
        }
    }
}

static inline float clampf(float v, float lo, float hi)
{
    v = v < lo ? lo : v; /* as jnp.clip: maximum with lo, then minimum with hi */
    return v > hi ? hi : v;
}

/* Channel means accumulate in double, in pixel order, CHUNK channels at a time; NC (the
 * chunk's channel count) is a constant for RGB and grayscale so those loops unroll. */
#define CONTRAST_CHUNK 16
#define CONTRAST_PASSES(SRC_T, NC)                                                            \
    {                                                                                         \
        double acc[CONTRAST_CHUNK] = {0};                                                     \
        float m[CONTRAST_CHUNK];                                                              \
        for (int64_t p = 0; p < P; p++)                                                       \
            for (int64_t c = 0; c < (NC); c++) acc[c] += (double)img[p * C + c0 + c];         \
        for (int64_t c = 0; c < (NC); c++) m[c] = (float)(acc[c] / (double)P);                \
        for (int64_t p = 0; p < P; p++)                                                       \
            for (int64_t c = 0; c < (NC); c++) {                                              \
                const int64_t i = p * C + c0 + c;                                             \
                out[i] = clampf(((float)img[i] - m[c]) * f + m[c], lo, hi);                   \
            }                                                                                 \
    }
#define CONTRAST_BODY(SRC_T)                                                                  \
    int64_t b;                                                                                \
    const int64_t P = H * W;                                                                  \
    _Pragma("omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*H*W*C > 32768)") \
    for (b = 0; b < B; b++) {                                                                 \
        const SRC_T *img = src + b * P * C;                                                   \
        float *out = dst + b * P * C;                                                         \
        const float f = factor[b];                                                            \
        if (C == 3) {                                                                         \
            const int64_t c0 = 0;                                                             \
            CONTRAST_PASSES(SRC_T, 3)                                                         \
        } else if (C == 1) {                                                                  \
            const int64_t c0 = 0;                                                             \
            CONTRAST_PASSES(SRC_T, 1)                                                         \
        } else {                                                                              \
            for (int64_t c0 = 0; c0 < C; c0 += CONTRAST_CHUNK) {                              \
                const int64_t nc = C - c0 < CONTRAST_CHUNK ? C - c0 : CONTRAST_CHUNK;         \
                CONTRAST_PASSES(SRC_T, nc)                                                    \
            }                                                                                 \
        }                                                                                     \
    }

void fc_aug_contrast_u8(const uint8_t *src, int64_t B, int64_t H, int64_t W, int64_t C,
                        const float *factor, float lo, float hi, float *dst)
{
    CONTRAST_BODY(uint8_t)
}

void fc_aug_contrast_f32(const float *src, int64_t B, int64_t H, int64_t W, int64_t C,
                         const float *factor, float lo, float hi, float *dst)
{
    CONTRAST_BODY(float)
}

/* In blocks of one image's values, so the inner loop is contiguous and has one delta. */
#define BRIGHTNESS_BLOCK 4096
#define BRIGHTNESS_BODY(SRC_T)                                                                \
    int64_t k;                                                                                \
    const int64_t nb = (HWC + BRIGHTNESS_BLOCK - 1) / BRIGHTNESS_BLOCK;                       \
    _Pragma("omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*HWC > 65536)") \
    for (k = 0; k < B * nb; k++) {                                                            \
        const int64_t b = k / nb, lo_i = (k % nb) * BRIGHTNESS_BLOCK;                         \
        const int64_t hi_i = lo_i + BRIGHTNESS_BLOCK < HWC ? lo_i + BRIGHTNESS_BLOCK : HWC;   \
        const SRC_T *in = src + b * HWC;                                                      \
        float *out = dst + b * HWC;                                                           \
        const float d = delta[b];                                                             \
        for (int64_t i = lo_i; i < hi_i; i++) out[i] = clampf((float)in[i] + d, lo, hi);      \
    }

void fc_aug_brightness_u8(const uint8_t *src, int64_t B, int64_t HWC, const float *delta,
                          float lo, float hi, float *dst)
{
    BRIGHTNESS_BODY(uint8_t)
}

void fc_aug_brightness_f32(const float *src, int64_t B, int64_t HWC, const float *delta,
                           float lo, float hi, float *dst)
{
    BRIGHTNESS_BODY(float)
}

void fc_aug_resize_backward(const float *dy, int64_t B, int64_t H, int64_t W, int64_t C,
                            int64_t OH, int64_t OW, int64_t Wp, int64_t pad_y, int64_t pad_x,
                            const int32_t *ys, int64_t ny, const float *wy, const int32_t *xs,
                            int64_t nx, const float *wx, float *tmp, float *dx)
{
    int64_t row, b;
    /* pass 2's adjoint: each output row scatters into its own tmp row */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*OH*OW*C > 32768)
    for (row = 0; row < B * OH; row++) {
        const float *g = dy + row * OW * C;
        float *t = tmp + row * Wp * C;
        for (int64_t i = 0; i < Wp * C; i++)
            t[i] = 0.0f;
        for (int64_t ox = 0; ox < OW; ox++) {
            const float *wxr = wx + ox * nx;
            float *p = t + (int64_t)xs[ox] * C;
            for (int64_t kx = 0; kx < nx; kx++)
                for (int64_t c = 0; c < C; c++)
                    p[kx * C + c] += wxr[kx] * g[ox * C + c];
        }
    }
    /* pass 1's adjoint: rows of one image overlap, so one image per iteration, in order */
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*H*W*C > 32768)
    for (b = 0; b < B; b++) {
        float *img = dx + b * H * W * C;
        memset(img, 0, (size_t)(H * W * C) * sizeof(float));
        for (int64_t oy = 0; oy < OH; oy++) {
            const float *t = tmp + (b * OH + oy) * Wp * C;
            for (int64_t ky = 0; ky < ny; ky++) {
                const int64_t sy = (int64_t)ys[oy] + ky - pad_y;
                const float w = wy[oy * ny + ky];
                if (sy < 0 || sy >= H)
                    continue;
                for (int64_t xp = 0; xp < Wp; xp++) {
                    const int64_t sx = xp - pad_x;
                    if (sx < 0 || sx >= W)
                        continue;
                    float *o = img + (sy * W + sx) * C;
                    for (int64_t c = 0; c < C; c++)
                        o[c] += w * t[xp * C + c];
                }
            }
        }
    }
}

void fc_aug_contrast_backward(const float *x, const float *dy, int64_t B, int64_t H, int64_t W,
                              int64_t C, const float *factor, float lo, float hi, float *dx)
{
    int64_t b;
    const int64_t P = H * W;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(B*H*W*C > 32768)
    for (b = 0; b < B; b++) {
        const float *img = x + b * P * C;
        const float *g = dy + b * P * C;
        float *out = dx + b * P * C;
        const float f = factor[b];
        for (int64_t c0 = 0; c0 < C; c0 += CONTRAST_CHUNK) {
            const int64_t nc = C - c0 < CONTRAST_CHUNK ? C - c0 : CONTRAST_CHUNK;
            double acc[CONTRAST_CHUNK] = {0}, gsum[CONTRAST_CHUNK] = {0};
            float m[CONTRAST_CHUNK], share[CONTRAST_CHUNK];
            for (int64_t p = 0; p < P; p++)
                for (int64_t c = 0; c < nc; c++)
                    acc[c] += (double)img[p * C + c0 + c];
            for (int64_t c = 0; c < nc; c++)
                m[c] = (float)(acc[c] / (double)P);
            /* the gradient reaching the unclipped values, and its channel sum */
            for (int64_t p = 0; p < P; p++)
                for (int64_t c = 0; c < nc; c++) {
                    const int64_t i = p * C + c0 + c;
                    const float pre = (img[i] - m[c]) * f + m[c];
                    const float gi = (pre >= lo && pre <= hi) ? g[i] : 0.0f;
                    out[i] = gi;
                    gsum[c] += (double)gi;
                }
            /* y = f x + (1 - f) mean(x): each input also moves the mean */
            for (int64_t c = 0; c < nc; c++)
                share[c] = (float)((1.0 - (double)f) * gsum[c] / (double)P);
            for (int64_t p = 0; p < P; p++)
                for (int64_t c = 0; c < nc; c++) {
                    const int64_t i = p * C + c0 + c;
                    out[i] = f * out[i] + share[c];
                }
        }
    }
}

void fc_aug_brightness_backward(const float *x, const float *dy, int64_t B, int64_t HWC,
                                const float *delta, float lo, float hi, float *dx)
{
    int64_t i;
    const int64_t n = B * HWC;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if(n > 65536)
    for (i = 0; i < n; i++) {
        const float v = x[i] + delta[i / HWC];
        dx[i] = (v >= lo && v <= hi) ? dy[i] : 0.0f;
    }
}
