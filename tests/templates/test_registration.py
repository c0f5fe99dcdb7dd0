"""Registering identifiers against templates over REST and in bulk: the lifecycle, every
violation at once with nothing written, unique values, derivation."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from iinode.api.app import create_app
from iinode.errors import HandleError
from iinode.identifiers import HandleName, HandleValue, StringData, UrlData
from iinode.node.bulk import BulkRegistrar
from iinode.node.service import HandleService
from iinode.node.sites import site_from_url
from iinode.node.template_check import CompiledTemplate
from iinode.resolution import HttpResolver
from templates.conftest import (
    ADMIN,
    GOOD,
    INDEX,
    SECRET,
    TEMPLATE,
    bearing,
    make_service,
    product,
    publish_bearing,
    register,
)


async def test_lifecycle_draft_published_withdrawn(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/templates", json=bearing(), auth=ADMIN)
    assert r.status_code == 201
    assert r.json()["template"]["status"] == "draft"
    # A draft takes no registrations.
    refused = await register(client, "88.118.8/B1", product(**GOOD))
    assert refused.status_code == 400
    assert refused.json()["violations"][0]["rule"] == "status"
    r = await client.post("/api/templates/88.118.8/bearing/1/publish")
    assert r.status_code == 401  # changing a template needs authentication
    r = await client.post("/api/templates/88.118.8/bearing/1/publish", auth=ADMIN)
    assert r.json() == {"handle": TEMPLATE, "status": "published"}
    assert (await register(client, "88.118.8/B1", product(**GOOD))).status_code == 201
    # A published template changes nothing but its status.
    changed = bearing(status="published", description="other")
    r = await client.put(
        f"/api/handles/{TEMPLATE}",
        json={"values": [{"index": 1, "type": "II_TEMPLATE_DEF", "data": json.dumps(changed)}]},
        params={"index": "1"},
        auth=ADMIN,
    )
    assert r.status_code == 400
    assert "only its status" in r.json()["message"]
    r = await client.post("/api/templates/88.118.8/bearing/1/withdraw", auth=ADMIN)
    assert r.json()["status"] == "withdrawn"
    # Withdrawn: no new records, but existing ones still validate on update.
    r = await register(client, "88.118.8/B2", product(**{**GOOD, "serial": "S-2"}))
    assert r.status_code == 400
    assert r.json()["violations"][0]["message"] == "a withdrawn template takes no new records"
    assert (await register(client, "88.118.8/B1", product(**{**GOOD, "grade": "P5"}))).is_success
    r = await register(client, "88.118.8/B1", product(**{**GOOD, "grade": "P7"}))
    assert r.status_code == 400
    assert r.json()["violations"][0]["attribute"] == "grade"
    # No way back to published or draft.
    r = await client.post("/api/templates/88.118.8/bearing/1/publish", auth=ADMIN)
    assert r.status_code == 400
    listed = (await client.get("/api/templates", params={"prefix": "88.118.8"})).json()
    assert listed["templates"] == [TEMPLATE]
    schema = (await client.get("/api/templates/88.118.8/bearing/1/schema")).json()
    assert schema["required"] == ["model", "serial"]
    assert schema["properties"]["grade"]["enum"] == ["P0", "P6", "P5"]


async def test_every_violation_is_reported_and_nothing_written(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    await publish_bearing(client)
    bad = {"model": "bad model", "diameter": "abc", "made": "2024-13-40", "grade": "P9",
           "maker": "nohandle", "colour": "red"}  # fmt: skip
    before = await service.store.count()
    changes = service.changes.value()
    r = await register(client, "88.118.8/BAD", product(**bad))
    assert r.status_code == 400
    body = r.json()
    assert body["responseCode"] == 202
    found = {(v["attribute"], v["value"], v["rule"]) for v in body["violations"]}
    assert found == {
        ("model", "bad model", "pattern"),
        ("diameter", "abc", "type"),
        ("made", "2024-13-40", "date"),
        ("grade", "P9", "enum"),
        ("maker", "nohandle", "pattern"),
        ("colour", "red", "unknown"),
        ("serial", None, "required"),
    }, found
    assert await service.store.get("88.118.8/BAD") is None
    assert await service.store.count() == before
    assert service.changes.value() == changes
    # A value at the wrong index and a link to no template are violations too.
    wrong = product(**GOOD)
    wrong["values"][1]["index"] = 2500
    r = await register(client, "88.118.8/BAD", wrong)
    assert {(v["attribute"], v["rule"]) for v in r.json()["violations"]} == {("model", "index")}
    r = await register(client, "88.118.8/BAD", product("88.118.8/template/none/1", **GOOD))
    assert r.json()["violations"][0]["rule"] == "template"
    assert await service.store.get("88.118.8/BAD") is None


async def test_unique_values_are_enforced_under_the_prefix(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    await publish_bearing(client)
    assert (await register(client, "88.118.8/U1", product(**GOOD))).status_code == 201
    r = await register(client, "88.118.8/U2", product(**{**GOOD, "grade": "P9"}))
    assert {(v["attribute"], v["rule"]) for v in r.json()["violations"]} == {
        ("grade", "enum"),
        ("serial", "unique"),
    }
    assert "88.118.8/U1" in r.json()["violations"][1]["message"]
    assert await service.store.get("88.118.8/U2") is None
    # The same record may keep its own value; once it lets go, another may take it.
    assert (await register(client, "88.118.8/U1", product(**GOOD))).status_code == 200
    assert (await register(client, "88.118.8/U1", product(**{**GOOD, "serial": "S-9"}))).is_success
    assert (await register(client, "88.118.8/U2", product(**GOOD))).status_code == 201


async def test_stored_form_link_restricted_and_readers_grant(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    await publish_bearing(client)
    await register(client, "88.118.8/F1", product(**GOOD))
    record = {v.index: v for v in await service.lookup(HandleName.parse("88.118.8/F1")) or ()}
    link = json.loads(record[1001].data_bytes)
    assert link == {"template": TEMPLATE, "unique": ["serial"]}
    assert not record[INDEX["cost"]].publicly_readable
    assert record[INDEX["model"]].publicly_readable
    grant = record[1002].data
    assert str(grant.admin) == f"400:{TEMPLATE}"  # type: ignore[attr-defined]


async def test_validators_are_compiled_once_per_version(
    client: httpx.AsyncClient, service: HandleService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publish_bearing(client)
    compiled: list[object] = []
    original = CompiledTemplate.__init__

    def counting(self: CompiledTemplate, template: object) -> None:
        compiled.append(template)
        original(self, template)  # type: ignore[arg-type]

    monkeypatch.setattr(CompiledTemplate, "__init__", counting)
    for n in range(20):
        r = await register(client, f"88.118.8/C{n}", product(**{**GOOD, "serial": f"S{n}"}))
        assert r.status_code == 201
    assert len(compiled) <= 1  # at most once (the definition may already be cached)


async def test_derive_from_a_local_and_a_remote_published_template(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # Another enterprise (88.200.1) publishes a template on its own node.
    other = make_service(tmp_path / "other", "88.200.1")
    await other.initialise(SECRET)
    other_app = create_app(other)
    other_admin = ("300%3A0.NA/88.200.1", SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=other_app), base_url="http://other"
    ) as remote:
        r = await remote.post(
            "/api/templates", json=bearing(name="shaft", status="published"), auth=other_admin
        )
        assert r.status_code == 201, r.text
        # Ours resolves it through a resolver whose root is the other node.
        resolver = HttpResolver(
            [site_from_url("http://127.0.0.1:9")],
            client=httpx.AsyncClient(transport=httpx.ASGITransport(app=other_app)),
        )
        service = client._transport.app.state.service  # type: ignore[attr-defined]
        ours = create_app(service, resolver)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=ours), base_url="http://node"
        ) as c:
            extra = [{"name": "coating", "type": "enum", "constraints": {"values": ["Zn", "Ni"]}}]
            r = await c.post(
                "/api/templates/derive",
                json={"from": "88.200.1/template/shaft/1", "name": "shaft", "version": "2",
                      "attributes": extra, "status": "published"},
                auth=ADMIN,
            )  # fmt: skip
            assert r.status_code == 201, r.text
            derived = r.json()["template"]
            assert derived["handle"] == "88.118.8/template/shaft/2"
            assert derived["derivedFrom"] == "88.200.1/template/shaft/1"
            assert [a["index"] for a in derived["attributes"]] == [*INDEX.values(), 2007]
            body = product("88.118.8/template/shaft/2", **GOOD)
            body["values"].append({"index": 2007, "type": "coating", "data": "Cu"})
            r = await register(c, "88.118.8/SH1", body)
            assert r.json()["violations"] == [
                {"attribute": "coating", "value": "Cu", "rule": "enum",
                 "message": "'Cu' is not one of ['Zn', 'Ni']"}
            ]  # fmt: skip
            # A draft cannot be derived from.
            await c.post("/api/templates", json=bearing(name="draft"), auth=ADMIN)
            r = await c.post(
                "/api/templates/derive",
                json={"from": "88.118.8/template/draft/1", "name": "d2"},
                auth=ADMIN,
            )
            assert r.status_code == 400
            assert "only a published template" in r.json()["message"]
        await resolver.aclose()
    await other.store.close()


async def test_bulk_registration_checks_templates(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    await publish_bearing(client)
    registrar = BulkRegistrar(service)

    def row(n: int, **attrs: str) -> list[HandleValue]:
        values = [
            HandleValue(1, "URL", UrlData(f"http://f.cn/{n}")),
            HandleValue(1001, "II_TEMPLATE", StringData(TEMPLATE)),
        ]
        values += [HandleValue(INDEX[k], k, StringData(v)) for k, v in attrs.items()]
        return values

    good = row(1, model="A1", serial="B-1")
    with pytest.raises(HandleError):  # templates not loaded: refused, never unchecked
        registrar.encode(HandleName.parse("88.118.8/BULK1"), good)
    await registrar.load_templates()
    rows = [registrar.encode(HandleName.parse(f"88.118.8/BULK{n}"), row(n, model="A1",
            serial=f"B-{n}", cost="3")) for n in range(50)]  # fmt: skip
    assert await registrar.write(rows) == (50, 0)
    stored = await service.lookup(HandleName.parse("88.118.8/BULK7")) or ()
    assert not next(v for v in stored if v.type == "cost").publicly_readable
    with pytest.raises(HandleError) as refused:
        registrar.encode(HandleName.parse("88.118.8/BULKX"), row(0, model="a b", grade="P9"))
    assert {(v.attribute, v.rule) for v in refused.value.violations} == {  # type: ignore[attr-defined]
        ("model", "pattern"),
        ("grade", "enum"),
        ("serial", "required"),
    }
    # A unique value repeated in a batch fails the whole batch: nothing of it is written.
    clash = [
        registrar.encode(HandleName.parse(f"88.118.8/DUP{n}"), row(n, model="A", serial="B-1"))
        for n in range(2)
    ]
    with pytest.raises(HandleError):
        await registrar.write(clash)
    assert await service.store.get("88.118.8/DUP0") is None
