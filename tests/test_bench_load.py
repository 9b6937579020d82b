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
    """The benchmark's own HTTP client against a tiny server: a plain and a chunked answer,
    an error event, a stream without a result, and a kept-alive connection the server closed."""
    import asyncio
    import concurrent.futures

    import pytest

    bench = _bench()
    streams = {"ok": b"event: heartbeat\ndata: null\n\nevent: complete\ndata: [1, 2]\n\n",
               "bad": b'event: error\ndata: "no checkpoint named nope"\n\n',
               "cut": b"event: heartbeat\ndata: null\n\n"}
    served = []

    async def serve(reader, writer):
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            line = head.split(b"\r\n")[0].decode()
            served.append(line)
            length = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
                      if h.lower().startswith(b"content-length")]
            await reader.readexactly(length[0] if length else 0)
            name = line.split()[1].split("/")[3]
            if line.startswith("POST"):
                body = b'{"event_id": "e1"}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:  # the event stream comes in two chunks
                s = streams[name]
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             + b"%x\r\n%s\r\n" % (5, s[:5]) + b"%x\r\n%s\r\n" % (len(s) - 5, s[5:])
                             + b"0\r\n\r\n")
                if name == "bad":  # then hangs up on the kept-alive connection
                    await writer.drain()
                    writer.close()
                    break
            await writer.drain()

    async def go():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        http = bench.Http(f"http://127.0.0.1:{port}", timeout=5)
        out = [await bench.call(http, "ok", [], "s")]
        with pytest.raises(RuntimeError, match="no checkpoint named nope"):
            await bench.call(http, "bad", [], "s")
        out.append(await bench.call(http, "ok", [], "s"))     # on a fresh connection
        with pytest.raises(RuntimeError, match="without a result"):
            await bench.call(http, "cut", [], "s")
        http.close()
        server.close()
        return out

    # its own thread, as bench_load.main does: a browser test may leave a loop running here
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, go()).result() == ["[1, 2]", "[1, 2]"]
    assert sum(line.startswith("POST") for line in served) == 4
