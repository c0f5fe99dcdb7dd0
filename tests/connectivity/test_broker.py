"""Who may use the embedded broker, and who may send Sparkplug commands through it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import pytest

from iinode.connectivity.broker import EmbeddedBroker, is_command
from iinode.connectivity.sparkplug import HostApplication
from iinode.connectivity.sparkplug.host import HostSettings
from iinode.errors import ConfigurationError
from iinode.node.settings import NodeSettings, Role
from support import free_port

CMD = "spBv1.0/88.1/NCMD/edge1"


def test_command_topics() -> None:
    assert is_command(CMD)
    assert is_command("spBv1.0/88.1/DCMD/edge1/PRESS-01")
    assert is_command("spBv1.0/STATE/iinode")
    assert not is_command("spBv1.0/88.1/NDATA/edge1")
    assert not is_command("iinode/v1/88.1/NCMD")


async def test_broker_beyond_loopback_needs_a_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="mqtt_password"):
        EmbeddedBroker("0.0.0.0", free_port())
    EmbeddedBroker("0.0.0.0", free_port(), password="s3cret")  # constructed, not started
    with pytest.raises(ConfigurationError, match="mqtt_password"):
        NodeSettings(Role.ENTERPRISE, tmp_path, prefix="88.1", mqtt_host="0.0.0.0")
    node = NodeSettings(Role.ENTERPRISE, tmp_path, prefix="88.1")
    assert node.mqtt_host == "127.0.0.1"


async def connects(port: int, username: str | None, password: str | None) -> bool:
    try:
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier=f"t-{uuid.uuid4().hex[:8]}", username=username,
            password=password, timeout=5,
        ):  # fmt: skip
            return True
    except aiomqtt.MqttError:
        return False


async def test_password_and_reserved_host_name() -> None:
    port = free_port()
    async with EmbeddedBroker(
        "127.0.0.1", port, password="dev-pw", host_username="iinode-host", host_password="host-pw"
    ):
        assert await connects(port, "press-01", "dev-pw")
        assert not await connects(port, None, None)
        assert not await connects(port, "press-01", "guess")
        assert not await connects(port, "iinode-host", "dev-pw")  # the host name is reserved
        assert await connects(port, "iinode-host", "host-pw")


async def received(port: int, topic: str, senders: list[tuple[str | None, str | None]]) -> int:
    """How many of one message per sender reach a subscriber of ``topic``."""
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="watcher", username="iinode-host", password="host-pw"
    ) as watcher:
        await watcher.subscribe(topic, qos=1)
        for username, password in senders:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier=f"s-{uuid.uuid4().hex[:8]}", username=username,
                password=password,
            ) as sender:  # fmt: skip
                await sender.publish(topic, b"x", qos=1)
        got = 0
        try:
            async with asyncio.timeout(1.0):
                async for _ in watcher.messages:
                    got += 1
        except TimeoutError:
            pass
        return got


async def test_only_the_host_client_may_publish_commands() -> None:
    port = free_port()
    async with EmbeddedBroker(
        "127.0.0.1", port, password="dev-pw", host_username="iinode-host", host_password="host-pw"
    ):
        device = ("press-01", "dev-pw")
        host = ("iinode-host", "host-pw")
        assert await received(port, CMD, [device]) == 0
        assert await received(port, "spBv1.0/STATE/iinode-host", [device]) == 0
        assert await received(port, CMD, [host]) == 1
        assert await received(port, "spBv1.0/88.1/NDATA/edge1", [device, host]) == 2


async def test_without_a_named_host_local_clients_stand_in() -> None:
    port = free_port()
    async with EmbeddedBroker("127.0.0.1", port):
        assert await received(port, CMD, [(None, None)]) == 1


def test_host_application_tracks_a_bounded_number_of_edge_nodes() -> None:
    from iinode.connectivity.sparkplug import EdgeNode

    host = HostApplication(settings=HostSettings(max_nodes=3))
    edges = [EdgeNode("88.1", f"edge{i}") for i in range(5)]
    for edge in edges[:3]:
        out = edge.birth({"x": 1}, 0)
        assert not host.receive(out.topic, out.payload, 0).errors
    out = edges[3].birth({"x": 1}, 0)
    refused = host.receive(out.topic, out.payload, 0)
    assert refused.errors
    assert "edge nodes are online" in refused.errors[0]
    assert not refused.readings
    assert host.nodes_refused == 1
    assert host.tracked_nodes == 3
    # once one goes offline its state makes room for a new node
    death = edges[0].will()
    host.receive(death.topic, death.payload, 0)
    assert host.receive(out.topic, out.payload, 0).readings
    assert host.nodes_evicted == 1
    assert host.tracked_nodes == 3
    assert host.node_online("88.1", "edge3")
    assert not host.node_online("88.1", "edge0")
    # data naming random edge nodes cannot grow the map either
    for i in range(100):
        junk = EdgeNode("88.1", f"junk{i}")
        junk.birth({"x": 1}, 0)  # never sent: the host sees data from unknown nodes
        data = junk.data({"x": 1}, 0)
        host.receive(data.topic, data.payload, 0)
    assert host.tracked_nodes <= 3
