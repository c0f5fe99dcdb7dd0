"""``iinode equipment add|list|show``: the equipment registry (identifiers) of a node."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, admin_client, console, run
from iinode.client import NodeClient
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
    address: Annotated[str, typer.Option(help="protocol address")] = "",
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Register (or replace) a machine, line, sensor or controller with its tags."""
    item = Equipment(
        id=handle, kind=kind, model=model, vendor=vendor, line=line, location=location,
        connection=Connection(protocol, address), tags=tuple(parse_tag(t) for t in tag or ()),
    )  # fmt: skip

    async def go() -> dict[str, Any]:
        async with await admin_client(node, secret, admin) as c:
            return await c.put_equipment(item.to_json())

    stored = run(go())
    console.print(f"registered {stored['id']} with {len(stored['tags'])} tags at {node}")


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
        table.add_row(t["name"], t["data_type"], t["unit"], str(state.get("value", "")),
                      str(state.get("time", "")))  # fmt: skip
    console.print(table)
