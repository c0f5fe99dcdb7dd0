"""Server keys and trust: the key pair, HS_SITE with its key, signed answers, root answers.

Reference facts pinned here (Handle.Net 9 ``hdllib``):

* ``hdl-setup-server`` makes an RSA 2048 server key (``HSG.KEY_ALGORITHM``/``KEY_STRENGTH``);
* HS_SITE (RFC 3651 s3.2.2) carries each server's key in the HS_PUBKEY encoding
  (``Util.getBytesFromPublicKey``: "RSA_PUB_KEY", 2 reserved octets, exponent,
  modulus, each a length-prefixed two's-complement number);
* a certified answer's credential (``AbstractMessage.signMessage``): version 0,
  reserved 0, options 0, empty signer handle, the session counter as signer index,
  type "HS_SIGNED", then hash name ("SHA-256" from 2.7) and the PKCS#1 v1.5
  signature over major, minor, suggested major, suggested minor (from 2.8),
  session id, request id, session counter, then header and body;
* the root of a network answers ``0.NA/0.NA`` and ``0.0/0.0`` with its HS_SITE
  and HS_PUBKEY (``Configuration.resolveVerifyUpdateAndPersistBootstrapHandles``).

The golden checks decode the wire with ``struct`` and verify with
``cryptography`` directly, so they do not lean on the codec under test.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from typer.testing import CliRunner

from iinode.codes import ResponseCode
from iinode.errors import ConfigurationError
from iinode.identifiers import (
    HandleName,
    HandleValue,
    PubKeyData,
    SiteData,
    TransportProtocol,
    UrlData,
    decode_record,
    encode_record,
    site_for,
)
from iinode.node.server_keys import (
    KEY_BITS,
    OLD_KEY_FILE,
    ServerKeyFile,
    key_path,
    load_server_key,
    rotate_server_key,
)
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import (
    Message,
    OpCode,
    OpFlag,
    OptionalHandleBody,
    ResolutionRequest,
    SiteInfoResponse,
)
from iinode.resolution.native_client import NativeResolver, next_request_id
from iinode.resolution.native_handler import NativeHandler
from iinode.resolution.native_sessions import PeerState
from iinode.resolution.native_signing import sign_message, signed_octets, verify_signature
from iinode.storage import MemoryStore
from native.nodes import Node, start_node, url

# -- the key pair ---------------------------------------------------------------------


def test_a_node_key_is_rsa_2048_in_a_private_file_and_stays(tmp_path: Path) -> None:
    key = load_server_key(tmp_path)
    assert isinstance(key.private, rsa.RSAPrivateKey)
    assert key.private.key_size == KEY_BITS == 2048
    mode = stat.S_IMODE(key_path(tmp_path).stat().st_mode)
    assert mode == 0o600
    again = load_server_key(tmp_path)
    assert again.public_bytes == key.public_bytes


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_server_key(tmp_path)
    os.chmod(key_path(tmp_path), 0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_server_key(tmp_path)


def test_no_key_is_made_when_creation_is_not_asked(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_server_key(tmp_path, create=False)
    assert not key_path(tmp_path).exists()


def test_rotation_replaces_the_key_keeps_the_old_and_running_servers_follow(
    tmp_path: Path,
) -> None:
    now = [0.0]
    running = ServerKeyFile(tmp_path, check_interval=5.0, clock=lambda: now[0])
    first = running.current()
    new = rotate_server_key(tmp_path)
    assert new.public_bytes != first.public_bytes
    assert (tmp_path / OLD_KEY_FILE).read_bytes() == first.to_pem()
    assert stat.S_IMODE(key_path(tmp_path).stat().st_mode) == 0o600
    assert running.current().public_bytes == first.public_bytes  # not checked yet
    now[0] = 5.0
    assert running.current().public_bytes == new.public_bytes


# -- HS_SITE with the key -------------------------------------------------------------


def _java_int(n: int) -> bytes:
    """``BigInteger.toByteArray``: big-endian two's complement, shortest form."""
    return n.to_bytes(n.bit_length() // 8 + 1, "big")


def _lp(raw: bytes) -> bytes:
    return struct.pack(">I", len(raw)) + raw


def test_hs_site_bytes_carry_the_server_key_as_rfc_3651_lays_them_out(tmp_path: Path) -> None:
    key = load_server_key(tmp_path)
    numbers = key.private.public_key().public_numbers()
    pubkey = (
        _lp(b"RSA_PUB_KEY") + b"\x00\x00" + _lp(_java_int(numbers.e)) + _lp(_java_int(numbers.n))
    )
    assert key.public_bytes == pubkey
    assert len(_java_int(numbers.n)) == 257  # the sign octet Java writes before the modulus
    site = site_for("127.0.0.1", handle_port=2641, http_port=8000, public_key=key.public_bytes)
    expected = (
        struct.pack(">HBBH", 1, 2, 10, 1)  # version, protocol 2.10, serial
        + bytes([0x80, 2])  # primary, hash by handle
        + _lp(b"")  # hash filter
        + struct.pack(">I", 0)  # no attributes
        + struct.pack(">I", 1)  # one server
        + struct.pack(">I", 1)  # server id
        + bytes(12)
        + bytes([127, 0, 0, 1])  # IPv4 in the last four octets
        + _lp(pubkey)
        + struct.pack(">I", 3)
        + struct.pack(">BBI", 3, 1, 2641)  # admin+query over TCP
        + struct.pack(">BBI", 2, 0, 2641)  # query over UDP
        + struct.pack(">BBI", 3, 2, 8000)  # admin+query over HTTP
    )
    assert site.to_wire() == expected
    assert SiteData.from_wire(expected).servers[0].public_key == pubkey


# -- a node without a network ---------------------------------------------------------


def _service(tmp_path: Path, role: Role = Role.TOP, prefix: str = "88") -> HandleService:
    settings = NodeSettings(role=role, data_dir=tmp_path, prefix=prefix, handle_port=2641)
    return HandleService(settings, MemoryStore())


async def _seed(service: HandleService, handle: str, values: list[HandleValue]) -> None:
    raw = encode_record(values)
    await service.store.modify(handle, lambda _old: raw)


def _handler(service: HandleService) -> NativeHandler:
    assert service.owned is not None
    return NativeHandler(service, service._own_site(service.owned))


NO_FLAGS = OpFlag(0)


def _resolve(handle: str, flags: OpFlag = NO_FLAGS, version: tuple[int, int] = (2, 10)) -> Message:
    return Message(
        OpCode.RESOLUTION, ResolutionRequest(handle), flags=flags, request_id=next_request_id(),
        version=version,
    )  # fmt: skip


def _wire_credential(wire: bytes) -> tuple[bytes, int, str, str, bytes]:
    """(signed header and body, signer index, type, hash name, signature) read by hand."""
    payload = wire[20:]
    (body_length,) = struct.unpack_from(">I", payload, 20)
    end = 24 + body_length
    at = end + 4  # credential length
    at += 4  # version, reserved, options
    (signer_length,) = struct.unpack_from(">I", payload, at)
    at += 4 + signer_length
    (index,) = struct.unpack_from(">I", payload, at)
    at += 4
    (type_length,) = struct.unpack_from(">I", payload, at)
    kind = payload[at + 4 : at + 4 + type_length].decode()
    at += 4 + type_length + 4  # type, then the signed info length
    (name_length,) = struct.unpack_from(">I", payload, at)
    name = payload[at + 4 : at + 4 + name_length].decode()
    at += 4 + name_length
    (sig_length,) = struct.unpack_from(">I", payload, at)
    return payload[:end], index, kind, name, payload[at + 4 : at + 4 + sig_length]


async def test_a_certified_answer_is_signed_as_handle_net_signs_it(tmp_path: Path) -> None:
    service = _service(tmp_path)
    await _seed(service, "88/X", [url(1, "http://x.cn/")])
    handler = _handler(service)
    request = _resolve("88/X", OpFlag.CT)
    outcome = await handler.handle(request, PeerState(address="127.0.0.1"))
    assert outcome.message is not None
    assert outcome.message.response_code == ResponseCode.SUCCESS
    assert not outcome.cacheable  # the signature names this request id
    wire = outcome.message.to_wire()
    major, minor, flags, session, request_id = struct.unpack_from(">BBHII", wire)
    suggested = bytes([(flags >> 8) & 0x03, flags & 0xFF])
    if suggested[0] == 0:
        suggested = bytes([major, minor])
    signed, index, kind, name, signature = _wire_credential(wire)
    assert (kind, name, index) == ("HS_SIGNED", "SHA-256", 0)
    octets = bytes([major, minor]) + suggested + struct.pack(">III", session, request_id, 0)
    public = load_server_key(tmp_path).private.public_key()
    public.verify(signature, octets + signed, padding.PKCS1v15(), hashes.SHA256())
    # The node's own client code agrees, with the key as the site publishes it.
    site = handler.site
    received = Message.from_wire(wire)
    assert verify_signature(received, site.servers[0].public_key)
    tampered = wire[:-1] + bytes([wire[-1] ^ 1])
    assert not verify_signature(Message.from_wire(tampered), site.servers[0].public_key)


async def test_uncertified_answers_carry_no_credential_and_errors_are_signed_too(
    tmp_path: Path,
) -> None:
    service = _service(tmp_path)
    handler = _handler(service)
    plain = await handler.handle(_resolve("88/NONE"), PeerState())
    assert plain.message is not None
    assert plain.message.credential is None
    certified = await handler.handle(_resolve("88/NONE", OpFlag.CT), PeerState())
    assert certified.message is not None
    assert certified.message.response_code == ResponseCode.HANDLE_NOT_FOUND
    assert verify_signature(certified.message, handler.site.servers[0].public_key)


@pytest.mark.parametrize(
    ("version", "name"), [((2, 5), "SHA1"), ((2, 6), "SHA1"), ((2, 7), "SHA-256")]
)
def test_older_versions_sign_what_their_clients_check(
    tmp_path: Path, version: tuple[int, int], name: str
) -> None:
    key = load_server_key(tmp_path)
    message = _resolve("88/X", version=version)
    signed = sign_message(message.error_reply(ResponseCode.HANDLE_NOT_FOUND, "no"), key.private)
    assert signed.credential is not None
    assert signed.credential.digest_algorithm == name
    assert verify_signature(signed, key.public_bytes)
    octets = signed_octets(signed)
    if version < (2, 6):
        assert octets == signed.signed_data()
    else:
        assert octets.startswith(bytes(version))
        assert octets.endswith(signed.signed_data())


async def test_site_info_follows_a_rotation(tmp_path: Path) -> None:
    service = _service(tmp_path)
    handler = _handler(service)
    before = handler.site.servers[0].public_key
    request = Message(OpCode.GET_SITEINFO, OptionalHandleBody(), request_id=next_request_id())
    new = rotate_server_key(tmp_path)
    handler.trust.keys._next_check = 0.0  # skip the wait between file checks
    outcome = await handler.handle(request, PeerState())
    assert outcome.message is not None
    body = outcome.message.body
    assert isinstance(body, SiteInfoResponse)
    assert body.site.servers[0].public_key == new.public_bytes != before


# -- the root of a private network ----------------------------------------------------


@pytest.mark.parametrize("root", ["0.NA/0.NA", "0.0/0.0"])
async def test_a_top_node_without_parent_answers_the_root_handles(
    tmp_path: Path, root: str
) -> None:
    service = _service(tmp_path)
    handler = _handler(service)
    outcome = await handler.handle(_resolve(root, OpFlag.CT), PeerState())
    message = outcome.message
    assert message is not None
    assert message.response_code == ResponseCode.SUCCESS
    assert verify_signature(message, load_server_key(tmp_path).public_bytes)
    values = {v.type: v for v in message.body.values}  # type: ignore[attr-defined]
    site = values["HS_SITE"].data
    key = values["HS_PUBKEY"].data
    assert isinstance(site, SiteData)
    assert isinstance(key, PubKeyData)
    assert site.servers[0].public_key == key.raw == load_server_key(tmp_path).public_bytes
    assert site.servers[0].interface(TransportProtocol.TCP) is not None
    assert "HS_ADMIN" in values
    only_site = await service.answer(HandleName.parse(root), types=["HS_SITE"])
    assert [v.type for v in only_site.values] == ["HS_SITE"]


async def test_nodes_with_a_parent_do_not_claim_the_root(tmp_path: Path) -> None:
    settings = NodeSettings(
        role=Role.SECONDARY, data_dir=tmp_path, prefix="88.118", parent_url="http://127.0.0.1:1"
    )
    service = HandleService(settings, MemoryStore())
    assert not service.is_network_root
    top_with_parent = NodeSettings(
        role=Role.TOP, data_dir=tmp_path, prefix="86", parent_url="http://127.0.0.1:1"
    )
    assert not HandleService(top_with_parent, MemoryStore()).is_network_root


# -- over the network -----------------------------------------------------------------


@pytest.fixture
def keyed_hierarchy(tmp_path: Path) -> Iterator[tuple[Node, Node, Node]]:
    """Top, secondary and enterprise whose delegation records carry the child's key."""

    def delegation(node: Node) -> list[HandleValue]:
        key = load_server_key(node.settings.data_dir).public_bytes
        site = site_for("127.0.0.1", handle_port=node.port, public_key=key)
        return [HandleValue(1, "HS_SITE", site)]

    ent = start_node(tmp_path, Role.ENTERPRISE, "88.118.8", {"88.118.8/P1": [url(1, "http://p/")]})
    sec = start_node(tmp_path, Role.SECONDARY, "88.118", {"0.NA/88.118.8": delegation(ent)})
    top = start_node(tmp_path, Role.TOP, "88", {"0.NA/88.118": delegation(sec)})
    yield top, sec, ent
    for node in (top, sec, ent):
        node.server.stop()


async def test_the_native_client_walks_certified_from_a_private_root(
    keyed_hierarchy: tuple[Node, Node, Node],
) -> None:
    top, _sec, _ent = keyed_hierarchy
    # What a stock client learns of its root (root_info): the top node's site, with key.
    root_site = decode_record(encode_record(_root_values(top)))[0].data
    assert isinstance(root_site, SiteData)
    resolver = NativeResolver([root_site], certified=True)
    try:
        resolved = await resolver.resolve(HandleName.parse("88.118.8/P1"))
        assert [v.data for v in resolved.values] == [UrlData("http://p/")]
        # A root site with the wrong key: nothing verifies, nothing is believed.
        other = site_for("127.0.0.1", handle_port=top.port, public_key=_other_key())
        wrong = NativeResolver([other], certified=True)
        with pytest.raises(Exception, match="not signed by its key"):
            await wrong.resolve(HandleName.parse("88.118.8/P1"))
        await wrong.aclose()
    finally:
        await resolver.aclose()


def _root_values(top: Node) -> list[HandleValue]:
    key = load_server_key(top.settings.data_dir).public_bytes
    return [HandleValue(1, "HS_SITE", site_for("127.0.0.1", handle_port=top.port, public_key=key))]


def _other_key() -> bytes:
    from iinode.node.public_keys import encode_public_key

    return encode_public_key(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    )


# -- the command ----------------------------------------------------------------------


def test_keys_rotate_republishes_the_site(tmp_path: Path) -> None:
    import asyncio

    from iinode.cli.main import app
    from iinode.storage import SQLiteStore

    data = tmp_path / "node"
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=data, prefix="88.118.8")
    data.mkdir()
    settings.save()

    async def site_key() -> bytes:
        store = SQLiteStore(data / "handles.sqlite3")
        try:
            raw = await store.get("0.NA/88.118.8")
        finally:
            await store.close()
        assert raw is not None
        site = next(v.data for v in decode_record(raw) if v.type == "HS_SITE")
        assert isinstance(site, SiteData)
        return site.servers[0].public_key

    async def seed() -> None:
        store = SQLiteStore(data / "handles.sqlite3")
        service = HandleService(settings, store)
        await _seed(service, "0.NA/88.118.8", [HandleValue(1, "HS_SITE", site_for("127.0.0.1"))])
        await service.refresh_site()  # first start after the change: the key appears
        await store.close()

    asyncio.run(seed())
    first = asyncio.run(site_key())
    assert first == load_server_key(data).public_bytes
    result = CliRunner().invoke(app, ["keys", "rotate", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "now carries the new key" in result.output
    second = asyncio.run(site_key())
    assert second == load_server_key(data).public_bytes != first
    shown = CliRunner().invoke(app, ["keys", "show", "--data-dir", str(data)])
    assert shown.exit_code == 0
    assert "RSA 2048 bits" in shown.output
