"""``ratelimit.Tier`` (a bucket held as the time it is full again) is a token bucket."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iinode.node.ratelimit import Tier


class TokenBucket:
    """The plain model: tokens, refilled at ``per_second`` up to ``burst``."""

    def __init__(self, burst: int, per_second: float, now: float) -> None:
        self.burst, self.per_second = burst, per_second
        self.tokens, self.then = float(burst), now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.then) * self.per_second)
        self.then = now

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens = max(0.0, self.tokens - 1)

    def wait(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.per_second


steps = st.lists(
    st.tuples(st.booleans(), st.floats(min_value=0, max_value=30, allow_nan=False)),
    max_size=60,
)


@given(
    burst=st.integers(min_value=1, max_value=40),
    per_second=st.floats(min_value=0.01, max_value=20),
    steps=steps,
)
def test_tier_matches_a_token_bucket(
    burst: int, per_second: float, steps: list[tuple[bool, float]]
) -> None:
    tier = Tier(burst, per_second)
    now = 1_700_000_000.0
    model = TokenBucket(burst, per_second, now)
    full_at: float | None = None
    for take, elapsed in steps:
        now += elapsed
        if take:
            full_at = tier.charged(full_at, now)
            model.take(now)
        expected = model.wait(now)
        got = tier.wait(full_at, now)
        # Equal but for rounding (a wait within a microsecond may read as none).
        assert abs(got - expected) < 1e-6 * max(1.0, tier.capacity), (got, expected)


def test_a_clock_gone_back_waits_no_longer_than_an_empty_bucket() -> None:
    tier = Tier(3, 0.5)  # an empty bucket: 2 s to the next token
    full_at = 1000.0
    for _ in range(3):
        full_at = tier.charged(full_at, 1000.0)
    assert tier.wait(full_at, 1000.0) == 2.0
    assert tier.wait(full_at, 1000.0 - 3600) == 2.0  # an hour back: still 2 s
    assert tier.charged(full_at, 1000.0 - 3600) == 1000.0 - 3600 + tier.capacity
