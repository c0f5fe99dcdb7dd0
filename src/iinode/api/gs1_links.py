"""GS1 keys as identifier records: naming, link values, and the API that writes them.

The key ``/01/09506000134352/10/ABC`` is the handle ``<prefix>/gs1/01/09506000134352/10/ABC``
(the canonical Digital Link path after ``gs1``).  Its links are ``GS1_LINK`` values at
indexes 500-999, each the JSON text of a :class:`iinode.gs1.Link`; a ``GS1_DESCRIPTION``
value is the key's item description; any other value is the record's own.

``GET|POST|DELETE /api/gs1/links/{digital link path}`` lists, adds and removes a key's
links.  Writes authenticate as handle writes do (HTTP Basic ``index:handle``) and go
through :class:`~iinode.node.service.HandleService`, so they need the same HS_ADMIN
bits.  Each key keeps exactly one default link.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from iinode.api.rest_common import authenticate, bounded_message, json_response, read_body
from iinode.codes import http_status
from iinode.errors import (
    HandleAlreadyExists,
    HandleError,
    ServerBusy,
    ValueAlreadyExists,
    ValueInvalid,
    ValuesNotFound,
)
from iinode.gs1 import DigitalLink, DigitalLinkError, Link, parse_path
from iinode.identifiers import HandleName, HandleValue, Record, StringData
from iinode.node.service import HandleService

log = logging.getLogger(__name__)

#: The value type of a link in a GS1 key's record.
LINK_TYPE = "GS1_LINK"
#: Indexes of link values in a GS1 key's record.
LINK_INDEXES = range(500, 1000)
#: Handle suffix stem of GS1 keys: ``<prefix>/gs1/<canonical path>``.
SUFFIX_STEM = "gs1"
#: The value type whose text is a key's ``itemDescription`` in linksets.
DESCRIPTION_TYPE = "GS1_DESCRIPTION"
#: Times a link write is retried when another writer took the index first.
ADD_ATTEMPTS = 8


def handle_for(prefix: str, link: DigitalLink) -> HandleName:
    """The identifier record of a GS1 key (qualifiers included, attributes not)."""
    return HandleName(prefix, SUFFIX_STEM + link.path)


#: Stored link texts already parsed and checked (the same text is the same link).
_stored_link = functools.lru_cache(maxsize=65_536)(Link.from_value_text)


def links_in(values: Sequence[HandleValue]) -> list[Link]:
    out = []
    for v in values:
        if v.type == LINK_TYPE and isinstance(v.data, StringData):
            try:
                out.append(_stored_link(v.data.text, v.index))
            except ValueInvalid as exc:
                log.warning("GS1 link at index %d is not valid: %s", v.index, exc.message)
    return sorted(out, key=lambda link: link.index or 0)


def description_of(values: Record | None) -> str | None:
    """The text of the record's GS1_DESCRIPTION value, if it has one."""
    for v in values or ():
        if v.type == DESCRIPTION_TYPE and isinstance(v.data, StringData):
            return v.data.text
    return None


def _path_link(path: str) -> DigitalLink:
    link = parse_path("/" + path.strip("/"))
    if link.attributes:
        raise DigitalLinkError("links belong to a key; leave data attributes out")
    return link


