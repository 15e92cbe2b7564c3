"""Dataset loaders on small files of each official format, built here in tmp_path.

Nothing here touches the network: every test runs with urllib's urlopen replaced (by one that
fails, or that serves bytes from memory) and with HOME / FASTCNN_HOME / KERAS_HOME pointed
into tmp_path, so only the files a test builds can be found.
"""
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from fastcnn.datasets import (DatasetError, DatasetNotFoundError, UnsafePickleError,
                              cifar10, fashion_mnist, get_data_home, mnist)
from fastcnn.datasets import _common

BATCHES = ["data_batch_%d" % i for i in range(1, 6)] + ["test_batch"]
SIZES = {"data_batch_1": 3, "data_batch_2": 2, "data_batch_3": 4, "data_batch_4": 1,
         "data_batch_5": 3, "test_batch": 5}


# ------------------------------------------------------------------------------ fixtures

class _NoNetwork:
    calls = 0

    def __call__(self, *args, **kwargs):
        type(self).calls += 1
        raise urllib.error.URLError("network disabled in tests")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty homes and no network for every test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FASTCNN_HOME", str(tmp_path / "fastcnn-home"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("FASTCNN_DATASET_CACHE", raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", _NoNetwork())
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", str(tmp_path / "no-system-dir"))
    return tmp_path


@pytest.fixture
def batches():
    """{batch name: (rows (N, 3072) uint8 in the official R,G,B-plane layout, labels list)}."""
    rng = np.random.default_rng(7)
    out = {}
    for name in BATCHES:
        n = SIZES[name]
        out[name] = (rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                     [int(v) for v in rng.integers(0, 10, size=n)])
    return out


def expected_arrays(batches):
    def hwc(rows):  # independent of the loader: pixel (r, c) of channel ch is at ch*1024+r*32+c
        n = len(rows)
        out = np.empty((n, 32, 32, 3), np.uint8)
        for i in range(n):
            for ch in range(3):
                out[i, :, :, ch] = rows[i, ch * 1024:(ch + 1) * 1024].reshape(32, 32)
        return out

    train = BATCHES[:5]
    x_train = np.concatenate([hwc(batches[b][0]) for b in train])
    y_train = np.array(sum((batches[b][1] for b in train), []), np.uint8).reshape(-1, 1)
    x_test = hwc(batches["test_batch"][0])
    y_test = np.array(batches["test_batch"][1], np.uint8).reshape(-1, 1)
    return (x_train, y_train), (x_test, y_test)


def write_py_folder(root, batches, protocol=2, folder="cifar-10-batches-py"):
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for name, (rows, labels) in batches.items():
        label = b"testing batch 1 of 1" if name == "test_batch" else b"training batch"
        with open(d / name, "wb") as f:
            pickle.dump({b"batch_label": label, b"labels": labels, b"data": rows}, f,
                        protocol=protocol)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in cifar10.CLASS_NAMES]}, f, protocol=2)
    return d


