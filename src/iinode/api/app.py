"""The node's Handle API application: REST API, node info, OpenAPI document.

``create_app(service)`` is the API over an open service (the tests' app);
a whole node's app, with its metrics, monitoring, telemetry and web console,
is put together by ``iinode.assembly`` (``node_app``, ``app_for_settings``)
from ``base_app`` and ``install_handle_api``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import iinode
from iinode.api.answer_cache import AnswerCache
from iinode.api.gs1 import mount_gs1
from iinode.api.handles import build_router
from iinode.api.handles_openapi import GET_HANDLE_OPENAPI, HANDLE_RECORD_SCHEMA
from iinode.api.native_http import NativeOverHttp
from iinode.api.oid import oid_router
from iinode.api.rest_common import QUOTE_LIMIT, bounded_message, clip, json_response
from iinode.api.search import search_router
from iinode.api.templates import templates_router
from iinode.codes import ResponseCode, http_status
from iinode.errors import HandleError, StorageError, TransportError
from iinode.node.service import HandleService
from iinode.resolution import HttpResolver
from iinode.resolution.native_verify import RemoteSeckeyVerifier

#: What FastAPI runs around serving: start-up before the first request, shut-down after.
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _error_body(exc: HandleError, request: Request) -> dict[str, Any]:
    # Messages and handles quote a bounded part of what the client sent.
    body: dict[str, Any] = {"responseCode": int(exc.code), "message": bounded_message(exc.message)}
    handle = exc.handle
    if handle is None and request.url.path.startswith("/api/handles/"):
        handle = request.url.path.removeprefix("/api/handles/")
    if handle is not None:
        body["handle"] = clip(handle, QUOTE_LIMIT)
    body.update(getattr(exc, "body_extra", None) or {})  # e.g. a template's violations
    return body


def base_app(lifespan: Lifespan | None = None) -> FastAPI:
    """The FastAPI app with the error mapping and OpenAPI document, no routes yet.

    Everything here is installed before the app is first called: Starlette
    freezes its middleware (which carries the exception handlers) at that point.
    """
    app = FastAPI(
        title="iinode",
        version=iinode.__version__,
        description="Industrial Internet node: Handle-compatible identifier resolution.",
        lifespan=lifespan,
        docs_url=None,  # served offline by iinode.web (assets from an installed package)
        redoc_url=None,
    )

    @app.exception_handler(HandleError)
    async def on_handle_error(request: Request, exc: HandleError) -> Response:
        status = getattr(exc, "http_status", None) or http_status(exc.code)
        return json_response(_error_body(exc, request), status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Under /api/ every error carries the Handle JSON body (Handle.Net's UnknownApiServlet).
        if not request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        what = "Unknown HTTP API endpoint" if exc.status_code == 404 else str(exc.detail)
        message = f"{what} {clip(request.method)} {clip(request.url.path)}"
        body = {"responseCode": int(ResponseCode.PROTOCOL_ERROR), "message": message}
        return json_response(body, exc.status_code, dict(exc.headers or {}))

    @app.exception_handler(OverflowError)
    async def on_overflow(request: Request, exc: OverflowError) -> Response:
        # A number from the request too large for the store (page=, since=, ...).
        body = {"responseCode": int(ResponseCode.PROTOCOL_ERROR), "message": "number too large"}
        return json_response(body, 400)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        body = {"responseCode": int(ResponseCode.ERROR), "message": "internal error"}
        return json_response(body, 500)

    @app.exception_handler(StorageError)
    async def on_storage_error(request: Request, exc: StorageError) -> Response:
        return json_response({"responseCode": int(ResponseCode.ERROR), "message": str(exc)}, 500)

    @app.exception_handler(TransportError)
    async def on_transport_error(request: Request, exc: TransportError) -> Response:
        return json_response(
            {"responseCode": int(ResponseCode.SERVER_NOT_RESP), "message": str(exc)}, 502
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("paths", {}).setdefault("/api/handles/{handle}", {})["get"] = (
                GET_HANDLE_OPENAPI
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["HandleRecord"] = (
                HANDLE_RECORD_SCHEMA
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # Native messages POSTed to this port (the HS_SITE's HTTP interface) bypass the routes.
    app.add_middleware(NativeOverHttp)
    return app


def install_handle_api(app: FastAPI, service: HandleService, resolver: HttpResolver | None) -> None:
    """Add the Handle API's routes for an open ``service`` to ``app``."""
    app.state.service = service
    app.state.resolver = resolver
    if service.auth.remote_verifier is None:
        # HTTP Basic for identities held by other nodes is checked there (VERIFY_RESPONSE).
        service.auth.remote_verifier = RemoteSeckeyVerifier(service)
    app.state.answer_cache = AnswerCache(service.changes)
    app.include_router(build_router(service, resolver, app.state.answer_cache))
    app.include_router(templates_router(service, resolver))
    app.include_router(search_router(service))
    app.include_router(oid_router(service))

    @app.get("/api/node", tags=["node"], summary="This node's role, prefix and parent")
    async def node_info() -> dict[str, Any]:
        s = service.settings
        return {
            "role": s.role.value,
            "prefix": s.prefix,
            "name": s.name,
            "parent": s.parent_url,
            "httpUrl": s.http_url,
            "handlePort": s.handle_port,
            "handles": await service.store.count(),
            "version": iinode.__version__,
        }

    @app.get("/healthz", tags=["node"], response_class=PlainTextResponse)
    async def health() -> str:
        return "ok"

    mount_gs1(app, service, resolver)  # GS1 Digital Link resolver (iinode.api.gs1)


def create_app(service: HandleService, resolver: HttpResolver | None = None) -> FastAPI:
    """The HTTP app for a node whose service (and store) is already open."""
    app = base_app()
    install_handle_api(app, service, resolver)
    return app


__all__ = ["Lifespan", "base_app", "create_app", "install_handle_api"]
