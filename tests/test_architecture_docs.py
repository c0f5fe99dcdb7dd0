"""docs/architecture.md and the package READMEs cannot silently go stale.

docs/architecture.md is the short map; each package directory under src/iinode/ holds a
README.md with its detail. These tests check that the map stays short, links every
package's README, and that every file, test file and test name the documents mention
in backticks exists.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "iinode"
TESTS = ROOT / "tests"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_ARCHITECTURE_LINES = 250

#: A backticked span that names a file: a path-like word ending in a known suffix.
FILE_RE = re.compile(r"^[\w./-]+\.(?:py|md|json|toml|sh|html|css|js)$")
#: `path/test_x.py::test_name` (optionally `::Class::test_name`).
NODE_ID_RE = re.compile(r"^([\w./-]+\.py)::([\w:]+)$")
#: A bare test function name such as `test_head_and_options`.
TEST_NAME_RE = re.compile(r"^test_\w+$")
#: Files the documents name that are made at run time, not kept in the repository.
RUNTIME_FILES = {"node.toml", "_compaction.json", "cve-feed.json", "telemetry-rejects.json"}


def packages() -> list[Path]:
    """Every package directory directly under src/iinode (one holding Python modules)."""
    return sorted(
        d
        for d in SRC.iterdir()
        if d.is_dir() and not d.name.startswith("_") and any(d.glob("*.py"))
    )


def documents() -> list[Path]:
    return [ARCHITECTURE, *(d / "README.md" for d in packages() if (d / "README.md").exists())]


#: A module named at the start of a line in a fenced block (a module listing).
LISTED_MODULE_RE = re.compile(r"^\s*([\w/]+\.py)\s", re.M)


def code_spans(text: str) -> list[str]:
    """Inline code spans, and the modules fenced listings name at the start of a line."""
    fences = re.findall(r"^```.*?^```", text, flags=re.S | re.M)
    listed = [m for block in fences for m in LISTED_MODULE_RE.findall(block)]
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return [span.strip() for span in re.findall(r"`([^`\n]+)`", text)] + listed


@functools.cache
def defined_tests() -> dict[Path, frozenset[str]]:
    """Names of the test functions (and methods) defined in each test file."""
    found: dict[Path, frozenset[str]] = {}
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        found[path] = frozenset(names)
    return found


def find_file(name: str, doc: Path) -> Path | None:
    """Where a file named in `doc` lives, or None.

    A name with a directory is read from the repository root, from src/iinode, from the
    document's own directory or from tests/; a bare name must exist somewhere under
    src/iinode, tests, bench or docs.
    """
    bases = [ROOT, SRC, doc.parent, TESTS]
    if "/" in name:
        for base in bases:
            if (base / name).exists():
                return base / name
        return None
    for base in [doc.parent, SRC, TESTS, ROOT / "bench", ROOT / "docs", ROOT]:
        if (base / name).exists():
            return base / name
        hits = sorted(base.rglob(name)) if base != ROOT else []
        if hits:
            return hits[0]
    return None


def references(doc: Path) -> list[str]:
    return code_spans(doc.read_text(encoding="utf-8"))


def test_architecture_stays_short() -> None:
    lines = ARCHITECTURE.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_ARCHITECTURE_LINES, (
        f"docs/architecture.md has {lines} lines; keep it a map (at most "
        f"{MAX_ARCHITECTURE_LINES}) and move detail into the package's README.md"
    )


@pytest.mark.parametrize("package", packages(), ids=lambda p: p.name)
def test_every_package_has_a_readme_the_map_links(package: Path) -> None:
    readme = package / "README.md"
    assert readme.exists(), f"{package.relative_to(ROOT)} has no README.md"
    text = ARCHITECTURE.read_text(encoding="utf-8")
    targets = {
        (ARCHITECTURE.parent / target).resolve()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    }
    assert readme.resolve() in targets, f"docs/architecture.md does not link {readme}"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    text = re.sub(r"^```.*?^```", "", doc.read_text(encoding="utf-8"), flags=re.S | re.M)
    text = re.sub(r"`[^`\n]+`", "", text)
    broken = [
        target
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        if "://" not in target and not (doc.parent / target).exists()
    ]
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_file_exists(doc: Path) -> None:
    missing = []
    for span in references(doc):
        name = NODE_ID_RE.sub(r"\1", span)
        if not FILE_RE.match(name) or name.startswith("/") or name in RUNTIME_FILES or "<" in name:
            continue
        if find_file(name, doc) is None:
            missing.append(span)
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_test_exists(doc: Path) -> None:
    defined = defined_tests()
    every_name = frozenset().union(*defined.values())
    missing = []
    for span in references(doc):
        node_id = NODE_ID_RE.match(span)
        if node_id:
            path = find_file(node_id.group(1), doc)
            name = node_id.group(2).split("::")[-1]
            if path is None or name not in defined.get(path.resolve(), frozenset()):
                missing.append(span)
        elif TEST_NAME_RE.match(span) and span not in every_name:
            missing.append(span)
    assert not missing, f"{doc.relative_to(ROOT)} names tests that do not exist: {missing}"


def test_the_checks_catch_a_stale_name(tmp_path: Path) -> None:
    """The reference checks fail for a file or test that is not there."""
    doc = tmp_path / "README.md"
    doc.write_text("`no_such_module.py`, `tests/proto/test_exports.py::test_nope`, `test_nope`")
    spans = references(doc)
    assert find_file("no_such_module.py", doc) is None
    assert find_file("tests/proto/test_exports.py", doc) is not None
    assert "test_nope" not in frozenset().union(*defined_tests().values())
    assert spans == ["no_such_module.py", "tests/proto/test_exports.py::test_nope", "test_nope"]
