"""Parquet compaction: same answers before and after, atomic swaps, crash recovery, policy."""

from __future__ import annotations

import json
import shutil
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from iinode.errors import StorageError, ValueInvalid
from iinode.telemetry.model import Quality, Reading, to_us
from iinode.telemetry.store import DAY_US, JOURNAL, ParquetStore, StoreSettings

T0 = to_us(datetime(2026, 3, 1, 23, 58, 0, tzinfo=UTC))
DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
M1, M2 = "88.118.8/PRESS-01", "88.118.8/PRESS-02"
LATER = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp()  # DAY1 closed, DAY2 open


def fill(store: ParquetStore, files: int, per_file: int = 40, first: int = 0) -> int:
    """Append batches ``first``.. of readings, each batch spanning two days and two
    machines (so two files per batch); returns the rows added."""
    for f in range(first, first + files):
        batch = [
            Reading(
                (M1, M2)[i % 2],
                ("temp", "state", "on")[i % 3],
                T0 + ((i // 2) % 2) * 600_000_000 + (f * per_file + i) * 1_000,
                ("running" if i % 3 == 1 else float(i * f) if i % 3 == 0 else bool(i % 2)),
                Quality.GOOD if i % 5 else Quality.UNCERTAIN,
            )
            for i in range(per_file)
        ]
        store.append(batch)
    return files * per_file


def answers(store: ParquetStore) -> object:
    return (
        store.count(),
        [store.history(m) for m in (M1, M2)],
        store.history(M1, "temp", T0 + 60_000_000, T0 + 300_000_000),
        [store.latest(m) for m in (M1, M2)],
        store.downsample(M2, "temp", 30_000_000),
    )


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    return ParquetStore(StoreSettings(tmp_path / "ts"))


def test_queries_answer_the_same_before_and_after(store: ParquetStore) -> None:
    fill(store, 12)
    before = answers(store)
    assert len(store.files()) == 24  # every batch spans both days
    assert store.compact("88.118.8", DAY1) == 1
    assert store.compact("88.118.8", DAY2) == 1
    assert len(store.files()) == 2
    assert answers(store) == before
    assert not list(store.root.rglob("*.tmp"))
    assert not list(store.root.rglob(JOURNAL))


def test_exact_duplicates_are_dropped(store: ParquetStore) -> None:
    fill(store, 3)
    once = answers(store)
    fill(store, 3)  # the same readings again, as QoS 1 redelivery can do
    assert store.count() == 2 * 120
    store.compact("88.118.8", DAY1)
    store.compact("88.118.8", DAY2)
    assert answers(store) == once


def test_readers_never_see_a_partial_state(store: ParquetStore) -> None:
    rows = fill(store, 40, per_file=10)
    seen: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(store.count())
            except Exception as exc:  # a file deleted under a query, for one
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(6):
            rows += fill(store, 4, per_file=10, first=40 + 4 * k)  # files arrive meanwhile
            assert store.compact_crowded(min_files=2, now=LATER) == 2
    finally:
        stop.set()
        reader.join()
    # Appends only add rows: a reader that saw old and new files together (or
    # neither) would see the count jump up and back, or dip.
    assert errors == []
    assert len(seen) > 10
    assert seen == sorted(seen)
    assert store.count() == rows


def test_periodic_policy(tmp_path: Path) -> None:
    store = ParquetStore(StoreSettings(tmp_path / "ts", compact_idle_s=60))
    midnight = to_us(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))

    def put(days_back: int, k: int) -> None:
        store.append([Reading(M1, "t", midnight - days_back * DAY_US + k, float(k))])

    for k in range(3):
        put(1, k)  # yesterday: a closed partition
        put(0, k)  # today: open
    assert store.compact_crowded(min_files=5) == 1  # yesterday only
    assert len(store.files()) == 1 + 3
    assert store.compact_crowded(min_files=3) == 1  # today is crowded at 3
    assert len(store.files()) == 2
    put(0, 9)
    assert store.compact_crowded(min_files=5) == 0  # open, neither crowded nor idle
    assert store.compact_crowded(min_files=5, now=time.time() + 61) == 1  # idle
    assert len(store.files()) == 2
    assert store.count() == 7
    with pytest.raises(ValueInvalid):
        store.compact_crowded(min_files=1)


def test_big_files_are_left_alone(tmp_path: Path) -> None:
    store = ParquetStore(StoreSettings(tmp_path / "ts", compact_small_rows=30, compact_max_rows=50))
    store.append([Reading(M1, "t", T0 - 600_000_000 + i, float(i)) for i in range(100)])
    for k in range(4):
        store.append([Reading(M1, "t", T0 - 300_000_000 + k * 20 + i, 1.0) for i in range(20)])
    assert store.compact_crowded(min_files=2, now=LATER) == 1
    sizes = sorted(
        int(store._query(f"SELECT count(*) FROM '{p}'", [])[0][0]) for p in store.files()
    )
    assert sizes == [40, 40, 100]  # merges of at most 50 rows; the 100-row file untouched
    assert store.count() == 180


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueInvalid):
        StoreSettings(tmp_path, compact_small_rows=0)
    with pytest.raises(ValueInvalid):
        StoreSettings(tmp_path, compact_idle_s=-1)


def test_failed_merge_changes_nothing(store: ParquetStore) -> None:
    fill(store, 3)
    directory = store.files()[0].parent
    (directory / "part-0000000000000000-deadbeef.parquet").write_bytes(b"not parquet")
    before = sorted(p.name for p in directory.iterdir())
    with pytest.raises(StorageError, match="compact"):
        store.compact("88.118.8", DAY1)
    assert sorted(p.name for p in directory.iterdir()) == before


def test_crash_after_the_swap_is_finished_on_open(tmp_path: Path) -> None:
    store = ParquetStore(StoreSettings(tmp_path / "ts"))
    rows = fill(store, 4)
    directory = store.files()[0].parent
    saved = tmp_path / "saved"
    shutil.copytree(directory, saved)
    old = sorted(p.name for p in directory.glob("part-*.parquet"))
    store.compact("88.118.8", DAY1)
    (new,) = [p.name for p in directory.glob("part-*.parquet")]
    for name in old:  # as if the crash came after the rename, before the deletes
        shutil.copy(saved / name, directory / name)
    (directory / JOURNAL).write_text(json.dumps({"new": new, "old": old}))
    reopened = ParquetStore(StoreSettings(tmp_path / "ts"))
    assert [p.name for p in directory.glob("part-*.parquet")] == [new]
    assert not (directory / JOURNAL).exists()
    assert reopened.count() == rows


def test_crash_before_the_swap_is_undone_on_open(tmp_path: Path) -> None:
    store = ParquetStore(StoreSettings(tmp_path / "ts"))
    rows = fill(store, 4)
    directory = store.files()[0].parent
    old = sorted(p.name for p in directory.glob("part-*.parquet"))
    new = "part-0000000000000001-0badcafe.parquet"
    shutil.copy(directory / old[0], directory / f".{new}.tmp")  # a merge written, not renamed
    (directory / JOURNAL).write_text(json.dumps({"new": new, "old": old}))
    reopened = ParquetStore(StoreSettings(tmp_path / "ts"))
    assert sorted(p.name for p in directory.iterdir()) == old
    assert reopened.count() == rows


def test_unreadable_journal_is_an_error(tmp_path: Path) -> None:
    store = ParquetStore(StoreSettings(tmp_path / "ts"))
    fill(store, 1)
    (store.files()[0].parent / JOURNAL).write_text("{")
    with pytest.raises(StorageError, match="journal"):
        ParquetStore(StoreSettings(tmp_path / "ts"))
