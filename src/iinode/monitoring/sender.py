"""Draining the outbox to the parent node: batching, back-off, at-least-once.

``ReportSender.send_once`` peeks the oldest batch, posts it with a fresh batch
id, checks the parent's 200 receipt against the batch (same batch id,
``accepted + duplicates`` equal to the events sent) and only then acks the
items; a crash anywhere in between leaves them queued, and the parent
deduplicates the resend.  An answer that is not such a receipt acks nothing.

``run`` loops over it:

* transport errors, 5xx, 429, 409 and bad receipts: exponential back-off
  (``Backoff``), the same batch again;
* 413: the batch is halved;
* 400 (the parent refuses the content): the batch is bisected - halved until
  the refused event is alone - and that single event is moved to the outbox's
  dead-letter table with the parent's message, counted in
  ``iinode_monitoring_dead_letters_total`` and reported through
  ``on_dead_letter``; the rest keeps flowing;
* 401/403 (a configuration problem: wrong secret, not delegated): back-off
  and ``iinode_monitoring_parent_refusing{reason}`` is 1 until a batch is
  accepted again.

Nothing is ever dropped silently; ``last_error`` says what went wrong last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import orjson

from iinode.errors import TransportError
from iinode.identifiers import Prefix
from iinode.monitoring.auth import basic_username
from iinode.monitoring.errors import (
    MonitoringError,
    ReplyInvalid,
    ReportForbidden,
    ReportMalformed,
    ReportRefused,
    ReportTooLarge,
    ReportUnauthenticated,
)
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.outbox import Outbox, OutboxItem
from iinode.monitoring.protocol import Receipt, encode_batch, new_batch_id
from iinode.monitoring.supervise import Backoff, sleep_or_stop

#: Called with the dead-lettered items and the parent's message.
DeadLetterHook = Callable[[Sequence[OutboxItem], str], None]


@dataclass(frozen=True, slots=True)
class SenderSettings:
    url: str
    node: Prefix
    username: str
    password: str
    batch_size: int = 2000
    idle_interval: float = 0.2
    timeout: float = 10.0


class ReportSender:
    def __init__(
        self,
        settings: SenderSettings,
        outbox: Outbox,
        client: httpx.AsyncClient,
        metrics: NodeMetrics | None = None,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self._client = client
        self._metrics = metrics
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._wake = asyncio.Event()
        self.batch_size = settings.batch_size
        self.on_dead_letter = on_dead_letter
        self.last_error: MonitoringError | TransportError | None = None
        self.last_receipt: Receipt | None = None
        self.clock_offset: float | None = None
        #: ``"unauthenticated"``/``"forbidden"`` while the parent refuses us, else "".
        self.refusing = ""
        self._inflight: list[OutboxItem] = []
        self._isolate_through = 0  # bisecting until the batch ending at this seq is through

    def wake(self) -> None:
        """Tell a running sender that new events are queued."""
        self._wake.set()

    async def send_once(self) -> int:
        """Send the oldest batch; returns events acked (0 if the outbox is empty)."""
        items = self.outbox.peek(self.batch_size)
        self._inflight = items
        if not items:
            return 0
        s = self.settings
        sent_at = self._clock()
        batch_id = new_batch_id()
        body = encode_batch(s.node, batch_id, sent_at, [i.body for i in items])
        try:
            response = await self._client.post(
                s.url,
                content=body,
                auth=(basic_username(s.username), s.password),
                headers={"content-type": "application/json"},
                timeout=s.timeout,
            )
        except httpx.HTTPError as exc:
            self._count("transport_error")
            raise TransportError(f"report to {s.url} failed: {exc!r}") from exc
        done = self._clock()
        if response.status_code != 200:
            self._count(f"http_{response.status_code}")
            if response.status_code >= 500 or response.status_code == 429:
                raise TransportError(f"parent {s.url} answered {response.status_code}")
            raise _refusal(response)
        receipt = _receipt(response.content, batch_id, len(items))
        self.outbox.ack(items)
        self.last_receipt = receipt
        self.clock_offset = receipt.received_at - (sent_at + done) / 2
        self._count("ok")
        self._accepted(items)
        if self._metrics is not None:
            self._metrics.events_sent.inc(len(items))
            self._metrics.clock_skew.labels("parent").set(self.clock_offset)
        return len(items)

    def _accepted(self, items: Sequence[OutboxItem]) -> None:
        if self.refusing:
            if self._metrics is not None:
                self._metrics.parent_refusing.labels(self.refusing).set(0)
            self.refusing = ""
        if self._isolate_through and items[-1].seq >= self._isolate_through:
            self._isolate_through = 0
            self.batch_size = self.settings.batch_size

    async def drain(self) -> int:
        """Send until the outbox is empty; errors propagate."""
        total = 0
        while n := await self.send_once():
            total += n
        return total

    def refused_content(self, exc: ReportMalformed) -> None:
        """The parent refused the last batch as malformed: bisect, or dead-letter one event."""
        items = self._inflight
        if not items:
            return
        if len(items) > 1:
            self._isolate_through = max(self._isolate_through, items[-1].seq)
            self.batch_size = max(1, len(items) // 2)
            return
        self.outbox.dead_letter(items, exc.message, self._clock())
        self._isolate_through = 0  # the rest goes in full batches again (bisecting anew if needed)
        self.batch_size = self.settings.batch_size
        if self._metrics is not None:
            self._metrics.dead_letters.inc(len(items))
        if self.on_dead_letter is not None:
            self.on_dead_letter(items, exc.message)

    def _refused_config(self, exc: ReportRefused) -> None:
        if self._metrics is not None:
            if self.refusing and self.refusing != exc.reason:
                self._metrics.parent_refusing.labels(self.refusing).set(0)
            self._metrics.parent_refusing.labels(exc.reason).set(1)
        self.refusing = exc.reason

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the outbox drained until ``stop`` is set."""
        while not stop.is_set():
            try:
                sent = await self.send_once()
            except ReportTooLarge as exc:
                self.last_error = exc
                self.batch_size = max(1, self.batch_size // 2)
                continue
            except ReportMalformed as exc:
                self.last_error = exc
                self.refused_content(exc)
                continue
            except (ReportUnauthenticated, ReportForbidden) as exc:
                self.last_error = exc
                self._refused_config(exc)
                await sleep_or_stop(stop, self.backoff.next_delay())
                continue
            except (ReportRefused, ReplyInvalid, TransportError) as exc:
                self.last_error = exc
                await sleep_or_stop(stop, self.backoff.next_delay())
                continue
            self.backoff.reset()
            if sent:
                self.last_error = None
                continue
            self._wake.clear()
            waker = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waker, stopper},
                timeout=self.settings.idle_interval,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waker.cancel()
            stopper.cancel()

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.batches_sent.labels(result).inc()


