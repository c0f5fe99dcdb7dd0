"""REST input checks as Handle.Net's REST API makes them (``HandleJsonRestApiServlet``).

Pinned reference behaviour: a PUT needs ``Content-Type: application/json``
(optionally with parameters) or gets 400 ``Unsupported media type``; a body's
``"handle"`` must name the path's handle (``Mismatched handle in PUT
request``); a ``data`` object needs its ``format``; ``index``/``page``/
``pageSize`` are Java ``int``s; a body may also be one value.  iinode's own
additions: the handle is the raw path decoded as strict UTF-8, 405s carry the
path's ``Allow`` header, every error has the Handle JSON body, messages quote a
bounded part of the input, and a body is read only after authentication and
only up to ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from api.node_support import auth_for, running_node
from iinode.api.app import create_app
from iinode.api.rest_common import MAX_BODY_BYTES, QUOTE_LIMIT
from iinode.identifiers import HandleName
from iinode.node.service import HandleService
from iinode.node.settings import Role
from rest_node import ADMIN, SECRET

URL = {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://a.cn/x"}}
JSON = {"content-type": "application/json"}


def error(r: httpx.Response, status: int, code: int) -> dict[str, Any]:
    """The Handle JSON error body of ``r``, checked for ``status`` and ``code``."""
    assert r.headers["content-type"] == "application/json", r.text
    body: dict[str, Any] = r.json()
    assert (r.status_code, body["responseCode"]) == (status, code), r.text
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


async def stored(service: HandleService, handle: str) -> bool:
    return await service.lookup(HandleName.parse(handle)) is not None


# -- Content-Type of a PUT --------------------------------------------------------------
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/jsonx", "json"])
async def test_put_without_json_content_type_is_refused(
    client: httpx.AsyncClient, service: HandleService, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    body = orjson.dumps({"values": [URL]})
    r = await client.put("/api/handles/88.118.8/CT", content=body, headers=headers, auth=ADMIN)
    assert "Unsupported media type" in error(r, 400, 4)["message"]
    assert not await stored(service, "88.118.8/CT")


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8"]
)
async def test_put_with_json_content_type_is_accepted(
    client: httpx.AsyncClient, service: HandleService, content_type: str
) -> None:
    body = orjson.dumps({"values": [URL]})
    headers = {"content-type": content_type}
    r = await client.put("/api/handles/88.118.8/CT", content=body, headers=headers, auth=ADMIN)
    assert r.status_code == 201, r.text
    assert await stored(service, "88.118.8/CT")


# -- UTF-8 names ---------------------------------------------------------------------------
async def test_names_that_are_not_utf8_are_refused_not_aliased(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    # U+FFFD written properly: what a lossy decoder turns %FF and %FE into.
    r = await client.put("/api/handles/88.118.8/%EF%BF%BD", json={"values": [URL]}, auth=ADMIN)
    assert r.status_code == 201, r.text
    assert (await client.get("/api/handles/88.118.8/%EF%BF%BD")).status_code == 200
    for raw in ("%FF", "%FE", "%C3%28", "a%80b"):
        r = await client.get(f"/api/handles/88.118.8/{raw}")
        assert "UTF-8" in error(r, 400, 102)["message"]
        r = await client.put(f"/api/handles/88.118.8/{raw}", json={"values": [URL]}, auth=ADMIN)
        error(r, 400, 102)
        r = await client.delete(f"/api/handles/88.118.8/{raw}", auth=ADMIN)
        error(r, 400, 102)
    assert await stored(service, "88.118.8/\ufffd")


async def test_percent_encoded_names_and_plus_decode_exactly(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/handles/88.118.8/a+b%2Fc", json={"values": [URL]}, auth=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["handle"] == "88.118.8/a+b/c"
    assert (await client.get("/api/handles/88.118.8/a%2Bb/c")).json()["handle"] == "88.118.8/a+b/c"
    error(await client.get("/api/handles/88.118.8/a%20b%2Fc"), 404, 100)


async def test_prefix_parameter_that_is_not_utf8_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/handles?prefix=88.118.%FF", auth=ADMIN)
    assert "UTF-8" in error(r, 400, 102)["message"]


@pytest.mark.parametrize("raw", ["a%0Db", "a%0Ab", "a%0D%0AX-Injected:%201", "%0A"])
async def test_cr_and_lf_in_names_get_the_json_error_body(
    client: httpx.AsyncClient, raw: str
) -> None:
    error(await client.get(f"/api/handles/88.118.8/{raw}"), 400, 102)
    r = await client.put(f"/api/handles/88.118.8/{raw}", json={"values": [URL]}, auth=ADMIN)
    error(r, 400, 102)
    assert "x-injected" not in r.headers


async def test_empty_handle_is_invalid_and_slash_prefix_lists(client: httpx.AsyncClient) -> None:
    assert error(await client.get("/api/handles/"), 400, 102)["message"] == "Empty handle invalid"
    r = await client.get("/api/handles/", params={"prefix": "88.118.8"}, auth=ADMIN)
    assert r.status_code == 200
    assert r.json()["prefix"] == "88.118.8"


# -- the PUT body --------------------------------------------------------------------------
async def test_body_handle_must_match_the_path(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    for other in ("88.118.8/OTHER", "88.118.9/M", "88.118.8/m", 42, None):
        body = {"handle": other, "values": [URL]}
        r = await client.put("/api/handles/88.118.8/M", json=body, auth=ADMIN)
        assert error(r, 400, 4)["message"] == "Mismatched handle in PUT request"
    assert not await stored(service, "88.118.8/M")
    # The prefix is case-insensitive, the suffix is not (Handle.Net's equalsPrefixCI).
    body = {"handle": "88.118.8/M", "values": [URL]}
    assert (await client.put("/api/handles/88.118.8/M", json=body, auth=ADMIN)).status_code == 201


async def test_data_object_without_format_is_refused(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    value = {"index": 1, "type": "URL", "data": {"value": "http://a.cn/x"}}
    r = await client.put("/api/handles/88.118.8/F", json={"values": [value]}, auth=ADMIN)
    assert "format" in error(r, 400, 4)["message"]
    assert not await stored(service, "88.118.8/F")
    # A bare string is still a string value (Handle.Net's JSON primitive).
    bare = {"index": 1, "type": "URL", "data": "http://a.cn/x"}
    r = await client.put("/api/handles/88.118.8/F", json={"values": [bare]}, auth=ADMIN)
    assert r.status_code == 201


async def test_one_value_as_the_body(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/handles/88.118.8/ONE", json=URL, auth=ADMIN)
    assert r.status_code == 201, r.text
    r = await client.get("/api/handles/88.118.8/ONE", params={"type": "URL"})
    assert r.json()["values"][0]["data"]["value"] == "http://a.cn/x"
    r = await client.put("/api/handles/88.118.8/TWO", json={"neither": 1}, auth=ADMIN)
    assert error(r, 400, 4)["message"] == "Invalid JSON in PUT request"


# -- methods -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["POST", "PATCH", "TRACE", "PROPFIND"])
async def test_methods_not_served_get_405_with_allow(
    client: httpx.AsyncClient, method: str
) -> None:
    r = await client.request(method, "/api/handles/88.118.8/X")
    error(r, 405, 4)
    assert r.headers["allow"] == "GET, HEAD, PUT, DELETE, OPTIONS"
    r = await client.request(method, "/api/handles")
    error(r, 405, 4)
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_options_and_head(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/handles/88.118.8/X")
    assert (r.status_code, r.headers["allow"]) == (200, "GET, HEAD, PUT, DELETE, OPTIONS")
    assert (await client.options("/api/handles")).headers["allow"] == "GET, HEAD, OPTIONS"
    r = await client.head("/api/handles/0.NA/88.118.8")
    assert (r.status_code, r.content) == (200, b"")


# -- numbers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "page=99999999999999999999999",
        "page=9223372036854775808",
        "page=2147483648",
        "pageSize=99999999999999999999",
        "page=1e3",
        "page=%D9%A3",  # an Arabic-Indic digit, which int() would read
        "page=",
    ],
)
async def test_list_numbers_that_do_not_fit_get_400(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/api/handles?prefix=88.118.8&{query}", auth=ADMIN)
    error(r, 400, 4)


async def test_largest_page_is_answered_empty(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/handles?prefix=88.118.8&page=2147483647&pageSize=10000", auth=ADMIN)
    assert (r.status_code, r.json()["handles"]) == (200, [])


@pytest.mark.parametrize("index", ["99999999999999999999", "2147483648", "1.5", "one"])
async def test_index_that_is_not_a_java_int_gets_400(client: httpx.AsyncClient, index: str) -> None:
    error(await client.get(f"/api/handles/0.NA/88.118.8?index={index}"), 400, 4)
    r = await client.delete(f"/api/handles/88.118.8/X?index={index}", auth=ADMIN)
    error(r, 400, 4)


async def test_numbers_too_large_for_the_store_inside_values_get_400(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    value = {**URL, "index": 2**70}
    r = await client.put("/api/handles/88.118.8/BIG", json={"values": [value]}, auth=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["responseCode"] in (4, 202)
    assert not await stored(service, "88.118.8/BIG")


# -- bounded messages ----------------------------------------------------------------------
async def test_error_messages_quote_a_bounded_prefix(client: httpx.AsyncClient) -> None:
    long = "Z" * 5000
    cases = [
        await client.get(f"/api/handles/88.118.8/{long}%0A"),
        await client.get(f"/api/handles/88..{long}/x"),
        await client.get(f"/api/handles/0.NA/88.118.8?index={long}"),
        await client.get(f"/api/handles/0.NA/88.118.8?recursive={long}"),
        await client.get(f"/api/handles?prefix={long}.!&page=0", auth=ADMIN),
        await client.put(
            "/api/handles/88.118.8/X",
            content=b"{}",
            headers={"content-type": "text/" + long},
            auth=ADMIN,
        ),
        await client.put(
            "/api/handles/88.118.8/X",
            json={"values": [{"index": 1, "type": "URL", "data": long}]},
            auth=ADMIN,
        ),
        await client.put(
            "/api/handles/88.118.8/X",
            content=b"[" + long.encode(),
            headers=JSON,
            auth=ADMIN,
        ),
        await client.get("/api/handles/0.NA/88.118.8", headers={"authorization": long + " x"}),
        await client.request(long, "/api/handles/88.118.8/X"),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, r.text
        body = r.json()
        assert len(body["message"]) < 4 * QUOTE_LIMIT + 200, body["message"]
        assert long[: 4 * QUOTE_LIMIT] not in r.text
        assert len(body.get("handle", "")) <= QUOTE_LIMIT + 3


# -- bodies: bounded, and read only once the caller is authenticated -----------------------
class Body:
    """An ASGI ``receive`` that counts what it hands out."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.reads = 0

    async def __call__(self) -> dict[str, Any]:
        self.reads += 1
        if not self.chunks:
            return {"type": "http.disconnect"}
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}


