/* Elementwise / row-wise activations: relu, the activation family (an enum of
 * kinds, forward and backward), softmax / log_softmax along any axis, PReLU, dropout. */
#include <math.h>
#include <string.h>
#include "nn.h"
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
 * Two paths: portable C (float64 libm per element, rounded once) and AVX2+FMA
 * (vector exp/expm1/log1p/erfc approximations below, a few float32 ulp). The path
 * is chosen once per call; within a call every element goes through the same code
 * (the AVX2 tail is padded to a full vector), so results never depend on where an
 * element sits nor on the thread count. */

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
#define V8 __m256
#define VSET _mm256_set1_ps

/* exp(x): x = n ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial (truncation
 * < 1e-8 relative), scaled by 2^n as two powers of two so that n may run from
 * -150 (subnormal results) to 128 (overflow to inf). NaN propagates: the clamps
 * return their second operand when it is NaN. */
FC_TARGET_AVX2 static inline V8 v_exp(V8 x)
{
    x = _mm256_min_ps(VSET(89.0f), x);
    x = _mm256_max_ps(VSET(-104.0f), x);
    const V8 n = _mm256_round_ps(_mm256_mul_ps(x, VSET(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V8 r = _mm256_fnmadd_ps(n, VSET(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, VSET(1.428606765330187e-06f), r);
    V8 q = VSET(1.0f / 5040.0f);
    q = _mm256_fmadd_ps(q, r, VSET(1.0f / 720.0f));
    q = _mm256_fmadd_ps(q, r, VSET(1.0f / 120.0f));
    q = _mm256_fmadd_ps(q, r, VSET(1.0f / 24.0f));
    q = _mm256_fmadd_ps(q, r, VSET(1.0f / 6.0f));
    q = _mm256_fmadd_ps(q, r, VSET(0.5f));
    q = _mm256_fmadd_ps(q, r, VSET(1.0f));
    q = _mm256_fmadd_ps(q, r, VSET(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i k1 = _mm256_srai_epi32(ni, 1);
    const __m256i k2 = _mm256_sub_epi32(ni, k1);
    const __m256i bias = _mm256_set1_epi32(127);
    const V8 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    const V8 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(q, s1), s2);
}

/* expm1(x): Taylor to x^9 for |x| < 0.5 (no cancellation near 0), else exp(x) - 1 */
FC_TARGET_AVX2 static inline V8 v_expm1(V8 x)
{
    V8 q = VSET(1.0f / 362880.0f);
    q = _mm256_fmadd_ps(q, x, VSET(1.0f / 40320.0f));
    q = _mm256_fmadd_ps(q, x, VSET(1.0f / 5040.0f));
    q = _mm256_fmadd_ps(q, x, VSET(1.0f / 720.0f));
    q = _mm256_fmadd_ps(q, x, VSET(1.0f / 120.0f));
    q = _mm256_fmadd_ps(q, x, VSET(1.0f / 24.0f));
    q = _mm256_fmadd_ps(q, x, VSET(1.0f / 6.0f));
    q = _mm256_fmadd_ps(q, x, VSET(0.5f));
    const V8 small = _mm256_fmadd_ps(_mm256_mul_ps(q, x), x, x);
    const V8 big = _mm256_sub_ps(v_exp(x), VSET(1.0f));
    const V8 ax = _mm256_andnot_ps(VSET(-0.0f), x);
    return _mm256_blendv_ps(big, small, _mm256_cmp_ps(ax, VSET(0.5f), _CMP_LT_OQ));
}

FC_TARGET_AVX2 static inline V8 v_sigmoid(V8 x)
{
    return _mm256_div_ps(VSET(1.0f), _mm256_add_ps(VSET(1.0f), v_exp(_mm256_sub_ps(
        _mm256_setzero_ps(), x))));
}

/* tanh(|x|) = e / (e + 2) with e = expm1(2|x|): no cancellation anywhere; |x| is
 * capped at 9, where tanh rounds to 1 */
FC_TARGET_AVX2 static inline V8 v_tanh(V8 x)
{
    const V8 sign = _mm256_and_ps(VSET(-0.0f), x);
    const V8 a = _mm256_min_ps(VSET(9.0f), _mm256_andnot_ps(VSET(-0.0f), x));
    const V8 e = v_expm1(_mm256_add_ps(a, a));
    return _mm256_or_ps(sign, _mm256_div_ps(e, _mm256_add_ps(e, VSET(2.0f))));
}

/* log1p(e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, odd series to s^15 */
FC_TARGET_AVX2 static inline V8 v_log1p_unit(V8 e)
{
    const V8 s = _mm256_div_ps(e, _mm256_add_ps(e, VSET(2.0f)));
    const V8 s2 = _mm256_mul_ps(s, s);
    V8 q = VSET(1.0f / 15.0f);
    q = _mm256_fmadd_ps(q, s2, VSET(1.0f / 13.0f));
    q = _mm256_fmadd_ps(q, s2, VSET(1.0f / 11.0f));
    q = _mm256_fmadd_ps(q, s2, VSET(1.0f / 9.0f));
    q = _mm256_fmadd_ps(q, s2, VSET(1.0f / 7.0f));
    q = _mm256_fmadd_ps(q, s2, VSET(1.0f / 5.0f));
    q = _mm256_fmadd_ps(q, s2, VSET(1.0f / 3.0f));
    const V8 t = _mm256_fmadd_ps(_mm256_mul_ps(q, s2), s, s);
    return _mm256_add_ps(t, t);
}

/* The normal CDF Phi(x) = erfc(-x / sqrt 2) / 2 with relative accuracy in both tails.
 * a = |x| / sqrt 2. a < 0.75: erf(a) = a P(a^2). Else erfc(a) = exp(-a^2) Q(1/(1+a)),
 * with a^2 = x^2 / 2 split exactly by FMA so exp(-a^2) keeps float accuracy; P and Q are
 * least-squares fits (relative error about 2e-7 in float32) made for this file. */
FC_TARGET_AVX2 static inline V8 v_phi(V8 x)
{
    const V8 a_raw = _mm256_mul_ps(_mm256_andnot_ps(VSET(-0.0f), x),
                                   VSET(0.70710678118654752f));
    /* erfc(a) < 2^-149 beyond a = 10: the value is 0 there (and x^2 below stays finite) */
    const V8 beyond = _mm256_cmp_ps(a_raw, VSET(10.0f), _CMP_GE_OQ);
    const V8 a = _mm256_min_ps(VSET(10.0f), a_raw);
    const V8 a2 = _mm256_mul_ps(a, a);
    V8 p = VSET(-6.816163077e-04f);
    p = _mm256_fmadd_ps(p, a2, VSET(5.123039708e-03f));
    p = _mm256_fmadd_ps(p, a2, VSET(-2.683855966e-02f));
    p = _mm256_fmadd_ps(p, a2, VSET(1.128344834e-01f));
    p = _mm256_fmadd_ps(p, a2, VSET(-3.761262298e-01f));
    p = _mm256_fmadd_ps(p, a2, VSET(1.128379107e+00f));
    const V8 erf_small = _mm256_mul_ps(p, a);
    const V8 v = _mm256_div_ps(VSET(1.0f), _mm256_add_ps(VSET(1.0f), a));
    V8 q = VSET(-2.679693460e+00f);
    q = _mm256_fmadd_ps(q, v, VSET(9.099535942e+00f));
    q = _mm256_fmadd_ps(q, v, VSET(-1.266072369e+01f));
    q = _mm256_fmadd_ps(q, v, VSET(8.524364471e+00f));
    q = _mm256_fmadd_ps(q, v, VSET(-2.013731480e+00f));
    q = _mm256_fmadd_ps(q, v, VSET(-3.937242329e-01f));
    q = _mm256_fmadd_ps(q, v, VSET(-3.120734692e-01f));
    q = _mm256_fmadd_ps(q, v, VSET(2.832596600e-01f));
    q = _mm256_fmadd_ps(q, v, VSET(5.642465949e-01f));
    q = _mm256_fmadd_ps(q, v, VSET(5.641819835e-01f));
    q = _mm256_fmadd_ps(q, v, VSET(2.241726662e-07f));
    /* x^2 = hi + lo exactly; exp(-(hi + lo)/2) ~= exp(-hi/2) (1 - lo/2) */
    const V8 xc = _mm256_min_ps(VSET(14.5f), _mm256_max_ps(VSET(-14.5f), x));
    const V8 hi = _mm256_mul_ps(xc, xc);
    const V8 lo = _mm256_fmsub_ps(xc, xc, hi);
    const V8 ex = _mm256_mul_ps(v_exp(_mm256_mul_ps(hi, VSET(-0.5f))),
                                _mm256_fnmadd_ps(lo, VSET(0.5f), VSET(1.0f)));
    const V8 erfc_big = _mm256_mul_ps(ex, q);
    const V8 use_small = _mm256_cmp_ps(a, VSET(0.75f), _CMP_LT_OQ);
    const V8 erfc_a = _mm256_andnot_ps(beyond, _mm256_blendv_ps(
        erfc_big, _mm256_sub_ps(VSET(1.0f), erf_small), use_small));
    const V8 half_erfc = _mm256_mul_ps(erfc_a, VSET(0.5f));
    /* x >= 0: 1 - erfc(a)/2 (0.5 + erf(a)/2 when small); x < 0: erfc(a)/2 */
    const V8 pos = _mm256_blendv_ps(_mm256_sub_ps(VSET(1.0f), half_erfc),
                                    _mm256_fmadd_ps(erf_small, VSET(0.5f), VSET(0.5f)), use_small);
    const V8 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(pos, half_erfc, neg);
}

#define VSEL(mask, a, b) _mm256_blendv_ps((b), (a), (mask)) /* mask ? a : b */
#define VCMP(a, b, op) _mm256_cmp_ps((a), (b), op)

FC_TARGET_AVX2 static inline V8 act_fwd_v(int kind, const float *p, V8 x)
{
    const V8 zero = _mm256_setzero_ps();
    switch (kind) {
    case FC_ACT_RELU: /* NaN propagates, -0 becomes +0: as fc_relu_forward */
        return _mm256_and_ps(x, _mm256_or_ps(VCMP(x, zero, _CMP_GT_OQ),
                                             VCMP(x, x, _CMP_UNORD_Q)));
    case FC_ACT_RELU_GENERAL: {
        V8 v = _mm256_and_ps(x, VCMP(x, VSET(p[2]), _CMP_GT_OQ));
        v = _mm256_min_ps(VSET(p[1]), _mm256_max_ps(VSET(relu_general_lo(p)), v));
        const V8 neg = _mm256_max_ps(_mm256_sub_ps(VSET(p[2]), x), zero);
        const V8 y = _mm256_fnmadd_ps(VSET(p[0]), neg, v);
        return VSEL(VCMP(x, x, _CMP_UNORD_Q), x, y);
    }
    case FC_ACT_LEAKY_RELU:
        return VSEL(VCMP(x, zero, _CMP_LT_OQ), _mm256_mul_ps(x, VSET(p[0])), x);
    case FC_ACT_RELU6:
        return _mm256_min_ps(VSET(6.0f), _mm256_max_ps(zero, x));
    case FC_ACT_SIGMOID: return v_sigmoid(x);
    case FC_ACT_TANH: return v_tanh(x);
    case FC_ACT_ELU:
        return VSEL(VCMP(x, zero, _CMP_GT_OQ), x, _mm256_mul_ps(VSET(p[0]), v_expm1(x)));
    case FC_ACT_SELU:
        return _mm256_mul_ps(VSET((float)FC_SELU_SCALE),
                             VSEL(VCMP(x, zero, _CMP_GT_OQ), x,
                                  _mm256_mul_ps(VSET((float)FC_SELU_ALPHA), v_expm1(x))));
    case FC_ACT_GELU: return _mm256_mul_ps(x, v_phi(x));
    case FC_ACT_GELU_TANH: {
        const V8 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
        const V8 u = _mm256_mul_ps(VSET((float)(2.0 * FC_SQRT_2_OVER_PI)),
                                   _mm256_fmadd_ps(VSET((float)FC_GELU_C), x3, x));
        return _mm256_mul_ps(x, v_sigmoid(u));
    }
    case FC_ACT_SILU: return _mm256_mul_ps(x, v_sigmoid(x));
    case FC_ACT_SOFTPLUS: {
        const V8 ax = _mm256_andnot_ps(VSET(-0.0f), x);
        const V8 l = v_log1p_unit(v_exp(_mm256_sub_ps(zero, ax)));
        return _mm256_add_ps(_mm256_max_ps(zero, x), l);
    }
    case FC_ACT_SOFTSIGN:
        return _mm256_div_ps(x, _mm256_add_ps(VSET(1.0f), _mm256_andnot_ps(VSET(-0.0f), x)));
    case FC_ACT_HARD_SIGMOID:
        return _mm256_div_ps(_mm256_min_ps(VSET(6.0f), _mm256_max_ps(zero, _mm256_add_ps(
            x, VSET(3.0f)))), VSET(6.0f));
    case FC_ACT_HARD_SILU:
        return _mm256_mul_ps(x, _mm256_div_ps(_mm256_min_ps(VSET(6.0f), _mm256_max_ps(
            zero, _mm256_add_ps(x, VSET(3.0f)))), VSET(6.0f)));
    case FC_ACT_EXPONENTIAL: return v_exp(x);
    default: return x;
    }
}

FC_TARGET_AVX2 static inline V8 act_bwd_v(int kind, const float *p, int from_output, V8 s,
                                          V8 g)
{
    const V8 zero = _mm256_setzero_ps(), one = VSET(1.0f);
    switch (kind) {
    case FC_ACT_RELU: return _mm256_and_ps(g, VCMP(s, zero, _CMP_GT_OQ));
    case FC_ACT_RELU6:
        return _mm256_and_ps(g, _mm256_and_ps(VCMP(s, zero, _CMP_GT_OQ),
                                              VCMP(s, VSET(6.0f), _CMP_LT_OQ)));
    case FC_ACT_SIGMOID: return _mm256_mul_ps(g, _mm256_mul_ps(s, _mm256_sub_ps(one, s)));
    case FC_ACT_TANH: return _mm256_mul_ps(g, _mm256_fnmadd_ps(s, s, one));
    case FC_ACT_EXPONENTIAL: return _mm256_mul_ps(g, s);
    case FC_ACT_HARD_SIGMOID:
        return _mm256_and_ps(_mm256_div_ps(g, VSET(6.0f)),
                             _mm256_and_ps(VCMP(s, zero, _CMP_GT_OQ), VCMP(s, one, _CMP_LT_OQ)));
    case FC_ACT_SELU:
        return _mm256_mul_ps(g, VSEL(VCMP(s, zero, _CMP_GT_OQ), VSET((float)FC_SELU_SCALE),
                                     _mm256_add_ps(s, VSET((float)(FC_SELU_SCALE *
                                                                   FC_SELU_ALPHA)))));
    case FC_ACT_LEAKY_RELU:
        return VSEL(from_output ? VCMP(s, zero, _CMP_GT_OQ) : VCMP(s, zero, _CMP_GE_OQ), g,
                    _mm256_mul_ps(g, VSET(p[0])));
    case FC_ACT_ELU:
        if (from_output)
            return VSEL(VCMP(s, zero, _CMP_GT_OQ), g,
                        _mm256_mul_ps(g, _mm256_add_ps(s, VSET(p[0]))));
        return VSEL(VCMP(s, zero, _CMP_GT_OQ), g,
                    _mm256_mul_ps(g, _mm256_mul_ps(VSET(p[0]), v_exp(s))));
    case FC_ACT_RELU_GENERAL: {
        if (from_output)
            return _mm256_and_ps(g, _mm256_and_ps(VCMP(s, zero, _CMP_GT_OQ),
                                                  VCMP(s, VSET(p[1]), _CMP_LT_OQ)));
        const V8 lin = _mm256_and_ps(_mm256_and_ps(VCMP(s, VSET(p[2]), _CMP_GT_OQ),
                                                   VCMP(s, VSET(relu_general_lo(p)),
                                                        _CMP_GT_OQ)),
                                     VCMP(s, VSET(p[1]), _CMP_LT_OQ));
        const V8 d = _mm256_add_ps(_mm256_and_ps(one, lin),
                                   _mm256_and_ps(VSET(p[0]), VCMP(s, VSET(p[2]), _CMP_LT_OQ)));
        return _mm256_mul_ps(g, d);
    }
    case FC_ACT_GELU: {
        /* Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) */
        const V8 xc = _mm256_min_ps(VSET(20.0f), _mm256_max_ps(VSET(-20.0f), s));
        const V8 ph = _mm256_mul_ps(v_exp(_mm256_mul_ps(_mm256_mul_ps(xc, xc), VSET(-0.5f))),
                                    VSET(0.3989422804014327f));
        return _mm256_mul_ps(g, _mm256_fmadd_ps(xc, ph, v_phi(s)));
    }
    case FC_ACT_GELU_TANH: {
        const V8 xc = _mm256_min_ps(VSET(1e4f), _mm256_max_ps(VSET(-1e4f), s));
        const V8 x2 = _mm256_mul_ps(xc, xc);
        const V8 u = _mm256_mul_ps(VSET((float)(2.0 * FC_SQRT_2_OVER_PI)),
                                   _mm256_fmadd_ps(VSET((float)FC_GELU_C),
                                                   _mm256_mul_ps(x2, xc), xc));
        const V8 sg = v_sigmoid(u);
        const V8 du = _mm256_mul_ps(VSET((float)(2.0 * FC_SQRT_2_OVER_PI)),
                                    _mm256_fmadd_ps(VSET((float)(3.0 * FC_GELU_C)), x2, one));
        const V8 t = _mm256_mul_ps(_mm256_mul_ps(sg, _mm256_sub_ps(one, sg)), du);
        return _mm256_mul_ps(g, _mm256_fmadd_ps(xc, t, sg));
    }
    case FC_ACT_SILU: {
        const V8 xc = _mm256_min_ps(VSET(200.0f), _mm256_max_ps(VSET(-200.0f), s));
        const V8 sg = v_sigmoid(xc);
        return _mm256_mul_ps(g, _mm256_mul_ps(sg, _mm256_fmadd_ps(xc, _mm256_sub_ps(one, sg),
                                                                  one)));
    }
    case FC_ACT_SOFTPLUS: return _mm256_mul_ps(g, v_sigmoid(s));
    case FC_ACT_SOFTSIGN: {
        const V8 d = _mm256_add_ps(one, _mm256_andnot_ps(VSET(-0.0f), s));
        return _mm256_div_ps(g, _mm256_mul_ps(d, d));
    }
    case FC_ACT_HARD_SILU: {
        const V8 mid = _mm256_mul_ps(g, _mm256_div_ps(_mm256_fmadd_ps(VSET(2.0f), s,
                                                                      VSET(3.0f)), VSET(6.0f)));
        const V8 r = VSEL(VCMP(s, VSET(3.0f), _CMP_GT_OQ), g, mid);
        return VSEL(VCMP(s, VSET(-3.0f), _CMP_LT_OQ), _mm256_mul_ps(zero, g), r);
    }
    default: return g;
    }
}

FC_TARGET_AVX2 static void act_fwd_block_avx2(int kind, const float *p, const float *x,
                                              float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, act_fwd_v(kind, p, _mm256_loadu_ps(x + i)));
    if (i < n) { /* the tail through the same vector code */
        float t[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(t, act_fwd_v(kind, p, _mm256_loadu_ps(t)));
        memcpy(y + i, t, (size_t)(n - i) * sizeof(float));
    }
}

FC_TARGET_AVX2 static void act_bwd_block_avx2(int kind, const float *p, int from_output,
                                              const float *dy, const float *s, float *dx,
                                              int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dx + i, act_bwd_v(kind, p, from_output, _mm256_loadu_ps(s + i),
                                           _mm256_loadu_ps(dy + i)));
    if (i < n) {
        float ts[8] = {0}, tg[8] = {0};
        memcpy(ts, s + i, (size_t)(n - i) * sizeof(float));
        memcpy(tg, dy + i, (size_t)(n - i) * sizeof(float));
        _mm256_storeu_ps(tg, act_bwd_v(kind, p, from_output, _mm256_loadu_ps(ts),
                                       _mm256_loadu_ps(tg)));
        memcpy(dx + i, tg, (size_t)(n - i) * sizeof(float));
    }
}
#endif /* FC_HAVE_AVX2_PATH */

int fc_activation_kind_valid(int kind)
{
    return kind >= 0 && kind < FC_ACT_COUNT;
}

void fc_activation_forward(int kind, const float *params, const float *x, float *y, int64_t n)
{
    float p[3] = {params[0], params[1], params[2]};
    const int simd = fc_simd_level();
    int64_t b, nb = n_blocks(n);
    (void)simd;
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
#ifdef FC_HAVE_AVX2_PATH
        if (simd >= 1) {
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
    int64_t b, nb = n_blocks(n);
    (void)simd;
    (void)from_output;
#pragma omp parallel for schedule(static) if (n >= FC_NN_PARALLEL_MIN) \
    num_threads(fc_get_num_threads())
    for (b = 0; b < nb; b++) {
        int64_t i0 = b * FC_NN_BLOCK, i1 = i0 + FC_NN_BLOCK < n ? i0 + FC_NN_BLOCK : n;
#ifdef FC_HAVE_AVX2_PATH
        if (simd >= 1) {
            act_bwd_block_avx2(kind, p, from_output, dy + i0, src + i0, dx + i0, i1 - i0);
            continue;
        }
#endif
        for (int64_t i = i0; i < i1; i++)
            dx[i] = act_bwd_c(kind, p, src[i], dy[i]);
    }
}

/* ---- softmax / log_softmax along an axis: x viewed (outer, len, inner) ---- */

#ifdef FC_HAVE_AVX2_PATH
/* Contiguous rows on the AVX2 path: vector max, v_exp, sums in double over 8 fixed
 * lanes then added lane by lane; the tail is padded with -inf (exp gives 0). */
FC_TARGET_AVX2 static inline V8 load_tail(const float *x, int64_t n, float pad)
{
    float t[8] = {pad, pad, pad, pad, pad, pad, pad, pad};
    memcpy(t, x, (size_t)n * sizeof(float));
    return _mm256_loadu_ps(t);
}

FC_TARGET_AVX2 static inline void store_tail(float *y, V8 v, int64_t n)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    memcpy(y, t, (size_t)n * sizeof(float));
}

FC_TARGET_AVX2 static inline __m256d add_halves(__m256d acc, V8 v, __m256d *hi_acc)
{
    *hi_acc = _mm256_add_pd(*hi_acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
}

FC_TARGET_AVX2 static inline double hsum_d(__m256d lo, __m256d hi)
{
    double a[4], b[4];
    _mm256_storeu_pd(a, lo);
    _mm256_storeu_pd(b, hi);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((b[0] + b[1]) + (b[2] + b[3]));
}

FC_TARGET_AVX2 static void softmax_row_avx2(const float *x, float *y, int64_t len, int log)
{
    const int64_t nv = len & ~(int64_t)7, rest = len - nv;
    V8 vm = VSET(-INFINITY);
    for (int64_t j = 0; j < nv; j += 8)
        vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + j));
    if (rest)
        vm = _mm256_max_ps(vm, load_tail(x + nv, rest, -INFINITY));
    float mv[8];
    _mm256_storeu_ps(mv, vm);
    float m = mv[0];
    for (int k = 1; k < 8; k++)
        m = mv[k] > m ? mv[k] : m;
    const V8 vmax = VSET(m);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (int64_t j = 0; j < nv; j += 8) {
        const V8 e = v_exp(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmax));
        if (!log)
            _mm256_storeu_ps(y + j, e);
        lo = add_halves(lo, e, &hi);
    }
    if (rest) {
        const V8 e = v_exp(_mm256_sub_ps(load_tail(x + nv, rest, -INFINITY), vmax));
        if (!log)
            store_tail(y + nv, e, rest);
        lo = add_halves(lo, e, &hi);
    }
    const double s = hsum_d(lo, hi);
    if (log) {
        const V8 ls = VSET((float)log_d(s));
        for (int64_t j = 0; j < nv; j += 8)
            _mm256_storeu_ps(y + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmax),
                                                  ls));
        if (rest)
            store_tail(y + nv, _mm256_sub_ps(_mm256_sub_ps(load_tail(x + nv, rest, 0.0f), vmax),
                                             ls), rest);
    } else {
        const V8 inv = VSET((float)(1.0 / s));
        for (int64_t j = 0; j < nv; j += 8)
            _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), inv));
        if (rest)
            store_tail(y + nv, _mm256_mul_ps(load_tail(y + nv, rest, 0.0f), inv), rest);
    }
}

