"""benchmarks/bench_loader.py runs (tiny settings; timings are never checked here)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = os.path.join(ROOT, "..", "shared", "data", "cifar10", "cifar10-jpeg.tar.gz")


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not os.path.exists(TARBALL), reason="no shared CIFAR-10 JPEG copy")
def test_bench_loader_runs(tmp_path, capsys):
    pytest.importorskip("PIL")
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import bench_loader
    finally:
        sys.path.pop(0)
    try:
        bench_loader._torchvision()
        torch_args = []
    except Exception:  # torch / torchvision absent: fastcnn's rows only
        torch_args = ["--no-torch"]
    rows = bench_loader.main(["--per-class", "8", "--threads", "1", "--tarball", TARBALL,
                              "--cache", str(tmp_path / "cache")] + torch_args)
    assert all(rate > 0 for rate in rows.values())
    assert {"fastcnn arrays (a)", "fastcnn folder (b)", "fastcnn folder cached (c)",
            "loader fastcnn"} <= set(rows)
    assert "(c)/(a)" in capsys.readouterr().out
