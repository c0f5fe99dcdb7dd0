"""Native HS_SECKEY challenges against sealed secrets: what a reader of the database can't do."""

from __future__ import annotations

import sqlite3

import pytest

from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import HandleName, IndexedHandle, SecKeyData, decode_record
from iinode.node.seckey_answers import ANSWER_TYPES
from iinode.proto import DigestAlgorithm
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from native.nodes import SECRET, Node, url

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")


def stolen_seckey(node: Node) -> bytes:
    """The HS_SECKEY data of 300:0.NA/88.118.8 as read straight from the database file."""
    db = sqlite3.connect(node.settings.data_dir / "handles.sqlite3")
    try:
        (raw,) = db.execute(
            "SELECT data FROM handles WHERE handle = ?", ("0.NA/88.118.8",)
        ).fetchone()
    finally:
        db.close()
    value = next(v for v in decode_record(bytes(raw)) if v.index == 300)
    assert isinstance(value.data, SecKeyData)
    return value.data.raw


def test_the_database_holds_no_secret(enterprise: Node) -> None:
    stolen = stolen_seckey(enterprise)
    assert SECRET.encode() not in stolen
    files = b"".join(p.read_bytes() for p in enterprise.settings.data_dir.glob("handles.sqlite3*"))
    assert SECRET.encode() not in files


@pytest.mark.parametrize("kind", ANSWER_TYPES[1:], ids=lambda k: k.name)
async def test_a_reader_of_the_database_cannot_answer_a_challenge(
    enterprise: Node, kind: DigestAlgorithm
) -> None:
    stolen = stolen_seckey(enterprise)
    for key in (stolen, stolen.split(b"$")[-1]):
        thief = SecretKeyAuth(ADMIN, key, answer_type=kind)
        async with NativeAdminClient(*enterprise.address, thief) as client:
            with pytest.raises(HandleError) as refused:
                await client.create(HandleName.parse("88.118.8/STOLEN"), [url(1, "http://x/")])
        assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    async with NativeAdminClient(*enterprise.address, SecretKeyAuth(ADMIN, SECRET)) as admin:
        with pytest.raises(HandleError) as missing:
            await admin.delete(HandleName.parse("88.118.8/STOLEN"))
    assert missing.value.code == ResponseCode.HANDLE_NOT_FOUND


async def test_unknown_and_known_identities_are_refused_alike(enterprise: Node) -> None:
    nobody = IndexedHandle.parse("300:88.118.8/NOBODY")
    messages = []
    for who, secret in ((ADMIN, "wrong"), (nobody, SECRET)):
        async with NativeAdminClient(*enterprise.address, SecretKeyAuth(who, secret)) as c:
            with pytest.raises(HandleError) as refused:
                await c.create(HandleName.parse("88.118.8/NO"), [url(1, "http://n/")])
        assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
        messages.append(refused.value.message.replace(str(who), "ID"))
    assert messages[0] == messages[1]
