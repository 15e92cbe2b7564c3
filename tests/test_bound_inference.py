"""ops.bind_* for the inference steps the lean runner binds (zero padding, add + ReLU,
concatenate, sigmoid, global average pooling, conv + folded batch norm) and the C kernel
ops.batch_norm_fold: the bound call gives the bits of the checked op, on awkward shapes,
at 1 and 2 threads."""
import numpy as np
import pytest

from fastcnn import ops
from conftest import num_threads


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def bn_vectors(c, seed):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 1.5, c).astype(np.float32), rng.standard_normal(c).astype(np.float32),
            rng.standard_normal(c).astype(np.float32) * 0.3,
            rng.uniform(0.2, 2.0, c).astype(np.float32))


@pytest.mark.parametrize("use_bias,c", [(True, 13), (False, 13), (True, 517)])
def test_batch_norm_fold_matches_numpy_bitwise(use_bias, c):
    # 517 channels: more than one of the C kernel's channel blocks (256), a ragged last one
    kernel = rand((3, 5, 7, c), 0)
    bias = rand((c,), 1) if use_bias else None
    gamma, beta, mean, var = bn_vectors(c, 2)
    k, b = ops.batch_norm_fold(kernel, bias, gamma, beta, mean, var, 1e-3)
    scale = gamma * (1.0 / np.sqrt(var.astype(np.float64) + 1e-3))
    np.testing.assert_array_equal(k, (kernel * scale).astype(np.float32))
    shift = (bias if use_bias else 0.0) - mean
    np.testing.assert_array_equal(b, (shift * scale + beta).astype(np.float32))
    # and it is what batch norm after the layer computes (float64 reference)
    x = rand((4, 3 * 5 * 7), 3).astype(np.float64)
    z = x @ kernel.reshape(-1, c).astype(np.float64) + (0 if bias is None else bias)
    bn = (z - mean) / np.sqrt(var.astype(np.float64) + 1e-3) * gamma + beta
    np.testing.assert_allclose(x @ k.reshape(-1, c) + b, bn, rtol=1e-5, atol=1e-5)


def test_batch_norm_fold_checks_shapes():
    gamma, beta, mean, var = bn_vectors(4, 0)
    with pytest.raises(ValueError, match="batch_norm_fold.*shape \\(5,\\)"):
        ops.batch_norm_fold(np.zeros((3, 5), np.float32), None, gamma, beta, mean, var, 1e-3)
    with pytest.raises(ValueError, match="batch_norm_fold: kernel_out"):
        ops.batch_norm_fold(np.zeros((3, 4), np.float32), None, gamma, beta, mean, var, 1e-3,
                            kernel_out=np.zeros((4, 4), np.float32))


@pytest.mark.parametrize("threads", [1, 2])
def test_bound_ops_equal_checked_ops(threads):
    with num_threads(threads):
        # above the kernels' parallel thresholds (32K / 64K elements), so 2 threads split
        x = rand((3, 70, 65, 11), 4)
        run, out = ops.bind_zero_pad2d(x.shape, ((1, 2), (0, 3)))
        np.testing.assert_array_equal(run(x), ops.zero_pad2d(x, ((1, 2), (0, 3))))
        y = rand((3, 70, 65, 11), 5)
        run, _ = ops.bind_add_relu([x.shape, y.shape])
        np.testing.assert_array_equal(run([x, y]), ops.add_relu([x, y]))
        z = rand((3, 70, 65, 6), 6)
        run, _ = ops.bind_concatenate([x.shape, z.shape], -1)
        np.testing.assert_array_equal(run([x, z]), ops.concatenate([x, z], -1))
        run, _ = ops.bind_sigmoid(x.shape)
        np.testing.assert_array_equal(run(x), ops.sigmoid(x))
        run, out = ops.bind_global_avg_pool2d(x.shape, keepdims=True)
        assert out.shape == (3, 1, 1, 11)
        np.testing.assert_array_equal(run(x).reshape(3, 11), ops.global_avg_pool2d(x))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("use_bias,activation", [(True, "relu"), (False, None)])
def test_bound_conv_batch_norm_refolds_every_call(threads, use_bias, activation):
    kernel = rand((3, 3, 5, 9), 7)
    bias = rand((9,), 8) if use_bias else None
    gamma, beta, mean, var = bn_vectors(9, 9)
    x = rand((2, 9, 7, 5), 10)

    def reference():
        k, b = ops.batch_norm_fold(kernel, bias, gamma, beta, mean, var, 1e-3)
        return ops.conv2d(x, k, b, (2, 1), "same", activation)
    with num_threads(threads):
        run, _ = ops.bind_conv2d_batch_norm(x.shape, kernel, bias, gamma, beta, mean, var,
                                            1e-3, (2, 1), "same", activation)
        np.testing.assert_array_equal(run(x), reference())
        var *= 1.5  # changed in place after binding: the next call folds the new values
        kernel[0, 0] += 1.0
        np.testing.assert_array_equal(run(x), reference())
