"""Reading identifier files for bulk registration: CSV and JSON Lines.

CSV: a header row with a ``handle`` column; every other column names a value
type (``URL``, ``EMAIL``, ``DESC``…) and its cells become values at indexes
1, 2, … in column order (empty cells are skipped).  Read against a template
(:class:`TemplateColumns`), a column named after one of its attributes fills that
attribute (at its index, as text) and every row gets the template link; the
other columns name value types as without a template, except that a column
named like an attribute (lower case) that the template lacks is an error (a
misspelt attribute, not a value).
JSONL: one object per line, ``{"handle": "...", "values": [<Handle.Net JSON value>, ...]}``.

Files are UTF-8 (a leading byte-order mark is skipped).  Whatever is wrong
with a line (bad UTF-8, CSV syntax, a short row, an invalid handle or value)
is a ``LoadError`` naming the file and the line.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from iinode.errors import HandleError, ValueInvalid
from iinode.identifiers import (
    VALUE_TYPES,
    HandleName,
    HandleValue,
    StringData,
    ValueData,
    data_class_for,
    record_from_json,
)
from iinode.storage.search import TEMPLATE_LINK_INDEX, TEMPLATE_LINK_TYPE

Row = tuple[HandleName, list[HandleValue]]
#: How attribute names are written (``node.templates``).
_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: A row and the line of the file it starts on.
NumberedRow = tuple[int, HandleName, list[HandleValue]]


class LoadError(ValueInvalid):
    """A line of an input file is invalid; carries the line number."""

    def __init__(self, message: str, *, line: int | None = None, handle: str | None = None) -> None:
        super().__init__(message, handle=handle)
        self.line = line


@dataclass(frozen=True, slots=True)
class TemplateColumns:
    """A template as CSV rows are read against it: its handle (the link every row
    gets) and its attributes' indexes by name."""

    template: str
    indexes: dict[str, int]


def read_rows(path: Path) -> Iterator[Row]:
    for _line, handle, values in read_numbered_rows(path):
        yield handle, values


def read_numbered_rows(
    path: Path, template: TemplateColumns | None = None
) -> Iterator[NumberedRow]:
    """The rows of a CSV or JSON Lines file; CSV columns read against ``template`` if given
    (JSON Lines values carry their own indexes and link)."""
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from _read_jsonl(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        yield from _read_csv(path, template)
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


def _columns(
    path: Path, cols: list[str], key: int, template: TemplateColumns | None
) -> list[tuple[int, int, str, Callable[[str], ValueData]]]:
    """(cell position, value index, value type, cell reader) of every column but the
    handle: a template's attribute at its index, the others at 1, 2, … in order."""
    indexes = {} if template is None else template.indexes
    out = []
    plain = 0
    for i, c in enumerate(cols):
        if i == key:
            continue
        index = indexes.get(c)
        if index is None:
            misspelt = _ATTRIBUTE_NAME.fullmatch(c) and c.upper() not in VALUE_TYPES
            if template is not None and misspelt:
                raise LoadError(
                    f"{path.name}: column {c!r} is not an attribute of {template.template} "
                    "(other columns name value types, such as URL or DESC)",
                    line=1,
                )
            plain += 1
            index = plain
        out.append((i, index, c, _reader(c)))
    return out


def _reader(vtype: str) -> Callable[[str], ValueData]:
    """How a cell of a ``vtype`` column becomes data: a text type's cell is its text (no
    JSON form to decode); others read the cell as their JSON form."""
    cls = data_class_for(vtype) or StringData
    return cls if issubclass(cls, StringData) else cls.from_json


def _read_csv(path: Path, template: TemplateColumns | None) -> Iterator[NumberedRow]:
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
        columns = _columns(path, cols, key, template)
        link = (
            []
            if template is None
            else [
                HandleValue(TEMPLATE_LINK_INDEX, TEMPLATE_LINK_TYPE, StringData(template.template))
            ]
        )
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
                values = list(link)
                for i, index, vtype, make in columns:
                    cell = cells[i] if i < len(cells) else ""
                    if cell:
                        values.append(HandleValue(index, vtype, make(cell)))
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
