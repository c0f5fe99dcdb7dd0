"""The I/O-free resolution driver.

One ``Resolution`` object holds all the multi-step logic of resolving a handle
through the hierarchy: where to start (the cache's nearest known delegation or
the root sites), following PREFIX_REFERRAL and SERVICE_REFERRAL answers, trying
the next site when one fails, bounding the number of referrals, detecting
loops, and filling the cache.  Transports (HTTP now, the native protocol later)
only loop::

    while (query := resolution.next_query()) is not None:
        try:
            answer = await transport.ask(query)
        except TransportError as exc:
            resolution.on_failure(query, exc)
        else:
            resolution.on_answer(query, answer)
    return resolution.outcome()

With ``site_walk=True`` (the native resolver) the driver resolves the Handle
way (RFC 3652 s2.3/s3.4): it first asks for ``0.NA/<prefix>`` of the handle's
prefix, starting at the root (or the nearest cached delegation) and following
PREFIX_REFERRALs down the prefix hierarchy, caching every site it learns by
TTL; the HS_SITE values of that record are the site serving the prefix, and
the handle itself is then asked there (the transport picks the server within
the site by the hash rule, ``select_server``).  A site whose HS_SITE is cached
is asked directly.  If the prefix record does not exist (a prefix served by an
ancestor's node) the site that said so is asked; if the site lookup is refused
the driver falls back to asking for the handle and following referrals.

Bailiwick: every site the driver asks is trusted for one zone (the root sites
for everything, a site learnt from a delegation of ``P`` for ``P``).  A
PREFIX_REFERRAL naming a delegated prefix is accepted only if that prefix is
the handle's authority or one of its ancestors *and* lies within the zone of
the site that sent it; it is cached only when strictly deeper than that zone.
Anything else is that site's failure (the next site is tried), so no site can
claim a prefix above or beside the one it was trusted for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from iinode.codes import ResponseCode
from iinode.errors import (
    HandleError,
    HandleNotFound,
    IinodeError,
    RecursionLimitExceeded,
    RemoteProtocolError,
    TransportError,
)
from iinode.identifiers import HandleName, HashOption, Prefix, Record, Server, SiteData
from iinode.resolution.cache import ResolutionCache
from iinode.resolution.shared_cache import SharedCache, TwoLevelCache


@dataclass(frozen=True, slots=True)
class Query:
    """Ask ``site`` about ``handle``."""

    handle: HandleName
    site: SiteData
    step: int


@dataclass(frozen=True, slots=True)
class RemoteAnswer:
    code: ResponseCode
    values: Record = ()
    delegated_prefix: Prefix | None = None
    server: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Hop:
    """One step of the walk, for showing the chain of nodes."""

    server: str
    code: ResponseCode
    detail: str = ""
    from_cache: bool = False
    #: The handle asked at this step (``0.NA/<prefix>`` while looking for a site).
    asked: str = ""


@dataclass(slots=True)
class Resolved:
    handle: HandleName
    values: Record
    chain: list[Hop] = field(default_factory=list)


class Resolution:
    def __init__(
        self,
        handle: HandleName,
        roots: list[SiteData],
        cache: ResolutionCache | None = None,
        *,
        max_referrals: int = 8,
        site_walk: bool = False,
    ) -> None:
        if not roots:
            raise IinodeError("resolution needs at least one root site")
        self.handle = handle
        self.cache = cache
        self.max_referrals = max_referrals
        self.chain: list[Hop] = []
        self._asking = handle
        self._pending: list[SiteData] = []
        #: The zone the pending sites are trusted for (``None``: the roots, everything).
        self._zone: Prefix | None = None
        self._referrals = 0
        self._seen: set[bytes] = set()
        self._result: Record | None = None
        self._error: Exception | None = None
        self._last_failure: Exception | None = None

        cached = cache.get(handle) if cache is not None else None
        if cached is not None:
            found = cached.values is not None
            code = ResponseCode.SUCCESS if found else ResponseCode.HANDLE_NOT_FOUND
            self._hop("cache", code, "cached answer", from_cache=True)
            if cached.values is None:
                self._error = HandleNotFound(
                    f"handle {handle} not found (cached)", handle=str(handle)
                )
            else:
                self._result = cached.values
            return
        authority = handle.authority
        delegation = cache.closest_sites(authority) if cache is not None else None
        if site_walk and not handle.is_na_handle:
            if delegation is not None and delegation.prefix == authority:
                self._hop("cache", ResponseCode.SUCCESS, f"site of {authority}", from_cache=True)
                self._pending = list(delegation.sites)
                self._zone = delegation.prefix
                return
            self._asking = authority.na_handle
        if delegation is not None:
            self._hop("cache", ResponseCode.PREFIX_REFERRAL,
                      f"delegation of {delegation.prefix}", from_cache=True)  # fmt: skip
            self._pending = list(delegation.sites)
            self._zone = delegation.prefix
        else:
            self._pending = list(roots)

    @property
    def done(self) -> bool:
        return self._result is not None or self._error is not None

    @property
    def finding_site(self) -> bool:
        """True while the driver is looking for the site of the handle's prefix."""
        return self._asking != self.handle

    def next_query(self) -> Query | None:
        if self.done:
            return None
        if not self._pending:
            self._error = self._last_failure or TransportError(
                f"no reachable server for {self.handle}"
            )
            return None
        return Query(self._asking, self._pending[0], self._referrals)

    @property
    def zone(self) -> Prefix | None:
        """The zone the site of the next query is trusted for (``None``: everything)."""
        return self._zone

    def on_failure(self, query: Query, error: Exception) -> None:
        """The site in ``query`` could not answer; try the next one."""
        self._hop(_label(query.site), ResponseCode.SERVER_NOT_RESP, str(error))
        self._drop(query, error)

    def _drop(self, query: Query, error: Exception) -> None:
        self._last_failure = error
        if self._pending and self._pending[0] is query.site:
            self._pending.pop(0)

    def on_answer(self, query: Query, answer: RemoteAnswer) -> None:
        server = answer.server or _label(query.site)
        code = answer.code
        if code in (ResponseCode.PREFIX_REFERRAL, ResponseCode.SERVICE_REFERRAL):
            self._on_referral(query, server, answer)
        elif code == ResponseCode.RECUR_LIMIT_EXCEEDED:
            # About the request (a recursion loop), not the site: asking on cannot help.
            self._hop(server, code, answer.message)
            self._error = RecursionLimitExceeded(
                answer.message or code.to_text(), handle=str(self.handle)
            )
        elif self.finding_site:
            self._on_site_answer(query, server, answer)
        elif code == ResponseCode.SUCCESS:
            self._hop(server, code, f"{len(answer.values)} values")
            self._result = answer.values
            if self.cache is not None:
                self.cache.put(self.handle, answer.values)
        elif code == ResponseCode.HANDLE_NOT_FOUND:
            self._hop(server, code, answer.message)
            if self.cache is not None:
                self.cache.put_missing(self.handle)
            self._error = HandleNotFound(answer.message or f"handle {self.handle} not found",
                                         handle=str(self.handle))  # fmt: skip
        else:
            self._hop(server, code, answer.message)
            self._error = HandleError.for_code(
                code, answer.message or code.to_text(), str(self.handle)
            )

    def _on_site_answer(self, query: Query, server: str, answer: RemoteAnswer) -> None:
        """The answer about ``0.NA/<prefix>``: ask the handle at the site it names."""
        prefix = self.handle.authority
        code = answer.code
        sites = [v.data for v in answer.values if isinstance(v.data, SiteData)]
        if code == ResponseCode.SUCCESS and sites:
            self._hop(server, code, f"site of {prefix}: {_servers(sites)}")
            if self.cache is not None and self._deeper(prefix):
                self.cache.put_sites(prefix, sites, answer.values)
            self._pending = sites
            self._zone = prefix
        elif code in (ResponseCode.SUCCESS, ResponseCode.HANDLE_NOT_FOUND):
            # No site of its own: the prefix is served by the node that answered.
            self._hop(server, code, f"{prefix} has no site of its own; asking here")
            self._pending = [query.site]
        else:
            self._hop(server, code, f"site lookup refused ({answer.message}); following referrals")
        self._asking = self.handle

    def _on_referral(self, query: Query, server: str, answer: RemoteAnswer) -> None:
        code = answer.code
        sites = [v.data for v in answer.values if isinstance(v.data, SiteData)]
        delegated = answer.delegated_prefix
        if delegated is not None and not self._in_bailiwick(delegated):
            zone = "any prefix" if self._zone is None else self._zone
            refused = RemoteProtocolError(
                f"{server} referred {self._asking} to {delegated}, outside its bailiwick "
                f"(trusted for {zone}, resolving {self._asking.authority})"
            )
            self._hop(server, code, f"refused referral to {delegated}: outside the bailiwick")
            self._drop(query, refused)
            return
        where = f"delegated {delegated}" if delegated else "ask parent"
        self._hop(server, code, where)
        self._referrals += 1
        if self._referrals > self.max_referrals:
            self._error = RecursionLimitExceeded(
                f"more than {self.max_referrals} referrals resolving {self.handle}",
                handle=str(self.handle),
            )
            return
        if not sites:
            self._error = HandleError.for_code(
                ResponseCode.ERROR, f"{server} sent a referral without HS_SITE values"
            )
            return
        key = str(self._asking).encode() + b"".join(s.to_wire() for s in sites)
        if key in self._seen:
            self._error = RecursionLimitExceeded(
                f"referral loop resolving {self.handle} at {server}", handle=str(self.handle)
            )
            return
        self._seen.add(key)
        if code == ResponseCode.PREFIX_REFERRAL and delegated is not None:
            if self._deeper(delegated):
                if self.cache is not None:
                    self.cache.put_sites(delegated, sites, answer.values)
            elif self.cache is not None:
                # A site handing over its own zone (a stale cached site): follow it this
                # once, and forget the cached site so the next walk asks the parent.
                self.cache.forget_sites(delegated)
            self._zone = delegated
        self._pending = sites

    def _in_bailiwick(self, delegated: Prefix) -> bool:
        """True if the current site may name ``delegated``: an ancestor (or the
        authority itself) of what is being resolved, within the site's zone."""
        if not self._asking.authority.is_within(delegated):
            return False
        return self._zone is None or delegated.is_within(self._zone)

    def _deeper(self, prefix: Prefix) -> bool:
        return self._zone is None or (prefix != self._zone and prefix.is_within(self._zone))

    def _hop(
        self, server: str, code: ResponseCode, detail: str, *, from_cache: bool = False
    ) -> None:
        self.chain.append(Hop(server, code, detail, from_cache, str(self._asking)))

    def outcome(self) -> Resolved:
        """The values, or raise the error that ended the resolution."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise IinodeError("resolution is not finished")
        return Resolved(self.handle, self._result, self.chain)


async def run_resolution(
    resolution: Resolution, ask: Callable[[Query], Awaitable[RemoteAnswer]]
) -> Resolved:
    """Loop over ``resolution``, asking each query with ``ask``; the outcome or its error.

    ``ask`` raises ``TransportError`` when the site cannot be reached and
    ``RemoteProtocolError`` when its answer is garbled: either is that site's
    failure, and the driver moves on to the next site.

    With a ``TwoLevelCache`` the shared level (``shared_cache``) is asked before
    the network: for the handle's answer first, then before each query for the
    nearest delegation deeper than the site's zone, which the driver receives as
    that site's answer; answers the driver accepted from the network are shared.
    """
    cache = resolution.cache
    if isinstance(cache, TwoLevelCache):
        return await _run_shared(resolution, ask, cache)
    while (query := resolution.next_query()) is not None:
        try:
            answer = await ask(query)
        except (TransportError, RemoteProtocolError) as exc:
            resolution.on_failure(query, exc)
        else:
            resolution.on_answer(query, answer)
    return resolution.outcome()


#: The server named in the chain for what the shared cache answered.
SHARED_CACHE = "shared cache"


async def _run_shared(
    resolution: Resolution, ask: Callable[[Query], Awaitable[RemoteAnswer]], cache: TwoLevelCache
) -> Resolved:
    shared, handle = cache.shared, resolution.handle
    if not resolution.done:
        cached = await shared.get_answer(handle)
        if cached is not None:
            found = cached.values is not None
            code = ResponseCode.SUCCESS if found else ResponseCode.HANDLE_NOT_FOUND
            resolution.chain.append(Hop(SHARED_CACHE, code, "cached answer", True, str(handle)))
            if cached.values is None:
                raise HandleNotFound(f"handle {handle} not found (cached)", handle=str(handle))
            cache.put(handle, cached.values)
            return Resolved(handle, cached.values, resolution.chain)
    while (query := resolution.next_query()) is not None:
        known = await _shared_delegation(resolution, query, shared)
        if known is not None:
            resolution.on_answer(query, known)
            continue
        try:
            answer = await ask(query)
        except (TransportError, RemoteProtocolError) as exc:
            resolution.on_failure(query, exc)
            continue
        zone, finding = resolution.zone, resolution.finding_site
        resolution.on_answer(query, answer)
        await _share(resolution, answer, zone, finding, cache)
    return resolution.outcome()


async def _shared_delegation(
    resolution: Resolution, query: Query, shared: SharedCache
) -> RemoteAnswer | None:
    """The shared delegation closest to ``query``, as the answer of its site, if deeper."""
    authority = query.handle.authority
    delegation = await shared.closest_sites(authority)
    if delegation is None:
        return None
    prefix, zone = delegation.prefix, resolution.zone
    if zone is not None and (prefix == zone or not prefix.is_within(zone)):
        return None
    if resolution.finding_site and prefix == authority:
        return RemoteAnswer(ResponseCode.SUCCESS, delegation.values, server=SHARED_CACHE)
    return RemoteAnswer(ResponseCode.PREFIX_REFERRAL, delegation.values, prefix, SHARED_CACHE)


async def _share(
    resolution: Resolution,
    answer: RemoteAnswer,
    zone_before: Prefix | None,
    finding_before: bool,
    cache: TwoLevelCache,
) -> None:
    """Put in the shared level what the driver just accepted from the network."""
    shared, code, zone = cache.shared, answer.code, resolution.zone
    if not finding_before and code == ResponseCode.SUCCESS:
        await shared.put_answer(resolution.handle, answer.values)
    elif not finding_before and code == ResponseCode.HANDLE_NOT_FOUND:
        await shared.put_missing(resolution.handle, cache.negative_ttl)
    elif (
        zone is not None
        and zone != zone_before
        and (zone_before is None or zone.is_within(zone_before))
    ):
        if code == ResponseCode.PREFIX_REFERRAL or (
            finding_before and code == ResponseCode.SUCCESS
        ):
            await shared.put_sites(zone, answer.values)
    elif (
        code == ResponseCode.PREFIX_REFERRAL
        and zone_before is not None
        and answer.delegated_prefix == zone_before
    ):
        # A stale delegation handing over its own zone: the driver forgot it, so do we.
        await shared.forget_sites(zone_before)


def filter_values(values: Record, types: Sequence[str] = (), indexes: Sequence[int] = ()) -> Record:
    """The values of one of ``types`` (any, if empty) at one of ``indexes`` (any, if empty)."""
    if not types and not indexes:
        return values
    wanted = {t.upper() for t in types}
    return tuple(
        v
        for v in values
        if (not wanted or v.type.upper() in wanted) and (not indexes or v.index in indexes)
    )


def select_server(site: SiteData, handle: HandleName) -> list[Server]:
    """The servers of ``site`` in the order to try them for ``handle``.

    RFC 3652 s3.4 (the hash rule of a multi-server site): take the part of the
    handle the site's hash option names (prefix, suffix or the whole handle),
    upper-case it, compute its MD5 digest, read the last four octets as a signed
    32-bit integer and use its absolute value modulo the number of servers.
    The chosen server comes first; the others follow as fallbacks.
    """
    servers = list(site.servers)
    if len(servers) <= 1:
        return servers
    if site.hash_option is HashOption.BY_PREFIX:
        part = handle.prefix_text
    elif site.hash_option is HashOption.BY_SUFFIX:
        part = handle.suffix
    else:
        part = str(handle)
    digest = hashlib.md5(part.upper().encode("utf-8"), usedforsecurity=False).digest()
    chosen = abs(int.from_bytes(digest[-4:], "big", signed=True)) % len(servers)
    return servers[chosen:] + servers[:chosen]


def _servers(sites: list[SiteData]) -> str:
    count = sum(len(site.servers) for site in sites)
    return f"{count} server{'s' if count != 1 else ''}"


def _label(site: SiteData) -> str:
    urls = site.http_urls()
    if urls:
        return urls[0]
    return ",".join(s.address for s in site.servers) or "site"
