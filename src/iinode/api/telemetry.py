"""HTTP adapter of telemetry: equipment records, live state, history and aggregates.

``telemetry_router(TelemetryApp(...))`` returns an ``APIRouter`` mounted under
``/telemetry`` by default::

    GET    /equipment?prefix=88.118.8               equipment records
    GET    /equipment/{prefix}/{suffix}             one record
    PUT    /equipment/{prefix}/{suffix}             create or replace (body: equipment JSON)
    DELETE /equipment/{prefix}/{suffix}
    GET    /equipment/{prefix}/{suffix}/live        latest value per tag
    GET    /equipment/{prefix}/{suffix}/history     ?tag=&start=&end=&limit=
    GET    /equipment/{prefix}/{suffix}/aggregates  ?tag=&interval=60&start=&end=
    GET    /rejects                                 reject counts by reason
    GET    /info                                    where the node's MQTT broker listens

Times are ISO 8601 or epoch milliseconds; ``interval`` is in seconds.  Errors
answer ``{"error", "detail"}`` with 400 (bad input), 404 (unknown equipment) or
413 (a body over ``TelemetryApp.max_body``, 1 MiB).
With ``TelemetryApp.authenticate`` set, PUT and DELETE need HTTP Basic
credentials (401 without, 403 when HS_ADMIN does not allow the change); a PUT's
credentials are checked before its body is read.  Values keep their type in
live values, history and aggregates (integers exact to 64 bits, booleans,
text; ``null`` for a bad quality that came without a value).  With
``TelemetryApp.reader`` set (the node's handle-backed registry), reads follow
the identifier's permissions as ``/api/handles`` does: listing needs
credentials with LIST_HANDLES on the prefix, and an equipment (its record, live
values, history, aggregates) is shown when its ``IINODE_EQUIPMENT`` value is
readable by the caller (PUBLIC_READ, or READ_VALUE for ADMIN_READ values);
otherwise 401 (anonymous) or 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from iinode.errors import (
    AuthenticationFailed,
    AuthenticationNeeded,
    HandleError,
    HandleNotFound,
    InvalidCredential,
    InvalidHandle,
    NotAuthorized,
    ValueInvalid,
)
from iinode.identifiers import HandleName, IndexedHandle
from iinode.telemetry.model import Equipment, from_us, to_us
from iinode.telemetry.registry import EquipmentReader, EquipmentRegistry
from iinode.telemetry.store import ParquetStore
from iinode.telemetry.twin import LiveState
from iinode.telemetry.validation import RejectLog

#: Default bound of a request body: an equipment record with thousands of tags fits.
MAX_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class TelemetryApp:
    """What the router needs from the node."""

    registry: EquipmentRegistry
    store: ParquetStore
    live: LiveState
    rejects: RejectLog | None = None
    #: Who sent a request (``None`` if no credentials); raises on bad credentials.
    authenticate: Callable[[Request], Awaitable[IndexedHandle | None]] | None = None
    #: ``(host, port)`` of the MQTT broker the node ingests from.
    mqtt: tuple[str, int] | None = None
    #: Permission-checked reads; ``None`` shows every record to everyone (trusted setups).
    reader: EquipmentReader | None = None
    #: The largest request body read (an equipment record); larger ones answer 413.
    max_body: int = MAX_BODY

    @property
    def access(self) -> EquipmentAccess:
        return EquipmentAccess(self.registry, self.authenticate, self.reader)


class _TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read as a stream; ``_TooLarge`` once it passes ``limit`` bytes.

    A declared ``Content-Length`` above the limit is refused before anything is read.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _TooLarge
    return bytes(body)


_AUTH_ERRORS = (AuthenticationFailed, AuthenticationNeeded, InvalidCredential)


def _json(data: object, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


def _error(status: int, reason: str, detail: str) -> Response:
    return _json({"error": reason, "detail": detail}, status)


def _refusal(exc: HandleError) -> Response:
    """The answer to a registry refusing a request."""
    if isinstance(exc, _AUTH_ERRORS):
        return _error(401, "unauthenticated", exc.message)
    if isinstance(exc, NotAuthorized):
        return _error(403, "forbidden", exc.message)
    if isinstance(exc, HandleNotFound):
        return _error(404, "not_found", exc.message)
    if isinstance(exc, InvalidHandle):
        return _error(400, "invalid_handle", exc.message)
    return _error(400, "refused", exc.message)


def parse_time(text: str | None) -> int | None:
    """Microseconds for an ISO 8601 time or epoch milliseconds; ``None`` passes through."""
    if text is None or text == "":
        return None
    if text.lstrip("-").isdigit():
        return int(text) * 1000
    try:
        return to_us(datetime.fromisoformat(text))
    except ValueError:
        raise ValueInvalid(f"time {text!r} is neither ISO 8601 nor epoch milliseconds") from None


Authenticate = Callable[[Request], Awaitable[IndexedHandle | None]]


@dataclass(frozen=True, slots=True)
class EquipmentAccess:
    """Equipment records as a request's caller may read them (``/telemetry`` and ``/kpi``).

    With a ``reader``, reads follow the identifiers' permissions for the caller that
    ``authenticate`` names (``None``: anonymous); without one, every record is shown.
    The methods answer the refusal of bad credentials as a ``Response``, and raise the
    registry's ``HandleError`` (the caller answers it with ``refusal``).
    """

    registry: EquipmentRegistry
    authenticate: Authenticate | None = None
    reader: EquipmentReader | None = None

    async def caller(self, request: Request) -> IndexedHandle | Response | None:
        """Who sent the request (``None``: anonymous), or the refusal of bad credentials."""
        if self.authenticate is None:
            return None
        try:
            return await self.authenticate(request)
        except _AUTH_ERRORS as exc:
            return _refusal(exc)

    async def listing(self, prefix: str | None, request: Request) -> list[Equipment] | Response:
        """The equipment under ``prefix`` (all with ``None``) the caller may list."""
        if self.reader is None:
            return await self.registry.list(prefix)
        identity = await self.caller(request)
        if isinstance(identity, Response):
            return identity
        return await self.reader.listing(prefix, identity)

    async def one(self, handle: str, request: Request) -> Equipment | Response | None:
        """The equipment ``handle`` if the caller may read it (``None``: not registered)."""
        if self.reader is None:
            return await self.registry.get(handle)
        identity = await self.caller(request)
        if isinstance(identity, Response):
            return identity
        return await self.reader.readable(handle, identity)


def telemetry_router(app: TelemetryApp, *, prefix: str = "/telemetry") -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["telemetry"])

    access = app.access
    caller = access.caller

    async def writer(request: Request) -> IndexedHandle | Response | None:
        """The identity a write is made as, or the refusal to send."""
        if app.authenticate is None:
            return None
        identity = await caller(request)
        if identity is None:
            return _error(401, "unauthenticated", "writing equipment needs HTTP Basic credentials")
        return identity

    async def lookup(prefix_text: str, suffix: str, request: Request) -> Equipment | Response:
        try:
            handle = str(HandleName(prefix_text, suffix))
            item = await access.one(handle, request)
        except HandleError as exc:
            return _refusal(exc)
        if item is None:
            return _error(404, "not_found", f"equipment {handle} is not registered")
        return item

    @router.get("/equipment", summary="List equipment, optionally under one prefix")
    async def list_equipment(request: Request, prefix: str | None = Query(None)) -> Response:
        try:
            items = await access.listing(prefix, request)
        except InvalidHandle as exc:
            return _error(400, "invalid_prefix", exc.message)
        except HandleError as exc:
            return _refusal(exc)
        if isinstance(items, Response):
            return items
        return _json([e.to_json() for e in items])

    @router.get("/equipment/{prefix_text}/{suffix}", summary="One equipment record")
    async def get_equipment(prefix_text: str, suffix: str, request: Request) -> Response:
        item = await lookup(prefix_text, suffix, request)
        return item if isinstance(item, Response) else _json(item.to_json())

    @router.put("/equipment/{prefix_text}/{suffix}", summary="Create or replace equipment")
    async def put_equipment(prefix_text: str, suffix: str, request: Request) -> Response:
        try:
            handle = str(HandleName(prefix_text, suffix))
        except InvalidHandle as exc:
            return _refusal(exc)
        # Who asks is settled before the body is read: no parsing for strangers.
        identity = await writer(request)
        if isinstance(identity, Response):
            return identity
        try:
            body = orjson.loads(await read_body(request, app.max_body))
            if not isinstance(body, dict):
                raise ValueInvalid("body must be a JSON object")
            body.setdefault("id", handle)
            item = Equipment.from_json(body)
            if item.id != handle:
                raise ValueInvalid(f"body id {item.id} does not match the path {handle}")
        except _TooLarge:
            return _error(413, "too_large", f"the body is larger than {app.max_body} bytes")
        except orjson.JSONDecodeError as exc:
            return _error(400, "invalid_json", str(exc))
        except HandleError as exc:
            return _error(400, "invalid_equipment", exc.message)
        try:
            await app.registry.put(item, identity)
        except HandleError as exc:
            return _refusal(exc)
        return _json(item.to_json())

    @router.delete("/equipment/{prefix_text}/{suffix}", summary="Delete equipment")
    async def delete_equipment(prefix_text: str, suffix: str, request: Request) -> Response:
        try:
            handle = str(HandleName(prefix_text, suffix))
        except InvalidHandle as exc:
            return _refusal(exc)
        identity = await writer(request)
        if isinstance(identity, Response):
            return identity
        try:
            await app.registry.remove(handle, identity)
        except HandleError as exc:
            return _refusal(exc)
        return Response(status_code=204)

    @router.get("/equipment/{prefix_text}/{suffix}/live", summary="Latest value of every tag")
    async def live(prefix_text: str, suffix: str, request: Request) -> Response:
        item = await lookup(prefix_text, suffix, request)
        if isinstance(item, Response):
            return item
        state = {tag: s.to_json() for tag, s in app.live.get(item.id).items()}
        if not state:
            stored = await asyncio.to_thread(app.store.latest, item.id)
            state = {
                tag: {"value": v, "time": from_us(t).isoformat(), "quality": int(q)}
                for tag, (t, v, q) in stored.items()
            }
        return _json({"equipment": item.id, "tags": state})

    @router.get("/equipment/{prefix_text}/{suffix}/history", summary="Stored readings")
    async def history(
        prefix_text: str,
        suffix: str,
        request: Request,
        tag: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = Query(10_000, ge=1, le=1_000_000),
    ) -> Response:
        item = await lookup(prefix_text, suffix, request)
        if isinstance(item, Response):
            return item
        try:
            window = parse_time(start), parse_time(end)
        except ValueInvalid as exc:
            return _error(400, "invalid_time", exc.message)
        rows = await asyncio.to_thread(app.store.history, item.id, tag, *window, limit)
        out: list[dict[str, Any]] = [
            {
                "tag": r.tag,
                "time": from_us(r.time_us).isoformat(),
                "value": r.value,
                "quality": int(r.quality),
            }
            for r in rows
        ]
        return _json({"equipment": item.id, "readings": out})

    @router.get("/equipment/{prefix_text}/{suffix}/aggregates", summary="min/max/avg/count")
    async def aggregates(
        prefix_text: str,
        suffix: str,
        request: Request,
        tag: str,
        interval: float = Query(60.0, gt=0),
        start: str | None = None,
        end: str | None = None,
    ) -> Response:
        item = await lookup(prefix_text, suffix, request)
        if isinstance(item, Response):
            return item
        try:
            window = parse_time(start), parse_time(end)
        except ValueInvalid as exc:
            return _error(400, "invalid_time", exc.message)
        step = max(1, int(interval * 1_000_000))
        buckets = await asyncio.to_thread(app.store.downsample, item.id, tag, step, *window)
        return _json(
            {
                "equipment": item.id,
                "tag": tag,
                "interval": interval,
                "buckets": [
                    {
                        "start": from_us(b.start_us).isoformat(),
                        "count": b.count,
                        "min": b.min,
                        "max": b.max,
                        "avg": b.avg,
                    }
                    for b in buckets
                ],
            }
        )

    @router.get("/rejects", summary="Rejected readings by reason")
    async def rejects() -> Response:
        log = app.rejects
        if log is None:
            return _json({"total": 0, "reasons": {}})
        return _json(
            {"total": log.total, "reasons": {r.value: n for r, n in sorted(log.counts.items())}}
        )

    @router.get("/info", summary="Where this node ingests telemetry from")
    async def info() -> Response:
        host, port = app.mqtt if app.mqtt is not None else (None, None)
        return _json({"mqtt": {"host": host, "port": port}})

    return router
