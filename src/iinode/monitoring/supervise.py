"""Keeping the monitoring background loops alive: log, count, back off, restart.

Every long-running monitoring loop (the report sender, heartbeats, notice
pulls, batch-id pruning) runs under a ``Supervised``: when the loop raises
(a ``sqlite3.OperationalError`` "database is locked", an answer that does not
parse, a bug), the error is logged with its traceback, counted in
``iinode_monitoring_task_failures_total{task}``, kept in ``last_error``, and
the loop is started again after an exponential back-off (``Backoff``, pure).
A loop that ran longer than the back-off ceiling before failing starts again
from the initial delay.  Only ``stop`` (or cancellation) ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from iinode.monitoring.metrics import NodeMetrics

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Exponential back-off with jitter: ``uniform(c / 2, c)`` after ``n`` failures,
    where ``c = min(maximum, initial * factor**n)``."""

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


async def sleep_or_stop(stop: asyncio.Event, delay: float) -> None:
    """Sleep ``delay`` seconds, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)


@dataclass
class Supervised:
    """One named loop, restarted whenever it fails (see the module docstring).

    ``loop`` is called for every (re)start and gets the ``stop`` event; it
    should return once ``stop`` is set.
    """

    name: str
    loop: Callable[[asyncio.Event], Awaitable[object]]
    metrics: NodeMetrics | None = None
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    #: ``"<ExceptionType>: message"`` of the latest failure ("" before any).
    last_error: str = ""
    failures: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = self.clock()
            try:
                await self.loop(stop)
            except Exception as exc:  # supervision: every failure restarts the loop
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.metrics is not None:
                    self.metrics.task_failures.labels(self.name).inc()
                log.error("monitoring loop %s failed; restarting", self.name, exc_info=exc)
                if self.clock() - started > self.backoff.maximum:
                    self.backoff.reset()
                await sleep_or_stop(stop, self.backoff.next_delay())
                continue
            if not stop.is_set():  # returned on its own: start again, not in a tight loop
                await sleep_or_stop(stop, self.backoff.next_delay())


__all__ = ["Backoff", "Supervised", "sleep_or_stop"]
