/* In-place optimizer updates: SGD, Adam/AdamW (amsgrad), RMSprop (momentum, centered),
 * Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl, with Keras 3's gradient preparation
 * (loss-scale, accumulation, clipping), decoupled weight decay and EMA (see optim.h).
 *
 * All updates are element-wise, so a list of tensors is cut into fixed OPTIM_CHUNK-element
 * pieces that the threads share (one parallel region per pass). A step is at most two passes:
 * the gradient norms (only for clipnorm / global_clipnorm: partial sums per chunk, added in
 * chunk order, hence independent of the thread count) and the update. Without gradient
 * preparation the update rule reads the gradient directly; with it, OPTIM_BLOCK elements at a
 * time are prepared into a stack buffer (stays in L1) that the rule then reads, so each stage
 * is a simple loop and the caller's gradients are never written.
 *
 * The loops are compiled twice, portable and with AVX2 enabled; both use the same IEEE
 * operations in the same order (no FMA contraction), hence bitwise equal. Weight decay is
 * folded into the rules' loops (DECAY is a compile-time constant in each instance).
 */
#include <math.h>
#include "optim.h"

#if defined(__GNUC__) || defined(__clang__)
#define OPTIM_INLINE static inline __attribute__((always_inline))
#else
#define OPTIM_INLINE static inline
#endif

#define OPTIM_CHUNK 16384        /* elements per work item (64 KiB per array) */
#define OPTIM_PARALLEL_MIN 32768 /* fewer elements in total: one thread */
#define OPTIM_BLOCK 1024         /* elements of prepared gradient at a time (4 KiB) */

#define OFF(p, o) ((p) != NULL ? (p) + (o) : NULL)

/* The arrays of one piece of one tensor. */
typedef struct {
    float *w;
    const float *g;
    float *s0, *s1, *s2, *acc, *avg;
} optim_ptrs;

/* Keras: variable.assign(variable - variable * wd * lr), i.e. w - ((w * wd) * lr). */
OPTIM_INLINE float decayed(const int DECAY, const float w, const float wd, const float lr)
{
    return DECAY ? w - (w * wd) * lr : w;
}

/* jnp.maximum: NaN in b propagates. */
OPTIM_INLINE float fmax_nan(const float a, const float b)
{
    return a >= b ? a : b;
}

/* ---------------------------------------------------------------------- the rules */

OPTIM_INLINE void sgd_body(const fc_optim_spec *p, const int DECAY, const float wd,
                           float *FC_RESTRICT w, const float *FC_RESTRICT g,
                           float *FC_RESTRICT vel, int64_t n)
{
    const float lr = p->h[0], mom = p->h[1], dlr = p->lr;
    if (p->variant == 0) {
        for (int64_t i = 0; i < n; i++) {
            const float wi = decayed(DECAY, w[i], wd, dlr);
            w[i] = wi - g[i] * lr;
        }
    } else if (p->variant == 2) {
        for (int64_t i = 0; i < n; i++) {
            const float wi = decayed(DECAY, w[i], wd, dlr);
            const float step = g[i] * lr;
            const float vi = vel[i] * mom - step;
            vel[i] = vi;
            w[i] = wi + (vi * mom - step);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const float wi = decayed(DECAY, w[i], wd, dlr);
            const float vi = vel[i] * mom - g[i] * lr;
            vel[i] = vi;
            w[i] = wi + vi;
        }
    }
}

