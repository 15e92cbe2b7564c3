/* Small-K convolution products (see conv2d_direct.h): an AVX2/FMA register-blocked path
 * and a portable one. Tiles are 6 rows x 16 columns (12 accumulators, 2 operand vectors,
 * 1 broadcast: 15 of the 16 ymm registers); edge tiles use the same code with fewer rows
 * (a switch picks a fully unrolled instance) and 8-column tiles where F % 16 == 8.
 * Columns past a multiple of 8 go through the portable loop. */
#include <string.h>
#include "conv2d_direct.h"

#if defined(__GNUC__) || defined(__clang__)
#define DIRECT_INLINE static inline __attribute__((always_inline))
#else
#define DIRECT_INLINE static inline
#endif

#define TILE_ROWS 6

/* ---------------------------------------------------------------------- portable */

/* offset of A's element k within a row (see conv2d_direct.h) */
static inline int64_t a_offset(int64_t k, int64_t seg, int64_t seg_stride)
{
    return (k / seg) * seg_stride + k % seg;
}

static void forward_cols_generic(int64_t P, int64_t f0, int64_t f1, int64_t F, int64_t K,
                                 const float *A, int64_t lda, int64_t seg, int64_t seg_stride,
                                 const float *W, const float *bias, int relu, float *out)
{
    for (int64_t p = 0; p < P; p++)
        for (int64_t f = f0; f < f1; f++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++)
                acc += A[p * lda + a_offset(k, seg, seg_stride)] * W[k * F + f];
            if (bias != NULL)
                acc += bias[f];
            if (relu)
                acc = acc > 0.0f ? acc : 0.0f;
            out[p * F + f] = acc;
        }
}

static void kernel_grad_cols_generic(int64_t P, int64_t f0, int64_t f1, int64_t k0,
                                     int64_t k1, const float *A, int64_t lda, int64_t seg,
                                     int64_t seg_stride, const float *dY, int64_t ldy,
                                     float *dW, int64_t ldw, int accumulate)
{
    for (int64_t k = k0; k < k1; k++)
        for (int64_t f = f0; f < f1; f++) {
            const int64_t ak = a_offset(k, seg, seg_stride);
            float acc = accumulate ? dW[k * ldw + f] : 0.0f;
            for (int64_t p = 0; p < P; p++)
                acc += A[p * lda + ak] * dY[p * ldy + f];
            dW[k * ldw + f] = acc;
        }
}

/* ---------------------------------------------------------------------- AVX2 + FMA */
#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>

