/* Depthwise 2-D convolution: see depthwise.h for the contract.
 *
 * All three passes work on Q = C*M "lanes": with M > 1 each input row is first expanded to
 * (W, C*M) (lane c*M + m holds channel c) in a per-thread buffer, so one lane-wise core
 * serves every depth multiplier. The cores keep up to 32 lanes of accumulators in
 * registers across all taps (or all pixels of a line, for the kernel gradient).
 * With M == 1 (MobileNet's case) faster cores take over: the forward's register-blocked
 * pixel rows (fwd_line1), the input gradient at stride 1 as that forward with a flipped
 * kernel, and for 3x3 windows the kernel gradient's register-resident tap sums with the
 * bias gradient in the same pass (dk3_line). Where both gradients take those paths and dx
 * has dy's shape, fc_depthwise_backward runs them as one pass over dy.
 */
#include <string.h>

#include "depthwise.h"

#if defined(__GNUC__) || defined(__clang__)
#define DW_INLINE static inline __attribute__((always_inline))
#else
#define DW_INLINE static inline
#endif

#define DW_MAX_BLOCKS 64    /* kernel-gradient partial sums: fixed, thread-independent */
/* ... and at most this many floats of them (at least DW_MIN_BLOCKS blocks): a fresh
 * multi-MB buffer per call costs more page faults than the wide channels save */
#define DW_PARTIAL_FLOATS (1 << 16)
#define DW_MIN_BLOCKS 8
#define DW_PREFETCH_MIN_BYTES ((int64_t)4 << 20)  /* per thread, see prefetch_pays */
#define DW_RUN 256          /* partial sums combined per step, per thread */

/* 8 lanes as one value: GCC/Clang vector extensions give AVX2 code in the FC_TARGET_AVX2
 * copies and SSE pairs in the portable ones; every lane is the same IEEE mul and add. */
typedef float dw_v8 __attribute__((vector_size(32)));
typedef int32_t dw_v8i __attribute__((vector_size(32)));
#if defined(__GNUC__) && !defined(__clang__)
/* the helpers below are always inlined: no 32-byte vector crosses a call boundary */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* unaligned 8-lane access (the vector type with 4-byte alignment) */
typedef float dw_v8u __attribute__((vector_size(32), aligned(4)));
#define DW_LOAD(p) (*(const dw_v8u *)(p))
#define DW_STORE(p, v) (*(dw_v8u *)(p) = (v))

/* ------------------------------------------------------------------ lane-wise cores */
/* Each core handles lanes [q0, q0 + 8*NV) with NV accumulators held in registers (NV a
 * compile-time constant after inlining), and its _tail twin lanes [q0, Q) one by one. */

/* One output line: rows[i] is input row oh*sh - pt + i*dh as (W, Q) lanes, or NULL
 * outside the input. */
/* bias, ReLU and store of one output pixel's NV accumulators */
DW_INLINE void fwd_finish(dw_v8 *acc, const float *bias, int relu, int64_t q0, const int NV,
                          float *o)
{
    int v;
    for (v = 0; v < NV; v++) {
        if (bias)
            acc[v] += DW_LOAD(bias + q0 + 8 * v);
        if (relu)
            acc[v] = (dw_v8)((dw_v8i)acc[v] & (dw_v8i)(acc[v] > (dw_v8){0}));
        DW_STORE(o + 8 * v, acc[v]);
    }
}

/* One output pixel, every tap bounds-checked, NV (<= 4) vectors of 8 lanes. */
DW_INLINE void fwd_pixel(const fc_depthwise_geometry *g, const float *const *rows,
                         const float *k, const float *bias, int relu, int64_t Q, int64_t q0,
                         const int NV, int64_t ow, float *out_line)
{
    dw_v8 acc[4];
    int64_t i, j;
    int v;
    for (v = 0; v < NV; v++)
        acc[v] = (dw_v8){0};
    for (i = 0; i < g->kh; i++) {
        if (!rows[i])
            continue;
        for (j = 0; j < g->kw; j++) {
            const int64_t iw = ow * g->sw - g->pad_left + j * g->dw;
            const float *xp, *kp;
            if (iw < 0 || iw >= g->w)
                continue;
            xp = rows[i] + iw * Q + q0;
            kp = k + (i * g->kw + j) * Q + q0;
            for (v = 0; v < NV; v++)
                acc[v] += DW_LOAD(xp + 8 * v) * DW_LOAD(kp + 8 * v);
        }
    }
    fwd_finish(acc, bias, relu, q0, NV, out_line + ow * Q + q0);
}

/* Output pixels go in pairs (two independent accumulator sets hide the add latency); each
 * pixel still sums its taps in (i, j) order, as a lone pixel does. */
DW_INLINE void fwd_vec(const fc_depthwise_geometry *g, const float *const *rows,
                       const float *k, const float *bias, int relu, int64_t Q, int64_t q0,
                       const int NV, float *out_line)
{
    int64_t ow = 0, i, j;
    int v;
    for (; ow + 1 < g->ow; ow += 2) {
        dw_v8 a0[4], a1[4];
        for (v = 0; v < NV; v++)
            a0[v] = a1[v] = (dw_v8){0};
        for (i = 0; i < g->kh; i++) {
            if (!rows[i])
                continue;
            for (j = 0; j < g->kw; j++) {
                const int64_t iw = ow * g->sw - g->pad_left + j * g->dw, iw1 = iw + g->sw;
                const int ok0 = iw >= 0 && iw < g->w, ok1 = iw1 >= 0 && iw1 < g->w;
                const float *kp = k + (i * g->kw + j) * Q + q0;
                const float *x0 = rows[i] + iw * Q + q0, *x1 = rows[i] + iw1 * Q + q0;
                if (ok0 && ok1) {
                    for (v = 0; v < NV; v++) {
                        const dw_v8 kv = DW_LOAD(kp + 8 * v);
                        a0[v] += DW_LOAD(x0 + 8 * v) * kv;
                        a1[v] += DW_LOAD(x1 + 8 * v) * kv;
                    }
                } else if (ok0) {
                    for (v = 0; v < NV; v++)
                        a0[v] += DW_LOAD(x0 + 8 * v) * DW_LOAD(kp + 8 * v);
                } else if (ok1) {
                    for (v = 0; v < NV; v++)
                        a1[v] += DW_LOAD(x1 + 8 * v) * DW_LOAD(kp + 8 * v);
                }
            }
        }
        fwd_finish(a0, bias, relu, q0, NV, out_line + ow * Q + q0);
        fwd_finish(a1, bias, relu, q0, NV, out_line + (ow + 1) * Q + q0);
    }
    for (; ow < g->ow; ow++)
        fwd_pixel(g, rows, k, bias, relu, Q, q0, NV, ow, out_line);
}

