"""Sparkplug B 3.0: schema, codec and session logic (no I/O)."""

from iinode.connectivity.sparkplug.codec import (
    NAMESPACE,
    DataSet,
    DataType,
    MessageType,
    Metric,
    Payload,
    SparkplugError,
    Template,
    Topic,
    decode_payload,
    encode_payload,
    typed_value,
)
from iinode.connectivity.sparkplug.host import (
    HostApplication,
    HostResult,
    HostSettings,
    default_equipment,
)
from iinode.connectivity.sparkplug.session import (
    BDSEQ,
    REBIRTH,
    EdgeNode,
    Outgoing,
    datatype_for,
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
    "HostSettings",
    "MessageType",
    "Metric",
    "Outgoing",
    "Payload",
    "SparkplugError",
    "Template",
    "Topic",
    "datatype_for",
    "decode_payload",
    "default_equipment",
    "encode_payload",
    "rebirth_request",
    "typed_value",
]
