/* The vector code of the activation family, written once over a small set of macros and
 * included by activations.c once per instruction set (AVX2+FMA: 8 lanes, AVX-512F: 16).
 * Both instantiations run the same IEEE operations in the same order on every lane, so
 * they give the same bits; only the width differs.
 *
 * The includer defines: VT (vector), MT (comparison mask), VN (lanes), VTARGET (function
 * attribute), FN(name) (name with an ISA suffix), VSET, VZERO(), VADD, VSUB, VMUL, VDIV,
 * VMIN, VMAX (second operand when either is NaN), VFMA (a*b+c), VFNMA (c-a*b), VFMS
 * (a*b-c), VAND, VANDNOT (~a & b), VOR, VCMP(a, b, predicate) -> MT, VSEL(m, a, b)
 * (m ? a : b), VKEEP(v, m) (m ? v : 0), MAND, MOR, VLOAD, VSTORE, VEXP2BITS(t) (t's bits
 * shifted left by 23), and for the softmax row sums VD (double vector), VDZERO(),
 * FN(dacc)(&lo, &hi, v) (lo, hi += v's lanes in double) and FN(dsum)(lo, hi) (their sum in
 * a fixed order). This file undefines none of them. */

/* 2^n * exp(r) with x = n ln2 + r, |r| <= ln2/2: n is rounded by adding 1.5 * 2^23 + 127,
 * which leaves n + 127 in the low mantissa bits, so 2^n is that integer shifted into the
 * exponent field (no float-int conversions). x is clamped to [-88, 88.9]: n runs from -127
 * (2^n = 0, the result flushes to 0) to 128 (2^n = inf). NaN propagates (the clamps return
 * their second operand when it is NaN). The _raw form leaves the clamping to its caller. */
VTARGET static inline void FN(v_exp_reduce_raw)(VT x, VT *scale, VT *r)
{
    const VT magic = VSET(12582912.0f + 127.0f);
    const VT t = VFMA(x, VSET(1.44269504088896341f), magic);
    const VT n = VSUB(t, magic);
    const VT rr = VFNMA(n, VSET(0.693145751953125f), x);
    *r = VFNMA(n, VSET(1.428606765330187e-06f), rr);
    *scale = VEXP2BITS(t);
}

VTARGET static inline void FN(v_exp_reduce)(VT x, VT *scale, VT *r)
{
    FN(v_exp_reduce_raw)(VMAX(VSET(-88.0f), VMIN(VSET(88.9f), x)), scale, r);
}

/* exp(r) for |r| <= ln2/2: degree-6 minimax polynomial (relative error 1.9e-9 before
 * float32 rounding; fitted for this file by Lawson-weighted least squares) */
VTARGET static inline VT FN(v_exp_poly)(VT r)
{
    VT q = VSET(1.383684226e-03f);
    q = VFMA(q, r, VSET(8.374815807e-03f));
    q = VFMA(q, r, VSET(4.166822508e-02f));
    q = VFMA(q, r, VSET(1.666641980e-01f));
    q = VFMA(q, r, VSET(4.999999106e-01f));
    q = VFMA(q, r, VSET(1.0f));
    return VFMA(q, r, VSET(1.0f));
}

/* exp(x) to float accuracy for results in [2^-126, 2^128); smaller results are 0 and larger
 * ones inf (where the callers saturate anyway). One scaling, unlike v_exp. */
VTARGET static inline VT FN(v_exp_fast)(VT x)
{
    VT s, r;
    FN(v_exp_reduce)(x, &s, &r);
    return VMUL(FN(v_exp_poly)(r), s);
}

/* exp(x) including subnormal results: x in [-104, 89], 2^n applied as two powers of two
 * so that n may run from -150 to 128 */
VTARGET static inline VT FN(v_exp)(VT x)
{
    x = VMAX(VSET(-104.0f), VMIN(VSET(89.0f), x));
    const VT magic = VSET(12582912.0f), bias = VSET(12582912.0f + 127.0f);
    const VT n = VSUB(VFMA(x, VSET(1.44269504088896341f), magic), magic);
    VT r = VFNMA(n, VSET(0.693145751953125f), x);
    r = VFNMA(n, VSET(1.428606765330187e-06f), r);
    const VT q = FN(v_exp_poly)(r);
    /* n = n1 + n2 with n1 = n / 2 rounded: both halves in [-75, 64] */
    const VT n1 = VSUB(VFMA(n, VSET(0.5f), magic), magic);
    const VT s1 = VEXP2BITS(VADD(n1, bias));
    const VT s2 = VEXP2BITS(VADD(VSUB(n, n1), bias));
    return VMUL(VMUL(q, s1), s2);
}

