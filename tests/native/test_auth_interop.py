"""iinode's admin client against iinode's server in every version and answer type, and
challenge answers wherever a Handle.Net client may send them (new connection, UDP,
another worker process), and identities verified on the node that holds them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    SecKeyData,
    site_for,
)
from iinode.node.public_keys import encode_public_key
from iinode.node.seckey_answers import ANSWER_TYPES, hashed_secret, seckey_answer
from iinode.node.server_keys import load_server_key
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import (
    NEED_DATA,
    ChallengeAnswer,
    DigestAlgorithm,
    Frame,
    HandleBody,
    Message,
    OpCode,
    OpFlag,
    TcpFramer,
    VerifyRequest,
    VerifyResponse,
)
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_client import NativeClient, next_request_id
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_server import NativeServer, start_native_workers
from iinode.resolution.native_sessions import PeerState
from iinode.storage import MemoryStore
from native.nodes import SECRET, Node, seed, start_node, url
from support import free_port

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")
PARENT_ADMIN = IndexedHandle.parse("300:0.NA/88.118")
VERSIONS = [(2, 0), (2, 1), (2, 3), (2, 6), (2, 7), (2, 10), (2, 11)]


def works(version: tuple[int, int], kind: DigestAlgorithm | None) -> bool:
    """Below 2.1 an answer is a bare MD5 digest; from 2.1 it names its type."""
    if kind is None:
        return True
    return (kind == DigestAlgorithm.MD5_OLD_FORMAT) == (version < (2, 1))


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v[0]}.{v[1]}")
async def test_every_version_and_answer_type(enterprise: Node, version: tuple[int, int]) -> None:
    kinds: list[DigestAlgorithm | None] = [None, *ANSWER_TYPES]
    for n, kind in enumerate(kinds):
        auth = SecretKeyAuth(ADMIN, SECRET, answer_type=kind)
        handle = HandleName.parse(f"88.118.8/V{version[1]}-{n}")
        async with NativeAdminClient(*enterprise.address, auth, version=version) as admin:
            if works(version, kind):
                await admin.create(handle, [url(1, "http://v/")])
                await admin.delete(handle)
            else:
                with pytest.raises(HandleError) as refused:
                    await admin.create(handle, [url(1, "http://v/")])
                assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED, kind


async def test_hashed_password_mode(enterprise: Node) -> None:
    user = IndexedHandle.parse("300:88.118.8/HASHED")
    grant = AdminData(AdminPermission.all(), user)
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        await admin.create(
            user.handle,
            [
                HandleValue(300, "HS_SECKEY", SecKeyData(hashed_secret(b"pw"))),
                HandleValue(100, "HS_ADMIN", grant),
            ],
        )
    for version in ((2, 0), (2, 5), (2, 10)):
        auth = SecretKeyAuth(user, "pw", hashed=True)
        async with NativeAdminClient(*enterprise.address, auth, version=version) as client:
            await client.add_values(user.handle, [url(version[1] + 1, "http://h/")])
    plain = SecretKeyAuth(user, "pw")  # the password itself is not the key
    async with NativeAdminClient(*enterprise.address, plain) as client:
        with pytest.raises(HandleError) as refused:
            await client.add_values(user.handle, [url(50, "http://h/")])
    assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED


async def test_answer_on_a_new_connection(enterprise: Node) -> None:
    auth = SecretKeyAuth(ADMIN, SECRET)
    async with NativeAdminClient(*enterprise.address, auth, answer_on_new_connection=True) as a:
        await a.create(HandleName.parse("88.118.8/NEWCONN"), [url(1, "http://n/")])
        await a.delete(HandleName.parse("88.118.8/NEWCONN"))


# -- the challenge state is the node's, not one process's ------------------------------------
@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[NativeServer, NativeServer]]:
    """Two servers of one node (one data directory, one store) on two ports."""
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    seed(settings, {"88.118.8/X": [url(1, "http://x/")]})
    first = NativeServer(settings, host="127.0.0.1", port=free_port(), reuse_port=False)
    second = NativeServer(settings, host="127.0.0.1", port=free_port(), reuse_port=False)
    first.start()
    second.start()
    yield first, second
    first.stop()
    second.stop()


def answer_to(challenge: Message, kind: DigestAlgorithm) -> Message:
    assert challenge.response_code == ResponseCode.AUTHENTICATION_NEEDED
    assert challenge.session_id
    assert challenge.request_digest is not None
    signed = seckey_answer(
        SECRET.encode(),
        challenge.body.nonce,
        challenge.request_digest.digest,
        kind,  # type: ignore[union-attr]
    )
    body = ChallengeAnswer("HS_SECKEY", str(ADMIN.handle), ADMIN.index, signed)
    return Message(
        OpCode.CHALLENGE_RESPONSE, body, request_id=next_request_id(),
        session_id=challenge.session_id, version=(2, 10),
    )  # fmt: skip


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_an_answer_reaching_another_server_process_is_accepted(
    two_servers: tuple[NativeServer, NativeServer], transport: str
) -> None:
    first, second = two_servers
    to_first, to_second = ("127.0.0.1", first.port), ("127.0.0.1", second.port)
    client = NativeClient(timeout=3.0)
    try:
        request = Message(
            OpCode.DELETE_HANDLE, HandleBody("88.118.8/X"), request_id=next_request_id(),
            version=(2, 10),
        )  # fmt: skip
        challenge = await client.tcp(to_first, request)
        answer = answer_to(challenge, DigestAlgorithm.HMAC_SHA256)
        send = client.tcp if transport == "tcp" else client.udp
        done = await send(to_second, answer)
        assert done.response_code == ResponseCode.SUCCESS
        assert done.request_id == answer.request_id
        # Taken once: the same answer again, to either server, finds no challenge.
        for address in (to_first, to_second):
            again = await client.tcp(address, answer)
            assert again.response_code == ResponseCode.AUTHENTICATION_TIMEOUT
    finally:
        await client.aclose()


def test_answers_on_new_connections_across_worker_processes(tmp_path: Path) -> None:
    port = free_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", handle_port=port
    )
    seed(settings, {})
    workers = start_native_workers(settings, 2, host="127.0.0.1")

    async def run() -> None:
        auth = SecretKeyAuth(ADMIN, SECRET)
        for n in range(12):  # each connection is handed to either worker by the kernel
            async with NativeAdminClient(
                "127.0.0.1", port, auth, answer_on_new_connection=True
            ) as admin:
                await admin.create(HandleName.parse(f"88.118.8/W{n}"), [url(1, "http://w/")])

    try:
        asyncio.run(run())
    finally:
        workers.stop()


# -- identities held by another node ----------------------------------------------------------
@pytest.fixture
def parent_and_child(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """88.118 and its child 88.118.8, whose record SHARED its parent's admin may change."""
    parent = start_node(tmp_path, Role.SECONDARY, "88.118")
    grant = AdminData(AdminPermission.all(), PARENT_ADMIN)
    shared = [url(1, "http://s/"), HandleValue(100, "HS_ADMIN", grant)]
    child = start_node(
        tmp_path, Role.ENTERPRISE, "88.118.8", {"88.118.8/SHARED": shared},
        parent_port=parent.port,
    )  # fmt: skip
    yield parent, child
    child.server.stop()
    parent.server.stop()


