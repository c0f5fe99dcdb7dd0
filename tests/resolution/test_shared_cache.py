"""The shared resolution cache against the real Redis on 127.0.0.1:6379.

Two resolvers with their own in-process caches stand for two worker processes
of one recursive node; they share one Redis.  The nodes they walk are real node
apps (a root ``88`` delegating ``88.1`` to a child), served in process; every
request that reaches them is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from iinode.api.app import create_app
from iinode.errors import ConfigurationError, HandleNotFound
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, Prefix, UrlData
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.node.sites import site_from_url
from iinode.resolution import HttpResolver, Resolution
from iinode.resolution.driver import SHARED_CACHE, run_resolution
from iinode.resolution.shared_cache import (
    MemorySharedCache,
    RedisSharedCache,
    SharedCache,
    TwoLevelCache,
    close_resolution_cache,
    node_namespace,
    redacted,
    resolution_cache_for,
    shared_cache_from_url,
)
from iinode.storage import MemoryStore
from support import free_port, require_service

SECRET = "node-secret"
ROOT, CHILD = "10.0.0.1", "10.0.0.2"


class CountingNodes(httpx.AsyncBaseTransport):
    """Routes each request to the node app of its host and counts it."""

    def __init__(self, apps: dict[str, httpx.ASGITransport]) -> None:
        self.apps = apps
        self.requests: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests[request.url.host] += 1
        return await self.apps[request.url.host].handle_async_request(request)


async def _node(tmp: Path, role: Role, prefix: str) -> HandleService:
    settings = NodeSettings(role=role, data_dir=tmp / prefix, prefix=prefix)
    service = HandleService(settings, MemoryStore())
    await service.initialise(SECRET)
    return service


async def _create(service: HandleService, handle: str, ttl: int = 3600) -> None:
    identity = service.settings.admin_identity
    assert identity is not None
    value = HandleValue(1, "URL", UrlData(f"http://f.cn/{handle}"), ttl=ttl)
    await service.create(HandleName.parse(handle), [value], IndexedHandle.parse(identity))


@dataclass
class Network:
    nodes: CountingNodes
    client: httpx.AsyncClient
    redis_url: str
    namespace: str
    workers: list[HttpResolver]

    def worker(self, shared: SharedCache | None = None) -> HttpResolver:
        """One worker process's resolver: its own in-process cache, the shared level behind."""
        shared = shared or RedisSharedCache(self.redis_url, self.namespace)
        cache = TwoLevelCache(shared, negative_ttl=30)
        root = site_from_url(f"http://{ROOT}:80")
        worker = HttpResolver([root], cache=cache, client=self.client)
        self.workers.append(worker)
        return worker


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    host, port = require_service("redis")
    root = await _node(tmp_path, Role.TOP, "88")
    child = await _node(tmp_path, Role.SECONDARY, "88.1")
    identity = root.settings.admin_identity
    assert identity is not None
    delegation = [HandleValue(1, "HS_SITE", site_from_url(f"http://{CHILD}:80"), ttl=600)]
    await root.create(Prefix("88.1").na_handle, delegation, IndexedHandle.parse(identity))
    await _create(child, "88.1/X")
    await _create(child, "88.1/Y")
    await _create(child, "88.1/SHORT", ttl=1)
    nodes = CountingNodes(
        {ROOT: httpx.ASGITransport(create_app(root)), CHILD: httpx.ASGITransport(create_app(child))}
    )
    namespace = f"test-{uuid.uuid4().hex}"
    url = f"redis://{host}:{port}/0"
    async with httpx.AsyncClient(transport=nodes) as client:
        net = Network(nodes, client, url, namespace, [])
        try:
            yield net
        finally:
            for worker in net.workers:
                await close_resolution_cache(worker.cache)
    redis = aioredis.Redis.from_url(url)
    keys = [k async for k in redis.scan_iter(match=f"iinode:{namespace}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_a_second_worker_answers_from_the_shared_cache(network: Network) -> None:
    first, second = network.worker(), network.worker()
    resolved = await first.resolve(HandleName.parse("88.1/X"))
    assert resolved.values[0].data.to_wire() == b"http://f.cn/88.1/X"
    assert network.nodes.requests == {ROOT: 1, CHILD: 1}

    again = await second.resolve(HandleName.parse("88.1/X"))
    assert [(v.index, v.type, v.data) for v in again.values] == [
        (v.index, v.type, v.data) for v in resolved.values
    ]
    assert all(3598 <= v.ttl <= 3600 for v in again.values)  # the time left
    assert [h.server for h in again.chain] == [SHARED_CACHE]
    assert network.nodes.requests == {ROOT: 1, CHILD: 1}  # no network traffic

    # Another handle below 88.1: the shared delegation skips the root.
    other = await second.resolve(HandleName.parse("88.1/Y"))
    assert other.values[0].data.to_wire() == b"http://f.cn/88.1/Y"
    assert network.nodes.requests == {ROOT: 1, CHILD: 2}
    assert other.chain[0].server == SHARED_CACHE
    # ... and the second worker's own cache now holds it (no Redis round trip).
    shared = second.cache.shared if isinstance(second.cache, TwoLevelCache) else None
    assert shared is not None
    hits = shared.hits
    await second.resolve(HandleName.parse("88.1/Y"))
    assert shared.hits == hits
    assert network.nodes.requests == {ROOT: 1, CHILD: 2}


async def test_values_are_stored_in_wire_form_with_the_record_ttl(network: Network) -> None:
    worker = network.worker()
    await worker.resolve(HandleName.parse("88.1/X"))
    redis = aioredis.Redis.from_url(network.redis_url)
    answer_key = f"iinode:{network.namespace}:a:88.1/X"
    sites_key = f"iinode:{network.namespace}:s:88.1"
    assert 3590_000 < await redis.pttl(answer_key) <= 3600_000
    assert 590_000 < await redis.pttl(sites_key) <= 600_000
    raw = await redis.get(answer_key)
    assert raw is not None
    assert raw[0] == 1
    assert b"http://f.cn/88.1/X" in raw
    await redis.aclose()


async def test_an_answer_expires_with_its_ttl(network: Network) -> None:
    first, second, third = network.worker(), network.worker(), network.worker()
    handle = HandleName.parse("88.1/SHORT")
    await first.resolve(handle)
    assert network.nodes.requests[CHILD] == 1
    shared = await second.resolve(handle)
    assert shared.chain[0].server == SHARED_CACHE
    assert shared.values[0].ttl == 1  # what is left, never more than the record said
    await asyncio.sleep(1.2)
    fresh = await third.resolve(handle)
    assert fresh.chain[-1].server != SHARED_CACHE
    assert network.nodes.requests[CHILD] == 2  # asked again once expired


async def test_not_found_is_shared_for_the_negative_ttl(network: Network) -> None:
    first, second = network.worker(), network.worker()
    handle = HandleName.parse("88.1/NOPE")
    with pytest.raises(HandleNotFound):
        await first.resolve(handle)
    before = dict(network.nodes.requests)
    with pytest.raises(HandleNotFound, match="cached"):
        await second.resolve(handle)
    assert network.nodes.requests == before
    redis = aioredis.Redis.from_url(network.redis_url)
    assert 29_000 < await redis.pttl(f"iinode:{network.namespace}:a:88.1/NOPE") <= 30_000
    await redis.aclose()


async def test_site_walk_uses_the_shared_site_of_the_prefix(network: Network) -> None:
    first, second = network.worker(), network.worker()

    async def walk(worker: HttpResolver, handle: str) -> None:
        resolution = Resolution(
            HandleName.parse(handle), worker.roots, worker.cache, site_walk=True
        )
        resolved = await run_resolution(resolution, worker.ask)
        assert resolved.values[0].data.to_wire() == f"http://f.cn/{handle}".encode()

    await walk(first, "88.1/X")
    assert network.nodes.requests == {ROOT: 1, CHILD: 1}  # 0.NA/88.1 at the root, then 88.1/X
    await walk(second, "88.1/Y")
    assert network.nodes.requests == {ROOT: 1, CHILD: 2}


async def test_namespaces_do_not_share(network: Network) -> None:
    mine = network.worker()
    theirs = network.worker(RedisSharedCache(network.redis_url, network.namespace + "-other"))
    await mine.resolve(HandleName.parse("88.1/X"))
    resolved = await theirs.resolve(HandleName.parse("88.1/X"))
    assert SHARED_CACHE not in [h.server for h in resolved.chain]
    assert network.nodes.requests == {ROOT: 2, CHILD: 2}
    redis = aioredis.Redis.from_url(network.redis_url)
    other = [k async for k in redis.scan_iter(match=f"iinode:{network.namespace}-other:*")]
    await redis.delete(*other)
    await redis.aclose()


async def test_a_garbled_shared_value_is_a_miss_and_an_error(network: Network) -> None:
    redis = aioredis.Redis.from_url(network.redis_url)
    await redis.set(f"iinode:{network.namespace}:a:88.1/X", b"\x01garbage", px=60_000)
    await redis.set(
        f"iinode:{network.namespace}:s:88",
        struct.pack(">Bd", 2, time.time() + 60) + b"\x00\x00\x00\x05\x01",
        px=60_000,
    )
    await redis.aclose()
    worker = network.worker()
    resolved = await worker.resolve(HandleName.parse("88.1/X"))
    assert resolved.values[0].data.to_wire() == b"http://f.cn/88.1/X"
    assert network.nodes.requests == {ROOT: 1, CHILD: 1}
    assert isinstance(worker.cache, TwoLevelCache)
    assert worker.cache.shared.errors >= 2


async def test_an_unreachable_redis_degrades_to_the_network(network: Network) -> None:
    shared = RedisSharedCache(f"redis://127.0.0.1:{free_port()}/0", network.namespace)
    worker = network.worker(shared)
    resolved = await worker.resolve(HandleName.parse("88.1/X"))
    assert resolved.values[0].data.to_wire() == b"http://f.cn/88.1/X"
    assert shared.errors == 1  # one failure, then it waits
    assert shared.bypassed > 0
    # The in-process level still works.
    await worker.resolve(HandleName.parse("88.1/X"))
    assert network.nodes.requests == {ROOT: 1, CHILD: 1}


@contextlib.asynccontextmanager
async def _proxy(
    host: str, port: int
) -> AsyncIterator[tuple[int, asyncio.Server, list[asyncio.StreamWriter]]]:
    """A TCP relay to Redis that can be cut (the Redis "goes away")."""
    writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        writers.extend([writer, up_writer])
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], server, writers
    finally:
        server.close()
        for w in writers:
            w.close()


async def test_a_redis_that_goes_away_mid_run_degrades_with_a_counter(network: Network) -> None:
    host, port = require_service("redis")
    async with _proxy(host, port) as (relay_port, server, writers):
        shared = RedisSharedCache(
            f"redis://127.0.0.1:{relay_port}/0", network.namespace, retry_after=0.2
        )
        first = network.worker(shared)
        await first.resolve(HandleName.parse("88.1/X"))
        assert shared.stores == 2
        assert shared.errors == 0
        server.close()
        for w in writers:
            w.close()
        await asyncio.sleep(0.05)
        resolved = await first.resolve(HandleName.parse("88.1/Y"))
        assert resolved.values[0].data.to_wire() == b"http://f.cn/88.1/Y"
        assert shared.errors >= 1
        # A worker on the real Redis still sees what was shared before the cut.
        second = network.worker()
        again = await second.resolve(HandleName.parse("88.1/X"))
        assert again.chain[0].server == SHARED_CACHE


async def test_memory_backend_and_settings() -> None:
    with pytest.raises(ConfigurationError):
        MemorySharedCache("a:b")
    with pytest.raises(ConfigurationError):
        shared_cache_from_url("http://127.0.0.1:6379", "n")
    assert shared_cache_from_url("", "n") is None
    settings = NodeSettings(
        role=Role.RECURSIVE, data_dir=Path("."), name="edge:1", parent_url=f"http://{ROOT}:80"
    )
    assert node_namespace(settings) == "edge%3A1"
    assert not isinstance(resolution_cache_for(settings), TwoLevelCache)
    layered = resolution_cache_for(
        NodeSettings(
            role=Role.RECURSIVE,
            data_dir=Path("."),
            parent_url=f"http://{ROOT}:80",
            cache_url="redis://127.0.0.1:6379/0",
        )
    )
    assert isinstance(layered, TwoLevelCache)
    assert isinstance(layered.shared, RedisSharedCache)
    await layered.aclose()


def test_a_password_in_cache_url_never_reaches_messages() -> None:
    assert redacted("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigurationError) as caught:
        shared_cache_from_url("http://user:s3cret@127.0.0.1/", "n")
    assert "s3cret" not in str(caught.value)
