"""``iinode monitor status|events|recent|event|notices|issue|ack|dead-letters``: one level's
monitoring; ``iinode monitor cve load``: the CVE feed a node matches its assets against."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, admin_client, console, fail, run
from iinode.monitoring.errors import FeedInvalid
from iinode.monitoring.vulns import feed_path, install_feed

app = typer.Typer(no_args_is_help=True, help="Three-level security monitoring.")
cve_app = typer.Typer(no_args_is_help=True, help="The CVE feed this node matches its assets to.")
app.add_typer(cve_app, name="cve")

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="the node's data directory", envvar="IINODE_DATA_DIR")
]


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


async def _get(node: str, secret: str | None, admin: str | None, path: str, **params: Any) -> Any:
    async with await admin_client(node, secret, admin) as c:
        return await c.monitoring("GET", path, params=params)


@app.command("status")
def status(
    node: NodeUrl,
    by: Annotated[str, typer.Option(help="province, industry, severity, kind, origin")] = "kind",
    stale_after: Annotated[
        float | None, typer.Option(help="seconds of silence before a node counts as stopped")
    ] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Nodes reporting to this level (stopped ones flagged) and event counts."""
    params = {} if stale_after is None else {"stale_after": stale_after}

    async def go() -> tuple[Any, Any]:
        return (
            await _get(node, secret, admin, "nodes", **params),
            await _get(node, secret, admin, "view", by=by),
        )

    nodes, view = run(go())
    now = time.time()
    table = Table("node", "via", "province", "industry", "last seen", "skew s", "status",
                  title=f"nodes reporting to {node}")  # fmt: skip
    for n in nodes["nodes"]:
        skew = "" if n["clock_skew"] is None else f"{n['clock_skew']:+.2f}"
        if n["last_seen"] is None:
            ago, flag = "never", "[yellow]NEVER REPORTED[/yellow]"
        else:
            ago = f"{now - n['last_seen']:.0f} s ago"
            flag = "[red]STOPPED[/red]" if n["stale"] else "[green]reporting[/green]"
        table.add_row(n["origin"], n["via"], n["province"], n["industry"], ago, skew, flag)
    console.print(table)
    counts = Table(by, "events", title=f"events by {by}")
    for key, count in sorted(view["counts"].items()):
        counts.add_row(key, str(count))
    console.print(counts)
    silent = nodes.get("never_reported", [])
    stale = [p for p in nodes["stale"] if p not in silent]
    console.print(f"{len(nodes['nodes'])} nodes, {len(stale)} stopped reporting"
                  + (f": {', '.join(stale)}" if stale else "")
                  + (f"; never reported: {', '.join(silent)}" if silent else ""))  # fmt: skip


