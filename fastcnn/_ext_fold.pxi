# fastcnn._ext: batch norm folded into the preceding layer's weights (inference).
cdef extern from "bn_fold.h":
    void fc_bn_fold(const float *kernel, const float *bias, int64_t rows, int64_t channels,
                    const float *gamma, const float *beta, const float *moving_mean,
                    const float *moving_var, double epsilon, float *kernel_out,
                    float *bias_out) nogil


def bn_fold(const float[:, ::1] kernel, const float[::1] bias, const float[::1] gamma,
            const float[::1] beta, const float[::1] moving_mean,
            const float[::1] moving_var, double epsilon, float[:, ::1] kernel_out,
            float[::1] bias_out):
    """kernel (rows, C) and bias (C,) or None, folded with batch norm's (C,) vectors."""
    cdef const float *pb = &bias[0] if bias is not None and bias.shape[0] > 0 else NULL
    cdef int64_t rows = kernel.shape[0], channels = kernel.shape[1]
    if channels == 0 or rows == 0:
        return
    with nogil:
        fc_bn_fold(&kernel[0, 0], pb, rows, channels, &gamma[0], &beta[0],
                   &moving_mean[0], &moving_var[0], epsilon, &kernel_out[0, 0],
                   &bias_out[0])
