"""Sparkplug B session logic without I/O: an edge node and a host application.

:class:`EdgeNode` builds the messages an edge node publishes (death
certificate as MQTT will, births with aliases, data by alias, sequence numbers
0..255, rebirth on command).  :class:`HostApplication` consumes them: it checks
sequence numbers and ``bdSeq``, resolves aliases, turns metrics into readings
and answers trouble (data before birth, unknown alias, a gap in sequence
numbers) with a rebirth request (NCMD ``Node Control/Rebirth``).  Both only
return :class:`Outgoing` messages; the MQTT connector sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

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
from iinode.errors import InvalidHandle
from iinode.identifiers import HandleName
from iinode.telemetry.model import Quality, Reading, Value

log = logging.getLogger(__name__)

BDSEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
_SCALARS = {
    DataType.INT8, DataType.INT16, DataType.INT32, DataType.INT64, DataType.UINT8,
    DataType.UINT16, DataType.UINT32, DataType.UINT64, DataType.FLOAT, DataType.DOUBLE,
    DataType.BOOLEAN, DataType.STRING, DataType.TEXT, DataType.UUID, DataType.DATETIME,
}  # fmt: skip


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


def default_equipment(group: str, edge_node: str, device: str | None) -> str | None:
    """``<group>/<device>`` (or ``<group>/<edge node>`` for node metrics) if a valid handle."""
    try:
        return str(HandleName(group, device if device is not None else edge_node))
    except InvalidHandle:
        return None


@dataclass(slots=True)
class _NodeState:
    bdseq: int | None = None
    seq: int | None = None
    online: bool = False
    aliases: dict[tuple[str | None, int], tuple[str, DataType]] = field(default_factory=dict)
    devices: set[str] = field(default_factory=set)


@dataclass(slots=True)
class HostResult:
    """What one received message produced."""

    readings: list[Reading] = field(default_factory=list)
    replies: list[Outgoing] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    skipped: int = 0


class HostApplication:
    """The consuming side: Sparkplug messages in, readings and rebirth requests out."""

    def __init__(
        self,
        host_id: str = "iinode",
        equipment_of: Callable[[str, str, str | None], str | None] = default_equipment,
    ) -> None:
        self.host_id = host_id
        self.equipment_of = equipment_of
        self._nodes: dict[tuple[str, str], _NodeState] = {}

    def state(self, online: bool, now_ms: int) -> Outgoing:
        """The retained STATE message of this host (publish online after connecting)."""
        body = orjson.dumps({"online": online, "timestamp": now_ms})
        return Outgoing(str(Topic(MessageType.STATE, host_id=self.host_id)), body, 1, True)

    @staticmethod
    def subscriptions(groups: Iterable[str] = ("+",)) -> list[str]:
        """Topic filters for the edge-node messages of ``groups`` (all groups by default)."""
        kinds = ("NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA")
        return [f"spBv1.0/{g}/{t}/#" for g in groups for t in kinds]

    def node_online(self, group: str, edge_node: str) -> bool:
        node = self._nodes.get((group, edge_node))
        return node is not None and node.online

    def receive(self, topic: str, data: bytes, now_us: int) -> HostResult:
        result = HostResult()
        try:
            parsed = Topic.parse(topic)
            if parsed.message_type in (MessageType.NCMD, MessageType.DCMD, MessageType.STATE):
                return result
            payload = decode_payload(data)
        except SparkplugError as exc:
            result.errors.append(f"{topic}: {exc.message}")
            return result
        self._handle(parsed, payload, now_us, result)
        return result

    def _handle(self, t: Topic, p: Payload, now_us: int, result: HostResult) -> None:
        key = (t.group, t.edge_node)
        node = self._nodes.setdefault(key, _NodeState())
        kind = t.message_type
        now_ms = now_us // 1000
        if kind is MessageType.NDEATH:
            bdseq = _metric_value(p.metrics, BDSEQ)
            if node.bdseq is not None and bdseq is not None and bdseq != node.bdseq:
                log.info("ignoring stale NDEATH of %s/%s (bdSeq %s)", *key, bdseq)
                return
            node.online = False
            result.offline.extend(
                e for d in [None, *sorted(node.devices)] if (e := self.equipment_of(*key, d))
            )
            return
        if kind is MessageType.NBIRTH:
            node.bdseq = _metric_value(p.metrics, BDSEQ)
            node.seq = p.seq
            node.online = True
            node.aliases = {}
            node.devices = set()
        elif not node.online:
            result.errors.append(f"{t}: {kind.value} before NBIRTH")
            result.replies.append(rebirth_request(t.group, t.edge_node, now_ms))
            return
        else:
            expected = None if node.seq is None else (node.seq + 1) % 256
            if p.seq is None or p.seq != expected:
                result.errors.append(f"{t}: sequence {p.seq} where {expected} was expected")
                result.replies.append(rebirth_request(t.group, t.edge_node, now_ms))
            node.seq = p.seq
        if kind is MessageType.DDEATH:
            node.devices.discard(t.device or "")
            if eq := self.equipment_of(t.group, t.edge_node, t.device):
                result.offline.append(eq)
            return
        if kind is MessageType.DBIRTH and t.device:
            node.devices.add(t.device)
        birth = kind in (MessageType.NBIRTH, MessageType.DBIRTH)
        equipment = self.equipment_of(t.group, t.edge_node, t.device)
        if equipment is None:
            result.errors.append(f"{t}: no equipment identifier for this node/device")
            return
        default_us = p.timestamp * 1000 if p.timestamp is not None else now_us
        for m in p.metrics:
            if birth and m.alias is not None and m.name is not None:
                node.aliases[(t.device, m.alias)] = (m.name, m.datatype)
            name, dtype = m.name, m.datatype
            if name is None:
                entry = node.aliases.get((t.device, m.alias)) if m.alias is not None else None
                if entry is None:
                    result.errors.append(f"{t}: unknown alias {m.alias}")
                    if not any(r.topic.endswith(f"/NCMD/{t.edge_node}") for r in result.replies):
                        result.replies.append(rebirth_request(t.group, t.edge_node, now_ms))
                    continue
                name, known = entry
                dtype = dtype if dtype is not DataType.UNKNOWN else known
            if name == BDSEQ or name.startswith(("Node Control/", "Device Control/")):
                continue
            value = _reading_value(m.value, dtype)
            if value is None:
                result.skipped += 1
                continue
            quality = m.property("Quality")
            when = m.timestamp * 1000 if m.timestamp is not None else default_us
            result.readings.append(
                Reading(
                    equipment,
                    name,
                    when,
                    value,
                    Quality.GOOD if quality is None else Quality(quality),
                )
            )


def _metric_value(metrics: Iterable[Metric], name: str) -> Any:
    for m in metrics:
        if m.name == name:
            return m.value
    return None


def _reading_value(value: Any, dtype: DataType) -> Value | None:
    if value is None or dtype not in _SCALARS:
        return None
    if dtype in (DataType.FLOAT, DataType.DOUBLE):
        return float(value)
    if isinstance(value, bool | int | str):
        return value
    return None
