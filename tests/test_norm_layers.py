"""LayerNormalization, GroupNormalization, SpatialDropout2D, Permute, RepeatVector, Embedding:
NumPy references, float64 finite differences of every backward, awkward shapes, bitwise 1 vs
2 threads, bad arguments."""
import numpy as np
import pytest

import fastcnn
from fastcnn import layers as L
from fastcnn import ops
from conftest import assert_close, fd_grad, num_threads


# ---------------------------------------------------------------- references (float64)

def ln_ref(x, gamma, beta, norm_ndim=1, eps=1e-3, rms=False):
    axes = tuple(range(x.ndim - norm_ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x if rms else x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None and not rms:
        y = y + beta
    return y


def gn_ref(x, groups, gamma, beta, eps=1e-3):
    n, c = x.shape[0], x.shape[-1]
    xr = x.reshape(n, -1, groups, c // groups)
    mean = xr.mean(axis=(1, 3), keepdims=True)
    var = ((xr - mean) ** 2).mean(axis=(1, 3), keepdims=True)
    y = ((xr - mean) / np.sqrt(var + eps)).reshape(x.shape)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def _bitwise(a, b):
    return np.array_equal(np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32))


# ---------------------------------------------------------------- layer / group norm ops

@pytest.mark.parametrize("shape,k", [((3, 7), 1), ((2, 5, 9), 1), ((2, 3, 5, 3), 2),
                                     ((4, 1), 1), ((2, 3, 5, 3), 3)])
@pytest.mark.parametrize("rms", [False, True])
def test_layer_norm_forward_matches_numpy(rng, shape, k, rms):
    x = rng.normal(2.0, 3.0, size=shape)
    ns = shape[len(shape) - k:]
    g, b = rng.normal(size=ns), rng.normal(size=ns)
    y, _ = ops.layer_norm_forward(x, g, b, 1e-3, norm_ndim=k, rms_scaling=rms)
    assert_close(y, ln_ref(x, g, b, k, rms=rms), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,groups", [((2, 3, 5, 6), 3), ((3, 4, 10), 5), ((2, 7), 7),
                                          ((2, 2, 3, 12), 1), ((1, 5, 5, 9), 9)])
def test_group_norm_forward_matches_numpy(rng, shape, groups):
    x = rng.normal(-1.0, 2.0, size=shape)
    g, b = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
    y, _ = ops.group_norm_forward(x, groups, g, b)
    assert_close(y, gn_ref(x, groups, g, b), rtol=1e-5, atol=1e-5)
    y2, _ = ops.group_norm_forward(x, groups)
    assert_close(y2, gn_ref(x, groups, None, None), rtol=1e-5, atol=1e-5)


def test_layer_norm_large_offset_is_accurate(rng):
    # statistics in double, two passes: a large common offset costs no precision
    x = (1e4 + rng.normal(size=(4, 33))).astype(np.float32)
    y, _ = ops.layer_norm_forward(x)
    assert_close(y, ln_ref(x.astype(np.float64), None, None), rtol=1e-5, atol=1e-5)


def _check_norm_grads(x, g, b, fwd_ref, run):
    rng = np.random.default_rng(7)
    w = rng.normal(size=x.shape)
    y, cache = run(x, g, b)
    dx, dg, db = ops.group_norm_backward(w.astype(np.float32), cache)
    fx = fd_grad(lambda xx: np.sum(fwd_ref(xx, g, b) * w), x)
    assert_close(dx, fx, rtol=1e-5, atol=1e-5, what="dx")
    if g is not None:
        fg = fd_grad(lambda gg: np.sum(fwd_ref(x, gg, b) * w), g)
        assert_close(dg.reshape(g.shape), fg, rtol=1e-5, atol=1e-5, what="dgamma")
    if b is not None:
        fb = fd_grad(lambda bb: np.sum(fwd_ref(x, g, bb) * w), b)
        assert_close(db.reshape(b.shape), fb, rtol=1e-5, atol=1e-5, what="dbeta")


@pytest.mark.parametrize("shape,k,rms", [((3, 7), 1, False), ((2, 3, 5), 2, False),
                                         ((3, 7), 1, True), ((2, 3, 5), 1, True)])
def test_layer_norm_backward_vs_finite_differences(rng, shape, k, rms):
    x = rng.normal(size=shape)
    ns = shape[len(shape) - k:]
    g, b = rng.normal(size=ns), (None if rms else rng.normal(size=ns))
    _check_norm_grads(
        x, g, b, lambda xx, gg, bb: ln_ref(xx, gg, bb, k, rms=rms),
        lambda xx, gg, bb: ops.layer_norm_forward(xx, gg, bb, norm_ndim=k, rms_scaling=rms))


@pytest.mark.parametrize("shape,groups", [((2, 3, 3, 6), 3), ((2, 5, 4), 2), ((3, 3, 5), 5)])
def test_group_norm_backward_vs_finite_differences(rng, shape, groups):
    x = rng.normal(size=shape)
    g, b = rng.normal(size=shape[-1]), rng.normal(size=shape[-1])
    _check_norm_grads(x, g, b, lambda xx, gg, bb: gn_ref(xx, groups, gg, bb),
                      lambda xx, gg, bb: ops.group_norm_forward(xx, groups, gg, bb))


def test_group_norm_without_affine_backward(rng):
    x = rng.normal(size=(2, 4, 6))
    _check_norm_grads(x, None, None, lambda xx, gg, bb: gn_ref(xx, 2, None, None),
                      lambda xx, gg, bb: ops.group_norm_forward(xx, 2))


@pytest.mark.parametrize("kind", ["layer", "group"])
def test_norm_threads_bitwise(rng, kind):
    x = rng.normal(size=(8, 24, 24, 12)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    g = rng.normal(size=12).astype(np.float32)
    b = rng.normal(size=12).astype(np.float32)
    res = []
    for t in (1, 2):
        with num_threads(t):
            if kind == "layer":
                y, cache = ops.layer_norm_forward(x, g, b)
            else:
                y, cache = ops.group_norm_forward(x, 4, g, b)
            res.append((y,) + ops.group_norm_backward(dy, cache))
    for a, b_ in zip(*res):
        assert _bitwise(a, b_)


def test_norm_ops_bad_arguments(rng):
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="groups"):
        ops.group_norm_forward(x, 3)
    with pytest.raises(ValueError, match="epsilon"):
        ops.layer_norm_forward(x, epsilon=0)
    with pytest.raises(ValueError, match="norm_ndim"):
        ops.layer_norm_forward(x, norm_ndim=3)
    with pytest.raises(ValueError, match="gamma"):
        ops.layer_norm_forward(x, np.ones(5))
    _, cache = ops.layer_norm_forward(x)
    with pytest.raises(ValueError, match="dy"):
        ops.group_norm_backward(np.ones((2, 3, 5), np.float32), cache)
    with pytest.raises(ValueError, match="cache"):
        ops.group_norm_backward(x, "nope")
    with pytest.raises(ValueError, match="overlap"):
        ops.group_norm_backward(x, cache, dx=x)


# ---------------------------------------------------------------- normalization layers

def test_layer_normalization_layer(rng):
    x = rng.normal(size=(3, 4, 5)).astype(np.float32)
    ln = L.LayerNormalization(axis=[-2, -1], epsilon=1e-2)
    y = ln(x)
    assert [w.shape for w in ln.get_weights()] == [(4, 5), (4, 5)]
    assert ln.get_config()["axis"] == [-2, -1]
    assert_close(y, ln_ref(x.astype(np.float64), None, None, 2, eps=1e-2), rtol=1e-5,
                 atol=1e-5)
    rms = L.LayerNormalization(rms_scaling=True, center=True)
    rms(x)
    assert [w.name for w in rms.weights] == ["gamma"]
    nob = L.LayerNormalization(center=False, scale=False)
    nob(x)
    assert nob.weights == []
    assert L.LayerNormalization.from_config(ln.get_config()).get_config() == ln.get_config()


def test_group_normalization_layer(rng):
    x = rng.normal(size=(2, 3, 3, 8)).astype(np.float32)
    gn = L.GroupNormalization(groups=-1)
    gn(x)
    assert gn.groups == 8 and gn.get_config()["groups"] == 8
    gn2 = L.GroupNormalization(groups=4, center=False)
    assert [w.name for w in (gn2(x) is not None and gn2.weights)] == ["gamma"]


def test_norm_layer_bad_arguments():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(TypeError, match="axis"):
        L.LayerNormalization(axis="last")
    with pytest.raises(ValueError, match="trailing"):
        L.LayerNormalization(axis=1)(x)
    with pytest.raises(ValueError, match="trailing"):
        L.LayerNormalization(axis=[0, 1, 2])(x)
    with pytest.raises(ValueError, match="out of bounds"):
        L.LayerNormalization(axis=5)(x)
    with pytest.raises(ValueError, match="epsilon"):
        L.LayerNormalization(epsilon=-1)
    with pytest.raises(ValueError, match="groups"):
        L.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match="divide"):
        L.GroupNormalization(groups=3)(x)
    with pytest.raises(ValueError, match="more than"):
        L.GroupNormalization(groups=8)(x)
    with pytest.raises(ValueError, match="last axis"):
        L.GroupNormalization(groups=1, axis=1)(x)
    ln = L.LayerNormalization()
    ln(x)
    with pytest.raises(ValueError, match="incompatible"):
        ln(np.zeros((2, 3, 5), np.float32))


