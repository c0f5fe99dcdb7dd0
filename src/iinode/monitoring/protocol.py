"""Wire format of upward reports (pure: bytes in, values out; no I/O).

A report is one HTTP request body::

    {"v": 1, "sender": "88.118.8", "batch": "<32 hex>", "sent_at": 1718000000.25,
     "events": [<event>, ...]}

``batch`` is fresh for every attempt (a retry of the same events gets a new
one), so a receiver that sees a batch id twice knows the request itself was
replayed.  Events are deduplicated separately, by their ``(origin, id)`` key.
The receipt answers::

    {"batch": "...", "accepted": 998, "duplicates": 2, "received_at": 1718000000.31,
     "clock_skew": -0.06, "skew_alarm": false}

``clock_skew`` is ``sent_at - received_at`` as seen by the receiver.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from iinode.errors import InvalidHandle
from iinode.identifiers import Prefix
from iinode.monitoring.errors import EventInvalid, ReportMalformed, ReportTooLarge
from iinode.monitoring.events import Event

VERSION = 1
_BATCH = re.compile(r"[0-9a-f]{32}\Z")


def new_batch_id() -> str:
    return uuid.uuid4().hex


def encode_batch(sender: Prefix, batch_id: str, sent_at: float, events: Sequence[bytes]) -> bytes:
    """A report body from already-encoded events (no per-event re-encoding)."""
    head = orjson.dumps(
        {"v": VERSION, "sender": sender.text, "batch": batch_id, "sent_at": sent_at}
    )
    return head[:-1] + b',"events":[' + b",".join(events) + b"]}"


@dataclass(frozen=True, slots=True)
class ReportBatch:
    sender: Prefix
    batch_id: str
    sent_at: float
    events: tuple[Event, ...]

    def encode(self) -> bytes:
        return encode_batch(
            self.sender, self.batch_id, self.sent_at, [e.encode() for e in self.events]
        )


def decode_batch(body: bytes, *, max_events: int, max_bytes: int) -> ReportBatch:
    """Parse and validate a report body; raises ``ReportMalformed``/``ReportTooLarge``."""
    if len(body) > max_bytes:
        raise ReportTooLarge(f"report is {len(body)} bytes; this node accepts {max_bytes}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReportMalformed(f"report is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReportMalformed("report must be a JSON object")
    if data.get("v") != VERSION:
        raise ReportMalformed(f"unsupported report version {data.get('v')!r}; expected {VERSION}")
    sender_text = data.get("sender")
    batch_id = data.get("batch")
    sent_at = data.get("sent_at")
    raw_events = data.get("events")
    if not isinstance(sender_text, str):
        raise ReportMalformed("report 'sender' must be a prefix")
    try:
        sender = Prefix(sender_text)
    except InvalidHandle as exc:
        raise ReportMalformed(f"report 'sender': {exc.message}") from None
    if not isinstance(batch_id, str) or not _BATCH.match(batch_id):
        raise ReportMalformed("report 'batch' must be 32 lower-case hex digits")
    if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
        raise ReportMalformed("report 'sent_at' must be Unix seconds")
    if not isinstance(raw_events, list):
        raise ReportMalformed("report 'events' must be a list")
    if len(raw_events) > max_events:
        raise ReportTooLarge(f"report has {len(raw_events)} events; this node accepts {max_events}")
    events: list[Event] = []
    for n, raw in enumerate(raw_events):
        try:
            events.append(Event.from_json(raw))
        except EventInvalid as exc:
            raise ReportMalformed(f"event #{n}: {exc}") from None
    return ReportBatch(sender, batch_id, float(sent_at), tuple(events))


@dataclass(frozen=True, slots=True)
class Receipt:
    batch_id: str
    accepted: int
    duplicates: int
    received_at: float
    clock_skew: float
    skew_alarm: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch_id,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "received_at": self.received_at,
            "clock_skew": self.clock_skew,
            "skew_alarm": self.skew_alarm,
        }

    @classmethod
    def from_json(cls, data: Any) -> Receipt:
        try:
            return cls(
                batch_id=str(data["batch"]),
                accepted=int(data["accepted"]),
                duplicates=int(data["duplicates"]),
                received_at=float(data["received_at"]),
                clock_skew=float(data["clock_skew"]),
                skew_alarm=bool(data["skew_alarm"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportMalformed(f"receipt is malformed: {exc}") from None
