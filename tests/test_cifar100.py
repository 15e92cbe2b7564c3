"""fastcnn.datasets.cifar100 on a tiny tarball in the official python layout."""
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from fastcnn.datasets import DatasetError, DatasetNotFoundError, _common, cifar100


def _split(n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    fine = rng.integers(0, 100, n).tolist()
    coarse = [f // 5 for f in fine]
    return {b"data": data, b"fine_labels": fine, b"coarse_labels": coarse,
            b"batch_label": b"x", b"filenames": [b"f%d.png" % i for i in range(n)]}


def _tarball(path, splits=("train", "test"), bad=None):
    with tarfile.open(path, "w:gz") as tar:
        for name, n in (("train", 12), ("test", 5), ("meta", 0)):
            if name not in splits and name != "meta":
                continue
            obj = ({b"fine_label_names": [b"apple"] * 100} if name == "meta"
                   else _split(n, len(name)))
            raw = pickle.dumps(obj, protocol=2) if bad != name else b"garbage"
            info = tarfile.TarInfo("cifar-100-python/" + name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCNN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))

    def offline(*a, **k):
        raise OSError("no network in tests")
    monkeypatch.setattr(cifar100, "download", offline)


def test_fine_and_coarse_labels_from_the_official_layout(tmp_path):
    path = _tarball(str(tmp_path / "cifar-100-python.tar.gz"))
    (x, y), (xt, yt) = cifar100.load_data(path=path)
    ref = _split(12, 5)
    assert x.shape == (12, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (12, 1)
    assert np.array_equal(x, ref[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert y.dtype == np.uint8 and y[:, 0].tolist() == ref[b"fine_labels"]
    assert xt.shape == (5, 32, 32, 3) and yt.shape == (5, 1)
    (_, yc), (_, ytc) = cifar100.load_data("coarse", path=path)
    assert yc[:, 0].tolist() == ref[b"coarse_labels"]
    # the cache gives the same arrays, and the unpacked folder reads the same
    (x2, y2), _ = cifar100.load_data(path=path)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    (x3, _), _ = cifar100.load_data(path=str(tmp_path / "unpacked"))
    assert np.array_equal(x, x3)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="label_mode"):
        cifar100.load_data("medium")
    with pytest.raises(DatasetNotFoundError, match="CIFAR-100 not found"):
        cifar100.load_data(path=str(tmp_path / "empty"))
    bad = _tarball(str(tmp_path / "bad.tar.gz"), bad="train")
    with pytest.raises(DatasetError, match="bad.tar.gz:cifar-100-python/train"):
        cifar100.load_data(path=bad)
    half = _tarball(str(tmp_path / "half.tar.gz"), splits=("train",))
    with pytest.raises(DatasetError, match="missing cifar-100-python/test"):
        cifar100.load_data(path=half)
    assert _common.get_data_home().startswith(str(tmp_path))
