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
