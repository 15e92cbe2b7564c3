/* In-place optimizer updates on float32 arrays (Keras 3 formulas, element by element).
 *
 * One call updates a list of tensors (one call per training step: tensors are cut into fixed
 * chunks that the threads share). Every element is updated independently and the only
 * reductions (gradient norms) are summed in a fixed order, so results are identical at any
 * thread count and on both SIMD paths. Hyper-parameters arrive already rounded to float32, as
 * Keras casts them to the variable's dtype; step-dependent factors (Adam's bias-corrected
 * rate, Nadam's momentum products...) are computed by the caller.
 *
 * fc_optim_step follows Keras 3's BaseOptimizer.apply (JAX backend) in this order, per element:
 *   1. g = g / loss_scale                                   (loss_scale != 0)
 *   2. gradient accumulation (accum_steps != 0):
 *        accumulation step (update == 0):  acc = g + acc, nothing else changes but the EMA;
 *        update step (update == 1):        g = (g + acc) / accum_steps, acc = 0;
 *   3. clipping, on the gradient after 1-2:
 *        FC_CLIP_NORM:   g = g * (c / max(||g_tensor||, c))    (each tensor by its own norm;
 *                        Keras: (g * c) / max(...), within an ulp; g unchanged when not
 *                        clipped)
 *        FC_CLIP_GLOBAL: g = g * (c * min(1/N, 1/c) + (N - N)), N the norm over all tensors
 *        FC_CLIP_VALUE:  g = min(max(g, -c), c)
 *   4. decoupled weight decay (weight_decay NULL: none; else one factor per tensor, 0: not
 *      decayed):  w = w - (w * wd) * lr
 *   5. the optimizer's update (see FC_OPTIM_* below) from the decayed w and the gradient;
 *   6. EMA (ema != 0): avg = ema_m * avg + ema_om * w; ema_overwrite: then w = avg.
 * Norms: squares summed in float32 lanes within fixed chunks, lanes and chunks added in
 * double in a fixed order.
 */
#ifndef FC_OPTIM_H
#define FC_OPTIM_H

#include "fc_common.h"

/* Update rules; h[] holds each one's hyper-parameters (float32), s0..s2 its slot arrays. */
enum {
    /* h: lr, momentum. variant 0: w -= g*lr (s0 unused); 1: s0 = s0*mom - g*lr, w += s0;
     * 2 (nesterov): as 1 but w += s0*mom - g*lr. */
    FC_OPTIM_SGD = 0,
    /* h: alpha, 1-b1, 1-b2, eps. m=s0, v=s1: m += (g-m)*(1-b1); v += (g*g-v)*(1-b2);
     * variant 1 (amsgrad): s2 = max(s2, v), v := s2.  w -= (m*alpha) / (sqrt(v) + eps). */
    FC_OPTIM_ADAM = 1,
    /* h: lr, rho, 1-rho, eps, momentum. s0 = velocity, s1 = momentum, s2 = average grad.
     * s0 = rho*s0 + (1-rho)*g*g; centered (variant bit 0): s2 = rho*s2 + (1-rho)*g,
     * den = (s0 - s2*s2) + eps, else den = s0 + eps; inc = (lr*g)/sqrt(den);
     * momentum (variant bit 1): s1 = momentum*s1 + inc, w -= s1; else w -= inc. */
    FC_OPTIM_RMSPROP = 2,
    /* h: lr, eps. s0 += g*g; w -= (lr*g) / sqrt(s0 + eps). */
    FC_OPTIM_ADAGRAD = 3,
    /* h: lr, rho, 1-rho, eps. s0 = rho*s0 + (1-rho)*g*g;
     * d = -((sqrt(s1 + eps) * g) / sqrt(s0 + eps)); s1 = rho*s1 + (1-rho)*d*d; w += lr*d. */
    FC_OPTIM_ADADELTA = 4,
    /* h: lr, 1-b1, b2, eps, 1-b1^t. m=s0, u=s1: m += (g-m)*(1-b1); u = max(b2*u, |g|);
     * w -= (lr*m) / ((1-b1^t) * (u + eps)). */
    FC_OPTIM_ADAMAX = 5,
    /* h: lr, 1-b1, 1-b2, eps, u_{t+1}, 1-prod_{t+1}, 1-u_t, 1-prod_t, 1-b2^t. m=s0, v=s1:
     * m += (g-m)*(1-b1); v += (g*g-v)*(1-b2);
     * m_hat = (u_{t+1}*m)/(1-prod_{t+1}) + ((1-u_t)*g)/(1-prod_t); v_hat = v/(1-b2^t);
     * w -= (m_hat*lr) / (sqrt(v_hat) + eps). */
    FC_OPTIM_NADAM = 6,
    /* h: lr, b1, 1-b1, b2, 1-b2. w -= lr * sign(s0*b1 + g*(1-b1)); s0 = s0*b2 + g*(1-b2). */
    FC_OPTIM_LION = 7,
    /* h: lr, -lr_power, 2*l2_shrinkage, 2*(l2 + beta/(2*lr)), l1. accum=s0, linear=s1:
     * n = s0 + g*g; s1 += (g + 2*l2_shrinkage*w) - ((n^p - s0^p)/lr)*w;
     * q = n^p/lr + 2*l2'; w = (clip(s1, -l1, l1) - s1)/q; s0 = n. */
    FC_OPTIM_FTRL = 8
};

