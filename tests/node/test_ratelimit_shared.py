"""Failed-login counts shared by a node's processes (``node.failure_counts``).

The same two-tier tests run against the in-process ``FailureLimiter`` and the
shared limiter over SQLite and over the real Redis on 127.0.0.1:6379; then
real processes (multiprocessing, spawn) share one count through each store.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cache
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import redis

from iinode.errors import AuthenticationFailed
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, SecKeyData
from iinode.node.auth import Authorizer, Credentials
from iinode.node.failure_counts import (
    FAILURES_FILE,
    FailureStore,
    SharedFailureLimiter,
    failure_store_for,
)
from iinode.node.failure_redis import RedisFailureStore
from iinode.node.failure_sqlite import SQLiteFailureStore
from iinode.node.ratelimit import FailureCounter, FailureLimiter, FailureLimits
from iinode.node.settings import NodeSettings, Role
from iinode.node.verifier import SecretVerifier
from support import free_port, require_service

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")
SECRET = "s3cret"
BACKENDS = ["memory", "sqlite", "redis"]


class Clock:
    """A wall clock that moves when told (Redis expires keys by the real one)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class StoreSpec:
    """A store every process can open again (picklable for spawned processes)."""

    kind: str
    path: Path | None = None
    url: str = ""
    namespace: str = ""

    def open(self) -> FailureStore:
        if self.kind == "sqlite":
            assert self.path is not None
            return SQLiteFailureStore(self.path)
        return RedisFailureStore(self.url, self.namespace)


def redis_spec() -> StoreSpec:
    host, port = require_service("redis")
    return StoreSpec("redis", url=f"redis://{host}:{port}/0", namespace=f"t{uuid.uuid4().hex}")


