/* Batch normalisation, channels-last: x is viewed as (rows, channels) with
 * rows = N*H*W, statistics per channel over the rows.
 *
 * Reductions over the rows run over FIXED chunks of rows (their size depends on
 * the channel count only); each chunk's per-channel partial results (double) go
 * to their own slot and the slots are merged in chunk order, so 1 and N threads
 * give bitwise identical results.
 *
 * Every loop vectorises over channels only (each channel's sum keeps its
 * sequential row order), so the AVX2 path gives results bitwise identical to the
 * portable one; it only runs more lanes at once.
 *
 * Fused ReLU (for BN -> ReLU pairs): the forward can write relu(y) with exactly
 * fc_relu_forward's rule, and the backward can take that output (relu_y) and mask
 * dy with exactly fc_relu_backward's rule wherever it reads dy (both passes), never
 * writing the masked dy anywhere. Both are bitwise the separate kernels' results:
 * the masked value is either dy itself or +0.
 *
 * Fused clipped ReLU (BN -> ReLU(max_value=m), e.g. ReLU6): with a finite relu_max the
 * forward writes min(max(y, 0), m) with the relu6 activation kernel's rule (NaN
 * propagates, -0 becomes +0) and the backward keeps dy where 0 < relu_y < m, as that
 * kernel's backward does. relu == 0: none; 1: plain; 2: clipped (compile-time mode). */
#include <math.h>
#include <string.h>
#include "nn.h"
#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

#define FC_BN_CHUNK_ELEMS 8192
#define FC_BN_PARALLEL_MIN 32768

#if defined(__GNUC__) || defined(__clang__)
#define FC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FC_ALWAYS_INLINE inline
#endif

static int64_t chunk_rows(int64_t channels)
{
    int64_t r = FC_BN_CHUNK_ELEMS / (channels > 0 ? channels : 1);
    return r < 1 ? 1 : r;
}

/* ---- per-chunk loops: portable versions ---- */

/* Exact two-pass mean and M2 = sum (x - chunk_mean)^2 of rows [r0, r1): the chunk
 * is cache resident, so x is streamed from memory once, and there is no
 * cancellation when |mean| >> std. */
static void chunk_stats_generic(const float *x, int64_t r0, int64_t r1, int64_t C,
                                double *mean, double *m2)
{
    const double inv_n = 1.0 / (double)(r1 - r0);
    for (int64_t c = 0; c < C; c++)
        mean[c] = m2[c] = 0.0;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * C;
        for (int64_t c = 0; c < C; c++)
            mean[c] += xr[c];
    }
    for (int64_t c = 0; c < C; c++)
        mean[c] *= inv_n;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * C;
        for (int64_t c = 0; c < C; c++) {
            const double d = (double)xr[c] - mean[c];
            m2[c] += d * d;
        }
    }
}

/* Elementwise loops are written once and compiled twice (portable / AVX2). */

/* y = (x - mean) * inv_std * gamma + beta for rows [r0, r1), then relu(y) (relu 1) or
 * clip(y, 0, cap) (relu 2); relu is a compile-time constant at each call site, so the
 * loops stay branch-free */
static FC_ALWAYS_INLINE void normalize_body(const float *x, int64_t r0, int64_t r1, int64_t C,
                                            const float *mean, const float *inv_std,
                                            const float *gamma, const float *beta, float *y,
                                            const int relu, const float cap)
{
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        for (int64_t c = 0; c < C; c++) {
            const float v = (xr[c] - mean[c]) * inv_std[c] * gamma[c] + beta[c];
            /* fc_relu_forward's rule: NaN propagates, -0 becomes +0 */
            if (relu == 2) /* the relu6 kernel's rule, cap for 6 */
                yr[c] = v > 0.0f ? (v < cap ? v : cap) : (v != v ? v : 0.0f);
            else
                yr[c] = relu ? ((v > 0.0f || v != v) ? v : 0.0f) : v;
        }
    }
}

/* dy masked by fc_relu_backward's rule (ry > 0 ? dy : 0). Written as a bit mask on dy
 * (all bits kept, or all cleared: +0, exactly what the separate kernel writes) so that
 * it vectorises to a compare and an and; as a ?: GCC turns it into a masked load of dy,
 * which costs more than the rest of the loop. */
static FC_ALWAYS_INLINE float relu_masked(float dy, float ry, const int relu, const float cap)
{
    uint32_t bits;
    memcpy(&bits, &dy, sizeof bits);
    if (relu == 2)
        bits &= 0u - (uint32_t)((ry > 0.0f) & (ry < cap));
    else
        bits &= 0u - (uint32_t)(ry > 0.0f);
    memcpy(&dy, &bits, sizeof bits);
    return dy;
}

