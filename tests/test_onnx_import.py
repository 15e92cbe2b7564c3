"""fastcnn.onnx.load_model: ONNX graphs from torch.onnx.export (committed fixtures, made by
tests/fixtures/onnx/make_fixtures.py) and Keras-style NHWC graphs (built here with
onnx.helper) import as fastcnn models that match onnxruntime, train further, and refuse
unsupported ops and hostile files with a ValueError naming the node or the file."""
import importlib.util
import os

import numpy as np
import pytest

import fastcnn
from conftest import num_threads

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import fastcnn.onnx  # noqa: E402,F401  (also reachable as fastcnn.onnx lazily)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "onnx")
NAMES = ("tutorial_cnn", "small_resnet", "basic_block", "misc_ops", "mobilenet_block",
         "decoder", "activations")


def fixture(name):
    return os.path.join(FIXTURES, name + ".onnx")


def run_ort(model, x):
    """onnxruntime's output for ``model`` (a path or ModelProto) on ``x``."""
    data = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def input_shape(path, batch):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return [batch] + list(sess.get_inputs()[0].shape[1:])


def nchw_to_nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def as_onnx_layout(y):
    return y.transpose(0, 3, 1, 2) if y.ndim == 4 else y


def assert_rel(actual, expected, tol=1e-5):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1e-6)
    err = np.abs(actual - expected).max() / scale
    assert err <= tol, "relative error %g > %g" % (err, tol)


def rng_x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------- fixtures
@pytest.mark.parametrize("name", NAMES)
def test_fixture_matches_onnxruntime(name):
    path = fixture(name)
    x = rng_x(input_shape(path, 3))
    model = fastcnn.onnx.load_model(path)
    assert isinstance(model, fastcnn.Model)
    y = model.predict_on_batch(nchw_to_nhwc(x))
    assert_rel(as_onnx_layout(y), run_ort(path, x))
    # the eager call and predict take the same road
    assert_rel(as_onnx_layout(model(nchw_to_nhwc(x))), run_ort(path, x))


def test_fixture_layers_and_bytes():
    with open(fixture("small_resnet"), "rb") as f:
        data = f.read()
    model = fastcnn.onnx.load_model(data)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("BatchNormalization") == 6
    assert "Concatenate" in kinds and kinds.count("Add") == 2
    # the 3x3/2 max-pool with pads 1 after a ReLU: explicit zero padding + 'valid'
    x = rng_x((2, 3, 32, 32), 1)
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))),
               run_ort(fixture("small_resnet"), x))
    assert model.input_shape == (None, 32, 32, 3)


def test_tutorial_rows_permuted_to_nhwc_flatten():
    model = fastcnn.onnx.load_model(fixture("tutorial_cnn"))
    proto = onnx.load(fixture("tutorial_cnn"))
    w = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    dense = [layer for layer in model.layers if isinstance(layer, fastcnn.layers.Dense)][0]
    kernel = dense.get_weights()[0]
    torch_w = w["fc1.weight"].T  # (1024, 64), rows in (C, H, W) order
    # fastcnn's flatten is (H, W, C): row (h, w, c) holds torch's row (c, h, w)
    expect = torch_w.reshape(64, 4, 4, 64).transpose(1, 2, 0, 3).reshape(1024, 64)
    np.testing.assert_array_equal(kernel, expect)
    assert dense.activation == "relu"  # the Relu after the Gemm runs in its kernel


@pytest.mark.parametrize("name", ["small_resnet", "mobilenet_block", "decoder",
                                  "activations"])
def test_imported_model_bitwise_same_at_1_and_2_threads(name):
    model = fastcnn.onnx.load_model(fixture(name))
    x = nchw_to_nhwc(rng_x(input_shape(fixture(name), 4), 2))
    with num_threads(1):
        a = model.predict_on_batch(x)
    with num_threads(2):
        b = model.predict_on_batch(x)
    np.testing.assert_array_equal(a, b)


def test_fine_tune_imported_resnet():
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.onnx.load_model(fixture("small_resnet"))
    rng = np.random.default_rng(3)
    x = nchw_to_nhwc(rng.standard_normal((32, 3, 32, 32)).astype(np.float32))
    y = rng.integers(0, 10, 32)
    before = model.predict(x, verbose=0)
    model.compile(optimizer=fastcnn.optimizers.SGD(learning_rate=0.05),
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=8, epochs=4, verbose=0, shuffle=False)
    last = model.evaluate(x, y, verbose=0)
    assert last < first
    after = model.predict(x, verbose=0)
    assert np.all(np.isfinite(after))
    assert not np.allclose(before, after)


@pytest.mark.parametrize("name", ["mobilenet_block", "activations"])
def test_fine_tune_imported_new_layers(name):
    """Depthwise conv + ReLU6, PReLU, ELU, gelu, LayerNorm ... imported from torch train."""
    fastcnn.utils.set_random_seed(0)
    model = fastcnn.onnx.load_model(fixture(name))
    rng = np.random.default_rng(4)
    x = nchw_to_nhwc(rng.standard_normal(tuple(input_shape(fixture(name), 24)))
                     .astype(np.float32))
    y = rng.integers(0, model.output_shape[-1], 24)
    model.compile(optimizer=fastcnn.optimizers.Adam(learning_rate=0.01),
                  loss=fastcnn.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=8, epochs=5, verbose=0, shuffle=False)
    last = model.evaluate(x, y, verbose=0)
    assert np.isfinite(last) and last < first


