"""UpSampling2D, GlobalMaxPooling2D and the 1-D pooling layers: float64 NumPy references,
PyTorch, finite differences, bitwise 1 vs 2 threads, bad arguments."""
import numpy as np
import pytest

from fastcnn import layers, ops
from conftest import assert_close, fd_grad, num_threads


def ref_bilinear_matrix(size, scale):
    """(size*scale, size) interpolation matrix of jax.image.resize's 'bilinear' (triangle
    kernel, half-pixel centres, weights normalised over the taps inside the input)."""
    out = size * scale
    s = (np.arange(out) + 0.5) / scale - 0.5
    w = np.maximum(0.0, 1.0 - np.abs(s[:, None] - np.arange(size)[None, :]))
    return w / w.sum(axis=1, keepdims=True)


def ref_upsample(x, size, interpolation):
    if interpolation == "nearest":
        return np.repeat(np.repeat(x, size[0], axis=1), size[1], axis=2)
    mh = ref_bilinear_matrix(x.shape[1], size[0])
    mw = ref_bilinear_matrix(x.shape[2], size[1])
    return np.einsum("ih,jw,nhwc->nijc", mh, mw, x)


UP_CASES = [((2, 5, 4, 3), (2, 2)), ((1, 3, 7, 9), (3, 2)), ((2, 1, 4, 2), (1, 3)),
            ((2, 4, 1, 5), (2, 1)), ((1, 2, 2, 1), (4, 4))]


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape,size", UP_CASES)
def test_upsample_reference_and_gradient(rng, shape, size, interpolation):
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.upsample2d(x, size, interpolation)
    assert_close(y, ref_upsample(x.astype(np.float64), size, interpolation), 1e-6, 1e-6)
    g = rng.standard_normal(y.shape)
    dx = ops.upsample2d_backward(g, x.shape, size, interpolation)
    fd = fd_grad(lambda v: float(np.sum(ref_upsample(v, size, interpolation) * g)), x)
    assert_close(dx, fd, 1e-5, 1e-5, "dx")


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsample_matches_torch(rng, interpolation):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 6, 5, 7)).astype(np.float32)
    xt = torch.tensor(x.astype(np.float64)).permute(0, 3, 1, 2)
    kw = {} if interpolation == "nearest" else {"align_corners": False}
    yt = torch.nn.functional.interpolate(xt, scale_factor=(3, 2), mode=interpolation, **kw)
    assert_close(ops.upsample2d(x, (3, 2), interpolation), yt.permute(0, 2, 3, 1).numpy(),
                 1e-6, 1e-6)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsample_bitwise_1_vs_2_threads(rng, interpolation):
    x = rng.standard_normal((5, 17, 15, 19)).astype(np.float32)
    g = rng.standard_normal((5, 51, 30, 19)).astype(np.float32)
    res = []
    for n in (1, 2):
        with num_threads(n):
            res.append((ops.upsample2d(x, (3, 2), interpolation),
                        ops.upsample2d_backward(g, x.shape, (3, 2), interpolation)))
    for a, c in zip(*res):
        assert a.tobytes() == c.tobytes()


