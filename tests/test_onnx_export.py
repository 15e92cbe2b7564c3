"""ONNX export: onnxruntime gives fastcnn's predictions for every exportable layer and for
whole models (tutorial, ResNet-style, nested, BN/Dropout), the checker passes, the opset is
recorded, and what cannot be exported fails clearly. Skipped without onnx/onnxruntime."""
import os

import numpy as np
import pytest

import fastcnn
from conftest import assert_close
from fastcnn import layers as L

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fastcnn.onnx import export as onnx_export  # noqa: E402  (needs onnx)


@pytest.fixture(autouse=True)
def _seed():
    fastcnn.utils.clear_session()
    fastcnn.utils.set_random_seed(0)


def randomize(model, seed=0):
    """Random weights everywhere (positive variances), so nothing is a no-op by chance."""
    r = np.random.default_rng(seed)
    new = []
    for v in model.weights:
        a = r.standard_normal(v.shape).astype(np.float32) * 0.5
        if v.name == "moving_variance":
            a = np.abs(a) + 0.5
        new.append(a)
    model.set_weights(new)


def run_onnx(path, xs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = xs if isinstance(xs, list) else [xs]
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), xs)}
    return sess.run(None, feeds)


def check_parity(model, tmp_path, shape=None, batches=(1, 7), seed=0, opset=None,
                 draw=None, **export):
    """Export, check, and compare onnxruntime with model.predict at each batch size
    (inputs ``draw(rng, shape)``, standard normal unless given)."""
    path = tmp_path / ("%s.onnx" % model.name)
    kwargs = dict(export)
    if opset is not None:
        kwargs["opset_version"] = opset
    model.export(str(path), format="onnx", **kwargs)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == \
        [opset or onnx_export.DEFAULT_OPSET]
    r = np.random.default_rng(seed)
    ins = model.inputs
    for n in batches:
        draw = draw or (lambda r, shp: r.standard_normal(shp))
        xs = [np.asarray(draw(r, (n,) + tuple(shape or t.shape[1:])), np.float32)
              for t in ins]
        if len(model.inputs) == 1 and len(model.outputs) == 1:
            want = model.predict(xs[0], verbose=0)
        else:  # predict takes one input and one output; a call runs any graph
            want = model(xs if len(xs) > 1 else xs[0])
        got = run_onnx(path, xs)
        want = want if isinstance(want, list) else [want]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, rtol=1e-5, atol=1e-5, what=model.name)
    return proto


def ops_of(proto):
    return [n.op_type for n in proto.graph.node]


def seq(layer, shape, name="m", before=(), after=()):
    m = fastcnn.Sequential([fastcnn.Input(shape)] + list(before) + [layer] + list(after),
                           name=name)
    randomize(m)
    return m


# ============================================================================ whole models
def test_tutorial_model(tmp_path):
    m = fastcnn.zoo.tutorial_model()
    randomize(m)
    proto = check_parity(m, tmp_path)
    # one Transpose in (NHWC -> NCHW), one back before Flatten; none between the convs
    assert ops_of(proto).count("Transpose") == 2
    inp, out = proto.graph.input[0], proto.graph.output[0]
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [32, 32, 3]
    assert out.name == m.layers[-1].name
    # weights are initializers named after the layers, conv kernels OIHW
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    conv = m.layers[0]
    np.testing.assert_array_equal(inits[conv.name + "/kernel"],
                                  np.transpose(conv.get_weights()[0], (3, 2, 0, 1)))
    assert proto.producer_name == "fastcnn"


