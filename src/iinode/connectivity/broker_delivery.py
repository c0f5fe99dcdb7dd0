"""amqtt's broker, delivering everything a client published before it disconnected, and
every message while clients subscribe.

amqtt acknowledges a QoS 1/2 PUBLISH when its protocol handler has queued the
message for the broker, and the broker's per-client loop takes the queue one
message at a time.  When the client disconnects, that loop stops at the
disconnect: the messages still queued, already acknowledged to the publisher,
are dropped.  An edge node that publishes a burst with several messages in
flight and disconnects lost about half of a 50-message burst this way.

:class:`DeliveringBroker` runs its own per-client loop over the same handler
calls: on a disconnect it first delivers the message being taken, then every
message still queued, in order, and only then ends the session (so a will
message comes after them).

amqtt also walks its table of subscriptions with awaits inside the walk (each
target's topic check, retained messages for a new session); a client
subscribing to a new filter meanwhile changed the table under the walk, which
raised and lost that message for every remaining subscriber.  The broker's
table here hands out a copy of its keys and items to walk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from amqtt.broker import Broker

#: What the loop below calls of amqtt's broker and protocol handler.
_BROKER_CALLS = (
    "_client_message_loop",
    "_handle_disconnect",
    "_handle_subscription",
    "_handle_unsubscription",
    "_handle_message_delivery",
)


class _WalkedCopy(dict[str, Any]):
    """A dict whose keys and items are walked as a copy taken when the walk starts."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())


class DeliveringBroker(Broker):  # type: ignore[misc]
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(getattr(self, "_subscriptions", None), dict):
            self._subscriptions = _WalkedCopy(self._subscriptions)  # type: ignore[has-type]

    async def _client_message_loop(self, session: Any, handler: Any) -> None:
        disconnect = asyncio.ensure_future(handler.wait_disconnect())
        subscribe = asyncio.ensure_future(handler.get_next_pending_subscription())
        unsubscribe = asyncio.ensure_future(handler.get_next_pending_unsubscription())
        deliver: asyncio.Future[Any] | None = asyncio.ensure_future(
            handler.mqtt_deliver_next_message()
        )
        try:
            while True:
                waiting = [disconnect, subscribe, unsubscribe]
                if deliver is not None:
                    waiting.append(deliver)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if subscribe in done:
                    await self._handle_subscription(session, handler, subscribe)
                    subscribe = asyncio.ensure_future(handler.get_next_pending_subscription())
                if unsubscribe in done:
                    await self._handle_unsubscription(session, handler, unsubscribe)
                    unsubscribe = asyncio.ensure_future(handler.get_next_pending_unsubscription())
                if deliver is not None and deliver.done():
                    if not await self._handle_message_delivery(session, handler, deliver):
                        break  # a protocol violation: amqtt closes the connection
                    deliver = None
                if disconnect in done:
                    if deliver is not None:
                        # Stops waiting (the handler answers None to a cancel), or has
                        # just taken a message, which then goes first.
                        deliver.cancel()
                        await asyncio.gather(deliver, return_exceptions=True)
                        if not deliver.cancelled() and deliver.result() is not None:
                            await self._handle_message_delivery(session, handler, deliver)
                        deliver = None
                    await self._deliver_queued(session, handler)
                    await self._handle_disconnect(session, handler, disconnect)
                    break
                if deliver is None:
                    deliver = asyncio.ensure_future(handler.mqtt_deliver_next_message())
        except asyncio.CancelledError:
            pass  # the broker is shutting down: as amqtt's own loop, end quietly
        finally:
            left = [f for f in (disconnect, subscribe, unsubscribe, deliver) if f is not None]
            for future in left:
                future.cancel()
            await asyncio.gather(*left, return_exceptions=True)

    async def _deliver_queued(self, session: Any, handler: Any) -> None:
        """Deliver, in order, the messages the client's handler queued (and acknowledged)."""
        queue: asyncio.Queue[Any] = session.delivered_message_queue
        loop = asyncio.get_running_loop()
        while not queue.empty():
            taken = loop.create_future()
            taken.set_result(queue.get_nowait())
            if not await self._handle_message_delivery(session, handler, taken):
                return


def broker_class() -> type[Broker]:
    """:class:`DeliveringBroker`, or amqtt's own broker if this amqtt lacks a call the
    loop makes (a later amqtt may change them; it then keeps its own behaviour)."""
    if all(hasattr(Broker, name) for name in _BROKER_CALLS):
        return DeliveringBroker
    return Broker  # type: ignore[no-any-return]


__all__ = ["DeliveringBroker", "broker_class"]
