"""``iinode equipment add`` registers OPC UA nodes and Modbus registers; the node reads them.

Real processes and peers: ``iinode serve`` (an enterprise node), an asyncua server
and a pymodbus server holding 64-bit integers, booleans and text.  What the node
read is queried back with ``iinode telemetry query`` and over HTTP: every value
with its type, integers exact beyond 2^53.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson

from cli.cli_support import http_port, iinode, init, serving
from connectivity.typed_peers import BIG, I64, MODBUS_VALUES, U64, modbus_peer, opcua_peer
from support import free_port

ENT = "88.77"
SECRET = "ent-pw-9"


async def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(iinode, *args, check=check)


async def history(url: str, handle: str, tags: set[str], limit: float = 30.0) -> dict[str, Any]:
    """The latest stored value of each tag (parsed by orjson: no float detour)."""
    got: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url) as c:
        for _ in range(int(limit / 0.25)):
            r = await c.get(f"/telemetry/equipment/{handle}/history")
            if r.status_code == 200:
                got = {x["tag"]: x["value"] for x in orjson.loads(r.content)["readings"]}
                if tags <= got.keys():
                    return got
            await asyncio.sleep(0.25)
    raise AssertionError(f"{handle}: only {sorted(got)} stored within {limit} s")


async def test_equipment_add_registers_opcua_nodes_and_modbus_registers(tmp_path: Path) -> None:
    port = http_port()
    data = tmp_path / "ent"
    init(data, "enterprise", ENT, port, SECRET)
    url = f"http://127.0.0.1:{port}"
    node = ("--node", url, "--secret", SECRET)
    modbus_port = free_port()
    async with opcua_peer(free_port()) as opc, modbus_peer(modbus_port):
        with serving(data, port):
            await cli(
                "equipment", "add", f"{ENT}/OPC-1", *node, "--address", opc.endpoint,
                "--publishing-ms", "50",
                "--tag", "count:int", "--tag", "serial:int", "--tag", "small:int",
                "--tag", "on:bool", "--tag", "state:string", "--tag", "temp:float:degC",
                *(x for tag, nid in opc.nodes.items() for x in ("--opcua-tag", f"{tag}={nid}")),
            )  # fmt: skip
            registers = [f"{tag}=holding:{a}:{kind}" for tag, (a, kind, _) in MODBUS_VALUES.items()]
            mapping = tmp_path / "plc.json"  # one register from a mapping file, the rest options
            mapping.write_text(json.dumps({"registers": [
                {"tag": "serial", "address": 0, "type": "uint64"}]}))  # fmt: skip
            await cli(
                "equipment", "add", f"{ENT}/PLC-1", *node, "--mapping", str(mapping),
                "--address", f"127.0.0.1:{modbus_port}", "--interval", "0.1",
                *(x for r in registers[1:] for x in ("--modbus-register", r)),
            )  # fmt: skip
            opc_values = await history(url, f"{ENT}/OPC-1", set(opc.nodes))
            plc_values = await history(url, f"{ENT}/PLC-1", set(MODBUS_VALUES))
            shown = (await cli("telemetry", "query", f"{ENT}/OPC-1", "--node", url)).stdout
            shown_plc = (await cli("telemetry", "query", f"{ENT}/PLC-1", "--node", url)).stdout
            listed = (await cli("equipment", "show", f"{ENT}/PLC-1", "--node", url)).stdout
    assert opc_values == {"count": BIG, "serial": U64, "small": -7, "on": True,
                          "state": "running", "temp": 21.5}  # fmt: skip
    assert [type(opc_values[t]).__name__ for t in ("count", "on", "state", "temp")] == [
        "int", "bool", "str", "float",
    ]  # fmt: skip
    assert plc_values == {"serial": U64, "count": BIG, "offset": I64, "small": -7}
    for text in (str(BIG), str(U64), "-7", "true", "running", "21.5"):
        assert text in shown, shown
    for text in (str(U64), str(BIG), str(I64)):
        assert text in shown_plc, shown_plc
        assert text in listed, listed
