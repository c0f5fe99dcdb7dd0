"""``/metrics`` shows the node-wide counters of the native workers, read at scrape time."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from api.node_support import Node, running_node
from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import HandleName, IndexedHandle
from iinode.monitoring.metrics import NATIVE_COUNTER_HELP, NodeMetrics
from iinode.node.settings import NodeSettings, Role
from iinode.proto import Message, OpCode, ResolutionRequest
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_client import NativeClient, next_request_id
from iinode.resolution.native_counters import COUNTER_NAMES
from iinode.resolution.native_server import start_native_workers
from native.nodes import seed, url
from support import free_port

ENT = "88.118.8"


async def scrape(node: Node) -> dict[str, Metric]:
    response = await node.http.get("/metrics")
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def total(families: dict[str, Metric], name: str) -> float:
    (sample,) = families[f"iinode_native_{name}"].samples
    assert sample.name == f"iinode_native_{name}_total"
    return sample.value


async def scrape_until(node: Node, wanted: dict[str, float]) -> dict[str, Metric]:
    """Scrape until every counter in ``wanted`` reached its value (workers publish every 0.25 s)."""
    deadline = time.monotonic() + 10
    while True:
        families = await scrape(node)
        if all(total(families, k) >= v for k, v in wanted.items()):
            return families
        assert time.monotonic() < deadline, {k: total(families, k) for k in wanted}
        await asyncio.sleep(0.1)


async def native_traffic(address: tuple[str, int]) -> None:
    """5 resolutions, 6 messages that do not parse, 1 refused challenge answer."""
    client = NativeClient(timeout=2.0)
    try:
        for _ in range(5):
            request = Message(
                OpCode.RESOLUTION, ResolutionRequest(f"{ENT}/X"), request_id=next_request_id()
            )
            response = await client.request(address, request)
            assert response.response_code == ResponseCode.SUCCESS
    finally:
        await client.aclose()
    for n in range(4):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(os.urandom(8 + n), address)
    for _ in range(2):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"\x02\x01" + b"\xff" * 40)
        await reader.read(1024)
        writer.close()
        await writer.wait_closed()
    auth = SecretKeyAuth(IndexedHandle.parse(f"300:0.NA/{ENT}"), "wrong")
    async with NativeAdminClient(*address, auth) as admin:
        with pytest.raises(HandleError):
            await admin.create(HandleName.parse(f"{ENT}/N"), [url(1, "http://n/")])


async def test_metrics_show_the_native_workers_counters(tmp_path: Path) -> None:
    port = free_port()
    native = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path / ENT, prefix=ENT, handle_port=port
    )
    native.data_dir.mkdir()
    await asyncio.to_thread(seed, native, {f"{ENT}/X": [url(1, "http://x.cn/")]})
    async with running_node(
        tmp_path, Role.ENTERPRISE, ENT, telemetry=False, handle_port=port
    ) as node:
        with start_native_workers(native, 1, host="127.0.0.1"):
            families = await scrape(node)
            for name in COUNTER_NAMES:  # every counter, documented, before any traffic
                family = families[f"iinode_native_{name}"]
                assert family.type == "counter"
                assert family.documentation == NATIVE_COUNTER_HELP[name]
                assert total(families, name) == 0
            text = (await node.http.get("/metrics")).text
            assert "# HELP iinode_native_requests_total " in text
            assert "# TYPE iinode_native_requests_total counter" in text

            await native_traffic(("127.0.0.1", port))
            families = await scrape_until(node, {"protocol_errors": 6, "auth_failures": 1})
            assert total(families, "protocol_errors") == 6
            assert total(families, "auth_failures") == 1
            # The same resolution asked again is answered on the fast path (not a "request").
            assert total(families, "fast_hits") >= 1
            assert total(families, "requests") + total(families, "fast_hits") >= 5 + 1
            assert total(families, "internal_errors") == 0
        # The workers are gone; their counts stay (Prometheus counters never go down).
        after = await scrape(node)
        assert total(after, "protocol_errors") == 6
        assert total(after, "requests") >= total(families, "requests")


async def test_a_node_without_a_handle_port_has_no_native_counters(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, telemetry=False) as node:
        families = await scrape(node)
        assert "iinode_store_handles" in families
        assert not [name for name in families if name.startswith("iinode_native_")]


def test_counter_group_reads_at_every_scrape() -> None:
    metrics = NodeMetrics()
    totals = {"requests": 3.0, "novel": 1.0}
    metrics.add_counters("iinode_native", lambda: totals, NATIVE_COUNTER_HELP)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert total(families, "requests") == 3
    assert total(families, "dropped") == 0  # documented, not read: 0
    assert families["iinode_native_novel"].documentation == "iinode_native counter novel."
    totals["requests"] = 8.0
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    assert total(families, "requests") == 8
