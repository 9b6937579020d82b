"""The math panels' benchmark stays runnable: one smoke pass over every row on tiny models."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_panels_math


def test_bench_panels_math_smoke(capsys):
    rows = bench_panels_math.main(["--smoke", "--repeats", "1"])
    names = [r["name"] for r in rows]
    assert len(rows) == 14 and len(set(names)) == 14
    assert all(r["median_ms"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "CPUs" in out and "tiny random" in out and "gumbel" in out and "reparam" in out
