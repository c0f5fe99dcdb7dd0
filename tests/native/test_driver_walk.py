"""The driver's Handle-style walk, with scripted answers (no network)."""

from __future__ import annotations

import pytest

from iinode.codes import ResponseCode
from iinode.errors import RecursionLimitExceeded
from iinode.identifiers import HandleName, HandleValue, Prefix, SiteData, site_for
from iinode.resolution import RemoteAnswer, Resolution, ResolutionCache

ROOT = site_for("10.0.0.1", handle_port=2641)
SEC = site_for("10.0.0.2", handle_port=2641)
ENT = site_for("10.0.0.3", handle_port=2641)
HANDLE = HandleName.parse("88.118.8/X")


def site_values(site: SiteData) -> tuple[HandleValue, ...]:
    return (HandleValue(1, "HS_SITE", site, ttl=60),)


def step(res: Resolution, expect: tuple[str, SiteData], answer: RemoteAnswer) -> None:
    query = res.next_query()
    assert query is not None
    assert (str(query.handle), query.site) == expect
    res.on_answer(query, answer)


def test_walk_then_handle_and_the_cache() -> None:
    cache = ResolutionCache()
    res = Resolution(HANDLE, [ROOT], cache, site_walk=True)
    step(res, ("0.NA/88.118.8", ROOT), RemoteAnswer(
        ResponseCode.PREFIX_REFERRAL, site_values(SEC), Prefix("88.118"), "root"))  # fmt: skip
    step(res, ("0.NA/88.118.8", SEC), RemoteAnswer(ResponseCode.SUCCESS, site_values(ENT)))
    step(res, ("88.118.8/X", ENT), RemoteAnswer(ResponseCode.SUCCESS, ()))
    assert res.next_query() is None
    sites = cache.closest_sites(Prefix("88.118.8"))
    assert sites is not None
    assert sites.sites == (ENT,)
    # A sibling goes straight to the cached site.
    sibling = Resolution(HandleName.parse("88.118.8/Y"), [ROOT], cache, site_walk=True)
    step(sibling, ("88.118.8/Y", ENT), RemoteAnswer(ResponseCode.SUCCESS, ()))


def test_refused_site_lookup_falls_back_to_referrals() -> None:
    res = Resolution(HANDLE, [ROOT], ResolutionCache(), site_walk=True)
    step(res, ("0.NA/88.118.8", ROOT), RemoteAnswer(ResponseCode.NOT_AUTHORIZED, message="no"))
    step(res, ("88.118.8/X", ROOT), RemoteAnswer(
        ResponseCode.PREFIX_REFERRAL, site_values(ENT), Prefix("88.118.8")))  # fmt: skip
    step(res, ("88.118.8/X", ENT), RemoteAnswer(ResponseCode.SUCCESS, ()))
    assert "following referrals" in res.chain[0].detail
    assert res.outcome().values == ()


def test_prefix_record_without_site_asks_the_same_site() -> None:
    res = Resolution(HANDLE, [ROOT, SEC], None, site_walk=True)
    step(res, ("0.NA/88.118.8", ROOT), RemoteAnswer(ResponseCode.SUCCESS, ()))
    step(res, ("88.118.8/X", ROOT), RemoteAnswer(ResponseCode.HANDLE_NOT_FOUND))
    assert res.done


def test_na_handles_and_http_mode_are_not_walked() -> None:
    for res in (
        Resolution(HandleName.parse("0.NA/88.118.8"), [ROOT], None, site_walk=True),
        Resolution(HANDLE, [ROOT], None),
    ):
        query = res.next_query()
        assert query is not None
        assert query.handle == res.handle


def test_referral_loop_during_the_walk_is_detected() -> None:
    res = Resolution(HANDLE, [ROOT], None, site_walk=True)
    loop = RemoteAnswer(ResponseCode.PREFIX_REFERRAL, site_values(SEC), Prefix("88.118"))
    step(res, ("0.NA/88.118.8", ROOT), loop)
    step(res, ("0.NA/88.118.8", SEC), loop)
    with pytest.raises(RecursionLimitExceeded):
        res.outcome()
