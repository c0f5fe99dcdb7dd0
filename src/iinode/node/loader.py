"""Reading identifier files for bulk registration: CSV and JSON Lines.

CSV: a header row with a ``handle`` column; every other column names a value
type (``URL``, ``EMAIL``, ``DESC``…) and its cells become values at indexes
1, 2, … in column order (empty cells are skipped).
JSONL: one object per line, ``{"handle": "...", "values": [<Handle.Net JSON value>, ...]}``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from iinode.errors import HandleError, ValueInvalid
from iinode.identifiers import HandleName, HandleValue, StringData, data_class_for, record_from_json

Row = tuple[HandleName, list[HandleValue]]


class LoadError(ValueInvalid):
    """A line of an input file is invalid; carries the line number."""


def read_rows(path: Path) -> Iterator[Row]:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        yield from _read_csv(path)
    else:
        raise ValueInvalid(f"{path.name}: unknown file type (use .csv or .jsonl)")


def _read_csv(path: Path) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "handle" not in [h.strip().lower() for h in header]:
            raise LoadError(f"{path.name}: the first row must name a 'handle' column")
        cols = [h.strip() for h in header]
        key = [c.lower() for c in cols].index("handle")
        types = [(i, c) for i, c in enumerate(cols) if i != key]
        for line, cells in enumerate(reader, start=2):
            if not cells:
                continue
            try:
                handle = HandleName.parse(cells[key].strip())
                values = []
                for n, (i, vtype) in enumerate(types, start=1):
                    cell = cells[i] if i < len(cells) else ""
                    if cell:
                        cls = data_class_for(vtype) or StringData
                        values.append(HandleValue(n, vtype, cls.from_json(cell)))
            except HandleError as exc:
                raise LoadError(f"{path.name}:{line}: {exc.message}") from None
            yield handle, values


def _read_jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                if not isinstance(obj, dict) or "handle" not in obj:
                    raise ValueInvalid("each line must be an object with 'handle' and 'values'")
                handle = HandleName.parse(str(obj["handle"]))
                values = list(record_from_json(obj.get("values", [])))
            except json.JSONDecodeError as exc:
                raise LoadError(f"{path.name}:{line}: not JSON ({exc.msg})") from None
            except HandleError as exc:
                raise LoadError(f"{path.name}:{line}: {exc.message}") from None
            yield handle, values


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)
