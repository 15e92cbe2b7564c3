"""The speedrun recipe: `zoo.speedrun_model`, `zoo.init_whitening` and the `fastcnn train`
options it uses (--schedule step, --label-smoothing), on an image folder and on CIFAR-10."""
import os
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import cli, layers, models, zoo

CIFAR_DIR = Path(os.environ.get("FASTCNN_CIFAR10_DIR")
                 or os.path.expanduser("~/.cache/fastcnn-ci/cifar10"))


def _patches(x):
    """Every 2x2 patch of (N, H, W, C) images, flattened in (row, col, channel) order."""
    p = np.stack([x[:, a:x.shape[1] - 1 + a, b:x.shape[2] - 1 + b]
                  for a in (0, 1) for b in (0, 1)], axis=3)
    return p.reshape(-1, 4 * x.shape[3]).astype(np.float64)


def _correlated_images(rng, n=64, size=12):
    """Images whose 2x2 patches have one leading direction (a brightness shared by the
    whole image, in a fixed colour) above pixel noise."""
    base = rng.normal(size=(n, 1, 1, 1)) + 0.3 * rng.normal(size=(n, size, size, 1))
    colour = np.array([1.0, 0.8, 0.3])
    return 0.5 + 0.2 * base * colour + 0.05 * rng.normal(size=(n, size, size, 3))


def test_init_whitening_whitens_the_patches(rng):
    x = _correlated_images(rng).astype(np.float32)
    conv = layers.Conv2D(24, 2)
    conv.build((None,) + x.shape[1:])
    zoo.init_whitening(conv, x, max_patches=10 ** 6, eps=0.0)
    kernel, bias = conv.get_weights()
    z = _patches(x) @ kernel.reshape(12, 24).astype(np.float64) + bias
    np.testing.assert_allclose(z[:, 12:], -z[:, :12], rtol=1e-4, atol=1e-4)
    assert np.abs(z.mean(axis=0)).max() < 0.05
    # patches sampled with replacement: the covariance is the identity up to sampling noise
    np.testing.assert_allclose(np.cov(z[:, :12], rowvar=False), np.eye(12), atol=0.08)


def test_init_whitening_keeps_the_leading_directions(rng):
    x = _correlated_images(rng).astype(np.float32)
    conv = layers.Conv2D(4, 2)
    conv.build((None,) + x.shape[1:])
    zoo.init_whitening(conv, x)
    kernel, _ = conv.get_weights()
    p = _patches(x)
    values, vectors = np.linalg.eigh(np.cov(p, rowvar=False))
    lead = vectors[:, -1]
    w0 = kernel.reshape(12, 4)[:, 0].astype(np.float64)
    cosine = abs(w0 @ lead) / np.linalg.norm(w0)
    assert cosine > 0.999, "the first filter is not the leading patch direction (%.4f)" % cosine


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Conv2D(24, 3), "2x2 Conv2D"),
    (lambda: layers.Conv2D(23, 2), "even number of filters"),
    (lambda: layers.Conv2D(24, 2, use_bias=False), "with a bias"),
])
def test_init_whitening_refuses_other_layers(make, message):
    conv = make()
    conv.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match=message):
        zoo.init_whitening(conv, np.zeros((2, 8, 8, 3), np.float32))


def test_init_whitening_refuses_other_images():
    conv = layers.Conv2D(24, 2)
    conv.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match=r"\(N, H>=2, W>=2, 3\)"):
        zoo.init_whitening(conv, np.zeros((2, 8, 8, 1), np.float32))


@pytest.mark.parametrize("a, b", [(32, 128), (64, 256)])
def test_speedrun_model_shape_and_frozen_whitening(a, b):
    model = zoo.speedrun_model() if a == 32 else zoo.speedrun_model(widths=(a, b, b))
    assert model.output_shape == (None, 10)
    whiten = model.get_layer("whiten")
    assert not whiten.trainable and len(whiten.non_trainable_weights) == 2
    # 3x3 convolutions 24-a-a-b-b-b-b without biases, BN without scales, a bias-free Dense
    convs = 9 * (24 * a + a * a + a * b + 3 * b * b)
    bn = 3 * (a * 2 + b * 4)
    assert model.count_params() == 2 * 2 * 3 * 24 + 24 + convs + bn + b * 10
    kinds = [step.kind for step in model.plan()]
    # each block: conv, pool, BN, GELU, then conv and BN fused, GELU
    assert kinds.count("conv2d_batch_norm") == 3 and kinds.count("MaxPooling2D") == 3
    assert kinds.count("Activation") == 6


