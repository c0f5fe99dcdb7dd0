"""The HTML report of a scope's KPIs and its before/after comparison (matplotlib, offline).

:func:`render_report` takes the JSON the KPI API answers for a report (the two
periods, the changes, and the periods of each side by shift, day or week) and
returns one self-contained HTML page: the charts are drawn by matplotlib (the
Agg backend, no display) as inline SVG, with no script and no remote resource,
so the page opens offline and can be mailed or archived as it is.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

_KPIS = (("oee", "OEE"), ("availability", "Availability"), ("effectiveness", "Effectiveness"),
         ("quality_ratio", "Quality ratio"))  # fmt: skip


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # without the XML prolog and doctype


def _fmt(value: object, pct: bool = False) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:,.4g}"


def kpi_chart(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> str:
    """OEE and its factors per period, the two sides one after the other."""
    periods = [*before, *after]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = list(range(len(periods)))
    for key, label in _KPIS:
        ys = [p["kpis"].get(key) for p in periods]
        ax.plot(x, [float("nan") if y is None else 100 * y for y in ys], marker="o",
                label=label)  # fmt: skip
    if before and after:
        ax.axvline(len(before) - 0.5, color="grey", linestyle="--", linewidth=1)
        ax.text(len(before) - 0.45, 2, "after", color="grey")
    ax.set_xticks(x, [p["label"] for p in periods], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.set_title("ISO 22400 KPIs per period")
    ax.legend(loc="lower left", fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    return _svg(fig)


def change_chart(changes: Sequence[dict[str, Any]]) -> str:
    """Each metric's change in percent; green when it improved, red when not."""
    shown = [c for c in changes if c.get("change_pct") is not None]
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(shown), 1) + 1))
    labels = [c["label"] for c in shown]
    values = [c["change_pct"] for c in shown]
    colours = ["#2a9d4b" if c["improved"] else "#c0392b" if c["improved"] is False else "#888"
               for c in shown]  # fmt: skip
    ax.barh(labels, values, color=colours)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:+.1f}%", va="center", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("change, % (after vs before)")
    ax.set_title("Before/after: the transformation metrics")
    ax.grid(axis="x", alpha=0.3)
    return _svg(fig)


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}.ok{color:#2a9d4b}.bad{color:#c0392b}
.issues{color:#a66;font-size:90%}"""


def render_report(data: dict[str, Any]) -> str:
    """A self-contained HTML page for the report ``data`` (see the module docstring)."""
    esc = html.escape
    before, after = data["before"], data["after"]
    title = f"KPI report: {data['scope']} {data['id']}"
    rows = []
    for c in data["changes"]:
        pct = c["change_pct"]
        verdict = {True: '<span class="ok">improved</span>',
                   False: '<span class="bad">worse</span>', None: ""}[c["improved"]]  # fmt: skip
        rows.append(
            f"<tr><td>{esc(c['label'])}</td><td>{_fmt(c['before'])}</td>"
            f"<td>{_fmt(c['after'])}</td><td>{'n/a' if pct is None else f'{pct:+.1f}%'}</td>"
            f"<td>{esc(c['better'])}</td><td>{verdict}</td></tr>"
        )
    kpi_rows = []
    for name, side in (("before", before), ("after", after)):
        k = side["kpis"]
        kpi_rows.append(
            f"<tr><td>{name}: {esc(side['start'])} to {esc(side['end'])}</td>"
            + "".join(f"<td>{_fmt(k.get(key), True)}</td>" for key, _ in _KPIS)
            + f"<td>{_fmt(k.get('scrap_ratio'), True)}</td>"
            f"<td>{_fmt(side['elements'].get('gq'))}</td>"
            f"<td>{'yes' if side['complete'] else 'no'}</td></tr>"
        )
    issues = [f"<li>{esc(p)}: {esc(i)}</li>" for p, side in (("before", before), ("after", after))
              for i in side["issues"][:10]]  # fmt: skip
    statements = [esc(c["statement"]) for c in data["changes"] if c["change_pct"] is not None]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{'; '.join(statements)}</p>",
        "<h2>Before/after</h2><table><tr><th>metric</th><th>before</th><th>after</th>"
        "<th>change</th><th>better</th><th></th></tr>", *rows, "</table>",
        change_chart(data["changes"]),
        "<h2>KPIs</h2><table><tr><th>period</th>"
        + "".join(f"<th>{label}</th>" for _, label in _KPIS)
        + "<th>Scrap ratio</th><th>good</th><th>complete</th></tr>", *kpi_rows, "</table>",
        kpi_chart(data.get("before_periods", []), data.get("after_periods", [])),
    ]  # fmt: skip
    if issues:
        parts += ['<h2>Incomplete data</h2><ul class="issues">', *issues, "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


__all__ = ["change_chart", "kpi_chart", "render_report"]
