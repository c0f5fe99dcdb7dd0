"""GS1-Conformant Resolver 1.2 criteria as tests.

src/iinode/gs1/README.md lists which SHALL statement each test pins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI

from api.gs1_support import GTIN, ROOT, add_link, admin, gs1_node
from iinode.api.app import create_app
from iinode.api.gs1 import gs1_routes
from iinode.identifiers import AliasData, HandleName, HandleValue, IndexedHandle, StringData
from iinode.node.service import HandleService, site_from_url
from iinode.node.settings import NodeSettings, Role
from iinode.resolution import HttpResolver
from iinode.storage import MemoryStore

KEY = f"/01/{GTIN}"
GS1 = "https://gs1.org/voc/"
BRAND = "https://brand.example"


#: RFC 9264 section 4.2 with the GS1 rules for resolvers' linksets: each context object has
#: ``anchor`` and ``itemDescription``; every other member is a relation type (a registered
#: lower-case name or a URI) whose value is an array of target objects carrying ``href``
#: and ``title`` and only the GS1 target attributes.
LINKSET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["linkset"],
    "additionalProperties": False,
    "properties": {"linkset": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["anchor", "itemDescription"],
        "properties": {
            "anchor": {"type": "string", "pattern": "^https?://"},
            "itemDescription": {"type": "string", "minLength": 1},
        },
        "patternProperties": {"^(?!anchor$)([a-z-]+|https?://[A-Za-z0-9./]+)$": {
            "type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["href", "title"],
                "additionalProperties": False,
                "properties": {
                    "href": {"type": "string", "pattern": "^https?://"},
                    "title": {"type": "string"},
                    "type": {"type": "string", "pattern": "^[-+.\\w]+/[-+.\\w]+$"},
                    "hreflang": {"type": "array", "items": {
                        "type": "string", "pattern": "^[A-Za-z]{2}(-[A-Za-z0-9]{2})?$"}},
                    "context": {"type": "array", "items": {"type": "string"}},
                    "fwqs": {"type": "boolean"},
                },
            },
        }},
        "additionalProperties": False,
    }}},
}  # fmt: skip


def check_linkset(doc: Any) -> None:
    jsonschema.validate(doc, LINKSET_SCHEMA)
    for context in doc["linkset"]:
        defaults = context.get(GS1 + "defaultLink")
        if defaults is not None:  # exactly one default, with only href and title
            assert len(defaults) == 1
            assert set(defaults[0]) == {"href", "title"}


def test_the_schema_refuses_what_rfc_9264_and_gs1_forbid() -> None:
    def doc(**context: Any) -> dict[str, Any]:
        return {"linkset": [{"anchor": "http://n/01/1", "itemDescription": "x", **context}]}

    target = {"href": "https://a/b", "title": "t"}
    check_linkset(doc(**{GS1 + "pip": [target]}))
    broken = [
        {"linkset": []},
        {"linkset": [{"anchor": "http://n/01/1", GS1 + "pip": [target]}]},
        doc(**{GS1 + "pip": [{"href": "https://a"}]}),
        doc(**{"Bad Rel": [target]}),
        doc(**{GS1 + "pip": [{**target, "x": 1}]}),
        doc(**{GS1 + "pip": [{**target, "hreflang": ["english"]}]}),
        doc(**{GS1 + "pip": []}),
    ]
    for bad in broken:
        with pytest.raises(jsonschema.ValidationError):
            check_linkset(bad)


@pytest.fixture
async def node(tmp_path: Path) -> Any:
    async with gs1_node(tmp_path) as client:
        for link in (
            {"linkType": "gs1:pip", "href": f"{BRAND}/pip/en", "title": "Product",
             "hreflang": ["en"], "default": True},
            {"linkType": "gs1:pip", "href": f"{BRAND}/pip/de", "title": "Produkt",
             "hreflang": ["de"]},
            {"linkType": "gs1:recipeInfo", "href": f"{BRAND}/recipes", "title": "Recipes",
             "type": "text/html"},
            {"linkType": "gs1:certificationInfo", "href": "https://cert.example/lk",
             "title": "Cert", "context": ["LK"]},
            {"linkType": "gs1:certificationInfo", "href": "https://cert.example/gb",
             "title": "Cert", "context": ["GB"]},
        ):  # fmt: skip
            assert (await add_link(client, KEY, **link)).status_code == 201
        yield client


async def test_default_link_is_a_307_with_cors_and_linkset_header(node: httpx.AsyncClient) -> None:
    r = await node.get(KEY)
    assert r.status_code == 307
    assert r.headers["location"] == "https://brand.example/pip/en"
    assert r.headers["access-control-allow-origin"] == "*"
    assert f'<{ROOT}{KEY}?linkType=linkset>; rel="linkset"' in r.headers["link"]
    assert "owl:sameAs" not in r.headers["link"]


async def test_requested_link_type_is_followed(node: httpx.AsyncClient) -> None:
    for spelling in ("gs1:recipeInfo", GS1 + "recipeInfo", "https://ref.gs1.org/voc/recipeInfo"):
        r = await node.get(KEY, params={"linkType": spelling})
        assert r.status_code == 307
        assert r.headers["location"].startswith("https://brand.example/recipes")


async def test_unavailable_link_type_gives_the_default(node: httpx.AsyncClient) -> None:
    r = await node.get(KEY, params={"linkType": "gs1:smpc"})
    assert (r.status_code, r.headers["location"]) == (
        307,
        "https://brand.example/pip/en?linkType=gs1%3Asmpc",
    )


async def test_unknown_gs1_link_type_is_a_400(node: httpx.AsyncClient) -> None:
    r = await node.get(KEY, params={"linkType": "gs1:noSuchThing"})
    assert r.status_code == 400
    assert "GS1 Web vocabulary" in r.json()["detail"]


async def test_ambiguous_request_is_a_300_with_the_linkset(node: httpx.AsyncClient) -> None:
    r = await node.get(KEY, params={"linkType": "gs1:pip"})
    assert r.status_code == 300
    assert r.headers["content-type"] == "application/linkset+json"
    check_linkset(r.json())


async def test_accept_language_picks_among_links(node: httpx.AsyncClient) -> None:
    r = await node.get(
        KEY,
        params={"linkType": "gs1:pip"},
        headers={"Accept-Language": "fr;q=0.9, de-CH, en;q=0.5"},
    )
    assert r.headers["location"].startswith("https://brand.example/pip/de")
    r = await node.get(KEY, params={"linkType": "gs1:pip"}, headers={"Accept-Language": "en-GB"})
    assert r.headers["location"].startswith("https://brand.example/pip/en")


async def test_context_picks_among_links(node: httpx.AsyncClient) -> None:
    r = await node.get(KEY, params={"linkType": "gs1:certificationInfo", "context": "GB"})
    assert r.status_code == 307
    assert r.headers["location"].startswith("https://cert.example/gb")
    r = await node.get(KEY, params={"linkType": "gs1:certificationInfo"})
    assert r.status_code == 300


async def test_query_string_is_passed_on(node: httpx.AsyncClient) -> None:
    r = await node.get(f"{KEY}?foo=bar&17=290331")
    assert r.headers["location"] == "https://brand.example/pip/en?foo=bar&17=290331"


async def test_linkset_by_parameter_and_by_accept(node: httpx.AsyncClient) -> None:
    for kwargs in (
        {"params": {"linkType": "linkset"}},
        {"params": {"linkType": "all"}},
        {"headers": {"Accept": "application/linkset+json"}},
    ):
        r = await node.get(KEY, **kwargs)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/linkset+json"
        assert "json-ld#context" in r.headers["link"]
        doc = r.json()
        check_linkset(doc)
        (context,) = doc["linkset"]
        assert context["anchor"] == f"{ROOT}{KEY}"
        assert len(context[GS1 + "pip"]) == 2
        assert context[GS1 + "defaultLink"] == [
            {"href": "https://brand.example/pip/en", "title": "Product"}
        ]
        assert context["describedby"][0]["href"] == f"{ROOT}/api/handles/88.118.8/gs1{KEY}"
        assert context["itemDescription"] == f"GTIN {GTIN}"


async def test_linkset_as_plain_json_and_by_head(node: httpx.AsyncClient) -> None:
    r = await node.get(KEY, headers={"Accept": "application/json"})
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    check_linkset(r.json())
    r = await node.get(KEY, headers={"Accept": "text/html,application/json;q=0.9,*/*;q=0.8"})
    assert r.status_code == 307  # a browser is redirected
    r = await node.head(KEY, params={"linkType": "linkset"})
    assert (r.status_code, r.content) == (200, b"")
    assert r.headers["content-type"] == "application/linkset+json"


async def test_lot_and_serial_inherit_from_the_gtin(node: httpx.AsyncClient) -> None:
    lot = f"{KEY}/10/LOT7"
    assert (
        await add_link(
            node,
            lot,
            linkType="gs1:recipeInfo",
            href="https://brand.example/lot7",
            title="Lot 7 recipes",
        )
    ).status_code == 201
    r = await node.get(f"{lot}/21/SER1", params={"linkType": "gs1:recipeInfo"})
    assert r.headers["location"].startswith("https://brand.example/lot7")
    r = await node.get(f"{lot}/21/SER1")  # the lot's own default is its only link
    assert r.headers["location"] == "https://brand.example/lot7"
    r = await node.get(f"{KEY}/10/OTHER/21/X", params={"linkType": "gs1:recipeInfo"})
    assert r.headers["location"].startswith("https://brand.example/recipes")
    doc = (await node.get(f"{lot}/21/SER1", params={"linkType": "linkset"})).json()
    check_linkset(doc)
    assert [c["anchor"] for c in doc["linkset"]] == [f"{ROOT}{lot}", f"{ROOT}{KEY}"]


async def test_errors_are_400_with_the_reason_never_200(node: httpx.AsyncClient) -> None:
    for path, reason in (
        ("/01/09506000134353", "check digit"),
        (f"{KEY}/21/S/10/L", "out of order"),
        (f"{KEY}/8011/5", "not a key qualifier"),
        ("/10/ABC", "not a GS1 primary key"),
        ("/9999/1", "unknown GS1 Application Identifier"),
        (f"{KEY}/foo", "AI/value pairs"),
        (f"{KEY}?3103=12", "too short"),
    ):
        r = await node.get(path)
        assert r.status_code == 400, path
        assert reason in r.json()["detail"], (path, r.json())
        assert r.headers["access-control-allow-origin"] == "*"


async def test_absent_key_is_404(node: httpx.AsyncClient) -> None:
    r = await node.get("/01/05412345000013")
    assert r.status_code == 404
    assert r.json()["status"] == 404


async def test_head_and_options(node: httpx.AsyncClient) -> None:
    r = await node.head(KEY)
    assert (r.status_code, r.headers["location"], r.content) == (
        307,
        "https://brand.example/pip/en",
        b"",
    )
    r = await node.options(KEY)
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert set(r.headers["access-control-allow-methods"].replace(" ", "").split(",")) == {
        "GET",
        "HEAD",
        "OPTIONS",
    }
    assert (await node.post(KEY)).status_code == 405


async def test_trailing_slash_is_tolerated(node: httpx.AsyncClient) -> None:
    assert (await node.get(KEY + "/")).headers["location"] == "https://brand.example/pip/en"


async def test_compressed_uri_resolves_and_exposes_the_uncompressed(
    node: httpx.AsyncClient,
) -> None:
    from iinode.gs1 import compress, parse_path

    compressed = compress(parse_path(f"{KEY}/10/LOT9"))
    r = await node.get(f"/{compressed}")
    assert r.status_code == 307
    assert r.headers["location"] == "https://brand.example/pip/en"
    assert f'<{ROOT}{KEY}/10/LOT9>; rel="owl:sameAs"' in r.headers["link"]
    packed = compress(parse_path(KEY, [("17", "290331")]), optimise=True, other={"k": "v"})
    r = await node.get(f"/{packed}?foo=bar")
    assert r.headers["location"] == "https://brand.example/pip/en?17=290331&k=v&foo=bar"
    assert f'<{ROOT}{KEY}?17=290331>; rel="owl:sameAs"' in r.headers["link"]
    doc = (await node.get(f"/{compressed}", params={"linkType": "linkset"})).json()
    assert doc["linkset"][0]["anchor"] == f"{ROOT}{KEY}"  # the uncompressed URI is the subject


async def test_resolver_routes_do_not_shadow_the_node(node: httpx.AsyncClient) -> None:
    assert (await node.get("/healthz")).text == "ok"
    assert (await node.get("/api/node")).json()["prefix"] == "88.118.8"


async def test_description_file(node: httpx.AsyncClient) -> None:
    r = await node.get("/.well-known/gs1resolver")
    doc = r.json()
    assert doc["resolverRoot"] == ROOT
    assert "01" in doc["supportedPrimaryKeys"]
    assert "414" in doc["supportedPrimaryKeys"]
    assert doc["supportedLinkType"][0]["prefix"] == "gs1:"
    assert doc["supportedLinkType"][0]["namespace"] == GS1
    assert doc["linkTypeDefaultCanBeLinkset"] is False
    assert isinstance(doc["name"], str)
    assert doc["jsonLdContextLocation"].startswith("https://")
    assert r.headers["access-control-allow-origin"] == "*"


async def test_a_record_without_links_resolves_to_its_identifier_data(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        handle = f"88.118.8/gs1/01/{GTIN}"
        values = {
            "values": [
                {"index": 2000, "type": "MODEL", "data": {"format": "string", "value": "RX-7"}}
            ]
        }
        assert (
            await client.put(f"/api/handles/{handle}", json=values, auth=admin())
        ).status_code == 201
        r = await client.get(KEY)
        assert r.status_code == 307
        assert r.headers["location"] == f"{ROOT}/api/handles/{handle}"
        data = (await client.get(r.headers["location"])).json()
        assert any(v["type"] == "MODEL" for v in data["values"])
        doc = (await client.get(KEY, params={"linkType": "linkset"})).json()
        check_linkset(doc)
        assert doc["linkset"][0]["itemDescription"] == f"GTIN {GTIN}"
        assert doc["linkset"][0][GS1 + "masterData"][0]["href"] == r.headers["location"]


async def test_a_scan_reaches_the_products_industrial_identifier(tmp_path: Path) -> None:
    """The GTIN's record is an HS_ALIAS of the product's identifier: a scan lands on it."""
    async with gs1_node(tmp_path) as client:
        product = "88.118.8/JXDY2106023"
        model = {"index": 2000, "type": "MODEL", "data": {"format": "string", "value": "6205"}}
        r = await client.put(f"/api/handles/{product}", json={"values": [model]}, auth=admin())
        assert r.status_code == 201
        alias = {"index": 1, "type": "HS_ALIAS", "data": {"format": "string", "value": product}}
        r = await client.put(f"/api/handles/88.118.8/gs1{KEY}", json={"values": [alias]},
                             auth=admin())  # fmt: skip
        assert r.status_code == 201
        r = await client.get(f"{KEY}/10/B2106/21/0023")
        assert r.status_code == 307
        assert r.headers["location"] == f"{ROOT}/api/handles/{product}"
        assert f'<{ROOT}/api/handles/{product}>; rel="describedby"' in r.headers["link"]
        data = (await client.get(r.headers["location"])).json()
        assert [v["data"]["value"] for v in data["values"] if v["type"] == "MODEL"] == ["6205"]


async def test_item_description_comes_from_the_record(node: httpx.AsyncClient) -> None:
    handle = f"88.118.8/gs1/01/{GTIN}"
    text = {"format": "string", "value": "Dal Giardino risotto rice, 1 kg"}
    value = {"values": [{"index": 2, "type": "GS1_DESCRIPTION", "data": text}]}
    r = await node.put(f"/api/handles/{handle}", params={"index": 2}, json=value, auth=admin())
    assert r.status_code == 200
    doc = (await node.get(f"{KEY}/10/L1", params={"linkType": "linkset"})).json()
    check_linkset(doc)
    assert doc["linkset"][0]["itemDescription"] == "Dal Giardino risotto rice, 1 kg"


async def test_record_on_a_child_node_is_fetched_through_the_referral(tmp_path: Path) -> None:
    child_settings = NodeSettings(role=Role.ENTERPRISE, data_dir=tmp_path / "c", prefix="88.118.8")
    child = HandleService(child_settings, MemoryStore())
    await child.initialise("c")
    child_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(child)), base_url=ROOT
    )
    async with child_client:
        assert (
            await add_link(
                child_client,
                KEY,
                auth=admin(secret="c"),
                linkType="gs1:pip",
                href="https://child.example/pip",
                title="Child",
            )
        ).status_code == 201
        parent_settings = NodeSettings(
            role=Role.SECONDARY, data_dir=tmp_path / "p", prefix="88.118"
        )
        parent = HandleService(parent_settings, MemoryStore())
        await parent.initialise("p")
        admin_id = IndexedHandle.parse("300:0.NA/88.118")
        await parent.create(
            HandleName.parse("0.NA/88.118.8"),
            [HandleValue(1, "HS_SITE", site_from_url("http://127.0.0.1:8080"))],
            admin_id,
        )
        # The parent's record for the key is an alias of the child's.
        await parent.create(
            HandleName.parse(f"88.118/gs1{KEY}"),
            [
                HandleValue(1, "HS_ALIAS", AliasData(f"88.118.8/gs1{KEY}")),
                HandleValue(2, "DESC", StringData("alias")),
            ],
            admin_id,
        )
        resolver = HttpResolver([site_from_url("http://127.0.0.1:8080")], client=child_client)
        app = FastAPI()
        app.router.routes.extend(gs1_routes(parent, resolver, client=child_client))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ROOT) as c:
            r = await c.get(KEY)
            assert (r.status_code, r.headers["location"]) == (307, "https://child.example/pip")
            assert (await c.get("/01/05412345000013")).status_code == 404
