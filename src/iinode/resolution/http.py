"""Resolution over the Handle.Net-style REST API: a thin loop over the driver."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError, TransportError, ValueInvalid
from iinode.identifiers import HandleName, HandleValue, Prefix, SiteData
from iinode.resolution.cache import ResolutionCache
from iinode.resolution.driver import Query, RemoteAnswer, Resolution, Resolved


class HttpResolver:
    """Resolves handles by walking nodes' REST APIs from the root sites."""

    def __init__(
        self,
        roots: list[SiteData],
        *,
        cache: ResolutionCache | None = None,
        client: httpx.AsyncClient | None = None,
        max_referrals: int = 8,
        timeout: float = 5.0,
    ) -> None:
        self.roots = roots
        self.cache = cache
        self.max_referrals = max_referrals
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def resolve(
        self, handle: HandleName, *, types: Sequence[str] = (), indexes: Sequence[int] = ()
    ) -> Resolved:
        resolution = Resolution(handle, self.roots, self.cache, max_referrals=self.max_referrals)
        while (query := resolution.next_query()) is not None:
            try:
                answer = await self.ask(query)
            except TransportError as exc:
                resolution.on_failure(query, exc)
            else:
                resolution.on_answer(query, answer)
        resolved = resolution.outcome()
        if types or indexes:
            wanted = {t.upper() for t in types}
            resolved.values = tuple(
                v
                for v in resolved.values
                if (not wanted or v.type.upper() in wanted) and (not indexes or v.index in indexes)
            )
        return resolved

    async def ask(self, query: Query) -> RemoteAnswer:
        urls = query.site.http_urls()
        if not urls:
            raise TransportError("site has no HTTP interface")
        last: Exception | None = None
        for base in urls:
            url = f"{base}/api/handles/{quote(str(query.handle), safe='/')}"
            try:
                response = await self._client.get(url, follow_redirects=False)
            except httpx.HTTPError as exc:
                last = exc
                continue
            return parse_answer(response, base)
        raise TransportError(f"no server of the site answered: {last}")

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def parse_answer(response: httpx.Response, server: str) -> RemoteAnswer:
    try:
        body = response.json()
        code = ResponseCode(int(body["responseCode"]))
    except (ValueError, KeyError, TypeError):
        raise RemoteProtocolError(
            f"{server} answered HTTP {response.status_code} without a Handle JSON body"
        ) from None
    try:
        values = tuple(HandleValue.from_json(v) for v in body.get("values") or ())
        prefix = Prefix(body["prefix"]) if body.get("prefix") else None
    except ValueInvalid as exc:
        raise RemoteProtocolError(f"{server} sent invalid values: {exc.message}") from None
    return RemoteAnswer(code, values, prefix, server, str(body.get("message", "")))


def resolve_sync(
    handle: HandleName, roots: list[SiteData], *, max_referrals: int = 8, timeout: float = 5.0
) -> Resolved:
    """Blocking wrapper for scripts and the CLI."""

    async def run() -> Resolved:
        resolver = HttpResolver(roots, max_referrals=max_referrals, timeout=timeout)
        try:
            return await resolver.resolve(handle)
        finally:
            await resolver.aclose()

    return asyncio.run(run())
