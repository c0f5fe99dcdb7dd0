"""The iinode command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cli.cli_support import free_range
from iinode.demo.topology import ports_needed

IINODE = [sys.executable, "-m", "iinode"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([*IINODE, *args], capture_output=True, text=True, timeout=120, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed: {proc.stdout}\n{proc.stderr}")
    return proc


def test_init_and_bulk_load(tmp_path: Path) -> None:
    data = tmp_path / "node"
    run(
        "init",
        "--role",
        "enterprise",
        "--prefix",
        "88.118.8",
        "--data-dir",
        str(data),
        "--admin-secret",
        "pw",
    )
    assert (data / "node.toml").read_text().startswith('role = "enterprise"')
    csv = tmp_path / "ids.csv"
    csv.write_text(
        "handle,URL,DESC\n"
        + "".join(f"88.118.8/P{n},http://f.cn/{n},part {n}\n" for n in range(300))
    )
    out = run("bulk-load", str(csv), "--data-dir", str(data)).stdout
    assert "loaded 300 identifiers, skipped 0" in out
    out = run("bulk-load", str(csv), "--data-dir", str(data)).stdout
    assert "loaded 0 identifiers, skipped 300" in out
    jsonl = tmp_path / "ids.jsonl"
    jsonl.write_text(
        '{"handle": "88.118.8/J1", "values": [{"index": 1, "type": "URL", "data": "http://j.cn/"}]}\n'
    )
    assert "loaded 1 identifiers" in run("bulk-load", str(jsonl), "--data-dir", str(data)).stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    data = tmp_path / "node"
    run(
        "init",
        "--role",
        "enterprise",
        "--prefix",
        "88.118.8",
        "--data-dir",
        str(data),
        "--admin-secret",
        "pw",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("handle,URL\n88.118.9/X,http://x.cn/\n")
    cases = [
        ("bulk-load", str(bad), "--data-dir", str(data)),
        (
            "init",
            "--role",
            "top",
            "--prefix",
            "88.1",
            "--data-dir",
            str(tmp_path / "t"),
            "--admin-secret",
            "x",
        ),
        ("serve", "--data-dir", str(tmp_path / "missing")),
        ("resolve", "88..1/x"),
        (
            "init",
            "--role",
            "enterprise",
            "--prefix",
            "88.118.8",
            "--data-dir",
            str(data),
            "--admin-secret",
            "x",
        ),
    ]
    for args in cases:
        proc = run(*args, check=False)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr + proc.stdout, args
        assert "error" in proc.stderr.lower(), (args, proc.stderr)
    assert "88.118.9" in run(*cases[0], check=False).stderr


def test_cli_walks_three_level_resolution() -> None:
    base = free_range(ports_needed())
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    demo = subprocess.Popen(
        [*IINODE, "demo", "--base-port", str(base), "--duration", "60", "--products", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            lines.append(line)
            if line.startswith("try:") or not line:
                break
        assert any(line.startswith("try:") for line in lines), "".join(lines)
        out = run("resolve", "88.120.3/INJECTION-01", "--node", f"http://127.0.0.1:{base}").stdout
        hops = [line for line in out.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
        assert len(hops) == 3, out
        assert "PREFIX_REFERRAL" in hops[0]
        assert "delegated 88.120" in hops[0]
        assert "PREFIX_REFERRAL" in hops[1]
        assert "delegated 88.120.3" in hops[1]
        assert "SUCCESS" in hops[2]
        assert "INJECTION-01" in out
        missing = run("resolve", "88.120.3/NOPE", "--node", f"http://127.0.0.1:{base}", check=False)
        assert missing.returncode == 1
        assert "not found" in missing.stderr
    finally:
        demo.terminate()
        demo.communicate(timeout=20)


def _init(data: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(
        "init", "--role", "enterprise", "--prefix", "88.118.8", "--data-dir", str(data),
        *extra, check=check,
    )  # fmt: skip


def test_bad_input_files_are_one_line_with_the_line_number(tmp_path: Path) -> None:
    data = tmp_path / "node"
    _init(data, "--admin-secret", "pw")
    files = {
        "short.csv": (b"URL,DESC,handle\nhttp://a.cn/,a,88.118.8/A\nhttp://b.cn/\n", ":3:"),
        "latin1.csv": ("handle,DESC\n88.118.8/A,ok\n88.118.8/B,caf\xe9\n".encode("latin-1"), ":3:"),
        "huge.csv": (b'handle,DESC\n88.118.8/A,"' + b"x" * 200_000 + b'"\n', ":2:"),
        "latin1.jsonl": ('{"handle": "88.118.8/\xe9"}\n'.encode("latin-1"), ":1:"),
    }
    for name, (content, where) in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        proc = run("bulk-load", str(path), "--data-dir", str(data), check=False)
        assert proc.returncode == 1, (name, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stdout + proc.stderr, name
        first = proc.stderr.strip().splitlines()[0]
        assert first.startswith("error:"), (name, proc.stderr)
        assert f"{name}{where}" in first, (name, proc.stderr)


def test_bulk_load_failure_says_what_was_committed(tmp_path: Path) -> None:
    data = tmp_path / "node"
    _init(data, "--admin-secret", "pw")
    rows = [f"88.118.8/P{n},http://f.cn/{n}" for n in range(5)] + ["88.999/X,http://x.cn/"]
    path = tmp_path / "ids.csv"
    path.write_text("handle,URL\n" + "\n".join(rows) + "\n")
    proc = run("bulk-load", str(path), "--data-dir", str(data), "--batch", "2", check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert "ids.csv:7:" in err, err
    assert "88.999/X" in err, err
    assert "committed 4 rows through line 5 (4 loaded, 0 already there)" in err, err
    assert "stopped at line 7" in err, err
    # What was committed is there: a rerun of the good rows skips exactly those.
    path.write_text("handle,URL\n" + "\n".join(rows[:5]) + "\n")
    out = run("bulk-load", str(path), "--data-dir", str(data)).stdout
    assert "loaded 1 identifiers, skipped 4" in out


def test_failed_init_leaves_no_node_and_can_be_retried(tmp_path: Path) -> None:
    data = tmp_path / "node"
    proc = _init(data, "--admin-secret", "", check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "must not be empty" in proc.stderr
    assert not (data / "node.toml").exists()
    _init(data, "--admin-secret", "pw", "--report-secret", "up")
    toml = data / "node.toml"
    assert 'report_secret = "up"' in toml.read_text()
    assert toml.stat().st_mode & 0o777 == 0o600


def test_bad_option_values_are_usage_errors_without_traceback(tmp_path: Path) -> None:
    for args in (
        ("init", "--role", "nope", "--data-dir", str(tmp_path / "n")),
        ("serve", "--data-dir", str(tmp_path), "--http-port", "eighty"),
    ):
        proc = run(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout, args
        assert "Invalid value" in proc.stderr, (args, proc.stderr)
