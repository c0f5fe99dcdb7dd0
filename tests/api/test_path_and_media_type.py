"""Which handle a REST path names, which POSTs reach the native handler, and that the
native endpoint's session file is closed when the app shuts down."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from iinode.api.app import create_app
from iinode.api.native_http import (
    HDL_MIME_TYPE,
    NativeHttpEndpoint,
    NativeOverHttp,
    is_native_request,
)
from iinode.identifiers import HandleName, IndexedHandle
from iinode.node.service import HandleService
from iinode.resolution.shared_sessions import SESSIONS_FILE
from rest_node import ADMIN

URL = {"index": 1, "type": "URL", "data": {"format": "string", "value": "http://a.cn/"}}


async def test_an_escaped_route_prefix_never_names_a_handle(
    client: httpx.AsyncClient, service: HandleService
) -> None:
    r = await client.put("/api/handles/88.118.8/victim", json={"values": [URL]}, auth=ADMIN)
    assert r.status_code == 201, r.text
    for path in ("/api/handle%73/88.118.8/a%FFb", "/api/handle%73/x/api/handles/88.118.8/victim"):
        r = await client.get(path)
        assert r.status_code == 400, (path, r.text)
        r = await client.delete(path, auth=ADMIN)
        assert r.status_code == 400, (path, r.text)
    assert await service.lookup(HandleName.parse("88.118.8/victim")) is not None
    assert await service.lookup(HandleName.parse("88.118.8/a\ufffdb")) is None
    # The literal prefix still works, escapes in the handle decoded exactly.
    assert (await client.get("/api/handles/88.118.8/vic%74im")).status_code == 200


def _post(content_type: bytes) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "headers": [(b"content-type", content_type)]}


def test_only_the_exact_media_type_goes_to_the_native_handler() -> None:
    for native in (
        HDL_MIME_TYPE.encode(),
        b"Application/X-HDL-Message",
        b"application/x-hdl-message; charset=binary",
        b" application/x-hdl-message ;x=1",
    ):
        assert is_native_request(_post(native)), native
    for other in (
        b"text/plain; x=application/x-hdl-message",
        b"text/plain;application/x-hdl-message",
        b"application/x-hdl-message-not",
        b"application/json",
    ):
        assert not is_native_request(_post(other)), other


async def test_the_native_session_file_is_closed_at_app_shutdown(
    service: HandleService, tmp_path: Path
) -> None:
    app = create_app(service)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    sent: list[str] = []

    async def send(message: Any) -> None:
        sent.append(message["type"])

    task = asyncio.create_task(
        NativeOverHttp(app)({"type": "lifespan", "app": app, "state": {}}, inbox.get, send)
    )
    await inbox.put({"type": "lifespan.startup"})
    while "lifespan.startup.complete" not in sent:
        assert not task.done(), sent
        await asyncio.sleep(0.01)
    endpoint = NativeOverHttp.endpoint({"app": app})
    assert isinstance(endpoint, NativeHttpEndpoint)
    endpoint.handler.sessions.open(IndexedHandle.parse("300:0.NA/88.118.8"), 0.0)
    assert (tmp_path / f"{SESSIONS_FILE}-wal").exists()
    await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, 30)
    assert "lifespan.shutdown.complete" in sent
    assert not (tmp_path / f"{SESSIONS_FILE}-wal").exists()
