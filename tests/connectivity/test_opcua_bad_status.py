"""An OPC UA data change with a bad status and no value marks the tag bad.

Real peer: an asyncua server; the node's own connectors read it (registered over
REST), and ``/live`` and ``/history`` show what the node made of it.  Values keep
their type from OPC UA to the store: Int64 beyond 2^53, UInt64 up to 2^64-1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from asyncua import ua

from api.node_support import auth_for, running_node
from connectivity.typed_peers import BIG, OPCUA_VALUES, U64, opcua_peer
from iinode.connectivity.endpoints import opcua_connection
from iinode.node.settings import Role
from iinode.telemetry.model import DataType, Equipment, Tag
from support import free_port

ENT = "88.118.8"
TYPES = {"count": DataType.INT, "serial": DataType.INT, "small": DataType.INT,
         "on": DataType.BOOL, "state": DataType.STRING, "temp": DataType.FLOAT}  # fmt: skip


async def until(check: Any, limit: float = 20.0) -> Any:
    for _ in range(int(limit / 0.1)):
        if got := await check():
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {limit} s")


async def test_bad_status_without_value_marks_the_tag_bad(tmp_path: Path) -> None:
    async with (
        opcua_peer(free_port()) as peer,
        running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port()) as node,
    ):
        c = node.http
        connection = opcua_connection(peer.endpoint, peer.nodes, publishing_ms=20)
        tags = tuple(Tag(t, k) for t, k in TYPES.items())
        item = Equipment(f"{ENT}/PLC-7", tags=tags, connection=connection)
        r = await c.put(f"/telemetry/equipment/{item.id}", json=item.to_json(), auth=auth_for(ENT))
        assert r.status_code == 200, r.text

        async def live() -> dict[str, tuple[object, int]]:
            r = await c.get(f"/telemetry/equipment/{item.id}/live")
            return {
                k: (v["value"], v["quality"]) for k, v in orjson.loads(r.content)["tags"].items()
            }

        async def all_good() -> bool:
            return (await live()) == {t: (v, 192) for t, (_, v) in OPCUA_VALUES.items()}

        await until(all_good)
        bad = ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure))
        await peer.write("temp", bad)
        await peer.write("serial", bad)

        async def marked() -> bool:
            now = await live()
            return now["temp"][1] == 0 and now["serial"][1] == 0

        await until(marked)
        now = await live()
        assert now["temp"] == (21.5, 0)  # the last value, with the bad quality
        assert now["serial"] == (U64, 0)
        assert now["count"] == (BIG, 192)  # the others are untouched

        async def stored() -> list[tuple[str, object, int]]:
            r = await c.get(f"/telemetry/equipment/{item.id}/history", params={"tag": "temp"})
            rows = [
                (x["tag"], x["value"], x["quality"]) for x in orjson.loads(r.content)["readings"]
            ]
            return rows if len(rows) >= 2 else []

        assert (await until(stored))[-2:] == [("temp", 21.5, 192), ("temp", None, 0)]
        # a good value again: good quality again
        await peer.write("temp", ua.DataValue(ua.Variant(23.0, ua.VariantType.Double)))

        async def recovered() -> bool:
            return (await live())["temp"] == (23.0, 192)

        await until(recovered)
        rejects = (await c.get("/telemetry/rejects")).json()
        assert rejects["total"] == 0, rejects
