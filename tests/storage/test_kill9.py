"""Every acknowledged write survives a SIGKILL of the writing process.

A child process writes through ``HandleService`` (single creates, then bulk
batches) and prints each handle only after the call returned, i.e. after the
store committed.  The parent reads acknowledgements until the child is well
into the stream, kills it with SIGKILL mid-write, reopens the store and checks
that every acknowledged handle is there with its value.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from iinode.identifiers import HandleName, UrlData, decode_record
from iinode.storage import open_store
from support import require_service

WRITER = r"""
import asyncio, sys
from pathlib import Path
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, UrlData
from iinode.node.service import BulkRegistrar, HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import open_store

data_dir, url, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
admin = IndexedHandle.parse("300:0.NA/88.118.8")

async def main() -> None:
    store = await open_store(url, base_dir=data_dir)
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=data_dir, prefix="88.118.8")
    service = HandleService(settings, store)
    await service.initialise("s3cret")
    n = 0
    if mode == "single":
        while True:
            name = HandleName("88.118.8", f"S{n}")
            value = HandleValue(1, "URL", UrlData(f"http://k.cn/{n}"))
            await service.create(name, [value], admin)
            sys.stdout.write(f"S{n}\n")
            sys.stdout.flush()
            n += 1
    registrar = BulkRegistrar(service)
    while True:
        suffixes = [f"B{n + i}" for i in range(500)]
        rows = [
            registrar.encode(HandleName("88.118.8", s),
                             [HandleValue(1, "URL", UrlData(f"http://k.cn/{s[1:]}"))])
            for s in suffixes
        ]
        await registrar.write(rows)
        sys.stdout.write("".join(s + "\n" for s in suffixes))
        sys.stdout.flush()
        n += 500

asyncio.run(main())
"""


async def kill_mid_stream(
    data_dir: Path, url: str, mode: str, acknowledged_before_kill: int
) -> set[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(data_dir),
        url,
        mode,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: set[str] = set()
    try:
        while len(acked) < acknowledged_before_kill:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not line:
                pytest.fail(f"writer stopped early after {len(acked)} writes")
            acked.add(line.decode().strip())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    # Whatever the child managed to print before dying was acknowledged too.
    for rest in (await proc.stdout.read()).decode().splitlines():
        if rest.strip():
            acked.add(rest.strip())
    return acked


async def check_present(url: str, data_dir: Path, acked: set[str]) -> None:
    store = await open_store(url, base_dir=data_dir)
    try:
        missing = []
        for suffix in sorted(acked):
            raw = await store.get(f"88.118.8/{suffix}")
            if raw is None:
                missing.append(suffix)
                continue
            urls = [v.data for v in decode_record(raw) if v.type == "URL"]
            assert urls == [UrlData(f"http://k.cn/{suffix[1:]}")]
        assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:10]}"
        handle = HandleName.parse("0.NA/88.118.8")
        assert await store.get(str(handle)) is not None
    finally:
        await store.close()


@pytest.mark.parametrize(("mode", "count"), [("single", 300), ("bulk", 5000)])
async def test_sqlite_keeps_every_acknowledged_write(tmp_path: Path, mode: str, count: int) -> None:
    url = "sqlite:handles.sqlite3"
    acked = await kill_mid_stream(tmp_path, url, mode, count)
    assert len(acked) >= count
    await check_present(url, tmp_path, acked)


@pytest.mark.parametrize(("mode", "count"), [("single", 200), ("bulk", 5000)])
async def test_postgres_keeps_every_acknowledged_write(
    tmp_path: Path, mode: str, count: int
) -> None:
    host, port = require_service("postgres")
    table = f"kill9_{uuid.uuid4().hex[:10]}"
    url = f"postgresql://postgres@{host}:{port}/test#{table}"
    try:
        acked = await kill_mid_stream(tmp_path, url, mode, count)
        assert len(acked) >= count
        await check_present(url, tmp_path, acked)
    finally:
        from iinode.storage.postgres import PostgresStore

        pg = await PostgresStore.open(f"postgresql://postgres@{host}:{port}/test", table=table)
        await pg.drop()
        await pg.close()
