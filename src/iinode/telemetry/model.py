"""Readings, tags and equipment: the telemetry data model (stdlib only).

A :class:`Reading` is one value of one tag of one piece of equipment at one
instant.  Equipment is known by its identifier, a handle such as
``88.118.8/PRESS-01``; timestamps are integer microseconds since the Unix epoch
(UTC), which is what the store keeps and what Parquet/DuckDB call
``TIMESTAMP WITH TIME ZONE`` at microsecond precision.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from iinode.errors import ValueInvalid
from iinode.identifiers import HandleName

#: The Python types a reading's value may have.
Value = bool | int | float | str

#: The integers a reading may hold: every Int8 .. Int64 and UInt8 .. UInt64 value.
INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1


def now_us() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch for an aware ``datetime`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    """The aware UTC ``datetime`` for microseconds since the epoch."""
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


class Quality(enum.IntEnum):
    """Data quality, coded as OPC DA / Sparkplug quality bytes.

    The two high bits of the byte classify it (``11`` good, ``01`` uncertain,
    ``00`` bad); unknown codes are accepted and keep their number.
    """

    BAD = 0
    UNCERTAIN = 64
    GOOD = 192

    @classmethod
    def _missing_(cls, value: object) -> Quality | None:
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"{cls._classify(value).name}_{value}"
        member._value_ = value
        return member

    @staticmethod
    def _classify(value: int) -> Quality:
        top = value & 0xC0
        return Quality.GOOD if top == 0xC0 else Quality.UNCERTAIN if top == 0x40 else Quality.BAD

    @property
    def is_good(self) -> bool:
        return self._classify(int(self)) is Quality.GOOD


class DataType(enum.StrEnum):
    """The type of a tag's values."""

    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"

    def accepts(self, value: object) -> bool:
        """True if ``value`` is a valid value of this type (ints are valid floats)."""
        kind = type(value)
        if self is DataType.FLOAT:
            return kind is float or kind is int
        if self is DataType.INT:
            return kind is int
        if self is DataType.BOOL:
            return kind is bool
        return kind is str


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one tag of one piece of equipment.

    Construction checks shapes only (cheap, done for every point); whether the
    equipment and tag exist and the value fits the tag is the validator's job.
    """

    equipment: str
    tag: str
    time_us: int
    #: ``None`` only with a quality that is not good: the source said the value is bad
    #: and gave none (an OPC UA bad status without a value).
    value: Value | None
    quality: Quality = Quality.GOOD

    def __post_init__(self) -> None:
        if type(self.equipment) is not str or "/" not in self.equipment:
            raise ValueInvalid(f"equipment {self.equipment!r} is not a handle prefix/suffix")
        if type(self.tag) is not str or not self.tag:
            raise ValueInvalid(f"tag {self.tag!r} must be a non-empty string")
        if type(self.time_us) is not int:
            raise ValueInvalid(f"time_us must be an int, not {type(self.time_us).__name__}")
        if type(self.quality) is not Quality:
            object.__setattr__(self, "quality", Quality(self.quality))
        if type(self.value) is int and not INT_MIN <= self.value <= INT_MAX:
            raise ValueInvalid(f"value of {self.tag!r} is outside -2^63 .. 2^64-1")
        if not isinstance(self.value, bool | int | float | str):
            if self.value is not None:
                raise ValueInvalid(f"value of {self.tag!r} has unsupported type {type(self.value)}")
            if self.quality.is_good:
                raise ValueInvalid(f"{self.tag!r}: a reading without a value cannot be good")

    @property
    def prefix(self) -> str:
        """The enterprise prefix of the equipment (``88.118.8``)."""
        return self.equipment.partition("/")[0]


class EquipmentKind(enum.StrEnum):
    """What an equipment identifier names."""

    LINE = "line"
    MACHINE = "machine"
    SENSOR = "sensor"
    CONTROLLER = "controller"


@dataclass(frozen=True, slots=True)
class Tag:
    """A named signal of a piece of equipment."""

    name: str
    data_type: DataType = DataType.FLOAT
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueInvalid("tag name must be a non-empty string")
        object.__setattr__(self, "data_type", DataType(self.data_type))

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "data_type": self.data_type.value,
            "unit": self.unit,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tag:
        try:
            return cls(
                name=str(data["name"]),
                data_type=DataType(data.get("data_type", "float")),
                unit=str(data.get("unit", "")),
                description=str(data.get("description", "")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueInvalid(f"invalid tag {data!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach a piece of equipment: a protocol name, an address and options.

    ``protocol`` is one of ``sparkplug``, ``mqtt-json``, ``opcua``, ``modbus`` or
    ``none``; ``address`` is protocol-specific (``opc.tcp://host:4840``,
    ``host:502``, a Sparkplug ``group/edge-node/device`` path).  ``details`` keeps
    the other members of the JSON object as given (JSON values): the OPC UA and
    Modbus connection schemas (``endpoint``/``nodes``, ``host``/``registers`` ...)
    live there and are checked by ``iinode.connectivity.endpoints``.
    """

    protocol: str = "none"
    address: str = ""
    options: tuple[tuple[str, str], ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.details,
            "protocol": self.protocol,
            "address": self.address,
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Connection:
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise ValueInvalid("connection options must be an object")
        details = {str(k): v for k, v in data.items() if k not in _CONNECTION_KEYS}
        return cls(
            protocol=str(data.get("protocol", "none")),
            address=str(data.get("address", "")),
            options=tuple(sorted((str(k), str(v)) for k, v in options.items())),
            details=details,
        )


_CONNECTION_KEYS = frozenset({"protocol", "address", "options"})


@dataclass(frozen=True, slots=True)
class Equipment:
    """A machine, line, sensor or controller, named by an identifier."""

    id: str
    kind: EquipmentKind = EquipmentKind.MACHINE
    model: str = ""
    vendor: str = ""
    line: str | None = None
    location: str = ""
    connection: Connection = field(default_factory=Connection)
    tags: tuple[Tag, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", str(HandleName.parse(self.id)))
        object.__setattr__(self, "kind", EquipmentKind(self.kind))
        if self.line is not None:
            object.__setattr__(self, "line", str(HandleName.parse(self.line)))
        names = [t.name for t in self.tags]
        if len(set(names)) != len(names):
            raise ValueInvalid(f"equipment {self.id} has duplicate tag names", handle=self.id)

    @property
    def prefix(self) -> str:
        return self.id.partition("/")[0]

    def tag(self, name: str) -> Tag | None:
        for tag in self.tags:
            if tag.name == name:
                return tag
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "model": self.model,
            "vendor": self.vendor,
            "line": self.line,
            "location": self.location,
            "connection": self.connection.to_json(),
            "tags": [t.to_json() for t in self.tags],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Equipment:
        try:
            return cls(
                id=str(data["id"]),
                kind=EquipmentKind(data.get("kind", "machine")),
                model=str(data.get("model", "")),
                vendor=str(data.get("vendor", "")),
                line=None if data.get("line") is None else str(data["line"]),
                location=str(data.get("location", "")),
                connection=Connection.from_json(data.get("connection") or {}),
                tags=tuple(Tag.from_json(t) for t in data.get("tags") or ()),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueInvalid(f"invalid equipment: {exc}") from None
