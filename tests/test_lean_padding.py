"""ZeroPadding2D folded into the step that reads it on the lean inference path: a 'valid'
im2col or direct conv (plain or with folded batch norm) or a 'valid' max pool of ReLU outputs takes
the padding into its own kernel call. Same bits as padding first, at 1 and 2 threads."""
import os

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import pytest

import fastcnn
from fastcnn import layers, ops
from conftest import num_threads

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "onnx")


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("x_shape,k_shape,strides,pad", [
    ((1, 32, 32, 8), (7, 7, 8, 16), (2, 2), ((3, 3), (3, 3))),
    ((3, 9, 11, 5), (3, 3, 5, 7), (2, 1), ((1, 2), (0, 3))),
    ((2, 5, 6, 11), (2, 3, 11, 9), (1, 2), ((2, 0), (1, 1))),
    ((2, 7, 6, 3), (3, 3, 3, 10), (1, 1), ((1, 1), (2, 0))),   # direct (K = 27)
])
def test_bound_conv_with_input_padding_equals_padding_first(threads, x_shape, k_shape,
                                                            strides, pad):
    x, kernel, bias = rand(x_shape, 0), rand(k_shape, 1), rand(k_shape[-1:], 2)
    assert ops.zero_pad_conv2d_applies(x_shape, pad, k_shape, strides)
    padded = ops.zero_pad2d(x, pad)
    algorithm = ops.latency_algorithm(padded.shape, k_shape, strides)
    with num_threads(threads):
        ref = ops.conv2d(padded, kernel, bias, strides, "valid", "relu", algorithm=algorithm)
        run, out = ops.bind_conv2d(x_shape, kernel, bias, strides, "valid", "relu",
                                   input_padding=pad)
        assert out.shape == ref.shape
        np.testing.assert_array_equal(run(x), ref)
        gamma, beta = rand(k_shape[-1:], 3), rand(k_shape[-1:], 4)
        mean, var = rand(k_shape[-1:], 5), np.abs(rand(k_shape[-1:], 6)) + 0.5
        run, _ = ops.bind_conv2d_batch_norm(x_shape, kernel, None, gamma, beta, mean, var,
                                            1e-3, strides, "valid", None, input_padding=pad)
        k, b = ops.batch_norm_fold(kernel, None, gamma, beta, mean, var, 1e-3)
        np.testing.assert_array_equal(
            run(x), ops.conv2d(padded, k, b, strides, "valid", algorithm=algorithm))


def test_bound_conv_input_padding_only_where_it_applies():
    k_shape = (3, 3, 16, 16)
    assert not ops.zero_pad_conv2d_applies((1, 8, 8, 16), 1, k_shape, 1, padding="same")
    # a 3x3 stride-1 conv over a big batch runs Winograd, whose tiles see the padding
    assert ops.conv2d_algorithm((64, 32, 32, 16), k_shape)["forward"].startswith("winograd")
    assert not ops.zero_pad_conv2d_applies((64, 30, 30, 16), 1, k_shape, 1)
    with pytest.raises(ValueError, match="bind_conv2d: input_padding"):
        ops.bind_conv2d((64, 30, 30, 16), rand(k_shape, 0), None, 1, "valid",
                        input_padding=1)


@pytest.mark.parametrize("threads", [1, 2])
def test_bound_max_pool_with_input_padding_on_nonnegative_input(threads):
    x = np.maximum(rand((2, 9, 8, 5), 0), 0)
    pad = ((1, 1), (0, 2))
    with num_threads(threads):
        run, _ = ops.bind_max_pool2d(x.shape, (3, 3), (2, 2), input_padding=pad)
        np.testing.assert_array_equal(run(x), ops.max_pool2d(ops.zero_pad2d(x, pad), (3, 3),
                                                             (2, 2)))
    with pytest.raises(ValueError, match="bind_max_pool2d: input_padding"):
        ops.bind_max_pool2d(x.shape, (2, 2), input_padding=2)