# ----------------------------------------------------------------------------- built graphs
def make_model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def vinfo(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def keras_style_model(seed=0):
    """What tf2onnx writes for a Keras CNN: NHWC input, Transposes around NCHW convs, a
    Keras-order flatten, MatMul + Add for Dense."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((6, 3, 3, 3)).astype(np.float32) * 0.3
    b1 = rng.standard_normal(6).astype(np.float32) * 0.1
    wd = rng.standard_normal((4 * 4 * 6, 5)).astype(np.float32) * 0.1
    bd = rng.standard_normal(5).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["t", "w1", "b1"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2],
                         name="pool"),
        helper.make_node("Transpose", ["p"], ["pt"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Reshape", ["pt", "shape"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wd"], ["m"], name="dense_matmul"),
        helper.make_node("Add", ["m", "bd"], ["d"], name="dense_add"),
        helper.make_node("Softmax", ["d"], ["y"], axis=-1, name="softmax"),
    ]
    return make_model(nodes, [vinfo("x", ["N", 8, 8, 3])], [vinfo("y", ["N", 5])],
                      [init("w1", w1), init("b1", b1), init("wd", wd), init("bd", bd),
                       init("shape", np.array([-1, 96], np.int64))])


def test_keras_style_nhwc_graph():
    proto = keras_style_model()
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert model.input_shape == (None, 8, 8, 3)  # NHWC input taken as it is
    x = rng_x((3, 8, 8, 3), 4)
    assert_rel(model.predict_on_batch(x), run_ort(proto, x))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Activation"]


def single_op_model(op, attrs=None, extra_inputs=(), initializers=(), shape=(2, 4, 6, 6),
                    out_shape=None, name="the_node", opset=17):
    node = helper.make_node(op, ["x"] + list(extra_inputs), ["y"], name=name, **(attrs or {}))
    return make_model([node], [vinfo("x", ["N"] + list(shape[1:]))],
                      [vinfo("y", None)], initializers, opset=opset)


@pytest.mark.parametrize("op,attrs,inits,layer", [
    ("Relu", {}, [], "ReLU"),
    ("Sigmoid", {}, [], "Activation"),
    ("Tanh", {}, [], "Activation"),
    ("Softplus", {}, [], "Activation"),
    ("Softsign", {}, [], "Activation"),
    ("Exp", {}, [], "Activation"),
    ("Elu", {"alpha": 1.0}, [], "ELU"),
    ("Elu", {"alpha": 0.5}, [], "ELU"),
    ("LeakyRelu", {"alpha": 0.1}, [], "LeakyReLU"),
    ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, [], "Activation"),
    ("HardSwish", {}, [], "Activation"),
    ("Clip", {}, [("lo", np.float32(0)), ("hi", np.float32(6))], "ReLU"),
    ("Clip", {}, [("lo", np.float32(0))], "ReLU"),
    ("Selu", {}, [], "Activation"),
    ("Gelu", {}, [], "Activation"),
    ("GlobalMaxPool", {}, [], "GlobalMaxPooling2D"),
    ("PRelu", {}, [("slope", np.linspace(-0.5, 0.5, 4, dtype=np.float32).reshape(4, 1, 1))],
     "PReLU"),
    ("PRelu", {}, [("slope", np.float32([0.25]))], "PReLU"),
    ("PRelu", {}, [("slope", np.random.default_rng(1).standard_normal((4, 6, 6)).astype(
        np.float32))], "PReLU"),
    ("PRelu", {}, [("slope", np.random.default_rng(1).standard_normal((6, 1)).astype(
        np.float32))], "PReLU"),
])
def test_activations_map(op, attrs, inits, layer):
    """Each activation op becomes the fastcnn layer that computes it, matching onnxruntime."""
    proto = single_op_model(op, attrs, [n for n, _ in inits],
                            [init(n, np.asarray(v)) for n, v in inits],
                            opset=20 if op == "Gelu" else 17)
    x = rng_x((2, 4, 6, 6), 5) * 4
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert [type(la).__name__ for la in model.layers] == ["InputLayer", layer]
    y = model.predict_on_batch(nchw_to_nhwc(x))
    assert_rel(as_onnx_layout(y), run_ort(proto, x), tol=1e-5)
    if op == "Clip" and len(inits) == 2:
        assert model.layers[1].get_config()["max_value"] == 6.0  # ReLU6


@pytest.mark.parametrize("op,attrs,inits,why", [
    ("Clip", {}, [("lo", np.float32(-1)), ("hi", np.float32(1))], "min=0"),
    ("Gelu", {"approximate": "tanh"}, [], "approximate"),
    ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}, [], "alpha=1/6"),
    ("PRelu", {}, [("slope", np.ones((3, 1, 1), np.float32))], "slope of shape"),
])
def test_activation_settings_fastcnn_lacks_are_refused(op, attrs, inits, why):
    proto = single_op_model(op, attrs, [n for n, _ in inits],
                            [init(n, np.asarray(v)) for n, v in inits],
                            opset=20 if op == "Gelu" else 17)
    with pytest.raises(ValueError, match="the_node.*%s.*%s" % (op, why)):
        fastcnn.onnx.load_model(proto.SerializeToString())


def _conv_case(kind, rng):
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    if kind == "depthwise":
        w, attrs["group"] = rng.standard_normal((8, 1, 3, 3)), 4
    elif kind == "depthwise-strided":
        w, attrs["group"] = rng.standard_normal((4, 1, 3, 3)), 4
        attrs.update(strides=[2, 2], pads=[0, 0, 1, 1])  # Keras 'same' on an even input
    elif kind == "depthwise-dilated":
        w, attrs["group"] = rng.standard_normal((4, 1, 3, 3)), 4
        attrs.update(dilations=[2, 2], pads=[2, 2, 2, 2])
    elif kind == "grouped":
        w, attrs["group"] = rng.standard_normal((6, 2, 3, 3)), 2
    elif kind == "grouped-dilated":
        w, attrs["group"] = rng.standard_normal((6, 2, 3, 3)), 2
        attrs.update(dilations=[2, 1], pads=[2, 1, 2, 1])
    else:
        w, attrs["dilations"] = rng.standard_normal((5, 4, 3, 3)), [2, 2]
        attrs["pads"] = [2, 2, 2, 2]
    return w, attrs


@pytest.mark.parametrize("kind,layer", [
    ("depthwise", "DepthwiseConv2D"), ("depthwise-strided", "DepthwiseConv2D"),
    ("depthwise-dilated", "DepthwiseConv2D"), ("grouped", "Conv2D"),
    ("grouped-dilated", "Conv2D"), ("dilated", "Conv2D")])
def test_conv_variants_map(kind, layer):
    rng = np.random.default_rng(6)
    w, attrs = _conv_case(kind, rng)
    b = rng.standard_normal(w.shape[0])
    proto = single_op_model("Conv", attrs, ["w", "b"],
                            [init("w", w.astype(np.float32)), init("b", b.astype(np.float32))])
    x = rng_x((2, 4, 6, 6), 7)
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert [type(la).__name__ for la in model.layers] == ["InputLayer", layer]
    cfg = model.layers[1].get_config()
    assert cfg["padding"] == "same"
    assert tuple(cfg["dilation_rate"]) == tuple(attrs.get("dilations", (1, 1)))
    if layer == "Conv2D":
        assert cfg["groups"] == attrs.get("group", 1)
    else:
        assert cfg["depth_multiplier"] == w.shape[0] // 4
    y = model.predict_on_batch(nchw_to_nhwc(x))
    assert_rel(as_onnx_layout(y), run_ort(proto, x))


@pytest.mark.parametrize("k,s,pads,opad,bias,padding,crop", [
    (3, 2, [1, 1, 1, 1], [1, 1], True, "valid", True),  # torch's k3/s2/p1/output_padding 1
    (3, 2, [0, 0, 0, 0], [0, 0], True, "valid", False),
    (4, 2, [1, 1, 1, 1], [0, 0], True, "same", False),  # torch's k4/s2/p1 is Keras' 'same'
    (2, 2, [0, 0, 0, 0], [0, 0], False, "same", False),
    (3, 1, [1, 1, 1, 1], [0, 0], True, "same", False),
    (3, 2, [0, 0, 0, 0], [1, 1], True, "valid", False),  # output_padding past the end
    (2, 3, [0, 0, 0, 0], [0, 0], True, "same", False),  # k < s: same, output_padding 2
    (3, 2, [1, 0, 1, 0], [0, 1], False, "valid", True),
    (5, 3, [2, 1, 0, 2], [2, 1], True, "valid", True),
])
def test_conv_transpose_maps_to_keras_padding_or_valid_plus_cropping(k, s, pads, opad, bias,
                                                                     padding, crop):
    """ONNX ConvTranspose = Keras 'same' where its padding is the same, else Keras 'valid'
    (output_padding for rows past the full output) + Cropping2D of pads_begin and
    pads_end - output_padding."""
    rng = np.random.default_rng(k * 10 + s)
    w = rng.standard_normal((4, 5, k, k)).astype(np.float32)
    inits = [init("w", w)] + ([init("b", rng.standard_normal(5).astype(np.float32))]
                              if bias else [])
    proto = single_op_model("ConvTranspose", dict(kernel_shape=[k, k], strides=[s, s],
                                                  pads=pads, output_padding=opad),
                            [i.name for i in inits], inits, shape=(2, 4, 5, 6))
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert [type(la).__name__ for la in model.layers][1:] == \
        ["Conv2DTranspose"] + (["Cropping2D"] if crop else [])
    ct = model.layers[1]
    assert ct.get_config()["padding"] == padding
    np.testing.assert_array_equal(ct.get_weights()[0], w.transpose(2, 3, 1, 0))
    if crop:
        got = [list(p) for p in model.layers[2].get_config()["cropping"]]
        assert got == [[pads[0], max(pads[2] - opad[0], 0)],
                       [pads[1], max(pads[3] - opad[1], 0)]]
    x = rng_x((3, 4, 5, 6), 9)
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))


def test_conv_transpose_settings_fastcnn_lacks_are_refused():
    w = np.ones((4, 5, 3, 3), np.float32)
    for attrs, why in [({"dilations": [2, 2]}, "dilations"), ({"group": 2}, "group=1"),
                       ({"auto_pad": "SAME_UPPER"}, "auto_pad")]:
        proto = single_op_model("ConvTranspose", dict(kernel_shape=[3, 3], **attrs), ["w"],
                                [init("w", w if "group" not in attrs else w[:, :2])])
        with pytest.raises(ValueError, match="the_node.*ConvTranspose.*%s" % why):
            fastcnn.onnx.load_model(proto.SerializeToString())


def resize_model(attrs, scales=None, sizes=None, shape=(2, 3, 4, 5), opset=17):
    inputs, inits = ["x", ""], []
    if scales is not None:
        inputs.append("scales")
        inits.append(init("scales", np.asarray(scales, np.float32)))
    if sizes is not None:
        inputs += [""] if scales is None else []
        inputs.append("sizes")
        inits.append(init("sizes", np.asarray(sizes, np.int64)))
    node = helper.make_node("Resize", inputs, ["y"], name="the_node", **attrs)
    return make_model([node], [vinfo("x", ["N"] + list(shape[1:]))], [vinfo("y", None)],
                      inits, opset=opset)


@pytest.mark.parametrize("attrs,scales,sizes,interp,factor", [
    # torch nn.Upsample(mode="nearest")
    ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
      "nearest_mode": "floor"}, [1, 1, 2, 3], None, "nearest", (2, 3)),
    # fastcnn's own export of UpSampling2D / Keras' nearest resize
    ({"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
      "nearest_mode": "round_prefer_ceil"}, None, [2, 3, 12, 10], "nearest", (3, 2)),
    ({"mode": "nearest"}, [1, 1, 4, 4], None, "nearest", (4, 4)),
    # torch bilinear, align_corners=False
    ({"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
     [1, 1, 2, 2], None, "bilinear", (2, 2)),
    ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
     [1, 1, 3, 2], None, "bilinear", (3, 2)),
])
def test_resize_maps_to_upsampling(attrs, scales, sizes, interp, factor):
    proto = resize_model(attrs, scales, sizes)
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    up = model.layers[1]
    assert type(up).__name__ == "UpSampling2D"
    assert up.get_config()["interpolation"] == interp
    assert tuple(up.get_config()["size"]) == factor
    x = rng_x((2, 3, 4, 5), 21)
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))


@pytest.mark.parametrize("attrs,scales,why", [
    ({"mode": "linear", "coordinate_transformation_mode": "align_corners"}, [1, 1, 2, 2],
     "align_corners"),
    ({"mode": "cubic"}, [1, 1, 2, 2], "cubic"),
    ({"mode": "nearest"}, [1, 1, 1.5, 2], "integer up-scaling"),
    ({"mode": "nearest"}, [1, 1, 0.5, 0.5], "integer up-scaling"),
    ({"mode": "nearest"}, [1, 2, 2, 2], "integer up-scaling"),
    ({"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
      "nearest_mode": "floor"}, [1, 1, 2, 2], "floor"),
])
def test_resize_fastcnn_cannot_express_is_refused(attrs, scales, why):
    with pytest.raises(ValueError, match="the_node.*Resize.*%s" % why):
        fastcnn.onnx.load_model(resize_model(attrs, scales).SerializeToString())


def layer_norm_model(shape, axis, scale_shape, with_bias=True, nhwc=False, eps=1e-5):
    rng = np.random.default_rng(22)
    inits = [init("scale", rng.standard_normal(scale_shape).astype(np.float32))]
    if with_bias:
        inits.append(init("bias", rng.standard_normal(scale_shape).astype(np.float32)))
    nodes, src = [], "x"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]))
        nodes.append(helper.make_node("Transpose", ["t"], ["u"], perm=[0, 2, 3, 1]))
        src = "u"
    nodes.append(helper.make_node("LayerNormalization", [src] + [i.name for i in inits],
                                  ["y"], name="the_node", axis=axis, epsilon=eps))
    return make_model(nodes, [vinfo("x", ["N"] + list(shape[1:]))], [vinfo("y", None)],
                      inits)


@pytest.mark.parametrize("shape,axis,scale_shape,with_bias,nhwc", [
    ((2, 4, 5, 6), 1, (4, 5, 6), True, False),     # torch nn.LayerNorm([C, H, W])
    ((2, 4, 5, 6), -3, (4, 1, 6), False, False),   # broadcast Scale, no B
    ((2, 5, 6, 4), -1, (4,), True, True),          # Keras' channel LayerNorm (NHWC)
    ((2, 5, 6, 4), 1, (5, 6, 4), True, True),
    ((3, 7), -1, (7,), True, False),               # on features
])
def test_layer_normalization_maps(shape, axis, scale_shape, with_bias, nhwc):
    proto = layer_norm_model(shape, axis, scale_shape, with_bias, nhwc, eps=1e-3)
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert type(model.layers[-1]).__name__ == "LayerNormalization"
    x = rng_x(shape, 23) * 2 + 1
    feed = nchw_to_nhwc(x) if len(shape) == 4 and not nhwc else x
    got = model.predict_on_batch(feed)
    got = as_onnx_layout(got) if len(shape) == 4 and not nhwc else got
    assert_rel(got, run_ort(proto, x))


def test_erf_gelu_chains_become_one_activation():
    """torch's exact GELU (Div, Erf, Add, Mul, Mul) is one fastcnn gelu; a chain that only
    looks alike (another constant) is refused at its Div."""
    def chain(c):
        nodes = [helper.make_node("Div", ["x", "c"], ["d"], name="div"),
                 helper.make_node("Erf", ["d"], ["e"], name="erf"),
                 helper.make_node("Add", ["e", "one"], ["a"], name="add"),
                 helper.make_node("Mul", ["x", "a"], ["m"], name="mul"),
                 helper.make_node("Mul", ["m", "half"], ["y"], name="half")]
        return make_model(nodes, [vinfo("x", ["N", 6])], [vinfo("y", None)],
                          [init("c", np.float32(c)), init("one", np.float32(1)),
                           init("half", np.float32(0.5))])
    proto = chain(np.sqrt(2))
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert [type(la).__name__ for la in model.layers] == ["InputLayer", "Activation"]
    assert model.layers[1].get_config()["activation"] == "gelu"
    x = rng_x((3, 6), 24) * 3
    assert_rel(model.predict_on_batch(x), run_ort(proto, x))
    with pytest.raises(ValueError, match="'div'.*Div"):
        fastcnn.onnx.load_model(chain(2.0).SerializeToString())


def test_pool_padding_rules():
    # count_include_pad=1 with pads: zero padding + 'valid' average, exact
    proto = single_op_model("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2],
                                            "pads": [1, 1, 1, 1], "count_include_pad": 1})
    x = rng_x((2, 4, 6, 6), 8)
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))
    # Keras 'same' (extra pad at the end) with count_include_pad=0: fastcnn's 'same'
    proto = single_op_model("AveragePool", {"kernel_shape": [2, 2], "strides": [1, 1],
                                            "pads": [0, 0, 1, 1]})
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))
    # other pads without count_include_pad cannot be expressed
    proto = single_op_model("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2],
                                            "pads": [1, 1, 1, 1]})
    with pytest.raises(ValueError, match="AveragePool.*count_include_pad"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    # a padded max-pool on a tensor that may be negative: zero padding would be wrong
    proto = single_op_model("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2],
                                        "pads": [1, 1, 1, 1]})
    with pytest.raises(ValueError, match="MaxPool.*after a ReLU"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    # ceil_mode that changes the output size is refused; one without effect is not
    proto = single_op_model("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2],
                                        "ceil_mode": 1}, shape=(2, 4, 7, 7))
    with pytest.raises(ValueError, match="ceil_mode"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    proto = single_op_model("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2],
                                        "ceil_mode": 1})
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))


def test_unsupported_op_names_op_node_and_file(tmp_path):
    proto = single_op_model("LRN", {"size": 3}, name="my_lrn")
    path = tmp_path / "lrn.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ValueError) as err:
        fastcnn.onnx.load_model(str(path))
    msg = str(err.value)
    assert "LRN" in msg and "my_lrn" in msg and str(path) in msg


def test_unsupported_attributes_refused():
    proto = single_op_model("Pad", {"mode": "reflect"}, ["pads"],
                            [init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    with pytest.raises(ValueError, match="Pad.*reflect"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    proto = single_op_model("Softmax", {"axis": 2})
    with pytest.raises(ValueError, match="Softmax.*last"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    proto = single_op_model("Gemm", {"transA": 1}, ["w"], [init("w", np.ones((4, 4), np.float32))],
                            shape=(2, 4))
    with pytest.raises(ValueError, match="Gemm.*transA"):
        fastcnn.onnx.load_model(proto.SerializeToString())


def test_nchw_flatten_into_non_dense_refused():
    nodes = [helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Softmax", ["f"], ["y"], axis=1, name="sm")]
    proto = make_model(nodes, [vinfo("x", ["N", 4, 3, 3])], [vinfo("y", None)])
    with pytest.raises(ValueError, match="flattened NCHW"):
        fastcnn.onnx.load_model(proto.SerializeToString())


# ----------------------------------------------------------------------------- hostile
def conv_model_with_weight(tensor):
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], name="conv")
    return make_model([node], [vinfo("x", ["N", 4, 6, 6])], [vinfo("y", None)], [tensor])


def test_declared_dims_must_match_data():
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1000, 1000, 3, 3],
                    raw_data=b"\0" * 64)
    with pytest.raises(ValueError, match="declares shape .*holds 64 bytes"):
        fastcnn.onnx.load_model(conv_model_with_weight(t).SerializeToString())
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[8, 4, 3, 3],
                    float_data=[1.0] * 5)
    with pytest.raises(ValueError, match="holds 5 values"):
        fastcnn.onnx.load_model(conv_model_with_weight(t).SerializeToString())
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2 ** 20, 2 ** 20, 3, 3],
                    raw_data=b"\0" * 64)
    with pytest.raises(ValueError, match="limit"):
        fastcnn.onnx.load_model(conv_model_with_weight(t).SerializeToString())
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[-1, 4, 3, 3])
    with pytest.raises(ValueError, match="dims"):
        fastcnn.onnx.load_model(conv_model_with_weight(t).SerializeToString())


def test_external_data_refused():
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[8, 4, 3, 3])
    t.data_location = TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"
    with pytest.raises(ValueError, match="external"):
        fastcnn.onnx.load_model(conv_model_with_weight(t).SerializeToString())


def test_huge_declared_input_refused():
    proto = single_op_model("Relu", shape=(1, 3, 10 ** 5, 10 ** 5))
    with pytest.raises(ValueError, match="elements per sample"):
        fastcnn.onnx.load_model(proto.SerializeToString())


def test_truncated_and_garbled_files(tmp_path):
    with open(fixture("basic_block"), "rb") as f:
        data = f.read()
    for i, blob in enumerate([data[:len(data) // 2], data[:100], b"not an onnx file at all",
                              bytes(range(256)) * 4]):
        path = tmp_path / ("bad%d.onnx" % i)
        path.write_bytes(blob)
        with pytest.raises(ValueError, match="bad%d.onnx" % i):
            fastcnn.onnx.load_model(str(path))
    rng = np.random.default_rng(9)
    for i in range(30):  # bit flips: a clean error or a model, never a crash
        blob = bytearray(data)
        for pos in rng.integers(0, len(blob), 4):
            blob[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            fastcnn.onnx.load_model(bytes(blob))
        except ValueError:
            pass
    with pytest.raises(ValueError, match="cannot read"):
        fastcnn.onnx.load_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(TypeError):
        fastcnn.onnx.load_model(3)


# ----------------------------------------------------------------------------- live torch
def _fixture_module():
    spec = importlib.util.spec_from_file_location(
        "make_fixtures", os.path.join(FIXTURES, "make_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("keep_batchnorm", [True, False])
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_live_torch_export_matches_torch(name, keep_batchnorm, tmp_path):
    torch = pytest.importorskip("torch")
    mk = _fixture_module()
    model, shape = mk.build(name, seed=1)
    path = str(tmp_path / (name + ".onnx"))
    mk.export(model, shape, path, keep_batchnorm=keep_batchnorm)
    x = rng_x((2,) + tuple(shape[1:]), 10)
    with torch.no_grad():
        expect = model(torch.from_numpy(x)).numpy()
    imported = fastcnn.onnx.load_model(path)
    assert_rel(as_onnx_layout(imported.predict_on_batch(nchw_to_nhwc(x))), expect)


@pytest.mark.parametrize("name", NAMES)
def test_lean_inference_of_imported_models_is_bitwise_the_plan_forward(name):
    """The bound inference steps (zero padding, conv + folded batch norm, add + ReLU,
    concatenate, sigmoid, global pooling) give the bits of the plan's checked forward."""
    model = fastcnn.onnx.load_model(fixture(name))
    x = nchw_to_nhwc(rng_x(input_shape(fixture(name), 3), 11))

    def plan_forward(a):
        return np.array(model.predict_step(a, hook=lambda phase, step, fn, *args: fn(*args)))
    np.testing.assert_array_equal(model(x), plan_forward(x))
    np.testing.assert_array_equal(model.predict_on_batch(x), plan_forward(x))
    # the folded batch norm follows weights changed in place after binding
    for layer in model.layers:
        if isinstance(layer, fastcnn.layers.BatchNormalization):
            layer.moving_variance.value[...] *= 2.0
    np.testing.assert_array_equal(model(x), plan_forward(x))


def test_onnx_inference_benchmark_runs(tmp_path):
    import json
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "benchmarks"))
    import onnx_inference
    threads = fastcnn.get_num_threads()
    out = tmp_path / "onnx_inference.json"
    rows = onnx_inference.main(["--threads", "1", "--rounds", "1", "--seconds", "0.01",
                                "--min-calls", "1", "--warmup", "0", "--settle", "0",
                                "--batches", "3", "1", "--json", "--json-path", str(out)])
    assert fastcnn.get_num_threads() == threads
    assert {(r["model"], r["batch"]) for r in rows} == {
        (m, b) for m in ("tutorial_cnn", "small_resnet") for b in (3, 1)}
    assert {r["runner"] for r in rows} == {"fastcnn predict_on_batch", "fastcnn model(x)",
                                           "onnxruntime"}
    saved = json.loads(out.read_text())
    assert saved["benchmark"] == "onnx_inference" and len(saved["rows"]) == len(rows)
    assert saved["machine"]["threads"] == 1 and saved["machine"]["onnxruntime"]