async def test_parent_admin_is_verified_by_the_parent(parent_and_child: tuple[Node, Node]) -> None:
    parent, child = parent_and_child
    shared = HandleName.parse("88.118.8/SHARED")
    asked = parent.server.counters.requests
    for kind in (None, DigestAlgorithm.SHA1, DigestAlgorithm.HMAC_SHA1):
        auth = SecretKeyAuth(PARENT_ADMIN, SECRET, answer_type=kind)
        async with NativeAdminClient(*child.address, auth) as admin:
            await admin.add_values(shared, [url(2, "http://p/")], overwrite=True)
    assert parent.server.counters.requests >= asked + 3  # one VERIFY_RESPONSE per answer
    async with NativeAdminClient(*child.address, SecretKeyAuth(PARENT_ADMIN, "wrong")) as bad:
        with pytest.raises(HandleError) as refused:
            await bad.add_values(shared, [url(3, "http://p/")])
    assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    # The parent's admin administers nothing else here: authenticated, not authorised.
    async with NativeAdminClient(*child.address, SecretKeyAuth(PARENT_ADMIN, SECRET)) as other:
        with pytest.raises(HandleError) as denied:
            await other.create(HandleName.parse("88.118.8/MINE"), [url(1, "http://m/")])
    assert denied.value.code == ResponseCode.NOT_AUTHORIZED