/* exp(x) for x <= 0 (softmax's x - max, log-probabilities), subnormal results included:
 * x in [-104, 0], 2^n applied as 2^(n + 24) (a normal float) times 2^-24, one rounding */
VTARGET static inline VT FN(v_exp_nonpos)(VT x)
{
    x = VMAX(VSET(-104.0f), VMIN(VSET(0.0f), x));
    const VT magic = VSET(12582912.0f);
    const VT t = VFMA(x, VSET(1.44269504088896341f), VSET(12582912.0f + 127.0f + 24.0f));
    const VT n = VSUB(VSUB(t, magic), VSET(127.0f + 24.0f));
    VT r = VFNMA(n, VSET(0.693145751953125f), x);
    r = VFNMA(n, VSET(1.428606765330187e-06f), r);
    return VMUL(VMUL(FN(v_exp_poly)(r), VEXP2BITS(t)), VSET(5.9604644775390625e-08f));
}

/* expm1(x) = 2^n expm1(r) + (2^n - 1): expm1(r) by its Taylor series to r^8 (no
 * cancellation near 0, where n = 0 and the result is expm1(r) itself); 2^n - 1 is exact
 * for n >= -24 and rounds to -1 below, where 2^n expm1(r) is negligible. One FMA joins
 * them. Accurate up to x = 88. */
VTARGET static inline VT FN(v_expm1)(VT x)
{
    VT s, r;
    FN(v_exp_reduce)(x, &s, &r);
    VT q = VSET(1.0f / 40320.0f);
    q = VFMA(q, r, VSET(1.0f / 5040.0f));
    q = VFMA(q, r, VSET(1.0f / 720.0f));
    q = VFMA(q, r, VSET(1.0f / 120.0f));
    q = VFMA(q, r, VSET(1.0f / 24.0f));
    q = VFMA(q, r, VSET(1.0f / 6.0f));
    q = VFMA(q, r, VSET(0.5f));
    const VT em1 = VFMA(VMUL(q, r), r, r);
    return VFMA(s, em1, VSUB(s, VSET(1.0f)));
}

VTARGET static inline VT FN(v_sigmoid)(VT x)
{
    return VDIV(VSET(1.0f), VADD(VSET(1.0f), FN(v_exp_fast)(VSUB(VZERO(), x))));
}

/* sigmoid(x) and 1 - sigmoid(x) = e sigmoid(x), e = exp(-x), without the cancellation of
 * 1 - sigmoid(x) when x is large; e is capped at exp(88) so that it stays finite */
VTARGET static inline VT FN(v_sigmoid_pair)(VT x, VT *one_minus)
{
    const VT e = FN(v_exp_fast)(VMIN(VSET(88.0f), VSUB(VZERO(), x)));
    const VT sg = VDIV(VSET(1.0f), VADD(VSET(1.0f), e));
    *one_minus = VMUL(e, sg);
    return sg;
}

/* tanh(|x|) = e / (e + 2) with e = expm1(2|x|): no cancellation anywhere; |x| is
 * capped at 9, where tanh rounds to 1 */
VTARGET static inline VT FN(v_tanh)(VT x)
{
    const VT sign = VAND(VSET(-0.0f), x);
    const VT a = VMIN(VSET(9.0f), VANDNOT(VSET(-0.0f), x));
    const VT e = FN(v_expm1)(VADD(a, a));
    return VOR(sign, VDIV(e, VADD(e, VSET(2.0f))));
}

/* log1p(e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, odd series to s^15 */
VTARGET static inline VT FN(v_log1p_unit)(VT e)
{
    const VT s = VDIV(e, VADD(e, VSET(2.0f)));
    const VT s2 = VMUL(s, s);
    VT q = VSET(1.0f / 15.0f);
    q = VFMA(q, s2, VSET(1.0f / 13.0f));
    q = VFMA(q, s2, VSET(1.0f / 11.0f));
    q = VFMA(q, s2, VSET(1.0f / 9.0f));
    q = VFMA(q, s2, VSET(1.0f / 7.0f));
    q = VFMA(q, s2, VSET(1.0f / 5.0f));
    q = VFMA(q, s2, VSET(1.0f / 3.0f));
    const VT t = VFMA(VMUL(q, s2), s, s);
    return VADD(t, t);
}