@pytest.mark.parametrize("opset", [11, 17])
def test_torch_view_flatten_chain_permutes_gemm_rows(opset):
    """x.view(x.size(0), -1) on an NCHW tensor: Shape/Gather/Unsqueeze/Concat/Reshape,
    folded to a flatten; the Gemm after it gets its rows in NHWC order."""
    rng = np.random.default_rng(12)
    w = rng.standard_normal((7, 4 * 3 * 5)).astype(np.float32)
    unsq = (helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0], name="unsq") if opset < 13
            else helper.make_node("Unsqueeze", ["n", "zero"], ["n1"], name="unsq"))
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "idx"], ["n"], axis=0, name="gather"),
             unsq,
             helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0, name="cat"),
             helper.make_node("Reshape", ["r", "target"], ["f"], name="view"),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1, alpha=0.5, name="fc")]
    inits = [init("idx", np.array(0, np.int64)), init("minus1", np.array([-1], np.int64)),
             init("w", w)] + ([init("zero", np.array([0], np.int64))] if opset >= 13 else [])
    proto = make_model(nodes, [vinfo("x", ["N", 4, 3, 5])], [vinfo("y", None)], inits,
                       opset=opset)
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    x = rng_x((2, 4, 3, 5), 13)
    assert_rel(model.predict_on_batch(nchw_to_nhwc(x)), run_ort(proto, x))
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "ReLU", "Flatten", "Dense"]