DW_INLINE void fwd_tail(const fc_depthwise_geometry *g, const float *const *rows,
                        const float *k, const float *bias, int relu, int64_t Q, int64_t q0,
                        float *out_line)
{
    int64_t ow, i, j, q;
    for (ow = 0; ow < g->ow; ow++)
        for (q = q0; q < Q; q++) {
            float acc = 0.0f;
            for (i = 0; i < g->kh; i++) {
                if (!rows[i])
                    continue;
                for (j = 0; j < g->kw; j++) {
                    const int64_t iw = ow * g->sw - g->pad_left + j * g->dw;
                    if (iw >= 0 && iw < g->w)
                        acc += rows[i][iw * Q + q] * k[(i * g->kw + j) * Q + q];
                }
            }
            if (bias)
                acc += bias[q];
            if (relu)
                acc = acc > 0.0f ? acc : 0.0f;
            out_line[ow * Q + q] = acc;
        }
}


/* One input line's lane gradients into tline (W, Q): dyrows[i] is the dy line (OW, Q)
 * whose tap row i reads this input line, or NULL; src[iw*KW + j] the output column whose
 * tap column j reads input column iw, or -1. */
DW_INLINE void dx_vec(const fc_depthwise_geometry *g, const float *const *dyrows,
                      const int64_t *src, const float *k, int64_t Q, int64_t q0, const int NV,
                      float *tline)
{
    int64_t iw = 0, i, j, ow;
    int v;
    /* input pixels in pairs, as the forward's outputs (each still sums in (i, j) order) */
    for (; iw + 1 < g->w; iw += 2) {
        dw_v8 a0[4], a1[4];
        for (v = 0; v < NV; v++)
            a0[v] = a1[v] = (dw_v8){0};
        for (i = 0; i < g->kh; i++) {
            if (!dyrows[i])
                continue;
            for (j = 0; j < g->kw; j++) {
                const int64_t o0 = src[iw * g->kw + j], o1 = src[(iw + 1) * g->kw + j];
                const float *kp = k + (i * g->kw + j) * Q + q0;
                const float *d0 = dyrows[i] + o0 * Q + q0, *d1 = dyrows[i] + o1 * Q + q0;
                if (o0 >= 0 && o1 >= 0) {
                    for (v = 0; v < NV; v++) {
                        const dw_v8 kv = DW_LOAD(kp + 8 * v);
                        a0[v] += DW_LOAD(d0 + 8 * v) * kv;
                        a1[v] += DW_LOAD(d1 + 8 * v) * kv;
                    }
                } else if (o0 >= 0) {
                    for (v = 0; v < NV; v++)
                        a0[v] += DW_LOAD(d0 + 8 * v) * DW_LOAD(kp + 8 * v);
                } else if (o1 >= 0) {
                    for (v = 0; v < NV; v++)
                        a1[v] += DW_LOAD(d1 + 8 * v) * DW_LOAD(kp + 8 * v);
                }
            }
        }
        for (v = 0; v < NV; v++) {
            DW_STORE(tline + iw * Q + q0 + 8 * v, a0[v]);
            DW_STORE(tline + (iw + 1) * Q + q0 + 8 * v, a1[v]);
        }
    }
    for (; iw < g->w; iw++) {
        dw_v8 acc[4];
        for (v = 0; v < NV; v++)
            acc[v] = (dw_v8){0};
        for (i = 0; i < g->kh; i++) {
            if (!dyrows[i])
                continue;
            for (j = 0; j < g->kw; j++) {
                const float *dp, *kp;
                if ((ow = src[iw * g->kw + j]) < 0)
                    continue;
                dp = dyrows[i] + ow * Q + q0;
                kp = k + (i * g->kw + j) * Q + q0;
                for (v = 0; v < NV; v++)
                    acc[v] += DW_LOAD(dp + 8 * v) * DW_LOAD(kp + 8 * v);
            }
        }
        for (v = 0; v < NV; v++)
            DW_STORE(tline + iw * Q + q0 + 8 * v, acc[v]);
    }
}

DW_INLINE void dx_tail(const fc_depthwise_geometry *g, const float *const *dyrows,
                       const int64_t *src, const float *k, int64_t Q, int64_t q0,
                       float *tline)
{
    int64_t iw, i, j, ow, q;
    for (iw = 0; iw < g->w; iw++)
        for (q = q0; q < Q; q++) {
            float acc = 0.0f;
            for (i = 0; i < g->kh; i++) {
                if (!dyrows[i])
                    continue;
                for (j = 0; j < g->kw; j++)
                    if ((ow = src[iw * g->kw + j]) >= 0)
                        acc += dyrows[i][ow * Q + q] * k[(i * g->kw + j) * Q + q];
            }
            tline[iw * Q + q] = acc;
        }
}

/* Adds one output line's kernel-gradient terms to p (KH*KW, Q). */
DW_INLINE void dk_vec(const fc_depthwise_geometry *g, const float *const *rows,
                      const float *dyline, int64_t Q, int64_t q0, const int NV, float *p)
{
    int64_t ow, i, j;
    int v;
    for (i = 0; i < g->kh; i++) {
        if (!rows[i])
            continue;
        for (j = 0; j < g->kw; j++) {
            dw_v8 acc[4];
            float *pp = p + (i * g->kw + j) * Q + q0;
            for (v = 0; v < NV; v++)
                acc[v] = DW_LOAD(pp + 8 * v);
            for (ow = 0; ow < g->ow; ow++) {
                const int64_t iw = ow * g->sw - g->pad_left + j * g->dw;
                const float *xp, *dp;
                if (iw < 0 || iw >= g->w)
                    continue;
                xp = rows[i] + iw * Q + q0;
                dp = dyline + ow * Q + q0;
                for (v = 0; v < NV; v++)
                    acc[v] += DW_LOAD(xp + 8 * v) * DW_LOAD(dp + 8 * v);
            }
            for (v = 0; v < NV; v++)
                DW_STORE(pp + 8 * v, acc[v]);
        }
    }
}

