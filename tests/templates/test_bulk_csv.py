"""``iinode bulk-load FILE.csv --template T``: CSV columns named after a template's
attributes fill them, every row is linked and checked; run as a real process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from iinode.identifiers import HandleName, IndexedHandle
from iinode.node.service import HandleService
from iinode.node.settings_sources import resolve_settings
from iinode.node.templates import Template
from iinode.storage import open_store
from iinode.storage.search import SearchQuery
from iinode.storage.sqlite import SQLiteStore
from templates.conftest import INDEX, TEMPLATE, bearing

PREFIX = "88.118.8"


def iinode(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "iinode", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def node_with_template(tmp_path: Path, status: str = "published") -> Path:
    data = tmp_path / "node"
    init = iinode(
        "init", "--role", "enterprise", "--prefix", PREFIX, "--data-dir", str(data),
        "--admin-secret", "pw",
    )  # fmt: skip
    assert init.returncode == 0, init.stderr

    async def define() -> None:
        settings = resolve_settings(data)
        store = await open_store(settings.store_url, base_dir=data)
        try:
            service = HandleService(settings, store)
            doc = bearing(status=status)
            doc["attributes"].append({"name": "title", "type": "string", "fulltext": True})
            await service.templates.define(
                Template.from_json(doc, prefix=PREFIX), IndexedHandle.parse(f"300:0.NA/{PREFIX}")
            )
        finally:
            await store.close()

    asyncio.run(define())
    return data


async def read(data: Path, handle: str) -> dict[int, tuple[str, str]]:
    store = await open_store(resolve_settings(data).store_url, base_dir=data)
    try:
        service = HandleService(resolve_settings(data), store)
        record = await service.lookup(HandleName.parse(handle))
        return {v.index: (v.type, v.data_bytes.decode("utf-8", "replace")) for v in record or ()}
    finally:
        await store.close()


def test_csv_rows_are_registered_against_the_template(tmp_path: Path) -> None:
    data = node_with_template(tmp_path)
    csv = tmp_path / "bearings.csv"
    csv.write_text(
        "handle,URL,model,serial,grade,title,DESC\n"
        + "".join(
            f"{PREFIX}/B{n},http://f.cn/{n},6204-2RS,S{n:04d},P{(0, 6, 5)[n % 3]},"
            f"深沟球轴承 {n},part {n}\n"
            for n in range(250)
        ),
        encoding="utf-8",
    )
    out = iinode("bulk-load", str(csv), "--data-dir", str(data), "--template", TEMPLATE)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "loaded 250 identifiers, skipped 0" in out.stdout
    values = asyncio.run(read(data, f"{PREFIX}/B7"))
    assert values[1] == ("URL", "http://f.cn/7")
    assert values[2] == ("DESC", "part 7")
    assert values[INDEX["model"]] == ("model", "6204-2RS")
    assert values[INDEX["serial"]] == ("serial", "S0007")
    assert values[1001][0] == "II_TEMPLATE"
    assert TEMPLATE in values[1001][1]

    async def search() -> list[str]:
        store = await open_store(resolve_settings(data).store_url, base_dir=data)
        assert isinstance(store, SQLiteStore)
        try:
            query = SearchQuery((("attr:grade", "P5"), ("words", "轴承"), ("words", "41")))
            return await store.search(query)
        finally:
            await store.close()

    assert asyncio.run(search()) == [f"{PREFIX}/B41"]  # 41 % 3 == 2: grade P5


def test_csv_against_a_template_refuses_what_breaks_it(tmp_path: Path) -> None:
    data = node_with_template(tmp_path)
    bad_row = tmp_path / "bad.csv"
    bad_row.write_text(
        "handle,model,serial,grade\n"
        f"{PREFIX}/B1,6204,S1,P0\n"
        f"{PREFIX}/B2,6204,S2,P9\n"  # not one of the grades
    )
    out = iinode("bulk-load", str(bad_row), "--data-dir", str(data), "--template", TEMPLATE)
    assert out.returncode == 1
    assert "bad.csv:3" in out.stderr
    assert "grade" in out.stderr
    assert "Traceback" not in out.stderr
    misspelt = tmp_path / "misspelt.csv"
    misspelt.write_text(f"handle,model,serail\n{PREFIX}/B1,6204,S1\n")
    out = iinode("bulk-load", str(misspelt), "--data-dir", str(data), "--template", TEMPLATE)
    assert out.returncode == 1
    assert "column 'serail' is not an attribute of" in out.stderr
    for template, message in (
        (f"{PREFIX}/template/nothing/1", "holds no template"),
        ("not a handle", "not a handle"),
    ):
        out = iinode("bulk-load", str(misspelt), "--data-dir", str(data), "--template", template)
        assert out.returncode == 1
        assert message in out.stderr.replace("\n", " "), out.stderr
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"handle": "88.118.8/J1", "values": []}\n')
    out = iinode("bulk-load", str(jsonl), "--data-dir", str(data), "--template", TEMPLATE)
    assert out.returncode == 1
    assert "--template reads CSV columns" in out.stderr
    assert asyncio.run(read(data, f"{PREFIX}/B1")) == {}  # nothing of any file was written


def test_a_draft_template_takes_no_rows(tmp_path: Path) -> None:
    data = node_with_template(tmp_path, status="draft")
    csv = tmp_path / "b.csv"
    csv.write_text(f"handle,model,serial\n{PREFIX}/B1,6204,S1\n")
    out = iinode("bulk-load", str(csv), "--data-dir", str(data), "--template", TEMPLATE)
    assert out.returncode == 1
    assert "draft" in out.stderr
