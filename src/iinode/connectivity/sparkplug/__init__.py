"""Sparkplug B 3.0: schema, codec and session logic (no I/O)."""

from iinode.connectivity.sparkplug.codec import (
    NAMESPACE,
    DataSet,
    DataType,
    MessageType,
    Metric,
    Payload,
    SparkplugError,
    Topic,
    decode_payload,
    encode_payload,
)
from iinode.connectivity.sparkplug.session import (
    BDSEQ,
    REBIRTH,
    EdgeNode,
    HostApplication,
    HostResult,
    Outgoing,
    datatype_for,
    default_equipment,
    rebirth_request,
)

__all__ = [
    "BDSEQ",
    "NAMESPACE",
    "REBIRTH",
    "DataSet",
    "DataType",
    "EdgeNode",
    "HostApplication",
    "HostResult",
    "MessageType",
    "Metric",
    "Outgoing",
    "Payload",
    "SparkplugError",
    "Topic",
    "datatype_for",
    "decode_payload",
    "default_equipment",
    "encode_payload",
    "rebirth_request",
]
