"""fastcnn.plot: each plot makes a Figure with the right content and saves a real PNG."""
import os
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")

from fastcnn import plot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


class History:  # what Model.fit returns: an object with a .history dict
    def __init__(self, history):
        self.history = history


HIST = {"loss": [1.6, 1.2, 1.0, 0.9], "accuracy": [0.42, 0.57, 0.64, 0.68],
        "val_loss": [1.3, 1.1, 1.0, 0.95], "val_accuracy": [0.53, 0.61, 0.65, 0.67]}


def assert_png(path):
    assert os.path.isfile(path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    assert os.path.getsize(path) > 1000
    assert [n for n in os.listdir(os.path.dirname(path)) if ".tmp-" in n] == []


def test_plot_samples_grid_with_class_names(tmp_path, rng):
    from matplotlib.figure import Figure
    images = rng.integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(30, 1))
    path = tmp_path / "samples.png"
    fig = plot.plot_samples(images, labels, CIFAR_NAMES, path=path)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 25
    assert [ax.get_xlabel() for ax in fig.axes] == [CIFAR_NAMES[k] for k in labels[:25, 0]]
    geometry = {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes}
    assert geometry == {(5, 5)}
    np.testing.assert_array_equal(fig.axes[3].get_images()[0].get_array(), images[3])
    assert_png(str(path))


def test_plot_samples_grey_float_and_few(tmp_path, rng):
    grey = rng.random((6, 28, 28))
    fig = plot.plot_samples(grey, np.arange(6), ["c%d" % i for i in range(10)], n=25)
    assert len(fig.axes) == 6
    assert fig.axes[5].get_xlabel() == "c5"
    assert fig.axes[0].get_images()[0].get_cmap().name == "binary"
    scaled = plot.plot_samples(grey[..., None] * 255.0, np.arange(6), None, n=4)
    np.testing.assert_allclose(scaled.axes[1].get_images()[0].get_array(), grey[1])
    assert scaled.axes[2].get_xlabel() == "2"


def test_plot_samples_rejects_bad_input(rng):
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        plot.plot_samples(np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 2], CIFAR_NAMES)
    with pytest.raises(ValueError, match="images must be"):
        plot.plot_samples(np.zeros((4, 8, 8, 5), np.uint8), [0, 1, 2, 3], CIFAR_NAMES)


@pytest.mark.parametrize("wrap", [History, dict])
def test_plot_accuracy(tmp_path, wrap):
    path = tmp_path / "acc.png"
    fig = plot.plot_accuracy(wrap(HIST), path=str(path))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Accuracy"
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert set(lines) == {"accuracy", "val_accuracy"}
    np.testing.assert_allclose(lines["accuracy"].get_ydata(), HIST["accuracy"])
    np.testing.assert_allclose(lines["val_accuracy"].get_xdata(), [1, 2, 3, 4])
    assert ax.get_ylim() == (0.4, 1.0)  # widened below 0.5 because the first epoch is 0.42
    assert_png(str(path))


def test_plot_accuracy_keeps_the_tutorial_range():
    fig = plot.plot_accuracy({"accuracy": [0.6, 0.8], "val_accuracy": [0.55, 0.7]})
    assert fig.axes[0].get_ylim() == (0.5, 1.0)
    fig = plot.plot_accuracy({"acc": [0.05, 0.09]})  # Keras 1 names; a bad run
    assert fig.axes[0].get_ylim() == (0.0, 1.0)
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["acc"]


def test_plot_loss(tmp_path):
    path = tmp_path / "sub" / "loss.png"
    fig = plot.plot_loss(History(HIST), path=path)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Loss"
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_allclose(lines["val_loss"].get_ydata(), HIST["val_loss"])
    assert_png(str(path))


def test_history_without_the_keys_is_an_error():
    with pytest.raises(ValueError, match="none of accuracy, val_accuracy.*it has: loss"):
        plot.plot_accuracy({"loss": [1.0]})
    with pytest.raises(TypeError, match="History"):
        plot.plot_loss([1.0, 2.0])


def test_confusion_matrix_counts(rng):
    t = rng.integers(0, 10, 500)
    p = np.where(rng.random(500) < 0.6, t, rng.integers(0, 10, 500))
    cm = plot.confusion_matrix(t, p, 10)
    ref = np.zeros((10, 10), np.int64)
    for a, b in zip(t, p):
        ref[a, b] += 1
    np.testing.assert_array_equal(cm, ref)
    scores = np.eye(10)[p] * 0.9 + 0.01  # per-class scores: argmax is p
    np.testing.assert_array_equal(plot.confusion_matrix(t[:, None], scores, 10), ref)
    with pytest.raises(ValueError, match="class id 10 but only 10 classes"):
        plot.confusion_matrix([10], [0], 10)
    with pytest.raises(ValueError, match="2 true labels but 3 predictions"):
        plot.confusion_matrix([0, 1], [0, 1, 1])


def test_plot_confusion_matrix(tmp_path, rng):
    t = rng.integers(0, 10, 300)
    p = np.where(rng.random(300) < 0.7, t, rng.integers(0, 10, 300))
    path = tmp_path / "cm.png"
    fig = plot.plot_confusion_matrix(t, p, CIFAR_NAMES, path=path)
    ax = fig.axes[0]
    cm = plot.confusion_matrix(t, p, 10)
    texts = {(int(round(tx.get_position()[1])), int(round(tx.get_position()[0]))): tx.get_text()
             for tx in ax.texts}
    assert len(texts) == 100
    for (i, j), s in texts.items():
        assert s == str(cm[i, j])
    assert [tl.get_text() for tl in ax.get_xticklabels()] == CIFAR_NAMES
    assert ax.get_xlabel() == "Predicted" and ax.get_ylabel() == "True"
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), cm)
    assert_png(str(path))
    norm = plot.plot_confusion_matrix(t, p, CIFAR_NAMES, normalize=True)
    assert norm.axes[0].texts[0].get_text() == "%.2f" % (cm[0, 0] / cm[0].sum())


def test_headless_uses_agg():
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        pytest.skip("a display is available")
    plot.plot_loss(HIST)
    assert matplotlib.get_backend().lower() == "agg"


def test_missing_matplotlib_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install fastcnn\[plot\]"):
        plot.plot_loss(HIST)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_png_gets_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        plot.plot_loss(HIST, path=tmp_path / "loss.png")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "loss.png").st_mode & 0o777 == 0o644  # not mkstemp's 0600
