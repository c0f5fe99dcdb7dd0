"""GS1 Digital Link resolver (GS1-Conformant Resolver 1.2) over the node's identifier records.

Each GS1 key maps to a handle under the node's prefix (:mod:`iinode.api.gs1_links`:
``/01/09506000134352`` is ``<prefix>/gs1/01/09506000134352``, its links ``GS1_LINK``
values).  A record holding an HS_ALIAS and no links is followed to the alias, through
the node's referral logic (a child node's record is fetched from the child).

Routes (every node that owns a prefix):

* ``GET|HEAD|OPTIONS /{primary AI}/{key}[/{qualifier AI}/{value}...]`` and the
  compressed forms ``/{c}`` and ``/{ai}/{key}/{c}``: 307 to the chosen link,
  300 with the linkset when several links match and the request does not tell
  them apart, 200 with the RFC 9264 linkset for ``linkType=linkset`` (or ``all``)
  or ``Accept: application/linkset+json``, 404 when the key has no link, 400 with
  the reason when the URI is not a valid Digital Link.
* ``GET /.well-known/gs1resolver``: the resolver description file.
* ``GET|POST|DELETE /api/gs1/links/{digital link path}`` (:mod:`iinode.api.gs1_links`).
"""

from __future__ import annotations

import functools
import logging
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from iinode.api.answer_cache import UntilWrite
from iinode.api.gs1_links import LINK_TYPE, description_of, handle_for, links_in, links_router
from iinode.errors import (
    HandleNotFound,
    ValueInvalid,
)
from iinode.gs1 import (
    LINKSET_CONTEXT,
    LINKSET_MEDIA_TYPE,
    PRIMARY_KEYS,
    DigitalLink,
    DigitalLinkError,
    Link,
    choose,
    decompress_path,
    linkset,
    looks_compressed,
    normalise_link_type,
    parse_path,
    parse_weighted,
)
from iinode.gs1 import Request as LinkRequest
from iinode.identifiers import AliasData, HandleName, Record
from iinode.node.service import HandleService
from iinode.resolution import HttpResolver

log = logging.getLogger(__name__)

MAX_ALIAS_HOPS = 3
#: Scope key of a compressed path decoded while matching the route.
DECOMPRESSED = "iinode.gs1.decompressed"
ALLOWED = "GET, HEAD, OPTIONS"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": ALLOWED,
    "Access-Control-Allow-Headers": "Accept, Accept-Language",
    "Access-Control-Expose-Headers": "Link, Location, Content-Type",
}


#: Compressed paths already decoded (decoding is a pure function of the path).
_decompressed = functools.lru_cache(maxsize=16_384)(decompress_path)


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _link_header(parts: list[tuple[str, str, str | None]]) -> str:
    return ", ".join(
        f'<{url}>; rel="{rel}"' + (f'; type="{kind}"' if kind else "") for url, rel, kind in parts
    )