def residual_model():
    inputs = fastcnn.Input(shape=(12, 11, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    y = L.Conv2D(8, 3, padding="same")(x)
    y = L.BatchNormalization()(y)
    x = L.Activation("relu")(L.add([x, y]))
    s = L.Conv2D(16, 1, strides=2)(x)
    z = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Concatenate()([L.Maximum()([s, z]), L.Subtract()([s, z])])
    x = L.ZeroPadding2D(((1, 0), (0, 1)))(x)
    x = L.Cropping2D(((0, 1), (1, 0)))(x)
    x = L.MaxPooling2D()(x)
    x = L.GlobalAveragePooling2D()(x)
    return fastcnn.Model(inputs, L.Dense(5)(x), name="residual")


def test_resnet_style_functional(tmp_path):
    m = residual_model()
    randomize(m)
    proto = check_parity(m, tmp_path)
    assert ops_of(proto).count("Transpose") == 1  # only the input's: GAP leaves (N, C)


def test_zoo_resnet(tmp_path):
    m = fastcnn.zoo.resnet_v1(depth=8, input_shape=(16, 16, 3), width=8)
    randomize(m)
    check_parity(m, tmp_path, batches=(1, 3))


def test_nested_models(tmp_path):
    augment = fastcnn.Sequential([L.RandomFlip("horizontal"), L.RandomTranslation(0.1, 0.1),
                                  L.Rescaling(1 / 255.0)], name="augment")
    inner_in = fastcnn.Input((10, 10, 3))
    h = L.Conv2D(6, 3, activation="relu")(inner_in)
    backbone = fastcnn.Model(inner_in, L.MaxPooling2D()(h), name="backbone")
    inputs = fastcnn.Input((10, 10, 3))
    x = backbone(augment(inputs))
    x = L.Flatten()(x)
    m = fastcnn.Model(inputs, L.Dense(4, activation="softmax")(x), name="outer")
    randomize(m)
    proto = check_parity(m, tmp_path)
    names = {n.name for n in proto.graph.node}
    assert any(backbone.layers[1].name in n for n in names)  # inlined, named after the layer


def test_shared_layer_weights_once(tmp_path):
    inputs = fastcnn.Input((6,))
    d = L.Dense(6, activation="relu")
    out = L.Dense(2)(d(d(inputs)))
    m = fastcnn.Model(inputs, out, name="shared")
    randomize(m)
    proto = check_parity(m, tmp_path)
    assert sum(i.name.startswith(d.name + "/") for i in proto.graph.initializer) == 2


def test_each_layer_keeps_its_own_initializers(tmp_path):
    m = fastcnn.Sequential([fastcnn.Input((4,)), L.Dense(4, name="d1"), L.Dense(4, name="d2")])
    m.set_weights([np.eye(4, dtype=np.float32), np.zeros(4, np.float32)] * 2)
    proto = check_parity(m, tmp_path)
    assert sorted(i.name for i in proto.graph.initializer) == \
        ["d1/bias", "d1/kernel", "d2/bias", "d2/kernel"]


def test_bn_dropout_model(tmp_path):
    m = fastcnn.Sequential([
        fastcnn.Input((9, 9, 4)), L.Conv2D(6, 3, padding="same", use_bias=False),
        L.BatchNormalization(), L.ReLU(), L.Dropout(0.5), L.AveragePooling2D(padding="same"),
        L.Flatten(), L.Dense(8), L.BatchNormalization(center=False), L.Dropout(0.3),
        L.Dense(3, activation="sigmoid")], name="bn_dropout")
    randomize(m)
    proto = check_parity(m, tmp_path)
    assert "Dropout" not in ops_of(proto) and ops_of(proto).count("BatchNormalization") == 2


def test_multi_input_output(tmp_path):
    a, b = fastcnn.Input((5, 5, 2), name="a"), fastcnn.Input((5, 5, 2), name="b")
    c = L.Conv2D(3, 3, padding="same")(a)
    s = L.Add(name="sum")([c, L.Conv2D(3, 1)(b)])
    m = fastcnn.Model([a, b], [L.Flatten(name="flat")(s), L.Multiply(name="prod")([c, s])],
                      name="two")
    randomize(m)
    proto = check_parity(m, tmp_path)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["flat", "prod"]


# ============================================================================ every layer
def _activations():
    """Every activation name both fastcnn and the ONNX table know."""
    out = []
    for name in sorted(onnx_export.ACTIVATIONS):
        try:
            L.Activation(name)
        except ValueError:
            continue
        out.append(name)
    return out


IMG = (7, 9, 5)
SEQ = (11, 5)
CONV = lambda: L.Conv2D(6, 3, padding="same")  # noqa: E731  (puts the layer in NCHW)

LAYER_CASES = {
    "InputLayer": [lambda: _input_only()],
    "Dense": [lambda: seq(L.Dense(4), (6,)),
              lambda: seq(L.Dense(4, use_bias=False, activation="relu"), (6,)),
              lambda: seq(L.Dense(3, activation="softmax"), (4, 6)),
              lambda: seq(L.Dense(3, activation="sigmoid"), IMG)],
    "Conv2D": [lambda: seq(L.Conv2D(6, 3), IMG),
               lambda: seq(L.Conv2D(4, (2, 3), strides=2, padding="same", activation="relu"),
                           IMG),
               lambda: seq(L.Conv2D(3, 4, strides=(2, 3), padding="same", use_bias=False), IMG),
               lambda: seq(L.Conv2D(4, 3, activation="softmax"), IMG),
               lambda: seq(L.Conv2D(4, 1, activation="sigmoid"), IMG)],
    "MaxPooling2D": [lambda: seq(L.MaxPooling2D(), IMG),
                     lambda: seq(L.MaxPooling2D(3, 2, padding="same"), IMG),
                     lambda: seq(L.MaxPooling2D((2, 3), (1, 2)), IMG, before=[CONV()])],
    "AveragePooling2D": [lambda: seq(L.AveragePooling2D(), IMG),
                         lambda: seq(L.AveragePooling2D(3, 2, padding="same"), IMG),
                         lambda: seq(L.AveragePooling2D((3, 2), padding="same"), IMG)],
    "GlobalAveragePooling2D": [lambda: seq(L.GlobalAveragePooling2D(), IMG),
                               lambda: seq(L.GlobalAveragePooling2D(keepdims=True), IMG)],
    "BatchNormalization": [lambda: seq(L.BatchNormalization(), IMG),
                           lambda: seq(L.BatchNormalization(epsilon=0.1, scale=False), (5,)),
                           lambda: seq(L.BatchNormalization(), (4, 5))],
    "Dropout": [lambda: seq(L.Dropout(0.5), IMG)],
    "Identity": [lambda: seq(L.Identity(), IMG)],
    "Activation": [(lambda n=n: seq(L.Activation(n), IMG, before=[CONV()]))
                   for n in _activations()],
    "ReLU": [lambda: seq(L.ReLU(), IMG)],
    "Flatten": [lambda: seq(L.Flatten(), IMG, before=[CONV()])],
    "Reshape": [lambda: seq(L.Reshape((-1, 3)), IMG, before=[CONV()]),
                lambda: seq(L.Reshape((3, 5, 2)), (30,))],
    "ZeroPadding2D": [lambda: seq(L.ZeroPadding2D(((1, 2), (0, 3))), IMG),
                      lambda: seq(L.ZeroPadding2D(2), IMG, before=[CONV()])],
    "Cropping2D": [lambda: seq(L.Cropping2D(((1, 2), (0, 3))), IMG),
                   lambda: seq(L.Cropping2D(((0, 1), (2, 0))), IMG, before=[CONV()])],
    "Rescaling": [lambda: seq(L.Rescaling(1 / 255.0), IMG),
                  lambda: seq(L.Rescaling(2.0, offset=-1.0), IMG)],
    "Resizing": [lambda: seq(L.Resizing(12, 5), IMG),
                 lambda: seq(L.Resizing(4, 4, interpolation="nearest"), IMG),
                 lambda: seq(L.Resizing(11, 13, interpolation="nearest"), IMG),
                 lambda: seq(L.Resizing(5, 5, crop_to_aspect_ratio=True), IMG),
                 lambda: seq(L.Resizing(6, 4, pad_to_aspect_ratio=True, fill_value=0.5), IMG),
                 lambda: seq(L.Resizing(7, 9), IMG)],
    "CenterCrop": [lambda: seq(L.CenterCrop(4, 6), IMG),
                   lambda: seq(L.CenterCrop(8, 4), IMG)],
    "RandomCrop": [lambda: seq(L.RandomCrop(5, 5), IMG)],
    "RandomFlip": [lambda: seq(L.RandomFlip(), IMG)],
    "RandomTranslation": [lambda: seq(L.RandomTranslation(0.2, 0.2), IMG)],
    "RandomRotation": [lambda: seq(L.RandomRotation(0.2), IMG)],
    "RandomZoom": [lambda: seq(L.RandomZoom(0.2), IMG)],
    "RandomContrast": [lambda: seq(L.RandomContrast(0.5), IMG)],
    "RandomBrightness": [lambda: seq(L.RandomBrightness(0.5), IMG)],
    # round-1 layers: fastcnn's own classes through the same exporters as Keras' below
    "LeakyReLU": [lambda: seq(L.LeakyReLU(0.1), IMG),
                  lambda: seq(L.LeakyReLU(), IMG, before=[CONV()])],
    "PReLU": [lambda: seq(L.PReLU(), IMG),
              lambda: seq(L.PReLU(shared_axes=[1, 2]), IMG, before=[CONV()]),
              lambda: seq(L.PReLU(), (6,))],
    "ELU": [lambda: seq(L.ELU(0.7), IMG), lambda: seq(L.ELU(), IMG, before=[CONV()])],
    "Softmax": [lambda: seq(L.Softmax(), IMG),
                lambda: seq(L.Softmax(axis=1), IMG, before=[CONV()]),
                lambda: seq(L.Softmax(axis=-1), IMG, before=[CONV()])],
    # fastcnn's Conv1D has no dilation/groups (Keras' are checked in test_exporter_matches_keras)
    "Conv1D": [lambda: seq(L.Conv1D(4, 3, padding="causal"), SEQ),
               lambda: seq(L.Conv1D(4, 4, strides=2, padding="same", activation="relu"), SEQ),
               lambda: seq(L.Conv1D(6, 3, use_bias=False), SEQ, before=[L.Conv1D(4, 1)])],
    "DepthwiseConv2D": [lambda: seq(L.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                                      activation="relu"), IMG),
                        lambda: seq(L.DepthwiseConv2D((3, 2), strides=2), IMG),
                        lambda: seq(L.DepthwiseConv2D(3, dilation_rate=2, use_bias=False,
                                                      padding="same"), IMG)],
    "SeparableConv2D": [lambda: seq(L.SeparableConv2D(6, 3, depth_multiplier=2,
                                                      padding="same"), IMG),
                        lambda: seq(L.SeparableConv2D(4, 3, strides=2, activation="sigmoid"),
                                    IMG)],
    "Conv2DTranspose": [lambda: seq(L.Conv2DTranspose(4, 3, strides=2, padding="same"), IMG),
                        lambda: seq(L.Conv2DTranspose(3, 3, strides=2), IMG),
                        lambda: seq(L.Conv2DTranspose(4, 2, strides=3, padding="same"), IMG),
                        lambda: seq(L.Conv2DTranspose(4, (3, 4), strides=(2, 1),
                                                      activation="relu"), IMG),
                        lambda: seq(L.Conv2DTranspose(3, 3, strides=2, output_padding=1), IMG),
                        lambda: seq(L.Conv2DTranspose(3, 3, strides=2, padding="same",
                                                      output_padding=0), IMG),
                        lambda: seq(L.Conv2DTranspose(3, 4, strides=3, padding="same",
                                                      output_padding=(2, 1)), IMG),
                        lambda: seq(L.Conv2DTranspose(3, 2, strides=3, padding="valid",
                                                      output_padding=(0, 2)), IMG)],
    "MaxPooling1D": [lambda: seq(L.MaxPooling1D(2), SEQ),
                     lambda: seq(L.MaxPooling1D(3, 2, padding="same"), SEQ)],
    "AveragePooling1D": [lambda: seq(L.AveragePooling1D(2), SEQ),
                         lambda: seq(L.AveragePooling1D(3, 2, padding="same"), SEQ)],
    "GlobalAveragePooling1D": [lambda: seq(L.GlobalAveragePooling1D(), SEQ),
                               lambda: seq(L.GlobalAveragePooling1D(keepdims=True), SEQ)],
    "GlobalMaxPooling2D": [lambda: seq(L.GlobalMaxPooling2D(), IMG),
                           lambda: seq(L.GlobalMaxPooling2D(keepdims=True), IMG,
                                       before=[CONV()])],
    "UpSampling2D": [lambda: seq(L.UpSampling2D(), IMG),
                     lambda: seq(L.UpSampling2D((2, 3)), IMG, before=[CONV()]),
                     lambda: seq(L.UpSampling2D((2, 3), interpolation="bilinear"), IMG),
                     lambda: seq(L.UpSampling2D(3, interpolation="bilinear"), IMG,
                                 before=[CONV()])],
    "LayerNormalization": [lambda: seq(L.LayerNormalization(), IMG),
                           lambda: seq(L.LayerNormalization(axis=[1, 2, 3]), IMG,
                                       before=[CONV()]),
                           lambda: seq(L.LayerNormalization(center=False, epsilon=0.1), (4, 6)),
                           lambda: seq(L.LayerNormalization(scale=False), (6,))],
    "GroupNormalization": [lambda: seq(L.GroupNormalization(groups=2), (7, 9, 6)),
                           lambda: seq(L.GroupNormalization(groups=3, scale=False), (5, 6)),
                           lambda: seq(L.GroupNormalization(groups=6), (7, 9, 6),
                                       before=[L.Conv2D(6, 1)])],
    "SpatialDropout2D": [lambda: seq(L.SpatialDropout2D(0.5), IMG)],
    "Permute": [lambda: seq(L.Permute((2, 1)), (4, 5)),
                lambda: seq(L.Permute((3, 1, 2)), IMG, before=[CONV()]),
                lambda: seq(L.Permute((2, 1, 3)), IMG, after=[L.Conv2D(3, 2)])],
    "RepeatVector": [lambda: seq(L.RepeatVector(3), (5,))],
    "Embedding": [lambda: seq(L.Embedding(10, 4), (6,)),
                  lambda: seq(L.Embedding(10, 3), (2, 3), after=[L.Flatten(), L.Dense(2)])],
}
LAYER_CASES["ReLU"] += [lambda: seq(L.ReLU(max_value=6.0), IMG, before=[CONV()]),
                        lambda: seq(L.ReLU(max_value=0.5), IMG),
                        lambda: seq(L.ReLU(negative_slope=0.1, threshold=0.5), IMG),
                        lambda: seq(L.ReLU(max_value=0.3, negative_slope=0.2, threshold=0.1),
                                    IMG),
                        lambda: seq(L.ReLU(threshold=0.25), IMG),
                        lambda: seq(L.ReLU(negative_slope=0.2), IMG)]
LAYER_CASES["Dense"] += [(lambda n=n: seq(L.Dense(5, activation=n), (4, 6)))
                         for n in _activations()]
LAYER_CASES["Conv2D"] += [(lambda n=n: seq(L.Conv2D(4, 3, padding="same", activation=n), IMG))
                          for n in _activations()]
LAYER_CASES["Conv2D"] += [lambda: seq(L.Conv2D(4, 3, dilation_rate=2, padding="same"), IMG),
                          lambda: seq(L.Conv2D(4, 3, dilation_rate=(1, 2)), IMG),
                          lambda: seq(L.Conv2D(6, 3, strides=2, groups=3), (7, 9, 6)),
                          lambda: seq(L.Conv2D(4, 3, groups=2, padding="same",
                                               activation="relu"), (7, 9, 6))]


def _merge_model(cls, layout):
    a, b = fastcnn.Input(IMG), fastcnn.Input(IMG)
    xa = L.Conv2D(5, 3, padding="same")(a) if layout in ("nchw", "mixed") else a
    xb = L.Conv2D(5, 1)(b) if layout == "nchw" else b
    m = fastcnn.Model([a, b], cls()([xa, xb]), name="merge_%s_%s" % (cls.__name__, layout))
    randomize(m)
    return m


for _cls in (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum, L.Concatenate):
    LAYER_CASES[_cls.__name__] = [(lambda c=_cls, lay=lay: _merge_model(c, lay))
                                  for lay in ("nhwc", "nchw", "mixed")]
LAYER_CASES["Concatenate"].append(lambda: _concat_axis(1))
LAYER_CASES["Average"].append(lambda: _three_way(L.Average))


def _input_only():
    a = fastcnn.Input(IMG)
    return fastcnn.Model(a, L.Identity()(a), name="input_only")


def _concat_axis(axis):
    a = fastcnn.Input(IMG)
    c = L.Conv2D(5, 3, padding="same")(a)
    m = fastcnn.Model(a, L.Concatenate(axis=axis)([c, a]), name="concat_axis")
    randomize(m)
    return m


def _three_way(cls):
    a = fastcnn.Input(IMG)
    m = fastcnn.Model(a, cls()([a, L.Conv2D(5, 1)(a), L.ReLU()(a)]), name="three")
    randomize(m)
    return m


# layers whose inputs are not any real number: Embedding takes ids (floats, as Keras feeds)
DRAW = {"Embedding": lambda r, shape: r.integers(0, 10, shape)}

CASES = [pytest.param(name, i, id="%s-%d" % (name, i))
         for name, builders in sorted(LAYER_CASES.items()) for i in range(len(builders))]


@pytest.mark.parametrize("name,i", CASES)
def test_layer_parity(name, i, tmp_path):
    model = LAYER_CASES[name][i]()
    classes = {type(l).__name__ for l in model.leaf_layers() + model.layers}
    assert name in classes
    check_parity(model, tmp_path, draw=DRAW.get(name))


def test_every_exporter_has_a_parity_case():
    exportable = {k for k in onnx_export.EXPORTERS if isinstance(k, str)
                  and isinstance(getattr(L, k, None), type)}
    assert exportable - set(LAYER_CASES) == set()


def test_every_layer_class_is_exportable():
    """Every layer class fastcnn exports (fastcnn.layers.__all__) has an exporter: a new
    layer needs one table entry in fastcnn/onnx/export.py (and a case above)."""
    missing = []
    for name in L.__all__:
        cls = getattr(L, name)
        if (isinstance(cls, type) and issubclass(cls, L.Layer) and cls is not L.Layer
                and cls.__name__ == name and cls.__name__ not in onnx_export.EXPORTERS):
            missing.append(name)
    assert missing == []


def test_gelu_opsets(tmp_path):
    m = seq(L.Activation("gelu"), IMG)
    assert "Erf" in ops_of(check_parity(m, tmp_path))
    assert "Gelu" in ops_of(check_parity(m, tmp_path, opset=20))


def test_unsupported_setting_names_the_layer(tmp_path):
    m = seq(L.Resizing(3, 4, antialias=True, name="shrink"), IMG)
    with pytest.raises(ValueError, match="'shrink' \\(Resizing\\).*antialias"):
        m.export(str(tmp_path / "a.onnx"), format="onnx")
    check_parity(seq(L.Resizing(9, 11, antialias=True), IMG), tmp_path)  # upsampling: fine


# ============================================================================ options, errors
def test_export_model_function_and_opset(tmp_path):
    m = seq(L.Dense(3), (4,))
    proto = fastcnn.onnx.export_model(m, tmp_path / "f.onnx", opset=18)
    assert proto.opset_import[0].version == 18
    assert onnx.load(str(tmp_path / "f.onnx")).opset_import[0].version == 18
    with pytest.raises(ValueError, match="opset"):
        fastcnn.onnx.export_model(m, tmp_path / "g.onnx", opset=13)
    with pytest.raises(ValueError, match="opset"):
        m.export(str(tmp_path / "g.onnx"), format="onnx", opset_version="17")
    with pytest.raises(ValueError, match="not both"):
        m.export(str(tmp_path / "g.onnx"), format="onnx", opset_version=17, opset=18)
    m.export(str(tmp_path / "h.onnx"), format="onnx", opset=19)
    assert onnx.load(str(tmp_path / "h.onnx")).opset_import[0].version == 19
    assert not (tmp_path / "g.onnx").exists()


def test_input_signature_fixes_the_batch(tmp_path):
    m = residual_model()
    randomize(m)
    proto = check_parity(m, tmp_path, batches=(7,), input_signature=[(7, 12, 11, 3)])
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [7, 12, 11, 3]
    with pytest.raises(ValueError, match="input_signature"):
        m.export(str(tmp_path / "bad.onnx"), format="onnx", input_signature=[(None, 9, 7, 4)])
    with pytest.raises(ValueError, match="input_signature"):
        m.export(str(tmp_path / "bad.onnx"), format="onnx", input_signature=[(0, 12, 11, 3)])


def test_other_formats_raise(tmp_path):
    m = seq(L.Dense(3), (4,))
    for fmt in ("tf_saved_model", "litert", "torch", "ONNX"):
        with pytest.raises(ValueError, match="onnx"):
            m.export(str(tmp_path / "x"), format=fmt)
    with pytest.raises(ValueError, match="tf_saved_model"):
        m.export(str(tmp_path / "x"))  # Keras' default format
    with pytest.raises(ValueError, match="jax2tf_kwargs"):
        m.export(str(tmp_path / "x.onnx"), format="onnx", jax2tf_kwargs={})


class Doubler(L.Layer):
    def _forward(self, x, ws, training, return_logits):
        return x * 2


def test_unexportable_layer_names_it(tmp_path):
    m = fastcnn.Sequential([fastcnn.Input((4,)), L.Dense(3), Doubler(name="twice")])
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match=r"'twice' of class Doubler has no ONNX exporter"):
        m.export(str(path), format="onnx")
    assert path.read_bytes() == b"previous"  # atomic: the old file stays
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_register_exporter_for_a_custom_layer(tmp_path):
    def export_doubler(call):
        y = call.ctx.node("Mul", [call.x.name, call.ctx.const("two", np.float32(2))],
                          call.base)
        return call.out(y, call.x.perm)

    onnx_export.register_exporter(Doubler, export_doubler)
    try:
        m = fastcnn.Sequential([fastcnn.Input((4,)), L.Dense(3), Doubler()], name="custom")
        randomize(m)
        check_parity(m, tmp_path)
    finally:
        del onnx_export.EXPORTERS[Doubler]


