from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iinode.errors import ValueInvalid
from iinode.telemetry.model import Quality, Reading, to_us
from iinode.telemetry.store import Bucket, ParquetStore, StoreSettings

T0 = to_us(datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC))
M1 = "88.118.8/PRESS-01"
M2 = "88.118.8/PRESS-02"
OTHER = "88.200.1/PUMP-7"


def series(eq: str, tag: str, n: int, step_us: int = 1_000_000) -> list[Reading]:
    return [Reading(eq, tag, T0 + i * step_us, float(i)) for i in range(n)]


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    return ParquetStore(StoreSettings(tmp_path / "ts"))


def test_layout_is_partitioned_by_prefix_and_day(store: ParquetStore) -> None:
    store.append(series(M1, "temp", 120) + series(OTHER, "flow", 10))
    assert store.partitions() == [
        ("88.118.8", date(2026, 3, 1)),
        ("88.118.8", date(2026, 3, 2)),
        ("88.200.1", date(2026, 3, 1)),
    ]
    files = store.files("88.118.8")
    assert len(files) == 2
    assert all(f.name.startswith("part-") and f.suffix == ".parquet" for f in files)
    assert not list(store.root.rglob("*.tmp"))
    assert pq.read_schema(files[0]).names == [
        "equipment",
        "tag",
        "time",
        "value",
        "text",
        "quality",
        "int_value",
        "bool_value",
    ]