def test_graph_errors_name_the_node():
    # an input no node produces (a cycle or a wrong order)
    nodes = [helper.make_node("Relu", ["later"], ["y"], name="early"),
             helper.make_node("Relu", ["x"], ["later"], name="late")]
    proto = make_model(nodes, [vinfo("x", ["N", 4])], [vinfo("y", None)])
    with pytest.raises(ValueError, match="'early'.*not produced"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    # a malformed node: Conv without its weight input
    proto = make_model([helper.make_node("Conv", ["x"], ["y"], name="bad_conv")],
                       [vinfo("x", ["N", 4, 6, 6])], [vinfo("y", None)])
    with pytest.raises(ValueError, match="bad_conv.*Conv"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    # a kernel larger than its input
    proto = single_op_model("Conv", {"kernel_shape": [9, 9]}, ["w"],
                            [init("w", np.zeros((2, 4, 9, 9), np.float32))], name="big")
    with pytest.raises(ValueError, match="'big'"):
        fastcnn.onnx.load_model(proto.SerializeToString())
    # another operator domain
    node = helper.make_node("Relu", ["x"], ["y"], name="custom", domain="com.example")
    proto = make_model([node], [vinfo("x", ["N", 4])], [vinfo("y", None)])
    with pytest.raises(ValueError, match="custom.*domain"):
        fastcnn.onnx.load_model(proto.SerializeToString())


@pytest.mark.parametrize("op", ["Sub", "Mul", "Max", "Min", "Mean", "Sum"])
def test_elementwise_merges(op):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
             helper.make_node(op, ["r", "s"], ["y"], name="merge")]
    proto = make_model(nodes, [vinfo("x", ["N", 3, 4, 5])], [vinfo("y", None)])
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    x = rng_x((2, 3, 4, 5), 14)
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))


