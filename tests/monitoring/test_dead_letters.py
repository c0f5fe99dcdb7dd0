"""Dead letters from the HTTP API and ``iinode monitor dead-letters``, on a served node."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from cli.cli_support import auth, http_port, iinode, init, serving
from iinode.identifiers import Prefix
from iinode.monitoring.events import Event, EventKind, Severity
from iinode.monitoring.outbox import Outbox, OutboxSettings

NODE = "88"


def _refused(outbox: Outbox, event_id: str, reason: str) -> None:
    event = Event(
        id=event_id, origin=Prefix(NODE), kind=EventKind.SECURITY, severity=Severity.HIGH,
        observed_at=time.time(),
    )  # fmt: skip
    outbox.enqueue([event])
    [item] = [i for i in outbox.peek(100) if i.key.endswith(event_id)]
    outbox.dead_letter([item], reason, time.time())


def test_dead_letters_listed_and_requeued_by_the_administrator_only(tmp_path: Path) -> None:
    data, port = tmp_path / "top", http_port()
    base = f"http://127.0.0.1:{port}"
    init(data, "top", NODE, port, "top-pw")
    (data / "monitoring").mkdir(parents=True, exist_ok=True)
    outbox = Outbox(OutboxSettings(data / "monitoring" / "events.sqlite3"))
    _refused(outbox, "ev-one", "event ev-one: severity field invalid")
    _refused(outbox, "ev-two", "event ev-two: too old")
    assert outbox.pending == 0
    assert outbox.dead_count() == 2
    outbox.close()

    with serving(data, port):
        url = f"{base}/monitoring/dead-letters"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, auth=auth(NODE, "wrong")).status_code == 401
        assert httpx.post(f"{url}/requeue").status_code == 401
        iinode("prefix", "delegate", "88.7", "--to", "http://127.0.0.1:9", "--node", base,
               "--secret", "top-pw", "--child-secret", "child-pw")  # fmt: skip
        child = auth("88.7", "child-pw")
        assert httpx.get(url, auth=child).status_code == 403
        assert httpx.post(f"{url}/requeue", auth=child).status_code == 403

        listed = httpx.get(url, auth=auth(NODE, "top-pw"))
        assert listed.status_code == 200
        dead = {d["id"]: d for d in listed.json()["dead_letters"]}
        assert set(dead) == {"ev-one", "ev-two"}
        assert dead["ev-one"]["kind"] == "security"
        assert dead["ev-one"]["reason"] == "event ev-one: severity field invalid"
        assert dead["ev-two"]["key"] == f"{NODE}|ev-two"

        out = iinode("monitor", "dead-letters", "--node", base, "--secret", "top-pw").stdout
        assert "ev-one" in out
        assert "severity field invalid" in out
        assert "too old" in out

        # bad input: a clear one-line error, nothing changes
        bad = iinode("monitor", "dead-letters", "--requeue", "ev-nope", "--node", base,
                     "--secret", "top-pw", check=False)  # fmt: skip
        assert bad.returncode == 1
        assert "ev-nope" in bad.stderr
        assert "Traceback" not in bad.stderr + bad.stdout
        assert len(bad.stderr.strip().splitlines()) == 1
        odd = iinode("monitor", "dead-letters", "ev-one", "--node", base, "--secret", "top-pw",
                     check=False)  # fmt: skip
        assert odd.returncode == 1
        assert "--requeue" in odd.stderr
        malformed = httpx.post(f"{url}/requeue", json={"ids": [3]}, auth=auth(NODE, "top-pw"))
        assert malformed.status_code == 400
        assert len(httpx.get(url, auth=auth(NODE, "top-pw")).json()["dead_letters"]) == 2

        # one by id, then the rest
        one = iinode("monitor", "dead-letters", "--requeue", "ev-one", "--node", base,
                     "--secret", "top-pw").stdout  # fmt: skip
        assert re.search(r"\b1 dead letters queued", one), one
        left = httpx.get(url, auth=auth(NODE, "top-pw")).json()["dead_letters"]
        assert [d["id"] for d in left] == ["ev-two"]
        rest = iinode("monitor", "dead-letters", "--requeue", "--node", base,
                      "--secret", "top-pw").stdout  # fmt: skip
        assert re.search(r"\b1 dead letters queued", rest), rest
        assert (
            "no dead letters"
            in iinode("monitor", "dead-letters", "--node", base, "--secret", "top-pw").stdout
        )
        unreachable = iinode("monitor", "dead-letters", "--node", "http://127.0.0.1:9",
                             "--secret", "x", check=False)  # fmt: skip
        assert unreachable.returncode == 1
        assert "Traceback" not in unreachable.stderr

    outbox = Outbox(OutboxSettings(data / "monitoring" / "events.sqlite3"))
    try:
        assert outbox.dead_count() == 0
        queued = {i.key for i in outbox.peek(100)}  # with the node's own security events
        assert {f"{NODE}|ev-one", f"{NODE}|ev-two"} <= queued
    finally:
        outbox.close()
