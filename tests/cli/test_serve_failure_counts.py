"""``iinode serve --workers 2``: failed logins are counted once for the whole node."""

from __future__ import annotations

from pathlib import Path

import httpx

from cli.cli_support import auth, http_port, init, serving
from iinode.node.failure_counts import FAILURES_FILE
from iinode.node.ratelimit import FailureLimits

PAIR_BURST = FailureLimits().burst  # failures as one identity from one address


def _put(url: str, secret: str) -> tuple[int, str]:
    """A write with HTTP Basic, on a fresh connection (the kernel picks the worker)."""
    with httpx.Client(base_url=url, headers={"Connection": "close"}) as client:
        r = client.put(
            "/api/handles/88.5/X",
            json={"values": [{"index": 1, "type": "URL", "data": "http://x/"}]},
            auth=auth("88.5", secret),
        )
    return r.status_code, r.text


def test_workers_share_one_failure_count(tmp_path: Path) -> None:
    data, port = tmp_path / "ent", http_port()
    url = f"http://127.0.0.1:{port}"
    init(data, "enterprise", "88.5", port, "ent-pw")
    with serving(data, port, "--workers", "2"):
        said = [_put(url, f"guess{n}") for n in range(3 * PAIR_BURST)]
    checked = [text for _, text in said if "too many" not in text]
    assert all(status == 401 for status, _ in said)
    # Counted per worker, each of two workers would check about 2 x PAIR_BURST guesses.
    assert len(checked) == PAIR_BURST, checked
    assert all("too many" in text for _, text in said[PAIR_BURST:])
    assert (data / FAILURES_FILE).exists()
