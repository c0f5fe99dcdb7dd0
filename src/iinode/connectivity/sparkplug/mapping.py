"""Sparkplug metric values to readings (sans-IO): scalars, arrays, data sets, templates.

Scalars become one reading named after the metric.  Arrays become one reading
per element, ``<name>[<i>]``; a DataSet one reading per non-null cell,
``<name>[<row>]/<column>``; a template instance one reading per member,
``<name>/<member>`` (recursively; member types missing from a data message are
taken from the definition in NBIRTH).  Bytes, files and property sets carry no
reading and are counted as ``skipped``.  The ``Quality`` property (Int32)
becomes the reading's quality (values outside 0..255, such as the 500 "stale"
some servers use, map to ``UNCERTAIN``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from iinode.connectivity.sparkplug.codec import (
    DataSet,
    DataType,
    SparkplugError,
    Template,
    typed_value,
)
from iinode.telemetry.model import Quality, Reading, Value

if TYPE_CHECKING:
    from iinode.connectivity.sparkplug.host_state import HostResult

SCALARS = frozenset({
    DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8,
    DataType.UINT16, DataType.UINT32, DataType.UINT64, DataType.FLOAT, DataType.DOUBLE,
    DataType.BOOLEAN, DataType.STRING, DataType.TEXT, DataType.UUID, DataType.DATETIME,
})  # fmt: skip
ARRAYS = frozenset(DataType(code) for code in range(22, 35))
FLOATS = frozenset({DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT_ARRAY, DataType.DOUBLE_ARRAY})
#: The metric property that carries a value's quality.
QUALITY = "Quality"


def map_value(
    templates: Mapping[str, Template],
    equipment: str,
    name: str,
    dtype: DataType,
    value: Any,
    when: int,
    quality: Quality,
    ref: str | None,
    r: HostResult,
) -> None:
    if value is None:
        r.skipped += 1
    elif dtype in SCALARS:
        r.readings.append(Reading(equipment, name, when, scalar(value, dtype), quality))
    elif dtype in ARRAYS and isinstance(value, tuple):
        floats = dtype in FLOATS
        for i, item in enumerate(value):
            v = float(item) if floats else item
            r.readings.append(Reading(equipment, f"{name}[{i}]", when, v, quality))
    elif dtype is DataType.DATASET and isinstance(value, DataSet):
        for n, row in enumerate(value.rows):
            for column, ctype, cell in zip(value.columns, value.types, row, strict=True):
                if cell is None or ctype not in SCALARS:
                    r.skipped += 1
                    continue
                tag = f"{name}[{n}]/{column}"
                r.readings.append(Reading(equipment, tag, when, scalar(cell, ctype), quality))
    elif dtype is DataType.TEMPLATE and isinstance(value, Template):
        if not value.is_definition:
            _members(templates, equipment, name, value, when, quality, ref, r)
    else:
        r.skipped += 1


def _members(
    templates: Mapping[str, Template],
    equipment: str,
    name: str,
    tpl: Template,
    when: int,
    quality: Quality,
    ref: str | None,
    r: HostResult,
) -> None:
    ref = tpl.template_ref or ref
    definition = None
    if ref is not None:
        definition = templates.get(ref) or templates.get(f"_types_/{ref}")
    if ref is not None and definition is None and templates:
        r.errors.append(f"{equipment}: template {name!r} refers to unknown {ref!r}")
    for member in tpl.metrics:
        if member.name is None:
            r.errors.append(f"{equipment}: member of template {name!r} has no name")
            continue
        dtype, value, mref = member.datatype, member.value, None
        if definition is not None:
            shape = next((d for d in definition.metrics if d.name == member.name), None)
            if shape is not None:
                if isinstance(shape.value, Template):
                    mref = shape.value.template_ref
                if dtype is DataType.UNKNOWN:
                    dtype = shape.datatype
                    try:
                        value = typed_value(value, dtype)
                    except SparkplugError as exc:
                        r.errors.append(f"{equipment}: {name}/{member.name}: {exc.message}")
                        continue
        at = member.timestamp * 1000 if member.timestamp is not None else when
        q = quality_of(member.property(QUALITY), quality)
        map_value(templates, equipment, f"{name}/{member.name}", dtype, value, at, q, mref, r)


def is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


def quality_of(raw: Any, default: Quality = Quality.GOOD) -> Quality:
    if raw is None:
        return default
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 0xFF:
        return Quality(raw)
    return Quality.UNCERTAIN


def scalar(value: Any, dtype: DataType) -> Value:
    if dtype in FLOATS:
        return float(value)
    if isinstance(value, bool | int | float | str):
        return value
    raise SparkplugError(f"{dtype.name} value {value!r} is not a scalar")
