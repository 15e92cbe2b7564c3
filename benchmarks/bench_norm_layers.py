"""pytest-benchmark: the kernels of LayerNormalization, GroupNormalization, Embedding,
Permute and SpatialDropout2D vs NumPy baselines (forward + backward of one batch).

    pytest benchmarks/bench_norm_layers.py --benchmark-only --benchmark-group-by=param:case \
        --benchmark-columns=median,iqr,rounds

fastcnn and NumPy's BLAS on _bench.THREADS threads (benchmarks/conftest.py); outputs
preallocated on both sides where NumPy allows it. Compare medians within one run.
"""
import numpy as np
import pytest

from fastcnn import ops

BATCH = 32


def _rng():
    return np.random.default_rng(0)


def layer_norm_case(shape):
    rng = _rng()
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[-1]
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    dg, db = np.empty(c, np.float32), np.empty(c, np.float32)

    def fast():
        _, cache = ops.layer_norm_forward(x, gamma, beta, out=y)
        ops.group_norm_backward(dy, cache, dx=dx, dgamma=dg, dbeta=db)

    def numpy():
        mean = x.mean(axis=-1, keepdims=True)
        inv = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-3)
        xhat = (x - mean) * inv
        np.add(xhat * gamma, beta, out=y)
        axes = tuple(range(x.ndim - 1))
        db[:] = dy.sum(axis=axes)
        dg[:] = (dy * xhat).sum(axis=axes)
        d = dy * gamma
        np.multiply(inv, d - d.mean(-1, keepdims=True)
                    - xhat * (d * xhat).mean(-1, keepdims=True), out=dx)
    return {"fastcnn": fast, "numpy": numpy}


def group_norm_case(shape, groups):
    rng = _rng()
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[-1]
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    dg, db = np.empty(c, np.float32), np.empty(c, np.float32)
    gshape = (shape[0], -1, groups, c // groups)

    def fast():
        _, cache = ops.group_norm_forward(x, groups, gamma, beta, out=y)
        ops.group_norm_backward(dy, cache, dx=dx, dgamma=dg, dbeta=db)

    def numpy():
        xr = x.reshape(gshape)
        mean = xr.mean(axis=(1, 3), keepdims=True)
        inv = 1.0 / np.sqrt(xr.var(axis=(1, 3), keepdims=True) + 1e-3)
        xhat = ((xr - mean) * inv).reshape(shape)
        np.add(xhat * gamma, beta, out=y)
        axes = tuple(range(x.ndim - 1))
        db[:] = dy.sum(axis=axes)
        dg[:] = (dy * xhat).sum(axis=axes)
        d = (dy * gamma).reshape(gshape)
        xh = xhat.reshape(gshape)
        dx[:] = (inv * (d - d.mean((1, 3), keepdims=True)
                        - xh * (d * xh).mean((1, 3), keepdims=True))).reshape(shape)
    return {"fastcnn": fast, "numpy": numpy}


def embedding_case(vocab, dim, seq):
    rng = _rng()
    table = rng.standard_normal((vocab, dim)).astype(np.float32)
    idx = rng.integers(0, vocab, size=(BATCH, seq)).astype(np.float32)
    dy = rng.standard_normal((BATCH, seq, dim)).astype(np.float32)
    y = np.empty((BATCH, seq, dim), np.float32)
    dt = np.empty_like(table)

    def fast():
        ops.embedding_lookup(idx, table, out=y)
        ops.embedding_backward(idx, dy, vocab, dtable=dt)

    def numpy():
        ii = idx.astype(np.int64)
        if ii.min() < 0 or ii.max() >= vocab:
            raise ValueError("index out of range")
        np.take(table, ii, axis=0, out=y)
        dt.fill(0.0)
        np.add.at(dt, ii.reshape(-1), dy.reshape(-1, dim))
    return {"fastcnn": fast, "numpy": numpy}


def permute_case(shape, perm):
    x = _rng().standard_normal(shape).astype(np.float32)
    y = np.empty(tuple(shape[k] for k in perm), np.float32)

    def fast():
        ops.permute(x, perm, out=y)

    def numpy():
        np.copyto(y, x.transpose(perm))
    return {"fastcnn": fast, "numpy": numpy}


def spatial_dropout_case(shape, rate=0.3):
    x = _rng().standard_normal(shape).astype(np.float32)
    y = np.empty_like(x)
    mask = np.empty((shape[0], shape[-1]), np.uint8)
    gen = np.random.default_rng(1)
    scale = np.float32(1.0 / (1.0 - rate))

    def fast():
        ops.spatial_dropout(x, rate, 1, out=y, mask=mask)

    def numpy():
        keep = gen.random((shape[0], 1, 1, shape[-1]), dtype=np.float32) >= rate
        np.multiply(x, keep * scale, out=y)
    return {"fastcnn": fast, "numpy": numpy}


CASES = {
    "layer_norm fwd+bwd 32x128x256": layer_norm_case((BATCH, 128, 256)),
    "group_norm fwd+bwd 32x16x16x64 g8": group_norm_case((BATCH, 16, 16, 64), 8),
    "embedding fwd+bwd 5000x64 seq100": embedding_case(5000, 64, 100),
    "permute 32x16x16x64 (0,3,1,2)": permute_case((BATCH, 16, 16, 64), (0, 3, 1, 2)),
    "spatial_dropout 32x16x16x64": spatial_dropout_case((BATCH, 16, 16, 64)),
}


@pytest.mark.parametrize("impl", ["fastcnn", "numpy"])
@pytest.mark.parametrize("case", list(CASES))
def test_norm_layers(benchmark, case, impl):
    benchmark.group = case
    benchmark(CASES[case][impl])