/* The incoming gradient as the backward sees it: masked when relu is set, by relu_y (the
 * fused forward's output) or, from_x, by the forward's pre-activation value recomputed
 * from x_hat: v = x_hat * gamma + beta with the forward's operations, so v > 0 and
 * v < cap exactly when the forward's output is (one input stream less to read). */
static FC_ALWAYS_INLINE float bn_dy(const float *dyr, const float *ryr, int64_t c, float xhat,
                                    const float *gamma, const float *beta, const int relu,
                                    const int from_x, const float cap)
{
    if (!relu)
        return dyr[c];
    return relu_masked(dyr[c], from_x ? xhat * gamma[c] + beta[c] : ryr[c], relu, cap);
}

/* The mask's source, as the kernels below take it */
typedef struct {
    const float *relu_y; /* the fused forward's output, or NULL */
    const float *gamma;  /* with beta: recompute the forward's value from x (relu_y NULL) */
    const float *beta;
    float cap;           /* +inf: plain ReLU; finite: clipped */
} bn_mask;

/* relu kind (0 none, 1 plain, 2 clipped) and whether the mask comes from x */
static int mask_relu(const bn_mask *m)
{
    if (!m->relu_y && !m->beta)
        return 0;
    return isinf(m->cap) ? 1 : 2;
}

/* Calls BODY(relu, from_x) with compile-time constants for the mask m */
#define FC_BN_MASK_DISPATCH(m, BODY) \
    do { \
        const int relu_ = mask_relu(m); \
        if (relu_ == 0) { BODY(0, 0); } \
        else if ((m)->relu_y) { if (relu_ == 1) { BODY(1, 0); } else { BODY(2, 0); } } \
        else if (relu_ == 1) { BODY(1, 1); } \
        else { BODY(2, 1); } \
    } while (0)

/* sum dy and sum dy * x_hat over rows [r0, r1) (x_hat recomputed as in the forward;
 * dy masked by relu_y when relu is set) */
static FC_ALWAYS_INLINE void grad_sums_body(const float *dy, const bn_mask *m,
                                            const float *x, int64_t r0, int64_t r1, int64_t C,
                                            const float *mean, const float *inv_std,
                                            double *s_dy, double *s_dyx, const int relu,
                                            const int from_x)
{
    const float cap = m->cap;
    for (int64_t c = 0; c < C; c++)
        s_dy[c] = s_dyx[c] = 0.0;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * C, *dyr = dy + r * C;
        const float *ryr = (relu && !from_x) ? m->relu_y + r * C : NULL;
        for (int64_t c = 0; c < C; c++) {
            const float xhat = (xr[c] - mean[c]) * inv_std[c];
            const float g = bn_dy(dyr, ryr, c, xhat, m->gamma, m->beta, relu, from_x, cap);
            s_dy[c] += g;
            s_dyx[c] += (double)g * (double)xhat;
        }
    }
}

static void grad_sums_generic(const float *dy, const bn_mask *m, const float *x,
                              int64_t r0, int64_t r1, int64_t C, const float *mean,
                              const float *inv_std, double *s_dy, double *s_dyx)
{
#define FC_BN_SUMS(relu, from_x) \
    grad_sums_body(dy, m, x, r0, r1, C, mean, inv_std, s_dy, s_dyx, relu, from_x)
    FC_BN_MASK_DISPATCH(m, FC_BN_SUMS);
#undef FC_BN_SUMS
}

/* dx = k_dy * (dy - k_mean - x_hat * k_xhat) for rows [r0, r1), dy masked by relu_y
 * when relu is set; dx may alias dy (each element is read before it is written) but
 * not relu_y */
static FC_ALWAYS_INLINE void input_grad_body(const float *dy, const bn_mask *m,
                                             const float *x, int64_t r0, int64_t r1,
                                             int64_t C, const float *mean,
                                             const float *inv_std, const float *k_dy,
                                             const float *k_mean, const float *k_xhat,
                                             float *dx, const int relu, const int from_x)
{
    const float cap = m->cap;
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * C, *dyr = dy + r * C;
        const float *ryr = (relu && !from_x) ? m->relu_y + r * C : NULL;
        float *dxr = dx + r * C;
        for (int64_t c = 0; c < C; c++) {
            const float xhat = (xr[c] - mean[c]) * inv_std[c];
            const float g = bn_dy(dyr, ryr, c, xhat, m->gamma, m->beta, relu, from_x, cap);
            dxr[c] = k_dy[c] * (g - k_mean[c] - xhat * k_xhat[c]);
        }
    }
}

