/* In-place optimizer updates (Adam, SGD with/without (Nesterov) momentum, RMSprop).
 *
 * All updates are element-wise, so a list of tensors is cut into fixed OPTIM_CHUNK-element
 * pieces that the threads share (one parallel region per training step instead of one per
 * tensor). The per-element loops are compiled twice, portable and with AVX2 enabled; both
 * use the same IEEE operations in the same order (no FMA contraction), hence bitwise equal.
 *
 * Keras 3's decoupled weight decay (BaseOptimizer._apply_weight_decay) is folded into the same
 * pass: a tensor with a non-zero decay factor wd gets  w = w - (w * wd) * lr  (Keras' operator
 * order, float32) just before its update, in register, so no extra pass over the weights. The
 * loops are instantiated with and without the decay (the DECAY argument is a compile-time
 * constant), so tensors without decay run exactly the code they ran before.
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

typedef struct {
    float a, b, c, d; /* meaning depends on the optimizer, see the kernels */
    float decay_lr;   /* the learning rate that multiplies the weight decay */
    int flag;
} optim_params;

/* One contiguous piece [0, n) of one tensor. s1/s2: optimizer state (may be NULL).
 * wd: this tensor's weight-decay factor (0: no decay). */
typedef void (*optim_segment_fn)(const optim_params *p, float wd, float *w, const float *g,
                                 float *s1, float *s2, int64_t n);

/* Keras: variable.assign(variable - variable * wd * lr), i.e. w - ((w * wd) * lr). */
OPTIM_INLINE float decayed(const int DECAY, const float w, const float wd, const float lr)
{
    return DECAY ? w - (w * wd) * lr : w;
}

/* The generic and AVX2 entry points of one kernel: each picks the loop with or without decay
 * (the body is inlined twice, with DECAY a constant). */
#define OPTIM_ENTRY(NAME, CALL)                                                            \
    static void NAME##_generic(const optim_params *p, float wd, float *w, const float *g,  \
                               float *s1, float *s2, int64_t n)                            \
    {                                                                                      \
        (void)s2;                                                                          \
        if (wd != 0.0f)                                                                    \
            CALL(1);                                                                       \
        else                                                                               \
            CALL(0);                                                                       \
    }                                                                                      \
    OPTIM_ENTRY_AVX2(NAME, CALL)

#ifdef FC_HAVE_AVX2_PATH
#define OPTIM_ENTRY_AVX2(NAME, CALL)                                                       \
    FC_TARGET_AVX2 static void NAME##_avx2(const optim_params *p, float wd, float *w,      \
                                           const float *g, float *s1, float *s2,           \
                                           int64_t n)                                      \
    {                                                                                      \
        (void)s2;                                                                          \
        if (wd != 0.0f)                                                                    \
            CALL(1);                                                                       \
        else                                                                               \
            CALL(0);                                                                       \
    }
#else
#define OPTIM_ENTRY_AVX2(NAME, CALL)
#endif

/* --------------------------------------------------------------------------- Adam */

/* p: a = alpha, b = 1 - beta_1, c = 1 - beta_2, d = epsilon, decay_lr = learning rate */
OPTIM_INLINE void adam_body(const optim_params *p, const int DECAY, const float wd,
                            float *FC_RESTRICT w, const float *FC_RESTRICT g,
                            float *FC_RESTRICT m, float *FC_RESTRICT v, int64_t n)
{
    const float alpha = p->a, omb1 = p->b, omb2 = p->c, eps = p->d, lr = p->decay_lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, lr);
        const float mi = m[i] + (gi - m[i]) * omb1;
        const float vi = v[i] + (gi * gi - v[i]) * omb2;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - (mi * alpha) / (sqrtf(vi) + eps);
    }
}

#define ADAM_CALL(DECAY) adam_body(p, DECAY, wd, w, g, s1, s2, n)
OPTIM_ENTRY(adam, ADAM_CALL)

/* ---------------------------------------------------------------------------- SGD */

/* p: a = learning rate, b = momentum, flag = nesterov, decay_lr = learning rate;
 * s1 = velocity or NULL */
