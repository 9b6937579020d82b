"""The model panels' benchmark stays runnable: one smoke pass over every row on tiny models."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_panels_models


def test_bench_panels_models_smoke(capsys, tmp_path):
    rows = bench_panels_models.main(["--smoke", "--repeats", "1", "--json", str(tmp_path / "b.json")])
    names = [r["name"] for r in rows]
    assert len(rows) == 12 and len(set(names)) == 12
    assert all(r["median_ms"] > 0 for r in rows)
    for panel in ("elbo_gap", "traversal", "beta_sweep", "autoencoder", "surgery_priors"):
        assert any(name.startswith(panel) for name in names)
    out = capsys.readouterr().out
    assert "CPUs" in out and "tiny random" in out and "(once)" in out
    assert (tmp_path / "b.json").read_text().count("median_ms") == 12