def test_static_batch_reshape_and_unnamed_nodes():
    # an export with a fixed batch of 1 writes Reshape(x, [1, -1]): still a flatten
    w = np.random.default_rng(15).standard_normal((5, 24)).astype(np.float32)
    nodes = [helper.make_node("Reshape", ["x", "t"], ["f"]),
             helper.make_node("Gemm", ["f", "w"], ["y"], transB=1)]
    proto = make_model(nodes, [vinfo("x", [1, 2, 3, 4])], [vinfo("y", None)],
                       [init("t", np.array([1, -1], np.int64)), init("w", w)])
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    x = rng_x((1, 2, 3, 4), 16)
    assert_rel(model.predict_on_batch(nchw_to_nhwc(x)), run_ort(proto, x))
    assert model.predict_on_batch(nchw_to_nhwc(rng_x((3, 2, 3, 4), 17))).shape == (3, 5)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Erf", ["r"], ["y"])]
    proto = make_model(nodes, [vinfo("x", ["N", 4])], [vinfo("y", None)])
    with pytest.raises(ValueError, match="#1 \\(unnamed\\).*Erf"):
        fastcnn.onnx.load_model(proto.SerializeToString())


def test_fastcnn_onnx_reachable_from_the_package():
    import subprocess
    import sys
    code = ("import fastcnn; m = fastcnn.onnx.load_model(%r); print(type(m).__name__)"
            % fixture("basic_block"))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("Functional", "Model")


