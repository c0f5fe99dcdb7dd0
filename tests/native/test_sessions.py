"""Native sessions: the MAC is required to act in (or end) a session, and replays stay refused.

The session id travels in clear, so a request that names a session without its
MAC must not end it or act as its identity; and a MAC'd request must not be
accepted twice, however many requests the session made in between.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from iinode.codes import ResponseCode
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, UrlData
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import (
    HandleBody,
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    ResolutionRequest,
    TcpFramer,
)
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_client import next_request_id, read_response
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_sessions import REPLAY_WINDOW, Session, SessionTable
from iinode.storage import MemoryStore
from native.nodes import SECRET, Node

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")


def url(index: int, text: str) -> HandleValue:
    return HandleValue(index, "URL", UrlData(text))


def session() -> Session:
    return Session(7, ADMIN, b"k" * 32, expires=1e9)


def test_request_ids_are_accepted_once_and_the_window_slides() -> None:
    s = session()
    assert all(s.first_use(n) for n in range(100, 200))
    assert not s.first_use(150)  # a replay within the window
    assert s.first_use(99)  # late but within the window: accepted once
    assert not s.first_use(99)
    assert s.first_use(200 + REPLAY_WINDOW)  # a jump moves the low-water mark
    assert s.low_water == 200
    assert not s.first_use(200)  # at the low-water mark: refused, never seen or not
    assert not s.first_use(150)
    assert s.first_use(201)


def test_no_old_request_replays_after_a_bulk_load_and_memory_stays_bounded() -> None:
    s = session()
    assert s.first_use(10)
    for n in range(11, 11 + 3 * REPLAY_WINDOW):
        assert s.first_use(n)
    assert not s.first_use(10)
    assert len(s.seen) <= 2 * REPLAY_WINDOW + 1


def test_an_empty_session_table_is_kept(tmp_path: Path) -> None:
    table = SessionTable()
    assert len(table) == 0
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    service = HandleService(settings, MemoryStore())
    handler = NativeHandler(service, service._own_site(service.owned), sessions=table)  # type: ignore[arg-type]
    assert handler.sessions is table


async def raw_exchange(node: Node, *messages: Message) -> list[Message]:
    """Send each message on one fresh connection (no session state of ours) and read the answers."""
    reader, writer = await asyncio.open_connection(*node.address)
    framer = TcpFramer()
    answers = []
    try:
        for message in messages:
            writer.write(message.to_wire())
            await writer.drain()
            answers.append(
                await asyncio.wait_for(read_response(reader, framer, message.request_id), 5)
            )
    finally:
        writer.close()
    return answers


async def test_terminate_and_admin_requests_need_the_session_mac(enterprise: Node) -> None:
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        session_id = await admin.open_session()
        await admin.create(HandleName.parse("88.118.8/KEEP"), [url(1, "http://k/")])
        failures = enterprise.server.counters.auth_failures
        # Someone who saw the session id (it travels in clear) but has no key:
        terminate = Message(
            OpCode.SESSION_TERMINATE, OptionalHandleBody(), flags=OpFlag.KA,
            request_id=next_request_id(), session_id=session_id,
        )  # fmt: skip
        delete = Message(
            OpCode.DELETE_HANDLE, HandleBody("88.118.8/KEEP"), flags=OpFlag.KA,
            request_id=next_request_id(), session_id=session_id,
        )  # fmt: skip
        no_session = Message(
            OpCode.SESSION_TERMINATE, OptionalHandleBody(), request_id=next_request_id()
        )
        answers = await raw_exchange(enterprise, terminate, delete, no_session)
        assert [a.response_code for a in answers] == [ResponseCode.INVALID_CREDENTIAL] * 3
        assert enterprise.server.counters.auth_failures == failures + 3
        # The session is still open: the next write needs no challenge.
        before = enterprise.server.counters.requests
        await admin.create(HandleName.parse("88.118.8/AFTER"), [url(1, "http://a/")])
        assert enterprise.server.counters.requests == before + 1
        listed = await admin.list_handles(HandleName.parse("0.NA/88.118.8"))
        assert "88.118.8/KEEP" in listed
        # A resolution naming the session without a MAC is answered, anonymously.
        resolve = Message(
            OpCode.RESOLUTION, ResolutionRequest("88.118.8/KEEP"),
            request_id=next_request_id(), session_id=session_id,
        )  # fmt: skip
        (answer,) = await raw_exchange(enterprise, resolve)
        assert answer.response_code == ResponseCode.SUCCESS
        # Its owner can end it, with the MAC.
        await admin.close_session()
        assert len(enterprise.server.handler.sessions) == 0  # type: ignore[union-attr]
    (answer,) = await raw_exchange(enterprise, replace(resolve, request_id=next_request_id()))
    assert answer.response_code == ResponseCode.SESSION_TIMEOUT  # the session has ended


async def test_an_old_delete_cannot_be_replayed_after_a_bulk_load(enterprise: Node) -> None:
    victim = HandleName.parse("88.118.8/VICTIM")
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.open_session()
        await admin.create(victim, [url(1, "http://v/1")])
        delete = admin._sign(
            Message(
                OpCode.DELETE_HANDLE,
                HandleBody(str(victim)),
                flags=OpFlag.KA,
                request_id=next_request_id(),
            )
        )
        assert (await admin._exchange(delete)).response_code == ResponseCode.SUCCESS
        await admin.create(victim, [url(1, "http://v/2")])
        # More MAC'd requests than the old replay memory held (cheap ones: resolutions).
        for _ in range(REPLAY_WINDOW + 10):
            lookup = Message(OpCode.RESOLUTION, ResolutionRequest(str(victim)),
                             flags=OpFlag.KA, request_id=next_request_id())  # fmt: skip
            assert (await admin._exchange(admin._sign(lookup))).response_code == (
                ResponseCode.SUCCESS
            )
        replayed = await admin._exchange(replace(delete))
        assert replayed.response_code == ResponseCode.INVALID_CREDENTIAL
        message = getattr(replayed.body, "message", "")
        assert "replayed" in message
        listed = await admin.list_handles(HandleName.parse("0.NA/88.118.8"))
    assert str(victim) in listed


@pytest.mark.parametrize("late", [1, REPLAY_WINDOW // 2])
async def test_slightly_late_requests_in_a_session_are_still_accepted(
    enterprise: Node, late: int
) -> None:
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.open_session()
        first = next_request_id()
        ahead = Message(OpCode.RESOLUTION, ResolutionRequest("88.118.8/X"), flags=OpFlag.KA,
                        request_id=first + late)  # fmt: skip
        behind = replace(ahead, request_id=first)
        assert (await admin._exchange(admin._sign(ahead))).response_code == ResponseCode.SUCCESS
        assert (await admin._exchange(admin._sign(behind))).response_code == ResponseCode.SUCCESS
