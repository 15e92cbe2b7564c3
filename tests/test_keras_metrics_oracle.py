"""fastcnn.metrics against real Keras 3 (JAX backend): every metric streamed over several
batches (with and without sample weights, awkward shapes, multi-label, threshold lists,
class_id, top_k), the C counting kernels against NumPy references and bitwise at 1 vs 2
threads, compile(metrics=..., weighted_metrics=...) forms and fit logs against Keras' History,
config round trips, and clear errors. The Keras parts skip without keras/jax installed."""
import os

import zlib

import numpy as np
import pytest

import fastcnn
from fastcnn import metrics as M
from fastcnn.ops import metrics as kernels
from fastcnn.training.compile_metrics import CompileMetrics
from conftest import num_threads

os.environ.setdefault("KERAS_BACKEND", "jax")
try:
    import keras
    if keras.backend.backend() != "jax":  # pragma: no cover - another backend preselected
        keras = None
except ImportError:  # pragma: no cover - keras is a test-only peer
    keras = None

needs_keras = pytest.mark.skipif(keras is None, reason="needs keras 3 on the JAX backend")

N_BATCHES = 3


def _batches(make, seed, weights):
    rng = np.random.default_rng(seed)
    out = []
    for b in range(N_BATCHES):
        n = (13, 7, 10)[b]
        y, p = make(rng, n)
        w = None
        if weights == "sample":
            w = rng.uniform(0, 2, n).astype(np.float32)
            w[0] = 0.0
        elif weights == "int":
            w = rng.integers(0, 3, (n, 5)).astype(np.float32)  # one per pixel
        out.append((y, p, w))
    return out


def _compare(k_metric, f_metric, batches, rtol=1e-5, atol=1e-6):
    for y, p, w in batches:
        k_metric.update_state(y, p, sample_weight=w)
        f_metric.update_state(y, p, sample_weight=w)
        want = np.asarray(k_metric.result(), dtype=np.float64)
        got = np.asarray(f_metric.result(), dtype=np.float64)
        assert got.shape == want.shape, (f_metric.name, got.shape, want.shape)
        # Keras sums weighted counts in float32: an exact 0 can come out as a few ulps of
        # the largest count, so the absolute tolerance follows the result's magnitude
        scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale,
                                   err_msg=f_metric.name)
    f_metric.reset_state()
    k_metric.reset_state()
    assert np.all(np.asarray(f_metric.result()) == 0)


# ---------------------------------------------------------------- data makers
def binary(rng, n):
    y = rng.integers(0, 2, (n, 1)).astype(np.float32)
    p = rng.uniform(0, 1, (n, 1)).astype(np.float32)
    p[:3, 0] = [0.0, 1.0, 0.5]  # ends and a threshold exactly
    return y, p


def binary_flat_labels(rng, n):
    y, p = binary(rng, n)
    return y[:, 0], p


def multilabel(rng, n):
    y = rng.integers(0, 2, (n, 4)).astype(np.float32)
    p = np.round(rng.uniform(0, 1, (n, 4)), 1).astype(np.float32)  # many ties
    return y, p


def onehot(rng, n, c=5):
    ids = rng.integers(0, c, n)
    p = rng.dirichlet(np.ones(c), n).astype(np.float32)
    p[0] = 1.0 / c  # an all-tied row
    return np.eye(c, dtype=np.float32)[ids], p


def sparse(rng, n, c=5):
    y, p = onehot(rng, n, c)
    return y.argmax(1), p


def sparse_col(rng, n):
    y, p = sparse(rng, n)
    return y[:, None], p


def logits(rng, n):
    y, _ = binary(rng, n)
    return y, rng.normal(0, 2, (n, 1)).astype(np.float32)


def regression(rng, n):
    return (rng.normal(0, 1, (n, 4, 3)).astype(np.float32),
            rng.normal(0, 1, (n, 4, 3)).astype(np.float32))


def positive(rng, n):
    return (rng.uniform(0.05, 1, (n, 6)).astype(np.float32),
            rng.uniform(0.05, 1, (n, 6)).astype(np.float32))


