"""A top-level node's own security events show in its own views (it has no parent to send
them to), with the node assembled as it serves."""

from __future__ import annotations

import asyncio
from pathlib import Path

from api.node_support import auth_for, running_node
from iinode.monitoring.security import iinode_properties, parse_bundle
from iinode.node.settings import Role


async def _until(probe: object, limit: float = 20.0) -> object:
    assert callable(probe)
    for _ in range(int(limit / 0.05)):
        if got := await probe():
            return got
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def test_a_wrong_password_at_the_top_shows_in_its_own_views(tmp_path: Path) -> None:
    async with running_node(tmp_path, Role.TOP, "88", heartbeat_interval=0.05) as top:
        monitoring = top.extensions.monitoring
        assert monitoring is not None

        async def watching() -> bool:  # the security sources start in the background
            return bool(top.service.auth.failure_observers)

        await _until(watching)
        r = await top.http.put("/api/handles/88/X", json={"values": []},
                               auth=auth_for("88", "wrong"))  # fmt: skip
        assert r.status_code == 401

        async def listed() -> list[dict[str, object]]:
            r = await top.http.get("/monitoring/events", params={"kind": "security"},
                                   auth=auth_for("88"))  # fmt: skip
            assert r.status_code == 200, r.text
            return [e for e in r.json()["events"] if e["origin"] == "88"]

        (event,) = await _until(listed)  # type: ignore[misc]
        assert isinstance(event, dict)
        bundle = parse_bundle(event["detail"])  # held here in full
        observed = next(o for o in bundle.objects if o.type == "observed-data")
        assert iinode_properties(observed)["kind"] == "auth_failure"
        assert "300:0.NA/88" in iinode_properties(observed)["description"]
        view = await top.http.get("/monitoring/view", params={"by": "origin"},
                                  auth=auth_for("88"))  # fmt: skip
        assert view.json()["counts"] == {"88": 1}
        assert monitoring.outbox.pending == 0  # nothing queued for a parent it does not have
