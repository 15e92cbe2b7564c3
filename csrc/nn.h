/* The "nn" kernel family: activations, dense layer, losses, dropout, batch norm.
 *
 * Sources: activations.c (relu, activation family, softmax, PReLU, dropout), nn.c (dense), losses.c
 * (softmax cross-entropy, mean squared error), normalization.c (batch norm).
 *
 * Every kernel follows fc_common.h: float32, C-contiguous, caller-allocated
 * outputs, and results that do not depend on the thread count. Elementwise and
 * row-wise kernels split work over outputs; every reduction over the batch runs
 * over FIXED-size chunks whose partial sums (in double) are added in chunk order.
 * Elementwise kernels may run in place (out == in, same layout).
 */
#ifndef FC_NN_H
#define FC_NN_H
#include "fc_common.h"

/* ---- activations.c ---- */

/* y = max(x, 0) (NaN stays NaN). */
void fc_relu_forward(const float *x, float *y, int64_t n);
/* dx = dy where y > 0, else 0 (y is the relu OUTPUT). */
void fc_relu_backward(const float *dy, const float *y, float *dx, int64_t n);
/* Row-wise softmax of a (rows, cols) matrix, max-subtracted; sums in double. */
void fc_softmax_forward(const float *x, float *y, int64_t rows, int64_t cols);

/* The activation family. Kinds and their params p[3] (unused params are ignored):
 * RELU_GENERAL is Keras 3's relu(x, negative_slope=p[0], max_value=p[1] (+inf for
 * None: then no clipping at all, so a negative threshold passes x in (threshold, 0)),
 * threshold=p[2]); LEAKY_RELU: negative_slope p[0]; ELU: alpha p[0].
 * GELU is the exact erf form, GELU_TANH the tanh approximation; HARD_SIGMOID is
 * relu6(x + 3) / 6 and HARD_SILU x * hard_sigmoid(x) (Keras 3). NaN propagates.
 * Elementwise, any n >= 0, y may alias x. Values agree with the float64 formulas to
 * a few float32 ulp (AVX2 path) or to one rounding (portable path). */
enum {
    FC_ACT_LINEAR = 0, FC_ACT_RELU, FC_ACT_RELU_GENERAL, FC_ACT_LEAKY_RELU, FC_ACT_RELU6,
    FC_ACT_SIGMOID, FC_ACT_TANH, FC_ACT_ELU, FC_ACT_SELU, FC_ACT_GELU, FC_ACT_GELU_TANH,
    FC_ACT_SILU, FC_ACT_SOFTPLUS, FC_ACT_SOFTSIGN, FC_ACT_HARD_SIGMOID, FC_ACT_HARD_SILU,
    FC_ACT_EXPONENTIAL, FC_ACT_COUNT
};
int fc_activation_kind_valid(int kind);
void fc_activation_forward(int kind, const float *params, const float *x, float *y, int64_t n);
/* 1: the backward's src is the forward OUTPUT y; 0: src is the forward INPUT x. */
int fc_activation_backward_uses_output(int kind, const float *params);
/* dx = dy * f'(x), with src as fc_activation_backward_uses_output says; dx may alias dy. */
void fc_activation_backward(int kind, const float *params, const float *dy, const float *src,
                            float *dx, int64_t n);
/* softmax (log_softmax = 0) or log_softmax (1) of x viewed (outer, len, inner) along len,
 * max-subtracted, sums in double; y may alias x. Contiguous rows (inner == 1) take the
 * AVX2 path when there is one (vector exp, 8 double partial sums); strided lines and the
 * portable path run the scalar line code (expf, one double sum in order). */
void fc_softmax_axis_forward(int log_softmax, const float *x, float *y, int64_t outer,
                             int64_t len, int64_t inner);
/* Its gradient from the OUTPUT y: softmax dx = y (dy - sum dy y); log_softmax
 * dx = dy - exp(y) sum dy. dx may alias dy. */
void fc_softmax_axis_backward(int log_softmax, const float *dy, const float *y, float *dx,
                              int64_t outer, int64_t len, int64_t inner);
