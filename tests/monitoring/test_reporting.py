from __future__ import annotations

import base64
import random
from pathlib import Path

import httpx
import orjson
import pytest

from iinode.identifiers import HandleName, Prefix
from iinode.monitoring import (
    Backoff,
    Event,
    EventKind,
    Receipt,
    Severity,
    encode_batch,
    parse_basic,
)
from iinode.monitoring.auth import (
    basic_username,
)
from iinode.monitoring.protocol import new_batch_id
from monitoring.hierarchy_support import (
    ENTERPRISE,
    NATIONAL,
    PROVINCE,
    Hierarchy,
    app_for,
    build_hierarchy,
)


def event(n: int, origin: Prefix = ENTERPRISE, observed: float = 1_700_000_000.0) -> Event:
    return Event(
        id=f"ev-{n}",
        origin=origin,
        kind=EventKind.SECURITY,
        severity=Severity.HIGH if n % 2 else Severity.LOW,
        observed_at=observed + n,
        province="JX",
        industry="automobiles",
        asset=HandleName(origin.text, f"PRESS-{n % 3}"),
        asset_kind="plc",
        detail={"n": n},
    )


def body(
    events: list[Event],
    sender: Prefix = ENTERPRISE,
    sent_at: float | None = None,
    batch: str | None = None,
) -> bytes:
    import time

    return encode_batch(
        sender,
        batch or new_batch_id(),
        time.time() if sent_at is None else sent_at,
        [e.encode() for e in events],
    )


def auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{basic_username(user)}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


ENT_AUTH = auth("300:0.NA/88.118.8", "enterprise-secret")


@pytest.fixture
async def province_client(hierarchy: Hierarchy) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(hierarchy.province)), base_url="http://p"
    )


async def test_accepts_and_deduplicates(
    hierarchy: Hierarchy, province_client: httpx.AsyncClient
) -> None:
    async with province_client as c:
        r = await c.post(
            "/monitoring/reports", content=body([event(i) for i in range(5)]), headers=ENT_AUTH
        )
        assert r.status_code == 200, r.text
        receipt = Receipt.from_json(r.json())
        assert (receipt.accepted, receipt.duplicates) == (5, 0)
        r = await c.post(
            "/monitoring/reports", content=body([event(i) for i in range(3, 8)]), headers=ENT_AUTH
        )
        assert (r.json()["accepted"], r.json()["duplicates"]) == (3, 2)
        assert hierarchy.province.store.count() == 8
        # only new events are forwarded upward
        assert hierarchy.province.outbox.pending == 8
        detail = await c.get("/monitoring/events/88.118.8/ev-3")
        assert detail.json()["detail"] == {"n": 3}