def _problem_answer(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A problem as status, headers and a JSON body ``{"status", "title", "detail"}``."""
    body = orjson.dumps({"status": status, "title": title, "detail": detail})
    return status, {**CORS, **(headers or {}), "Content-Type": "application/json"}, body


def _problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    status, all_headers, body = _problem_answer(status, title, detail, headers)
    return Response(body, status, all_headers)


#: Per level: the key, the handle of its record (the alias's target when followed), its
#: links, and its record's description (``None``: no record; ``""``: a record without a
#: GS1_DESCRIPTION value).
Levels = list[tuple[DigitalLink, HandleName, list[Link], str | None]]


class Found(NamedTuple):
    """A record as the resolver reads it."""

    values: Record | None  # None: no such record
    local: bool  # read on this node, not fetched from another
    handle: HandleName  # where the values came from (an alias's target when followed)


def descriptions(levels: Levels) -> list[tuple[DigitalLink, str]]:
    """Each level's item description: its record's GS1_DESCRIPTION, else the key spelt out."""
    return [(lvl, text or lvl.describe()) for lvl, _, _, text in levels]


#: Status, headers and body of a resolver answer to GET.
Answer = tuple[int, dict[str, str], bytes]


class DigitalLinkResolver:
    """Answers Digital Link requests from the records of ``service``."""

    def __init__(
        self,
        service: HandleService,
        resolver: HttpResolver | None = None,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        assert service.owned is not None
        self.service = service
        self.prefix = service.owned.text
        self.resolver = resolver
        self._client = client  # for referrals; None: one client per referral
        #: The links of a key and its ancestors, by canonical path.
        self.cache: UntilWrite[str, Levels] = UntilWrite(service.changes)
        #: Whole answers, by what of the request they depend on.
        self.answers: UntilWrite[tuple[Any, ...], Answer] = UntilWrite(service.changes)

    # -- reading records -------------------------------------------------------------
    async def record(self, handle: HandleName, hops: int = 0) -> Found:
        """The public values of ``handle`` wherever it lives, an HS_ALIAS without links
        followed (at most ``MAX_ALIAS_HOPS``)."""
        try:
            answer = await self.service.answer(handle)
        except HandleNotFound:
            return Found(None, True, handle)
        values: Record
        local = not answer.is_referral
        if answer.is_referral:
            if self.resolver is None:
                return Found(None, False, handle)
            delegated = HttpResolver(
                answer.sites(),
                cache=self.resolver.cache,
                client=self._client,
                max_referrals=self.resolver.max_referrals,
            )
            try:
                values = (await delegated.resolve(handle)).values
            except HandleNotFound:
                return Found(None, False, handle)
            finally:
                await delegated.aclose()
        else:
            values = answer.values
        if hops < MAX_ALIAS_HOPS and not any(v.type == LINK_TYPE for v in values):
            alias = next((v.data for v in values if isinstance(v.data, AliasData)), None)
            if alias is not None:
                followed = await self.record(HandleName.parse(alias.text), hops + 1)
                if followed.values is not None:
                    return followed._replace(local=local and followed.local)
        return Found(values, local, handle)

    async def levels(self, link: DigitalLink) -> tuple[Levels, bool]:
        """Each level's record and links, most specific first (kept until a write), and
        whether they were all read on this node."""
        key = link.path
        hit = self.cache.get(key)
        if hit is not None:
            return hit, True
        generation = self.cache.generation()
        out: Levels = []
        local = True
        for level in link.levels():
            found = await self.record(handle_for(self.prefix, level))
            values = found.values
            local = local and found.local
            described = description_of(values) if values is not None else None
            present = "" if values is not None and described is None else described
            out.append((level, found.handle, links_in(values or ()), present))
        if local:
            self.cache.put(key, out, generation)
        return out, local

    # -- answering ---------------------------------------------------------------------
    def parse(self, request: Request) -> tuple[DigitalLink, str | None]:
        """The Digital Link of the request and, if it came compressed, the query string
        its uncompressed form has (data attributes and non-GS1 pairs that were inside)."""
        raw = request.scope.get("raw_path", b"").decode("latin-1").split("?")[0]
        raw = raw or request.scope["path"]
        parts = raw.strip("/").split("/")
        query = list(request.query_params.multi_items())
        if len(parts) == 1 or (len(parts) == 3 and looks_compressed(parts[2])):
            found = request.scope.get(DECOMPRESSED)  # decoded once, while matching the route
            link, other = found if found is not None else _decompressed(raw)
            inside = urlencode([*link.attributes, *other.items()])
            attributes = [(k, v) for k, v in query if k.isdigit()]
            if attributes:
                link = parse_path(link.path, [*link.attributes, *attributes])
            return link, inside
        return parse_path(raw, query), None

    async def resolve(self, request: Request) -> Response:
        method = request.method
        if method == "OPTIONS":
            return Response(status_code=204, headers={**CORS, "Allow": ALLOWED})
        if method not in ("GET", "HEAD"):
            return _problem(
                405, "Method Not Allowed", f"{method} is not served", {"Allow": ALLOWED}
            )
        scope = request.scope
        asked = request.headers
        key = (
            scope.get("raw_path") or scope["path"].encode(), scope["query_string"],
            asked.get("accept"), asked.get("accept-language"), asked.get("host"), scope["scheme"],
        )  # fmt: skip
        answer = self.answers.get(key)
        if answer is None:
            generation = self.answers.generation()
            answer, local = await self.answer(request)
            if local:
                self.answers.put(key, answer, generation)
        status, headers, content = answer
        return Response(b"" if method == "HEAD" else content, status, headers)

    async def answer(self, request: Request) -> tuple[Answer, bool]:
        """Status, headers and body for a GET, and whether only this node's data made it."""
        try:
            link, inside = self.parse(request)
            wanted = request.query_params.get("linkType")
            wants_linkset = wanted in ("linkset", "all")
            link_type = None if wanted is None or wants_linkset else normalise_link_type(wanted)
        except DigitalLinkError as exc:
            return _problem_answer(400, "Bad Request", exc.message), True
        accept = parse_weighted(request.headers.get("accept"))
        if wanted is None and accept and accept[0] in (LINKSET_MEDIA_TYPE, "application/json"):
            wants_linkset = True
        root = _root(request)
        levels, local = await self.levels(link)
        per_level = [(lvl, handle, links) for lvl, handle, links, _ in levels]
        present = [(lvl, handle) for lvl, handle, _, here in levels if here is not None]
        if present and not any(links for _, _, links in per_level):
            # A record with no links: its identifier data is the default target.
            first, handle = present[0]
            data = Link(
                "gs1:masterData",
                f"{root}/api/handles/{quote(str(handle), safe='/')}",
                f"Identifier record {handle}",
                media_type="application/json",
                default=True,
            )
            per_level = [(lv, h, [data] if lv == first else []) for lv, h, _ in per_level]
        headers = dict(CORS)
        headers["Vary"] = "Accept, Accept-Language"
        links_header: list[tuple[str, str, str | None]] = [
            (f"{root}{link.path}?linkType=linkset", "linkset", LINKSET_MEDIA_TYPE)
        ]
        if inside is not None or request.scope["path"].rstrip("/") != link.path:
            links_header.append((link.uri(root), "owl:sameAs", None))
        if present:
            record_url = f"{root}/api/handles/{quote(str(present[0][1]), safe='/')}"
            links_header.append((record_url, "describedby", "application/json"))
        headers["Link"] = _link_header(links_header)
        choice = choose([links for _, _, links in per_level], LinkRequest(
            link_type=link_type,
            languages=tuple(parse_weighted(request.headers.get("accept-language"))),
            media_types=tuple(accept),
            context=request.query_params.get("context"),
        ))  # fmt: skip
        if choice is None:
            missing = f"no links for {link.uri(root)}"
            return _problem_answer(404, "Not Found", missing, headers), local
        if wants_linkset or choice.single is None:
            extra = {}
            if present:
                record = {"href": record_url, "title": f"Identifier record {present[0][1]}",
                          "type": "application/json"}  # fmt: skip
                extra[present[0][0].uri(root)] = {"describedby": record}
            described = {lvl.path: text for lvl, text in descriptions(levels)}
            anchors = [(lvl.uri(root), described[lvl.path], links) for lvl, _, links in per_level]
            body = linkset(anchors, extra)
            headers["Link"] += f', <{LINKSET_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'
            media = "application/json" if accept[:1] == ["application/json"] else LINKSET_MEDIA_TYPE
            status = 200 if wants_linkset else 300
            headers["Content-Type"] = media
            return (status, headers, orjson.dumps(body)), local
        target = choice.single.href
        query = request.scope["query_string"].decode("latin-1")
        if inside:  # what the compressed URI carried is passed on as its query string
            query = f"{inside}&{query}" if query else inside
        if query and choice.single.forward_query:
            target += ("&" if "?" in target else "?") + query
        headers["Location"] = target
        return (307, headers, b""), local


class DigitalLinkRoute(BaseRoute):
    """Matches Digital Link paths only, wherever it sits among the app's routes.

    A path whose first segment is all digits is taken as a Digital Link (and
    answered 400 if it is not a valid one); a single segment is taken only when
    it decompresses to a valid Digital Link.
    """

    def __init__(self, resolver: DigitalLinkResolver) -> None:
        self.resolver = resolver

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path: str = scope["path"]
        if len(path) < 3 or path[1] in "a.":  # /api/..., /.well-known/...: not ours
            return Match.NONE, {}
        first, _, rest = path[1:].partition("/")
        if 2 <= len(first) <= 4 and first.isdigit():
            return Match.FULL, {}
        if not rest and looks_compressed(first):
            try:
                found = _decompressed(path)
            except ValueInvalid:
                return Match.NONE, {}
            return Match.FULL, {DECOMPRESSED: found}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.resolver.resolve(Request(scope, receive))
        await response(scope, receive, send)


# -- the description file and link management ---------------------------------------------
def description(request: Request, service: HandleService) -> dict[str, Any]:
    """The resolver description file (GS1-Conformant Resolver 1.2, section 3)."""
    s = service.settings
    name = s.name or f"iinode {s.prefix}"
    return {
        "name": f"{name} GS1 Digital Link resolver",
        "resolverRoot": _root(request),
        "supportedPrimaryKeys": sorted(PRIMARY_KEYS),
        "supportedLinkType": [
            {
                "namespace": "https://gs1.org/voc/",
                "prefix": "gs1:",
                "profile": "https://gs1.org/voc/?show=linktypes",
            },
        ],
        "linkTypeDefaultCanBeLinkset": False,
        "supportedContextValuesEnumerated": [],
        "jsonLdContextLocation": LINKSET_CONTEXT,
        "contact": {"fn": name},
    }


def gs1_routes(
    service: HandleService,
    resolver: HttpResolver | None = None,
    *,
    client: httpx.AsyncClient | None = None,
) -> list[BaseRoute]:
    """The description file, the link API and (last) the resolver route.

    Nothing for a node that owns no prefix.
    """
    if service.owned is None:
        return []
    router = links_router(service)

    @router.get("/.well-known/gs1resolver", summary="GS1 resolver description file")
    async def well_known(request: Request) -> Response:
        return Response(orjson.dumps(description(request, service)), 200, CORS,
                        media_type="application/json")  # fmt: skip

    dl = DigitalLinkResolver(service, resolver, client=client)
    return [*router.routes, DigitalLinkRoute(dl)]


def mount_gs1(
    app: FastAPI,
    service: HandleService,
    resolver: HttpResolver | None = None,
    *,
    client: httpx.AsyncClient | None = None,
) -> None:
    """Put the resolver route first among ``app``'s routes (it turns away every path that
    is no Digital Link at its first character) and the API routes after the others."""
    routes = gs1_routes(service, resolver, client=client)
    if routes:
        *api, resolver_route = routes
        app.router.routes.insert(0, resolver_route)
        app.router.routes.extend(api)


__all__ = [
    "DigitalLinkResolver",
    "DigitalLinkRoute",
    "UntilWrite",
    "description",
    "gs1_routes",
    "handle_for",
    "mount_gs1",
]
