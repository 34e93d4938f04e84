"""Package rules of processors: pure logic modules, fixed entry points. (No other
service is imported: tests/unit/schemas/test_contract_boundaries.py, for every service.)"""

from __future__ import annotations

import ast
from pathlib import Path

import processors
import processors.app
import processors.worker

PACKAGE = Path(processors.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_logic_modules_do_not_import_faust_directly() -> None:
    logic_modules = sorted(PACKAGE.glob("*/logic.py"))

    assert logic_modules, "expected processors/<topic>/logic.py modules"
    for module in logic_modules:
        assert "faust" not in imported_roots(module), module


def test_entry_points() -> None:
    assert processors.worker.__all__ == ["serve"]
    assert processors.app.__all__ == ["create_app"]
    assert (PACKAGE / "__main__.py").is_file()