/* out rows [0, NR) x columns [0, 8*NV) of a tile: sum over k, then bias and ReLU. */
DIRECT_INLINE FC_TARGET_AVX2 void forward_tile(int NR, int NV, int64_t F, int64_t K,
                                               const float *A, int64_t lda, int64_t seg,
                                               int64_t seg_stride, const float *W,
                                               const float *bias, int relu, float *out)
{
    __m256 acc[TILE_ROWS][2];
    for (int i = 0; i < NR; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm256_setzero_ps();
    for (int64_t k0 = 0; k0 < K; k0 += seg) {  /* k = k0 + j, in order */
        const float *Ak = A + (k0 / seg) * seg_stride, *Wk = W + k0 * F;
        for (int64_t j = 0; j < seg; j++) {
            __m256 w[2];
            for (int v = 0; v < NV; v++)
                w[v] = _mm256_loadu_ps(Wk + j * F + 8 * v);
            for (int i = 0; i < NR; i++) {
                const __m256 a = _mm256_broadcast_ss(Ak + i * lda + j);
                for (int v = 0; v < NV; v++)
                    acc[i][v] = _mm256_fmadd_ps(a, w[v], acc[i][v]);
            }
        }
    }
    const __m256 zero = _mm256_setzero_ps();
    for (int v = 0; v < NV; v++) {
        const __m256 b = bias != NULL ? _mm256_loadu_ps(bias + 8 * v) : zero;
        for (int i = 0; i < NR; i++) {
            __m256 r = acc[i][v];
            if (bias != NULL)
                r = _mm256_add_ps(r, b);
            if (relu) /* max(r, 0): NaN in r gives the second operand, 0 */
                r = _mm256_max_ps(r, zero);
            _mm256_storeu_ps(out + i * F + 8 * v, r);
        }
    }
}

/* dW rows [0, NR) x columns [0, 8*NV) of a tile += sum over the P rows of A and dY. */
DIRECT_INLINE FC_TARGET_AVX2 void kernel_grad_tile(int NR, int NV, int64_t P,
                                                   const float *A, int64_t lda,
                                                   const int64_t *aoff, const float *dY,
                                                   int64_t ldy, float *dW, int64_t ldw,
                                                   int accumulate)
{
    __m256 acc[TILE_ROWS][2];
    const float *a_row[TILE_ROWS];
    for (int i = 0; i < NR; i++)
        a_row[i] = A + aoff[i];
    for (int i = 0; i < NR; i++)
        for (int v = 0; v < NV; v++)
            acc[i][v] = accumulate ? _mm256_loadu_ps(dW + i * ldw + 8 * v) : _mm256_setzero_ps();
    for (int64_t p = 0; p < P; p++) {
        __m256 d[2];
        for (int v = 0; v < NV; v++)
            d[v] = _mm256_loadu_ps(dY + p * ldy + 8 * v);
        for (int i = 0; i < NR; i++) {
            const __m256 a = _mm256_broadcast_ss(a_row[i] + p * lda);
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm256_fmadd_ps(a, d[v], acc[i][v]);
        }
    }
    for (int i = 0; i < NR; i++)
        for (int v = 0; v < NV; v++)
            _mm256_storeu_ps(dW + i * ldw + 8 * v, acc[i][v]);
}

/* One instance per (rows, vectors) so every loop above unrolls with constants. */
#define DIRECT_CASES(CALL, NV) \
    switch (nr) {              \
    case 6: CALL(6, NV); break; \
    case 5: CALL(5, NV); break; \
    case 4: CALL(4, NV); break; \
    case 3: CALL(3, NV); break; \
    case 2: CALL(2, NV); break; \
    default: CALL(1, NV); break; \
    }

FC_TARGET_AVX2 static void forward_rows_avx2(int64_t P, int64_t F, int64_t K, const float *A,
                                             int64_t lda, int64_t seg, int64_t seg_stride,
                                             const float *W, const float *bias, int relu,
                                             float *out)
{
    const int64_t F8 = F - F % 8;
    for (int64_t p0 = 0; p0 < P; p0 += TILE_ROWS) {
        const int nr = (int)(P - p0 < TILE_ROWS ? P - p0 : TILE_ROWS);
        const float *a = A + p0 * lda;
        float *o = out + p0 * F;
        int64_t f0 = 0;
#define FWD(R, V) \
    forward_tile(R, V, F, K, a, lda, seg, seg_stride, W + f0, bias ? bias + f0 : NULL, relu, \
                 o + f0)
        for (; f0 + 16 <= F8; f0 += 16)
            DIRECT_CASES(FWD, 2)
        if (f0 < F8) {
            DIRECT_CASES(FWD, 1)
            f0 += 8;
        }
#undef FWD
        if (f0 < F)
            forward_cols_generic(nr, f0, F, F, K, a, lda, seg, seg_stride, W, bias, relu, o);
    }
}

FC_TARGET_AVX2 static void kernel_grad_rows_avx2(int64_t P, int64_t F, int64_t K,
                                                 const float *A, int64_t lda, int64_t seg,
                                                 int64_t seg_stride, const float *dY,
                                                 int64_t ldy, float *dW, int64_t ldw,
                                                 int accumulate)
{
    const int64_t F8 = F - F % 8;
    for (int64_t k0 = 0; k0 < K; k0 += TILE_ROWS) {
        const int nr = (int)(K - k0 < TILE_ROWS ? K - k0 : TILE_ROWS);
        int64_t aoff[TILE_ROWS];
        for (int i = 0; i < nr; i++)
            aoff[i] = a_offset(k0 + i, seg, seg_stride);
        int64_t f0 = 0;
#define KGRAD(R, V) \
    kernel_grad_tile(R, V, P, A, lda, aoff, dY + f0, ldy, dW + k0 * ldw + f0, ldw, accumulate)
        for (; f0 + 16 <= F8; f0 += 16)
            DIRECT_CASES(KGRAD, 2)
        if (f0 < F8) {
            DIRECT_CASES(KGRAD, 1)
            f0 += 8;
        }
#undef KGRAD
        if (f0 < F)
            kernel_grad_cols_generic(P, f0, F, k0, k0 + nr, A, lda, seg, seg_stride, dY, ldy,
                                     dW, ldw, accumulate);
    }
}
#endif

/* ---------------------------------------------------------------------- max pool */

static void maxpool_cols_generic(const float *FC_RESTRICT z, int64_t ph, int64_t pw,
                                 int64_t OW, int64_t F, int64_t PW, int64_t base, int64_t f0,
                                 float *FC_RESTRICT y, int32_t *FC_RESTRICT indices)
{
    for (int64_t pc = 0; pc < PW; pc++)
        for (int64_t f = f0; f < F; f++) {
            const int64_t first = pc * pw * F + f;
            float best = z[first];
            int64_t bi = first;
            for (int64_t r = 0; r < ph; r++)
                for (int64_t c = r == 0 ? 1 : 0; c < pw; c++) {
                    const int64_t off = (r * OW + pc * pw + c) * F + f;
                    if (z[off] > best) {
                        best = z[off];
                        bi = off;
                    }
                }
            y[pc * F + f] = best;
            if (indices != NULL)
                indices[pc * F + f] = (int32_t)(base + bi);
        }
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static void maxpool_lines_avx2(const float *FC_RESTRICT z, int64_t ph,
                                              int64_t pw, int64_t OW, int64_t F, int64_t PW,
                                              int64_t base, float *FC_RESTRICT y,
                                              int32_t *FC_RESTRICT indices)
{
    const int64_t F8 = F - F % 8;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t pc = 0; pc < PW; pc++)
        for (int64_t f = 0; f < F8; f += 8) {
            const int64_t first = pc * pw * F + f;
            __m256 best = _mm256_loadu_ps(z + first);
            __m256i bi = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(base + first)), lanes);
            for (int64_t r = 0; r < ph; r++)
                for (int64_t c = r == 0 ? 1 : 0; c < pw; c++) {
                    const int64_t off = (r * OW + pc * pw + c) * F + f;
                    const __m256 v = _mm256_loadu_ps(z + off);
                    const __m256 gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
                    const __m256i oi =
                        _mm256_add_epi32(_mm256_set1_epi32((int32_t)(base + off)), lanes);
                    best = _mm256_blendv_ps(best, v, gt);
                    bi = _mm256_castps_si256(_mm256_blendv_ps(
                        _mm256_castsi256_ps(bi), _mm256_castsi256_ps(oi), gt));
                }
            _mm256_storeu_ps(y + pc * F + f, best);
            _mm256_storeu_si256((__m256i *)(indices + pc * F + f), bi);
        }
    if (F8 < F)
        maxpool_cols_generic(z, ph, pw, OW, F, PW, base, F8, y, indices);
}
#endif

