/* Elementwise / row-wise activations: relu, the activation family (an enum of
 * kinds, forward and backward), softmax / log_softmax along any axis, PReLU, dropout. */
#include <math.h>
#include <string.h>
#include "nn.h"
#include "gemm.h"
#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>
#endif

/* Elementwise kernels work on fixed blocks so the inner loop stays simple enough
 * to vectorise; below FC_NN_PARALLEL_MIN elements waking a thread team costs
 * more than the work. */
#define FC_NN_BLOCK 4096
#define FC_NN_PARALLEL_MIN 65536

static double log_d(double v)
{
    return log(v);
}

static int64_t n_blocks(int64_t n)
{
    return (n + FC_NN_BLOCK - 1) / FC_NN_BLOCK;
}

void fc_relu_forward(const float *x, float *y, int64_t n)
{
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i];
            /* NaN propagates (a diverging run should stay visible); -0 becomes +0 */
            y[i] = (v > 0.0f || v != v) ? v : 0.0f;
        }
    }
}

void fc_relu_backward(const float *dy, const float *y, float *dx, int64_t n)
{
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        for (int64_t i = i0; i < i1; i++) {
            /* load dy unconditionally: a select, not a data-dependent branch */
            const float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
        }
    }
}

/* One line of len elements, stride apart; safe in place (each element is read
 * before it is written). The portable arithmetic does not depend on the stride. */
static void softmax_line(const float *x, float *y, int64_t len, int64_t stride)
{
    float m = x[0];
    for (int64_t j = 1; j < len; j++)
        if (x[j * stride] > m)
            m = x[j * stride];
    double s = 0.0;
    for (int64_t j = 0; j < len; j++) {
        float e = expf(x[j * stride] - m);
        y[j * stride] = e;
        s += e;
    }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < len; j++)
        y[j * stride] *= inv;
}

static void softmax_row(const float *x, float *y, int64_t cols)
{
    softmax_line(x, y, cols, 1);
}

void fc_softmax_forward(const float *x, float *y, int64_t rows, int64_t cols)
{
    int64_t r;
    if (cols <= 0)
        return;
#pragma omp parallel for schedule(static) if (rows * cols >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++)
        softmax_row(x + r * cols, y + r * cols, cols);
}

/* ---- dropout ---- */

#define FC_GOLDEN 0x9E3779B97F4A7C15ULL

/* splitmix64's output function: a bijective 64-bit mixer. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* y = (mask ? x * scale : 0) as a bit mask on the float, so that it vectorises
 * (a data-dependent branch here mispredicts on every other element) */
static void masked_scale(const float *x, const uint8_t *mask, float *y, int64_t i0, int64_t i1,
                         float scale)
{
    for (int64_t i = i0; i < i1; i++) {
        const float v = x[i] * scale;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint32_t)(mask[i] != 0);
        memcpy(&y[i], &bits, sizeof bits);
    }
}

void fc_dropout_forward(const float *x, float *y, uint8_t *mask, int64_t n,
                        double rate, uint64_t seed)
{
    /* Element i is kept iff its 32-bit uniform u_i >= rate * 2^32, i.e. with
     * probability 1 - rate (to 2^-32); rate 0 keeps everything. u_{2j} and
     * u_{2j+1} are the low and high halves of hash(seed, j). */
    const uint64_t key = mix64(seed + FC_GOLDEN);
    const uint64_t threshold = (uint64_t)ceil(rate * 4294967296.0);
    const float scale = (float)(1.0 / (1.0 - rate));
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        /* blocks start at even indices, so pairs never straddle two blocks */
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        int64_t i = i0;
        for (; i + 1 < i1; i += 2) {
            const uint64_t h = mix64(key + (uint64_t)((i >> 1) + 1) * FC_GOLDEN);
            mask[i] = (uint8_t)((h & 0xFFFFFFFFu) >= threshold);
            mask[i + 1] = (uint8_t)((h >> 32) >= threshold);
        }
        if (i < i1) {
            const uint64_t h = mix64(key + (uint64_t)((i >> 1) + 1) * FC_GOLDEN);
            mask[i] = (uint8_t)((h & 0xFFFFFFFFu) >= threshold);
        }
        masked_scale(x, mask, y, i0, i1, scale);
    }
}