FC_TARGET_AVX2 static void softmax_row_backward_avx2(const float *g, const float *o, float *d,
                                                     int64_t len, int log)
{
    const int64_t nv = len & ~(int64_t)7, rest = len - nv;
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (int64_t j = 0; j < nv; j += 8) {
        const V8 gv = _mm256_loadu_ps(g + j);
        lo = add_halves(lo, log ? gv : _mm256_mul_ps(gv, _mm256_loadu_ps(o + j)), &hi);
    }
    if (rest) {
        const V8 gv = load_tail(g + nv, rest, 0.0f);
        lo = add_halves(lo, log ? gv : _mm256_mul_ps(gv, load_tail(o + nv, rest, 0.0f)), &hi);
    }
    const V8 sv = VSET((float)hsum_d(lo, hi));
    for (int64_t j = 0; j < len; j += 8) {
        const int64_t n = len - j < 8 ? len - j : 8;
        const V8 gv = n == 8 ? _mm256_loadu_ps(g + j) : load_tail(g + j, n, 0.0f);
        const V8 ov = n == 8 ? _mm256_loadu_ps(o + j) : load_tail(o + j, n, 0.0f);
        const V8 r = log ? _mm256_fnmadd_ps(v_exp(ov), sv, gv)
                         : _mm256_mul_ps(ov, _mm256_sub_ps(gv, sv));
        if (n == 8)
            _mm256_storeu_ps(d + j, r);
        else
            store_tail(d + j, r, n);
    }
}
#endif


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
    (void)simd;
    if (len <= 0)
        return;
#pragma omp parallel for schedule(static) if (lines * len >= FC_NN_PARALLEL_MIN / 4) \
    num_threads(fc_get_num_threads())
    for (l = 0; l < lines; l++) {
        const int64_t off = (l / inner) * len * inner + l % inner;
#ifdef FC_HAVE_AVX2_PATH
        if (simd >= 1 && inner == 1) {
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
    (void)simd;
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