static void normalize_generic(const float *x, int64_t r0, int64_t r1, int64_t C,
                              const float *mean, const float *inv_std, const float *gamma,
                              const float *beta, float *y, int relu, float cap)
{
    if (relu && !isinf(cap))
        normalize_body(x, r0, r1, C, mean, inv_std, gamma, beta, y, 2, cap);
    else if (relu)
        normalize_body(x, r0, r1, C, mean, inv_std, gamma, beta, y, 1, cap);
    else
        normalize_body(x, r0, r1, C, mean, inv_std, gamma, beta, y, 0, cap);
}

static void input_grad_generic(const float *dy, const bn_mask *m, const float *x,
                               int64_t r0, int64_t r1, int64_t C, const float *mean,
                               const float *inv_std, const float *k_dy, const float *k_mean,
                               const float *k_xhat, float *dx)
{
#define FC_BN_INPUT(relu, from_x) \
    input_grad_body(dy, m, x, r0, r1, C, mean, inv_std, k_dy, k_mean, k_xhat, dx, relu, from_x)
    FC_BN_MASK_DISPATCH(m, FC_BN_INPUT);
#undef FC_BN_INPUT
}

#ifdef FC_HAVE_AVX2_PATH
/* The AVX2 reductions keep 8 channels' double accumulators in registers while
 * the chunk's rows stream past. Per channel they perform exactly the generic
 * path's operations in the same order (no FMA), so both paths agree bitwise. */
FC_TARGET_AVX2 static void chunk_stats_avx2(const float *x, int64_t r0, int64_t r1, int64_t C,
                                            double *mean, double *m2)
{
    const double inv_n = 1.0 / (double)(r1 - r0);
    const __m256d n32 = _mm256_set1_pd(inv_n);
    int64_t c0 = 0;
    /* 32 channels at a time first: 8 independent add chains per pass instead of 2, so the
     * adds' latency no longer sets the pace (each channel's order is unchanged) */
    for (; c0 + 32 <= C; c0 += 32) {
        __m256d s[8], q[8];
        for (int j = 0; j < 8; j++)
            s[j] = q[j] = _mm256_setzero_pd();
        for (int64_t r = r0; r < r1; r++)
            for (int j = 0; j < 4; j++) {
                const __m256 v = _mm256_loadu_ps(x + r * C + c0 + 8 * j);
                s[2 * j] = _mm256_add_pd(s[2 * j], _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
                s[2 * j + 1] =
                    _mm256_add_pd(s[2 * j + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
            }
        for (int j = 0; j < 8; j++)
            _mm256_storeu_pd(mean + c0 + 4 * j, _mm256_mul_pd(s[j], n32));
        for (int64_t r = r0; r < r1; r++)
            for (int j = 0; j < 4; j++) {
                const __m256 v = _mm256_loadu_ps(x + r * C + c0 + 8 * j);
                const __m256d d_lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                                                   _mm256_loadu_pd(mean + c0 + 8 * j));
                const __m256d d_hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)),
                                                   _mm256_loadu_pd(mean + c0 + 8 * j + 4));
                q[2 * j] = _mm256_add_pd(q[2 * j], _mm256_mul_pd(d_lo, d_lo));
                q[2 * j + 1] = _mm256_add_pd(q[2 * j + 1], _mm256_mul_pd(d_hi, d_hi));
            }
        for (int j = 0; j < 8; j++)
            _mm256_storeu_pd(m2 + c0 + 4 * j, q[j]);
    }
    for (; c0 + 8 <= C; c0 += 8) {
        __m256d s_lo = _mm256_setzero_pd(), s_hi = _mm256_setzero_pd();
        __m256d q_lo = _mm256_setzero_pd(), q_hi = _mm256_setzero_pd();
        for (int64_t r = r0; r < r1; r++) {
            const __m256 v = _mm256_loadu_ps(x + r * C + c0);
            s_lo = _mm256_add_pd(s_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
            s_hi = _mm256_add_pd(s_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
        }
        const __m256d n = _mm256_set1_pd(inv_n);
        s_lo = _mm256_mul_pd(s_lo, n);
        s_hi = _mm256_mul_pd(s_hi, n);
        for (int64_t r = r0; r < r1; r++) {
            const __m256 v = _mm256_loadu_ps(x + r * C + c0);
            const __m256d d_lo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), s_lo);
            const __m256d d_hi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), s_hi);
            q_lo = _mm256_add_pd(q_lo, _mm256_mul_pd(d_lo, d_lo));
            q_hi = _mm256_add_pd(q_hi, _mm256_mul_pd(d_hi, d_hi));
        }
        _mm256_storeu_pd(mean + c0, s_lo);
        _mm256_storeu_pd(mean + c0 + 4, s_hi);
        _mm256_storeu_pd(m2 + c0, q_lo);
        _mm256_storeu_pd(m2 + c0 + 4, q_hi);
    }
    for (int64_t c = c0; c < C; c++) { /* remaining channels */
        double s = 0.0, q = 0.0;
        for (int64_t r = r0; r < r1; r++)
            s += x[r * C + c];
        s *= inv_n;
        for (int64_t r = r0; r < r1; r++) {
            const double d = (double)x[r * C + c] - s;
            q += d * d;
        }
        mean[c] = s;
        m2[c] = q;
    }
}

