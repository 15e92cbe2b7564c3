/* Shared definitions for fastcnn's C kernels.
 *
 * Conventions every kernel follows:
 *  - float32, C-contiguous, NHWC activations, Keras weight layouts
 *    (conv kernel (kh, kw, C, F), dense kernel (in, out));
 *  - the caller (Python) validates shapes and allocates every output;
 *  - sizes are int64_t; kernels never keep state between calls;
 *  - results do not depend on the thread count (work is split over outputs,
 *    reductions run in a fixed order), so 1 and N threads agree bitwise.
 */
#ifndef FC_COMMON_H
#define FC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef FASTCNN_OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FC_RESTRICT __restrict__
#define FC_UNUSED __attribute__((unused))
#if (defined(__x86_64__) || defined(__i386__)) && !defined(FASTCNN_NO_AVX2)
/* Functions marked FC_TARGET_AVX2 are compiled for AVX2+FMA even in a portable
 * build; they are only ever called after fc_cpu_has_avx2_fma() said yes. */
#define FC_HAVE_AVX2_PATH 1
#define FC_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif
#else
#define FC_RESTRICT
#define FC_UNUSED
#endif

/* Index and size of the calling thread's team (0 and 1 outside OpenMP / parallel regions). */
static inline int fc_thread_id(void)
{
#ifdef FASTCNN_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int fc_team_size(void)
{
#ifdef FASTCNN_OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Error codes returned by kernels that need scratch memory. */
#define FC_OK 0
#define FC_ENOMEM (-1)

/* Threads every kernel's parallel region uses (set from Python). */
int fc_get_num_threads(void);
void fc_set_num_threads(int n);
int fc_openmp_enabled(void);

/* SIMD path: 1 = AVX2+FMA, 0 = portable C. */
int fc_simd_level(void);
void fc_force_simd_level(int level); /* -1 restores auto-detection */
const char *fc_simd_name(void);

/* fp32 FMA throughput probe for benchmarks: returns flops done by all threads. */
double fc_fma_probe(int64_t iters, float *sink);

/* Streaming (non-temporal) stores for outputs too large to stay in cache: writing them
 * through the cache first reads every line from memory (read for ownership) and then evicts
 * what the kernel still reads. fc_stream_output says whether an output of `bytes` written by
 * the current thread count should be streamed (its share per thread, counting at least two
 * threads, is past what the caches keep for it; set by fc_set_stream_min_bytes for tests, -1:
 * the default); fc_stream_copy
 * copies n floats with such stores where the CPU has them (else plainly); a thread calls
 * fc_stream_fence after its last streamed copy, before other threads read the output. */
int fc_stream_output(int64_t bytes);
void fc_set_stream_min_bytes(int64_t bytes_per_thread);
void fc_stream_copy(float *dst, const float *src, int64_t n);
void fc_stream_fence(void);

/* 64-byte aligned scratch; free with fc_free. NULL on failure. */
void *fc_malloc(size_t bytes);
void fc_free(void *p);

#endif