void fc_dropout_backward(const float *dy, const uint8_t *mask, float *dx, int64_t n,
                         double rate)
{
    const float scale = (float)(1.0 / (1.0 - rate));
    int64_t b, nb = n_blocks(n);
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
        masked_scale(dy, mask, dx, i0, i1, scale);
    }
}

/* ---- the activation family: y = f(x), dx = dy * f'(.) ----
 *
 * Two paths: portable C (float64 libm per element, rounded once) and the vector code
 * of activations_vec.h (exp/expm1/log1p/erfc approximations, a few float32 ulp; the
 * bounds are in tests/test_activations_accuracy.py), built for AVX2+FMA and for
 * AVX-512F, which give the same bits. The path is chosen once per call; within a call
 * every element goes through the same code (the tail is padded to a full vector), so
 * results never depend on where an element sits nor on the thread count. */

static int act_backward_uses_output(int kind, const float *p)
{
    switch (kind) {
    case FC_ACT_LINEAR: case FC_ACT_RELU: case FC_ACT_RELU6: case FC_ACT_SIGMOID:
    case FC_ACT_TANH: case FC_ACT_EXPONENTIAL: case FC_ACT_HARD_SIGMOID: case FC_ACT_SELU:
        return 1;
    case FC_ACT_LEAKY_RELU: /* y keeps x's sign when the slope is positive */
    case FC_ACT_ELU:
        return p[0] > 0.0f;
    case FC_ACT_RELU_GENERAL: /* no negative part: y in (0, max) <=> the slope is 1 */
        return p[0] == 0.0f && p[2] >= 0.0f && p[1] > 0.0f;
    default:
        return 0;
    }
}

int fc_activation_backward_uses_output(int kind, const float *params)
{
    return act_backward_uses_output(kind, params);
}

#define FC_SELU_ALPHA 1.6732632423543772
#define FC_SELU_SCALE 1.0507009873554805
#define FC_SQRT_2_OVER_PI 0.7978845608028654
#define FC_GELU_C 0.044715

static double sigmoid_d(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* relu with Keras 3's negative_slope / max_value / threshold:
 * v = x if x > threshold else 0, clipped to [0, max] when a max is given (p[1] finite;
 * without one a negative threshold lets x in (threshold, 0) through), then
 * y = v - slope * max(threshold - x, 0). */
static float relu_general_lo(const float *p)
{
    return isinf(p[1]) ? -INFINITY : 0.0f;
}

static double relu_general_d(double x, const float *p)
{
    const double lo = relu_general_lo(p);
    double v = x > p[2] ? x : 0.0;
    v = v < lo ? lo : v;
    v = v > p[1] ? p[1] : v;
    return v - p[0] * (p[2] - x > 0.0 ? p[2] - x : 0.0);
}

static float act_fwd_c(int kind, const float *p, float xf)
{
    const double x = xf;
    if (xf != xf)
        return xf;
    switch (kind) {
    case FC_ACT_RELU: return xf > 0.0f ? xf : 0.0f;
    case FC_ACT_RELU_GENERAL: return (float)relu_general_d(x, p);
    case FC_ACT_LEAKY_RELU: return xf >= 0.0f ? xf : (float)(p[0] * x);
    case FC_ACT_RELU6: return xf > 0.0f ? (xf < 6.0f ? xf : 6.0f) : 0.0f;
    case FC_ACT_SIGMOID: return (float)sigmoid_d(x);
    case FC_ACT_TANH: return (float)tanh(x);
    case FC_ACT_ELU: return xf > 0.0f ? xf : (float)(p[0] * expm1(x));
    case FC_ACT_SELU:
        return (float)(FC_SELU_SCALE * (x > 0.0 ? x : FC_SELU_ALPHA * expm1(x)));
    case FC_ACT_GELU: return (float)(0.5 * x * erfc(-x * 0.70710678118654752));
    case FC_ACT_GELU_TANH:
        return (float)(x * sigmoid_d(2.0 * FC_SQRT_2_OVER_PI * (x + FC_GELU_C * x * x * x)));
    case FC_ACT_SILU: return (float)(x * sigmoid_d(x));
    case FC_ACT_SOFTPLUS: return (float)((x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x))));
    case FC_ACT_SOFTSIGN: return (float)(x / (1.0 + fabs(x)));
    case FC_ACT_HARD_SIGMOID: {
        const double h = x + 3.0;
        return (float)((h < 0.0 ? 0.0 : h > 6.0 ? 6.0 : h) / 6.0);
    }
    case FC_ACT_HARD_SILU: {
        const double h = x + 3.0;
        return (float)(x * (h < 0.0 ? 0.0 : h > 6.0 ? 6.0 : h) / 6.0);
    }
    case FC_ACT_EXPONENTIAL: return (float)exp(x);
    default: return xf; /* linear */
    }
}

