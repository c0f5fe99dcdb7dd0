"""One node's monitoring, assembled: store, outbox, receiver, sender, notice board.

``MonitoringNode`` is what the identifier node (any role) owns.  An enterprise
node has a parent and no children; a provincial node has both and forwards
what it receives; the national node has children only.  ``emit`` puts the
node's own events in the outbox; ``router`` is the HTTP side for children;
A node without a parent records its own events in its own store instead of
the outbox, so that the top level's views show its own security events.
``start``/``stop`` run the sender that drains the outbox to the parent and,
when intervals are configured, the periodic work: a heartbeat upward every
``heartbeat_interval`` and a notice pull from the parent every
``notice_interval``.  A node that ``answers_notices`` (an enterprise) checks
each new notice against its assets and reports ``delivered`` or
``not_affected``; ``answer_notice`` records the operator's acknowledgement or
completion.  Either way the state climbs as a ``notice_status`` event.  The
first answer is derived from the board: every notice without an answer of this
node is answered at each pull, so a notice whose answer failed (outbox full,
inventory error, crash) is answered at the next one.

Every node prunes remembered batch ids older than the replay window
(``replay_window``, 24 h) every ``prune_interval``.  Each loop runs under a
``Supervised`` (``tasks``): a failure is logged, counted and the loop restarted
after a back-off.  With a notice interval the node also answers its parent's
requests for event details every ``notice_interval`` (``answer_details``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from iinode.errors import TransportError
from iinode.identifiers import Prefix
from iinode.monitoring.auth import Authenticator
from iinode.monitoring.cpe import Cpe
from iinode.monitoring.details import answer_detail_requests
from iinode.monitoring.errors import EventInvalid, MonitoringError, OutboxFull
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
from iinode.monitoring.outbox import Outbox, OutboxItem, OutboxSettings
from iinode.monitoring.receiver import ChildCheck, ForwardPolicy, ReceiverSettings, ReportReceiver
from iinode.monitoring.sender import ReportSender, SenderSettings
from iinode.monitoring.sqlite import SqliteFile
from iinode.monitoring.store import EventStore
from iinode.monitoring.supervise import Backoff, Supervised, sleep_or_stop

log = logging.getLogger(__name__)

#: Id prefix of the health events that announce dead letters.
_ALARM_ID = "alarm.dead-letter."

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
    replay_window: float = 24 * 3600.0
    prune_interval: float = 3600.0


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
        # One file, connection and lock for the event store and the outbox: received
        # events and their forwarding commit together.
        self._events_db = SqliteFile(s.data_dir / "events.sqlite3")
        self.store = EventStore(self._events_db)
        self.board = NoticeBoard(s.data_dir / "notices.sqlite3")
        self.outbox = Outbox(
            OutboxSettings(s.data_dir / "events.sqlite3", s.outbox_max_events, s.outbox_max_bytes),
            self.metrics,
            db=self._events_db,
        )
        forward = ForwardPolicy(self.outbox) if s.parent is not None else None
        self.receiver = ReportReceiver(
            ReceiverSettings(
                s.node, is_child, skew_tolerance=s.skew_tolerance, replay_window=s.replay_window
            ),
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
                backoff=self._backoff(),
                clock=clock,
                on_dead_letter=self._dead_lettered,
            )
        self._stop = asyncio.Event()
        #: The supervised loops of a started node, by name (``last_error`` of each).
        self.tasks: dict[str, Supervised] = {}
        self._running: list[asyncio.Task[None]] = []

    def _backoff(self) -> Backoff:
        return Backoff(self.settings.backoff_initial, 2.0, self.settings.backoff_max)

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
        """Queue this node's own events for the parent (raises ``OutboxFull``).

        A node without a parent (the top level) records them in its own event
        store instead, where its views show them.
        """
        if self.sender is None:
            return self.store.record_own(
                list(events), node=self.settings.node.text, received_at=self.clock()
            )
        added = self.outbox.enqueue(events)
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
        try:
            since = self.board.cursor("parent")
            next_since, notices = await pull_notices(
                self.client, parent.url, parent.username, parent.password, since,
                on_invalid=self._invalid_notice,
            )  # fmt: skip
            fresh = [n for n in notices if self.board.add(n)]
            self.board.set_cursor("parent", next_since)
        finally:  # answers left over from a failed earlier attempt, even if this pull failed
            if self.settings.answers_notices:
                await self.answer_pending()
        return fresh

    async def answer_pending(self) -> int:
        """Give the first answer to every notice on the board this node has not answered."""
        pending = self.board.unanswered()
        for notice in pending:
            await self._first_answer(notice)
        return len(pending)

    def _invalid_notice(self, reason: str) -> None:
        self.metrics.notices_invalid.inc()
        log.warning("monitoring %s: skipped an invalid notice: %s", self.settings.node, reason)

    def _dead_lettered(self, items: Sequence[OutboxItem], reason: str) -> None:
        """Raise the alarm upward: a health event naming the refused events."""
        keys = [i.key for i in items]
        log.error("monitoring %s: parent refused %s: %s", self.settings.node, keys, reason)
        if all(k.partition("|")[2].startswith(_ALARM_ID) for k in keys):
            return  # a refused alarm raises no further alarm (no chain if the parent refuses all)
        alarm = replace(
            self.event(
                EventKind.HEALTH, Severity.HIGH,
                detail={"alarm": "dead_letter", "events": keys, "reason": reason[:500]},
            ),
            id=_ALARM_ID + new_event_id(),
        )  # fmt: skip
        try:
            self.emit([alarm])
        except OutboxFull as exc:
            log.error("monitoring %s: dead-letter alarm not queued: %s", self.settings.node, exc)

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

    def _every(
        self, name: str, interval: float, work: Callable[[], Awaitable[object]]
    ) -> Supervised:
        async def loop(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    await work()
                    self.last_poll_error = ""
                except (MonitoringError, TransportError) as exc:
                    self.last_poll_error = str(exc)
                    log.warning("monitoring %s %s: %s", self.settings.node, name, exc)
                await sleep_or_stop(stop, interval)

        return Supervised(name, loop, self.metrics, self._backoff())

    async def answer_details(self) -> int:
        """Answer the parent's requests for event details held here (or relay them)."""
        parent = self.settings.parent
        if parent is None:
            return 0
        return await answer_detail_requests(
            self.client, parent.url, parent.username, parent.password, self.store,
            node=self.settings.node.text, now=self.clock(),
        )  # fmt: skip

    async def _beat(self) -> None:
        self.emit([self.heartbeat()])

    async def _prune(self) -> None:
        older_than = self.clock() - self.settings.replay_window
        self.store.prune_batches(older_than)
        self.store.prune_detail_requests(older_than)

    async def start(self) -> None:
        s = self.settings
        if self._running:
            return
        self._stop.clear()
        tasks = [self._every("prune", s.prune_interval, self._prune)]
        if self.sender is not None:
            tasks.append(Supervised("sender", self.sender.run, self.metrics, self._backoff()))
        if s.parent is not None and s.heartbeat_interval is not None:
            tasks.append(self._every("heartbeat", s.heartbeat_interval, self._beat))
        if s.parent is not None and s.notice_interval is not None:
            tasks.append(self._every("notices", s.notice_interval, self.poll_notices))
            tasks.append(self._every("details", s.notice_interval, self.answer_details))
        self.tasks = {t.name: t for t in tasks}
        self._running = [asyncio.create_task(t.run(self._stop)) for t in tasks]

    async def stop(self) -> None:
        self._stop.set()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
            self._running = []

    async def close(self) -> None:
        await self.stop()
        if self._own_client:
            await self.client.aclose()
        self.board.close()
        self._events_db.close()
