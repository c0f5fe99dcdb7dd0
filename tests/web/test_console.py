"""The web console against a running demo network: its routes over HTTP, its views in Chromium.

The browser tests drive Debian's ``chromium`` with Playwright; without it they
skip, or fail under ``IINODE_REQUIRE_SERVICES=1``.  With
``IINODE_CONSOLE_SCREENSHOTS=1`` they refresh the screenshots in docs/console/.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from rich.console import Console

from cli.cli_support import free_range
from iinode.demo.network import DemoNetwork
from iinode.demo.topology import DEMO_GTIN, NOTICE_ID, SECRET, ports_needed
from iinode.web import STATIC_DIR
from support import services_required

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def _auth(prefix: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(f"300%3A0.NA%2F{prefix}", SECRET)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def network(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DemoNetwork]:
    console = Console(file=io.StringIO())
    async with DemoNetwork(
        console, free_range(ports_needed()), tmp_path_factory.mktemp("demo"),
        products=20, heartbeat=0.5, step_interval=0.3, resolutions_per_second=3,
    ) as net:  # fmt: skip
        yield net


# -- routes over HTTP -------------------------------------------------------------------------


async def test_root_redirects_to_the_console_and_assets_come_from_the_package(
    network: DemoNetwork,
) -> None:
    top = network.nodes["88"].url
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(f"{top}/")
        assert r.status_code == 307
        assert r.headers["location"] == "/console/"
        page = (await c.get(f"{top}/console/")).text
        assert "console.js" in page
        for name in ("console.js", "api.js", "charts.js", "console.css"):
            r = await c.get(f"{top}/console/static/{name}")
            assert r.status_code == 200
            assert r.content == (STATIC_DIR / name).read_bytes()
        assert (await c.get(f"{top}/console/static/missing.js")).status_code == 404


async def test_docs_page_loads_swagger_ui_from_this_node_only(network: DemoNetwork) -> None:
    top = network.nodes["88"].url
    async with httpx.AsyncClient(timeout=10) as c:
        page = (await c.get(f"{top}/docs")).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources
        assert all(s.startswith("/") or s.startswith("data:") for s in sources)
        for s in sources:
            if s.startswith("/"):
                assert (await c.get(f"{top}{s}")).status_code == 200, s
        assert "/docs/assets/swagger-ui-bundle.js" in sources
        schema = (await c.get(f"{top}/openapi.json")).json()
        assert "/api/handles/{handle}" in schema["paths"]
        assert "/console/api/resolve" in schema["paths"]
        assert (await c.get(f"{top}/redoc")).status_code == 404  # it would load from a CDN


async def test_whoami_checks_credentials_as_the_rest_api(network: DemoNetwork) -> None:
    ent = network.nodes["88.118.8"].url
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.get(f"{ent}/console/api/whoami")).status_code == 401
        bad = httpx.BasicAuth("300%3A0.NA%2F88.118.8", "wrong")
        assert (await c.get(f"{ent}/console/api/whoami", auth=bad)).status_code == 401
        r = await c.get(f"{ent}/console/api/whoami", auth=_auth("88.118.8"))
        assert r.json() == {"identity": "300:0.NA/88.118.8", "admin": True}
        # a child's identity authenticates at its parent (it holds the child's key) but is
        # not the parent's administrator
        r = await c.get(f"{network.nodes['88.118'].url}/console/api/whoami", auth=_auth("88.118.8"))
        assert r.json() == {"identity": "300:0.NA/88.118.8", "admin": False}


async def test_tree_has_every_level_with_its_figures(network: DemoNetwork) -> None:
    top = network.nodes["88"].url
    async with httpx.AsyncClient(timeout=10) as c:
        tree = (await c.get(f"{top}/console/api/tree", params={"depth": 2})).json()
        assert tree["prefix"] == "88"
        assert tree["role"] == "top"
        provinces = {p["prefix"]: p for p in tree["children"]}
        expected = {s.spec.prefix for s in network.nodes.values() if s.spec.parent == "88"}
        assert set(provinces) == expected
        for prefix, province in provinces.items():
            kids = {e["prefix"] for e in province["children"]}
            below = {s.spec.prefix for s in network.nodes.values() if s.spec.parent == prefix}
            assert kids == below
        ent = next(
            e for p in provinces.values() for e in p["children"] if e["prefix"] == "88.118.8"
        )
        stored = (await c.get(f"{network.nodes['88.118.8'].url}/api/node")).json()["handles"]
        assert ent["handles"] == stored
        assert ent["reachable"] is True
        assert (await c.get(f"{top}/console/api/tree", params={"depth": 9})).status_code == 422


async def test_resolve_shows_the_path_through_the_hierarchy(network: DemoNetwork) -> None:
    top = network.nodes["88"]
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(f"{top.url}/console/api/resolve", params={"id": "88.120.5/REACTOR-01"})
        answer = r.json()
        servers = [h["server"] for h in answer["chain"]]
        assert servers[0] == top.url
        assert servers[-1] == network.nodes["88.120.5"].url
        assert network.nodes["88.120"].url in servers
        assert answer["chain"][-1]["code"] == "SUCCESS"
        assert "IINODE_EQUIPMENT" in {v["type"] for v in answer["values"]}
        r = await c.get(f"{top.url}/console/api/resolve", params={"id": "88.120.5/NO-SUCH"})
        assert r.status_code == 404
        assert r.json()["code"] == "HANDLE_NOT_FOUND"
        r = await c.get(f"{top.url}/console/api/resolve", params={"id": "/01/123"})
        assert r.status_code == 400
        assert "GS1" in r.json()["error"]


async def test_resolve_a_gs1_digital_link(network: DemoNetwork) -> None:
    ent = network.nodes["88.118.8"]
    link = {"linkType": "gs1:pip", "href": "https://example.com/press", "title": "Press"}
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.post(f"{ent.url}/api/gs1/links/01/09506000134369", json=link,
                         auth=_auth("88.118.8"))  # fmt: skip
        assert r.status_code == 201, r.text
        r = await c.get(f"{ent.url}/console/api/resolve", params={"id": "/01/09506000134369"})
        answer = r.json()
        assert answer["gs1"] is True
        assert answer["handle"] == "88.118.8/gs1/01/09506000134369"
        assert answer["chain"][-1]["code"] == "SUCCESS"
        assert ent.url in {h["server"] for h in answer["chain"]}
        links = [v for v in answer["values"] if v["type"] == "GS1_LINK"]
        assert links
        assert "https://example.com/press" in links[0]["data"]["value"]


# -- views in Chromium ------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 (one stat at set-up)
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Page:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    async def open(self, url: str, secret: str | None = SECRET) -> None:
        await self.page.goto(url)
        await self.page.wait_for_selector("#node-role:not(:empty)")
        if secret is not None:
            await self.page.click("#sign-in-open")
            await self.page.fill("#sign-in-secret", secret)
            await self.page.click("#sign-in-submit")
            await self.page.wait_for_selector("#sign-out", state="visible")

    async def shot(self, name: str) -> None:
        path = Path(os.environ.get("PYTEST_CURRENT_TEST_TMP", "/tmp")) / f"iinode-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        if os.environ.get("IINODE_CONSOLE_SCREENSHOTS"):
            SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, SHOTS / f"{name}.png")


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        yield Page(await context.new_page())
    finally:
        await context.close()


async def _text(page: Page, selector: str) -> str:
    return str(await page.page.inner_text(selector))


async def test_national_view_lists_provinces_and_nodes(network: DemoNetwork, page: Page) -> None:
    await page.open(f"{network.nodes['88'].url}/")
    await page.page.wait_for_selector("#nodes tbody tr .status:text('reporting')")
    rows = await page.page.eval_on_selector_all(
        "#nodes tbody tr", "rows => rows.map(r => r.dataset.prefix)"
    )
    below = [n.spec.prefix for n in network.nodes.values() if n.spec.parent is not None]
    assert sorted(rows) == sorted(below)
    provinces = sum(1 for n in network.nodes.values() if n.spec.parent == "88")
    assert (await _text(page, "#card-provinces .value")) == str(provinces)
    assert "CN-NOTICE" not in await _text(page, "#nodes")
    await page.page.wait_for_timeout(1500)
    await page.shot("national")
    assert page.errors == []


async def test_provincial_view_lists_its_enterprises(network: DemoNetwork, page: Page) -> None:
    await page.open(f"{network.nodes['88.120'].url}/")
    await page.page.wait_for_selector("#nodes tbody tr .status:text('reporting')")
    rows = await page.page.eval_on_selector_all(
        "#nodes tbody tr", "rows => rows.map(r => r.dataset.prefix)"
    )
    assert sorted(rows) == sorted(
        n.spec.prefix for n in network.nodes.values() if n.spec.parent == "88.120"
    )
    await page.shot("provincial")
    assert page.errors == []


async def test_enterprise_view_shows_machines_and_live_figures(
    network: DemoNetwork, page: Page
) -> None:
    await page.open(f"{network.nodes['88.118.8'].url}/")
    machine = ".machine[data-id='88.118.8/PRESS-01']"
    await page.page.wait_for_selector(f"{machine} .state")
    assert "LINE-1" in await _text(page, "#lines")
    first = await _text(page, "#lines")
    deadline = time.monotonic() + 20
    while await _text(page, "#lines") == first:  # readings keep arriving from the simulator
        assert time.monotonic() < deadline, "the machines' figures did not change"
        await page.page.wait_for_timeout(300)
    assert await page.page.locator("#charts svg.chart path").count() >= 1
    await page.shot("enterprise")
    assert page.errors == []


async def test_enterprise_view_lists_alarms_and_acknowledges_them(
    network: DemoNetwork, page: Page
) -> None:
    ent = network.nodes["88.118.8"].url
    rule = {
        "equipment": "88.118.8/PRESS-01",
        "source": "tag",
        "name": "temperature",
        "kind": "high",
        "limit": 1.0,
        "severity": "high",
        "message": "console test",
    }
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.put(f"{ent}/alarms/rules/console-hot", json=rule)
        assert r.status_code == 401  # rule changes need credentials
        r = await c.put(f"{ent}/alarms/rules/console-hot", json=rule, auth=_auth("88.118.8"))
        assert r.status_code == 200, r.text
    try:
        await page.open(f"{ent}/")
        row = "#alarm-list tr.alarm[data-rule='console-hot']"
        # the simulator's press runs far above 1 °C: its next reading raises the alarm
        await page.page.wait_for_selector(f"{row} .alarm-state:text('active')", timeout=20_000)
        text = await _text(page, row)
        assert "88.118.8/PRESS-01" in text
        assert "temperature" in text
        assert "console test" in text
        alarm_id = await page.page.get_attribute(row, "data-id")
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.post(f"{ent}/alarms/{alarm_id}/ack")
            assert r.status_code == 401  # not without the signed-in user's credentials
        assert (await _text(page, "#machines-down")).startswith("machines down:")
        await page.page.click(f"{row} button.ack")
        await page.page.wait_for_selector(f"{row} .alarm-state:text('acknowledged')")
        assert await page.page.locator(f"{row} button.ack").count() == 0
        async with httpx.AsyncClient(timeout=10) as c:
            alarms = (await c.get(f"{ent}/alarms")).json()
        mine = next(a for a in alarms if a["id"] == alarm_id)
        assert mine["state"] == "acknowledged"
        assert mine["acknowledged_by"] == "300:0.NA/88.118.8"
        await page.shot("enterprise-alarms")
        assert page.errors == []
    finally:
        async with httpx.AsyncClient(timeout=10) as c:
            await c.delete(f"{ent}/alarms/rules/console-hot", auth=_auth("88.118.8"))


async def test_docs_page_renders_offline(network: DemoNetwork, page: Page) -> None:
    outside: list[str] = []

    async def only_local(route: Any) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "data:")):
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await page.page.route("**/*", only_local)
    await page.page.goto(f"{network.nodes['88'].url}/docs")
    await page.page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert "/api/handles/{handle}" in await _text(page, "#swagger-ui")
    assert outside == []
    assert page.errors == []


async def test_lookup_displays_the_path_through_the_hierarchy(
    network: DemoNetwork, page: Page
) -> None:
    await page.open(f"{network.nodes['88'].url}/console/#/lookup", secret=None)
    await page.page.fill("#lookup-input", "88.118.8/PRESS-01")
    await page.page.click("#lookup-submit")
    await page.page.wait_for_selector("#lookup-path .hop")
    hops = await page.page.eval_on_selector_all(
        "#lookup-path .hop .server", "els => els.map(e => e.textContent)"
    )
    assert hops == [network.nodes[p].url for p in ("88", "88.118", "88.118.8")]
    assert "IINODE_EQUIPMENT" in await _text(page, "#lookup-values")
    await page.shot("lookup")
    # a GS1 Digital Link at the enterprise that holds the key (the demo registers one)
    ent = network.nodes["88.118.8"].url
    await page.page.goto(f"{ent}/console/#/lookup?id=/01/{DEMO_GTIN}")
    await page.page.wait_for_selector("#lookup-result h2:text('GS1 linkset')")
    assert f"88.118.8/gs1/01/{DEMO_GTIN}" in await _text(page, "#lookup-result")
    assert "GS1_LINK" in await _text(page, "#lookup-values")
    assert "/products/P00000000" in await _text(page, "#lookup-linkset")
    assert page.errors == []


async def test_register_needs_sign_in_and_is_authorised_by_the_api(
    network: DemoNetwork, page: Page
) -> None:
    ent = network.nodes["88.118.9"]
    await page.open(f"{ent.url}/console/#/lookup")
    await page.page.fill("#register-handle", "88.118.9/CONSOLE-1")
    await page.page.fill("#register-url", "https://example.com/console-1")
    await page.page.click("#register-submit")
    await page.page.wait_for_selector("#register-result a")
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.get(f"{ent.url}/api/handles/88.118.9/CONSOLE-1")
        assert r.json()["values"][0]["data"]["value"] == "https://example.com/console-1"
    # another prefix's identity signs in at its own node but may not write here
    await page.page.evaluate("sessionStorage.clear()")
    await page.open(f"{network.nodes['88.118.8'].url}/console/#/lookup")
    await page.page.fill("#register-handle", "88.118.9/CONSOLE-2")
    await page.page.fill("#register-url", "https://example.com/console-2")
    await page.page.click("#register-submit")
    await page.page.wait_for_selector("#register-result:text('refused')")
    page.errors = [e for e in page.errors if "status of 4" not in e]  # the refusal itself
    assert page.errors == []


async def test_search_finds_products_by_words_and_attributes(
    network: DemoNetwork, page: Page
) -> None:
    ent = network.nodes["88.118.8"].url
    await page.open(f"{ent}/console/#/search", secret=None)
    await page.page.fill("#search-q", "轴承")  # both bearings of every six parts
    await page.page.click("#search-submit")
    await page.page.wait_for_selector("#search-hits tbody tr")
    hits = await page.page.eval_on_selector_all(
        "#search-hits tbody tr td:first-child", "els => els.map(e => e.textContent)"
    )
    expected = [f"88.118.8/P{n:08d}" for n in range(20) if n % 6 in (0, 1)]
    assert hits == expected
    text = await _text(page, "#search-hits")
    assert "深沟球轴承 deep groove ball bearing #0" in text
    assert "GCr15" in text
    assert "cost" not in text  # restricted: not shown to a visitor
    await page.shot("search")
    # Words and an attribute together; the template picked from the node's list.
    await page.page.fill("#search-q", "bearing")
    await page.page.fill("#search-attr", "model=30205")
    await page.page.select_option("#search-template", "88.118.8/template/part/1")
    await page.page.click("#search-submit")
    await page.page.wait_for_function(
        "document.querySelectorAll('#search-hits tbody tr').length === 4"
    )
    hits = await page.page.eval_on_selector_all(
        "#search-hits tbody tr td:first-child", "els => els.map(e => e.textContent)"
    )
    assert hits == [f"88.118.8/P{n:08d}" for n in (1, 7, 13, 19)]  # the tapered roller bearings
    # Pages of 20: the demo's products under a common word fill one page and continue.
    await page.page.goto(f"{ent}/console/#/search?template=88.118.8/template/part/1")
    await page.page.wait_for_selector("#search-next")
    await page.page.click("#search-next")
    await page.page.wait_for_selector("#search-none, #search-hits")
    await page.page.fill("#search-q", "—")
    await page.page.click("#search-submit")
    await page.page.wait_for_selector("#search-error")
    assert "no words" in await _text(page, "#search-error")
    page.errors = [e for e in page.errors if "status of 400" not in e]  # the refusal itself
    assert page.errors == []


async def test_a_notice_is_issued_and_shows_acknowledgements(
    network: DemoNetwork, page: Page, browser: Any
) -> None:
    top = network.nodes["88"].url
    await page.open(f"{top}/console/#/notices")
    await page.page.wait_for_selector(f".notice[data-id='{NOTICE_ID}']")
    await page.page.fill("#notice-id", "CONSOLE-NOTICE-1")
    await page.page.fill("#notice-title", "Rotate the HMI passwords")
    await page.page.fill("#notice-action", "Change every default HMI password.")
    await page.page.click("#notice-submit")
    issued = ".notice[data-id='CONSOLE-NOTICE-1']"
    await page.page.wait_for_selector(issued)
    # an enterprise operator acknowledges it in the enterprise's console
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        operator = Page(await context.new_page())
        await operator.open(f"{network.nodes['88.120.5'].url}/console/#/notices")
        button = f"{issued} button.ack"
        await operator.page.wait_for_selector(button, timeout=20_000)
        await operator.page.click(button)
        await operator.page.wait_for_selector(f"{issued} .own-state:text('acknowledged')")
        await operator.shot("enterprise-notices")
        assert operator.errors == []
    finally:
        await context.close()
    state = f"{issued} .progress tr:has-text('88.120.5') .pill:text('acknowledged')"
    await page.page.wait_for_selector(state, timeout=20_000)
    assert "of" in await _text(page, f"{issued} .ack-count")
    await page.shot("national-notices")
    assert page.errors == []
