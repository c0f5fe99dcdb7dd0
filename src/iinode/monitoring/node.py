"""One node's monitoring, assembled: store, outbox, receiver, sender, notice board.

``MonitoringNode`` is what the identifier node (any role) owns.  An enterprise
node has a parent and no children; a provincial node has both and forwards
what it receives; the national node has children only.  ``emit`` puts the
node's own events in the outbox; ``router`` is the HTTP side for children;
``start``/``stop`` run the sender that drains the outbox to the parent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from iinode.identifiers import Prefix
from iinode.monitoring.auth import Authenticator
from iinode.monitoring.events import Event, EventKind, Severity, new_event_id
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.notices import NoticeBoard
from iinode.monitoring.outbox import Outbox, OutboxSettings
from iinode.monitoring.receiver import ChildCheck, ForwardPolicy, ReceiverSettings, ReportReceiver
from iinode.monitoring.sender import Backoff, ReportSender, SenderSettings
from iinode.monitoring.store import EventStore


@dataclass(frozen=True, slots=True)
class ParentLink:
    """Where and as whom this node reports upward."""

    url: str
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    node: Prefix
    data_dir: Path
    province: str = ""
    industry: str = ""
    parent: ParentLink | None = None
    outbox_max_events: int = 1_000_000
    outbox_max_bytes: int = 512 * 1024 * 1024
    batch_size: int = 2000
    skew_tolerance: float = 30.0
    backoff_initial: float = 0.1
    backoff_max: float = 30.0


class MonitoringNode:
    def __init__(
        self,
        settings: MonitoringSettings,
        *,
        is_child: ChildCheck,
        authenticate: Authenticator,
        metrics: NodeMetrics | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        s = settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = s
        self.metrics = metrics or NodeMetrics()
        self.authenticate = authenticate
        self.clock = clock
        self.store = EventStore(s.data_dir / "events.sqlite3")
        self.board = NoticeBoard(s.data_dir / "notices.sqlite3")
        self.outbox = Outbox(
            OutboxSettings(s.data_dir / "outbox.sqlite3", s.outbox_max_events, s.outbox_max_bytes),
            self.metrics,
        )
        forward = ForwardPolicy(self.outbox) if s.parent is not None else None
        self.receiver = ReportReceiver(
            ReceiverSettings(s.node, is_child, skew_tolerance=s.skew_tolerance),
            self.store,
            self.metrics,
            forward,
            clock,
        )
        self._own_client = client is None
        self.client = client or httpx.AsyncClient()
        self.sender: ReportSender | None = None
        if s.parent is not None:
            self.sender = ReportSender(
                SenderSettings(
                    s.parent.url.rstrip("/") + "/monitoring/reports",
                    s.node,
                    s.parent.username,
                    s.parent.password,
                    batch_size=s.batch_size,
                ),
                self.outbox,
                self.client,
                self.metrics,
                backoff=Backoff(s.backoff_initial, 2.0, s.backoff_max),
                clock=clock,
            )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def event(self, kind: EventKind, severity: Severity = Severity.INFO, **fields: object) -> Event:
        """A new event originating at this node, labelled with its province and industry."""
        return Event(
            id=new_event_id(),
            origin=self.settings.node,
            kind=kind,
            severity=severity,
            observed_at=self.clock(),
            province=self.settings.province,
            industry=self.settings.industry,
            **fields,  # type: ignore[arg-type]
        )

    def emit(self, events: Iterable[Event]) -> int:
        """Queue this node's own events for the parent (raises ``OutboxFull``)."""
        added = self.outbox.enqueue(events)
        if self.sender is not None:
            self.sender.wake()
        return added

    def heartbeat(self) -> Event:
        return self.event(EventKind.HEARTBEAT)

    async def start(self) -> None:
        if self.sender is not None and self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self.sender.run(self._stop))

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def close(self) -> None:
        await self.stop()
        if self._own_client:
            await self.client.aclose()
        self.outbox.close()
        self.store.close()
        self.board.close()