/* The normal CDF Phi(x) and the density phi(x) = exp(-x^2/2) / sqrt(2 pi), sharing one
 * exp. With z = |x| / sqrt 2 and t = 1 / (1 + z/2): erfc(z) = exp(-x^2/2) t Q(t), Q a
 * degree-8 polynomial (coefficients halved, so the product is erfc/2) fitted (relative
 * error, Lawson-weighted least squares) to erfcx(z) / t on z in [0, 10]: relative error
 * under 2e-7 in float32. x^2 = hi + lo is split exactly by FMA and lo/2 is taken off the
 * reduced argument of exp(-hi/2), so the tail keeps float accuracy. Phi = erfc/2 for x < 0
 * and 1 - erfc/2 otherwise. x is clamped to +-13.25, where exp(-x^2/2) flushes to 0 (2^n
 * with n = -127) and Phi is exactly 0 or 1; the clamp keeps n >= -127. */
VTARGET static inline VT FN(v_phi)(VT x, VT *density)
{
    const VT xc = VMIN(VSET(13.25f), VMAX(VSET(-13.25f), x));
    const VT z = VMUL(VANDNOT(VSET(-0.0f), xc), VSET(0.70710678118654752f));
    const VT t = VDIV(VSET(1.0f), VFMA(z, VSET(0.5f), VSET(1.0f)));
    VT q = VSET(-2.953501604e-02f);
    q = VFMA(q, t, VSET(1.422900110e-01f));
    q = VFMA(q, t, VSET(-2.436050028e-01f));
    q = VFMA(q, t, VSET(1.390391290e-01f));
    q = VFMA(q, t, VSET(-1.331646182e-02f));
    q = VFMA(q, t, VSET(1.013448834e-01f));
    q = VFMA(q, t, VSET(1.215515435e-01f));
    q = VFMA(q, t, VSET(1.411876976e-01f));
    q = VFMA(q, t, VSET(1.410432011e-01f));
    const VT hi = VMUL(xc, xc);
    const VT lo = VFMS(xc, xc, hi);
    VT s2n, r;
    FN(v_exp_reduce_raw)(VMUL(hi, VSET(-0.5f)), &s2n, &r);
    const VT ex = VMUL(FN(v_exp_poly)(VFNMA(lo, VSET(0.5f), r)), s2n);
    *density = VMUL(ex, VSET(0.3989422804014327f));
    const VT half_erfc = VMUL(VMUL(ex, t), q);
    return VSEL(VCMP(x, VZERO(), _CMP_LT_OQ), half_erfc, VSUB(VSET(1.0f), half_erfc));
}