OPTIM_INLINE void adam_body(const fc_optim_spec *p, const int DECAY, const float wd,
                            float *FC_RESTRICT w, const float *FC_RESTRICT g,
                            float *FC_RESTRICT m, float *FC_RESTRICT v,
                            float *FC_RESTRICT vhat, int64_t n)
{
    const float alpha = p->h[0], omb1 = p->h[1], omb2 = p->h[2], eps = p->h[3], lr = p->lr;
    if (p->variant == 0) {
        for (int64_t i = 0; i < n; i++) {
            const float gi = g[i];
            const float wi = decayed(DECAY, w[i], wd, lr);
            const float mi = m[i] + (gi - m[i]) * omb1;
            const float vi = v[i] + (gi * gi - v[i]) * omb2;
            m[i] = mi;
            v[i] = vi;
            w[i] = wi - (mi * alpha) / (sqrtf(vi) + eps);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const float gi = g[i];
            const float wi = decayed(DECAY, w[i], wd, lr);
            const float mi = m[i] + (gi - m[i]) * omb1;
            const float vi = v[i] + (gi * gi - v[i]) * omb2;
            const float hi = fmax_nan(vhat[i], vi);
            m[i] = mi;
            v[i] = vi;
            vhat[i] = hi;
            w[i] = wi - (mi * alpha) / (sqrtf(hi) + eps);
        }
    }
}

OPTIM_INLINE void rmsprop_body(const fc_optim_spec *p, const int DECAY, const float wd,
                               float *FC_RESTRICT w, const float *FC_RESTRICT g,
                               float *FC_RESTRICT vel, float *FC_RESTRICT mo,
                               float *FC_RESTRICT ag, int64_t n)
{
    const float lr = p->h[0], rho = p->h[1], omrho = p->h[2], eps = p->h[3], mom = p->h[4];
    const float dlr = p->lr;
    switch (p->variant) {
    case 0:
        for (int64_t i = 0; i < n; i++) {
            const float gi = g[i];
            const float wi = decayed(DECAY, w[i], wd, dlr);
            const float vi = rho * vel[i] + omrho * (gi * gi);
            vel[i] = vi;
            w[i] = wi - (lr * gi) / sqrtf(vi + eps);
        }
        break;
    case 1: /* centered */
        for (int64_t i = 0; i < n; i++) {
            const float gi = g[i];
            const float wi = decayed(DECAY, w[i], wd, dlr);
            const float vi = rho * vel[i] + omrho * (gi * gi);
            const float ai = rho * ag[i] + omrho * gi;
            vel[i] = vi;
            ag[i] = ai;
            w[i] = wi - (lr * gi) / sqrtf((vi - ai * ai) + eps);
        }
        break;
    case 2: /* momentum */
        for (int64_t i = 0; i < n; i++) {
            const float gi = g[i];
            const float wi = decayed(DECAY, w[i], wd, dlr);
            const float vi = rho * vel[i] + omrho * (gi * gi);
            const float mi = mom * mo[i] + (lr * gi) / sqrtf(vi + eps);
            vel[i] = vi;
            mo[i] = mi;
            w[i] = wi - mi;
        }
        break;
    default: /* centered, momentum */
        for (int64_t i = 0; i < n; i++) {
            const float gi = g[i];
            const float wi = decayed(DECAY, w[i], wd, dlr);
            const float vi = rho * vel[i] + omrho * (gi * gi);
            const float ai = rho * ag[i] + omrho * gi;
            const float mi = mom * mo[i] + (lr * gi) / sqrtf((vi - ai * ai) + eps);
            vel[i] = vi;
            ag[i] = ai;
            mo[i] = mi;
            w[i] = wi - mi;
        }
        break;
    }
}

OPTIM_INLINE void adagrad_body(const fc_optim_spec *p, const int DECAY, const float wd,
                               float *FC_RESTRICT w, const float *FC_RESTRICT g,
                               float *FC_RESTRICT acc, int64_t n)
{
    const float lr = p->h[0], eps = p->h[1], dlr = p->lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, dlr);
        const float ai = acc[i] + gi * gi;
        acc[i] = ai;
        w[i] = wi - (lr * gi) / sqrtf(ai + eps);
    }
}

OPTIM_INLINE void adadelta_body(const fc_optim_spec *p, const int DECAY, const float wd,
                                float *FC_RESTRICT w, const float *FC_RESTRICT g,
                                float *FC_RESTRICT ag, float *FC_RESTRICT ad, int64_t n)
{
    const float lr = p->h[0], rho = p->h[1], omrho = p->h[2], eps = p->h[3], dlr = p->lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, dlr);
        const float gsq = rho * ag[i] + omrho * (gi * gi);
        const float d = -((sqrtf(ad[i] + eps) * gi) / sqrtf(gsq + eps));
        ag[i] = gsq;
        ad[i] = rho * ad[i] + omrho * (d * d);
        w[i] = wi + lr * d;
    }
}