DW_INLINE void dk_tail(const fc_depthwise_geometry *g, const float *const *rows,
                       const float *dyline, int64_t Q, int64_t q0, float *p)
{
    int64_t ow, i, j, q;
    for (i = 0; i < g->kh; i++) {
        if (!rows[i])
            continue;
        for (j = 0; j < g->kw; j++)
            for (q = q0; q < Q; q++) {
                float acc = p[(i * g->kw + j) * Q + q];
                for (ow = 0; ow < g->ow; ow++) {
                    const int64_t iw = ow * g->sw - g->pad_left + j * g->dw;
                    if (iw >= 0 && iw < g->w)
                        acc += rows[i][iw * Q + q] * dyline[ow * Q + q];
                }
                p[(i * g->kw + j) * Q + q] = acc;
            }
    }
}

/* ------------------------------------------------------------------ M == 1 fast cores */
/* With one filter per channel the lanes are x's own channels (no expansion). The forward
 * walks each output line pixel block by pixel block, all channels of a block before the
 * next (memory is read in order). Edge pixels (some tap outside the input) check every
 * tap (fwd_pixel); interior blocks of P pixels do not, and 8 lanes at a time keep P
 * accumulators and the row's kernel taps in registers while sliding over the row's x
 * columns: each x vector is loaded once and used by every pixel whose window holds it.
 * Every pixel still sums its taps in (i, j) order. */
/* complete unrolling keeps the accumulator and tap arrays in registers */
#if defined(__GNUC__) && !defined(__clang__)
#define DW_UNROLL _Pragma("GCC unroll 32")
#elif defined(__clang__)
#define DW_UNROLL _Pragma("unroll")
#else
#define DW_UNROLL
#endif
#define DW_P 8      /* interior pixels per block: 8 accumulators + 3 taps + 1 x in 16 regs */
#define DW_PG 4     /* the same with run-time kernel width / strides */


/* P interior pixels from column x0 (= ow*SW - pad_left), lanes [q0, q0 + 8), for a constant
 * kernel width KW <= 3, stride SW and dilation DWD: x column c feeds pixel p through tap
 * j = (c - p*SW) / DWD, so for each pixel the taps still come in (i, j) order. */
DW_INLINE void fwd_block_slide(const float *const *rows, const float *k, const float *bias,
                               int relu, int64_t KH, const int KW, const int SW,
                               const int DWD, int64_t Q, int64_t q0, const int P, int64_t x0,
                               float *o)
{
    dw_v8 acc[DW_P], kv[3];
    int64_t i;
    int p, j, c;
    const int span = (P - 1) * SW + (KW - 1) * DWD + 1;
    for (p = 0; p < P; p++)
        acc[p] = (dw_v8){0};
    for (i = 0; i < KH; i++) {
        const float *xr, *kr;
        if (!rows[i])
            continue;
        xr = rows[i] + x0 * Q + q0;
        kr = k + i * KW * Q + q0;
        DW_UNROLL
        for (j = 0; j < KW; j++)
            kv[j] = DW_LOAD(kr + j * Q);
        DW_UNROLL
        for (c = 0; c < span; c++) {
            const dw_v8 xv = DW_LOAD(xr + c * Q);
            DW_UNROLL
            for (p = 0; p < P; p++) {
                const int d = c - p * SW;
                if (d >= 0 && d % DWD == 0 && d / DWD < KW)
                    acc[p] += xv * kv[d / DWD];
            }
        }
    }
    for (p = 0; p < P; p++)
        fwd_finish(acc + p, bias, relu, q0, 1, o + p * Q);
}

/* The same for any geometry: each tap's kernel vector loaded once for the P pixels. */
DW_INLINE void fwd_block_any(const fc_depthwise_geometry *g, const float *const *rows,
                             const float *k, const float *bias, int relu, int64_t Q,
                             int64_t q0, const int P, int64_t x0, float *o)
{
    dw_v8 acc[DW_PG];
    int64_t i, j;
    int p;
    for (p = 0; p < P; p++)
        acc[p] = (dw_v8){0};
    for (i = 0; i < g->kh; i++) {
        const float *xr;
        if (!rows[i])
            continue;
        xr = rows[i] + x0 * Q + q0;
        for (j = 0; j < g->kw; j++) {
            const dw_v8 kv = DW_LOAD(k + (i * g->kw + j) * Q + q0);
            const float *xp = xr + j * g->dw * Q;
            for (p = 0; p < P; p++)
                acc[p] += DW_LOAD(xp + p * g->sw * Q) * kv;
        }
    }
    for (p = 0; p < P; p++)
        fwd_finish(acc + p, bias, relu, q0, 1, o + p * Q);
}

/* Output pixels [ow_lo, ow_hi) read only columns inside the input. */
static void interior_range(const fc_depthwise_geometry *g, int64_t *lo, int64_t *hi)
{
    const int64_t a = (g->pad_left + g->sw - 1) / g->sw;
    const int64_t last = g->w - 1 + g->pad_left - (g->kw - 1) * g->dw; /* ow*sw <= last */
    int64_t b = last < 0 ? 0 : last / g->sw + 1;
    if (b > g->ow)
        b = g->ow;
    *lo = a < g->ow ? a : g->ow;
    *hi = b > *lo ? b : *lo;
}

/* Edge pixel ow, every 8-lane block (the lanes past the last full block: fwd_tail). */
DW_INLINE void fwd_edge(const fc_depthwise_geometry *g, const float *const *rows,
                        const float *k, const float *bias, int relu, int64_t Q, int64_t ow,
                        float *out)
{
    int64_t q0;
    for (q0 = 0; q0 + 8 <= Q; q0 += 8)
        fwd_pixel(g, rows, k, bias, relu, Q, q0, 1, ow, out);
}

/* Asks for columns [c0, c1) of the input rows the next lines read first (rows[kh] and
 * rows[kh + 1], or NULL; see prefetch_rows):
 * the lines walk x row by row with strided channel blocks, which the hardware prefetchers
 * follow poorly once x no longer fits in cache. */