async def test_late_and_out_of_order_events_are_accepted(
    hierarchy: Hierarchy, province_client: httpx.AsyncClient
) -> None:
    async with province_client as c:
        late = [event(i, observed=1_000_000_000.0) for i in (9, 2, 5)]
        r = await c.post("/monitoring/reports", content=body(late), headers=ENT_AUTH)
        assert r.status_code == 200
        view = await c.get("/monitoring/view", params={"by": "severity"})
        assert view.json()["counts"] == {"high": 2, "low": 1}


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({}, 401, "unauthenticated"),
        (auth("300:0.NA/88.118.8", "wrong"), 401, "unauthenticated"),
        ({"authorization": "Basic !!!"}, 401, "unauthenticated"),
        ({"authorization": "Bearer x"}, 401, "unauthenticated"),
    ],
)
async def test_unauthenticated_reports_are_refused(
    hierarchy: Hierarchy,
    province_client: httpx.AsyncClient,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    async with province_client as c:
        r = await c.post("/monitoring/reports", content=body([event(1)]), headers=headers)
    assert r.status_code == status
    assert r.json()["error"] == reason
    assert r.headers["www-authenticate"].startswith("Basic")
    assert hierarchy.province.receiver.refused == {reason: 1}
    assert hierarchy.province.store.count() == 0


async def test_foreign_prefixes_are_refused(tmp_path: Path) -> None:
    h = await build_hierarchy(tmp_path)
    try:
        nat = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app_for(h.national)), base_url="http://n"
        )
        prov = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app_for(h.province)), base_url="http://p"
        )
        async with nat, prov:
            # enterprise credentials at national: authenticated, but not a child there
            r = await nat.post("/monitoring/reports", content=body([event(1)]), headers=ENT_AUTH)
            assert (r.status_code, r.json()["error"]) == (403, "forbidden")
            assert "not a child" in r.json()["detail"]
            # naming another sender than the authenticated one
            r = await prov.post(
                "/monitoring/reports",
                content=body([event(1)], sender=Prefix("88.118.9")),
                headers=ENT_AUTH,
            )
            assert r.status_code == 403
            assert "names sender" in r.json()["detail"]
            # an event whose origin lies outside the child's prefix
            stray = event(2, origin=Prefix("88.118.9"))
            r = await prov.post("/monitoring/reports", content=body([stray]), headers=ENT_AUTH)
            assert r.status_code == 403
            assert "origin 88.118.9" in r.json()["detail"]
        assert h.national.receiver.refused == {"forbidden": 1}
        assert h.province.receiver.refused == {"forbidden": 2}
        assert h.province.store.count() == 0
        assert h.province.outbox.pending == 0
    finally:
        await h.close()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"v": 2}', "version"),
        (b'{"v":1,"sender":"88.118.8","batch":"x","sent_at":1,"events":[]}', "batch"),
        (
            b'{"v":1,"sender":"88..1","batch":"' + b"a" * 32 + b'","sent_at":1,"events":[]}',
            "sender",
        ),
        (
            b'{"v":1,"sender":"88.118.8","batch":"' + b"a" * 32 + b'","sent_at":"x","events":[]}',
            "sent_at",
        ),
        (
            b'{"v":1,"sender":"88.118.8","batch":"' + b"a" * 32 + b'","sent_at":1,"events":[{}]}',
            "event #0",
        ),
        (
            b'{"v":1,"sender":"88.118.8","batch":"' + b"a" * 32 + b'","sent_at":1,"events":'
            b'[{"id":"a","origin":"88.118.8","kind":"bogus","severity":"low","observed_at":1}]}',
            "event #0",
        ),
    ],
)
async def test_malformed_reports_are_refused(
    hierarchy: Hierarchy, province_client: httpx.AsyncClient, raw: bytes, fragment: str
) -> None:
    async with province_client as c:
        r = await c.post("/monitoring/reports", content=raw, headers=ENT_AUTH)
    assert r.status_code == 400
    assert r.json()["error"] == "malformed"
    assert fragment in r.json()["detail"]
    assert hierarchy.province.receiver.refused == {"malformed": 1}


async def test_replayed_and_stale_batches_are_refused(
    hierarchy: Hierarchy, province_client: httpx.AsyncClient
) -> None:
    import time

    raw = body([event(1), event(2)])
    async with province_client as c:
        assert (
            await c.post("/monitoring/reports", content=raw, headers=ENT_AUTH)
        ).status_code == 200
        again = await c.post("/monitoring/reports", content=raw, headers=ENT_AUTH)
        assert (again.status_code, again.json()["error"]) == (409, "replayed")
        stale = body([event(3)], sent_at=time.time() - 3 * 86400)
        r = await c.post("/monitoring/reports", content=stale, headers=ENT_AUTH)
        assert r.status_code == 409
        assert "replay window" in r.json()["detail"]
        metrics = (await c.get("/metrics")).text
    assert 'iinode_monitoring_reports_refused_total{reason="replayed"} 2.0' in metrics
    assert hierarchy.province.store.count() == 2


async def test_too_many_events_is_413(
    hierarchy: Hierarchy, province_client: httpx.AsyncClient
) -> None:
    many = [event(i) for i in range(hierarchy.province.receiver.settings.max_events + 1)]
    async with province_client as c:
        r = await c.post("/monitoring/reports", content=body(many), headers=ENT_AUTH)
    assert (r.status_code, r.json()["error"]) == (413, "too_large")


async def test_clock_skew_is_detected_and_reported(
    hierarchy: Hierarchy, province_client: httpx.AsyncClient
) -> None:
    import time

    async with province_client as c:
        r = await c.post(
            "/monitoring/reports",
            content=body([event(1)], sent_at=time.time() + 120),
            headers=ENT_AUTH,
        )
        receipt = Receipt.from_json(r.json())
        assert receipt.skew_alarm
        assert 110 < receipt.clock_skew < 130
        nodes = (await c.get("/monitoring/nodes")).json()["nodes"]
        assert nodes[0]["origin"] == "88.118.8"
        assert 110 < nodes[0]["clock_skew"] < 130
        r = await c.post("/monitoring/reports", content=body([event(2)]), headers=ENT_AUTH)
        assert not Receipt.from_json(r.json()).skew_alarm


