"""Connection details of OPC UA and Modbus equipment (sans-IO): schema, checks, plan.

An equipment record's ``IINODE_EQUIPMENT`` value carries a ``connection``
object.  For the two polled/subscribed protocols its members are:

OPC UA::

    {"protocol": "opcua", "endpoint": "opc.tcp://10.0.0.7:4840",
     "nodes": {"temperature": "ns=2;s=M001/temperature", "good_count": "ns=2;i=1007"},
     "publishing_ms": 500}

Modbus TCP::

    {"protocol": "modbus", "host": "10.0.0.5", "port": 502, "unit": 1, "interval": 1.0,
     "registers": [{"tag": "temperature", "address": 0, "table": "holding",
                    "type": "float32", "scale": 1.0, "offset": 0.0,
                    "byte_order": "big", "word_order": "big"},
                   {"tag": "state", "address": 10, "type": "uint16",
                    "labels": {"0": "running", "1": "idle"}}]}

``endpoint`` may be given as ``address`` instead; ``publishing_ms`` (default
500), ``port`` (502), ``unit`` (1), ``interval`` (1.0 s) and every register
member but ``tag`` and ``address`` are optional.  Every tag named must be one of
the equipment's tags, and a register's type must give values of that tag's data
type (``bool`` for coils and discrete inputs, ``labels`` for ``string`` tags,
floating types or scaling for ``float`` tags).  :func:`check_equipment` raises
``ValueInvalid`` naming the first problem; :func:`plan` groups valid equipment
by endpoint (one OPC UA session per endpoint URL, one Modbus connection per
host, port and unit) and reports the equipment it cannot use and why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from iinode.connectivity.modbus_map import LAYOUT, RegisterMap, RegisterPoint, RegisterType, Table
from iinode.errors import ValueInvalid
from iinode.telemetry.model import Connection, DataType, Equipment

OPCUA = "opcua"
MODBUS = "modbus"
PROTOCOLS = (OPCUA, MODBUS)

_OPCUA_KEYS = frozenset({"endpoint", "nodes", "publishing_ms"})
_MODBUS_KEYS = frozenset({"host", "port", "unit", "interval", "registers"})
_REGISTER_KEYS = frozenset(
    {"tag", "address", "table", "type", "scale", "offset", "byte_order", "word_order", "labels"}
)
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_NODE_ID = re.compile(
    rf"(?:ns=(?P<ns>\d{{1,5}});)?(?:i=(?P<i>\d{{1,10}})|s=.+|g={_GUID}|b=[A-Za-z0-9+/]+=*)",
    re.DOTALL,
)
_HOST = re.compile(r"[A-Za-z0-9._:\-\[\]]{1,253}")


@dataclass(frozen=True, slots=True)
class OpcUaEndpoint:
    """One OPC UA session: the endpoint and ``(node id, equipment, tag)`` of every node."""

    endpoint: str
    publishing_ms: int
    nodes: tuple[tuple[str, str, str], ...]
    equipment: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{OPCUA}:{self.endpoint}"


@dataclass(frozen=True, slots=True)
class ModbusEndpoint:
    """One Modbus TCP device (host, port, unit) and the points read from it."""

    host: str
    port: int
    unit: int
    interval: float
    points: tuple[RegisterPoint, ...]
    equipment: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{MODBUS}:{self.host}:{self.port}/{self.unit}"


Endpoint = OpcUaEndpoint | ModbusEndpoint


@dataclass(slots=True)
class Plan:
    """Endpoints by name, and the equipment left out with the reason."""

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)


def _fail(equipment: Equipment, message: str) -> ValueInvalid:
    return ValueInvalid(
        f"connection of {equipment.id} ({equipment.connection.protocol}): {message}",
        handle=equipment.id,
    )


def _integer(e: Equipment, name: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _fail(e, f'"{name}" must be an integer {low}..{high}, not {value!r}')
    return value


def _number(e: Equipment, name: str, value: Any, low: float, high: float) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        raise _fail(e, f'"{name}" must be a number {low:g}..{high:g}, not {value!r}')
    return float(value)


def _unknown(e: Equipment, given: Iterable[str], known: frozenset[str], where: str) -> None:
    extra = sorted(set(given) - known)
    if extra:
        raise _fail(e, f"{where} has unknown member(s) {', '.join(extra)}; known: "
                       f"{', '.join(sorted(known))}")  # fmt: skip


def _tag_type(e: Equipment, tag: Any, where: str) -> DataType:
    if not isinstance(tag, str) or not tag:
        raise _fail(e, f"{where} needs a tag name")
    found = e.tag(tag)
    if found is None:
        names = ", ".join(t.name for t in e.tags) or "none"
        raise _fail(e, f"{where} names tag {tag!r}, which the equipment does not have "
                       f"(its tags: {names})")  # fmt: skip
    return found.data_type


def check_node_id(text: str) -> str:
    """``text`` if it is an OPC UA node id in its string form (Part 6, 5.3.1.10)."""
    m = _NODE_ID.fullmatch(text)
    if m is None or (m["ns"] and int(m["ns"]) > 65535) or (m["i"] and int(m["i"]) >= 2**32):
        raise ValueInvalid(
            f"{text!r} is not an OPC UA node id such as 'ns=2;s=Line1/Press' or 'ns=3;i=1007'"
        )
    return text


def opcua_endpoint(e: Equipment) -> OpcUaEndpoint:
    """The checked OPC UA details of one piece of equipment (``ValueInvalid`` if wrong)."""
    d = e.connection.details
    _unknown(e, d, _OPCUA_KEYS, "the connection")
    url = d.get("endpoint", e.connection.address)
    if not isinstance(url, str) or not url:
        raise _fail(e, 'needs "endpoint": "opc.tcp://host:4840"')
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _fail(e, f"endpoint {url!r} is not a URL") from None
    if parts.scheme != "opc.tcp" or not parts.hostname or (port is not None and port == 0):
        raise _fail(e, f"endpoint {url!r} must look like opc.tcp://host:4840")
    nodes = d.get("nodes")
    if not isinstance(nodes, Mapping) or not nodes:
        raise _fail(e, 'needs "nodes": {"<tag>": "<node id>", ...} with at least one node')
    bound: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}
    for tag, node_id in nodes.items():
        _tag_type(e, tag, f"node {node_id!r}")
        if not isinstance(node_id, str):
            raise _fail(e, f"node id of tag {tag!r} must be a string")
        try:
            check_node_id(node_id)
        except ValueInvalid as exc:
            raise _fail(e, f"tag {tag!r}: {exc.message}") from None
        if node_id in seen:
            raise _fail(e, f"node {node_id} is given for both {seen[node_id]!r} and {tag!r}")
        seen[node_id] = tag
        bound.append((node_id, e.id, tag))
    publishing = _integer(e, "publishing_ms", d.get("publishing_ms", 500), 10, 3_600_000)
    return OpcUaEndpoint(url, publishing, tuple(sorted(bound)), (e.id,))


def _labels(e: Equipment, where: str, value: Any) -> tuple[tuple[int, str], ...]:
    if not isinstance(value, Mapping) or not value:
        raise _fail(e, f'{where}: "labels" must be an object {{"<code>": "<text>", ...}}')
    out: list[tuple[int, str]] = []
    for code, text in value.items():
        try:
            number = int(code)
        except (TypeError, ValueError):
            raise _fail(e, f"{where}: label code {code!r} is not an integer") from None
        if not isinstance(text, str):
            raise _fail(e, f"{where}: label {code!r} must be text")
        out.append((number, text))
    return tuple(sorted(out))


def _register(e: Equipment, index: int, item: Any) -> RegisterPoint:
    where = f"register {index}"
    if not isinstance(item, Mapping):
        raise _fail(e, f"{where} must be an object")
    _unknown(e, item, _REGISTER_KEYS, where)
    data_type = _tag_type(e, item.get("tag"), where)
    where = f"register {index} ({item['tag']})"
    if "address" not in item:
        raise _fail(e, f'{where} needs "address" (0..65535)')
    address = _integer(e, "address", item["address"], 0, 65535)
    try:
        table = Table(item.get("table", "holding"))
    except ValueError:
        raise _fail(e, f"{where}: table {item.get('table')!r} is not one of "
                       f"{', '.join(t.value for t in Table)}") from None  # fmt: skip
    default = RegisterType.BOOL if table.is_bits else RegisterType.UINT16
    try:
        kind = RegisterType(item.get("type", default))
    except ValueError:
        raise _fail(e, f"{where}: type {item.get('type')!r} is not one of "
                       f"{', '.join(t.value for t in RegisterType)}") from None  # fmt: skip
    labels = _labels(e, where, item["labels"]) if "labels" in item else ()
    try:
        point = RegisterPoint(
            e.id,
            item["tag"],
            table,
            address,
            kind,
            scale=_number(e, "scale", item.get("scale", 1.0), -1e12, 1e12),
            offset=_number(e, "offset", item.get("offset", 0.0), -1e12, 1e12),
            byte_order=str(item.get("byte_order", "big")),
            word_order=str(item.get("word_order", "big")),
            labels=labels,
        )
    except ValueInvalid as exc:
        raise _fail(e, f"{where}: {exc.message}") from None
    gives = _gives(point)
    if not (gives is data_type or (gives is DataType.INT and data_type is DataType.FLOAT)):
        raise _fail(e, f"{where}: a {kind.value} register gives {gives.value} values, "
                       f"but the tag is {data_type.value}")  # fmt: skip
    return point


def _gives(point: RegisterPoint) -> DataType:
    if point.type is RegisterType.BOOL:
        return DataType.BOOL
    if point.labels:
        return DataType.STRING
    if point.scaled or LAYOUT[point.type][1] in ("f", "d"):
        return DataType.FLOAT
    return DataType.INT


def modbus_endpoint(e: Equipment) -> ModbusEndpoint:
    """The checked Modbus details of one piece of equipment (``ValueInvalid`` if wrong)."""
    d = e.connection.details
    _unknown(e, d, _MODBUS_KEYS, "the connection")
    host = d.get("host")
    if not isinstance(host, str) or _HOST.fullmatch(host) is None:
        raise _fail(e, f'needs "host": a host name or address, not {host!r}')
    port = _integer(e, "port", d.get("port", 502), 1, 65535)
    unit = _integer(e, "unit", d.get("unit", 1), 0, 255)
    interval = _number(e, "interval", d.get("interval", 1.0), 0.05, 86400.0)
    registers = d.get("registers")
    if not isinstance(registers, list) or not registers:
        raise _fail(e, 'needs "registers": [{"tag", "address", "type", ...}, ...]')
    points = [_register(e, i, item) for i, item in enumerate(registers)]
    tags = [p.tag for p in points]
    if len(set(tags)) != len(tags):
        raise _fail(e, "a tag is read from two registers")
    try:
        RegisterMap(points)
    except ValueInvalid as exc:
        raise _fail(e, exc.message) from None
    return ModbusEndpoint(host, port, unit, interval, tuple(points), (e.id,))


def register_json(point: RegisterPoint) -> dict[str, Any]:
    """The schema's object for one register (the inverse of reading it)."""
    out: dict[str, Any] = {
        "tag": point.tag,
        "address": point.address,
        "table": point.table.value,
        "type": point.type.value,
    }
    if point.scaled:
        out |= {"scale": point.scale, "offset": point.offset}
    if point.byte_order != "big" or point.word_order != "big":
        out |= {"byte_order": point.byte_order, "word_order": point.word_order}
    if point.labels:
        out["labels"] = {str(code): text for code, text in point.labels}
    return out