/* f'(.) * dy; s is the output y or the input x as act_backward_uses_output says */
static float act_bwd_c(int kind, const float *p, float sf, float g)
{
    const double s = sf;
    switch (kind) {
    case FC_ACT_RELU: return sf > 0.0f ? g : 0.0f;
    case FC_ACT_RELU6: return (sf > 0.0f && sf < 6.0f) ? g : 0.0f;
    case FC_ACT_SIGMOID: return (float)(g * s * (1.0 - s));
    case FC_ACT_TANH: return (float)(g * (1.0 - s * s));
    case FC_ACT_EXPONENTIAL: return (float)(g * s);
    case FC_ACT_HARD_SIGMOID: return (sf > 0.0f && sf < 1.0f) ? g / 6.0f : 0.0f;
    case FC_ACT_SELU:
        return (float)(g * (s > 0.0 ? FC_SELU_SCALE : s + FC_SELU_SCALE * FC_SELU_ALPHA));
    case FC_ACT_LEAKY_RELU:
        if (act_backward_uses_output(kind, p))
            return sf > 0.0f ? g : (float)(g * (double)p[0]);
        return sf >= 0.0f ? g : (float)(g * (double)p[0]);
    case FC_ACT_ELU:
        if (act_backward_uses_output(kind, p))
            return sf > 0.0f ? g : (float)(g * (s + p[0]));
        return sf > 0.0f ? g : (float)(g * p[0] * exp(s));
    case FC_ACT_RELU_GENERAL:
        if (act_backward_uses_output(kind, p))
            return (sf > 0.0f && sf < p[1]) ? g : 0.0f;
        return (float)(g * (((s > p[2] && s > relu_general_lo(p) && s < p[1]) ? 1.0 : 0.0) +
                            (s < p[2] ? (double)p[0] : 0.0)));
    case FC_ACT_GELU:
    {
        const double xc = s < -20.0 ? -20.0 : s > 20.0 ? 20.0 : s; /* x phi(x) = 0 beyond */
        return (float)(g * (0.5 * erfc(-s * 0.70710678118654752) +
                            xc * exp(-0.5 * xc * xc) * 0.3989422804014327));
    }
    case FC_ACT_GELU_TANH: {
        const double sg = sigmoid_d(2.0 * FC_SQRT_2_OVER_PI * (s + FC_GELU_C * s * s * s));
        const double du = 2.0 * FC_SQRT_2_OVER_PI * (1.0 + 3.0 * FC_GELU_C * s * s);
        return (float)(g * (sg + (sg * (1.0 - sg) == 0.0 ? 0.0 : s * sg * (1.0 - sg) * du)));
    }
    case FC_ACT_SILU: {
        const double sg = sigmoid_d(s);
        return (float)(g * (sg == 0.0 ? 0.0 : sg * (1.0 + s * (1.0 - sg))));
    }
    case FC_ACT_SOFTPLUS: return (float)(g * sigmoid_d(s));
    case FC_ACT_SOFTSIGN: {
        const double d = 1.0 + fabs(s);
        return (float)(g / (d * d));
    }
    case FC_ACT_HARD_SILU:
        return sf < -3.0f ? 0.0f * g : sf > 3.0f ? g : (float)(g * (2.0 * s + 3.0) / 6.0);
    default: return g; /* linear */
    }
}

