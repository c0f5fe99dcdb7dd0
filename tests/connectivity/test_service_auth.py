"""The embedded broker beyond loopback: devices need the password, only the node commands.

A real node (``mqtt_host`` 0.0.0.0 with ``mqtt_password``) runs its embedded
broker; its own connector logs in as the host client, the simulator and a
device log in with the device password.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt
import pytest

from api.node_support import auth_for, running_node
from iinode.connectivity.mqtt import MqttSettings
from iinode.connectivity.service import TelemetryService, TelemetrySettings
from iinode.connectivity.sim_sparkplug import SparkplugSimulator
from iinode.connectivity.sparkplug.session import rebirth_request
from iinode.errors import TransportError
from iinode.node.settings import Role
from iinode.telemetry.registry import MemoryRegistry
from iinode.telemetry.simulator import Factory
from iinode.telemetry.store import StoreSettings
from support import free_port

ENT = "88.118.8"
DEVICE_PW = "dev-pw-4f2a"


async def connects(port: int, username: str | None, password: str | None) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"t-{uuid.uuid4().hex[:8]}",
                                  username=username, password=password, timeout=5):  # fmt: skip
            return True
    except aiomqtt.MqttError:
        return False


def mqtt_client(port: int, name: str, username: str, password: str | None) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, identifier=name, username=username, password=password)


async def settle(sim: SparkplugSimulator, seconds: float = 1.0) -> int:
    """What the simulator has published once ``seconds`` have passed."""
    await asyncio.sleep(seconds)
    return sim.published


async def test_node_beyond_loopback_authenticates_devices_and_itself(tmp_path: Path) -> None:
    port = free_port()
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=port,
                            mqtt_host="0.0.0.0", mqtt_password=DEVICE_PW) as node:  # fmt: skip
        telemetry = node.extensions.telemetry
        # the node's own connector is in: it logged in as the host client
        assert await telemetry.wait_connected(10)
        host_name = telemetry.settings.mqtt_client.username
        assert host_name == "iinode-88_118_8"
        assert telemetry.settings.mqtt_client.password  # made up per start, never configured
        assert "dev-pw" not in repr(telemetry.settings)

        factory = Factory.demo(ENT, 1, seed=2)
        for item in factory.equipment():
            r = await node.http.put(
                f"/telemetry/equipment/{item.id}", json=item.to_json(), auth=auth_for(ENT)
            )
            assert r.status_code == 200, r.text

        for user, password in (("iinode-sim", "guess"), ("iinode-sim", None), (None, None),
                               (host_name, DEVICE_PW)):  # fmt: skip
            with pytest.raises(TransportError, match="cannot connect to the MQTT broker"):
                async with SparkplugSimulator(factory, "127.0.0.1", port, username=user,
                                              password=password):  # fmt: skip
                    pass
        assert not telemetry.live.get(factory.machines[0].spec.id)  # nothing got through

        sent = 11
        async with SparkplugSimulator(
            factory, "127.0.0.1", port, node_id="edge", password=DEVICE_PW
        ) as sim:
            for _ in range(3):
                sent += await sim.step(60)
            assert await telemetry.drained(sent, limit=20)
            # a device with the right password still may not command the edge node
            before = await settle(sim, 0.2)
            cmd = rebirth_request(ENT, "edge", 0)
            device = ("press-01", DEVICE_PW)
            host = (host_name, telemetry.settings.mqtt_client.password)
            async with mqtt_client(port, "press-01", *device) as client:
                await client.publish(cmd.topic, cmd.payload, qos=1)
            assert await settle(sim) == before
            # the node's host client may: the same request brings fresh births
            async with mqtt_client(port, "host-2", *host) as client:
                await client.publish(cmd.topic, cmd.payload, qos=1)
            assert await settle(sim) == before + 2  # NBIRTH + one DBIRTH
        machine = factory.machines[0]
        assert telemetry.store.latest(machine.spec.id)["good_count"][1] == machine.good


async def test_node_on_loopback_asks_devices_for_nothing(tmp_path: Path) -> None:
    port = free_port()
    async with running_node(tmp_path, Role.ENTERPRISE, ENT, mqtt_port=port) as node:
        telemetry = node.extensions.telemetry
        assert await telemetry.wait_connected(10)
        assert telemetry.settings.embedded_password is None
        assert await connects(port, "iinode-sim", None)
        assert await connects(port, None, None)
        # the host client's name stays reserved
        assert not await connects(port, telemetry.settings.mqtt_client.username, None)


async def test_without_a_host_client_the_connector_uses_the_device_password(
    tmp_path: Path,
) -> None:
    port = free_port()
    settings = TelemetrySettings(
        StoreSettings(tmp_path / "ts"), embedded_host="0.0.0.0", embedded_port=port,
        embedded_password=DEVICE_PW, connectors=None,
        mqtt_client=MqttSettings(username="iinode", password=None),
    )  # fmt: skip
    async with TelemetryService(settings, MemoryRegistry()) as service:
        assert await service.wait_connected(10)
        assert not await connects(port, "iinode", "guess")
