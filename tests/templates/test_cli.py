"""``iinode template …`` and ``iinode search`` against a node served on a real port."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from iinode.cli.main import app
from node.conftest import SECRET, LiveNode, live_node  # noqa: F401 - the fixture
from templates.conftest import BEARING

runner = CliRunner()


def iinode(node: LiveNode, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--node", node.url])
    return result.exit_code, result.output


def test_template_commands_and_search(live_node: LiveNode, tmp_path: Path) -> None:  # noqa: F811
    definition = tmp_path / "bearing.json"
    title = {"name": "title", "type": "string", "fulltext": True}
    definition.write_text(json.dumps({**BEARING, "attributes": [*BEARING["attributes"], title]}))
    code, out = iinode(live_node, "template", "define", str(definition), "--secret", SECRET)
    assert code == 0, out
    assert "defined 88.118.8/template/bearing/1 (draft)" in out
    handle = "88.118.8/template/bearing/1"
    assert iinode(live_node, "template", "publish", handle, "--secret", SECRET)[0] == 0
    code, out = iinode(
        live_node, "template", "register", "88.118.8/B1", "--template", handle,
        "--attr", "model=6204-2RS", "--attr", "serial=S-1", "--attr", "title=Deep groove 球轴承",
        "--secret", SECRET,
    )  # fmt: skip
    assert code == 0, out
    code, out = iinode(
        live_node, "template", "register", "88.118.8/B2", "--template", handle,
        "--attr", "model=bad x", "--attr", "grade=P9", "--attr", "colour=red",
        "--secret", SECRET,
    )  # fmt: skip
    assert code == 1
    for line in ("model: pattern", "grade: enum", "colour: unknown", "serial: required"):
        assert line in out, out
    code, out = iinode(live_node, "search", "--attr", "model=6204-2RS", "--template", handle)
    assert (code, out.split()) == (0, ["88.118.8/B1"])
    code, out = iinode(live_node, "search", "--text", "GROOVE 球轴承")
    assert (code, out.split()) == (0, ["88.118.8/B1"])
    code, out = iinode(live_node, "search", "--text", "!?")
    assert code == 1
    assert "no words to search for" in out
    assert "Traceback" not in out
    code, out = iinode(live_node, "template", "show", handle)
    assert code == 0
    assert "C3451" in out
    assert "restricted" in out
    assert "full-text" in out
    assert iinode(live_node, "template", "list")[1].split() == [handle]
    code, out = iinode(
        live_node, "template", "readers", handle, "--set", "300:0.NA/88.200.1", "--secret", SECRET
    )
    assert (code, out.split()) == (0, ["300:0.NA/88.200.1"])
    assert iinode(live_node, "template", "withdraw", handle, "--secret", SECRET)[0] == 0
