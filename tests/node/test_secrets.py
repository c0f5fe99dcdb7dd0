"""HS_SECKEY storage and HTTP Basic authentication: sealed secrets, redaction, limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import stat
import statistics
import time
from pathlib import Path

import httpx
import pytest

from iinode.errors import AuthenticationFailed, ConfigurationError, InvalidHandle, ValueInvalid
from iinode.identifiers import (
    HandleName,
    HandleValue,
    IndexedHandle,
    Permissions,
    SecKeyData,
    decode_record,
)
from iinode.node.auth import Authorizer, Credentials
from iinode.node.bulk import BulkRegistrar
from iinode.node.ratelimit import FailureLimiter, FailureLimits
from iinode.node.secret_box import NODE_KEY_FILE, NodeSecrets, SecretBox
from iinode.node.service import HandleService
from iinode.node.verifier import ClientKeys, SecretVerifier

ADMIN = ("300%3A0.NA/88.118.8", "s3cret")
NA = HandleName.parse("0.NA/88.118.8")
ADMIN_ID = IndexedHandle(300, NA)


async def stored_seckey(service: HandleService, handle: HandleName, index: int) -> HandleValue:
    """What someone reading the store (or the database row) sees."""
    raw = await service.store.get(str(handle))
    assert raw is not None
    return next(v for v in decode_record(raw) if v.index == index)


async def put(client: httpx.AsyncClient, handle: str, values: object, **params: str) -> int:
    r = await client.put(
        f"/api/handles/{handle}", json={"values": values}, auth=ADMIN, params=params
    )  # type: ignore[arg-type]
    return r.status_code


# -- what is stored ---------------------------------------------------------------------
def test_legacy_verifier_round_trip_and_checks() -> None:
    v = SecretVerifier.create("pw", iterations=4096)
    assert SecretVerifier.parse(v.to_bytes()) == v
    assert v.check_secret("pw")
    assert not v.check_secret("pW")
    assert ClientKeys.derive("pw", v.salt, v.iterations).stored_key == v.stored_key


@pytest.mark.parametrize(
    "raw",
    [
        b"SCRAM-SHA-256$4096$AAAA",
        b"SCRAM-SHA-256$12$"
        + b"$".join([base64.b64encode(b"s" * 16)] + [base64.b64encode(b"k" * 32)] * 2),
        b"SCRAM-SHA-256$4096$!!!$AA==$AA==",
    ],
)
def test_malformed_verifiers_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueInvalid):
        SecretVerifier.parse(raw)


def opened(service: HandleService, stored: HandleValue) -> bytes:
    assert isinstance(stored.data, SecKeyData)
    assert SecretBox.is_sealed(stored.data.raw)
    return service.secrets.open(stored.data.raw)


async def test_stored_secret_is_sealed_and_never_public(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    # Written with PUBLIC_READ asked for: stored without it, sealed with the node key.
    key = {"index": 300, "type": "HS_SECKEY", "data": "ops-pass", "permissions": "1110"}
    assert await put(client, "88.118.8/OPS", [key]) == 201
    stored = await stored_seckey(service, HandleName.parse("88.118.8/OPS"), 300)
    assert not stored.permissions & Permissions.PUBLIC_READ
    assert opened(service, stored) == b"ops-pass"
    assert isinstance(stored.data, SecKeyData)
    assert b"ops-pass" not in stored.data.raw
    anonymous = await client.get("/api/handles/88.118.8/OPS")
    assert "HS_SECKEY" not in anonymous.text
    admin = (await client.get("/api/handles/88.118.8/OPS", auth=ADMIN)).json()  # type: ignore[arg-type]
    assert "ops-pass" not in str(admin)
    assert "IINODE-AES" not in str(admin)


async def test_node_key_file_is_private_and_made_at_init(service: HandleService) -> None:
    path = service.settings.data_dir / NODE_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    path.chmod(0o644)  # a key others may read is refused, not used
    with pytest.raises(ConfigurationError, match="readable by others"):
        NodeSecrets(service.settings.data_dir).ensure()


async def test_the_database_file_alone_does_not_reveal_the_secret(
    service: HandleService, tmp_path: Path
) -> None:
    db = (tmp_path / "h.sqlite3").read_bytes() + (tmp_path / "h.sqlite3-wal").read_bytes()
    assert b"s3cret" not in db
    assert hashlib.sha1(b"s3cret").hexdigest().encode() not in db
    # Another node key (the database copied without node.key) opens nothing.
    stored = await stored_seckey(service, NA, 300)
    assert isinstance(stored.data, SecKeyData)
    other = NodeSecrets(tmp_path / "elsewhere")
    with pytest.raises(ValueInvalid, match="not with this node's key"):
        other.open(stored.data.raw)
    forged = stored.data.raw.replace(service.secrets.box.key_id.encode(), other.box.key_id.encode())
    with pytest.raises(ValueInvalid, match="does not open"):
        other.open(forged)
    # With the database and its own key, the secret opens.
    assert opened(service, stored) == b"s3cret"


async def test_bulk_load_stores_sealed_secrets_without_public_read(service: HandleService) -> None:
    registrar = BulkRegistrar(service)
    value = HandleValue(300, "HS_SECKEY", SecKeyData(b"bulk-pw"))  # default permissions: public
    assert value.permissions & Permissions.PUBLIC_READ
    await registrar.write([registrar.encode(HandleName.parse("88.118.8/BK"), [value])])
    stored = await stored_seckey(service, HandleName.parse("88.118.8/BK"), 300)
    assert not stored.permissions & Permissions.PUBLIC_READ
    assert opened(service, stored) == b"bulk-pw"
    creds = Credentials(IndexedHandle.parse("300:88.118.8/BK"), "bulk-pw")
    assert await service.auth.authenticate(creds) == creds.identity


@pytest.mark.parametrize("index", [100, 1, 300])
async def test_bulk_load_protects_a_seckey_at_any_index_and_keeps_an_admin(
    service: HandleService, index: int
) -> None:
    registrar = BulkRegistrar(service)
    handle = HandleName.parse(f"88.118.8/BK{index}")
    value = HandleValue(index, "HS_SECKEY", SecKeyData(b"bulk-pw"))
    await registrar.write([registrar.encode(handle, [value])])
    stored = await stored_seckey(service, handle, index)
    assert not stored.permissions & Permissions.PUBLIC_READ
    assert opened(service, stored) == b"bulk-pw"
    raw = await service.store.get(str(handle))
    assert raw is not None
    record = decode_record(raw)
    admins = [v for v in record if v.type == "HS_ADMIN"]
    assert len(admins) == 1
    assert admins[0].index != index
    assert [v.index for v in record] == sorted(v.index for v in record)


async def test_a_reader_of_the_store_cannot_authenticate_over_rest(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    stored = await stored_seckey(service, NA, 300)
    assert isinstance(stored.data, SecKeyData)
    for guess in (stored.data.raw.decode(), stored.data.raw.split(b"$")[-1].decode()):
        r = await client.put(
            "/api/handles/88.118.8/STOLEN",
            json={"values": [{"index": 1, "type": "URL", "data": "http://x/"}]},
            auth=("300%3A0.NA/88.118.8", guess),
        )
        assert r.status_code == 401, guess
    assert await service.lookup(HandleName.parse("88.118.8/STOLEN")) is None


async def test_sealed_data_of_another_key_is_refused_on_write(
    client: httpx.AsyncClient, service: HandleService, tmp_path: Path
) -> None:
    foreign = NodeSecrets(tmp_path / "elsewhere").seal(b"pw").decode()
    key = {"index": 300, "type": "HS_SECKEY", "data": foreign}
    r = await client.put("/api/handles/88.118.8/F", json={"values": [key]}, auth=ADMIN)  # type: ignore[arg-type]
    assert r.status_code == 400
    assert await service.lookup(HandleName.parse("88.118.8/F")) is None


async def test_legacy_verifier_records_still_serve_http_basic(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    verifier = SecretVerifier.create("old-pw", iterations=4096).to_bytes()
    key = {"index": 300, "type": "HS_SECKEY", "data": verifier.decode()}
    assert await put(client, "88.118.8/LEGACY", [key]) == 201
    stored = await stored_seckey(service, HandleName.parse("88.118.8/LEGACY"), 300)
    assert isinstance(stored.data, SecKeyData)
    assert stored.data.raw == verifier
    legacy = IndexedHandle.parse("300:88.118.8/LEGACY")
    assert await service.auth.authenticate(Credentials(legacy, "old-pw")) == legacy
    with pytest.raises(AuthenticationFailed):
        await service.auth.authenticate(Credentials(legacy, "wrong"))


# -- what is answered ----------------------------------------------------------------
async def test_service_answers_seckeys_without_data_to_every_front_end(
    service: HandleService,
) -> None:
    """Both REST and the native handler answer through ``HandleService.answer``."""
    answer = await service.answer(NA, identity=ADMIN_ID)
    (seckey,) = [v for v in answer.values if v.type == "HS_SECKEY"]
    assert seckey.data == SecKeyData(b"")
    assert seckey.data.to_wire() == b""
    anonymous = await service.answer(NA)
    assert "HS_SECKEY" not in {v.type for v in anonymous.values}


async def test_read_back_record_written_unchanged_keeps_the_secret(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    before = await stored_seckey(service, NA, 300)
    record = (await client.get("/api/handles/0.NA/88.118.8", auth=ADMIN)).json()  # type: ignore[arg-type]
    assert await put(client, "0.NA/88.118.8", record["values"]) == 200
    after = await stored_seckey(service, NA, 300)
    assert after.data == before.data
    assert await service.auth.authenticate(Credentials(ADMIN_ID, "s3cret")) == ADMIN_ID


async def test_a_new_seckey_without_secret_is_refused(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    empty = {"index": 300, "type": "HS_SECKEY", "data": ""}
    r = await client.put("/api/handles/88.118.8/E", json={"values": [empty]}, auth=ADMIN)  # type: ignore[arg-type]
    assert (r.status_code, r.json()["responseCode"]) == (400, 202)
    assert "no secret" in r.json()["message"]
    assert await service.lookup(HandleName.parse("88.118.8/E")) is None


# -- PUT with index= and overwrite=false ------------------------------------------------
async def test_put_values_without_overwrite_refuses_existing_indexes(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    url = {"index": 1, "type": "URL", "data": "http://a/"}
    assert await put(client, "88.118.8/OW", [url]) == 201
    other = {"index": 1, "type": "URL", "data": "http://evil/"}
    r = await client.put(
        "/api/handles/88.118.8/OW?index=1&overwrite=false",
        json={"values": [other]},
        auth=ADMIN,  # type: ignore[arg-type]
    )
    assert (r.status_code, r.json()["responseCode"]) == (409, 201)
    values = (await client.get("/api/handles/88.118.8/OW?index=1")).json()["values"]
    assert values[0]["data"]["value"] == "http://a/"
    new = {"index": 2, "type": "EMAIL", "data": "ops@a.cn"}
    r = await client.put(
        "/api/handles/88.118.8/OW?index=2&overwrite=false",
        json={"values": [new]},
        auth=ADMIN,  # type: ignore[arg-type]
    )
    assert r.status_code == 200
    r = await client.put("/api/handles/88.118.8/OW?index=1", json={"values": [other]}, auth=ADMIN)  # type: ignore[arg-type]
    assert r.status_code == 200  # overwrite defaults to true


# -- identities -------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["³:0.NA/88.118.8", "٣:0.NA/88.118.8", "\uff1300:0.NA/88.118.8"])
def test_non_ascii_digits_are_not_an_index(text: str) -> None:
    with pytest.raises(InvalidHandle):
        IndexedHandle.parse(text)


@pytest.mark.parametrize("user", ["³:0.NA/88.118.8", "³%3A0.NA/88.118.8", "٣:0.NA/88.118.8"])
async def test_non_ascii_digit_user_is_a_401_with_a_message(
    client: httpx.AsyncClient, user: str
) -> None:
    token = base64.b64encode(f"{user}:s3cret".encode()).decode()
    r = await client.put(
        "/api/handles/88.118.8/X",
        json={"values": [{"index": 1, "type": "URL", "data": "http://x/"}]},
        headers={"Authorization": f"Basic {token}"},
    )
    assert r.status_code == 401
    assert r.json()["responseCode"] == 404
    assert "index:handle" in r.json()["message"]


# -- failures: one message, same cost, limited per source ----------------------------------
async def test_unknown_identity_and_wrong_secret_look_alike(client: httpx.AsyncClient) -> None:
    url = [{"index": 1, "type": "URL", "data": "http://x/"}]
    bodies = []
    for user, secret in [("300%3A0.NA/88.118.8", "wrong"), ("301%3A0.NA/88.118.8", "s3cret"),
                         ("300%3A88.118.8/NOBODY", "s3cret")]:  # fmt: skip
        r = await client.put("/api/handles/88.118.8/X", json={"values": url}, auth=(user, secret))
        assert r.status_code == 401
        body = r.json()
        bodies.append(
            (body["responseCode"], body["message"].replace(user.replace("%3A", ":"), "ID"))
        )
    assert len(set(bodies)) == 1, bodies


async def test_unknown_identity_costs_about_what_a_known_one_does(
    service: HandleService,
) -> None:
    auth = service.auth

    async def timed(creds: Credentials) -> float:
        start = time.perf_counter()
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(creds)
        return time.perf_counter() - start

    # Whether a handle exists is public (it resolves); whether an index of it holds a
    # secret is not: an index without one opens a decoy secret, as a real one opens its own.
    for _ in range(3):  # warm up (the node key is read once)
        await timed(Credentials(ADMIN_ID, "warm"))
        await timed(Credentials(IndexedHandle(301, NA), "x"))
    wrong = [await timed(Credentials(ADMIN_ID, f"wrong{n}")) for n in range(15)]
    unknown = [await timed(Credentials(IndexedHandle(301 + n, NA), "x")) for n in range(15)]
    assert statistics.median(unknown) > 0.3 * statistics.median(wrong), (unknown, wrong)


async def test_legacy_derivation_runs_off_the_event_loop(tmp_path: Path) -> None:
    verifier = SecretVerifier.create("pw", iterations=400_000)  # ~150 ms per check
    record = (HandleValue(300, "HS_SECKEY", SecKeyData(verifier.to_bytes())),)

    async def lookup(_handle: HandleName) -> tuple[HandleValue, ...]:
        return record

    auth = Authorizer(lookup, frozenset())
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    start = time.perf_counter()
    await auth.authenticate(Credentials(ADMIN_ID, "pw"))
    elapsed = time.perf_counter() - start
    done.set()
    await tick
    assert elapsed > 0.05
    assert max(gaps) < elapsed / 2, (max(gaps), elapsed)


async def test_failures_are_limited_per_source(service: HandleService) -> None:
    now = [1000.0]
    service.auth.limiter = FailureLimiter(FailureLimits(burst=3, per_second=0.5), lambda: now[0])
    right = Credentials(ADMIN_ID, "s3cret")
    for _ in range(3):
        with pytest.raises(AuthenticationFailed, match="authentication as"):
            await service.auth.authenticate(Credentials(ADMIN_ID, "bad"), peer="10.0.0.1")
    with pytest.raises(AuthenticationFailed, match="too many failed authentications"):
        await service.auth.authenticate(right, peer="10.0.0.1")  # even the right secret
    assert await service.auth.authenticate(right, peer="10.0.0.2") == ADMIN_ID  # other source
    now[0] += 2.0  # one token back
    assert await service.auth.authenticate(right, peer="10.0.0.1") == ADMIN_ID


async def test_rest_failures_from_one_address_are_limited(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    service.auth.limiter = FailureLimiter(FailureLimits(burst=2, per_second=0.01))
    url = [{"index": 1, "type": "URL", "data": "http://x/"}]
    for _ in range(2):
        r = await client.put(
            "/api/handles/88.118.8/X", json={"values": url}, auth=("300%3A0.NA/88.118.8", "no")
        )  # type: ignore[arg-type]
        assert r.status_code == 401
    r = await client.put("/api/handles/88.118.8/X", json={"values": url}, auth=ADMIN)  # type: ignore[arg-type]
    assert r.status_code == 401
    assert "too many failed authentications" in r.json()["message"]


def test_limiter_map_is_bounded() -> None:
    limiter = FailureLimiter(FailureLimits(burst=1, max_sources=3), lambda: 0.0)
    for n in range(10):
        limiter.failed(f"10.0.0.{n}")
    assert len(limiter) == 3
    assert limiter.retry_after("10.0.0.9") > 0
    assert limiter.retry_after("10.0.0.0") == 0  # forgotten first
