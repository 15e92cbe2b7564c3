"""image_dataset_from_directory (Keras parity of file order, labels and split), the image
utilities, bad files, and flat memory while streaming."""
import os
import struct
import warnings
import zlib

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from fastcnn import utils  # noqa: E402
from fastcnn.data import images  # noqa: E402

COLORS = {"cat": 40, "dog": 120, "eel": 200}


def _folder(root, n=7, sizes=((20, 30), (33, 17), (16, 16))):
    """Class folders of solid images whose grey level says their class; mixed formats,
    sizes and modes; a nested folder, a hidden folder and a non-image file."""
    for c, level in COLORS.items():
        os.makedirs(os.path.join(root, c, "nested"))
        for i in range(n):
            h, w = sizes[i % len(sizes)]
            ext = ("jpg", "png", "bmp", "gif", "jpeg", "PNG")[i % 6]
            mode = ("RGB", "L", "RGBA", "P")[i % 4]
            if ext.lower() in ("jpg", "jpeg") and mode in ("RGBA", "P"):
                mode = "L"
            elif ext == "gif":
                mode = "P"
            im = Image.new("RGB", (w, h), (level,) * 3).convert(mode)
            sub = "nested" if i == n - 1 else ""
            im.save(os.path.join(root, c, sub, "img%02d.%s" % (i, ext)))
        with open(os.path.join(root, c, "notes.txt"), "w") as f:
            f.write("not an image, ignored by its extension")
    os.makedirs(os.path.join(root, ".hidden"))
    return root


def _label_of(pixels):
    level = float(pixels.mean())
    return min(COLORS, key=lambda c: abs(COLORS[c] - level))


@pytest.fixture
def folder(tmp_path):
    return _folder(str(tmp_path / "imgs"))


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    pytest.importorskip("keras")
    from keras.src.utils import dataset_utils
    return dataset_utils


@pytest.mark.parametrize("seed,split", [(1, 0.2), (1337, 0.35), (7, 0.5)])
def test_file_order_labels_and_split_match_keras(folder, seed, split, capsys):
    du = _keras()
    paths, labels, names = du.index_directory(folder, "inferred",
                                              formats=(".bmp", ".gif", ".jpeg", ".jpg", ".png"),
                                              shuffle=True, seed=seed)
    tr_p, tr_l = du.get_training_or_validation_split(paths, labels, split, "training")
    va_p, va_l = du.get_training_or_validation_split(paths, labels, split, "validation")
    tr, va = utils.image_dataset_from_directory(folder, validation_split=split, subset="both",
                                                seed=seed, image_size=(8, 8), batch_size=4)
    assert tr.class_names == names == ["cat", "dog", "eel"]
    assert tr.file_paths == list(tr_p) and va.file_paths == list(va_p)
    # labels are the folders' (the images' grey levels say which), in the files' order
    va_only = utils.image_dataset_from_directory(folder, validation_split=split,
                                                 subset="validation", seed=seed,
                                                 image_size=(8, 8), batch_size=None)
    got = [(x, int(y)) for x, y in va_only]  # shuffled per pass, as Keras' dataset is
    assert sorted(y for _, y in got) == sorted(np.asarray(va_l).tolist())
    assert all(names[y] == _label_of(x) for x, y in got)
    out = capsys.readouterr().out
    assert "Found 21 files belonging to 3 classes." in out


def test_unshuffled_order_and_explicit_labels_match_keras(folder):
    du = _keras()
    paths, _, _ = du.index_directory(folder, "inferred",
                                     formats=(".bmp", ".gif", ".jpeg", ".jpg", ".png"),
                                     shuffle=False)
    ds = utils.image_dataset_from_directory(folder, shuffle=False, image_size=(8, 8),
                                            verbose=False)
    assert ds.file_paths == paths
    names = ["cat", "dog", "eel"]  # labels given in the sorted order of the paths
    lab = [names.index(os.path.relpath(p, folder).split(os.sep)[0]) for p in paths]
    p2, l2, names2 = du.index_directory(folder, list(lab),  # Keras shuffles it in place
                                        formats=(".bmp", ".gif", ".jpeg", ".jpg",
                                                              ".png"), shuffle=True, seed=5)
    ds2 = utils.image_dataset_from_directory(folder, labels=lab, seed=5, image_size=(8, 8),
                                             batch_size=None, verbose=False)
    assert ds2.file_paths == p2 and ds2.class_names == names2
    got = [(x, int(y)) for x, y in ds2]
    assert sorted(y for _, y in got) == sorted(l2)
    assert all(names[y] == _label_of(x) for x, y in got)  # each label with its image


