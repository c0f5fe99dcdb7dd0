"""The CLI as a user meets it, against one running enterprise node (real processes).

Piped output is plain and whole, ``--native --node`` starts from the node's own
handle port, a refusal names its real cause, ``bulk-load`` keeps out of delegated
prefixes, and library log lines appear only with ``--verbose``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.cli_support import ENV, IINODE, eventually, free_range, http_port, init, serving

PREFIX = "88.118.8"
SECRET = "ent-pw"
#: A value longer than any 80-column table could show whole.
LONG_URL = "http://factory.example/" + "/".join(f"segment-{n:02d}" for n in range(12))
BOX = re.compile("[\u2500-\u257f]")


@dataclass
class Node:
    url: str
    data: Path
    handle_port: int


def piped(*args: str) -> subprocess.CompletedProcess[str]:
    """``iinode ARGS`` with stdout a pipe and no COLUMNS: what ``| grep`` sees."""
    env = {k: v for k, v in ENV.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run([*IINODE, *args], capture_output=True, text=True, timeout=120, env=env)


def ok(*args: str) -> str:
    proc = piped(*args)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    data = tmp_path_factory.mktemp("cli-output") / "ent"
    port, handle_port = http_port(), free_range(1)
    init(data, "enterprise", PREFIX, port, SECRET, "--handle-port", str(handle_port))
    with serving(data, port, "--native-workers", "1"):
        yield Node(f"http://127.0.0.1:{port}", data, handle_port)


def test_resolve_piped_is_plain_and_whole(node: Node) -> None:
    ok("register", f"{PREFIX}/LONG-1", "--url", LONG_URL, "--value", "DESC=a press",
       "--node", node.url, "--secret", SECRET)  # fmt: skip
    for native in ((), ("--native",)):
        out = ok("resolve", f"{PREFIX}/LONG-1", "--node", node.url, *native)
        assert not BOX.search(out), out
        lines = out.splitlines()
        assert any(line.split() == ["1", "URL", LONG_URL, "86400"] for line in lines), out
        assert any(line.split() == ["2", "DESC", "a", "press", "86400"] for line in lines), out
        assert ["index", "type", "data", "ttl"] in [line.split() for line in lines], out
        if native:  # started from the handle port the node announces, not 2641
            assert f"udp://127.0.0.1:{node.handle_port}" in out, out


def test_native_resolve_names_a_node_without_handle_port(tmp_path: Path) -> None:
    data, port = tmp_path / "http-only", http_port()
    init(data, "enterprise", "88.7", port, "pw", "--no-telemetry")
    with serving(data, port):
        proc = piped("resolve", "88.7/X", "--native", "--node", f"http://127.0.0.1:{port}")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: http://127.0.0.1:{port} serves no native Handle protocol "
        "(no handlePort in its /api/node)"
    ], proc.stderr


def test_telemetry_query_piped_is_plain_and_whole(node: Node) -> None:
    out = ok("simulate", "--node", node.url, "--secret", SECRET, "--machines", "1",
             "--steps", "3")  # fmt: skip
    assert "published" in out, out
    assert not BOX.search(out), out
    machine = f"{PREFIX}/M001"

    def history() -> str | None:
        text = ok("telemetry", "query", machine, "--node", node.url, "--secret", SECRET)
        return text if len(text.splitlines()) > 2 else None

    out = eventually(history)
    assert isinstance(out, str), "no readings arrived"
    lines = out.splitlines()
    assert lines[0] == machine  # the title
    assert lines[1].split() == ["time", "tag", "value", "quality"]
    assert not BOX.search(out), out
    assert all(re.match(r"\d{4}-\d\d-\d\dT\S+\s+\S+\s+\S+", line) for line in lines[2:]), out
    # every time stamp is whole (an 80-column table would fold or cut them)
    assert max(len(line) for line in lines) > 40


def test_register_at_a_node_that_does_not_serve_the_prefix(node: Node) -> None:
    proc = piped("register", "88.999/X", "--url", "http://x.example/", "--node", node.url,
                 "--secret", SECRET)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"error: {node.url} does not serve 88.999 (it serves {PREFIX}): register 88.999/X "
        "at the node that owns 88.999"
    ], proc.stderr
    assert "authentication" not in proc.stderr.lower()
    proc = piped("prefix", "delegate", "88.999.1", "--to", "http://127.0.0.1:1",
                 "--handle-port", "2641", "--node", node.url, "--secret", SECRET)  # fmt: skip
    assert proc.returncode == 1
    assert f"{node.url} does not serve 88.999 (it serves {PREFIX})" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # the node's own prefix with a wrong secret is still an authentication failure
    proc = piped("register", f"{PREFIX}/X", "--url", "http://x.example/", "--node", node.url,
                 "--secret", "wrong")  # fmt: skip
    assert proc.returncode == 1
    assert "AUTHENTICATION_FAILED" in proc.stderr or "authentic" in proc.stderr.lower()


def test_bulk_load_refuses_a_delegated_prefix(node: Node, tmp_path: Path) -> None:
    child = f"{PREFIX}.5"
    out = ok("prefix", "delegate", child, "--to", "http://127.0.0.1:9", "--handle-port", "9",
             "--node", node.url, "--secret", SECRET)  # fmt: skip
    assert f"delegated {child}" in out
    rows = tmp_path / "rows.csv"
    rows.write_text(
        f"handle,URL\n{PREFIX}/OK-1,http://x.example/1\n{child}/P-1,http://x.example/2\n"
    )
    proc = piped("bulk-load", str(rows), "--data-dir", str(node.data))
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"error: rows.csv:3: {child}/P-1 is under {child}, which this node has delegated to "
        f"another node (0.NA/{child}); load it there (committed nothing; stopped at line 3)"
    ], proc.stderr
    # nothing of the file was written, and the delegation still answers for the child
    assert httpx.get(f"{node.url}/api/handles/{PREFIX}/OK-1").status_code == 404
    answer = httpx.get(f"{node.url}/api/handles/{child}/P-1").json()
    assert answer["responseCode"] != 1, answer


def test_library_logs_only_with_verbose(node: Node) -> None:
    quiet = piped("resolve", f"{PREFIX}/LONG-1", "--node", node.url)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    loud = piped("--verbose", "resolve", f"{PREFIX}/LONG-1", "--node", node.url)
    assert loud.returncode == 0, loud.stderr
    assert re.search(r"^INFO httpx: HTTP Request: GET http://127\.0\.0\.1:\d+/api/handles/",
                     loud.stderr, re.M), loud.stderr  # fmt: skip
    assert loud.stdout == quiet.stdout