def opcua_connection(
    endpoint: str, nodes: Mapping[str, str], *, publishing_ms: int = 500
) -> Connection:
    """Connection details of equipment read over OPC UA (``nodes``: tag -> node id)."""
    details = {"endpoint": endpoint, "nodes": dict(nodes), "publishing_ms": publishing_ms}
    return Connection(OPCUA, endpoint, details=details)


def modbus_connection(
    host: str,
    port: int,
    points: Iterable[RegisterPoint],
    *,
    unit: int = 1,
    interval: float = 1.0,
) -> Connection:
    """Connection details of equipment polled over Modbus TCP."""
    details = {
        "host": host,
        "port": port,
        "unit": unit,
        "interval": interval,
        "registers": [register_json(p) for p in points],
    }
    return Connection(MODBUS, f"{host}:{port}", details=details)


def endpoint_of(e: Equipment) -> Endpoint | None:
    """The endpoint of ``e`` (``None`` for other protocols); ``ValueInvalid`` if wrong."""
    protocol = e.connection.protocol
    if protocol == OPCUA:
        return opcua_endpoint(e)
    if protocol == MODBUS:
        return modbus_endpoint(e)
    return None


def check_equipment(e: Equipment) -> None:
    """Refuse (``ValueInvalid``) OPC UA or Modbus equipment whose details are wrong."""
    endpoint_of(e)


