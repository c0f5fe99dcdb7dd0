"""``iinode equipment add|list|show``: the equipment registry (identifiers) of a node.

``add`` registers OPC UA nodes (``--opcua-tag NAME=NODEID``) and Modbus registers
(``--modbus-register NAME=[TABLE:]ADDRESS[:TYPE]``) for the node's connectors to
read, or takes the connection object from a JSON ``--mapping`` file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, admin_client, console, run
from iinode.client import NodeClient
from iinode.connectivity.endpoints import MODBUS, OPCUA, check_equipment, check_node_id
from iinode.errors import ValueInvalid
from iinode.telemetry.model import Connection, DataType, Equipment, EquipmentKind, Tag

app = typer.Typer(no_args_is_help=True, help="Equipment registered as identifiers.")


def parse_tag(text: str) -> Tag:
    """``name[:type[:unit]]``, e.g. ``temperature:float:degC``."""
    name, _, rest = text.partition(":")
    kind, _, unit = rest.partition(":")
    try:
        return Tag(name, DataType(kind or "float"), unit)
    except ValueError:
        raise ValueInvalid(
            f"tag {text!r}: type must be one of {', '.join(t.value for t in DataType)}"
        ) from None


def _pair(text: str, option: str, form: str) -> tuple[str, str]:
    name, eq, rest = text.partition("=")
    if not eq or not name or not rest:
        raise ValueInvalid(f"{option} {text!r}: expected {form}")
    return name, rest


def parse_opcua_tag(text: str) -> tuple[str, str]:
    """``NAME=NODEID``, e.g. ``temperature=ns=2;i=5``: the tag and its OPC UA node id."""
    name, node_id = _pair(text, "--opcua-tag", "NAME=NODEID, e.g. temperature=ns=2;i=5")
    try:
        check_node_id(node_id)
    except ValueInvalid as exc:
        raise ValueInvalid(f"--opcua-tag {text!r}: {exc.message}") from None
    return name, node_id


_REGISTER_FORM = "NAME=[TABLE:]ADDRESS[:TYPE][:KEY=VALUE...], e.g. speed=holding:0:int32"
_REGISTER_OPTIONS = {"scale": float, "offset": float, "byte_order": str, "word_order": str}


def parse_modbus_register(text: str) -> dict[str, Any]:
    """``NAME=[TABLE:]ADDRESS[:TYPE][:KEY=VALUE...]``: one member of ``registers``.

    ADDRESS is the zero-based protocol address (0..65535), as in the connection
    schema (a Modicon reference 40001 is holding address 0); KEY is ``scale``,
    ``offset``, ``byte_order`` or ``word_order``.
    """
    name, spec = _pair(text, "--modbus-register", _REGISTER_FORM)
    parts = spec.split(":")
    item: dict[str, Any] = {"tag": name}
    if not parts[0].isdigit():
        item["table"] = parts.pop(0)
    if not parts or not parts[0].isdigit():
        raise ValueInvalid(f"--modbus-register {text!r}: expected {_REGISTER_FORM}")
    item["address"] = int(parts.pop(0))
    if parts and "=" not in parts[0]:
        item["type"] = parts.pop(0)
    for part in parts:
        key, eq, value = part.partition("=")
        convert = _REGISTER_OPTIONS.get(key)
        if not eq or convert is None:
            raise ValueInvalid(
                f"--modbus-register {text!r}: {part!r} is not one of "
                f"{', '.join(k + '=' for k in _REGISTER_OPTIONS)}"
            )
        try:
            item[key] = convert(value)
        except ValueError:
            raise ValueInvalid(
                f"--modbus-register {text!r}: {key} {value!r} is not a number"
            ) from None
    return item


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueInvalid(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueInvalid(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueInvalid(f"{path} must hold a JSON object (the connection)")
    return data


def _register_type(item: Mapping[str, Any]) -> DataType:
    """The tag type a register gives (used for tags not declared with ``--tag``)."""
    kind = str(item.get("type", "bool" if item.get("table") in ("coil", "discrete") else ""))
    if kind == "bool":
        return DataType.BOOL
    if "labels" in item:
        return DataType.STRING
    if kind.startswith("float") or "scale" in item or "offset" in item:
        return DataType.FLOAT
    return DataType.INT


def build_connection(
    protocol: str,
    address: str,
    *,
    opcua_tags: Sequence[str] = (),
    modbus_registers: Sequence[str] = (),
    mapping: Path | None = None,
    publishing_ms: int | None = None,
    unit: int | None = None,
    interval: float | None = None,
) -> tuple[Connection, dict[str, DataType]]:
    """The connection of ``iinode equipment add`` and the tags it reads (with their types).

    ``--opcua-tag`` options give OPC UA nodes, ``--modbus-register`` options a Modbus
    register map, a ``--mapping`` file a whole connection object (JSON, as in
    ``PUT /telemetry/equipment``); options add to the file's nodes or registers.
    """
    details: dict[str, Any] = _read_mapping(mapping) if mapping is not None else {}
    if "protocol" in details:
        given = str(details.pop("protocol"))
        if protocol not in ("none", given):
            raise ValueInvalid(f"--protocol {protocol} but {mapping} says {given}")
        protocol = given
    address = address or str(details.pop("address", ""))
    details.pop("options", None)
    if opcua_tags and modbus_registers:
        raise ValueInvalid("give --opcua-tag or --modbus-register, not both")
    for wanted, given_options in ((OPCUA, opcua_tags), (MODBUS, modbus_registers)):
        if given_options:
            if protocol not in ("none", wanted):
                raise ValueInvalid(f"--protocol {protocol} does not read {wanted} tags")
            protocol = wanted
    types: dict[str, DataType] = {}
    if protocol == OPCUA:
        nodes = dict(details.get("nodes") or {})
        nodes.update(parse_opcua_tag(t) for t in opcua_tags)
        endpoint = str(details.get("endpoint") or address)
        if not nodes or not endpoint:
            raise ValueInvalid("OPC UA equipment needs --address opc.tcp://… and --opcua-tag")
        details |= {"endpoint": endpoint, "nodes": nodes}
        if publishing_ms is not None:
            details["publishing_ms"] = publishing_ms
        types = dict.fromkeys(nodes, DataType.FLOAT)
        address = endpoint
    elif protocol == MODBUS:
        registers = [
            *(details.get("registers") or ()),
            *map(parse_modbus_register, modbus_registers),
        ]
        if address and "host" not in details:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueInvalid(f"Modbus --address {address!r}: expected HOST:PORT")
            details |= {"host": host, "port": int(port)}
        if "host" not in details or not registers:
            raise ValueInvalid("Modbus equipment needs --address HOST:PORT and --modbus-register")
        details["registers"] = registers
        if unit is not None:
            details["unit"] = unit
        if interval is not None:
            details["interval"] = interval
        types = {str(r.get("tag")): _register_type(r) for r in registers if isinstance(r, dict)}
        address = address or f"{details['host']}:{details.get('port', 502)}"
    elif details or (publishing_ms, unit, interval) != (None, None, None):
        raise ValueInvalid(f"--protocol {protocol} takes no OPC UA or Modbus options")
    return Connection(protocol, address, details=details), types


@app.command("add")
def add(
    handle: Annotated[str, typer.Argument(help="the equipment identifier, prefix/suffix")],
    node: NodeUrl,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="name[:type[:unit]], repeatable")
    ] = None,
    kind: Annotated[EquipmentKind, typer.Option(help="what it is")] = EquipmentKind.MACHINE,
    model: Annotated[str, typer.Option(help="model name")] = "",
    vendor: Annotated[str, typer.Option(help="vendor name")] = "",
    line: Annotated[str | None, typer.Option(help="identifier of its line")] = None,
    location: Annotated[str, typer.Option(help="where it stands")] = "",
    protocol: Annotated[
        str, typer.Option(help="sparkplug, mqtt-json, opcua, modbus, none")
    ] = "none",
    address: Annotated[
        str, typer.Option(help="protocol address: opc.tcp://host:port/… or Modbus host:port")
    ] = "",
    opcua_tag: Annotated[
        list[str] | None,
        typer.Option("--opcua-tag", help="NAME=NODEID read over OPC UA, e.g. temp=ns=2;i=5"),
    ] = None,
    modbus_register: Annotated[
        list[str] | None,
        typer.Option(
            "--modbus-register",
            help="NAME=[TABLE:]ADDRESS[:TYPE][:scale=…], zero-based address, "
            "e.g. speed=holding:0:int32",
        ),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(help="JSON file with the connection (nodes or registers), as over REST"),
    ] = None,
    publishing_ms: Annotated[int | None, typer.Option(help="OPC UA publishing interval")] = None,
    unit: Annotated[int | None, typer.Option(help="Modbus unit id (default 1)")] = None,
    interval: Annotated[
        float | None, typer.Option(help="Modbus polling interval in seconds (default 1)")
    ] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Register (or replace) a machine, line, sensor or controller with its tags.

    OPC UA nodes and Modbus registers the node reads itself are given with
    repeated --opcua-tag / --modbus-register (or a --mapping file); tags they
    name that no --tag declares are added (Modbus: typed by the register; OPC UA:
    float, which also takes integers).
    """
    connection, read = build_connection(
        protocol, address, opcua_tags=opcua_tag or (), modbus_registers=modbus_register or (),
        mapping=mapping, publishing_ms=publishing_ms, unit=unit, interval=interval,
    )  # fmt: skip
    tags = [parse_tag(t) for t in tag or ()]
    declared = {t.name for t in tags}
    tags += [Tag(name, data_type) for name, data_type in read.items() if name not in declared]
    item = Equipment(
        id=handle, kind=kind, model=model, vendor=vendor, line=line, location=location,
        connection=connection, tags=tuple(tags),
    )  # fmt: skip
    if connection.protocol in (OPCUA, MODBUS):
        check_equipment(item)  # the node checks too; this names the problem before sending

    async def go() -> dict[str, Any]:
        async with await admin_client(node, secret, admin) as c:
            return await c.put_equipment(item.to_json())

    stored = run(go())
    console.print(f"registered {stored['id']} with {len(stored['tags'])} tags at {node}")