async def test_sender_measures_parent_clock_offset(tmp_path: Path) -> None:
    import time

    h = await build_hierarchy(tmp_path, clock=lambda: time.time() + 0.0)
    try:
        assert h.enterprise.sender is not None
        h.enterprise.sender._clock = lambda: time.time() - 45  # enterprise clock runs late
        h.enterprise.emit([event(1)])
        assert await h.enterprise.sender.drain() == 1
        assert h.enterprise.sender.last_receipt is not None
        assert h.enterprise.sender.last_receipt.skew_alarm
        assert h.enterprise.sender.clock_offset is not None
        assert 44 < h.enterprise.sender.clock_offset < 46
    finally:
        await h.close()


async def test_three_levels_forward_summaries(hierarchy: Hierarchy) -> None:
    h = hierarchy
    h.enterprise.emit([event(i) for i in range(20)] + [h.enterprise.heartbeat()])
    assert h.enterprise.sender is not None
    assert h.province.sender is not None
    assert await h.enterprise.sender.drain() == 21
    assert await h.province.sender.drain() == 21
    assert h.national.store.count() == 21
    summary = h.national.store.get("88.118.8", "ev-4")
    assert summary is not None
    assert summary.detail is None
    assert summary.detail_at == PROVINCE
    assert summary.asset == HandleName("88.118.8", "PRESS-1")
    full = h.province.store.get("88.118.8", "ev-4")
    assert full is not None
    assert full.detail == {"n": 4}
    by_province = h.national.store.counts("province")
    assert by_province == {"JX": 21}
    nodes = h.national.store.nodes(now=2e9, stale_after=60)
    assert [(n.origin, n.via, n.industry, n.stale) for n in nodes] == [
        ("88.118.8", "88.118", "automobiles", True)
    ]
    assert NATIONAL.text == "88"


async def test_the_top_level_node_sees_its_own_security_events(hierarchy: Hierarchy) -> None:
    """The national node has no parent: its own events go to its own views, not a queue."""
    h = hierarchy
    own = h.national.event(EventKind.SECURITY, Severity.HIGH, detail={"what": "bad login"})
    assert h.national.emit([own]) == 1
    assert h.national.emit([own]) == 0  # the same event twice is kept once
    assert h.national.outbox.pending == 0  # nothing waits for a parent that does not exist
    h.enterprise.emit([event(1)])
    assert h.enterprise.sender is not None
    assert h.province.sender is not None
    await h.enterprise.sender.drain()
    await h.province.sender.drain()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(h.national)), base_url="http://n"
    ) as client:
        listed = (await client.get("/monitoring/events", params={"kind": "security"})).json()
        assert {(e["origin"], e["id"]) for e in listed["events"]} == {
            ("88", own.id), ("88.118.8", "ev-1"),
        }  # fmt: skip
        one = (await client.get(f"/monitoring/events/88/{own.id}")).json()
        assert one["detail"] == {"what": "bad login"}  # held here in full
        view = (await client.get("/monitoring/view", params={"by": "origin"})).json()
        assert view["counts"] == {"88": 1, "88.118.8": 1}
        nodes = (await client.get("/monitoring/nodes")).json()
        assert [n["origin"] for n in nodes["nodes"]] == ["88.118.8"]  # not itself


def test_backoff_grows_is_capped_and_resets() -> None:
    b = Backoff(initial=0.1, factor=2.0, maximum=1.0, rng=random.Random(7))
    delays = [b.next_delay() for _ in range(8)]
    assert all(0.05 <= d <= 0.1 for d in delays[:1])
    assert 0.2 <= delays[2] <= 0.4
    assert all(0.5 <= d <= 1.0 for d in delays[4:])
    b.reset()
    assert b.next_delay() <= 0.1


def test_parse_basic() -> None:
    assert parse_basic("Basic " + base64.b64encode(b"300%3A0.NA%2F88:pw:x").decode()) == (
        "300:0.NA/88",
        "pw:x",
    )
    assert parse_basic(None) is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None


def test_batch_round_trip() -> None:
    from iinode.monitoring import decode_batch

    raw = body([event(1), event(2)])
    batch = decode_batch(raw, max_events=10, max_bytes=10**6)
    assert [e.id for e in batch.events] == ["ev-1", "ev-2"]
    assert orjson.loads(batch.encode()) == orjson.loads(raw)
