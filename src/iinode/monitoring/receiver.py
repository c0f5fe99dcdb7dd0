"""Receiving reports from child nodes: checks, idempotent storage, forwarding.

``ReportReceiver.receive`` is the whole decision, free of HTTP: given the
identity the transport authenticated (or ``None``) and the request body, it
either returns a ``Receipt`` or raises a ``ReportRefused`` subclass, and counts
the outcome.  Checks, in order:

1. authenticated identity present                                  (401)
2. body parses and every event validates; size bounds              (400, 413)
3. ``sender`` equals the authenticated prefix, that prefix is one of
   this node's delegated children, every event's origin lies within it (403)
4. the batch id was not received before, and ``sent_at`` lies inside
   the replay window and no more than one window ahead of this clock (409)

The replay check runs inside the store's write transaction, so two
simultaneous reports with one batch id store it once and refuse the other.
A batch id is kept until ``max(arrival, sent_at)`` plus the window; refusing
``sent_at`` further ahead keeps a child whose clock runs far ahead from
pinning its batch ids for ever (a clock merely ahead by more than
``skew_tolerance`` is accepted and raises the skew alarm).

Accepted events are stored under their ``(origin, id)`` key; events seen before
count as duplicates.  A node with a parent forwards every *new* event upward
through its own outbox - as a summary, or in full for the kinds and severities
in ``ForwardPolicy``.  When the outbox shares the event store's SQLite file the
events, their outbox rows and the batch id commit in one transaction; with
separate files the outbox is written first, so a crash in between re-forwards
(harmless upstream) instead of losing the event.

Province and industry decide notice targeting and the aggregates, so they are
not taken on a child's word when this node has its own record of the child
(``NodeLabels``, from the delegation record): the child's own events get the
recorded labels, events it forwards from below get the recorded province, and
every event whose self-declared label differed is counted in
``iinode_monitoring_label_mismatches_total{child}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from iinode.identifiers import Prefix
from iinode.monitoring.errors import (
    ReportForbidden,
    ReportRefused,
    ReportReplayed,
    ReportUnauthenticated,
)
from iinode.monitoring.events import Event, EventKind, Severity
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.outbox import Outbox
from iinode.monitoring.protocol import Receipt, decode_batch
from iinode.monitoring.store import EventStore

log = logging.getLogger(__name__)

#: Decides whether a prefix is one of this node's delegated children.
ChildCheck = Callable[[Prefix], bool]


def children_of(*prefixes: Prefix) -> ChildCheck:
    """A ``ChildCheck`` for a fixed set of delegated child prefixes."""
    allowed = frozenset(prefixes)
    return lambda p: p in allowed


@dataclass(frozen=True, slots=True)
class NodeLabels:
    """A child's province and industry as this node records them ("" = not recorded)."""

    province: str = ""
    industry: str = ""

    def apply(self, events: Sequence[Event], child: Prefix) -> tuple[list[Event], int]:
        """``events`` from ``child`` relabelled; and how many declared other labels.

        The child's own events take both recorded labels; events it forwards
        from nodes below take the recorded province (a provincial node reports
        for its province only) and keep their industry.
        """
        out: list[Event] = []
        mismatched = 0
        for e in events:
            province = self.province or e.province
            industry = (self.industry or e.industry) if e.origin == child else e.industry
            if province == e.province and industry == e.industry:
                out.append(e)
                continue
            if (e.province and province != e.province) or (e.industry and industry != e.industry):
                mismatched += 1
            out.append(replace(e, province=province, industry=industry))
        return out, mismatched