def test_speedrun_model_refuses_bad_whitening_width():
    with pytest.raises(ValueError, match="whiten_filters"):
        zoo.speedrun_model(whiten_filters=25)
    with pytest.raises(ValueError, match="whiten_filters"):
        zoo.speedrun_model(whiten_filters=26)


def test_frozen_whitening_is_unchanged_by_training(rng):
    model = zoo.speedrun_model(input_shape=(16, 16, 3), widths=(8, 8, 8))
    x = rng.random((64, 16, 16, 3)).astype(np.float32)
    zoo.init_whitening(model.get_layer("whiten"), x)
    before = [w.copy() for w in model.get_layer("whiten").get_weights()]
    model.compile(optimizer=fastcnn.optimizers.SGD(0.1, momentum=0.9),
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, rng.integers(0, 10, 64), batch_size=16, epochs=1, verbose=0)
    for a, b in zip(before, model.get_layer("whiten").get_weights()):
        np.testing.assert_array_equal(a, b)


def _folder(root):
    from PIL import Image
    rng = np.random.default_rng(0)
    for c, level in (("dark", 40), ("light", 210)):
        os.makedirs(os.path.join(root, c))
        for i in range(10):
            px = np.clip(rng.normal(level, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(os.path.join(root, c, "%02d.png" % i))
    return root


def test_train_speedrun_on_an_image_folder_with_smoothing_and_step_schedule(tmp_path, capsys):
    pytest.importorskip("PIL")
    data = _folder(str(tmp_path / "shades"))
    out = str(tmp_path / "out")
    rc = cli.main(["train", "--data", data, "--model", "speedrun", "--image-size", "32",
                   "--epochs", "2", "--batch-size", "8", "--optimizer", "sgd",
                   "--schedule", "step", "--warmup", "0.5", "--label-smoothing", "0.2",
                   "--momentum", "0.85", "--beta-lr-scale", "64", "--lookahead", "--augment",
                   "--verbose", "0",
                   "--out", out])
    assert rc == 0
    assert "validation accuracy" in capsys.readouterr().out
    model = models.load_model(os.path.join(out, "model.keras"))
    # 2 epochs of 2 steps, 1 warm-up step from lr/10 to 0.1, then cosine to 0 over 3 steps
    schedule = model.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay"
    assert schedule["config"]["warmup_steps"] == 1 and schedule["config"]["decay_steps"] == 3
    assert schedule["config"]["warmup_target"] == pytest.approx(0.1)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)
    assert model.optimizer.get_config()["momentum"] == pytest.approx(0.85)


@pytest.mark.realdata
def test_train_speedrun_on_cifar10_slice(tmp_path, capsys):
    if not CIFAR_DIR.is_dir():
        pytest.skip("real CIFAR-10 absent at %s (set FASTCNN_CIFAR10_DIR)" % CIFAR_DIR)
    out = str(tmp_path / "out")
    rc = cli.main(["train", "--data", str(CIFAR_DIR), "--model", "speedrun", "--limit", "2048",
                   "--epochs", "2", "--batch-size", "256", "--optimizer", "sgd", "--lr", "0.4",
                   "--weight-decay", "5e-3", "--schedule", "step", "--label-smoothing", "0.2",
                   "--augment", "--flip", "alternate", "--lookahead", "--tta", "--verbose",
                   "0", "--out", out])
    assert rc == 0
    text = capsys.readouterr().out
    acc = float(text.split("test accuracy: ")[1].split()[0])
    tta = float(text.split("test-time augmentation: ")[1].split()[0])
    six = float(text.split("(6 views): ")[1].split()[0])
    print("speedrun, 2 epochs on 2,048 CIFAR-10 images: %.4f (TTA %.4f, 6 views %.4f)"
          % (acc, tta, six))
    assert min(acc, tta, six) > 0.2  # chance is 0.1


@pytest.mark.parametrize("shift", ["-1", "32"])
def test_train_refuses_a_shift_outside_the_image(tmp_path, capsys, shift):
    pytest.importorskip("PIL")
    data = _folder(str(tmp_path / "shades"))
    rc = cli.main(["train", "--data", data, "--image-size", "32", "--epochs", "1",
                   "--augment", "--shift", shift, "--out", str(tmp_path / "out")])
    assert rc == 1 and "--shift must be in [0, 32)" in capsys.readouterr().err


def test_train_refuses_a_speedrun_model_without_images():
    with pytest.raises(ValueError, match="whitening layer from training images"):
        cli.build_training_model("speedrun", False)


def test_identity_init_passes_each_block_input_through():
    model = zoo.speedrun_model(input_shape=(8, 8, 3), widths=(8, 16, 16))
    convs = [l for l in model.layers if isinstance(l, layers.Conv2D) and l.name != "whiten"]
    assert len(convs) == 6
    for conv in convs:
        kernel = conv.get_weights()[0]
        c_in, c_out = kernel.shape[2:]
        n = min(c_in, c_out)
        expected = np.zeros((3, 3, c_in, n), np.float32)
        expected[1, 1, np.arange(n), np.arange(n)] = 1
        np.testing.assert_array_equal(kernel[..., :n], expected)
        if c_out > n:  # the other filters keep a random init
            assert np.abs(kernel[..., n:]).max() > 0
    plain = zoo.speedrun_model(input_shape=(8, 8, 3), widths=(8, 16, 16), identity_init=False)
    kernel = [l for l in plain.layers if isinstance(l, layers.Conv2D)][1].get_weights()[0]
    assert np.count_nonzero(kernel[..., :8]) == kernel[..., :8].size


def test_train_refuses_alternating_flips_on_an_image_folder(tmp_path, capsys):
    pytest.importorskip("PIL")
    data = _folder(str(tmp_path / "shades"))
    rc = cli.main(["train", "--data", data, "--image-size", "32", "--epochs", "1",
                   "--augment", "--flip", "alternate", "--out", str(tmp_path / "out")])
    assert rc == 1 and "--flip alternate needs the images in memory" in capsys.readouterr().err


def test_alternating_flip_model_has_no_flip_layer():
    model = cli.build_training_model("tutorial", True, flip=False)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert "RandomFlip" not in kinds and "RandomTranslation" in kinds


def test_triangle_schedule_values():
    rate = cli._triangle_schedule(2.0, 10, 2)
    assert [rate(t) for t in (0, 1, 2)] == pytest.approx([0.4, 1.2, 2.0])
    assert rate(6) == pytest.approx(2.0 * (1 - 0.93 * 4 / 8))
    assert rate(10) == pytest.approx(0.14) and rate(12) == pytest.approx(0.14)
    assert cli._triangle_schedule(1.0, 4, 0)(0) == pytest.approx(1.0)


def test_train_with_the_triangle_schedule_sets_each_step_rate(tmp_path):
    pytest.importorskip("PIL")
    data = _folder(str(tmp_path / "shades"))
    out = str(tmp_path / "out")
    rc = cli.main(["train", "--data", data, "--model", "speedrun", "--image-size", "32",
                   "--epochs", "3", "--batch-size", "4", "--optimizer", "sgd", "--lr", "0.2",
                   "--schedule", "triangle", "--warmup", "1", "--verbose", "0", "--out", out])
    assert rc == 0
    model = models.load_model(os.path.join(out, "model.keras"))
    steps = model.optimizer.iterations
    assert steps % 3 == 0 and steps >= 6
    # a plain float in the file (Keras reads it); the last step's rate, set before it ran
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(
        cli._triangle_schedule(0.2, steps, steps // 3)(steps - 1))


def test_train_refuses_a_beta_rate_scale_without_sgd(tmp_path, capsys):
    pytest.importorskip("PIL")
    data = _folder(str(tmp_path / "shades"))
    rc = cli.main(["train", "--data", data, "--image-size", "32", "--epochs", "1",
                   "--beta-lr-scale", "64", "--out", str(tmp_path / "out")])
    assert rc == 1 and "--beta-lr-scale needs --optimizer sgd" in capsys.readouterr().err


def test_train_refuses_a_warmup_past_the_last_epoch(tmp_path, capsys):
    pytest.importorskip("PIL")
    data = _folder(str(tmp_path / "shades"))
    rc = cli.main(["train", "--data", data, "--image-size", "32", "--epochs", "2",
                   "--schedule", "step", "--warmup", "2", "--out", str(tmp_path / "out")])
    assert rc == 1 and "--warmup must be in [0, --epochs)" in capsys.readouterr().err
