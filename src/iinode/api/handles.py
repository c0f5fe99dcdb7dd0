"""The Handle.Net v9 compatible REST API: ``/api/handles``.

JSON shapes, query parameters and the mapping from Handle response codes to
HTTP statuses follow the Handle.Net REST API, so its clients (``pyhandle``)
work unchanged.  Referrals, which Handle.Net's API does not have, are answered
with ``307 Temporary Redirect`` to the owning node plus a JSON body carrying
the response code (302/303), the delegated ``prefix`` and the HS_SITE values.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import quote, unquote

import orjson
from fastapi import APIRouter, Request, Response
from starlette.routing import Route

from iinode.api.answer_cache import AnswerCache
from iinode.codes import ResponseCode
from iinode.errors import (
    AuthenticationFailed,
    AuthenticationNeeded,
    InvalidCredential,
    InvalidHandle,
    LocalProtocolError,
    ValueInvalid,
    ValuesNotFound,
)
from iinode.identifiers import HandleName, IndexedHandle, Prefix, record_from_json
from iinode.node.auth import Credentials
from iinode.node.service import Answer, HandleService
from iinode.resolution import HttpResolver

#: Largest request body accepted by PUT.
MAX_BODY_BYTES = 4 * 1024 * 1024

_HANDLE_PARAM = {
    "name": "handle",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "prefix/suffix",
}


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValueInvalid(f"query parameter {name}={raw!r} must be true or false")


def _indexes(request: Request) -> list[int] | None:
    """``index=`` parameters; ``None`` for ``index=various`` (every index in the body)."""
    raw = request.query_params.getlist("index")
    if "various" in raw:
        return None
    try:
        return [int(x) for x in raw]
    except ValueError:
        raise ValueInvalid(f"index parameters {raw} must be integers") from None


def _handle(path: str) -> HandleName:
    return HandleName.parse(path)


def _credentials(request: Request) -> Credentials | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidCredential(f"authorization scheme {scheme!r} is not supported; use Basic")
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidCredential("Basic credentials are not valid base64 UTF-8") from None
    user, _, secret = text.partition(":")
    if (
        user.isascii() and user.isdecimal()
    ):  # an identity sent without percent-encoding: "300:0.NA/x:secret"
        handle, _, secret = secret.partition(":")
        user = f"{user}:{handle}"
    try:
        identity = IndexedHandle.parse(unquote(user))
    except InvalidHandle as exc:
        raise InvalidCredential(f"user name must be index:handle ({exc.message})") from None
    return Credentials(identity, secret)


async def authenticate(
    service: HandleService, request: Request, *, required: bool
) -> IndexedHandle | None:
    peer = request.client.host if request.client is not None else None
    try:
        creds = _credentials(request)
    except InvalidCredential:
        service.auth.failed("rest", "", peer)
        raise
    if creds is None:
        if required:
            raise AuthenticationNeeded(
                "this operation needs HTTP Basic authentication as index:handle"
            )
        return None
    try:
        return await service.auth.authenticate(creds, peer=peer)
    except AuthenticationFailed:
        service.auth.failed("rest", str(creds.identity), peer)
        raise


def referral_response(answer: Answer, request: Request) -> Response:
    body: dict[str, Any] = {
        "responseCode": int(answer.code),
        "handle": str(answer.handle),
        "values": [v.to_json() for v in answer.values],
    }
    if answer.delegated_prefix is not None:
        body["prefix"] = answer.delegated_prefix.text
    headers = {}
    urls = [u for site in answer.sites() for u in site.http_urls()]
    if urls:
        location = f"{urls[0]}/api/handles/{quote(str(answer.handle), safe='/')}"
        if request.url.query:
            location += f"?{request.url.query}"
        headers["Location"] = location
    return json_response(body, 307 if urls else 200, headers)


def build_router(
    service: HandleService, resolver: HttpResolver | None, cache: AnswerCache | None = None
) -> APIRouter:
    """The ``/api/handles`` routes; anonymous local answers are kept in ``cache``."""
    router = APIRouter(tags=["handles"])
    recursive_node = service.settings.role.value == "recursive"

    async def get_handle(request: Request) -> Response:
        handle: str = request.path_params["handle"]
        key = None
        generation = 0
        if cache is not None and not recursive_node and "authorization" not in request.headers:
            key = (handle, request.scope["query_string"])
            body = cache.get(key)
            if body is not None:
                return Response(body, media_type="application/json")
            generation = cache.generation()
        name = _handle(handle)
        types = request.query_params.getlist("type")
        indexes = _indexes(request) or []
        identity = await authenticate(service, request, required=False)
        recurse = _flag(request, "recursive", recursive_node)
        if recursive_node:
            if resolver is None:
                raise LocalProtocolError("this recursive node has no resolver configured")
            resolved = await resolver.resolve(name, types=types, indexes=indexes)
            values = resolved.values
        else:
            answer = await service.answer(name, identity=identity, types=types, indexes=indexes)
            if answer.is_referral:
                if not (recurse and resolver is not None):
                    return referral_response(answer, request)
                key = None  # answered by another node: not ours to keep
                delegated = HttpResolver(
                    answer.sites(), cache=resolver.cache, max_referrals=resolver.max_referrals
                )
                try:
                    values = (await delegated.resolve(name, types=types, indexes=indexes)).values
                finally:
                    await delegated.aclose()
            else:
                values = answer.values
        rendered = orjson.dumps(
            {
                "responseCode": 1 if values else int(ResponseCode.VALUES_NOT_FOUND),
                "handle": str(name),
                "values": [v.to_json() for v in values],
            }
        )
        if key is not None and cache is not None:
            cache.put(key, rendered, generation)
        return Response(rendered, media_type="application/json")

    # A plain Starlette route: the hot read path skips FastAPI's parameter
    # injection and validation; its OpenAPI entry is GET_HANDLE_OPENAPI.
    router.routes.append(
        Route("/api/handles/{handle:path}", get_handle, methods=["GET"], include_in_schema=False)
    )

    @router.put(
        "/api/handles/{handle:path}",
        summary="Create a handle, replace its record, or add/replace values (with index=)",
        openapi_extra={
            "parameters": [
                {
                    "name": "index",
                    "in": "query",
                    "schema": {"type": "array", "items": {"type": "string"}},
                },
                {
                    "name": "overwrite",
                    "in": "query",
                    "schema": {"type": "boolean", "default": True},
                },
                {
                    "name": "mintNewSuffix",
                    "in": "query",
                    "schema": {"type": "boolean", "default": False},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/HandleRecord"}}
                },
            },
        },
        status_code=201,
    )
    async def put_handle(handle: str, request: Request) -> Response:
        name = service.mint(handle) if _flag(request, "mintNewSuffix", False) else _handle(handle)
        overwrite = _flag(request, "overwrite", True)
        indexes = _indexes(request)
        identity = await authenticate(service, request, required=True)
        assert identity is not None
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise ValueInvalid(f"request body is larger than {MAX_BODY_BYTES} bytes")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueInvalid(f"request body is not valid JSON: {exc}") from None
        items = doc.get("values") if isinstance(doc, dict) else doc
        record = record_from_json(items)
        if indexes is None or indexes:
            if indexes:
                stray = sorted({v.index for v in record} - set(indexes))
                if stray:
                    raise ValueInvalid(f"values at index {stray} are not listed in index=")
            # overwrite=false: every index must be new (409 VALUE_ALREADY_EXISTS otherwise).
            existing = None if overwrite else False
            await service.put_values(name, record, identity, existing=existing)
            return json_response({"responseCode": 1, "handle": str(name)}, 200)
        created = await service.create(name, record, identity, overwrite=overwrite)
        return json_response({"responseCode": 1, "handle": str(name)}, 201 if created else 200)

    @router.delete(
        "/api/handles/{handle:path}",
        summary="Delete a handle, or the values at the given indexes",
        openapi_extra={
            "parameters": [
                {
                    "name": "index",
                    "in": "query",
                    "schema": {"type": "array", "items": {"type": "integer"}},
                },
            ]
        },
    )
    async def delete_handle(handle: str, request: Request) -> Response:
        name = _handle(handle)
        indexes = _indexes(request)
        identity = await authenticate(service, request, required=True)
        assert identity is not None
        if indexes:
            await service.remove_values(name, indexes, identity)
        elif indexes is None:
            raise ValuesNotFound("index=various is not meaningful for DELETE")
        else:
            await service.delete(name, identity)
        return json_response({"responseCode": 1, "handle": str(name)})

    @router.get(
        "/api/handles",
        summary="List the handles under a prefix",
        openapi_extra={
            "parameters": [
                {"name": "prefix", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "page", "in": "query", "schema": {"type": "integer", "default": 0}},
                {"name": "pageSize", "in": "query", "schema": {"type": "integer", "default": 1000}},
            ]
        },
    )
    async def list_handles(request: Request) -> Response:
        raw_prefix = request.query_params.get("prefix")
        if not raw_prefix:
            raise ValueInvalid("query parameter prefix= is required")
        prefix = Prefix(raw_prefix.removeprefix("0.NA/"))
        try:
            page = int(request.query_params.get("page", "0"))
            size = int(request.query_params.get("pageSize", "1000"))
        except ValueError:
            raise ValueInvalid("page and pageSize must be integers") from None
        if page < 0 or not 0 < size <= 10_000:
            raise ValueInvalid("page must be >= 0 and pageSize within 1..10000")
        identity = await authenticate(service, request, required=True)
        assert identity is not None
        listing = await service.list_handles(prefix, identity, page=page, page_size=size)
        return json_response(
            {
                "responseCode": 1,
                "prefix": prefix.text,
                "totalCount": str(listing.total),
                "page": page,
                "pageSize": size,
                "handles": listing.handles,
            }
        )

    return router


#: The OpenAPI operation of the plain GET route (merged into the document by the app).
GET_HANDLE_OPENAPI: dict[str, Any] = {
    "tags": ["handles"],
    "summary": "Resolve a handle",
    "operationId": "get_handle_api_handles__handle__get",
    "parameters": [
        _HANDLE_PARAM,
        {"name": "type", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
        {"name": "index", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
        {"name": "recursive", "in": "query", "schema": {"type": "boolean"}},
        {
            "name": "Authorization",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "HTTP Basic as index:handle, to read values without PUBLIC_READ",
        },
    ],
    "responses": {
        "200": {"description": "The handle's values", "content": {"application/json": {}}},
        "307": {"description": "Referral to the node that answers the handle"},
        "404": {"description": "Handle not found (responseCode 100)"},
    },
}

HANDLE_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["values"],
    "properties": {
        "values": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "type", "data"],
                "properties": {
                    "index": {"type": "integer", "minimum": 1},
                    "type": {"type": "string"},
                    "data": {
                        "oneOf": [
                            {"type": "string"},
                            {
                                "type": "object",
                                "required": ["value"],
                                "properties": {
                                    "format": {
                                        "type": "string",
                                        "enum": [
                                            "string",
                                            "base64",
                                            "hex",
                                            "admin",
                                            "vlist",
                                            "site",
                                            "key",
                                        ],
                                    },
                                    "value": {},
                                },
                            },
                        ]
                    },
                    "ttl": {"type": "integer"},
                    "timestamp": {"type": "string"},
                },
            },
        }
    },
}