#ifdef FC_HAVE_AVX2_PATH
#if !defined(FASTCNN_NO_AVX512)
/* Compiled for AVX-512F in any build; only called when fc_gemm_avx512() says yes (the
 * CPU has it and neither FASTCNN_NO_AVX512 nor fc_gemm_force_avx512(0) turned it off). */
#define FC_HAVE_AVX512_PATH 1
#endif

/* the AVX2+FMA instantiation of activations_vec.h */
#define VT __m256
#define MT __m256
#define VN 8
#define VTARGET FC_TARGET_AVX2
#define FN(name) name##_avx2
#define VSET _mm256_set1_ps
#define VZERO _mm256_setzero_ps
#define VADD _mm256_add_ps
#define VSUB _mm256_sub_ps
#define VMUL _mm256_mul_ps
#define VDIV _mm256_div_ps
#define VMIN _mm256_min_ps
#define VMAX _mm256_max_ps
#define VFMA _mm256_fmadd_ps
#define VFNMA _mm256_fnmadd_ps
#define VFMS _mm256_fmsub_ps
#define VAND _mm256_and_ps
#define VANDNOT _mm256_andnot_ps
#define VOR _mm256_or_ps
#define VCMP _mm256_cmp_ps
#define VSEL(m, a, b) _mm256_blendv_ps((b), (a), (m))
#define VKEEP _mm256_and_ps
#define MAND _mm256_and_ps
#define MOR _mm256_or_ps
#define VLOAD _mm256_loadu_ps
#define VSTORE _mm256_storeu_ps
#define VEXP2BITS(t) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23))
/* softmax row sums: each lane accumulates in double; the lanes are added in a fixed tree */
#define VD __m256d
#define VDZERO _mm256_setzero_pd
FC_TARGET_AVX2 static inline void dacc_avx2(__m256d *lo, __m256d *hi, __m256 v)
{
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

FC_TARGET_AVX2 static inline double dsum_avx2(__m256d lo, __m256d hi)
{
    double a[4], b[4];
    _mm256_storeu_pd(a, lo);
    _mm256_storeu_pd(b, hi);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((b[0] + b[1]) + (b[2] + b[3]));
}
#include "activations_vec.h"

#ifdef FC_HAVE_AVX512_PATH
/* the AVX-512F instantiation: 16 lanes, comparisons into mask registers */
#define FC_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define I512(op, a, b) \
    _mm512_castsi512_ps(op(_mm512_castps_si512(a), _mm512_castps_si512(b)))
#define VT __m512
#define MT __mmask16
#define VN 16
#define VTARGET FC_TARGET_AVX512
#define FN(name) name##_avx512
#define VSET _mm512_set1_ps
#define VZERO _mm512_setzero_ps
#define VADD _mm512_add_ps
#define VSUB _mm512_sub_ps
#define VMUL _mm512_mul_ps
#define VDIV _mm512_div_ps
#define VMIN _mm512_min_ps
#define VMAX _mm512_max_ps
#define VFMA _mm512_fmadd_ps
#define VFNMA _mm512_fnmadd_ps
#define VFMS _mm512_fmsub_ps
#define VAND(a, b) I512(_mm512_and_si512, a, b)
#define VANDNOT(a, b) I512(_mm512_andnot_si512, a, b)
#define VOR(a, b) I512(_mm512_or_si512, a, b)
#define VCMP _mm512_cmp_ps_mask
#define VSEL(m, a, b) _mm512_mask_blend_ps((m), (b), (a))
#define VKEEP(v, m) _mm512_maskz_mov_ps((m), (v))
#define MAND(a, b) ((__mmask16)((a) & (b)))
#define MOR(a, b) ((__mmask16)((a) | (b)))
#define VLOAD _mm512_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VEXP2BITS(t) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23))
#define VD __m512d
#define VDZERO _mm512_setzero_pd
FC_TARGET_AVX512 static inline void dacc_avx512(__m512d *lo, __m512d *hi, __m512 v)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castpd_ps(
        _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

FC_TARGET_AVX512 static inline double dsum_avx512(__m512d lo, __m512d hi)
{
    double a[8], b[8];
    _mm512_storeu_pd(a, lo);
    _mm512_storeu_pd(b, hi);
    return (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))) +
           (((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7])));
}
#include "activations_vec.h"
#undef I512
#endif /* FC_HAVE_AVX512_PATH */