def test_layout_is_readable_by_plain_duckdb(store: ParquetStore) -> None:
    store.append(series(M1, "temp", 120))
    glob = str(store.root / "*" / "*" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT prefix, day::VARCHAR, count(*) FROM read_parquet('{glob}', "
        "hive_partitioning=true, "
        "hive_types={'prefix': VARCHAR, 'day': DATE}) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [("88.118.8", "2026-03-01", 60), ("88.118.8", "2026-03-02", 60)]


def test_history_range_and_types(store: ParquetStore) -> None:
    store.append(series(M1, "temp", 100))
    store.append(
        [
            Reading(M1, "state", T0 + 5, "running"),
            Reading(M1, "on", T0 + 6, True, Quality.UNCERTAIN),
            Reading(M2, "temp", T0, 99.0),
        ]
    )
    got = store.history(M1, "temp", T0 + 10_000_000, T0 + 20_000_000)
    assert [r.value for r in got] == [float(i) for i in range(10, 20)]
    assert got[0] == Reading(M1, "temp", T0 + 10_000_000, 10.0)
    every = store.history(M1, start_us=T0, end_us=T0 + 1_000_000)
    assert [(r.tag, r.value, r.quality) for r in every] == [
        ("temp", 0.0, Quality.GOOD),
        ("state", "running", Quality.GOOD),
        ("on", True, Quality.UNCERTAIN),
    ]
    assert type(every[2].value) is bool
    assert len(store.history(M1, "temp", limit=7)) == 7
    assert store.history("88.999/NONE") == []
    assert store.count() == 103
    assert store.count("88.118.8") == 103


def test_latest(store: ParquetStore) -> None:
    store.append(series(M1, "temp", 90))
    store.append([Reading(M1, "state", T0, "idle"), Reading(M1, "state", T0 + 9, "down")])
    latest = store.latest(M1)
    assert latest["temp"] == (T0 + 89_000_000, 89.0, Quality.GOOD)
    assert latest["state"] == (T0 + 9, "down", Quality.GOOD)
    assert store.latest(OTHER) == {}


def test_downsample(store: ParquetStore) -> None:
    store.append(series(M1, "temp", 180))
    buckets = store.downsample(M1, "temp", 60_000_000)
    first = (T0 // 60_000_000) * 60_000_000
    assert buckets == [
        Bucket(first, 60, 0.0, 59.0, 29.5),
        Bucket(first + 60_000_000, 60, 60.0, 119.0, 89.5),
        Bucket(first + 120_000_000, 60, 120.0, 179.0, 149.5),
    ]
    window = store.downsample(M1, "temp", 60_000_000, T0 + 30_000_000, T0 + 90_000_000)
    assert [(b.count, b.min, b.max) for b in window] == [(30, 30.0, 59.0), (30, 60.0, 89.0)]
    with pytest.raises(ValueInvalid):
        store.downsample(M1, "temp", 0)


def test_compact_merges_files_and_keeps_rows(store: ParquetStore) -> None:
    for k in range(4):
        store.append([Reading(M1, "temp", T0 - 60_000_000 + k, float(k))])
    store.append([Reading(M1, "temp", T0 - 60_000_000 + 2, 2.0)])  # delivered twice
    day = date(2026, 3, 1)
    assert len(store.files()) == 5
    assert store.count() == 5
    assert store.compact("88.118.8", day) == 1
    assert len(store.files()) == 1
    assert [r.value for r in store.history(M1)] == [0.0, 1.0, 2.0, 3.0]
    assert store.compact("88.118.8", day) == 1


def test_retention_removes_old_days(store: ParquetStore) -> None:
    store.append(series(M1, "temp", 120) + series(OTHER, "flow", 1))
    removed = store.retain(1, now=datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert removed == 2
    assert store.partitions() == [("88.118.8", date(2026, 3, 2))]
    assert store.count() == 60
    with pytest.raises(ValueInvalid):
        store.retain(0)


def test_append_table_fast_path_and_bad_input(store: ParquetStore) -> None:
    table = pa.table(
        {
            "equipment": [M1] * 3,
            "tag": ["a", "b", "c"],
            "time": pa.array([T0, T0 + 1, T0 + 2], pa.int64()),
            "value": [1.0, 2.0, None],
            "text": [None, None, "x"],
            "quality": pa.array([192, 192, 0], pa.int16()),
        }
    )
    assert store.append_table(table) == 3
    assert store.latest(M1)["c"] == (T0 + 2, "x", Quality.BAD)
    with pytest.raises(ValueInvalid, match="schema"):
        store.append_table(table.drop_columns(["tag"]))
    with pytest.raises(ValueInvalid, match="1970"):
        store.append([Reading(M1, "a", -5, 1.0)])
    assert store.append([]) == 0


def test_compact_crowded_partitions_only(store: ParquetStore) -> None:
    for k in range(3):
        store.append([Reading(M1, "temp", T0 - 60_000_000 + k, float(k))])
    store.append([Reading(OTHER, "flow", T0, 1.0)])
    assert store.compact_crowded(min_files=3) == 1
    assert len(store.files("88.118.8")) == 1
    assert len(store.files("88.200.1")) == 1
    assert store.count() == 4


def test_append_fsyncs_files_and_directories_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = ParquetStore(tmp_path / "ts")
    synced.clear()
    day = 1_767_225_600_000_000
    store.append([Reading("88.118.8/M1", "t", day, 1.0), Reading("88.7/M2", "t", day, 2.0)])
    files = store.files()
    assert len(files) == 2
    for f in files:
        tmp = f.with_name(f".{f.name}.tmp")
        assert str(tmp) in synced  # the data, before the rename
        assert synced.index(str(tmp)) < synced.index(str(f.parent))  # then the new entry
        assert str(f.parent.parent) in synced  # the new day directory's entry
    assert str(tmp_path / "ts") in synced  # the new prefix directories' entries


def test_queries_while_a_partition_has_no_file_yet_answer_nothing(store: ParquetStore) -> None:
    # the first write of a partition creates its directory before the file is renamed in
    (store.settings.root / "prefix=88.118.8" / "day=2026-03-01").mkdir(parents=True)
    assert store.history(M1) == []
    assert store.latest(M1) == {}
    store.append(series(M1, "temp", 3))
    assert len(store.history(M1)) == 3