def shown(value: object) -> str:
    """A value as JSON writes it: integers in full, ``true``/``false``, ``null`` for none."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


async def reader_client(node: str, secret: str | None, admin: str | None) -> NodeClient:
    """Authenticated when a secret is given (needed to list, and for records not public)."""
    if secret is None:
        return NodeClient(node)
    return await admin_client(node, secret, admin)


@app.command("list")
def list_(
    node: NodeUrl,
    prefix: Annotated[str | None, typer.Option(help="only under this prefix")] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """The equipment a node has registered (needs LIST_HANDLES: give --secret)."""

    async def go() -> list[dict[str, Any]]:
        async with await reader_client(node, secret, admin) as c:
            return await c.list_equipment(prefix)

    items = run(go())
    table = Table("identifier", "kind", "model", "line", "tags", "connection")
    for e in items:
        conn = e["connection"]
        table.add_row(e["id"], e["kind"], e["model"], e["line"] or "", str(len(e["tags"])),
                      f"{conn['protocol']} {conn['address']}".strip())  # fmt: skip
    console.print(table)
    console.print(f"{len(items)} equipment")


@app.command("show")
def show(
    handle: Annotated[str, typer.Argument(help="the equipment identifier")],
    node: NodeUrl,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """One equipment record with its tags and their latest values."""

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with await reader_client(node, secret, admin) as c:
            return await c.equipment(handle), await c.telemetry(handle, "live")

    item, live = run(go())
    console.print(f"[bold]{item['id']}[/bold] {item['kind']} {item['model']} {item['vendor']}")
    if item["line"]:
        console.print(f"  line: {item['line']}")
    table = Table("tag", "type", "unit", "latest", "time")
    tags = live.get("tags", {})
    for t in item["tags"]:
        state = tags.get(t["name"], {})
        table.add_row(t["name"], t["data_type"], t["unit"], shown(state.get("value", "")),
                      str(state.get("time", "")))  # fmt: skip
    console.print(table)
