"""Authenticated CREATE_HANDLE throughput over native TCP, beside unauthenticated references.

One enterprise node (``88.118.8``, SQLite with ``synchronous=FULL`` as served,
``--workers`` native worker processes on 127.0.0.1).  ``--clients`` clients,
each on its own keep-alive TCP connection, create new handles (one URL value)
for ``--seconds`` per mode:

* ``HS_SECKEY per request``: every CREATE_HANDLE is challenged (two round
  trips); the client answers as a Handle.Net 9 client does at version 2.10,
  with PBKDF2-HMAC-SHA1 (16 octets of fresh salt, 10,000 iterations: the
  server derives once per answer), and, in a second row, with HMAC-SHA256 (no
  derivation on either side).
* ``session``: SESSION_SETUP once per connection (RSA-OAEP key exchange after
  one HS_SECKEY challenge), then one HS_MAC'd message per write.
* ``HS_PUBKEY per request``: challenged, answered with an RSA-2048 PKCS#1 v1.5
  signature (two round trips; the client signs, the server verifies).

The same-run references, without any network or authentication protocol, on
the same kind of store in this process:

* ``store writes``: ``store.modify`` of a pre-encoded record, one transaction
  per handle (the cost floor of a durable single write);
* ``HandleService.create``: the same call the native handler makes after
  authentication (HS_ADMIN check, record checks, the write).

Medians of ``--runs`` runs.

    .venv/bin/python bench/native_auth.py --runs 3 --seconds 3 --clients 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from itertools import count
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleName,
    HandleValue,
    IndexedHandle,
    PubKeyData,
    UrlData,
    encode_record,
)
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.public_keys import encode_public_key
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import DigestAlgorithm
from iinode.resolution import NativeAdminClient, PublicKeyAuth, SecretKeyAuth
from iinode.resolution.native_admin import Authentication
from iinode.resolution.native_server import start_native_workers
from iinode.storage import SQLiteStore
from native_ports import free_native_port

PREFIX = "88.118.8"
SECRET = "bench-secret"
ADMIN = IndexedHandle(300, HandleName.parse(f"0.NA/{PREFIX}"))
KEY_HOLDER = IndexedHandle(300, HandleName(PREFIX, "BENCH-KEY"))
_names = count()


def new_handle(tag: str) -> HandleName:
    return HandleName(PREFIX, f"{tag}-{next(_names)}")


def url_value(n: int) -> list[HandleValue]:
    return [HandleValue(1, "URL", UrlData(f"http://example.cn/{n}"))]


async def rate(
    seconds: float, clients: int, make: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]
) -> float:
    """Writes per second of ``clients`` concurrent loops, each calling what ``make`` returns."""
    ops = [await make(n) for n in range(clients)]
    done = 0
    deadline = time.perf_counter() + seconds

    async def loop(op: Callable[[], Awaitable[None]]) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await op()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(op) for op in ops))
    return done / (time.perf_counter() - started)


async def native_rate(
    port: int, auth: Authentication, seconds: float, clients: int, *, session: bool
) -> float:
    opened: list[NativeAdminClient] = []

    async def make(n: int) -> Callable[[], Awaitable[None]]:
        client = NativeAdminClient("127.0.0.1", port, auth)
        await client.connect()
        if session:
            await client.open_session()
        opened.append(client)

        async def op() -> None:
            await client.create(new_handle("N"), url_value(n))

        return op

    try:
        return await rate(seconds, clients, make)
    finally:
        for client in opened:
            await client.close()


async def reference_rates(data_dir: Path, seconds: float, clients: int) -> tuple[float, float]:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=data_dir, prefix=PREFIX)
    store = SQLiteStore(data_dir / "handles.sqlite3")
    service = HandleService(settings, store)
    if await service.lookup(HandleName.parse(f"0.NA/{PREFIX}")) is None:
        await service.initialise(SECRET)
    raw = encode_record(url_value(0))

    async def make_raw(_n: int) -> Callable[[], Awaitable[None]]:
        async def op() -> None:
            await store.modify(str(new_handle("R")), lambda _old: raw)

        return op

    async def make_service(n: int) -> Callable[[], Awaitable[None]]:
        async def op() -> None:
            await service.create(new_handle("S"), url_value(n), ADMIN, overwrite=False)

        return op

    try:
        return (
            await rate(seconds, clients, make_raw),
            await rate(seconds, clients, make_service),
        )
    finally:
        await store.close()


def start_node(data_dir: Path, workers: int) -> tuple[int, rsa.RSAPrivateKey]:
    """Seed the node (admin secret, a public-key holder allowed to add handles)."""
    port = free_native_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=data_dir, prefix=PREFIX, handle_port=port
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    async def seed() -> None:
        store = SQLiteStore(data_dir / "handles.sqlite3")
        changes = ChangeCounter(data_dir / COUNTER_FILE)
        service = HandleService(settings, store, changes=changes)
        na = await service.initialise(SECRET)
        holder = [HandleValue(300, "HS_PUBKEY", PubKeyData(encode_public_key(key.public_key())))]
        await service.create(KEY_HOLDER.handle, holder, ADMIN)
        grant = HandleValue(101, "HS_ADMIN", AdminData(AdminPermission.ADD_HANDLE, KEY_HOLDER))
        await service.put_values(na, [grant], ADMIN)
        changes.close()
        await store.close()

    data_dir.mkdir(parents=True)
    asyncio.run(seed())
    return port, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port, key = start_node(root / "node", args.workers)
        settings = NodeSettings(
            role=Role.ENTERPRISE, data_dir=root / "node", prefix=PREFIX, handle_port=port
        )
        workers = start_native_workers(settings, args.workers, host="127.0.0.1")
        seckey = SecretKeyAuth(ADMIN, SECRET)
        seckey_hmac = SecretKeyAuth(ADMIN, SECRET, answer_type=DigestAlgorithm.HMAC_SHA256)
        pubkey = PublicKeyAuth(KEY_HOLDER, key)
        try:
            for run in range(args.runs):
                s, c = args.seconds, args.clients
                store_rate, service_rate = asyncio.run(reference_rates(root / "ref", s, c))
                measured = {
                    "reference: store writes (in process)": store_rate,
                    "reference: HandleService.create (in process)": service_rate,
                    "HS_SECKEY challenge per request (PBKDF2)": asyncio.run(
                        native_rate(port, seckey, s, c, session=False)
                    ),
                    "HS_SECKEY challenge per request (HMAC-SHA256)": asyncio.run(
                        native_rate(port, seckey_hmac, s, c, session=False)
                    ),
                    "session (HS_MAC per request)": asyncio.run(
                        native_rate(port, seckey, s, c, session=True)
                    ),
                    "HS_PUBKEY challenge per request": asyncio.run(
                        native_rate(port, pubkey, s, c, session=False)
                    ),
                }
                for label, value in measured.items():
                    rows.setdefault(label, []).append(value)
                print(
                    f"run {run + 1}/{args.runs}: "
                    + ", ".join(f"{v:,.0f}" for v in measured.values())
                )
        finally:
            workers.stop()
    reference = statistics.median(rows["reference: HandleService.create (in process)"])
    print(f"\nmedians of {args.runs} runs, {args.clients} clients, {args.workers} worker(s)")
    print(f"{'':46} {'creates/s':>10} {'vs HandleService.create':>24}")
    for label, values in rows.items():
        value = statistics.median(values)
        print(f"{label:46} {value:10,.0f} {value / reference:24.2f}")


if __name__ == "__main__":
    main()
