"""The compiled lean program (_ext.LeanProgram, training/lean.py): a model's bound inference
steps recorded once and executed by one nogil call give the bits of the same steps run one
by one from Python and of the plan's ordinary forward, at 1 and 2 threads; weights changed in
place are seen; a step that cannot lower itself leaves the Python path; bad input raises."""
import os

import numpy as np
import pytest

import fastcnn
from fastcnn import _ext, layers
from fastcnn.training.lean import LeanRunner
from conftest import num_threads

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "onnx")


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def onnx_model(name):
    pytest.importorskip("onnx")
    import fastcnn.onnx
    return fastcnn.onnx.load_model(os.path.join(FIXTURES, name + ".onnx"))


def python_steps(runner, x):
    """The runner's steps one by one from Python (what it does without a program)."""
    values = {runner.input_key: x}
    for run, ins, out in runner.keys:
        values[out] = run(values[ins[0]]) if len(ins) == 1 else run([values[k] for k in ins])
    return np.array(values[runner.output_key])


def branchy_model():
    """Padding absorbed into a conv, conv + ReLU + pool, a residual add + ReLU, a sigmoid
    branch concatenated, global average pooling, dropout and dense: every lowered kind."""
    inp = fastcnn.Input((13, 11, 3))
    h = layers.ZeroPadding2D(((1, 0), (2, 1)))(inp)
    h = layers.Conv2D(7, 3, activation="relu")(h)
    h = layers.MaxPooling2D(2)(h)
    a = layers.Conv2D(7, 3, padding="same", activation="relu")(h)
    h = layers.ReLU()(layers.Add()([h, a]))
    s = layers.Activation("sigmoid")(layers.Conv2D(5, 1)(h))
    h = layers.Concatenate()([h, s])
    h = layers.Dropout(0.5)(layers.GlobalAveragePooling2D()(h))
    out = layers.Dense(4)(h)
    model = fastcnn.Model(inp, out)
    model.build((None, 13, 11, 3))
    return model


