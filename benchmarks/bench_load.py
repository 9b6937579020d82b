"""A lecture hall against the app: N students over raw HTTP on Gradio's REST API.

    python benchmarks/bench_load.py --students 50 --requests 1500        # starts `python app.py`
    python benchmarks/bench_load.py --url http://127.0.0.1:7860 --students 100

Each student uploads a digit once, then repeats: pick an action (reconstruct, sample,
interpolate, a learned-prior code grid), call it, and look at the result for an exponentially
distributed think time (mean ``--think`` seconds). One asyncio loop drives every student over
plain HTTP (``POST /gradio_api/call/<name>``, then the event stream of the answer), so the
load generator stays a few percent of one core and the server gets the machine.

Printed: requests/s, p50 / p95 / max latency (call to complete), errors, the server's RSS
before and after, and the generator's own CPU share. The machine is printed first.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DIGITS = sorted((REPO / "assets" / "examples" / "mnist").glob("*.png"))
VAES = ["mnist-vae-z16", "mnist-flow-z16"]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    done: int = 0
    t0: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str, float]] = field(default_factory=list)  # (start, action, s)

    def add(self, action: str, seconds: float, start: float | None = None) -> None:
        self.latencies.setdefault(action, []).append(seconds)
        self.timeline.append((round((start or time.monotonic()) - self.t0, 3), action,
                              round(seconds, 4)))
        self.done += 1


# ----------------------------------------------------------------------------- HTTP helpers

class Http:
    """One student's keep-alive HTTP/1.1 connection, speaking just what the benchmark sends.

    A general client (httpx) cost the generator 6 ms of CPU per call, about 10 % of a core
    for 100 students; this one parses a status line, headers and a plain or chunked body.
    An idle connection is reopened after 3 s (before the server's 5 s keep-alive timeout),
    and one the server closed under a request is reopened once: the request never arrived.
    """

    IDLE_S = 3.0

    def __init__(self, url: str, timeout: float):
        self.host, _, port = url.split("://", 1)[-1].rstrip("/").partition(":")
        self.port, self.timeout = int(port or 80), timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last = 0.0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      content_type: str = "application/json") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if method == "POST":
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        for attempt in (0, 1):
            if self.writer is None or time.monotonic() - self.last > self.IDLE_S:
                self.close()
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(head.encode() + b"\r\n" + body)
                out = await asyncio.wait_for(self._response(), self.timeout)
                self.last = time.monotonic()
                return out
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
            except TimeoutError:  # an answer may still come: this connection is done
                self.close()
                raise
        raise AssertionError("unreachable")

    async def _response(self) -> bytes:
        status = int((await self.reader.readuntil(b"\r\n")).split()[1])
        headers = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            body = bytearray()
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readuntil(b"\r\n")                    # the last chunk's end
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection") == "close":
            self.close()
        if status >= 400:
            raise RuntimeError(f"HTTP {status}: {bytes(body[:200])!r}")
        return bytes(body)


async def upload(http: Http, path: Path) -> dict:
    boundary = "latentlab-bench-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{path.name}"\r\nContent-Type: image/png\r\n\r\n').encode()
    body += path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    answer = await http.request("POST", "/gradio_api/upload", body,
                                f"multipart/form-data; boundary={boundary}")
    return {"path": json.loads(answer)[0], "meta": {"_type": "gradio.FileData"},
            "orig_name": path.name}


async def call(http: Http, name: str, data: list, session: str | None = None) -> str:
    """POST the call, then read its event stream to its end ('complete' or 'error'); returns the
    complete event's data unparsed (the students do not read it, and parsing every figure's
    JSON would cost the generator CPU the server should get).

    ``session``: the student's session hash, as a browser page sends one for all its
    events (None: Gradio makes a fresh session for every call, as a bare API caller does).
    """
    body = {"data": data} if session is None else {"data": data, "session_hash": session}
    answer = await http.request("POST", f"/gradio_api/call/{name}", json.dumps(body).encode())
    event_id = json.loads(answer)["event_id"]
    # Gradio ends this event stream after the 'complete' (or 'error') event
    events = await http.request("GET", f"/gradio_api/call/{name}/{event_id}")
    for event in (b"complete", b"error"):
        at = events.find(b"event: " + event)
        if at >= 0:
            end = events.find(b"\n\n", at)
            payload = events[at: None if end < 0 else end].split(b"data:", 1)[-1].strip().decode()
            if event == b"error":
                raise RuntimeError(f"{name}: {payload[:200]}")
            return payload
    raise RuntimeError(f"{name}: stream ended without a result")


def actions(image_a: dict, image_b: dict, seed: int) -> dict[str, tuple[str, list]]:
    """What a student can click, with the UI's default settings (the seed varies)."""
    return {
        "reconstruct": ("reconstruct", [image_a, [*VAES, "mnist-vqvae"], 100, seed, "threshold"]),
        "sample": ("sample", [VAES, "prior", 64, 1.0, False, seed]),
        "interpolate": ("interpolate", [image_a, image_b, VAES, 12, "linear", True, "threshold"]),
        "code_grid": ("code_sample_learned", ["mnist-vqvae", 1.0, seed]),
    }