def hinge_data(rng, n):
    return (rng.integers(0, 2, (n, 3)).astype(np.float32),
            rng.normal(0, 1, (n, 3)).astype(np.float32))


def segmentation(rng, n, c=4):
    return (rng.integers(0, c, (n, 5)).astype(np.float32),
            rng.integers(0, c, (n, 5)).astype(np.float32))


def onehot_seg(rng, n, c=4):
    y, _ = segmentation(rng, n, c)
    return np.eye(c, dtype=np.float32)[y.astype(int)], rng.uniform(0, 1, (n, 5, c)).astype(
        np.float32)


# (id, factory taking the metrics module, data maker)
CASES = [
    ("binary_accuracy", lambda m: m.BinaryAccuracy(threshold=0.3), binary),
    ("binary_accuracy_flat", lambda m: m.BinaryAccuracy(), binary_flat_labels),
    ("accuracy", lambda m: m.Accuracy(), segmentation),
    ("categorical_accuracy", lambda m: m.CategoricalAccuracy(), onehot),
    ("sparse_categorical_accuracy", lambda m: m.SparseCategoricalAccuracy(), sparse),
    ("sparse_categorical_accuracy_col", lambda m: m.SparseCategoricalAccuracy(), sparse_col),
    ("top_k", lambda m: m.TopKCategoricalAccuracy(k=2), onehot),
    ("top_k_1", lambda m: m.TopKCategoricalAccuracy(k=1, name="t1"), onehot),
    ("sparse_top_k", lambda m: m.SparseTopKCategoricalAccuracy(k=3), sparse),
    ("sparse_top_k_col", lambda m: m.SparseTopKCategoricalAccuracy(), sparse_col),
    ("true_positives", lambda m: m.TruePositives(thresholds=[0.7, 0.2, 0.5]), multilabel),
    ("false_positives", lambda m: m.FalsePositives(), binary),
    ("true_negatives", lambda m: m.TrueNegatives(thresholds=[0.0, 0.25, 0.5, 0.75, 1.0]),
     multilabel),
    ("false_negatives", lambda m: m.FalseNegatives(thresholds=0.3), binary_flat_labels),
    ("precision", lambda m: m.Precision(), binary),
    ("precision_list", lambda m: m.Precision(thresholds=[0.9, 0.1, 0.5, 0.5]), multilabel),
    ("precision_even", lambda m: m.Precision(thresholds=[0.0, 0.5, 1.0]), multilabel),
    ("precision_top_k", lambda m: m.Precision(top_k=2), multilabel),
    ("precision_class_id", lambda m: m.Precision(class_id=2), multilabel),
    ("precision_top_k_class", lambda m: m.Precision(top_k=1, class_id=1, thresholds=0.2),
     onehot),
    ("recall", lambda m: m.Recall(), binary_flat_labels),
    ("recall_list", lambda m: m.Recall(thresholds=[0.3, 0.6]), multilabel),
    ("recall_top_k", lambda m: m.Recall(top_k=3), onehot),
    ("recall_class_id", lambda m: m.Recall(class_id=0), onehot),
    ("auc", lambda m: m.AUC(), binary),
    ("auc_flattened", lambda m: m.AUC(num_thresholds=13), multilabel),
    ("auc_pr", lambda m: m.AUC(curve="PR"), binary),
    ("auc_pr_minoring", lambda m: m.AUC(curve="PR", summation_method="minoring"), multilabel),
    ("auc_roc_majoring", lambda m: m.AUC(summation_method="majoring", num_thresholds=7),
     binary),
    ("auc_prgain", lambda m: m.AUC(curve="PRGAIN"), binary),
    ("auc_thresholds", lambda m: m.AUC(thresholds=[0.8, 0.1, 0.45]), multilabel),
    ("auc_even_thresholds", lambda m: m.AUC(thresholds=[0.25, 0.5, 0.75]), binary),
    ("auc_multi_label", lambda m: m.AUC(multi_label=True), multilabel),
    ("auc_multi_label_w", lambda m: m.AUC(multi_label=True, num_labels=4, curve="PR",
                                          label_weights=[1.0, 0.5, 0.0, 2.0]), multilabel),
    ("auc_label_weights", lambda m: m.AUC(label_weights=[1.0, 0.5, 3.0, 2.0]), multilabel),
    ("auc_from_logits", lambda m: m.AUC(from_logits=True), logits),
    ("f1", lambda m: m.F1Score(), onehot),
    ("f1_micro", lambda m: m.F1Score(average="micro", threshold=0.3), multilabel),
    ("f1_macro", lambda m: m.F1Score(average="macro"), multilabel),
    ("f1_weighted", lambda m: m.F1Score(average="weighted", threshold=0.5), multilabel),
    ("fbeta", lambda m: m.FBetaScore(beta=2.0, average="macro", threshold=0.4), multilabel),
    ("mean_iou", lambda m: m.MeanIoU(num_classes=4), segmentation),
    ("mean_iou_ignore", lambda m: m.MeanIoU(num_classes=4, ignore_class=0), segmentation),
    ("iou", lambda m: m.IoU(num_classes=4, target_class_ids=[0, 3]), segmentation),
    ("one_hot_mean_iou", lambda m: m.OneHotMeanIoU(num_classes=4), onehot_seg),
    ("one_hot_iou", lambda m: m.OneHotIoU(num_classes=4, target_class_ids=[1, 2]), onehot_seg),
    ("mse", lambda m: m.MeanSquaredError(), regression),
    ("mae", lambda m: m.MeanAbsoluteError(), regression),
    ("mape", lambda m: m.MeanAbsolutePercentageError(), positive),
    ("msle", lambda m: m.MeanSquaredLogarithmicError(), positive),
    ("rmse", lambda m: m.RootMeanSquaredError(), regression),
    ("cosine", lambda m: m.CosineSimilarity(), regression),
    ("logcosh", lambda m: m.LogCoshError(), regression),
    ("bce", lambda m: m.BinaryCrossentropy(), binary),
    ("bce_logits", lambda m: m.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
     logits),
    ("cce", lambda m: m.CategoricalCrossentropy(label_smoothing=0.2), onehot),
    ("scce", lambda m: m.SparseCategoricalCrossentropy(), sparse),
    ("scce_col", lambda m: m.SparseCategoricalCrossentropy(), sparse_col),
    ("kld", lambda m: m.KLDivergence(), positive),
    ("poisson", lambda m: m.Poisson(), positive),
    ("hinge", lambda m: m.Hinge(), hinge_data),
    ("squared_hinge", lambda m: m.SquaredHinge(), hinge_data),
    ("categorical_hinge", lambda m: m.CategoricalHinge(), onehot),
]


