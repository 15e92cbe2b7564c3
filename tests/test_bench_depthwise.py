"""benchmarks/bench_depthwise.py --one-pass runs end to end (--quick, no PyTorch needed)."""
import os
import sys

import fastcnn
from conftest import num_threads

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import bench_depthwise  # noqa: E402


def test_one_pass_ab_quick_run(capsys):
    with num_threads(fastcnn.get_num_threads()):  # main sets the thread count
        rows = bench_depthwise.main(["--one-pass", "--quick", "--rounds", "2", "--threads", "1"])
    assert [r["stride"] for r in rows] == [1, 2]
    assert all(r["two_pass_ms"] > 0 and r["one_pass_ms"] > 0 for r in rows)
    assert "one-pass" in capsys.readouterr().out
