from __future__ import annotations

import time

import httpx
import pytest

from iinode.identifiers import HandleName, Prefix
from iinode.monitoring import EventInvalid, Notice, NoticeState, NoticeTarget
from iinode.monitoring.cpe import Cpe
from iinode.monitoring.inventory import AssetKind, describe_asset
from iinode.monitoring.notices import evaluate, pull_notices, status_event
from monitoring.hierarchy_support import Hierarchy, app_for


def notice(nid: str, **target: object) -> Notice:
    return Notice(
        id=nid,
        issuer=Prefix("88"),
        issued_at=time.time(),
        title=f"Patch {nid}",
        action="Update SIMATIC S7-1200 firmware to V4.5.0 or later",
        target=NoticeTarget(**target),  # type: ignore[arg-type]
    )


def test_notice_json_round_trip_and_validation() -> None:
    n = notice(
        "N-1",
        provinces=frozenset({"JX"}),
        cpe=Cpe.parse("cpe:2.3:o:siemens:simatic_s7-1200_firmware:*:*:*:*:*:*:*:*"),
    )
    assert Notice.from_json(n.to_json()) == n
    with pytest.raises(EventInvalid, match="missing field 'title'"):
        Notice.from_json({"id": "x", "issuer": "88", "issued_at": 1})
    with pytest.raises(EventInvalid, match="target is invalid"):
        Notice.from_json({**n.to_json(), "target": {"cpe": "nope"}})


def test_targeting_by_province_industry_and_asset() -> None:
    t = NoticeTarget(provinces=frozenset({"JX"}), industries=frozenset({"automobiles"}))
    assert t.matches_node("JX", "automobiles")
    assert t.matches_node("JX", "")  # a provincial node passes it on
    assert not t.matches_node("GD", "automobiles")
    assert not t.matches_node("JX", "medicine")
    s7 = describe_asset(
        HandleName("88.118.8", "PLC-1"), AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "4.4"
    )
    m218 = describe_asset(
        HandleName("88.118.8", "PLC-2"), AssetKind.PLC, "Schneider", "Modicon M218", "5.1"
    )
    n = notice("N-2", cpe=Cpe.parse("cpe:2.3:o:siemens:simatic_s7-1200_firmware:*:*:*:*:*:*:*:*"))
    assert evaluate(n, [s7, m218]) == (NoticeState.DELIVERED, ["88.118.8/PLC-1"])
    assert evaluate(n, [m218]) == (NoticeState.NOT_AFFECTED, [])
    only_hmi = notice("N-3", asset_kinds=frozenset({"hmi"}))
    assert evaluate(only_hmi, [s7])[0] is NoticeState.NOT_AFFECTED


async def test_notice_flows_down_and_status_flows_up(hierarchy: Hierarchy) -> None:
    h = hierarchy
    assert h.enterprise.sender is not None
    assert h.province.sender is not None
    # profiles become known upward through heartbeats
    h.province.emit([h.province.heartbeat()])
    h.enterprise.emit([h.enterprise.heartbeat()])
    await h.enterprise.sender.drain()
    await h.province.sender.drain()

    national_http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(h.national)), base_url="http://national"
    )
    province_http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(h.province)), base_url="http://province"
    )
    async with national_http, province_http:
        targeted = notice(
            "N-10",
            provinces=frozenset({"JX"}),
            industries=frozenset({"automobiles"}),
            cpe=Cpe.parse("cpe:2.3:o:siemens:simatic_s7-1200_firmware:*:*:*:*:*:*:*:*"),
        )
        elsewhere = notice("N-11", provinces=frozenset({"GD"}))
        for n in (targeted, elsewhere):
            r = await national_http.post("/monitoring/notices", json=n.to_json())
            assert r.status_code == 201
        forged = await national_http.post(
            "/monitoring/notices", json={**targeted.to_json(), "id": "N-x", "issuer": "88.118"}
        )
        assert forged.status_code == 403

        # province pulls from national (its parent), keeps on its own board
        nxt, got = await pull_notices(
            national_http, "http://national", "300:0.NA/88.118", "province-secret"
        )
        assert [n.id for n in got] == ["N-10"]
        for n in got:
            h.province.board.add(n)
        _, again = await pull_notices(
            national_http, "http://national", "300:0.NA/88.118", "province-secret", since=nxt
        )
        assert again == []
        # enterprise pulls from province
        _, mine = await pull_notices(
            province_http, "http://province", "300:0.NA/88.118.8", "enterprise-secret"
        )
        assert [n.id for n in mine] == ["N-10"]

        progress = (await national_http.get("/monitoring/notices/N-10/progress")).json()
        assert progress["pending"] == ["88.118.8"]
        assert progress["states"] == {}

        plc = describe_asset(
            HandleName("88.118.8", "PLC-1"), AssetKind.PLC, "Siemens", "SIMATIC S7-1200", "4.4"
        )
        state, assets = evaluate(mine[0], [plc])
        node = h.enterprise.settings.node
        h.enterprise.emit(
            [
                status_event(mine[0], node, state, time.time(), assets=assets, province="JX"),
                status_event(mine[0], node, NoticeState.ACKNOWLEDGED, time.time() + 1),
            ]
        )
        await h.enterprise.sender.drain()
        await h.province.sender.drain()
        progress = (await national_http.get("/monitoring/notices/N-10/progress")).json()
        assert progress["states"] == {"88.118.8": "acknowledged"}
        assert progress["pending"] == []
        h.enterprise.emit(
            [
                status_event(mine[0], node, NoticeState.COMPLETED, time.time() + 2),
            ]
        )
        await h.enterprise.sender.drain()
        await h.province.sender.drain()
        progress = (await national_http.get("/monitoring/notices/N-10/progress")).json()
        assert progress["states"] == {"88.118.8": "completed"}
        assert (await national_http.get("/monitoring/notices/N-404/progress")).status_code == 404

        # a stranger cannot pull notices
        r = await province_http.get("/monitoring/notices")
        assert r.status_code == 401
