"""The change counter: shared across processes, bumped by every committed write."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iinode.errors import HandleNotFound
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, UrlData
from iinode.node.changes import COUNTER_FILE, ChangeCounter
from iinode.node.service import BulkRegistrar, HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import SQLiteStore

ADMIN = IndexedHandle(300, HandleName.parse("0.NA/88.118.8"))


def test_process_local_counter_counts() -> None:
    c = ChangeCounter()
    assert c.value() == 0
    c.bump()
    c.bump()
    assert c.value() == 2
    c.close()


def test_two_mappings_of_one_file_see_each_other(tmp_path: Path) -> None:
    a = ChangeCounter(tmp_path / COUNTER_FILE)
    b = ChangeCounter(tmp_path / COUNTER_FILE)
    a.bump()
    assert b.value() == 1
    b.bump()
    assert a.value() == 2
    a.close()
    b.close()
    again = ChangeCounter(tmp_path / COUNTER_FILE)
    assert again.value() == 2  # persisted in the file
    again.close()


BUMPER = """
import sys
from pathlib import Path
from iinode.node.changes import ChangeCounter
c = ChangeCounter(Path(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    c.bump()
"""


def test_concurrent_bumps_from_processes_are_not_lost(tmp_path: Path) -> None:
    path = tmp_path / COUNTER_FILE
    procs = [subprocess.Popen([sys.executable, "-c", BUMPER, str(path), "20000"]) for _ in range(4)]
    for p in procs:
        assert p.wait(60) == 0
    c = ChangeCounter(path)
    assert c.value() == 80000
    c.close()


@pytest.fixture
async def service(tmp_path: Path) -> HandleService:
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    store = SQLiteStore(tmp_path / "h.sqlite3")
    svc = HandleService(settings, store, changes=ChangeCounter(tmp_path / COUNTER_FILE))
    await svc.initialise("s3cret")
    return svc


async def test_every_committed_write_bumps(service: HandleService) -> None:
    changes = service.changes
    h = HandleName.parse("88.118.8/a")
    url = HandleValue(1, "URL", UrlData("https://example.org/a"))

    before = changes.value()
    await service.create(h, [url], ADMIN)
    assert changes.value() == before + 1
    await service.put_values(h, [HandleValue(2, "URL", UrlData("https://b.example"))], ADMIN)
    assert changes.value() == before + 2
    await service.remove_values(h, [2], ADMIN)
    assert changes.value() == before + 3
    await service.delete(h, ADMIN)
    assert changes.value() == before + 4

    # A refused write commits nothing and bumps nothing.
    with pytest.raises(HandleNotFound):
        await service.delete(h, ADMIN)
    assert changes.value() == before + 4

    registrar = BulkRegistrar(service)
    rows = [registrar.encode(HandleName.parse(f"88.118.8/b{i}"), [url]) for i in range(3)]
    await registrar.write(rows)
    assert changes.value() == before + 5
    await service.store.close()
