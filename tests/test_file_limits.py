"""Declared sizes in a model file are checked before anything is allocated
(fastcnn.saving.limits).

Each hostile file is loaded in a child process under RLIMIT_AS, so a regression fails with a
MemoryError or a killed child instead of making this machine swap.
"""
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fastcnn import layers, models
from fastcnn.saving import limits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_LIMIT = 3 * 2 ** 30


def load_in_child(jobs, timeout=120, limit=MEMORY_LIMIT):
    """[(path, kind[, template])] -> the child's result dicts, in order (see hostile_child)."""
    payload = [{"path": str(j[0]), "kind": j[1], "template": str(j[2]) if len(j) > 2 else None}
               for j in jobs]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "hostile_child.py"),
                           str(limit)], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and len(lines) == len(jobs), \
        "child died (rc %s) after %d of %d files:\n%s" % (proc.returncode, len(lines), len(jobs),
                                                           proc.stderr[-3000:])
    return lines


def small_model():
    return models.Sequential([layers.Input(shape=(8, 8, 3)), layers.Conv2D(4, 3),
                              layers.Flatten(), layers.Dense(2)])


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    path = tmp_path_factory.mktemp("limits") / "ok.keras"
    small_model().save(path)
    return path


@pytest.fixture(scope="module")
def valid_native(tmp_path_factory):
    """An older fastcnn file (weights in ``model.weights.npz``), for the .npz limits."""
    from fastcnn.saving import native
    path = tmp_path_factory.mktemp("limits_native") / "ok.keras"
    native.save_model(small_model(), path)
    return path


def rewrite(src, dst, config=None, mutate_config=None, weights=None):
    with zipfile.ZipFile(src) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    if mutate_config is not None:
        cfg = json.loads(items["config.json"])
        mutate_config(cfg["config"])
        items["config.json"] = json.dumps(cfg)
    if config is not None:
        items["config.json"] = config
    if weights is not None:
        items["model.weights.npz"] = weights
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in items.items():
            zf.writestr(name, data)
    return dst


def set_conv_filters(cfg):
    cfg["layers"][1]["config"]["filters"] = 10 ** 9


def set_dense_units(cfg):
    cfg["layers"][3]["config"]["units"] = 10 ** 12


def set_huge_input(cfg):
    cfg["layers"][0]["config"]["batch_shape"] = [None, 10 ** 5, 10 ** 5, 3]
    cfg["build_input_shape"] = [None, 10 ** 5, 10 ** 5, 3]


def set_conv_filters_within_caps(cfg):
    # 3*3*3*10**5 weights: under every absolute cap, but far more than the file stores
    cfg["layers"][1]["config"]["filters"] = 10 ** 5


def set_one_huge_dim(cfg):
    cfg["layers"][0]["config"]["batch_shape"] = [None, 2 ** 29, 1, 3]


@pytest.mark.parametrize("mutate, expect", [
    (set_conv_filters, "conv2d"), (set_dense_units, "dense"),
    (set_huge_input, "input_layer"), (set_conv_filters_within_caps, "file stores only"),
    (set_one_huge_dim, "MAX_DIM")],
    ids=["conv_filters_1e9", "dense_units_1e12", "input_1e5x1e5", "weights_beyond_file",
         "one_huge_dim"])
def test_declared_sizes_are_refused_before_allocation(tmp_path, valid, mutate, expect):
    path = rewrite(valid, tmp_path / "hostile.keras", mutate_config=mutate)
    (result,) = load_in_child([(path, "model")])
    assert result["outcome"] == "ValueError", result
    assert str(path) in result["message"] and expect in result["message"], result


def test_npy_header_declaring_more_than_stored_is_refused(tmp_path, valid_native):
    valid = valid_native
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # a header for 10**11 float32 followed by 16 bytes
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 11,)})
        zf.writestr("layers/1/vars/0.npy", header.getvalue() + b"\0" * 16)
    path = rewrite(valid, tmp_path / "liar.keras", weights=buf.getvalue())
    (model_result,) = load_in_child([(path, "model")])
    assert model_result["outcome"] == "ValueError", model_result
    assert "declares shape (100000000000,)" in model_result["message"], model_result
    (weights_result,) = load_in_child([(path, "weights", valid)])
    assert weights_result["outcome"] == "ValueError", weights_result
    assert str(path) in weights_result["message"]


