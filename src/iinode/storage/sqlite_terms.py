"""The SQLite store's search index: the ``handle_terms`` table and how it is kept.

Layout (``storage.search`` says what a term is)::

    handle_terms (field, value, handle, prefix, public, uniq)
        PRIMARY KEY (field, value, handle), WITHOUT ROWID
    handle_terms_unique UNIQUE (prefix, field, value) WHERE uniq = 1

A record's terms are a function of its bytes alone, so its old terms are deleted
through the primary key, each ``(field, value, handle)`` recomputed from the old
bytes: no index by handle is kept (it cost one more B-tree insert per term).

Writes keep the index in their own transaction:

* ``modify`` (and a bulk load not given terms) through TEMP triggers of the writer
  connection, which call its ``iinode_terms`` function (the file itself needs none).
  A trigger's statements take the conflict policy of the statement firing them (a
  bulk load's OR IGNORE / OR REPLACE), so a taken unique value is refused by
  RAISE(ABORT), which no policy overrides, before the terms are inserted.  With
  ``recursive_triggers`` on, the row an OR REPLACE removes fires the delete trigger,
  which removes that row's terms.
* a bulk load given its rows' terms (:func:`bulk_with_terms`) drops the insert and
  update triggers for its transaction (a rollback restores them) and writes the terms
  itself, after the rows and in key order: no Python call, nor trigger check, per row;
  rows and terms each go in one statement (``storage.sqlite_batch``).

A file written before this layout (it has the ``handle_terms_by_handle`` index, or
no term table at all) has its index rebuilt from the records when opened
(:func:`open_terms`); an older program reopening the file recreates that index,
so the next open rebuilds again and the two never disagree for long.
"""

from __future__ import annotations

import contextlib
import sqlite3

from iinode.storage.search import BulkTerms, terms_json
from iinode.storage.sqlite_batch import insert_handles, insert_terms

TERMS_TABLE = """
CREATE TABLE IF NOT EXISTS handle_terms (
    field  TEXT NOT NULL,
    value  TEXT NOT NULL,
    handle TEXT NOT NULL,
    prefix TEXT NOT NULL,
    public INTEGER NOT NULL,
    uniq   INTEGER NOT NULL,
    PRIMARY KEY (field, value, handle)
) WITHOUT ROWID
"""
TERMS_UNIQUE = """
CREATE UNIQUE INDEX IF NOT EXISTS handle_terms_unique
    ON handle_terms (prefix, field, value) WHERE uniq = 1
"""
#: The index by handle of the earlier layout (its presence means: rebuild).
_OLD_INDEX = "handle_terms_by_handle"

#: Terms of a record's bytes as rows of ``json_each`` (``$[0]`` field, ``$[1]`` value,
#: ``$[2]`` public, ``$[3]`` unique).
_EACH = "json_each(iinode_terms({data})) AS t"
_FIELD = "json_extract(t.value, '$[0]')"
_VALUE = "json_extract(t.value, '$[1]')"


def _delete_terms(row: str) -> str:
    """Delete the terms of ``row`` (``old``) through the primary key."""
    return (
        f"DELETE FROM handle_terms WHERE handle = {row}.handle AND (field, value) IN "
        f"(SELECT {_FIELD}, {_VALUE} FROM {_EACH.format(data=f'{row}.data')});"
    )


#: Refuse ``new``'s unique values held by another handle under its prefix; then index it.
_INDEX_NEW = f"""
    SELECT RAISE(ABORT, 'handle_terms: a unique attribute value is taken under the prefix')
        FROM {_EACH.format(data="new.data")}
        WHERE json_extract(t.value, '$[3]') = 1 AND EXISTS (
            SELECT 1 FROM handle_terms AS u
            WHERE u.prefix = new.prefix AND u.field = {_FIELD} AND u.value = {_VALUE}
              AND u.uniq = 1 AND u.handle <> new.handle);
    INSERT INTO handle_terms (field, value, handle, prefix, public, uniq)
        SELECT {_FIELD}, {_VALUE}, new.handle, new.prefix,
               json_extract(t.value, '$[2]'), json_extract(t.value, '$[3]')
        FROM {_EACH.format(data="new.data")};"""


def _trigger(event: str, body: str) -> str:
    return (
        f"CREATE TEMP TRIGGER IF NOT EXISTS handles_terms_{event.lower()} "
        f"AFTER {event} ON main.handles\nBEGIN{body}\nEND"
    )


