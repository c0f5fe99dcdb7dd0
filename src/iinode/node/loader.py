"""Reading identifier files for bulk registration: CSV and JSON Lines.

CSV: a header row with a ``handle`` column; every other column names a value
type (``URL``, ``EMAIL``, ``DESC``…) and its cells become values at indexes
1, 2, … in column order (empty cells are skipped).
JSONL: one object per line, ``{"handle": "...", "values": [<Handle.Net JSON value>, ...]}``.

Files are UTF-8 (a leading byte-order mark is skipped).  Whatever is wrong
with a line (bad UTF-8, CSV syntax, a short row, an invalid handle or value)
is a ``LoadError`` naming the file and the line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from iinode.errors import HandleError, ValueInvalid
from iinode.identifiers import HandleName, HandleValue, StringData, data_class_for, record_from_json

Row = tuple[HandleName, list[HandleValue]]
#: A row and the line of the file it starts on.
NumberedRow = tuple[int, HandleName, list[HandleValue]]


class LoadError(ValueInvalid):
    """A line of an input file is invalid; carries the line number."""

    def __init__(self, message: str, *, line: int | None = None, handle: str | None = None) -> None:
        super().__init__(message, handle=handle)
        self.line = line


def read_rows(path: Path) -> Iterator[Row]:
    for _line, handle, values in read_numbered_rows(path):
        yield handle, values


def read_numbered_rows(path: Path) -> Iterator[NumberedRow]:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        yield from _read_csv(path)
    else:
        raise ValueInvalid(f"{path.name}: unknown file type (use .csv or .jsonl)")


def _error(path: Path, line: int, message: str) -> LoadError:
    return LoadError(f"{path.name}:{line}: {message}", line=line)


def _text_lines(path: Path, raw_lines: Iterable[bytes]) -> Iterator[str]:
    """Decode line by line, so a bad byte is reported on its own line."""
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _error(
                path, number, f"not UTF-8 text (bad byte at column {exc.start + 1})"
            ) from None


def _read_csv(path: Path) -> Iterator[NumberedRow]:
    with path.open("rb") as f:
        reader = csv.reader(_text_lines(path, f), strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise _csv_error(path, 1, exc) from None
        if not header or "handle" not in [h.strip().lower() for h in header]:
            raise LoadError(f"{path.name}: the first row must name a 'handle' column", line=1)
        cols = [h.strip() for h in header]
        key = [c.lower() for c in cols].index("handle")
        types = [(i, c) for i, c in enumerate(cols) if i != key]
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _csv_error(path, start, exc) from None
            if not cells:
                continue
            if key >= len(cells):
                raise _error(
                    path, start, f"{len(cells)} cells, but the handle is in column {key + 1}"
                )
            try:
                handle = HandleName.parse(cells[key].strip())
                values = []
                for n, (i, vtype) in enumerate(types, start=1):
                    cell = cells[i] if i < len(cells) else ""
                    if cell:
                        cls = data_class_for(vtype) or StringData
                        values.append(HandleValue(n, vtype, cls.from_json(cell)))
            except HandleError as exc:
                raise _error(path, start, exc.message) from None
            yield start, handle, values


def _csv_error(path: Path, line: int, exc: csv.Error) -> LoadError:
    """A CSV syntax error, at the line its row starts on (a quote may span lines)."""
    if "unexpected end of data" in str(exc):
        return _error(path, line, "not valid CSV: a quote opened in this row is never closed")
    return _error(path, line, f"not valid CSV: {exc}")


def _read_jsonl(path: Path) -> Iterator[NumberedRow]:
    with path.open("rb") as f:
        for line, text in enumerate(_text_lines(path, f), start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                if not isinstance(obj, dict) or "handle" not in obj:
                    raise ValueInvalid("each line must be an object with 'handle' and 'values'")
                handle = HandleName.parse(str(obj["handle"]))
                values = list(record_from_json(obj.get("values", [])))
            except json.JSONDecodeError as exc:
                raise _error(path, line, f"not JSON ({exc.msg})") from None
            except RecursionError:
                raise _error(path, line, "JSON nested too deeply") from None
            except HandleError as exc:
                raise _error(path, line, exc.message) from None
            yield line, handle, values


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)