# ---------------------------------------------------------------- spatial dropout

def test_spatial_dropout_drops_whole_channels(rng):
    x = rng.normal(size=(6, 5, 4, 32)).astype(np.float32) + 3.0
    layer = L.SpatialDropout2D(0.4, seed=3)
    y = layer(x, training=True)
    kept = np.all(y != 0, axis=(1, 2))
    dropped = np.all(y == 0, axis=(1, 2))
    assert np.all(kept | dropped)  # a channel of a sample is all kept or all dropped
    assert_close(y[..., kept[0]][0], x[0][..., kept[0]] / 0.6, rtol=1e-6, atol=1e-6)
    assert 0.2 < dropped.mean() < 0.6
    assert np.array_equal(layer(x), x)  # inference: the identity
    dx = layer.backward(np.ones_like(x))  # the backward of the last (inference) call
    assert np.array_equal(dx, np.ones_like(x))


def test_spatial_dropout_backward_and_seed_state(rng):
    x = rng.normal(size=(3, 4, 4, 5)).astype(np.float32)
    a = L.SpatialDropout2D(0.5, seed=11)
    b = L.SpatialDropout2D(0.5, seed=11)
    ya = a.forward(x, training=True).copy()
    dy = rng.normal(size=x.shape).astype(np.float32)
    dx = a.backward(dy)
    mask = (ya != 0).astype(np.float32)
    # dx is exactly dy * mask / (1 - rate) (a power of two here: no rounding)
    np.testing.assert_array_equal(dx, dy * mask * 2.0)
    ya2 = a.forward(x, training=True).copy()
    state = a.extra_state()
    ya3 = a.forward(x, training=True).copy()
    b.set_extra_state(state)
    assert np.array_equal(b.forward(x, training=True), ya3)
    assert not np.array_equal(ya, ya2) or not np.array_equal(ya2, ya3)


