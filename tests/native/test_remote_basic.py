"""HTTP Basic for an identity whose HS_SECKEY lives on another node (the parent's admin).

The child never sees the parent's secret at rest: it answers a fresh nonce with the
secret it was given (HMAC-SHA256) and asks the parent with VERIFY_RESPONSE, certified,
over the native protocol, as for a native challenge answer; the verdict must be signed
with the parent's key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from iinode.api.app import create_app
from iinode.identifiers import (
    AdminData,
    AdminPermission,
    HandleValue,
    IndexedHandle,
    Permissions,
    UrlData,
)
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_trust import learn_server_key
from iinode.storage import SQLiteStore
from native.nodes import SECRET, Node, seed, start_node, url
from support import free_port

PARENT_ADMIN = IndexedHandle.parse("300:0.NA/88.118")
HIDDEN = HandleValue(
    5,
    "URL",
    UrlData("http://hidden/"),
    permissions=Permissions.ADMIN_READ | Permissions.ADMIN_WRITE,
)


def basic(identity: IndexedHandle, secret: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(quote(str(identity), safe=""), secret)


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Node]:
    node = start_node(tmp_path, Role.SECONDARY, "88.118")
    yield node
    node.server.stop()


@pytest.fixture
def child_settings(tmp_path: Path, parent: Node) -> NodeSettings:
    """88.118.8, whose record SHARED the parent's admin may read in full."""
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path / "child", prefix="88.118.8",
        http_port=free_port(), parent_url="http://127.0.0.1:1", parent_handle_port=parent.port,
    )  # fmt: skip
    settings.data_dir.mkdir()
    grant = AdminData(AdminPermission.all(), PARENT_ADMIN)
    shared = [url(1, "http://s/"), HIDDEN, HandleValue(100, "HS_ADMIN", grant)]
    seed(settings, {"88.118.8/SHARED": shared})
    return settings


@pytest.fixture
async def child_http(child_settings: NodeSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The child's REST API, in process."""
    store = SQLiteStore(child_settings.data_dir / "handles.sqlite3")
    app = create_app(HandleService(child_settings, store, learn_key=learn_server_key))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://child.test") as client:
        yield client
    await store.close()


def _indexes(response: httpx.Response) -> set[int]:
    assert response.status_code == 200, response.text
    return {v["index"] for v in response.json()["values"]}


async def test_the_parents_admin_signs_in_on_the_child(
    parent: Node, child_http: httpx.AsyncClient
) -> None:
    assert _indexes(await child_http.get("/api/handles/88.118.8/SHARED")) == {1, 100}
    asked = parent.server.counters.requests
    r = await child_http.get("/api/handles/88.118.8/SHARED", auth=basic(PARENT_ADMIN, SECRET))
    assert _indexes(r) == {1, 5, 100}
    assert parent.server.counters.requests > asked  # the parent was asked
    wrong = await child_http.get(
        "/api/handles/88.118.8/SHARED", auth=basic(PARENT_ADMIN, "not-the-secret")
    )
    assert wrong.status_code == 401
    assert "authentication as 300:0.NA/88.118 failed" in wrong.text
    # A write as the parent's admin, checked the same way.
    body = {
        "values": [{"index": 1, "type": "URL", "data": {"format": "string", "value": "http://n/"}}]
    }
    r = await child_http.put(
        "/api/handles/88.118.8/NEW-BY-PARENT", json=body, auth=basic(PARENT_ADMIN, SECRET)
    )
    assert r.status_code == 403, r.text  # authenticated, but no ADD_HANDLE on 0.NA/88.118.8


async def test_an_unknown_identity_elsewhere_is_refused(
    parent: Node, child_http: httpx.AsyncClient
) -> None:
    nobody = IndexedHandle.parse("300:88.118/NOBODY")
    r = await child_http.get("/api/handles/88.118.8/SHARED", auth=basic(nobody, SECRET))
    assert r.status_code == 401
