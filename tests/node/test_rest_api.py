"""The Handle.Net compatible REST API, in process."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from iinode.node.service import HandleService
from iinode.storage import SQLiteStore

ADMIN = ("300%3A0.NA/88.118.8", "s3cret")
URL_VALUE = {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://a.cn/x"}}


async def put(
    client: httpx.AsyncClient, handle: str, values: object, auth: object = ADMIN, **params: str
) -> httpx.Response:
    return await client.put(
        f"/api/handles/{handle}", json={"values": values}, auth=auth, params=params
    )  # type: ignore[arg-type]


async def test_create_then_resolve(client: httpx.AsyncClient) -> None:
    r = await put(client, "88.118.8/PRESS-01", [URL_VALUE])
    assert r.status_code == 201
    assert r.json() == {"responseCode": 1, "handle": "88.118.8/PRESS-01"}
    r = await client.get("/api/handles/88.118.8/PRESS-01")
    body = r.json()
    assert r.status_code == 200
    assert body["responseCode"] == 1
    types = {v["type"]: v for v in body["values"]}
    assert types["URL"]["data"] == {"format": "string", "value": "http://a.cn/x"}
    assert types["HS_ADMIN"]["data"]["value"] == {
        "handle": "0.NA/88.118.8",
        "index": 300,
        "permissions": "011111110011",
    }
    assert types["URL"]["timestamp"].endswith("Z")
    assert types["URL"]["ttl"] == 86400


async def test_filters_and_values_not_found(client: httpx.AsyncClient) -> None:
    await put(client, "88.118.8/A", [URL_VALUE, {"index": 2, "type": "EMAIL", "data": "ops@a.cn"}])
    r = await client.get("/api/handles/88.118.8/A", params={"type": "email"})
    assert [v["index"] for v in r.json()["values"]] == [2]
    r = await client.get("/api/handles/88.118.8/A?index=1&index=2")
    assert [v["index"] for v in r.json()["values"]] == [1, 2]
    r = await client.get("/api/handles/88.118.8/A", params={"type": "NOPE"})
    assert r.status_code == 200
    assert r.json()["responseCode"] == 200


async def test_secret_key_is_hidden_and_never_rendered(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/handles/0.NA/88.118.8")
    assert "HS_SECKEY" not in {v["type"] for v in r.json()["values"]}
    r = await client.get("/api/handles/0.NA/88.118.8", auth=ADMIN)  # type: ignore[arg-type]
    seckey = next(v for v in r.json()["values"] if v["type"] == "HS_SECKEY")
    assert seckey["data"] == {"format": "string", "value": ""}  # listed, data withheld
    assert "s3cret" not in r.text
    assert "SCRAM" not in r.text


async def test_overwrite_modify_and_delete_values(client: httpx.AsyncClient) -> None:
    await put(client, "88.118.8/B", [URL_VALUE])
    r = await put(client, "88.118.8/B", [URL_VALUE], overwrite="false")
    assert (r.status_code, r.json()["responseCode"]) == (409, 101)
    new = {"index": 1, "type": "URL", "data": "http://a.cn/new"}
    r = await put(
        client, "88.118.8/B", [new, {"index": 5, "type": "DESC", "data": "press"}], index="various"
    )
    assert r.status_code == 200
    r = await client.get("/api/handles/88.118.8/B")
    assert {v["index"]: v["data"]["value"] for v in r.json()["values"] if v["index"] < 100} == {
        1: "http://a.cn/new", 5: "press"}  # fmt: skip
    r = await client.delete("/api/handles/88.118.8/B?index=5", auth=ADMIN)  # type: ignore[arg-type]
    assert r.status_code == 200
    r = await client.delete("/api/handles/88.118.8/B?index=5", auth=ADMIN)  # type: ignore[arg-type]
    assert (r.status_code, r.json()["responseCode"]) == (400, 200)
    r = await client.delete("/api/handles/88.118.8/B", auth=ADMIN)  # type: ignore[arg-type]
    assert r.status_code == 200
    r = await client.get("/api/handles/88.118.8/B")
    assert (r.status_code, r.json()["responseCode"]) == (404, 100)


async def test_mint_new_suffix(client: httpx.AsyncClient) -> None:
    r = await put(client, "88.118.8/LOT-", [URL_VALUE], mintNewSuffix="true")
    minted = r.json()["handle"]
    assert r.status_code == 201
    assert minted.startswith("88.118.8/LOT-")
    assert len(minted) > 20
    assert (await client.get(f"/api/handles/{minted}")).status_code == 200


@pytest.mark.parametrize(
    ("handle", "body", "auth", "status", "code"),
    [
        ("88.118.8/X", [URL_VALUE], None, 401, 402),
        ("88.118.8/X", [URL_VALUE], ("300%3A0.NA/88.118.8", "wrong"), 401, 403),
        ("88.118.8/X", [URL_VALUE], ("999:0.NA/88.118.8", "s3cret"), 401, 403),
        ("88.118.8/X", [URL_VALUE], ("not-an-identity", "x"), 401, 404),
        ("88.118.9/X", [URL_VALUE], ADMIN, 400, 301),  # as Handle.Net's REST API
        ("88..8/X", [URL_VALUE], ADMIN, 400, 102),
        (
            "88.118.8/X",
            [{"index": 1, "type": "URL", "data": {"format": "rot13", "value": "x"}}],
            ADMIN,
            400,
            202,
        ),
        ("88.118.8/X", [URL_VALUE, URL_VALUE], ADMIN, 409, 201),
        (
            "88.118.8/X",
            [{"index": 1, "type": "X", "data": "y" * (256 * 1024 + 10)}],
            ADMIN,
            400,
            202,
        ),
    ],
)
async def test_bad_writes_are_refused_and_change_nothing(
    client: httpx.AsyncClient,
    service: HandleService,
    handle: str,
    body: object,
    auth: object,
    status: int,
    code: int,
) -> None:
    before = await service.store.count()
    r = await put(client, handle, body, auth=auth)
    assert (r.status_code, r.json()["responseCode"]) == (status, code), r.text
    assert r.json()["message"]
    assert await service.store.count() == before


async def test_malformed_json_is_refused(client: httpx.AsyncClient, service: HandleService) -> None:
    r = await client.put(
        "/api/handles/88.118.8/J",
        content=b"{not json",
        headers={"content-type": "application/json"},
        auth=ADMIN,  # type: ignore[arg-type]
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["message"]
    assert (
        await service.lookup(__import__("iinode").identifiers.HandleName.parse("88.118.8/J"))
        is None
    )


async def test_permission_bits_are_enforced(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    # A second identity that may only add values to one handle.
    ops = [{"index": 300, "type": "HS_SECKEY", "data": "ops-pass", "permissions": "1100"}]
    assert (await put(client, "88.118.8/OPS", ops)).status_code == 201
    grant = {"handle": "88.118.8/OPS", "index": 300, "permissions": "000001000000"}
    limited = {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": grant}}
    await put(client, "88.118.8/M", [URL_VALUE, limited])
    ops_auth = ("300%3A88.118.8/OPS", "ops-pass")
    r = await put(
        client, "88.118.8/M", [{"index": 7, "type": "DESC", "data": "ok"}], auth=ops_auth, index="7"
    )
    assert r.status_code == 200
    r = await put(
        client,
        "88.118.8/M",
        [{"index": 1, "type": "URL", "data": "http://evil.cn/"}],
        auth=ops_auth,
        index="1",
    )
    assert (r.status_code, r.json()["responseCode"]) == (403, 400)
    r = await client.delete("/api/handles/88.118.8/M", auth=ops_auth)  # type: ignore[arg-type]
    assert (r.status_code, r.json()["responseCode"]) == (403, 400)
    r = await put(client, "88.118.8/NEW", [URL_VALUE], auth=ops_auth)
    assert (r.status_code, r.json()["responseCode"]) == (403, 400)


async def test_list_handles_needs_auth_and_pages(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await put(client, f"88.118.8/L{n}", [URL_VALUE])
    assert (await client.get("/api/handles?prefix=88.118.8")).status_code == 401
    r = await client.get("/api/handles?prefix=0.NA/88.118.8&page=1&pageSize=2", auth=ADMIN)  # type: ignore[arg-type]
    body = r.json()
    assert body["totalCount"] == "5"
    assert body["handles"] == ["88.118.8/L2", "88.118.8/L3"]


async def test_openapi_document(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {"get", "put", "delete"} <= set(doc["paths"]["/api/handles/{handle}"])
    assert "HandleRecord" in doc["components"]["schemas"]


async def test_store_failures_are_json_500s(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    assert isinstance(service.store, SQLiteStore)
    other = sqlite3.connect(service.store.path)
    other.execute("DROP TABLE handles")
    other.close()
    for r in (
        await client.get("/api/handles/88.118.8/GONE"),
        await put(client, "88.118.8/GONE", [URL_VALUE]),
        await client.get("/api/handles?prefix=88.118.8", auth=ADMIN),  # type: ignore[arg-type]
        await client.get("/api/node"),
    ):
        assert r.status_code == 500, r.text
        assert r.json()["responseCode"] == 2
        assert "SQLite" in r.json()["message"]
