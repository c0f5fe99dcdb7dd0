"""Resolution over the Handle.Net-style REST API: a thin loop over the driver.

A site whose servers cannot be reached, or answer with something that is not a
Handle JSON answer about the handle asked (a garbled body, an invalid
``prefix`` in a referral, an answer for another handle), counts as that site's
failure: the driver tries the next site.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import quote

import httpx

from iinode.codes import ResponseCode
from iinode.errors import HandleError, RemoteProtocolError, TransportError
from iinode.identifiers import HandleName, HandleValue, Prefix, SiteData
from iinode.resolution.cache import ResolutionCache
from iinode.resolution.driver import (
    Query,
    RemoteAnswer,
    Resolution,
    Resolved,
    filter_values,
    run_resolution,
)


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
        self,
        handle: HandleName,
        *,
        types: Sequence[str] = (),
        indexes: Sequence[int] = (),
        recursion_count: int = 0,
    ) -> Resolved:
        """Resolve ``handle`` (``recursion_count`` is accepted for the native
        resolver's signature; REST requests carry no recursion count)."""
        resolution = Resolution(handle, self.roots, self.cache, max_referrals=self.max_referrals)
        resolved = await run_resolution(resolution, self.ask)
        resolved.values = filter_values(resolved.values, types, indexes)
        return resolved

    async def ask(self, query: Query) -> RemoteAnswer:
        """Ask the site's HTTP servers in turn; the first usable answer."""
        urls = query.site.http_urls()
        if not urls:
            raise TransportError("site has no HTTP interface")
        last: Exception | None = None
        for base in urls:
            url = f"{base}/api/handles/{quote(str(query.handle), safe='/')}"
            try:
                response = await self._client.get(url, follow_redirects=False)
                return parse_answer(response, base, query.handle)
            except (httpx.HTTPError, RemoteProtocolError) as exc:
                last = exc
        raise TransportError(f"no server of the site answered: {last}")

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def parse_answer(
    response: httpx.Response, server: str, asked: HandleName | None = None
) -> RemoteAnswer:
    """The driver's view of one REST answer; ``RemoteProtocolError`` if it is not one.

    With ``asked``, an answer naming another handle is refused too.
    """
    try:
        body = response.json()
        code = ResponseCode(int(body["responseCode"]))
        values = tuple(HandleValue.from_json(v) for v in body.get("values") or ())
        prefix = Prefix(body["prefix"]) if body.get("prefix") else None
        named = body.get("handle")
        other = asked is not None and bool(named) and HandleName.parse(named) != asked
        message = str(body.get("message", ""))
    except HandleError as exc:  # invalid values, prefix or handle
        raise RemoteProtocolError(f"{server} sent an invalid answer: {exc.message}") from None
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise RemoteProtocolError(
            f"{server} answered HTTP {response.status_code} without a Handle JSON body"
        ) from None
    if other:
        raise RemoteProtocolError(f"{server} answered about {named}, not {asked}")
    return RemoteAnswer(code, values, prefix, server, message)


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