OPTIM_INLINE void sgd_body(const optim_params *p, const int DECAY, const float wd,
                           float *FC_RESTRICT w, const float *FC_RESTRICT g,
                           float *FC_RESTRICT vel, int64_t n)
{
    const float lr = p->a, mom = p->b, dlr = p->decay_lr;
    if (vel == NULL) {
        for (int64_t i = 0; i < n; i++) {
            const float wi = decayed(DECAY, w[i], wd, dlr);
            w[i] = wi - g[i] * lr;
        }
    } else if (p->flag) {
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

#define SGD_CALL(DECAY) sgd_body(p, DECAY, wd, w, g, s1, n)
OPTIM_ENTRY(sgd, SGD_CALL)

/* ------------------------------------------------------------------------ RMSprop */

/* p: a = learning rate, b = rho, c = 1 - rho, d = epsilon, decay_lr = learning rate;
 * s1 = velocity */
OPTIM_INLINE void rmsprop_body(const optim_params *p, const int DECAY, const float wd,
                               float *FC_RESTRICT w, const float *FC_RESTRICT g,
                               float *FC_RESTRICT vel, int64_t n)
{
    const float lr = p->a, rho = p->b, omrho = p->c, eps = p->d, dlr = p->decay_lr;
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float wi = decayed(DECAY, w[i], wd, dlr);
        const float vi = rho * vel[i] + omrho * (gi * gi);
        vel[i] = vi;
        w[i] = wi - (lr * gi) / sqrtf(vi + eps);
    }
}

#define RMSPROP_CALL(DECAY) rmsprop_body(p, DECAY, wd, w, g, s1, n)
OPTIM_ENTRY(rmsprop, RMSPROP_CALL)

/* ------------------------------------------------------------------------- driver */

/* Runs fn over every element of every tensor. Work items are (tensor, first element)
 * pairs of at most OPTIM_CHUNK elements; each element is touched by exactly one item. */
static int run_chunked(optim_segment_fn fn, const optim_params *p, int64_t count,
                       float *const *w, const float *const *g, float *const *s1,
                       float *const *s2, const int64_t *sizes, const float *wd)
{
    int64_t items = 0, total = 0, t, k;
    int64_t *item_tensor, *item_start;
    for (t = 0; t < count; t++) {
        items += (sizes[t] + OPTIM_CHUNK - 1) / OPTIM_CHUNK;
        total += sizes[t];
    }
    if (items == 0)
        return FC_OK;
    if (items == 1 || total < OPTIM_PARALLEL_MIN) {
        for (t = 0; t < count; t++)
            if (sizes[t] > 0)
                fn(p, wd ? wd[t] : 0.0f, w[t], g[t], s1 ? s1[t] : NULL, s2 ? s2[t] : NULL,
                   sizes[t]);
        return FC_OK;
    }
    item_tensor = (int64_t *)fc_malloc((size_t)items * 2 * sizeof(int64_t));
    if (item_tensor == NULL)
        return FC_ENOMEM;
    item_start = item_tensor + items;
    k = 0;
    for (t = 0; t < count; t++)
        for (int64_t s = 0; s < sizes[t]; s += OPTIM_CHUNK) {
            item_tensor[k] = t;
            item_start[k] = s;
            k++;
        }
#pragma omp parallel for schedule(static) num_threads(fc_get_num_threads())
    for (k = 0; k < items; k++) {
        const int64_t ti = item_tensor[k], s = item_start[k];
        const int64_t n = sizes[ti] - s < OPTIM_CHUNK ? sizes[ti] - s : OPTIM_CHUNK;
        fn(p, wd ? wd[ti] : 0.0f, w[ti] + s, g[ti] + s, s1 ? s1[ti] + s : NULL,
           s2 ? s2[ti] + s : NULL, n);
    }
    fc_free(item_tensor);
    return FC_OK;
}

int fc_adam_update_many(int64_t count, float *const *w, const float *const *g,
                        float *const *m, float *const *v, const int64_t *sizes,
                        float alpha, float one_minus_beta_1, float one_minus_beta_2,
                        float epsilon, float learning_rate, const float *weight_decay)
{
    const optim_params p = {alpha, one_minus_beta_1, one_minus_beta_2, epsilon, learning_rate,
                            0};
    optim_segment_fn fn = adam_generic;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = adam_avx2;
#endif
    return run_chunked(fn, &p, count, w, g, m, v, sizes, weight_decay);
}

int fc_sgd_update_many(int64_t count, float *const *w, const float *const *g,
                       float *const *velocity, const int64_t *sizes, float learning_rate,
                       float momentum, int nesterov, const float *weight_decay)
{
    const optim_params p = {learning_rate, momentum, 0.0f, 0.0f, learning_rate, nesterov};
    optim_segment_fn fn = sgd_generic;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = sgd_avx2;
#endif
    return run_chunked(fn, &p, count, w, g, velocity, NULL, sizes, weight_decay);
}

int fc_rmsprop_update_many(int64_t count, float *const *w, const float *const *g,
                           float *const *velocity, const int64_t *sizes, float learning_rate,
                           float rho, float one_minus_rho, float epsilon,
                           const float *weight_decay)
{
    const optim_params p = {learning_rate, rho, one_minus_rho, epsilon, learning_rate, 0};
    optim_segment_fn fn = rmsprop_generic;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        fn = rmsprop_avx2;
#endif
    return run_chunked(fn, &p, count, w, g, velocity, NULL, sizes, weight_decay);
}
