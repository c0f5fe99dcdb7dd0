"""Values keep their type through the store: exact integers, booleans, text, no value.

Files of the first layout (no ``int_value``/``bool_value`` columns) still read,
alone and next to new ones, and compact together with them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from iinode.errors import ValueInvalid
from iinode.telemetry.model import Quality, Reading, from_us, to_us
from iinode.telemetry.store import ParquetStore

T0 = to_us(datetime(2026, 3, 1, 8, 0, tzinfo=UTC))
M1 = "88.118.8/PRESS-01"
BIG = 2**53 + 1  # the first integer a double cannot hold
U64 = 2**64 - 1
I64 = -(2**63)

TYPED = [
    Reading(M1, "temp", T0, 21.5),
    Reading(M1, "count", T0 + 1, BIG),
    Reading(M1, "serial", T0 + 2, U64),
    Reading(M1, "offset", T0 + 3, I64),
    Reading(M1, "small", T0 + 4, 7),
    Reading(M1, "on", T0 + 5, True),
    Reading(M1, "off", T0 + 6, False),
    Reading(M1, "state", T0 + 7, "running"),
    Reading(M1, "lost", T0 + 8, None, Quality.BAD),
]


def typed(value: object) -> tuple[str, object]:
    return type(value).__name__, value


@pytest.fixture
def store(tmp_path: Path) -> ParquetStore:
    return ParquetStore(tmp_path / "ts")


def test_history_and_latest_keep_types(store: ParquetStore) -> None:
    store.append(TYPED)
    got = store.history(M1)
    assert [typed(r.value) for r in got] == [typed(r.value) for r in TYPED]
    assert got == TYPED
    latest = store.latest(M1)
    assert {tag: typed(v) for tag, (_, v, _) in latest.items()} == {
        r.tag: typed(r.value) for r in TYPED
    }
    assert latest["lost"] == (T0 + 8, None, Quality.BAD)


def test_latest_takes_the_last_row_whatever_its_type(store: ParquetStore) -> None:
    store.append([Reading(M1, "x", T0, "text first"), Reading(M1, "x", T0 + 1, U64)])
    store.append([Reading(M1, "x", T0 + 2, None, Quality.BAD)])
    assert store.latest(M1)["x"] == (T0 + 2, None, Quality.BAD)


def test_aggregates_of_integers_and_booleans_keep_their_type(store: ParquetStore) -> None:
    store.append([Reading(M1, "n", T0 + i, v) for i, v in enumerate([BIG, BIG + 2, 0])])
    store.append([Reading(M1, "b", T0 + i, v) for i, v in enumerate([True, False, True])])
    (n,) = store.downsample(M1, "n", 60_000_000)
    assert (typed(n.min), typed(n.max), n.count) == (typed(0), typed(BIG + 2), 3)
    (b,) = store.downsample(M1, "b", 60_000_000)
    assert (typed(b.min), typed(b.max), b.avg) == (typed(False), typed(True), pytest.approx(2 / 3))
    store.append([Reading(M1, "n", T0 + 9, 0.5)])  # a float among them: floats
    (mixed,) = store.downsample(M1, "n", 60_000_000)
    assert typed(mixed.min) == typed(0.0)


@pytest.mark.parametrize("value", [U64 + 1, I64 - 1])
def test_integers_beyond_64_bits_are_no_reading(value: int) -> None:
    """No source gives them (JSON devices' big numbers parse as floats); a bus or the
    store could not carry them."""
    with pytest.raises(ValueInvalid, match="2\\^64"):
        Reading(M1, "n", T0, value)


def test_a_reading_without_a_value_cannot_be_good() -> None:
    with pytest.raises(ValueInvalid, match="without a value"):
        Reading(M1, "x", T0, None)


def write_first_layout(
    store: ParquetStore, rows: list[tuple[str, int, float | None, str | None]]
) -> Path:
    """A file as the store wrote it before the typed columns existed."""
    directory = store.root / "prefix=88.118.8" / f"day={from_us(rows[0][1]).date().isoformat()}"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"part-{rows[0][1]:016d}-0000abcd.parquet"
    table = pa.table(
        {
            "equipment": pa.array([M1] * len(rows), pa.string()),
            "tag": pa.array([r[0] for r in rows], pa.string()),
            "time": pa.array([r[1] for r in rows], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "value": pa.array([r[2] for r in rows], pa.float64()),
            "text": pa.array([r[3] for r in rows], pa.string()),
            "quality": pa.array([192] * len(rows), pa.int16()),
        }
    )
    pq.write_table(table, path)
    return path


def test_first_layout_files_still_read(store: ParquetStore) -> None:
    write_first_layout(store, [("temp", T0 - 10, 20.0, None), ("count", T0 - 9, 5.0, None),
                               ("state", T0 - 8, None, "idle")])  # fmt: skip
    # only old files: the typed columns read as nulls, values as the old layout gave them
    assert [(r.tag, r.value) for r in store.history(M1)] == [
        ("temp", 20.0), ("count", 5.0), ("state", "idle"),
    ]  # fmt: skip
    assert store.latest(M1)["state"] == (T0 - 8, "idle", Quality.GOOD)
    assert store.downsample(M1, "count", 60_000_000)[0].max == 5.0
    # old and new side by side, then merged into one file of the new layout
    store.append(TYPED)
    both = store.history(M1)
    assert [typed(r.value) for r in both[3:]] == [typed(r.value) for r in TYPED]
    assert store.compact("88.118.8", datetime(2026, 3, 1).date()) == 1
    (merged,) = store.files()
    assert "int_value" in pq.read_schema(merged).names
    assert store.history(M1) == both


def test_append_table_without_the_typed_columns(store: ParquetStore) -> None:
    table = pa.table(
        {
            "equipment": [M1, M1],
            "tag": ["a", "b"],
            "time": pa.array([T0, T0 + 1], pa.int64()),
            "value": [1.0, None],
            "text": [None, "x"],
            "quality": pa.array([192, 192], pa.int16()),
        }
    )
    assert store.append_table(table) == 2
    assert [r.value for r in store.history(M1)] == [1.0, "x"]