OPTIM_INLINE void adamax_body(const fc_optim_spec *p, const int DECAY, const float wd,
                              float *FC_RESTRICT w, const float *FC_RESTRICT g,
                              float *FC_RESTRICT m, float *FC_RESTRICT u, int64_t n)
{
    const float lr = p->h[0], omb1 = p->h[1], b2 = p->h[2], eps = p->h[3], omb1t = p->h[4];
    const float dlr = p->lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, dlr);
        const float mi = m[i] + (gi - m[i]) * omb1;
        const float ui = fmax_nan(b2 * u[i], fabsf(gi));
        m[i] = mi;
        u[i] = ui;
        w[i] = wi - (lr * mi) / (omb1t * (ui + eps));
    }
}

OPTIM_INLINE void nadam_body(const fc_optim_spec *p, const int DECAY, const float wd,
                             float *FC_RESTRICT w, const float *FC_RESTRICT g,
                             float *FC_RESTRICT m, float *FC_RESTRICT v, int64_t n)
{
    const float lr = p->h[0], omb1 = p->h[1], omb2 = p->h[2], eps = p->h[3];
    const float u1 = p->h[4], d1 = p->h[5], c2 = p->h[6], d2 = p->h[7], d3 = p->h[8];
    const float dlr = p->lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, dlr);
        const float mi = m[i] + (gi - m[i]) * omb1;
        const float vi = v[i] + (gi * gi - v[i]) * omb2;
        const float mhat = (u1 * mi) / d1 + (c2 * gi) / d2;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - (mhat * lr) / (sqrtf(vi / d3) + eps);
    }
}

OPTIM_INLINE void lion_body(const fc_optim_spec *p, const int DECAY, const float wd,
                            float *FC_RESTRICT w, const float *FC_RESTRICT g,
                            float *FC_RESTRICT m, int64_t n)
{
    const float lr = p->h[0], b1 = p->h[1], omb1 = p->h[2], b2 = p->h[3], omb2 = p->h[4];
    const float dlr = p->lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, dlr);
        const float c = m[i] * b1 + gi * omb1;
        /* jnp.sign: +-1, and 0 / NaN unchanged */
        const float s = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : c);
        w[i] = wi - lr * s;
        m[i] = m[i] * b2 + gi * omb2;
    }
}

OPTIM_INLINE void ftrl_body(const fc_optim_spec *p, const int DECAY, const float wd,
                            float *FC_RESTRICT w, const float *FC_RESTRICT g,
                            float *FC_RESTRICT accum, float *FC_RESTRICT linear, int64_t n)
{
    const float lr = p->h[0], pw = p->h[1], shrink2 = p->h[2], l2x2 = p->h[3], l1 = p->h[4];
    const float dlr = p->lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, dlr);
        const float a = accum[i];
        const float na = a + gi * gi;
        const float pn = powf(na, pw);
        const float li = linear[i] + ((gi + shrink2 * wi) - ((pn - powf(a, pw)) / lr) * wi);
        const float q = pn / lr + l2x2;
        float lc = li < -l1 ? -l1 : li;
        lc = lc > l1 ? l1 : lc;
        linear[i] = li;
        accum[i] = na;
        w[i] = (lc - li) / q;
    }
}

