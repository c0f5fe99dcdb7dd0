"""``iinode telemetry query``: history, latest values and aggregates of one equipment."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, console, fail, run
from iinode.cli.equipment import reader_client, shown

app = typer.Typer(no_args_is_help=True, help="Stored telemetry of a node.")


@app.command("query")
def query(
    handle: Annotated[str, typer.Argument(help="the equipment identifier")],
    node: NodeUrl,
    tag: Annotated[str | None, typer.Option(help="one tag (required with --interval)")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="latest value of every tag")] = False,
    interval: Annotated[
        float | None, typer.Option(help="aggregate per this many seconds (min/max/avg/count)")
    ] = None,
    start: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms")] = None,
    end: Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms")] = None,
    limit: Annotated[int, typer.Option(help="readings shown at most")] = 50,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """History (default), --latest values, or aggregates by --interval."""
    if latest and interval is not None:
        fail("choose --latest or --interval, not both")
    if interval is not None and tag is None:
        fail("--interval needs --tag")

    async def go() -> dict[str, Any]:
        async with await reader_client(node, secret, admin) as c:
            if latest:
                return await c.telemetry(handle, "live")
            if interval is not None:
                return await c.telemetry(
                    handle, "aggregates", tag=tag, interval=interval, start=start, end=end
                )
            return await c.telemetry(handle, "history", tag=tag, start=start, end=end, limit=limit)

    data = run(go())
    if latest:
        table = Table("tag", "value", "time", "quality", title=data["equipment"])
        for name, s in sorted(data["tags"].items()):
            table.add_row(name, shown(s.get("value")), str(s.get("time")), str(s.get("quality")))
    elif interval is not None:
        table = Table("start", "count", "min", "max", "avg", title=f"{handle} {tag}")
        for b in data["buckets"]:
            table.add_row(b["start"], str(b["count"]), _num(b["min"]), _num(b["max"]),
                          _num(b["avg"]))  # fmt: skip
    else:
        table = Table("time", "tag", "value", "quality", title=data["equipment"])
        rows = data["readings"][-limit:]
        for r in rows:
            table.add_row(r["time"], r["tag"], shown(r["value"]), str(r["quality"]))
    console.print(table)


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else shown(value)