/* PReLU on x viewed (rows, d) with alpha (d): y = x > 0 ? x : alpha x. */
void fc_prelu_forward(const float *x, const float *alpha, float *y, int64_t rows, int64_t d);
/* dx = dy where x > 0, alpha dy where x < 0, 0 at 0 (dx may be NULL or alias dy);
 * dalpha[j] = sum_r dy[r, j] * min(x[r, j], 0) (double, rows in order). */
void fc_prelu_backward(const float *dy, const float *x, const float *alpha, float *dx,
                       float *dalpha, int64_t rows, int64_t d);

/* Inverted dropout. mask[i] = 1 keeps element i, 0 drops it; kept elements are
 * scaled by 1/(1-rate). The keep decision is a pure function of (seed, i): a
 * splitmix64 hash of the element index keyed by the seed, so the mask is the same
 * at any thread count. Requires 0 <= rate < 1. */
void fc_dropout_forward(const float *x, float *y, uint8_t *mask, int64_t n,
                        double rate, uint64_t seed);
void fc_dropout_backward(const float *dy, const uint8_t *mask, float *dx, int64_t n,
                         double rate);

/* ---- nn.c ---- */

/* y (n, units) = x (n, in) @ kernel (in, units) [+ bias] [then relu].
 * bias may be NULL. Returns FC_OK or FC_ENOMEM (from the GEMM). */
int fc_dense_forward(const float *x, const float *kernel, const float *bias,
                     int64_t n, int64_t in, int64_t units, int relu, float *y);
/* dkernel = x^T dy; dx = dy kernel^T (skipped when dx is NULL);
 * dbias = column sums of dy (skipped when dbias is NULL). */
int fc_dense_backward(const float *dy, const float *x, const float *kernel,
                      int64_t n, int64_t in, int64_t units,
                      float *dx, float *dkernel, float *dbias);
/* out[j] = sum_i a[i, j] for a (rows, cols): double accumulation, rows in order,
 * threads split over column blocks. */
void fc_column_sums(const float *a, int64_t rows, int64_t cols, float *out);

/* ---- losses.c ---- */

/* Softmax cross-entropy on logits (n, c) with integer class ids labels[n]
 * (already checked to lie in [0, c)). Writes dlogits = (softmax - onehot) / n
 * (may alias logits), *loss_sum = sum of the per-row losses (double, rows summed
 * in order), *n_correct = rows whose first argmax equals the label. */
int fc_softmax_cross_entropy_sparse(const float *logits, const int64_t *labels,
                                    int64_t n, int64_t c, float *dlogits,
                                    double *loss_sum, int64_t *n_correct);
/* Same with target distributions targets (n, c): row loss sum_j -t_j log p_j,
 * dlogits = (p * sum_j t_j - t) / n (the exact gradient; = (p - t)/n when rows
 * sum to 1), correct = first argmax of the logits equals first argmax of t. */
int fc_softmax_cross_entropy_dense(const float *logits, const float *targets,
                                   int64_t n, int64_t c, float *dlogits,
                                   double *loss_sum, int64_t *n_correct);
/* *loss_sum = sum (pred - target)^2 (double, fixed chunks);
 * dpred = 2 (pred - target) / n (skipped when NULL). */
int fc_mean_squared_error(const float *pred, const float *target, int64_t n,
                          float *dpred, double *loss_sum);

/* ---- normalization.c ---- */

/* Batch norm over x viewed as (rows, channels): statistics per channel over rows.
 * Training: batch mean and biased variance normalise, and the moving statistics
 * are updated in place, moving = moving*momentum + batch*(1-momentum) (Keras 3).
 * mean_out / inv_std_out (channels) receive what backward needs.
 * relu != 0 fuses a following ReLU: y = relu(bn(x)) with fc_relu_forward's exact rule
 * (NaN propagates, -0 becomes +0), bitwise what the two kernels give one after the other.
 * relu_max: +INFINITY for that plain ReLU; finite (a ReLU with max_value, e.g. ReLU6):
 * y = min(max(bn(x), 0), relu_max) with the relu6 activation kernel's rule instead.
 * rows must be >= 1. Returns FC_OK or FC_ENOMEM. */
