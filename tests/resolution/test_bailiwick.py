"""The driver's bailiwick check, with scripted answers (no network).

Every site is trusted for one zone: the roots for everything, a site learnt from
a delegation of ``P`` for ``P``.  A referral may name only an ancestor of what is
being resolved within that zone; it is cached only when strictly deeper.
"""

from __future__ import annotations

import pytest

from iinode.codes import ResponseCode
from iinode.errors import RemoteProtocolError
from iinode.identifiers import HandleName, HandleValue, Prefix, SiteData, site_for
from iinode.resolution import RemoteAnswer, Resolution, ResolutionCache

ROOT = site_for("10.0.0.1", handle_port=2641)
SEC = site_for("10.0.0.2", handle_port=2641)
ENT = site_for("10.0.0.3", handle_port=2641)
EVIL = site_for("10.6.6.6", handle_port=2641)
HANDLE = HandleName.parse("88.118.8/X")


def site_values(site: SiteData) -> tuple[HandleValue, ...]:
    return (HandleValue(1, "HS_SITE", site, ttl=600),)


def referral(site: SiteData, prefix: str | None) -> RemoteAnswer:
    delegated = Prefix(prefix) if prefix else None
    code = ResponseCode.PREFIX_REFERRAL if prefix else ResponseCode.SERVICE_REFERRAL
    return RemoteAnswer(code, site_values(site), delegated, "peer")


def step(res: Resolution, expect: tuple[str, SiteData], answer: RemoteAnswer) -> None:
    query = res.next_query()
    assert query is not None
    assert (str(query.handle), query.site) == expect
    res.on_answer(query, answer)


def cached(cache: ResolutionCache, prefix: str) -> tuple[str, tuple[SiteData, ...]] | None:
    entry = cache.closest_sites(Prefix(prefix))
    return None if entry is None else (entry.prefix.text, entry.sites)


def enterprise_cache() -> ResolutionCache:
    """A cache that trusts ENT for 88.118.8 (as a walk from the top would leave it)."""
    cache = ResolutionCache()
    cache.put_sites(Prefix("88.118.8"), [ENT], site_values(ENT))
    return cache


@pytest.mark.parametrize(
    ("claimed", "why"),
    [
        ("88", "above the zone it was trusted for"),
        ("88.118", "above the zone it was trusted for"),
        ("88.200", "beside: not an ancestor of the handle's prefix"),
        ("88.118.9", "a sibling of the handle's prefix"),
        ("88.118.8.1", "below the handle's prefix: not on its authority chain"),
    ],
)
def test_an_enterprise_cannot_claim_other_prefixes(claimed: str, why: str) -> None:
    cache = enterprise_cache()
    res = Resolution(HANDLE, [ROOT], cache)
    assert res.zone == Prefix("88.118.8")
    step(res, ("88.118.8/X", ENT), referral(EVIL, claimed))
    # Refused (that site's failure): nothing learnt, the resolution fails cleanly.
    assert res.next_query() is None, why
    with pytest.raises(RemoteProtocolError, match="outside its bailiwick"):
        res.outcome()
    assert "refused referral" in res.chain[-1].detail
    assert cached(cache, claimed) != (claimed, (EVIL,))
    assert cached(cache, "88.200") is None
    assert cached(cache, "88.118.8") == ("88.118.8", (ENT,))


def test_a_refused_referral_moves_on_to_the_next_site() -> None:
    cache = ResolutionCache()
    cache.put_sites(Prefix("88.118"), [EVIL, SEC], site_values(SEC))
    res = Resolution(HANDLE, [ROOT], cache)
    step(res, ("88.118.8/X", EVIL), referral(EVIL, "88"))
    step(res, ("88.118.8/X", SEC), referral(ENT, "88.118.8"))
    step(res, ("88.118.8/X", ENT), RemoteAnswer(ResponseCode.SUCCESS, ()))
    assert res.outcome().values == ()
    assert cached(cache, "88.118.8") == ("88.118.8", (ENT,))
    assert cached(cache, "88.300") is None