/* The rule of p->kind on one piece, with or without the decay. */
OPTIM_INLINE void run_rule(const fc_optim_spec *p, const float wd, float *w, const float *g,
                           float *s0, float *s1, float *s2, int64_t n)
{
#define OPTIM_RULE(CALL_DECAY, CALL_PLAIN) \
    if (wd != 0.0f)                        \
        CALL_DECAY;                        \
    else                                   \
        CALL_PLAIN;                        \
    break
    switch (p->kind) {
    case FC_OPTIM_SGD:
        OPTIM_RULE(sgd_body(p, 1, wd, w, g, s0, n), sgd_body(p, 0, wd, w, g, s0, n));
    case FC_OPTIM_ADAM:
        OPTIM_RULE(adam_body(p, 1, wd, w, g, s0, s1, s2, n),
                   adam_body(p, 0, wd, w, g, s0, s1, s2, n));
    case FC_OPTIM_RMSPROP:
        OPTIM_RULE(rmsprop_body(p, 1, wd, w, g, s0, s1, s2, n),
                   rmsprop_body(p, 0, wd, w, g, s0, s1, s2, n));
    case FC_OPTIM_ADAGRAD:
        OPTIM_RULE(adagrad_body(p, 1, wd, w, g, s0, n), adagrad_body(p, 0, wd, w, g, s0, n));
    case FC_OPTIM_ADADELTA:
        OPTIM_RULE(adadelta_body(p, 1, wd, w, g, s0, s1, n),
                   adadelta_body(p, 0, wd, w, g, s0, s1, n));
    case FC_OPTIM_ADAMAX:
        OPTIM_RULE(adamax_body(p, 1, wd, w, g, s0, s1, n),
                   adamax_body(p, 0, wd, w, g, s0, s1, n));
    case FC_OPTIM_NADAM:
        OPTIM_RULE(nadam_body(p, 1, wd, w, g, s0, s1, n), nadam_body(p, 0, wd, w, g, s0, s1, n));
    case FC_OPTIM_LION:
        OPTIM_RULE(lion_body(p, 1, wd, w, g, s0, n), lion_body(p, 0, wd, w, g, s0, n));
    case FC_OPTIM_FTRL:
        OPTIM_RULE(ftrl_body(p, 1, wd, w, g, s0, s1, n), ftrl_body(p, 0, wd, w, g, s0, s1, n));
    default:
        break;
    }
#undef OPTIM_RULE
}

/* ------------------------------------------------------------ gradient preparation */

/* Steps 1-2 of optim.h (loss scale, accumulated average) into buf; zero_acc: reset acc. */
OPTIM_INLINE const float *prep_scale_accum(const fc_optim_spec *p, const float *g, float *acc,
                                           float *FC_RESTRICT buf, int64_t n, int zero_acc)
{
    const float *src = g;
    if (p->loss_scale != 0.0f) {
        const float ls = p->loss_scale;
        for (int64_t i = 0; i < n; i++)
            buf[i] = src[i] / ls;
        src = buf;
    }
    if (p->accum_steps) {
        const float steps = (float)p->accum_steps;
        for (int64_t i = 0; i < n; i++)
            buf[i] = (src[i] + acc[i]) / steps;
        if (zero_acc)
            for (int64_t i = 0; i < n; i++)
                acc[i] = 0.0f;
        src = buf;
    }
    return src;
}

/* Step 3 (clipping) from src into buf; tclip: the tensor's scale (clipnorm, global_clipnorm;
 * 1 for a tensor that is not clipped). */
OPTIM_INLINE void prep_clip(const fc_optim_spec *p, float tclip, const float *src,
                            float *buf, int64_t n)
{
    const float c = p->clip_value;
    if (tclip == 1.0f && p->clip != FC_CLIP_VALUE) {
        if (src != buf)
            for (int64_t i = 0; i < n; i++)
                buf[i] = src[i];
        return;
    }
    switch (p->clip) {
    case FC_CLIP_NORM:
    case FC_CLIP_GLOBAL:
        for (int64_t i = 0; i < n; i++)
            buf[i] = src[i] * tclip;
        break;
    case FC_CLIP_VALUE:
        for (int64_t i = 0; i < n; i++) {
            float x = src[i];
            x = x < -c ? -c : x; /* jnp.clip: NaN stays NaN */
            buf[i] = x > c ? c : x;
        }
        break;
    default:
        if (src != buf)
            for (int64_t i = 0; i < n; i++)
                buf[i] = src[i];
        break;
    }
}

#define SUMSQ_LANES 64 /* independent float32 accumulators: vector width x latency */

