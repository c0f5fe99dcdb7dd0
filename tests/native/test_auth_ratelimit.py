"""Failed logins are limited per client address on every front end.

Native challenge answers (a real server over TCP, clients leaving from two
loopback addresses) and monitoring logins (the node app in process, clients
at two addresses).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from api.node_support import Node as ApiNode
from api.node_support import auth_for, running_node
from iinode.codes import ResponseCode
from iinode.errors import HandleError, TransportError
from iinode.identifiers import HandleName, IndexedHandle
from iinode.node.ratelimit import FailureLimiter, FailureLimits
from iinode.node.settings import Role
from iinode.resolution.native_admin import NativeAdminClient, SecretKeyAuth
from native.nodes import SECRET, Node, url

ADMIN = IndexedHandle.parse("300:0.NA/88.118.8")


class FromAddress(NativeAdminClient):
    """An admin client whose connections leave from ``source`` (any 127.x is loopback)."""

    source = "127.0.0.1"

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(*self.address, local_addr=(self.source, 0)), self.timeout
            )
        except OSError as exc:
            raise TransportError(f"cannot connect from {self.source}: {exc}") from exc


class FromOther(FromAddress):
    source = "127.0.0.2"


async def create(client: type[FromAddress], node: Node, secret: str, name: str) -> None:
    async with client(*node.address, SecretKeyAuth(ADMIN, secret)) as admin:
        await admin.create(HandleName.parse(f"88.118.8/{name}"), [url(1, "http://a/")])


async def refusal(client: type[FromAddress], node: Node, secret: str, name: str) -> HandleError:
    with pytest.raises(HandleError) as refused:
        await create(client, node, secret, name)
    assert refused.value.code == ResponseCode.AUTHENTICATION_FAILED
    return refused.value


async def test_repeated_wrong_answers_from_one_address_are_refused(enterprise: Node) -> None:
    handler = enterprise.server.handler
    assert handler is not None
    handler.service.auth.limiter = FailureLimiter(FailureLimits(burst=3, per_second=0.01))
    for i in range(3):
        wrong = await refusal(FromAddress, enterprise, "guess", f"W{i}")
        assert "too many" not in wrong.message
    # out of attempts: even the right secret is refused, before it is checked
    limited = await refusal(FromAddress, enterprise, SECRET, "RIGHT")
    assert "too many failed authentications as 300:0.NA/88.118.8 from 127.0.0.1; try again in" in (
        limited.message
    )
    # another address is not held back by this one's failures
    await create(FromOther, enterprise, SECRET, "OTHER")
    auth = handler.service.auth
    admin = IndexedHandle.parse("300:0.NA/88.118.8")
    assert auth.retry_after(admin, "127.0.0.2") == 0.0
    assert auth.retry_after(admin, "127.0.0.1") > 0.0


def client_at(node: ApiNode, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=node.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://node.test")


async def test_repeated_wrong_monitoring_logins_from_one_address_are_refused(
    tmp_path: Path,
) -> None:
    seen: list[tuple[str, str, str | None]] = []
    async with running_node(tmp_path, Role.SECONDARY, "88.118") as parent:
        await parent.delegate("88.118.8", "http://127.0.0.1:8003")
        auth = parent.service.auth
        auth.limiter = FailureLimiter(FailureLimits(burst=3, per_second=0.01))
        auth.failure_observers.append(lambda *failure: seen.append(failure))
        body = {"v": 1, "sender": "88.118.8", "batch": uuid.uuid4().hex, "sent_at": time.time(),
                "events": []}  # fmt: skip
        async with client_at(parent, "10.0.0.7") as guesser, client_at(parent, "10.0.0.8") as child:
            # a prefix not delegated here (a child started first) costs its address nothing
            early = {**body, "sender": "88.118.9"}
            for _ in range(5):
                r = await guesser.post("/monitoring/reports", json=early, auth=auth_for("88.118.9"))
                assert r.status_code == 401
            assert len(auth.limiter) == 0
            for _ in range(3):
                r = await guesser.post("/monitoring/reports", json=body,
                                       auth=auth_for("88.118.8", "guess"))  # fmt: skip
                assert r.status_code == 401
                assert "too many" not in r.json()["detail"]
            # out of attempts: the right secret is refused too, and the answer says why
            r = await guesser.post("/monitoring/reports", json=body, auth=auth_for("88.118.8"))
            assert r.status_code == 401
            assert r.json()["error"] == "unauthenticated"
            assert (
                "too many failed authentications as 300:0.NA/88.118.8 from 10.0.0.7"
                in (r.json()["detail"])
            )
            # another identity behind the same address (a NAT, a proxy) is not locked out
            r = await guesser.get("/monitoring/nodes", auth=auth_for("88.118"))
            assert r.status_code == 200, r.text
            # another address reports as usual
            r = await child.post("/monitoring/reports", json=body, auth=auth_for("88.118.8"))
            assert r.status_code == 200, r.text
    assert seen[:3] == [("monitoring", "300:0.NA/88.118.8", "10.0.0.7")] * 3
