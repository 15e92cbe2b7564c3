"""The plots of Keras' image-classification tutorials: sample grid, accuracy/loss curves and
a confusion matrix.

matplotlib is optional (``pip install fastcnn[plot]``) and imported only when a plot is made.
Without a display (e.g. on a server or in CI) the non-interactive Agg backend is selected.
Every function returns the matplotlib ``Figure``; ``path=`` also saves it as a PNG
(written atomically), ``show=True`` calls ``plt.show()``. Figures are made with pyplot, so
they show up in notebooks; close them with ``plt.close(fig)`` when making many.
"""
import math
import os
import sys

import numpy as np

from ._fileio import atomic_write

__all__ = ["plot_samples", "plot_accuracy", "plot_loss", "plot_confusion_matrix"]


def _headless():
    if sys.platform.startswith("linux") or "bsd" in sys.platform:
        return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return False


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("fastcnn.plot needs matplotlib: pip install fastcnn[plot]") from exc
    # Choose Agg only when nobody chose a backend yet and there is no display to show on.
    if ("matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND")
            and _headless()):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _finish(fig, path, show):
    from .distribution import runtime
    replica = runtime.active()
    if path is not None and (replica is None or replica.is_chief):  # rank 0 writes
        path = os.fspath(path)
        with atomic_write(path) as f:
            fig.savefig(f, format="png", dpi=fig.dpi, bbox_inches="tight")
    if show:
        _pyplot().show()
    return fig


def _labels_1d(labels, name):
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2:  # one-hot rows or predicted probabilities
        arr = arr.argmax(axis=1)
    if arr.ndim != 1:
        raise ValueError("%s: expected class ids of shape (N,) or (N, 1), or one-hot rows "
                         "(N, C); got shape %s" % (name, np.shape(labels)))
    if arr.size and arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise ValueError("%s: class ids must be whole numbers" % (name,))
    elif arr.size and arr.dtype.kind not in "iub":
        raise ValueError("%s: class ids must be integers, got dtype %s" % (name, arr.dtype))
    return arr.astype(np.int64)


def _class_name(class_names, k):
    if class_names is not None and 0 <= k < len(class_names):
        return str(class_names[k])
    return str(k)


def plot_samples(images, labels, class_names=None, n=25, path=None, show=False):
    """The first ``n`` images in a square grid (5x5 for 25), each captioned with its class.

    ``images``: (N, H, W, 3) or (N, H, W, 1) or (N, H, W); uint8, or floats in [0, 1]
    (or in [0, 255], rescaled). Grey images use the tutorial's ``binary`` colour map.
    ``labels``: (N,) or (N, 1) class ids (or one-hot rows); ``class_names`` maps ids to names.
    """
    plt = _pyplot()
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (3, 4)):
        raise ValueError("plot_samples: images must be (N, H, W), (N, H, W, 1) or "
                         "(N, H, W, 3); got shape %s" % (images.shape,))
    labels = _labels_1d(labels, "plot_samples: labels") if labels is not None else None
    if labels is not None and len(labels) != len(images):
        raise ValueError("plot_samples: %d labels for %d images" % (len(labels), len(images)))
    n = int(min(n, len(images)))
    if n < 1:
        raise ValueError("plot_samples: no images to plot")
    if images.dtype.kind == "f":
        images = images[:n].astype(np.float64)
        if images.max(initial=0.0) > 1.0:
            images = images / 255.0
        images = np.clip(images, 0.0, 1.0)
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    fig = plt.figure(figsize=(2 * cols, 2 * rows))
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if images.ndim == 3:
            ax.imshow(images[i], cmap="binary")
        else:
            ax.imshow(images[i])
        if labels is not None:
            ax.set_xlabel(_class_name(class_names, int(labels[i])))
    fig.tight_layout()
    return _finish(fig, path, show)


def _history_dict(history, who):
    h = getattr(history, "history", history)
    if not isinstance(h, dict):
        raise TypeError("%s: expected a History (with a .history dict) or a dict of lists, "
                        "got %s" % (who, type(history).__name__))
    return h