#ifdef FC_HAVE_AVX2_PATH
/* Values only (inference): the same maxima, without the index stores' memory traffic.
 * max(v, best) keeps best where v is not greater, as the indexed loops' compare does. */
FC_TARGET_AVX2 static void maxpool_values_avx2(const float *FC_RESTRICT z, int64_t ph,
                                               int64_t pw, int64_t OW, int64_t F, int64_t PW,
                                               float *FC_RESTRICT y)
{
    const int64_t F8 = F - F % 8;
    for (int64_t pc = 0; pc < PW; pc++)
        for (int64_t f = 0; f < F8; f += 8) {
            __m256 best = _mm256_loadu_ps(z + pc * pw * F + f);
            for (int64_t r = 0; r < ph; r++)
                for (int64_t c = r == 0 ? 1 : 0; c < pw; c++)
                    best = _mm256_max_ps(_mm256_loadu_ps(z + (r * OW + pc * pw + c) * F + f),
                                         best);
            _mm256_storeu_ps(y + pc * F + f, best);
        }
    if (F8 < F)
        maxpool_cols_generic(z, ph, pw, OW, F, PW, 0, F8, y, NULL);
}
#endif

void fc_direct_maxpool_lines(const float *z, int64_t ph, int64_t pw, int64_t OW, int64_t F,
                             int64_t PW, int64_t base, float *y, int32_t *indices)
{
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        if (indices == NULL)
            maxpool_values_avx2(z, ph, pw, OW, F, PW, y);
        else
            maxpool_lines_avx2(z, ph, pw, OW, F, PW, base, y, indices);
        return;
    }
#endif
    maxpool_cols_generic(z, ph, pw, OW, F, PW, base, 0, y, indices);
}

/* ------------------------------------------------------------- max pool, backward */

static int maxpool_backward_cols_generic(const float *FC_RESTRICT dy, const float *FC_RESTRICT y,
                                         const int32_t *FC_RESTRICT indices, int64_t ph,
                                         int64_t pw, int64_t OW, int64_t F, int64_t PW,
                                         int64_t base, int64_t f0, float *FC_RESTRICT dz,
                                         float *FC_RESTRICT line_bias)
{
    int bad = 0;
    for (int64_t pc = 0; pc < PW; pc++)
        for (int64_t f = f0; f < F; f++) {
            const float v = y[pc * F + f] > 0.0f ? dy[pc * F + f] : 0.0f;
            const int64_t want = (int64_t)indices[pc * F + f] - base;
            int found = 0;
            for (int64_t r = 0; r < ph; r++)
                for (int64_t c = 0; c < pw; c++) {
                    const int64_t off = (r * OW + pc * pw + c) * F + f;
                    const int hit = off == want;
                    dz[off] = hit ? v : 0.0f;
                    found |= hit;
                }
            if (found)
                line_bias[f] += v;
            else
                bad = 1;
        }
    return bad;
}

