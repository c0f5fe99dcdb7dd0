"""The native protocol over HTTP on the REST port (the HS_SITE ``HTTP`` interface).

Pinned reference behaviour (Handle.Net 9: ``HandleResolver.sendHttpOrHttpsRequest``
and the server's ``NativeServlet``): the client sends ``POST /<url-encoded
handle>`` with ``Content-Type`` and ``Accept`` ``application/x-hdl-message``, the
``User-Agent`` ``CNRI-HCL 2.0`` and a ``Content-Length``, the body being the
envelope and message exactly as over TCP; the server answers ``200`` with the same
content type, a ``Content-Length`` (the client reads no chunked body) and the
response message(s), envelope first, carrying the request id.  A stray CR or LF
before the envelope is skipped.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from iinode.api.app import create_app
from iinode.api.native_http import HDL_MIME_TYPE, MAX_ANSWER_BYTES, NativeHttpEndpoint, own_site
from iinode.codes import ResponseCode
from iinode.errors import HandleError
from iinode.identifiers import HandleName, HandleValue, IndexedHandle, TransportProtocol, UrlData
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.proto import (
    ENVELOPE_SIZE,
    ErrorBody,
    ListHandlesResponse,
    Message,
    OpCode,
    OpFlag,
    ResolutionRequest,
    ResolutionResponse,
    SiteInfoResponse,
    body_type,
)
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from iinode.resolution.native_handler import NativeHandler
from iinode.storage import MemoryStore, SQLiteStore
from rest_node import served
from support import free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pyhandle.clientcredentials import PIDClientCredentials
    from pyhandle.handleclient import PyHandleClient

SECRET = "s3cret"
ADMIN = httpx.BasicAuth("300%3A0.NA/88.118.8", SECRET)
HANDLE = "88.118.8/PRESS-01"
URL = {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://a.cn/press"}}
REQUEST_ID = 0x12345678
#: REC | CA | PO, as a stock HandleResolver sets them on a resolution.
STOCK_FLAGS = 0x10000000 | 0x08000000 | 0x01000000


def stock_resolution(handle: str = HANDLE, request_id: int = REQUEST_ID) -> bytes:
    """A resolution as a Handle.Net 9 client encodes it (RFC 3652 s2, written out by hand):
    protocol 2.10 suggesting 2.11, no session, no credential, expiring in 12 hours."""
    name = handle.encode()
    body = struct.pack(">I", len(name)) + name + struct.pack(">II", 0, 0)  # no indexes, no types
    expiration = int(time.time()) + 43200
    header = struct.pack(
        ">IIIHBBII", 1, 0, STOCK_FLAGS, 0xFFFF, 0, 0, expiration, len(body)
    )  # RESOLUTION, request, flags, site serial -1, recursion 0, reserved, expiration
    message = header + body + struct.pack(">I", 0)  # empty credential section
    envelope = bytes([2, 10, 2, 11]) + struct.pack(">III", 0, request_id, 0)
    return envelope + struct.pack(">I", len(message)) + message


def stock_headers(body: bytes, host: str = "127.0.0.1:8000") -> dict[str, str]:
    return {
        "Host": host,
        "Accept": HDL_MIME_TYPE,
        "User-Agent": "CNRI-HCL 2.0",
        "Content-Type": HDL_MIME_TYPE,
        "Content-Length": str(len(body)),
    }


def messages(body: bytes) -> list[Message]:
    """Split an HTTP body into messages as the stock client reads it (envelope, length)."""
    out: list[Message] = []
    while body:
        (length,) = struct.unpack_from(">I", body, 16)
        out.append(Message.from_wire(body[: ENVELOPE_SIZE + length]))
        body = body[ENVELOPE_SIZE + length :]
    return out


@pytest.fixture
async def service(tmp_path: Path) -> HandleService:
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", http_port=8000
    )
    svc = HandleService(settings, MemoryStore())
    await svc.initialise(SECRET)
    return svc


@pytest.fixture
def app(service: HandleService) -> FastAPI:
    return create_app(service)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        r = await c.put(f"/api/handles/{HANDLE}", json={"values": [URL]}, auth=ADMIN)
        assert r.status_code == 201
        yield c


async def test_stock_resolution_is_answered_over_http(client: httpx.AsyncClient) -> None:
    body = stock_resolution()
    r = await client.post("/88.118.8%2FPRESS-01", content=body, headers=stock_headers(body))
    assert r.status_code == 200
    assert r.headers["content-type"] == HDL_MIME_TYPE
    assert int(r.headers["content-length"]) == len(r.content)
    assert "transfer-encoding" not in r.headers
    # The envelope carries the request id; the header the opcode and response code.
    assert struct.unpack_from(">I", r.content, 8)[0] == REQUEST_ID
    assert struct.unpack_from(">II", r.content, ENVELOPE_SIZE) == (OpCode.RESOLUTION, 1)
    [answer] = messages(r.content)
    assert answer.response_code == ResponseCode.SUCCESS
    assert answer.expiration > time.time()  # else the stock client drops it as expired
    assert isinstance(answer.body, ResolutionResponse)
    assert answer.body.handle == HANDLE
    urls = [v for v in answer.body.values if v.type == "URL"]
    assert [v.to_json()["data"]["value"] for v in urls] == ["http://a.cn/press"]


async def test_iinode_messages_over_http_and_site_honesty(client: httpx.AsyncClient) -> None:
    """iinode's own codec as the client: GET_SITEINFO and a miss, on any path."""
    siteinfo_body = body_type(OpCode.GET_SITEINFO, ResponseCode.RESERVED)()
    request = Message(OpCode.GET_SITEINFO, siteinfo_body, request_id=7)
    wire = request.to_wire()
    r = await client.post("/", content=wire, headers={"content-type": HDL_MIME_TYPE})
    [answer] = messages(r.content)
    assert answer.request_id == 7
    assert isinstance(answer.body, SiteInfoResponse)
    # The site advertises HTTP on this port, and that interface now speaks the protocol.
    http = [
        i
        for s in answer.body.site.servers
        for i in s.interfaces
        if i.protocol == TransportProtocol.HTTP
    ]
    assert [i.port for i in http] == [8000]

    missing = Message(OpCode.RESOLUTION, ResolutionRequest("88.118.8/NOPE"), request_id=8)
    r = await client.post(
        "/api/handles/88.118.8/NOPE",
        content=missing.to_wire(),
        headers={"content-type": f"{HDL_MIME_TYPE}; charset=binary", "accept": HDL_MIME_TYPE},
    )
    [answer] = messages(r.content)
    assert (answer.request_id, answer.response_code) == (8, ResponseCode.HANDLE_NOT_FOUND)


