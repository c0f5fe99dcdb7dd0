from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from iinode.connectivity.broker import EmbeddedBroker
from support import free_port, require_service


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, int]]:
    """(host, port) of a running MQTT broker: an embedded amqtt one, or Mosquitto."""
    if request.param == "mosquitto":
        yield require_service("mosquitto")
        return
    port = free_port()
    async with EmbeddedBroker("127.0.0.1", port):
        yield "127.0.0.1", port


class Link:
    """A TCP relay on 127.0.0.1 in front of a server, which a test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Stop listening and drop every relayed connection, as a dead broker would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        for t in list(self._pumps):
            t.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)


@pytest.fixture
async def link(broker: tuple[str, int]) -> AsyncIterator[Link]:
    """A cuttable link to the broker."""
    relay = Link(broker)
    await relay.up()
    yield relay
    await relay.down()