DW_INLINE void prefetch_cols(const fc_depthwise_geometry *g, const float *const *pf,
                             int64_t Q, int64_t c0, int64_t c1)
{
    const char *a, *e;
    int t;
    if (c1 > g->w)
        c1 = g->w;
    if (c0 >= c1)
        return;
    /* two lines ahead: one line of compute is shorter than DRAM latency under load */
    for (t = 0; t < 2; t++)
        if (pf[t])
            for (a = (const char *)(pf[t] + c0 * Q), e = (const char *)(pf[t] + c1 * Q); a < e;
                 a += 64)
                __builtin_prefetch(a, 0, 3);
}

/* One output line, M == 1; KW == 0 selects the run-time geometry. */
DW_INLINE void fwd_line1_body(const fc_depthwise_geometry *g, const float *const *rows,
                              const float *k, const float *bias, int relu, int64_t Q,
                              const int KW, const int SW, const int DWD, float *out)
{
    const int64_t Q8 = Q & ~(int64_t)7;
    int64_t lo, hi, ow, q0;
    const float *const *pf = rows + g->kh;
    interior_range(g, &lo, &hi);
    prefetch_cols(g, pf, Q, 0, lo * g->sw);
    for (ow = 0; ow < lo; ow++)
        fwd_edge(g, rows, k, bias, relu, Q, ow, out);
    if (KW) {
        while (ow < hi) {
            const int64_t x0 = ow * SW - g->pad_left, np = hi - ow < DW_P ? hi - ow : DW_P;
            float *o = out + ow * Q;
            prefetch_cols(g, pf, Q, ow * SW, (ow + np) * SW);
            ow += np;
            /* the last block takes the pixels left, still in registers */
            switch (np) {
#define DW_SLIDE_CASE(P)                                                                       \
    case P:                                                                                    \
        for (q0 = 0; q0 < Q8; q0 += 8)                                                         \
            fwd_block_slide(rows, k, bias, relu, g->kh, KW, SW, DWD, Q, q0, P, x0, o + q0);    \
        break;
            DW_SLIDE_CASE(8) DW_SLIDE_CASE(7) DW_SLIDE_CASE(6) DW_SLIDE_CASE(5)
            DW_SLIDE_CASE(4) DW_SLIDE_CASE(3) DW_SLIDE_CASE(2) default: DW_SLIDE_CASE(1)
#undef DW_SLIDE_CASE
            }
        }
    } else {
        for (; ow + DW_PG <= hi; ow += DW_PG)
            for (q0 = 0; q0 < Q8; q0 += 8)
                fwd_block_any(g, rows, k, bias, relu, Q, q0, DW_PG, ow * g->sw - g->pad_left,
                              out + ow * Q + q0);
    }
    for (; ow < hi; ow++)
        for (q0 = 0; q0 < Q8; q0 += 8)
            fwd_block_any(g, rows, k, bias, relu, Q, q0, 1, ow * g->sw - g->pad_left,
                          out + ow * Q + q0);
    prefetch_cols(g, pf, Q, lo > ow ? lo * g->sw : ow * g->sw, g->w);
    for (; ow < g->ow; ow++)
        fwd_edge(g, rows, k, bias, relu, Q, ow, out);
    if (Q8 < Q)
        fwd_tail(g, rows, k, bias, relu, Q, Q8, out);
}

/* Kernel gradient, M == 1, 3x3 windows: for 8 lanes at a time the 9 tap sums and the bias
 * sum stay in registers over a whole output line (each dy vector loaded once, each x vector
 * once per tap); edge pixels check the columns, rows outside the input are skipped. Every
 * sum adds the line's pixels in order. */
DW_INLINE void dk3_pixel(const fc_depthwise_geometry *g, const float *const *rows,
                         const float *dyline, int64_t Q, int64_t q0, int64_t ow,
                         const int check, const int64_t SW, const int64_t DWD, dw_v8 *acc)
{
    const dw_v8 dv = DW_LOAD(dyline + ow * Q + q0);
    const int64_t x0 = ow * SW - g->pad_left;
    int i, j;
    DW_UNROLL
    for (i = 0; i < 3; i++) {
        if (!rows[i])
            continue;
        DW_UNROLL
        for (j = 0; j < 3; j++) {
            const int64_t iw = x0 + j * DWD;
            if (!check || (iw >= 0 && iw < g->w))
                acc[i * 3 + j] += DW_LOAD(rows[i] + iw * Q + q0) * dv;
        }
    }
    acc[9] += dv;
}

/* Interior pixels ow and ow + 1 (constant SW, DWD): x column c of the pair's window feeds
 * pixel p through tap j = (c - p*SW) / DWD, so columns both pixels read are loaded once;
 * every tap sum still adds pixel ow before ow + 1. */
DW_INLINE void dk3_pair(const float *const *rows, const float *dyline, int64_t Q, int64_t q0,
                        int64_t ow, int64_t pad_left, const int SW, const int DWD, dw_v8 *acc)
{
    const dw_v8 dv0 = DW_LOAD(dyline + ow * Q + q0), dv1 = DW_LOAD(dyline + (ow + 1) * Q + q0);
    const int64_t x0 = ow * SW - pad_left;
    const int span = SW + 2 * DWD + 1;
    int i, c, p;
    DW_UNROLL
    for (i = 0; i < 3; i++) {
        if (!rows[i])
            continue;
        DW_UNROLL
        for (c = 0; c < span; c++) {
            const dw_v8 xv = DW_LOAD(rows[i] + (x0 + c) * Q + q0);
            DW_UNROLL
            for (p = 0; p < 2; p++) {
                const int d = c - p * SW;
                if (d >= 0 && d % DWD == 0 && d / DWD < 3)
                    acc[i * 3 + d / DWD] += xv * (p ? dv1 : dv0);
            }
        }
    }
    acc[9] += dv0;
    acc[9] += dv1;
}

/* Issues prefetches for the share-byte piece b of the len bytes at p (NULL: none). */
DW_INLINE void prefetch_share(const void *p, int64_t len, int64_t b, int64_t share)
{
    const char *a, *e;
    if (!p || b * share >= len)
        return;
    a = (const char *)p + b * share;
    e = (const char *)p + (b * share + share < len ? b * share + share : len);
    for (; a < e; a += 64)
        __builtin_prefetch(a, 0, 3);
}