def py2_pickle(labels, rows):
    """A batch pickled as Python 2 did it: byte strings, numpy.core.multiarray._reconstruct."""
    def s(b):
        return b"U" + bytes([len(b)]) + b

    n = len(labels)
    return (b"\x80\x02}(" + s(b"batch_label") + s(b"training batch")
            + s(b"labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
            + s(b"data") + b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
            + b"K\x00\x85U\x01b\x87R(K\x01M" + struct.pack("<H", n) + b"M\x00\x0c\x86"
            + b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xff"
            + b"J\xff\xff\xff\xffK\x00tb\x89T" + struct.pack("<I", rows.nbytes)
            + rows.tobytes() + b"tbu.")


def write_bin_folder(root, batches, folder="cifar-10-batches-bin"):
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for name, (rows, labels) in batches.items():
        rec = np.concatenate([np.array(labels, np.uint8)[:, None], rows], axis=1)
        (d / (name + ".bin")).write_bytes(rec.tobytes())
    (d / "batches.meta.txt").write_text("\n".join(cifar10.CLASS_NAMES) + "\n")
    return d


def make_tarball(folder, dest):
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return dest


def assert_cifar_equal(got, want):
    (xtr, ytr), (xte, yte) = got
    (wxtr, wytr), (wxte, wyte) = want
    for a, w in ((xtr, wxtr), (ytr, wytr), (xte, wxte), (yte, wyte)):
        assert a.dtype == np.uint8
        assert a.shape == w.shape
        assert a.flags.c_contiguous
        np.testing.assert_array_equal(a, w)


# ------------------------------------------------------------------- CIFAR-10 round trips

def test_python_folder_round_trip_exact(tmp_path, batches):
    folder = write_py_folder(tmp_path / "data", batches)
    got = cifar10.load_data(folder)
    assert_cifar_equal(got, expected_arrays(batches))
    (x_train, y_train), (x_test, y_test) = got
    assert x_train.shape == (13, 32, 32, 3) and y_train.shape == (13, 1)
    assert x_test.shape == (5, 32, 32, 3) and y_test.shape == (5, 1)
    # spot-check the plane layout: red of pixel (r=1, c=2) of image 0 is byte 1*32+2
    rows = batches["data_batch_1"][0]
    assert x_train[0, 1, 2, 0] == rows[0, 34]
    assert x_train[0, 1, 2, 1] == rows[0, 1024 + 34]
    assert x_train[0, 1, 2, 2] == rows[0, 2048 + 34]


@pytest.mark.parametrize("how", ["folder", "parent", "tarball", "dir-with-tarball"])
def test_every_form_of_path_gives_the_same_arrays(tmp_path, batches, how):
    folder = write_py_folder(tmp_path / "src", batches)
    tarball = make_tarball(folder, tmp_path / "cifar-10-python.tar.gz")
    tar_only = tmp_path / "only-tar"
    tar_only.mkdir()
    os.replace(tarball, tar_only / "cifar-10-python.tar.gz")
    path = {"folder": folder, "parent": tmp_path / "src",
            "tarball": tar_only / "cifar-10-python.tar.gz", "dir-with-tarball": tar_only}[how]
    assert_cifar_equal(cifar10.load_data(str(path)), expected_arrays(batches))


@pytest.mark.parametrize("packed", [False, True])
def test_binary_distribution_round_trip(tmp_path, batches, packed):
    folder = write_bin_folder(tmp_path / "src", batches)
    path = make_tarball(folder, tmp_path / "cifar-10-binary.tar.gz") if packed else folder
    assert_cifar_equal(cifar10.load_data(path), expected_arrays(batches))


def test_python_and_binary_distributions_agree(tmp_path, batches):
    py = cifar10.load_data(write_py_folder(tmp_path / "a", batches))
    binary = cifar10.load_data(write_bin_folder(tmp_path / "b", batches))
    assert_cifar_equal(py, binary)


def test_exact_python2_pickles_load(tmp_path, batches):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name, (rows, labels) in batches.items():
        (d / name).write_bytes(py2_pickle(labels, rows))
    # the real files cannot be read by a plain pickle.load (Python 2 byte strings)...
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(py2_pickle([1], np.full((1, 3072), 200, np.uint8)))
    assert_cifar_equal(cifar10.load_data(d), expected_arrays(batches))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_repickled_batches_with_other_protocols_load(tmp_path, batches, protocol):
    folder = write_py_folder(tmp_path, batches, protocol=protocol)
    assert_cifar_equal(cifar10.load_data(folder), expected_arrays(batches))


def test_protocol_5_array_pickles_are_refused(tmp_path, batches):
    # NumPy pickles arrays at protocol 5 through numpy._core.numeric._frombuffer, a global
    # no official file uses, so it is not admitted.
    folder = write_py_folder(tmp_path, batches, protocol=5)
    with pytest.raises(UnsafePickleError, match="data_batch_1.*_frombuffer"):
        cifar10.load_data(folder)


# ------------------------------------------------------------------------ search order

def test_fastcnn_home_is_searched(tmp_path, batches):
    write_py_folder(tmp_path / "fastcnn-home" / "datasets", batches)
    assert_cifar_equal(cifar10.load_data(), expected_arrays(batches))


@pytest.mark.parametrize("layout", ["cifar-10-batches-py",
                                    "cifar-10-batches-py-target/cifar-10-batches-py"])
def test_keras_caches_are_searched(tmp_path, batches, layout):
    parent, folder = os.path.split(layout)
    write_py_folder(tmp_path / "home" / ".keras" / "datasets" / parent, batches, folder=folder)
    assert_cifar_equal(cifar10.load_data(), expected_arrays(batches))


def test_keras_home_variable_is_honoured(tmp_path, batches, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    write_py_folder(tmp_path / "kh" / "datasets", batches)
    assert_cifar_equal(cifar10.load_data(), expected_arrays(batches))


def test_path_comes_before_fastcnn_home(tmp_path, batches):
    other = {k: (255 - rows, labels) for k, (rows, labels) in batches.items()}
    write_py_folder(tmp_path / "fastcnn-home" / "datasets", other)
    explicit = write_py_folder(tmp_path / "explicit", batches)
    assert_cifar_equal(cifar10.load_data(explicit), expected_arrays(batches))
    assert_cifar_equal(cifar10.load_data(), expected_arrays(other))


def test_nothing_found_gives_one_clear_error(tmp_path):
    _NoNetwork.calls = 0
    with pytest.raises(DatasetNotFoundError) as info:
        cifar10.load_data(tmp_path / "nowhere")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert _NoNetwork.calls == 1
    for place in (str(tmp_path / "nowhere"), get_data_home(),
                  str(tmp_path / "home" / ".keras" / "datasets")):
        assert place in msg
    for word in ("cifar-10-python.tar.gz", "cifar-10-batches-py", cifar10.URL, cifar10.MD5,
                 "network disabled in tests", "path="):
        assert word in msg
    assert not os.path.exists(os.path.join(get_data_home(), "cifar-10-python.tar.gz"))


# ------------------------------------------------------------------------------ download

class _FakeResponse(io.BytesIO):
    def __init__(self, payload, fail_after=None, length=None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload) if length is None else length)}
        self.fail_after = fail_after

    def read(self, n=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(n if self.fail_after is None else min(n, 1000))


def _serve(monkeypatch, payload, **kw):
    seen = []

    def urlopen(request, timeout=None):
        seen.append(request.full_url)
        return _FakeResponse(payload, **kw)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return seen


def _leftovers(directory):
    return [n for n in os.listdir(directory) if ".tmp-" in n] if os.path.isdir(directory) else []


def test_download_checks_md5_and_places_the_tarball(tmp_path, batches, monkeypatch, capsys):
    payload = make_tarball(write_py_folder(tmp_path / "src", batches),
                           tmp_path / "t.tar.gz").read_bytes()
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(payload).hexdigest())
    seen = _serve(monkeypatch, payload)
    got = cifar10.load_data()
    assert seen == [cifar10.URL]
    dest = os.path.join(get_data_home(), "cifar-10-python.tar.gz")
    with open(dest, "rb") as f:
        assert f.read() == payload
    assert _leftovers(get_data_home()) == []
    assert "Downloading cifar-10-python.tar.gz" in capsys.readouterr().err
    assert_cifar_equal(got, expected_arrays(batches))
    # found in FASTCNN_HOME from now on: no second download
    monkeypatch.setattr(urllib.request, "urlopen", _NoNetwork())
    assert_cifar_equal(cifar10.load_data(), expected_arrays(batches))


