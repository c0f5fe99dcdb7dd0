"""Running ``iinode`` commands and servers as real processes (``cli.cli_support``)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx

IINODE = [sys.executable, "-m", "iinode"]
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}


def iinode(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*IINODE, *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    return proc


def auth(prefix: str, secret: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(quote(f"300:0.NA/{prefix}", safe=""), secret)


def free_range(count: int, low: int = 12_000, high: int = 32_000) -> int:
    """The first of ``count`` consecutive free ports, below the ephemeral range.

    Ports the kernel hands to outgoing connections (32768 and up here) can be
    held by TIME_WAIT sockets of busy neighbours; servers in tests stay below.
    """
    rng = random.Random()
    for _ in range(500):
        base = rng.randrange(low, high - count)
        if all(_free(p) for p in range(base, base + count)):
            return base
    raise AssertionError(f"no {count} free consecutive ports")


def http_port() -> int:
    """A free HTTP port whose derived embedded-broker port (+10000) is free too."""
    for _ in range(500):
        port = free_range(1, 12_000, 22_000)
        if _free(port + 10_000):
            return port
    raise AssertionError("no free port pair")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def init(data: Path, role: str, prefix: str, port: int, secret: str, *extra: str) -> None:
    iinode(
        "init", "--role", role, "--prefix", prefix, "--data-dir", str(data),
        "--admin-secret", secret, "--http-port", str(port), *extra,
    )  # fmt: skip


def tune(data: Path, **settings: float) -> None:
    """Set values in a node's ``node.toml`` (faster intervals for tests)."""
    path = data / "node.toml"
    kept = [
        line for line in path.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0].strip() not in settings
    ]  # fmt: skip
    kept += [f"{name} = {value}" for name, value in settings.items()]
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")


@contextmanager
def serving(
    data: Path, port: int, *extra: str, log: Path | None = None
) -> Iterator[subprocess.Popen[str]]:
    """``iinode serve`` in the background until ``/healthz`` answers; stopped afterwards."""
    out = (log or data.with_suffix(".log")).open("w")
    proc = subprocess.Popen(
        [*IINODE, "serve", "--data-dir", str(data), *extra],
        stdout=out, stderr=subprocess.STDOUT, text=True, env=ENV,
    )  # fmt: skip
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def wait_healthy(url: str, proc: subprocess.Popen[str], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def eventually(check: object, limit: float = 20.0, every: float = 0.2) -> object:
    """Call ``check()`` until it returns something true; return that."""
    assert callable(check)
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)
