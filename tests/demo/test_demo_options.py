"""``iinode demo`` sizes, the simulated public's resolutions and ``--headless``."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from cli.cli_support import free_range
from iinode.demo.network import DemoNetwork
from iinode.demo.run import run_demo
from iinode.demo.topology import (
    DEFAULT_ENTERPRISES,
    SECRET,
    machine_names,
    network_specs,
    ports_needed,
)
from iinode.errors import ConfigurationError
from iinode.node.settings import Role


def test_network_has_three_provinces_and_the_asked_number_of_enterprises() -> None:
    default = network_specs()
    provinces = [s for s in default if s.role is Role.SECONDARY]
    assert [p.province for p in provinces] == ["JS", "GD", "HB"]
    enterprises = [s for s in default if s.role is Role.ENTERPRISE]
    assert len(enterprises) == DEFAULT_ENTERPRISES
    assert {e.parent for e in enterprises} == {p.prefix for p in provinces}
    big = [s for s in network_specs(14) if s.role is Role.ENTERPRISE]
    assert len(big) == 14
    assert len({s.prefix for s in big}) == 14
    assert all(s.parent in {p.prefix for p in provinces} for s in big)
    assert all(s.prefix.startswith(f"{s.parent}.") for s in big)
    assert {s.industry for s in big} == {
        "automobiles", "petrochemicals", "home-appliances", "medicine"
    }  # fmt: skip
    assert ports_needed(14) == 2 * (1 + 3 + 14) + 14 + 2
    for bad in (0, 61):
        with pytest.raises(ConfigurationError):
            network_specs(bad)


def test_machine_names_keep_the_first_ones_and_number_the_rest() -> None:
    assert machine_names("automobiles", 2) == ["PRESS-01", "WELD-ROBOT-02"]
    names = machine_names("automobiles", 7)
    assert names[:3] == ["PRESS-01", "WELD-ROBOT-02", "PAINT-LINE-03"]
    assert names[3:] == ["PRESS-04", "WELD-ROBOT-05", "PAINT-LINE-06", "PRESS-07"]


async def test_sized_network_with_a_public_resolving_at_every_level(tmp_path: Path) -> None:
    console = Console(file=io.StringIO())
    async with DemoNetwork(
        console, free_range(ports_needed(1)), tmp_path, products=20, heartbeat=0.5,
        step_interval=0.2, enterprises=1, machines=5, resolutions_per_second=40,
    ) as net:  # fmt: skip
        assert set(net.nodes) == {"88", "88.118", "88.120", "88.121", "88.118.8"}
        ent = net.nodes["88.118.8"]
        auth = httpx.BasicAuth("300%3A0.NA%2F88.118.8", SECRET)
        async with httpx.AsyncClient(timeout=10) as c:
            items = (await c.get(f"{ent.url}/telemetry/equipment", auth=auth)).json()
            machines = {i["id"]: i["line"] for i in items if "/LINE-" in (i["line"] or "")}
            assert len(machines) == 5
            assert sorted(set(machines.values())) == ["88.118.8/LINE-1", "88.118.8/LINE-2"]

            async def counted(url: str) -> tuple[float, float]:
                text = (await c.get(f"{url}/metrics")).text
                http = native = 0.0
                for line in text.splitlines():
                    if line.startswith('iinode_resolutions_total{transport="http"}'):
                        http = float(line.split()[-1])
                    elif line.startswith("iinode_native_requests_total "):
                        native = float(line.split()[-1])
                return http, native

            deadline = time.monotonic() + 20
            while True:
                top, leaf = await counted(net.nodes["88"].url), await counted(ent.url)
                # native clients keep the referrals they were given: the enterprise is
                # asked every time, the top over HTTP (no cache in the simulated public)
                if min(top[0], *leaf) >= 5:
                    break
                assert time.monotonic() < deadline, (top, leaf)
                await asyncio.sleep(0.3)
        assert net.resolved >= 10
    with pytest.raises(ConfigurationError):
        async with DemoNetwork(console, free_range(ports_needed(1)), tmp_path, enterprises=1,
                               machines=0):  # fmt: skip
            pass


async def test_headless_prints_one_json_line_and_no_hints(tmp_path: Path) -> None:
    out = io.StringIO()
    await run_demo(
        Console(file=out, width=80), base_port=free_range(ports_needed(1)), duration=1.0,
        data_dir=tmp_path, products=10, enterprises=1, machines=1, headless=True,
    )  # fmt: skip
    lines = out.getvalue().splitlines()
    assert lines[0] == f"node data in {tmp_path}: kept, and resumed by a later run there"
    summary = json.loads(next(line for line in lines if line.startswith("{")))
    assert summary["console"] == summary["nodes"][0]["console"]
    assert [n["prefix"] for n in summary["nodes"]] == [
        "88",
        "88.118",
        "88.120",
        "88.121",
        "88.118.8",
    ]
    assert summary["nodes"][-1]["mqtt"]
    text = out.getvalue()
    assert "try:" not in text
    assert "open " not in text