class HttpAdminClient(NativeAdminClient):
    """iinode's admin client with each exchange sent as its own HTTP request, as a stock
    client does over an HTTP interface (so its challenge answer arrives separately)."""

    def __init__(self, http: httpx.AsyncClient, auth: SecretKeyAuth) -> None:
        super().__init__("127.0.0.1", 8000, auth)
        self.http = http
        self.posts = 0
        self.last: list[Message] = []

    async def _exchange(self, request: Message) -> Message:
        self.posts += 1
        headers = {"content-type": HDL_MIME_TYPE, "accept": HDL_MIME_TYPE}
        r = await self.http.post("/88.118.8%2FADM", content=request.to_wire(), headers=headers)
        self.last = messages(r.content)  # a streamed answer: several, all but the last CN
        return self.last[0]

    async def close(self) -> None:
        return None


async def test_administration_with_a_challenge_over_http(client: httpx.AsyncClient) -> None:
    identity = IndexedHandle.parse("300:0.NA/88.118.8")
    admin = HttpAdminClient(client, SecretKeyAuth(identity, SECRET))
    name = HandleName.parse("88.118.8/ADM")
    await admin.create(name, [HandleValue(1, "URL", UrlData("http://a.cn/adm"))])
    assert admin.posts >= 2  # the request, its challenge answered in another request
    r = await client.get("/api/handles/88.118.8/ADM", params={"type": "URL"})
    assert r.json()["values"][0]["data"]["value"] == "http://a.cn/adm"
    await admin.delete(name)
    assert (await client.get("/api/handles/88.118.8/ADM")).status_code == 404
    wrong = HttpAdminClient(client, SecretKeyAuth(identity, "wrong"))
    with pytest.raises(HandleError) as refused:
        await wrong.create(name, [HandleValue(1, "URL", UrlData("http://a.cn/adm"))])
    assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    assert (await client.get("/api/handles/88.118.8/ADM")).status_code == 404


@pytest.mark.parametrize("limit", [MAX_ANSWER_BYTES, 600])
async def test_a_streamed_listing_is_gathered_into_one_http_answer(
    service: HandleService, app: FastAPI, client: httpx.AsyncClient, limit: int
) -> None:
    names = [f"88.118.8/L{n:03}" for n in range(40)]
    for name in names:
        r = await client.put(f"/api/handles/{name}", json={"values": [URL]}, auth=ADMIN)
        assert r.status_code == 201
    # Small parts, so the listing is several messages; the app picks this endpoint up.
    handler = NativeHandler(service, own_site(service), list_chunk_bytes=128)
    app.state.native_http = NativeHttpEndpoint(service, handler=handler, max_answer_bytes=limit)
    admin = HttpAdminClient(client, SecretKeyAuth(IndexedHandle.parse("300:0.NA/88.118.8"), SECRET))
    await admin.list_handles(HandleName.parse("0.NA/88.118.8"))
    parts = admin.last
    assert len(parts) > 3
    assert all(p.flags & OpFlag.CN for p in parts[:-1])
    assert all(p.request_id == parts[0].request_id for p in parts)
    listed = {h for p in parts if isinstance(p.body, ListHandlesResponse) for h in p.body.handles}
    if limit == MAX_ANSWER_BYTES:
        assert not parts[-1].flags & OpFlag.CN
        assert set(names) | {HANDLE} <= listed
    else:  # cut short: the last message says so instead of leaving the client waiting
        assert sum(len(p.to_wire()) for p in parts[:-1]) <= limit
        assert parts[-1].response_code == ResponseCode.ERROR
        assert "TCP" in getattr(parts[-1].body, "message", "")
        assert listed < set(names) | {HANDLE}