def test_spatial_dropout_threads_bitwise(rng):
    x = rng.normal(size=(8, 32, 32, 12)).astype(np.float32)
    out = []
    for t in (1, 2):
        with num_threads(t):
            y, m = ops.spatial_dropout(x, 0.3, 1234)
            out.append((y, m, ops.spatial_dropout_backward(x, m, 0.3)))
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_spatial_dropout_bad_arguments():
    with pytest.raises(ValueError, match="rate"):
        L.SpatialDropout2D(1.5)
    with pytest.raises(ValueError, match="channels_last"):
        L.SpatialDropout2D(0.1, data_format="channels_first")
    with pytest.raises(ValueError, match="ndim"):
        L.SpatialDropout2D(0.1)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="seed"):
        L.SpatialDropout2D(0.1, seed=-1)
    with pytest.raises(ValueError, match="mask"):
        ops.spatial_dropout_backward(np.zeros((2, 3), np.float32), np.zeros((2, 3)), 0.1)


# ---------------------------------------------------------------- permute / repeat

@pytest.mark.parametrize("shape,dims", [((2, 3, 5), (2, 1)), ((2, 3, 5, 7), (3, 1, 2)),
                                        ((1, 3, 1, 2, 5), (4, 2, 3, 1)), ((3, 4), (1,))])
