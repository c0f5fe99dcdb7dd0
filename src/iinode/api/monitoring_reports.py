"""What children send up: reports, and details on demand.

``POST /reports`` takes a batch of events from an authenticated child (its
credentials are checked from the headers before a body byte is read; the body is
read up to the receiver's ``max_bytes``, 413 beyond); checking and storing (SQLite
commits with ``synchronous=FULL``) runs in a worker thread, not on the event loop.
A child's province and industry come from ``MonitoringApp.labels`` (this node's
delegation record) when it has them, not from the child's own events.

Details on demand: ``GET /events/{origin}/{id}?wait=S`` answers a summary's
detail when this node has it; otherwise it asks the child that delivered the
summary and waits up to ``S`` seconds (202 ``{"pending": true}`` if the detail
has not arrived by then).  At most ``max_detail_waiters`` requests wait at once
(503 with ``Retry-After`` beyond that); a waiter sleeps on an ``asyncio.Event``
that ``POST /details`` sets when it stores the detail, and store access runs
in worker threads, not on the event loop.  The child collects the requests with
``GET /detail-requests`` and answers with ``POST /details`` (both with its
report credentials), relaying further down when it holds a summary itself.
"""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response

from iinode.api.monitoring_common import (
    AccessChecks,
    MonitoringApp,
    bounded_body,
    counted,
    json_response,
    refusal_response,
)
from iinode.errors import StorageError
from iinode.monitoring.errors import EventInvalid, OutboxFull, ReportRefused, ReportTooLarge
from iinode.monitoring.events import Event


def add_report_routes(router: APIRouter, app: MonitoringApp, checks: AccessChecks) -> None:
    """``POST /reports``, ``GET /events/{origin}/{event_id}``, ``GET /detail-requests``
    and ``POST /details`` on ``router``."""
    receiver = app.receiver
    store = receiver.store
    #: Detail waiters by event key, woken when ``POST /details`` stores that detail.
    waiters: dict[tuple[str, str], asyncio.Event] = {}
    per_key: dict[tuple[str, str], int] = {}
    waiting = 0

    @router.post("/reports", summary="Receive a batch of events from a child node")
    async def post_report(request: Request) -> Response:
        child = await checks.child_of(request)  # from the headers, before any body byte is read
        if isinstance(child, Response):
            return child
        body = await bounded_body(request, receiver.settings.max_bytes)
        if body is None:
            return refusal_response(
                counted(
                    ReportTooLarge(
                        f"report is larger than the {receiver.settings.max_bytes} bytes "
                        "this node accepts"
                    ),
                    receiver,
                )
            )
        labels = await checks.labels_of(child)
        try:
            receipt = await asyncio.to_thread(receiver.receive, child, body, labels)
        except ReportRefused as exc:
            return refusal_response(exc)
        except OutboxFull as exc:
            return json_response(
                {"error": "outbox_full", "detail": str(exc)},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        except StorageError as exc:  # e.g. the file stayed locked by another process
            return json_response(
                {"error": "storage", "detail": str(exc)},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        return json_response(receipt.to_json())

    @router.get("/events/{origin}/{event_id}", summary="One event with its detail")
    async def event(
        origin: str, event_id: str, request: Request, wait: float = Query(0.0, ge=0)
    ) -> Response:
        refusal = await checks.admin_refusal(request)
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
            return json_response(found.to_json())
        limit = min(wait, app.max_detail_wait)
        if limit > 0 and waiting >= app.max_detail_waiters:
            return json_response(
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
                    return json_response(again.to_json())
                try:
                    await asyncio.wait_for(arrived.wait(), limit)
                except TimeoutError:
                    pass
                else:
                    again = await asyncio.to_thread(store.get, origin, event_id)
                    if again is not None and again.detail is not None:
                        return json_response(again.to_json())
            finally:
                waiting -= 1
                per_key[key] -= 1
                if not per_key[key]:
                    del per_key[key], waiters[key]
        return json_response(found.to_json() | {"pending": True, "requested_from": via}, 202)

    @router.get("/detail-requests", summary="Details this node waits for from the child")
    async def detail_requests(request: Request) -> Response:
        child = await checks.child_of(request)
        if isinstance(child, Response):
            return child
        keys = await asyncio.to_thread(store.detail_requests, child.text)
        return json_response({"requests": [{"origin": o, "id": i} for o, i in keys]})

    @router.post("/details", summary="A child answers detail requests with full events")
    async def post_details(request: Request) -> Response:
        child = await checks.child_of(request)
        if isinstance(child, Response):
            return child
        body = await bounded_body(request, receiver.settings.max_bytes)
        if body is None:
            return json_response({"error": "too_large", "detail": "details too large"}, 413)
        try:
            data = orjson.loads(body)
            raw = data["events"] if isinstance(data, dict) else None
            if not isinstance(raw, list):
                raise EventInvalid('body must be {"events": [...]}')
            events = [Event.from_json(e) for e in raw]
        except (orjson.JSONDecodeError, KeyError, EventInvalid) as exc:
            return json_response({"error": "malformed", "detail": str(exc)}, 400)
        filled = 0
        for e in events:
            if await asyncio.to_thread(store.fill_detail, e, child.text):
                filled += 1
                if (arrived := waiters.get(e.key)) is not None:
                    arrived.set()
        return json_response({"filled": filled, "ignored": len(events) - filled})