VTARGET static inline VT FN(act_fwd_v)(int kind, const float *p, VT x)
{
    const VT zero = VZERO();
    switch (kind) {
    case FC_ACT_RELU: /* NaN propagates, -0 becomes +0: as fc_relu_forward */
        return VKEEP(x, MOR(VCMP(x, zero, _CMP_GT_OQ), VCMP(x, x, _CMP_UNORD_Q)));
    case FC_ACT_RELU_GENERAL: {
        VT v = VKEEP(x, VCMP(x, VSET(p[2]), _CMP_GT_OQ));
        v = VMIN(VSET(p[1]), VMAX(VSET(relu_general_lo(p)), v));
        const VT neg = VMAX(VSUB(VSET(p[2]), x), zero);
        const VT y = VFNMA(VSET(p[0]), neg, v);
        return VSEL(VCMP(x, x, _CMP_UNORD_Q), x, y);
    }
    case FC_ACT_LEAKY_RELU:
        return VSEL(VCMP(x, zero, _CMP_LT_OQ), VMUL(x, VSET(p[0])), x);
    case FC_ACT_RELU6:
        return VMIN(VSET(6.0f), VMAX(zero, x));
    case FC_ACT_SIGMOID: return FN(v_sigmoid)(x);
    case FC_ACT_TANH: return FN(v_tanh)(x);
    case FC_ACT_ELU:
        return VSEL(VCMP(x, zero, _CMP_GT_OQ), x, VMUL(VSET(p[0]), FN(v_expm1)(x)));
    case FC_ACT_SELU:
        return VMUL(VSET((float)FC_SELU_SCALE),
                    VSEL(VCMP(x, zero, _CMP_GT_OQ), x,
                         VMUL(VSET((float)FC_SELU_ALPHA), FN(v_expm1)(x))));
    case FC_ACT_GELU: {
        VT density;
        return VMUL(x, FN(v_phi)(x, &density));
    }
    case FC_ACT_GELU_TANH: {
        const VT x3 = VMUL(VMUL(x, x), x);
        const VT u = VMUL(VSET((float)(2.0 * FC_SQRT_2_OVER_PI)),
                          VFMA(VSET((float)FC_GELU_C), x3, x));
        return VMUL(x, FN(v_sigmoid)(u));
    }
    case FC_ACT_SILU: return VMUL(x, FN(v_sigmoid)(x));
    case FC_ACT_SOFTPLUS: {
        const VT ax = VANDNOT(VSET(-0.0f), x);
        const VT l = FN(v_log1p_unit)(FN(v_exp_fast)(VSUB(zero, ax)));
        return VADD(VMAX(zero, x), l);
    }
    case FC_ACT_SOFTSIGN:
        return VDIV(x, VADD(VSET(1.0f), VANDNOT(VSET(-0.0f), x)));
    case FC_ACT_HARD_SIGMOID:
        return VDIV(VMIN(VSET(6.0f), VMAX(zero, VADD(x, VSET(3.0f)))), VSET(6.0f));
    case FC_ACT_HARD_SILU:
        return VMUL(x, VDIV(VMIN(VSET(6.0f), VMAX(zero, VADD(x, VSET(3.0f)))), VSET(6.0f)));
    case FC_ACT_EXPONENTIAL: return FN(v_exp)(x);
    default: return x;
    }
}

VTARGET static inline VT FN(act_bwd_v)(int kind, const float *p, int from_output, VT s, VT g)
{
    const VT zero = VZERO(), one = VSET(1.0f);
    switch (kind) {
    case FC_ACT_RELU: return VKEEP(g, VCMP(s, zero, _CMP_GT_OQ));
    case FC_ACT_RELU6:
        return VKEEP(g, MAND(VCMP(s, zero, _CMP_GT_OQ), VCMP(s, VSET(6.0f), _CMP_LT_OQ)));
    case FC_ACT_SIGMOID: return VMUL(g, VMUL(s, VSUB(one, s)));
    case FC_ACT_TANH: return VMUL(g, VFNMA(s, s, one));
    case FC_ACT_EXPONENTIAL: return VMUL(g, s);
    case FC_ACT_HARD_SIGMOID:
        return VKEEP(VDIV(g, VSET(6.0f)),
                     MAND(VCMP(s, zero, _CMP_GT_OQ), VCMP(s, one, _CMP_LT_OQ)));
    case FC_ACT_SELU:
        return VMUL(g, VSEL(VCMP(s, zero, _CMP_GT_OQ), VSET((float)FC_SELU_SCALE),
                            VADD(s, VSET((float)(FC_SELU_SCALE * FC_SELU_ALPHA)))));
    case FC_ACT_LEAKY_RELU:
        return VSEL(from_output ? VCMP(s, zero, _CMP_GT_OQ) : VCMP(s, zero, _CMP_GE_OQ), g,
                    VMUL(g, VSET(p[0])));
    case FC_ACT_ELU:
        if (from_output)
            return VSEL(VCMP(s, zero, _CMP_GT_OQ), g, VMUL(g, VADD(s, VSET(p[0]))));
        return VSEL(VCMP(s, zero, _CMP_GT_OQ), g,
                    VMUL(g, VMUL(VSET(p[0]), FN(v_exp_fast)(s))));
    case FC_ACT_RELU_GENERAL: {
        if (from_output)
            return VKEEP(g, MAND(VCMP(s, zero, _CMP_GT_OQ), VCMP(s, VSET(p[1]), _CMP_LT_OQ)));
        const MT lin = MAND(MAND(VCMP(s, VSET(p[2]), _CMP_GT_OQ),
                                 VCMP(s, VSET(relu_general_lo(p)), _CMP_GT_OQ)),
                            VCMP(s, VSET(p[1]), _CMP_LT_OQ));
        const VT d = VADD(VKEEP(one, lin), VKEEP(VSET(p[0]), VCMP(s, VSET(p[2]), _CMP_LT_OQ)));
        return VMUL(g, d);
    }
    case FC_ACT_GELU: {
        /* Phi(x) + x phi(x); x phi(x) is 0 beyond |x| = 13.25 (phi flushes there) */
        VT density;
        const VT cdf = FN(v_phi)(s, &density);
        const VT xc = VMIN(VSET(13.25f), VMAX(VSET(-13.25f), s));
        return VMUL(g, VFMA(xc, density, cdf));
    }
    case FC_ACT_GELU_TANH: {
        const VT xc = VMIN(VSET(1e4f), VMAX(VSET(-1e4f), s));
        const VT x2 = VMUL(xc, xc);
        const VT u = VMUL(VSET((float)(2.0 * FC_SQRT_2_OVER_PI)),
                          VFMA(VSET((float)FC_GELU_C), VMUL(x2, xc), xc));
        VT om;
        const VT sg = FN(v_sigmoid_pair)(u, &om);
        const VT du = VMUL(VSET((float)(2.0 * FC_SQRT_2_OVER_PI)),
                           VFMA(VSET((float)(3.0 * FC_GELU_C)), x2, one));
        const VT t = VMUL(VMUL(sg, om), du);
        return VMUL(g, VFMA(xc, t, sg));
    }
    case FC_ACT_SILU: {
        const VT xc = VMIN(VSET(200.0f), VMAX(VSET(-200.0f), s));
        VT om;
        const VT sg = FN(v_sigmoid_pair)(xc, &om);
        return VMUL(g, VMUL(sg, VFMA(xc, om, one)));
    }
    case FC_ACT_SOFTPLUS: return VMUL(g, FN(v_sigmoid)(s));
    case FC_ACT_SOFTSIGN: {
        const VT d = VADD(one, VANDNOT(VSET(-0.0f), s));
        return VDIV(g, VMUL(d, d));
    }
    case FC_ACT_HARD_SILU: {
        const VT mid = VMUL(g, VDIV(VFMA(VSET(2.0f), s, VSET(3.0f)), VSET(6.0f)));
        const VT r = VSEL(VCMP(s, VSET(3.0f), _CMP_GT_OQ), g, mid);
        return VSEL(VCMP(s, VSET(-3.0f), _CMP_LT_OQ), VMUL(zero, g), r);
    }
    default: return g;
    }
}

