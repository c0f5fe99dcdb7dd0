from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from iinode.identifiers import Prefix
from iinode.monitoring import (
    Event,
    EventKind,
    NodeMetrics,
    Outbox,
    OutboxFull,
    OutboxSettings,
    Severity,
)

ORIGIN = Prefix("88.118.8")


def ev(n: int, pad: int = 0) -> Event:
    return Event(
        id=f"e{n}",
        origin=ORIGIN,
        kind=EventKind.HEALTH,
        severity=Severity.LOW,
        observed_at=1_700_000_000.0 + n,
        detail={"pad": "x" * pad} if pad else None,
    )


def test_fifo_peek_ack_and_dedup(tmp_path: Path) -> None:
    box = Outbox(OutboxSettings(tmp_path / "o.db"))
    assert box.enqueue(ev(i) for i in range(10)) == 10
    assert box.enqueue([ev(3), ev(10)]) == 1
    assert box.pending == 11
    first = box.peek(4)
    assert [Event.from_json(__import__("orjson").loads(i.body)).id for i in first] == [
        "e0",
        "e1",
        "e2",
        "e3",
    ]
    box.ack(first)
    assert box.pending == 7
    assert next(i.key for i in box.peek(100)) == "88.118.8|e4"
    box.ack(box.peek(100))
    assert box.pending == 0
    assert box.pending_bytes == 0
    box.close()


def test_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(OutboxSettings(tmp_path / "o.db"))
    box.enqueue(ev(i) for i in range(5))
    box.ack(box.peek(2))
    box.close()
    again = Outbox(OutboxSettings(tmp_path / "o.db"))
    assert again.pending == 3
    assert [i.key.split("|")[1] for i in again.peek(10)] == ["e2", "e3", "e4"]
    again.close()


def test_full_outbox_refuses_raises_alarm_and_keeps_everything(tmp_path: Path) -> None:
    metrics = NodeMetrics()
    box = Outbox(OutboxSettings(tmp_path / "o.db", max_events=10, resume_ratio=0.5), metrics)
    box.enqueue(ev(i) for i in range(8))
    with pytest.raises(OutboxFull, match="outbox full") as info:
        box.enqueue(ev(i) for i in range(8, 11))
    assert info.value.pending == 8
    assert box.pending == 8
    assert box.alarm
    assert len(box.peek(100)) == 8
    text = metrics.render().decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["iinode_monitoring_outbox_alarm"] == 1.0
    assert samples["iinode_monitoring_outbox_full_total"] == 1.0
    assert samples["iinode_monitoring_outbox_pending"] == 8.0
    box.ack(box.peek(2))
    assert box.alarm
    box.ack(box.peek(1))
    assert not box.alarm
    box.close()


def test_byte_bound(tmp_path: Path) -> None:
    box = Outbox(OutboxSettings(tmp_path / "o.db", max_bytes=2000))
    box.enqueue([ev(0, pad=900)])
    with pytest.raises(OutboxFull):
        box.enqueue([ev(1, pad=900), ev(2, pad=900)])
    assert box.pending == 1
    box.close()


WRITER = textwrap.dedent(
    """
    import sys
    from iinode.identifiers import Prefix
    from iinode.monitoring import Event, EventKind, Outbox, OutboxSettings, Severity
    box = Outbox(OutboxSettings(sys.argv[1]))
    n = 0
    while True:
        batch = [
            Event(id=f"k{n + i}", origin=Prefix("88.118.8"), kind=EventKind.HEALTH,
                  severity=Severity.INFO, observed_at=1.0)
            for i in range(50)
        ]
        box.enqueue(batch)
        n += 50
        print(n, flush=True)
    """
)


def test_kill_9_loses_nothing_that_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert proc.stdout is not None
    committed = 0
    try:
        while committed < 2000:
            line = proc.stdout.readline()
            assert line, "writer exited early"
            committed = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    box = Outbox(OutboxSettings(path))
    keys = {i.key for i in box.peek(10**6)}
    assert box.pending == len(keys) >= committed
    assert {f"88.118.8|k{i}" for i in range(committed)} <= keys
    assert len(keys) % 50 == 0
    box.close()
