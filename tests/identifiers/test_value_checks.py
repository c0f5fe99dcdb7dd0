"""Bad value fields are refused through every way of building a HandleValue, also
after the same type text was seen valid (value types are checked once per process)."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

import pytest

from iinode.errors import RemoteProtocolError, ValueInvalid
from iinode.identifiers import HandleValue, StringData, record_from_json
from iinode.identifiers import values as values_module

GOOD = HandleValue(1, "DESC", StringData("fine"))

#: (index, type, ttl, timestamp) that must be refused, and the error's words.
BAD_FIELDS = [
    ((0, "DESC", 86400, 0), "out of range"),
    ((2**31, "DESC", 86400, 0), "out of range"),
    ((-1, "DESC", 86400, 0), "out of range"),
    ((1, "DE\x01SC", 86400, 0), "control character"),
    ((1, "DESC\n", 86400, 0), "control character"),
    ((1, "T" * 1025, 86400, 0), "at most 1024 bytes"),
    ((1, "é" * 513, 86400, 0), "at most 1024 bytes"),
    ((1, "DESC", 2**31, 0), "TTL"),
    ((1, "DESC", -(2**31) - 1, 0), "TTL"),
    ((1, "DESC", 86400, -1), "timestamp"),
    ((1, "DESC", 86400, 2**32), "timestamp"),
]


def _direct(index: object, vtype: object, ttl: int, ts: int) -> HandleValue:
    return HandleValue(index, vtype, StringData("x"), ttl, timestamp=ts)  # type: ignore[arg-type]


def _keywords(index: object, vtype: object, ttl: int, ts: int) -> HandleValue:
    return HandleValue(
        index=index,  # type: ignore[arg-type]
        type=vtype,  # type: ignore[arg-type]
        data=StringData("x"),
        ttl=ttl,
        timestamp=ts,
    )


def _replaced(index: object, vtype: object, ttl: int, ts: int) -> HandleValue:
    return dataclasses.replace(GOOD, index=index, type=vtype, ttl=ttl, timestamp=ts)


def _stamped(index: object, vtype: object, ttl: int, ts: int) -> HandleValue:
    # Only the timestamp is given here; the other fields come from a valid value.
    if (index, vtype, ttl) != (1, "DESC", 86400):
        pytest.skip("stamped() sets only the timestamp")
    return GOOD.stamped(ts)


def _from_json(index: object, vtype: object, ttl: int, ts: int) -> HandleValue:
    (value,) = record_from_json(
        [{"index": index, "type": vtype, "data": "x", "ttl": ttl, "timestamp": ts}]
    )
    return value


def _from_wire(index: object, vtype: object, ttl: int, ts: int) -> HandleValue:
    assert isinstance(index, int)
    assert isinstance(vtype, str)
    if not -(2**31) <= ttl < 2**31 or not 0 <= ts < 2**32:
        pytest.skip("the wire form cannot carry this TTL or timestamp")
    raw_type = vtype.encode()
    head = struct.pack(">IIBiBI", index % 2**32, ts, 0, ttl, 0x0E, len(raw_type))
    return HandleValue.from_wire(head + raw_type + b"\x00\x00\x00\x01x\x00\x00\x00\x00")


CONSTRUCTORS: list[Callable[[object, object, int, int], HandleValue]] = [
    _direct,
    _keywords,
    _replaced,
    _stamped,
    _from_json,
    _from_wire,
]


@pytest.mark.parametrize("build", CONSTRUCTORS)
@pytest.mark.parametrize(("fields", "words"), BAD_FIELDS)
def test_bad_fields_are_refused_by_every_constructor(
    build: Callable[[object, object, int, int], HandleValue],
    fields: tuple[object, object, int, int],
    words: str,
) -> None:
    # The same type text, valid, built first: a remembered type must not pass a bad one.
    HandleValue(1, "DESC", StringData("x"))
    error = RemoteProtocolError if build is _from_wire else ValueInvalid
    with pytest.raises(error, match=words):
        build(*fields)


@pytest.mark.parametrize("build", CONSTRUCTORS)
def test_good_fields_build_the_same_value_every_way(
    build: Callable[[object, object, int, int], HandleValue],
) -> None:
    value = build(7, "DESC", 3600, 1_600_000_000)
    assert (value.index, value.type, value.ttl, value.timestamp) == (7, "DESC", 3600, 1600000000)


@pytest.mark.parametrize("index", ["1", 1.0, None, b"\x01"])
def test_an_index_that_is_not_an_integer_is_refused(index: object) -> None:
    with pytest.raises(ValueInvalid, match="out of range"):
        HandleValue(index, "DESC", StringData("x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("vtype", [None, 5, b"DESC"])
def test_a_type_that_is_not_text_is_refused(vtype: object) -> None:
    with pytest.raises(ValueInvalid, match="text"):
        HandleValue(1, vtype, StringData("x"))  # type: ignore[arg-type]


class _Text(str):
    """A str subclass: equal to a valid type text, but its own class."""


def test_a_str_subclass_is_checked_and_not_remembered() -> None:
    HandleValue(1, "DESC", StringData("x"))
    assert HandleValue(1, _Text("DESC"), StringData("x")).type == "DESC"
    assert not any(type(t) is not str for t in values_module._VALID_TYPES)
    with pytest.raises(ValueInvalid, match="control character"):
        HandleValue(1, _Text("DE\x00SC"), StringData("x"))


def test_the_remembered_types_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(values_module, "_VALID_TYPES", set())
    monkeypatch.setattr(values_module, "_VALID_TYPES_KEPT", 8)
    for n in range(20):
        HandleValue(1, f"T{n}", StringData("x"))
    assert len(values_module._VALID_TYPES) == 8
    # Types past the bound are still checked every time.
    with pytest.raises(ValueInvalid, match="control character"):
        HandleValue(1, "T19\x1f", StringData("x"))