def test_roots_are_trusted_for_everything_and_each_level_narrows() -> None:
    cache = ResolutionCache()
    res = Resolution(HANDLE, [ROOT], cache)
    assert res.zone is None
    step(res, ("88.118.8/X", ROOT), referral(SEC, "88.118"))
    assert res.zone == Prefix("88.118")
    step(res, ("88.118.8/X", SEC), referral(ENT, "88.118.8"))
    assert res.zone == Prefix("88.118.8")
    step(res, ("88.118.8/X", ENT), RemoteAnswer(ResponseCode.SUCCESS, ()))
    assert cached(cache, "88.118") == ("88.118", (SEC,))
    assert cached(cache, "88.118.8") == ("88.118.8", (ENT,))


def test_the_secondary_cannot_hand_out_the_top_zone() -> None:
    cache = ResolutionCache()
    res = Resolution(HANDLE, [ROOT], cache, site_walk=True)
    step(res, ("0.NA/88.118.8", ROOT), referral(SEC, "88.118"))
    step(res, ("0.NA/88.118.8", SEC), referral(EVIL, "88"))
    assert res.next_query() is None
    with pytest.raises(RemoteProtocolError):
        res.outcome()
    assert cached(cache, "88") is None
    assert cached(cache, "88.999") is None


def test_a_site_handing_over_its_own_zone_is_followed_but_not_trusted_more() -> None:
    # A stale cached site of 88.118.8 refers to the new one: followed once, and the
    # stale entry is dropped so the next walk asks the parent again.
    cache = enterprise_cache()
    res = Resolution(HANDLE, [ROOT], cache)
    step(res, ("88.118.8/X", ENT), referral(SEC, "88.118.8"))
    assert res.zone == Prefix("88.118.8")
    step(res, ("88.118.8/X", SEC), RemoteAnswer(ResponseCode.SUCCESS, ()))
    assert cached(cache, "88.118.8") is None


def test_a_service_referral_does_not_widen_the_zone() -> None:
    cache = enterprise_cache()
    res = Resolution(HANDLE, [ROOT], cache)
    step(res, ("88.118.8/X", ENT), referral(EVIL, None))  # "ask my parent": EVIL
    assert res.zone == Prefix("88.118.8")
    step(res, ("88.118.8/X", EVIL), referral(EVIL, "88.118"))
    assert res.next_query() is None
    with pytest.raises(RemoteProtocolError):
        res.outcome()
    assert cached(cache, "88.118") is None


def test_from_the_roots_a_service_referral_keeps_full_trust() -> None:
    # A node's own parent as its root: asked outside its prefix it refers upwards.
    cache = ResolutionCache()
    res = Resolution(HandleName.parse("88.200.1/Y"), [SEC], cache)
    step(res, ("88.200.1/Y", SEC), referral(ROOT, None))
    step(res, ("88.200.1/Y", ROOT), referral(ENT, "88.200"))
    step(res, ("88.200.1/Y", ENT), RemoteAnswer(ResponseCode.SUCCESS, ()))
    assert cached(cache, "88.200.1") == ("88.200", (ENT,))


def test_site_record_from_the_site_itself_is_not_cached_as_a_delegation() -> None:
    # ENT is trusted for 88.118.8; its own 0.NA/88.118.8 naming EVIL is followed
    # for this resolution only, never cached over the delegation.
    cache = ResolutionCache()
    cache.put_sites(Prefix("88.118"), [SEC], site_values(SEC))
    res = Resolution(HANDLE, [ROOT], cache, site_walk=True)
    step(res, ("0.NA/88.118.8", SEC), RemoteAnswer(ResponseCode.SUCCESS, site_values(ENT)))
    assert cached(cache, "88.118.8") == ("88.118.8", (ENT,))
    step(res, ("88.118.8/X", ENT), RemoteAnswer(ResponseCode.SUCCESS, ()))
    assert res.zone == Prefix("88.118.8")
