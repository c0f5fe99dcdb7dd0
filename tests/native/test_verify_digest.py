"""A VERIFY_RESPONSE verdict counts only for the question asked (its request digest).

The verdict body is a bare boolean and the parent's signature covers no question: a
node in the middle that holds any HS_SECKEY on the parent could ask the parent, under
the child's request id, about its own identity and hand the signed "valid" back.
The asking node sends RD and takes only a verdict whose digest is that of its request;
so do ``learn_server_key`` (GET_SITEINFO) and the certified ``NativeResolver``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.errors import TransportError
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, SecKeyData, site_for
from iinode.node.seckey_answers import answer_type_for, seckey_answer
from iinode.node.server_keys import load_server_key
from iinode.node.service import Answer
from iinode.node.settings import Role
from iinode.proto import (
    CLIENT_VERSION,
    CLOSED,
    NEED_DATA,
    NODE_VERSION,
    Message,
    OpFlag,
    TcpFramer,
    VerifyRequest,
)
from iinode.resolution.driver import Query
from iinode.resolution.native_client import NativeClient, NativeResolver
from iinode.resolution.native_trust import learn_server_key
from iinode.resolution.native_verify import RemoteSeckeyVerifier
from native.nodes import SECRET, Node, start_node, url

MALLORY = IndexedHandle.parse("300:0.NA/88.118")  # holds SECRET on the parent
VICTIM = IndexedHandle.parse("300:88.118/ALICE")  # whose secret Mallory does not know
NONCE = bytes(range(16))
DIGEST = bytes(range(32))


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Node]:
    records = {
        "88.118/ALICE": [HandleValue(300, "HS_SECKEY", SecKeyData(b"alice-only"))],
        "88.118/DOC": [url(1, "http://example.org/doc")],
    }
    node = start_node(tmp_path, Role.SECONDARY, "88.118", records)
    yield node
    node.server.stop()


class _Route:
    """What ``HandleService.route`` says for a handle the parent holds: its site."""

    def __init__(self, port: int, key: bytes) -> None:
        self.site = site_for("127.0.0.1", handle_port=port, public_key=key)

    async def route(self, handle: HandleName) -> Answer:
        value = HandleValue(1, "HS_SITE", self.site)
        return Answer(ResponseCode.SERVICE_REFERRAL, handle, (value,))


async def _read_request(reader: asyncio.StreamReader) -> Message:
    framer = TcpFramer()
    while True:
        event = framer.next_event()
        if event is NEED_DATA:
            framer.receive_data(await reader.read(65_536))
            continue
        assert event is not CLOSED, "the child closed the connection"
        return Message.from_frame(event)


@asynccontextmanager
async def _in_between(
    target: tuple[str, int], tamper: Callable[[Message, int], Message]
) -> AsyncIterator[tuple[int, list[Message]]]:
    """A TCP proxy before ``target`` that sends it ``tamper(request, n)`` instead of the
    n-th request (under the same request id) and relays its signed answer unchanged."""
    seen: list[Message] = []
    client = NativeClient(timeout=3.0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            seen.append(request)
            forged = replace(tamper(request, len(seen)), received_bytes=b"")
            response = await client.tcp(target, forged)
            writer.write(response.to_wire())
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()
        await client.aclose()


def _ask_about_mallory(request: Message, n: int) -> Message:
    """Mallory's own question with the child's nonce and digest; RD kept, then dropped."""
    body = request.body
    assert isinstance(body, VerifyRequest)
    kind = answer_type_for(CLIENT_VERSION)
    answer = seckey_answer(SECRET.encode(), body.nonce, body.request_digest, kind)
    own = VerifyRequest(str(MALLORY.handle), MALLORY.index, body.nonce, body.request_digest, answer)
    flags = request.flags & ~OpFlag.RD if n % 2 == 0 else request.flags
    return replace(request, body=own, flags=flags)


def _older(request: Message, n: int) -> Message:
    """The same question asked earlier (a recorded answer replayed): RD dropped on the
    first, an earlier ExpirationTime on the second."""
    if n % 2:
        return replace(request, flags=request.flags & ~OpFlag.RD)
    return replace(request, expiration=request.expiration - 60)


async def test_a_verdict_about_another_identity_is_refused(parent: Node) -> None:
    key = load_server_key(parent.settings.data_dir).public_bytes
    async with _in_between(parent.address, _ask_about_mallory) as (port, seen):
        verifier = RemoteSeckeyVerifier(_Route(port, key), timeout=3.0)  # type: ignore[arg-type]
        try:
            wrong = b"\x02" + bytes(20)
            assert await verifier(VICTIM, NONCE, DIGEST, wrong, False) is False
            assert await verifier(VICTIM, NONCE, DIGEST, wrong, False) is False
        finally:
            await verifier.client.aclose()
    assert len(seen) == 2
    assert all(m.flags & OpFlag.CT and m.flags & OpFlag.RD for m in seen)
    # Answered in the version this node suggests, even for a pre-2.1 answer (a Handle.Net
    # server writes a 2.0 answer's request digest in a layout no decoder reads).
    assert all(m.suggests == NODE_VERSION for m in seen)


async def test_a_replayed_site_answer_teaches_no_key(parent: Node) -> None:
    key = load_server_key(parent.settings.data_dir).public_bytes
    assert await learn_server_key(parent.address) == key
    async with _in_between(parent.address, _older) as (port, seen):
        assert await learn_server_key(("127.0.0.1", port)) == b""
        assert await learn_server_key(("127.0.0.1", port)) == b""
    assert len(seen) == 2


async def test_a_replayed_certified_resolution_is_refused(parent: Node) -> None:
    key = load_server_key(parent.settings.data_dir).public_bytes
    handle = HandleName.parse("88.118/DOC")
    honest = NativeResolver([], certified=True)
    try:
        site = site_for("127.0.0.1", handle_port=parent.port, public_key=key)
        answer = await honest.ask(Query(handle, site, 0))
        assert answer.code == ResponseCode.SUCCESS
        assert answer.values
        async with _in_between(parent.address, _older) as (port, seen):
            site = site_for("127.0.0.1", handle_port=port, public_key=key)
            for _ in range(2):
                with pytest.raises(TransportError, match="another request"):
                    await honest.ask(Query(handle, site, 0))
        assert len(seen) == 2
    finally:
        await honest.aclose()


async def test_an_honest_verdict_is_taken(parent: Node) -> None:
    key = load_server_key(parent.settings.data_dir).public_bytes
    verifier = RemoteSeckeyVerifier(_Route(parent.port, key), timeout=3.0)  # type: ignore[arg-type]
    kind = answer_type_for(CLIENT_VERSION)
    right = seckey_answer(SECRET.encode(), NONCE, DIGEST, kind)
    old = seckey_answer(SECRET.encode(), NONCE, DIGEST, answer_type_for((2, 0)))
    try:
        assert await verifier(MALLORY, NONCE, DIGEST, right, False) is True
        assert await verifier(MALLORY, NONCE, DIGEST, old, True) is True
        assert await verifier(MALLORY, NONCE, DIGEST, b"\x02" + bytes(20), False) is False
    finally:
        await verifier.client.aclose()
