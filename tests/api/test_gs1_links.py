"""Managing GS1 links: the API (authorised as handle writes) and ``iinode gs1 link``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from api.gs1_support import GTIN, SECRET, add_link, admin, gs1_node
from iinode.api.app import create_app
from iinode.cli.main import app as cli
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.storage import MemoryStore
from support import free_port

KEY = f"/01/{GTIN}"
PIP = {"linkType": "gs1:pip", "href": "https://brand.example/pip", "title": "Product"}


async def links(client: httpx.AsyncClient, path: str = KEY) -> list[dict[str, Any]]:
    r = await client.get(f"/api/gs1/links{path}")
    assert r.status_code == 200
    result: list[dict[str, Any]] = r.json()["links"]
    return result


async def test_writes_need_the_prefix_administrator(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        assert (await client.post(f"/api/gs1/links{KEY}", json=PIP)).status_code == 401
        assert (await add_link(client, KEY, auth=admin(secret="wrong"), **PIP)).status_code == 401
        assert await links(client) == []
        r = await client.delete(f"/api/gs1/links{KEY}", params={"index": 500})
        assert r.status_code == 401
        assert (await add_link(client, KEY, **PIP)).status_code == 201
        r = await client.delete(
            f"/api/gs1/links{KEY}", params={"index": 500}, auth=admin(secret="x")
        )
        assert r.status_code == 401
        assert len(await links(client)) == 1


async def test_links_map_to_typed_values_of_the_key_record(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        r = await add_link(client, f"{KEY}/10/LOT1", **PIP)
        assert r.json()["handle"] == f"88.118.8/gs1{KEY}/10/LOT1"
        record = (await client.get(f"/api/handles/88.118.8/gs1{KEY}/10/LOT1")).json()
        (value,) = [v for v in record["values"] if v["type"] == "GS1_LINK"]
        assert value["index"] == 500
        assert value["data"]["value"].startswith('{"linkType":"gs1:pip"')


async def test_exactly_one_default_per_key(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        await add_link(client, KEY, **PIP)
        await add_link(client, KEY, linkType="gs1:faqs", href="https://b.example/faq", title="FAQ")
        assert [o["default"] for o in await links(client)] == [True, False]
        await add_link(
            client, KEY, linkType="gs1:support", href="https://b.example/s", title="S", default=True
        )
        assert [o["default"] for o in await links(client)] == [False, False, True]
        assert (await client.get(KEY)).headers["location"] == "https://b.example/s"
        r = await client.delete(f"/api/gs1/links{KEY}", params={"index": 502}, auth=admin())
        assert r.status_code == 200
        assert [(o["index"], o["default"]) for o in await links(client)] == [
            (500, True),
            (501, False),
        ]


async def test_bad_input_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        for path, link in (
            ("/01/09506000134353", PIP),
            (f"{KEY}/21/S/10/L", PIP),
            (KEY, {**PIP, "linkType": "gs1:bogus"}),
            (KEY, {**PIP, "href": "ftp://x"}),
            (KEY, {**PIP, "title": " "}),
            (KEY, {**PIP, "hreflang": ["not a tag"]}),
            (KEY, {**PIP, "colour": "red"}),
        ):
            r = await add_link(client, path, **link)
            assert r.status_code == 400, (path, link, r.text)
        assert await links(client) == []
        r = await client.delete(f"/api/gs1/links{KEY}", params={"index": 777}, auth=admin())
        assert r.status_code == 400


# -- the command line, against a node served by uvicorn ----------------------------------------
@pytest.fixture
def node_url(tmp_path: Path) -> Iterator[str]:
    import asyncio

    port = free_port()
    settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8")
    service = HandleService(settings, MemoryStore())
    asyncio.run(service.initialise(SECRET))
    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_cli_add_list_remove(node_url: str) -> None:
    runner = CliRunner()
    base = ["--node", node_url]
    r = runner.invoke(cli, ["gs1", "link", "add", f"https://id.example{KEY}", "-t", "gs1:pip",
                            "--href", "https://brand.example/pip", "--title", "Product",
                            "--lang", "en", *base, "--secret", SECRET])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "index 500" in r.output
    r = runner.invoke(cli, ["gs1", "link", "add", KEY, "-t", "gs1:faqs", "--href",
                            "https://brand.example/faq", "--title", "FAQ", *base,
                            "--secret", SECRET])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["gs1", "link", "list", KEY, *base])
    assert r.exit_code == 0, r.output
    assert "gs1:pip" in r.output
    assert "gs1:faqs" in r.output
    location = httpx.get(f"{node_url}{KEY}", follow_redirects=False).headers["location"]
    assert location == "https://brand.example/pip"
    r = runner.invoke(
        cli, ["gs1", "link", "remove", KEY, "--index", "500", *base, "--secret", SECRET]
    )
    assert r.exit_code == 0, r.output
    location = httpx.get(f"{node_url}{KEY}", follow_redirects=False).headers["location"]
    assert location == "https://brand.example/faq"
    # Over HTTP/1.1 on a socket too: HEAD, the CORS preflight, the description file.
    r = httpx.head(f"{node_url}{KEY}")
    assert (r.status_code, r.headers["location"]) == (307, "https://brand.example/faq")
    r = httpx.options(f"{node_url}{KEY}", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "GET"})  # fmt: skip
    assert (r.status_code, r.headers["access-control-allow-origin"]) == (204, "*")
    assert httpx.get(f"{node_url}/.well-known/gs1resolver").json()["resolverRoot"] == node_url


def test_cli_checks_the_key_before_sending(node_url: str) -> None:
    r = CliRunner().invoke(cli, ["gs1", "link", "list", "/01/09506000134353", "--node", node_url])
    assert r.exit_code != 0
    assert "check digit" in str(r.exception or r.output)
    r = CliRunner().invoke(cli, ["gs1", "link", "remove", KEY, "--index", "500", "--node", node_url,
                                 "--secret", "wrong"])  # fmt: skip
    assert r.exit_code != 0
    assert str(r.exception) == "authentication as 300:0.NA/88.118.8 failed"


async def test_answers_follow_every_write(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        assert (await client.get(KEY)).status_code == 404
        await add_link(client, KEY, **PIP)
        assert (await client.get(KEY)).headers["location"] == PIP["href"]
        await add_link(client, KEY, linkType="gs1:faqs", href="https://b.example/f", title="F",
                       default=True)  # fmt: skip
        assert (await client.get(KEY)).headers["location"] == "https://b.example/f"
        await client.delete(f"/api/gs1/links{KEY}", params={"index": 501}, auth=admin())
        assert (await client.get(KEY)).headers["location"] == PIP["href"]
        await client.delete(f"/api/gs1/links{KEY}", params={"index": 500}, auth=admin())
        r = await client.get(KEY)  # the record is left without links: its data is the target
        assert r.headers["location"] == f"http://node/api/handles/88.118.8/gs1{KEY}"


async def test_concurrent_adds_get_their_own_indexes(tmp_path: Path) -> None:
    import asyncio

    async with gs1_node(tmp_path) as client:
        await add_link(client, KEY, **PIP)
        answers = await asyncio.gather(*(
            add_link(client, KEY, linkType="gs1:faqs", href=f"https://b.example/{n}", title="F",
                     default=n % 3 == 0)
            for n in range(9)
        ))  # fmt: skip
        assert [r.status_code for r in answers] == [201] * 9
        stored = await links(client)
        assert sorted(o["index"] for o in stored) == list(range(500, 510))
        assert sorted(o["href"] for o in stored)[:-1] == sorted(
            f"https://b.example/{n}" for n in range(9)
        )
        doc = (await client.get(KEY, params={"linkType": "linkset"})).json()
        assert len(doc["linkset"][0]["https://gs1.org/voc/defaultLink"]) == 1