int fc_batch_norm_forward_train(const float *x, int64_t rows, int64_t channels,
                                const float *gamma, const float *beta,
                                double momentum, double epsilon,
                                float *moving_mean, float *moving_var,
                                int relu, float relu_max, float *y, float *mean_out,
                                float *inv_std_out);
/* Inference: normalise with the moving statistics (relu as above). */
void fc_batch_norm_forward_infer(const float *x, int64_t rows, int64_t channels,
                                 const float *gamma, const float *beta,
                                 const float *moving_mean, const float *moving_var,
                                 double epsilon, int relu, float relu_max, float *y,
                                 float *mean_out, float *inv_std_out);
/* Gradients. training != 0: the statistics were batch statistics (they depend
 * on x); otherwise they were constants. relu_y (may be NULL): the fused forward's
 * output; dy is then the gradient w.r.t. relu(bn(x)) and is masked as fc_relu_backward
 * does (dy where relu_y > 0, else 0) wherever it is read, without being written, so
 * the results are bitwise those of fc_relu_backward then the unfused backward.
 * relu_max: as in the forward; finite: dy kept where 0 < relu_y < relu_max (the relu6
 * kernel's backward rule). relu_beta (used when relu_y is NULL; may be NULL): the
 * forward's beta; the mask is then taken from the forward's value before the ReLU,
 * recomputed from x (x_hat * gamma + beta, the forward's operations), which is exactly
 * relu_y's mask with one input stream less. dx may alias dy (not relu_y). */
int fc_batch_norm_backward(const float *dy, const float *relu_y, float relu_max,
                           const float *relu_beta, const float *x, int64_t rows,
                           int64_t channels, const float *mean, const float *inv_std,
                           const float *gamma, int training, float *dx, float *dgamma,
                           float *dbeta);

/* Batch norm with statistics over several replicas (synchronized BN), in four parts
 * whose per-replica results the caller combines in between; with one replica, the
 * parts give bitwise what fc_batch_norm_forward_train / fc_batch_norm_backward give.
 *
 * moments: this replica's per-channel mean and M2 = sum (x - mean)^2 (double), computed
 * exactly as the training forward does. rows >= 1. Returns FC_OK or FC_ENOMEM. */
int fc_batch_norm_moments(const float *x, int64_t rows, int64_t channels, double *mean,
                          double *m2);
/* forward_stats: the training forward given the (combined) batch mean and biased variance
 * (double): normalises x, updates the moving statistics as the training forward does,
 * writes mean_out / inv_std_out for backward. */
void fc_batch_norm_forward_stats(const float *x, int64_t rows, int64_t channels,
                                 const float *gamma, const float *beta, const double *mean,
                                 const double *var, double momentum, double epsilon,
                                 float *moving_mean, float *moving_var, int relu,
                                 float relu_max, float *y, float *mean_out, float *inv_std_out);
/* backward_sums: this replica's sum dy and sum dy * x_hat per channel (double; dy masked
 * by relu_y as in fc_batch_norm_backward); dgamma / dbeta receive them as float (the
 * replica's part of the weight gradients). Returns FC_OK or FC_ENOMEM. */
int fc_batch_norm_backward_sums(const float *dy, const float *relu_y, float relu_max,
                                const float *x,
                                int64_t rows, int64_t channels, const float *mean,
                                const float *inv_std, double *sum_dy, double *sum_dy_xhat,
                                float *dgamma, float *dbeta);
/* backward_input: dx from the sums over all replicas and their total row count
 * (training statistics). dx may alias dy (not relu_y). Returns FC_OK or FC_ENOMEM. */
int fc_batch_norm_backward_input(const float *dy, const float *relu_y, float relu_max,
                                 const float *x,
                                 int64_t rows, int64_t channels, const float *mean,
                                 const float *inv_std, const float *gamma,
                                 const double *sum_dy, const double *sum_dy_xhat,
                                 int64_t total_rows, float *dx);
#endif
