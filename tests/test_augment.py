"""Image augmentation / preprocessing kernels (fastcnn.ops.image) and layers.

Oracles: a float64 NumPy transcription of Keras 3's formulas (jax.scipy.ndimage's
map_coordinates for affine_transform), and real Keras 3 on JAX where the result is
deterministic (resize, crops, fixed transforms).
"""
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import layers, models, ops
from fastcnn.layers.preprocessing import rotation_transforms, zoom_transforms

from conftest import fd_grad, num_threads

FILL_MODES = ("constant", "nearest", "wrap", "reflect")


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras")


# ----------------------------------------------------------------------------- references
def _fix(i, n, mode):
    """jax.scipy.ndimage index fixers: (index, valid)."""
    if mode == "constant":
        return np.clip(i, 0, n - 1), (i >= 0) & (i < n)
    if mode == "nearest":
        return np.clip(i, 0, n - 1), np.ones_like(i, bool)
    if mode == "wrap":
        return np.mod(i, n), np.ones_like(i, bool)
    m = np.mod(i, 2 * n)
    return np.where(m >= n, 2 * n - 1 - m, m), np.ones_like(i, bool)


def ref_affine(x, t, interpolation, fill_mode, fill_value):
    """Keras' affine_transform (TF-style projective divide), in float64."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    out = np.empty_like(x)
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64),
                         indexing="ij")
    for b in range(n):
        a0, a1, a2, b0, b1, b2, c0, c1 = np.asarray(t[b], np.float64)
        k = c0 * xx + c1 * yy + 1
        sx = (a0 * xx + a1 * yy + a2) / k
        sy = (b0 * xx + b1 * yy + b2) / k
        if interpolation == "nearest":
            nodes_y = [(np.sign(sy) * np.floor(np.abs(sy) + 0.5), np.ones_like(sy))]
            nodes_x = [(np.sign(sx) * np.floor(np.abs(sx) + 0.5), np.ones_like(sx))]
        else:
            fy, fx = np.floor(sy), np.floor(sx)
            nodes_y = [(fy, 1 - (sy - fy)), (fy + 1, sy - fy)]
            nodes_x = [(fx, 1 - (sx - fx)), (fx + 1, sx - fx)]
        acc = np.zeros((h, w, c))
        for iy, wy in nodes_y:
            iy, oky = _fix(iy.astype(np.int64), h, fill_mode)
            for ix, wx in nodes_x:
                ix, okx = _fix(ix.astype(np.int64), w, fill_mode)
                v = np.where((oky & okx)[..., None], x[b][iy, ix], fill_value)
                acc += (wy * wx)[..., None] * v
        out[b] = acc
    return out


def _images(rng, shape=(4, 9, 11, 3), dtype=np.float32):
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape).astype(np.uint8)
    return rng.uniform(0, 255, size=shape).astype(np.float32)


def _transforms(rng, n):
    t = np.zeros((n, 8), np.float32)
    t[:, 0] = rng.uniform(0.5, 1.5, n)
    t[:, 1] = rng.uniform(-0.4, 0.4, n)
    t[:, 2] = rng.uniform(-4, 4, n)
    t[:, 3] = rng.uniform(-0.4, 0.4, n)
    t[:, 4] = rng.uniform(0.5, 1.5, n)
    t[:, 5] = rng.uniform(-4, 4, n)
    return t


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_affine_transform_matches_numpy_reference(rng, fill_mode, interpolation, dtype):
    x = _images(rng, (3, 9, 11, 5), dtype)
    t = _transforms(rng, 3)
    t[2, 6:] = (0.01, -0.02)  # one projective transform
    got = ops.affine_transform(x, t, interpolation, fill_mode, 7.5)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, ref_affine(x, t, interpolation, fill_mode, 7.5),
                               rtol=1e-5, atol=2e-3)


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_transform_matches_keras(rng, fill_mode, interpolation):
    keras = _keras()
    x = _images(rng, (3, 9, 11, 3))
    t = _transforms(rng, 3)
    want = np.asarray(keras.ops.image.affine_transform(
        x, t, interpolation=interpolation, fill_mode=fill_mode, fill_value=3.0))
    got = ops.affine_transform(x, t, interpolation, fill_mode, 3.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_rotation_and_zoom_matrices_match_keras():
    keras = _keras()
    angles = np.array([-30.0, 12.5, 170.0], np.float32)
    z = np.zeros(3, np.float32)
    want = keras.layers.RandomRotation(0.5)._compute_affine_matrix(
        0.5, 0.5, angles, z, z, np.ones(3, np.float32), z, z, 9, 13)
    np.testing.assert_allclose(rotation_transforms(angles, 9, 13), np.asarray(want),
                               rtol=1e-6, atol=1e-5)
    zy = np.array([0.8, 1.2, 1.0], np.float32)
    zx = np.array([1.3, 0.9, 1.0], np.float32)
    want = keras.layers.RandomZoom(0.3)._get_zoom_matrix(np.stack([zx, zy], 1), 9, 13)
    np.testing.assert_allclose(zoom_transforms(zy, zx, 9, 13), np.asarray(want), rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("size", [(4, 5), (20, 7), (9, 11), (3, 30)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("aspect", ["none", "crop", "pad"])
def test_resize_matches_keras(rng, size, interpolation, antialias, aspect):
    keras = _keras()
    x = _images(rng, (2, 9, 11, 3))
    kw = dict(crop_to_aspect_ratio=aspect == "crop", pad_to_aspect_ratio=aspect == "pad")
    want = np.asarray(keras.ops.image.resize(x, size, interpolation=interpolation,
                                             antialias=antialias, fill_value=5.0, **kw))
    got = ops.resize(x, size, interpolation, antialias, fill_value=5.0, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def test_resize_bilinear_matches_numpy_half_pixel_reference(rng):
    x = _images(rng, (2, 7, 6, 2), np.uint8)
    oh, ow = 11, 4

    def axis(n_in, n_out):
        s = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(s).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, s - lo
    ly, hy, fy = axis(7, oh)
    lx, hx, fx = axis(6, ow)
    xf = x.astype(np.float64)
    rows = xf[:, ly] * (1 - fy)[None, :, None, None] + xf[:, hy] * fy[None, :, None, None]
    want = rows[:, :, lx] * (1 - fx)[None, None, :, None] + rows[:, :, hx] * fx[None, None, :,
                                                                                  None]
    np.testing.assert_allclose(ops.resize(x, (oh, ow)), want, rtol=1e-5, atol=1e-3)


def test_crop_flip_contrast_brightness_match_numpy(rng):
    x = _images(rng, (3, 6, 7, 2), np.uint8)
    top, left, fl = np.array([0, 2, 1]), np.array([3, 0, 1]), np.array([0, 1, 3])
    got = ops.crop_images(x, top, left, 4, 4, flips=fl)
    for i in range(3):
        win = x[i, top[i]:top[i] + 4, left[i]:left[i] + 4].astype(np.float32)
        if fl[i] & 1:
            win = win[:, ::-1]
        if fl[i] & 2:
            win = win[::-1]
        np.testing.assert_array_equal(got[i], win)
    f = np.array([0.5, 1.0, 1.7], np.float32)
    xf = x.astype(np.float64)
    m = xf.mean(axis=(1, 2), keepdims=True)
    want = np.clip((xf - m) * f[:, None, None, None] + m, 10, 200)
    np.testing.assert_allclose(ops.adjust_contrast(x, f, (10, 200)), want, rtol=1e-5,
                               atol=1e-3)
    d = np.array([-30.0, 0.0, 80.5], np.float32)
    np.testing.assert_array_equal(ops.adjust_brightness(x, d, (0, 255)),
                                  np.clip(x.astype(np.float32) + d[:, None, None, None], 0,
                                          255))


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_backward_is_the_adjoint(rng, fill_mode, interpolation):
    x = rng.normal(size=(3, 5, 7, 3)).astype(np.float32)
    t = _transforms(rng, 3)
    y = ops.affine_transform(x, t, interpolation, fill_mode, 0.0).astype(np.float64)
    dy = rng.normal(size=x.shape).astype(np.float32)
    dx = ops.affine_transform_backward(dy, t, interpolation, fill_mode).astype(np.float64)
    np.testing.assert_allclose((y * dy).sum(), (x * dx).sum(), rtol=1e-5)


def test_crop_backward_is_the_adjoint(rng):
    x = rng.normal(size=(3, 6, 7, 5)).astype(np.float32)
    top, left, fl = [0, 2, 1], [3, 0, 1], [2, 1, 3]
    y = ops.crop_images(x, top, left, 4, 3, flips=fl).astype(np.float64)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = ops.crop_images_backward(dy, top, left, x.shape, flips=fl).astype(np.float64)
    np.testing.assert_allclose((y * dy).sum(), (x * dx).sum(), rtol=1e-5)


def test_kernels_are_bitwise_identical_at_1_and_2_threads(rng):
    x = _images(rng, (16, 32, 32, 3))
    t = _transforms(rng, 16)
    runs = []
    for n in (1, 2):
        with num_threads(n):
            runs.append([ops.affine_transform(x, t, "bilinear", "reflect"),
                         ops.affine_transform_backward(x, t, "bilinear", "wrap"),
                         ops.resize(x, (45, 21), antialias=True),
                         ops.crop_images(x, np.arange(16) % 5, 3, 24, 24, flips=np.arange(16) % 4),
                         ops.adjust_contrast(x, np.linspace(0.5, 1.5, 16)),
                         ops.adjust_brightness(x, np.linspace(-9, 9, 16))])
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes()


def test_ops_reject_bad_arguments(rng):
    x = _images(rng, (2, 5, 5, 1))
    with pytest.raises(ValueError, match="affine_transform: `fill_mode`"):
        ops.affine_transform(x, np.eye(3).ravel()[:8], fill_mode="mirror")
    with pytest.raises(ValueError, match="affine_transform: `transform`"):
        ops.affine_transform(x, np.zeros(6))
    with pytest.raises(ValueError, match="resize: `interpolation`"):
        ops.resize(x, (3, 3), "bicubic")
    with pytest.raises(ValueError, match="resize: `size`"):
        ops.resize(x, (0, 3))
    with pytest.raises(ValueError, match="crop_images: windows must lie inside"):
        ops.crop_images(x, 3, 0, 4, 4)
    with pytest.raises(ValueError, match="images"):
        ops.adjust_contrast(np.zeros((5, 5)), 1.0)
    with pytest.raises(ValueError, match="adjust_brightness: `deltas` must be a number or 2"):
        ops.adjust_brightness(x, [1.0, 2.0, 3.0])


# ----------------------------------------------------------------------------- layers
def _random_layers():
    return [
        lambda s: layers.RandomFlip(seed=s),
        lambda s: layers.RandomFlip("vertical", seed=s),
        lambda s: layers.RandomFlip("horizontal", seed=s),
        lambda s: layers.RandomTranslation(0.2, (-0.1, 0.3), seed=s),
        lambda s: layers.RandomRotation(0.1, fill_mode="wrap", seed=s),
        lambda s: layers.RandomZoom((-0.3, 0.2), fill_mode="nearest", seed=s),
        lambda s: layers.RandomZoom(0.2, 0.1, fill_mode="constant", interpolation="nearest",
                                    seed=s),
        lambda s: layers.RandomCrop(24, 20, seed=s),
        lambda s: layers.RandomContrast(0.4, seed=s),
        lambda s: layers.RandomBrightness(0.2, seed=s),
    ]


@pytest.mark.parametrize("make", _random_layers())
def test_random_layers_seeded_thread_independent_and_identity_at_inference(rng, make):
    x = _images(rng, (16, 32, 32, 3))
    a, b = make(5), make(5)
    with num_threads(1):
        ya = [a(x, training=True) for _ in range(2)]
    with num_threads(2):
        yb = [b(x, training=True) for _ in range(2)]
    for p, q in zip(ya, yb):
        assert p.tobytes() == q.tobytes()
    assert ya[0].tobytes() != ya[1].tobytes()  # a new draw per batch
    c = layers.deserialize(layers.serialize(make(5)))
    assert c(x, training=True).tobytes() == ya[0].tobytes()
    if not isinstance(a, layers.RandomCrop):
        np.testing.assert_array_equal(a(x, training=False), x)


def test_random_layers_value_ranges(rng):
    x = _images(rng, (64, 8, 8, 3), np.uint8).astype(np.float32)
    values = set(np.unique(x)) | {7.0}
    y = layers.RandomRotation(0.5, fill_mode="constant", interpolation="nearest",
                              fill_value=7.0, seed=1)(x, training=True)
    assert set(np.unique(y)) <= values
    y = layers.RandomBrightness((0.1, 0.3), value_range=(0, 255), seed=2)(x, training=True)
    assert y.min() >= 0 and y.max() <= 255
    d = (y - x)[x < 150]  # unclipped pixels moved up by 0.1..0.3 of 255
    assert d.min() >= 0.1 * 255 - 1e-3 and d.max() <= 0.3 * 255 + 1e-3
    y = layers.RandomContrast(0.5, seed=3)(x, training=True)
    xm, ym = x - x.mean((1, 2), keepdims=True), y - y.mean((1, 2), keepdims=True)
    ratio = np.abs(ym).sum((1, 2, 3)) / np.abs(xm).sum((1, 2, 3))
    assert ratio.min() > 0.9 and ratio.max() <= 1.5 + 1e-4  # Keras' draw: [1, 1 + f]
    y = layers.RandomCrop(5, 6, seed=4)(x, training=True)
    for i in range(64):
        assert any(np.array_equal(y[i], x[i, t:t + 5, l:l + 6])
                   for t in range(4) for l in range(3))


def test_random_flip_modes(rng):
    x = rng.normal(size=(64, 4, 5, 2)).astype(np.float32)
    for mode, ref in (("horizontal", lambda a: a[:, ::-1]), ("vertical", lambda a: a[::-1]),
                      ("horizontal_and_vertical", lambda a: a[::-1, ::-1])):
        y = layers.RandomFlip(mode, seed=9)(x, training=True)
        flipped = [np.array_equal(y[i], ref(x[i])) for i in range(64)]
        kept = [np.array_equal(y[i], x[i]) for i in range(64)]
        assert all(f or k for f, k in zip(flipped, kept))
        assert 10 < sum(flipped) < 54


def test_translation_nearest_constant_is_a_whole_pixel_shift(rng):
    x = rng.uniform(1, 2, size=(50, 8, 8, 1)).astype(np.float32)
    y = layers.RandomTranslation(0.25, 0.25, fill_mode="constant", interpolation="nearest",
                                 seed=1)(x, training=True)
    for i in range(50):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(x[i])
                src = x[i][max(-dy, 0):8 + min(-dy, 0), max(-dx, 0):8 + min(-dx, 0)]
                ref[max(dy, 0):8 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = src
                found |= np.array_equal(ref, y[i])
        assert found, "image %d is not a whole-pixel shift of its input" % i


def test_affine_layers_apply_their_drawn_transform(rng):
    x = _images(rng, (6, 9, 11, 3))
    for layer in (layers.RandomRotation(0.2, seed=1), layers.RandomZoom(0.3, seed=2),
                  layers.RandomTranslation(0.3, 0.2, fill_mode="wrap", seed=3)):
        y = layer.forward(x, training=True)
        t = layer.transforms(np.random.default_rng([layer._seed, 0]), 6, 9, 11)
        np.testing.assert_allclose(y, ref_affine(x, t, layer.interpolation, layer.fill_mode,
                                                 layer.fill_value), rtol=1e-5, atol=2e-3)


@pytest.mark.parametrize("make", [
    lambda: layers.RandomRotation(0.2, seed=1),
    lambda: layers.RandomZoom(0.3, fill_mode="constant", seed=2),
    lambda: layers.RandomTranslation(0.2, 0.2, fill_mode="reflect", seed=3),
    lambda: layers.RandomFlip("vertical", seed=4),
    lambda: layers.RandomCrop(4, 5, seed=5),
    lambda: layers.CenterCrop(3, 4),
])
def test_layer_backward_is_the_adjoint(rng, make):
    layer = make()
    x = rng.normal(size=(4, 6, 7, 3)).astype(np.float32)
    layer._build_for((None,) + x.shape[1:])
    y = np.array(layer.forward(x, training=True), dtype=np.float64)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = np.array(layer.backward(dy), dtype=np.float64)
    np.testing.assert_allclose((y * dy).sum(), (x * dx).sum(), rtol=1e-5)


def test_deterministic_layers_match_keras(rng):
    keras = _keras()
    x = _images(rng, (2, 9, 12, 3))
    cases = [
        (layers.Resizing(5, 7), keras.layers.Resizing(5, 7)),
        (layers.Resizing(16, 8, interpolation="nearest", crop_to_aspect_ratio=True),
         keras.layers.Resizing(16, 8, interpolation="nearest", crop_to_aspect_ratio=True)),
        (layers.Resizing(6, 6, pad_to_aspect_ratio=True, fill_value=2.0, antialias=True),
         keras.layers.Resizing(6, 6, pad_to_aspect_ratio=True, fill_value=2.0,
                               antialias=True)),
        (layers.CenterCrop(5, 8), keras.layers.CenterCrop(5, 8)),
        (layers.CenterCrop(12, 5), keras.layers.CenterCrop(12, 5)),  # taller: smart resize
        (layers.Rescaling(1 / 255.0, -0.5), keras.layers.Rescaling(1 / 255.0, -0.5)),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(ours(x), np.asarray(theirs(x, training=False)), rtol=1e-5,
                                   atol=1e-3, err_msg=type(ours).__name__)
        assert ours.compute_output_shape((None,) + x.shape[1:])[1:] == \
            tuple(theirs.compute_output_shape((None,) + x.shape[1:]))[1:]
    # RandomCrop at inference: Keras' documented centre crop + resize (its code passes the
    # batch through unchanged, contradicting its own output shape)
    want = keras.ops.image.resize(x, (4, 6), crop_to_aspect_ratio=True)
    np.testing.assert_allclose(layers.RandomCrop(4, 6)(x, training=False), np.asarray(want),
                               rtol=1e-5, atol=1e-3)


def test_factor_conventions_match_keras():
    keras = _keras()
    for ours, theirs in ((layers.RandomContrast(0.3), keras.layers.RandomContrast(0.3)),
                         (layers.RandomBrightness(0.3), keras.layers.RandomBrightness(0.3)),
                         (layers.RandomRotation((-0.2, 0.1)),
                          keras.layers.RandomRotation((-0.2, 0.1)))):
        np.testing.assert_allclose(ours.factor, theirs.factor)
    z = keras.layers.RandomZoom(0.2)
    assert layers.RandomZoom(0.2).height_factor == (z.height_lower, z.height_upper)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.RandomRotation(1.5), "factor"),
    (lambda: layers.RandomRotation((-2, 0.5)), "factor"),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), "fill_mode"),
    (lambda: layers.RandomRotation(0.1, interpolation="bicubic"), "interpolation"),
    (lambda: layers.RandomZoom(-1.0), "height_factor"),
    (lambda: layers.RandomZoom(0.1, (0.1, 2.0)), "width_factor"),
    (lambda: layers.RandomTranslation(1.5, 0.1), "height_factor"),
    (lambda: layers.RandomTranslation(0.1, 0.1, fill_mode="bogus"), "fill_mode"),
    (lambda: layers.RandomTranslation(0.1, 0.1, fill_value=float("nan")), "fill_value"),
    (lambda: layers.RandomFlip("diagonal"), "mode"),
    (lambda: layers.RandomContrast(-0.1), "factor"),
    (lambda: layers.RandomContrast(0.1, value_range=5), "value_range"),
    (lambda: layers.RandomBrightness(2.0), "factor"),
    (lambda: layers.RandomCrop(0, 5), "height"),
    (lambda: layers.CenterCrop(5, 2.5), "width"),
    (lambda: layers.Resizing(5, 5, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     "only one"),
    (lambda: layers.Resizing(5, 5, interpolation="lanczos3"), "interpolation"),
    (lambda: layers.Resizing(5, 5, fill_mode="reflect"), "fill_mode"),
    (lambda: layers.RandomRotation(0.1, data_format="channels_first"), "data_format"),
])
def test_bad_layer_arguments_name_the_layer(make, match):
    with pytest.raises(ValueError, match=match) as e:
        make()
    assert "random_" in str(e.value) or "resizing" in str(e.value) or \
        "center_crop" in str(e.value)


def test_augmentation_submodel_in_sequential_and_functional_models(rng, tmp_path):
    fastcnn.utils.set_random_seed(0)
    aug = models.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
                             layers.RandomZoom(0.1)], name="data_augmentation")
    inp = fastcnn.Input(shape=(12, 14, 3))
    h = layers.Resizing(10, 10)(inp)
    h = aug(h)
    h = layers.Rescaling(1 / 255.0)(h)
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(h)
    h = layers.Flatten()(h)
    out = layers.Dense(3)(h)
    model = fastcnn.Model(inp, out)
    model.compile(optimizer="adam",
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.integers(0, 256, size=(20, 12, 14, 3)).astype(np.uint8)
    y = rng.integers(0, 3, size=(20,))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    p = model.predict(x, verbose=0)
    assert p.shape == (20, 3) and np.isfinite(p).all()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "data_augmentation" in text and "resizing" in text.lower()
    model.save(tmp_path / "m.keras")
    again = fastcnn.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), p)

    seq = models.Sequential([layers.Input(shape=(12, 14, 3)), layers.CenterCrop(8, 8),
                             layers.RandomTranslation(0.1, 0.1), layers.RandomContrast(0.2),
                             layers.Rescaling(1 / 255.0), layers.Flatten(), layers.Dense(3)])
    seq.compile(optimizer="sgd",
                loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    seq.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert seq.predict(x, verbose=0).shape == (20, 3)


@pytest.mark.parametrize("kw", [dict(), dict(antialias=True), dict(interpolation="nearest"),
                                dict(crop_to_aspect_ratio=True), dict(pad_to_aspect_ratio=True)])
@pytest.mark.parametrize("size", [(4, 9), (13, 5)])
def test_resize_backward_is_the_adjoint(rng, kw, size):
    x = rng.normal(size=(3, 7, 6, 5)).astype(np.float32)
    y = ops.resize(x, size, **kw).astype(np.float64)
    dy = rng.normal(size=y.shape).astype(np.float32)
    dx = ops.resize_backward(dy, x.shape, **kw).astype(np.float64)
    np.testing.assert_allclose((y * dy).sum(), (x * dx).sum(), rtol=1e-5)


def test_finite_difference_gradients_of_the_image_ops(rng):
    """Float64 central differences on odd shapes with 5 channels. The maps are linear in the
    pixels up to the clipping of contrast/brightness, so a step of 0.5 is exact up to
    float32 rounding; pixels within 2 of a clip bound (where the step crosses a kink) are not
    compared."""
    x = rng.uniform(20, 230, size=(2, 5, 7, 5))
    t = _transforms(rng, 2)
    f = np.array([0.6, 1.4], np.float32)
    d = np.array([-40.0, 25.0], np.float32)
    m = x.mean(axis=(1, 2), keepdims=True)
    far = lambda v: (np.abs(v - 40) > 2) & (np.abs(v - 210) > 2)  # noqa: E731
    cases = [
        (lambda a: ops.resize(a, (4, 9), antialias=True),
         lambda g: ops.resize_backward(g, x.shape, antialias=True), np.ones(x.shape, bool)),
        (lambda a: ops.affine_transform(a, t, "bilinear", "reflect"),
         lambda g: ops.affine_transform_backward(g, t, "bilinear", "reflect"),
         np.ones(x.shape, bool)),
        (lambda a: ops.adjust_contrast(a, f, (40, 210)),
         lambda g: ops.adjust_contrast_backward(x.astype(np.float32), g, f, (40, 210)),
         far((x - m) * f[:, None, None, None] + m)),
        (lambda a: ops.adjust_brightness(a, d, (40, 210)),
         lambda g: ops.adjust_brightness_backward(x.astype(np.float32), g, d, (40, 210)),
         far(x + d[:, None, None, None])),
    ]
    for fwd, bwd, keep in cases:
        dy = rng.normal(size=fwd(x.astype(np.float32)).shape)
        want = fd_grad(lambda a: float((fwd(a.astype(np.float32)) * dy).sum()), x, eps=0.5)
        got = bwd(dy.astype(np.float32))
        np.testing.assert_allclose(got[keep], want[keep], rtol=1e-3, atol=2e-3)


def test_contrast_and_brightness_gradients_match_numpy(rng):
    x = rng.uniform(0, 255, size=(3, 5, 6, 2)).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    f = np.array([0.5, 1.0, 1.8], np.float32)
    xf = x.astype(np.float64)
    m = xf.mean(axis=(1, 2), keepdims=True)
    pre = (xf - m) * f[:, None, None, None] + m
    g = np.where((pre >= 30) & (pre <= 220), dy, 0)
    want = f[:, None, None, None] * g + (1 - f[:, None, None, None]) * g.mean((1, 2),
                                                                             keepdims=True)
    np.testing.assert_allclose(ops.adjust_contrast_backward(x, dy, f, (30, 220)), want,
                               rtol=1e-5, atol=1e-5)
    d = np.array([-50.0, 0.0, 60.0], np.float32)
    want = np.where((x + d[:, None, None, None] >= 30) & (x + d[:, None, None, None] <= 220),
                    dy, 0)
    np.testing.assert_array_equal(ops.adjust_brightness_backward(x, dy, d, (30, 220)), want)


def test_gradients_flow_through_preprocessing_after_trainable_layers(rng):
    x = rng.normal(size=(4, 8, 8, 2)).astype(np.float32)
    y = np.zeros(4, int)
    for middle in (layers.Resizing(5, 6), layers.RandomContrast(0.3, value_range=(-9, 9)),
                   layers.RandomRotation(0.2), layers.CenterCrop(5, 5)):
        fastcnn.utils.set_random_seed(0)
        model = models.Sequential([layers.Input(shape=(8, 8, 2)),
                                   layers.Conv2D(2, 3, padding="same"), middle,
                                   layers.Flatten(), layers.Dense(2)])
        model.compile(optimizer="sgd",
                      loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
        before = model.layers[0].get_weights()[0].copy()
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
        assert not np.array_equal(before, model.layers[0].get_weights()[0]), middle.name


@pytest.mark.parametrize("size", [(5, 4), (20, 13), (7, 30)])
def test_resize_matches_pillow(rng, size):
    """Pillow's NEAREST picks floor((i + 0.5) * in / out) as JAX does; its BILINEAR is the
    normalised triangle filter widened when shrinking: JAX's antialiased bilinear (Pillow
    rounds to 8 bits, hence the tolerance)."""
    Image = pytest.importorskip("PIL.Image")
    x = _images(rng, (1, 11, 9, 3), np.uint8)
    img = Image.fromarray(x[0])
    oh, ow = size
    near = np.asarray(img.resize((ow, oh), Image.Resampling.NEAREST), np.float32)
    np.testing.assert_array_equal(ops.resize(x[0], size, "nearest"), near)
    bil = np.asarray(img.resize((ow, oh), Image.Resampling.BILINEAR), np.float32)
    np.testing.assert_allclose(ops.resize(x[0], size, "bilinear", antialias=True), bil,
                               atol=1.0)


def test_flips_and_crops_match_pillow(rng):
    Image = pytest.importorskip("PIL.Image")
    x = _images(rng, (1, 7, 10, 3), np.uint8)
    img = Image.fromarray(x[0])
    T = Image.Transpose
    for code, pil in ((1, img.transpose(T.FLIP_LEFT_RIGHT)), (2, img.transpose(T.FLIP_TOP_BOTTOM)),
                      (3, img.transpose(T.ROTATE_180))):
        np.testing.assert_array_equal(ops.crop_images(x, 0, 0, 7, 10, flips=code)[0],
                                      np.asarray(pil, np.float32))
    np.testing.assert_array_equal(ops.crop_images(x, 2, 3, 4, 5)[0],
                                  np.asarray(img.crop((3, 2, 8, 6)), np.float32))


@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_fixed_factor_random_layers_match_keras_end_to_end(rng, fill_mode):
    """A (f, f) factor makes Keras' draw a constant: the whole layer can be compared."""
    keras = _keras()
    x = _images(rng, (3, 9, 12, 3))
    kw = dict(fill_mode=fill_mode, fill_value=4.0)
    pairs = [
        (layers.RandomRotation((0.1, 0.1), **kw), keras.layers.RandomRotation((0.1, 0.1), **kw)),
        (layers.RandomRotation((-0.3, -0.3), interpolation="nearest", **kw),
         keras.layers.RandomRotation((-0.3, -0.3), interpolation="nearest", **kw)),
        (layers.RandomZoom((0.3, 0.3), (-0.2, -0.2), **kw),
         keras.layers.RandomZoom((0.3, 0.3), (-0.2, -0.2), **kw)),
        (layers.RandomTranslation((0.2, 0.2), (-0.15, -0.15), **kw),
         keras.layers.RandomTranslation((0.2, 0.2), (-0.15, -0.15), **kw)),
        (layers.RandomBrightness((0.1, 0.1)), keras.layers.RandomBrightness((0.1, 0.1))),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(x, training=True),
                                   np.asarray(theirs(x, training=True)), rtol=1e-5, atol=2e-3,
                                   err_msg=type(ours).__name__)


def test_whole_pixel_translation_fast_path_equals_the_general_kernel(rng):
    x = rng.normal(size=(64, 10, 9, 3)).astype(np.float32)
    layer = layers.RandomTranslation(0.3, (-0.4, 0.2), fill_mode="constant",
                                     interpolation="nearest", seed=3)
    for _ in range(3):
        y = layer.forward(x, training=True)
        want = ops.affine_transform(x, layer._workspaces.last["transform"], "nearest",
                                    "constant", 0.0)
        assert y.tobytes() == want.tobytes()
    # a half-pixel offset takes the general kernel
    t = np.zeros((1, 8), np.float32)
    t[0, [0, 4]] = 1
    t[0, 2] = -1.5
    from fastcnn.layers.preprocessing import _whole_pixel_shifts
    assert _whole_pixel_shifts(t) is None
    t[0, 2] = -1.3
    assert [int(v[0]) for v in _whole_pixel_shifts(t)] == [0, -1]