def test_permute_forward_backward(rng, shape, dims):
    x = rng.normal(size=shape).astype(np.float32)
    layer = L.Permute(dims)
    y = layer(x)
    assert np.array_equal(y, x.transpose((0,) + dims))
    layer._build_for((None,) + shape[1:])
    layer.forward(x)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = layer.backward(dy)
    assert np.array_equal(dx, dy.transpose(np.argsort((0,) + dims)))
    # a permutation is linear: its gradient is the transposed map (fd in float64)
    w = rng.normal(size=y.shape)
    fx = fd_grad(lambda xx: np.sum(xx.transpose((0,) + dims) * w), x)
    assert_close(layer.backward(w.astype(np.float32)), fx, rtol=1e-5, atol=1e-6)


def test_repeat_vector_forward_backward(rng):
    x = rng.normal(size=(3, 7)).astype(np.float32)
    layer = L.RepeatVector(4)
    layer._build_for((None, 7))
    y = layer.forward(x)
    assert np.array_equal(y, np.repeat(x[:, None], 4, axis=1))
    w = rng.normal(size=(3, 4, 7))
    fx = fd_grad(lambda xx: np.sum(np.repeat(xx[:, None], 4, axis=1) * w), x)
    assert_close(layer.backward(w.astype(np.float32)), fx, rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape((None, 7)) == (None, 4, 7)


def test_copy_kernels_threads_bitwise(rng):
    x = rng.normal(size=(16, 30, 20, 13)).astype(np.float32)
    v = rng.normal(size=(64, 517)).astype(np.float32)
    dy = rng.normal(size=(64, 9, 517)).astype(np.float32)
    out = []
    for t in (1, 2):
        with num_threads(t):
            out.append((ops.permute(x, (0, 3, 1, 2)), ops.repeat_vector(v, 9),
                        ops.repeat_vector_backward(dy)))
    for a, b in zip(*out):
        assert np.array_equal(a, b)


def test_permute_repeat_bad_arguments():
    with pytest.raises(ValueError, match="dims"):
        L.Permute((0, 1))
    with pytest.raises(ValueError, match="dims"):
        L.Permute((1, 3))
    with pytest.raises(ValueError, match="ndim"):
        L.Permute((2, 1))(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="n"):
        L.RepeatVector(0)
    with pytest.raises(ValueError, match="ndim"):
        L.RepeatVector(2)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="perm"):
        ops.permute(np.zeros((2, 3)), (0, 0))


# ---------------------------------------------------------------- embedding

def test_embedding_forward_and_int_or_float_indices(rng):
    emb = L.Embedding(11, 5)
    idx = rng.integers(0, 11, size=(4, 7))
    y = emb(idx)
    table = emb.get_weights()[0]
    assert table.shape == (11, 5)
    assert np.array_equal(y, table[idx])
    assert np.array_equal(emb(idx.astype(np.float32)), y)
    assert np.all(np.abs(table) <= 0.05)  # Keras' "uniform": RandomUniform(-0.05, 0.05)


