"""Draining the outbox to the parent node: batching, back-off, at-least-once.

``ReportSender.send_once`` peeks the oldest batch, posts it with a fresh batch
id, and acks the items only after the parent's 200 receipt; a crash anywhere in
between leaves them queued, and the parent deduplicates the resend.  ``run``
loops over it with exponential back-off (``Backoff``, pure) on transport errors,
5xx and refusals, halving the batch on 413.  Nothing is ever dropped: a refused
batch stays queued, the refusal is counted, and ``last_error`` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import orjson

from iinode.errors import TransportError
from iinode.identifiers import Prefix
from iinode.monitoring.auth import basic_username
from iinode.monitoring.errors import MonitoringError, ReportRefused, ReportTooLarge
from iinode.monitoring.metrics import NodeMetrics
from iinode.monitoring.outbox import Outbox
from iinode.monitoring.protocol import Receipt, encode_batch, new_batch_id


@dataclass
class Backoff:
    """Exponential back-off with full jitter: ``uniform(0, min(maximum, initial*factor**n))``."""

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**self.failures)
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


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
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self._client = client
        self._metrics = metrics
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._wake = asyncio.Event()
        self.batch_size = settings.batch_size
        self.last_error: MonitoringError | TransportError | None = None
        self.last_receipt: Receipt | None = None
        self.clock_offset: float | None = None

    def wake(self) -> None:
        """Tell a running sender that new events are queued."""
        self._wake.set()

    async def send_once(self) -> int:
        """Send the oldest batch; returns events acked (0 if the outbox is empty)."""
        items = self.outbox.peek(self.batch_size)
        if not items:
            return 0
        s = self.settings
        sent_at = self._clock()
        body = encode_batch(s.node, new_batch_id(), sent_at, [i.body for i in items])
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
        receipt = Receipt.from_json(orjson.loads(response.content))
        self.outbox.ack(items)
        self.last_receipt = receipt
        self.clock_offset = receipt.received_at - (sent_at + done) / 2
        self._count("ok")
        if self._metrics is not None:
            self._metrics.events_sent.inc(len(items))
            self._metrics.clock_skew.labels("parent").set(self.clock_offset)
        return len(items)

    async def drain(self) -> int:
        """Send until the outbox is empty; errors propagate."""
        total = 0
        while n := await self.send_once():
            total += n
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the outbox drained until ``stop`` is set."""
        while not stop.is_set():
            try:
                sent = await self.send_once()
            except ReportTooLarge as exc:
                self.last_error = exc
                self.batch_size = max(1, self.batch_size // 2)
                continue
            except (ReportRefused, TransportError) as exc:
                self.last_error = exc
                await _sleep_or_stop(stop, self.backoff.next_delay())
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


def _refusal(response: httpx.Response) -> ReportRefused:
    try:
        detail = str(orjson.loads(response.content).get("detail", ""))
    except (orjson.JSONDecodeError, AttributeError):
        detail = response.text[:200]
    return ReportRefused.for_status(
        response.status_code, f"parent answered {response.status_code}: {detail}"
    )


async def _sleep_or_stop(stop: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)