/* Sum of squares of the prepared (steps 1-2) gradient of one piece (at most OPTIM_CHUNK
 * elements): float32 lanes filled in a fixed pattern (Keras sums in float32 too; a lane adds
 * at most OPTIM_CHUNK / SUMSQ_LANES squares), then added in double in a fixed order. */
OPTIM_INLINE double sumsq_impl(const fc_optim_spec *p, const float *g, float *acc, int64_t n)
{
    float lane[SUMSQ_LANES];
    double total = 0.0;
    float buf[OPTIM_BLOCK];
    for (int k = 0; k < SUMSQ_LANES; k++)
        lane[k] = 0.0f;
    for (int64_t o = 0; o < n; o += OPTIM_BLOCK) {
        const int64_t nb = n - o < OPTIM_BLOCK ? n - o : OPTIM_BLOCK;
        const float *src = prep_scale_accum(p, g + o, OFF(acc, o), buf, nb, 0);
        int64_t i = 0;
        for (; i + SUMSQ_LANES <= nb; i += SUMSQ_LANES)
            for (int k = 0; k < SUMSQ_LANES; k++)
                lane[k] += src[i + k] * src[i + k];
        for (; i < nb; i++)
            total += (double)src[i] * (double)src[i];
    }
    for (int k = 0; k < SUMSQ_LANES; k++)
        total += (double)lane[k];
    return total;
}

/* One piece of one tensor: steps 1-6 of optim.h. */
OPTIM_INLINE void segment_impl(const fc_optim_spec *p, float wd, float tclip,
                               const optim_ptrs *q, int64_t n)
{
    /* tclip == 1: clipnorm / global_clipnorm leave this tensor's gradient as it is */
    const int prep = p->loss_scale != 0.0f || p->accum_steps || p->clip == FC_CLIP_VALUE ||
                     (p->clip != FC_CLIP_NONE && tclip != 1.0f);
    if (p->accum_steps && !p->update) {
        /* accumulation step: acc = g + acc (g unscaled first), the weights stay */
        float buf[OPTIM_BLOCK];
        for (int64_t o = 0; o < n; o += OPTIM_BLOCK) {
            const int64_t nb = n - o < OPTIM_BLOCK ? n - o : OPTIM_BLOCK;
            const float *src = q->g + o;
            float *acc = q->acc + o;
            if (p->loss_scale != 0.0f) {
                const float ls = p->loss_scale;
                for (int64_t i = 0; i < nb; i++)
                    buf[i] = src[i] / ls;
                src = buf;
            }
            for (int64_t i = 0; i < nb; i++)
                acc[i] = src[i] + acc[i];
        }
    } else if (!prep) {
        run_rule(p, wd, q->w, q->g, q->s0, q->s1, q->s2, n);
    } else {
        float buf[OPTIM_BLOCK];
        for (int64_t o = 0; o < n; o += OPTIM_BLOCK) {
            const int64_t nb = n - o < OPTIM_BLOCK ? n - o : OPTIM_BLOCK;
            const float *src = prep_scale_accum(p, q->g + o, OFF(q->acc, o), buf, nb, 1);
            prep_clip(p, tclip, src, buf, nb);
            run_rule(p, wd, q->w + o, buf, OFF(q->s0, o), OFF(q->s1, o), OFF(q->s2, o), nb);
        }
    }
    if (p->ema) {
        const float em = p->ema_m, eom = p->ema_om;
        float *FC_RESTRICT w = q->w;
        float *FC_RESTRICT avg = q->avg;
        if (p->ema_overwrite)
            for (int64_t i = 0; i < n; i++) {
                const float a = em * avg[i] + eom * w[i];
                avg[i] = a;
                w[i] = a;
            }
        else
            for (int64_t i = 0; i < n; i++)
                avg[i] = em * avg[i] + eom * w[i];
    }
}

typedef void (*segment_fn)(const fc_optim_spec *p, float wd, float tclip, const optim_ptrs *q,
                           int64_t n);