def test_unbuilt_model(tmp_path):
    m = fastcnn.Sequential([L.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        m.export(str(tmp_path / "u.onnx"), format="onnx")


def test_verbose_and_pathlike(tmp_path, capsys):
    m = seq(L.Dense(3), (4,))
    m.export(tmp_path / "v.onnx", format="onnx", verbose=True)
    assert "v.onnx" in capsys.readouterr().out
    assert os.path.getsize(tmp_path / "v.onnx") > 0


# ============================================================================ Keras as oracle
# Each exporter reads a layer through Keras' contract (get_config, get_weights), so a real
# Keras 3 layer exports with the same table: this checks the exporters of the layers other
# helpers are adding (and the activation table) against Keras itself.
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":  # pragma: no cover
        pytest.skip("the Keras oracle runs on the JAX backend")
    return keras


def _keras_cases():
    return {
        "Conv2D-dilated": (lambda k: k.layers.Conv2D(4, 3, dilation_rate=2, padding="same"),
                           IMG),
        "Conv2D-groups": (lambda k: k.layers.Conv2D(6, 3, strides=2, groups=3), (7, 9, 6)),
        "Conv1D-causal": (lambda k: k.layers.Conv1D(4, 3, padding="causal", dilation_rate=2),
                          (11, 5)),
        "Conv1D-same": (lambda k: k.layers.Conv1D(4, 4, strides=2, padding="same",
                                                  activation="relu"), (11, 5)),
        "Conv1D-groups": (lambda k: k.layers.Conv1D(6, 3, groups=2), (11, 4)),
        "DepthwiseConv2D": (lambda k: k.layers.DepthwiseConv2D(3, depth_multiplier=2,
                                                               padding="same",
                                                               activation="relu"), IMG),
        "DepthwiseConv2D-strided": (lambda k: k.layers.DepthwiseConv2D((3, 2), strides=2),
                                    IMG),
        "SeparableConv2D": (lambda k: k.layers.SeparableConv2D(6, 3, depth_multiplier=2,
                                                               padding="same"), IMG),
        "SeparableConv2D-strided": (lambda k: k.layers.SeparableConv2D(
            4, 3, strides=2, activation="sigmoid"), IMG),
        "Conv2DTranspose-same": (lambda k: k.layers.Conv2DTranspose(4, 3, strides=2,
                                                                    padding="same"), IMG),
        "Conv2DTranspose-valid": (lambda k: k.layers.Conv2DTranspose(3, 3, strides=2), IMG),
        "Conv2DTranspose-small-kernel": (lambda k: k.layers.Conv2DTranspose(
            4, 2, strides=3, padding="same"), IMG),
        "Conv2DTranspose-mixed": (lambda k: k.layers.Conv2DTranspose(
            4, (3, 4), strides=(2, 1), activation="relu"), IMG),
        "Conv2DTranspose-output-padding": (lambda k: k.layers.Conv2DTranspose(
            3, 3, strides=2, output_padding=1), IMG),
        "Conv2DTranspose-same-output-padding": (lambda k: k.layers.Conv2DTranspose(
            3, 4, strides=3, padding="same", output_padding=(2, 0)), IMG),
        "Conv2DTranspose-dilated-output-padding": (lambda k: k.layers.Conv2DTranspose(
            3, 3, strides=2, dilation_rate=1, padding="same", output_padding=(1, 0)), IMG),
        "MaxPooling1D": (lambda k: k.layers.MaxPooling1D(2), (11, 5)),
        "MaxPooling1D-same": (lambda k: k.layers.MaxPooling1D(3, 2, padding="same"), (11, 5)),
        "AveragePooling1D-same": (lambda k: k.layers.AveragePooling1D(3, 2, padding="same"),
                                  (11, 5)),
        "GlobalAveragePooling1D": (lambda k: k.layers.GlobalAveragePooling1D(), (11, 5)),
        "GlobalAveragePooling1D-keepdims": (lambda k: k.layers.GlobalAveragePooling1D(
            keepdims=True), (11, 5)),
        "GlobalMaxPooling2D": (lambda k: k.layers.GlobalMaxPooling2D(), IMG),
        "GlobalMaxPooling2D-keepdims": (lambda k: k.layers.GlobalMaxPooling2D(keepdims=True),
                                        IMG),
        "GlobalMaxPooling1D": (lambda k: k.layers.GlobalMaxPooling1D(), (11, 5)),
        "UpSampling2D": (lambda k: k.layers.UpSampling2D(2), IMG),
        "UpSampling2D-bilinear": (lambda k: k.layers.UpSampling2D(
            (2, 3), interpolation="bilinear"), IMG),
        "LeakyReLU": (lambda k: k.layers.LeakyReLU(0.1), IMG),
        "ELU": (lambda k: k.layers.ELU(0.7), IMG),
        "Softmax": (lambda k: k.layers.Softmax(), IMG),
        "Softmax-axis1": (lambda k: k.layers.Softmax(axis=1), IMG),
        "PReLU": (lambda k: k.layers.PReLU(), IMG),
        "PReLU-shared": (lambda k: k.layers.PReLU(shared_axes=[1, 2]), IMG),
        "ReLU-max": (lambda k: k.layers.ReLU(max_value=0.5), IMG),
        "ReLU-slope-threshold": (lambda k: k.layers.ReLU(negative_slope=0.1, threshold=0.5),
                                 IMG),
        "ReLU-all": (lambda k: k.layers.ReLU(max_value=0.3, negative_slope=0.2,
                                             threshold=0.1), IMG),
        "ReLU-threshold": (lambda k: k.layers.ReLU(threshold=0.25), IMG),
        "LayerNormalization": (lambda k: k.layers.LayerNormalization(), IMG),
        "LayerNormalization-3axes": (lambda k: k.layers.LayerNormalization(axis=[1, 2, 3]),
                                     IMG),
        "LayerNormalization-nocenter": (lambda k: k.layers.LayerNormalization(
            center=False, epsilon=0.1), (4, 6)),
        "GroupNormalization": (lambda k: k.layers.GroupNormalization(groups=2), (7, 9, 6)),
        "GroupNormalization-1d": (lambda k: k.layers.GroupNormalization(groups=3,
                                                                        scale=False),
                                  (5, 6)),
        "SpatialDropout2D": (lambda k: k.layers.SpatialDropout2D(0.5), IMG),
        "Permute": (lambda k: k.layers.Permute((2, 1)), (4, 5)),
        "Permute-4d": (lambda k: k.layers.Permute((3, 1, 2)), IMG),
        "RepeatVector": (lambda k: k.layers.RepeatVector(3), (5,)),
        "Embedding": (lambda k: k.layers.Embedding(10, 4), (6,)),
    }


KERAS_CASES = sorted(_keras_cases())


def _keras_parity(keras, layer, shape, tmp_path, channels_first_input=False, opset=None):
    r = np.random.default_rng(0)
    if layer.__class__.__name__ == "Embedding":
        x = r.integers(0, 10, (7,) + shape).astype(np.float32)
    else:
        x = r.standard_normal((7,) + shape).astype(np.float32)
    layer(x)  # builds it
    layer.set_weights([r.standard_normal(w.shape).astype(np.float32) * 0.5
                       for w in layer.get_weights()])
    want = np.asarray(layer(x))
    proto = onnx_export.layer_to_onnx(layer, (None,) + shape,
                                      opset=opset or onnx_export.DEFAULT_OPSET,
                                      channels_first_input=channels_first_input)
    onnx.checker.check_model(proto, full_check=True)
    path = tmp_path / "layer.onnx"
    path.write_bytes(proto.SerializeToString())
    for n in (1, 7):
        got = run_onnx(path, x[:n])[0]
        assert_close(got, want[:n], rtol=1e-5, atol=1e-5, what=layer.name)
    return proto


@pytest.mark.parametrize("layout", ["keras", "channels_first"])
@pytest.mark.parametrize("case", KERAS_CASES)
def test_exporter_matches_keras(case, layout, tmp_path):
    keras = _keras()
    build, shape = _keras_cases()[case]
    _keras_parity(keras, build(keras), shape, tmp_path,
                  channels_first_input=layout == "channels_first")


@pytest.mark.parametrize("name", sorted(n for n in onnx_export.ACTIVATIONS if n != "linear"))
def test_activation_table_matches_keras(name, tmp_path):
    keras = _keras()
    _keras_parity(keras, keras.layers.Activation(name), IMG, tmp_path,
                  channels_first_input=name in ("softmax", "log_softmax"))
    if name == "gelu":
        assert "Gelu" in ops_of(_keras_parity(keras, keras.layers.Activation(name), IMG,
                                              tmp_path, opset=20))


def test_permute_moves_no_data(tmp_path):
    keras = _keras()
    proto = _keras_parity(keras, keras.layers.Permute((3, 1, 2)), IMG, tmp_path,
                          channels_first_input=True)
    assert ops_of(proto) == ["Transpose"]  # the harness' own, to channels-first
