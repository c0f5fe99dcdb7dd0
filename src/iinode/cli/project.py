"""``iinode project``: product development projects and their milestone events.

The events feed the *product development cycle* metric of the KPI reports (from
``project_start`` to the first ``first_good_lot``).  Recording needs the node's
administrator (or MODIFY_VALUE on the project's prefix); listing is open.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, admin_client, console, run
from iinode.client import NodeClient

app = typer.Typer(no_args_is_help=True, help="Product development projects.")
event_app = typer.Typer(no_args_is_help=True, help="A project's milestone events.")
app.add_typer(event_app, name="event")


class Kind(enum.StrEnum):
    PROJECT_START = "project_start"
    DESIGN_FREEZE = "design_freeze"
    FIRST_PROTOTYPE = "first_prototype"
    FIRST_GOOD_LOT = "first_good_lot"


@event_app.command("add")
def add(
    project: Annotated[str, typer.Argument(help="the project's identifier, e.g. 88.118.8/PRJ-7")],
    kind: Annotated[Kind, typer.Argument(help="which milestone")],
    node: NodeUrl,
    time: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default: now)")] = None,
    note: Annotated[str, typer.Option(help="a short note")] = "",
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Record one milestone of a project."""

    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            body = {"project": project, "kind": kind.value, "time": time, "note": note}
            return await c.call_json("POST", "/kpi/projects/events", json=body)

    _print([run(go())])


@app.command("list")
def list_(
    node: NodeUrl,
    project: Annotated[str | None, typer.Option(help="only this project")] = None,
) -> None:
    """Projects, their events and development cycles."""

    async def go() -> Any:
        async with NodeClient(node) as c:
            return await c.call_json("GET", "/kpi/projects", params={"project": project}
                                     if project else {})  # fmt: skip

    _print(run(go()))


def _print(projects: list[dict[str, Any]]) -> None:
    table = Table("project", "events", "first good lot", "development cycle (days)")
    for p in projects:
        events = ", ".join(f"{e['kind']} {e['time']}" for e in p["events"])
        cycle = p["development_cycle_s"]
        table.add_row(p["project"], events, p["first_good_lot"] or "",
                      "" if cycle is None else f"{cycle / 86400:.1f}")  # fmt: skip
    console.print(table)
