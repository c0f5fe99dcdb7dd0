"""Notices over HTTP: issued at a level, pulled by children, answered by operators.

``GET /notices`` answers a child with the notices meant for it (by its province
and industry, this node's record of them first) and the node's administrator with
every notice on the board and its own state; ``POST /notices`` issues one here,
``GET /notices/{id}/progress`` says who has and has not acted, and
``POST /notices/{id}/answer`` records this node's operator's answer.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request, Response

from iinode.api.monitoring_common import (
    AccessChecks,
    BodyTooLarge,
    MonitoringApp,
    counted,
    json_response,
    read_json,
    receiver_refusal,
    refusal_response,
    too_large,
)
from iinode.monitoring.errors import EventInvalid, OutboxFull, ReportRefused
from iinode.monitoring.notices import Notice, NoticeState


def add_notice_routes(router: APIRouter, app: MonitoringApp, checks: AccessChecks) -> None:
    """``GET`` and ``POST /notices``, ``/notices/{notice_id}/progress`` and ``/answer``."""
    receiver = app.receiver
    store = receiver.store

    def admin_notices(since: int) -> Response:
        items = []
        for seq, notice in app.board.since(since):
            own = app.board.state(notice.id)
            entry = notice.to_json()
            entry["seq"] = seq
            entry["state"] = None if own is None else own[0].value
            entry["assets"] = [] if own is None else own[2]
            items.append(entry)
        return json_response({"next": items[-1]["seq"] if items else since, "notices": items})

    @router.get("/notices", summary="Notices for the authenticated child node")
    async def get_notices(request: Request, since: int = Query(0, ge=0)) -> Response:
        try:
            identity = await checks.identity_of(request)
        except ReportRefused as exc:
            return refusal_response(counted(exc, receiver))
        if identity is None or not receiver.settings.is_child(identity):
            if app.authorize_admin is not None and await checks.admin_refusal(request) is None:
                return admin_notices(since)
            return refusal_response(
                receiver_refusal(401 if identity is None else 403, identity, receiver)
            )
        recorded = await checks.labels_of(identity)
        profile = {n.origin: n for n in store.nodes(now=app.clock(), stale_after=float("inf"))}
        node = profile.get(identity.text)
        province = node.province if node else ""
        industry = node.industry if node else ""
        if recorded is not None:  # this node's record wins over what the child declared
            province = recorded.province or province
            industry = recorded.industry or industry
        items = app.board.for_node(province, industry, since)
        last = app.board.since(since)
        return json_response(
            {
                "next": last[-1][0] if last else since,
                "notices": [n.to_json() for _, n in items],
            }
        )

    @router.post("/notices", summary="Issue a notice at this level", status_code=201)
    async def post_notice(request: Request) -> Response:
        refusal = await checks.admin_refusal(request)
        if refusal is not None:
            return refusal
        try:
            notice = Notice.from_json(await read_json(request, app.max_body_bytes))
        except BodyTooLarge as exc:
            return too_large(exc)
        except EventInvalid as exc:
            return json_response({"error": "malformed", "detail": str(exc)}, status_code=400)
        if notice.issuer != receiver.settings.node:
            return json_response(
                {
                    "error": "forbidden",
                    "detail": f"notices here are issued by {receiver.settings.node}",
                },
                status_code=403,
            )
        created = app.board.add(notice)
        return json_response(notice.to_json(), status_code=201 if created else 200)

    @router.get("/notices/{notice_id}/progress", summary="Who has and has not acted")
    async def notice_progress(notice_id: str, request: Request) -> Response:
        refusal = await checks.admin_refusal(request)
        if refusal is not None:
            return refusal
        try:
            progress = app.board.progress(notice_id, store, now=app.clock())
        except KeyError:
            raise HTTPException(404, f"no notice {notice_id!r}") from None
        return json_response(progress.to_json())

    @router.post("/notices/{notice_id}/answer", summary="Acknowledge or complete a notice")
    async def answer_notice(notice_id: str, request: Request) -> Response:
        refusal = await checks.admin_refusal(request)
        if refusal is not None:
            return refusal
        if app.answer is None:
            raise HTTPException(404, "this node does not answer notices")
        try:
            body = await read_json(request, app.max_body_bytes)
            if not isinstance(body, dict):
                raise EventInvalid('body must be an object {"state": ...}')
            state = NoticeState(body.get("state", NoticeState.ACKNOWLEDGED.value))
            event = app.answer(notice_id, state)
        except BodyTooLarge as exc:
            return too_large(exc)
        except ValueError:
            return json_response(
                {"error": "malformed", "detail": "state must be acknowledged or completed"}, 400
            )
        except EventInvalid as exc:
            status = 404 if app.board.get(notice_id) is None else 409
            return json_response({"error": "refused", "detail": str(exc)}, status_code=status)
        except OutboxFull as exc:
            return json_response(
                {"error": "outbox_full", "detail": str(exc)}, 503, {"Retry-After": "5"}
            )
        return json_response({"notice": notice_id, "state": state.value, "event": event.id})