class LinkStore:
    """Reads and writes the links of GS1 keys as values of their records."""

    def __init__(self, service: HandleService) -> None:
        assert service.owned is not None
        self.service = service
        self.prefix = service.owned.text

    async def list(self, link: DigitalLink) -> tuple[HandleName, list[Link]]:
        handle = handle_for(self.prefix, link)
        return handle, links_in(await self.service.lookup(handle) or ())

    async def add(self, link: DigitalLink, new: Link, identity: Any) -> Link:
        """Store ``new`` at the first free index; concurrent adds each get their own."""
        handle = handle_for(self.prefix, link)
        for _ in range(ADD_ATTEMPTS):
            record = await self.service.lookup(handle)
            try:
                if record is None:
                    stored = replace(new, default=True, index=LINK_INDEXES.start)
                    value = self._value(stored)
                    await self.service.create(handle, [value], identity, overwrite=False)
                    return stored
                used = {v.index for v in record}
                index = next((i for i in LINK_INDEXES if i not in used), None)
                if index is None:
                    raise ValueInvalid(f"{handle} already has {len(LINK_INDEXES)} links")
                existing = links_in(record)
                stored = replace(new, default=new.default or not existing, index=index)
                # existing=False: the index must still be free when the write lands.
                await self.service.put_values(
                    handle, [self._value(stored)], identity, existing=False
                )
            except (HandleAlreadyExists, ValueAlreadyExists):
                continue  # another writer took the record or the index first
            if stored.default:  # the key's one default moves to the new link
                others = [replace(o, default=False) for o in existing if o.default]
                if others:
                    try:
                        values = [self._value(o) for o in others]
                        await self.service.put_values(handle, values, identity, existing=True)
                    except ValuesNotFound:
                        pass  # removed meanwhile: nothing left to demote
            return stored
        raise ServerBusy(f"{handle} is being changed concurrently; try again", handle=str(handle))

    async def remove(self, link: DigitalLink, index: int, identity: Any) -> None:
        handle = handle_for(self.prefix, link)
        _, existing = await self.list(link)
        gone = next((o for o in existing if o.index == index), None)
        if gone is None:
            raise ValuesNotFound(f"{handle} has no GS1 link at index {index}", handle=str(handle))
        await self.service.remove_values(handle, [index], identity)
        rest = [o for o in existing if o.index != index]
        if gone.default and rest:
            await self.service.put_values(
                handle, [self._value(replace(rest[0], default=True))], identity
            )

    @staticmethod
    def _value(link: Link) -> HandleValue:
        assert link.index is not None
        return HandleValue(link.index, LINK_TYPE, StringData(link.to_value_text()))


def refusal(exc: HandleError) -> Response:
    """The Handle JSON error body, with ``detail`` too (what the CLI's client shows)."""
    message = bounded_message(exc.message)
    body: dict[str, Any] = {"responseCode": int(exc.code), "message": message, "detail": message}
    if exc.handle is not None:
        body["handle"] = exc.handle
    return json_response(body, getattr(exc, "http_status", None) or http_status(exc.code))


def links_router(service: HandleService) -> APIRouter:
    """``/api/gs1/links/{path}``: list, add and remove the links of one key."""
    router = APIRouter(tags=["gs1"])
    store = LinkStore(service)

    async def listed(path: str, request: Request) -> Response:
        link = _path_link(path)
        handle, links = await store.list(link)
        return json_response({
            "handle": str(handle), "uri": link.uri(str(request.base_url).rstrip("/")),
            "links": [o.to_json() for o in links],
        })  # fmt: skip

    async def added(path: str, request: Request) -> Response:
        link = _path_link(path)
        identity = await authenticate(service, request, required=True)
        try:
            doc = orjson.loads(await read_body(request))
        except orjson.JSONDecodeError:
            raise ValueInvalid("the request body is not JSON") from None
        new = Link.from_json(doc)
        stored = await store.add(link, new, identity)
        body = {"handle": str(handle_for(store.prefix, link)), "link": stored.to_json()}
        return json_response(body, 201)

    async def removed(path: str, request: Request, index: int) -> Response:
        link = _path_link(path)
        identity = await authenticate(service, request, required=True)
        await store.remove(link, index, identity)
        return json_response({"handle": str(handle_for(store.prefix, link)), "removed": index})

    @router.get("/api/gs1/links/{path:path}", summary="Links of a GS1 key")
    async def list_links(path: str, request: Request) -> Response:
        try:
            return await listed(path, request)
        except HandleError as exc:
            return refusal(exc)

    @router.post("/api/gs1/links/{path:path}", summary="Add a link to a GS1 key", status_code=201)
    async def add_link(path: str, request: Request) -> Response:
        try:
            return await added(path, request)
        except HandleError as exc:
            return refusal(exc)

    @router.delete("/api/gs1/links/{path:path}", summary="Remove a link (index=) of a GS1 key")
    async def remove_link(path: str, request: Request, index: int) -> Response:
        try:
            return await removed(path, request, index)
        except HandleError as exc:
            return refusal(exc)

    return router


__all__ = [
    "DESCRIPTION_TYPE",
    "LINK_INDEXES",
    "LINK_TYPE",
    "LinkStore",
    "description_of",
    "handle_for",
    "links_in",
    "links_router",
    "refusal",
]
