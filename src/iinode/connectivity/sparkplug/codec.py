"""Sparkplug B 3.0 topics and payloads (sans-IO): bytes in, dataclasses out, and back.

Topics: ``spBv1.0/<group>/<type>/<edge node>[/<device>]`` and
``spBv1.0/STATE/<host id>``.  Payloads are the protobuf ``Payload`` of
:mod:`.schema`; metric values are converted by the :data:`DATA_TYPES` table.
Anything that does not parse raises :class:`SparkplugError`.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Any, Self

from google.protobuf.message import DecodeError

from iinode.connectivity.sparkplug.schema import message_classes
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

_BY_CODE = {int(d): d for d in DataType}
_UNSIGNED_BITS = {DataType.UINT8: 8, DataType.UINT16: 16, DataType.UINT32: 32, DataType.UINT64: 64}


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
    properties: tuple[tuple[str, DataType, Any], ...] = ()

    def property(self, key: str) -> Any:
        for k, _, v in self.properties:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class DataSet:
    columns: tuple[str, ...]
    types: tuple[DataType, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class Payload:
    """A Sparkplug payload; ``timestamp`` is milliseconds since the epoch."""

    timestamp: int | None = None
    metrics: tuple[Metric, ...] = ()
    seq: int | None = None
    uuid: str | None = None
    body: bytes | None = None


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >> (bits - 1) else raw


def _pack_array(code: str, dtype: DataType, value: Any) -> bytes:
    items = list(value)
    if code == "?":
        bits = bytearray((len(items) + 7) // 8)
        for i, flag in enumerate(items):
            if flag:
                bits[i // 8] |= 0x80 >> (i % 8)
        return struct.pack("<I", len(items)) + bytes(bits)
    if code == "s":
        return b"".join(str(s).encode() + b"\0" for s in items)
    return struct.pack(f"<{len(items)}{code}", *items)


def _unpack_array(code: str, raw: bytes) -> tuple[Any, ...]:
    if code == "?":
        if len(raw) < 4:
            raise SparkplugError("boolean array shorter than its 4-byte count")
        (count,) = struct.unpack_from("<I", raw)
        if len(raw) - 4 < (count + 7) // 8:
            raise SparkplugError("boolean array shorter than its count")
        return tuple(bool(raw[4 + i // 8] & (0x80 >> (i % 8))) for i in range(count))
    if code == "s":
        if raw and not raw.endswith(b"\0"):
            raise SparkplugError("string array is not null-terminated")
        return tuple(s.decode() for s in raw[:-1].split(b"\0")) if raw else ()
    size = struct.calcsize(code)
    if len(raw) % size:
        raise SparkplugError(f"array of {len(raw)} bytes is not a multiple of {size}")
    return struct.unpack(f"<{len(raw) // size}{code}", raw)


def _set_value(pb: Any, dtype: DataType, value: Any) -> None:
    if dtype is DataType.DATASET:
        ds = pb.dataset_value
        ds.num_of_columns = len(value.columns)
        ds.columns.extend(value.columns)
        ds.types.extend(int(t) for t in value.types)
        for row in value.rows:
            pb_row = ds.rows.add()
            for t, cell in zip(value.types, row, strict=True):
                _set_value(pb_row.elements.add(), DataType(t), cell)
        return
    entry = DATA_TYPES.get(dtype)
    if entry is None:
        raise SparkplugError(f"cannot encode a value of type {dtype.name}")
    field, bits, code = entry
    if code:
        value = _pack_array(code, dtype, value)
    elif bits:
        if not -(1 << (bits - 1)) <= int(value) < 1 << (bits - 1):
            raise SparkplugError(f"{value} is out of range for {dtype.name}")
        value = int(value) & ((1 << bits) - 1)
    elif dtype in _UNSIGNED_BITS and not 0 <= int(value) < 1 << _UNSIGNED_BITS[dtype]:
        raise SparkplugError(f"{value} is out of range for {dtype.name}")
    try:
        setattr(pb, field, value)
    except (TypeError, ValueError) as exc:
        raise SparkplugError(f"{value!r} does not fit {dtype.name}: {exc}") from None


def _get_value(pb: Any, dtype: DataType) -> Any:
    which = pb.WhichOneof("value")
    if which is None:
        return None
    if which == "dataset_value":
        ds = pb.dataset_value
        types = tuple(DataType(t) for t in ds.types)
        rows = tuple(
            tuple(_get_value(e, t) for e, t in zip(r.elements, types, strict=False))
            for r in ds.rows
        )
        return DataSet(tuple(ds.columns), types, rows)
    if which in ("template_value", "extension_value", "propertyset_value", "propertysets_value"):
        return None
    raw = getattr(pb, which)
    entry = DATA_TYPES.get(dtype)
    if entry is None:
        return raw
    field, bits, code = entry
    if field != which:
        raise SparkplugError(f"{dtype.name} value carried in {which}, expected {field}")
    if code:
        return _unpack_array(code, raw)
    if bits:
        return _signed(raw, bits)
    return raw


def _encode_metric(pb: Any, m: Metric) -> None:
    if m.name is not None:
        pb.name = m.name
    if m.alias is not None:
        pb.alias = m.alias
    if m.timestamp is not None:
        pb.timestamp = m.timestamp
    pb.datatype = int(m.datatype)
    if m.is_historical:
        pb.is_historical = True
    if m.is_transient:
        pb.is_transient = True
    if m.properties:
        for key, ptype, pval in m.properties:
            pb.properties.keys.append(key)
            pv = pb.properties.values.add()
            pv.type = int(ptype)
            if pval is None:
                pv.is_null = True
            else:
                _set_value(pv, ptype, pval)
    if m.is_null or m.value is None:
        pb.is_null = True
    else:
        _set_value(pb, m.datatype, m.value)


def encode_payload(payload: Payload) -> bytes:
    classes = message_classes()
    pb = classes["Payload"]()
    if payload.timestamp is not None:
        pb.timestamp = payload.timestamp
    if payload.seq is not None:
        pb.seq = payload.seq
    if payload.uuid is not None:
        pb.uuid = payload.uuid
    if payload.body is not None:
        pb.body = payload.body
    for m in payload.metrics:
        _encode_metric(pb.metrics.add(), m)
    data: bytes = pb.SerializeToString()
    return data


def _shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32 (1.1 rather than 1.100000023841858)."""
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