@needs_keras
@pytest.mark.parametrize("weights", [None, "sample"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_metric_streams_like_keras(case, weights):
    name, factory, make = case
    if weights and "iou" in name:
        weights = "int"  # Keras' IoU counts are integers (float weights are truncated)
    # a stable seed per case (hash() of a str changes from one process to the next)
    batches = _batches(make, zlib.crc32(name.encode()) % 1000, weights)
    _compare(factory(keras.metrics), factory(M), batches)


@needs_keras
def test_awkward_sample_weight_shapes_like_keras():
    rng = np.random.default_rng(3)
    y, p = regression(rng, 9)
    for w in (rng.uniform(0, 1, (9, 1)), rng.uniform(0, 1, (9, 4))):
        for cls in ("MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError"):
            _compare(getattr(keras.metrics, cls)(), getattr(M, cls)(), [(y, p, w), (y, p, None)])
    w = rng.uniform(0, 1, (9, 4, 3))
    _compare(keras.metrics.RootMeanSquaredError(), M.RootMeanSquaredError(), [(y, p, w)])
    values = rng.normal(0, 1, (6, 5)).astype(np.float32)
    for cls in ("Mean", "Sum"):
        for w in (None, rng.uniform(0, 1, 6), rng.uniform(0, 1, (6, 5))):
            k, f = getattr(keras.metrics, cls)(), getattr(M, cls)()
            k.update_state(values, sample_weight=w)
            f.update_state(values, sample_weight=w)
            np.testing.assert_allclose(f.result(), float(k.result()), rtol=1e-5, atol=1e-6)
    ym, pm = multilabel(rng, 11)
    wm = rng.uniform(0, 1, (11, 4))
    for factory in (lambda m: m.AUC(), lambda m: m.Precision(thresholds=[0.2, 0.6]),
                    lambda m: m.AUC(multi_label=True)):
        _compare(factory(keras.metrics), factory(M), [(ym, pm, wm)])


@needs_keras
def test_function_forms_like_keras():
    rng = np.random.default_rng(4)
    yo, p = onehot(rng, 12)
    ys = yo.argmax(1)
    checks = [
        ("top_k_categorical_accuracy", (yo, p), dict(k=2)),
        ("sparse_top_k_categorical_accuracy", (ys, p), dict(k=3)),
        ("categorical_accuracy", (yo, p), {}),
        ("sparse_categorical_accuracy", (ys, p), {}),
        ("binary_accuracy", (yo, p), dict(threshold=0.2)),
        ("mean_squared_error", (yo, p), {}),
        ("kl_divergence", (yo, p), {}),
        ("categorical_crossentropy", (yo, p), {}),
        ("hinge", (yo, p), {}),
    ]
    for fn, args, kwargs in checks:
        want = np.asarray(getattr(keras.metrics, fn)(*args, **kwargs))
        got = getattr(M, fn)(*args, **kwargs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=fn)
    assert np.array_equal(M.top_k_categorical_accuracy(yo, p), np.asarray(
        keras.metrics.top_k_categorical_accuracy(yo, p)))


@needs_keras
def test_configs_match_keras_and_round_trip():
    factories = [lambda m: m.BinaryAccuracy(threshold=0.3), lambda m: m.AUC(curve="PR"),
                 lambda m: m.AUC(thresholds=[0.2, 0.6]), lambda m: m.Precision(top_k=2),
                 lambda m: m.Recall(thresholds=[0.1, 0.5], class_id=1),
                 lambda m: m.TruePositives(thresholds=0.4), lambda m: m.F1Score("macro"),
                 lambda m: m.FBetaScore(beta=0.5), lambda m: m.TopKCategoricalAccuracy(k=3),
                 lambda m: m.SparseTopKCategoricalAccuracy(k=2, name="top2"),
                 lambda m: m.Mean(name="avg"), lambda m: m.BinaryCrossentropy(from_logits=True),
                 lambda m: m.CategoricalCrossentropy(label_smoothing=0.1),
                 lambda m: m.RootMeanSquaredError(), lambda m: m.Hinge()]
    for factory in factories:
        keras.utils.clear_session()
        fastcnn.utils.clear_session()
        k, f = factory(keras.metrics), factory(M)
        kc, fc = k.get_config(), f.get_config()
        assert fc == kc, (type(f).__name__, fc, kc)
        again = type(f).from_config(fc)
        assert again.get_config() == fc
        assert M.deserialize(M.serialize(f)).get_config() == fc
    # Keras' own config rebuilds the fastcnn metric
    iou = M.MeanIoU.from_config(keras.metrics.MeanIoU(num_classes=3).get_config())
    assert iou.num_classes == 3 and iou.dtype == "int32"


@needs_keras
def test_names_resolve_like_keras():
    for name in ("auc", "AUC", "precision", "Recall", "top_k_categorical_accuracy",
                 "sparse_top_k_categorical_accuracy", "mse", "MAE", "mape", "msle", "bce",
                 "binary_accuracy", "categorical_crossentropy", "kl_divergence", "f1_score",
                 "root_mean_squared_error", "log_cosh_error",
                 "poisson", "true_positives", "hinge"):
        keras.utils.clear_session()
        fastcnn.utils.clear_session()
        k, f = keras.metrics.get(name), M.get(name)
        assert type(f).__name__ == type(k).__name__, name
        assert f.name == k.name, name


def test_streaming_is_exact_over_batches():
    """Streamed over batches == one update with all the data (float64 state)."""
    rng = np.random.default_rng(5)
    y, p = multilabel(rng, 301)
    w = rng.uniform(0, 1, 301)
    for factory in (lambda: M.AUC(), lambda: M.Precision(thresholds=[0.3, 0.55]),
                    lambda: M.TruePositives(), lambda: M.AUC(multi_label=True, curve="PR")):
        whole, parts = factory(), factory()
        whole.update_state(y, p, sample_weight=w)
        for lo in range(0, 301, 64):
            parts.update_state(y[lo:lo + 64], p[lo:lo + 64], sample_weight=w[lo:lo + 64])
        np.testing.assert_allclose(parts.result(), whole.result(), rtol=1e-12, atol=1e-12)
    tp = M.TruePositives(thresholds=[0.0, 0.5])
    for lo in range(0, 301, 50):
        tp.update_state(y[lo:lo + 50], p[lo:lo + 50])
    assert np.array_equal(tp.result(), [((p > t) & (y != 0)).sum() for t in (0.0, 0.5)])


# ---------------------------------------------------------------- C kernels
def _confusion_reference(pred, labels, thresholds, weights):
    w = np.ones_like(pred, dtype=np.float64) if weights is None else weights
    above = pred[None] > thresholds.astype(np.float32)[:, None, None]
    pos = (labels != 0)[None]
    return {"tp": (w * (above & pos)).sum(1), "fp": (w * (above & ~pos)).sum(1),
            "tn": (w * (~above & ~pos)).sum(1), "fn": (w * (~above & pos)).sum(1)}


def test_threshold_confusion_matches_numpy_and_threads():
    rng = np.random.default_rng(6)
    # big enough for the kernels' parallel paths (>= 2**20 element-steps)
    pred = rng.uniform(-0.1, 1.1, (90001, 12)).astype(np.float32)
    pred[:5, :3] = [[0, 0.5, 1]] * 5
    labels = (rng.uniform(0, 1, pred.shape) < 0.4).astype(np.float32)
    weights = rng.uniform(0, 2, pred.shape)
    thr = np.sort(np.append(rng.uniform(0, 1, 16), 0.5)).astype(np.float32)
    p_s, l_s, w_s = pred[:3001], labels[:3001], weights[:3001]
    for w in (None, w_s):
        got = kernels.threshold_confusion(p_s, l_s, thr, w)
        want = _confusion_reference(p_s, l_s, thr, w)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, err_msg=k)
        if w is None:
            assert all(np.array_equal(got[k], want[k]) for k in want)  # exact counts
    # evenly spaced thresholds: Keras' float32 bucket formula equals the direct compare
    T = 200
    even = np.array([(i / (T - 1)) for i in range(T)], dtype=np.float32)
    got = kernels.threshold_confusion(np.clip(p_s, 0, 1), l_s, even, w_s, "even")
    want = _confusion_reference(np.clip(p_s, 0, 1), l_s, even, w_s)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, err_msg=k)
    results = []
    for threads in (1, 2):
        with num_threads(threads):
            results.append([kernels.threshold_confusion(pred, labels, thr, weights, mode)
                            for mode in ("sorted", "even", "even_eps")])
    for a, b in zip(*results):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_top_k_kernels_match_numpy_and_threads():
    rng = np.random.default_rng(7)
    n = 30001  # big enough for the parallel paths
    pred = np.round(rng.uniform(0, 1, (n, 37)), 2).astype(np.float32)  # many ties
    target = rng.integers(0, 37, n)
    small, tsmall = pred[:2001], target[:2001]
    for k in (1, 3, 36, 37, 50):
        got = kernels.in_top_k(tsmall, small, k)
        rank = 1 + (small > small[np.arange(2001), tsmall][:, None]).sum(1)
        assert np.array_equal(got, rank <= k)
        filt = kernels.top_k_filter(small, k)
        order = np.argsort(-small, axis=1, kind="stable")[:, :k]  # larger first, lower index
        keep = np.zeros(small.shape, bool)
        np.put_along_axis(keep, order, True, axis=1)
        assert np.array_equal(filt, np.where(keep, small, np.float32(-1e10)))
    outs = []
    for threads in (1, 2):
        with num_threads(threads):
            outs.append((kernels.in_top_k(target, pred, 5), kernels.top_k_filter(pred, 4)))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])


