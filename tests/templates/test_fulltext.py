"""Full-text search: a template's ``fulltext`` attributes are found by the words of
their values (``GET /api/search?q=``, ``iinode search --text``), on every store."""

from __future__ import annotations

from typing import Any

import httpx

from iinode.identifiers import (
    HandleValue,
    Permissions,
    StringData,
    encode_record,
)
from iinode.storage import HandleStore
from iinode.storage.search import SearchQuery, record_terms, values_terms
from templates.conftest import ADMIN, GOOD, INDEX, TEMPLATE, bearing, product, register

LINK = '{"template":"88.1/template/t/1","unique":[],"fulltext":["title","note"]}'


def values(title: str, note: str = "", *, hidden_note: bool = False) -> list[HandleValue]:
    note_permissions = Permissions.ADMIN_READ if hidden_note else Permissions.default()
    return [
        HandleValue(1001, "II_TEMPLATE", StringData(LINK)),
        HandleValue(2000, "title", StringData(title)),
        HandleValue(2001, "note", StringData(note), permissions=note_permissions),
        HandleValue(2002, "code", StringData(title)),  # not full-text: its words are not terms
    ]


def test_words_of_fulltext_attributes_are_terms_once_each() -> None:
    found = values_terms(values("Steel ball bearing", "ball 钢球"))
    word_terms = sorted(t for t in found if t[0] == "words")
    assert word_terms == [
        ("words", w, True, False) for w in sorted(["steel", "ball", "bearing", "钢球"])
    ]
    assert ("attr:title", "Steel ball bearing", True, False) in found  # the exact value too
    assert ("attr:code", "Steel ball bearing", True, False) in found
    assert sorted(record_terms(encode_record(values("Steel ball bearing", "ball 钢球")))) == sorted(
        found
    )


def test_a_word_in_a_public_and_a_restricted_value_is_public() -> None:
    found = values_terms(values("ball", "ball secret", hidden_note=True))
    assert ("words", "ball", True, False) in found
    assert ("words", "secret", False, False) in found


async def test_every_store_finds_records_by_words(store: HandleStore) -> None:
    titles = ["深沟球轴承 6204", "Tapered roller bearing", "Deep groove ball bearing", "球轴"]
    rows = [
        (f"88.1/{n}", "88.1", encode_record(values(t, "batch 7", hidden_note=n == 3)))
        for n, t in enumerate(titles)
    ]
    await store.bulk_put(rows[:2])
    for handle, _prefix, data in rows[2:]:  # the single-record write path indexes words too
        await store.modify(handle, lambda _old, data=data: data)

    async def find(*words: str, public_only: bool = True, **kw: Any) -> list[str]:
        terms = tuple(("words", w) for w in words)
        return await store.search(SearchQuery(terms, public_only=public_only, **kw))

    assert await find("bearing") == ["88.1/1", "88.1/2"]
    assert await find("bearing", "ball") == ["88.1/2"]
    assert await find("球轴", "轴承") == ["88.1/0"]  # 球轴承, as a query splits it
    assert await find("球轴") == ["88.1/0", "88.1/3"]
    assert await find("batch") == ["88.1/0", "88.1/1", "88.1/2"]  # 3's note is restricted
    assert await find("batch", public_only=False) == ["88.1/0", "88.1/1", "88.1/2", "88.1/3"]
    assert await find("bearing", after="88.1/1", limit=1) == ["88.1/2"]
    assert await find("bearing", limit=1) == ["88.1/1"]
    assert await find("roller", prefix="88.2") == []
    await store.modify("88.1/1", lambda _old: None)
    assert await find("bearing") == ["88.1/2"]
    await store.modify("88.1/2", lambda _old: encode_record(values("Needle roller")))
    assert await find("bearing") == []
    assert await find("needle") == ["88.1/2"]


async def publish_with_fulltext(client: httpx.AsyncClient) -> None:
    doc = bearing(status="published")
    doc["attributes"] += [
        {"name": "title", "type": "string", "fulltext": True},
        {"name": "remark", "type": "string", "fulltext": True, "access": "restricted"},
    ]
    r = await client.post("/api/templates", json=doc, auth=ADMIN)
    assert r.status_code == 201, r.text
    r = await client.get("/api/templates/88.118.8/bearing/1")
    title = r.json()["attributes"][7]
    assert (title["name"], title["fulltext"]) == ("title", True)


async def test_rest_search_by_words(client: httpx.AsyncClient) -> None:
    await publish_with_fulltext(client)
    INDEX.update(title=2007, remark=2008)
    try:
        products = [
            ("P1", "深沟球轴承 6204-2RS", "返修 lot 9"),
            ("P2", "Deep Groove Ball Bearing", "inspected"),
            ("P3", "圆锥滚子轴承", "返修"),
        ]
        for n, (name, title, remark) in enumerate(products):
            body = product(**{**GOOD, "serial": f"S{n}", "title": title, "remark": remark})
            assert (await register(client, f"88.118.8/{name}", body)).status_code == 201
    finally:
        del INDEX["title"], INDEX["remark"]

    async def q(text: str, auth: Any = None, **more: str) -> list[str]:
        r = await client.get("/api/search", params={"q": text, **more}, auth=auth)
        assert r.status_code == 200, r.text
        return list(r.json()["handles"])

    assert await q("轴承") == ["88.118.8/P1", "88.118.8/P3"]
    assert await q("球轴承") == ["88.118.8/P1"]
    assert await q("\uff22\uff21\uff2c\uff2c bearing") == ["88.118.8/P2"]  # full-width, any case
    assert await q("2rs", **{"attr.grade": "P6", "template": TEMPLATE}) == ["88.118.8/P1"]
    # Restricted values are not found by their words except by those who may read them.
    assert await q("返修") == []
    assert await q("返修", auth=ADMIN) == ["88.118.8/P1", "88.118.8/P3"]
    r = await client.get("/api/search", params={"q": "轴承", "limit": "1"})
    assert r.json() == {"handles": ["88.118.8/P1"], "next": "88.118.8/P1"}
    for bad in ("", "—!?", " ".join(f"w{n}" for n in range(9))):
        r = await client.get("/api/search", params={"q": bad})
        assert r.status_code == 400, bad
        assert r.json()["message"]


async def test_fulltext_is_for_string_attributes_only(client: httpx.AsyncClient) -> None:
    doc = bearing(status="published")
    doc["attributes"][1]["fulltext"] = True  # diameter, a number
    doc["attributes"][0]["fulltext"] = "yes"
    r = await client.post("/api/templates", json=doc, auth=ADMIN)
    assert r.status_code == 400
    problems = {(v["attribute"], v["rule"]) for v in r.json()["violations"]}
    assert {("diameter", "fulltext"), ("model", "fulltext")} <= problems
    assert (await client.get(f"/api/handles/{TEMPLATE}")).status_code == 404
