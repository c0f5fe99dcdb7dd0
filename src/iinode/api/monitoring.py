"""HTTP adapter of the monitoring subsystem: reports, notices, views, metrics.

``monitoring_router`` mounts the reporting protocol (see
``iinode.monitoring.protocol``) and the per-level views; ``metrics_router``
serves the Prometheus exposition.  Refusals map one-to-one to status codes::

    400 malformed   401 unauthenticated   403 forbidden prefix
    409 replayed    413 too large         503 outbox full (retry later)

Every refusal answers ``{"error": <reason>, "detail": <message>}`` and is
counted in ``iinode_monitoring_reports_refused_total{reason}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response

from iinode.identifiers import Prefix
from iinode.monitoring.auth import Authenticator, parse_basic
from iinode.monitoring.errors import EventInvalid, OutboxFull, ReportRefused
from iinode.monitoring.events import EventKind
from iinode.monitoring.metrics import CONTENT_TYPE, NodeMetrics
from iinode.monitoring.notices import Notice, NoticeBoard
from iinode.monitoring.receiver import ReportReceiver
from iinode.monitoring.store import GROUPS


@dataclass(frozen=True, slots=True)
class MonitoringApp:
    """What the router needs from the node."""

    receiver: ReportReceiver
    authenticate: Authenticator
    board: NoticeBoard
    clock: Callable[[], float] = time.time


def _json_response(
    data: object, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status_code, headers=headers, media_type="application/json"
    )


def _refusal(exc: ReportRefused) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="iinode monitoring"'} if exc.status == 401 else None
    return _json_response(
        {"error": exc.reason, "detail": exc.message}, status_code=exc.status, headers=headers
    )


def monitoring_router(app: MonitoringApp, *, prefix: str = "/monitoring") -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["monitoring"])
    receiver = app.receiver
    store = receiver.store

    async def identity_of(request: Request) -> Prefix | None:
        creds = parse_basic(request.headers.get("authorization"))
        if creds is None:
            return None
        return await app.authenticate(*creds)

    @router.post("/reports", summary="Receive a batch of events from a child node")
    async def post_report(request: Request) -> Response:
        identity = await identity_of(request)
        body = await request.body()
        try:
            receipt = receiver.receive(identity, body)
        except ReportRefused as exc:
            return _refusal(exc)
        except OutboxFull as exc:
            return _json_response(
                {"error": "outbox_full", "detail": str(exc)},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return _json_response(receipt.to_json())

    @router.get("/notices", summary="Notices for the authenticated child node")
    async def get_notices(request: Request, since: int = Query(0, ge=0)) -> Response:
        identity = await identity_of(request)
        if identity is None or not receiver.settings.is_child(identity):
            return _refusal(receiver_refusal(401 if identity is None else 403, identity, receiver))
        profile = {n.origin: n for n in store.nodes(now=app.clock(), stale_after=float("inf"))}
        node = profile.get(identity.text)
        province = node.province if node else ""
        industry = node.industry if node else ""
        items = app.board.for_node(province, industry, since)
        last = app.board.since(since)
        return _json_response(
            {
                "next": last[-1][0] if last else since,
                "notices": [n.to_json() for _, n in items],
            }
        )

    @router.post("/notices", summary="Issue a notice at this level", status_code=201)
    async def post_notice(request: Request) -> Response:
        try:
            notice = Notice.from_json(await _json(request))
        except EventInvalid as exc:
            return _json_response({"error": "malformed", "detail": str(exc)}, status_code=400)
        if notice.issuer != receiver.settings.node:
            return _json_response(
                {
                    "error": "forbidden",
                    "detail": f"notices here are issued by {receiver.settings.node}",
                },
                status_code=403,
            )
        created = app.board.add(notice)
        return _json_response(notice.to_json(), status_code=201 if created else 200)

    @router.get("/notices/{notice_id}/progress", summary="Who has and has not acted")
    async def notice_progress(notice_id: str) -> Response:
        try:
            progress = app.board.progress(notice_id, store, now=app.clock())
        except KeyError:
            raise HTTPException(404, f"no notice {notice_id!r}") from None
        return _json_response(progress.to_json())

    @router.get("/view", summary="Event counts at this level")
    async def view(
        by: str = Query("severity"),
        since: float | None = None,
        until: float | None = None,
        kind: EventKind | None = None,
    ) -> Response:
        if by not in GROUPS:
            raise HTTPException(400, f"'by' must be one of {', '.join(GROUPS)}")
        return _json_response(
            {"by": by, "counts": store.counts(by, since=since, until=until, kind=kind)}
        )

    @router.get("/trend", summary="Event counts per time bucket")
    async def trend(
        bucket: float = Query(3600.0, gt=0),
        since: float | None = None,
        kind: EventKind | None = None,
    ) -> Response:
        points = store.trend(bucket, since=since, kind=kind)
        return _json_response({"bucket": bucket, "points": points})

    @router.get("/nodes", summary="Reporting nodes below this level; stale ones flagged")
    async def nodes(stale_after: float = Query(300.0, gt=0)) -> Response:
        rows = store.nodes(now=app.clock(), stale_after=stale_after)
        return _json_response({"nodes": [n.to_json() for n in rows]})

    @router.get("/events/{origin}/{event_id}", summary="One event with its detail")
    async def event(origin: str, event_id: str) -> Response:
        found = store.get(origin.upper(), event_id)
        if found is None:
            raise HTTPException(404, f"no event {origin}/{event_id}")
        return _json_response(found.to_json())

    return router


def receiver_refusal(
    status: int, identity: Prefix | None, receiver: ReportReceiver
) -> ReportRefused:
    exc = ReportRefused.for_status(
        status,
        "child credentials required" if identity is None else f"{identity} is not a child here",
    )
    receiver.refused[exc.reason] = receiver.refused.get(exc.reason, 0) + 1
    receiver.metrics.reports_refused.labels(exc.reason).inc()
    return exc


async def _json(request: Request) -> object:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise EventInvalid(f"body is not JSON: {exc}") from None


def metrics_router(metrics: NodeMetrics, *, path: str = "/metrics") -> APIRouter:
    router = APIRouter(tags=["monitoring"])

    @router.get(path, summary="Prometheus text exposition", response_class=Response)
    async def render_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return router