#ifdef FC_HAVE_AVX2_PATH
FC_TARGET_AVX2 static int maxpool_backward_lines_avx2(const float *FC_RESTRICT dy,
                                                      const float *FC_RESTRICT y,
                                                      const int32_t *FC_RESTRICT indices,
                                                      int64_t ph, int64_t pw, int64_t OW,
                                                      int64_t F, int64_t PW, int64_t base,
                                                      float *FC_RESTRICT dz,
                                                      float *FC_RESTRICT line_bias)
{
    const int64_t F8 = F - F % 8;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 zero = _mm256_setzero_ps();
    int bad = 0;
    for (int64_t pc = 0; pc < PW; pc++)
        for (int64_t f = 0; f < F8; f += 8) {
            const __m256 yv = _mm256_loadu_ps(y + pc * F + f);
            const __m256 v = _mm256_and_ps(_mm256_cmp_ps(yv, zero, _CMP_GT_OQ),
                                           _mm256_loadu_ps(dy + pc * F + f));
            const __m256i want = _mm256_loadu_si256((const __m256i *)(indices + pc * F + f));
            __m256i found = _mm256_setzero_si256();
            for (int64_t r = 0; r < ph; r++)
                for (int64_t c = 0; c < pw; c++) {
                    const int64_t off = (r * OW + pc * pw + c) * F + f;
                    const __m256i here =
                        _mm256_add_epi32(_mm256_set1_epi32((int32_t)(base + off)), lanes);
                    const __m256i hit = _mm256_cmpeq_epi32(here, want);
                    _mm256_storeu_ps(dz + off, _mm256_and_ps(_mm256_castsi256_ps(hit), v));
                    found = _mm256_or_si256(found, hit);
                }
            const __m256 passed = _mm256_and_ps(_mm256_castsi256_ps(found), v);
            _mm256_storeu_ps(line_bias + f, _mm256_add_ps(_mm256_loadu_ps(line_bias + f), passed));
            bad |= _mm256_movemask_ps(_mm256_castsi256_ps(found)) != 0xff;
        }
    if (F8 < F)
        bad |= maxpool_backward_cols_generic(dy, y, indices, ph, pw, OW, F, PW, base, F8, dz,
                                             line_bias);
    return bad;
}
#endif

int fc_direct_maxpool_backward_lines(const float *dy, const float *y, const int32_t *indices,
                                     int64_t ph, int64_t pw, int64_t OW, int64_t F, int64_t PW,
                                     int64_t base, float *dz, float *line_bias)
{
    /* columns past the last whole window get no gradient */
    for (int64_t r = 0; r < ph && PW * pw < OW; r++)
        memset(dz + (r * OW + PW * pw) * F, 0, (size_t)((OW - PW * pw) * F) * sizeof(float));
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1)
        return maxpool_backward_lines_avx2(dy, y, indices, ph, pw, OW, F, PW, base, dz,
                                           line_bias);
#endif
    return maxpool_backward_cols_generic(dy, y, indices, ph, pw, OW, F, PW, base, 0, dz,
                                         line_bias);
}

/* ---------------------------------------------------------------------- dispatch */

void fc_direct_forward_rows(int64_t P, int64_t F, int64_t K, const float *A, int64_t lda,
                            int64_t seg, int64_t seg_stride, const float *W,
                            const float *bias, int relu, float *out)
{
    if (P <= 0 || F <= 0)
        return;
    if (seg <= 0 || K % seg != 0)
        seg = K, seg_stride = 0;
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        forward_rows_avx2(P, F, K, A, lda, seg, seg_stride, W, bias, relu, out);
        return;
    }
#endif
    forward_cols_generic(P, 0, F, F, K, A, lda, seg, seg_stride, W, bias, relu, out);
}

void fc_direct_kernel_grad_rows(int64_t P, int64_t F, int64_t K, const float *A, int64_t lda,
                                int64_t seg, int64_t seg_stride, const float *dY, int64_t ldy,
                                float *dW, int64_t ldw, int accumulate)
{
    if (seg <= 0 || K % seg != 0)
        seg = K, seg_stride = 0;
    if (K <= 0 || F <= 0)
        return;
    if (P <= 0) {
        if (!accumulate)
            for (int64_t k = 0; k < K; k++)
                memset(dW + k * ldw, 0, (size_t)F * sizeof(float));
        return;
    }
#ifdef FC_HAVE_AVX2_PATH
    if (fc_simd_level() >= 1) {
        kernel_grad_rows_avx2(P, F, K, A, lda, seg, seg_stride, dY, ldy, dW, ldw, accumulate);
        return;
    }
#endif
    kernel_grad_cols_generic(P, 0, F, 0, K, A, lda, seg, seg_stride, dY, ldy, dW, ldw,
                             accumulate);
}