# ----------------------------------------------------------------------------- students

async def student(client: Http, rng: random.Random, tally: Tally, args,
                  stop_at: float) -> None:
    await asyncio.sleep(rng.uniform(0, args.think))  # students do not all click at once
    # One page = one Gradio session for all of a student's clicks (--session-per-request:
    # a fresh one per call, which costs the server a session object each time).
    session = None if args.session_per_request else f"student-{rng.getrandbits(64):016x}"
    try:
        a, b = rng.sample(DIGITS, 2)
        image_a, image_b = await upload(client, a), await upload(client, b)
        json.loads(await call(client, "prepare", [image_a], session))  # a real answer
    except Exception as exc:  # a failed start is one error: the student leaves
        tally.errors.append(f"start: {exc!r}")
        return
    while time.monotonic() < stop_at and tally.done + len(tally.errors) < args.requests:
        seed = 0 if rng.random() < args.default_seed_share else rng.randrange(1000)
        kind = rng.choice(list(actions(image_a, image_b, seed)))
        name, data = actions(image_a, image_b, seed)[kind]
        start = time.monotonic()
        try:
            await call(client, name, data, session)
            tally.add(kind, time.monotonic() - start, start)
        except Exception as exc:  # counted and reported: the run goes on
            tally.errors.append(f"{kind}: {exc!r}")
        await asyncio.sleep(rng.expovariate(1.0 / args.think))


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_s(pid: int | None) -> float | None:
    """The process's user + system CPU seconds so far (its children not included)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


async def run_load(args, pid: int | None) -> dict:
    tally, rng = Tally(), random.Random(args.seed)
    clients = [Http(args.url, args.timeout) for _ in range(args.students)]
    rss_before, server_cpu0 = rss_mb(pid), cpu_s(pid)
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    try:
        stop_at = time.monotonic() + args.duration
        await asyncio.gather(*(student(client, random.Random(rng.random()), tally, args, stop_at)
                               for client in clients))
    finally:
        for client in clients:
            client.close()
    wall = time.monotonic() - wall0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    res = summarise(tally, wall, cpu, rss_before, rss_mb(pid))
    server_cpu1 = cpu_s(pid)
    if server_cpu0 is not None and server_cpu1 is not None and res["requests"]:
        # CPU per request: comparable across runs even when other work shares the machine
        res["server_cpu_ms_per_request"] = 1000 * (server_cpu1 - server_cpu0) / res["requests"]
    return res


def summarise(tally: Tally, wall: float, cpu: float, rss_before, rss_after) -> dict:
    every = sorted(t for ts in tally.latencies.values() for t in ts)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    return {
        "requests": len(every), "errors": len(tally.errors), "error_examples": tally.errors[:5],
        "requests_per_s": len(every) / wall, "wall_s": wall,
        "p50_s": pct(every, 0.5), "p95_s": pct(every, 0.95), "max_s": every[-1] if every else None,
        "per_action_p50_s": {k: statistics.median(v) for k, v in tally.latencies.items()},
        "per_action_p95_s": {k: pct(sorted(v), 0.95) for k, v in tally.latencies.items()},
        "server_rss_mb_before": rss_before, "server_rss_mb_after": rss_after,
        "generator_cpu_share_of_one_core": cpu / wall,
        "p95_after_first_30s_s": pct(sorted(s for t, _, s in tally.timeline if t >= 30), 0.95),
        "timeline": tally.timeline,
    }


# ----------------------------------------------------------------------------- server

def start_server(port: int) -> subprocess.Popen:
    # stderr into a file, not a pipe nobody reads during the run: a full pipe would stall
    # the server's logging (and with it the server) in a long run
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def server_log(proc: subprocess.Popen) -> str:
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


def wait_ready(url: str, proc: subprocess.Popen | None, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the app exited: {server_log(proc)[-2000:]}")
        try:
            if httpx.get(url + "/gradio_api/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the app did not answer at {url} within {limit_s:.0f} s")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running app (default: start `python app.py` on --port)")
    p.add_argument("--port", type=int, default=7861)
    p.add_argument("--students", type=int, default=50)
    p.add_argument("--think", type=float, default=5.0, help="mean think time (s)")
    p.add_argument("--requests", type=int, default=1500, help="stop after this many requests")
    p.add_argument("--duration", type=float, default=600.0, help="stop after this many seconds")
    p.add_argument("--default-seed-share", type=float, default=0.5,
                   help="share of requests with the UI's default seed 0 (the rest random)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pid", type=int, help="with --url: the server's process id (for its RSS)")
    p.add_argument("--session-per-request", action="store_true",
                   help="no session hash: every call opens a new Gradio session (bare API use)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    print(f"machine: {platform.platform()}, {os.cpu_count()} cores, python {platform.python_version()}")
    proc = None
    if args.url is None:
        args.url = f"http://127.0.0.1:{args.port}"
        proc = start_server(args.port)
    try:
        wait_ready(args.url, proc)
        # its own thread: the caller may already run an event loop (a test beside Playwright)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            res = pool.submit(asyncio.run, run_load(args, proc.pid if proc else args.pid)).result()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    if proc is not None:  # e.g. "Too much data for declared Content-Length": a file served while written
        res["server_log_errors"] = [line for line in server_log(proc).splitlines()
                                    if "Error" in line or "Content-Length" in line][:20]
    print(f"{args.students} students, think {args.think:g} s: {res['requests']} requests in "
          f"{res['wall_s']:.0f} s = {res['requests_per_s']:.1f}/s; p50 {res['p50_s']:.2f} s, "
          f"p95 {res['p95_s']:.2f} s, max {res['max_s'] or float('nan'):.2f} s; errors {res['errors']}")
    rss = [None if v is None else round(v) for v in (res["server_rss_mb_before"],
                                                     res["server_rss_mb_after"])]
    per_req = res.get("server_cpu_ms_per_request")
    print(f"server RSS {rss[0]} -> {rss[1]} MB; server CPU "
          f"{'?' if per_req is None else f'{per_req:.0f}'} ms per request; "
          f"generator CPU {100 * res['generator_cpu_share_of_one_core']:.1f} % of one core")
    print(f"p95 of the requests started after the first 30 s (the class has arrived): "
          f"{res['p95_after_first_30s_s']:.2f} s")
    print("per action p50 / p95 (s):", {k: (round(v, 3), round(res["per_action_p95_s"][k], 3))
                                         for k, v in res["per_action_p50_s"].items()})
    if res["error_examples"]:
        print("errors, first ones:", *res["error_examples"], sep="\n  ")
    if res.get("server_log_errors"):
        print("server log errors:", *res["server_log_errors"], sep="\n  ")
    if args.json:
        res["args"] = {k: v for k, v in vars(args).items() if k != "json"}
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
