"""Modbus register maps (sans-IO): which registers hold which equipment tag, and how.

A :class:`RegisterPoint` names a table (holding/input registers, coils,
discrete inputs), a start address, a data type spanning one to four 16-bit
registers, the byte order inside a register and the word order across
registers, and a linear scaling ``value * scale + offset`` or, for integer
types, labels that turn codes into text (``0 -> "running"``).  A
:class:`RegisterMap` checks the points (no overlaps, addresses in range,
types that fit the table) and plans the fewest read requests.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from iinode.errors import ValueInvalid
from iinode.telemetry.model import Value

MAX_REGISTERS = 125
MAX_BITS = 2000


class Table(enum.StrEnum):
    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)


class RegisterType(enum.StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT64 = "float64"


#: type -> (registers, struct code)
LAYOUT: dict[RegisterType, tuple[int, str]] = {
    RegisterType.BOOL: (1, ""),
    RegisterType.INT16: (1, "h"),
    RegisterType.UINT16: (1, "H"),
    RegisterType.INT32: (2, "i"),
    RegisterType.UINT32: (2, "I"),
    RegisterType.FLOAT32: (2, "f"),
    RegisterType.INT64: (4, "q"),
    RegisterType.UINT64: (4, "Q"),
    RegisterType.FLOAT64: (4, "d"),
}


@dataclass(frozen=True, slots=True)
class RegisterPoint:
    equipment: str
    tag: str
    table: Table
    address: int
    type: RegisterType = RegisterType.UINT16
    scale: float = 1.0
    offset: float = 0.0
    byte_order: str = "big"
    word_order: str = "big"
    #: ``(code, text)`` pairs: the register holds a code, the tag gets the text.
    labels: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", Table(self.table))
        object.__setattr__(self, "type", RegisterType(self.type))
        where = f"{self.equipment} {self.tag}"
        if self.labels:
            if LAYOUT[self.type][1] in ("", "f", "d") or self.scaled:
                raise ValueInvalid(f"{where}: labels need an unscaled integer type")
            codes = [c for c, _ in self.labels]
            texts = [t for _, t in self.labels]
            if len(set(codes)) != len(codes) or len(set(texts)) != len(texts):
                raise ValueInvalid(f"{where}: label codes and texts must be unique")
        if self.table.is_bits != (self.type is RegisterType.BOOL):
            raise ValueInvalid(f"{where}: {self.type.value} does not fit {self.table.value}")
        if self.address < 0 or self.address + self.width > 65536:
            raise ValueInvalid(f"{where}: address {self.address} is out of range 0..65535")
        if self.byte_order not in ("big", "little") or self.word_order not in ("big", "little"):
            raise ValueInvalid(f"{where}: byte and word order must be 'big' or 'little'")
        if self.scale == 0:
            raise ValueInvalid(f"{where}: scale must not be 0")

    @property
    def width(self) -> int:
        return LAYOUT[self.type][0]

    @property
    def scaled(self) -> bool:
        return self.scale != 1.0 or self.offset != 0.0

    def decode(self, words: Sequence[int] | Sequence[bool]) -> Value:
        """The tag value of this point's registers (or bit)."""
        if self.type is RegisterType.BOOL:
            return bool(words[0])
        regs = [int(w) & 0xFFFF for w in words[: self.width]]
        if self.word_order == "little":
            regs.reverse()
        raw = b"".join(r.to_bytes(2, "big" if self.byte_order == "big" else "little") for r in regs)
        (number,) = struct.unpack(">" + LAYOUT[self.type][1], raw)
        if self.labels:
            return dict(self.labels).get(number, str(number))
        if self.scaled:
            return float(number) * self.scale + self.offset
        return number  # type: ignore[no-any-return]

    def encode(self, value: Value) -> list[int]:
        """The registers (or bit) that hold ``value``: the inverse of :meth:`decode`."""
        if self.type is RegisterType.BOOL:
            return [int(bool(value))]
        if isinstance(value, str) and self.labels:
            codes = {text: code for code, text in self.labels}
            if value not in codes:
                raise ValueInvalid(f"{self.equipment} {self.tag}: {value!r} has no label code")
            value = codes[value]
        if isinstance(value, str):
            raise ValueInvalid(f"{self.equipment} {self.tag}: text cannot go in registers")
        number: float = (float(value) - self.offset) / self.scale if self.scaled else value
        code = LAYOUT[self.type][1]
        if code not in "fd":
            number = round(number)
        try:
            raw = struct.pack(">" + code, number)
        except struct.error as exc:
            raise ValueInvalid(
                f"{self.equipment} {self.tag}: {value!r} does not fit: {exc}"
            ) from None
        order: Literal["big", "little"] = "big" if self.byte_order == "big" else "little"
        regs = [int.from_bytes(raw[i : i + 2], order) for i in range(0, len(raw), 2)]
        if self.word_order == "little":
            regs.reverse()
        return regs


@dataclass(frozen=True, slots=True)
class ReadRequest:
    table: Table
    address: int
    count: int
    points: tuple[RegisterPoint, ...]


class RegisterMap:
    """A validated set of points and the read requests that cover them."""

    def __init__(self, points: Sequence[RegisterPoint]) -> None:
        used: dict[tuple[Table, int], RegisterPoint] = {}
        for p in points:
            for a in range(p.address, p.address + p.width):
                other = used.setdefault((p.table, a), p)
                if other is not p:
                    raise ValueInvalid(
                        f"{p.equipment} {p.tag} overlaps {other.equipment} {other.tag} "
                        f"at {p.table.value} {a}"
                    )
        self.points = tuple(sorted(points, key=lambda p: (p.table, p.address)))
        self.requests = self._plan()

    def _plan(self) -> tuple[ReadRequest, ...]:
        out: list[ReadRequest] = []
        group: list[RegisterPoint] = []

        def close() -> None:
            if group:
                start = group[0].address
                end = max(p.address + p.width for p in group)
                out.append(ReadRequest(group[0].table, start, end - start, tuple(group)))
                group.clear()

        for p in self.points:
            if group:
                limit = MAX_BITS if p.table.is_bits else MAX_REGISTERS
                gap = p.address - max(q.address + q.width for q in group)
                if (
                    p.table != group[0].table
                    or gap > 8
                    or p.address + p.width - group[0].address > limit
                ):
                    close()
            group.append(p)
        close()
        return tuple(out)

    @staticmethod
    def decode(
        request: ReadRequest, values: Sequence[int] | Sequence[bool]
    ) -> list[tuple[RegisterPoint, Value]]:
        if len(values) < request.count:
            raise ValueInvalid(
                f"{request.table.value} {request.address}: got {len(values)} values, "
                f"expected {request.count}"
            )
        return [
            (
                p,
                p.decode(
                    values[p.address - request.address : p.address - request.address + p.width]
                ),
            )
            for p in request.points
        ]
