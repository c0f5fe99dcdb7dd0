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
_COMPOSITE = {
    "dataset_value": DataType.DATASET,
    "template_value": DataType.TEMPLATE,
    "propertyset_value": DataType.PROPERTYSET,
    "propertysets_value": DataType.PROPERTYSETLIST,
}
_SCALAR_FIELDS = {
    d: (field, bits)
    for d, (field, bits, code) in DATA_TYPES.items()
    if not code and field != "bytes_value"
}
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


def _set_properties(pb: Any, props: Properties) -> None:
    for key, ptype, pval in props:
        pb.keys.append(key)
        pv = pb.values.add()
        pv.type = int(ptype)
        if pval is None:
            pv.is_null = True
        elif ptype is DataType.PROPERTYSET:
            _set_properties(pv.propertyset_value, pval)
        elif ptype is DataType.PROPERTYSETLIST:
            pv.propertysets_value.SetInParent()
            for item in pval:
                _set_properties(pv.propertysets_value.propertyset.add(), item)
        else:
            _set_value(pv, ptype, pval)


def _set_value(pb: Any, dtype: DataType, value: Any) -> None:
    if dtype is DataType.TEMPLATE:
        if not isinstance(value, Template):
            raise SparkplugError(f"a Template metric needs a Template value, not {value!r}")
        tpl = pb.template_value
        tpl.SetInParent()
        if value.version is not None:
            tpl.version = value.version
        if value.template_ref is not None:
            tpl.template_ref = value.template_ref
        tpl.is_definition = value.is_definition
        for member in value.metrics:
            _encode_metric(tpl.metrics.add(), member)
        for name, ptype, pval in value.parameters:
            param = tpl.parameters.add(name=name, type=int(ptype))
            if pval is not None:
                _set_value(param, ptype, pval)
        return
    if dtype is DataType.DATASET:
        ds = pb.dataset_value
        ds.num_of_columns = len(value.columns)
        ds.columns.extend(value.columns)
        ds.types.extend(int(t) for t in value.types)
        for row in value.rows:
            pb_row = ds.rows.add()
            for t, cell in zip(value.types, row, strict=True):
                element = pb_row.elements.add()
                if cell is not None:  # a null cell leaves the value unset
                    _set_value(element, DataType(t), cell)
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
    want = _COMPOSITE.get(which)
    if want is not None and dtype is not want and dtype is not DataType.UNKNOWN:
        raise SparkplugError(f"{dtype.name} value carried in {which}")
    if which == "dataset_value":
        ds = pb.dataset_value
        types = tuple(_data_type(t) for t in ds.types)
        if ds.HasField("num_of_columns") and ds.num_of_columns != len(ds.columns):
            raise SparkplugError(
                f"data set announces {ds.num_of_columns} columns and names {len(ds.columns)}"
            )
        width = len(types)
        rows = []
        for n, r in enumerate(ds.rows):
            if len(r.elements) != width:
                raise SparkplugError(f"data set row {n} has {len(r.elements)} cells for {width}")
            rows.append(tuple(_get_value(e, t) for e, t in zip(r.elements, types, strict=True)))
        return DataSet(tuple(ds.columns), types, tuple(rows))
    if which == "template_value":
        tpl = pb.template_value
        return Template(
            metrics=tuple(_decode_metric(m) for m in tpl.metrics),
            template_ref=tpl.template_ref if tpl.HasField("template_ref") else None,
            is_definition=tpl.is_definition,
            version=tpl.version if tpl.HasField("version") else None,
            parameters=tuple(
                (p.name, t := _data_type(p.type), _get_value(p, t)) for p in tpl.parameters
            ),
        )
    if which == "propertyset_value":
        return _decode_properties(pb.propertyset_value)
    if which == "propertysets_value":
        return tuple(_decode_properties(ps) for ps in pb.propertysets_value.propertyset)
    if which == "extension_value":
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