#: The triggers a bulk load given terms drops for its transaction.
_WRITE_TRIGGERS = (
    _trigger("INSERT", _INDEX_NEW),
    _trigger("UPDATE", "\n    " + _delete_terms("old") + _INDEX_NEW),
)
#: The writer connection's own objects (TEMP: made on every open, never in the file).
CONNECTION_SCHEMA = ";\n".join(
    (*_WRITE_TRIGGERS, _trigger("DELETE", "\n    " + _delete_terms("old")))
)

_BACKFILL = """
INSERT OR IGNORE INTO handle_terms (field, value, handle, prefix, public, uniq)
    SELECT json_extract(t.value, '$[0]'), json_extract(t.value, '$[1]'), h.handle, h.prefix,
           json_extract(t.value, '$[2]'), json_extract(t.value, '$[3]')
    FROM handles AS h, json_each(iinode_terms(h.data)) AS t
"""

#: Handles per ``IN (...)`` probe (below SQLite's bound-parameter limit).
_BATCH = 500


class _TermsOnce:
    """``terms_json`` remembering its last answer: a trigger asks twice per record
    (the unique check, then the insert)."""

    def __init__(self) -> None:
        self._last: tuple[bytes, str | None] = (b"", None)

    def __call__(self, data: bytes) -> str | None:
        last = self._last
        if data is last[0] or data == last[0]:
            return last[1]
        answer = terms_json(data)
        self._last = (data, answer)
        return answer


def open_terms(db: sqlite3.Connection) -> None:
    """Ready the writer connection ``db`` to keep the index: its term function, its
    triggers, and the table, built (or rebuilt, from an earlier layout) from the
    records when it is not in this layout."""
    db.create_function("iinode_terms", 1, _TermsOnce(), deterministic=True)
    db.execute("PRAGMA recursive_triggers = ON")  # an OR REPLACE's removal fires DELETE
    if not _needs_rebuild(db):  # the common open takes no write lock
        db.executescript(CONNECTION_SCHEMA + ";")
        return
    db.execute("BEGIN IMMEDIATE")  # one process rebuilds; the others then find it done
    try:
        if _needs_rebuild(db):
            db.execute(f"DROP INDEX IF EXISTS {_OLD_INDEX}")
            db.execute("DROP TABLE IF EXISTS handle_terms")
            db.execute(TERMS_TABLE)
            db.execute(TERMS_UNIQUE)
            db.execute(_BACKFILL)
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    db.executescript(CONNECTION_SCHEMA + ";")


def _needs_rebuild(db: sqlite3.Connection) -> bool:
    """No term table yet, or one of the earlier layout."""
    found = {
        name
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE name IN ('handle_terms', ?)", (_OLD_INDEX,)
        )
    }
    return "handle_terms" not in found or _OLD_INDEX in found


def bulk_with_terms(
    db: sqlite3.Connection,
    verb: str,
    batch: list[tuple[str, str, bytes]],
    terms: BulkTerms,
    overwrite: bool,
) -> int:
    """Write a batch (distinct handles) and the given terms of the rows written, the
    insert and update triggers dropped meanwhile; in the caller's transaction (whose
    rollback brings the triggers back)."""
    for event in ("insert", "update"):
        db.execute(f"DROP TRIGGER temp.handles_terms_{event}")
    # OR REPLACE writes every row (the delete trigger removes a replaced row's terms);
    # OR IGNORE skips the handles already held, whose terms stay.
    kept = set() if overwrite else _held(db, [r[0] for r in batch])
    written = insert_handles(db, verb, batch)
    rows = [
        (f, v, handle, prefix, p, u)
        for handle, prefix, _ in batch
        if handle not in kept
        for f, v, p, u in terms.get(handle, ())
    ]
    insert_terms(db, rows)  # in key order
    for trigger in _WRITE_TRIGGERS:
        db.execute(trigger)
    return written


def _held(db: sqlite3.Connection, names: list[str]) -> set[str]:
    """Which of ``names`` the table holds: one range probe when none lies between the
    least and the greatest (a load of new names), else a lookup per name."""
    if not names:
        return set()
    low, high = min(names), max(names)
    between = db.execute(
        "SELECT 1 FROM handles WHERE handle >= ? AND handle <= ? LIMIT 1", (low, high)
    ).fetchone()
    if between is None:
        return set()
    held: set[str] = set()
    for start in range(0, len(names), _BATCH):
        chunk = names[start : start + _BATCH]
        marks = ",".join("?" * len(chunk))
        found = db.execute(f"SELECT handle FROM handles WHERE handle IN ({marks})", chunk)
        held.update(r[0] for r in found)
    return held


def rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
            db.execute("ROLLBACK")


__all__ = ["CONNECTION_SCHEMA", "bulk_with_terms", "open_terms", "rollback"]