def drop_redis_keys(spec: StoreSpec) -> None:
    client = redis.Redis.from_url(spec.url)
    try:
        for key in client.scan_iter(match=f"iinode:{spec.namespace}:*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
async def spec_for(tmp_path: Path) -> AsyncIterator[Callable[[str], StoreSpec]]:
    made: list[StoreSpec] = []

    def make(kind: str) -> StoreSpec:
        spec = redis_spec() if kind == "redis" else StoreSpec("sqlite", tmp_path / FAILURES_FILE)
        made.append(spec)
        return spec

    yield make
    for spec in made:
        if spec.kind == "redis":
            drop_redis_keys(spec)


@pytest.fixture
async def make_limiter(
    spec_for: Callable[[str], StoreSpec],
) -> AsyncIterator[Callable[[str, FailureLimits, Clock], FailureCounter]]:
    opened: list[FailureCounter] = []

    def make(kind: str, limits: FailureLimits, clock: Clock) -> FailureCounter:
        limiter: FailureCounter
        if kind == "memory":
            limiter = FailureLimiter(limits, clock)
        else:
            limiter = SharedFailureLimiter(spec_for(kind).open(), "client", limits, clock=clock)
        opened.append(limiter)
        return limiter

    yield make
    for limiter in opened:
        await limiter.aclose()


async def held(limiter: FailureCounter) -> tuple[int, int]:
    """Source and pair buckets the limiter keeps."""
    if isinstance(limiter, FailureLimiter):
        return limiter.sources, len(limiter)
    assert isinstance(limiter, SharedFailureLimiter)
    return await limiter.held()


def fresh(limiter: FailureCounter) -> FailureCounter:
    """A second process's view: the same store with an empty first level."""
    if isinstance(limiter, SharedFailureLimiter):
        return SharedFailureLimiter(
            limiter.store, limiter.scope, limiter.limits, clock=limiter._clock
        )
    return limiter


# -- the two tiers, on every backend ----------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
async def test_pair_tier_locks_one_identity_and_spares_another(
    kind: str, make_limiter: Callable[[str, FailureLimits, Clock], FailureCounter]
) -> None:
    clock = Clock()
    limiter = make_limiter(kind, FailureLimits(burst=3, per_second=0.1, source_burst=10), clock)
    for _ in range(2):
        await limiter.charge(("192.0.2.1", "300:0.NA/88.1"))
    assert await limiter.wait(("192.0.2.1", "300:0.NA/88.1")) == 0
    await limiter.charge(("192.0.2.1", "300:0.NA/88.1"))
    other = fresh(limiter)
    assert await other.wait(("192.0.2.1", "300:0.NA/88.1")) == pytest.approx(10.0)
    assert await other.wait(("192.0.2.1", "300:0.NA/88.2")) == 0  # a colleague behind a NAT
    assert await other.wait(("192.0.2.2", "300:0.NA/88.1")) == 0  # another address


@pytest.mark.parametrize("kind", BACKENDS)
async def test_lockout_expires(
    kind: str, make_limiter: Callable[[str, FailureLimits, Clock], FailureCounter]
) -> None:
    clock = Clock()
    limiter = make_limiter(kind, FailureLimits(burst=2, per_second=0.5, source_burst=50), clock)
    key = ("192.0.2.1", str(ADMIN))
    for _ in range(2):
        await limiter.charge(key)
    wait = await fresh(limiter).wait(key)
    assert wait == pytest.approx(2.0)
    clock.now += wait - 0.5
    assert await fresh(limiter).wait(key) == pytest.approx(0.5)
    clock.now += 0.5
    assert await fresh(limiter).wait(key) == 0  # one token back
    await limiter.charge(key)
    assert await fresh(limiter).wait(key) > 0  # and taken again
    clock.now += 10.0  # full again: as if it had never failed
    await limiter.charge(key)
    assert await fresh(limiter).wait(key) == 0


@pytest.mark.parametrize("kind", BACKENDS)
async def test_rotating_identity_names_is_bounded_per_address(
    kind: str, make_limiter: Callable[[str, FailureLimits, Clock], FailureCounter]
) -> None:
    clock = Clock()
    limits = FailureLimits(
        burst=3, per_second=0.01, source_burst=8, source_per_second=0.5, identities_per_source=4
    )
    limiter = make_limiter(kind, limits, clock)
    allowed = 0
    for n in range(100):
        key = ("10.0.0.1", f"{400 + n}:0.NA/88.118.8")
        if await fresh(limiter).wait(key) == 0:
            allowed += 1
            await limiter.charge(key)
    assert allowed == 8  # the address's own bucket: 8 checks, whatever the names
    assert (await held(limiter))[1] == 4  # names past the fourth counted per address only
    assert await fresh(limiter).wait(("10.0.0.2", str(ADMIN))) == 0


@pytest.mark.parametrize("kind", BACKENDS)
async def test_rotation_cannot_evict_a_lockout(
    kind: str, make_limiter: Callable[[str, FailureLimits, Clock], FailureCounter]
) -> None:
    clock = Clock()
    limits = FailureLimits(
        burst=3, per_second=0.001, max_sources=20, source_burst=10_000, source_per_second=100.0,
        identities_per_source=4,
    )  # fmt: skip
    limiter = make_limiter(kind, limits, clock)
    for address in ("10.0.0.1", "10.0.0.2"):
        for _ in range(3):
            await limiter.charge((address, str(ADMIN)))
    for n in range(200):  # far more names than the pair tier holds
        await limiter.charge(("10.0.0.1", f"{n}:0.NA/88.118.8"))
        clock.now += 0.01
    for address in ("10.0.0.1", "10.0.0.2"):
        assert await fresh(limiter).wait((address, str(ADMIN))) > 0
    assert (await held(limiter))[1] <= 2 * limits.identities_per_source


@pytest.mark.parametrize("kind", BACKENDS)
async def test_ipv6_sources_count_per_slash_64(
    kind: str, make_limiter: Callable[[str, FailureLimits, Clock], FailureCounter]
) -> None:
    limiter = make_limiter(kind, FailureLimits(source_burst=2), Clock())
    await limiter.charge(("2001:db8:1:2::1", "a"))
    await limiter.charge(("2001:db8:1:2::99", "b"))  # another host of the same /64
    assert await fresh(limiter).wait(("2001:db8:1:2::5", "c")) > 0
    assert await fresh(limiter).wait(("2001:db8:1:3::5", "c")) == 0


@pytest.mark.parametrize("kind", BACKENDS)
async def test_an_attacker_rotating_addresses_cannot_grow_the_counts(
    kind: str, make_limiter: Callable[[str, FailureLimits, Clock], FailureCounter]
) -> None:
    clock = Clock()
    limits = FailureLimits(burst=2, per_second=0.001, source_burst=2, max_sources=50)
    limiter = make_limiter(kind, limits, clock)
    for _ in range(2):
        await limiter.charge(("198.51.100.1", str(ADMIN)))  # locked for ~1000 s
    clock.now += 1.0
    for n in range(600):  # one failure each: nearer to full than the lockout above
        await limiter.charge((f"10.{n // 250}.{n % 250}.1", str(ADMIN)))
    sources, pairs = await held(limiter)
    assert sources <= 50
    assert pairs <= 50
    if kind != "memory":  # the shared stores drop the buckets nearest to full first
        assert await fresh(limiter).wait(("198.51.100.1", str(ADMIN))) > 0


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_expired_buckets_are_dropped(
    kind: str, make_limiter: Callable[[str, FailureLimits, Clock], FailureCounter]
) -> None:
    clock = Clock()
    limits = FailureLimits(burst=2, per_second=0.2, source_burst=2, source_per_second=0.2,
                           max_sources=10)  # fmt: skip
    limiter = make_limiter(kind, limits, clock)
    for n in range(10):
        await limiter.charge((f"10.0.0.{n}", str(ADMIN)))
    assert await held(limiter) == (10, 10)
    clock.now += 30.0  # every bucket full again
    await limiter.charge(("10.0.1.1", str(ADMIN)))  # a new bucket clears the expired ones
    assert await held(limiter) == (1, 1)


async def test_redis_keys_expire_when_their_buckets_are_full(
    spec_for: Callable[[str], StoreSpec],
) -> None:
    spec = spec_for("redis")
    limiter = SharedFailureLimiter(spec.open(), "client", FailureLimits(burst=2, per_second=10.0,
                                   source_burst=2, source_per_second=10.0))  # fmt: skip
    await limiter.charge(("10.0.0.1", str(ADMIN)))
    client = redis.Redis.from_url(spec.url)
    try:
        keys = list(client.scan_iter(match=f"iinode:{spec.namespace}:*"))
        assert len(keys) == 3  # sources, pairs, the source's pairs
        assert all(0 < client.pttl(key) <= 200 for key in keys)
        await asyncio.sleep(0.3)
        assert list(client.scan_iter(match=f"iinode:{spec.namespace}:*")) == []
    finally:
        client.close()
        await limiter.aclose()


# -- the hot path -----------------------------------------------------------------------


async def test_a_check_writes_nothing(tmp_path: Path) -> None:
    store = SQLiteFailureStore(tmp_path / FAILURES_FILE)
    limiter = SharedFailureLimiter(store)
    await limiter.charge(("10.0.0.1", "x"))
    wal = tmp_path / (FAILURES_FILE + "-wal")
    before = wal.stat()
    for n in range(50):
        assert await limiter.wait((f"10.0.1.{n}", str(ADMIN))) == 0
    after = wal.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    await limiter.aclose()
    assert not wal.exists()  # closed in turn: the last connection removes the WAL


async def test_a_known_lockout_is_refused_without_asking_the_store(tmp_path: Path) -> None:
    class CountingStore(SQLiteFailureStore):
        reads = 0

        async def full_times(
            self, scope: str, source: str, pair: tuple[str, str]
        ) -> tuple[float | None, float | None]:
            self.reads += 1
            return await super().full_times(scope, source, pair)

    store = CountingStore(tmp_path / FAILURES_FILE)
    limiter = SharedFailureLimiter(store, limits=FailureLimits(burst=1))
    await limiter.charge(("10.0.0.1", "x"))
    for _ in range(5):
        assert await limiter.wait(("10.0.0.1", "x")) > 0
    assert store.reads == 0
    await limiter.aclose()


@pytest.mark.parametrize("broken", ["sqlite", "redis"])
async def test_a_failing_store_falls_back_to_counting_per_process(
    tmp_path: Path, broken: str
) -> None:
    store: FailureStore
    if broken == "sqlite":
        (tmp_path / "not-a-dir").write_text("")
        store = SQLiteFailureStore(tmp_path / "not-a-dir" / FAILURES_FILE)
    else:
        store = RedisFailureStore(f"redis://127.0.0.1:{free_port()}/0", "down")
    clock = Clock()
    limiter = SharedFailureLimiter(store, limits=FailureLimits(burst=2), clock=clock)
    assert await limiter.wait(("10.0.0.1", "x")) == 0
    for _ in range(2):
        await limiter.charge(("10.0.0.1", "x"))
    assert await limiter.wait(("10.0.0.1", "x")) > 0  # still limited, in this process
    assert limiter.errors == 1  # the store is left alone for a while after an error
    clock.now += limiter.pause
    await limiter.wait(("10.0.0.2", "x"))
    assert limiter.errors == 2
    await limiter.aclose()


def test_the_node_settings_choose_the_store(tmp_path: Path) -> None:
    base = {"role": Role.ENTERPRISE, "data_dir": tmp_path, "prefix": "88.118.8"}
    sqlite = failure_store_for(NodeSettings(**base))  # type: ignore[arg-type]
    assert isinstance(sqlite, SQLiteFailureStore)
    assert sqlite.path == tmp_path / FAILURES_FILE
    assert not sqlite.path.exists()  # opened on first use only
    shared = failure_store_for(
        NodeSettings(**base, cache_url="redis://127.0.0.1:6379/0")  # type: ignore[arg-type]
    )
    assert isinstance(shared, RedisFailureStore)
    assert shared._base == "iinode:88.118.8:failures:"
    memory = NodeSettings(**base, store_url="memory:")  # type: ignore[arg-type]
    assert failure_store_for(memory) is None


# -- real processes sharing one count ---------------------------------------------------

SHARED_LIMITS = FailureLimits(burst=100, source_burst=20, source_per_second=0.001)


def _charge(spec: StoreSpec, count: int, start: Barrier) -> None:
    async def run() -> None:
        limiter = SharedFailureLimiter(spec.open(), limits=SHARED_LIMITS)
        start.wait()
        for n in range(count):
            await limiter.charge(("192.0.2.7", f"{n}:0.NA/88.118.8"))
        await limiter.aclose()

    asyncio.run(run())


def _wait(spec: StoreSpec) -> float:
    async def run() -> float:
        limiter = SharedFailureLimiter(spec.open(), limits=SHARED_LIMITS)
        try:
            return await limiter.wait(("192.0.2.7", str(ADMIN)))
        finally:
            await limiter.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_processes_charging_at_once_share_one_count(
    kind: str, spec_for: Callable[[str], StoreSpec]
) -> None:
    spec = spec_for(kind)
    ctx = mp.get_context("fork")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_charge, args=(spec, count, start)) for count in (10, 9)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with ctx.Pool(1) as pool:
        assert (
            pool.apply_async(_wait, (spec,)).get(timeout=60) == 0
        )  # 19 of 20: nothing lost, nothing doubled
        lone = ctx.Barrier(1)
        one = ctx.Process(target=_charge, args=(spec, 1, lone))
        one.start()
        one.join(60)
        assert one.exitcode == 0
        assert (
            pool.apply_async(_wait, (spec,)).get(timeout=60) > 0
        )  # the 20th, from a third process