def sequential_model():
    model = fastcnn.Sequential([
        fastcnn.Input((12, 12, 3)),
        layers.Conv2D(9, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(6, 3, activation="relu"), layers.Flatten(), layers.Dense(5)])
    model.build((None, 12, 12, 3))
    return model


MODELS = {"small_resnet": lambda: onnx_model("small_resnet"),
          "tutorial_cnn": lambda: onnx_model("tutorial_cnn"),
          "branchy": branchy_model, "sequential": sequential_model}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("n", [1, 3])
def test_program_equals_python_steps_and_plan_at_1_and_2_threads(name, n):
    model = MODELS[name]()
    x = rand((n,) + tuple(model.inputs[0].shape[1:]), 1)
    outs = []
    for threads in (1, 2):
        with num_threads(threads):
            got = model.predict_on_batch(x)
            runner = model._lean.get(x.shape)
            assert runner.program is not None and len(runner.program) >= len(runner.keys) - 2
            np.testing.assert_array_equal(got, python_steps(runner, x))
            np.testing.assert_array_equal(model(x), got)
            if n > 1:  # batch 1 may pick im2col over Winograd (ops.latency_algorithm)
                np.testing.assert_array_equal(
                    got, np.array(model._program().forward([x], False, False)[0]))
            outs.append(got)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_program_sees_weights_changed_in_place():
    model = onnx_model("small_resnet")
    x = rand((2, 32, 32, 3), 2)
    before = model.predict_on_batch(x)
    assert model._lean.get(x.shape).program is not None
    weights = model.get_weights()
    # every array scaled in place (kernels, biases, batch norm's moving variance...)
    model.set_weights([w * np.float32(1.25) for w in weights])
    after = model.predict_on_batch(x)
    assert not np.array_equal(before, after)
    runner = model._lean.get(x.shape)
    np.testing.assert_array_equal(after, python_steps(runner, x))
    np.testing.assert_array_equal(
        after, np.array(model._program().forward([x], False, False)[0]))


@pytest.mark.parametrize("threads", [1, 2])
def test_steps_without_a_lowering_split_the_program(threads):
    # standalone batch norm (not after a conv) and a tanh activation have no bound kernel
    # call: they run from Python between programs, one of which has two inputs
    inp = fastcnn.Input((9, 7, 3))
    h = layers.BatchNormalization()(inp)
    a = layers.Conv2D(5, 3, padding="same", activation="relu")(h)
    b = layers.Conv2D(5, 1, activation="relu")(layers.Activation("tanh")(h))
    h = layers.ReLU()(layers.Add()([a, b]))
    h = layers.Conv2D(4, 3)(layers.Activation("tanh")(h))
    out = layers.Dense(3)(layers.Flatten()(h))
    model = fastcnn.Model(inp, out)
    model.build((None, 9, 7, 3))
    bn = model.layers[1]
    bn.moving_mean.value[...] = rand(bn.moving_mean.value.shape, 9)
    x = rand((2, 9, 7, 3), 3)
    with num_threads(threads):
        got = model.predict_on_batch(x)
        runner = model._lean.get(x.shape)
        kinds = [item[0] for item in runner.items]
        np.testing.assert_array_equal(got, python_steps(runner, x))
        np.testing.assert_array_equal(
            got, np.array(model._program().forward([x], False, False)[0]))
    assert runner.program is None and kinds.count("program") >= 2 and "step" in kinds
    assert any(len(item[2]) == 2 for item in runner.items if item[0] == "program")


def test_identity_model_is_not_compiled():
    model = fastcnn.Sequential([fastcnn.Input((4, 5)), layers.Dropout(0.3)])
    model.build((None, 4, 5))
    x = rand((2, 4, 5), 4)
    runner = LeanRunner(model._program(), x.shape)
    assert runner.program is None  # its output would be the input array itself
    np.testing.assert_array_equal(model.predict_on_batch(x), x)


def test_program_rejects_bad_input():
    placeholder = np.zeros((1, 4, 4, 2), np.float32)
    program = _ext.LeanProgram([placeholder])
    out = np.zeros((1, 6, 6, 2), np.float32)
    program.add_pad2d(placeholder, 1, 1, 1, 1, out)
    x = rand((1, 4, 4, 2), 5)
    program.run([x])
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
    with pytest.raises(ValueError, match="LeanProgram.run: input 0 has shape"):
        program.run([np.zeros((1, 4, 2, 4), np.float32)])
    with pytest.raises(ValueError, match="LeanProgram.run: input 0 has shape"):
        program.run([np.zeros((2, 4, 4, 2), np.float32)])
    with pytest.raises(ValueError, match="LeanProgram.run: 2 inputs"):
        program.run([x, x])
    with pytest.raises(ValueError, match="float32"):
        program.run([np.zeros((1, 4, 4, 2), np.float64)])
    with pytest.raises(ValueError, match="float32"):  # not in native byte order
        program.run([np.zeros((1, 4, 4, 2), ">f4")])
    with pytest.raises(ValueError, match="input 0 is a list"):
        program.run([x.tolist()])
    with pytest.raises(ValueError, match="C-contiguous"):
        program.run([np.zeros((1, 4, 4, 4), np.float32)[..., ::2]])
    with pytest.raises(ValueError, match="placeholders"):
        _ext.LeanProgram([])
    with pytest.raises(ValueError, match="C-contiguous"):
        program.add_sigmoid(out[:, ::2], np.zeros(18 * 2, np.float32))
    with pytest.raises(ValueError, match="empty"):
        program.add_sigmoid(np.zeros(0, np.float32), np.zeros(0, np.float32))
    assert len(program) == 1


@pytest.mark.parametrize("avx512", [False, True])
@pytest.mark.parametrize("inp,units", [(1, 1), (7, 5), (255, 16), (256, 64), (257, 70),
                                       (1024, 64), (1500, 130), (33, 8)])
def test_one_row_dense_has_the_gemm_bits(inp, units, avx512):
    """At batch 1 the program's dense reads the kernel in place (csrc/lean_dense.c): the
    bits of _ext.dense_forward's GEMM (its K blocks of <= 256, bias, ReLU keeping NaN), with
    the GEMM's AVX2 or AVX-512 kernels, at 1 and 2 threads; close to a float64 reference."""
    if avx512 and not _ext.gemm_avx512():
        pytest.skip("no AVX-512 GEMM kernels on this CPU")
    rng = np.random.default_rng(inp * 1000 + units)
    x = rng.standard_normal((1, inp)).astype(np.float32)
    kernel = rng.standard_normal((inp, units)).astype(np.float32)
    bias = rng.standard_normal(units).astype(np.float32)
    x[0, 0] = np.nan if units == 5 else x[0, 0]  # NaN passes ReLU as NaN in both
    _ext.gemm_force_avx512(1 if avx512 else 0)
    try:
        for b in (bias, None):
            for relu in (False, True):
                ref = np.empty((1, units), np.float32)
                _ext.dense_forward(x, kernel, b, relu, ref)
                for threads in (1, 2):
                    with num_threads(threads):
                        placeholder = np.zeros_like(x)
                        program = _ext.LeanProgram([placeholder])
                        out = np.full((1, units), 7.0, np.float32)
                        program.add_dense(placeholder, kernel, b, relu, out)
                        program.run([x])
                    np.testing.assert_array_equal(out, ref)
                if units != 5:
                    z = x.astype(np.float64) @ kernel + (0 if b is None else b)
                    np.testing.assert_allclose(out, np.maximum(z, 0) if relu else z,
                                               rtol=1e-4, atol=1e-4 * np.abs(z).max())
    finally:
        _ext.gemm_force_avx512(-1)
