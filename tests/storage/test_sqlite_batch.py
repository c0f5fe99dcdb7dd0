"""One statement per batch (``storage.sqlite_batch``) writes exactly what one statement
per row writes: the same rows, the same counts, whatever the text (a NUL too)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iinode.storage import sqlite_batch
from iinode.storage.sqlite_batch import insert_handles, insert_terms
from iinode.storage.sqlite_terms import TERMS_TABLE, TERMS_UNIQUE

HANDLES = (
    "CREATE TABLE handles (handle TEXT PRIMARY KEY, prefix TEXT NOT NULL, data BLOB NOT NULL) "
    "WITHOUT ROWID"
)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
rows = st.lists(st.tuples(texts, texts, st.binary(min_size=1, max_size=20)), max_size=12)


def database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute(HANDLES)
    db.execute(TERMS_TABLE)
    db.execute(TERMS_UNIQUE)
    return db


def contents(db: sqlite3.Connection, table: str) -> list[tuple[object, ...]]:
    return list(db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3"))


@settings(max_examples=150, deadline=None)
@given(before=rows, batch=rows, verb=st.sampled_from(["INSERT OR IGNORE", "INSERT OR REPLACE"]))
def test_a_batch_statement_writes_what_a_statement_per_row_writes(
    before: list[tuple[str, str, bytes]], batch: list[tuple[str, str, bytes]], verb: str
) -> None:
    one, many = database(), database()
    for db in (one, many):
        db.executemany("INSERT OR IGNORE INTO handles VALUES (?, ?, ?)", before)
    statement = f"{verb} INTO handles (handle, prefix, data) VALUES (?, ?, ?)"
    expected = many.executemany(statement, batch).rowcount
    assert insert_handles(one, verb, batch) == expected
    assert contents(one, "handles") == contents(many, "handles")


@pytest.mark.parametrize(
    "row",
    [
        ("88.1/a\x00b", "88.1", b"\x00\x01"),
        ("88.1/é😀\"\\'", "88.1", b"x"),
        ("88.1/\u2028", "8\x008", b"\xff" * 300),
    ],
)
def test_awkward_text_and_bytes_arrive_intact(row: tuple[str, str, bytes]) -> None:
    db = database()
    assert insert_handles(db, "INSERT OR IGNORE", [("88.1/first", "88.1", b"1"), row]) == 2
    assert (row[0], row[1], row[2]) in contents(db, "handles")


terms = st.lists(
    st.tuples(texts, texts, texts, texts, st.booleans(), st.just(False)),
    max_size=15,
    unique_by=lambda t: t[:3],
)


@settings(max_examples=150, deadline=None)
@given(terms)
def test_terms_in_one_statement_are_the_terms_given(
    given_terms: list[tuple[str, str, str, str, bool, bool]],
) -> None:
    db = database()
    insert_terms(db, given_terms)
    expected = sorted((f, v, h, p, int(pub), int(u)) for f, v, h, p, pub, u in given_terms)
    assert contents(db, "handle_terms") == expected


def test_a_taken_unique_term_fails_the_whole_statement() -> None:
    db = database()
    clash = [
        ("attr:serial", "S1", "88.1/a", "88.1", True, True),
        ("attr:serial", "S1", "88.1/b", "88.1", True, True),
    ]
    db.execute("BEGIN")
    with pytest.raises(sqlite3.IntegrityError, match="handle_terms"):
        insert_terms(db, clash)
    db.execute("ROLLBACK")
    assert contents(db, "handle_terms") == []
    for with_nul in (clash, [(f, v + "\x00", h, p, pub, u) for f, v, h, p, pub, u in clash]):
        with pytest.raises(sqlite3.IntegrityError, match="handle_terms"):
            insert_terms(db, with_nul)


@pytest.mark.parametrize(("chunk_bytes", "chunk_rows"), [(1, 1000), (25, 1000), (10**6, 3)])
def test_a_batch_past_the_bounds_goes_in_several_statements(
    monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, chunk_rows: int
) -> None:
    monkeypatch.setattr(sqlite_batch, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(sqlite_batch, "CHUNK_ROWS", chunk_rows)
    db = database()
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    batch = [(f"88.1/{n % 7}", "88.1", bytes([n]) * 10) for n in range(10)]  # 7 distinct handles
    assert insert_handles(db, "INSERT OR REPLACE", batch) == 10
    expected = {(f"88.1/{n % 7}", "88.1", bytes([n]) * 10) for n in (3, 4, 5, 6, 7, 8, 9)}
    assert set(contents(db, "handles")) == expected
    term_rows = [("url", f"v{n:02d}", f"88.1/{n}", "88.1", True, False) for n in range(10)]
    insert_terms(db, term_rows[::-1])
    assert contents(db, "handle_terms") == [(*t[:4], 1, 0) for t in term_rows]
    assert len([s for s in statements if "json_each" in s]) > 2
