"""HTTP adapter of the monitoring subsystem: reports, notices, views, metrics.

``monitoring_router`` mounts the reporting protocol (see
``iinode.monitoring.protocol``) and the per-level views; ``metrics_router``
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
details, ``max_body_bytes`` for notices, answers and requeue requests.  For
``POST /reports`` checking and storing (SQLite commits with ``synchronous=FULL``)
runs in a worker thread, not on the event loop.  A child's province and
industry come from ``MonitoringApp.labels`` (this node's delegation record)
when it has them, not from the child's own events.

Details on demand: ``GET /events/{origin}/{id}?wait=S`` answers a summary's
detail when this node has it; otherwise it asks the child that delivered the
summary and waits up to ``S`` seconds (202 ``{"pending": true}`` if the detail
has not arrived by then).  At most ``max_detail_waiters`` requests wait at once
(503 with ``Retry-After`` beyond that); a waiter sleeps on an ``asyncio.Event``
that ``POST /details`` sets when it stores the detail, and store access runs
in worker threads, not on the event loop.  The child collects the requests with
``GET /detail-requests`` and answers with ``POST /details`` (both with its
report credentials), relaying further down when it holds a summary itself.

Dead letters (events the parent refused, with its message) are listed with
``GET /dead-letters`` and queued again with ``POST /dead-letters/requeue``
(body ``{"ids": [...]}`` with event ids or ``origin|id`` keys, or no body for
all of them; 404 and nothing queued if an id is not a dead letter here); both
need the node administrator (401/403 otherwise, also when the views are open).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response

from iinode.errors import StorageError
from iinode.identifiers import Prefix
from iinode.monitoring.auth import AdminCheck, Authenticator, parse_basic
from iinode.monitoring.errors import EventInvalid, OutboxFull, ReportRefused, ReportTooLarge
from iinode.monitoring.events import Event, EventKind
from iinode.monitoring.metrics import CONTENT_TYPE, NodeMetrics
from iinode.monitoring.notices import Notice, NoticeBoard, NoticeState
from iinode.monitoring.outbox import DeadLetter, Outbox
from iinode.monitoring.receiver import NodeLabels, ReportReceiver
from iinode.monitoring.store import GROUPS


@dataclass(frozen=True, slots=True)
class MonitoringApp:
    """What the router needs from the node."""

    receiver: ReportReceiver
    authenticate: Authenticator
    board: NoticeBoard
    clock: Callable[[], float] = time.time
    #: ``True`` for a node administrator, ``False`` for anyone else, ``None`` if the
    #: credentials do not authenticate.  ``None`` here leaves the views open.
    authorize_admin: AdminCheck | None = None
    #: Records the operator's answer to a notice (an enterprise node).
    answer: Callable[[str, NoticeState], Event] | None = None
    #: A node not heard from for this long is listed as stale.
    stale_after: float = 300.0
    #: Prefixes delegated to children here; ``/nodes`` lists those that never reported.
    children: Callable[[], Awaitable[list[str]]] | None = None
    #: This node's record of a child's province and industry (``None``: not recorded).
    labels: Callable[[Prefix], Awaitable[NodeLabels | None]] | None = None
    #: Longest ``wait`` a detail request may ask for, in seconds.
    max_detail_wait: float = 30.0
    #: Most detail requests waiting at once (``wait`` > 0); more are answered 503.
    max_detail_waiters: int = 64
    #: The node's outbox, whose dead letters ``/dead-letters`` lists and requeues.
    outbox: Outbox | None = None
    #: Largest body of a notice, an answer or a requeue request, in bytes (413 beyond).
    max_body_bytes: int = 256 * 1024


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
    #: Detail waiters by event key, woken when ``POST /details`` stores that detail.
    waiters: dict[tuple[str, str], asyncio.Event] = {}
    per_key: dict[tuple[str, str], int] = {}
    waiting = 0

    async def identity_of(request: Request) -> Prefix | None:
        """Raises ``ReportRefused`` when the client's address is out of attempts."""
        creds = parse_basic(request.headers.get("authorization"))
        if creds is None:
            return None
        return await app.authenticate(*creds, peer=_peer(request))

    async def admin_refusal(request: Request) -> Response | None:
        """``None`` if the request may read or act at this level, else the refusal."""
        if app.authorize_admin is None:
            return None
        creds = parse_basic(request.headers.get("authorization"))
        try:
            verdict = (
                None if creds is None else await app.authorize_admin(*creds, peer=_peer(request))
            )
        except ReportRefused as exc:
            return _refusal(exc)
        if verdict is None:
            return _refusal(ReportRefused.for_status(401, "node administrator credentials needed"))
        if not verdict:
            return _refusal(ReportRefused.for_status(403, "only the node administrator may"))
        return None

    def admin_notices(since: int) -> Response:
        items = []
        for seq, notice in app.board.since(since):
            own = app.board.state(notice.id)
            entry = notice.to_json()
            entry["seq"] = seq
            entry["state"] = None if own is None else own[0].value
            entry["assets"] = [] if own is None else own[2]
            items.append(entry)
        return _json_response({"next": items[-1]["seq"] if items else since, "notices": items})

    async def child_of(request: Request) -> Prefix | Response:
        """The authenticated child, or the 401/403 refusal (counted)."""
        try:
            identity = await identity_of(request)
        except ReportRefused as exc:
            return _refusal(counted(exc, receiver))
        if identity is None or not receiver.settings.is_child(identity):
            return _refusal(receiver_refusal(401 if identity is None else 403, identity, receiver))
        return identity

    async def labels_of(child: Prefix) -> NodeLabels | None:
        return None if app.labels is None else await app.labels(child)

    @router.post("/reports", summary="Receive a batch of events from a child node")
    async def post_report(request: Request) -> Response:
        child = await child_of(request)  # from the headers, before any body byte is read
        if isinstance(child, Response):
            return child
        body = await _bounded_body(request, receiver.settings.max_bytes)
        if body is None:
            return _refusal(
                counted(
                    ReportTooLarge(
                        f"report is larger than the {receiver.settings.max_bytes} bytes "
                        "this node accepts"
                    ),
                    receiver,
                )
            )
        labels = await labels_of(child)
        try:
            receipt = await asyncio.to_thread(receiver.receive, child, body, labels)
        except ReportRefused as exc:
            return _refusal(exc)
        except OutboxFull as exc:
            return _json_response(
                {"error": "outbox_full", "detail": str(exc)},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        except StorageError as exc:  # e.g. the file stayed locked by another process
            return _json_response(
                {"error": "storage", "detail": str(exc)},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return _json_response(receipt.to_json())

    @router.get("/notices", summary="Notices for the authenticated child node")
    async def get_notices(request: Request, since: int = Query(0, ge=0)) -> Response:
        try:
            identity = await identity_of(request)
        except ReportRefused as exc:
            return _refusal(counted(exc, receiver))
        if identity is None or not receiver.settings.is_child(identity):
            if app.authorize_admin is not None and await admin_refusal(request) is None:
                return admin_notices(since)
            return _refusal(receiver_refusal(401 if identity is None else 403, identity, receiver))
        recorded = await labels_of(identity)
        profile = {n.origin: n for n in store.nodes(now=app.clock(), stale_after=float("inf"))}
        node = profile.get(identity.text)
        province = node.province if node else ""
        industry = node.industry if node else ""
        if recorded is not None:  # this node's record wins over what the child declared
            province = recorded.province or province
            industry = recorded.industry or industry
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
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        try:
            notice = Notice.from_json(await _json(request, app.max_body_bytes))
        except BodyTooLarge as exc:
            return _too_large(exc)
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
    async def notice_progress(notice_id: str, request: Request) -> Response:
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        try:
            progress = app.board.progress(notice_id, store, now=app.clock())
        except KeyError:
            raise HTTPException(404, f"no notice {notice_id!r}") from None
        return _json_response(progress.to_json())

    @router.post("/notices/{notice_id}/answer", summary="Acknowledge or complete a notice")
    async def answer_notice(notice_id: str, request: Request) -> Response:
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        if app.answer is None:
            raise HTTPException(404, "this node does not answer notices")
        try:
            body = await _json(request, app.max_body_bytes)
            if not isinstance(body, dict):
                raise EventInvalid('body must be an object {"state": ...}')
            state = NoticeState(body.get("state", NoticeState.ACKNOWLEDGED.value))
            event = app.answer(notice_id, state)
        except BodyTooLarge as exc:
            return _too_large(exc)
        except ValueError:
            return _json_response(
                {"error": "malformed", "detail": "state must be acknowledged or completed"}, 400
            )
        except EventInvalid as exc:
            status = 404 if app.board.get(notice_id) is None else 409
            return _json_response({"error": "refused", "detail": str(exc)}, status_code=status)
        except OutboxFull as exc:
            return _json_response(
                {"error": "outbox_full", "detail": str(exc)}, 503, {"Retry-After": "5"}
            )
        return _json_response({"notice": notice_id, "state": state.value, "event": event.id})

    @router.get("/view", summary="Event counts at this level")
    async def view(
        request: Request,
        by: str = Query("severity"),
        since: float | None = None,
        until: float | None = None,
        kind: EventKind | None = None,
    ) -> Response:
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        if by not in GROUPS:
            raise HTTPException(400, f"'by' must be one of {', '.join(GROUPS)}")
        return _json_response(
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
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        points = await asyncio.to_thread(store.trend, bucket, since=since, kind=kind)
        return _json_response({"bucket": bucket, "points": points})

    @router.get("/nodes", summary="Reporting nodes below this level; stale ones flagged")
    async def nodes(request: Request, stale_after: float | None = Query(None, gt=0)) -> Response:
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        window = app.stale_after if stale_after is None else stale_after
        rows = await asyncio.to_thread(store.nodes, now=app.clock(), stale_after=window)
        nodes = [n.to_json() | {"reported": True} for n in rows]
        seen = {n.origin for n in rows}
        silent = [c for c in await app.children() if c not in seen] if app.children else []
        nodes += [_never_reported(c) for c in silent]
        nodes.sort(key=lambda n: str(n["origin"]))
        return _json_response(
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
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        found = await asyncio.to_thread(
            store.recent, limit, kind=kind, origin=None if origin is None else origin.upper()
        )
        return _json_response({"events": [e.to_json() for e in found]})

    @router.get("/events/{origin}/{event_id}", summary="One event with its detail")
    async def event(
        origin: str, event_id: str, request: Request, wait: float = Query(0.0, ge=0)
    ) -> Response:
        refusal = await admin_refusal(request)
        if refusal is not None:
            return refusal
        nonlocal waiting
        origin = origin.upper()
        key = (origin, event_id)
        held = await asyncio.to_thread(store.holder, origin, event_id)
        if held is None:
            raise HTTPException(404, f"no event {origin}/{event_id}")
        has_detail, via = held
        found = await asyncio.to_thread(store.get, origin, event_id)
        assert found is not None
        if has_detail or found.detail_at is None or via == receiver.settings.node.text:
            return _json_response(found.to_json())
        limit = min(wait, app.max_detail_wait)
        if limit > 0 and waiting >= app.max_detail_waiters:
            return _json_response(
                {"error": "busy", "detail": f"{waiting} detail requests are waiting already"},
                503,
                {"Retry-After": "5"},
            )
        await asyncio.to_thread(store.request_detail, origin, event_id, via, app.clock())
        if limit > 0:
            arrived = waiters.setdefault(key, asyncio.Event())
            per_key[key] = per_key.get(key, 0) + 1
            waiting += 1
            try:
                # registered before this re-read, so a detail stored meanwhile is not missed
                again = await asyncio.to_thread(store.get, origin, event_id)
                if again is not None and again.detail is not None:
                    return _json_response(again.to_json())
                try:
                    await asyncio.wait_for(arrived.wait(), limit)
                except TimeoutError:
                    pass
                else:
                    again = await asyncio.to_thread(store.get, origin, event_id)
                    if again is not None and again.detail is not None:
                        return _json_response(again.to_json())
            finally:
                waiting -= 1
                per_key[key] -= 1
                if not per_key[key]:
                    del per_key[key], waiters[key]
        return _json_response(found.to_json() | {"pending": True, "requested_from": via}, 202)

    async def strict_admin_refusal(request: Request) -> Response | None:
        """Like ``admin_refusal``, but closed to everyone when no admin check is set."""
        if app.authorize_admin is None:
            return _refusal(ReportRefused.for_status(403, "only the node administrator may"))
        return await admin_refusal(request)

    def outbox_or_404() -> Outbox:
        if app.outbox is None:
            raise HTTPException(404, "this node keeps no outbox")
        return app.outbox

    @router.get("/dead-letters", summary="Events the parent refused, with its message")
    async def dead_letters(request: Request) -> Response:
        refusal = await strict_admin_refusal(request)
        if refusal is not None:
            return refusal
        outbox = outbox_or_404()
        dead = await asyncio.to_thread(outbox.dead_letters)
        return _json_response({"dead_letters": [_dead_letter_json(d) for d in dead]})

    @router.post("/dead-letters/requeue", summary="Queue dead letters for the parent again")
    async def requeue_dead_letters(request: Request) -> Response:
        refusal = await strict_admin_refusal(request)
        if refusal is not None:
            return refusal
        outbox = outbox_or_404()
        ids: list[str] | None = None
        raw_body = await _bounded_body(request, app.max_body_bytes)
        if raw_body is None:
            return _too_large(BodyTooLarge(app.max_body_bytes))
        if raw_body:
            try:
                body = _parse_json(raw_body)
            except EventInvalid as exc:
                return _json_response({"error": "malformed", "detail": str(exc)}, 400)
            raw = body.get("ids") if isinstance(body, dict) else ()
            if raw is not None and not (
                isinstance(raw, list) and all(isinstance(i, str) and i for i in raw)
            ):
                return _json_response(
                    {"error": "malformed", "detail": 'body must be {"ids": ["<event id>", ...]}'},
                    400,
                )
            ids = raw
        try:
            queued = await asyncio.to_thread(outbox.requeue_dead, ids)
        except KeyError as exc:
            return _json_response({"error": "not_found", "detail": str(exc.args[0])}, 404)
        except OutboxFull as exc:
            return _json_response(
                {"error": "outbox_full", "detail": str(exc)}, 503, {"Retry-After": "5"}
            )
        return _json_response({"requeued": queued})

    @router.get("/detail-requests", summary="Details this node waits for from the child")
    async def detail_requests(request: Request) -> Response:
        child = await child_of(request)
        if isinstance(child, Response):
            return child
        keys = await asyncio.to_thread(store.detail_requests, child.text)
        return _json_response({"requests": [{"origin": o, "id": i} for o, i in keys]})

    @router.post("/details", summary="A child answers detail requests with full events")
    async def post_details(request: Request) -> Response:
        child = await child_of(request)
        if isinstance(child, Response):
            return child
        body = await _bounded_body(request, receiver.settings.max_bytes)
        if body is None:
            return _json_response({"error": "too_large", "detail": "details too large"}, 413)
        try:
            data = orjson.loads(body)
            raw = data["events"] if isinstance(data, dict) else None
            if not isinstance(raw, list):
                raise EventInvalid('body must be {"events": [...]}')
            events = [Event.from_json(e) for e in raw]
        except (orjson.JSONDecodeError, KeyError, EventInvalid) as exc:
            return _json_response({"error": "malformed", "detail": str(exc)}, 400)
        filled = 0
        for e in events:
            if await asyncio.to_thread(store.fill_detail, e, child.text):
                filled += 1
                if (arrived := waiters.get(e.key)) is not None:
                    arrived.set()
        return _json_response({"filled": filled, "ignored": len(events) - filled})

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


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, or ``None`` as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _peer(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def counted(exc: ReportRefused, receiver: ReportReceiver) -> ReportRefused:
    """Count a refusal decided before the receiver saw the report."""
    receiver.refused[exc.reason] = receiver.refused.get(exc.reason, 0) + 1
    receiver.metrics.reports_refused.labels(exc.reason).inc()
    return exc


def receiver_refusal(
    status: int, identity: Prefix | None, receiver: ReportReceiver
) -> ReportRefused:
    exc = ReportRefused.for_status(
        status,
        "child credentials required" if identity is None else f"{identity} is not a child here",
    )
    return counted(exc, receiver)


class BodyTooLarge(EventInvalid):
    """A request body beyond the endpoint's bound (answered 413, not read further)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body is larger than the {limit} bytes accepted here")


def _too_large(exc: BodyTooLarge) -> Response:
    return _json_response({"error": "too_large", "detail": str(exc)}, 413)


def _parse_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventInvalid(f"body is not JSON: {exc}") from None


async def _json(request: Request, limit: int) -> object:
    """The body parsed as JSON, read up to ``limit`` bytes (``BodyTooLarge`` beyond)."""
    raw = await _bounded_body(request, limit)
    if raw is None:
        raise BodyTooLarge(limit)
    return _parse_json(raw)


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
