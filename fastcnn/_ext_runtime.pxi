from libc.stdint cimport int64_t

cdef extern from "fc_common.h":
    int fc_get_num_threads() nogil
    void fc_set_num_threads(int n) nogil
    void fc_set_stream_min_bytes(int64_t bytes_per_thread) nogil
    int fc_stream_output(int64_t nbytes) nogil
    int fc_openmp_enabled() nogil
    int fc_simd_level() nogil
    void fc_force_simd_level(int level) nogil
    const char *fc_simd_name() nogil
    double fc_fma_probe(int64_t iters, float *sink) nogil
    int FC_OK
    int FC_ENOMEM


cdef inline int _check(int rc, str what) except -1:
    if rc == FC_ENOMEM:
        raise MemoryError("%s: could not allocate kernel scratch memory" % what)
    if rc != FC_OK:
        raise RuntimeError("%s: kernel failed with code %d" % (what, rc))
    return 0


def get_num_threads():
    return fc_get_num_threads()


def set_num_threads(int n):
    fc_set_num_threads(n)


def set_stream_min_bytes(int64_t bytes_per_thread):
    """Outputs of at least this many bytes per thread (counting at least two threads) are
    written with streaming stores (0: every output, for tests); -1 restores the default."""
    fc_set_stream_min_bytes(bytes_per_thread)


def stream_output(int64_t nbytes):
    """Whether an output of nbytes is written with streaming stores at the thread count."""
    return bool(fc_stream_output(nbytes))


def openmp_enabled():
    return bool(fc_openmp_enabled())


def simd_name():
    return fc_simd_name().decode("ascii")


def force_simd(int level):
    """1: AVX2+FMA (if the CPU has it), 0: portable C, -1: auto-detect."""
    fc_force_simd_level(level)


def fma_peak_gflops(double seconds=0.2):
    """Measured fp32 FMA throughput (GFLOP/s) of the current thread count, for benchmarks."""
    import time
    cdef float sink = 0
    cdef double flops
    cdef int64_t iters = 1 << 16
    while True:
        t0 = time.perf_counter()
        with nogil:
            flops = fc_fma_probe(iters, &sink)
        dt = time.perf_counter() - t0
        if dt >= seconds or iters > (1 << 40):
            return flops / dt / 1e9
        iters *= 2
