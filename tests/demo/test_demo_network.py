"""The demo network carries telemetry and monitoring end to end; the CLI reads it."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from cli.cli_support import free_range
from iinode.demo.network import AUTO_ACK, NOTICE_ID, SECRET, DemoNetwork, ports_needed


def _base_port() -> int:
    return free_range(ports_needed())


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[DemoNetwork]:
    console = Console(file=io.StringIO())
    async with DemoNetwork(
        console, _base_port(), tmp_path, products=50, heartbeat=0.3, step_interval=0.2
    ) as net:
        yield net


async def _cli(*args: str) -> tuple[int, str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "IINODE_ADMIN_SECRET": SECRET}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "iinode", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _until(check: object, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {limit} s")


async def test_demo_carries_telemetry_and_monitoring(network: DemoNetwork) -> None:
    top = network.nodes["88"].url
    ent = network.nodes["88.118.8"]
    admin = httpx.BasicAuth("300%3A0.NA%2F88", SECRET)
    async with httpx.AsyncClient(timeout=10) as c:
        # equipment are identifiers, resolvable from the top through the hierarchy
        r = await c.get(f"{top}/api/handles/88.118.8/PRESS-01", follow_redirects=True)
        assert "IINODE_EQUIPMENT" in {v["type"] for v in r.json()["values"]}

        async def stored() -> bool:
            r = await c.get(f"{ent.url}/telemetry/equipment/88.118.8/PRESS-01/history",
                            params={"tag": "good_count", "limit": 1000})  # fmt: skip
            return len(r.json()["readings"]) >= 10

        await _until(stored)
        assert ent.extensions.telemetry.rejects.total == 0

        async def all_acked() -> bool:
            r = await c.get(f"{top}/monitoring/notices/{NOTICE_ID}/progress", auth=admin)
            states = r.json()["states"]
            return all(states.get(p) == "acknowledged" for p in AUTO_ACK)

        await _until(all_acked)
        r = await c.get(f"{top}/monitoring/nodes", auth=admin)
        origins = {n["origin"] for n in r.json()["nodes"]}
        assert {"88.118", "88.120", "88.118.8", "88.118.9", "88.120.3", "88.120.5"} <= origins
        assert (await c.get(f"{top}/monitoring/nodes")).status_code == 401
        metrics = (await c.get(f"{ent.url}/metrics")).text
        assert "iinode_telemetry_points_stored" in metrics

    # the CLI over the running network
    pharma = network.nodes["88.120.5"].url
    code, out = await _cli("equipment", "list", "--node", ent.url)
    assert code == 0, out
    assert "88.118.8/PRESS-01" in out, out
    assert "3 equipment" in out, out
    code, out = await _cli("telemetry", "query", "88.118.8/PRESS-01", "--node", ent.url,
                           "--tag", "temperature", "--interval", "600")  # fmt: skip
    assert code == 0, out
    assert "avg" in out, out
    code, out = await _cli("telemetry", "query", "88.118.8/PRESS-01", "--node", ent.url, "--latest")
    assert code == 0, out
    assert "good_count" in out, out
    code, out = await _cli("monitor", "ack", NOTICE_ID, "--node", pharma)
    assert code == 0, out
    code, out = await _cli("monitor", "ack", NOTICE_ID, "--node", pharma)
    assert code == 1, out
    assert "Traceback" not in out, out
    assert "acknowledged" in out, out

    async def pharma_acked() -> bool:
        _, out = await _cli("monitor", "notices", "--node", top)
        return any(line.split() == ["88.120.5", "acknowledged"] for line in out.splitlines())

    await _until(pharma_acked, 30)
    code, out = await _cli("monitor", "status", "--node", top)
    assert code == 0, out
    assert "88.120.5" in out, out
    assert "0 stopped reporting" in out, out
    code, out = await _cli("monitor", "status", "--node", top, "--secret", "wrong")
    assert code == 1, out
    assert "Traceback" not in out, out
