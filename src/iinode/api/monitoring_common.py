"""What the monitoring routes share: what they need from the node, who is asking.

``MonitoringApp`` is what the routes need from the node; ``AccessChecks`` tells who a
request comes from (a child by its report credentials, the node administrator) and
answers the refusal otherwise.  Every refusal answers ``{"error": <reason>,
"detail": <message>}``; bodies are read as a stream up to a bound (``bounded_body``,
``read_json``), answered 413 beyond it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from fastapi import Request, Response

from iinode.identifiers import Prefix
from iinode.monitoring.auth import AdminCheck, Authenticator, parse_basic
from iinode.monitoring.errors import EventInvalid, ReportRefused
from iinode.monitoring.events import Event
from iinode.monitoring.notices import NoticeBoard, NoticeState
from iinode.monitoring.outbox import Outbox
from iinode.monitoring.receiver import NodeLabels, ReportReceiver


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


def json_response(
    data: object, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status_code, headers=headers, media_type="application/json"
    )


def refusal_response(exc: ReportRefused) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="iinode monitoring"'} if exc.status == 401 else None
    return json_response(
        {"error": exc.reason, "detail": exc.message}, status_code=exc.status, headers=headers
    )


@dataclass(frozen=True, slots=True)
class AccessChecks:
    """Who a request comes from, and whether it may act at this level."""

    app: MonitoringApp

    async def identity_of(self, request: Request) -> Prefix | None:
        """Raises ``ReportRefused`` when the client's address is out of attempts."""
        creds = parse_basic(request.headers.get("authorization"))
        if creds is None:
            return None
        return await self.app.authenticate(*creds, peer=peer(request))

    async def admin_refusal(self, request: Request) -> Response | None:
        """``None`` if the request may read or act at this level, else the refusal."""
        app = self.app
        if app.authorize_admin is None:
            return None
        creds = parse_basic(request.headers.get("authorization"))
        try:
            verdict = (
                None if creds is None else await app.authorize_admin(*creds, peer=peer(request))
            )
        except ReportRefused as exc:
            return refusal_response(exc)
        if verdict is None:
            return refusal_response(
                ReportRefused.for_status(401, "node administrator credentials needed")
            )
        if not verdict:
            return refusal_response(
                ReportRefused.for_status(403, "only the node administrator may")
            )
        return None

    async def strict_admin_refusal(self, request: Request) -> Response | None:
        """Like ``admin_refusal``, but closed to everyone when no admin check is set."""
        if self.app.authorize_admin is None:
            return refusal_response(
                ReportRefused.for_status(403, "only the node administrator may")
            )
        return await self.admin_refusal(request)

    async def child_of(self, request: Request) -> Prefix | Response:
        """The authenticated child, or the 401/403 refusal (counted)."""
        receiver = self.app.receiver
        try:
            identity = await self.identity_of(request)
        except ReportRefused as exc:
            return refusal_response(counted(exc, receiver))
        if identity is None or not receiver.settings.is_child(identity):
            return refusal_response(
                receiver_refusal(401 if identity is None else 403, identity, receiver)
            )
        return identity

    async def labels_of(self, child: Prefix) -> NodeLabels | None:
        return None if self.app.labels is None else await self.app.labels(child)


async def bounded_body(request: Request, limit: int) -> bytes | None:
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


def peer(request: Request) -> str | None:
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


def too_large(exc: BodyTooLarge) -> Response:
    return json_response({"error": "too_large", "detail": str(exc)}, 413)


def parse_json(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventInvalid(f"body is not JSON: {exc}") from None


async def read_json(request: Request, limit: int) -> object:
    """The body parsed as JSON, read up to ``limit`` bytes (``BodyTooLarge`` beyond)."""
    raw = await bounded_body(request, limit)
    if raw is None:
        raise BodyTooLarge(limit)
    return parse_json(raw)
