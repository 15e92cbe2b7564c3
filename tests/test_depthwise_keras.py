"""Real Keras 3 (JAX backend) as the oracle for grouped/dilated Conv2D, DepthwiseConv2D and
SeparableConv2D: same config keys, and with the same weights the same outputs and (through
jax.grad) the same input and weight gradients. Skipped without keras/jax."""
import os

import numpy as np
import pytest

import fastcnn
from conftest import assert_close

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":  # pragma: no cover - another backend was preselected
    pytest.skip("the Keras oracle tests run on the JAX backend", allow_module_level=True)
jax = pytest.importorskip("jax")

CASES = [  # (class name, args, kwargs, input shape)
    ("DepthwiseConv2D", (3,), dict(padding="same", depth_multiplier=2, activation="relu"),
     (2, 9, 11, 5)),
    ("DepthwiseConv2D", ((3, 2),), dict(strides=2, padding="same"), (2, 9, 8, 13)),
    ("DepthwiseConv2D", (3,), dict(dilation_rate=3, depth_multiplier=3, use_bias=False),
     (1, 11, 10, 7)),
    ("SeparableConv2D", (6, 3), dict(padding="same", activation="relu"), (2, 9, 9, 10)),
    ("SeparableConv2D", (5, 3), dict(strides=2, depth_multiplier=2, padding="same"),
     (2, 10, 9, 3)),
    ("SeparableConv2D", (4, 3), dict(dilation_rate=2, activation="sigmoid"), (1, 9, 9, 6)),
    ("Conv2D", (6, 3), dict(groups=3, padding="same", activation="relu"), (2, 9, 7, 9)),
    ("Conv2D", (4, 3), dict(dilation_rate=2), (2, 11, 10, 5)),
    ("Conv2D", (4, (3, 2)), dict(dilation_rate=(3, 2), groups=2, padding="same"),
     (1, 10, 9, 6)),
    ("Conv2D", (8, 3), dict(groups=4, strides=2, use_bias=False), (2, 9, 9, 12)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", CASES)
def test_same_config_keys_outputs_and_gradients_as_keras(name, args, kwargs, shape):
    rng = np.random.default_rng(7)
    theirs = getattr(keras.layers, name)(*args, **kwargs)
    ours = getattr(fastcnn.layers, name)(*args, **kwargs)
    assert set(ours.get_config()) == set(theirs.get_config())
    x = rng.standard_normal(shape).astype(np.float32)
    theirs.build(shape)
    ours.build(shape)
    weights = [rng.standard_normal(w.shape).astype(np.float32) * 0.5
               for w in theirs.get_weights()]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    want = np.asarray(theirs(x))
    got = ours.forward(x, training=True)
    assert got.shape == want.shape == ours.compute_output_shape(shape)
    assert_close(got, want, rtol=1e-5, atol=1e-5, what="forward")

    dy = rng.standard_normal(want.shape).astype(np.float32)

    def loss(tv, xx):
        y, _ = theirs.stateless_call(tv, [], xx)
        return (y * dy).sum()

    tv = [v.value for v in theirs.trainable_variables]
    gw, gx = jax.grad(loss, argnums=(0, 1))(tv, x)
    dx = ours.backward(dy)
    assert_close(dx, np.asarray(gx), rtol=1e-4, atol=1e-5, what="dx")
    assert len(ours.gradients) == len(gw) == len(ours.trainable_weights)
    for g, w, v in zip(ours.gradients, gw, ours.trainable_weights):
        assert_close(g, np.asarray(w), rtol=1e-4, atol=1e-5, what=v.name)
