"""OID names through both Handle interfaces: ``GET /api/handles/oid:…`` (in process,
httpx.ASGITransport) and a native resolution request for ``oid:…`` (a running node, the
project's NativeClient and request bytes written from the RFC layout)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import AliasData, HandleValue, StringData, site_for
from iinode.node.oid import ALIAS_INDEX
from iinode.node.settings import Role
from iinode.proto import Message, OpCode, ResolutionRequest, ResolutionResponse
from iinode.resolution.native_client import NativeClient, next_request_id
from native.golden import parse_response, resolution_request, udp_ask
from native.nodes import Node, start_node, url
from templates.conftest import ADMIN
from templates.test_oid_names import mapped

NAME = "oid:1.2.156.3001.7.42"


# -- REST ---------------------------------------------------------------------------------
async def test_rest_answers_the_alias_and_the_record(client: httpx.AsyncClient) -> None:
    await mapped(client)
    direct = (await client.get("/api/handles/88.118.8/7.42")).json()
    for name in (NAME, "urn:oid:1.2.156.3001.7.42", "OID:1.2.156.3001.7.42"):
        r = await client.get(f"/api/handles/{name}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["responseCode"] == 1
        assert body["handle"] == name
        assert body["oid"] == "1.2.156.3001.7.42"
        assert body["target"] == "88.118.8/7.42"
        alias, *values = body["values"]
        assert (alias["index"], alias["type"]) == (ALIAS_INDEX, "HS_ALIAS")
        assert alias["data"]["value"] == "88.118.8/7.42"
        assert values == direct["values"]
    assert "cost" not in {v["type"] for v in values}
    authed = (await client.get(f"/api/handles/{NAME}", auth=ADMIN)).json()
    assert "cost" in {v["type"] for v in authed["values"]}
    only = (await client.get(f"/api/handles/{NAME}", params={"type": "URL"})).json()
    assert [v["type"] for v in only["values"]] == ["HS_ALIAS", "URL"]


async def test_rest_unknown_bad_and_bare_names(client: httpx.AsyncClient) -> None:
    await mapped(client)
    for name in ("oid:1.2.156.4000.1", "oid:1.2.156.3001.7.43"):
        r = await client.get(f"/api/handles/{name}")
        assert r.status_code == 404, name
        assert r.json()["responseCode"] == int(ResponseCode.HANDLE_NOT_FOUND)
    for name in ("oid:1.2.x", "urn:oid:5.1", "1.2.156.3001.7.42"):
        r = await client.get(f"/api/handles/{name}")
        assert r.status_code == 400, name
        assert r.json()["responseCode"] == int(ResponseCode.INVALID_HANDLE)


async def test_rest_answer_follows_writes(client: httpx.AsyncClient) -> None:
    """The anonymous answer cache keeps the OID answer only until the next write."""
    await mapped(client)
    assert (await client.get(f"/api/handles/{NAME}")).status_code == 200
    r = await client.delete("/api/handles/88.118.8/7.42", auth=ADMIN)
    assert r.status_code in (200, 204), r.text
    assert (await client.get(f"/api/handles/{NAME}")).status_code == 404


# -- native ---------------------------------------------------------------------------------
@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    records = {
        # an OID bound to a record, and an arc mapped to a delegated prefix
        "88.118.8/7.42": [
            url(1, "https://x.example/42"),
            HandleValue(8, "II_OID", StringData("1.2.156.3001.7.42")),
        ],
        "0.NA/88.118.8.9": [
            HandleValue(1, "HS_SITE", site_for("127.0.0.1", handle_port=27151)),
            HandleValue(7, "II_OID", StringData("1.2.156.3002")),
        ],
    }
    started = start_node(tmp_path, Role.ENTERPRISE, "88.118.8", records)
    yield started
    started.server.stop()


def ask(node: Node, name: str) -> Message:
    import asyncio

    async def run() -> Message:
        client = NativeClient(timeout=3.0)
        try:
            request = Message(
                OpCode.RESOLUTION, ResolutionRequest(name), request_id=next_request_id()
            )
            return await client.request(node.address, request)
        finally:
            await client.aclose()

    return asyncio.run(run())


def test_native_resolution_of_an_oid_name(node: Node) -> None:
    answer = ask(node, NAME)
    assert answer.response_code == ResponseCode.SUCCESS
    body = answer.body
    assert isinstance(body, ResolutionResponse)
    assert body.handle == NAME
    assert [(v.index, v.type) for v in body.values] == [
        (ALIAS_INDEX, "HS_ALIAS"),
        (1, "URL"),
        (8, "II_OID"),
    ]
    alias = next(v for v in body.values if v.type == "HS_ALIAS")
    assert alias.data == AliasData("88.118.8/7.42")
    delegated = ask(node, "urn:oid:1.2.156.3002.5")
    assert isinstance(delegated.body, ResolutionResponse)
    assert [(v.type, v.data) for v in delegated.body.values] == [
        ("HS_ALIAS", AliasData("88.118.8.9/5"))
    ]
    assert ask(node, "oid:1.2.156.4000.1").response_code == ResponseCode.HANDLE_NOT_FOUND
    assert ask(node, "oid:1.2.x").response_code == ResponseCode.INVALID_HANDLE


def test_native_golden_request_bytes(node: Node) -> None:
    """A request written from the RFC 3652 layout, as any client sends it."""
    datagram = resolution_request(NAME, 0x4F1D)
    assert datagram[20:24] == struct.pack(">I", 1)  # opcode RESOLUTION
    assert datagram[44:48] == struct.pack(">I", len(NAME))
    assert datagram[48 : 48 + len(NAME)] == NAME.encode()
    reply = parse_response(udp_ask(node.address, datagram, timeout=3))
    assert reply["request_id"] == 0x4F1D
    assert reply["code"] == 1
    assert reply["handle"] == NAME
    values = reply["values"]
    assert isinstance(values, list)
    assert values[0] == (ALIAS_INDEX, "HS_ALIAS", b"88.118.8/7.42")
    assert [(index, vtype) for index, vtype, _ in values[1:]] == [(1, "URL"), (8, "II_OID")]
