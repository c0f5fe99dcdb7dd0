"""A delegation made with ``iinode prefix delegate`` carries the child's native interfaces.

Real processes: ``iinode serve --handle-port`` for a top-level and an enterprise
node, the delegation from the CLI, and ``iinode resolve --native`` walking from
the top's native port to the enterprise's.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from cli.cli_support import free_range, http_port, iinode, init, serving


def handle_port() -> int:
    """A port below the ephemeral range that is free for both TCP and UDP."""
    for _ in range(100):
        port = free_range(1, 22_000, 32_000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free handle port")


def _interfaces(top_url: str, prefix: str) -> set[tuple[str, int]]:
    """(protocol, port) of every interface in the HS_SITE of ``0.NA/<prefix>`` at the top."""
    record = httpx.get(f"{top_url}/api/handles/0.NA/{prefix}").json()
    sites = [v["data"]["value"] for v in record["values"] if v["type"] == "HS_SITE"]
    assert len(sites) == 1, record
    return {
        (i["protocol"], i["port"]) for s in sites[0]["servers"] for i in s["interfaces"]
    }  # fmt: skip


def _delegate(top_url: str, child_url: str, *extra: str) -> str:
    return iinode(
        "prefix", "delegate", "88.5", "--to", child_url, "--node", top_url,
        "--secret", "top-pw", *extra,
    ).stdout  # fmt: skip


def test_native_resolution_through_a_cli_delegation(tmp_path: Path) -> None:
    top, ent = tmp_path / "top", tmp_path / "ent"
    pt, pe = http_port(), http_port()
    ht, he = handle_port(), handle_port()
    top_url, ent_url = f"http://127.0.0.1:{pt}", f"http://127.0.0.1:{pe}"
    init(top, "top", "88", pt, "top-pw", "--handle-port", str(ht))
    init(ent, "enterprise", "88.5", pe, "ent-pw", "--parent", top_url, "--handle-port", str(he))

    with serving(top, pt, "--native-workers", "1"):
        # The child is not running: an explicit --handle-port is taken as given ...
        out = _delegate(top_url, ent_url, "--handle-port", str(he))
        assert f"native Handle protocol (UDP+TCP) at 127.0.0.1:{he}" in out, out
        assert _interfaces(top_url, "88.5") == {("HTTP", pe), ("TCP", he), ("UDP", he)}
        # ... and without it nothing can be discovered: an HTTP-only delegation, said so.
        out = _delegate(top_url, ent_url)
        assert "HTTP only" in out, out
        assert "--handle-port" in out, out
        assert _interfaces(top_url, "88.5") == {("HTTP", pe)}

        with serving(ent, pe, "--native-workers", "1"):
            iinode("register", "88.5/Y", "--node", ent_url, "--url", "http://f.cn/y",
                   "--secret", "ent-pw")  # fmt: skip
            server = f"127.0.0.1:{ht}"
            # An HTTP-only delegation leads the native walk nowhere: a clear error.
            failed = iinode("resolve", "--native", "88.5/Y", "--server", server, check=False)
            assert failed.returncode == 1, failed.stdout + failed.stderr
            assert "Traceback" not in failed.stderr, failed.stderr
            assert "no server of the site has a native interface" in failed.stderr, failed.stderr

            # Delegated again while the child runs: its port comes from /api/node.
            out = _delegate(top_url, ent_url)
            assert f"native Handle protocol (UDP+TCP) at 127.0.0.1:{he}" in out, out
            assert _interfaces(top_url, "88.5") == {("HTTP", pe), ("TCP", he), ("UDP", he)}

            walked = iinode("resolve", "--native", "88.5/Y", "--server", server).stdout
            text = " ".join(walked.split())
            assert f"1. 0.NA/88.5 @ udp://127.0.0.1:{ht} SUCCESS site of 88.5" in text, walked
            assert f"2. 88.5/Y @ udp://127.0.0.1:{he} SUCCESS" in text, walked
            assert "http://f.cn/y" in walked
            # The HTTP walk still works through the same record.
            over_http = iinode("resolve", "88.5/Y", "--node", top_url).stdout
            assert "http://f.cn/y" in over_http, over_http


def test_delegate_refuses_a_bad_handle_port(tmp_path: Path) -> None:
    proc = iinode(
        "prefix", "delegate", "88.7", "--to", "http://127.0.0.1:1", "--node",
        "http://127.0.0.1:1", "--secret", "x", "--handle-port", "70000", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "--handle-port" in proc.stderr
    assert "Traceback" not in proc.stderr
