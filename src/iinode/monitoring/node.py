"""One node's monitoring, assembled: store, outbox, receiver, sender, notice board.

``MonitoringNode`` is what the identifier node (any role) owns.  An enterprise
node has a parent and no children; a provincial node has both and forwards
what it receives; the national node has children only.  ``emit`` puts the
node's own events in the outbox; ``router`` is the HTTP side for children;
``start``/``stop`` run the sender that drains the outbox to the parent and,
when intervals are configured, the periodic work: a heartbeat upward every
``heartbeat_interval`` and a notice pull from the parent every
``notice_interval``.  A node that ``answers_notices`` (an enterprise) checks
each new notice against its assets and reports ``delivered`` or
``not_affected``; ``answer_notice`` records the operator's acknowledgement or
completion.  Either way the state climbs as a ``notice_status`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from iinode.errors import TransportError
from iinode.identifiers import Prefix
from iinode.monitoring.auth import Authenticator
from iinode.monitoring.cpe import Cpe
from iinode.monitoring.errors import EventInvalid, MonitoringError
from iinode.monitoring.events import Event, EventKind, Severity, new_event_id
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.notices import (
    NEXT_STATES,
    Notice,
    NoticeBoard,
    NoticeState,
    affected_assets,
    pull_notices,
    status_event,
)
from iinode.monitoring.outbox import Outbox, OutboxSettings
from iinode.monitoring.receiver import ChildCheck, ForwardPolicy, ReceiverSettings, ReportReceiver
from iinode.monitoring.sender import Backoff, ReportSender, SenderSettings
from iinode.monitoring.store import EventStore

log = logging.getLogger(__name__)

#: The assets a notice is checked against: ``(handle, kind, cpes)``.
AssetList = Sequence[tuple[str, str, Sequence[Cpe]]]
AssetSource = Callable[[], Awaitable[AssetList]]


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
    heartbeat_interval: float | None = None
    notice_interval: float | None = None
    answers_notices: bool = False


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
        assets: AssetSource | None = None,
    ) -> None:
        s = settings
        self.assets = assets
        self.last_poll_error: str = ""
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = s
        self.metrics = metrics or NodeMetrics()
        self.authenticate = authenticate
        self.clock = clock
        self.store = EventStore(s.data_dir / "events.sqlite3")
        self.board = NoticeBoard(s.data_dir / "notices.sqlite3")
        self.outbox = Outbox(
            # Same file as the event store: received events and their forwarding commit together.
            OutboxSettings(s.data_dir / "events.sqlite3", s.outbox_max_events, s.outbox_max_bytes),
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
        self._periodic: list[asyncio.Task[None]] = []

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

    # -- notices downward -------------------------------------------------------------

    async def poll_notices(self) -> list[Notice]:
        """Pull new notices from the parent onto the board; answer them if this node does."""
        parent = self.settings.parent
        if parent is None:
            return []
        since = self.board.cursor("parent")
        next_since, notices = await pull_notices(
            self.client, parent.url, parent.username, parent.password, since
        )
        fresh = [n for n in notices if self.board.add(n)]
        if self.settings.answers_notices:
            for notice in fresh:
                await self._first_answer(notice)
        self.board.set_cursor("parent", next_since)
        return fresh

    async def _first_answer(self, notice: Notice) -> None:
        assets: AssetList = await self.assets() if self.assets is not None else ()
        hit = affected_assets(notice, assets)
        t = notice.target
        untargeted = not t.asset_kinds and t.cpe is None
        state = NoticeState.DELIVERED if hit or untargeted else NoticeState.NOT_AFFECTED
        self._record(notice, state, hit)

    def _record(self, notice: Notice, state: NoticeState, assets: Sequence[str]) -> Event:
        now = self.clock()
        event = status_event(
            notice, self.settings.node, state, now, assets=assets,
            province=self.settings.province, industry=self.settings.industry,
        )  # fmt: skip
        self.emit([event])
        self.board.set_state(notice.id, state, now, assets)
        return event

    def answer_notice(self, notice_id: str, state: NoticeState) -> Event:
        """The operator acknowledges or completes a notice (``EventInvalid`` if not allowed)."""
        notice = self.board.get(notice_id)
        if notice is None:
            raise EventInvalid(f"no notice {notice_id!r} on this node")
        current = self.board.state(notice_id)
        allowed = NEXT_STATES[current[0]] if current is not None else frozenset(NoticeState)
        if state not in allowed or state in (NoticeState.DELIVERED, NoticeState.NOT_AFFECTED):
            was = current[0].value if current else "unanswered"
            raise EventInvalid(f"notice {notice_id} is {was}; it cannot become {state.value}")
        return self._record(notice, state, current[2] if current else ())

    # -- running ------------------------------------------------------------------------

    async def _every(self, interval: float, work: Callable[[], Awaitable[object]]) -> None:
        while not self._stop.is_set():
            try:
                await work()
                self.last_poll_error = ""
            except (MonitoringError, TransportError) as exc:
                self.last_poll_error = str(exc)
                log.warning("monitoring %s: %s", self.settings.node, exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._stop.wait()

    async def _beat(self) -> None:
        self.emit([self.heartbeat()])

    async def start(self) -> None:
        s = self.settings
        self._stop.clear()
        if self.sender is not None and self._task is None:
            self._task = asyncio.create_task(self.sender.run(self._stop))
        if s.parent is not None and not self._periodic:
            if s.heartbeat_interval is not None:
                self._periodic.append(
                    asyncio.create_task(self._every(s.heartbeat_interval, self._beat))
                )
            if s.notice_interval is not None:
                self._periodic.append(
                    asyncio.create_task(self._every(s.notice_interval, self.poll_notices))
                )

    async def stop(self) -> None:
        self._stop.set()
        if self._periodic:
            await asyncio.gather(*self._periodic, return_exceptions=True)
            self._periodic = []
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