def _decode_metric(pb: Any) -> Metric:
    dtype = _BY_CODE.get(pb.datatype)
    if dtype is None:
        raise SparkplugError(f"unknown Sparkplug data type {pb.datatype}")
    props: list[tuple[str, DataType, Any]] = []
    if pb.HasField("properties"):
        ps = pb.properties
        if len(ps.keys) != len(ps.values):
            raise SparkplugError("property set has different numbers of keys and values")
        for key, pv in zip(ps.keys, ps.values, strict=True):
            ptype = _BY_CODE.get(pv.type, DataType.UNKNOWN)
            props.append((key, ptype, None if pv.is_null else _get_value(pv, ptype)))
    value = None if pb.is_null else _get_value(pb, dtype)
    if isinstance(value, float) and dtype is DataType.FLOAT and math.isfinite(value):
        value = _shortest_float32(value)
    return Metric(
        name=pb.name if pb.HasField("name") else None,
        value=value,
        datatype=dtype,
        alias=pb.alias if pb.HasField("alias") else None,
        timestamp=pb.timestamp if pb.HasField("timestamp") else None,
        is_null=pb.is_null,
        is_historical=pb.is_historical,
        is_transient=pb.is_transient,
        properties=tuple(props),
    )


def decode_payload(data: bytes) -> Payload:
    """Parse a Sparkplug B payload; raises :class:`SparkplugError` if malformed."""
    classes = message_classes()
    try:
        pb = classes["Payload"].FromString(data)
    except (DecodeError, RuntimeWarning) as exc:
        raise SparkplugError(f"payload is not a Sparkplug B protobuf: {exc}") from None
    seq = pb.seq if pb.HasField("seq") else None
    if seq is not None and seq > 255:
        raise SparkplugError(f"sequence number {seq} is out of range 0..255")
    return Payload(
        timestamp=pb.timestamp if pb.HasField("timestamp") else None,
        metrics=tuple(_decode_metric(m) for m in pb.metrics),
        seq=seq,
        uuid=pb.uuid if pb.HasField("uuid") else None,
        body=pb.body if pb.HasField("body") else None,
    )
