"""HTTP adapter of the monitoring subsystem: reports, notices, views, metrics.

``monitoring_router`` mounts the reporting protocol (see
``iinode.monitoring.protocol``; reports and details: ``monitoring_reports.py``),
the notices (``monitoring_notices.py``) and the per-level views; ``metrics_router``
serves the Prometheus exposition.  Refusals map one-to-one to status codes::

    400 malformed   401 unauthenticated   403 forbidden prefix
    409 replayed    413 too large         503 outbox full or storage failed (retry later)

Every refusal answers ``{"error": <reason>, "detail": <message>}`` and is
counted in ``iinode_monitoring_reports_refused_total{reason}``.

With ``MonitoringApp.authorize_admin`` set, the views, event details, notice
issue and progress, and the node's own notice list and answers need the
credentials of a node administrator (401 without valid credentials, 403 for
someone else).  ``GET /notices`` answers a child with the notices meant for it
and the node's administrator with every notice on the board and its own state.

Every request with a body is authenticated from its headers before a body
byte is read (notices and answers only with ``authorize_admin`` set; without
it they are open, as the views are), and every body is read as a stream up to a bound, answered 413
as soon as it exceeds it: the receiver's ``max_bytes`` for reports and
details, ``max_body_bytes`` for notices, answers and requeue requests.

Dead letters (events the parent refused, with its message) are listed with
``GET /dead-letters`` and queued again with ``POST /dead-letters/requeue``
(body ``{"ids": [...]}`` with event ids or ``origin|id`` keys, or no body for
all of them; 404 and nothing queued if an id is not a dead letter here); both
need the node administrator (401/403 otherwise, also when the views are open).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response

from iinode.api.monitoring_common import (
    AccessChecks,
    BodyTooLarge,
    MonitoringApp,
    bounded_body,
    json_response,
    parse_json,
    too_large,
)
from iinode.api.monitoring_notices import add_notice_routes
from iinode.api.monitoring_reports import add_report_routes
from iinode.monitoring.errors import EventInvalid, OutboxFull
from iinode.monitoring.events import EventKind
from iinode.monitoring.metrics import CONTENT_TYPE, NodeMetrics
from iinode.monitoring.outbox import DeadLetter, Outbox
from iinode.monitoring.store import GROUPS


def monitoring_router(app: MonitoringApp, *, prefix: str = "/monitoring") -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["monitoring"])
    checks = AccessChecks(app)
    add_report_routes(router, app, checks)
    add_notice_routes(router, app, checks)
    store = app.receiver.store

    @router.get("/view", summary="Event counts at this level")
    async def view(
        request: Request,
        by: str = Query("severity"),
        since: float | None = None,
        until: float | None = None,
        kind: EventKind | None = None,
    ) -> Response:
        refusal = await checks.admin_refusal(request)
        if refusal is not None:
            return refusal
        if by not in GROUPS:
            raise HTTPException(400, f"'by' must be one of {', '.join(GROUPS)}")
        return json_response(
            {
                "by": by,
                "counts": await asyncio.to_thread(
                    store.counts, by, since=since, until=until, kind=kind
                ),
            }
        )

    @router.get("/trend", summary="Event counts per time bucket")
    async def trend(
        request: Request,
        bucket: float = Query(3600.0, gt=0),
        since: float | None = None,
        kind: EventKind | None = None,
    ) -> Response:
        refusal = await checks.admin_refusal(request)
        if refusal is not None:
            return refusal
        points = await asyncio.to_thread(store.trend, bucket, since=since, kind=kind)
        return json_response({"bucket": bucket, "points": points})

    @router.get("/nodes", summary="Reporting nodes below this level; stale ones flagged")
    async def nodes(request: Request, stale_after: float | None = Query(None, gt=0)) -> Response:
        refusal = await checks.admin_refusal(request)
        if refusal is not None:
            return refusal
        window = app.stale_after if stale_after is None else stale_after
        rows = await asyncio.to_thread(store.nodes, now=app.clock(), stale_after=window)
        nodes = [n.to_json() | {"reported": True} for n in rows]
        seen = {n.origin for n in rows}
        silent = [c for c in await app.children() if c not in seen] if app.children else []
        nodes += [_never_reported(c) for c in silent]
        nodes.sort(key=lambda n: str(n["origin"]))
        return json_response(
            {
                "stale_after": window,
                "nodes": nodes,
                "stale": sorted([n.origin for n in rows if n.stale] + silent),
                "never_reported": silent,
            }
        )

    @router.get("/events", summary="The latest events at this level (summaries as stored)")
    async def recent(
        request: Request,
        limit: int = Query(50, ge=1, le=1000),
        kind: EventKind | None = None,
        origin: str | None = None,
    ) -> Response:
        refusal = await checks.admin_refusal(request)
        if refusal is not None:
            return refusal
        found = await asyncio.to_thread(
            store.recent, limit, kind=kind, origin=None if origin is None else origin.upper()
        )
        return json_response({"events": [e.to_json() for e in found]})

    def outbox_or_404() -> Outbox:
        if app.outbox is None:
            raise HTTPException(404, "this node keeps no outbox")
        return app.outbox

    @router.get("/dead-letters", summary="Events the parent refused, with its message")
    async def dead_letters(request: Request) -> Response:
        refusal = await checks.strict_admin_refusal(request)
        if refusal is not None:
            return refusal
        outbox = outbox_or_404()
        dead = await asyncio.to_thread(outbox.dead_letters)
        return json_response({"dead_letters": [_dead_letter_json(d) for d in dead]})

    @router.post("/dead-letters/requeue", summary="Queue dead letters for the parent again")
    async def requeue_dead_letters(request: Request) -> Response:
        refusal = await checks.strict_admin_refusal(request)
        if refusal is not None:
            return refusal
        outbox = outbox_or_404()
        ids: list[str] | None = None
        raw_body = await bounded_body(request, app.max_body_bytes)
        if raw_body is None:
            return too_large(BodyTooLarge(app.max_body_bytes))
        if raw_body:
            try:
                body = parse_json(raw_body)
            except EventInvalid as exc:
                return json_response({"error": "malformed", "detail": str(exc)}, 400)
            raw = body.get("ids") if isinstance(body, dict) else ()
            if raw is not None and not (
                isinstance(raw, list) and all(isinstance(i, str) and i for i in raw)
            ):
                return json_response(
                    {"error": "malformed", "detail": 'body must be {"ids": ["<event id>", ...]}'},
                    400,
                )
            ids = raw
        try:
            queued = await asyncio.to_thread(outbox.requeue_dead, ids)
        except KeyError as exc:
            return json_response({"error": "not_found", "detail": str(exc.args[0])}, 404)
        except OutboxFull as exc:
            return json_response(
                {"error": "outbox_full", "detail": str(exc)}, 503, {"Retry-After": "5"}
            )
        return json_response({"requeued": queued})

    return router


def _dead_letter_json(dead: DeadLetter) -> dict[str, object]:
    """A dead letter as listed: its key parts, the event's kind and severity, the refusal."""
    origin, _, event_id = dead.key.partition("|")
    kind: object = None
    severity: object = None
    try:
        data = orjson.loads(dead.body)
        if isinstance(data, dict):
            kind, severity = data.get("kind"), data.get("severity")
    except orjson.JSONDecodeError:
        pass
    return {
        "key": dead.key, "origin": origin, "id": event_id, "kind": kind,
        "severity": severity, "reason": dead.reason, "at": dead.at,
    }  # fmt: skip


def _never_reported(child: str) -> dict[str, object]:
    """A delegated child with no report here yet, shaped like a reporting node's entry."""
    return {
        "origin": child, "via": child, "province": "", "industry": "", "last_seen": None,
        "last_observed": None, "clock_skew": None, "stale": True, "reported": False,
    }  # fmt: skip


def metrics_router(
    metrics: NodeMetrics,
    *,
    path: str = "/metrics",
    refresh: Callable[[], Awaitable[None]] | None = None,
) -> APIRouter:
    """``refresh`` runs before each scrape (for values only readable asynchronously)."""
    router = APIRouter(tags=["monitoring"])

    @router.get(path, summary="Prometheus text exposition", response_class=Response)
    async def render_metrics() -> Response:
        if refresh is not None:
            await refresh()
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router
