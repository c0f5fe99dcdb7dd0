"""The KPI package's public names are pinned, and it stays pure (stdlib only)."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import iinode.kpi as kpi


def test_kpi_exports() -> None:
    public = [
        name
        for name in dir(kpi)
        if not name.startswith("_") and not inspect.ismodule(getattr(kpi, name))
    ]
    assert sorted(kpi.__all__) == sorted(public)
    assert {"Elements", "KpiStream", "MachineTracker", "compute", "compare", "metrics"} <= set(
        kpi.__all__
    )


def test_kpi_imports_only_the_standard_library_and_itself() -> None:
    allowed = set(sys.stdlib_module_names) | {"iinode"}
    for path in Path(kpi.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = [node.module.split(".")[0]]
                if roots == ["iinode"]:
                    assert node.module.startswith(("iinode.kpi", "iinode.errors")), path
            else:
                continue
            assert set(roots) <= allowed, (path, roots)