@dataclass(frozen=True, slots=True)
class ForwardPolicy:
    """What a node passes upward of the events it receives."""

    outbox: Outbox
    full_kinds: frozenset[EventKind] = frozenset(
        {EventKind.HEARTBEAT, EventKind.NOTICE_STATUS, EventKind.FINDING}
    )
    full_min_severity: Severity = Severity.CRITICAL

    def upward(self, event: Event, held_at: Prefix) -> Event:
        if event.kind in self.full_kinds or event.severity >= self.full_min_severity:
            return event
        return event.summary(held_at)

    def upward_item(self, event: Event, held_at: Prefix) -> tuple[str, bytes]:
        """The outbox ``(key, body)`` of ``upward(event, held_at)``, encoded once."""
        key = f"{event.origin.text}|{event.id}"
        if event.kind in self.full_kinds or event.severity >= self.full_min_severity:
            return key, event.encode()
        return key, event.summary_bytes(held_at)


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    node: Prefix
    is_child: ChildCheck
    max_events: int = 10_000
    max_bytes: int = 32 * 1024 * 1024
    skew_tolerance: float = 30.0
    replay_window: float = 24 * 3600.0


@dataclass
class ReportReceiver:
    settings: ReceiverSettings
    store: EventStore
    metrics: NodeMetrics
    forward: ForwardPolicy | None = None
    clock: Callable[[], float] = time.time
    refused: dict[str, int] = field(default_factory=dict)

    def receive(
        self, identity: Prefix | None, body: bytes, labels: NodeLabels | None = None
    ) -> Receipt:
        """Check and store one report (see the module docstring).

        ``labels`` is this node's record of the child ``identity`` names, if any.
        """
        try:
            receipt = self._receive(identity, body, labels)
        except ReportRefused as exc:
            self.refused[exc.reason] = self.refused.get(exc.reason, 0) + 1
            self.metrics.reports_refused.labels(exc.reason).inc()
            raise
        return receipt

    def _receive(self, identity: Prefix | None, body: bytes, labels: NodeLabels | None) -> Receipt:
        s = self.settings
        if identity is None:
            raise ReportUnauthenticated("report needs HTTP Basic credentials of a child node")
        batch = decode_batch(body, max_events=s.max_events, max_bytes=s.max_bytes)
        if batch.sender != identity:
            raise ReportForbidden(
                f"authenticated as {identity} but the report names sender {batch.sender}"
            )
        if not s.is_child(identity):
            raise ReportForbidden(f"{identity} is not a child prefix delegated by {s.node}")
        for e in batch.events:
            if not e.origin.is_within(identity):
                raise ReportForbidden(f"{identity} may not report for origin {e.origin}")
        now = self.clock()
        if batch.sent_at < now - s.replay_window:
            raise ReportReplayed(
                f"batch {batch.batch_id} was sent at {batch.sent_at:.0f}, "
                f"outside the {s.replay_window:.0f} s replay window"
            )
        skew = batch.sent_at - now
        alarm = abs(skew) > s.skew_tolerance
        self.metrics.clock_skew.labels(identity.text).set(skew)
        if skew > s.replay_window:
            raise ReportReplayed(
                f"batch {batch.batch_id} was sent at {batch.sent_at:.0f}, {skew:.0f} s ahead of "
                f"this node's clock (more than the {s.replay_window:.0f} s replay window)"
            )
        events: Sequence[Event] = batch.events
        if labels is not None:
            events, mismatched = labels.apply(events, identity)
            if mismatched:
                self.metrics.label_mismatches.labels(identity.text).inc(mismatched)
                log.warning(
                    "%d events from %s declared labels other than %s/%s (recorded here)",
                    mismatched, identity, labels.province, labels.industry,
                )  # fmt: skip
        forward = self.forward
        accepted, duplicates = self.store.insert(
            events,
            via=identity.text,
            batch_id=batch.batch_id,
            received_at=now,
            clock_skew=skew,
            sent_at=batch.sent_at,
            forward=None if forward is None else forward.outbox,
            upward=() if forward is None else [forward.upward_item(e, s.node) for e in events],
        )
        self.metrics.reports_received.labels(identity.text).inc()
        self.metrics.events_accepted.inc(accepted)
        self.metrics.events_duplicate.inc(duplicates)
        return Receipt(batch.batch_id, accepted, duplicates, now, skew, alarm)
