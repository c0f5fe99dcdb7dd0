"""``iinode simulate`` turns MQTT connection trouble into one error line (real processes)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from cli.cli_support import ENV, IINODE, free_range, iinode

BROKER = """
import asyncio, sys
from iinode.connectivity.broker import EmbeddedBroker

async def main():
    async with EmbeddedBroker("127.0.0.1", int(sys.argv[1])):
        await asyncio.Event().wait()

asyncio.run(main())
"""


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_no_broker_is_one_line() -> None:
    port = free_range(1)
    proc = iinode("simulate", "--broker", f"127.0.0.1:{port}", "--prefix", "88.1.2",
                  "--steps", "1", check=False)  # fmt: skip
    line = _one_error_line(proc)
    assert f"cannot connect to the MQTT broker at 127.0.0.1:{port}" in line


def test_broker_lost_while_publishing_is_one_line() -> None:
    port = free_range(1)
    broker = subprocess.Popen([sys.executable, "-c", BROKER, str(port)], env=ENV)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the broker did not start"
                time.sleep(0.1)
        sim = subprocess.Popen(
            [*IINODE, "simulate", "--broker", f"127.0.0.1:{port}", "--prefix", "88.1.2",
             "--steps", "2000", "--pace", "0.02"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )  # fmt: skip
        time.sleep(2.0)
        assert sim.poll() is None, sim.communicate()
        broker.kill()
        out, err = sim.communicate(timeout=60)
    finally:
        broker.kill()
        broker.wait()
    line = _one_error_line(subprocess.CompletedProcess(sim.args, sim.returncode, out, err))
    assert f"MQTT broker at 127.0.0.1:{port}" in line
