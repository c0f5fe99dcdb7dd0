"""Event store under concurrency: replay races, loop-side writes, future clocks, detail waiters."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from iinode.api.monitoring import monitoring_router
from iinode.api.monitoring_common import MonitoringApp
from iinode.identifiers import Prefix
from iinode.monitoring import (
    Event,
    EventKind,
    MemoryAuthenticator,
    NodeMetrics,
    NoticeBoard,
    Outbox,
    OutboxFull,
    OutboxSettings,
    ReportReplayed,
    Severity,
    children_of,
)
from iinode.monitoring.auth import basic_username
from iinode.monitoring.protocol import encode_batch, new_batch_id
from iinode.monitoring.receiver import ForwardPolicy, ReceiverSettings, ReportReceiver
from iinode.monitoring.store import EventStore

PROVINCE, ENTERPRISE = Prefix("88.118"), Prefix("88.118.8")


def ev(n: int) -> Event:
    return Event(
        id=f"c{n}",
        origin=ENTERPRISE,
        kind=EventKind.SECURITY,
        severity=Severity.LOW,
        observed_at=1_700_000_000.0 + n,
        province="JX",
        detail={"n": n},
    )


def body(events: list[Event], sent_at: float | None = None) -> bytes:
    sent = time.time() if sent_at is None else sent_at
    return encode_batch(ENTERPRISE, new_batch_id(), sent, [e.encode() for e in events])


def receiver(tmp: Path, outbox: Outbox | None = None) -> ReportReceiver:
    return ReportReceiver(
        ReceiverSettings(PROVINCE, children_of(ENTERPRISE)),
        EventStore(tmp / "events.db"),
        NodeMetrics(),
        None if outbox is None else ForwardPolicy(outbox),
    )


def test_simultaneous_reports_with_one_batch_id_store_it_once(tmp_path: Path) -> None:
    rx = receiver(tmp_path)
    for round_ in range(40):
        raw = body([ev(2 * round_), ev(2 * round_ + 1)])
        gate = threading.Barrier(2)
        outcomes: list[object] = []

        def post(
            raw: bytes = raw, gate: threading.Barrier = gate, outcomes: list[object] = outcomes
        ) -> None:
            gate.wait()
            try:
                outcomes.append(rx.receive(ENTERPRISE, raw))
            except Exception as exc:  # every outcome is checked below
                outcomes.append(exc)

        threads = [threading.Thread(target=post) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        replays = [o for o in outcomes if isinstance(o, ReportReplayed)]
        assert len(outcomes) == 2, outcomes
        assert len(replays) == 1, outcomes
    assert rx.store.count() == 80
    assert rx.store.batch_count() == 40
    assert rx.refused == {"replayed": 40}


def test_a_detail_request_made_during_a_rolled_back_receive_survives(tmp_path: Path) -> None:
    metrics = NodeMetrics()
    box = Outbox(OutboxSettings(tmp_path / "events.db", max_events=1), metrics)
    rx = receiver(tmp_path, box)
    rx.receive(ENTERPRISE, body([ev(0)]))  # the outbox is now full
    store = rx.store
    reserve = box.reserve
    writer = threading.Thread(target=store.request_detail, args=("88.118.8", "c0", "X", 1.0))

    def reserve_while_another_thread_writes(count: int, size: int) -> None:
        writer.start()  # runs while the receive transaction is open
        time.sleep(0.2)
        reserve(count, size)

    box.reserve = reserve_while_another_thread_writes  # type: ignore[method-assign]
    with pytest.raises(OutboxFull):
        rx.receive(ENTERPRISE, body([ev(1)]))
    writer.join(10)
    assert store.detail_requests("X") == [("88.118.8", "c0")]
    assert store.count() == 1


def test_a_batch_sent_far_in_the_future_is_refused_and_not_kept(tmp_path: Path) -> None:
    rx = receiver(tmp_path)
    window = rx.settings.replay_window
    with pytest.raises(ReportReplayed, match="ahead of this node's clock"):
        rx.receive(ENTERPRISE, body([ev(0)], sent_at=time.time() + window + 3600))
    assert (rx.store.count(), rx.store.batch_count()) == (0, 0)
    # merely skewed beyond the tolerance: accepted, with the alarm
    receipt = rx.receive(ENTERPRISE, body([ev(1)], sent_at=time.time() + 120))
    assert (receipt.accepted, receipt.skew_alarm) == (1, True)
    assert rx.store.prune_batches(time.time() + 120 + 1) == 1


async def test_detail_waiters_are_capped_and_woken_by_the_detail(tmp_path: Path) -> None:
    rx = receiver(tmp_path)
    full = ev(7)
    rx.store.insert(
        [full.summary(ENTERPRISE)], via=ENTERPRISE.text, batch_id="b1", received_at=time.time()
    )
    auth = MemoryAuthenticator()
    user = auth.add(ENTERPRISE, "secret")
    token = base64.b64encode(f"{basic_username(user)}:secret".encode()).decode()
    app = FastAPI()
    app.include_router(
        monitoring_router(MonitoringApp(rx, auth, NoticeBoard(), max_detail_waiters=1))
    )
    url = "/monitoring/events/88.118.8/c7"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as c:
        first = asyncio.create_task(c.get(url, params={"wait": 10}))
        for _ in range(200):
            if rx.store.detail_requests(ENTERPRISE.text):
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        busy = await c.get(url, params={"wait": 10})
        assert (busy.status_code, busy.json()["error"]) == (503, "busy")
        assert busy.headers["retry-after"] == "5"
        assert (await c.get(url)).status_code == 202  # no wait: not counted
        started = time.monotonic()
        r = await c.post(
            "/monitoring/details",
            json={"events": [full.to_json()]},
            headers={"authorization": f"Basic {token}"},
        )
        assert r.json() == {"filled": 1, "ignored": 0}
        got = await asyncio.wait_for(first, 5)
        assert time.monotonic() - started < 2
    assert got.status_code == 200
    assert got.json()["detail"] == {"n": 7}
