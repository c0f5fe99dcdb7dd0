"""A child delegated from the CLI with --child-secret reports to its parent (real processes)."""

from __future__ import annotations

from pathlib import Path

import httpx

from cli.cli_support import auth, eventually, http_port, iinode, init, serving


def test_child_delegated_from_the_cli_reports_upward(tmp_path: Path) -> None:
    top, child = tmp_path / "top", tmp_path / "child"
    pt, pc = http_port(), http_port()
    top_url, child_url = f"http://127.0.0.1:{pt}", f"http://127.0.0.1:{pc}"
    init(top, "top", "88", pt, "top-pw")
    init(child, "secondary", "88.7", pc, "child-admin", "--parent", top_url,
         "--report-secret", "child-report")  # fmt: skip
    assert 'report_secret = "child-report"' in (child / "node.toml").read_text()

    with serving(top, pt):
        out = iinode(
            "prefix", "delegate", "88.7", "--to", child_url, "--node", top_url,
            "--secret", "top-pw", "--child-secret", "child-report",
        ).stdout  # fmt: skip
        assert "delegated 88.7" in out
        # the secret is stored sealed and hidden from anonymous readers
        anonymous = httpx.get(f"{top_url}/api/handles/0.NA/88.7").json()
        assert "HS_SECKEY" not in [v["type"] for v in anonymous["values"]]
        seen = httpx.get(f"{top_url}/api/handles/0.NA/88.7", auth=auth("88", "top-pw")).json()
        key = next(v for v in seen["values"] if v["index"] == 300)
        assert key["type"] == "HS_SECKEY"
        assert key["data"]["value"] == "", key  # secret material is never rendered
        assert "child-report" not in str(seen)

        # delegated but not running yet: listed as never reported
        status = iinode("monitor", "status", "--node", top_url, "--secret", "top-pw").stdout
        assert "NEVER REPORTED" in status, status
        assert "never reported: 88.7" in status

        with serving(child, pc):

            def reported() -> dict[str, object] | None:
                r = httpx.get(f"{top_url}/monitoring/nodes", auth=auth("88", "top-pw"))
                assert r.status_code == 200, r.text
                nodes = {n["origin"]: n for n in r.json()["nodes"]}
                entry = nodes.get("88.7")
                return entry if entry and entry["reported"] else None

            entry = eventually(reported)
            assert entry, "the child's heartbeat never arrived"
            status = iinode("monitor", "status", "--node", top_url, "--secret", "top-pw").stdout
            assert "reporting" in status, status
            assert "never reported" not in status

        # a wrong child secret is refused: the parent does not authenticate the reports
        r = httpx.post(
            f"{top_url}/monitoring/reports",
            content=b'{"v": 1, "sender": "88.7", "batch": "' + b"0" * 32
            + b'", "sent_at": 1.0, "events": []}',
            auth=auth("88.7", "wrong"),
        )  # fmt: skip
        assert r.status_code == 401


def test_delegate_refuses_an_empty_child_secret(tmp_path: Path) -> None:
    proc = iinode(
        "prefix", "delegate", "88.7", "--to", "http://127.0.0.1:1", "--node",
        "http://127.0.0.1:1", "--secret", "x", "--child-secret", "", check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "--child-secret must not be empty" in proc.stderr
    assert "Traceback" not in proc.stderr
