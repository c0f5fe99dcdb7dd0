"""GET /api/handles/{h} throughput vs a bare "hello" endpoint on the same stack.

    .venv/bin/python bench/bench_http.py --runs 3 --seconds 5

Both apps are FastAPI on uvicorn (httptools, uvloop), one worker process each,
loaded by wrk (Debian package) with 32 connections from one thread; the runs
alternate between the two servers and the medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = """
import asyncio, sys
from pathlib import Path
import uvicorn
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from iinode.api.app import create_app
from iinode.identifiers import HandleName, HandleValue, UrlData
from iinode.node.service import BulkRegistrar, HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore

kind, port, tmp = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
if kind == "hello":
    app = FastAPI()

    @app.get("/hello", response_class=PlainTextResponse)
    async def hello() -> str:
        return "hello"
else:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp, prefix="88.118.8", http_port=port)
    store = SQLiteStore(tmp / "h.sqlite3")
    service = HandleService(settings, store)
    async def setup() -> None:
        await service.initialise("x")
        reg = BulkRegistrar(service)
        rows = [reg.encode(HandleName("88.118.8", f"P{n}"),
                [HandleValue(1, "URL", UrlData(f"http://f.cn/{n}"))]) for n in range(10000)]
        await reg.write(rows)
    asyncio.run(setup())
    app = create_app(service)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""

LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/api/handles/88.118.8/P" .. (counter % 10000))
end
"""


def wrk(url: str, seconds: int, script: Path | None) -> tuple[float, float, float]:
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    return rps, pct("50"), pct("99")


def start(kind: str, port: int, tmp: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port), str(tmp)])
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        script = tmp / "handles.lua"
        script.write_text(LUA)
        hello = start("hello", 18901, tmp)
        node = start("node", 18902, tmp)
        results: dict[str, list[tuple[float, float, float]]] = {"hello": [], "node": []}
        try:
            wrk("http://127.0.0.1:18901/hello", 1, None)
            wrk("http://127.0.0.1:18902/", 1, script)
            for _ in range(args.runs):
                results["hello"].append(wrk("http://127.0.0.1:18901/hello", args.seconds, None))
                results["node"].append(wrk("http://127.0.0.1:18902/", args.seconds, script))
        finally:
            hello.kill()
            node.kill()
    med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in results.items()}
    for k, (rps, p50, p99) in med.items():
        print(f"{k:6}: {rps:,.0f} req/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print(
        f"ratio GET /api/handles / hello: {med['node'][0] / med['hello'][0]:.2f} "
        f"(median of {args.runs} runs)"
    )


if __name__ == "__main__":
    asyncio.run(asyncio.sleep(0))
    main()