#endif /* FC_HAVE_AVX2_PATH */

int fc_activation_kind_valid(int kind)
{
    return kind >= 0 && kind < FC_ACT_COUNT;
}

void fc_activation_forward(int kind, const float *params, const float *x, float *y, int64_t n)
{
    float p[3] = {params[0], params[1], params[2]};
    const int simd = fc_simd_level();
    const int wide = fc_gemm_avx512(); /* the AVX-512 switch the GEMM keeps */
    int64_t b, nb = n_blocks(n);
    (void)simd;
    (void)wide;
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
#ifdef FC_HAVE_AVX2_PATH
        if (simd >= 1) {
#ifdef FC_HAVE_AVX512_PATH
            if (wide)
                act_fwd_block_avx512(kind, p, x + i0, y + i0, i1 - i0);
            else
#endif
                act_fwd_block_avx2(kind, p, x + i0, y + i0, i1 - i0);
            continue;
        }
#endif
        for (int64_t i = i0; i < i1; i++)
            y[i] = act_fwd_c(kind, p, x[i]);
    }
}

void fc_activation_backward(int kind, const float *params, const float *dy, const float *src,
                            float *dx, int64_t n)
{
    float p[3] = {params[0], params[1], params[2]};
    const int simd = fc_simd_level();
    const int from_output = act_backward_uses_output(kind, p);
    const int wide = fc_gemm_avx512();
    int64_t b, nb = n_blocks(n);
    (void)simd;
    (void)wide;
    (void)from_output;
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
#ifdef FC_HAVE_AVX2_PATH
        if (simd >= 1) {
#ifdef FC_HAVE_AVX512_PATH
            if (wide)
                act_bwd_block_avx512(kind, p, from_output, dy + i0, src + i0, dx + i0,
                                     i1 - i0);
            else
#endif
                act_bwd_block_avx2(kind, p, from_output, dy + i0, src + i0, dx + i0,
                                   i1 - i0);
            continue;
        }
#endif
        for (int64_t i = i0; i < i1; i++)
            dx[i] = act_bwd_c(kind, p, src[i], dy[i]);
    }
}

/* ---- softmax / log_softmax along an axis: x viewed (outer, len, inner) ---- */

static void log_softmax_line(const float *x, float *y, int64_t len, int64_t stride)
{
    float m = x[0];
    for (int64_t j = 1; j < len; j++)
        if (x[j * stride] > m)
            m = x[j * stride];
    double s = 0.0;
    for (int64_t j = 0; j < len; j++)
        s += expf(x[j * stride] - m);
    const float ls = (float)log(s);
    for (int64_t j = 0; j < len; j++)
        y[j * stride] = (x[j * stride] - m) - ls;
}

void fc_softmax_axis_forward(int log_softmax, const float *x, float *y, int64_t outer,
                             int64_t len, int64_t inner)
{
    int64_t l, lines = outer * inner;
    const int simd = fc_simd_level();
    const int wide = fc_gemm_avx512();
    (void)simd;
    (void)wide;
    if (len <= 0)
        return;
#pragma omp parallel for schedule(static) if (lines * len >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (l = 0; l < lines; l++) {
        const int64_t off = (l / inner) * len * inner + l % inner;
#ifdef FC_HAVE_AVX2_PATH
        if (simd >= 1 && inner == 1) {
#ifdef FC_HAVE_AVX512_PATH
            if (wide)
                softmax_row_avx512(x + off, y + off, len, log_softmax);
            else
#endif
                softmax_row_avx2(x + off, y + off, len, log_softmax);
            continue;
        }
#endif
        if (log_softmax)
            log_softmax_line(x + off, y + off, len, inner);
        else
            softmax_line(x + off, y + off, len, inner);
    }
}