def test_batches_shapes_dtypes_label_modes_and_color_modes(folder):
    ds = utils.image_dataset_from_directory(folder, image_size=(10, 12), batch_size=8, seed=0,
                                            verbose=False)
    assert len(ds) == 3
    x, y = next(iter(ds))
    assert x.shape == (8, 10, 12, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    cat = utils.image_dataset_from_directory(folder, image_size=(10, 12),
                                             label_mode="categorical", seed=0, verbose=False)
    x, y = next(iter(cat))
    assert y.shape == (x.shape[0], 3) and y.dtype == np.float32 and np.all(y.sum(1) == 1)
    for mode, ch in (("grayscale", 1), ("rgba", 4)):
        x, _ = next(iter(utils.image_dataset_from_directory(
            folder, color_mode=mode, image_size=8, seed=0, verbose=False)))
        assert x.shape[1:] == (8, 8, ch)
    only = utils.image_dataset_from_directory(folder, labels=None, image_size=8,
                                              verbose=False)
    assert next(iter(only)).shape[1:] == (8, 8, 3) and only.class_names is None
    with pytest.raises(ValueError, match="exactly 2"):
        utils.image_dataset_from_directory(folder, label_mode="binary", verbose=False)
    two = utils.image_dataset_from_directory(folder, label_mode="binary",
                                             class_names=["eel", "cat"], seed=0,
                                             image_size=8, verbose=False)
    xs, ys = next(iter(two.unbatch().batch(100)))
    assert ys.shape == (14, 1)
    assert all(["eel", "cat"][int(v)] == _label_of(im) for im, v in zip(xs, ys[:, 0]))


def test_argument_errors_as_keras(folder):
    f = utils.image_dataset_from_directory
    with pytest.raises(ValueError, match="seed"):
        f(folder, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="subset"):
        f(folder, validation_split=0.2, seed=1)
    with pytest.raises(ValueError, match="interpolation"):
        f(folder, interpolation="gaussian")
    with pytest.raises(ValueError, match="color_mode"):
        f(folder, color_mode="cmyk")
    with pytest.raises(ValueError, match="class_names"):
        f(folder, class_names=["cat", "cow"])
    with pytest.raises(ValueError, match="Only one of"):
        f(folder, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)


def test_resizing_crop_and_pad_against_pillow(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    path = str(tmp_path / "a.png")
    Image.fromarray(arr).save(path)
    im = Image.fromarray(arr)
    plain = images.decode_image(path, (10, 12), 3)
    assert np.array_equal(plain, np.asarray(im.resize((12, 10), Image.BILINEAR)))
    crop = images.decode_image(path, (10, 10), 3, crop_to_aspect_ratio=True)
    ref = im.resize((10, 10), Image.BILINEAR, box=(10, 0, 40, 30))  # the centred 30x30
    assert np.array_equal(crop, np.asarray(ref))
    pad = images.decode_image(path, (10, 10), 3, pad_to_aspect_ratio=True,
                              interpolation="nearest")
    assert np.all(pad[:2] == 0) and np.all(pad[8:] == 0)  # 50x30 fits as 10x6, centred
    assert np.array_equal(pad[2:8], np.asarray(im.resize((10, 6), Image.NEAREST)))


def test_load_img_and_array_utils_match_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (21, 34, 3), dtype=np.uint8)
    path = str(tmp_path / "x.png")
    Image.fromarray(arr).save(path)
    for kw in ({}, {"target_size": (9, 13)}, {"color_mode": "grayscale"},
               {"target_size": (8, 8), "keep_aspect_ratio": True, "interpolation": "bilinear"},
               {"color_mode": "rgba"}):
        ours = utils.img_to_array(utils.load_img(path, **kw))
        theirs = keras.utils.img_to_array(keras.utils.load_img(path, **kw))
        assert ours.dtype == np.float32 and np.array_equal(ours, theirs), kw
    x = rng.random((5, 6, 3)).astype(np.float32) * 3 - 1
    assert np.array_equal(np.asarray(utils.array_to_img(x)),
                          np.asarray(keras.utils.array_to_img(x)))
    out = str(tmp_path / "saved.jpg")
    utils.save_img(out, np.dstack([arr, arr[..., :1]]))  # RGBA to JPEG: alpha dropped
    assert Image.open(out).size == (34, 21)


# ---------------------------------------------------------------------------- bad data

def _iterate(ds):
    return [(x, y) for x, y in ds]


def _png_header_only(path, w, h):
    """A PNG that declares w x h pixels but holds only a tiny broken image stream."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(raw)


def _bad_cases(root):
    good = _folder(root, n=4)
    jpg = os.path.join(good, "cat", "img00.jpg")
    data = open(jpg, "rb").read()
    return {
        "truncated": lambda: open(os.path.join(good, "dog", "trunc.jpg"), "wb").write(
            data[:len(data) // 2]),
        "corrupt": lambda: open(os.path.join(good, "dog", "corrupt.png"), "wb").write(
            b"\x89PNG\r\n\x1a\n" + os.urandom(300)),
        "not_an_image": lambda: open(os.path.join(good, "eel", "text.jpg"), "w").write(
            "hello, I am text"),
        "bomb": lambda: _png_header_only(os.path.join(good, "cat", "wide.png"), 50000, 50000),
        "wide": lambda: _png_header_only(os.path.join(good, "cat", "wide.png"), 50000, 2000),
        "link_loop": lambda: (os.symlink("b.jpg", os.path.join(good, "eel", "a.jpg")),
                              os.symlink("a.jpg", os.path.join(good, "eel", "b.jpg"))),
    }, good


@pytest.mark.parametrize("case", ["truncated", "corrupt", "not_an_image", "bomb", "wide",
                                  "link_loop"])
@pytest.mark.parametrize("decoder", ["threads", "processes"])
def test_bad_file_raises_naming_it_or_is_skipped_with_warn(tmp_path, case, decoder):
    cases, root = _bad_cases(str(tmp_path / case))
    cases[case]()
    ds = utils.image_dataset_from_directory(root, image_size=(8, 8), batch_size=5, seed=0,
                                            verbose=False, decoder=decoder)
    bad = [p for p in ds.file_paths if os.path.basename(p).split(".")[0] in
           ("trunc", "corrupt", "text", "wide", "a", "b")]
    assert bad
    with pytest.raises(images.BadImageError) as e:
        _iterate(ds)
    assert any(p in str(e.value) for p in bad)
    ds = utils.image_dataset_from_directory(root, image_size=(8, 8), batch_size=5, seed=0,
                                            verbose=False, on_bad_file="warn",
                                            decoder=decoder)
    with pytest.warns(UserWarning, match="skipped"):
        got = _iterate(ds)
    n_good = len(ds.file_paths) - len(bad)
    assert sum(len(y) for _, y in got) == n_good
    for x, y in got:  # labels stay with their images
        assert all(ds.class_names[int(v)] == _label_of(im) for im, v in zip(x, y))


def test_a_50000_pixel_wide_strip_is_decoded(tmp_path):
    path = str(tmp_path / "strip.png")
    Image.new("L", (50000, 2), 77).save(path)
    out = images.decode_image(path, (4, 4), 3)
    assert out.shape == (4, 4, 3) and np.all(out == 77)


def test_empty_class_folder_and_symlink_loop_folder(tmp_path):
    root = _folder(str(tmp_path / "e"), n=3)
    os.makedirs(os.path.join(root, "zebra"))
    with pytest.raises(ValueError, match="zebra.*holds no image"):
        utils.image_dataset_from_directory(root, verbose=False)
    with pytest.warns(UserWarning, match="zebra"):
        ds = utils.image_dataset_from_directory(root, verbose=False, on_bad_file="warn",
                                                image_size=8)
    assert ds.class_names == ["cat", "dog", "eel", "zebra"]
    os.rmdir(os.path.join(root, "zebra"))
    os.symlink("..", os.path.join(root, "cat", "nested", "up"))
    plain = utils.image_dataset_from_directory(root, verbose=False, image_size=8)
    assert len(plain.file_paths) == 9  # links are not followed by default
    with pytest.raises(ValueError, match="nested.up is a symlink loop"):
        utils.image_dataset_from_directory(root, verbose=False, follow_links=True)
    with pytest.warns(UserWarning, match="symlink loop"):
        ds = utils.image_dataset_from_directory(root, verbose=False, follow_links=True,
                                                on_bad_file="warn", image_size=8)
    assert len(ds.file_paths) == 9


def test_no_images_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        utils.image_dataset_from_directory(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "flat")
    with pytest.raises(ValueError, match="No images found"):
        utils.image_dataset_from_directory(str(tmp_path / "flat"), labels=None, verbose=False)


# ------------------------------------------------------------------------------ memory

def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_memory_is_flat_across_epochs_of_a_streamed_dataset(tmp_path):
    root = str(tmp_path / "m")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        os.makedirs(os.path.join(root, c))
        for i in range(150):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                os.path.join(root, c, "%03d.jpg" % i))
    ds = utils.image_dataset_from_directory(root, image_size=(96, 96), batch_size=16, seed=0,
                                            verbose=False).prefetch(2)
    for _ in range(2):  # warm-up epochs: thread stacks, malloc arenas, Pillow's buffers
        for _ in ds:
            pass
    start = _rss_mb()
    growth = []
    for _ in range(5):
        total = 0
        for x, y in ds:
            total += len(y)
        assert total == 300
        growth.append(round(_rss_mb() - start, 2))
    assert growth[-1] < 5.0, growth
