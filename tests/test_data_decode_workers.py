"""image_dataset_from_directory decoding in worker processes: the same batches as threads,
errors from a worker, early stops, a dead worker, clean shutdown, scripts without a main
guard."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from fastcnn import utils  # noqa: E402
from fastcnn.data import decode_workers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _folder(root, n=9):
    """Noisy images of mixed formats, sizes and modes in three class folders."""
    rng = np.random.default_rng(1)
    for c in ("a", "b", "c"):
        os.makedirs(os.path.join(root, c))
        for i in range(n):
            h, w = (13 + i, 21 - i) if i % 2 else (16, 16)
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            mode, ext = [("RGB", "jpg"), ("L", "png"), ("RGBA", "png"), ("P", "gif"),
                         ("RGB", "bmp")][i % 5]
            Image.fromarray(arr).convert(mode).save(os.path.join(root, c, "%02d.%s"
                                                                 % (i, ext)))
    return root


def _all(ds):
    return [tuple(np.asarray(v) for v in b) if isinstance(b, tuple) else (np.asarray(b),)
            for b in ds]


@pytest.mark.parametrize("kwargs", [
    dict(batch_size=4, image_size=(10, 12)),
    dict(batch_size=5, image_size=(9, 9), color_mode="rgba", label_mode="categorical",
         crop_to_aspect_ratio=True),
    dict(batch_size=None, image_size=(7, 11), color_mode="grayscale", label_mode=None,
         interpolation="bicubic", pad_to_aspect_ratio=True),
])
def test_processes_give_bitwise_the_batches_of_threads(tmp_path, kwargs):
    root = _folder(str(tmp_path / "f"))
    runs = {}
    for decoder in ("threads", "processes"):
        ds = utils.image_dataset_from_directory(root, seed=3, verbose=False, decoder=decoder,
                                                **kwargs)
        runs[decoder] = [_all(ds), _all(ds)]  # two passes: two shuffles
    assert len(runs["threads"][0]) > 1
    for p_t, p_p in zip(runs["threads"], runs["processes"]):
        assert len(p_t) == len(p_p)
        for bt, bp in zip(p_t, p_p):
            for vt, vp in zip(bt, bp):
                assert vt.dtype == vp.dtype and vt.shape == vp.shape
                np.testing.assert_array_equal(vt, vp)
    assert not np.array_equal(runs["threads"][0][0][0], runs["threads"][1][0][0])


def _live_workers():
    return [p for pool in decode_workers._ALL for p in pool.procs if p.poll() is None]


def test_early_stop_keeps_the_pool_usable_and_shutdown_ends_every_worker(tmp_path):
    root = _folder(str(tmp_path / "f"))
    ds = utils.image_dataset_from_directory(root, image_size=8, batch_size=2, seed=0,
                                            verbose=False, decoder="processes")
    full = _all(ds.take(100))
    for _ in range(3):
        for i, _batch in enumerate(ds):
            if i == 1:
                break  # leaves batches in flight in the workers
    pools = len(decode_workers._ALL)
    again = _all(ds.take(100))
    assert len(decode_workers._ALL) == pools  # the idle pool was reused
    assert len(again) == len(full)
    assert sum(len(b[1]) for b in again) == len(ds.file_paths)
    # a second dataset iterated while the first is half-way gets its own pool
    it = iter(ds)
    next(it)
    other = utils.image_dataset_from_directory(root, image_size=8, batch_size=2, seed=0,
                                               shuffle=False, verbose=False,
                                               decoder="processes")
    assert sum(len(b[1]) for b in _all(other)) == len(ds.file_paths)
    it.close()
    procs = _live_workers()
    assert procs
    decode_workers.shutdown_pools()
    assert all(p.poll() is not None for p in procs)
    assert decode_workers._ALL == []
    assert sum(len(b[1]) for b in _all(ds)) == len(ds.file_paths)  # starts a new pool


def test_a_dead_worker_raises_and_the_next_pass_gets_a_new_pool(tmp_path):
    root = _folder(str(tmp_path / "f"))
    ds = utils.image_dataset_from_directory(root, image_size=8, batch_size=2, seed=0,
                                            verbose=False, decoder="processes")
    _all(ds)
    for p in _live_workers():
        p.kill()
        p.wait()
    with pytest.raises(RuntimeError, match="decoding worker process exited"):
        _all(ds)
    assert sum(len(b[1]) for b in _all(ds)) == len(ds.file_paths)


def test_a_script_without_main_guard_runs_once_and_exits_cleanly(tmp_path):
    root = _folder(str(tmp_path / "f"))
    script = tmp_path / "noguard.py"
    script.write_text(textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from fastcnn import utils
        print("top-level code ran")
        ds = utils.image_dataset_from_directory(%r, image_size=8, batch_size=4, seed=0,
                                                verbose=False, decoder="processes")
        for i, (x, y) in enumerate(ds):
            if i == 2:
                break
        print("images", sum(len(y) for _, y in ds))
    """ % (ROOT, root)))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("top-level code ran") == 1
    assert "images 27" in out.stdout


def test_decoder_argument_is_checked(tmp_path):
    root = _folder(str(tmp_path / "f"), n=1)
    with pytest.raises(ValueError, match="decoder must be 'auto', 'threads' or 'processes'"):
        utils.image_dataset_from_directory(root, decoder="fork", verbose=False)
