"""``iinode resolve --native`` prints the path taken."""

from __future__ import annotations

from typer.testing import CliRunner

from iinode.cli.main import app
from native.nodes import Hierarchy


def test_resolve_native_prints_the_path(hierarchy: Hierarchy) -> None:
    server = f"127.0.0.1:{hierarchy.top.port}"
    result = CliRunner().invoke(
        app, ["resolve", "88.118.8/PRESS-01", "--native", "--server", server]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    top, sec, ent = (f"udp://127.0.0.1:{n.port}" for n in hierarchy)
    # Which 0.NA/... was asked where, which server answered, then the handle at its site.
    assert f"1. 0.NA/88.118.8 @ {top} PREFIX_REFERRAL delegated 88.118" in text
    assert f"2. 0.NA/88.118.8 @ {sec} SUCCESS site of 88.118.8: 1 server" in text
    assert f"3. 88.118.8/PRESS-01 @ {ent} SUCCESS 1 values" in text
    assert "http://f.cn/p1" in result.output
