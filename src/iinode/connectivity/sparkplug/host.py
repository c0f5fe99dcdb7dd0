"""The Sparkplug B host application without I/O: messages in, readings and replies out.

:class:`HostApplication` checks sequence numbers and ``bdSeq``, resolves
aliases, keeps template definitions and metric properties from birth
certificates, turns metrics into :class:`Reading` objects and answers trouble
(data before birth, unknown alias, a gap in sequence numbers) with a rebirth
request (NCMD ``Node Control/Rebirth``).

**Reordering.**  A message whose sequence number is ahead of the expected one
is held, not rejected: the specification's *Reorder Timeout* starts, and if
the missing messages arrive in time everything is processed in order.  When
the timeout passes (the caller drives time through :meth:`HostApplication.expire`
and :meth:`HostApplication.next_deadline`) the gap is reported, a rebirth is
requested and the held messages are processed so their data is kept.  At most
``max_held`` messages are held per edge node; one more ends the wait at once.
A message *behind* the expected number (late, or a QoS 1 redelivery) is
processed as late data and counted; it does not move the sequence.  A data
message whose envelope parses but whose metrics do not is counted as malformed
and yields no reading, but its sequence number counts (it was delivered), so
it causes no spurious gap.

The settings, results and per-edge-node state are in :mod:`.host_state`.

**Mapping to readings** (:mod:`.mapping`): scalars, arrays, data sets and
template instances become readings; the scalar properties of a birth
(``engUnit``, ``engLow``, ``engHigh`` ...) are kept per metric and returned by
:meth:`HostApplication.properties`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from iinode.connectivity.sparkplug.codec import (
    DataType,
    MessageType,
    Metric,
    Payload,
    SparkplugError,
    Template,
    Topic,
    metric_from_pb,
    parse_payload,
    payload_from_pb,
    scalar_from_pb,
    typed_value,
)
from iinode.connectivity.sparkplug.host_state import (
    Birth,
    DataMessage,
    HostResult,
    HostSettings,
    Known,
    NodeState,
    default_equipment,
)
from iinode.connectivity.sparkplug.mapping import (
    QUALITY,
    SCALARS,
    is_scalar,
    map_value,
    quality_of,
    scalar,
)
from iinode.connectivity.sparkplug.session import BDSEQ, Outgoing, rebirth_request
from iinode.telemetry.model import Quality, Reading

log = logging.getLogger(__name__)

_DATA = (MessageType.NDATA, MessageType.DDATA)
_BY_CODE = {int(d): d for d in DataType}
_CONTROL = ("Node Control/", "Device Control/")


class HostApplication:
    """The consuming side: Sparkplug messages in, readings and rebirth requests out.

    State is kept for at most ``settings.max_nodes`` edge nodes: a message from
    one more evicts the oldest tracked node that is offline (``nodes_evicted``),
    and is refused as a protocol error when all are online (``nodes_refused``),
    so topics naming random edge nodes cannot grow memory without end.
    """

    def __init__(
        self,
        host_id: str = "iinode",
        equipment_of: Callable[[str, str, str | None], str | None] = default_equipment,
        settings: HostSettings | None = None,
    ) -> None:
        self.host_id = host_id
        self.equipment_of = equipment_of
        self.settings = settings or HostSettings()
        self._nodes: dict[tuple[str, str], NodeState] = {}
        self._waiting: set[tuple[str, str]] = set()
        self.nodes_evicted = 0
        self.nodes_refused = 0

    @property
    def tracked_nodes(self) -> int:
        return len(self._nodes)

    def _room(self) -> bool:
        """Make room for one more edge node; False if every tracked one is online."""
        if len(self._nodes) < self.settings.max_nodes:
            return True
        for key, node in self._nodes.items():
            if not node.online and not node.held:
                del self._nodes[key]
                self._waiting.discard(key)
                self.nodes_evicted += 1
                return True
        self.nodes_refused += 1
        return False

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

    def properties(
        self, group: str, edge_node: str, device: str | None, metric: str
    ) -> dict[str, Any]:
        """Scalar properties of a metric from its last birth (``engUnit`` ...), or ``{}``."""
        node = self._nodes.get((group, edge_node))
        return dict(node.properties.get((device, metric), {})) if node is not None else {}

    def next_deadline(self) -> int | None:
        """When (µs) the earliest reorder wait ends, or ``None`` if nothing is held."""
        timeout = self.settings.reorder_timeout_us
        ends = [
            since + timeout
            for key in self._waiting
            if (since := self._nodes[key].gap_since) is not None
        ]
        return min(ends) if ends else None

    def expire(self, now_us: int) -> HostResult:
        """End every reorder wait older than the timeout (see the module docstring)."""
        result = HostResult()
        timeout = self.settings.reorder_timeout_us
        for key in sorted(self._waiting):
            node = self._nodes[key]
            if node.gap_since is not None and now_us - node.gap_since >= timeout:
                self._give_up(key, node, now_us, result, rebirth=True)
        return result

    def receive(self, topic: str, data: bytes, now_us: int, token: object = None) -> HostResult:
        """Process one message.  ``token`` (the caller's handle on the message, e.g. to
        acknowledge it) comes back in ``HostResult.released`` once a message that was
        held for reordering is processed or dropped."""
        result = HostResult()
        try:
            parsed = Topic.parse(topic)
            if parsed.message_type in (MessageType.NCMD, MessageType.DCMD, MessageType.STATE):
                return result
            pb = parse_payload(data)
            payload: Payload | DataMessage
            if parsed.message_type in _DATA:
                ts = pb.timestamp if pb.HasField("timestamp") else None
                payload = DataMessage(pb.seq if pb.HasField("seq") else None, ts, pb)
            else:
                payload = payload_from_pb(pb)
        except SparkplugError as exc:
            result.malformed.append(f"{topic}: {exc.message}")
            return result
        self._handle(parsed, payload, now_us, result, token)
        return result

    # -- sequence handling ------------------------------------------------------------------

    def _handle(
        self, t: Topic, p: Payload | DataMessage, now_us: int, result: HostResult, token: object
    ) -> None:
        key = (t.group, t.edge_node)
        node = self._nodes.get(key)
        if node is None:
            if not self._room():
                result.errors.append(
                    f"{t}: {self.settings.max_nodes} edge nodes are online already; ignored"
                )
                return
            node = self._nodes[key] = NodeState()
        kind = t.message_type
        if kind is MessageType.NDEATH:
            bdseq = _metric_value(p.metrics, BDSEQ) if isinstance(p, Payload) else None
            if node.bdseq is not None and bdseq is not None and bdseq != node.bdseq:
                log.info("ignoring stale NDEATH of %s/%s (bdSeq %s)", *key, bdseq)
                return
            if node.held:
                self._give_up(key, node, now_us, result, rebirth=False)
            node.online = False
            result.offline.extend(
                e for d in [None, *sorted(node.devices)] if (e := self.equipment_of(*key, d))
            )
            return
        if kind is MessageType.NBIRTH and isinstance(p, Payload):
            node.bdseq = _metric_value(p.metrics, BDSEQ)
            node.seq = p.seq
            node.online = True
            node.reset(result)
            self._waiting.discard(key)
            self._process(t, p, node, now_us, result)
            return
        if not node.online:
            result.errors.append(f"{t}: {kind.value} before NBIRTH")
            result.replies.append(rebirth_request(t.group, t.edge_node, now_us // 1000))
            return
        expected = None if node.seq is None else (node.seq + 1) % 256
        if p.seq is None or expected is None or p.seq == expected:
            if p.seq is None:
                result.errors.append(f"{t}: {kind.value} without a sequence number")
                _request_rebirth(t, now_us, result)
            node.seq = p.seq
            self._process(t, p, node, now_us, result)
            self._drain(key, node, now_us, result)
            return
        ahead = (p.seq - expected) % 256
        timeout = self.settings.reorder_timeout_us
        if ahead >= 128:
            result.errors.append(f"{t}: late message, sequence {p.seq} before {expected}")
            self._process(t, p, node, now_us, result)
            return
        if timeout == 0:
            result.errors.append(f"{t}: sequence {p.seq} where {expected} was expected")
            _request_rebirth(t, now_us, result)
            node.seq = p.seq
            self._process(t, p, node, now_us, result)
            return
        if p.seq in node.held:
            # A redelivery: the copy held already is dropped, this one waits in its place.
            result.errors.append(f"{t}: sequence {p.seq} received twice while reordering")
            result.release([node.held[p.seq][2]])
        node.held[p.seq] = (t, p, token)
        result.held += 1
        if node.gap_since is None:
            node.gap_since = now_us
            self._waiting.add(key)
        if len(node.held) > self.settings.max_held:
            self._give_up(key, node, now_us, result, rebirth=True)

    def _drain(self, key: tuple[str, str], node: NodeState, now_us: int, r: HostResult) -> None:
        if not node.held:
            return
        while node.seq is not None and (nxt := (node.seq + 1) % 256) in node.held:
            t, p, token = node.held.pop(nxt)
            node.seq = nxt
            self._process(t, p, node, now_us, r)
            r.release([token])
        if node.held:
            node.gap_since = now_us
        else:
            node.gap_since = None
            self._waiting.discard(key)

    def _give_up(
        self, key: tuple[str, str], node: NodeState, now_us: int, r: HostResult, *, rebirth: bool
    ) -> None:
        expected = 0 if node.seq is None else (node.seq + 1) % 256
        order = sorted(node.held, key=lambda s: (s - expected) % 256)
        held, node.held = node.held, {}
        node.gap_since = None
        self._waiting.discard(key)
        if not order:
            return
        first_topic = held[order[0]][0]
        r.errors.append(
            f"{first_topic}: sequence gap, {(order[0] - expected) % 256} message(s) missing "
            f"before {order[0]}" + (" (reorder timeout)" if rebirth else "")
        )
        if rebirth:
            _request_rebirth(first_topic, now_us, r)
        for seq in order:
            t, p, token = held[seq]
            node.seq = seq
            self._process(t, p, node, now_us, r)
            r.release([token])

    # -- messages to readings ---------------------------------------------------------------

    def _process(
        self, t: Topic, p: Payload | DataMessage, node: NodeState, now_us: int, r: HostResult
    ) -> None:
        kind = t.message_type
        if kind is MessageType.DDEATH:
            node.devices.discard(t.device or "")
            if eq := self.equipment_of(t.group, t.edge_node, t.device):
                r.offline.append(eq)
            return
        device = t.device
        if kind is MessageType.DBIRTH and device:
            node.devices.add(device)
        equipment = self.equipment_of(t.group, t.edge_node, device)
        if kind in (MessageType.NBIRTH, MessageType.DBIRTH) and isinstance(p, Payload):
            r.births.append(Birth(
                t.group, t.edge_node, device, equipment,
                {m.name: m.value for m in p.metrics if m.name and is_scalar(m.value)},
                {m.name: {k: v for k, _, v in m.properties if is_scalar(v)}
                 for m in p.metrics if m.name and m.properties},
            ))  # fmt: skip
        if equipment is None:
            r.errors.append(f"{t}: no equipment identifier for this node/device")
            return
        default_us = p.timestamp * 1000 if p.timestamp is not None else now_us
        if isinstance(p, Payload):
            for m in p.metrics:
                self._metric(t, m, node, equipment, default_us, now_us, r)
            return
        # Data messages: plain scalar metrics by alias are mapped straight from protobuf;
        # anything else is converted (and checked) as a Metric first.  A malformed
        # metric makes the whole message malformed: none of its readings are kept.
        out = HostResult(replies=r.replies)
        readings = out.readings
        aliases = node.aliases
        good = Quality.GOOD
        try:
            for pm in p.pb.metrics:
                known = None
                if not pm.HasField("name") and not pm.HasField("properties"):
                    known = aliases.get((device, pm.alias)) if pm.HasField("alias") else None
                if known is not None:
                    code = pm.datatype
                    dtype = _BY_CODE.get(code, known.datatype) if code else known.datatype
                    value = scalar_from_pb(pm, dtype)
                    if value is not None and not known.name.startswith(_CONTROL):
                        ts = pm.timestamp * 1000 if pm.HasField("timestamp") else default_us
                        readings.append(Reading(equipment, known.name, ts, value, good))
                        continue
                self._metric(t, metric_from_pb(pm), node, equipment, default_us, now_us, out)
        except SparkplugError as exc:
            r.malformed.append(f"{t}: {exc.message}")
            return
        r.readings += readings
        r.errors += out.errors
        r.skipped += out.skipped

    def _metric(
        self,
        t: Topic,
        m: Metric,
        node: NodeState,
        equipment: str,
        default_us: int,
        now_us: int,
        r: HostResult,
    ) -> None:
        device = t.device
        kind = t.message_type
        name, dtype, value = m.name, m.datatype, m.value
        ref = None
        if kind is MessageType.NBIRTH or kind is MessageType.DBIRTH:
            if name is None:
                r.errors.append(f"{t}: birth metric without a name")
                return
            ref = value.template_ref if isinstance(value, Template) else None
            if m.alias is not None:
                node.aliases[(device, m.alias)] = Known(name, dtype, ref)
            self._remember(node, device, name, m, ref)
        elif name is None:
            known = node.aliases.get((device, m.alias)) if m.alias is not None else None
            if known is None:
                r.errors.append(f"{t}: unknown alias {m.alias}")
                _request_rebirth(t, now_us, r)
                return
            name, ref = known.name, known.template_ref
            if dtype is DataType.UNKNOWN:
                dtype = known.datatype
                try:
                    value = typed_value(value, dtype)
                except SparkplugError as exc:
                    r.errors.append(f"{t}: metric {name!r}: {exc.message}")
                    return
        if name == BDSEQ or name.startswith(_CONTROL):
            return
        when = m.timestamp * 1000 if m.timestamp is not None else default_us
        if dtype in SCALARS and not m.properties:
            if value is None:
                r.skipped += 1
                return
            r.readings.append(Reading(equipment, name, when, scalar(value, dtype), Quality.GOOD))
            return
        quality = quality_of(m.property(QUALITY))
        map_value(node.templates, equipment, name, dtype, value, when, quality, ref, r)

    def _remember(
        self, node: NodeState, device: str | None, name: str, m: Metric, ref: str | None
    ) -> None:
        if isinstance(m.value, Template) and m.value.is_definition:
            node.templates[name] = m.value
        if ref is not None:
            node.refs[(device, name)] = ref
        props = {k: v for k, _, v in m.properties if k != QUALITY and is_scalar(v)}
        if props:
            node.properties[(device, name)] = props


def _request_rebirth(t: Topic, now_us: int, r: HostResult) -> None:
    suffix = f"/NCMD/{t.edge_node}"
    if not any(o.topic.endswith(suffix) for o in r.replies):
        r.replies.append(rebirth_request(t.group, t.edge_node, now_us // 1000))


def _metric_value(metrics: Iterable[Metric], name: str) -> Any:
    for m in metrics:
        if m.name == name:
            return m.value
    return None


__all__ = ["Birth", "HostApplication", "HostResult", "HostSettings", "default_equipment"]
