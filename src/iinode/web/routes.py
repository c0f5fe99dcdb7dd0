"""HTTP routes of the console and of the offline API documentation.

The console is static HTML, CSS and JavaScript modules shipped in this package
(``static/``), served under ``/console/``; ``/`` redirects there.  Its views
read the node's own JSON APIs (``/api/node``, ``/monitoring/...``,
``/telemetry/...``, ``/kpi/...``, ``/alarms``) with the signed-in user's HTTP Basic
credentials, so every write is authorised by the API exactly as for any other
client.  Three small read routes exist for what no API answers:

* ``GET /console/api/tree?depth=N``: this node's figures (identifiers stored,
  resolutions answered over HTTP and the native protocol, from ``/metrics``)
  and, down to ``depth`` levels, those of the children it delegated to (read
  from each child's own ``/console/api/tree``, or its ``/api/node`` and
  ``/metrics``), so a parent's console shows its provinces and enterprises;
* ``GET /console/api/resolve?id=...``: resolves an identifier, or a GS1 Digital
  Link path through this node's GS1 key records, with the node's resolver and
  answers the record and the chain of nodes asked;
* ``GET /console/api/whoami``: checks the credentials as the REST API does and
  says whether they are the node administrator's.

``/docs`` serves Swagger UI from the ``swagger_ui_bundle`` package, not a CDN.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import swagger_ui_bundle
from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from prometheus_client.parser import text_string_to_metric_families
from starlette.staticfiles import StaticFiles

from iinode.api.delegations import delegated_children
from iinode.api.gs1 import handle_for
from iinode.api.rest_common import authenticate, bounded_message
from iinode.errors import HandleError, IinodeError
from iinode.gs1 import DigitalLinkError, parse_path
from iinode.identifiers import HandleName, Prefix, SiteData
from iinode.monitoring.metrics import NodeMetrics
from iinode.node.service import HandleService
from iinode.resolution import HttpResolver

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_DIR = Path(swagger_ui_bundle.swagger_ui_path)
#: Seconds a child may take to answer the tree request, per level it reports.
CHILD_TIMEOUT = 3.0
#: Deepest tree a request may ask for (national -> provincial -> enterprise).
MAX_DEPTH = 2
#: Most HS_ALIAS hops followed from a GS1 key record.
MAX_ALIASES = 4

_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - API</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/console/static/docs-init.js"></script>
</body></html>
"""


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def metric_figures(text: str) -> dict[str, float]:
    """The figures the console shows, from a Prometheus text exposition."""
    out = {"handles": 0.0, "resolutions_http": 0.0, "resolutions_native": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "iinode_store_handles":
                out["handles"] = sample.value
            elif sample.name == "iinode_resolutions_total":
                if sample.labels.get("transport") == "http":
                    out["resolutions_http"] += sample.value
            elif sample.name == "iinode_native_requests_total":
                out["resolutions_native"] += sample.value
    return out


class ConsoleData:
    """What the console's read routes compute for one node."""

    def __init__(
        self,
        service: HandleService,
        resolver: HttpResolver | None,
        metrics: NodeMetrics | None = None,
    ) -> None:
        self.service = service
        self.resolver = resolver
        #: The node's own metrics, read in process (else its ``/metrics`` is fetched).
        self.metrics = metrics

    async def child_urls(self) -> list[tuple[str, str | None]]:
        """``(prefix, HTTP base URL)`` of each child delegated here."""
        out: list[tuple[str, str | None]] = []
        for text in await delegated_children(self.service):
            url = None
            try:
                record = await self.service.lookup(Prefix(text).na_handle)
            except HandleError:
                record = None
            for value in record or ():
                if isinstance(value.data, SiteData):
                    urls = value.data.http_urls()
                    if urls:
                        url = urls[0]
                        break
            out.append((text, url))
        return out

    async def own(self, base_url: str, client: httpx.AsyncClient) -> dict[str, Any]:
        s = self.service.settings
        node: dict[str, Any] = {
            "prefix": s.prefix, "name": s.name, "role": s.role.value,
            "province": s.province, "industry": s.industry, "url": base_url,
            "reachable": True, "at": time.time(),
        }  # fmt: skip
        if self.metrics is not None:  # read in process: a scrape would refresh every KPI gauge
            registry = self.metrics.registry
            http = registry.get_sample_value("iinode_resolutions_total", {"transport": "http"})
            native = registry.get_sample_value("iinode_native_requests_total")
            node.update(resolutions_http=http or 0.0, resolutions_native=native or 0.0)
        else:
            try:
                r = await client.get(f"{base_url}/metrics")
                node.update(metric_figures(r.text) if r.status_code == 200 else {})
            except httpx.HTTPError:
                pass
        node["handles"] = float(await self.service.store.count())
        return node

    async def tree(self, base_url: str, depth: int) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=CHILD_TIMEOUT) as client:
            node = await self.own(base_url, client)
            node["children"] = []
            if depth > 0:
                children = await self.child_urls()
                node["children"] = list(
                    await asyncio.gather(
                        *(_child_tree(client, p, u, depth - 1) for p, u in children)
                    )
                )
        return node

    async def resolve(self, text: str) -> dict[str, Any]:
        """The record of an identifier or Digital Link path and the chain of nodes asked."""
        if self.resolver is None:
            raise IinodeError("this node has no resolver")
        text = text.strip()
        gs1 = None
        if text.startswith(("/", "http://", "https://")):
            parts = urlsplit(text)
            try:
                gs1 = parse_path(parts.path, [])
            except DigitalLinkError as exc:
                raise IinodeError(f"not a GS1 Digital Link: {exc}") from None
            handle = handle_for(self.service.settings.prefix or "", gs1)
        else:
            handle = HandleName.parse(text)
        chain: list[dict[str, Any]] = []
        answer: dict[str, Any] = {"input": text, "handle": str(handle), "gs1": gs1 is not None}
        for _ in range(MAX_ALIASES + 1):
            started = time.perf_counter()
            resolved = await self.resolver.resolve(handle)
            answer["ms"] = round((time.perf_counter() - started) * 1000, 2)
            chain += [
                {"server": h.server, "code": h.code.to_text(), "detail": h.detail,
                 "cached": h.from_cache, "asked": h.asked}
                for h in resolved.chain
            ]  # fmt: skip
            answer["handle"] = str(resolved.handle)
            answer["values"] = [v.to_json() for v in resolved.values]
            alias = next((v for v in resolved.values if v.type == "HS_ALIAS"), None)
            links = [v for v in resolved.values if v.type == "GS1_LINK"]
            if alias is None or links:
                break
            handle = HandleName.parse(str(alias.data.to_json()["value"]))
            chain.append({"server": "alias", "code": "HS_ALIAS", "detail": str(handle),
                          "cached": False, "asked": str(handle)})  # fmt: skip
        answer["chain"] = chain
        return answer


