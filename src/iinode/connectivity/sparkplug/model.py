"""Sparkplug B 3.0 as data (no I/O): topics, the data type table, metrics and payloads.

The :data:`DATA_TYPES` table says where each type's value travels in the
protobuf ``Metric`` (:mod:`.values` converts them); :mod:`.codec` turns whole
payloads into these dataclasses and back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Self

from iinode.errors import RemoteProtocolError

NAMESPACE = "spBv1.0"


class SparkplugError(RemoteProtocolError):
    """A Sparkplug topic or payload is malformed or breaks the specification's rules."""


class MessageType(enum.StrEnum):
    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    NDATA = "NDATA"
    DDATA = "DDATA"
    NCMD = "NCMD"
    DCMD = "DCMD"
    STATE = "STATE"

    @property
    def is_device(self) -> bool:
        return self in (MessageType.DBIRTH, MessageType.DDEATH, MessageType.DDATA, MessageType.DCMD)


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed Sparkplug topic; ``host_id`` is set only for STATE topics."""

    message_type: MessageType
    group: str = ""
    edge_node: str = ""
    device: str | None = None
    host_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> Self:
        parts = text.split("/")
        if len(parts) < 3 or parts[0] != NAMESPACE:
            raise SparkplugError(f"{text!r} is not a Sparkplug B topic")
        if parts[1] == "STATE":
            if len(parts) != 3 or not parts[2]:
                raise SparkplugError(f"STATE topic {text!r} must be spBv1.0/STATE/<host id>")
            return cls(MessageType.STATE, host_id=parts[2])
        try:
            kind = MessageType(parts[2])
        except ValueError:
            raise SparkplugError(f"unknown Sparkplug message type {parts[2]!r}") from None
        want = 5 if kind.is_device else 4
        if kind is MessageType.STATE or len(parts) != want or not all(parts[1:]):
            raise SparkplugError(f"topic {text!r} does not fit {kind.value}")
        return cls(kind, parts[1], parts[3], parts[4] if kind.is_device else None)

    def __str__(self) -> str:
        if self.message_type is MessageType.STATE:
            return f"{NAMESPACE}/STATE/{self.host_id}"
        tail = f"/{self.device}" if self.device is not None else ""
        return f"{NAMESPACE}/{self.group}/{self.message_type.value}/{self.edge_node}{tail}"

    def __post_init__(self) -> None:
        for part in (self.group, self.edge_node, self.device, self.host_id):
            if part is not None and any(c in part for c in "/+#"):
                raise SparkplugError(f"topic element {part!r} contains '/', '+' or '#'")
        if self.message_type.is_device and not self.device:
            raise SparkplugError(f"{self.message_type.value} needs a device id")


class DataType(enum.IntEnum):
    """Sparkplug B data types (specification section 6.4.16)."""

    UNKNOWN = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19
    PROPERTYSET = 20
    PROPERTYSETLIST = 21
    INT8_ARRAY = 22
    INT16_ARRAY = 23
    INT32_ARRAY = 24
    INT64_ARRAY = 25
    UINT8_ARRAY = 26
    UINT16_ARRAY = 27
    UINT32_ARRAY = 28
    UINT64_ARRAY = 29
    FLOAT_ARRAY = 30
    DOUBLE_ARRAY = 31
    BOOLEAN_ARRAY = 32
    STRING_ARRAY = 33
    DATETIME_ARRAY = 34


#: data type -> (protobuf value field, signed bit width or 0, struct code for arrays)
DATA_TYPES: dict[DataType, tuple[str, int, str]] = {
    DataType.INT8: ("int_value", 8, ""),
    DataType.INT16: ("int_value", 16, ""),
    DataType.INT32: ("int_value", 32, ""),
    DataType.INT64: ("long_value", 64, ""),
    DataType.UINT8: ("int_value", 0, ""),
    DataType.UINT16: ("int_value", 0, ""),
    DataType.UINT32: ("int_value", 0, ""),
    DataType.UINT64: ("long_value", 0, ""),
    DataType.FLOAT: ("float_value", 0, ""),
    DataType.DOUBLE: ("double_value", 0, ""),
    DataType.BOOLEAN: ("boolean_value", 0, ""),
    DataType.STRING: ("string_value", 0, ""),
    DataType.DATETIME: ("long_value", 0, ""),
    DataType.TEXT: ("string_value", 0, ""),
    DataType.UUID: ("string_value", 0, ""),
    DataType.BYTES: ("bytes_value", 0, ""),
    DataType.FILE: ("bytes_value", 0, ""),
    DataType.INT8_ARRAY: ("bytes_value", 0, "b"),
    DataType.INT16_ARRAY: ("bytes_value", 0, "h"),
    DataType.INT32_ARRAY: ("bytes_value", 0, "i"),
    DataType.INT64_ARRAY: ("bytes_value", 0, "q"),
    DataType.UINT8_ARRAY: ("bytes_value", 0, "B"),
    DataType.UINT16_ARRAY: ("bytes_value", 0, "H"),
    DataType.UINT32_ARRAY: ("bytes_value", 0, "I"),
    DataType.UINT64_ARRAY: ("bytes_value", 0, "Q"),
    DataType.FLOAT_ARRAY: ("bytes_value", 0, "f"),
    DataType.DOUBLE_ARRAY: ("bytes_value", 0, "d"),
    DataType.BOOLEAN_ARRAY: ("bytes_value", 0, "?"),
    DataType.STRING_ARRAY: ("bytes_value", 0, "s"),
    DataType.DATETIME_ARRAY: ("bytes_value", 0, "q"),
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One Sparkplug metric.  ``value`` is ``None`` when ``is_null`` (or not yet known)."""

    name: str | None = None
    value: Any = None
    datatype: DataType = DataType.UNKNOWN
    alias: int | None = None
    timestamp: int | None = None
    is_null: bool = False
    is_historical: bool = False
    is_transient: bool = False
    properties: Properties = ()

    def property(self, key: str) -> Any:
        for k, _, v in self.properties:
            if k == key:
                return v
        return None


#: A property set: ``(key, type, value)`` triples.  A ``PropertySet`` value is
#: itself such a tuple, a ``PropertySetList`` value a tuple of them.
Properties = tuple[tuple[str, DataType, Any], ...]


@dataclass(frozen=True, slots=True)
class DataSet:
    """A table: column names, one Sparkplug type per column, rows of cells (``None`` = null)."""

    columns: tuple[str, ...]
    types: tuple[DataType, ...]
    rows: tuple[tuple[Any, ...], ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.types):
            raise SparkplugError(
                f"data set has {len(self.columns)} columns but {len(self.types)} types"
            )
        for n, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise SparkplugError(
                    f"data set row {n} has {len(row)} cells for {len(self.columns)} columns"
                )


@dataclass(frozen=True, slots=True)
class Template:
    """A Sparkplug template: a definition (in NBIRTH) or an instance of one.

    A definition has ``is_definition`` set and is named by its metric (by
    convention ``_types_/<name>``); an instance names its definition in
    ``template_ref`` and carries member metrics (all of them in a birth, the
    changed ones in data messages).
    """

    metrics: tuple[Metric, ...] = ()
    template_ref: str | None = None
    is_definition: bool = False
    version: str | None = None
    parameters: Properties = ()


@dataclass(frozen=True, slots=True)
class Payload:
    """A Sparkplug payload; ``timestamp`` is milliseconds since the epoch."""

    timestamp: int | None = None
    metrics: tuple[Metric, ...] = ()
    seq: int | None = None
    uuid: str | None = None
    body: bytes | None = None
