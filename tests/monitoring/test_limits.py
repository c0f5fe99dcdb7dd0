"""Report bodies: identity before body, a streamed byte cap, storage off the event loop;
batch ids pruned after the replay window."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
from fastapi import FastAPI

from iinode.api.monitoring import monitoring_router
from iinode.api.monitoring_common import MonitoringApp
from iinode.errors import StorageError
from iinode.monitoring.receiver import NodeLabels, ReportReceiver
from monitoring.hierarchy_support import Hierarchy, app_for, build_hierarchy
from monitoring.test_reporting import ENT_AUTH, body, event


def client_for(h: Hierarchy) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_for(h.province)), base_url="http://p"
    )


def chunks(consumed: list[int], count: int = 100, size: int = 65536) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for n in range(count):
            consumed.append(n)
            yield b"x" * size

    return gen()


async def test_identity_is_checked_before_any_body_byte_is_read(hierarchy: Hierarchy) -> None:
    async with client_for(hierarchy) as c:
        consumed: list[int] = []
        r = await c.post("/monitoring/reports", content=chunks(consumed))
        assert r.status_code == 401
        wrong = await c.post(
            "/monitoring/reports",
            content=chunks(consumed),
            headers={"authorization": ENT_AUTH["authorization"][:-4] + "AAAA"},
        )
        assert wrong.status_code == 401
        assert consumed == []
    assert hierarchy.province.receiver.refused == {"unauthenticated": 2}


async def test_a_body_over_the_cap_is_refused_as_soon_as_it_exceeds_it(
    hierarchy: Hierarchy,
) -> None:
    receiver = hierarchy.province.receiver
    receiver.settings = replace(receiver.settings, max_bytes=1 << 20)
    async with client_for(hierarchy) as c:
        consumed: list[int] = []
        r = await c.post("/monitoring/reports", content=chunks(consumed), headers=ENT_AUTH)
        assert r.status_code == 413
        assert r.json()["error"] == "too_large"
        assert 16 <= len(consumed) <= 18  # 1 MiB in 64 KiB chunks, not the 6.25 MiB offered
        declared = await c.post(
            "/monitoring/reports", content=b"x" * (1 << 20 | 1), headers=ENT_AUTH
        )
        assert declared.status_code == 413
    assert hierarchy.province.store.count() == 0
    assert receiver.refused == {"too_large": 2}


async def test_every_monitoring_body_is_authenticated_first_and_bounded(
    hierarchy: Hierarchy,
) -> None:
    """Notices, answers, requeue requests and details: credentials before the body, and
    a streamed bound (the province's administrator is ``admin``/``pw`` here)."""
    node = hierarchy.province
    node.receiver.settings = replace(node.receiver.settings, max_bytes=1 << 20)

    async def is_admin(user: str, password: str, /, *, peer: str | None = None) -> bool | None:
        return None if password != "pw" else user == "admin"

    app = FastAPI()
    app.include_router(
        monitoring_router(
            MonitoringApp(
                node.receiver, node.authenticate, node.board, node.clock,
                authorize_admin=is_admin, answer=node.answer_notice, outbox=node.outbox,
                max_body_bytes=100_000,
            )
        )
    )  # fmt: skip
    admin = {"authorization": "Basic " + base64.b64encode(b"admin:pw").decode()}
    posts = ["/monitoring/notices", "/monitoring/notices/N-1/answer",
             "/monitoring/dead-letters/requeue", "/monitoring/details"]  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as c:
        for path in posts:
            consumed: list[int] = []
            r = await c.post(path, content=chunks(consumed, size=1024))
            assert r.status_code == 401, path
            assert consumed == [], path  # not one byte read without credentials
        for path in posts[:3]:
            consumed = []
            r = await c.post(path, content=chunks(consumed, size=1024), headers=admin)
            assert r.status_code == 413, path
            assert r.json()["error"] == "too_large"
            assert len(consumed) <= 98, path  # stopped at about 100 kB of the 100 offered
            declared = await c.post(path, content=b"{" + b" " * 100_000 + b"}", headers=admin)
            assert declared.status_code == 413, path
        consumed = []
        r = await c.post("/monitoring/details", content=chunks(consumed), headers=ENT_AUTH)
        assert r.status_code == 413
        assert len(consumed) <= 18  # 1 MiB in 64 KiB chunks
    assert node.board.since(0) == []


async def test_reports_are_stored_in_worker_threads_one_transaction_at_a_time(
    hierarchy: Hierarchy,
) -> None:
    receiver = hierarchy.province.receiver
    threads: set[int] = set()
    original = ReportReceiver.receive

    def receive(
        self: ReportReceiver, identity: object, raw: bytes, labels: NodeLabels | None = None
    ) -> object:
        threads.add(threading.get_ident())
        return original(self, identity, raw, labels)  # type: ignore[arg-type]

    receiver.receive = receive.__get__(receiver)  # type: ignore[method-assign]
    async with client_for(hierarchy) as c:
        answers = await asyncio.gather(
            *(
                c.post(
                    "/monitoring/reports",
                    content=body([event(n * 10 + k) for k in range(10)]),
                    headers=ENT_AUTH,
                )
                for n in range(20)
            )
        )
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
    assert threading.get_ident() not in threads
    assert threads
    assert hierarchy.province.store.count() == 200
    assert hierarchy.province.outbox.pending == 200  # every new event forwarded once


async def test_batch_ids_are_pruned_after_the_replay_window(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    h = await build_hierarchy(tmp_path, clock=lambda: now[0])
    province = h.province
    province.settings = replace(province.settings, prune_interval=0.01)
    window = province.settings.replay_window
    assert window == 24 * 3600
    try:
        async with client_for(h) as c:
            first = body([event(0)], sent_at=now[0], batch="a" * 32)
            assert (
                await c.post("/monitoring/reports", content=first, headers=ENT_AUTH)
            ).status_code == 200
            now[0] += 3600  # a replay inside the window is recognised by its batch id
            again = await c.post("/monitoring/reports", content=first, headers=ENT_AUTH)
            assert again.status_code == 409
            assert "already received" in again.json()["detail"]
            ahead = body([event(1)], sent_at=now[0] + 7200, batch="b" * 32)  # child clock +2 h
            assert (
                await c.post("/monitoring/reports", content=ahead, headers=ENT_AUTH)
            ).status_code == 200
            await province.start()
            # two days of hourly batches: the table holds about one window of them
            for n in range(48):
                now[0] += 3600
                r = await c.post(
                    "/monitoring/reports", content=body([event(100 + n)], sent_at=now[0]),
                    headers=ENT_AUTH,
                )  # fmt: skip
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.03)  # the prune loop runs meanwhile
            assert province.tasks["prune"].failures == 0
            assert 23 <= province.store.batch_count() <= 26
            # a replay from before the window is refused by its sent_at instead
            late = await c.post("/monitoring/reports", content=first, headers=ENT_AUTH)
            assert late.status_code == 409
            assert "replay window" in late.json()["detail"]
    finally:
        await h.close()


async def test_a_batch_from_a_clock_ahead_is_kept_until_its_sent_at_leaves_the_window(
    tmp_path: Path,
) -> None:
    now = [1_800_000_000.0]
    h = await build_hierarchy(tmp_path, clock=lambda: now[0])
    try:
        async with client_for(h) as c:
            ahead = body([event(1)], sent_at=now[0] + 7200, batch="c" * 32)  # child clock +2 h
            assert (
                await c.post("/monitoring/reports", content=ahead, headers=ENT_AUTH)
            ).status_code == 200
            now[0] += 24 * 3600 + 3600  # past arrival + window, not past sent_at + window
            assert h.province.store.prune_batches(now[0] - 24 * 3600) == 0
            replay = await c.post("/monitoring/reports", content=ahead, headers=ENT_AUTH)
            assert replay.status_code == 409
            assert "already received" in replay.json()["detail"]
    finally:
        await h.close()


async def test_a_store_failure_is_503_and_the_report_is_sent_again_later(
    hierarchy: Hierarchy,
) -> None:
    store = hierarchy.province.store
    real = store.insert

    def locked(*args: object, **kwargs: object) -> tuple[int, int]:
        raise StorageError("events.sqlite3: database is locked")

    store.insert = locked  # type: ignore[method-assign]
    async with client_for(hierarchy) as c:
        r = await c.post("/monitoring/reports", content=body([event(1)]), headers=ENT_AUTH)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json() == {"error": "storage", "detail": "events.sqlite3: database is locked"}
        store.insert = real  # type: ignore[method-assign]
        again = await c.post("/monitoring/reports", content=body([event(1)]), headers=ENT_AUTH)
        assert again.status_code == 200
    assert store.count() == 1