# ----------------------------------------------------------------------------- round trip
def _new_layers_model():
    """Every round-1 layer whose export the importer reads back (NHWC input)."""
    L = fastcnn.layers
    inputs = fastcnn.Input((9, 8, 3))
    x = L.Conv2D(8, 3, padding="same", dilation_rate=2)(inputs)
    x = L.PReLU(shared_axes=[1, 2])(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = L.ReLU(max_value=6.0)(x)
    x = L.Conv2D(8, 3, padding="same", groups=4, activation="gelu")(x)
    x = L.SeparableConv2D(6, 3, padding="same", activation="relu")(x)
    y = L.Conv2DTranspose(6, 3, strides=2, padding="same")(x)
    y = L.LeakyReLU(0.1)(y)
    y = L.Conv2DTranspose(4, 3, strides=2, output_padding=1)(y)
    y = L.ELU(0.5)(y)
    z = L.UpSampling2D((2, 2))(x)
    z = L.UpSampling2D(2, interpolation="bilinear")(z)
    z = L.Conv2D(4, 3, activation="hard_silu")(z)
    z = L.Cropping2D(((0, 1), (0, 1)))(L.ZeroPadding2D(((0, 1), (0, 1)))(z))
    x = L.Activation("softsign")(L.Add()([L.Cropping2D(((2, 2), (2, 2)))(y), z]))
    x = L.LayerNormalization(epsilon=1e-3)(x)
    x = L.GlobalMaxPooling2D()(x)
    out = L.Dense(5, activation="softmax")(x)
    return fastcnn.Model(inputs, out, name="new_layers")


def test_round_trip_export_import_new_layers(tmp_path):
    fastcnn.utils.set_random_seed(0)
    model = _new_layers_model()
    rng = np.random.default_rng(30)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.4
                       for w in model.get_weights()])
    path = str(tmp_path / "new_layers.onnx")
    model.export(path, format="onnx")
    back = fastcnn.onnx.load_model(path)
    assert back.input_shape == (None, 9, 8, 3)  # the exported NHWC input, as it is
    kinds = {type(la).__name__ for la in back.layers}
    assert {"DepthwiseConv2D", "Conv2DTranspose", "UpSampling2D", "PReLU", "LeakyReLU", "ELU",
            "LayerNormalization", "GlobalMaxPooling2D"} <= kinds
    gelu = [la for la in back.layers if type(la).__name__ == "Activation"
            and la.get_config()["activation"] == "gelu"]
    assert len(gelu) == 1  # the exporter's Erf chain is read back as one gelu
    for n in (1, 7):
        x = rng.standard_normal((n, 9, 8, 3)).astype(np.float32)
        want = model.predict(x, verbose=0)
        assert_rel(back.predict_on_batch(x), want)
        assert_rel(run_ort(path, x), want)