typedef double (*sumsq_fn)(const fc_optim_spec *p, const float *g, float *acc, int64_t n);

static void segment_generic(const fc_optim_spec *p, float wd, float tclip, const optim_ptrs *q,
                            int64_t n)
{
    segment_impl(p, wd, tclip, q, n);
}

static double sumsq_generic(const fc_optim_spec *p, const float *g, float *acc, int64_t n)
{
    return sumsq_impl(p, g, acc, n);
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static void segment_avx2(const fc_optim_spec *p, float wd, float tclip,
                                        const optim_ptrs *q, int64_t n)
{
    segment_impl(p, wd, tclip, q, n);
}

FC_TARGET_AVX2 static double sumsq_avx2(const fc_optim_spec *p, const float *g, float *acc,
                                        int64_t n)
{
    return sumsq_impl(p, g, acc, n);
}
#endif

/* ------------------------------------------------------------------------- driver */

static optim_ptrs piece(float *const *w, const float *const *g, float *const *s0,
                        float *const *s1, float *const *s2, float *const *acc,
                        float *const *avg, int64_t t, int64_t start)
{
    optim_ptrs q;
    q.w = w[t] + start;
    q.g = g[t] + start;
    q.s0 = s0 ? s0[t] + start : NULL;
    q.s1 = s1 ? s1[t] + start : NULL;
    q.s2 = s2 ? s2[t] + start : NULL;
    q.acc = acc ? acc[t] + start : NULL;
    q.avg = avg ? avg[t] + start : NULL;
    return q;
}

int fc_optim_step(const fc_optim_spec *spec, int64_t count, float *const *w,
                  const float *const *g, float *const *s0, float *const *s1,
                  float *const *s2, float *const *acc, float *const *avg,
                  const int64_t *sizes, const float *weight_decay)
{
    int64_t items = 0, total = 0, t, k;
    int64_t *item_tensor, *item_start;
    double *partial;
    float *tclip;
    int parallel;
    const int norms = spec->clip == FC_CLIP_NORM || spec->clip == FC_CLIP_GLOBAL;
    const int updating = !spec->accum_steps || spec->update;
    segment_fn seg = segment_generic;
    sumsq_fn ssq = sumsq_generic;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        seg = segment_avx2;
        ssq = sumsq_avx2;
    }
#endif
    for (t = 0; t < count; t++) {
        items += (sizes[t] + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
        total += sizes[t];
    }
    if (items == 0)
        return FC_OK;
    parallel = items > 1 && total >= OPTIM_PARALLEL_MIN;
    /* one block: items x (tensor, start, partial sum), then count clip factors */
    item_tensor = (int64_t *)fc_malloc((size_t)items * 3 * sizeof(int64_t) +
                                       (size_t)count * sizeof(float));
    if (item_tensor == NULL)
        return FC_ENOMEM;
    item_start = item_tensor + items;
    partial = (double *)(item_start + items);
    tclip = (float *)(partial + items);
    k = 0;
    for (t = 0; t < count; t++) {
        tclip[t] = 1.0f;
        for (int64_t s = 0; s < sizes[t]; s += OPTIM_CHUNK) {
            item_tensor[k] = t;
            item_start[k] = s;
            k++;
        }
    }

    if (norms && updating) {
        double gsum = 0.0;
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if (parallel)
        for (k = 0; k < items; k++) {
            const int64_t ti = item_tensor[k], s = item_start[k];
            const int64_t n = sizes[ti] - s < OPTIM_CHUNK ? sizes[ti] - s : OPTIM_CHUNK;
            partial[k] = ssq(spec, g[ti] + s, acc ? acc[ti] + s : NULL, n);
        }
        k = 0;
        for (t = 0; t < count; t++) {
            double tsum = 0.0;
            for (int64_t s = 0; s < sizes[t]; s += OPTIM_CHUNK)
                tsum += partial[k++];
            gsum += tsum;
            if (spec->clip == FC_CLIP_NORM) {
                /* Keras _clip_by_norm: g * c / max(norm, c) (norm 0 when the sum is 0), as
                 * one factor c / max(norm, c): 1 when not clipped */
                const float l2sum = (float)tsum;
                const float norm = l2sum > 0.0f ? sqrtf(l2sum) : l2sum;
                const float den = fmax_nan(spec->clip_value, norm);
                tclip[t] = den == spec->clip_value ? 1.0f : spec->clip_value / den;
            }
        }
        if (spec->clip == FC_CLIP_GLOBAL) {
            /* Keras clip_by_global_norm: c * min(1/N, 1/c) + (N - N) (NaN for inf / NaN) */
            const float gnorm = sqrtf((float)gsum);
            const float inv = 1.0f / gnorm;
            const float scale = spec->clip_value * (inv < spec->clip_inv ? inv : spec->clip_inv)
                                + (gnorm - gnorm);
            for (t = 0; t < count; t++)
                tclip[t] = scale;
        }
    }

#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads()) if (parallel)
    for (k = 0; k < items; k++) {
        const int64_t ti = item_tensor[k], s = item_start[k];
        const int64_t n = sizes[ti] - s < OPTIM_CHUNK ? sizes[ti] - s : OPTIM_CHUNK;
        const optim_ptrs q = piece(w, g, s0, s1, s2, acc, avg, ti, s);
        seg(spec, weight_decay ? weight_decay[ti] : 0.0f, tclip[ti], &q, n);
    }
    fc_free(item_tensor);
    return FC_OK;
}

/* ------------------------------------------------------------ plain-update entries */

static fc_optim_spec plain_spec(int kind, int variant, float lr)
{
    fc_optim_spec p;
    int i;
    p.kind = kind;
    p.variant = variant;
    for (i = 0; i < 10; i++)
        p.h[i] = 0.0f;
    p.lr = lr;
    p.loss_scale = 0.0f;
    p.accum_steps = 0;
    p.update = 1;
    p.clip = FC_CLIP_NONE;
    p.clip_value = 0.0f;
    p.clip_inv = 0.0f;
    p.ema = 0;
    p.ema_m = 0.0f;
    p.ema_om = 0.0f;
    p.ema_overwrite = 0;
    return p;
}

int fc_adam_update_many(int64_t count, float *const *w, const float *const *g,
                        float *const *m, float *const *v, const int64_t *sizes,
                        float alpha, float one_minus_beta_1, float one_minus_beta_2,
                        float epsilon, float learning_rate, const float *weight_decay)
{
    fc_optim_spec p = plain_spec(FC_OPTIM_ADAM, 0, learning_rate);
    p.h[0] = alpha;
    p.h[1] = one_minus_beta_1;
    p.h[2] = one_minus_beta_2;
    p.h[3] = epsilon;
    return fc_optim_step(&p, count, w, g, m, v, NULL, NULL, NULL, sizes, weight_decay);
}

int fc_sgd_update_many(int64_t count, float *const *w, const float *const *g,
                       float *const *velocity, const int64_t *sizes, float learning_rate,
                       float momentum, int nesterov, const float *weight_decay)
{
    fc_optim_spec p = plain_spec(FC_OPTIM_SGD,
                                 velocity == NULL ? 0 : (nesterov ? 2 : 1), learning_rate);
    p.h[0] = learning_rate;
    p.h[1] = momentum;
    return fc_optim_step(&p, count, w, g, velocity, NULL, NULL, NULL, NULL, sizes,
                         weight_decay);
}

int fc_rmsprop_update_many(int64_t count, float *const *w, const float *const *g,
                           float *const *velocity, const int64_t *sizes, float learning_rate,
                           float rho, float one_minus_rho, float epsilon,
                           const float *weight_decay)
{
    fc_optim_spec p = plain_spec(FC_OPTIM_RMSPROP, 0, learning_rate);
    p.h[0] = learning_rate;
    p.h[1] = rho;
    p.h[2] = one_minus_rho;
    p.h[3] = epsilon;
    return fc_optim_step(&p, count, w, g, velocity, NULL, NULL, NULL, NULL, sizes,
                         weight_decay);
}