def padded_model():
    inp = fastcnn.Input(shape=(11, 13, 3))
    h = layers.ZeroPadding2D(((2, 1), (0, 3)))(inp)
    h = layers.Conv2D(5, 3, strides=2, activation="relu")(h)
    h = layers.ZeroPadding2D(1)(h)
    h = layers.MaxPooling2D(3, strides=2)(h)          # after a ReLU: absorbs its padding
    h = layers.ZeroPadding2D(((0, 1), (1, 0)))(h)
    h = layers.Conv2D(4, 2, padding="same")(h)        # 'same': the padding stays a step
    h = layers.ZeroPadding2D(1)(h)
    h = layers.MaxPooling2D(2)(h)                     # inputs may be < 0: stays a step
    h = layers.Flatten()(h)
    out = layers.Dense(3)(h)
    model = fastcnn.Model(inp, out)
    model.build((None, 11, 13, 3))
    return model


@pytest.mark.parametrize("threads", [1, 2])
def test_lean_runner_absorbs_padding_with_the_plans_bits(threads):
    model = padded_model()
    x = rand((3, 11, 13, 3), 7)
    with num_threads(threads):
        ref = np.array(model._program().forward([x], False, False)[0])
        got = model.predict_on_batch(x)
        runner = model._lean.get(x.shape)
    np.testing.assert_array_equal(got, ref)
    assert len(runner.keys) == len(model._program().steps) - 2


@pytest.mark.parametrize("threads", [1, 2])
def test_imported_resnet_lean_equals_plan_forward(threads):
    pytest.importorskip("onnx")
    import fastcnn.onnx
    model = fastcnn.onnx.load_model(os.path.join(FIXTURES, "small_resnet.onnx"))
    x = rand((3, 32, 32, 3), 8)
    with num_threads(threads):
        ref = np.array(model._program().forward([x], False, False)[0])
        got = model(x)
        runner = model._lean.get(x.shape)
    np.testing.assert_array_equal(got, ref)
    # the stride-2 conv's padding goes into the conv, the max pool's follows a ReLU; the
    # 7x7x3 stem keeps its padding step (its direct kernel then reads x in place)
    assert len(runner.keys) == len(model._program().steps) - 2
    assert not ops.zero_pad_conv2d_applies((3, 32, 32, 3), 3, (7, 7, 3, 16), 2)


@pytest.mark.parametrize("n", [1, 3])
def test_stem_conv_with_few_input_channels_runs_direct(n):
    """auto's forward runs the direct kernel for C <= 4, K <= 256 without padding to fill
    (an RGB 7x7 stem), im2col once padding must be filled; the result matches a float64
    reference and has the same bits at 1 and 2 threads."""
    x, k, b = rand((n, 37, 38, 3), 0), rand((7, 7, 3, 13), 1), rand((13,), 2)
    assert ops.conv2d_algorithm(x.shape, k.shape, 2)["forward"] == "direct"
    assert ops.conv2d_algorithm(x.shape, k.shape, 2)["backward_kernel"] == "im2col"
    assert ops.conv2d_algorithm(x.shape, k.shape, 2, "same")["forward"] == "im2col"
    assert ops.conv2d_algorithm((n, 37, 38, 4), (9, 9, 4, 8), 1)["forward"] == "im2col"
    outs = []
    for threads in (1, 2):
        with num_threads(threads):
            outs.append(ops.conv2d(x, k, b, 2, "valid", "relu"))
            run, _ = ops.bind_conv2d(x.shape, k, b, 2, "valid", "relu")
            np.testing.assert_array_equal(run(x), outs[-1])
    np.testing.assert_array_equal(outs[0], outs[1])
    win = sliding_window_view(x.astype(np.float64), k.shape[:2], axis=(1, 2))[:, ::2, ::2]
    ref = np.maximum(np.einsum("nhwcij,ijco->nhwo", win, k.astype(np.float64)) + b, 0)
    np.testing.assert_allclose(outs[0], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
