"""The embedded broker stopped at any point of its start-up (no error, no port left held),
and what a client published before disconnecting still delivered."""

from __future__ import annotations

import asyncio
import socket

from iinode.connectivity.broker import EmbeddedBroker
from support import free_port


def bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_a_start_cancelled_at_any_step_stops_cleanly() -> None:
    # amqtt's shutdown refuses a broker still "starting" (MachineError), which a
    # signal during start-up left behind.
    cancelled = 0
    for steps in range(40):
        port = free_port()
        broker = EmbeddedBroker(port=port)
        start = asyncio.create_task(broker.start())
        for _ in range(steps):
            await asyncio.sleep(0)
        start.cancel()
        try:
            await start
        except asyncio.CancelledError:
            cancelled += 1
        await broker.stop()
        assert bindable(port), f"port held after a start cancelled after {steps} steps"
    assert cancelled > 0  # the loop did stop some starts half-way


async def test_a_stop_during_start_waits_for_it_and_shuts_down() -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port)
    start = asyncio.create_task(broker.start())
    await asyncio.sleep(0)
    await broker.stop()  # while the start is under way
    await start
    assert bindable(port)


async def test_every_acknowledged_message_reaches_subscribers_after_a_disconnect() -> None:
    # A burst with many QoS 1 messages in flight, then a disconnect: amqtt's own loop
    # dropped the acknowledged messages still queued (28 of 50 arrived).
    import aiomqtt

    port = free_port()
    count = 300
    received: list[int] = []
    async with (
        EmbeddedBroker(port=port),
        aiomqtt.Client("127.0.0.1", port, identifier="sub") as sub,
    ):
        await sub.subscribe("plant/#", qos=1)
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="pub", max_inflight_messages=200
        ) as pub:
            await asyncio.gather(
                *(pub.publish("plant/m", str(n).encode(), qos=1) for n in range(count))
            )

        async def take() -> None:
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                received.append(int(message.payload))
                if len(received) == count:
                    return

        await asyncio.wait_for(take(), 20)
    assert received == list(range(count))  # all of them, in the order published


async def test_the_subscription_table_is_walked_as_a_copy() -> None:
    # amqtt walks its subscription table with awaits inside the walk (a target's topic
    # check): a filter added or removed meanwhile (a client subscribing or leaving)
    # raised "dictionary changed size during iteration" in the broadcast task, and that
    # message was lost for the subscribers not yet reached.
    from iinode.connectivity.broker_delivery import DeliveringBroker

    broker = EmbeddedBroker(port=free_port())._broker  # constructed, not started
    assert isinstance(broker, DeliveringBroker)
    table = broker._subscriptions
    table["a/#"] = []
    table["b/#"] = []
    walked = []
    for name, _subscriptions in table.items():
        walked.append(name)
        table[f"new/{name}"] = []  # a client subscribes during the walk
        table.pop("b/#", None)  # another leaves
    assert walked == ["a/#", "b/#"]
    for name in table:
        del table[name]
    assert table == {}
