"""The embedded MQTT broker (amqtt), used when no external broker is configured.

Who may connect and what they may do:

* Bound to the loopback interface (the default), every local client is let in
  (on the node's own machine the operating system is the boundary).  Bound to
  any other address the broker will not start without a ``password``; every
  client must then give a user name and that password.
* ``host_username``/``host_password`` name the node's own Sparkplug host
  client; that user name is reserved (its password is always checked).
* Only the host client may publish Sparkplug commands and host state
  (``spBv1.0/<group>/NCMD/…``, ``…/DCMD/…``, ``spBv1.0/STATE/…``): no
  device on the network can command another.  When no host client is named, a
  client connected over the loopback interface stands in for it.

Every message a client published (and was acknowledged for) before it
disconnects reaches the subscribers (``broker_delivery``).

A client that gives a user name gets a persistent session: amqtt keeps QoS 1/2
messages for disconnected clients only when they are not anonymous, so clients
that need no loss across reconnects send a name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from iinode.connectivity.broker_delivery import broker_class
from iinode.errors import ConfigurationError, TransportError
from iinode.node.settings import is_loopback

log = logging.getLogger(__name__)

_COMMAND_KINDS = ("NCMD", "DCMD")


def is_command(topic: str) -> bool:
    """Sparkplug topics only the host application may publish to."""
    parts = topic.split("/")
    if len(parts) < 2 or parts[0] != "spBv1.0":
        return False
    return parts[1] == "STATE" or (len(parts) >= 4 and parts[2] in _COMMAND_KINDS)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class NodeAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Checks clients as the module docstring says."""

    @dataclass
    class Config:
        password: str | None = None
        host_username: str | None = None
        host_password: str | None = None

    async def authenticate(self, *, session: Session) -> bool:
        c = self.config
        session.is_anonymous = not session.username
        if c.host_username is not None and session.username == c.host_username:
            ok = c.host_password is not None and _same(session.password, c.host_password)
        elif c.password is not None:
            ok = bool(session.username) and _same(session.password, c.password)
        else:
            ok = True
        if not ok:
            log.warning("embedded MQTT broker refused %r from %s (bad user name or password)",
                        session.username, session.remote_address)  # fmt: skip
        return ok


class CommandAclPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """Lets only the node's host client publish Sparkplug commands and host state."""

    @dataclass
    class Config:
        host_username: str | None = None

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if action is not Action.PUBLISH or topic is None or not is_command(topic):
            return True
        if session is None:
            return False
        host = self.config.host_username
        if host is not None:
            allowed = bool(session.username == host)
        else:
            allowed = is_loopback(session.remote_address or "")
        if not allowed:
            log.warning("embedded MQTT broker: %r may not publish to %s",
                        session.username or session.client_id, topic)  # fmt: skip
        return allowed


class EmbeddedBroker:
    """An MQTT 3.1.1 broker inside this process, listening on ``host:port``.

    Use ``async with EmbeddedBroker(port=...)``.  See the module docstring for
    ``password``, ``host_username`` and ``host_password``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        password: str | None = None,
        host_username: str | None = None,
        host_password: str | None = None,
    ) -> None:
        if not is_loopback(host) and not password:
            raise ConfigurationError(
                f"the embedded MQTT broker on {host} would be reachable from the network: "
                "set mqtt_password (IINODE_MQTT_PASSWORD), or bind it to 127.0.0.1"
            )
        if (host_username is None) != (host_password is None):
            raise ConfigurationError("host_username and host_password go together")
        self.host = host
        self.port = port
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                f"{__name__}.NodeAuthPlugin": {
                    "password": password,
                    "host_username": host_username,
                    "host_password": host_password,
                },
                f"{__name__}.CommandAclPlugin": {"host_username": host_username},
            },
        }
        self._broker = broker_class()(config)
        #: start and stop in turn: a stop waits for a start under way.
        self._turn = asyncio.Lock()
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)

    async def start(self) -> None:
        async with self._turn:
            # Not cancelled half-way: amqtt would stay "starting" (its shutdown refuses
            # that), and asyncio can leave a listening socket behind when a cancel
            # lands inside create_server.  A start told to stop finishes, then undoes.
            starting = asyncio.ensure_future(self._broker.start())
            try:
                await asyncio.shield(starting)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await starting
                await self._shut_down()
                raise
            except Exception as exc:
                raise TransportError(
                    f"embedded MQTT broker cannot listen on {self.host}:{self.port}: {exc}"
                ) from exc

    async def stop(self) -> None:
        """Shut the broker down (after a start under way has finished); a broker that
        never started has nothing to shut."""
        async with self._turn:
            await self._shut_down()

    async def _shut_down(self) -> None:
        if self._broker.transitions.state == "started":
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
