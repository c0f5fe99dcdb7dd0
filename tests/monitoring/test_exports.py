from __future__ import annotations

import iinode.monitoring as monitoring


def test_public_api_is_pinned() -> None:
    assert sorted(monitoring.__all__) == sorted(
        name
        for name in dir(monitoring)
        if not name.startswith("_")
        and name
        not in {
            "auth",
            "cpe",
            "errors",
            "events",
            "inventory",
            "metrics",
            "notices",
            "outbox",
            "protocol",
            "receiver",
            "sender",
            "store",
            "vulns",
            "security",
            "node",
            "sources",
            "node_sources",
            "watches",
            "supervise",
            "details",
            "sqlite",
        }
    )
    assert len(monitoring.__all__) == 48
