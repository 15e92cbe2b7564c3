/* Small-K products for convolutions with few input channels (the first layer of a CNN).
 *
 * With K = KH*KW*C small (27 for a 3x3 kernel on RGB), a general GEMM spends more time
 * packing its operands and loading/storing C tiles than multiplying. These kernels read
 * the column rows A (P, K) and the (KH, KW, C, F) kernel W = (K, F) where they lie (both
 * fit in L1 for one output line) and keep a 6-pixel x 16-filter tile of the result in
 * registers for the whole K loop. conv2d.c calls them per output line (forward) or per
 * piece of lines (kernel gradient); see FC_CONV2D_DIRECT in conv2d.h.
 *
 * Each output element is one sum over k = 0..K-1 (forward) or over the rows p in order
 * (kernel gradient), whatever the blocking, so results never depend on the thread count.
 */
#ifndef FC_CONV2D_DIRECT_H
#define FC_CONV2D_DIRECT_H
#include "fc_common.h"

/* Addressing of A: element (p, k) is at A + p*lda + (k / seg)*seg_stride + k % seg, with
 * seg dividing K. Column rows from im2col: seg = K (seg_stride unused). Read straight from
 * an NHWC image where no window needs padding: A = the first window's corner, lda =
 * stride*C (the next pixel), seg = KW*C (one kernel row's run), seg_stride = W*C (the
 * next image row): no im2col copy at all. */

/* out (P, F; row stride F) = act(A (P, K) @ W (K, F) + bias).
 * bias may be NULL; relu != 0 applies max(., 0) (NaN -> 0, as the im2col path). */
void fc_direct_forward_rows(int64_t P, int64_t F, int64_t K, const float *A, int64_t lda,
                            int64_t seg, int64_t seg_stride, const float *W,
                            const float *bias, int relu, float *out);

/* dW (K, F; row stride ldw) = (accumulate ? dW : 0) + A^T @ dY, A (P, K) as above,
 * dY (P, F; row stride ldy). (Tried for the Winograd kernel gradient's 16 products, whose
 * rows are 16*C apart: slower than the packed GEMM there; see commit ef98b6c.) */
void fc_direct_kernel_grad_rows(int64_t P, int64_t F, int64_t K, const float *A, int64_t lda,
                                int64_t seg, int64_t seg_stride, const float *dY, int64_t ldy,
                                float *dW, int64_t ldw, int accumulate);

/* (Not fc_max_pool2d_forward on the block: its per-call parallel-region entry and row
 * dispatch made the fused forward slower; measured in commit 4961ef5.)
 * Max pool of ph conv lines z (ph, OW, F) with pw x ph windows, stride = window: the PW
 * pooled outputs y (PW, F) and the offsets base + ((r*OW + ow)*F + f) of each window's
 * first maximum in row-major window order (ties: the first; z holds ReLU outputs, no NaN
 * can appear). indices may be NULL: the maxima only. */
void fc_direct_maxpool_lines(const float *z, int64_t ph, int64_t pw, int64_t OW, int64_t F,
                             int64_t PW, int64_t base, float *y, int32_t *indices);

/* The gradient of ph conv lines from their pooled line: dz (ph, OW, F) gets, at each
 * window's recorded maximum (indices, offsets from `base` as fc_direct_maxpool_lines gives
 * them), the pooled gradient dy (PW, F) if the window's max y > 0 (ReLU), and 0 everywhere
 * else (every dz element is written once: no memset, no scatter). line_bias[f] += the
 * passed gradients, pooled column by column. Returns 0, or 1 if some index does not name
 * an element of its own window (that window then passes nothing). */
int fc_direct_maxpool_backward_lines(const float *dy, const float *y, const int32_t *indices,
                                     int64_t ph, int64_t pw, int64_t OW, int64_t F, int64_t PW,
                                     int64_t base, float *dz, float *line_bias);

#endif
