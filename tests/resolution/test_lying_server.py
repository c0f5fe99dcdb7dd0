"""A lying enterprise node cannot poison a resolver's cache (real native servers over UDP).

Top ``88`` delegates ``88.118`` to the secondary, which delegates ``88.118.8`` to
an honest enterprise and ``88.118.9`` to a liar: a UDP server that answers every
question with a referral claiming a prefix it was never given, or with values
for another handle than the one asked.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError, TransportError
from iinode.identifiers import HandleName, HandleValue, Prefix, UrlData, site_for
from iinode.node.settings import Role
from iinode.proto import Message, ReferralResponse, ResolutionResponse, to_packets
from iinode.resolution import ResolutionCache
from iinode.resolution.native_client import NativeClient, NativeResolver
from native.nodes import Hierarchy, delegation, start_node, url


@dataclass
class Liar(asyncio.DatagramProtocol):
    """Answers every RESOLUTION with ``mode``: ``claim:<prefix>`` or ``other``."""

    mode: str = "claim:88"
    request_ids: list[int] = field(default_factory=list)
    transport: Any = None
    port: int = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = Message.from_wire(data)
        self.request_ids.append(request.request_id)
        evil = site_for("127.0.0.1", handle_port=self.port)
        if self.mode.startswith("claim:"):
            claimed = Prefix(self.mode.removeprefix("claim:"))
            values = (HandleValue(1, "HS_SITE", evil, ttl=86400),)
            referral = ReferralResponse(str(claimed.na_handle), values)
            answer = request.reply(referral, ResponseCode.PREFIX_REFERRAL)
        else:
            values = (HandleValue(1, "URL", UrlData("http://evil.example/")),)
            answer = request.reply(ResolutionResponse("88.118.8/PRESS-01", values))
        for packet in to_packets(answer):
            self.transport.sendto(packet, addr)


@pytest.fixture
def network(tmp_path: Path, liar: Liar) -> Iterator[Hierarchy]:
    ent = start_node(
        tmp_path, Role.ENTERPRISE, "88.118.8", {"88.118.8/PRESS-01": [url(1, "http://f.cn/p1")]}
    )
    sec = start_node(tmp_path, Role.SECONDARY, "88.118", {
        "0.NA/88.118.8": delegation(ent.port),
        "0.NA/88.118.9": delegation(liar.port),
    })  # fmt: skip
    top = start_node(tmp_path, Role.TOP, "88", {"0.NA/88.118": delegation(sec.port)})
    yield Hierarchy(top, sec, ent)
    for node in (top, sec, ent):
        node.server.stop()


@pytest.fixture
async def liar() -> AsyncIterator[Liar]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Liar, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()


def cached_ports(cache: ResolutionCache, prefix: str) -> set[int]:
    """The ports of the sites the cache would ask first for a name under ``prefix``."""
    entry = cache.closest_sites(Prefix(prefix))
    if entry is None:
        return set()
    return {i.port for site in entry.sites for server in site.servers for i in server.interfaces}


def resolver(network: Hierarchy, cache: ResolutionCache) -> NativeResolver:
    root = site_for("127.0.0.1", handle_port=network.top.port)
    return NativeResolver([root], cache=cache, client=NativeClient(timeout=0.5, retries=0))


@pytest.mark.parametrize("claimed", ["88", "88.118", "88.118.8", "88.200"])
async def test_a_referral_outside_the_bailiwick_is_refused_and_not_cached(
    network: Hierarchy, liar: Liar, claimed: str
) -> None:
    liar.mode = f"claim:{claimed}"
    cache = ResolutionCache()
    walker = resolver(network, cache)
    with pytest.raises(RemoteProtocolError, match="outside its bailiwick"):
        await walker.resolve(HandleName.parse("88.118.9/X"))
    assert liar.request_ids  # the liar was asked, and refused
    for prefix in ("88", "88.118", "88.118.8", "88.200", "88.300.1"):
        assert liar.port not in cached_ports(cache, prefix), prefix
    # Honest names still resolve through the honest nodes, with the same cache.
    resolved = await walker.resolve(HandleName.parse("88.118.8/PRESS-01"))
    assert resolved.values[0].data.to_wire() == b"http://f.cn/p1"
    assert f"127.0.0.1:{network.enterprise.port}" in resolved.chain[-1].server
    await walker.aclose()


async def test_an_answer_about_another_handle_is_refused(network: Hierarchy, liar: Liar) -> None:
    liar.mode = "other"
    cache = ResolutionCache()
    walker = resolver(network, cache)
    with pytest.raises(TransportError, match="answered about"):
        await walker.resolve(HandleName.parse("88.118.9/X"))
    assert cache.get(HandleName.parse("88.118.8/PRESS-01")) is None
    assert cache.get(HandleName.parse("88.118.9/X")) is None
    resolved = await walker.resolve(HandleName.parse("88.118.8/PRESS-01"))
    assert resolved.values[0].data.to_wire() == b"http://f.cn/p1"
    await walker.aclose()


async def test_request_ids_are_unpredictable(network: Hierarchy, liar: Liar) -> None:
    liar.mode = "other"
    walker = resolver(network, ResolutionCache())
    for _ in range(8):
        with pytest.raises(TransportError):
            await walker.resolve(HandleName.parse("88.118.9/X"))
    ids = liar.request_ids
    assert len(ids) == 8
    assert len(set(ids)) == 8
    steps = {b - a for a, b in itertools.pairwise(ids)}
    assert steps != {1}  # not a counter
    assert max(ids) - min(ids) > 1000  # spread over the 32-bit space (p of failing ~ 1e-20)
    await walker.aclose()
