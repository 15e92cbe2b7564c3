/* The "merge" kernel family: Keras' merge and shape layers.
 *
 * Sources: merge.c. Elementwise merges of k >= 2 same-size inputs (Add, Subtract,
 * Multiply, Average, Maximum, Minimum) and their gradients, the fused residual
 * add + relu, concatenation along an axis, 2-D zero padding and cropping (NHWC).
 *
 * Every kernel follows fc_common.h: float32, C-contiguous, caller-allocated outputs.
 * Each output element is computed by one thread from the same inputs in the same
 * order whatever the partition, so results do not depend on the thread count; the
 * portable and AVX2 builds of the elementwise loops do the same IEEE operations, so
 * they agree bitwise too. Arrays of k pointers name the inputs in order; an empty
 * array may be passed as NULL (nothing is read from or written to it).
 */
#ifndef FC_MERGE_H
#define FC_MERGE_H
#include "fc_common.h"

/* Merge operations (the codes fastcnn.ops.merge passes). */
#define FC_MERGE_ADD 0
#define FC_MERGE_SUBTRACT 1
#define FC_MERGE_MULTIPLY 2
#define FC_MERGE_AVERAGE 3
#define FC_MERGE_MAXIMUM 4
#define FC_MERGE_MINIMUM 5

/* Returned for an unknown op or a bad input count (the Python layer never sends one). */
#define FC_MERGE_EBADARG (-2)

/* y = op(xs[0], ..., xs[k-1]) over n elements, folded left to right in float32:
 *   add       ((x0 + x1) + x2) + ...
 *   subtract  x0 - x1                         (k == 2 only)
 *   multiply  ((x0 * x1) * x2) * ...
 *   average   (((x0 + x1) + x2) + ...) / k    (a division, as Keras: sum, then / k)
 *   maximum   m = max2(m, x_j) with max2(a, b) = (a >= b || a != a) ? a : b
 *   minimum   m = min2(m, x_j) with min2(a, b) = (a <= b || a != a) ? a : b
 * max2/min2 are NumPy's rule: a NaN on either side wins (the first NaN stays), and on a
 * tie (including -0 vs +0) the earlier input stays. y may be exactly xs[0] or xs[1]
 * (in place): element i of both is read before y[i] is written. Returns FC_OK or
 * FC_MERGE_EBADARG. */
int fc_merge_forward(int op, const float *const *xs, int k, int64_t n, float *y);

/* Gradients of fc_merge_forward given dy (n): dxs[i] is written when it is not NULL.
 *   add       dx_i = dy
 *   subtract  dx_0 = dy, dx_1 = -dy
 *   multiply  dx_i = dy * p_i, p_i = the product of the other inputs, left to right
 *   average   dx_i = dy / k
 *   maximum / minimum: dx_i = dy for the input the forward took its value from, i.e.
 *             the FIRST (lowest-index) input equal to the output (for a NaN output, the
 *             first NaN input), 0 for every other input. The winner is recomputed from
 *             xs with the forward's max2/min2, so the output itself is not needed.
 * xs may be NULL for add, subtract and average (they do not read it). Outputs must not
 * overlap dy, xs or each other. Returns FC_OK or FC_MERGE_EBADARG. */
int fc_merge_backward(int op, const float *dy, const float *const *xs, int k, int64_t n,
                      float *const *dxs);

/* Residual add + relu: y = relu(((x0 + x1) + x2) + ...), relu as fc_relu_forward (NaN
 * stays NaN, -0 becomes +0). The backward is fc_relu_backward on y. y may be exactly
 * xs[0] or xs[1]. Returns FC_OK or FC_MERGE_EBADARG (k < 2). */
int fc_add_relu_forward(const float *const *xs, int k, int64_t n, float *y);

/* Concatenation: input i viewed as a (rows, widths[i]) matrix, y as (rows, sum widths);
 * row r of y is row r of xs[0], then row r of xs[1], ... (widths[i] may be 0). */
void fc_concat_forward(const float *const *xs, const int64_t *widths, int k, int64_t rows,
                       float *y);
/* Its gradient: dxs[i] (rows, widths[i]) = the matching columns of dy; NULL skips i. */
void fc_concat_backward(const float *dy, const int64_t *widths, int k, int64_t rows,
                        float *const *dxs);

/* NHWC zero padding: y (N, H + top + bottom, W + left + right, C) holds x at offset
 * (top, left) and zeros around it. Its gradient is fc_crop2d with the same amounts. */
void fc_pad2d(const float *x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t top,
              int64_t bottom, int64_t left, int64_t right, float *y);
/* NHWC cropping: y (N, H - top - bottom, W - left - right, C) = x[:, top:H-bottom,
 * left:W-right, :] (both results >= 0). Its gradient is fc_pad2d with the same amounts. */
void fc_crop2d(const float *x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t top,
               int64_t bottom, int64_t left, int64_t right, float *y);
#endif