def test_upsample_bad_arguments():
    x = np.ones((1, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="interpolation"):
        ops.upsample2d(x, 2, "bicubic")
    with pytest.raises(ValueError, match="size"):
        ops.upsample2d(x, 0)
    with pytest.raises(ValueError, match="dy"):
        ops.upsample2d_backward(np.ones((1, 3, 4, 1)), x.shape, 2)
    for kwargs, match in ((dict(interpolation="lanczos3"), "interpolation"),
                          (dict(size=(2, 0)), "size"),
                          (dict(data_format="channels_first"), "channels_last")):
        with pytest.raises(ValueError, match=match) as info:
            layers.UpSampling2D(name="up", **kwargs)
        assert "up" in str(info.value)
    with pytest.raises(ValueError, match="up"):
        layers.UpSampling2D(name="up").compute_output_shape((None, 4, 4))


# ------------------------------------------------------------------ GlobalMaxPooling2D
def test_global_max_pool_reference_gradient_and_ties(rng):
    x = rng.standard_normal((3, 5, 3, 11)).astype(np.float32)
    y = ops.global_max_pool2d(x)
    np.testing.assert_array_equal(y, x.max(axis=(1, 2)))
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.global_max_pool2d_backward(g, x, y)
    fd = fd_grad(lambda v: float(np.sum(v.max(axis=(1, 2)) * g)), x)
    assert_close(dx, fd, 1e-5, 1e-5)
    # ties: the gradient is split equally (as jax.grad of jnp.max and tf.reduce_max)
    t = np.zeros((1, 2, 2, 2), np.float32)
    t[0, 0, 1, 0] = t[0, 1, 0, 0] = t[0, 1, 1, 0] = 2.0
    dt = ops.global_max_pool2d_backward(np.array([[3.0, 4.0]]), t, ops.global_max_pool2d(t))
    np.testing.assert_array_equal(dt[0, ..., 0], [[0, 1], [1, 1]])
    np.testing.assert_array_equal(dt[0, ..., 1], [[1, 1], [1, 1]])
    # NaN propagates as in jnp.max
    t[0, 0, 0, 1] = np.nan
    assert np.isnan(ops.global_max_pool2d(t)[0, 1])


def test_global_max_pool_matches_torch_amax(rng):
    torch = pytest.importorskip("torch")
    x = np.round(rng.standard_normal((2, 4, 4, 6)), 0).astype(np.float32)  # many ties
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    g = rng.standard_normal((2, 6))
    (torch.amax(xt, dim=(1, 2)) * torch.tensor(g)).sum().backward()
    dx = ops.global_max_pool2d_backward(g, x, ops.global_max_pool2d(x))
    assert_close(dx, xt.grad.numpy(), 1e-6, 1e-6)


def test_global_max_pool_bitwise_1_vs_2_threads(rng):
    x = np.round(rng.standard_normal((9, 13, 14, 37)), 1).astype(np.float32)
    g = rng.standard_normal((9, 37)).astype(np.float32)
    res = []
    for n in (1, 2):
        with num_threads(n):
            y = ops.global_max_pool2d(x)
            res.append((y, ops.global_max_pool2d_backward(g, x, y)))
    for a, c in zip(*res):
        assert a.tobytes() == c.tobytes()


def test_global_max_pool_layer(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    layer = layers.GlobalMaxPooling2D(keepdims=True)
    y = layer.forward(x, training=True)
    assert y.shape == (2, 1, 1, 5) == layer.compute_output_shape(x.shape)
    dx = layer.backward(np.ones((2, 1, 1, 5), np.float32))
    assert dx.sum() == 10
    with pytest.raises(ValueError, match="gmp"):
        layers.GlobalMaxPooling2D(name="gmp").compute_output_shape((None, 3, 4))
    with pytest.raises(ValueError, match="global_max_pool2d_backward: y"):
        ops.global_max_pool2d_backward(np.ones((2, 5)), x, np.ones((2, 4)))


# ------------------------------------------------------------------ 1-D pooling layers
def ref_pool1d(x, p, s, padding, op):
    n, length, c = x.shape
    if padding == "same":
        out = -(-length // s)
        left = max((out - 1) * s + p - length, 0) // 2
    else:
        out, left = (length - p) // s + 1, 0
    y = np.zeros((n, out, c))
    for i in range(out):
        lo, hi = max(i * s - left, 0), min(i * s - left + p, length)
        y[:, i] = op(x[:, lo:hi], axis=1)
    return y


@pytest.mark.parametrize("p,s,padding", [(2, None, "valid"), (3, 2, "same"), (3, 1, "valid"),
                                         (2, 3, "same"), (4, None, "same")])
def test_pool1d_layers_reference_and_gradients(rng, p, s, padding):
    x = rng.standard_normal((2, 11, 3)).astype(np.float32)
    stride = p if s is None else s
    for cls, op in ((layers.MaxPooling1D, np.max), (layers.AveragePooling1D, np.mean)):
        layer = cls(p, strides=s, padding=padding)
        y = layer.forward(x, training=True)
        assert_close(y, ref_pool1d(x.astype(np.float64), p, stride, padding, op), 1e-6, 1e-6)
        assert y.shape == layer.compute_output_shape(x.shape)
        g = rng.standard_normal(y.shape)
        dx = layer.backward(g.astype(np.float32))
        fd = fd_grad(lambda v: float(np.sum(ref_pool1d(v, p, stride, padding, op) * g)), x)
        assert_close(dx, fd, 1e-5, 1e-5, cls.__name__)


def test_global_average_pooling1d(rng):
    x = rng.standard_normal((3, 7, 5)).astype(np.float32)
    for keepdims in (False, True):
        layer = layers.GlobalAveragePooling1D(keepdims=keepdims)
        y = layer.forward(x, training=True)
        assert_close(y.reshape(3, 5), x.mean(axis=1), 1e-6, 1e-6)
        assert y.shape == layer.compute_output_shape(x.shape)
        dx = layer.backward(np.ones(y.shape, np.float32))
        assert_close(dx, np.full(x.shape, 1 / 7), 1e-6, 1e-6)


def test_pool1d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 13, 4)).astype(np.float32)
    xt = torch.tensor(x.astype(np.float64)).permute(0, 2, 1)
    yt = torch.nn.functional.max_pool1d(xt, 3, 2)
    assert_close(layers.MaxPooling1D(3, 2)(x), yt.permute(0, 2, 1).numpy(), 1e-6, 1e-6)
    yt = torch.nn.functional.avg_pool1d(xt, 3, 2)
    assert_close(layers.AveragePooling1D(3, 2)(x), yt.permute(0, 2, 1).numpy(), 1e-6, 1e-6)


def test_pool1d_bad_arguments():
    with pytest.raises(ValueError, match="mp1"):
        layers.MaxPooling1D(0, name="mp1")
    with pytest.raises(ValueError, match="ap1"):
        layers.AveragePooling1D(2, padding="causal", name="ap1")
    with pytest.raises(ValueError, match="mp1"):
        layers.MaxPooling1D(5, name="mp1").compute_output_shape((None, 3, 2))
    with pytest.raises(ValueError, match="mp1"):
        layers.MaxPooling1D(name="mp1").compute_output_shape((None, 3, 2, 1))
    with pytest.raises(TypeError):
        layers.AveragePooling1D()  # pool_size is required, as in Keras 3
