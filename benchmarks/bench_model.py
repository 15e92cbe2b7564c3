"""pytest-benchmark: the whole Keras CIFAR-10 tutorial model, fastcnn vs the NumPy baseline.

    pytest benchmarks/bench_model.py --benchmark-only --benchmark-group-by=group

* ``train b32``: one full training step (forward, sparse softmax cross-entropy, backward,
  Adam) on a batch of 32 CIFAR-10-sized images: fastcnn's ``Sequential.train_on_batch`` vs
  ``numpy_baseline.TutorialModel.train_step``.
* ``infer b1000``: logits of 1000 images: ``Sequential.predict_on_batch`` vs
  ``TutorialModel.forward``.

Both start from the same weights; fastcnn and NumPy's OpenBLAS both run on THREADS threads
(the machine's 2 cores). Random images in [0, 1) stand in for CIFAR-10 (the speed does not
depend on the values); benchmarks/side_by_side.py times real CIFAR-10 batches and PyTorch too.
The machine is shared and noisy: compare the two medians of one run, not across runs.
"""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from conv_ratio import warm_up  # noqa: E402
from numpy_baseline import TutorialModel  # noqa: E402

from fastcnn import losses, optimizers, zoo  # noqa: E402

TRAIN_BATCH = 32
INFER_BATCH = 1000


def fastcnn_tutorial(weights):
    m = zoo.tutorial_model()
    m.compile(optimizer=optimizers.Adam(),
              loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    m.set_weights(weights)
    return m


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    x = r.random((INFER_BATCH, 32, 32, 3), dtype=np.float32)
    y = r.integers(0, 10, INFER_BATCH)
    return x, y


@pytest.fixture(scope="module")
def models_pair():
    ref = TutorialModel(seed=0)
    return {"numpy": ref, "fastcnn": fastcnn_tutorial(ref.get_weights())}




@pytest.mark.parametrize("impl", ["fastcnn", "numpy"])
def test_train_step_b32(benchmark, impl, data, models_pair):
    benchmark.group = "train b%d" % TRAIN_BATCH
    x, y = data[0][:TRAIN_BATCH], data[1][:TRAIN_BATCH]
    m = models_pair[impl]
    step = m.train_on_batch if impl == "fastcnn" else m.train_step
    warm_up(lambda: step(x, y), 0.5)  # first-touch buffers; the other library's threads idle
    loss = benchmark(step, x, y)
    assert np.isfinite(loss)


@pytest.mark.parametrize("impl", ["fastcnn", "numpy"])
def test_inference_b1000(benchmark, impl, data, models_pair):
    benchmark.group = "infer b%d" % INFER_BATCH
    x = data[0]
    m = models_pair[impl]
    fn = m.predict_on_batch if impl == "fastcnn" else m.forward
    warm_up(lambda: fn(x), 0.5)
    out = benchmark(fn, x)
    assert out.shape == (INFER_BATCH, 10)
