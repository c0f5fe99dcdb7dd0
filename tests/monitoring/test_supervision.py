"""Monitoring loops survive failures; bad answers ack nothing; poison events are set aside."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from prometheus_client.parser import text_string_to_metric_families

from iinode.monitoring import Event, EventKind, MemoryAuthenticator, ReplyInvalid, Severity
from iinode.monitoring.errors import OutboxFull
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.node import AssetList, MonitoringNode, MonitoringSettings, ParentLink
from iinode.monitoring.protocol import decode_batch
from iinode.monitoring.receiver import children_of
from iinode.monitoring.supervise import Backoff, Supervised
from monitoring.hierarchy_support import ENTERPRISE, Hierarchy, build_hierarchy


def sample(metrics: NodeMetrics, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


async def until(check: Callable[[], bool], limit: float = 10.0) -> None:
    for _ in range(int(limit / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def ev(n: int) -> Event:
    return Event(
        id=f"ev-{n}", origin=ENTERPRISE, kind=EventKind.SECURITY, severity=Severity.LOW,
        observed_at=1_700_000_000.0 + n, province="JX", industry="automobiles", detail={"n": n},
    )  # fmt: skip


async def test_a_failing_loop_is_logged_counted_and_restarted() -> None:
    metrics = NodeMetrics()
    runs: list[int] = []

    async def loop(stop: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) <= 2:
            raise sqlite3.OperationalError("database is locked")
        await stop.wait()

    task = Supervised("probe", loop, metrics, Backoff(0.01, 2.0, 0.05))
    stop = asyncio.Event()
    running = asyncio.create_task(task.run(stop))
    await until(lambda: len(runs) == 3)
    assert task.failures == 2
    assert task.last_error == "OperationalError: database is locked"
    assert sample(metrics, "iinode_monitoring_task_failures_total", task="probe") == 2.0
    stop.set()
    await asyncio.wait_for(running, 5)


class ScriptedParent:
    """A parent whose report answers follow a script, then become correct receipts."""

    def __init__(self, script: list[Callable[[bytes], Response]]) -> None:
        self.script = script
        self.bodies: list[bytes] = []
        self.app = FastAPI()
        self.app.post("/monitoring/reports")(self.reports)

    async def reports(self, request: Request) -> Response:
        body = await request.body()
        self.bodies.append(body)
        if self.script:
            return self.script.pop(0)(body)
        return receipt(body)


def receipt(body: bytes, **override: Any) -> Response:
    batch = decode_batch(body, max_events=10_000, max_bytes=1 << 26)
    data = {
        "batch": batch.batch_id,
        "accepted": len(batch.events),
        "duplicates": 0,
        "received_at": batch.sent_at,
        "clock_skew": 0.0,
        "skew_alarm": False,
    } | override
    return Response(orjson.dumps(data), media_type="application/json")


def enterprise(
    tmp_path: Path, client: httpx.AsyncClient, secret: str = "s", **settings: Any
) -> MonitoringNode:
    return MonitoringNode(
        MonitoringSettings(
            ENTERPRISE,
            tmp_path / "ent",
            province="JX",
            industry="automobiles",
            parent=ParentLink("http://parent", "300:0.NA/88.118.8", secret),
            backoff_initial=0.01,
            backoff_max=0.05,
            **settings,
        ),
        is_child=children_of(),
        authenticate=MemoryAuthenticator(),
        client=client,
    )


async def test_answers_that_are_not_receipts_for_the_batch_ack_nothing(tmp_path: Path) -> None:
    parent = ScriptedParent(
        [
            lambda b: Response(b"ok", media_type="text/plain"),  # 200, not JSON
            lambda b: Response(b"[1, 2]", media_type="application/json"),  # JSON, no receipt
            lambda b: receipt(b, batch="f" * 32),  # another batch's receipt
            lambda b: receipt(b, accepted=1),  # counts that do not add up
        ]
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=parent.app))
    node = enterprise(tmp_path, client)
    try:
        node.emit([ev(n) for n in range(5)])
        assert node.sender is not None
        with pytest.raises(ReplyInvalid, match="without a receipt"):
            await node.sender.send_once()
        assert node.outbox.pending == 5  # nothing acked
        await node.start()
        await until(lambda: node.outbox.pending == 0)
        assert len(parent.bodies) == 5  # four bad answers (each retried), one receipt
        assert node.tasks["sender"].failures == 0  # the sender never died
        got = [decode_batch(b, max_events=99, max_bytes=1 << 20) for b in parent.bodies]
        assert all([e.id for e in g.events] == [f"ev-{n}" for n in range(5)] for g in got)
        assert len({g.batch_id for g in got}) == 5
    finally:
        await node.close()
        await client.aclose()


async def test_a_poison_event_is_isolated_dead_lettered_and_the_rest_flows(
    tmp_path: Path,
) -> None:
    h: Hierarchy = await build_hierarchy(tmp_path, batch_size=64)
    try:
        ent = h.enterprise
        ent.emit([ev(n) for n in range(17)])
        # A newer node emits a kind this parent does not know: the parent refuses it (400).
        poison = ev(17).to_json() | {"kind": "firmware_change", "id": "poison"}
        ent.outbox.enqueue_raw([(f"{ENTERPRISE.text}|poison", orjson.dumps(poison))])
        ent.emit([ev(n) for n in range(18, 40)])
        await ent.start()
        await until(lambda: ent.outbox.pending == 0)
        await ent.stop()
        stored = h.province.store.keys()
        assert {(ENTERPRISE.text, f"ev-{n}") for n in range(40) if n != 17} <= stored
        assert (ENTERPRISE.text, "poison") not in stored
        [dead] = ent.outbox.dead_letters()
        assert dead.key == f"{ENTERPRISE.text}|poison"
        assert orjson.loads(dead.body)["kind"] == "firmware_change"
        assert "event #0" in dead.reason
        assert "firmware_change" in dead.reason
        assert sample(ent.metrics, "iinode_monitoring_dead_letters_total") == 1.0
        assert sample(ent.metrics, "iinode_monitoring_dead_letters_pending") == 1.0
        # the alarm climbs as a health event naming the refused event
        alarms = [
            e for o, i in stored if (e := h.province.store.get(o, i)) and e.kind is EventKind.HEALTH
        ]
        assert [a.detail["events"] for a in alarms if a.detail] == [[dead.key]]
        assert alarms[0].id.startswith("alarm.dead-letter.")
        # bisection: a handful of refused batches, not one request per event
        assert h.province_link.requests <= 12  # log2(41) + 2 here
        assert ent.sender is not None
        assert ent.sender.batch_size == 64
        # once the parent is fixed, the dead letters can be queued again
        assert ent.outbox.requeue_dead() == 1
        assert ent.outbox.dead_count() == 0
        assert ent.outbox.pending == 1
    finally:
        await h.close()


async def test_refused_credentials_keep_retrying_with_an_alarm(tmp_path: Path) -> None:
    h = await build_hierarchy(tmp_path)
    try:
        ent = h.enterprise
        sender = ent.sender
        assert sender is not None
        good = sender.settings
        sender.settings = replace(good, password="wrong")
        ent.emit([ev(n) for n in range(3)])
        await ent.start()
        await until(
            lambda: (
                sample(ent.metrics, "iinode_monitoring_parent_refusing", reason="unauthenticated")
                == 1.0
            )
        )
        before = h.province_link.requests
        await asyncio.sleep(0.2)
        assert h.province_link.requests > before  # still trying, with back-off
        assert ent.outbox.pending == 3
        assert ent.outbox.dead_count() == 0
        sender.settings = good
        await until(lambda: ent.outbox.pending == 0)
        assert (
            sample(ent.metrics, "iinode_monitoring_parent_refusing", reason="unauthenticated")
            == 0.0
        )
        assert len(h.province.store.keys()) == 3
    finally:
        await h.close()


def notice_parent(replies: list[bytes]) -> FastAPI:
    app = FastAPI()

    @app.get("/monitoring/notices")
    async def notices() -> Response:
        body = replies.pop(0) if len(replies) > 1 else replies[0]
        return Response(body, media_type="application/json")

    return app


NOTICE = {"id": "N-1", "issuer": "88", "issued_at": 1.0, "title": "patch", "action": "update"}


@pytest.mark.parametrize("failure", ["assets", "outbox_full"])
async def test_a_notice_whose_answer_failed_is_answered_at_the_next_pull(
    tmp_path: Path, failure: str
) -> None:
    body = orjson.dumps({"next": 1, "notices": [NOTICE]})
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=notice_parent([body])))
    broken = [True]

    async def assets() -> AssetList:
        if failure == "assets" and broken[0]:
            raise RuntimeError("registry unavailable")
        return []

    node = MonitoringNode(
        MonitoringSettings(
            ENTERPRISE,
            tmp_path / "ent",
            province="JX",
            parent=ParentLink("http://parent", "300:0.NA/88.118.8", "s"),
            answers_notices=True,
            outbox_max_events=1 if failure == "outbox_full" else 100,
        ),
        is_child=children_of(),
        authenticate=MemoryAuthenticator(),
        client=client,
        assets=assets,
    )
    try:
        if failure == "outbox_full":
            node.emit([ev(0)])
        expected: type[Exception] = RuntimeError if failure == "assets" else OutboxFull
        with pytest.raises(expected):
            await node.poll_notices()
        assert node.board.get("N-1") is not None  # on the board ...
        assert node.board.state("N-1") is None  # ... but not answered
        broken[0] = False
        if failure == "outbox_full":
            node.outbox.ack(node.outbox.peek(1))
        assert await node.poll_notices() == []  # nothing new arrived ...
        state = node.board.state("N-1")
        assert state is not None
        assert state[0].value == "delivered"
        [item] = node.outbox.peek(10)
        assert item.key == f"{ENTERPRISE.text}|notice.N-1.delivered"
    finally:
        await node.close()
        await client.aclose()


async def test_bad_notice_replies_neither_kill_the_loop_nor_block_later_notices(
    tmp_path: Path,
) -> None:
    good = {**NOTICE, "id": "N-2"}
    replies = [
        b"<html>maintenance</html>",
        orjson.dumps({"next": "x", "notices": []}),
        orjson.dumps({"next": 2, "notices": [{"id": "bad id!", "title": ""}, good]}),
    ]
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=notice_parent(replies)))
    node = enterprise(tmp_path, client, notice_interval=0.02)
    try:
        with pytest.raises(ReplyInvalid):
            await node.poll_notices()
        await node.start()
        await until(lambda: node.board.get("N-2") is not None)
        assert node.board.cursor("parent") == 2
        assert sample(node.metrics, "iinode_monitoring_notices_invalid_total") == 1.0
        assert node.tasks["notices"].failures == 0
    finally:
        await node.close()
        await client.aclose()


async def test_an_unexpected_error_in_a_periodic_loop_restarts_it(tmp_path: Path) -> None:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=FastAPI()))
    node = enterprise(tmp_path, client, heartbeat_interval=0.01)
    calls = [0]
    emit: Callable[..., int] = node.emit

    def flaky(events: Any) -> int:
        calls[0] += 1
        if calls[0] <= 2:
            raise sqlite3.OperationalError("database is locked")
        return emit(events)

    node.emit = flaky  # type: ignore[method-assign]
    try:
        await node.start()
        await until(lambda: node.outbox.pending >= 2)
        beat = node.tasks["heartbeat"]
        assert beat.failures == 2
        assert "database is locked" in beat.last_error
    finally:
        await node.close()
        await client.aclose()


async def test_a_parent_refusing_everything_does_not_chain_alarms(tmp_path: Path) -> None:
    refuse = Response(b'{"error": "malformed", "detail": "no"}', status_code=400)
    parent = ScriptedParent([lambda b: refuse] * 100)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=parent.app))
    node = enterprise(tmp_path, client)
    try:
        node.emit([ev(1), ev(2)])
        await node.start()
        await until(lambda: node.outbox.pending == 0)
        await asyncio.sleep(0.2)
        # two events and the two alarms they raised; the refused alarms raise no more
        assert node.outbox.pending == 0
        dead = [d.key.partition("|")[2] for d in node.outbox.dead_letters()]
        assert sum(d.startswith("alarm.dead-letter.") for d in dead) == 2
        assert sorted(d for d in dead if d.startswith("ev-")) == ["ev-1", "ev-2"]
        assert len(dead) == 4
    finally:
        await node.close()
        await client.aclose()
