/* Thread count, CPU feature detection and aligned scratch allocation. */
#define _POSIX_C_SOURCE 200112L
#include <stdlib.h>
#include "fc_common.h"

static int g_num_threads = 0; /* 0: not set yet, use OpenMP's default */

int fc_openmp_enabled(void)
{
#ifdef FASTCNN_OPENMP
    return 1;
#else
    return 0;
#endif
}

int fc_get_num_threads(void)
{
#ifdef FASTCNN_OPENMP
    if (g_num_threads <= 0)
        return omp_get_max_threads();
    return g_num_threads;
#else
    return 1;
#endif
}

void fc_set_num_threads(int n)
{
    g_num_threads = n > 0 ? n : 0;
}

static int g_simd_forced = -1;
static int g_simd_detected = -1;

static int detect_simd(void)
{
#if defined(FC_HAVE_AVX2_PATH)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

int fc_simd_level(void)
{
    if (g_simd_forced >= 0)
        return g_simd_forced;
    if (g_simd_detected < 0)
        g_simd_detected = detect_simd();
    return g_simd_detected;
}

void fc_force_simd_level(int level)
{
    if (level < 0) {
        g_simd_forced = -1;
        return;
    }
    /* never force a path the CPU cannot run */
    if (g_simd_detected < 0)
        g_simd_detected = detect_simd();
    g_simd_forced = (level >= 1 && g_simd_detected >= 1) ? 1 : 0;
}

const char *fc_simd_name(void)
{
    return fc_simd_level() >= 1 ? "avx2+fma" : "generic";
}

void *fc_malloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = 64;
    bytes = (bytes + 63) & ~(size_t)63;
#if defined(_MSC_VER)
    p = _aligned_malloc(bytes, 64);
#else
    if (posix_memalign(&p, 64, bytes) != 0)
        p = NULL;
#endif
    return p;
}

void fc_free(void *p)
{
#if defined(_MSC_VER)
    _aligned_free(p);
#else
    free(p);
#endif
}

/* ---- streaming stores for large outputs ----------------------------------------------- */
#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define FC_HAVE_STREAM 1
#endif

/* Per thread, counting at least two: an output that, with its input, still fits about half
 * the L3 is read back from there faster than from memory after streaming it (the commit that
 * set this has the crossover measured). */
#define FC_STREAM_MIN_BYTES_PER_THREAD ((int64_t)6 << 20)
static int64_t g_stream_min = -1;

void fc_set_stream_min_bytes(int64_t bytes_per_thread)
{
    g_stream_min = bytes_per_thread < 0 ? -1 : bytes_per_thread;
}

int fc_stream_output(int64_t bytes)
{
#ifdef FC_HAVE_STREAM
    const int64_t min = g_stream_min < 0 ? FC_STREAM_MIN_BYTES_PER_THREAD : g_stream_min;
    const int threads = fc_get_num_threads();
    return bytes / (threads > 2 ? threads : 2) >= min;
#else
    (void)bytes;
    return 0;
#endif
}

void fc_stream_copy(float *dst, const float *src, int64_t n)
{
    int64_t i = 0;
#ifdef FC_HAVE_STREAM
    for (; i < n && ((uintptr_t)(dst + i) & 15); i++)
        dst[i] = src[i];
    for (; i + 4 <= n; i += 4)
        _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
#endif
    for (; i < n; i++)
        dst[i] = src[i];
}

void fc_stream_fence(void)
{
#ifdef FC_HAVE_STREAM
    _mm_sfence();
#endif
}

/* ---- fp32 peak probe (benchmarks report "% of peak" against it) ---------------------- */
#ifdef FC_HAVE_AVX2_PATH
#include <immintrin.h>
/* 12 independent FMA chains per thread hide the 4-cycle latency on both FMA pipes. */
FC_TARGET_AVX2 static float fma_chains_avx2(int64_t iters, float seed)
{
    __m256 a[12];
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        a[i] = _mm256_set1_ps(seed + (float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++)
            a[i] = _mm256_fmadd_ps(a[i], m, c);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}
#endif

static float fma_chains_generic(int64_t iters, float seed)
{
    float a[12][8];
    for (int i = 0; i < 12; i++)
        for (int l = 0; l < 8; l++)
            a[i][l] = seed + (float)i;
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++)
            for (int l = 0; l < 8; l++)
                a[i][l] = a[i][l] * 0.999999f + 1e-7f;
    return a[0][0] + a[11][7];
}

/* Runs `iters` rounds of 12x8 multiply-adds on every thread; returns the flops done
 * (2 per multiply-add) and stores a value so the work cannot be optimised away. */
double fc_fma_probe(int64_t iters, float *sink)
{
    int nt = fc_get_num_threads();
    float acc = 0.0f;
#pragma omp parallel num_threads(nt) reduction(+:acc)
    {
#ifdef FC_HAVE_AVX2_PATH
        if (fc_simd_level() >= 1)
            acc += fma_chains_avx2(iters, 1.0f);
        else
#endif
            acc += fma_chains_generic(iters, 1.0f);
    }
    *sink = acc;
    return 2.0 * 12 * 8 * (double)iters * nt;
}
