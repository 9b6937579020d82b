"""The lecture-hall load generator runs end to end against a real server (a tiny load)."""

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"


def test_bench_load_drives_every_action_without_errors():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    res = bench.main(["--students", "2", "--requests", "12", "--think", "0.05", "--port", "7893",
                      "--seed", "1"])
    assert res["errors"] == 0, res["error_examples"]
    assert res["requests"] >= 12
    assert set(res["per_action_p50_s"]) == {"reconstruct", "sample", "interpolate", "code_grid"}
    assert res["server_rss_mb_after"] > 0
    assert res["generator_cpu_share_of_one_core"] < 0.5
    assert res["server_cpu_ms_per_request"] > 0