FC_TARGET_AVX2 static void normalize_avx2(const float *x, int64_t r0, int64_t r1, int64_t C,
                                          const float *mean, const float *inv_std,
                                          const float *gamma, const float *beta, float *y,
                                          int relu, float cap)
{
    if (relu && !isinf(cap))
        normalize_body(x, r0, r1, C, mean, inv_std, gamma, beta, y, 2, cap);
    else if (relu)
        normalize_body(x, r0, r1, C, mean, inv_std, gamma, beta, y, 1, cap);
    else
        normalize_body(x, r0, r1, C, mean, inv_std, gamma, beta, y, 0, cap);
}

/* 8 lanes of dy at x_hat xh, masked as bn_dy does when relu is set: the mask source s
 * (relu_y, or from_x: xh * gamma + beta) > 0 (ordered, so NaN is false), and < cap for a
 * clipped ReLU, keeps dy's bits; anything else gives +0 (all bits clear). */
FC_TARGET_AVX2 static FC_ALWAYS_INLINE __m256 load_dy_avx2(const float *dy, const bn_mask *m,
                                                           int64_t i, int64_t c, __m256 xh,
                                                           const int relu, const int from_x)
{
    const __m256 g = _mm256_loadu_ps(dy + i);
    if (!relu)
        return g;
    const __m256 s = from_x ? _mm256_add_ps(_mm256_mul_ps(xh, _mm256_loadu_ps(m->gamma + c)),
                                            _mm256_loadu_ps(m->beta + c))
                            : _mm256_loadu_ps(m->relu_y + i);
    __m256 keep = _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_GT_OQ);
    if (relu == 2) /* and below the cap, as the relu6 kernel's backward */
        keep = _mm256_and_ps(keep, _mm256_cmp_ps(s, _mm256_set1_ps(m->cap), _CMP_LT_OQ));
    return _mm256_and_ps(g, keep);
}

FC_TARGET_AVX2 static FC_ALWAYS_INLINE __m256d cvt_lo_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_castps256_ps128(v));
}

FC_TARGET_AVX2 static FC_ALWAYS_INLINE __m256d cvt_hi_pd(__m256 v)
{
    return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}

/* Blocks of 16 channels, then 8, then single channels. The chunk is walked in groups of
 * FC_BN_SUM_ROWS rows, every 16-channel block of a group in turn (its accumulators kept
 * in s_dy / s_dyx between groups), so a group's rows are read whole while they are in L1;
 * a block walking down the whole chunk reads each row's cache lines in separate sweeps.
 * Each channel still sees exactly the generic path's operations in its row order. */