/* One output line's terms for lanes [q0, q0 + 8) into p (9, Q) and pb (Q,). */
DW_INLINE void dk3_lanes(const fc_depthwise_geometry *g, const float *const *rows,
                         const float *dyline, int64_t Q, int64_t q0, const int64_t SW,
                         const int64_t DWD, const int PAIR, int64_t lo, int64_t hi, float *p,
                         float *pb)
{
    dw_v8 acc[10];
    int64_t ow;
    int e;
    DW_UNROLL
    for (e = 0; e < 9; e++)
        acc[e] = DW_LOAD(p + e * Q + q0);
    acc[9] = DW_LOAD(pb + q0);
    for (ow = 0; ow < lo; ow++)
        dk3_pixel(g, rows, dyline, Q, q0, ow, 1, SW, DWD, acc);
    if (PAIR)
        for (; ow + 1 < hi; ow += 2)
            dk3_pair(rows, dyline, Q, q0, ow, g->pad_left, (int)SW, (int)DWD, acc);
    for (; ow < hi; ow++)
        dk3_pixel(g, rows, dyline, Q, q0, ow, 0, SW, DWD, acc);
    for (; ow < g->ow; ow++)
        dk3_pixel(g, rows, dyline, Q, q0, ow, 1, SW, DWD, acc);
    DW_UNROLL
    for (e = 0; e < 9; e++)
        DW_STORE(p + e * Q + q0, acc[e]);
    DW_STORE(pb + q0, acc[9]);
}

/* rows[3], rows[4]: x rows the next lines read first and rows[5] the next dy line, to prefetch
 * (NULL: none); each 8-lane pass asks for its share of them. */
DW_INLINE void dk3_line_body(const fc_depthwise_geometry *g, const float *const *rows,
                             const float *dyline, int64_t Q, const int64_t SW,
                             const int64_t DWD, const int PAIR, float *p, float *pb)
{
    const int64_t Q8 = Q & ~(int64_t)7, nb = Q8 / 8;
    const int64_t xlen = g->w * Q * (int64_t)sizeof(float);
    const int64_t dylen = g->ow * Q * (int64_t)sizeof(float);
    int64_t lo, hi, q0, ow, q;
    interior_range(g, &lo, &hi);
    const int64_t xshare = nb ? (xlen + nb - 1) / nb : 0;
    const int64_t dyshare = nb ? (dylen + nb - 1) / nb : 0;
    for (q0 = 0; q0 < Q8; q0 += 8) {
        prefetch_share(rows[3], xlen, q0 / 8, xshare);
        prefetch_share(rows[4], xlen, q0 / 8, xshare);
        prefetch_share(rows[5], dylen, q0 / 8, dyshare);
        dk3_lanes(g, rows, dyline, Q, q0, SW, DWD, PAIR, lo, hi, p, pb);
    }
    if (Q8 < Q) {
        dk_tail(g, rows, dyline, Q, Q8, p);
        for (ow = 0; ow < g->ow; ow++)
            for (q = Q8; q < Q; q++)
                pb[q] += dyline[ow * Q + q];
    }
}

/* Whole-line drivers: blocks of 32 lanes, then one block of 8, 16 or 24, then single
 * lanes. Compiled twice, portable and AVX2. */
#define DW_SPLIT(CALL_VEC, CALL_TAIL)                                                          \
    int64_t q0 = 0;                                                                            \
    for (; q0 + 32 <= Q; q0 += 32)                                                             \
        CALL_VEC(4);                                                                           \
    switch ((Q - q0) / 8) {                                                                    \
    case 3: CALL_VEC(3); q0 += 24; break;                                                      \
    case 2: CALL_VEC(2); q0 += 16; break;                                                      \
    case 1: CALL_VEC(1); q0 += 8; break;                                                       \
    default: break;                                                                            \
    }                                                                                          \
    if (q0 < Q)                                                                                \
        CALL_TAIL;

#define DW_DEFINE_LINES(suffix, attr)                                                          \
    attr static void fwd_line_##suffix(const fc_depthwise_geometry *g, const float *const *rows,\
                                       const float *k, const float *bias, int relu, int64_t Q,  \
                                       float *out)                                              \
    {                                                                                           \
        DW_SPLIT(FWD_VEC, fwd_tail(g, rows, k, bias, relu, Q, q0, out))                         \
    }                                                                                           \
    attr static void dx_line_##suffix(const fc_depthwise_geometry *g,                           \
                                      const float *const *dyrows, const int64_t *src,           \
                                      const float *k, int64_t Q, float *tline)                  \
    {                                                                                           \
        DW_SPLIT(DX_VEC, dx_tail(g, dyrows, src, k, Q, q0, tline))                              \
    }                                                                                           \
    attr static void dk_line_##suffix(const fc_depthwise_geometry *g, const float *const *rows, \
                                      const float *dyline, int64_t Q, float *p)                 \
    {                                                                                           \
        DW_SPLIT(DK_VEC, dk_tail(g, rows, dyline, Q, q0, p))                                    \
    } \
    attr static void dk3_line_##suffix(const fc_depthwise_geometry *g,                          \
                                       const float *const *rows, const float *dyline,          \
                                       int64_t Q, float *p, float *pb)                          \
    {                                                                                           \
        if (g->sw == 1 && g->dw == 1)                                                           \
            dk3_line_body(g, rows, dyline, Q, 1, 1, 1, p, pb);                                   \
        else if (g->sw == 2 && g->dw == 1)                                                      \
            dk3_line_body(g, rows, dyline, Q, 2, 1, 1, p, pb);                                   \
        else                                                                                    \
            dk3_line_body(g, rows, dyline, Q, g->sw, g->dw, 0, p, pb);                           \
    }                                                                                           \
    attr static void fwd_line1_##suffix(const fc_depthwise_geometry *g,                         \
                                        const float *const *rows, const float *k,               \
                                        const float *bias, int relu, int64_t Q, float *out)     \
    {                                                                                           \
        /* constant geometry for the common 3-wide windows: shared x loads, no multiplies */    \
        if (g->kw == 3 && g->sw == 1 && g->dw == 1)                                             \
            fwd_line1_body(g, rows, k, bias, relu, Q, 3, 1, 1, out);                            \
        else if (g->kw == 3 && g->sw == 2 && g->dw == 1)                                        \
            fwd_line1_body(g, rows, k, bias, relu, Q, 3, 2, 1, out);                            \
        else                                                                                    \
            fwd_line1_body(g, rows, k, bias, relu, Q, 0, 1, 1, out);                          \
    }

