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


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = bench
    spec.loader.exec_module(bench)
    return bench


def test_call_reads_the_result_or_raises_the_error():
    import asyncio

    import httpx
    import pytest

    bench = _bench()
    streams = {"ok": b'event: heartbeat\ndata: null\n\nevent: complete\ndata: [1, 2]\n\n',
               "bad": b'event: error\ndata: "no checkpoint named nope"\n\n',
               "cut": b'event: heartbeat\ndata: null\n\n'}

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.split("/")[3]
        if request.method == "POST":
            return httpx.Response(200, json={"event_id": "e1"})
        return httpx.Response(200, content=streams[name])

    async def go(name):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler),
                                     base_url="http://x") as client:
            return await bench.call(client, name, [], "s")

    assert asyncio.run(go("ok")) == "[1, 2]"
    with pytest.raises(RuntimeError, match="no checkpoint named nope"):
        asyncio.run(go("bad"))
    with pytest.raises(RuntimeError, match="without a result"):
        asyncio.run(go("cut"))
