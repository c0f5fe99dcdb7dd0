"""Metric values to and from protobuf (sans-IO), composite types included.

Scalars travel in the protobuf field the :data:`~.model.DATA_TYPES` table
names (sign-extended for signed integers); arrays are packed little-endian in
``bytes_value`` (BooleanArray with a 4-byte count and MSB-first bits,
StringArray null-terminated); DataSets, Templates (whose members are metrics
again), PropertySets and PropertySetLists have their own messages.  Anything
that does not fit raises :class:`~.model.SparkplugError`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from iinode.connectivity.sparkplug.model import (
    DATA_TYPES,
    DataSet,
    DataType,
    Metric,
    Properties,
    SparkplugError,
    Template,
)

_BY_CODE = {int(d): d for d in DataType}
_COMPOSITE = {
    "dataset_value": DataType.DATASET,
    "template_value": DataType.TEMPLATE,
    "propertyset_value": DataType.PROPERTYSET,
    "propertysets_value": DataType.PROPERTYSETLIST,
}
SCALAR_FIELDS = {
    d: (field, bits)
    for d, (field, bits, code) in DATA_TYPES.items()
    if not code and field != "bytes_value"
}
_UNSIGNED_BITS = {DataType.UINT8: 8, DataType.UINT16: 16, DataType.UINT32: 32, DataType.UINT64: 64}


def signed(raw: int, bits: int) -> int:
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
            encode_metric(tpl.metrics.add(), member)
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
            metrics=tuple(decode_metric(m) for m in tpl.metrics),
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
        return signed(raw, bits)
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
        return signed(raw, bits)
    return raw


def _decode_properties(ps: Any) -> Properties:
    if len(ps.keys) != len(ps.values):
        raise SparkplugError("property set has different numbers of keys and values")
    out: list[tuple[str, DataType, Any]] = []
    for key, pv in zip(ps.keys, ps.values, strict=True):
        ptype = _BY_CODE.get(pv.type, DataType.UNKNOWN)
        out.append((key, ptype, None if pv.is_null else _get_value(pv, ptype)))
    return tuple(out)


def encode_metric(pb: Any, m: Metric) -> None:
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


def shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32 (1.1 rather than 1.100000023841858)."""
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


def decode_metric(pb: Any) -> Metric:
    dtype = _data_type(pb.datatype)
    props = _decode_properties(pb.properties) if pb.HasField("properties") else ()
    value = None if pb.is_null else _get_value(pb, dtype)
    if isinstance(value, float) and dtype is DataType.FLOAT and math.isfinite(value):
        value = shortest_float32(value)
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
