"""Sparkplug B 3.0 topics and payloads (sans-IO): bytes in, dataclasses out, and back.

Topics: ``spBv1.0/<group>/<type>/<edge node>[/<device>]`` and
``spBv1.0/STATE/<host id>``.  Payloads are the protobuf ``Payload`` of
:mod:`.schema`; the dataclasses live in :mod:`.model`, metric values
(composite types included) are converted by :mod:`.values`.  Anything that
does not parse raises :class:`SparkplugError`.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.message import DecodeError

from iinode.connectivity.sparkplug.model import (
    DATA_TYPES,
    NAMESPACE,
    DataSet,
    DataType,
    MessageType,
    Metric,
    Payload,
    Properties,
    SparkplugError,
    Template,
    Topic,
)
from iinode.connectivity.sparkplug.schema import message_classes
from iinode.connectivity.sparkplug.values import (
    SCALAR_FIELDS,
    decode_metric,
    encode_metric,
    shortest_float32,
    signed,
    typed_value,
)

__all__ = [
    "DATA_TYPES",
    "NAMESPACE",
    "DataSet",
    "DataType",
    "MessageType",
    "Metric",
    "Payload",
    "Properties",
    "SparkplugError",
    "Template",
    "Topic",
    "decode_payload",
    "encode_payload",
    "metric_from_pb",
    "parse_payload",
    "payload_from_pb",
    "scalar_from_pb",
    "typed_value",
]


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
        encode_metric(pb.metrics.add(), m)
    data: bytes = pb.SerializeToString()
    return data


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
    return decode_metric(pb)


def scalar_from_pb(pb: Any, dtype: DataType) -> Any:
    """The value of a plain scalar metric of type ``dtype``, or ``None`` if it is not one.

    The fast path of the host: no properties, not null, a scalar type whose
    value sits in the field the type calls for.  Anything else returns ``None``
    and goes through :func:`metric_from_pb`.
    """
    entry = SCALAR_FIELDS.get(dtype)
    if entry is None or pb.is_null or pb.WhichOneof("value") != entry[0]:
        return None
    raw = getattr(pb, entry[0])
    if entry[1]:
        return signed(raw, entry[1])
    if dtype is DataType.FLOAT and math.isfinite(raw):
        return shortest_float32(raw)
    return raw


def payload_from_pb(pb: Any) -> Payload:
    """A protobuf ``Payload`` (from :func:`parse_payload`) as a checked :class:`Payload`."""
    return Payload(
        timestamp=pb.timestamp if pb.HasField("timestamp") else None,
        metrics=tuple(decode_metric(m) for m in pb.metrics),
        seq=pb.seq if pb.HasField("seq") else None,
        uuid=pb.uuid if pb.HasField("uuid") else None,
        body=pb.body if pb.HasField("body") else None,
    )


def decode_payload(data: bytes) -> Payload:
    """Parse a Sparkplug B payload; raises :class:`SparkplugError` if malformed."""
    return payload_from_pb(parse_payload(data))