def test_kernels_reject_bad_input():
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        kernels.in_top_k([0], [[1.0, 2.0]], 0)
    with pytest.raises(ValueError, match="class ids must be in \\[0, 2\\)"):
        kernels.in_top_k([2], [[1.0, 2.0]], 1)
    with pytest.raises(ValueError, match="ascending"):
        kernels.threshold_confusion([[0.1]], [[1.0]], [0.5, 0.2])
    with pytest.raises(ValueError, match="y_true has shape"):
        kernels.threshold_confusion([[0.1, 0.2]], [[1.0]], [0.5])
    with pytest.raises(ValueError, match="mode must be one of"):
        kernels.threshold_confusion([[0.1]], [[1.0]], [0.5], mode="bucket")


# ---------------------------------------------------------------- arguments and errors
def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="Unknown metric 'accuracyy'.*accuracy"):
        M.get("accuracyy")
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        M.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        M.SparseTopKCategoricalAccuracy(k=1.5)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        M.top_k_categorical_accuracy(np.eye(3), np.eye(3), k=0)
    with pytest.raises(ValueError, match="num_thresholds.*> 1"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="Invalid AUC curve"):
        M.AUC(curve="ROCK")
    with pytest.raises(ValueError, match="summation method"):
        M.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match="num_labels.*multi_label"):
        M.AUC(num_labels=3)
    with pytest.raises(ValueError, match="Threshold values must be in \\[0, 1\\]"):
        M.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        M.Recall(top_k=0)
    with pytest.raises(ValueError, match="average"):
        M.F1Score(average="mean")
    with pytest.raises(ValueError, match="beta"):
        M.FBetaScore(beta=2)
    with pytest.raises(ValueError, match="target_class_ids"):
        M.IoU(3, [0, 3])
    with pytest.raises(ValueError, match="dtype"):
        M.Mean(dtype="float16")
    # wrong shapes
    with pytest.raises(ValueError, match="y_true has shape"):
        M.Precision().update_state(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="class_id 5 is out of range"):
        M.Recall(class_id=5).update_state(np.zeros((4, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="rank 2 when multi_label"):
        M.AUC(multi_label=True).update_state(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        M.AUC().update_state(np.zeros((4, 1)), np.zeros((4, 1)), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="2D inputs"):
        M.F1Score().update_state(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="y_true has shape"):
        M.MeanSquaredError().update_state(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="labels must be in"):
        M.SparseCategoricalCrossentropy().update_state([0, 7], np.ones((2, 3)) / 3)
    with pytest.raises(TypeError, match="numeric"):
        M.Mean().update_state(["a", "b"])


# ---------------------------------------------------------------- compile and fit
def test_compile_metrics_forms_and_names():
    fastcnn.utils.clear_session()
    def names(metrics=None, weighted=None, outputs=("dense",)):
        return CompileMetrics(metrics, weighted, list(outputs)).names
    assert names(["accuracy", "acc"]) == ["accuracy", "acc"]
    assert names([["accuracy"], ("mse", M.AUC())]) == ["accuracy", "mse", "auc"]
    assert names({"dense": ["accuracy", M.Precision(name="p")]}) == ["accuracy", "p"]
    assert names({"dense": "mae"}) == ["mae"]
    assert names(["mse", "mse", "mse"]) == ["mse", "mse_1", "mse_2"]
    assert names(["accuracy"], ["accuracy", "mae", "accuracy"]) == \
        ["accuracy", "weighted_accuracy", "mae", "weighted_accuracy_1"]
    assert names([M.top_k_categorical_accuracy]) == ["top_k_categorical_accuracy"]
    with pytest.raises(ValueError, match="Expected `metrics` argument to be a list"):
        names("accuracy")
    with pytest.raises(ValueError, match="not an output of the model"):
        names({"dense_9": ["accuracy"]})
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'"):
        names(["acuracy"])
    with pytest.raises(ValueError, match="received `None`"):
        names([None])
    with pytest.raises(ValueError, match="named 'loss'"):
        names([M.Mean(name="loss")])


def test_weighted_metrics_use_sample_weights_and_metrics_ignore_them():
    rng = np.random.default_rng(8)
    y, p = sparse(rng, 20)
    w = rng.uniform(0, 1, 20)
    cm = CompileMetrics(["accuracy", M.AUC(name="auc")], ["accuracy", "sparse_top_k_categorical_accuracy"],
                        ["out"])
    with pytest.raises(ValueError):  # AUC needs y_true of y_pred's shape
        cm.update_state(y, p, None, w)
    cm = CompileMetrics(["accuracy"], ["accuracy", M.SparseTopKCategoricalAccuracy(k=2)],
                        ["out"])
    cm.update_state(y, p, None, w)
    hit = (p.argmax(1) == y).astype(float)
    in2 = kernels.in_top_k(y, p, 2).astype(float)
    res = cm.result()
    assert list(res) == ["accuracy", "weighted_accuracy", "sparse_top_k_categorical_accuracy"]
    np.testing.assert_allclose(res["accuracy"], hit.mean(), rtol=1e-12)
    np.testing.assert_allclose(res["weighted_accuracy"], (hit * w).sum() / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(res["sparse_top_k_categorical_accuracy"],
                               (in2 * w).sum() / w.sum(), rtol=1e-12)
    # the loss kernel's count is used for unweighted accuracy only
    cm.reset_state()
    cm.update_state(y, p, n_correct=3, sample_weight=w)
    res = cm.result()
    np.testing.assert_allclose(res["accuracy"], 3 / 20)
    np.testing.assert_allclose(res["weighted_accuracy"], (hit * w).sum() / w.sum(), rtol=1e-12)


def _tiny_pair(units, final, seed):
    keras.utils.clear_session()
    fastcnn.utils.clear_session()
    rng = np.random.default_rng(seed)
    k = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                          keras.layers.Dense(units, activation=final)])
    f = fastcnn.Sequential([fastcnn.Input((6,)), fastcnn.layers.Dense(4, activation="relu"),
                            fastcnn.layers.Dense(units, activation=final)])
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in f.get_weights()]
    k.set_weights(weights)
    f.set_weights(weights)
    return k, f, rng


def _check_history(kh, fh, rtol=2e-4):
    assert set(fh.history) == set(kh.history), (sorted(fh.history), sorted(kh.history))
    for key in kh.history:
        np.testing.assert_allclose(np.asarray(fh.history[key], dtype=np.float64),
                                   np.asarray(kh.history[key], dtype=np.float64),
                                   rtol=rtol, atol=2e-5, err_msg=key)


@needs_keras
def test_fit_logs_match_keras_softmax_classifier():
    k, f, rng = _tiny_pair(5, "softmax", 9)
    x = rng.normal(0, 1, (50, 6)).astype(np.float32)
    y = rng.integers(0, 5, 50)
    x_val, y_val = x[:17], y[:17]

    def metrics(m):
        return dict(metrics=["accuracy", "sparse_top_k_categorical_accuracy",
                             m.SparseTopKCategoricalAccuracy(k=2, name="top2"),
                             m.SparseCategoricalCrossentropy(name="ce")],
                    weighted_metrics=["accuracy"])
    k.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
              **metrics(keras.metrics))
    f.compile(optimizer=fastcnn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
              **metrics(M))
    kw = dict(epochs=2, batch_size=16, shuffle=False, verbose=0,
              validation_data=(x_val, y_val))
    _check_history(k.fit(x, y, **kw), f.fit(x, y, **kw))
    want = k.evaluate(x, y, batch_size=9, verbose=0, return_dict=True)
    got = f.evaluate(x, y, batch_size=9, verbose=0, return_dict=True)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=2e-4, atol=2e-5, err_msg=key)
    assert f.metrics_names == ["loss", "accuracy", "sparse_top_k_categorical_accuracy", "top2",
                               "ce", "weighted_accuracy"]


