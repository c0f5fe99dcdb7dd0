"""The parent's site carries the parent's server key: referrals upward and verdicts checked.

A node learns its parent's key from the parent's own server (a certified GET_SITEINFO
at ``parent_handle_port`` whose signature verifies with a key the answer names), puts it
in the HS_SITE of its SERVICE_REFERRALs (RFC 3651 s3.2.2: a site names each server's
key, which a Handle.Net client checks certified answers against) and holds the
parent's VERIFY_RESPONSE verdicts to it, as the reference server holds a verdict to
the key of the site it asked (``vaReq.certify``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    SiteData,
)
from iinode.node import sites
from iinode.node.server_keys import load_server_key, rotate_server_key
from iinode.node.settings import Role
from iinode.proto import Message, OpCode, ReferralResponse, ResolutionRequest
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_client import NativeClient, next_request_id
from iinode.resolution.native_trust import learn_server_key
from native.nodes import SECRET, Node, start_node, url
from support import free_port

PARENT_ADMIN = IndexedHandle.parse("300:0.NA/88.118")
SHARED = HandleName.parse("88.118.8/SHARED")


@pytest.fixture
def parent_and_child(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    parent = start_node(tmp_path, Role.SECONDARY, "88.118")
    grant = AdminData(AdminPermission.all(), PARENT_ADMIN)
    shared = [url(1, "http://s/"), HandleValue(100, "HS_ADMIN", grant)]
    child = start_node(
        tmp_path, Role.ENTERPRISE, "88.118.8", {str(SHARED): shared}, parent_port=parent.port
    )
    yield parent, child
    child.server.stop()
    parent.server.stop()


async def _referral_site(node: Node, handle: str) -> SiteData:
    client = NativeClient(timeout=3.0)
    try:
        request = Message(
            OpCode.RESOLUTION, ResolutionRequest(handle), request_id=next_request_id()
        )
        response = await client.tcp(node.address, request)
    finally:
        await client.aclose()
    assert response.response_code == ResponseCode.SERVICE_REFERRAL
    assert isinstance(response.body, ReferralResponse)
    (site,) = [v.data for v in response.body.values if isinstance(v.data, SiteData)]
    return site


async def test_referrals_upward_carry_the_parents_key(
    parent_and_child: tuple[Node, Node],
) -> None:
    parent, child = parent_and_child
    key = load_server_key(parent.settings.data_dir).public_bytes
    assert key
    site = await _referral_site(child, "88.999/ELSEWHERE")
    assert [s.public_key for s in site.servers] == [key]
    assert await learn_server_key(parent.address) == key


async def test_the_parents_verdicts_are_held_to_its_key(
    parent_and_child: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, child = parent_and_child
    monkeypatch.setattr(sites, "PARENT_SITE_TTL", 5.0)
    auth = SecretKeyAuth(PARENT_ADMIN, SECRET)
    async with NativeAdminClient(*child.address, auth) as admin:  # the child learns the key
        await admin.add_values(SHARED, [url(2, "http://p/2")])
    learned = time.monotonic()
    # The parent's key changes; until the child looks again, the parent's verdicts
    # (signed with the new key) are not taken.
    new = rotate_server_key(parent.settings.data_dir).public_bytes
    deadline = time.monotonic() + 10
    while await learn_server_key(parent.address) != new:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert time.monotonic() - learned < 4.5, "too slow to observe the stale key"
    async with NativeAdminClient(*child.address, auth) as admin:
        with pytest.raises(HandleError) as refused:
            await admin.add_values(SHARED, [url(3, "http://p/3")])
        assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    # After the refresh interval the child asks again and takes the new key.
    await asyncio.sleep(max(0.0, learned + 5.2 - time.monotonic()))
    async with NativeAdminClient(*child.address, auth) as admin:
        await admin.add_values(SHARED, [url(3, "http://p/3")])
    assert [s.public_key for s in (await _referral_site(child, "88.999/X")).servers] == [new]


async def test_a_silent_parent_gives_a_keyless_site_asked_again_soon(tmp_path: Path) -> None:
    site, ttl = await sites.parent_site(
        "http://127.0.0.1:1", free_port(), learn_key=learn_server_key
    )
    assert [s.public_key for s in site.servers] == [b""]
    assert ttl == sites.PARENT_SITE_RETRY
    site, ttl = await sites.parent_site("http://127.0.0.1:1", None, learn_key=learn_server_key)
    assert ttl == sites.PARENT_SITE_TTL
