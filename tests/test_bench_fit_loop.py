"""benchmarks/fit_loop.py runs (tiny settings; timings are never checked here)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fit_loop_benchmark_runs(monkeypatch):
    monkeypatch.setattr(sys, "path", [os.path.join(ROOT, "benchmarks")] + sys.path)
    import fit_loop
    rows = fit_loop.main(["--repeats", "1", "--samples", "64", "--batch", "32"])
    assert set(rows) == {"train_step alone", "fit(arrays, shuffle)",
                         "fit(arrays, shuffle=False)", "fit(Dataset)"}
    assert all(v > 0 for v in rows.values())
