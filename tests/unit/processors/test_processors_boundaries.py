"""Package rules: processors talks to other services only through Kafka and HTTP."""

from __future__ import annotations

import ast
from pathlib import Path

import processors
import processors.app
import processors.worker

PACKAGE = Path(processors.__file__).parent
OTHER_SERVICES = {"gateway", "ingest", "dashboards"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_other_service_package_is_imported() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))

    offenders = {str(m.relative_to(PACKAGE)): imported_roots(m) & OTHER_SERVICES for m in modules}

    assert len(modules) >= 8
    assert {name: found for name, found in offenders.items() if found} == {}


def test_logic_modules_do_not_import_faust_directly() -> None:
    logic_modules = sorted(PACKAGE.glob("*/logic.py"))

    assert logic_modules, "expected processors/<topic>/logic.py modules"
    for module in logic_modules:
        assert "faust" not in imported_roots(module), module


def test_entry_points() -> None:
    assert processors.worker.__all__ == ["serve"]
    assert processors.app.__all__ == ["create_app"]
    assert (PACKAGE / "__main__.py").is_file()
