"""pytest-benchmark: fastcnn's nn kernels vs NumPy baselines on the seed model's shapes.

    pytest benchmarks/bench_nn.py --benchmark-only --benchmark-group-by=param:case \
        --benchmark-columns=median,iqr,rounds

Batch 32, fastcnn and NumPy's BLAS on 2 threads (benchmarks/conftest.py), outputs
preallocated on both sides where NumPy allows it. Compare medians of the two implementations within one run.
"""

import numpy as np
import pytest

from fastcnn import ops

BATCH = 32




def _rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------- cases

def dense_case(n_in, n_out, relu):
    rng = _rng()
    x = rng.standard_normal((BATCH, n_in)).astype(np.float32)
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    y = np.empty((BATCH, n_out), np.float32)
    act = "relu" if relu else None

    def fast():
        ops.dense(x, w, b, activation=act, out=y)

    def numpy():
        np.matmul(x, w, out=y)
        np.add(y, b, out=y)
        if relu:
            np.maximum(y, 0, out=y)

    return {"fastcnn": fast, "numpy": numpy}


def dense_backward_case(n_in, n_out):
    rng = _rng()
    x = rng.standard_normal((BATCH, n_in)).astype(np.float32)
    w = rng.standard_normal((n_in, n_out)).astype(np.float32)
    dy = rng.standard_normal((BATCH, n_out)).astype(np.float32)
    dx = np.empty_like(x)
    dw = np.empty_like(w)
    db = np.empty(n_out, np.float32)

    def fast():
        ops.dense_backward(dy, x, w, dx=dx, dkernel=dw, dbias=db)

    def numpy():
        np.matmul(x.T, dy, out=dw)
        np.matmul(dy, w.T, out=dx)
        np.sum(dy, axis=0, out=db)

    return {"fastcnn": fast, "numpy": numpy}


def relu_case():
    rng = _rng()
    x = rng.standard_normal((BATCH, 30, 30, 32)).astype(np.float32)
    y = np.empty_like(x)

    def fast():
        ops.relu(x, out=y)

    def numpy():
        np.maximum(x, 0, out=y)

    return {"fastcnn": fast, "numpy": numpy}


def relu_backward_case():
    rng = _rng()
    y = np.maximum(rng.standard_normal((BATCH, 30, 30, 32)), 0).astype(np.float32)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = np.empty_like(y)

    def fast():
        ops.relu_backward(dy, y, out=dx)

    def numpy():
        np.multiply(dy, y > 0, out=dx)

    return {"fastcnn": fast, "numpy": numpy}


def softmax_ce_case():
    rng = _rng()
    z = (3 * rng.standard_normal((BATCH, 10))).astype(np.float32)
    labels = rng.integers(0, 10, BATCH)
    d = np.empty_like(z)
    rows = np.arange(BATCH)

    def fast():
        return ops.softmax_cross_entropy(z, labels, dlogits=d)

    def numpy():
        if labels.min() < 0 or labels.max() >= z.shape[1]:
            raise ValueError("bad label")
        m = z.max(axis=1, keepdims=True)
        np.subtract(z, m, out=d)
        np.exp(d, out=d)
        s = d.sum(axis=1, keepdims=True, dtype=np.float64)
        loss = float(np.mean(np.log(s[:, 0]) - (z[rows, labels] - m[:, 0])))
        np.divide(d, s.astype(np.float32), out=d)
        d[rows, labels] -= 1.0
        np.divide(d, BATCH, out=d)
        correct = int(np.count_nonzero(z.argmax(axis=1) == labels))
        return loss, d, correct

    return {"fastcnn": fast, "numpy": numpy}


def batchnorm_case(shape):
    rng = _rng()
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[-1]
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    mm, mv = np.zeros(c, np.float32), np.ones(c, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    axes = tuple(range(len(shape) - 1))

    def fast():
        _, cache = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=True, out=y)
        ops.batch_norm_backward(dy, cache, dx=dx)

    def numpy():
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        mm[:] = mm * 0.99 + mean * 0.01
        mv[:] = mv * 0.99 + var * 0.01
        inv = 1.0 / np.sqrt(var + 1e-3)
        xhat = (x - mean) * inv
        np.add(xhat * gamma, beta, out=y)
        dbeta = dy.sum(axis=axes)
        dgamma = (dy * xhat).sum(axis=axes)
        m = x.size // c
        np.multiply(gamma * inv, dy - dbeta / m - xhat * (dgamma / m), out=dx)

    return {"fastcnn": fast, "numpy": numpy}


def dropout_case(shape, rate=0.5):
    rng = _rng()
    x = rng.standard_normal(shape).astype(np.float32)
    y = np.empty_like(x)
    mask = np.empty(shape, np.uint8)
    gen = np.random.default_rng(1)
    scale = np.float32(1.0 / (1.0 - rate))

    def fast():
        ops.dropout(x, rate, seed=1, out=y, mask=mask)

    def numpy():
        keep = gen.random(shape, dtype=np.float32) >= rate
        np.multiply(x, keep * scale, out=y)
        return keep

    return {"fastcnn": fast, "numpy": numpy}


CASES = {
    "dense 1024->64 relu": dense_case(1024, 64, True),
    "dense 64->10": dense_case(64, 10, False),
    "dense_backward 1024->64": dense_backward_case(1024, 64),
    "dense_backward 64->10": dense_backward_case(64, 10),
    "relu 32x30x30x32": relu_case(),
    "relu_backward 32x30x30x32": relu_backward_case(),
    "softmax_ce 32x10": softmax_ce_case(),
    "batchnorm fwd+bwd 32x13x13x64": batchnorm_case((BATCH, 13, 13, 64)),
    "dropout 32x1024": dropout_case((BATCH, 1024)),
}


@pytest.mark.parametrize("impl", ["fastcnn", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_nn(benchmark, case, impl):
    benchmark.group = case
    benchmark(CASES[case][impl])
