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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iinode.codes import ResponseCode
from iinode.errors import (
    HandleError,
    HandleNotFound,
    IinodeError,
    RecursionLimitExceeded,
    TransportError,
)
from iinode.identifiers import HandleName, Prefix, Record, SiteData
from iinode.resolution.cache import ResolutionCache


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
    ) -> None:
        if not roots:
            raise IinodeError("resolution needs at least one root site")
        self.handle = handle
        self.cache = cache
        self.max_referrals = max_referrals
        self.chain: list[Hop] = []
        self._pending: list[SiteData] = []
        self._referrals = 0
        self._seen: set[bytes] = set()
        self._result: Record | None = None
        self._error: Exception | None = None
        self._last_failure: Exception | None = None

        cached = cache.get(handle) if cache is not None else None
        if cached is not None:
            found = cached.values is not None
            code = ResponseCode.SUCCESS if found else ResponseCode.HANDLE_NOT_FOUND
            self.chain.append(Hop("cache", code, "cached answer", True))
            if cached.values is None:
                self._error = HandleNotFound(
                    f"handle {handle} not found (cached)", handle=str(handle)
                )
            else:
                self._result = cached.values
            return
        delegation = cache.closest_sites(handle.authority) if cache is not None else None
        if delegation is not None:
            self.chain.append(Hop("cache", ResponseCode.PREFIX_REFERRAL,
                                  f"delegation of {delegation.prefix}", True))  # fmt: skip
            self._pending = list(delegation.sites)
        else:
            self._pending = list(roots)

    @property
    def done(self) -> bool:
        return self._result is not None or self._error is not None

    def next_query(self) -> Query | None:
        if self.done:
            return None
        if not self._pending:
            self._error = self._last_failure or TransportError(
                f"no reachable server for {self.handle}"
            )
            return None
        return Query(self.handle, self._pending[0], self._referrals)

    def on_failure(self, query: Query, error: Exception) -> None:
        """The site in ``query`` could not answer; try the next one."""
        self.chain.append(Hop(_label(query.site), ResponseCode.SERVER_NOT_RESP, str(error)))
        self._last_failure = error
        if self._pending and self._pending[0] is query.site:
            self._pending.pop(0)

    def on_answer(self, query: Query, answer: RemoteAnswer) -> None:
        server = answer.server or _label(query.site)
        code = answer.code
        if code == ResponseCode.SUCCESS:
            self.chain.append(Hop(server, code, f"{len(answer.values)} values"))
            self._result = answer.values
            if self.cache is not None:
                self.cache.put(self.handle, answer.values)
            return
        if code == ResponseCode.HANDLE_NOT_FOUND:
            self.chain.append(Hop(server, code, answer.message))
            if self.cache is not None:
                self.cache.put_missing(self.handle)
            self._error = HandleNotFound(answer.message or f"handle {self.handle} not found",
                                         handle=str(self.handle))  # fmt: skip
            return
        if code in (ResponseCode.PREFIX_REFERRAL, ResponseCode.SERVICE_REFERRAL):
            sites = [v.data for v in answer.values if isinstance(v.data, SiteData)]
            where = (
                f"delegated {answer.delegated_prefix}" if answer.delegated_prefix else "ask parent"
            )
            self.chain.append(Hop(server, code, where))
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
            key = b"".join(s.to_wire() for s in sites)
            if key in self._seen:
                self._error = RecursionLimitExceeded(
                    f"referral loop resolving {self.handle} at {server}", handle=str(self.handle)
                )
                return
            self._seen.add(key)
            if (
                code == ResponseCode.PREFIX_REFERRAL
                and answer.delegated_prefix is not None
                and self.cache is not None
            ):
                self.cache.put_sites(answer.delegated_prefix, sites, answer.values)
            self._pending = sites
            return
        self.chain.append(Hop(server, code, answer.message))
        self._error = HandleError.for_code(code, answer.message or code.to_text(), str(self.handle))

    def outcome(self) -> Resolved:
        """The values, or raise the error that ended the resolution."""
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise IinodeError("resolution is not finished")
        return Resolved(self.handle, self._result, self.chain)


def _label(site: SiteData) -> str:
    urls = site.http_urls()
    if urls:
        return urls[0]
    return ",".join(s.address for s in site.servers) or "site"
