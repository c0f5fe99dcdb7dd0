"""The Sparkplug B 3.0 protobuf schema (``org.eclipse.tahu.protobuf``), built at run time.

The schema is data: :data:`MESSAGES` lists each message's fields as
``(name, number, label, type, message type or None, oneof or None)``, and
:func:`message_classes` turns it into a ``FileDescriptorProto`` and then into
protobuf message classes, so no ``protoc`` step is needed.  Field numbers and
types follow the specification's ``sparkplug_b.proto`` (proto2 syntax).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "org.eclipse.tahu.protobuf"

_F = descriptor_pb2.FieldDescriptorProto
OPT, REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
U32, U64, FLT, DBL = _F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_FLOAT, _F.TYPE_DOUBLE
BOOL, STR, BYTES, MSG = _F.TYPE_BOOL, _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_MESSAGE

Field = tuple[str, int, int, int, str | None, str | None]

#: Nested message name (``Payload.X``) -> fields.  Extension messages carry no fields.
MESSAGES: dict[str, list[Field]] = {
    "Template.Parameter.ParameterValueExtension": [],
    "Template.Parameter": [
        ("name", 1, OPT, STR, None, None),
        ("type", 2, OPT, U32, None, None),
        ("int_value", 3, OPT, U32, None, "value"),
        ("long_value", 4, OPT, U64, None, "value"),
        ("float_value", 5, OPT, FLT, None, "value"),
        ("double_value", 6, OPT, DBL, None, "value"),
        ("boolean_value", 7, OPT, BOOL, None, "value"),
        ("string_value", 8, OPT, STR, None, "value"),
        ("extension_value", 9, OPT, MSG, "Template.Parameter.ParameterValueExtension", "value"),
    ],
    "Template": [
        ("version", 1, OPT, STR, None, None),
        ("metrics", 2, REP, MSG, "Metric", None),
        ("parameters", 3, REP, MSG, "Template.Parameter", None),
        ("template_ref", 4, OPT, STR, None, None),
        ("is_definition", 5, OPT, BOOL, None, None),
    ],
    "DataSet.DataSetValue.DataSetValueExtension": [],
    "DataSet.DataSetValue": [
        ("int_value", 1, OPT, U32, None, "value"),
        ("long_value", 2, OPT, U64, None, "value"),
        ("float_value", 3, OPT, FLT, None, "value"),
        ("double_value", 4, OPT, DBL, None, "value"),
        ("boolean_value", 5, OPT, BOOL, None, "value"),
        ("string_value", 6, OPT, STR, None, "value"),
        ("extension_value", 7, OPT, MSG, "DataSet.DataSetValue.DataSetValueExtension", "value"),
    ],
    "DataSet.Row": [("elements", 1, REP, MSG, "DataSet.DataSetValue", None)],
    "DataSet": [
        ("num_of_columns", 1, OPT, U64, None, None),
        ("columns", 2, REP, STR, None, None),
        ("types", 3, REP, U32, None, None),
        ("rows", 4, REP, MSG, "DataSet.Row", None),
    ],
    "PropertyValue.PropertyValueExtension": [],
    "PropertyValue": [
        ("type", 1, OPT, U32, None, None),
        ("is_null", 2, OPT, BOOL, None, None),
        ("int_value", 3, OPT, U32, None, "value"),
        ("long_value", 4, OPT, U64, None, "value"),
        ("float_value", 5, OPT, FLT, None, "value"),
        ("double_value", 6, OPT, DBL, None, "value"),
        ("boolean_value", 7, OPT, BOOL, None, "value"),
        ("string_value", 8, OPT, STR, None, "value"),
        ("propertyset_value", 9, OPT, MSG, "PropertySet", "value"),
        ("propertysets_value", 10, OPT, MSG, "PropertySetList", "value"),
        ("extension_value", 11, OPT, MSG, "PropertyValue.PropertyValueExtension", "value"),
    ],
    "PropertySet": [
        ("keys", 1, REP, STR, None, None),
        ("values", 2, REP, MSG, "PropertyValue", None),
    ],
    "PropertySetList": [("propertyset", 1, REP, MSG, "PropertySet", None)],
    "MetaData": [
        ("is_multi_part", 1, OPT, BOOL, None, None),
        ("content_type", 2, OPT, STR, None, None),
        ("size", 3, OPT, U64, None, None),
        ("seq", 4, OPT, U64, None, None),
        ("file_name", 5, OPT, STR, None, None),
        ("file_type", 6, OPT, STR, None, None),
        ("md5", 7, OPT, STR, None, None),
        ("description", 8, OPT, STR, None, None),
    ],
    "Metric.MetricValueExtension": [],
    "Metric": [
        ("name", 1, OPT, STR, None, None),
        ("alias", 2, OPT, U64, None, None),
        ("timestamp", 3, OPT, U64, None, None),
        ("datatype", 4, OPT, U32, None, None),
        ("is_historical", 5, OPT, BOOL, None, None),
        ("is_transient", 6, OPT, BOOL, None, None),
        ("is_null", 7, OPT, BOOL, None, None),
        ("metadata", 8, OPT, MSG, "MetaData", None),
        ("properties", 9, OPT, MSG, "PropertySet", None),
        ("int_value", 10, OPT, U32, None, "value"),
        ("long_value", 11, OPT, U64, None, "value"),
        ("float_value", 12, OPT, FLT, None, "value"),
        ("double_value", 13, OPT, DBL, None, "value"),
        ("boolean_value", 14, OPT, BOOL, None, "value"),
        ("string_value", 15, OPT, STR, None, "value"),
        ("bytes_value", 16, OPT, BYTES, None, "value"),
        ("dataset_value", 17, OPT, MSG, "DataSet", "value"),
        ("template_value", 18, OPT, MSG, "Template", "value"),
        ("extension_value", 19, OPT, MSG, "Metric.MetricValueExtension", "value"),
    ],
}

#: Top-level ``Payload`` fields; every other message is nested inside it.
PAYLOAD: list[Field] = [
    ("timestamp", 1, OPT, U64, None, None),
    ("metrics", 2, REP, MSG, "Metric", None),
    ("seq", 3, OPT, U64, None, None),
    ("uuid", 4, OPT, STR, None, None),
    ("body", 5, OPT, BYTES, None, None),
]

#: Messages that the specification declares extensible (``extensions`` ranges).
EXTENSIBLE = {
    "": (6, 536870912),
    "Template": (6, 536870912),
    "Template.Parameter.ParameterValueExtension": (1, 536870912),
    "DataSet": (5, 536870912),
    "DataSet.Row": (2, 536870912),
    "DataSet.DataSetValue.DataSetValueExtension": (1, 536870912),
    "PropertyValue.PropertyValueExtension": (1, 536870912),
    "PropertySet": (3, 536870912),
    "PropertySetList": (2, 536870912),
    "MetaData": (9, 536870912),
    "Metric.MetricValueExtension": (1, 536870912),
}


def _fill(message: descriptor_pb2.DescriptorProto, path: str, fields: list[Field]) -> None:
    oneofs: list[str] = []
    for name, number, label, ftype, type_name, oneof in fields:
        field = message.field.add(name=name, number=number, label=label, type=ftype)
        if type_name is not None:
            field.type_name = f".{PACKAGE}.Payload.{type_name}"
        if oneof is not None:
            if oneof not in oneofs:
                oneofs.append(oneof)
                message.oneof_decl.add(name=oneof)
            field.oneof_index = oneofs.index(oneof)
    if path in EXTENSIBLE:
        start, end = EXTENSIBLE[path]
        message.extension_range.add(start=start, end=end)


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The schema as a ``FileDescriptorProto`` (``sparkplug_b.proto``)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="sparkplug_b.proto", package=PACKAGE, syntax="proto2"
    )
    payload = proto.message_type.add(name="Payload")
    _fill(payload, "", PAYLOAD)
    made: dict[str, descriptor_pb2.DescriptorProto] = {"": payload}
    for path in sorted(MESSAGES, key=lambda p: p.count(".")):
        parent_path, _, name = path.rpartition(".")
        made[path] = made[parent_path].nested_type.add(name=name)
    for path, fields in MESSAGES.items():
        _fill(made[path], path, fields)
    return proto


@cache
def message_classes() -> dict[str, Any]:
    """Protobuf classes by name: ``Payload``, ``Metric``, ``PropertySet`` …"""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    out: dict[str, Any] = {}
    for path in ["", *MESSAGES]:
        full = f"{PACKAGE}.Payload" + (f".{path}" if path else "")
        out[path or "Payload"] = message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
    return out
