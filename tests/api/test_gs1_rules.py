"""The GMN check pair and the AI association rules over HTTP: the resolver answers 400
with the rule broken, the link API refuses and writes nothing."""

from __future__ import annotations

from pathlib import Path

from api.gs1_support import add_link, gs1_node

GMN = "/8013/1987654Ad4X4bL5ttr2310c2K"
PIP = {"linkType": "gs1:pip", "href": "https://brand.example/gmn", "title": "Model page"}


async def test_a_gmn_resolves_and_a_wrong_pair_is_a_400(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        r = await add_link(client, GMN, **PIP)
        assert r.status_code in (200, 201), r.text
        r = await client.get(GMN)
        assert r.status_code == 307
        assert r.headers["location"] == "https://brand.example/gmn"
        r = await client.get("/8013/1987654Ad4X4bL5ttr2310c2X")
        assert r.status_code == 400
        assert "check character pair '2X' is wrong" in r.json()["detail"]
        assert r.headers["access-control-allow-origin"] == "*"


async def test_association_rules_are_400_with_the_rule(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        for uri, reason in (
            ("/00/952012345678912345?02=09520123456788", "AI 02 (CONTENT) needs 37"),
            ("/01/09520123456788?37=5", "AI 01 (GTIN) and AI 37 (COUNT) must not"),
            ("/01/09520123456788?10=L1", "belongs in the path"),
            ("/01/09520123456788?3922=0299", "mandatory association"),
            ("/415/5412345000013", "AI 415 (PAY TO) needs 8020"),
            ("/01/09520123456788/22/V/235/T", "cannot be combined"),
        ):
            r = await client.get(uri)
            assert r.status_code == 400, uri
            assert reason in r.json()["detail"], (uri, r.json())
        # The same elements in a valid combination are no 400 (404: nothing registered).
        r = await client.get("/00/952012345678912345?02=09520123456788&37=25&10=ABC123")
        assert r.status_code == 404


async def test_link_api_refuses_broken_keys_and_writes_nothing(tmp_path: Path) -> None:
    async with gs1_node(tmp_path) as client:
        for path, reason in (
            ("/8013/1987654Ad4X4bL5ttr2310c2X", "check character pair"),
            ("/8013/ABCD654Ad4X4bL5ttr2310c2K", "GS1 Company Prefix"),
            ("/415/5412345000013", "needs 8020"),
            ("/8006/095201234567880102/22/V1", "AI 22 (CPV) needs 01"),
        ):
            r = await add_link(client, path, **PIP)
            assert r.status_code == 400, (path, r.text)
            assert reason in r.text, (path, r.text)
        for path in ("/8013/1987654Ad4X4bL5ttr2310c2K", "/415/5412345000013/8020/R1"):
            r = await client.get(f"/api/gs1/links{path}")
            assert r.status_code == 200
            assert r.json()["links"] == []
