"""``iinode prefix delegate`` puts the child's server key into the delegation's HS_SITE.

A Handle.Net client checks a node's signed answers, and sets up its default
(Diffie-Hellman, certified) admin session, against the key in the site it
reached the node through: the parent's ``0.NA/<child>`` record.  Real
processes: ``iinode serve`` for a top-level and an enterprise node.
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from cli.cli_support import http_port, iinode, init, serving
from iinode.node.server_keys import load_server_key


def _site_key(url: str, prefix: str) -> bytes:
    record = httpx.get(f"{url}/api/handles/0.NA/{prefix}").json()
    (site,) = [v["data"]["value"] for v in record["values"] if v["type"] == "HS_SITE"]
    return base64.b64decode(site["servers"][0]["publicKey"]["value"])


def test_the_delegation_carries_the_childs_key_and_follows_its_rotation(tmp_path: Path) -> None:
    top, ent = tmp_path / "top", tmp_path / "ent"
    pt, pe = http_port(), http_port()
    top_url, ent_url = f"http://127.0.0.1:{pt}", f"http://127.0.0.1:{pe}"
    init(top, "top", "88", pt, "top-pw")
    init(ent, "enterprise", "88.6", pe, "ent-pw", "--parent", top_url)
    # init made each node's key, private to its data directory.
    assert (ent / "server_key.pem").stat().st_mode & 0o077 == 0

    def delegate() -> str:
        return iinode(
            "prefix", "delegate", "88.6", "--to", ent_url, "--node", top_url,
            "--secret", "top-pw", "--handle-port", "9",
        ).stdout  # fmt: skip

    with serving(top, pt, "--native-workers", "0"):
        out = delegate()  # the child is not running: no key, and it says so
        assert "no server key in the record" in out, out
        with serving(ent, pe, "--native-workers", "0"):
            out = delegate()
            assert "server key (SHA-256" in out, out
            assert _site_key(top_url, "88.6") == load_server_key(ent).public_bytes
            assert _site_key(ent_url, "88.6") == load_server_key(ent).public_bytes
            # A rotation at the child; delegating again carries the new key up.
            iinode("keys", "rotate", "--data-dir", str(ent))
            delegate()
            assert _site_key(top_url, "88.6") == load_server_key(ent).public_bytes