#define FWD_VEC(NV) fwd_vec(g, rows, k, bias, relu, Q, q0, NV, out)
#define DX_VEC(NV) dx_vec(g, dyrows, src, k, Q, q0, NV, tline)
#define DK_VEC(NV) dk_vec(g, rows, dyline, Q, q0, NV, p)

DW_DEFINE_LINES(generic, )
#ifdef FC_HAVE_AVX2_PATH
DW_DEFINE_LINES(avx2, FC_TARGET_AVX2)
#endif

typedef void (*fwd_line_fn)(const fc_depthwise_geometry *, const float *const *, const float *,
                            const float *, int, int64_t, float *);
typedef void (*dx_line_fn)(const fc_depthwise_geometry *, const float *const *,
                           const int64_t *, const float *, int64_t, float *);
typedef void (*dk_line_fn)(const fc_depthwise_geometry *, const float *const *, const float *,
                           int64_t, float *);

static int use_avx2(void)
{
#ifdef FC_HAVE_AVX2_PATH
    return fc_simd_level() >= 1;
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------ helpers */
/* Input row ih of image n as (W, Q) lanes: x itself when M == 1, else expanded into dst. */
static const float *lane_row(const fc_depthwise_geometry *g, const float *x, int64_t n,
                             int64_t ih, float *dst)
{
    const float *src = x + (n * g->h + ih) * g->w * g->c;
    int64_t w, c, m;
    if (g->m == 1)
        return src;
    for (w = 0; w < g->w; w++)
        for (c = 0; c < g->c; c++)
            for (m = 0; m < g->m; m++)
                dst[(w * g->c + c) * g->m + m] = src[w * g->c + c];
    return dst;
}

/* The input rows (as lanes) that output line (n, oh) reads; NULL outside the input. */
static void gather_rows(const fc_depthwise_geometry *g, const float *x, int64_t n, int64_t oh,
                        float *buf, const float **rows)
{
    const int64_t Q = g->c * g->m;
    int64_t i;
    for (i = 0; i < g->kh; i++) {
        const int64_t ih = oh * g->sh - g->pad_top + i * g->dh;
        rows[i] = (ih < 0 || ih >= g->h) ? NULL
                                          : lane_row(g, x, n, ih, buf ? buf + i * g->w * Q : NULL);
    }
}


/* Input row `back` above the last one that line (n, oh + ahead) reads (rows of image n + 1
 * past the last line), or NULL when there is none. */
static const float *next_row(const fc_depthwise_geometry *g, const float *x, int64_t n,
                             int64_t oh, int64_t ahead, int64_t back)
{
    int64_t ih = (oh + ahead) * g->sh - g->pad_top + (g->kh - 1) * g->dh - back;
    if (oh + ahead >= g->oh) {
        if (n + 1 >= g->n)
            return NULL;
        n++;
        ih = oh + ahead - g->oh;
    }
    if (ih >= g->h)
        ih = g->h - 1;
    return ih < 0 ? NULL : x + (n * g->h + ih) * g->w * g->c;
}

/* Rows ahead are worth prefetching once the tensors read (`floats` of them) are past a
 * thread's L2 and share of L3; below that the prefetch instructions cost more than they save. */
static int prefetch_pays(int64_t floats)
{
    return floats * (int64_t)sizeof(float) / fc_get_num_threads() > DW_PREFETCH_MIN_BYTES;
}

/* The two rows to prefetch for the lines after (n, oh): at stride 1 the new row of each of
 * the next two lines, at larger strides the next line's last two rows. */
static void prefetch_rows(const fc_depthwise_geometry *g, const float *x, int64_t n,
                          int64_t oh, const float **pf)
{
    pf[0] = next_row(g, x, n, oh, 1, 0);
    pf[1] = g->sh == 1 ? next_row(g, x, n, oh, 2, 0) : next_row(g, x, n, oh, 1, 1);
}

/* ------------------------------------------------------------------ forward */
int fc_depthwise_forward(const fc_depthwise_geometry *g, const float *x, const float *kernel,
                         const float *bias, int relu, float *out)
{
    const int64_t Q = g->c * g->m, R = g->n * g->oh;
    const fwd_line_fn fn =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? (g->m == 1 ? fwd_line1_avx2 : fwd_line_avx2) :
#endif
                   (g->m == 1 ? fwd_line1_generic : fwd_line_generic);
    const int64_t L = g->ow * Q;
    /* a large output goes line by line through a cached buffer and out with streaming
     * stores: half the memory traffic of storing it in place */
    const int stream = fc_stream_output(R * L * (int64_t)sizeof(float));
    const int far = prefetch_pays(g->n * g->h * g->w * g->c);
    int failed = 0;
#pragma omp parallel num_threads(fc_get_num_threads()) if (R * g->ow * Q * g->kh * g->kw > 32768)
    {
        float *buf = NULL, *line = NULL;
        /* rows[kh], rows[kh + 1]: rows to prefetch for the next lines (M == 1 lines only) */
        const float **rows = (const float **)fc_malloc((size_t)(g->kh + 2) * sizeof(float *));
        int64_t r;
        if (g->m > 1)
            buf = (float *)fc_malloc((size_t)(g->kh * g->w * Q) * sizeof(float));
        if (stream)
            line = (float *)fc_malloc((size_t)L * sizeof(float));
        if (!rows || (g->m > 1 && !buf) || (stream && !line)) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(static)
            for (r = 0; r < R; r++) {
                const int64_t n = r / g->oh, oh = r % g->oh;
                gather_rows(g, x, n, oh, buf, rows);
                if (far)
                    prefetch_rows(g, x, n, oh, rows + g->kh);
                else
                    rows[g->kh] = rows[g->kh + 1] = NULL;
                if (stream) {
                    fn(g, rows, kernel, bias, relu, Q, line);
                    fc_stream_copy(out + r * L, line, L);
                } else {
                    fn(g, rows, kernel, bias, relu, Q, out + r * L);
                }
            }
            if (stream)
                fc_stream_fence();
        }
        fc_free(line);
        fc_free(buf);
        fc_free((void *)rows);
    }
    return failed ? FC_ENOMEM : FC_OK;
}

/* ------------------------------------------------------------------ input gradient */
/* At stride 1 with one filter per channel the input gradient is the forward of dy with the
 * kernel flipped in both axes and the complementary padding: it takes the forward's
 * register-blocked path (dx row ih, column iw sums dy at ih + pad_top - i*dh and
 * iw + pad_left - j*dw, times tap (i, j)). */
