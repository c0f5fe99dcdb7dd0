"""The Handle.Net v9 compatible REST API: ``/api/handles``.

JSON shapes, query parameters and the mapping from Handle response codes to
HTTP statuses follow the Handle.Net REST API, so its clients (``pyhandle``)
work unchanged.  Referrals, which Handle.Net's API does not have, are answered
with ``307 Temporary Redirect`` to the owning node plus a JSON body carrying
the response code (302/303), the delegated ``prefix`` and the HS_SITE values.

Input is checked the way Handle.Net's ``HandleJsonRestApiServlet`` checks it:

* the handle is the rest of the *raw* request path, percent-decoded to octets and
  then decoded as strict UTF-8 (invalid UTF-8 is refused with 400, so different
  octet strings never alias one handle); ``+`` is kept as ``+``; CR, LF and
  other control characters reach the handle parser and are refused there;
* a PUT must carry ``Content-Type: application/json`` (optionally with
  parameters), else 400 ``Unsupported media type``; its body is a list of
  values, ``{"values": [...]}`` (whose ``"handle"``, if present, must name the
  same handle as the path: ``Mismatched handle in PUT request``) or one value;
  every ``data`` object must say its ``format``;
* ``index``, ``page`` and ``pageSize`` are 32-bit integers as Java parses them;
* the body is read only after the caller is authenticated, and only up to
  ``MAX_BODY_BYTES`` (a larger ``Content-Length`` is refused before reading);
* a method a route does not serve gets 405 with an ``Allow`` header listing the
  ones it does, and every error carries the Handle JSON error body
  (``responseCode``, ``message``, ``handle``); a message quotes at most
  ``QUOTE_LIMIT`` characters of the input it refuses.

The reading, authenticating and quoting every route shares is ``rest_common.py``;
the GET route's OpenAPI operation and the record schema are ``handles_openapi.py``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes

import orjson
from fastapi import APIRouter, Request, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from iinode.api.answer_cache import AnswerCache
from iinode.api.rest_common import (
    authenticate,
    bounded_message,
    clip,
    is_json,
    java_int,
    json_response,
    quoted,
    read_body,
)
from iinode.codes import ResponseCode
from iinode.errors import (
    InvalidHandle,
    LocalProtocolError,
    RemoteProtocolError,
    ValueInvalid,
    ValuesNotFound,
)
from iinode.identifiers import HandleName, Prefix, record_from_json
from iinode.node.oid import is_oid_name
from iinode.node.service import Answer, HandleService
from iinode.resolution import HttpResolver

#: Methods served on ``/api/handles/{handle}`` and on ``/api/handles``.
HANDLE_METHODS = ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
LIST_METHODS = ("GET", "HEAD", "OPTIONS")

_API_PATH = b"/api/handles/"


class _AnyText(Convertor[str]):
    """A path parameter that, unlike ``:path``, also matches CR and LF (refused later)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("handle", _AnyText())


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValueInvalid(f"query parameter {name}={quoted(raw)} must be true or false")


def _indexes(request: Request) -> list[int] | None:
    """``index=`` parameters; ``None`` for ``index=various`` (every index in the body)."""
    raw = request.query_params.getlist("index")
    if "various" in raw:
        return None
    return [java_int("index", x) for x in raw]


def handle_text(request: Request) -> str:
    """The handle named by the request path, decoded from the raw path as strict UTF-8.

    The raw path must start with the route's prefix (after the app's ``root_path``)
    literally: a prefix spelt with escapes (``/api/handle%73/...``) is refused
    rather than read from the decoded path, which is lossy (invalid UTF-8 becomes
    U+FFFD) and may hold a second ``/api/handles/`` further on.
    """
    raw = request.scope.get("raw_path")
    if not isinstance(raw, bytes):
        raise InvalidHandle("the request carries no raw path")
    root = str(request.scope.get("root_path", "")).encode("latin-1")
    prefix = root.rstrip(b"/") + _API_PATH
    if not raw.startswith(prefix):
        if raw.startswith(_API_PATH):
            prefix = _API_PATH  # a server that keeps root_path in the raw path only
        else:
            raise InvalidHandle("the path must start with /api/handles/ unescaped")
    try:
        return unquote_to_bytes(raw[len(prefix) :]).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidHandle("handle is not valid UTF-8") from None


def _handle(text: str) -> HandleName:
    if not text:
        raise InvalidHandle("Empty handle invalid")
    try:
        return HandleName.parse(text)
    except InvalidHandle as exc:
        raise InvalidHandle(bounded_message(exc.message), handle=clip(text)) from None


