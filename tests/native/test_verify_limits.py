"""Failed VERIFY_RESPONSE checks are charged to the client, not to the node asking for it.

The parent holds ``300:0.NA/88.118``'s secret; a child asks it for each of its clients.
Charging the parent's failure bucket to the child's address let one client with a wrong
password lock the real administrator out through the child.  The child limits its own
clients per address; the parent counts a neighbour node's failures far more leniently.
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
    site_for,
)
from iinode.node.auth import NODE_FAILURE_LIMITS, Authorizer
from iinode.node.seckey_answers import answer_type_for, seckey_answer
from iinode.node.service import HandleService
from iinode.node.settings import NodeSettings, Role
from iinode.resolution.native_trust import learn_server_key
from iinode.storage import MemoryStore, SQLiteStore
from native.nodes import SECRET, Node, seed, start_node, url
from support import free_port

ADMIN = IndexedHandle.parse("300:0.NA/88.118")
SHARED = "/api/handles/88.118.8/SHARED"
HIDDEN = HandleValue(
    5,
    "URL",
    UrlData("http://hidden/"),
    permissions=Permissions.ADMIN_READ | Permissions.ADMIN_WRITE,
)


def _basic(secret: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(quote(str(ADMIN), safe=""), secret)


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[Node]:
    """88.118, which delegates 88.118.8 to a site on 127.0.0.1 (where the child asks from)."""
    child_site = site_for("127.0.0.1", handle_port=free_port())
    records = {"0.NA/88.118.8": [HandleValue(1, "HS_SITE", child_site)]}
    node = start_node(tmp_path, Role.SECONDARY, "88.118", records)
    yield node
    node.server.stop()


@pytest.fixture
def child_settings(tmp_path: Path, parent: Node) -> NodeSettings:
    settings = NodeSettings(
        role=Role.ENTERPRISE, data_dir=tmp_path / "child", prefix="88.118.8",
        http_port=free_port(), parent_url="http://127.0.0.1:1", parent_handle_port=parent.port,
    )  # fmt: skip
    settings.data_dir.mkdir()
    grant = AdminData(AdminPermission.all(), ADMIN)
    shared = [url(1, "http://s/"), HIDDEN, HandleValue(100, "HS_ADMIN", grant)]
    seed(settings, {"88.118.8/SHARED": shared})
    return settings


@pytest.fixture
async def child_app(child_settings: NodeSettings) -> AsyncIterator[object]:
    store = SQLiteStore(child_settings.data_dir / "handles.sqlite3")
    yield create_app(HandleService(child_settings, store, learn_key=learn_server_key))
    await store.close()


def _client(app: object, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://child.test")


async def test_a_guessing_client_does_not_lock_the_admin_out(child_app: object) -> None:
    async with _client(child_app, "10.0.0.66") as mallory, _client(child_app, "10.0.0.1") as admin:
        codes = [(await mallory.get(SHARED, auth=_basic("guess"))).status_code for _ in range(14)]
        assert set(codes) <= {401, 429}, codes
        # Mallory is out of attempts on the child ...
        last = await mallory.get(SHARED, auth=_basic(SECRET))
        assert last.status_code in (401, 429), last.text
        # ... the administrator, from elsewhere, is not.
        r = await admin.get(SHARED, auth=_basic(SECRET))
        assert r.status_code == 200, r.text
        assert {v["index"] for v in r.json()["values"]} == {1, 5, 100}


async def test_a_neighbour_is_still_bounded(tmp_path: Path) -> None:
    settings = NodeSettings(role=Role.SECONDARY, data_dir=tmp_path, prefix="88.118")
    service = HandleService(settings, MemoryStore())
    await service.initialise(SECRET)
    auth: Authorizer = service.auth
    nonce, digest = bytes(16), bytes(32)
    kind = answer_type_for((2, 6))  # SHA-1: cheap to check
    wrong = seckey_answer(b"guess", nonce, digest, kind)
    right = seckey_answer(SECRET.encode(), nonce, digest, kind)
    for _ in range(NODE_FAILURE_LIMITS.burst):
        assert not await auth.verify_request(
            ADMIN, nonce, digest, wrong, peer="192.0.2.8", neighbour=True
        )
    # Past the lenient burst even a neighbour's right answer waits; a client's bucket was
    # emptied after ten.
    assert not await auth.verify_request(
        ADMIN, nonce, digest, right, peer="192.0.2.8", neighbour=True
    )
    for _ in range(10):
        assert not await auth.verify_request(ADMIN, nonce, digest, wrong, peer="192.0.2.9")
    assert not await auth.verify_request(ADMIN, nonce, digest, right, peer="192.0.2.9")
    assert await auth.verify_request(ADMIN, nonce, digest, right, peer="192.0.2.10")
