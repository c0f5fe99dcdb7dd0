"""The OID front end: ``GET /oid/{oid}`` over arcs mapped to prefixes and OIDs bound
to records."""

from __future__ import annotations

import httpx
import pytest

from iinode.node.oid import InvalidOid, parse_oid
from templates.conftest import ADMIN, GOOD, product, publish_bearing, register

ARC = {"index": 7, "type": "II_OID", "data": "1.2.156.3001"}


@pytest.mark.parametrize(
    ("given", "oid"),
    [("1.2.156.3001.7", "1.2.156.3001.7"), ("urn:oid:2.999.1", "2.999.1"), ("oid:0.39", "0.39")],
)
def test_oid_forms(given: str, oid: str) -> None:
    assert parse_oid(given) == oid


@pytest.mark.parametrize(
    "bad",
    ["", "1", "3.1", "1.40", "1.02.3", "1..2", "1.2.", "a.b", "1.2.x", "\uff11.\uff12", "1." * 70],
)
def test_bad_oids(bad: str) -> None:
    with pytest.raises(InvalidOid):
        parse_oid(bad)


async def test_oids_resolve_to_the_same_records(client: httpx.AsyncClient) -> None:
    # The prefix record maps the arc 1.2.156.3001 to 88.118.8.
    r = await client.put("/api/handles/0.NA/88.118.8?index=7", json={"values": [ARC]}, auth=ADMIN)
    assert r.status_code == 200, r.text
    await publish_bearing(client)
    await register(client, "88.118.8/7.42", product(**GOOD))
    # An identifier may carry its own OID.
    body = product(**{**GOOD, "serial": "S-2"})
    body["values"].append({"index": 8, "type": "II_OID", "data": "1.2.156.3001.99.1"})
    await register(client, "88.118.8/BEARING-2", body)

    r = await client.get("/oid/1.2.156.3001.7.42")
    assert r.status_code == 200
    answer = r.json()
    assert answer["handle"] == "88.118.8/7.42"
    assert answer["oid"] == "1.2.156.3001.7.42"
    same = (await client.get("/api/handles/88.118.8/7.42")).json()
    assert answer["values"] == same["values"]
    assert "cost" not in {v["type"] for v in answer["values"]}  # restricted as on /api/handles
    authed = (await client.get("/oid/urn:oid:1.2.156.3001.7.42", auth=ADMIN)).json()
    assert "cost" in {v["type"] for v in authed["values"]}
    r = await client.get("/oid/1.2.156.3001.99.1")
    assert r.json()["handle"] == "88.118.8/BEARING-2"
    r = await client.get("/oid/1.2.156.3001")  # the arc itself: the prefix record
    assert r.json()["handle"] == "0.NA/88.118.8"
    # Mapped, but no such identifier; not mapped at all; not an OID.
    assert (await client.get("/oid/1.2.156.3001.7.43")).status_code == 404
    assert (await client.get("/oid/1.2.156.4000.1")).status_code == 404
    r = await client.get("/oid/1.2.x")
    assert r.status_code == 400
    assert r.json()["responseCode"] == 102
    assert (await client.get("/oid/5.1")).status_code == 400
    # Search finds a record by its OID too.
    r = await client.get("/api/search", params={"oid": "1.2.156.3001.99.1"})
    assert r.json()["handles"] == ["88.118.8/BEARING-2"]