def test_download_with_wrong_md5_saves_nothing(tmp_path, monkeypatch):
    _serve(monkeypatch, b"not the cifar tarball" * 100)
    with pytest.raises(DatasetError, match="md5.*expected " + cifar10.MD5):
        cifar10.load_data()
    assert not os.path.exists(os.path.join(get_data_home(), "cifar-10-python.tar.gz"))
    assert _leftovers(get_data_home()) == []


def test_interrupted_download_saves_nothing(tmp_path, monkeypatch):
    _serve(monkeypatch, b"x" * 5000, fail_after=2000)
    with pytest.raises(DatasetNotFoundError, match="connection reset"):
        cifar10.load_data()
    assert not os.path.exists(os.path.join(get_data_home(), "cifar-10-python.tar.gz"))
    assert _leftovers(get_data_home()) == []


def test_short_download_saves_nothing(tmp_path, monkeypatch):
    payload = b"y" * 3000
    _serve(monkeypatch, payload, length=5000)
    dest = tmp_path / "dl" / "f.bin"
    with pytest.raises(DatasetError, match="3000 of 5000"):
        _common.download("https://example.org/f.bin", str(dest),
                         md5=hashlib.md5(payload).hexdigest(), progress=False)
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_download_refuses_plain_http(tmp_path):
    with pytest.raises(ValueError, match="https"):
        _common.download("http://example.org/x", str(tmp_path / "x"), md5="0" * 32)


# ------------------------------------------------------------------------ tampered pickles

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch %s" % self.marker,))


