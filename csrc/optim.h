/* In-place optimizer updates on float32 arrays (Keras 3 formulas, element by element).
 *
 * Each update exists for one tensor and for a list of tensors (one call per training step:
 * tensors are cut into fixed chunks that the threads share). Every element is updated
 * independently, so results are identical at any thread count and on both SIMD paths.
 * Hyper-parameters arrive already rounded to float32, as Keras casts them to the variable's
 * dtype; Adam's bias-corrected rate alpha is computed by the caller in double.
 *
 * Weight decay (Keras 3 BaseOptimizer._apply_weight_decay, decoupled): weight_decay is NULL
 * (no decay) or one float32 factor per tensor (0: that tensor is not decayed). A tensor with a
 * non-zero factor wd is first decayed, in the same pass and in float32 with Keras' order,
 *   w = w - (w * wd) * learning_rate
 * and then updated as below from that decayed w (the gradient is unchanged).
 */
#ifndef FC_OPTIM_H
#define FC_OPTIM_H

#include "fc_common.h"

/* Adam (Keras 3 arithmetic):
 *   m += (g - m) * one_minus_beta_1;  v += (g*g - v) * one_minus_beta_2;
 *   w -= (m * alpha) / (sqrt(v) + epsilon),  alpha = lr * sqrt(1 - b2^t) / (1 - b1^t).
 * learning_rate (lr) is only used by the weight decay. */
int fc_adam_update_many(int64_t count, float *const *w, const float *const *g,
                        float *const *m, float *const *v, const int64_t *sizes,
                        float alpha, float one_minus_beta_1, float one_minus_beta_2,
                        float epsilon, float learning_rate, const float *weight_decay);

/* SGD (Keras 3): velocity == NULL: w -= g * lr;
 * else vel = vel * momentum - g * lr; w += vel (nesterov: w += vel * momentum - g * lr). */
int fc_sgd_update_many(int64_t count, float *const *w, const float *const *g,
                       float *const *velocity, const int64_t *sizes, float learning_rate,
                       float momentum, int nesterov, const float *weight_decay);

/* RMSprop (Keras 3, momentum 0, not centered):
 *   vel = rho * vel + one_minus_rho * g*g;  w -= (lr * g) / sqrt(vel + epsilon). */
int fc_rmsprop_update_many(int64_t count, float *const *w, const float *const *g,
                           float *const *velocity, const int64_t *sizes, float learning_rate,
                           float rho, float one_minus_rho, float epsilon,
                           const float *weight_decay);

#endif
