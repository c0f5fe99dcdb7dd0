"""Failed-login limits in two tiers: per source address, then per address and identity."""

from __future__ import annotations

import pytest

from iinode.errors import AuthenticationFailed
from iinode.identifiers import IndexedHandle
from iinode.node.auth import Credentials
from iinode.node.ratelimit import FailureLimiter, FailureLimits, source_of
from iinode.node.service import HandleService

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")


async def test_rotating_identity_names_is_bounded_per_address(service: HandleService) -> None:
    """Each new name is a fresh pair bucket, but the address's own bucket empties."""
    now = [1000.0]
    auth = service.auth
    auth.limiter = FailureLimiter(
        FailureLimits(burst=3, per_second=0.01, source_burst=8, source_per_second=0.5),
        lambda: now[0],
    )
    checked = refused = 0
    for n in range(100):
        guess = Credentials(IndexedHandle.parse(f"{400 + n}:0.NA/88.118.8"), "guess")
        with pytest.raises(AuthenticationFailed) as failure:
            await auth.authenticate(guess, peer="10.0.0.1")
        if "too many failed authentications" in str(failure.value):
            refused += 1
        else:
            checked += 1
    assert (checked, refused) == (8, 92)  # secrets checked for the burst only
    with pytest.raises(AuthenticationFailed, match="too many"):  # any identity, unchecked
        await auth.authenticate(Credentials(ADMIN, "s3cret"), peer="10.0.0.1")
    assert await auth.authenticate(Credentials(ADMIN, "s3cret"), peer="10.0.0.2") == ADMIN
    now[0] += 2.0  # one token back for the address: one more check, then refused again
    with pytest.raises(AuthenticationFailed, match="authentication as"):
        await auth.authenticate(Credentials(IndexedHandle.parse("999:0.NA/88.118.8"), "x"),
                                peer="10.0.0.1")  # fmt: skip
    assert auth.retry_after(ADMIN, "10.0.0.1") > 0


def test_rotation_cannot_evict_an_addresses_own_lockout() -> None:
    now = [0.0]
    limits = FailureLimits(
        burst=3, per_second=0.001, max_sources=50, source_burst=1000, source_per_second=100.0,
        identities_per_source=4,
    )  # fmt: skip
    limiter = FailureLimiter(limits, lambda: now[0])
    for _ in range(3):
        limiter.failed(("10.0.0.1", str(ADMIN)))
    locked = limiter.retry_after(("10.0.0.1", str(ADMIN)))
    assert locked > 0
    for n in range(500):  # far more names than either map holds
        limiter.failed(("10.0.0.1", f"{n}:0.NA/88.118.8"))
        now[0] += 0.01
    assert limiter.retry_after(("10.0.0.1", str(ADMIN))) > 0  # still locked
    assert len(limiter) <= limits.identities_per_source  # rotation did not grow the map
    # nor did it push another address's lockout out
    for _ in range(3):
        limiter.failed(("10.0.0.2", str(ADMIN)))
    for n in range(500):
        limiter.failed(("10.0.0.1", f"{n}:0.NA/88.118.8"))
    assert limiter.retry_after(("10.0.0.2", str(ADMIN))) > 0


def test_pair_tier_spares_other_identities_behind_one_address() -> None:
    limiter = FailureLimiter(FailureLimits(burst=2, source_burst=10), lambda: 0.0)
    limiter.failed(("192.0.2.1", "300:0.NA/88.1"))
    limiter.failed(("192.0.2.1", "300:0.NA/88.1"))
    assert limiter.retry_after(("192.0.2.1", "300:0.NA/88.1")) > 0
    assert limiter.retry_after(("192.0.2.1", "300:0.NA/88.2")) == 0  # a colleague behind a NAT


def test_ipv6_sources_count_per_slash_64() -> None:
    assert source_of("2001:db8:1:2:aaaa::1") == source_of("2001:db8:1:2:bbbb::2")
    assert source_of("2001:db8:1:2::1") != source_of("2001:db8:1:3::1")
    assert source_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_of("192.0.2.7") == "192.0.2.7"
    limiter = FailureLimiter(FailureLimits(source_burst=2), lambda: 0.0)
    limiter.failed(("2001:db8:1:2::1", "a"))
    limiter.failed(("2001:db8:1:2::99", "b"))  # another host of the same /64
    assert limiter.retry_after(("2001:db8:1:2::5", "c")) > 0
    assert limiter.retry_after(("2001:db8:1:3::5", "c")) == 0


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="source_burst"):
        FailureLimits(source_burst=0)
    with pytest.raises(ValueError, match="identities_per_source"):
        FailureLimits(identities_per_source=0)