async def call(
    service: HandleService,
    headers: dict[str, str],
    receive: Body,
    path: str = "/api/handles/88.118.8/B",
) -> tuple[int, dict[str, Any]]:
    app = create_app(service)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": raw, "client": ("127.0.0.1", 5000),
        "server": ("node", 80),
    }  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body)


def basic(secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"300%3A0.NA/88.118.8:{secret}".encode()).decode()


async def test_declared_oversized_body_is_refused_before_it_is_read(
    service: HandleService,
) -> None:
    receive = Body([b"x" * 1024])
    headers = {"content-type": "application/json", "content-length": str(MAX_BODY_BYTES + 1)}
    status, body = await call(service, {**headers, "authorization": basic()}, receive)
    assert (status, body["responseCode"]) == (413, 4)
    assert receive.reads == 0


async def test_streamed_oversized_body_is_refused_at_the_limit(service: HandleService) -> None:
    chunk = b" " * (1024 * 1024)
    chunks = [chunk] * (MAX_BODY_BYTES // len(chunk) + 3)
    receive = Body(list(chunks))
    headers = {"content-type": "application/json", "authorization": basic()}
    status, body = await call(service, headers, receive)
    assert (status, body["responseCode"]) == (413, 4)
    assert receive.reads == MAX_BODY_BYTES // len(chunk) + 1  # stopped once over the limit


@pytest.mark.parametrize("secret", [None, "wrong"])
async def test_body_is_not_read_before_authentication(
    service: HandleService, secret: str | None
) -> None:
    receive = Body([orjson.dumps({"values": [URL]})])
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["authorization"] = basic(secret)
    status, body = await call(service, headers, receive)
    assert status == 401
    assert body["responseCode"] in (402, 403)
    assert receive.reads == 0
    assert not await stored(service, "88.118.8/B")


async def test_an_unexpected_failure_is_a_json_500(service: HandleService) -> None:
    async def broken(*_: object, **__: object) -> object:
        raise RuntimeError("boom")

    service.answer = broken  # type: ignore[method-assign]
    transport = httpx.ASGITransport(app=create_app(service), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
        r = await c.get("/api/handles/88.118.8/X")
    assert error(r, 500, 2)["message"] == "internal error"
    assert "boom" not in r.text


async def test_since_too_large_for_the_store_is_400_not_500(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.SECONDARY, "88.118", telemetry=False) as node:
        auth = auth_for("88.118")
        r = await node.http.get("/monitoring/notices", params={"since": "1"}, auth=auth)
        assert r.status_code == 200, r.text
        r = await node.http.get("/monitoring/notices", params={"since": str(10**23)}, auth=auth)
        error(r, 400, 4)


async def test_unknown_api_endpoints_get_the_json_error_body(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/handlesX/1")
    assert error(r, 404, 4)["message"] == "Unknown HTTP API endpoint GET /api/handlesX/1"
    r = await client.post("/api/node")
    error(r, 405, 4)
    assert "GET" in r.headers["allow"]
    # Outside /api/ the framework's own error body is kept.
    r = await client.get("/no/such/page")
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})


async def test_user_name_that_is_not_utf8_is_an_invalid_credential(
    client: httpx.AsyncClient,
) -> None:
    header = "Basic " + base64.b64encode(b"300%3A0.NA/88.118.%FF:" + SECRET.encode()).decode()
    r = await client.get("/api/handles/0.NA/88.118.8", headers={"authorization": header})
    assert "UTF-8" in error(r, 401, 404)["message"]