@app.command("events")
def events(
    node: NodeUrl,
    bucket: Annotated[float, typer.Option(help="seconds per bucket")] = 3600.0,
    kind: Annotated[str | None, typer.Option(help="only this event kind")] = None,
    since: Annotated[float | None, typer.Option(help="epoch seconds")] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Event counts over time at this level."""
    params: dict[str, Any] = {"bucket": bucket}
    if kind is not None:
        params["kind"] = kind
    if since is not None:
        params["since"] = since
    data = run(_get(node, secret, admin, "trend", **params))
    table = Table("from", "events", title=f"events per {bucket:g} s")
    for start, count in data["points"]:
        table.add_row(_when(start), str(count))
    console.print(table)


@app.command("recent")
def recent(
    node: NodeUrl,
    kind: Annotated[str | None, typer.Option(help="only this event kind")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """The latest events at this level; 'iinode monitor event' shows one with its detail."""
    params: dict[str, Any] = {"limit": limit}
    if kind is not None:
        params["kind"] = kind
    data = run(_get(node, secret, admin, "events", **params))
    table = Table("observed", "origin", "id", "kind", "severity", "detail", title="latest events")
    for e in data["events"]:
        where = "here" if "detail" in e else f"at {e['detail_at']}" if "detail_at" in e else "-"
        table.add_row(_when(e["observed_at"]), e["origin"], e["id"], e["kind"], e["severity"],
                      where)  # fmt: skip
    console.print(table)


@app.command("event")
def event(
    origin: Annotated[str, typer.Argument(help="the prefix of the node the event came from")],
    event_id: Annotated[str, typer.Argument(help="the event id")],
    node: NodeUrl,
    wait: Annotated[
        float, typer.Option(help="seconds to wait for a detail held further down")
    ] = 10.0,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """One event with its detail; a detail held below is fetched from there on demand."""
    if wait < 0:
        fail("--wait must not be negative")

    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            return await c.monitoring("GET", f"events/{origin}/{event_id}", params={"wait": wait})

    data = run(go())
    pending = data.pop("pending", False)
    asked = data.pop("requested_from", None)
    console.print_json(json.dumps(data))
    if pending:
        console.print(f"detail requested from {asked}; not here after {wait:g} s, try again")


@app.command("notices")
def notices(node: NodeUrl, secret: Secret = None, admin: Admin = None) -> None:
    """Notices on this node's board, with this node's own answer and, where it issued
    them, who below has (not) answered."""

    async def go() -> tuple[Any, dict[str, Any]]:
        async with await admin_client(node, secret, admin) as c:
            info = await c.node_info()
            board = await c.monitoring("GET", "notices")
            progress = {}
            for n in board["notices"]:
                if n["issuer"] == info["prefix"]:
                    progress[n["id"]] = await c.monitoring("GET", f"notices/{n['id']}/progress")
            return board, progress

    board, progress = run(go())
    if not board["notices"]:
        console.print("no notices")
    for n in board["notices"]:
        console.print(f"[bold]{n['id']}[/bold] from {n['issuer']} at {_when(n['issued_at'])}: "
                      f"{n['title']}", highlight=False)  # fmt: skip
        if n["action"]:
            console.print(f"  action: {n['action']}", highlight=False)
        if n.get("state"):
            console.print(f"  state here: {n['state']}")
        p = progress.get(n["id"])
        if p is not None:
            for origin, state in sorted(p["states"].items()):
                console.print(f"  {origin:<12} {state}")
            if p["pending"]:
                console.print(f"  not answered: {', '.join(p['pending'])}")


@app.command("issue")
def issue(
    node: NodeUrl,
    title: Annotated[str, typer.Option(help="what the notice is about")],
    action: Annotated[str, typer.Option(help="what receivers must do")] = "",
    notice_id: Annotated[str | None, typer.Option("--id", help="default: generated")] = None,
    province: Annotated[list[str] | None, typer.Option(help="target province, repeatable")] = None,
    industry: Annotated[list[str] | None, typer.Option(help="target industry, repeatable")] = None,
    asset_kind: Annotated[
        list[str] | None, typer.Option(help="target asset kind (plc, sensor, ...), repeatable")
    ] = None,
    cpe: Annotated[str | None, typer.Option(help="target CPE 2.3 pattern")] = None,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Issue a notice at this level; it flows down to the nodes it targets."""

    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            issuer = (await c.node_info())["prefix"]
            body = {
                "id": notice_id or f"N-{issuer}-{int(time.time() * 1000)}",
                "issuer": issuer, "issued_at": time.time(), "title": title, "action": action,
                "target": {"provinces": province or [], "industries": industry or [],
                           "asset_kinds": asset_kind or [], "cpe": cpe},
            }  # fmt: skip
            return await c.monitoring("POST", "notices", json=body)

    if not title.strip():
        fail("--title must not be empty")
    notice = run(go())
    console.print(f"issued {notice['id']} at {notice['issuer']}")


@app.command("ack")
def ack(
    notice_id: Annotated[str, typer.Argument(help="the notice")],
    node: NodeUrl,
    completed: Annotated[
        bool, typer.Option("--completed", help="report the action as done")
    ] = False,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Acknowledge a notice at an enterprise node (or report it completed)."""
    state = "completed" if completed else "acknowledged"

    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            return await c.monitoring("POST", f"notices/{notice_id}/answer", json={"state": state})

    run(go())
    console.print(f"{notice_id}: {state}; the state is on its way up")


@app.command("dead-letters")
def dead_letters(
    node: NodeUrl,
    ids: Annotated[
        list[str] | None,
        typer.Argument(help="with --requeue: only these event ids (or origin|id keys)"),
    ] = None,
    requeue: Annotated[
        bool, typer.Option("--requeue", help="queue the dead letters for the parent again")
    ] = False,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Events the parent refused, with its message; --requeue [ID...] sends them again."""
    if ids and not requeue:
        fail("event ids are only taken with --requeue")

    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            if requeue:
                body = {"ids": ids} if ids else None
                return await c.monitoring("POST", "dead-letters/requeue", json=body)
            return await c.monitoring("GET", "dead-letters")

    data = run(go())
    if requeue:
        console.print(f"{data['requeued']} dead letters queued for the parent again")
        return
    dead = data["dead_letters"]
    if not dead:
        console.print("no dead letters")
        return
    table = Table("refused", "origin", "id", "kind", "parent's message", title="dead letters")
    for d in dead:
        table.add_row(_when(d["at"]), d["origin"], d["id"], str(d["kind"]), d["reason"])
    console.print(table)


@cve_app.command("load")
def cve_load(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="NVD CVE JSON 2.0 feed files (.json or .json.gz), merged",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    data_dir: DataDir,
) -> None:
    """Check NVD CVE JSON 2.0 feeds and install them as this node's CVE feed.

    A running node picks the new feed up by itself and matches its assets against it again.
    """
    if not (data_dir / "node.toml").exists():
        fail(f"{data_dir} is not a node's data directory (no node.toml; run iinode init)")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    verbs = {"read": "reading", "check": "checking", "write": "installing"}
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[tuple[str, str], TaskID] = {}

        def report(stage: str, name: str, done: int, total: int) -> None:
            key = (stage, name)
            if key not in tasks:
                tasks[key] = progress.add_task(f"{verbs[stage]} {name}", total=total)
            progress.update(tasks[key], completed=done, total=total)

        try:
            feed, skipped = install_feed(files, data_dir, report)
        except FeedInvalid as exc:
            fail(f"{exc}; the node's feed is unchanged")
    console.print(
        f"{len(feed.entries)} CVEs installed in {feed_path(data_dir)}"
        + (f" ({skipped} without configurations left out)" if skipped else ""),
        highlight=False,
    )