#define FC_BN_SUM_ROWS 16
FC_TARGET_AVX2 static FC_ALWAYS_INLINE void grad_sums_avx2_body(
    const float *dy, const bn_mask *m, const float *x, int64_t r0, int64_t r1, int64_t C,
    const float *mean, const float *inv_std, double *s_dy, double *s_dyx, const int relu,
    const int from_x)
{
    int64_t c0 = 0;
    const int64_t c16 = C / 16 * 16;
    for (int64_t c = 0; c < c16; c++)
        s_dy[c] = s_dyx[c] = 0.0;
    for (int64_t rg = r0; rg < r1; rg += FC_BN_SUM_ROWS) {
        const int64_t re = rg + FC_BN_SUM_ROWS < r1 ? rg + FC_BN_SUM_ROWS : r1;
        for (c0 = 0; c0 < c16; c0 += 16) {
            __m256d a0 = _mm256_loadu_pd(s_dy + c0), a1 = _mm256_loadu_pd(s_dy + c0 + 4);
            __m256d a2 = _mm256_loadu_pd(s_dy + c0 + 8), a3 = _mm256_loadu_pd(s_dy + c0 + 12);
            __m256d b0 = _mm256_loadu_pd(s_dyx + c0), b1 = _mm256_loadu_pd(s_dyx + c0 + 4);
            __m256d b2 = _mm256_loadu_pd(s_dyx + c0 + 8), b3 = _mm256_loadu_pd(s_dyx + c0 + 12);
            const __m256 m0 = _mm256_loadu_ps(mean + c0), is0 = _mm256_loadu_ps(inv_std + c0);
            const __m256 m1 = _mm256_loadu_ps(mean + c0 + 8);
            const __m256 is1 = _mm256_loadu_ps(inv_std + c0 + 8);
            for (int64_t r = rg; r < re; r++) {
                const __m256 xh0 =
                    _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + r * C + c0), m0), is0);
                const __m256 xh1 =
                    _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + r * C + c0 + 8), m1), is1);
                const __m256 g0 = load_dy_avx2(dy, m, r * C + c0, c0, xh0, relu, from_x);
                const __m256 g1 = load_dy_avx2(dy, m, r * C + c0 + 8, c0 + 8, xh1, relu,
                                               from_x);
                const __m256d g0_lo = cvt_lo_pd(g0), g0_hi = cvt_hi_pd(g0);
                const __m256d g1_lo = cvt_lo_pd(g1), g1_hi = cvt_hi_pd(g1);
                a0 = _mm256_add_pd(a0, g0_lo);
                a1 = _mm256_add_pd(a1, g0_hi);
                a2 = _mm256_add_pd(a2, g1_lo);
                a3 = _mm256_add_pd(a3, g1_hi);
                b0 = _mm256_add_pd(b0, _mm256_mul_pd(g0_lo, cvt_lo_pd(xh0)));
                b1 = _mm256_add_pd(b1, _mm256_mul_pd(g0_hi, cvt_hi_pd(xh0)));
                b2 = _mm256_add_pd(b2, _mm256_mul_pd(g1_lo, cvt_lo_pd(xh1)));
                b3 = _mm256_add_pd(b3, _mm256_mul_pd(g1_hi, cvt_hi_pd(xh1)));
            }
            _mm256_storeu_pd(s_dy + c0, a0);
            _mm256_storeu_pd(s_dy + c0 + 4, a1);
            _mm256_storeu_pd(s_dy + c0 + 8, a2);
            _mm256_storeu_pd(s_dy + c0 + 12, a3);
            _mm256_storeu_pd(s_dyx + c0, b0);
            _mm256_storeu_pd(s_dyx + c0 + 4, b1);
            _mm256_storeu_pd(s_dyx + c0 + 8, b2);
            _mm256_storeu_pd(s_dyx + c0 + 12, b3);
        }
    }
    c0 = c16;
    for (; c0 + 8 <= C; c0 += 8) {
        __m256d a_lo = _mm256_setzero_pd(), a_hi = _mm256_setzero_pd();
        __m256d b_lo = _mm256_setzero_pd(), b_hi = _mm256_setzero_pd();
        const __m256 mu = _mm256_loadu_ps(mean + c0), is = _mm256_loadu_ps(inv_std + c0);
        for (int64_t r = r0; r < r1; r++) {
            const __m256 xh =
                _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + r * C + c0), mu), is);
            const __m256 g = load_dy_avx2(dy, m, r * C + c0, c0, xh, relu, from_x);
            const __m256d g_lo = cvt_lo_pd(g), g_hi = cvt_hi_pd(g);
            a_lo = _mm256_add_pd(a_lo, g_lo);
            a_hi = _mm256_add_pd(a_hi, g_hi);
            b_lo = _mm256_add_pd(b_lo, _mm256_mul_pd(g_lo, cvt_lo_pd(xh)));
            b_hi = _mm256_add_pd(b_hi, _mm256_mul_pd(g_hi, cvt_hi_pd(xh)));
        }
        _mm256_storeu_pd(s_dy + c0, a_lo);
        _mm256_storeu_pd(s_dy + c0 + 4, a_hi);
        _mm256_storeu_pd(s_dyx + c0, b_lo);
        _mm256_storeu_pd(s_dyx + c0 + 4, b_hi);
    }
    for (int64_t c = c0; c < C; c++) {
        double a = 0.0, b = 0.0;
        for (int64_t r = r0; r < r1; r++) {
            const float xhat = (x[r * C + c] - mean[c]) * inv_std[c];
            const float g = bn_dy(dy + r * C, (relu && !from_x) ? m->relu_y + r * C : NULL,
                                  c, xhat, m->gamma, m->beta, relu, from_x, m->cap);
            a += g;
            b += (double)g * (double)xhat;
        }
        s_dy[c] = a;
        s_dyx[c] = b;
    }
}

FC_TARGET_AVX2 static void grad_sums_avx2(const float *dy, const bn_mask *m, const float *x,
                                          int64_t r0, int64_t r1, int64_t C, const float *mean,
                                          const float *inv_std, double *s_dy, double *s_dyx)
{
#define FC_BN_SUMS(relu, from_x) \
    grad_sums_avx2_body(dy, m, x, r0, r1, C, mean, inv_std, s_dy, s_dyx, relu, from_x)
    FC_BN_MASK_DISPATCH(m, FC_BN_SUMS);
#undef FC_BN_SUMS
}

