"""Details on demand, the child's side: answer the parent's requests for event details.

Upper levels keep summaries; the detail of an event stays with the node that
first summarised it.  When an administrator upstream asks for it, the parent
records a request for the child that delivered the summary.  The child, which
already talks to its parent with its report credentials, collects the requests
(``GET /monitoring/detail-requests``), answers those it holds in full
(``POST /monitoring/details``) and, for events it holds only as summaries
itself, asks its own child in turn - so a request climbs down as many levels as
needed, one link at a time, and no parent ever needs credentials for its child.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from iinode.errors import TransportError
from iinode.monitoring.auth import basic_username
from iinode.monitoring.errors import ReplyInvalid, ReportRefused
from iinode.monitoring.events import Event
from iinode.monitoring.store import EventStore


async def _call(
    client: httpx.AsyncClient, method: str, url: str, auth: tuple[str, str], **kwargs: Any
) -> Any:
    try:
        response = await client.request(method, url, auth=auth, **kwargs)
    except httpx.HTTPError as exc:
        raise TransportError(f"{method} {url} failed: {exc!r}") from exc
    if response.status_code != 200:
        raise ReportRefused.for_status(
            response.status_code, f"parent refused {method} {url}: {response.text[:200]}"
        )
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ReplyInvalid(f"{url} answered 200 without JSON: {exc}") from None


def _keys(data: Any) -> list[tuple[str, str]]:
    try:
        return [(str(r["origin"]), str(r["id"])) for r in data["requests"]]
    except (KeyError, TypeError) as exc:
        raise ReplyInvalid(f"detail requests are malformed: {exc!r}") from None


async def answer_detail_requests(
    client: httpx.AsyncClient,
    parent_url: str,
    username: str,
    password: str,
    store: EventStore,
    *,
    node: str,
    now: float,
) -> int:
    """Send the parent the details it asked for that ``store`` holds; returns how many.

    Requests for events held here only as summaries are passed on to the child
    that delivered them (``node`` is this node's prefix).
    """
    base = parent_url.rstrip("/") + "/monitoring"
    auth = (basic_username(username), password)
    keys = _keys(await _call(client, "GET", base + "/detail-requests", auth))
    found: list[Event] = []
    for origin, event_id in keys:
        held = store.holder(origin, event_id)
        if held is None:
            continue
        has_detail, via = held
        if has_detail:
            event = store.get(origin, event_id)
            if event is not None:
                found.append(event)
        elif via != node:
            store.request_detail(origin, event_id, via, now)
    if not found:
        return 0
    body = orjson.dumps({"events": [e.to_json() for e in found]})
    headers = {"content-type": "application/json"}
    answer = await _call(client, "POST", base + "/details", auth, content=body, headers=headers)
    try:
        return int(answer["filled"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplyInvalid(f"details answer is malformed: {exc!r}") from None


__all__ = ["answer_detail_requests"]
