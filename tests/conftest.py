"""Shared test helpers: float64 finite differences and thread-count switching."""
import contextlib
import os

import numpy as np
import pytest

import fastcnn


def fd_grad(f, x, eps=1e-6):
    """Central finite-difference gradient of scalar f at x, in float64 (x is not modified)."""
    x = np.array(x, dtype=np.float64, copy=True)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


@contextlib.contextmanager
def num_threads(n):
    """Run the block with fastcnn using n threads, then restore the previous setting."""
    old = fastcnn.get_num_threads()
    fastcnn.set_num_threads(n)
    try:
        yield
    finally:
        fastcnn.set_num_threads(old)


@contextlib.contextmanager
def streaming_stores(on):
    """Run the block with every kernel output written by streaming stores (on) or none."""
    fastcnn._ext.set_stream_min_bytes(0 if on else 1 << 62)
    try:
        yield
    finally:
        fastcnn._ext.set_stream_min_bytes(-1)


def assert_close(actual, expected, rtol=1e-5, atol=1e-5, what=""):
    """Like np.testing.assert_allclose, with a relative-to-max-magnitude atol for sums."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, "%s: shape %s != %s" % (what, actual.shape, expected.shape)
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With FASTCNN_REQUIRE_REALDATA=1 (CI), a real-data test that skips is a failure."""
    outcome = yield
    rep = outcome.get_result()
    if (rep.skipped and item.get_closest_marker("realdata") is not None
            and os.environ.get("FASTCNN_REQUIRE_REALDATA") == "1"):
        rep.outcome = "failed"
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.longrepr = "FASTCNN_REQUIRE_REALDATA=1 but this real-data test skipped: %s" % reason


def compiled_tutorial(weights=None):
    """The zoo's tutorial model compiled as the Keras tutorial does (Adam with Keras'
    defaults, sparse cross-entropy on logits), optionally with the given weights."""
    from fastcnn import losses, optimizers, zoo
    m = zoo.tutorial_model()
    m.compile(optimizer=optimizers.Adam(),
              loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    if weights is not None:
        m.set_weights(weights)
    return m


def cifar_like_batch(n, seed=0):
    """n random float32 32x32x3 images in [0, 1) and int labels 0..9."""
    r = np.random.default_rng(seed)
    return r.random((n, 32, 32, 3), dtype=np.float32), r.integers(0, 10, n)