static void flipped_geometry(const fc_depthwise_geometry *g, fc_depthwise_geometry *t)
{
    *t = *g;
    t->h = g->oh;
    t->w = g->ow;
    t->oh = g->h;
    t->ow = g->w;
    t->pad_top = (g->kh - 1) * g->dh - g->pad_top;
    t->pad_left = (g->kw - 1) * g->dw - g->pad_left;
}

/* The (KH, KW, C, 1) kernel flipped in both axes, freshly allocated (NULL: no memory). */
static float *flipped_kernel(const fc_depthwise_geometry *g, const float *kernel)
{
    const int64_t Q = g->c, T = g->kh * g->kw;
    float *flipped = (float *)fc_malloc((size_t)(T * Q) * sizeof(float));
    int64_t e;
    if (flipped)
        for (e = 0; e < T; e++)
            memcpy(flipped + (T - 1 - e) * Q, kernel + e * Q, (size_t)Q * sizeof(float));
    return flipped;
}

static int backward_input_as_forward(const fc_depthwise_geometry *g, const float *dy,
                                     const float *kernel, float *dx)
{
    fc_depthwise_geometry t;
    float *flipped = flipped_kernel(g, kernel);
    int rc;
    if (!flipped)
        return FC_ENOMEM;
    flipped_geometry(g, &t);
    rc = fc_depthwise_forward(&t, dy, flipped, NULL, 0, dx);
    fc_free(flipped);
    return rc;
}

int fc_depthwise_backward_input(const fc_depthwise_geometry *g, const float *dy,
                                const float *kernel, float *dx)
{
    const int64_t Q = g->c * g->m, R = g->n * g->h;
    const dx_line_fn fn =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? dx_line_avx2 :
#endif
                   dx_line_generic;
    int64_t *src, iw, j;
    int stream, failed = 0;
    if (g->m == 1 && g->sh == 1 && g->sw == 1 && g->pad_top <= (g->kh - 1) * g->dh &&
        g->pad_left <= (g->kw - 1) * g->dw)
        return backward_input_as_forward(g, dy, kernel, dx);
    stream = fc_stream_output(R * g->w * g->c * (int64_t)sizeof(float));
    src = (int64_t *)fc_malloc((size_t)(g->w * g->kw) * sizeof(int64_t));
    if (!src)
        return FC_ENOMEM;
    /* the output column (or -1) whose tap j reads input column iw: divisions done once */
    for (iw = 0; iw < g->w; iw++)
        for (j = 0; j < g->kw; j++) {
            const int64_t u = iw + g->pad_left - j * g->dw;
            src[iw * g->kw + j] = (u < 0 || u % g->sw || u / g->sw >= g->ow) ? -1 : u / g->sw;
        }
#pragma omp parallel num_threads(fc_get_num_threads()) if (R * g->w * Q * g->kh * g->kw > 32768)
    {
        float *tline = NULL, *line = NULL;
        const float **dyrows = (const float **)fc_malloc((size_t)g->kh * sizeof(float *));
        int64_t r;
        if (g->m > 1)
            tline = (float *)fc_malloc((size_t)(g->w * Q) * sizeof(float));
        if (stream)  /* a large dx goes out line by line with streaming stores */
            line = (float *)fc_malloc((size_t)(g->w * g->c) * sizeof(float));
        if (!dyrows || (g->m > 1 && !tline) || (stream && !line)) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(static)
            for (r = 0; r < R; r++) {
                const int64_t n = r / g->h, ih = r % g->h;
                float *dline = stream ? line : dx + r * g->w * g->c;
                int64_t i;
                for (i = 0; i < g->kh; i++) {
                    const int64_t t = ih + g->pad_top - i * g->dh;
                    dyrows[i] = (t < 0 || t % g->sh || t / g->sh >= g->oh)
                                    ? NULL
                                    : dy + (n * g->oh + t / g->sh) * g->ow * Q;
                }
                if (g->m == 1) {
                    fn(g, dyrows, src, kernel, Q, dline);
                } else {
                    int64_t w, c, m;
                    fn(g, dyrows, src, kernel, Q, tline);
                    for (w = 0; w < g->w; w++)
                        for (c = 0; c < g->c; c++) {
                            const float *tp = tline + (w * g->c + c) * g->m;
                            float s = tp[0];
                            for (m = 1; m < g->m; m++)
                                s += tp[m];
                            dline[w * g->c + c] = s;
                        }
                }
                if (stream)
                    fc_stream_copy(dx + r * g->w * g->c, line, g->w * g->c);
            }
            if (stream)
                fc_stream_fence();
        }
        fc_free(line);
        fc_free(tline);
        fc_free((void *)dyrows);
    }
    fc_free(src);
    return failed ? FC_ENOMEM : FC_OK;
}

/* ------------------------------------------------------------------ kernel gradient */
typedef void (*dk3_line_fn)(const fc_depthwise_geometry *, const float *const *, const float *,
                            int64_t, float *, float *);

/* The input gradient's lines, when the kernel gradient's blocks also write them (see
 * fc_depthwise_backward): the forward of dy under the flipped geometry t. */
typedef struct {
    const fc_depthwise_geometry *t;
    const float *flipped;  /* the kernel flipped in both axes */
    fwd_line_fn fn;
    int stream;            /* dx lines go out with streaming stores */
    float *dx;
} dx_lines;

/* The kernel (and bias) gradient by fixed blocks of output lines; with `dxl`, block b also
 * writes dx lines [b*per, (b+1)*per) just before its own use of the same dy lines. */