def test_slice_of_spatial_axes_is_a_cropping():
    def sliced(starts, ends, axes, steps=None):
        names = ["starts", "ends", "axes"] + (["steps"] if steps is not None else [])
        vals = [starts, ends, axes] + ([steps] if steps is not None else [])
        return single_op_model("Slice", {}, names,
                               [init(n, np.asarray(v, np.int64)) for n, v in zip(names, vals)],
                               shape=(2, 4, 6, 7))
    x = rng_x((2, 4, 6, 7), 31)
    for args in [([1, 2], [-1, 100], [2, 3]), ([0, 1, 0], [4, 5, 2 ** 62], [1, 2, 3]),
                 ([-5], [-2], [-1], [1])]:
        proto = sliced(*args)
        model = fastcnn.onnx.load_model(proto.SerializeToString())
        assert [type(la).__name__ for la in model.layers] == ["InputLayer", "Cropping2D"]
        assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))
    for args, why in [(([0], [2], [1]), "spatial"), (([0], [6], [2], [2]), "step"),
                      (([3], [2], [2]), "empty")]:
        with pytest.raises(ValueError, match="the_node.*Slice.*%s" % why):
            fastcnn.onnx.load_model(sliced(*args).SerializeToString())


def test_x_times_sigmoid_is_one_silu():
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
             helper.make_node("Mul", ["s", "x"], ["y"], name="mul")]
    proto = make_model(nodes, [vinfo("x", ["N", 3, 4, 5])], [vinfo("y", None)])
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert [la.get_config().get("activation") for la in model.layers[1:]] == ["silu"]
    x = rng_x((2, 3, 4, 5), 32) * 3
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))
    # a sigmoid used elsewhere as well stays a sigmoid and a Multiply
    nodes.append(helper.make_node("Add", ["y", "s"], ["z"], name="add"))
    proto = make_model(nodes, [vinfo("x", ["N", 3, 4, 5])], [vinfo("z", None)])
    model = fastcnn.onnx.load_model(proto.SerializeToString())
    assert [type(la).__name__ for la in model.layers[1:]] == ["Activation", "Multiply", "Add"]
    assert_rel(as_onnx_layout(model.predict_on_batch(nchw_to_nhwc(x))), run_ort(proto, x))