@needs_keras
def test_fit_logs_match_keras_binary_scores():
    k, f, rng = _tiny_pair(1, None, 10)
    x = rng.normal(0, 1, (45, 6)).astype(np.float32)
    y = (x[:, 0] + rng.normal(0, 0.5, 45) > 0).astype(np.float32)[:, None]

    def metrics(m):
        return {"dense_1" if m is M else k.layers[-1].name:
                ["accuracy", "AUC", m.Precision(), m.Recall(thresholds=[0.3, 0.6]),
                 m.AUC(curve="PR", name="pr"), m.TruePositives(), m.F1Score(threshold=0.5),
                 "mse"]}
    k.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=metrics(keras.metrics))
    f.compile(optimizer=fastcnn.optimizers.SGD(0.05), loss="mse",
              metrics={f.layers[-1].name: metrics(M)["dense_1"]})
    kw = dict(epochs=2, batch_size=8, shuffle=False, verbose=0)
    kh, fh = k.fit(x, y, **kw), f.fit(x, y, **kw)
    assert set(fh.history) == set(kh.history)
    for key in kh.history:
        np.testing.assert_allclose(np.asarray(fh.history[key], dtype=np.float64).reshape(
            np.shape(kh.history[key])), np.asarray(kh.history[key], dtype=np.float64),
            rtol=2e-4, atol=2e-5, err_msg=key)


