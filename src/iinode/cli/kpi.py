"""``iinode kpi``: ISO 22400 KPIs, the live shift and before/after reports of a node.

``SCOPE`` is ``equipment`` (an equipment identifier), ``line`` (a line's
identifier) or ``plant`` (an enterprise prefix).  The node computes; this only
asks its ``/kpi`` API and prints tables.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from iinode.cli.common import Admin, NodeUrl, Secret, console, fail, run
from iinode.cli.equipment import reader_client

app = typer.Typer(no_args_is_help=True, help="ISO 22400 KPIs and transformation reports.")


class Scope(enum.StrEnum):
    EQUIPMENT = "equipment"
    LINE = "line"
    PLANT = "plant"


class By(enum.StrEnum):
    TOTAL = "total"
    SHIFT = "shift"
    DAY = "day"
    WEEK = "week"


ScopeArg = Annotated[Scope, typer.Argument(help="equipment, line or plant")]
IdArg = Annotated[str, typer.Argument(help="the equipment or line identifier, or the prefix")]
Start = Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default: end - 24 h)")]
End = Annotated[str | None, typer.Option(help="ISO 8601 or epoch ms (default: now)")]


RATES = (
    "energy_per_kwh", "labour_per_hour", "maintenance_per_hour", "maintenance_per_failure",
    "material_per_unit", "scrap_per_unit", "rework_per_unit",
)  # fmt: skip


def _path(scope: Scope, ident: str) -> str:
    base = {Scope.EQUIPMENT: "equipment", Scope.LINE: "lines", Scope.PLANT: "plants"}[scope]
    if scope is not Scope.PLANT and "/" not in ident:
        fail(f"{ident!r} is not an identifier (prefix/suffix)")
    return f"/kpi/{base}/{quote(ident, safe='/')}"


def _get(node: str, secret: str | None, admin: str | None, path: str, **params: Any) -> Any:
    async def go() -> Any:
        async with await reader_client(node, secret, admin) as c:
            query = {k: v for k, v in params.items() if v is not None}
            return await c.call_json("GET", path, params=query)

    return run(go())


def _pct(value: object) -> str:
    return "" if not isinstance(value, int | float) else f"{100 * value:.1f}%"


def _num(value: object, digits: int = 1) -> str:
    return "" if not isinstance(value, int | float) else f"{value:,.{digits}f}"


def _kpi_table(title: str, periods: list[dict[str, Any]]) -> Table:
    table = Table(
        "period", "OEE", "avail.", "effect.", "quality", "NEE", "good", "scrap", "good/h",
        "kWh/good", "MTBF h", "MTTR min", "complete", title=title,
    )  # fmt: skip
    for p in periods:
        k, e, m = p["kpis"], p["elements"], p["metrics"]
        mtbf, mttr = k["mtbf_s"], k["mttr_s"]
        table.add_row(
            p["label"], _pct(k["oee"]), _pct(k["availability"]), _pct(k["effectiveness"]),
            _pct(k["quality_ratio"]), _pct(k["nee"]), _num(e["gq"], 0), _num(e["sq"], 0),
            _num(m["good_units_per_hour"]), _num(k["energy_per_good_kwh"], 3),
            _num(mtbf / 3600 if mtbf is not None else None),
            _num(mttr / 60 if mttr is not None else None),
            "yes" if p["complete"] else "no",
        )  # fmt: skip
    return table


def _issues(periods: list[dict[str, Any]]) -> None:
    shown = [(p["label"], i) for p in periods for i in p["issues"]][:10]
    for label, issue in shown:
        console.print(f"[yellow]incomplete[/yellow] {label}: {issue}", highlight=False)


@app.command("show")
def show(
    scope: ScopeArg,
    ident: IdArg,
    node: NodeUrl,
    start: Start = None,
    end: End = None,
    by: Annotated[By, typer.Option(help="one row per shift, day or week")] = By.TOTAL,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """ISO 22400 KPIs of a machine, line or plant over a period."""
    data = _get(node, secret, admin, _path(scope, ident), start=start, end=end, by=by.value)
    console.print(_kpi_table(f"{data['scope']} {data['id']}", data["periods"]))
    _issues(data["periods"])


@app.command("live")
def live(
    scope: ScopeArg, ident: IdArg, node: NodeUrl, secret: Secret = None, admin: Admin = None
) -> None:
    """The current shift so far."""
    data = _get(node, secret, admin, _path(scope, ident) + "/live")
    console.print(_kpi_table(f"{data['scope']} {data['id']} ({data['source']})", [data]))
    _issues([data])


@app.command("report")
def report(
    scope: ScopeArg,
    ident: IdArg,
    node: NodeUrl,
    before: Annotated[str, typer.Option(help="START/END of the period before")],
    after: Annotated[str, typer.Option(help="START/END of the period after (END may be empty)")],
    energy_per_kwh: Annotated[float | None, typer.Option(help="cost of a kWh")] = None,
    labour_per_hour: Annotated[
        float | None, typer.Option(help="crew cost per planned busy hour")
    ] = None,
    maintenance_per_hour: Annotated[
        float | None, typer.Option(help="repair cost per hour down after a failure")
    ] = None,
    maintenance_per_failure: Annotated[float | None, typer.Option(help="cost per failure")] = None,
    material_per_unit: Annotated[
        float | None, typer.Option(help="material cost per produced part")
    ] = None,
    scrap_per_unit: Annotated[
        float | None, typer.Option(help="disposal cost per scrapped part")
    ] = None,
    rework_per_unit: Annotated[float | None, typer.Option(help="cost per reworked part")] = None,
    html: Annotated[
        Path | None, typer.Option(help="also write the report as an HTML page with charts")
    ] = None,
    by: Annotated[By, typer.Option(help="the HTML chart's periods")] = By.DAY,
    secret: Secret = None,
    admin: Admin = None,
) -> None:
    """Before/after comparison of the five transformation metrics."""
    windows: dict[str, str | None] = {}
    for name, text in (("before", before), ("after", after)):
        first, slash, last = text.partition("/")
        if not slash or not first:
            fail(f"--{name} is START/END, not {text!r}")
        windows[f"{name}_start"], windows[f"{name}_end"] = first, last or None
    given = (energy_per_kwh, labour_per_hour, maintenance_per_hour, maintenance_per_failure,
             material_per_unit, scrap_per_unit, rework_per_unit)  # fmt: skip
    rates = {name: value for name, value in zip(RATES, given, strict=True) if value is not None}
    series = {} if html is None or by is By.TOTAL else {"by": by.value}
    data = _get(node, secret, admin, _path(scope, ident) + "/report", **windows, **rates,
                **series)  # fmt: skip
    table = Table("metric", "before", "after", "change", "better", "improved",
                  title=f"{data['scope']} {data['id']}: before/after")  # fmt: skip
    for c in data["changes"]:
        verdict = {True: "[green]yes[/green]", False: "[red]no[/red]", None: ""}[c["improved"]]
        shown = c["statement"].removeprefix(c["label"]).strip()
        table.add_row(c["label"], _num(c["before"], 4), _num(c["after"], 4), shown, c["better"],
                      verdict)  # fmt: skip
    console.print(table)
    for c in data["changes"]:
        if c["change_pct"] is not None:
            console.print(c["statement"], highlight=False)
    _issues([data["before"], data["after"]])
    if html is not None:
        from iinode.analytics.report import render_report  # matplotlib only when asked

        html.write_text(render_report(data), encoding="utf-8")
        console.print(f"report written to {html}", highlight=False)