FC_TARGET_AVX2 static void input_grad_avx2(const float *dy, const bn_mask *m, const float *x,
                                           int64_t r0, int64_t r1, int64_t C,
                                           const float *mean, const float *inv_std,
                                           const float *k_dy, const float *k_mean,
                                           const float *k_xhat, float *dx)
{
#define FC_BN_INPUT(relu, from_x) \
    input_grad_body(dy, m, x, r0, r1, C, mean, inv_std, k_dy, k_mean, k_xhat, dx, relu, from_x)
    FC_BN_MASK_DISPATCH(m, FC_BN_INPUT);
#undef FC_BN_INPUT
}
#endif

typedef void (*chunk_stats_fn)(const float *, int64_t, int64_t, int64_t, double *, double *);
typedef void (*normalize_fn)(const float *, int64_t, int64_t, int64_t, const float *,
                             const float *, const float *, const float *, float *, int, float);
typedef void (*grad_sums_fn)(const float *, const bn_mask *, const float *, int64_t,
                             int64_t, int64_t, const float *, const float *, double *,
                             double *);
typedef void (*input_grad_fn)(const float *, const bn_mask *, const float *, int64_t,
                              int64_t, int64_t, const float *, const float *, const float *,
                              const float *, const float *, float *);

/* ---- kernels ---- */

static void normalize_rows(const float *x, int64_t rows, int64_t C, const float *mean,
                           const float *inv_std, const float *gamma, const float *beta, float *y,
                           int relu, float relu_max)
{
    const int64_t R = chunk_rows(C), nchunks = (rows + R - 1) / R;
    normalize_fn fn = normalize_generic;
    int64_t k;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = normalize_avx2;
#endif
#pragma omp parallel for schedule(static) if (rows * C >= FC_BN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++)
        fn(x, k * R, (k + 1) * R < rows ? (k + 1) * R : rows, C, mean, inv_std, gamma, beta, y,
           relu, relu_max);
}

int fc_batch_norm_forward_train(const float *x, int64_t rows, int64_t channels,
                                const float *gamma, const float *beta,
                                double momentum, double epsilon,
                                float *moving_mean, float *moving_var,
                                int relu, float relu_max, float *y, float *mean_out,
                                float *inv_std_out)
{
    const int64_t C = channels, R = chunk_rows(channels);
    const int64_t nchunks = rows > 0 ? (rows + R - 1) / R : 0;
    const float mom = (float)momentum, one_minus_mom = (float)(1.0 - momentum);
    chunk_stats_fn stats = chunk_stats_generic;
    double *part, *mean, *m2;
    int64_t k;
    if (C <= 0 || rows <= 0)
        return FC_OK;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        stats = chunk_stats_avx2;
#endif
    /* per chunk: C means then C M2s; then the merged mean and M2 */
    part = (double *)fc_malloc((size_t)(2 * nchunks * C + 2 * C) * sizeof(double));
    if (!part)
        return FC_ENOMEM;
    mean = part + 2 * nchunks * C;
    m2 = mean + C;

#pragma omp parallel for schedule(static) if (rows * C >= FC_BN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++)
        stats(x, k * R, (k + 1) * R < rows ? (k + 1) * R : rows, C, part + 2 * k * C,
              part + 2 * k * C + C);

    /* merge the chunks in order (Chan, Golub & LeVeque's pairwise update) */
    for (int64_t c = 0; c < C; c++) {
        mean[c] = part[c];
        m2[c] = part[C + c];
    }
    for (k = 1; k < nchunks; k++) {
        const double *p_mean = part + 2 * k * C, *p_m2 = p_mean + C;
        const double n_a = (double)(k * R);
        const double n_b = (double)(((k + 1) * R < rows ? (k + 1) * R : rows) - k * R);
        const double w_b = n_b / (n_a + n_b), w_ab = n_a * n_b / (n_a + n_b);
        for (int64_t c = 0; c < C; c++) {
            const double delta = p_mean[c] - mean[c];
            mean[c] += delta * w_b;
            m2[c] += p_m2[c] + delta * delta * w_ab;
        }
    }

    for (int64_t c = 0; c < C; c++) {
        const double v = m2[c] / (double)rows; /* biased, as Keras */
        mean_out[c] = (float)mean[c];
        inv_std_out[c] = (float)(1.0 / sqrt(v + epsilon));
        /* Keras 3: moving = moving * momentum + batch * (1 - momentum), in float32 */
        moving_mean[c] = moving_mean[c] * mom + (float)mean[c] * one_minus_mom;
        moving_var[c] = moving_var[c] * mom + (float)v * one_minus_mom;
    }
    fc_free(part);
    normalize_rows(x, rows, C, mean_out, inv_std_out, gamma, beta, y, relu != 0, relu_max);
    return FC_OK;
}