async def test_a_stray_newline_before_the_envelope_is_skipped(client: httpx.AsyncClient) -> None:
    for lead in (b"\n", b"\r"):
        body = lead + stock_resolution(request_id=99)
        r = await client.post("/x", content=body, headers={"content-type": HDL_MIME_TYPE})
        [answer] = messages(r.content)
        assert (answer.request_id, answer.response_code) == (99, ResponseCode.SUCCESS)


@pytest.mark.parametrize(
    ("body", "request_id"),
    [
        (b"", 0),
        (b"\x02\x0a\x00\x00", 0),  # a partial envelope
        (stock_resolution(request_id=5)[:-3], 0),  # shorter than the envelope announces
        (stock_resolution(request_id=6)[:ENVELOPE_SIZE] + b"\x00" * 57, 6),  # not a message
    ],
)
async def test_malformed_bodies_get_a_protocol_error_message(
    client: httpx.AsyncClient, body: bytes, request_id: int
) -> None:
    r = await client.post("/x", content=body, headers={"content-type": HDL_MIME_TYPE})
    assert (r.status_code, r.headers["content-type"]) == (200, HDL_MIME_TYPE)
    [answer] = messages(r.content)
    assert answer.response_code == ResponseCode.PROTOCOL_ERROR
    assert answer.request_id == request_id
    assert isinstance(answer.body, ErrorBody)


async def test_rest_keeps_the_port(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/api/handles/{HANDLE}")
    assert (r.status_code, r.json()["handle"]) == (200, HANDLE)
    # A POST that is not a native message still reaches the REST routes.
    r = await client.post(f"/api/handles/{HANDLE}", json={"values": [URL]})
    assert r.status_code == 405
    assert r.json()["responseCode"] == 4


async def test_an_oversized_body_is_refused_before_it_is_read(service: HandleService) -> None:
    app = create_app(service)
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [
        (b"content-type", HDL_MIME_TYPE.encode()),
        (b"content-length", str(10**9).encode()),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("node", 80),
    }  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert reads == 0
    [answer] = messages(sent[1]["body"])
    assert answer.response_code == ResponseCode.PROTOCOL_ERROR


# -- a real server: the exchange byte for byte, the REST API and pyhandle on one port ------
@pytest.fixture
def live(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path, prefix="88.118.8", http_port=port
    )
    store = SQLiteStore(tmp_path / "h.sqlite3")
    svc = HandleService(settings, store)
    asyncio.run(svc.initialise(SECRET))
    with served(svc, port):
        yield port


def exchange_as_stock_client(port: int, body: bytes) -> tuple[list[str], bytes]:
    """Send the request as ``sendHttpOrHttpsRequest`` writes it; read the answer as it
    reads it: header lines up to the blank one, then envelope and message."""
    head = (
        "POST /88.118.8%2FPYH-1 HTTP/1.1\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in stock_headers(body, f"127.0.0.1:{port}").items())
        + "\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        stream = sock.makefile("rb")
        lines = []
        while (line := stream.readline().decode("latin-1").strip()) != "":
            lines.append(line)
        envelope = stream.read(ENVELOPE_SIZE)
        (length,) = struct.unpack_from(">I", envelope, 16)
        return lines, envelope + stream.read(length)


def test_stock_exchange_rest_and_pyhandle_share_the_live_port(live: int) -> None:
    creds = PIDClientCredentials(
        client="rest",
        handle_server_url=f"http://127.0.0.1:{live}",
        username="300:0.NA/88.118.8",
        password=SECRET,
        HTTPS_verify=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pyh = PyHandleClient("rest").instantiate_with_credentials(creds)
        assert pyh.register_handle("88.118.8/PYH-1", "http://factory.cn/1") == "88.118.8/PYH-1"

    lines, wire = exchange_as_stock_client(live, stock_resolution("88.118.8/PYH-1", 4242))
    assert lines[0].startswith("HTTP/1.1 200")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    assert headers["content-type"] == HDL_MIME_TYPE
    assert "transfer-encoding" not in headers
    answer = Message.from_wire(wire)
    assert (answer.request_id, answer.response_code) == (4242, ResponseCode.SUCCESS)
    assert isinstance(answer.body, ResolutionResponse)
    assert any(v.type == "URL" for v in answer.body.values)

    r = httpx.get(f"http://127.0.0.1:{live}/api/handles/88.118.8/PYH-1", params={"type": "URL"})
    assert orjson.loads(r.content)["values"][0]["data"]["value"] == "http://factory.cn/1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert pyh.get_value_from_handle("88.118.8/PYH-1", "URL") == "http://factory.cn/1"
        pyh.delete_handle("88.118.8/PYH-1")
    lines, wire = exchange_as_stock_client(live, stock_resolution("88.118.8/PYH-1", 4243))
    assert Message.from_wire(wire).response_code == ResponseCode.HANDLE_NOT_FOUND