/* A block of n elements; the tail goes through the same vector code, padded */
VTARGET static void FN(act_fwd_block)(int kind, const float *p, const float *x, float *y,
                                      int64_t n)
{
    int64_t i = 0;
    for (; i + VN <= n; i += VN)
        VSTORE(y + i, FN(act_fwd_v)(kind, p, VLOAD(x + i)));
    if (i < n) {
        float t[VN] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        VSTORE(t, FN(act_fwd_v)(kind, p, VLOAD(t)));
        memcpy(y + i, t, (size_t)(n - i) * sizeof(float));
    }
}

VTARGET static void FN(act_bwd_block)(int kind, const float *p, int from_output,
                                      const float *dy, const float *s, float *dx, int64_t n)
{
    int64_t i = 0;
    for (; i + VN <= n; i += VN)
        VSTORE(dx + i, FN(act_bwd_v)(kind, p, from_output, VLOAD(s + i), VLOAD(dy + i)));
    if (i < n) {
        float ts[VN] = {0}, tg[VN] = {0};
        memcpy(ts, s + i, (size_t)(n - i) * sizeof(float));
        memcpy(tg, dy + i, (size_t)(n - i) * sizeof(float));
        VSTORE(tg, FN(act_bwd_v)(kind, p, from_output, VLOAD(ts), VLOAD(tg)));
        memcpy(dx + i, tg, (size_t)(n - i) * sizeof(float));
    }
}

/* ---- softmax / log_softmax of contiguous rows: vector max, exp, sums in double over
 * fixed lanes added in a fixed tree; the tail is padded with -inf (exp gives 0). The lane
 * grouping follows the width, so the two instantiations may differ in the last bit here
 * (each is the same at any thread count). */

VTARGET static inline VT FN(load_pad)(const float *x, int64_t n, float pad)
{
    float t[VN];
    for (int k = 0; k < VN; k++)
        t[k] = pad;
    memcpy(t, x, (size_t)n * sizeof(float));
    return VLOAD(t);
}

