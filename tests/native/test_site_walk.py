"""The native client resolves the Handle way, through a real three-level network.

Top (``88``) delegates ``88.118`` to the secondary, which delegates
``88.118.8`` to an enterprise site of four servers: three native servers
sharing one store and one address where nothing listens.  The client asks for
``0.NA/88.118.8`` from the top down, caches each site by TTL, and sends the
handle to the server the RFC 3652 hash rule picks within the enterprise site.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import (
    HandleName,
    HandleValue,
    HashOption,
    Interface,
    Prefix,
    Server,
    ServiceType,
    SiteData,
    TransportProtocol,
    site_for,
)
from iinode.node.settings import Role
from iinode.resolution import ResolutionCache, select_server
from iinode.resolution.native_client import NativeClient, NativeResolver
from iinode.resolution.native_server import NativeServer
from native.nodes import Node, start_node, url
from support import free_port

HANDLES = [f"88.118.8/P-{n}" for n in range(16)]
SITE_TTL = 600
DELEGATION_TTL = 3600


def native_server(server_id: int, port: int) -> Server:
    return Server(server_id, "127.0.0.1", (
        Interface(ServiceType.ADMIN_AND_QUERY, TransportProtocol.TCP, port),
        Interface(ServiceType.QUERY, TransportProtocol.UDP, port),
    ))  # fmt: skip


@dataclass
class Network:
    top: Node
    secondary: Node
    enterprise: list[NativeServer]
    site: SiteData  # the enterprise site, as the secondary's 0.NA/88.118.8 holds it
    dead_port: int

    def label(self, port: int) -> str:
        return f"udp://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root: Path = tmp_path_factory.mktemp("walk")
    records = {h: [url(1, f"http://f.cn/{h[-4:]}")] for h in HANDLES}
    records["88.118.8.5/Y"] = [url(1, "http://f.cn/y")]
    first = start_node(root, Role.ENTERPRISE, "88.118.8", records)
    more = [NativeServer(first.settings, host="127.0.0.1", port=free_port()) for _ in range(2)]
    for server in more:
        server.start()
    servers = [first.server, *more]
    dead_port = free_port()
    ports = [servers[0].port, dead_port, servers[1].port, servers[2].port]
    site = SiteData(
        tuple(native_server(n + 1, p) for n, p in enumerate(ports)),
        hash_option=HashOption.BY_HANDLE,
    )
    delegation = [HandleValue(1, "HS_SITE", site, ttl=SITE_TTL)]
    sec = start_node(root, Role.SECONDARY, "88.118", {"0.NA/88.118.8": delegation})
    top_site = site_for("127.0.0.1", handle_port=sec.port)
    top = start_node(root, Role.TOP, "88", {
        "0.NA/88.118": [HandleValue(1, "HS_SITE", top_site, ttl=DELEGATION_TTL)],
        "88/TOP": [url(1, "http://top/")],
    })  # fmt: skip
    yield Network(top, sec, servers, site, dead_port)
    for server in (top.server, sec.server, *servers):
        server.stop()


def expected_port(network: Network, handle: str) -> int:
    """The server the hash rule picks (RFC 3652 s3.4), skipping the one that is down."""
    digest = hashlib.md5(handle.upper().encode(), usedforsecurity=False).digest()
    first = abs(int.from_bytes(digest[-4:], "big", signed=True)) % len(network.site.servers)
    order = network.site.servers[first:] + network.site.servers[:first]
    ports = [s.interfaces[0].port for s in order]
    return next(p for p in ports if p != network.dead_port)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def resolver(network: Network, cache: ResolutionCache) -> NativeResolver:
    root = site_for("127.0.0.1", handle_port=network.top.port)
    return NativeResolver([root], cache=cache, client=NativeClient(timeout=0.5, retries=0))


async def test_cold_walk_asks_the_prefix_record_down_the_hierarchy(network: Network) -> None:
    resolved = await resolver(network, ResolutionCache()).resolve(HandleName.parse(HANDLES[0]))
    steps = [(hop.asked, hop.server, hop.code, hop.detail) for hop in resolved.chain]
    assert steps == [
        ("0.NA/88.118.8", network.label(network.top.port), ResponseCode.PREFIX_REFERRAL,
         "delegated 88.118"),
        ("0.NA/88.118.8", network.label(network.secondary.port), ResponseCode.SUCCESS,
         "site of 88.118.8: 4 servers"),
        (HANDLES[0], network.label(expected_port(network, HANDLES[0])), ResponseCode.SUCCESS,
         "1 values"),
    ]  # fmt: skip
    assert resolved.values[0].data.to_wire() == b"http://f.cn//P-0"


async def test_cached_site_and_the_hash_rule_pick_the_server(network: Network) -> None:
    cache = ResolutionCache()
    walker = resolver(network, cache)
    await walker.resolve(HandleName.parse(HANDLES[0]))
    answered: dict[str, str] = {}
    for handle in HANDLES[1:]:
        resolved = await walker.resolve(HandleName.parse(handle))
        cached, asked = resolved.chain
        assert (cached.server, cached.detail, cached.from_cache) == (
            "cache",
            "site of 88.118.8",
            True,
        )
        assert asked.asked == handle
        assert asked.server == network.label(expected_port(network, handle))
        answered[handle] = asked.server
    # The names spread over the live servers, and some hash to the dead one (failover).
    assert len(set(answered.values())) == 3
    dead = network.site.servers[1]
    assert any(select_server(network.site, HandleName.parse(h))[0] == dead for h in HANDLES[1:])


async def test_sites_expire_by_ttl(network: Network) -> None:
    clock = Clock()
    cache = ResolutionCache(clock=clock)
    walker = resolver(network, cache)
    await walker.resolve(HandleName.parse(HANDLES[0]))
    assert cache.closest_sites(Prefix("88.118.8")) is not None
    clock.now += SITE_TTL + 1  # the enterprise site expired, the secondary's did not
    resolved = await walker.resolve(HandleName.parse(HANDLES[1]))
    assert [(h.server, h.detail) for h in resolved.chain[:2]] == [
        ("cache", "delegation of 88.118"),
        (network.label(network.secondary.port), "site of 88.118.8: 4 servers"),
    ]
    clock.now += DELEGATION_TTL  # everything expired: from the top again
    resolved = await walker.resolve(HandleName.parse(HANDLES[2]))
    assert resolved.chain[0].server == network.label(network.top.port)
    assert len(resolved.chain) == 3


async def test_stale_site_falls_back_to_following_referrals(network: Network) -> None:
    cache = ResolutionCache()
    # A stale cache entry: the site of 88.118.8 is believed to be the secondary.
    secondary = site_for("127.0.0.1", handle_port=network.secondary.port)
    cache.put_sites(Prefix("88.118.8"), [secondary], (HandleValue(1, "HS_SITE", secondary),))
    resolved = await resolver(network, cache).resolve(HandleName.parse(HANDLES[3]))
    codes = [(h.server, h.code) for h in resolved.chain]
    assert codes == [
        ("cache", ResponseCode.SUCCESS),
        (network.label(network.secondary.port), ResponseCode.PREFIX_REFERRAL),
        (network.label(expected_port(network, HANDLES[3])), ResponseCode.SUCCESS),
    ]


async def test_prefix_without_its_own_site_and_the_top_prefix(network: Network) -> None:
    walker = resolver(network, ResolutionCache())
    resolved = await walker.resolve(HandleName.parse("88.118.8.5/Y"))
    asked = [(h.asked, h.code) for h in resolved.chain]
    assert asked == [
        ("0.NA/88.118.8.5", ResponseCode.PREFIX_REFERRAL),  # top: ask the secondary
        ("0.NA/88.118.8.5", ResponseCode.PREFIX_REFERRAL),  # secondary: ask the enterprise
        ("0.NA/88.118.8.5", ResponseCode.HANDLE_NOT_FOUND),  # no such prefix record there
        ("88.118.8.5/Y", ResponseCode.SUCCESS),  # so the enterprise serves it
    ]
    top = await walker.resolve(HandleName.parse("88/TOP"))
    assert [(h.asked, h.server) for h in top.chain] == [
        ("0.NA/88", network.label(network.top.port)),
        ("88/TOP", network.label(network.top.port)),
    ]
