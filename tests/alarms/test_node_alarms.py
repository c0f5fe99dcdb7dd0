"""An enterprise node: alarm rules and project events over its API, an alarm raised from
readings streamed through its broker, and the alarm as a monitoring health event."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api.node_support import auth_for, running_node
from iinode.connectivity.sim_sparkplug import SparkplugSimulator
from iinode.monitoring import EventKind
from iinode.node.settings import Role
from iinode.telemetry.simulator import Factory
from support import free_port

ENT = "88.118.8"


async def test_node_alarms_projects_and_monitoring(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port()) as node:
        c = node.http
        factory = Factory.demo(ENT, 1, seed=3)
        (item,) = factory.equipment()
        put = await c.put(f"/telemetry/equipment/{item.id}", json=item.to_json(),
                          auth=auth_for(ENT))  # fmt: skip
        assert put.status_code == 200, put.text
        rule = {"equipment": item.id, "source": "tag", "name": "temperature", "kind": "high",
                "limit": 30, "deadband": 2, "severity": "high"}  # fmt: skip
        assert (await c.put("/alarms/rules/warm", json=rule)).status_code == 401
        assert (await c.put("/alarms/rules/warm", json=rule, auth=auth_for(ENT, "no"))
                ).status_code == 401  # fmt: skip
        ok = await c.put("/alarms/rules/warm", json=rule, auth=auth_for(ENT))
        assert ok.status_code == 200, ok.text
        event = {"project": f"{ENT}/PRJ-9", "kind": "project_start", "time": "2026-01-01T00:00:00Z"}
        assert (await c.post("/kpi/projects/events", json=event)).status_code == 401
        added = await c.post("/kpi/projects/events", json=event, auth=auth_for(ENT))
        assert added.status_code == 201, added.text
        assert (await c.get("/kpi/projects")).json()[0]["project"] == f"{ENT}/PRJ-9"

        await asyncio.sleep(1.5)  # the alarm engine joins the ingest workers
        info = (await c.get("/telemetry/info")).json()
        sent = 11
        async with SparkplugSimulator(factory, info["mqtt"]["host"], info["mqtt"]["port"]) as sim:
            for _ in range(8):
                sent += await sim.step(60)
        assert await node.extensions.telemetry.drained(sent, limit=20)
        alarms = (await c.get("/alarms")).json()
        assert [(a["rule"], a["equipment"], a["state"]) for a in alarms] == [
            ("warm", item.id, "active")
        ]
        assert alarms[0]["value"] > 30
        monitoring = node.extensions.monitoring
        assert monitoring is not None
        health = monitoring.store.recent(10, kind=EventKind.HEALTH)
        raised = [e for e in health if e.detail and e.detail.get("rule") == "warm"]
        assert raised
        assert str(raised[0].asset) == item.id