def _merge(a: Endpoint, b: Endpoint) -> Endpoint:
    """Two equipment's parts of one endpoint as one (``ValueInvalid`` if they clash)."""
    if isinstance(a, OpcUaEndpoint) and isinstance(b, OpcUaEndpoint):
        taken = {n[0]: n[1] for n in a.nodes}
        for node_id, _, _ in b.nodes:
            if node_id in taken:
                raise ValueInvalid(f"node {node_id} at {a.endpoint} is already read for "
                                   f"{taken[node_id]}")  # fmt: skip
        return OpcUaEndpoint(
            a.endpoint,
            min(a.publishing_ms, b.publishing_ms),
            tuple(sorted(a.nodes + b.nodes)),
            a.equipment + b.equipment,
        )
    assert isinstance(a, ModbusEndpoint)
    assert isinstance(b, ModbusEndpoint)
    points = a.points + b.points
    RegisterMap(points)  # overlapping registers of different equipment
    return ModbusEndpoint(
        a.host, a.port, a.unit, min(a.interval, b.interval), points, a.equipment + b.equipment
    )


def plan(equipment: Iterable[Equipment]) -> Plan:
    """Group OPC UA and Modbus equipment by endpoint; keep the rest out with a reason.

    Equipment is taken in id order, so of two that clash on one endpoint (the
    same node, overlapping registers) the first keeps it.
    """
    out = Plan()
    for e in sorted(equipment, key=lambda item: item.id):
        try:
            part = endpoint_of(e)
        except ValueInvalid as exc:
            out.invalid[e.id] = exc.message
            continue
        if part is None:
            continue
        have = out.endpoints.get(part.name)
        if have is None:
            out.endpoints[part.name] = part
            continue
        try:
            out.endpoints[part.name] = _merge(have, part)
        except ValueInvalid as exc:
            out.invalid[e.id] = f"{e.id}: {exc.message}"
    return out


__all__ = [
    "MODBUS",
    "OPCUA",
    "PROTOCOLS",
    "Endpoint",
    "ModbusEndpoint",
    "OpcUaEndpoint",
    "Plan",
    "check_equipment",
    "check_node_id",
    "endpoint_of",
    "modbus_connection",
    "modbus_endpoint",
    "opcua_connection",
    "opcua_endpoint",
    "plan",
    "register_json",
]