async def _child_tree(
    client: httpx.AsyncClient, prefix: str, url: str | None, depth: int
) -> dict[str, Any]:
    node: dict[str, Any] = {"prefix": prefix, "url": url, "reachable": False, "children": []}
    if url is None:
        return node
    try:
        r = await client.get(
            f"{url}/console/api/tree", params={"depth": depth},
            timeout=CHILD_TIMEOUT * (depth + 1),
        )  # fmt: skip
        if r.status_code == 200:
            return {**r.json(), "url": url}
        info, metrics = await asyncio.gather(
            client.get(f"{url}/api/node"), client.get(f"{url}/metrics")
        )
        if info.status_code == 200:
            i = info.json()
            node.update(name=i.get("name", ""), role=i.get("role", ""), reachable=True,
                        handles=float(i.get("handles", 0)), at=time.time())  # fmt: skip
        if metrics.status_code == 200:
            node.update(metric_figures(metrics.text))
    except (httpx.HTTPError, ValueError) as exc:
        node["error"] = bounded_message(str(exc) or type(exc).__name__)
    return node


def console_router(data: ConsoleData) -> APIRouter:
    router = APIRouter(tags=["console"])

    @router.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console", include_in_schema=False)
    async def console_bare() -> Response:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console/", include_in_schema=False, response_class=HTMLResponse)
    async def console_page() -> Response:
        page = (STATIC_DIR / "index.html").read_bytes()
        return Response(page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    @router.get("/console/api/tree", summary="This node's figures and its children's")
    async def tree(request: Request, depth: int = Query(1, ge=0, le=MAX_DEPTH)) -> Response:
        base = str(request.base_url).rstrip("/")
        return _json(await data.tree(base, depth))

    @router.get("/console/api/resolve", summary="Resolve an identifier, showing the path")
    async def resolve(id: str = Query(..., min_length=1, max_length=2048)) -> Response:
        try:
            return _json(await data.resolve(id))
        except HandleError as exc:
            return _json({"input": id, "error": bounded_message(exc.message),
                          "code": exc.code.to_text()}, 404)  # fmt: skip
        except IinodeError as exc:
            return _json({"input": id, "error": bounded_message(str(exc))}, 400)

    @router.get("/console/api/whoami", summary="Check credentials as the REST API does")
    async def whoami(request: Request) -> Response:
        identity = await authenticate(data.service, request, required=True)
        assert identity is not None
        admin = data.service.auth.is_node_admin(identity)
        return _json({"identity": str(identity), "admin": admin})

    @router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    async def docs(request: Request) -> Response:
        title = request.app.title if isinstance(request.app, FastAPI) else "iinode"
        return HTMLResponse(_DOCS_PAGE.format(title=title))

    return router


def mount_console(
    app: FastAPI,
    service: HandleService,
    resolver: HttpResolver | None,
    metrics: NodeMetrics | None = None,
) -> None:
    """Add the console, its static files and the offline ``/docs`` page to ``app``."""
    app.include_router(console_router(ConsoleData(service, resolver, metrics)))
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_DIR), name="docs-assets")