void fc_softmax_axis_backward(int log_softmax, const float *dy, const float *y, float *dx,
                              int64_t outer, int64_t len, int64_t inner)
{
    int64_t l, lines = outer * inner;
    const int simd = fc_simd_level();
    const int wide = fc_gemm_avx512();
    (void)simd;
    (void)wide;
    if (len <= 0)
        return;
#pragma omp parallel for schedule(static) if (lines * len >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (l = 0; l < lines; l++) {
        const int64_t off = (l / inner) * len * inner + l % inner;
        const float *g = dy + off, *o = y + off;
        float *d = dx + off;
        double s = 0.0;
#ifdef FC_HAVE_AVX2_PATH
        if (simd >= 1 && inner == 1) {
#ifdef FC_HAVE_AVX512_PATH
            if (wide)
                softmax_row_backward_avx512(g, o, d, len, log_softmax);
            else
#endif
                softmax_row_backward_avx2(g, o, d, len, log_softmax);
            continue;
        }
#endif
        if (log_softmax) {
            /* dx = dy - softmax * sum(dy), softmax = exp(log_softmax) */
            for (int64_t j = 0; j < len; j++)
                s += g[j * inner];
            const float sf = (float)s;
            for (int64_t j = 0; j < len; j++)
                d[j * inner] = g[j * inner] - expf(o[j * inner]) * sf;
        } else {
            /* dx = y * (dy - sum(dy * y)) */
            for (int64_t j = 0; j < len; j++)
                s += (double)g[j * inner] * o[j * inner];
            const float sf = (float)s;
            for (int64_t j = 0; j < len; j++)
                d[j * inner] = o[j * inner] * (g[j * inner] - sf);
        }
    }
}

/* ---- PReLU: x viewed (rows, d), alpha (d) ---- */

#define FC_PRELU_COLS 512

void fc_prelu_forward(const float *x, const float *alpha, float *y, int64_t rows, int64_t d)
{
    int64_t r;
#pragma omp parallel for schedule(static) if (rows * d >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        for (int64_t j = 0; j < d; j++) {
            const float v = xr[j];
            yr[j] = v > 0.0f ? v : alpha[j] * v; /* relu(x) - alpha relu(-x) */
        }
    }
}

void fc_prelu_backward(const float *dy, const float *x, const float *alpha, float *dx,
                       float *dalpha, int64_t rows, int64_t d)
{
    int64_t cb, ncb = (d + FC_PRELU_COLS - 1) / FC_PRELU_COLS;
    /* threads split over column blocks; each column sums its rows in order */
#pragma omp parallel for schedule(static) if (rows * d >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (cb = 0; cb < ncb; cb++) {
        const int64_t c0 = cb * FC_PRELU_COLS;
        const int64_t c1 = c0 + FC_PRELU_COLS < d ? c0 + FC_PRELU_COLS : d;
        double acc[FC_PRELU_COLS];
        for (int64_t j = c0; j < c1; j++)
            acc[j - c0] = 0.0;
        for (int64_t r = 0; r < rows; r++) {
            const float *g = dy + r * d, *xr = x + r * d;
            float *dr = dx ? dx + r * d : NULL;
            for (int64_t j = c0; j < c1; j++) {
                const float v = xr[j], gj = g[j];
                acc[j - c0] += v < 0.0f ? (double)gj * v : 0.0;
                if (dr)
                    dr[j] = v > 0.0f ? gj : (v < 0.0f ? alpha[j] * gj : 0.0f * gj);
            }
        }
        for (int64_t j = c0; j < c1; j++)
            dalpha[j] = (float)acc[j - c0];
    }
}
