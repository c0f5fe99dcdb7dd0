"""Publishes a simulated factory as a Sparkplug B edge node over MQTT.

The enterprise prefix is the Sparkplug group and each machine is a device
named by its identifier's suffix, so the host maps ``spBv1.0/<prefix>/DDATA/
<node>/<suffix>`` back to ``<prefix>/<suffix>``.  Only changed values are sent
after the births; a rebirth request (NCMD) is answered with fresh births.
A broker that asks for credentials (the embedded broker beyond loopback) gets
``username`` and ``password``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import aiomqtt

from iinode.connectivity.sparkplug import EdgeNode, Outgoing
from iinode.errors import TransportError
from iinode.telemetry.simulator import Factory

log = logging.getLogger(__name__)

#: CONNACK codes for refused credentials: MQTT 3.1.1 (4, 5) and 5 (134, 135).
_BAD_CREDENTIALS = frozenset({4, 5, 134, 135})


def _refused(exc: aiomqtt.MqttError) -> bool:
    rc = getattr(exc, "rc", None)
    return isinstance(exc, aiomqtt.MqttCodeError) and getattr(rc, "value", rc) in _BAD_CREDENTIALS


class SparkplugSimulator:
    """Drives ``factory`` and publishes it through an MQTT broker at ``host:port``."""

    def __init__(
        self,
        factory: Factory,
        host: str,
        port: int,
        *,
        node_id: str = "sim",
        qos: int = 1,
        username: str | None = "iinode-sim",
        password: str | None = None,
    ) -> None:
        self.factory = factory
        self.host = host
        self.port = port
        self.edge = EdgeNode(factory.prefix, node_id, qos=qos)
        self.username = username
        self._password = password
        self.published = 0
        self._last: dict[str, dict[str, Any]] = {}
        self._client: aiomqtt.Client | None = None
        self._listener: asyncio.Task[None] | None = None

    def _device(self, equipment: str) -> str:
        return equipment.partition("/")[2]

    async def __aenter__(self) -> SparkplugSimulator:
        will = self.edge.will()
        self._client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=f"sim-{self.edge.group}-{self.edge.node_id}",
            username=self.username,
            password=self._password,
            will=aiomqtt.Will(will.topic, will.payload, will.qos, will.retain),
        )
        try:
            await self._client.__aenter__()
        except aiomqtt.MqttError as exc:
            self._client = None
            why = str(exc).strip()
            if _refused(exc):
                who = "anonymous clients" if self.username is None else f"user {self.username!r}"
                why = f"it refused {who} (wrong or missing password)"
            raise TransportError(
                f"cannot connect to the MQTT broker at {self.host}:{self.port}: {why}"
            ) from None
        try:
            topic = f"spBv1.0/{self.edge.group}/NCMD/{self.edge.node_id}"
            try:
                await self._client.subscribe(topic, qos=1)
            except aiomqtt.MqttError as exc:
                raise self._lost(exc) from None
            self._listener = asyncio.create_task(self._listen(self._client))
            await self._births()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    def _lost(self, exc: aiomqtt.MqttError) -> TransportError:
        return TransportError(f"MQTT broker at {self.host}:{self.port} failed: {str(exc).strip()}")

    async def __aexit__(self, *exc: object) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(aiomqtt.MqttError):  # the connection may be gone already
                await client.__aexit__(None, None, None)

    async def _send(self, out: Outgoing) -> None:
        if self._client is None:
            raise TransportError(f"not connected to the MQTT broker at {self.host}:{self.port}")
        try:
            await self._client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
        except aiomqtt.MqttError as exc:
            raise self._lost(exc) from None
        self.published += 1

    async def _births(self) -> None:
        now_ms = self.factory.time_us // 1000
        await self._send(self.edge.birth({}, now_ms))
        for m in self.factory.machines:
            values = m.values()
            self._last[m.spec.id] = dict(values)
            await self._send(self.edge.device_birth(self._device(m.spec.id), values, now_ms))

    async def _listen(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes):
                    continue
                now_ms = self.factory.time_us // 1000
                for out in self.edge.on_command(message.topic.value, payload, now_ms):
                    await self._send(out)
        except aiomqtt.MqttError as exc:
            log.warning("simulator lost its MQTT connection: %s", exc)

    async def step(self, dt: float) -> int:
        """Advance the factory by ``dt`` simulated seconds and publish what changed."""
        self.factory.step(dt)
        now_ms = self.factory.time_us // 1000
        points = 0
        for m in self.factory.machines:
            values = m.values()
            last = self._last[m.spec.id]
            changed: Mapping[str, Any] = {k: v for k, v in values.items() if last.get(k) != v}
            if changed:
                await self._send(self.edge.data(changed, now_ms, self._device(m.spec.id)))
                last.update(changed)
                points += len(changed)
        return points
