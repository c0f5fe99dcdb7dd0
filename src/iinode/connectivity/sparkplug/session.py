"""Sparkplug B edge-node session logic without I/O.

:class:`EdgeNode` builds the messages an edge node publishes (death
certificate as MQTT will, births with aliases, data by alias, sequence numbers
0..255, rebirth on command).  It only returns :class:`Outgoing` messages; a
transport sends them.  The consuming side is :mod:`.host`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from iinode.connectivity.sparkplug.codec import (
    DataType,
    MessageType,
    Metric,
    Payload,
    SparkplugError,
    Topic,
    decode_payload,
    encode_payload,
)

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


def datatype_for(value: Any) -> DataType:
    """The natural Sparkplug type of a Python value."""
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.INT64
    if isinstance(value, float):
        return DataType.DOUBLE
    if isinstance(value, str):
        return DataType.STRING
    raise SparkplugError(f"no Sparkplug type for {type(value).__name__}")


class EdgeNode:
    """The publishing side of one Sparkplug edge node and its devices."""

    def __init__(self, group: str, node_id: str, *, bdseq: int = 0, qos: int = 0) -> None:
        Topic(MessageType.NBIRTH, group, node_id)
        self.group = group
        self.node_id = node_id
        self.bdseq = bdseq % 256
        self.qos = qos
        self._seq = 0
        self._aliases: dict[tuple[str | None, str], tuple[int, DataType]] = {}
        self._values: dict[str | None, dict[str, Any]] = {}

    def _topic(self, kind: MessageType, device: str | None = None) -> str:
        return str(Topic(kind, self.group, self.node_id, device))

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % 256
        return seq

    def will(self) -> Outgoing:
        """The NDEATH to register as MQTT will before connecting (QoS 1, not retained)."""
        payload = Payload(metrics=(Metric(BDSEQ, self.bdseq, DataType.INT64),))
        return Outgoing(self._topic(MessageType.NDEATH), encode_payload(payload), qos=1)

    def new_session(self) -> None:
        """Call before reconnecting: the next birth and will use the next ``bdSeq``."""
        self.bdseq = (self.bdseq + 1) % 256

    def _birth_metrics(
        self, device: str | None, values: Mapping[str, Any], now_ms: int
    ) -> list[Metric]:
        out: list[Metric] = []
        for name, value in values.items():
            key = (device, name)
            if key not in self._aliases:
                self._aliases[key] = (len(self._aliases) + 1, datatype_for(value))
            alias, dtype = self._aliases[key]
            out.append(Metric(name, value, dtype, alias=alias, timestamp=now_ms))
        self._values[device] = dict(values)
        return out

    def birth(self, values: Mapping[str, Any], now_ms: int) -> Outgoing:
        """NBIRTH with every node metric; resets the sequence number to 0."""
        self._seq = 0
        metrics = [
            Metric(BDSEQ, self.bdseq, DataType.INT64, timestamp=now_ms),
            Metric(REBIRTH, False, DataType.BOOLEAN, timestamp=now_ms),
            *self._birth_metrics(None, values, now_ms),
        ]
        payload = Payload(now_ms, tuple(metrics), self._next_seq())
        return Outgoing(self._topic(MessageType.NBIRTH), encode_payload(payload), self.qos)

    def device_birth(self, device: str, values: Mapping[str, Any], now_ms: int) -> Outgoing:
        metrics = tuple(self._birth_metrics(device, values, now_ms))
        payload = Payload(now_ms, metrics, self._next_seq())
        return Outgoing(self._topic(MessageType.DBIRTH, device), encode_payload(payload), self.qos)

    def data(self, values: Mapping[str, Any], now_ms: int, device: str | None = None) -> Outgoing:
        """NDATA (or DDATA for a device) carrying metrics by alias only."""
        metrics: list[Metric] = []
        known = self._values.setdefault(device, {})
        for name, value in values.items():
            try:
                alias, dtype = self._aliases[(device, name)]
            except KeyError:
                raise SparkplugError(f"metric {name!r} was not in the birth certificate") from None
            metrics.append(Metric(None, value, dtype, alias=alias, timestamp=now_ms))
            known[name] = value
        kind = MessageType.DDATA if device is not None else MessageType.NDATA
        payload = Payload(now_ms, tuple(metrics), self._next_seq())
        return Outgoing(self._topic(kind, device), encode_payload(payload), self.qos)

    def device_death(self, device: str, now_ms: int) -> Outgoing:
        payload = Payload(now_ms, (), self._next_seq())
        return Outgoing(self._topic(MessageType.DDEATH, device), encode_payload(payload), self.qos)

    def rebirth(self, now_ms: int) -> list[Outgoing]:
        """A fresh NBIRTH and every DBIRTH, with the latest known values."""
        out = [self.birth(self._values.get(None, {}), now_ms)]
        for device, values in self._values.items():
            if device is not None:
                out.append(self.device_birth(device, values, now_ms))
        return out

    def on_command(self, topic: str, data: bytes, now_ms: int) -> list[Outgoing]:
        """Handle an NCMD; a rebirth request is answered with :meth:`rebirth`."""
        parsed = Topic.parse(topic)
        if parsed.message_type is not MessageType.NCMD or parsed.edge_node != self.node_id:
            return []
        payload = decode_payload(data)
        if any(m.name == REBIRTH and m.value is True for m in payload.metrics):
            return self.rebirth(now_ms)
        return []


def rebirth_request(group: str, edge_node: str, now_ms: int) -> Outgoing:
    payload = Payload(now_ms, (Metric(REBIRTH, True, DataType.BOOLEAN, timestamp=now_ms),))
    topic = str(Topic(MessageType.NCMD, group, edge_node))
    return Outgoing(topic, encode_payload(payload), qos=0)
