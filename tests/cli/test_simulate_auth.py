"""``iinode simulate`` logs in to a broker that asks for a password (real processes)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cli.cli_support import ENV, IINODE, free_range

BROKER = """
import asyncio, sys
from iinode.connectivity.broker import EmbeddedBroker

async def main():
    async with EmbeddedBroker("127.0.0.1", int(sys.argv[1]), password=sys.argv[2]):
        await asyncio.Event().wait()

asyncio.run(main())
"""
PASSWORD = "dev-pw-77"


@pytest.fixture
def broker() -> Iterator[int]:
    port = free_range(1)
    proc = subprocess.Popen([sys.executable, "-c", BROKER, str(port), PASSWORD], env=ENV)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the broker did not start"
                time.sleep(0.1)
        yield port
    finally:
        proc.kill()
        proc.wait()


def simulate(
    port: int, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IINODE, "simulate", "--broker", f"127.0.0.1:{port}", "--prefix", "88.1.2",
         "--steps", "3", *args],
        capture_output=True, text=True, timeout=120, env={**ENV, **(env or {})},
    )  # fmt: skip


def test_wrong_or_missing_password_is_one_error_line(broker: int) -> None:
    for args in ((), ("--mqtt-password", "guess")):
        proc = simulate(broker, *args)
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, proc.stderr
        assert lines[0] == (
            f"error: cannot connect to the MQTT broker at 127.0.0.1:{broker}: "
            "it refused user 'iinode-sim' (wrong or missing password)"
        )


def test_password_from_the_option_or_the_node_setting(broker: int) -> None:
    proc = simulate(broker, "--mqtt-password", PASSWORD)
    assert proc.returncode == 0, proc.stderr
    assert "published" in proc.stdout
    proc = simulate(broker, "--mqtt-user", "press-9", env={"IINODE_MQTT_PASSWORD": PASSWORD})
    assert proc.returncode == 0, proc.stderr
    assert "published" in proc.stdout