static int backward_kernel_blocks(const fc_depthwise_geometry *g, const float *dy,
                                  const float *x, float *dkernel, float *dbias,
                                  const dx_lines *dxl)
{
    const int64_t Q = g->c * g->m, R = g->n * g->oh, E = g->kh * g->kw * Q;
    const int64_t S = E + Q;  /* one block's partial sums: the kernel's, then the bias' */
    const int64_t cap = DW_PARTIAL_FLOATS / S > DW_MIN_BLOCKS ? DW_PARTIAL_FLOATS / S
                                                              : DW_MIN_BLOCKS;
    const int64_t lim = cap < DW_MAX_BLOCKS ? cap : DW_MAX_BLOCKS;
    const int64_t nb0 = R < lim ? R : lim;
    const int64_t per = (R + nb0 - 1) / nb0, nb = (R + per - 1) / per;
    const int fast = g->m == 1 && g->kh == 3 && g->kw == 3;
    /* the one-pass backward reads dy and x and writes dx line by line: prefetching rows
     * ahead pays there even on inputs that fit in cache (MobileNet step, batch 32) */
    const int far = dxl || prefetch_pays(g->n * g->h * g->w * g->c + R * g->ow * Q);
    const dk_line_fn fn =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? dk_line_avx2 :
#endif
                   dk_line_generic;
    const dk3_line_fn fn3 =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? dk3_line_avx2 :
#endif
                   dk3_line_generic;
    float *partial = (float *)fc_malloc((size_t)(nb * S) * sizeof(float));
    int failed = 0;
    if (!partial)
        return FC_ENOMEM;
#pragma omp parallel num_threads(fc_get_num_threads()) if (R * g->ow * E > 32768)
    {
        float *buf = NULL, *line = NULL;
        /* 3 tap rows, then (fast path) two x rows and one dy line to prefetch; with dxl,
         * the dy rows of a dx line and two to prefetch after them */
        const float **rows =
            (const float **)fc_malloc((size_t)(g->kh > 3 ? g->kh : 6) * sizeof(float *));
        const float *dyrows[5];
        int64_t b, e;
        if (g->m > 1)
            buf = (float *)fc_malloc((size_t)(g->kh * g->w * Q) * sizeof(float));
        if (dxl && dxl->stream)
            line = (float *)fc_malloc((size_t)(g->w * Q) * sizeof(float));
        if (!rows || (g->m > 1 && !buf) || (dxl && dxl->stream && !line)) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
            /* block b sums lines [b*per, (b+1)*per) in order: fixed whatever the threads */
#pragma omp for schedule(static)
            for (b = 0; b < nb; b++) {
                float *p = partial + b * S, *pb = p + E;
                const int64_t r1 = (b + 1) * per < R ? (b + 1) * per : R;
                int64_t r, ow, q;
                memset(p, 0, (size_t)S * sizeof(float));
                for (r = b * per; r < r1; r++) {
                    const int64_t n = r / g->oh, oh = r % g->oh;
                    const float *dyline = dy + r * g->ow * Q;
                    if (dxl) {  /* dx line r reads dy lines r - 1 .. r + 1 */
                        float *out = dxl->stream ? line : dxl->dx + r * g->w * Q;
                        gather_rows(dxl->t, dy, n, oh, NULL, dyrows);
                        if (far)
                            prefetch_rows(dxl->t, dy, n, oh, dyrows + 3);
                        else
                            dyrows[3] = dyrows[4] = NULL;
                        dxl->fn(dxl->t, dyrows, dxl->flipped, NULL, 0, Q, out);
                        if (dxl->stream)
                            fc_stream_copy(dxl->dx + r * g->w * Q, line, g->w * Q);
                    }
                    gather_rows(g, x, n, oh, buf, rows);
                    if (fast) {
                        if (far) {
                            prefetch_rows(g, x, n, oh, rows + 3);
                            /* the dx line has already brought the next dy line in */
                            rows[5] = r + 1 < R && !dxl ? dyline + g->ow * Q : NULL;
                        } else {
                            rows[3] = rows[4] = rows[5] = NULL;
                        }
                        fn3(g, rows, dyline, Q, p, pb);
                        continue;
                    }
                    fn(g, rows, dyline, Q, p);
                    if (dbias)
                        for (ow = 0; ow < g->ow; ow++)
                            for (q = 0; q < Q; q++)
                                pb[q] += dyline[ow * Q + q];
                }
            }
            if (dxl && dxl->stream)
                fc_stream_fence();
            /* runs of DW_RUN sums, blocks added in order along each run (contiguous,
             * vectorisable; the same order as one sum at a time) */
#pragma omp for schedule(static)
            for (e = 0; e < S; e += DW_RUN) {
                const int64_t len = S - e < DW_RUN ? S - e : DW_RUN;
                float run[DW_RUN];
                int64_t t;
                memcpy(run, partial + e, (size_t)len * sizeof(float));
                for (b = 1; b < nb; b++) {
                    const float *pp = partial + b * S + e;
                    for (t = 0; t < len; t++)
                        run[t] += pp[t];
                }
                for (t = 0; t < len; t++) {
                    if (e + t < E)
                        dkernel[e + t] = run[t];
                    else if (dbias)
                        dbias[e + t - E] = run[t];
                }
            }
        }
        fc_free(line);
        fc_free(buf);
        fc_free((void *)rows);
    }
    fc_free(partial);
    return failed ? FC_ENOMEM : FC_OK;
}

int fc_depthwise_backward_kernel(const fc_depthwise_geometry *g, const float *dy,
                                 const float *x, float *dkernel, float *dbias)
{
    return backward_kernel_blocks(g, dy, x, dkernel, dbias, NULL);
}

int fc_depthwise_backward(const fc_depthwise_geometry *g, const float *dy, const float *x,
                          const float *kernel, float *dx, float *dkernel, float *dbias)
{
    fc_depthwise_geometry t;
    dx_lines dxl;
    float *flipped;
    int rc;
    /* one pass where both take their M == 1, stride-1, 3x3 paths and dx has dy's lines
     * (so the padding is 'same' and the input gradient is the flipped forward) */
    if (!dx || g->m != 1 || g->kh != 3 || g->kw != 3 || g->sh != 1 || g->sw != 1 ||
        g->h != g->oh || g->w != g->ow) {
        if (dx && (rc = fc_depthwise_backward_input(g, dy, kernel, dx)) != FC_OK)
            return rc;
        return backward_kernel_blocks(g, dy, x, dkernel, dbias, NULL);
    }
    flipped = flipped_kernel(g, kernel);
    if (!flipped)
        return FC_ENOMEM;
    flipped_geometry(g, &t);
    dxl.t = &t;
    dxl.flipped = flipped;
    dxl.fn =
#ifdef FC_HAVE_AVX2_PATH
        use_avx2() ? fwd_line1_avx2 :
#endif
                   fwd_line1_generic;
    dxl.stream = fc_stream_output(g->n * g->h * g->w * g->c * (int64_t)sizeof(float));
    dxl.dx = dx;
    rc = backward_kernel_blocks(g, dy, x, dkernel, dbias, &dxl);
    fc_free(flipped);
    return rc;
}
