"""benchmarks/stream_stores.py runs end to end (--quick) and leaves the policy as it was."""
import os
import sys

import fastcnn
from conftest import num_threads

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import stream_stores  # noqa: E402


def test_stream_stores_quick_run(capsys):
    big = 64 << 20
    assert fastcnn._ext.stream_output(big)
    with num_threads(fastcnn.get_num_threads()):  # main sets the thread count
        rows = stream_stores.main(["--quick", "--threads", "1"])
    assert [r[0] for r in rows] == ["DepthwiseConv2D 3x3", "SeparableConv2D 3x3"]
    assert all(r[2] > 0 and r[3] > 0 for r in rows)
    assert "cached" in capsys.readouterr().out
    assert fastcnn._ext.stream_output(big)  # the default policy is back
    assert not fastcnn._ext.stream_output(1 << 20)
