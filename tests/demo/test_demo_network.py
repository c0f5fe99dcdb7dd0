"""The demo network carries telemetry and monitoring end to end; the CLI reads it."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shlex
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from cli.cli_support import free_range
from iinode.demo.network import DemoNetwork
from iinode.demo.run import howto, run_demo
from iinode.demo.topology import AUTO_ACK, NOTICE_ID, SECRET, ports_needed
from iinode.identifiers import HandleName, HandleValue, UrlData
from iinode.node.service import site_from_url
from iinode.resolution.native_client import NativeResolver


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

        answers: list[str] = []

        async def stored() -> bool:
            r = await c.get(f"{ent.url}/telemetry/equipment/88.118.8/PRESS-01/history",
                            params={"tag": "good_count", "limit": 1000})  # fmt: skip
            answers.append(f"{r.status_code} {r.text[:200]}")
            return r.status_code == 200 and len(r.json()["readings"]) >= 10

        try:
            await _until(stored)
        except AssertionError:
            raise AssertionError(f"history never filled; last answers: {answers[-3:]}") from None
        assert all(a.startswith("200") for a in answers), answers
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
    assert "6 equipment" in out, out  # 3 machines, the edge node, the OPC UA/Modbus cell
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

    async def all_reporting() -> bool:
        # heartbeats every 0.3 s: on a loaded machine a node can be briefly late
        code, out = await _cli("monitor", "status", "--node", top)
        assert code == 0, out
        assert "88.120.5" in out, out
        return "0 stopped reporting" in out

    await _until(all_reporting, 30)
    code, out = await _cli("monitor", "status", "--node", top, "--secret", "wrong")
    assert code == 1, out
    assert "Traceback" not in out, out


async def test_demo_prints_a_native_walk_that_works(tmp_path: Path) -> None:
    """The ``iinode resolve --native`` line the demo prints walks top -> secondary -> enterprise."""
    out = io.StringIO()
    base = _base_port()
    demo = asyncio.create_task(
        run_demo(Console(file=out, width=100), base_port=base, duration=60, data_dir=tmp_path,
                 products=20)
    )  # fmt: skip
    try:

        async def ready() -> bool:
            if demo.done():
                demo.result()
            return "admin identity" in out.getvalue()

        await _until(ready, 60)
        printed = out.getvalue()
        assert "resolved 88.120.5/REACTOR-01 over native" in printed, printed
        line = next(x for x in printed.splitlines() if "iinode resolve --native" in x)
        args = shlex.split(line)
        assert args[0] == "iinode", line
        code, walked = await _cli(*args[1:])
        assert code == 0, walked
        text = " ".join(walked.split())
        started = dict(re.findall(r"started \w+ +(\S+) +\S+ udp\+tcp:(\d+)", printed))
        top, sec = (f"udp://127.0.0.1:{started[p]}" for p in ("88", "88.118"))
        assert f"1. 0.NA/88.118.8 @ {top} PREFIX_REFERRAL delegated 88.118" in text, walked
        assert f"2. 0.NA/88.118.8 @ {sec} SUCCESS site of 88.118.8" in text, walked
        # An equipment record is more than the two UDP packets a server sends to an
        # unverified source, so the enterprise may answer TC and be asked over TCP.
        hop = f"3. 88.118.8/PRESS-01 @ {{}}://127.0.0.1:{started['88.118.8']} SUCCESS"
        assert hop.format("udp") in text or hop.format("tcp") in text, walked
        assert "IINODE_EQUIPMENT" in walked, walked
    finally:
        demo.cancel()
        with pytest.raises(asyncio.CancelledError):
            await demo


async def test_native_answers_follow_writes_over_rest(network: DemoNetwork) -> None:
    """A write through the REST API is seen at once by the node's native server."""
    top, ent = network.nodes["88"], network.nodes["88.118.8"]
    # A record small enough for one UDP answer (a demo product, with its template
    # attributes, is more than an unverified source gets over UDP).
    name = HandleName.parse("88.118.8/NATIVE-1")
    async with ent.client() as c:
        await c.put(name, [HandleValue(1, "URL", UrlData(f"{ent.url}/products/NATIVE-1"))])
    root = [site_from_url(top.url, top.handle_port)]
    resolver = NativeResolver(root)
    try:
        # Asked twice: the second answer comes from the UDP fast path's cache.
        for _ in range(2):
            resolved = await resolver.resolve(name)
            assert resolved.values[0].data == UrlData(f"{ent.url}/products/NATIVE-1")
        assert ent.native.counters.fast_hits >= 1
        async with ent.client() as c:
            await c.put(name, [HandleValue(1, "URL", UrlData("http://example.cn/recalled"))])
        resolved = await resolver.resolve(name)
        assert [v.data for v in resolved.values if v.type == "URL"] == [
            UrlData("http://example.cn/recalled")
        ]
    finally:
        await resolver.aclose()


async def test_demo_reads_its_field_cell_over_opcua_and_modbus(network: DemoNetwork) -> None:
    """The first enterprise's own connectors read its OPC UA and Modbus machines."""
    from iinode.demo.topology import FIELD_ENTERPRISE, FIELD_MACHINES
    from iinode.monitoring.node_sources import sources_of

    ent = network.nodes[FIELD_ENTERPRISE]
    async with httpx.AsyncClient(timeout=10) as c:
        for suffix in FIELD_MACHINES:
            url = f"{ent.url}/telemetry/equipment/{FIELD_ENTERPRISE}/{suffix}/history"

            async def read(url: str = url) -> bool:
                r = await c.get(url, params={"tag": "state"})
                return r.status_code == 200 and len(r.json()["readings"]) >= 1

            await _until(read)
        metrics = (await c.get(f"{ent.url}/metrics")).text
    up = [line for line in metrics.splitlines() if line.startswith("iinode_connector_up{")]
    assert len(up) == 3, up  # mqtt, opcua, modbus
    assert all(line.endswith(" 1.0") for line in up), up
    assert any('connector="opcua:opc.tcp://127.0.0.1:' in line for line in up), up
    assert ent.extensions.telemetry.rejects.total == 0
    # the Sparkplug edge node is known equipment, not an unknown device
    assert await ent.extensions.registry.get(f"{FIELD_ENTERPRISE}/plant") is not None
    sources = sources_of(ent.extensions)
    assert sources is not None

    async def inventoried() -> bool:
        held = {str(a.handle): a.source.value for a in sources.inventory.inventory}
        return [held.get(f"{FIELD_ENTERPRISE}/{m}") for m in FIELD_MACHINES] == ["opcua", "modbus"]

    await _until(inventoried)


async def test_the_printed_commands_work_as_printed(network: DemoNetwork) -> None:
    """Each read-only command the demo prints runs as printed, with no secret in the env."""
    env = {k: v for k, v in os.environ.items() if k != "IINODE_ADMIN_SECRET"}
    env.update(COLUMNS="200", NO_COLOR="1")
    lines = [
        line.split("   (")[0]
        for line in howto(network.nodes)
        if line.startswith("iinode ")
        and not line.startswith(("iinode simulate", "iinode monitor ack"))
    ]
    assert len(lines) >= 6
    for line in lines:
        args = shlex.split(line)[1:]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "iinode", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, (line, out.decode())
