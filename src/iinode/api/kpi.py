"""HTTP adapter of the KPIs: ISO 22400-2 KPIs and the five transformation metrics.

``kpi_router(KpiApp(...))`` returns an ``APIRouter`` mounted under ``/kpi``::

    GET /equipment/{prefix}/{suffix}          one machine
    GET /lines/{prefix}/{suffix}              the machines whose ``line`` is this identifier
    GET /plants/{prefix}                      every machine (with a ``state`` tag) under the prefix
        ?start=&end=&by=shift|day|week        default: the last 24 h as one period
    GET /{scope...}/live                      the current shift, as the live stream has it
    GET /{scope...}/report                    before/after: ?before_start=&before_end=
                                              &after_start=&after_end=
                                              (&by=shift|day|week: each side's periods too)
    GET /{scope...}/report.html               the same as an HTML page with charts
    GET /projects                             development projects (?project=ID), their
                                              events and development cycles
    POST /projects/events                     record an event: {"project", "kind", "time"}

Times are ISO 8601 or epoch milliseconds.  Cost rates for the operating cost
per good unit are query parameters (``energy_per_kwh``, ``labour_per_hour``,
``maintenance_per_hour``, ``maintenance_per_failure``, ``material_per_unit``,
``scrap_per_unit``, ``rework_per_unit``; default 0).  Each period answers its
``elements`` (times in seconds), ``kpis``, ``metrics``, ``complete`` and
``issues``; a KPI that cannot be computed is ``null``.  A report's ``changes``
give each metric's relative change in percent and whether it improved (see
:mod:`iinode.kpi.transform` for the sign convention).

Reads follow the equipment's permissions as ``/telemetry`` does (with
``KpiApp.reader`` set); errors answer ``{"error", "detail"}`` with 400, 401,
403 or 404.  The store is read in a worker thread; a period is at most
``KpiApp.max_days`` long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from iinode.analytics.projects import ProjectStore, project_id
from iinode.errors import HandleError, InvalidHandle, NotAuthorized, StorageError, ValueInvalid
from iinode.identifiers import HandleName, IndexedHandle, Prefix
from iinode.kpi import (
    CostRates,
    DevelopmentEvent,
    Elements,
    Period,
    PeriodKind,
    compare,
    compute,
    mean_development_cycle_s,
    metrics,
)
from iinode.kpi.periods import iso
from iinode.node.settings import NodeSettings
from iinode.telemetry.ingest import IngestWorker
from iinode.telemetry.kpi_window import KpiWindowSettings, LiveKpis, scope_elements
from iinode.telemetry.model import Equipment, now_us
from iinode.telemetry.registry import EquipmentReader, EquipmentRegistry
from iinode.telemetry.store import ParquetStore

from .telemetry import (
    _AUTH_ERRORS,
    EquipmentAccess,
    TelemetryApp,
    _error,
    _json,
    _refusal,
    parse_time,
)

DAY_US = 86_400_000_000


@dataclass(slots=True)
class KpiApp:
    """What the router needs from the node."""

    registry: EquipmentRegistry
    store: ParquetStore
    settings: KpiWindowSettings = field(default_factory=KpiWindowSettings)
    authenticate: Callable[[Request], Awaitable[IndexedHandle | None]] | None = None
    reader: EquipmentReader | None = None
    #: The live stream; ``workers`` gives the ingest workers to attach it to (or none).
    live: LiveKpis | None = None
    workers: Callable[[], Sequence[IngestWorker]] = lambda: ()
    #: Recorded development events (project start, first good lot, ...).
    development: Callable[[], Sequence[DevelopmentEvent]] = lambda: ()
    #: Where development events are recorded (``/kpi/projects``), and who may record them:
    #: ``authorize(request, prefix)`` returns the writer or raises (``None``: open).
    projects: ProjectStore | None = None
    authorize: Callable[[Request, str], Awaitable[str]] | None = None
    #: The prefix a project named without one belongs to (its writes are checked there).
    home_prefix: str | None = None
    clock: Callable[[], int] = now_us
    max_days: int = 92

    async def attach(self) -> None:
        """Attach the live stream to the ingest workers running now (idempotent), and
        tell it the registered equipment (their meters)."""
        live = self.live
        if live is not None:
            workers = self.workers()
            if any(live.observe not in w.observers for w in workers):
                live.known.update((e.id, e) for e in await self.registry.list())
                live.attach(workers)


def node_kpi_app(
    telemetry: TelemetryApp,
    settings: NodeSettings,
    authorize: Callable[[Request, str], Awaitable[str]],
    workers: Callable[[], Sequence[IngestWorker]],
) -> KpiApp:
    """The KPI app of a node: the telemetry app's registry, store and permissions, project
    events in ``projects.sqlite3`` of its data dir (recorded as ``authorize`` allows), and a
    live stream fed by the ingest ``workers`` running now."""
    projects = ProjectStore(settings.data_dir / "projects.sqlite3")
    return KpiApp(
        telemetry.registry, telemetry.store, authenticate=telemetry.authenticate,
        reader=telemetry.reader, live=LiveKpis(), workers=workers,
        development=projects.events, projects=projects,
        authorize=authorize, home_prefix=settings.prefix,
    )  # fmt: skip


def _rates(request: Request) -> CostRates:
    values: dict[str, float] = {}
    for name in CostRates.__dataclass_fields__:
        text = request.query_params.get(name)
        if text is not None:
            try:
                values[name] = float(text)
            except ValueError:
                raise ValueInvalid(f"{name} must be a number: {text!r}") from None
    return CostRates(**values)


def _window(start: str | None, end: str | None, clock: Callable[[], int], max_days: int,
            prefix: str = "") -> tuple[int, int]:  # fmt: skip
    end_us = parse_time(end)
    end_us = clock() if end_us is None else end_us
    start_us = parse_time(start)
    start_us = end_us - DAY_US if start_us is None else start_us
    if start_us >= end_us:
        raise ValueInvalid(f"{prefix}start must be before {prefix}end")
    if end_us - start_us > max_days * DAY_US:
        raise ValueInvalid(f"a period is at most {max_days} days")
    return start_us, end_us


def _period_json(period: Period, e: Elements, rates: CostRates, cycle: float | None) -> Any:
    kpis = compute(e)
    return {
        "label": period.label,
        "start": iso(period.start_us),
        "end": iso(period.end_us),
        "complete": e.complete,
        "issues": list(e.issues),
        "elements": e.to_json(),
        "kpis": {k: v for k, v in kpis.to_json().items() if k not in ("complete", "issues")},
        "metrics": {
            k: v
            for k, v in metrics(e, rates, cycle).to_json().items()
            if k not in ("complete", "issues")
        },
    }


def kpi_router(app: KpiApp, *, prefix: str = "/kpi") -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["kpi"])

    access = EquipmentAccess(app.registry, app.authenticate, app.reader)

    async def scope(
        kind: str, prefix_text: str, suffix: str | None, request: Request
    ) -> tuple[str, list[Equipment]] | Response:
        """The scope's identifier and machines, as the caller may read them."""
        try:
            if kind == "plant":
                name = Prefix(prefix_text).text
                items = await access.listing(name, request)
                if isinstance(items, Response):
                    return items
                return name, [e for e in items if e.tag("state") is not None]
            name = str(HandleName(prefix_text, suffix or ""))
            if kind == "line":
                items = await access.listing(prefix_text, request)
                if isinstance(items, Response):
                    return items
                members = [e for e in items if e.line == name]
                if not members:
                    return _error(404, "not_found", f"no equipment on line {name}")
                return name, members
            item = await access.one(name, request)
        except InvalidHandle as exc:
            return _error(400, "invalid_handle", exc.message)
        except HandleError as exc:
            return _refusal(exc)
        if isinstance(item, Response):
            return item
        if item is None:
            return _error(404, "not_found", f"equipment {name} is not registered")
        return name, [item]

    async def read(
        items: list[Equipment], start_us: int, end_us: int, kind: PeriodKind | None = None
    ) -> list[tuple[Period, Elements]] | Response:
        """The scope's elements from the store (in a worker thread), or the refusal."""
        try:
            return await asyncio.to_thread(
                scope_elements, app.store, items, start_us, end_us, app.settings, kind
            )
        except ValueInvalid as exc:
            return _error(400, "too_much_data", exc.message)
        except StorageError as exc:
            return _error(503, "storage_unavailable", str(exc))

    def cycle(start_us: int, end_us: int) -> float | None:
        return mean_development_cycle_s(app.development(), start_us, end_us)

    async def kpis(kind: str, prefix_text: str, suffix: str | None, request: Request,
                   start: str | None, end: str | None, by: str | None) -> Response:  # fmt: skip
        found = await scope(kind, prefix_text, suffix, request)
        if isinstance(found, Response):
            return found
        name, items = found
        try:
            period_kind = None if by in (None, "", "total") else PeriodKind(by)
        except ValueError:
            return _error(400, "invalid_by", "by is shift, day, week or total")
        try:
            rates = _rates(request)
            start_us, end_us = _window(start, end, app.clock, app.max_days)
        except ValueInvalid as exc:
            return _error(400, "invalid_query", exc.message)
        rows = await read(items, start_us, end_us, period_kind)
        if isinstance(rows, Response):
            return rows
        periods = [_period_json(p, e, rates, cycle(p.start_us, p.end_us)) for p, e in rows]
        return _json({
            "scope": kind, "id": name, "equipment": [e.id for e in items],
            "by": by or "total", "start": iso(start_us), "end": iso(end_us), "periods": periods,
        })  # fmt: skip

    async def live(kind: str, prefix_text: str, suffix: str | None, request: Request) -> Response:
        found = await scope(kind, prefix_text, suffix, request)
        if isinstance(found, Response):
            return found
        name, items = found
        try:
            rates = _rates(request)
        except ValueInvalid as exc:
            return _error(400, "invalid_query", exc.message)
        now = app.clock()
        shift = app.settings.grid.period_of(PeriodKind.SHIFT, now)
        await app.attach()
        if app.live is not None and app.live.stream.machines:
            source = "stream"
            e = app.live.stream.period([i.id for i in items], shift, now)
        else:  # no stream in this process: the same computation over the stored readings
            source = "store"
            rows = await read(items, shift.start_us, now)
            if isinstance(rows, Response):
                return rows
            e = rows[0][1]
        body = _period_json(shift, e, rates, cycle(shift.start_us, shift.end_us))
        return _json({"scope": kind, "id": name, "source": source, "at": iso(now), **body})

    async def report(kind: str, prefix_text: str, suffix: str | None, request: Request,
                     html: bool = False) -> Response:  # fmt: skip
        found = await scope(kind, prefix_text, suffix, request)
        if isinstance(found, Response):
            return found
        name, items = found
        q = request.query_params
        try:
            rates = _rates(request)
            windows = [
                _window(q.get(f"{w}_start"), q.get(f"{w}_end"), app.clock, app.max_days, f"{w}_")
                for w in ("before", "after")
            ]
            if any(q.get(k) is None for k in ("before_start", "before_end", "after_start")):
                raise ValueInvalid("before_start, before_end and after_start are required")
        except ValueInvalid as exc:
            return _error(400, "invalid_query", exc.message)
        try:
            by = PeriodKind(q.get("by") or "day")
        except ValueError:
            return _error(400, "invalid_by", "by is shift, day or week")
        sides: list[Any] = []
        series: list[Any] = []
        measured = []
        for start_us, end_us in windows:
            rows = await read(items, start_us, end_us)
            if isinstance(rows, Response):
                return rows
            (period, e), dev = rows[0], cycle(start_us, end_us)
            sides.append(_period_json(period, e, rates, dev))
            measured.append(metrics(e, rates, dev))
            if html or q.get("by"):
                per = await read(items, start_us, end_us, by)
                if isinstance(per, Response):
                    return per
                series.append([_period_json(p, pe, rates, cycle(p.start_us, p.end_us))
                               for p, pe in per])  # fmt: skip
        changes = [c.to_json() for c in compare(measured[0], measured[1])]
        data = {"scope": kind, "id": name, "before": sides[0], "after": sides[1],
                "changes": changes}  # fmt: skip
        if series:  # ?by= (and the HTML page): each side's periods too
            data["before_periods"], data["after_periods"] = series
        if not html:
            return _json(data)
        from iinode.analytics.report import render_report  # matplotlib only when asked

        page = await asyncio.to_thread(render_report, data)
        return Response(page, media_type="text/html; charset=utf-8")

    @router.get("/projects", summary="Development projects and their cycles")
    async def projects(project: str | None = None) -> Response:
        if app.projects is None:
            return _error(404, "not_found", "this node records no development projects")
        return _json(await asyncio.to_thread(app.projects.summary, project))

    @router.post("/projects/events", summary="Record a development project's event")
    async def project_event(request: Request) -> Response:
        store = app.projects
        if store is None:
            return _error(404, "not_found", "this node records no development projects")
        try:
            body = orjson.loads(await request.body())
            if not isinstance(body, dict):
                raise ValueInvalid("body must be a JSON object")
            name = project_id(body.get("project"))
            raw = body.get("time")
            when = parse_time(str(raw)) if raw not in (None, "") else app.clock()
            if when is None:
                raise ValueInvalid("time is required")
            note = body.get("note", "")
            if not isinstance(note, str):
                raise ValueInvalid("note is text")
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_json", str(exc))
        except ValueInvalid as exc:
            return _error(400, "invalid_event", exc.message)
        home = name.partition("/")[0] if "/" in name else app.home_prefix
        if app.authorize is not None:
            try:
                await app.authorize(request, home or name)
            except _AUTH_ERRORS as exc:
                return _refusal(exc)
            except NotAuthorized as exc:
                return _error(403, "forbidden", exc.message)
            except HandleError as exc:
                return _refusal(exc)
        try:
            event = await asyncio.to_thread(store.add, name, str(body.get("kind")), when, note)
        except ValueInvalid as exc:
            return _error(400, "invalid_event", exc.message)
        summary = await asyncio.to_thread(store.summary, event.project)
        return _json(summary[0], 201)

    by_query = Query(None, description="shift, day, week or total")

    @router.get("/equipment/{prefix_text}/{suffix}", summary="KPIs of one machine")
    async def equipment_kpis(prefix_text: str, suffix: str, request: Request,
                             start: str | None = None, end: str | None = None,
                             by: str | None = by_query) -> Response:  # fmt: skip
        return await kpis("equipment", prefix_text, suffix, request, start, end, by)

    @router.get("/lines/{prefix_text}/{suffix}", summary="KPIs of a production line")
    async def line_kpis(prefix_text: str, suffix: str, request: Request,
                        start: str | None = None, end: str | None = None,
                        by: str | None = by_query) -> Response:  # fmt: skip
        return await kpis("line", prefix_text, suffix, request, start, end, by)

    @router.get("/plants/{prefix_text}", summary="KPIs of a plant (an enterprise prefix)")
    async def plant_kpis(prefix_text: str, request: Request,
                         start: str | None = None, end: str | None = None,
                         by: str | None = by_query) -> Response:  # fmt: skip
        return await kpis("plant", prefix_text, None, request, start, end, by)

    @router.get("/equipment/{prefix_text}/{suffix}/live", summary="One machine's current shift")
    async def equipment_live(prefix_text: str, suffix: str, request: Request) -> Response:
        return await live("equipment", prefix_text, suffix, request)

    @router.get("/lines/{prefix_text}/{suffix}/live", summary="A line's current shift")
    async def line_live(prefix_text: str, suffix: str, request: Request) -> Response:
        return await live("line", prefix_text, suffix, request)

    @router.get("/plants/{prefix_text}/live", summary="A plant's current shift")
    async def plant_live(prefix_text: str, request: Request) -> Response:
        return await live("plant", prefix_text, None, request)

    @router.get("/equipment/{prefix_text}/{suffix}/report", summary="Before/after, one machine")
    async def equipment_report(prefix_text: str, suffix: str, request: Request) -> Response:
        return await report("equipment", prefix_text, suffix, request)

    @router.get("/lines/{prefix_text}/{suffix}/report", summary="Before/after, one line")
    async def line_report(prefix_text: str, suffix: str, request: Request) -> Response:
        return await report("line", prefix_text, suffix, request)

    @router.get("/plants/{prefix_text}/report", summary="Before/after, one plant")
    async def plant_report(prefix_text: str, request: Request) -> Response:
        return await report("plant", prefix_text, None, request)

    @router.get("/equipment/{prefix_text}/{suffix}/report.html", summary="HTML report, machine")
    async def equipment_report_html(prefix_text: str, suffix: str, request: Request) -> Response:
        return await report("equipment", prefix_text, suffix, request, html=True)

    @router.get("/lines/{prefix_text}/{suffix}/report.html", summary="HTML report, one line")
    async def line_report_html(prefix_text: str, suffix: str, request: Request) -> Response:
        return await report("line", prefix_text, suffix, request, html=True)

    @router.get("/plants/{prefix_text}/report.html", summary="HTML report, one plant")
    async def plant_report_html(prefix_text: str, request: Request) -> Response:
        return await report("plant", prefix_text, None, request, html=True)

    return router


__all__ = ["KpiApp", "kpi_router", "node_kpi_app"]
