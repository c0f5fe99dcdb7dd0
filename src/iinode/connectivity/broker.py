"""The embedded MQTT broker (amqtt), used when no external broker is configured."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from iinode.errors import TransportError


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Accepts every client; one that gives a user name gets a persistent session.

    amqtt keeps QoS 1/2 messages for disconnected clients only when they are
    not anonymous, so clients that need no loss across reconnects send a name.
    """

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Session) -> bool:
        session.is_anonymous = not session.username
        return True


class EmbeddedBroker:
    """An MQTT 3.1.1 broker inside this process, listening on ``host:port``.

    Use ``async with EmbeddedBroker(port=...)``.  Every client is let in (see
    :class:`OpenAuthPlugin`), so bind it to the loopback interface unless the
    network is trusted.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {f"{__name__}.OpenAuthPlugin": {}},
        }
        self._broker = Broker(config)
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)

    async def start(self) -> None:
        try:
            await self._broker.start()
        except Exception as exc:
            raise TransportError(
                f"embedded MQTT broker cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc

    async def stop(self) -> None:
        await self._broker.shutdown()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
