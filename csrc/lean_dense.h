/* One-row dense layer for the compiled inference program (fastcnn/_ext_plan.pxi).
 *
 * At batch 1 the GEMM behind fc_dense_forward spends most of its time packing the whole
 * kernel into panels it then reads once; this reads the kernel where it lies. */
#ifndef FC_LEAN_DENSE_H
#define FC_LEAN_DENSE_H
#include "fc_common.h"

/* y (units) = act(x (in) @ kernel (in, units) + bias) for one row, with the bits of
 * fc_dense_forward(x, kernel, bias, 1, in, units, relu, y) on its SIMD (AVX2 / AVX-512)
 * GEMM path: per element, one FMA chain over each of the GEMM's K blocks
 * (fc_sgemm_k_block(in) values each), the blocks' sums added in order, then + bias, then
 * ReLU (NaN kept). bias may be NULL. Returns 1 when it ran, 0 when it did not (portable SIMD
 * level or in <= 0): the caller then calls fc_dense_forward. Single-threaded. */
int fc_lean_dense_row(const float *x, const float *kernel, const float *bias, int64_t in,
                      int64_t units, int relu, float *y);

#endif
