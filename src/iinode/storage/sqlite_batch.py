"""A batch of rows written by one SQLite statement, not one statement per row.

``executemany`` binds and steps each row in turn, taking the GIL back after every
row; one ``INSERT ... SELECT ... FROM json_each(?)`` hands the whole batch to SQLite,
which then works through it without the GIL.  So another thread (the event loop
encoding the next batch of a bulk load) runs while SQLite writes this one, instead
of the two trading the GIL row by row.

A batch travels as one JSON array (text and numbers) and, for the records, one
blob that each row takes its slice of (``substr`` of a blob is a blob).  SQLite's
JSON functions end a text at an escaped NUL character, so a batch with one in its
text is written row by row instead, with the same outcome.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

_HANDLES = (
    "{verb} INTO handles (handle, prefix, data) "
    "SELECT j.value ->> 0, j.value ->> 1, substr(?2, j.value ->> 2, j.value ->> 3) "
    "FROM json_each(?1) AS j"
)
_TERMS = (
    "INSERT INTO handle_terms (field, value, handle, prefix, public, uniq) "
    "SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, "
    "j.value ->> 4, j.value ->> 5 FROM json_each(?) AS j "
    # In key order: each index page is filled once, not revisited for every row.
    "ORDER BY 1, 2, 3"
)
_ESCAPED_NUL = "\\u0000"
#: Record bytes per statement, at most about (SQLite refuses a blob past 10^9 bytes).
CHUNK_BYTES = 64 * 1024 * 1024
#: Rows per statement, at most (a term's text is at most 512 characters).
CHUNK_ROWS = 100_000


def insert_handles(
    db: sqlite3.Connection, verb: str, rows: Sequence[tuple[str, str, bytes]]
) -> int:
    """``verb`` (INSERT OR IGNORE / OR REPLACE) the rows into ``handles`` in the
    order given; the number of rows written (not counting the triggers' rows)."""
    written = 0
    start = size = 0
    for end, row in enumerate(rows, start=1):
        size += len(row[2])
        # Each statement's text and blob stay well inside SQLite's bound on a value.
        if size >= CHUNK_BYTES or end - start >= CHUNK_ROWS:
            written += _insert_handles(db, verb, rows[start:end])
            start, size = end, 0
    if start < len(rows):
        written += _insert_handles(db, verb, rows[start:])
    return written


def _insert_handles(
    db: sqlite3.Connection, verb: str, rows: Sequence[tuple[str, str, bytes]]
) -> int:
    index = []
    at = 1  # substr counts from 1
    for handle, prefix, data in rows:
        index.append((handle, prefix, at, len(data)))
        at += len(data)
    text = json.dumps(index, ensure_ascii=False, check_circular=False)
    if _ESCAPED_NUL in text:
        statement = f"{verb} INTO handles (handle, prefix, data) VALUES (?, ?, ?)"
        return db.executemany(statement, rows).rowcount
    blob = b"".join([row[2] for row in rows])
    return db.execute(_HANDLES.format(verb=verb), (text, blob)).rowcount


def insert_terms(
    db: sqlite3.Connection, rows: Sequence[tuple[str, str, str, str, bool, bool]]
) -> None:
    """Insert ``(field, value, handle, prefix, public, uniq)`` rows into ``handle_terms``,
    in key order (within each statement of ``CHUNK_ROWS`` rows)."""
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        text = json.dumps(chunk, ensure_ascii=False, check_circular=False)
        if _ESCAPED_NUL in text:
            db.executemany(
                "INSERT INTO handle_terms (field, value, handle, prefix, public, uniq) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                sorted(chunk),
            )
        else:
            db.execute(_TERMS, (text,))


__all__ = ["CHUNK_BYTES", "CHUNK_ROWS", "insert_handles", "insert_terms"]
