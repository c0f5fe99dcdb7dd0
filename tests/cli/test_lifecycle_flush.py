"""What a node acknowledged before SIGTERM is stored (real ``iinode serve`` processes)."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from cli.cli_support import iinode
from cli.test_lifecycle import assert_gone, launch, listening, make_node
from iinode.connectivity.sim_sparkplug import SparkplugSimulator
from iinode.telemetry.model import from_us
from iinode.telemetry.simulator import Factory, ShiftCalendar

STEPS = 5


def test_readings_acknowledged_before_sigterm_are_stored(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    url = f"http://127.0.0.1:{node.http}"
    proc, log = launch(node)
    try:
        ports = listening(proc, log)
        # registers machine 88.5/M001 (Sparkplug edge node sim0) as the CLI does
        iinode("simulate", "--node", url, "--secret", "pw", "--machines", "1", "--steps", "1")
        start = datetime.now(UTC) - timedelta(hours=1)
        plant = Factory("88.5", Factory.demo("88.5", 1, 0).specs, 0, start=start,
                        calendar=ShiftCalendar())  # fmt: skip
        sent: dict[str, int] = {}

        async def publish_then_stop() -> None:
            async with SparkplugSimulator(plant, "127.0.0.1", node.mqtt, node_id="sim0") as sim:
                for _ in range(STEPS):
                    points = await sim.step(60)  # each publish waits for its PUBACK (QoS 1)
                    sent[from_us(plant.time_us).isoformat()] = points
                os.kill(proc.pid, signal.SIGTERM)  # at once: nothing waits for the ingest

        asyncio.run(publish_then_stop())
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert_gone(proc.pid, ports)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    proc, log = launch(node)
    try:
        listening(proc, log)
        r = httpx.get(f"{url}/telemetry/equipment/88.5/M001/history", params={"limit": 100_000})
        assert r.status_code == 200, r.text
        stored: dict[str, int] = {}
        for reading in r.json()["readings"]:
            stored[reading["time"]] = stored.get(reading["time"], 0) + 1
        assert sum(sent.values()) > 0
        assert {t: stored.get(t, 0) for t in sent} == sent
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
