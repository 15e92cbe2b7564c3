"""`fastcnn train --data DIR` on an image folder, and `fastcnn predict` with its class names."""
import json
import os
import zipfile

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import fastcnn  # noqa: E402
from fastcnn import cli, layers  # noqa: E402


def _folder(root):
    rng = np.random.default_rng(0)
    for c, level in (("apple", 30), ("banana", 220)):
        os.makedirs(os.path.join(root, c))
        for i in range(12):
            px = np.clip(rng.normal(level, 10, (20 + i, 26, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(os.path.join(root, c, "%02d.jpg" % i))
    return root


def test_train_on_an_image_folder_then_predict_names_the_classes(tmp_path, capsys):
    data = _folder(str(tmp_path / "fruit"))
    out = str(tmp_path / "out")
    rc = cli.main(["train", "--data", data, "--epochs", "1", "--image-size", "32",
                   "--validation-split", "0.25", "--verbose", "0", "--out", out])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Using 18 files for training." in text and "classes: apple, banana" in text
    model_path = os.path.join(out, "model.keras")
    assert fastcnn.models.load_model(model_path).class_names == ["apple", "banana"]
    rc = cli.main(["predict", model_path, os.path.join(data, "banana", "00.jpg")])
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert "apple" in line and "banana" in line


def test_class_names_are_optional_metadata(tmp_path):
    m = fastcnn.Sequential([layers.Input((3,)), layers.Dense(2)])
    path = str(tmp_path / "m.keras")
    m.save(path)  # no class names: the metadata has no key, as in older files
    with zipfile.ZipFile(path) as z:
        assert "class_names" not in json.loads(z.read("metadata.json"))
    assert getattr(fastcnn.models.load_model(path), "class_names", None) is None
    m.class_names = ["no", "yes"]
    m.save(path)
    assert fastcnn.models.load_model(path).class_names == ["no", "yes"]


def test_image_size_is_refused_for_cifar(tmp_path, capsys):
    rc = cli.main(["train", "--data", str(tmp_path), "--image-size", "64", "--epochs", "0"])
    assert rc == 1 and "--image-size" in capsys.readouterr().err
