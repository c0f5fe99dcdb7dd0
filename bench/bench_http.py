"""GET /api/handles/{h} throughput vs a bare "hello" endpoint on the same stack.

    .venv/bin/python bench/bench_http.py --runs 3 --seconds 5

Both apps are FastAPI on uvicorn (httptools, uvloop) with the same number of
worker processes (``--workers``, default 1), loaded by wrk (Debian package) with
32 connections from one thread; the runs alternate between the two servers and
the medians are reported.  The node is started through ``app_from_env``
(``app_for_settings``, what each ``iinode serve`` worker runs, with the settings
handed over as data), on a SQLite store of 10,000 handles.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import asyncio, os, sys
from pathlib import Path
import uvicorn

kind, port, workers, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
common = dict(host="127.0.0.1", port=port, workers=workers, loop="uvloop", http="httptools",
              log_level="warning", access_log=False)
if kind == "hello":
    (tmp / "hello_app.py").write_text(HELLO)
    uvicorn.run("hello_app:app", app_dir=str(tmp), **common)
else:
    from iinode.identifiers import HandleName, HandleValue, UrlData
    from iinode.node.bulk import BulkRegistrar
    from iinode.node.service import HandleService
    from iinode.node.settings import NodeSettings, Role
    from iinode.storage import open_store

    data = tmp / "node"
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=data, prefix="88.118.8",
                            http_port=port, telemetry=False)
    settings.save()

    async def setup() -> None:
        store = await open_store(settings.store_url, base_dir=data)
        service = HandleService(settings, store)
        await service.initialise("x")
        reg = BulkRegistrar(service)
        rows = [reg.encode(HandleName("88.118.8", f"P{n}"),
                [HandleValue(1, "URL", UrlData(f"http://f.cn/{n}"))]) for n in range(10000)]
        await reg.write(rows)
        await store.close()

    asyncio.run(setup())
    os.environ["IINODE_RESOLVED_SETTINGS"] = settings.to_json()
    # The node's app factory, with the settings handed over as data.
    uvicorn.run("iinode.assembly:app_from_env", factory=True, **common)
"""

HELLO = """
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/hello", response_class=PlainTextResponse)
async def hello() -> str:
    return "hello"
"""

LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/handles/88.118.8/P" .. (counter % 10000))
end
"""


CONNECTIONS = 32


def wrk(url: str, seconds: int, script: Path | None) -> tuple[float, float, float]:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"failed requests during the run:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    return rps, pct("50"), pct("99")


def start(kind: str, port: int, workers: int, tmp: Path) -> subprocess.Popen[bytes]:
    code = f"HELLO = {HELLO!r}\n{SERVER}"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, kind, str(port), str(workers), str(tmp)],
        start_new_session=True,
    )
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    stop(proc)
    raise RuntimeError(f"{kind} server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server and its worker processes (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, both servers")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    global CONNECTIONS
    CONNECTIONS = args.connections
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        script = tmp / "handles.lua"
        script.write_text(LUA)
        hello = start("hello", 18901, args.workers, tmp)
        node = start("node", 18902, args.workers, tmp)
        results: dict[str, list[tuple[float, float, float]]] = {"hello": [], "node": []}
        try:
            wrk("http://127.0.0.1:18901/hello", 1, None)
            wrk("http://127.0.0.1:18902/", 1, script)
            for _ in range(args.runs):
                results["hello"].append(wrk("http://127.0.0.1:18901/hello", args.seconds, None))
                results["node"].append(wrk("http://127.0.0.1:18902/", args.seconds, script))
        finally:
            stop(hello)
            stop(node)
    med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in results.items()}
    for k, (rps, p50, p99) in med.items():
        print(f"{k:6}: {rps:,.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(
        f"ratio GET /api/handles / hello: {med['node'][0] / med['hello'][0]:.2f} "
        f"(median of {args.runs} runs, {args.workers} worker(s) each, {CONNECTIONS} connections)"
    )


if __name__ == "__main__":
    main()
