"""Receive-and-forward at a provincial node: one transaction, duplicates, full outbox, crash."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from iinode.identifiers import Prefix
from iinode.monitoring import (
    Event,
    EventKind,
    NodeMetrics,
    Outbox,
    OutboxFull,
    OutboxSettings,
    Severity,
    children_of,
)
from iinode.monitoring.protocol import encode_batch, new_batch_id
from iinode.monitoring.receiver import ForwardPolicy, ReceiverSettings, ReportReceiver
from iinode.monitoring.store import EventStore

PROVINCE, ENTERPRISE = Prefix("88.118"), Prefix("88.118.8")


def ev(n: int, kind: EventKind = EventKind.SECURITY, severity: Severity = Severity.LOW) -> Event:
    return Event(
        id=f"f{n}",
        origin=ENTERPRISE,
        kind=kind,
        severity=severity,
        observed_at=1_700_000_000.0 + n,
        province="JX",
        detail={"rule": "auth_failure", "n": n},
    )


def body(events: list[Event]) -> bytes:
    return encode_batch(ENTERPRISE, new_batch_id(), time.time(), [e.encode() for e in events])


def province(tmp: Path, *, shared: bool = True, max_events: int = 1000) -> ReportReceiver:
    metrics = NodeMetrics()
    box = Outbox(
        OutboxSettings(tmp / ("events.db" if shared else "outbox.db"), max_events=max_events),
        metrics,
    )
    store = EventStore(tmp / "events.db")
    return ReportReceiver(
        ReceiverSettings(PROVINCE, children_of(ENTERPRISE)), store, metrics, ForwardPolicy(box)
    )


def forwarded(rx: ReportReceiver) -> list[dict[str, object]]:
    assert rx.forward is not None
    return [orjson.loads(i.body) for i in rx.forward.outbox.peek(10_000)]


def test_summary_bytes_match_the_summary_event() -> None:
    e = ev(1)
    assert e.summary_bytes(PROVINCE) == e.summary(PROVINCE).encode()
    held = Event(**{**{f: getattr(e, f) for f in e.__slots__}, "detail_at": ENTERPRISE})
    assert held.summary_bytes(PROVINCE) == held.summary(PROVINCE).encode()


@pytest.mark.parametrize("shared", [True, False])
def test_new_events_are_stored_and_forwarded_once(tmp_path: Path, shared: bool) -> None:
    rx = province(tmp_path, shared=shared)
    critical = ev(2, severity=Severity.CRITICAL)
    receipt = rx.receive(ENTERPRISE, body([ev(0), ev(1), critical]))
    assert (receipt.accepted, receipt.duplicates) == (3, 0)
    # a retry with overlap, and the same event twice in one batch
    receipt = rx.receive(ENTERPRISE, body([ev(1), ev(3), ev(3), ev(4)]))
    assert (receipt.accepted, receipt.duplicates) == (2, 2)
    up = forwarded(rx)
    assert [u["id"] for u in up] == ["f0", "f1", "f2", "f3", "f4"]
    assert up[0] == ev(0).summary(PROVINCE).to_json()
    assert "detail" not in up[0]
    assert up[0]["detail_at"] == "88.118"
    assert up[2] == critical.to_json()  # critical events go up in full
    assert rx.store.count() == 5
    assert rx.forward is not None
    assert rx.forward.outbox.pending == 5


def test_full_outbox_refuses_the_batch_and_changes_nothing(tmp_path: Path) -> None:
    rx = province(tmp_path, max_events=3)
    rx.receive(ENTERPRISE, body([ev(0), ev(1)]))
    with pytest.raises(OutboxFull):
        rx.receive(ENTERPRISE, body([ev(2), ev(3)]))
    assert rx.store.count() == 2
    assert rx.forward is not None
    assert (rx.forward.outbox.pending, rx.forward.outbox.alarm) == (2, True)
    rx.forward.outbox.ack(rx.forward.outbox.peek(10))
    assert rx.receive(ENTERPRISE, body([ev(2), ev(3)])).accepted == 2
    assert [u["id"] for u in forwarded(rx)] == ["f2", "f3"]


CRASHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from iinode.identifiers import Prefix
    from iinode.monitoring import Event, EventKind, NodeMetrics, Outbox, OutboxSettings, Severity
    from iinode.monitoring import children_of
    from iinode.monitoring.protocol import encode_batch, new_batch_id
    from iinode.monitoring.receiver import ForwardPolicy, ReceiverSettings, ReportReceiver
    from iinode.monitoring.store import EventStore
    path = Path(sys.argv[1])
    e = Prefix("88.118.8")
    m = NodeMetrics()
    rx = ReportReceiver(ReceiverSettings(Prefix("88.118"), children_of(e)), EventStore(path), m,
                        ForwardPolicy(Outbox(OutboxSettings(path), m)))
    n = 0
    while True:
        events = [Event(id=f"c{n + i}", origin=e, kind=EventKind.HEALTH, severity=Severity.LOW,
                        observed_at=1.7e9 + n + i) for i in range(500)]
        rx.receive(e, encode_batch(e, new_batch_id(), time.time(), [x.encode() for x in events]))
        n += 500
        print(n, flush=True)
    """
)


@pytest.mark.slow
def test_kill_9_while_receiving_never_stores_an_event_without_forwarding_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHER, str(path)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    for _ in range(6):  # let a few batches commit, then kill it mid-way through another
        assert proc.stdout.readline()
    time.sleep(0.013)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    proc.stdout.close()
    db = sqlite3.connect(path)
    stored = set(db.execute("SELECT origin || '|' || id FROM events").fetchall())
    queued = set(db.execute("SELECT key FROM outbox").fetchall())
    batches = db.execute("SELECT COUNT(*) FROM batches").fetchone()[0]
    db.close()
    assert len(stored) >= 3000
    assert stored == queued
    assert len(stored) == 500 * batches
