"""The package's layers, as pyproject.toml's import-linter contract pins them.

Every import counts: module level, inside functions (lazy imports) and under
``TYPE_CHECKING``.  A layer imports only the layers below it; siblings written
``a | b`` do not import each other.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import iinode

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _layers() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "layers"]
    assert contract["type"] == "layers"
    return list(contract["layers"])


#: import-linter run in its own process: its command configures logging with ``dictConfig``,
#: which would disable every logger the tests after it capture.
LINT = (
    "import sys\n"
    "from importlinter.cli import lint_imports\n"
    "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))\n"
)


def test_the_layer_contract_is_kept() -> None:
    done = subprocess.run([sys.executable, "-c", LINT, str(PYPROJECT)], capture_output=True,
                          text=True, timeout=300, check=False, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout, done.stdout


def test_every_subpackage_and_module_of_the_package_has_a_layer() -> None:
    named = {name.strip() for layer in _layers() for name in layer.split("|")}
    package = Path(iinode.__file__).parent
    subpackages = {p for p in package.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    # A directory without __init__.py is a namespace package the import graph leaves out.
    assert all((p / "__init__.py").exists() for p in subpackages), subpackages
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    assert {p.name for p in subpackages} | modules == named


def test_the_assembly_sits_above_what_it_assembles() -> None:
    layers = _layers()
    order = {name.strip(): n for n, layer in enumerate(layers) for name in layer.split("|")}
    for part in ("web", "api", "connectivity", "telemetry", "monitoring", "resolution", "node"):
        assert order["assembly"] < order[part], part
    for user in ("cli", "demo"):
        assert order[user] < order["assembly"], user
    # telemetry offers hooks that monitoring subscribes to, through the assembly
    assert order["telemetry"] == order["monitoring"]