def test_accuracy_shortcut_and_saving_round_trip(tmp_path):
    """'accuracy' with a fused softmax + cross-entropy uses the loss kernel's count (its
    result equals the argmax count) and compile metrics survive save/load."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, (40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = fastcnn.Sequential([fastcnn.Input((6,)), fastcnn.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=["accuracy", M.AUC(name="auc_flat", multi_label=True)],
                  weighted_metrics=["acc", "top_k_categorical_accuracy" if False else "mse"])
    onehot = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError):  # AUC on (N,) ids vs (N, 3) probabilities
        model.evaluate(x, y, verbose=0)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["acc", M.SparseTopKCategoricalAccuracy(k=2)])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    probs = model.predict(x, verbose=0)
    assert abs(logs["accuracy"] - (probs.argmax(1) == y).mean()) < 1e-12
    assert abs(logs["acc"] - logs["accuracy"]) < 1e-12
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = fastcnn.saving.load_model(path)
    assert loaded.metrics_names == model.metrics_names == [
        "loss", "accuracy", "acc", "sparse_top_k_categorical_accuracy"]
    again = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert again == pytest.approx(logs, rel=1e-6)
    del onehot


def test_custom_metric_subclass_keras_style():
    """A Keras-style subclass: add_variable(shape, initializer, name) state, reset, call."""
    class PositiveRate(M.Metric):
        def __init__(self, name="positive_rate", **kwargs):
            super().__init__(name=name, **kwargs)
            self.hits = self.add_variable(shape=(), initializer="zeros", name="hits")
            self.seen = self.add_variable(shape=(), initializer="zeros", name="seen")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.hits += np.sum(np.asarray(y_pred) > 0.5)
            self.seen += np.size(y_pred)

        def result(self):
            return float(self.hits / self.seen) if self.seen else 0.0

    m = PositiveRate()
    assert m([0, 1], [0.2, 0.9]) == 0.5 and len(m.variables) == 2
    m.update_state([0], [0.7])
    assert m.result() == pytest.approx(2 / 3)
    m.reset_state()
    assert m.result() == 0.0
    model = fastcnn.Sequential([fastcnn.Input((3,)), fastcnn.layers.Dense(1)])
    model.compile("sgd", "mse", metrics=[PositiveRate(), M.mean_squared_error])
    logs = model.evaluate(np.ones((4, 3), np.float32), np.ones((4, 1), np.float32),
                          verbose=0, return_dict=True)
    assert set(logs) == {"loss", "positive_rate", "mean_squared_error"}
    assert logs["mean_squared_error"] == pytest.approx(logs["loss"], rel=1e-6)
    with pytest.raises(ValueError, match="initializer='zeros'"):
        m.add_variable((), initializer="ones", name="x")