def _data_type(code: int) -> DataType:
    dtype = _BY_CODE.get(code)
    if dtype is None:
        raise SparkplugError(f"unknown Sparkplug data type {code}")
    return dtype


def typed_value(raw: Any, dtype: DataType) -> Any:
    """Convert a value decoded without a known type (``UNKNOWN``) once the type is known.

    Data messages may omit a metric's datatype; the host then learns it from the
    birth certificate (by alias) and converts: packed arrays are unpacked and
    signed integers sign-extended.  Raises :class:`SparkplugError` if ``raw``
    does not fit ``dtype``.
    """
    entry = DATA_TYPES.get(dtype)
    if raw is None or entry is None:
        return raw
    _, bits, code = entry
    if code:
        if not isinstance(raw, bytes):
            raise SparkplugError(f"{dtype.name} value must travel in bytes_value")
        return _unpack_array(code, raw)
    if bits:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise SparkplugError(f"{dtype.name} value must be an integer")
        return _signed(raw, bits)
    return raw


def _decode_properties(ps: Any) -> Properties:
    if len(ps.keys) != len(ps.values):
        raise SparkplugError("property set has different numbers of keys and values")
    out: list[tuple[str, DataType, Any]] = []
    for key, pv in zip(ps.keys, ps.values, strict=True):
        ptype = _BY_CODE.get(pv.type, DataType.UNKNOWN)
        out.append((key, ptype, None if pv.is_null else _get_value(pv, ptype)))
    return tuple(out)


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
        _set_properties(pb.properties, m.properties)
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
    dtype = _data_type(pb.datatype)
    props = _decode_properties(pb.properties) if pb.HasField("properties") else ()
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
        properties=props,
    )


def parse_payload(data: bytes) -> Any:
    """The protobuf ``Payload`` message of ``data``; raises :class:`SparkplugError`.

    Only the envelope is checked (protobuf syntax, ``seq`` in 0..255); metrics are
    checked when converted by :func:`metric_from_pb` (or :func:`payload_from_pb`).
    """
    try:
        pb = message_classes()["Payload"].FromString(data)
    except (DecodeError, RuntimeWarning) as exc:
        raise SparkplugError(f"payload is not a Sparkplug B protobuf: {exc}") from None
    if pb.HasField("seq") and pb.seq > 255:
        raise SparkplugError(f"sequence number {pb.seq} is out of range 0..255")
    return pb


def metric_from_pb(pb: Any) -> Metric:
    """One protobuf ``Metric`` as a checked :class:`Metric`; raises :class:`SparkplugError`."""
    return _decode_metric(pb)


def scalar_from_pb(pb: Any, dtype: DataType) -> Any:
    """The value of a plain scalar metric of type ``dtype``, or ``None`` if it is not one.

    The fast path of the host: no properties, not null, a scalar type whose
    value sits in the field the type calls for.  Anything else returns ``None``
    and goes through :func:`metric_from_pb`.
    """
    entry = _SCALAR_FIELDS.get(dtype)
    if entry is None or pb.is_null or pb.WhichOneof("value") != entry[0]:
        return None
    raw = getattr(pb, entry[0])
    if entry[1]:
        return _signed(raw, entry[1])
    if dtype is DataType.FLOAT and math.isfinite(raw):
        return _shortest_float32(raw)
    return raw


def payload_from_pb(pb: Any) -> Payload:
    """A protobuf ``Payload`` (from :func:`parse_payload`) as a checked :class:`Payload`."""
    return Payload(
        timestamp=pb.timestamp if pb.HasField("timestamp") else None,
        metrics=tuple(_decode_metric(m) for m in pb.metrics),
        seq=pb.seq if pb.HasField("seq") else None,
        uuid=pb.uuid if pb.HasField("uuid") else None,
        body=pb.body if pb.HasField("body") else None,
    )


def decode_payload(data: bytes) -> Payload:
    """Parse a Sparkplug B payload; raises :class:`SparkplugError` if malformed."""
    return payload_from_pb(parse_payload(data))