def _query_text(request: Request, name: str) -> str | None:
    """One query parameter decoded as strict UTF-8 (``None`` when absent)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidHandle(f"query parameter {name}= is not valid UTF-8") from None
    return next((value for key, value in pairs if key == name), None)


def _same_handle(given: object, path: str) -> bool:
    """Whether a body's ``"handle"`` names the path's handle (prefix case-insensitive)."""
    if not isinstance(given, str):
        return False
    try:
        return HandleName.parse(given) == HandleName.parse(path)
    except InvalidHandle:
        g_prefix, _, g_suffix = given.partition("/")
        p_prefix, _, p_suffix = path.partition("/")
        return g_prefix.upper() == p_prefix.upper() and g_suffix == p_suffix


def values_of(doc: Any, path: str) -> list[Any]:
    """The value list of a PUT body, checked as Handle.Net checks it."""
    if isinstance(doc, list):
        items: Any = doc
    elif isinstance(doc, dict) and "values" in doc:
        if "handle" in doc and not _same_handle(doc["handle"], path):
            raise RemoteProtocolError("Mismatched handle in PUT request")
        items = doc["values"] if doc["values"] is not None else []
    elif isinstance(doc, dict) and {"index", "type", "data"} <= doc.keys():
        items = [doc]  # one value
    else:
        raise RemoteProtocolError("Invalid JSON in PUT request")
    if not isinstance(items, list):
        raise ValueInvalid("'values' must be a list")
    for item in items:
        data = item.get("data") if isinstance(item, dict) else None
        if isinstance(data, dict) and "format" not in data:
            index = item.get("index")
            where = f"index {index}" if isinstance(index, int) else "a value"
            raise RemoteProtocolError(f"data of {where} has no format")
    return items


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
        handle = handle_text(request)
        if not handle and "prefix" in request.query_params:
            return await list_handles(request)  # GET /api/handles/?prefix=, as Handle.Net
        key = None
        generation = 0
        if cache is not None and not recursive_node and "authorization" not in request.headers:
            key = (handle, request.scope["query_string"])
            body = cache.get(key)
            if body is not None:
                return Response(body, media_type="application/json")
            generation = cache.generation()
        if is_oid_name(handle):
            identity = await authenticate(service, request, required=False)
            found = await service.answer_oid(
                handle,
                identity=identity,
                types=request.query_params.getlist("type"),
                indexes=_indexes(request) or [],
            )
            rendered = orjson.dumps(found.to_json())
            if key is not None and cache is not None:
                cache.put(key, rendered, generation)
            return Response(rendered, media_type="application/json")
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
        Route("/api/handles/{handle:handle}", get_handle, methods=["GET"], include_in_schema=False)
    )

    @router.put(
        "/api/handles/{handle:handle}",
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
    async def put_handle(request: Request) -> Response:
        handle = handle_text(request)
        if _flag(request, "mintNewSuffix", False):
            try:
                name = service.mint(handle)
            except InvalidHandle as exc:
                raise InvalidHandle(bounded_message(exc.message), handle=clip(handle)) from None
        else:
            name = _handle(handle)
        overwrite = _flag(request, "overwrite", True)
        indexes = _indexes(request)
        content_type = request.headers.get("content-type")
        if not is_json(content_type):
            raise RemoteProtocolError(f"Unsupported media type {quoted(content_type or '')}")
        identity = await authenticate(service, request, required=True)
        assert identity is not None
        body = await read_body(request)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueInvalid(f"request body is not valid JSON: {clip(str(exc))}") from None
        record = record_from_json(values_of(doc, handle))
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
        "/api/handles/{handle:handle}",
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
    async def delete_handle(request: Request) -> Response:
        name = _handle(handle_text(request))
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
        raw_prefix = _query_text(request, "prefix")
        if not raw_prefix:
            raise ValueInvalid("query parameter prefix= is required")
        try:
            prefix = Prefix(raw_prefix.removeprefix("0.NA/"))
        except InvalidHandle as exc:
            raise InvalidHandle(bounded_message(exc.message)) from None
        page = java_int("page", request.query_params.get("page", "0"))
        size = java_int("pageSize", request.query_params.get("pageSize", "1000"))
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

    # Every other method, on both paths: 405 with the Allow header of the path
    # (OPTIONS answers with the header alone).  Routes are tried in order, so
    # these catch only what the routes above do not serve.
    router.routes.append(
        Route("/api/handles/{handle:handle}", NotServed(HANDLE_METHODS), include_in_schema=False)
    )
    router.routes.append(Route("/api/handles", NotServed(LIST_METHODS), include_in_schema=False))
    return router


class NotServed:
    """The ASGI app answering the methods a path does not serve (``methods``: the
    ones it does): 405 with the path's ``Allow`` header and a Handle JSON error
    body; OPTIONS gets the header alone.  An app rather than a function, so its
    route matches every method, including ones Starlette does not know.
    """

    def __init__(self, methods: tuple[str, ...]) -> None:
        self.allow = ", ".join(methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope.get("method", ""))
        headers = {"Allow": self.allow}
        if method == "OPTIONS":
            response = Response(status_code=200, headers=headers)
        else:
            body = {
                "responseCode": int(ResponseCode.PROTOCOL_ERROR),
                "message": f"method {quoted(method)} is not allowed here; use {self.allow}",
            }
            response = json_response(body, 405, headers)
        await response(scope, receive, send)
