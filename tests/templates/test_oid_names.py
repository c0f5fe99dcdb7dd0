"""OIDs as names over the Handle interfaces (``node.oid.answer_oid``): ``oid:…`` and
``urn:oid:…`` resolve to an HS_ALIAS naming the mapped handle, then that handle's values
as asking for it gives them; a handle under a delegated prefix gets the alias alone."""

from __future__ import annotations

import re

import httpx
import pytest

from iinode.errors import HandleNotFound, InvalidHandle
from iinode.identifiers import (
    AliasData,
    HandleName,
    HandleValue,
    IndexedHandle,
    StringData,
    encode_record,
    site_for,
)
from iinode.node.oid import ALIAS_INDEX, InvalidOid, is_oid_name
from iinode.node.service import HandleService
from templates.conftest import ADMIN, GOOD, product, publish_bearing, register

ARC = {"index": 7, "type": "II_OID", "data": "1.2.156.3001"}
ME = IndexedHandle(300, HandleName("0.NA", "88.118.8"))


@pytest.mark.parametrize(
    ("text", "is_name"),
    [
        ("oid:1.2.156.3001.7.42", True),
        ("OID:1.2.156", True),
        ("urn:oid:1.2.156", True),
        ("URN:OID:2.999", True),
        ("oid:not-an-oid", True),  # an OID name, refused later as a bad OID
        ("1.2.156.3001.7.42", False),  # bare dotted: reads as a prefix, never guessed
        ("88.118.8/7.42", False),
        ("oid:1.2/x", False),  # a slash: a handle (prefix "oid:1.2"), not an OID name
        ("urn:1.2.156", False),
        ("", False),
    ],
)
def test_what_is_an_oid_name(text: str, is_name: bool) -> None:
    assert is_oid_name(text) is is_name


async def mapped(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/handles/0.NA/88.118.8?index=7", json={"values": [ARC]}, auth=ADMIN)
    assert r.status_code == 200, r.text
    await publish_bearing(client)
    await register(client, "88.118.8/7.42", product(url="https://x.example/42", **GOOD))


async def test_an_oid_name_answers_the_alias_then_the_record(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    await mapped(client)
    handle = HandleName.parse("88.118.8/7.42")
    direct = await service.answer(handle)
    for name in ("oid:1.2.156.3001.7.42", "urn:oid:1.2.156.3001.7.42", "OID:1.2.156.3001.7.42"):
        found = await service.answer_oid(name)
        assert found.name == name
        assert found.oid == "1.2.156.3001.7.42"
        assert found.handle == handle
        alias, *values = found.values
        assert alias.index == ALIAS_INDEX
        assert alias.type == "HS_ALIAS"
        assert alias.data == AliasData("88.118.8/7.42")
        assert tuple(values) == direct.values
    assert "cost" not in {v.type for v in values}  # restricted, as for the handle itself
    authed = await service.answer_oid("oid:1.2.156.3001.7.42", identity=ME)
    assert "cost" in {v.type for v in authed.values}
    only_url = await service.answer_oid("oid:1.2.156.3001.7.42", types=["URL"])
    assert [v.type for v in only_url.values] == ["HS_ALIAS", "URL"]  # the alias is the name's own
    body = only_url.to_json()
    assert body["responseCode"] == 1
    assert body["handle"] == "oid:1.2.156.3001.7.42"
    assert body["target"] == "88.118.8/7.42"
    assert body["values"][0] == {**body["values"][0], "type": "HS_ALIAS", "index": ALIAS_INDEX}


async def test_unknown_and_bad_oids(client: httpx.AsyncClient, service: HandleService) -> None:
    await mapped(client)
    with pytest.raises(
        HandleNotFound, match=re.escape("no identifier is mapped to OID 1.2.156.4000.1")
    ):
        await service.answer_oid("oid:1.2.156.4000.1")
    with pytest.raises(
        HandleNotFound, match=re.escape("mapped to 88.118.8/7.43, which does not exist")
    ):
        await service.answer_oid("oid:1.2.156.3001.7.43")
    for bad in ("oid:1.2.x", "oid:5.1", "urn:oid:", "oid:1.40.3"):
        with pytest.raises(InvalidOid) as caught:
            await service.answer_oid(bad)
        assert isinstance(caught.value, InvalidHandle)  # HANDLE_INVALID, HTTP 400


async def test_a_delegated_handle_gets_the_alias_alone(service: HandleService) -> None:
    """The child node holds no OID mapping, so a referral for the OID name would be a
    dead end; the alias sends the client to the handle, which the referral then serves."""
    child = HandleName("0.NA", "88.118.8.9")
    record = (
        HandleValue(1, "HS_SITE", site_for("127.0.0.1", handle_port=27150)),
        HandleValue(7, "II_OID", StringData("1.2.156.3002")),
    )
    raw = encode_record(record)
    await service.store.modify(str(child), lambda _old: raw)
    found = await service.answer_oid("oid:1.2.156.3002.5")
    assert found.handle == HandleName("88.118.8.9", "5")
    assert [(v.type, v.data) for v in found.values] == [("HS_ALIAS", AliasData("88.118.8.9/5"))]
