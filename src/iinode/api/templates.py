"""Metadata templates over HTTP: ``/api/templates``.

* ``POST /api/templates``: define a template (draft unless ``"status":
  "published"``) under the node's prefix, or the ``"prefix"`` given; 201.
* ``POST /api/templates/derive``: ``{"from": "<template handle>", "name",
  "version", "industry", "attributes": [extra], "status"}``: a new template from
  a published one, this node's or another enterprise's (resolved through the
  node's resolver).
* ``GET /api/templates?prefix=&after=&limit=``: template handles, keyset paged.
* ``GET /api/templates/{prefix}/{name}/{version}``: the definition (and
  ``/schema``: its JSON Schema).
* ``POST …/publish``, ``POST …/withdraw``: the lifecycle.
* ``GET``/``PUT …/readers``: ``{"readers": ["300:0.NA/88.200.1", …]}``, the
  identities (or HS_VLIST groups) that read restricted attributes of every
  identifier registered against the template.

Changes need HTTP Basic as for ``/api/handles`` and are authorised by the same
HS_ADMIN rules (creating a template is creating a handle under its prefix).
Identifiers are registered against a template with ``PUT /api/handles/…``
carrying the link at index 1001; a record that breaks its template is refused
with 400 and ``"violations": [{"attribute", "value", "rule", "message"}]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from iinode.api.rest_common import authenticate, json_response, read_body
from iinode.errors import InvalidHandle, ValueInvalid
from iinode.identifiers import HandleName, HandleValue, IndexedHandle
from iinode.node.service import HandleService
from iinode.node.templates import Status, Template, definition_of, template_handle
from iinode.resolution import HttpResolver

#: Largest template definition accepted.
MAX_DEFINITION_BYTES = 256 * 1024


async def _json(request: Request) -> Any:
    body = await read_body(request, MAX_DEFINITION_BYTES)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueInvalid("request body is not valid JSON") from None


def _template_name(prefix: str, name: str, version: str) -> HandleName:
    try:
        return template_handle(prefix, name, version)
    except InvalidHandle as exc:
        raise InvalidHandle(f"not a template name: {exc.message}") from None


def templates_router(service: HandleService, resolver: HttpResolver | None) -> APIRouter:
    router = APIRouter(tags=["templates"])
    registry = service.templates
    if resolver is not None and registry.fetch_remote is None:

        async def fetch(handle: HandleName) -> Sequence[HandleValue]:
            return (await resolver.resolve(handle)).values

        registry.fetch_remote = fetch

    async def identity_of(request: Request) -> IndexedHandle:
        identity = await authenticate(service, request, required=True)
        assert identity is not None
        return identity

    def own_prefix(doc: Any) -> str:
        given = doc.get("prefix") if isinstance(doc, dict) else None
        if isinstance(given, str) and given:
            return given
        if service.owned is None:
            raise ValueInvalid("this node owns no prefix; name the template's prefix")
        return service.owned.text

    @router.post("/api/templates", summary="Define a template", status_code=201)
    async def define(request: Request) -> Response:
        identity = await identity_of(request)
        doc = await _json(request)
        template = Template.from_json(doc, prefix=own_prefix(doc))
        handle = await registry.define(template, identity)
        return json_response({"handle": str(handle), "template": template.to_json()}, 201)

    @router.post("/api/templates/derive", summary="Derive a template from a published one")
    async def derive(request: Request) -> Response:
        identity = await identity_of(request)
        doc = await _json(request)
        if not isinstance(doc, dict) or not isinstance(doc.get("from"), str):
            raise ValueInvalid('derive needs {"from": "<template handle>", ...}')
        try:
            source = HandleName.parse(doc["from"])
        except InvalidHandle as exc:
            raise InvalidHandle(exc.message) from None
        extra = doc.get("attributes") or []
        if not isinstance(extra, list):
            raise ValueInvalid("attributes must be a list")
        handle = await registry.derive(
            source,
            own_prefix(doc),
            identity,
            name=doc.get("name"),
            version=str(doc.get("version", "1")),
            industry=doc.get("industry"),
            extra=extra,
            status=_status(doc.get("status", "draft")),
        )
        template = await registry.fetch(handle)
        return json_response({"handle": str(handle), "template": template.to_json()}, 201)

    @router.get("/api/templates", summary="List the templates under a prefix")
    async def list_templates(request: Request) -> Response:
        prefix = request.query_params.get("prefix") or (service.owned.text if service.owned else "")
        if not prefix:
            raise ValueInvalid("query parameter prefix= is required")
        limit = _limit(request.query_params.get("limit", "100"))
        after = request.query_params.get("after")
        names = await registry.list_templates(prefix, after=after, limit=limit)
        return json_response(
            {"prefix": prefix, "templates": names, "next": names[-1] if names else None}
        )

    @router.get("/api/templates/{prefix}/{name}/{version}", summary="A template's definition")
    async def show(prefix: str, name: str, version: str) -> Response:
        handle = _template_name(prefix, name, version)
        template = await registry.fetch(handle)
        body = template.to_json()
        body["readers"] = [str(r) for r in await registry.readers(handle)]
        return json_response(body)

    @router.get("/api/templates/{prefix}/{name}/{version}/schema", summary="Its JSON Schema")
    async def schema(prefix: str, name: str, version: str) -> Response:
        template = await registry.fetch(_template_name(prefix, name, version))
        return json_response(template.json_schema())

    async def set_status(request: Request, handle: HandleName, status: Status) -> Response:
        identity = await identity_of(request)
        template = await registry.set_status(handle, status, identity)
        return json_response({"handle": str(handle), "status": template.status.value})

    @router.post("/api/templates/{prefix}/{name}/{version}/publish", summary="Publish a draft")
    async def publish(request: Request, prefix: str, name: str, version: str) -> Response:
        return await set_status(request, _template_name(prefix, name, version), Status.PUBLISHED)

    @router.post("/api/templates/{prefix}/{name}/{version}/withdraw", summary="Withdraw it")
    async def withdraw(request: Request, prefix: str, name: str, version: str) -> Response:
        return await set_status(request, _template_name(prefix, name, version), Status.WITHDRAWN)

    @router.get("/api/templates/{prefix}/{name}/{version}/readers", summary="Its readers")
    async def readers(prefix: str, name: str, version: str) -> Response:
        handle = _template_name(prefix, name, version)
        if definition_of(await service.lookup(handle) or ()) is None:
            raise ValueInvalid(f"{handle} is not a template on this node", handle=str(handle))
        return json_response({"readers": [str(r) for r in await registry.readers(handle)]})

    @router.put("/api/templates/{prefix}/{name}/{version}/readers", summary="Set its readers")
    async def set_readers(request: Request, prefix: str, name: str, version: str) -> Response:
        handle = _template_name(prefix, name, version)
        identity = await identity_of(request)
        doc = await _json(request)
        given = doc.get("readers") if isinstance(doc, dict) else None
        if not isinstance(given, list) or not all(isinstance(r, str) for r in given):
            raise ValueInvalid('readers are {"readers": ["index:handle", ...]}')
        try:
            members = [IndexedHandle.parse(r) for r in given]
        except InvalidHandle as exc:
            raise ValueInvalid(f"a reader is not index:handle ({exc.message})") from None
        await registry.set_readers(handle, members, identity)
        return json_response({"readers": [str(m) for m in members]})

    return router


def _status(raw: Any) -> Status:
    try:
        return Status(raw)
    except ValueError:
        raise ValueInvalid(f"status is one of {', '.join(Status)}") from None


def _limit(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1000:
        raise ValueInvalid("limit must be within 1..1000")
    return int(raw)


__all__ = ["MAX_DEFINITION_BYTES", "templates_router"]