@cache
def _record() -> tuple[HandleValue, ...]:
    verifier = SecretVerifier.create(SECRET, iterations=4096)
    return (HandleValue(300, "HS_SECKEY", SecKeyData(verifier.to_bytes())),)


def _charge_forked(store: SQLiteFailureStore) -> None:
    limiter = SharedFailureLimiter(store, limits=SHARED_LIMITS)
    asyncio.run(limiter.charge(("192.0.2.7", "x")))
    store.close()


async def test_a_forked_process_opens_its_own_connection(tmp_path: Path) -> None:
    store = SQLiteFailureStore(tmp_path / FAILURES_FILE)
    limiter = SharedFailureLimiter(store, limits=SHARED_LIMITS)
    for _ in range(19):
        await limiter.charge(("192.0.2.7", "x"))
    child = mp.get_context("fork").Process(target=_charge_forked, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert await SharedFailureLimiter(store, limits=SHARED_LIMITS).wait(("192.0.2.7", "y")) > 0
    await limiter.aclose()


async def _lookup(_handle: HandleName) -> tuple[HandleValue, ...]:
    return _record()


def _authorizer(spec: StoreSpec) -> Authorizer:
    return Authorizer(
        _lookup, frozenset(), limits=FailureLimits(burst=3, per_second=0.001),
        failures=spec.open(),
    )  # fmt: skip


def _guess(spec: StoreSpec, count: int) -> list[str]:
    async def run() -> list[str]:
        auth = _authorizer(spec)
        said = []
        for n in range(count):
            try:
                await auth.authenticate(Credentials(ADMIN, f"guess{n}"), peer="203.0.113.5")
            except AuthenticationFailed as exc:
                said.append(exc.message)
        await auth.aclose()
        return said

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_failures_in_one_process_lock_out_the_other(
    kind: str, spec_for: Callable[[str], StoreSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_for(kind)
    with mp.get_context("fork").Pool(1) as pool:
        said = pool.apply_async(_guess, (spec, 3)).get(timeout=60)
    assert said == [f"authentication as {ADMIN} failed"] * 3
    derivations = []
    checked = SecretVerifier.check_secret

    def counted(self: SecretVerifier, secret: str) -> bool:
        derivations.append(secret)
        return checked(self, secret)

    monkeypatch.setattr(SecretVerifier, "check_secret", counted)
    auth = _authorizer(spec)
    assert auth.retry_after(ADMIN, "203.0.113.5") == 0  # this process saw nothing itself
    assert await auth.wait_time(ADMIN, "203.0.113.5") > 0
    with pytest.raises(AuthenticationFailed, match="too many failed authentications"):
        await auth.authenticate(Credentials(ADMIN, SECRET), peer="203.0.113.5")
    assert derivations == []  # refused before any derivation
    assert await auth.authenticate(Credentials(ADMIN, SECRET), peer="203.0.113.6") == ADMIN
    assert derivations == [SECRET]
    await auth.aclose()
