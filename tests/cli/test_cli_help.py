"""Every command's ``--help`` reads as text: no markup shown literally, no stray escapes,
brackets closed, nothing cut; and ``iinode --version``."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.testing import CliRunner

import iinode
from cli.cli_support import iinode as run_iinode
from iinode.cli import main

#: rich markup that would show literally in plain text, or was left unrendered
MARKUP = re.compile(r"\[/?(bold|dim|italic|red|green|yellow|blue|cyan|magenta|white|link)\b|\[/\]")


def command_paths() -> Iterator[tuple[str, ...]]:
    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(main.app), ())


PATHS = list(command_paths())


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """The command's callback installs a stderr handler on the root logger: undo it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def problems(text: str) -> list[str]:
    found = [f"markup {m.group(0)!r}" for m in MARKUP.finditer(text)]
    if "\\b" in text or "\b" in text:
        found.append("a \\b escape")
    if "\\n" in text:
        found.append("a literal \\n")
    for opening, closing in ("[]", "()", "{}"):
        if text.count(opening) != text.count(closing):
            found.append(f"unbalanced {opening}{closing}")
    if "``" in text:
        found.append("reStructuredText ``literal``")
    if re.search(r"…\s*$", text, re.M):
        found.append("a line cut short")
    return found


def test_every_command_is_checked() -> None:
    names = {" ".join(p) for p in PATHS}
    assert {"", "init", "serve", "resolve", "bulk-load", "prefix delegate"} <= names
    assert {"telemetry query", "monitor status", "equipment add", "gs1 link add"} <= names
    assert len(PATHS) > 30


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "iinode")
def test_piped_help_is_plain_text(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["iinode", *path, "--help"])
    with pytest.raises(SystemExit) as exit_:
        main.run()
    out, err = capsys.readouterr()
    assert exit_.value.code == 0, err
    assert out.startswith("Usage: "), out
    assert not re.search("[\u2500-\u257f]", out), out  # no boxes when piped
    assert problems(out) == [], out


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "iinode")
def test_help_on_a_terminal_renders_its_markup(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main.app, [*path, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert MARKUP.search(result.output) is None, result.output
    assert "\\b" not in result.output, result.output
    assert "\b" not in result.output, result.output


def test_problems_are_found() -> None:
    assert problems("use [bold]this[/bold]")
    assert problems("\\b\nkeep")
    assert problems("[IINODE_PARENT_HANDLE…\n")
    assert problems("fine [IINODE_X] (a) {b}") == []


def test_version() -> None:
    out = run_iinode("--version").stdout
    assert out == f"iinode {iinode.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", iinode.__version__)