void fc_batch_norm_forward_infer(const float *x, int64_t rows, int64_t channels,
                                 const float *gamma, const float *beta,
                                 const float *moving_mean, const float *moving_var,
                                 double epsilon, int relu, float relu_max, float *y,
                                 float *mean_out, float *inv_std_out)
{
    for (int64_t c = 0; c < channels; c++) {
        mean_out[c] = moving_mean[c];
        inv_std_out[c] = (float)(1.0 / sqrt((double)moving_var[c] + epsilon));
    }
    if (rows > 0 && channels > 0)
        normalize_rows(x, rows, channels, mean_out, inv_std_out, gamma, beta, y, relu != 0,
                       relu_max);
}

int fc_batch_norm_backward(const float *dy, const float *relu_y, float relu_max,
                           const float *relu_beta, const float *x, int64_t rows,
                           int64_t channels, const float *mean, const float *inv_std,
                           const float *gamma, int training, float *dx, float *dgamma,
                           float *dbeta)
{
    const int64_t C = channels, R = chunk_rows(channels);
    const int64_t nchunks = rows > 0 ? (rows + R - 1) / R : 0;
    const int par = rows * C >= FC_BN_PARALLEL_MIN;
    const bn_mask mask = {relu_y, gamma, relu_y ? NULL : relu_beta, relu_max};
    grad_sums_fn sums = grad_sums_generic;
    input_grad_fn input_grad = input_grad_generic;
    double *part, *sum_dy, *sum_dy_xhat;
    float *k_dy, *k_mean, *k_xhat;
    int64_t k;
    if (C <= 0)
        return FC_OK;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        sums = grad_sums_avx2;
        input_grad = input_grad_avx2;
    }
#endif
    /* chunk partials (2 per channel), the two sums, then 3*C floats of coefficients */
    part = (double *)fc_malloc((size_t)(2 * nchunks * C + 4 * C) * sizeof(double));
    if (!part)
        return FC_ENOMEM;
    sum_dy = part + 2 * nchunks * C;
    sum_dy_xhat = sum_dy + C;
    k_dy = (float *)(sum_dy_xhat + C);
    k_mean = k_dy + C;
    k_xhat = k_mean + C;

#pragma omp parallel for schedule(static) if (par) num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++)
        sums(dy, &mask, x, k * R, (k + 1) * R < rows ? (k + 1) * R : rows, C, mean, inv_std,
             part + 2 * k * C, part + 2 * k * C + C);

    for (int64_t c = 0; c < C; c++)
        sum_dy[c] = sum_dy_xhat[c] = 0.0;
    for (k = 0; k < nchunks; k++)
        for (int64_t c = 0; c < C; c++) {
            sum_dy[c] += part[2 * k * C + c];
            sum_dy_xhat[c] += part[2 * k * C + C + c];
        }

    for (int64_t c = 0; c < C; c++) {
        dbeta[c] = (float)sum_dy[c];
        dgamma[c] = (float)sum_dy_xhat[c];
        k_dy[c] = gamma[c] * inv_std[c];
        /* batch statistics depend on x: remove the projections onto 1 and x_hat */
        k_mean[c] = training ? (float)(sum_dy[c] / (double)rows) : 0.0f;
        k_xhat[c] = training ? (float)(sum_dy_xhat[c] / (double)rows) : 0.0f;
    }

#pragma omp parallel for schedule(static) if (par) num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++)
        input_grad(dy, &mask, x, k * R, (k + 1) * R < rows ? (k + 1) * R : rows, C, mean,
                   inv_std, k_dy, k_mean, k_xhat, dx);
    fc_free(part);
    return FC_OK;
}

/* ---- synchronized batch norm: the kernels above in parts (see nn.h) ---- */

int fc_batch_norm_moments(const float *x, int64_t rows, int64_t channels, double *mean,
                          double *m2)
{
    const int64_t C = channels, R = chunk_rows(channels);
    const int64_t nchunks = rows > 0 ? (rows + R - 1) / R : 0;
    chunk_stats_fn stats = chunk_stats_generic;
    double *part;
    int64_t k;
    if (C <= 0 || rows <= 0)
        return FC_OK;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        stats = chunk_stats_avx2;
#endif
    part = (double *)fc_malloc((size_t)(2 * nchunks * C) * sizeof(double));
    if (!part)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) if (rows * C >= FC_BN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++)
        stats(x, k * R, (k + 1) * R < rows ? (k + 1) * R : rows, C, part + 2 * k * C,
              part + 2 * k * C + C);
    /* the chunks merged in order, exactly as fc_batch_norm_forward_train does */
    for (int64_t c = 0; c < C; c++) {
        mean[c] = part[c];
        m2[c] = part[C + c];
    }
    for (k = 1; k < nchunks; k++) {
        const double *p_mean = part + 2 * k * C, *p_m2 = p_mean + C;
        const double n_a = (double)(k * R);
        const double n_b = (double)(((k + 1) * R < rows ? (k + 1) * R : rows) - k * R);
        const double w_b = n_b / (n_a + n_b), w_ab = n_a * n_b / (n_a + n_b);
        for (int64_t c = 0; c < C; c++) {
            const double delta = p_mean[c] - mean[c];
            mean[c] += delta * w_b;
            m2[c] += p_m2[c] + delta * delta * w_ab;
        }
    }
    fc_free(part);
    return FC_OK;
}

