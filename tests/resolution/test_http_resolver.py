"""The REST resolver: a garbled answer is that site's failure, not the end of the resolution.

Scripted HTTP peers (``httpx.MockTransport``) answer as nodes would, or with a
garbled body, an invalid ``prefix`` in a referral, or values for another handle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from iinode.codes import ResponseCode
from iinode.errors import HandleError, TransportError
from iinode.identifiers import HandleName, HandleValue, SiteData, UrlData, site_for
from iinode.resolution import HttpResolver

HANDLE = HandleName.parse("88.118.8/X")
GOOD = {
    "responseCode": 1,
    "handle": "88.118.8/X",
    "values": [HandleValue(1, "URL", UrlData("http://f.cn/x")).to_json()],
}


def site(host: str) -> SiteData:
    return site_for(host, http_port=80)


def referral_to(host: str, prefix: Any) -> dict[str, Any]:
    return {
        "responseCode": int(ResponseCode.PREFIX_REFERRAL),
        "handle": "88.118.8/X",
        "prefix": prefix,
        "values": [HandleValue(1, "HS_SITE", site(host), ttl=60).to_json()],
    }


Answer = bytes | dict[str, Any]


def resolver(answers: dict[str, Answer], roots: list[str]) -> HttpResolver:
    def reply(request: httpx.Request) -> httpx.Response:
        answer = answers[request.url.host]
        content = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(reply))
    return HttpResolver([site(h) for h in roots], client=client)


GARBLED: dict[str, Callable[[], Answer]] = {
    "not json": lambda: b"<html>gateway timeout</html>",
    "json without a code": lambda: {"values": []},
    "a list": lambda: b"[1, 2, 3]",
    "invalid values": lambda: {"responseCode": 1, "handle": "88.118.8/X", "values": [{"x": 1}]},
    "invalid prefix in a referral": lambda: referral_to("10.0.0.3", "88..bad prefix!"),
    "prefix of the wrong type": lambda: referral_to("10.0.0.3", 88),
    "answer about another handle": lambda: {**GOOD, "handle": "88.118.8/OTHER"},
    "invalid handle echoed": lambda: {**GOOD, "handle": "no-slash"},
}


@pytest.mark.parametrize("kind", sorted(GARBLED))
async def test_a_garbled_site_is_skipped_for_the_next(kind: str) -> None:
    walker = resolver({"10.0.0.1": GARBLED[kind](), "10.0.0.2": GOOD}, ["10.0.0.1", "10.0.0.2"])
    resolved = await walker.resolve(HANDLE)
    assert [v.data.to_wire() for v in resolved.values] == [b"http://f.cn/x"]
    failed, answered = resolved.chain
    assert failed.code == ResponseCode.SERVER_NOT_RESP
    assert "10.0.0.1" in failed.server
    assert answered.code == ResponseCode.SUCCESS
    await walker.aclose()


@pytest.mark.parametrize("kind", sorted(GARBLED))
async def test_only_garbled_sites_end_in_a_transport_error(kind: str) -> None:
    walker = resolver({"10.0.0.1": GARBLED[kind]()}, ["10.0.0.1"])
    with pytest.raises(TransportError, match="no server of the site answered") as caught:
        await walker.resolve(HANDLE)
    assert not isinstance(caught.value, HandleError)  # never a 400 "invalid handle"
    await walker.aclose()


async def test_referral_walk_and_filters_still_work() -> None:
    answers: dict[str, Answer] = {"10.0.0.1": referral_to("10.0.0.2", "88.118.8"), "10.0.0.2": GOOD}
    walker = resolver(answers, ["10.0.0.1"])
    resolved = await walker.resolve(HANDLE, types=["url"], indexes=[1])
    assert len(resolved.values) == 1
    assert [h.code for h in resolved.chain] == [ResponseCode.PREFIX_REFERRAL, ResponseCode.SUCCESS]
    empty = await walker.resolve(HandleName.parse("88.118.8/X"), indexes=[2])
    assert empty.values == ()
    await walker.aclose()
