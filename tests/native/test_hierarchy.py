"""Referrals, three-level resolution with the native client, and a recursive node."""

from __future__ import annotations

from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.errors import HandleNotFound
from iinode.identifiers import HandleName, SiteData, TransportProtocol, site_for
from iinode.node.settings import Role
from iinode.resolution import ResolutionCache
from iinode.resolution.native_client import NativeResolver
from native.golden import parse_response, resolution_request, udp_ask
from native.nodes import Hierarchy, start_node


def test_top_answers_a_prefix_referral_with_native_site(hierarchy: Hierarchy) -> None:
    raw = udp_ask(hierarchy.top.address, resolution_request("88.118.8/PRESS-01", 5))
    answer = parse_response(raw)
    assert answer["code"] == ResponseCode.PREFIX_REFERRAL
    from iinode.proto import Message, ReferralResponse

    body = Message.from_wire(raw).body
    assert isinstance(body, ReferralResponse)
    assert body.handle == "0.NA/88.118"
    site = body.values[0].data
    assert isinstance(site, SiteData)
    server = site.servers[0]
    assert server.interface(TransportProtocol.UDP).port == hierarchy.secondary.port  # type: ignore[union-attr]
    assert server.interface(TransportProtocol.TCP).port == hierarchy.secondary.port  # type: ignore[union-attr]


async def test_three_levels_with_the_native_client(hierarchy: Hierarchy) -> None:
    cache = ResolutionCache()
    resolver = NativeResolver([site_for("127.0.0.1", handle_port=hierarchy.top.port)], cache=cache)
    resolved = await resolver.resolve(HandleName.parse("88.118.8/PRESS-01"))
    assert [v.data.to_wire() for v in resolved.values] == [b"http://f.cn/p1"]
    codes = [hop.code for hop in resolved.chain]
    assert codes == [ResponseCode.PREFIX_REFERRAL, ResponseCode.SUCCESS, ResponseCode.SUCCESS]
    assert [hop.asked for hop in resolved.chain] == ["0.NA/88.118.8"] * 2 + ["88.118.8/PRESS-01"]
    assert resolved.chain[0].server.startswith("udp://")
    # The answer is cached for its TTL.
    again = await resolver.resolve(HandleName.parse("88.118.8/PRESS-01"))
    assert again.chain[0].from_cache
    with pytest.raises(HandleNotFound):
        await resolver.resolve(HandleName.parse("88.118.8/NOPE"))
    chain_of_miss = cache.get(HandleName.parse("88.118.8/NOPE"))
    assert chain_of_miss is not None
    assert chain_of_miss.values is None


async def test_tcp_fallback_when_a_site_has_only_tcp(hierarchy: Hierarchy) -> None:
    from iinode.identifiers import Interface, Server, ServiceType

    tcp_only = SiteData(
        (Server(1, "127.0.0.1", (Interface(ServiceType.QUERY, TransportProtocol.TCP,
                                           hierarchy.top.port),)),)
    )  # fmt: skip
    resolved = await NativeResolver([tcp_only]).resolve(HandleName.parse("88.118.8/PRESS-01"))
    assert resolved.chain[0].server == f"tcp://127.0.0.1:{hierarchy.top.port}"
    assert resolved.chain[-1].server == f"udp://127.0.0.1:{hierarchy.enterprise.port}"
    assert len(resolved.values) == 1


def test_recursive_node_resolves_three_levels(hierarchy: Hierarchy, tmp_path: Path) -> None:
    recursive = start_node(tmp_path / "r", Role.RECURSIVE, None, parent_port=hierarchy.top.port)
    try:
        raw = udp_ask(recursive.address, resolution_request("88.118.8/PRESS-01", 11), timeout=5)
        answer = parse_response(raw)
        assert answer["code"] == ResponseCode.SUCCESS
        assert answer["values"] == [(1, "URL", b"http://f.cn/p1")]
        again = parse_response(udp_ask(recursive.address, resolution_request("88.118.8/NO", 12)))
        assert again["code"] == ResponseCode.HANDLE_NOT_FOUND
    finally:
        recursive.server.stop()