def test_embedding_backward_vs_scatter_add_and_fd(rng):
    emb = L.Embedding(6, 3)
    idx = np.array([[0, 5, 5], [2, 5, 0]], np.float32)
    emb._build_for((None, 3))
    emb.forward(idx, training=True)
    w = rng.normal(size=(2, 3, 3))
    dx = emb.backward(w.astype(np.float32))
    assert np.array_equal(dx, np.zeros_like(idx))
    table = emb.get_weights()[0].astype(np.float64)
    ii = idx.astype(int)
    ft = fd_grad(lambda t: np.sum(t[ii] * w), table)
    assert_close(emb.gradients[0], ft, rtol=1e-5, atol=1e-6)


def test_embedding_threads_bitwise(rng):
    table = rng.normal(size=(500, 70)).astype(np.float32)
    idx = rng.integers(0, 500, size=(64, 40))
    dy = rng.normal(size=(64, 40, 70)).astype(np.float32)
    out = []
    for t in (1, 2):
        with num_threads(t):
            out.append((ops.embedding_lookup(idx, table), ops.embedding_backward(idx, dy, 500)))
    for a, b in zip(*out):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("bad", [[[0, 11]], [[-1, 2]], [[0.5, 1]], [[np.nan, 1]]])
def test_embedding_rejects_bad_indices(bad):
    emb = L.Embedding(11, 2, name="emb")
    with pytest.raises(ValueError, match="emb.*range|emb.*integer"):
        emb(np.array(bad))


def test_embedding_bad_arguments():
    with pytest.raises(ValueError, match="mask"):
        L.Embedding(5, 2, mask_zero=True)
    with pytest.raises(ValueError, match="input_dim"):
        L.Embedding(0, 2)
    with pytest.raises(ValueError, match="output_dim"):
        L.Embedding(3, 2.5)
    with pytest.raises(ValueError, match="input_dim"):
        L.Embedding(2 ** 25, 2)
    with pytest.raises(ValueError, match="lora_rank"):
        L.Embedding(3, 2, lora_rank=2)
    L.Embedding(3, 2, input_length=7)  # ignored, as Keras 3


def test_embedding_text_model_fits():
    fastcnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(256, 8))
    y = (x[:, 2] < 15).astype(np.int64)  # the token at position 2 decides
    model = fastcnn.Sequential([fastcnn.Input((8,)), L.Embedding(30, 8), L.Flatten(),
                                L.Dense(16, activation="relu"), L.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["accuracy"][-1] > 0.85
    with pytest.raises(ValueError, match="embedding"):
        model.predict(np.full((2, 8), 30), verbose=0)


# ---------------------------------------------------------------- saving

def test_model_with_new_layers_saves_and_loads(tmp_path):
    fastcnn.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    inp = fastcnn.Input((6,))
    h = L.Embedding(9, 8)(inp)                       # (6, 8)
    h = L.LayerNormalization(axis=[-2, -1])(h)
    h = L.Permute((2, 1))(h)                         # (8, 6)
    h = L.Reshape((4, 2, 6))(h)
    h = L.GroupNormalization(groups=3)(h)
    h = L.SpatialDropout2D(0.3, seed=2)(h)
    h = L.Flatten()(h)
    h = L.Dense(5)(h)
    out = L.Dense(2)(L.Flatten()(L.RepeatVector(3)(h)))
    model = fastcnn.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    x = rng.integers(0, 9, size=(20, 6))
    y = rng.normal(size=(20, 2))
    model.fit(x, y, epochs=1, batch_size=5, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    again = fastcnn.saving.load_model(path)
    assert np.array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in again.layers] == \
        [type(layer).__name__ for layer in model.layers]
    # the dropout stream resumes where it was: the next training step draws the same masks
    h1 = model.fit(x, y, epochs=1, batch_size=5, shuffle=False, verbose=0)
    h2 = again.fit(x, y, epochs=1, batch_size=5, shuffle=False, verbose=0)
    assert h1.history["loss"] == h2.history["loss"]