VTARGET static inline void FN(store_part)(float *y, VT v, int64_t n)
{
    float t[VN];
    VSTORE(t, v);
    memcpy(y, t, (size_t)n * sizeof(float));
}

VTARGET static void FN(softmax_row)(const float *x, float *y, int64_t len, int log)
{
    const int64_t nv = len - len % VN, rest = len - nv;
    VT vm = VSET(-INFINITY);
    for (int64_t j = 0; j < nv; j += VN)
        vm = VMAX(vm, VLOAD(x + j));
    if (rest)
        vm = VMAX(vm, FN(load_pad)(x + nv, rest, -INFINITY));
    float mv[VN];
    VSTORE(mv, vm);
    float m = mv[0];
    for (int k = 1; k < VN; k++)
        m = mv[k] > m ? mv[k] : m;
    const VT vmax = VSET(m);
    VD lo = VDZERO(), hi = VDZERO();
    for (int64_t j = 0; j < nv; j += VN) {
        const VT e = FN(v_exp_nonpos)(VSUB(VLOAD(x + j), vmax));
        if (!log)
            VSTORE(y + j, e);
        FN(dacc)(&lo, &hi, e);
    }
    if (rest) {
        const VT e = FN(v_exp_nonpos)(VSUB(FN(load_pad)(x + nv, rest, -INFINITY), vmax));
        if (!log)
            FN(store_part)(y + nv, e, rest);
        FN(dacc)(&lo, &hi, e);
    }
    const double s = FN(dsum)(lo, hi);
    if (log) {
        const VT ls = VSET((float)log_d(s));
        for (int64_t j = 0; j < nv; j += VN)
            VSTORE(y + j, VSUB(VSUB(VLOAD(x + j), vmax), ls));
        if (rest)
            FN(store_part)(y + nv, VSUB(VSUB(FN(load_pad)(x + nv, rest, 0.0f), vmax), ls),
                           rest);
    } else {
        const VT inv = VSET((float)(1.0 / s));
        for (int64_t j = 0; j < nv; j += VN)
            VSTORE(y + j, VMUL(VLOAD(y + j), inv));
        if (rest)
            FN(store_part)(y + nv, VMUL(FN(load_pad)(y + nv, rest, 0.0f), inv), rest);
    }
}

VTARGET static void FN(softmax_row_backward)(const float *g, const float *o, float *d,
                                             int64_t len, int log)
{
    const int64_t nv = len - len % VN, rest = len - nv;
    VD lo = VDZERO(), hi = VDZERO();
    for (int64_t j = 0; j < nv; j += VN) {
        const VT gv = VLOAD(g + j);
        FN(dacc)(&lo, &hi, log ? gv : VMUL(gv, VLOAD(o + j)));
    }
    if (rest) {
        const VT gv = FN(load_pad)(g + nv, rest, 0.0f);
        FN(dacc)(&lo, &hi, log ? gv : VMUL(gv, FN(load_pad)(o + nv, rest, 0.0f)));
    }
    const VT sv = VSET((float)FN(dsum)(lo, hi));
    for (int64_t j = 0; j < len; j += VN) {
        const int64_t n = len - j < VN ? len - j : VN;
        const VT gv = n == VN ? VLOAD(g + j) : FN(load_pad)(g + j, n, 0.0f);
        const VT ov = n == VN ? VLOAD(o + j) : FN(load_pad)(o + j, n, 0.0f);
        const VT r = log ? VFNMA(FN(v_exp_nonpos)(ov), sv, gv) : VMUL(ov, VSUB(gv, sv));
        if (n == VN)
            VSTORE(d + j, r);
        else
            FN(store_part)(d + j, r, n);
    }
}

/* the parameters end with each instantiation, so the next one can define them again */
#undef VT
#undef MT
#undef VN
#undef VTARGET
#undef FN
#undef VSET
#undef VZERO
#undef VADD
#undef VSUB
#undef VMUL
#undef VDIV
#undef VMIN
#undef VMAX
#undef VFMA
#undef VFNMA
#undef VFMS
#undef VAND
#undef VANDNOT
#undef VOR
#undef VCMP
#undef VSEL
#undef VKEEP
#undef MAND
#undef MOR
#undef VLOAD
#undef VSTORE
#undef VEXP2BITS
#undef VD
#undef VDZERO
