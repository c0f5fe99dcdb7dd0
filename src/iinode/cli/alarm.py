"""``iinode alarm``: open alarms, acknowledgement, history and rules of a node.

Reads are open; acknowledging and changing rules are handle writes (the node's
administrator, or MODIFY_VALUE on the equipment the rule watches).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, admin_client, console, run
from iinode.client import NodeClient

app = typer.Typer(no_args_is_help=True, help="Alarms and alarm rules.")
rule_app = typer.Typer(no_args_is_help=True, help="Threshold and rate-of-change rules.")
app.add_typer(rule_app, name="rule")


def _get(node: str, path: str, **params: Any) -> Any:
    async def go() -> Any:
        async with NodeClient(node) as c:
            return await c.call_json(
                "GET", path, params={k: v for k, v in params.items() if v is not None}
            )

    return run(go())


def _write(node: str, secret: str | None, admin: str | None, method: str, path: str,
           body: Any = None) -> Any:  # fmt: skip
    async def go() -> Any:
        async with await admin_client(node, secret, admin) as c:
            return await c.call_json(method, path, json=body)

    return run(go())


def _time(us: object) -> str:
    if not isinstance(us, int):
        return ""
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds")


@app.command("list")
def list_(
    node: NodeUrl,
    equipment: Annotated[str | None, typer.Option(help="an equipment handle or a prefix")] = None,
) -> None:
    """Open alarms (in alarm, or cleared and not acknowledged)."""
    alarms = _get(node, "/alarms", equipment=equipment)
    table = Table("id", "equipment", "state", "severity", "raised", "value", "message")
    for a in alarms:
        table.add_row(a["id"], a["equipment"], a["state"], a["severity"], _time(a["raised_us"]),
                      f"{a['value']:g}", a["message"])  # fmt: skip
    console.print(table)


@app.command("ack")
def ack(
    alarm_id: Annotated[str, typer.Argument(help="the alarm's id")],
    node: NodeUrl,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Acknowledge an alarm."""
    a = _write(node, secret, admin, "POST", f"/alarms/{quote(alarm_id, safe='')}/ack")
    console.print(f"{a['id']}: {a['state']} (by {a['acknowledged_by']})", highlight=False)


@app.command("history")
def history(
    node: NodeUrl,
    equipment: Annotated[str | None, typer.Option(help="an equipment handle or a prefix")] = None,
    limit: Annotated[int, typer.Option(help="at most this many rows")] = 50,
) -> None:
    """Alarm transitions, newest first."""
    rows = _get(node, "/alarms/history", equipment=equipment, limit=limit)
    table = Table("time", "event", "alarm", "equipment", "value")
    for r in rows:
        value = r["value"]
        table.add_row(_time(r["time_us"]), r["event"], r["alarm"], r["equipment"],
                      "" if value is None else f"{value:g}")  # fmt: skip
    console.print(table)


@rule_app.command("list")
def rule_list(node: NodeUrl) -> None:
    """Every rule."""
    table = Table("id", "equipment", "source", "name", "kind", "limit", "deadband", "severity")
    for r in _get(node, "/alarms/rules"):
        table.add_row(r["id"], r["equipment"], r["source"], r["name"], r["kind"],
                      f"{r['limit']:g}", f"{r['deadband']:g}", r["severity"])  # fmt: skip
    console.print(table)


class Source(enum.StrEnum):
    TAG = "tag"
    KPI = "kpi"
    MODEL = "model"


class Kind(enum.StrEnum):
    HIGH = "high"
    LOW = "low"
    RATE = "rate"


@rule_app.command("set")
def rule_set(
    rule_id: Annotated[str, typer.Argument(help="the rule's id")],
    equipment: Annotated[str, typer.Argument(help="an equipment handle, or a prefix")],
    source: Annotated[Source, typer.Argument(help="tag, kpi or model")],
    name: Annotated[str, typer.Argument(help="the tag, KPI field (e.g. oee) or model output")],
    kind: Annotated[Kind, typer.Argument(help="high, low or rate (per second)")],
    limit: Annotated[float, typer.Argument(help="the limit")],
    node: NodeUrl,
    deadband: Annotated[float, typer.Option(help="hysteresis before the alarm clears")] = 0.0,
    severity: Annotated[str, typer.Option(help="info, low, medium, high or critical")] = "medium",
    message: Annotated[str, typer.Option(help="the alarm's text")] = "",
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Create or replace a rule."""
    body = {"id": rule_id, "equipment": equipment, "source": source.value, "name": name,
            "kind": kind.value, "limit": limit, "deadband": deadband, "severity": severity,
            "message": message}  # fmt: skip
    r = _write(node, secret, admin, "PUT", f"/alarms/rules/{quote(rule_id, safe='')}", body)
    console.print(f"rule {r['id']} set", highlight=False)


@rule_app.command("delete")
def rule_delete(
    rule_id: Annotated[str, typer.Argument(help="the rule's id")],
    node: NodeUrl,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Delete a rule."""
    _write(node, secret, admin, "DELETE", f"/alarms/rules/{quote(rule_id, safe='')}")
    console.print(f"rule {rule_id} deleted", highlight=False)
