"""Checking an HS_SECKEY answer on the node that holds the secret (VERIFY_RESPONSE).

A node's administrators are often identities of its parent (``300:0.NA/88.118``
administers the enterprise node 88.118.8): the secret lives on the parent,
never here.  As a Handle.Net server does, the node then sends the challenge's
nonce, request digest and the client's answer to the node holding the identity's
handle in a VERIFY_RESPONSE request and takes its verdict.

``RemoteSeckeyVerifier`` finds that node through the handle service's routing
(``HandleService.route``): the parent's HS_SITE for a handle above this node, a
delegation's HS_SITE for one below it.  It asks over TCP, follows referrals for
at most ``max_hops`` sites, and tries every server of a site in the RFC 3652
hash order.  The request is certified (CT): a verdict from a server whose
public key its site names must be signed with it (``native_signing``): a
delegation's HS_SITE names the child's key, and the parent's site names the key
the parent's server proved it holds (``node.sites.parent_site``); a site without
keys (a parent without a native port, or silent when asked) is taken on the
connection's word.  The request also asks for the request digest (RD), and a
verdict is taken only if its digest is that of the request sent
(``answers_request``): the signature covers no question, so without it a signed
"valid" the parent gave about someone else's answer (asked under the same
request id by whoever sits in between) would pass.  Any failure to get a verdict
is a refusal.  HTTP Basic uses the same path for such identities
(``Authorizer.authenticate``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable

from iinode.codes import ResponseCode
from iinode.errors import HandleError, HandleNotFound, IinodeError
from iinode.identifiers import HandleName, IndexedHandle, SiteData, TransportProtocol
from iinode.node.service import SITE_TYPES, HandleService
from iinode.proto import (
    CLIENT_VERSION,
    NODE_VERSION,
    Message,
    OpCode,
    OpFlag,
    ReferralResponse,
    VerifyRequest,
    VerifyResponse,
)
from iinode.resolution.driver import select_server
from iinode.resolution.native_client import NativeClient, random_request_id, server_address
from iinode.resolution.native_signing import verify_signature
from iinode.resolution.native_trust import answers_request

log = logging.getLogger(__name__)

#: Sites asked at most for one verification (referrals followed).
MAX_HOPS = 4
#: Seconds ``NeighbourNodes`` keeps the addresses it read.
NEIGHBOURS_TTL = 60.0
#: Delegation records ``NeighbourNodes`` reads at most.
MAX_DELEGATIONS = 10_000
_REFERRALS = (ResponseCode.SERVICE_REFERRAL, ResponseCode.PREFIX_REFERRAL)


class RemoteSeckeyVerifier:
    """The ``Authorizer.remote_verifier`` of a native front end."""

    def __init__(
        self,
        service: HandleService,
        *,
        client: NativeClient | None = None,
        timeout: float = 5.0,
        max_hops: int = MAX_HOPS,
    ) -> None:
        self.service = service
        self.client = client or NativeClient(timeout=timeout)
        self.max_hops = max_hops

    async def __call__(
        self,
        identity: IndexedHandle,
        nonce: bytes,
        request_digest: bytes,
        answer: bytes,
        old_format: bool,
    ) -> bool | None:
        """The remote verdict, or ``None`` when ``identity`` is held by this node."""
        try:
            route = await self.service.route(identity.handle)
        except HandleNotFound:
            return None  # nowhere else to ask: checked (and refused) here
        except (IinodeError, HandleError) as exc:  # e.g. the parent's host does not resolve
            log.warning("cannot find the node holding %s: %s", identity, exc)
            return False
        if route is None:
            return None
        body = VerifyRequest(str(identity.handle), identity.index, nonce, request_digest, answer)
        # Before 2.1 the answer is a bare MD5 digest: the version tells the verifier so.
        # The answer is asked in the version suggested (``NODE_VERSION``): a Handle.Net
        # server writes the request digest of a 2.0 VERIFY_RESPONSE answer in a layout
        # no decoder reads (a type octet before a bare MD5 digest).
        version = (2, 0) if old_format else CLIENT_VERSION
        sites = route.sites()
        for _ in range(self.max_hops):
            verdict, sites = await self._ask(identity, body, version, sites)
            if verdict is not None:
                return verdict
            if not sites:
                break
        log.warning("no node gave a verdict on an answer for %s", identity)
        return False

    async def _ask(
        self,
        identity: IndexedHandle,
        body: VerifyRequest,
        version: tuple[int, int],
        sites: list[SiteData],
    ) -> tuple[bool | None, list[SiteData]]:
        """Ask each server of ``sites``: a verdict, or the sites a referral names."""
        for site in sites:
            for server in select_server(site, identity.handle):
                address = server_address(server, TransportProtocol.TCP) or server_address(
                    server, TransportProtocol.UDP
                )
                if address is None:
                    continue
                # Certified, as a Handle.Net server asks: a server whose key the site names
                # must sign its verdict, which must name this request's digest.
                request = self.client.stamp(Message(
                    OpCode.VERIFY_RESPONSE, body, request_id=random_request_id(), version=version,
                    flags=OpFlag.CT | OpFlag.RD, suggested_version=NODE_VERSION,
                ))  # fmt: skip
                try:
                    response = await self.client.tcp(address, request)
                except (IinodeError, HandleError, OSError) as exc:
                    log.info("VERIFY_RESPONSE to %s:%s failed: %s", *address, exc)
                    continue
                if server.public_key and not verify_signature(response, server.public_key):
                    log.warning("VERIFY_RESPONSE from %s:%s is not signed by its key", *address)
                    continue
                if not answers_request(request, response):
                    log.warning("VERIFY_RESPONSE from %s:%s answers another request", *address)
                    continue
                if isinstance(response.body, VerifyResponse):
                    return response.body.valid, []
                if response.response_code in _REFERRALS and isinstance(
                    response.body, ReferralResponse
                ):
                    referred = [
                        v.data for v in response.body.values if isinstance(v.data, SiteData)
                    ]
                    return None, referred
                log.info(
                    "VERIFY_RESPONSE to %s:%s answered %s",
                    *address,
                    response.response_code.to_text(),
                )
        return None, []


def _normal(address: str) -> str:
    """An IP address in one spelling (an IPv4-mapped IPv6 address as IPv4)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class NeighbourNodes:
    """The addresses of the nodes next to this one: the servers of the parent's site
    and of every delegation's HS_SITE below the owned prefix.

    The node holding a secret answers VERIFY_RESPONSE for them on behalf of their own
    clients (which they limit per client address), so a failed check is not charged to
    them as to a client (``Authorizer.verify_request``).  Read again at most every
    ``ttl`` seconds; at most ``MAX_DELEGATIONS`` delegation records are read.
    """

    def __init__(
        self,
        service: HandleService,
        *,
        ttl: float = NEIGHBOURS_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.ttl = ttl
        self._clock = clock
        self._addresses: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def contains(self, address: str | None) -> bool:
        if address is None:
            return False
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self.ttl:
            async with self._lock:
                if self._read_at is None or now - self._read_at >= self.ttl:
                    self._addresses = await self._read()
                    self._read_at = self._clock()
        return _normal(address) in self._addresses

    async def _read(self) -> frozenset[str]:
        sites: list[SiteData] = []
        service = self.service
        if service.settings.parent_url:
            try:
                sites.append(await service.parent_site())
            except (IinodeError, HandleError, OSError) as exc:
                log.info("the parent's site is not known: %s", exc)
        owned = service.owned
        if owned is not None:
            after: str | None = None
            read = 0
            while read < MAX_DELEGATIONS:
                names = await service.store.list_after("0.NA", after, limit=1000)
                if not names:
                    break
                after = names[-1]
                for name in names:
                    try:
                        handle = HandleName.parse(name)
                    except HandleError:
                        continue
                    delegated = handle.authority
                    if delegated == owned or not delegated.is_within(owned):
                        continue
                    read += 1
                    for value in await service.lookup(handle) or ():
                        if value.type.upper() in SITE_TYPES and isinstance(value.data, SiteData):
                            sites.append(value.data)
        return frozenset(_normal(server.address) for site in sites for server in site.servers)


__all__ = ["MAX_HOPS", "NeighbourNodes", "RemoteSeckeyVerifier"]