def test_damaged_fields_found_by_bit_flips_give_value_errors():
    """Each case is what one flipped bit in an exported file did before it raised cleanly."""
    w = init("w", np.ones((8, 4, 3, 3), np.float32))
    cases = [
        # a stride or dilation of 0 (was a ZeroDivisionError)
        (make_model([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3],
                                      strides=[0, 1], pads=[1, 1, 1, 1], name="conv")],
                    [vinfo("x", ["N", 4, 6, 6])], [vinfo("y", None)], [w]), "strides"),
        # an int attribute turned into a string (was int('') without the file's name)
        (make_model([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3],
                                      group="", name="conv")],
                    [vinfo("x", ["N", 4, 6, 6])], [vinfo("y", None)], [w]), "conv"),
        # a Transpose whose perm lost its type (was iterating None)
        (make_model([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
                     helper.make_node("Relu", ["t"], ["y"])],
                    [vinfo("x", ["N", 6, 6, 4])], [vinfo("y", None)]), None),
        # no graph outputs (was an IndexError)
        (make_model([helper.make_node("Relu", ["x"], ["y"])],
                    [vinfo("x", ["N", 4, 6, 6])], []), "no outputs"),
    ]
    transpose = cases[2][0].graph.node[0].attribute[0]
    transpose.type = onnx.AttributeProto.STRING  # the ints stay, the declared kind is wrong
    for proto, match in cases:
        data = proto.SerializeToString()
        with pytest.raises(ValueError, match=match):
            fastcnn.onnx.load_model(data)
    # a graph name that is not valid UTF-8 (protobuf hands it over as bytes)
    proto = cases[0][0]
    proto.graph.node[0].attribute[-1].ints[:] = [1, 1]  # make the conv valid again
    proto.graph.name = "g" * 9
    data = proto.SerializeToString().replace(b"g" * 9, b"\xff" * 9)
    model = fastcnn.onnx.load_model(data)
    assert model.name == "onnx_model"
