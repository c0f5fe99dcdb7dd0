"""Cost of the failed-login check and charge: per process, shared SQLite, shared Redis.

    .venv/bin/python bench/failure_counts.py --checks 20000 --charges 5000 --runs 5

A check is what every authentication pays before a secret is looked at
(``FailureCounter.wait`` for a source with no failures); a charge is what a
failed one adds (``FailureCounter.charge``, each from a new address, so each
makes new buckets).  The reference is the in-process ``FailureLimiter``.
Redis is the one on 127.0.0.1:6379 (skipped if it is not there).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis

from iinode.node.failure_counts import FAILURES_FILE, SharedFailureLimiter
from iinode.node.failure_redis import RedisFailureStore
from iinode.node.failure_sqlite import SQLiteFailureStore
from iinode.node.ratelimit import FailureCounter, FailureLimiter

IDENTITY = "300:0.NA/88.118.8"
REDIS = "redis://127.0.0.1:6379/0"


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


async def per_op_us(limiter: FailureCounter, checks: int, charges: int) -> tuple[float, float]:
    """Microseconds per check (a clean source) and per charge (a new source each)."""
    start = time.perf_counter()
    for n in range(checks):
        await limiter.wait((f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", IDENTITY))
    check = (time.perf_counter() - start) / checks * 1e6
    start = time.perf_counter()
    for n in range(charges):
        await limiter.charge((f"172.{n >> 16 & 15 | 16}.{n >> 8 & 255}.{n & 255}", IDENTITY))
    charge = (time.perf_counter() - start) / charges * 1e6
    return check, charge


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=20_000)
    parser.add_argument("--charges", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    backends: dict[str, Callable[[Path], FailureCounter]] = {
        "memory": lambda _d: FailureLimiter(),
        "sqlite": lambda d: SharedFailureLimiter(SQLiteFailureStore(d / FAILURES_FILE)),
    }
    if redis_up():
        backends["redis"] = lambda _d: SharedFailureLimiter(
            RedisFailureStore(REDIS, f"bench{uuid.uuid4().hex}")
        )
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
    for _ in range(args.runs):
        for name, make in backends.items():
            with tempfile.TemporaryDirectory() as tmp:
                limiter = make(Path(tmp))
                results[name].append(await per_op_us(limiter, args.checks, args.charges))
                await limiter.aclose()
    if "redis" in backends:
        client = redis.Redis.from_url(REDIS)
        for key in client.scan_iter(match="iinode:bench*"):
            client.delete(key)
        client.close()
    memory_check = statistics.median(c for c, _ in results["memory"])
    memory_charge = statistics.median(c for _, c in results["memory"])
    print(f"{'backend':8} {'check us':>9} {'x memory':>9} {'charge us':>10} {'x memory':>9}")
    for name, runs in results.items():
        check = statistics.median(c for c, _ in runs)
        charge = statistics.median(c for _, c in runs)
        print(
            f"{name:8} {check:9.1f} {check / memory_check:9.1f} "
            f"{charge:10.1f} {charge / memory_charge:9.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
