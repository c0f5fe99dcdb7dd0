"""Fault tests on real HTTP servers (uvicorn on 127.0.0.1): link cuts and kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from iinode.identifiers import Prefix
from iinode.monitoring import (
    Event,
    EventKind,
    MemoryAuthenticator,
    Outbox,
    OutboxSettings,
    Severity,
    children_of,
)
from iinode.monitoring.node import MonitoringNode, MonitoringSettings, ParentLink
from monitoring.hierarchy_support import ENTERPRISE, NATIONAL, PROVINCE, app_for
from support import free_port

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class Served:
    """An app under uvicorn on 127.0.0.1:port that can be stopped and started again."""

    def __init__(self, app: ASGIApp | FastAPI, port: int) -> None:
        self.app, self.port = app, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "server did not start"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        assert self._server is not None
        assert self._task is not None
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 10)


def make_nodes(
    root: Path, province_port: int, national_port: int
) -> tuple[MonitoringNode, MonitoringNode, MonitoringNode]:
    auth = MemoryAuthenticator()
    prov_user = auth.add(PROVINCE, "p-secret")
    ent_user = auth.add(ENTERPRISE, "e-secret")
    national = MonitoringNode(
        MonitoringSettings(NATIONAL, root / "n"), is_child=children_of(PROVINCE), authenticate=auth
    )
    province = MonitoringNode(
        MonitoringSettings(
            PROVINCE,
            root / "p",
            province="JX",
            batch_size=300,
            parent=ParentLink(f"http://127.0.0.1:{national_port}", prov_user, "p-secret"),
            backoff_initial=0.02,
            backoff_max=0.2,
        ),
        is_child=children_of(ENTERPRISE),
        authenticate=auth,
    )
    enterprise = MonitoringNode(
        MonitoringSettings(
            ENTERPRISE,
            root / "e",
            province="JX",
            industry="automobiles",
            batch_size=300,
            parent=ParentLink(f"http://127.0.0.1:{province_port}", ent_user, "e-secret"),
            backoff_initial=0.02,
            backoff_max=0.2,
        ),
        is_child=children_of(),
        authenticate=auth,
    )
    return national, province, enterprise


async def wait_for(cond: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_link_cut_then_restore_delivers_every_event_exactly_once(tmp_path: Path) -> None:
    pport, nport = free_port(), free_port()
    national, province, enterprise = make_nodes(tmp_path, pport, nport)
    nat_srv, prov_srv = Served(app_for(national), nport), Served(app_for(province), pport)
    await nat_srv.start()
    await prov_srv.start()
    await province.start()
    await enterprise.start()
    produced: set[tuple[str, str]] = set()

    def produce(n: int) -> None:
        batch = [enterprise.event(EventKind.HEALTH, Severity(i % 5)) for i in range(n)]
        enterprise.emit(batch)
        produced.update(e.key for e in batch)

    try:
        for _ in range(10):
            produce(50)
            await asyncio.sleep(0.01)
        await wait_for(lambda: province.store.count() > 0, 10)
        await prov_srv.stop()  # link cut: the province is unreachable
        for _ in range(20):
            produce(50)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert enterprise.outbox.pending > 0
        assert enterprise.sender is not None
        assert enterprise.sender.last_error is not None
        await prov_srv.start()  # restored
        for _ in range(10):
            produce(50)
            await asyncio.sleep(0.01)
        await wait_for(lambda: national.store.count() >= len(produced), 30)
        assert national.store.keys() == produced
        assert sum(national.store.counts("severity").values()) == len(produced) == 2000
        assert enterprise.outbox.pending == 0
    finally:
        await enterprise.close()
        await province.close()
        await prov_srv.stop() if prov_srv._task and not prov_srv._task.done() else None
        await nat_srv.stop()
        await national.close()


SENDER = textwrap.dedent(
    """
    import asyncio, sys
    import httpx
    from iinode.identifiers import Prefix
    from iinode.monitoring import Outbox, OutboxSettings, ReportSender, SenderSettings
    async def main():
        box = Outbox(OutboxSettings(sys.argv[1]))
        async with httpx.AsyncClient() as client:
            sender = ReportSender(
                SenderSettings(sys.argv[2], Prefix("88.118.8"), "300:0.NA/88.118.8",
                               "e-secret", batch_size=200),
                box, client)
            print("sent", await sender.drain(), flush=True)
    asyncio.run(main())
    """
)


class HoldSecondReply:
    """ASGI wrapper: the 2nd report is stored, then its reply is held until released."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.reports = 0
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/monitoring/reports":
            await self.app(scope, receive, send)
            return
        self.reports += 1
        hold = self.reports == 2

        async def held_send(message: MutableMapping[str, Any]) -> None:
            if hold and message["type"] == "http.response.start":
                self.held.set()
                await self.release.wait()
            await send(message)

        await self.app(scope, receive, held_send)


@pytest.mark.slow
async def test_kill_9_sender_mid_batch_no_loss_no_duplicate(tmp_path: Path) -> None:
    pport, nport = free_port(), free_port()
    national, province, _ = make_nodes(tmp_path, pport, nport)
    wrapper = HoldSecondReply(app_for(province))
    srv = Served(wrapper, pport)
    await srv.start()
    box_path = tmp_path / "child-outbox.sqlite3"
    box = Outbox(OutboxSettings(box_path))
    events = [
        Event(
            id=f"k{i}",
            origin=ENTERPRISE,
            kind=EventKind.SECURITY,
            severity=Severity.HIGH,
            observed_at=1_700_000_000.0 + i,
            province="JX",
            industry="automobiles",
        )
        for i in range(600)
    ]
    box.enqueue(events)
    box.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    url = f"http://127.0.0.1:{pport}/monitoring/reports"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SENDER,
        str(box_path),
        url,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        await asyncio.wait_for(wrapper.held.wait(), 20)
        # batch 2 is committed at the province, its receipt not yet delivered
        assert province.store.count() == 400
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    finally:
        wrapper.release.set()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    left = Outbox(OutboxSettings(box_path))
    assert left.pending == 400  # batch 2 was never acked
    left.close()
    again = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SENDER,
        str(box_path),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await asyncio.wait_for(again.communicate(), 60)
    assert stdout.decode().strip() == "sent 400", stderr.decode()
    await srv.stop()
    assert province.store.keys() == {e.key for e in events}
    assert province.store.counts("severity") == {"high": 600}
    assert province.receiver.metrics.events_duplicate._value.get() == 200
    # the province forwarded each event once, duplicates were not re-forwarded
    assert province.outbox.pending == 600
    await province.close()
    await national.close()
    assert Prefix("88") == NATIONAL