async def test_verify_response_answers_and_refers(parent_and_child: tuple[Node, Node]) -> None:
    parent, child = parent_and_child
    nonce, digest = b"n" * 16, b"d" * 32
    client = NativeClient(timeout=3.0)

    async def verify(node: Node, answer: bytes, version: tuple[int, int] = (2, 10)) -> Message:
        body = VerifyRequest(str(PARENT_ADMIN.handle), 0, nonce, digest, answer)
        # Certified, as a Handle.Net server asks (``vaReq.certify = true``): a signed verdict.
        request = Message(
            OpCode.VERIFY_RESPONSE, body, request_id=next_request_id(), version=version,
            flags=OpFlag.CT,
        )  # fmt: skip
        response = await client.tcp(node.address, request)
        assert response.credential is not None
        return response

    try:
        for kind in ANSWER_TYPES[1:]:
            right = await verify(parent, seckey_answer(SECRET.encode(), nonce, digest, kind))
            assert right.body == VerifyResponse(True), kind
        old = seckey_answer(SECRET.encode(), nonce, digest, DigestAlgorithm.MD5_OLD_FORMAT)
        assert (await verify(parent, old, (2, 0))).body == VerifyResponse(True)
        assert (await verify(parent, old)).body == VerifyResponse(False)
        wrong = seckey_answer(b"wrong", nonce, digest, DigestAlgorithm.SHA256)
        assert (await verify(parent, wrong)).body == VerifyResponse(False)
        referred = await verify(child, wrong)
        assert referred.response_code == ResponseCode.SERVICE_REFERRAL
    finally:
        await client.aclose()


# -- a server that closes the connection after every answer, as the reference server does -----
async def test_admin_client_against_a_server_closing_after_each_answer(tmp_path: Path) -> None:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    service = HandleService(settings, MemoryStore())
    await service.initialise(SECRET)
    assert service.owned is not None
    handler = NativeHandler(service, service._own_site(service.owned))
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        framer = TcpFramer()
        try:
            while (event := framer.next_event()) is NEED_DATA:
                framer.receive_data(await reader.read(65_536))
            if isinstance(event, Frame):
                outcome = await handler.handle(Message.from_frame(event), PeerState("127.0.0.1"))
                assert outcome.message is not None
                writer.write(outcome.message.to_wire())
                await writer.drain()
        finally:
            writer.close()  # one answer per connection, a challenge included

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        handle = HandleName.parse("88.118.8/CLOSING")
        async with NativeAdminClient("127.0.0.1", port, SecretKeyAuth(ADMIN, SECRET)) as admin:
            await admin.create(handle, [url(1, "http://c/")])
            await admin.modify_values(handle, [url(1, "http://d/")])
            await admin.delete(handle)
        assert connections == 6  # each request and each answer on a connection of its own
        assert await service.lookup(handle) is None
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("right_key", [True, False], ids=["signed", "wrong-key"])
def test_a_childs_identity_is_verified_by_the_child_with_a_signed_verdict(
    tmp_path: Path, right_key: bool
) -> None:
    """At 88.118, ``300:88.118.8/OPS`` lives on the child: its delegation's HS_SITE names the
    child's server key, so the child's verdict must be signed with it."""
    ops = IndexedHandle.parse("300:88.118.8/OPS")
    child = start_node(
        tmp_path, Role.ENTERPRISE, "88.118.8",
        {str(ops.handle): [HandleValue(300, "HS_SECKEY", SecKeyData(b"ops-pw"))]},
    )  # fmt: skip
    key = load_server_key(child.settings.data_dir).public_bytes
    if not right_key:
        key = encode_public_key(rsa.generate_private_key(65537, 2048).public_key())
    site = site_for("127.0.0.1", handle_port=child.port, public_key=key)
    grant = AdminData(AdminPermission.all(), ops)
    parent = start_node(
        tmp_path, Role.SECONDARY, "88.118",
        {"0.NA/88.118.8": [HandleValue(1, "HS_SITE", site)],
         "88.118/SHARED": [url(1, "http://s/"), HandleValue(100, "HS_ADMIN", grant)]},
    )  # fmt: skip
    shared = HandleName.parse("88.118/SHARED")

    async def write() -> None:
        async with NativeAdminClient(*parent.address, SecretKeyAuth(ops, "ops-pw")) as admin:
            await admin.add_values(shared, [url(2, "http://o/")])

    try:
        if right_key:
            asyncio.run(write())
        else:
            with pytest.raises(HandleError) as refused:
                asyncio.run(write())
            assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    finally:
        parent.server.stop()
        child.server.stop()
