"""The node app with telemetry, monitoring and metrics mounted (in process, real stores)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from api.node_support import SECRET, Node, auth_for, running_node
from iinode.api.delegations import node_value
from iinode.connectivity.sim_sparkplug import SparkplugSimulator
from iinode.identifiers import HandleValue, IndexedHandle, Permissions, Prefix, SecKeyData
from iinode.monitoring import EventKind
from iinode.node.service import site_from_url
from iinode.node.settings import Role
from iinode.telemetry.model import Equipment, EquipmentKind
from iinode.telemetry.registry_handles import EQUIPMENT_TYPE, TAGS_TYPE
from iinode.telemetry.simulator import Factory
from support import free_port

ENT = "88.118.8"


async def test_enterprise_node_registers_equipment_as_identifiers_and_ingests(
    tmp_path: Path,
) -> None:
    async with running_node(
        tmp_path, Role.ENTERPRISE, ENT, mqtt_port=free_port(), province="JS"
    ) as node:
        c = node.http
        factory = Factory.demo(ENT, 2, seed=5)
        body = factory.equipment()[0].to_json()
        url = f"/telemetry/equipment/{body['id']}"
        assert (await c.put(url, json=body)).status_code == 401
        wrong = await c.put(url, json=body, auth=auth_for(ENT, "wrong"))
        assert wrong.status_code == 401
        assert (await c.get(url)).status_code == 404  # nothing was written
        for item in factory.equipment():
            r = await c.put(
                f"/telemetry/equipment/{item.id}", json=item.to_json(), auth=auth_for(ENT)
            )
            assert r.status_code == 200, r.text
        # the equipment is an identifier whose typed values carry attributes and tags
        record = (await c.get(f"/api/handles/{body['id']}")).json()
        types = {v["type"]: v for v in record["values"]}
        assert {EQUIPMENT_TYPE, TAGS_TYPE, "URL"} <= set(types)
        assert '"good_count"' in types[TAGS_TYPE]["data"]["value"]
        assert (await c.get("/telemetry/equipment")).status_code == 401  # LIST_HANDLES
        listed = (await c.get("/telemetry/equipment", auth=auth_for(ENT))).json()
        assert [e["id"] for e in listed] == [m.spec.id for m in factory.machines]

        info = (await c.get("/telemetry/info")).json()
        host, port = info["mqtt"]["host"], info["mqtt"]["port"]
        sent = 2 * 11
        async with SparkplugSimulator(factory, host, port) as sim:
            for _ in range(5):
                sent += await sim.step(60)
        assert await node.extensions.telemetry.drained(sent, limit=20)
        machine = factory.machines[0]
        live = (await c.get(f"/telemetry/equipment/{machine.spec.id}/live")).json()
        assert live["tags"]["good_count"]["value"] == machine.good

        await c.get(f"/api/handles/{ENT}/NOPE")
        text = (await c.get("/metrics")).text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["iinode_store_handles"].samples[0].value == 3  # 0.NA + 2 machines
        resolutions = {s.name: s.value for s in families["iinode_resolutions"].samples}
        assert resolutions["iinode_resolutions_total"] >= 2
        errors = {s.labels["code"]: s.value for s in families["iinode_resolution_errors"].samples}
        assert errors["404"] == 1
        stored = families["iinode_telemetry_points_stored"].samples[0]
        assert (stored.name, stored.value) == ("iinode_telemetry_points_stored_total", sent)
        # monotonic counts are counters; states and levels are gauges; nothing is left unfed
        types = {name: f.type for name, f in families.items()}
        for name in ("iinode_telemetry_points_stored", "iinode_telemetry_rejects",
                     "iinode_telemetry_store_errors", "iinode_telemetry_mqtt_disconnects",
                     "iinode_telemetry_mqtt_messages", "iinode_resolutions",
                     "iinode_monitoring_events_enqueued"):  # fmt: skip
            assert types[name] == "counter", name
        for name in ("iinode_telemetry_mqtt_connected", "iinode_telemetry_bus_points",
                     "iinode_monitoring_outbox_pending", "iinode_store_handles"):  # fmt: skip
            assert types[name] == "gauge", name
        assert not {"iinode_kpi", "iinode_ingest_points", "iinode_security_events"} & set(types)
        up = {s.labels["connector"]: s.value for s in families["iinode_connector_up"].samples}
        assert up["mqtt"] == 1.0
        assert any(name.startswith("iinode_monitoring_outbox") for name in families), families


async def test_bad_equipment_records_change_nothing(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, telemetry=False) as node:
        c = node.http
        assert (await c.get("/telemetry/equipment")).status_code == 404  # telemetry off
        registry = node.extensions.registry
        assert registry is not None
        # a malformed IINODE_EQUIPMENT written over /api/handles is not equipment
        r = await c.put(
            f"/api/handles/{ENT}/BROKEN",
            json={"values": [{"index": 2, "type": EQUIPMENT_TYPE, "data": "{not json"}]},
            auth=auth_for(ENT),
        )
        assert r.status_code in (200, 201), r.text
        assert await registry.get(f"{ENT}/BROKEN") is None
        assert await registry.list() == []


async def test_monitoring_reports_notices_and_acks_through_the_hierarchy(tmp_path: Path) -> None:
    fast = {"heartbeat_interval": 0.05, "notice_interval": 0.05}
    async with running_node(tmp_path, Role.SECONDARY, "88.118", province="JS") as prov:
        async with running_node(
            tmp_path, Role.ENTERPRISE, ENT, parent_app=prov.app, telemetry=False,
            province="JS", industry="automobiles", **fast,
        ) as ent:  # fmt: skip
            c = prov.http
            listed = (await c.get("/monitoring/nodes", auth=auth_for("88.118"))).json()
            assert listed["nodes"] == []
            assert listed["never_reported"] == []
            await prov.delegate(ENT, "http://127.0.0.1:8003")
            # reads need the node administrator; the child's own credentials are refused
            assert (await c.get("/monitoring/nodes")).status_code == 401
            assert (await c.get("/monitoring/nodes", auth=auth_for(ENT))).status_code == 403
            assert (
                await c.get("/monitoring/nodes", auth=auth_for("88.118", "bad"))
            ).status_code == 401
            nodes: dict[str, object] = {}
            for _ in range(100):
                r = await c.get("/monitoring/nodes", auth=auth_for("88.118"))
                assert r.status_code == 200
                nodes = {n["origin"]: n for n in r.json()["nodes"]}
                if nodes[ENT]["reported"]:
                    break
                await asyncio.sleep(0.05)
            assert nodes[ENT]["reported"], nodes
            assert nodes[ENT]["province"] == "JS"

            notice = {"id": "N-1", "issuer": "88.118", "issued_at": 1.0,
                      "title": "patch PLC firmware", "action": "update to 2.1"}  # fmt: skip
            assert (await c.post("/monitoring/notices", json=notice)).status_code == 401
            r = await c.post("/monitoring/notices", json=notice, auth=auth_for("88.118"))
            assert r.status_code == 201, r.text

            e = ent.http
            state = None
            for _ in range(100):
                listed = (await e.get("/monitoring/notices", auth=auth_for(ENT))).json()
                state = {n["id"]: n["state"] for n in listed["notices"]}.get("N-1")
                if state:
                    break
                await asyncio.sleep(0.05)
            assert state == "delivered"
            ack = await e.post(
                "/monitoring/notices/N-1/answer", json={"state": "acknowledged"}, auth=auth_for(ENT)
            )
            assert ack.status_code == 200, ack.text
            again = await e.post(
                "/monitoring/notices/N-1/answer", json={"state": "acknowledged"}, auth=auth_for(ENT)
            )
            assert again.status_code == 409
            missing = await e.post("/monitoring/notices/N-9/answer", json={}, auth=auth_for(ENT))
            assert missing.status_code == 404

            states: dict[str, str] = {}
            for _ in range(100):
                r = await c.get("/monitoring/notices/N-1/progress", auth=auth_for("88.118"))
                states = r.json()["states"]
                if states.get(ENT) == "acknowledged":
                    break
                await asyncio.sleep(0.05)
            assert states == {ENT: "acknowledged"}
        # the enterprise stopped: it is listed as stale once its heartbeats are overdue
        r = await c.get("/monitoring/nodes", params={"stale_after": 0.01}, auth=auth_for("88.118"))
        await asyncio.sleep(0.05)
        r = await c.get("/monitoring/nodes", params={"stale_after": 0.01}, auth=auth_for("88.118"))
        assert ENT in r.json()["stale"]


async def test_reports_from_a_prefix_that_is_not_delegated_here_are_refused(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path, Role.SECONDARY, "88.118") as prov:
        body = {"v": 1, "sender": ENT, "batch": "0" * 32, "sent_at": 1.0, "events": []}
        # 0.NA/88.118.8 does not exist here: the credentials do not authenticate
        r = await prov.http.post("/monitoring/reports", json=body, auth=auth_for(ENT))
        assert r.status_code == 401
        # the node's own identity authenticates but is not a child
        body["sender"] = "88.118"
        r = await prov.http.post("/monitoring/reports", json=body, auth=auth_for("88.118"))
        assert r.status_code == 403


async def test_nodes_lists_delegated_children_that_never_reported(tmp_path: Path) -> None:
    from iinode.identifiers import HandleName, HandleValue, IndexedHandle, UrlData

    fast = {"heartbeat_interval": 0.05, "notice_interval": 0.05}
    async with running_node(tmp_path, Role.SECONDARY, "88.118", province="JS") as prov:
        await prov.delegate("88.118.8", "http://127.0.0.1:8003")
        await prov.delegate("88.118.9", "http://127.0.0.1:8004")
        # a 0.NA record without an HS_SITE is no delegation
        admin = IndexedHandle.parse("300:0.NA/88.118")
        url = [HandleValue(1, "URL", UrlData("http://example.cn/"))]
        await prov.service.create(HandleName.parse("0.NA/88.118.7"), url, admin)
        async with running_node(
            tmp_path, Role.ENTERPRISE, "88.118.8", parent_app=prov.app, telemetry=False,
            province="JS", **fast,
        ):  # fmt: skip
            listed: dict[str, object] = {}
            for _ in range(100):
                r = await prov.http.get("/monitoring/nodes", auth=auth_for("88.118"))
                assert r.status_code == 200, r.text
                listed = r.json()
                if listed["never_reported"] == ["88.118.9"]:
                    break
                await asyncio.sleep(0.05)
        assert listed["never_reported"] == ["88.118.9"], listed
        nodes = {n["origin"]: n for n in listed["nodes"]}  # type: ignore[attr-defined]
        assert sorted(nodes) == ["88.118.8", "88.118.9"]
        assert nodes["88.118.8"]["reported"]
        assert not nodes["88.118.8"]["stale"]
        silent = nodes["88.118.9"]
        assert silent["reported"] is False
        assert silent["last_seen"] is None
        assert silent["stale"]
        assert listed["stale"] == ["88.118.9"]


FAST = {"heartbeat_interval": 0.05, "notice_interval": 0.05}


async def eventually(probe: object, limit: float = 10.0) -> object:
    """Await ``probe()`` until it returns something truthy."""
    for _ in range(int(limit / 0.05)):
        got = await probe()  # type: ignore[operator]
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def delegate_with_labels(parent: Node, child: str, province: str, industry: str) -> None:
    """``0.NA/<child>`` with an HS_SITE, the child's HS_SECKEY and the parent's IINODE_NODE."""
    hidden = Permissions.ADMIN_READ | Permissions.ADMIN_WRITE
    values = [
        HandleValue(1, "HS_SITE", site_from_url("http://127.0.0.1:8003")),
        node_value(province, industry),
        HandleValue(300, "HS_SECKEY", SecKeyData(SECRET.encode()), permissions=hidden),
    ]
    admin = IndexedHandle.parse(f"300:0.NA/{parent.settings.prefix}")
    await parent.service.create(Prefix(child).na_handle, values, admin)


async def test_the_parents_record_decides_a_childs_labels(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.SECONDARY, "88.118", province="JS") as prov:
        await delegate_with_labels(prov, ENT, "JS", "automobiles")
        async with running_node(
            tmp_path, Role.ENTERPRISE, ENT, parent_app=prov.app, telemetry=False,
            province="GD", industry="medicine", **FAST,
        ) as ent:  # fmt: skip
            c = prov.http

            async def reported() -> dict[str, object] | None:
                r = await c.get("/monitoring/nodes", auth=auth_for("88.118"))
                nodes = {n["origin"]: n for n in r.json()["nodes"]}
                return nodes[ENT] if nodes.get(ENT, {}).get("reported") else None

            node = await eventually(reported)
            assert (node["province"], node["industry"]) == ("JS", "automobiles")  # type: ignore[index]
            view = (await c.get("/monitoring/view", params={"by": "province"},
                                auth=auth_for("88.118"))).json()  # fmt: skip
            assert set(view["counts"]) == {"JS"}
            text = (await c.get("/metrics")).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            [mismatch] = families["iinode_monitoring_label_mismatches"].samples
            assert mismatch.labels == {"child": ENT}
            assert mismatch.value >= 1
            # notices are targeted by the recorded labels, not the declared ones
            for nid, industry in (("N-MED", "medicine"), ("N-AUTO", "automobiles")):
                notice = {"id": nid, "issuer": "88.118", "issued_at": 1.0, "title": "patch",
                          "target": {"industries": [industry]}}  # fmt: skip
                r = await c.post("/monitoring/notices", json=notice, auth=auth_for("88.118"))
                assert r.status_code == 201, r.text

            async def answered() -> dict[str, str] | None:
                listed = (await ent.http.get("/monitoring/notices", auth=auth_for(ENT))).json()
                states = {n["id"]: n["state"] for n in listed["notices"]}
                return states if states.get("N-AUTO") else None

            assert await eventually(answered) == {"N-AUTO": "delivered"}


async def test_a_notice_targeting_a_cpe_reaches_only_the_enterprise_with_that_product(
    tmp_path: Path,
) -> None:
    other = "88.118.9"
    async with running_node(tmp_path, Role.SECONDARY, "88.118", province="JS") as prov:
        await prov.delegate(ENT, "http://127.0.0.1:8003")
        await prov.delegate(other, "http://127.0.0.1:8004")
        async with (
            running_node(tmp_path, Role.ENTERPRISE, ENT, parent_app=prov.app, telemetry=False,
                         province="JS", industry="automobiles", **FAST) as siemens,
            running_node(tmp_path, Role.ENTERPRISE, other, parent_app=prov.app, telemetry=False,
                         province="JS", industry="automobiles", **FAST) as schneider,
        ):  # fmt: skip
            products = [
                (siemens, "Siemens", "SIMATIC S7-1200"),
                (schneider, "Schneider Electric", "Modicon M218"),
            ]
            for node, vendor, model in products:
                registry = node.extensions.registry
                assert registry is not None
                prefix = node.settings.prefix
                await registry.put(
                    Equipment(f"{prefix}/PLC-1", EquipmentKind.CONTROLLER, model, vendor),
                    IndexedHandle.parse(f"300:0.NA/{prefix}"),
                )
            notice = {
                "id": "N-S7", "issuer": "88.118", "issued_at": 1.0,
                "title": "SIMATIC S7-1200 firmware", "action": "update to V4.5",
                "target": {"cpe": "cpe:2.3:o:siemens:simatic_s7-1200_firmware:*:*:*:*:*:*:*:*"},
            }  # fmt: skip
            r = await prov.http.post("/monitoring/notices", json=notice, auth=auth_for("88.118"))
            assert r.status_code == 201, r.text

            async def progress() -> dict[str, str] | None:
                r = await prov.http.get(
                    "/monitoring/notices/N-S7/progress", auth=auth_for("88.118")
                )
                states: dict[str, str] = r.json()["states"]
                return states if len(states) == 2 else None

            assert await eventually(progress) == {ENT: "delivered", other: "not_affected"}
            listed = (await siemens.http.get("/monitoring/notices", auth=auth_for(ENT))).json()
            assert listed["notices"][0]["assets"] == [f"{ENT}/PLC-1"]


async def test_the_national_level_fetches_an_enterprise_events_detail_on_demand(
    tmp_path: Path,
) -> None:
    async with running_node(tmp_path, Role.TOP, "88") as nat:
        await nat.delegate("88.118", "http://127.0.0.1:8002")
        async with running_node(
            tmp_path, Role.SECONDARY, "88.118", parent_app=nat.app, province="JS", **FAST
        ) as prov:
            await prov.delegate(ENT, "http://127.0.0.1:8003")
            async with running_node(
                tmp_path, Role.ENTERPRISE, ENT, parent_app=prov.app, telemetry=False,
                province="JS", industry="automobiles", **FAST,
            ) as ent:  # fmt: skip
                # a wrong password at the enterprise becomes a security event with a STIX bundle,
                # once the node's security sources watch its logins (they start in the background)
                async def watching() -> bool:
                    return bool(ent.service.auth.failure_observers)

                await eventually(watching)
                r = await ent.http.put(
                    f"/api/handles/{ENT}/X", json={"values": []}, auth=auth_for(ENT, "wrong")
                )
                assert r.status_code == 401
                monitoring = nat.extensions.monitoring
                assert monitoring is not None

                async def summary_at_national() -> str | None:
                    for e in monitoring.store.recent(kind=EventKind.SECURITY, origin=ENT):
                        assert e.detail is None
                        assert e.detail_at == Prefix("88.118")
                        return e.id
                    return None

                event_id = await eventually(summary_at_national)
                url = f"/monitoring/events/{ENT}/{event_id}"
                assert (await nat.http.get(url)).status_code == 401
                assert (await nat.http.get(url, auth=auth_for("88.118"))).status_code == 403
                r = await nat.http.get(url, params={"wait": 10}, auth=auth_for("88"))
                assert r.status_code == 200, r.text
                detail = r.json()["detail"]
                assert detail["type"] == "bundle"
                assert any(o["type"] == "observed-data" for o in detail["objects"])
                assert "detail_at" not in r.json()
                # kept at the national level from now on
                stored = monitoring.store.get(ENT, str(event_id))
                assert stored is not None
                assert stored.detail == detail
                # a child may answer only what it was asked for, as the holder
                forged = {"events": [stored.to_json() | {"id": "other"}]}
                r = await nat.http.post("/monitoring/details", json=forged, auth=auth_for("88.118"))
                assert r.json() == {"filled": 0, "ignored": 1}
                assert (
                    await nat.http.get("/monitoring/detail-requests", auth=auth_for(ENT))
                ).status_code == 401  # 0.NA/88.118.8 is not held at the national level
