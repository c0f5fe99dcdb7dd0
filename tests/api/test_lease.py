"""The extensions lease and the shared reject counts (no network)."""

from __future__ import annotations

import os
from pathlib import Path

from iinode.api.lease import ProcessLease
from iinode.api.shared_state import RejectsSnapshot
from iinode.telemetry.validation import Reject, RejectLog, RejectReason


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    first, second = ProcessLease(tmp_path / "x.lock"), ProcessLease(tmp_path / "x.lock")
    assert first.try_acquire()
    assert first.try_acquire()  # holding it already
    assert not second.try_acquire()
    assert first.holder() == os.getpid()
    first.release()
    assert not first.held
    assert second.try_acquire()
    assert not first.try_acquire()
    second.release()


def test_reject_counts_travel_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rejects.json"
    source, copy = RejectLog(), RejectLog()
    writer, reader = RejectsSnapshot(path), RejectsSnapshot(path)
    assert not reader.read_into(copy)  # no file yet
    source.add(Reject(RejectReason.MALFORMED, "x"))
    source.add(Reject(RejectReason.MALFORMED, "y"))
    assert writer.write(source)
    assert not writer.write(source)  # unchanged: not rewritten
    assert reader.read_into(copy)
    assert copy.counts == {RejectReason.MALFORMED: 2}
    assert copy.total == 2
    path.write_text("{broken")
    assert not reader.read_into(copy)  # a bad file keeps the last counts
    assert copy.total == 2