def _receipt(content: bytes, batch_id: str, sent: int) -> Receipt:
    """The parent's receipt, checked against the batch (``ReplyInvalid`` otherwise)."""
    try:
        receipt = Receipt.from_json(orjson.loads(content))
    except (orjson.JSONDecodeError, ReportMalformed) as exc:
        raise ReplyInvalid(f"parent answered 200 without a receipt: {exc}") from None
    if receipt.batch_id != batch_id:
        raise ReplyInvalid(f"receipt names batch {receipt.batch_id}, not {batch_id}")
    if (
        receipt.accepted < 0
        or receipt.duplicates < 0
        or receipt.accepted + receipt.duplicates != sent
    ):
        raise ReplyInvalid(
            f"receipt counts {receipt.accepted} accepted + {receipt.duplicates} duplicates "
            f"for {sent} events sent"
        )
    return receipt


def _refusal(response: httpx.Response) -> ReportRefused:
    try:
        detail = str(orjson.loads(response.content).get("detail", ""))
    except (orjson.JSONDecodeError, AttributeError):
        detail = response.text[:200]
    return ReportRefused.for_status(
        response.status_code, f"parent answered {response.status_code}: {detail}"
    )


__all__ = ["Backoff", "DeadLetterHook", "ReportSender", "SenderSettings"]