void fc_batch_norm_forward_stats(const float *x, int64_t rows, int64_t channels,
                                 const float *gamma, const float *beta, const double *mean,
                                 const double *var, double momentum, double epsilon,
                                 float *moving_mean, float *moving_var, int relu,
                                 float relu_max, float *y, float *mean_out, float *inv_std_out)
{
    const float mom = (float)momentum, one_minus_mom = (float)(1.0 - momentum);
    for (int64_t c = 0; c < channels; c++) {
        mean_out[c] = (float)mean[c];
        inv_std_out[c] = (float)(1.0 / sqrt(var[c] + epsilon));
        moving_mean[c] = moving_mean[c] * mom + (float)mean[c] * one_minus_mom;
        moving_var[c] = moving_var[c] * mom + (float)var[c] * one_minus_mom;
    }
    if (rows > 0 && channels > 0)
        normalize_rows(x, rows, channels, mean_out, inv_std_out, gamma, beta, y, relu != 0,
                       relu_max);
}

int fc_batch_norm_backward_sums(const float *dy, const float *relu_y, float relu_max,
                                const float *x,
                                int64_t rows, int64_t channels, const float *mean,
                                const float *inv_std, double *sum_dy, double *sum_dy_xhat,
                                float *dgamma, float *dbeta)
{
    const int64_t C = channels, R = chunk_rows(channels);
    const int64_t nchunks = rows > 0 ? (rows + R - 1) / R : 0;
    const bn_mask mask = {relu_y, NULL, NULL, relu_max};
    grad_sums_fn sums = grad_sums_generic;
    double *part;
    int64_t k;
    if (C <= 0)
        return FC_OK;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        sums = grad_sums_avx2;
#endif
    part = (double *)fc_malloc((size_t)(2 * nchunks * C + 1) * sizeof(double));
    if (!part)
        return FC_ENOMEM;
#pragma omp parallel for schedule(static) if (rows * C >= FC_BN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++)
        sums(dy, &mask, x, k * R, (k + 1) * R < rows ? (k + 1) * R : rows, C, mean, inv_std,
             part + 2 * k * C, part + 2 * k * C + C);
    for (int64_t c = 0; c < C; c++)
        sum_dy[c] = sum_dy_xhat[c] = 0.0;
    for (k = 0; k < nchunks; k++)
        for (int64_t c = 0; c < C; c++) {
            sum_dy[c] += part[2 * k * C + c];
            sum_dy_xhat[c] += part[2 * k * C + C + c];
        }
    for (int64_t c = 0; c < C; c++) {
        dbeta[c] = (float)sum_dy[c];
        dgamma[c] = (float)sum_dy_xhat[c];
    }
    fc_free(part);
    return FC_OK;
}

int fc_batch_norm_backward_input(const float *dy, const float *relu_y, float relu_max,
                                 const float *x,
                                 int64_t rows, int64_t channels, const float *mean,
                                 const float *inv_std, const float *gamma,
                                 const double *sum_dy, const double *sum_dy_xhat,
                                 int64_t total_rows, float *dx)
{
    const int64_t C = channels, R = chunk_rows(channels);
    const int64_t nchunks = rows > 0 ? (rows + R - 1) / R : 0;
    const bn_mask mask = {relu_y, NULL, NULL, relu_max};
    input_grad_fn input_grad = input_grad_generic;
    float *k_dy, *k_mean, *k_xhat;
    int64_t k;
    if (C <= 0 || rows <= 0 || total_rows <= 0)
        return FC_OK;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        input_grad = input_grad_avx2;
#endif
    k_dy = (float *)fc_malloc((size_t)(3 * C) * sizeof(float));
    if (!k_dy)
        return FC_ENOMEM;
    k_mean = k_dy + C;
    k_xhat = k_mean + C;
    for (int64_t c = 0; c < C; c++) {
        k_dy[c] = gamma[c] * inv_std[c];
        k_mean[c] = (float)(sum_dy[c] / (double)total_rows);
        k_xhat[c] = (float)(sum_dy_xhat[c] / (double)total_rows);
    }
#pragma omp parallel for schedule(static) if (rows * C >= FC_BN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (k = 0; k < nchunks; k++)
        input_grad(dy, &mask, x, k * R, (k + 1) * R < rows ? (k + 1) * R : rows, C, mean,
                   inv_std, k_dy, k_mean, k_xhat, dx);
    fc_free(k_dy);
    return FC_OK;
}