enum { FC_CLIP_NONE = 0, FC_CLIP_NORM = 1, FC_CLIP_GLOBAL = 2, FC_CLIP_VALUE = 3 };

typedef struct {
    int kind;          /* FC_OPTIM_* */
    int variant;       /* see FC_OPTIM_* */
    float h[10];       /* the rule's hyper-parameters, see FC_OPTIM_* */
    float lr;          /* the current learning rate (multiplies the weight decay) */
    float loss_scale;  /* 0: none */
    int accum_steps;   /* 0: no gradient accumulation */
    int update;        /* with accumulation: 1 on the update step, 0 on the others */
    int clip;          /* FC_CLIP_* */
    float clip_value;  /* c: clipnorm / global_clipnorm / clipvalue */
    float clip_inv;    /* FC_CLIP_GLOBAL: 1/c (rounded from double, as Keras) */
    int ema;           /* 1: update the moving averages */
    float ema_m;       /* EMA momentum for this step (0 on the first step) */
    float ema_om;      /* 1 - ema_m */
    int ema_overwrite; /* 1: w = avg after the EMA update */
} fc_optim_spec;

/* One optimizer step over `count` tensors (sizes[t] elements each), in place.
 * s0, s1, s2: the rule's slot arrays (NULL when the rule / variant does not use them);
 * acc: gradient accumulators (accum_steps != 0), avg: EMA averages (ema != 0), else NULL.
 * weight_decay: NULL or one factor per tensor. The gradients are only read.
 * Returns FC_OK or FC_ENOMEM. */
int fc_optim_step(const fc_optim_spec *spec, int64_t count, float *const *w,
                  const float *const *g, float *const *s0, float *const *s1,
                  float *const *s2, float *const *acc, float *const *avg,
                  const int64_t *sizes, const float *weight_decay);

/* Plain updates (no clipping, accumulation or EMA), kept for fastcnn.ops. */
/* Adam: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); learning_rate only scales the decay. */
int fc_adam_update_many(int64_t count, float *const *w, const float *const *g,
                        float *const *m, float *const *v, const int64_t *sizes,
                        float alpha, float one_minus_beta_1, float one_minus_beta_2,
                        float epsilon, float learning_rate, const float *weight_decay);

/* SGD: velocity == NULL: w -= g * lr, else FC_OPTIM_SGD variant 1 (2 if nesterov). */
int fc_sgd_update_many(int64_t count, float *const *w, const float *const *g,
                       float *const *velocity, const int64_t *sizes, float learning_rate,
                       float momentum, int nesterov, const float *weight_decay);

/* RMSprop, momentum 0, not centered. */
int fc_rmsprop_update_many(int64_t count, float *const *w, const float *const *g,
                           float *const *velocity, const int64_t *sizes, float learning_rate,
                           float rho, float one_minus_rho, float epsilon,
                           const float *weight_decay);

#endif