def _curves(history, keys, who):
    """[(label, values)] for the first present key of each group in ``keys``."""
    h = _history_dict(history, who)
    out = []
    for group in keys:
        for key in group:
            if key in h and len(h[key]):
                out.append((key, np.asarray(h[key], dtype=np.float64).ravel()))
                break
    if not out:
        raise ValueError("%s: the history has none of %s (it has: %s)"
                         % (who, ", ".join(g[0] for g in keys), ", ".join(sorted(h)) or "none"))
    return out


def _plot_curves(curves, ylabel, ylim=None, legend_loc="best"):
    plt = _pyplot()
    fig = plt.figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    for label, values in curves:
        ax.plot(np.arange(1, len(values) + 1), values, marker="o" if len(values) < 30 else None,
                label=label)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    longest = max(len(v) for _, v in curves)
    if longest <= 20:
        ax.set_xticks(np.arange(1, longest + 1))
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.legend(loc=legend_loc)
    ax.grid(True, alpha=0.3)
    return fig


def plot_accuracy(history, path=None, show=False):
    """Training and validation accuracy per epoch (``history.history['accuracy']`` and
    ``['val_accuracy']``; Keras 1's ``acc``/``val_acc`` also work).

    As in the Keras CNN tutorial the y axis spans [0.5, 1], widened downwards (to a tenth)
    when an accuracy falls below 0.5.
    """
    curves = _curves(history, [("accuracy", "acc"), ("val_accuracy", "val_acc")],
                     "plot_accuracy")
    finite = np.concatenate([v[np.isfinite(v)] for _, v in curves])
    low = min(0.5, math.floor(finite.min() * 10) / 10) if finite.size else 0.5
    high = max(1.0, math.ceil(finite.max() * 10) / 10) if finite.size else 1.0
    fig = _plot_curves(curves, "Accuracy", ylim=(low, high), legend_loc="lower right")
    return _finish(fig, path, show)


def plot_loss(history, path=None, show=False):
    """Training and validation loss per epoch (``loss`` and ``val_loss``)."""
    curves = _curves(history, [("loss",), ("val_loss",)], "plot_loss")
    fig = _plot_curves(curves, "Loss", legend_loc="upper right")
    return _finish(fig, path, show)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """(C, C) int64 counts: row = true class, column = predicted class."""
    t = _labels_1d(y_true, "confusion_matrix: y_true")
    p = _labels_1d(y_pred, "confusion_matrix: y_pred")
    if len(t) != len(p):
        raise ValueError("confusion_matrix: %d true labels but %d predictions"
                         % (len(t), len(p)))
    if t.size and min(t.min(), p.min()) < 0:
        raise ValueError("confusion_matrix: class ids must be >= 0")
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    elif t.size and max(t.max(), p.max()) >= num_classes:
        raise ValueError("confusion_matrix: class id %d but only %d classes"
                         % (max(t.max(), p.max()), num_classes))
    c = int(num_classes)
    if c < 1:
        raise ValueError("confusion_matrix: no labels, so no classes to count")
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


def plot_confusion_matrix(y_true, y_pred, class_names=None, path=None, show=False,
                          normalize=False):
    """Confusion matrix (rows: true class, columns: predicted), each cell annotated with its
    count (``normalize=True``: the fraction of its row). ``y_pred`` may be class ids or the
    model's per-class scores (N, C), whose argmax is taken."""
    num = len(class_names) if class_names is not None else None
    cm = confusion_matrix(y_true, y_pred, num)
    plt = _pyplot()
    c = len(cm)
    values = cm.astype(np.float64)
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.6 * c + 2.0)
    fig = plt.figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(values, cmap="Blues", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    names = [_class_name(class_names, k) for k in range(c)]
    ax.set_xticks(np.arange(c))
    ax.set_yticks(np.arange(c))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticklabels(names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    threshold = values.max() / 2.0 if values.size else 0.0
    for i in range(c):
        for j in range(c):
            text = "%.2f" % values[i, j] if normalize else "%d" % cm[i, j]
            ax.text(j, i, text, ha="center", va="center", fontsize=8 if c > 10 else 9,
                    color="white" if values[i, j] > threshold else "black")
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    fig.tight_layout()
    return _finish(fig, path, show)