def test_tampered_pickle_runs_nothing(tmp_path, batches):
    folder = write_py_folder(tmp_path, batches)
    marker = tmp_path / "PWNED"
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": _Evil(marker), b"labels": [1]}, f, protocol=2)
    with pytest.raises(UnsafePickleError) as info:
        cifar10.load_data(folder)
    assert not marker.exists()
    assert isinstance(info.value, ValueError)
    assert "data_batch_2" in str(info.value) and "system" in str(info.value)


@pytest.mark.parametrize("evil", [
    b"cbuiltins\neval\n(Vprint(1)\ntR.",
    b"\x80\x02c__builtin__\nexec\nX\x04\x00\x00\x00pass\x85R.",
    b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x0a\x00\x00\x00zlib_codec\x86R.",
    b"\x80\x02cnumpy\nload\nX\x01\x00\x00\x00x\x85R.",
    b"\x80\x02P1\n.",  # a persistent id
])
def test_other_forbidden_pickles_are_refused(tmp_path, batches, evil):
    folder = write_py_folder(tmp_path, batches)
    (folder / "test_batch").write_bytes(evil)
    with pytest.raises(UnsafePickleError, match="test_batch"):
        cifar10.load_data(folder)


def test_tampered_pickle_in_a_tarball_runs_nothing(tmp_path, batches):
    folder = write_py_folder(tmp_path / "src", batches)
    marker = tmp_path / "PWNED"
    with open(folder / "data_batch_5", "wb") as f:
        pickle.dump(_Evil(marker), f, protocol=2)
    tarball = make_tarball(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(UnsafePickleError, match="cifar-10-python.tar.gz:cifar-10-batches-py/"
                                                "data_batch_5"):
        cifar10.load_data(tarball)
    assert not marker.exists()


# ------------------------------------------------------------------- corrupt / truncated

def _rewrite(folder, name, obj):
    with open(folder / name, "wb") as f:
        pickle.dump(obj, f, protocol=2)


@pytest.mark.parametrize("case, match", [
    ("truncated", "data_batch_3: not a readable CIFAR-10 pickle"),
    ("not-a-dict", "data_batch_3: expected a pickled dict"),
    ("no-labels", r"data_batch_3: the pickled dict lacks b'labels'"),
    ("wrong-shape", r"data_batch_3: b'data' must be a uint8 array of shape \(N, 3072\)"),
    ("wrong-dtype", r"data_batch_3: b'data' must be a uint8 array.*float32"),
    ("label-10", "data_batch_3: label 10 is outside 0..9"),
    ("negative-label", "data_batch_3: label -1 is outside 0..9"),
    ("label-count", "data_batch_3: 3 labels for 4 images"),
    ("float-labels", "data_batch_3: b'labels' must be a list of ints"),
])
def test_corrupt_python_batches_name_the_file(tmp_path, batches, case, match):
    folder = write_py_folder(tmp_path, batches)
    rows, labels = batches["data_batch_3"]
    if case == "truncated":
        data = (folder / "data_batch_3").read_bytes()
        (folder / "data_batch_3").write_bytes(data[:len(data) // 2])
    elif case == "not-a-dict":
        _rewrite(folder, "data_batch_3", [rows, labels])
    elif case == "no-labels":
        _rewrite(folder, "data_batch_3", {b"data": rows})
    elif case == "wrong-shape":
        _rewrite(folder, "data_batch_3", {b"data": rows[:, :3000], b"labels": labels})
    elif case == "wrong-dtype":
        _rewrite(folder, "data_batch_3", {b"data": rows.astype(np.float32), b"labels": labels})
    elif case == "label-10":
        _rewrite(folder, "data_batch_3", {b"data": rows, b"labels": labels[:-1] + [10]})
    elif case == "negative-label":
        _rewrite(folder, "data_batch_3", {b"data": rows, b"labels": [-1] + labels[1:]})
    elif case == "label-count":
        _rewrite(folder, "data_batch_3", {b"data": rows, b"labels": labels[:-1]})
    elif case == "float-labels":
        _rewrite(folder, "data_batch_3", {b"data": rows, b"labels": [0.5] * len(labels)})
    with pytest.raises(DatasetError, match=match):
        cifar10.load_data(folder)


def test_missing_batch_is_named(tmp_path, batches):
    folder = write_py_folder(tmp_path, batches)
    os.unlink(folder / "data_batch_4")
    with pytest.raises(DatasetError, match="incomplete.*missing data_batch_4"):
        cifar10.load_data(folder)
    tarball = make_tarball(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz: incomplete.*data_batch_4"):
        cifar10.load_data(tarball)


@pytest.mark.parametrize("case, match", [
    ("short", "data_batch_2.bin: 6145 bytes is not a whole number of 3073-byte records"),
    ("empty", "test_batch.bin: 0 bytes"),
    ("label", "data_batch_1.bin: record 1 has label 200"),
])
def test_corrupt_binary_batches_name_the_file(tmp_path, batches, case, match):
    folder = write_bin_folder(tmp_path, batches)
    if case == "short":
        data = (folder / "data_batch_2.bin").read_bytes()
        (folder / "data_batch_2.bin").write_bytes(data[:-1])
    elif case == "empty":
        (folder / "test_batch.bin").write_bytes(b"")
    else:
        data = bytearray((folder / "data_batch_1.bin").read_bytes())
        data[3073] = 200
        (folder / "data_batch_1.bin").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=match):
        cifar10.load_data(folder)


def test_truncated_tarball_names_the_file(tmp_path, batches):
    tarball = make_tarball(write_py_folder(tmp_path / "src", batches),
                           tmp_path / "cifar-10-python.tar.gz")
    data = tarball.read_bytes()
    tarball.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz: not a readable tar"):
        cifar10.load_data(tarball)


def test_garbage_file_as_path_is_not_a_tarball(tmp_path):
    f = tmp_path / "cifar-10-python.tar.gz"
    f.write_bytes(b"\x00" * 10 + b"hello" * 100)
    with pytest.raises(DatasetError, match="cifar-10-python.tar.gz"):
        cifar10.load_data(f)


def test_tarball_without_batches(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "readme.txt").write_text("hi")
    tarball = make_tarball(tmp_path / "x", tmp_path / "other.tar.gz")
    with pytest.raises(DatasetError, match="other.tar.gz: holds no CIFAR-10 batches"):
        cifar10.load_data(tarball)


# -------------------------------------------------------------------------------- cache

def _forbid_parsing(monkeypatch):
    def boom(self):
        raise AssertionError("parsed the source although a valid cache exists")
    monkeypatch.setattr(cifar10._Source, "read", boom)


def test_second_load_comes_from_the_cache(tmp_path, batches, monkeypatch):
    folder = write_py_folder(tmp_path / "d", batches)
    first = cifar10.load_data(folder)
    cache_dir = os.path.join(get_data_home(), "cache")
    assert [n for n in os.listdir(cache_dir) if n.endswith(".npz")]
    assert _leftovers(cache_dir) == []
    _forbid_parsing(monkeypatch)
    second = cifar10.load_data(folder)
    assert_cifar_equal(second, first)
    assert second[0][0].flags.writeable


def test_cache_is_invalidated_when_the_source_changes(tmp_path, batches, monkeypatch):
    folder = write_py_folder(tmp_path / "d", batches)
    cifar10.load_data(folder)
    changed = dict(batches)
    rows, labels = batches["test_batch"]
    changed["test_batch"] = (255 - rows, labels[::-1])
    _rewrite(folder, "test_batch", {b"data": 255 - rows, b"labels": labels[::-1]})
    os.utime(folder / "test_batch", ns=(1, 1))  # a different mtime even on coarse clocks
    assert_cifar_equal(cifar10.load_data(folder), expected_arrays(changed))


def test_damaged_cache_is_ignored(tmp_path, batches):
    folder = write_py_folder(tmp_path / "d", batches)
    cifar10.load_data(folder)
    cache_dir = os.path.join(get_data_home(), "cache")
    for name in os.listdir(cache_dir):
        with open(os.path.join(cache_dir, name), "r+b") as f:
            f.truncate(100)
    assert_cifar_equal(cifar10.load_data(folder), expected_arrays(batches))


def test_unwritable_cache_is_skipped_silently(tmp_path, batches, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FASTCNN_HOME", str(blocker / "home"))  # makedirs fails: ENOTDIR
    folder = write_py_folder(tmp_path / "d", batches)
    assert_cifar_equal(cifar10.load_data(folder), expected_arrays(batches))
    assert_cifar_equal(cifar10.load_data(folder), expected_arrays(batches))


def test_cache_can_be_turned_off(tmp_path, batches, monkeypatch):
    monkeypatch.setenv("FASTCNN_DATASET_CACHE", "0")
    cifar10.load_data(write_py_folder(tmp_path / "d", batches))
    assert not os.path.exists(os.path.join(get_data_home(), "cache"))


def test_class_names():
    assert cifar10.CLASS_NAMES[0] == "airplane" and cifar10.CLASS_NAMES[9] == "truck"
    assert fashion_mnist.CLASS_NAMES[0] == "T-shirt/top"
    assert fashion_mnist.CLASS_NAMES[9] == "Ankle boot"
    assert len(cifar10.CLASS_NAMES) == len(fashion_mnist.CLASS_NAMES) == 10
    assert len(mnist.CLASS_NAMES) == 10


# ---------------------------------------------------------------- IDX: (Fashion-)MNIST

IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def idx_bytes(arr):
    arr = np.asarray(arr, np.uint8)
    return (bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
            + arr.tobytes())


@pytest.fixture
def idx_arrays():
    rng = np.random.default_rng(3)
    return {"x_train": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, 7).astype(np.uint8),
            "x_test": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, 4).astype(np.uint8)}


def write_idx(folder, arrays, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_FILES.items():
        data = idx_bytes(arrays[key])
        if gz:
            with gzip.open(folder / (name + ".gz"), "wb") as f:
                f.write(data)
        else:
            (folder / name).write_bytes(data)
    return folder


def assert_idx_equal(got, arrays):
    (xtr, ytr), (xte, yte) = got
    for a, key in ((xtr, "x_train"), (ytr, "y_train"), (xte, "x_test"), (yte, "y_test")):
        assert a.dtype == np.uint8 and a.shape == arrays[key].shape
        np.testing.assert_array_equal(a, arrays[key])


@pytest.mark.parametrize("module", [fashion_mnist, mnist])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, idx_arrays, module, gz):
    folder = write_idx(tmp_path / "d", idx_arrays, gz=gz)
    assert_idx_equal(module.load_data(folder), idx_arrays)


def test_idx_search_places(tmp_path, idx_arrays, monkeypatch):
    write_idx(tmp_path / "fastcnn-home" / "datasets" / "fashion-mnist", idx_arrays)
    assert_idx_equal(fashion_mnist.load_data(), idx_arrays)
    write_idx(tmp_path / "fastcnn-home" / "datasets" / "mnist", idx_arrays)
    assert_idx_equal(mnist.load_data(), idx_arrays)


def test_fashion_mnist_keras_cache_and_system_dir(tmp_path, idx_arrays, monkeypatch):
    write_idx(tmp_path / "home" / ".keras" / "datasets" / "fashion-mnist", idx_arrays)
    assert_idx_equal(fashion_mnist.load_data(), idx_arrays)
    other = {k: v[::-1].copy() for k, v in idx_arrays.items()}
    system = write_idx(tmp_path / "system", other)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", str(system))
    assert_idx_equal(fashion_mnist.load_data(), idx_arrays)  # Keras' cache comes first
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    assert_idx_equal(fashion_mnist.load_data(), other)


def test_idx_second_load_comes_from_the_cache(tmp_path, idx_arrays, monkeypatch):
    from fastcnn.datasets import _idx
    folder = write_idx(tmp_path / "d", idx_arrays)
    fashion_mnist.load_data(folder)

    def boom(paths):
        raise AssertionError("parsed again")
    monkeypatch.setattr(_idx, "parse_idx_dataset", boom)
    assert_idx_equal(fashion_mnist.load_data(folder), idx_arrays)


def _corrupt_idx(folder, case):
    name = folder / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(name.read_bytes())
    if case == "magic":
        raw = b"\x12\x34" + raw[2:]
    elif case == "type":
        raw = raw[:2] + b"\x0d" + raw[3:]
    elif case == "ndim":
        raw = raw[:3] + b"\x02" + raw[4:]
    elif case == "truncated-data":
        raw = raw[:-5]
    elif case == "header":
        raw = raw[:9]
    if case == "truncated-gzip":
        data = name.read_bytes()
        name.write_bytes(data[:len(data) // 2])
    else:
        name.write_bytes(gzip.compress(raw))


@pytest.mark.parametrize("case, match", [
    ("magic", "train-images-idx3-ubyte.gz: bad IDX magic number 0x12340803"),
    ("type", "train-images-idx3-ubyte.gz: IDX element type 0x0d"),
    ("ndim", "train-images-idx3-ubyte.gz: IDX file has 2 dimensions, expected 3"),
    ("truncated-data", r"train-images-idx3-ubyte.gz: holds 5483 data bytes but its header "
                       r"\(7, 28, 28\) says 5488"),
    ("header", "train-images-idx3-ubyte.gz: truncated IDX header"),
    ("truncated-gzip", "train-images-idx3-ubyte.gz: unreadable"),
])
def test_corrupt_idx_files_name_the_file(tmp_path, idx_arrays, case, match):
    folder = write_idx(tmp_path / "d", idx_arrays)
    _corrupt_idx(folder, case)
    with pytest.raises(DatasetError, match=match):
        fashion_mnist.load_data(folder)


def test_idx_inconsistent_contents(tmp_path, idx_arrays):
    bad = dict(idx_arrays, y_test=idx_arrays["y_test"][:3])
    folder = write_idx(tmp_path / "a", bad)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz has 3 labels but "
                                           ".*t10k-images-idx3-ubyte.gz has 4 images"):
        fashion_mnist.load_data(folder)
    bad = dict(idx_arrays, y_train=np.full(7, 11, np.uint8))
    folder = write_idx(tmp_path / "b", bad)
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz: label 11 at index 0"):
        fashion_mnist.load_data(folder)
    bad = dict(idx_arrays, x_test=np.zeros((4, 27, 28), np.uint8))
    folder = write_idx(tmp_path / "c", bad)
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz: images are 27x28"):
        mnist.load_data(folder)


def test_incomplete_idx_folder(tmp_path, idx_arrays):
    folder = write_idx(tmp_path / "d", idx_arrays)
    os.unlink(folder / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DatasetError, match="incomplete.*t10k-labels-idx1-ubyte.gz"):
        fashion_mnist.load_data(folder)


def test_fashion_mnist_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        fashion_mnist.load_data(tmp_path / "nowhere")
    msg = str(info.value)
    for word in (str(tmp_path / "nowhere"), fashion_mnist.SYSTEM_DIR,
                 "dataset-fashion-mnist", "train-images-idx3-ubyte.gz",
                 os.path.join(get_data_home(), "fashion-mnist"),
                 str(tmp_path / "home" / ".keras" / "datasets" / "fashion-mnist")):
        assert word in msg


def test_fashion_mnist_download_checks_each_md5(tmp_path, idx_arrays, monkeypatch):
    payloads = {IDX_FILES[k] + ".gz": gzip.compress(idx_bytes(v)) for k, v in idx_arrays.items()}
    monkeypatch.setattr(fashion_mnist, "MD5",
                        {n: hashlib.md5(p).hexdigest() for n, p in payloads.items()})

    def urlopen(request, timeout=None):
        return _FakeResponse(payloads[request.full_url.rsplit("/", 1)[1]])
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert_idx_equal(fashion_mnist.load_data(), idx_arrays)
    assert sorted(os.listdir(os.path.join(get_data_home(), "fashion-mnist"))) == sorted(payloads)


# ----------------------------------------------------------------------- MNIST: mnist.npz

def test_mnist_npz_in_keras_cache(tmp_path, idx_arrays):
    d = tmp_path / "home" / ".keras" / "datasets"
    d.mkdir(parents=True)
    np.savez(d / "mnist.npz", **idx_arrays)
    assert_idx_equal(mnist.load_data(), idx_arrays)
    assert_idx_equal(mnist.load_data(d / "mnist.npz"), idx_arrays)


def test_mnist_npz_is_read_without_pickle(tmp_path, idx_arrays):
    bad = dict(idx_arrays, y_test=np.array([1, "x", None, 2], dtype=object))
    np.savez(tmp_path / "mnist.npz", **bad)
    with pytest.raises(DatasetError, match="mnist.npz: not a readable .npz"):
        mnist.load_data(tmp_path / "mnist.npz")


@pytest.mark.parametrize("change, match", [
    (lambda a: a.pop("y_test"), "mnist.npz: lacks y_test"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "x_train is float32"),
    (lambda a: a.update(y_train=a["y_train"][:5]), "has 5 labels but"),
    (lambda a: a.update(y_train=a["y_train"] + 10), "label 1[0-9] at index 0"),
])
def test_mnist_npz_malformed(tmp_path, idx_arrays, change, match):
    arrays = dict(idx_arrays)
    change(arrays)
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DatasetError, match=match):
        mnist.load_data(tmp_path)


def test_mnist_not_found(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data()
    msg = str(info.value)
    for word in ("mnist.npz", mnist.URL, mnist.SHA256, get_data_home()):
        assert word in msg