def test_deep_nesting_and_long_strings_are_refused(tmp_path, valid):
    deep = "[" * 5000 + "]" * 5000
    nested = rewrite(valid, tmp_path / "deep.keras",
                     config='{"class_name": "Sequential", "config": {"x": %s}}' % deep)
    deep_ok_for_parser = rewrite(
        valid, tmp_path / "deep2.keras",
        config='{"class_name": "Sequential", "config": {"x": %s}}' % ("[" * 300 + "]" * 300))
    long_name = rewrite(valid, tmp_path / "long.keras",
                        mutate_config=lambda c: c.update(name="n" * (limits.MAX_STRING_CHARS + 1)))
    results = load_in_child([(nested, "model"), (deep_ok_for_parser, "model"),
                             (long_name, "model")])
    for r, expect in zip(results, ["not valid JSON", "nested more than", "string of"]):
        assert r["outcome"] == "ValueError" and expect in r["message"], r
        assert r["path"] in r["message"]


def test_json_larger_than_limit_is_refused_before_reading(tmp_path, valid, monkeypatch):
    monkeypatch.setattr(limits, "MAX_JSON_BYTES", 1000)
    path = rewrite(valid, tmp_path / "big.keras",
                   mutate_config=lambda c: c.update(name="n" * 2000))
    with pytest.raises(ValueError, match="config.json is [0-9]+ bytes, more than the limit"):
        models.load_model(path)


def test_budget_counts_every_weight_and_resets():
    with limits.allocation_budget(30, "f.keras", slack=0):
        layers.Dense(3).build((None, 9))  # 27 + 3 = 30 values: exactly the budget
        with pytest.raises(ValueError, match="f.keras: weight 'kernel' of layer"):
            layers.Dense(1).build((None, 1))
    assert not limits.active_budget()
    layers.Dense(1000).build((None, 1000))  # no budget outside the block


def test_valid_files_load_under_the_limits(tmp_path, valid):
    model = models.load_model(valid)
    assert [w.shape for w in model.get_weights()] == \
        [w.shape for w in small_model().get_weights()]
    bigger = models.Sequential([layers.Input(shape=(32, 32, 3)), layers.Conv2D(64, 3),
                                layers.Flatten(), layers.Dense(100)])
    bigger.save(tmp_path / "bigger.keras")
    assert models.load_model(tmp_path / "bigger.keras").count_params() == bigger.count_params()


def test_allocation_budget_rejects_bad_arguments():
    with pytest.raises(ValueError, match="max_floats"):
        with limits.allocation_budget(-1, "x"):
            pass
    with pytest.raises(ValueError, match="MAX_SAMPLE_ELEMENTS"):
        limits.check_shape((None, 2 ** 15, 2 ** 15, 3), "input", "x.keras")


def test_compressed_entries_may_not_expand_far_beyond_what_is_stored(tmp_path, valid_native):
    valid = valid_native
    zeros = np.zeros(5 * 2 ** 20, np.float32)  # 20 MiB that deflate to about 20 KiB
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        buf = io.BytesIO()
        np.save(buf, zeros)
        zf.writestr("layers/1/vars/0.npy", buf.getvalue())
    inner_bomb = rewrite(valid, tmp_path / "inner.keras", weights=inner.getvalue())
    outer_bomb = tmp_path / "outer.keras"
    with zipfile.ZipFile(valid) as src, zipfile.ZipFile(outer_bomb, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "model.weights.npz":
                dst.writestr(name, data + b"\0" * len(zeros.data), zipfile.ZIP_DEFLATED)
            else:
                dst.writestr(name, data)
    results = load_in_child([(inner_bomb, "model"), (outer_bomb, "model")])
    for r in results:
        assert r["outcome"] == "ValueError" and "MAX_EXPANSION" in r["message"], r
        assert r["path"] in r["message"]
