"""Contracts live in schemas/, services only use them (ARCHITECTURE §1, issue 11).

Two guards, both reading the source with `ast` (no import side effects):
- the four services (gateway, ingest, processors, dashboards) never import one another,
  and schemas/ imports none of them (nor meterline, which imports the services);
- no service spells a subject or a control key by hand: a string constant starting with
  `key:`, `session:`, `team:`, `org:`, `project:`, `user:`, `budget:`, `policy:` or
  `ingest_token:` outside schemas/ means the grammar is being re-written
  (build with schemas.subjects / schemas.topics.control_key, parse with their parsers).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("gateway", "ingest", "processors", "dashboards")
# Packages whose code may not spell a subject or a control key (schemas/ owns them).
CONTRACT_USERS = (*SERVICES, "meterline")
_LITERAL = re.compile(r"^(key|session|team|org|project|user|budget|policy|ingest_token):(?!\s)")
# (path, constant) pairs that look like a subject or control key but are not one.
NOT_CONTRACTS = {
    # An alert's dedup kind, `budget:<crossing>:<budget_id>`: alert categories, not a key.
    ("processors/alerts/logic.py", "budget:"),
}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_roots(tree: ast.AST) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def _string_constants(tree: ast.AST) -> list[tuple[int, str]]:
    """Every str constant, including the literal parts of f-strings."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


@pytest.mark.parametrize("package", [*SERVICES, "schemas"])
def test_a_package_imports_no_other_service(package: str) -> None:
    forbidden = set(SERVICES) - {package}
    if package == "schemas":
        forbidden |= {"meterline"}
    modules = _modules(package)

    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in modules
        if (found := _imported_roots(ast.parse(path.read_text())) & forbidden)
    }

    assert len(modules) >= 5
    assert offenders == {}


def test_no_subject_or_control_key_is_spelled_outside_schemas() -> None:
    found = []
    for package in CONTRACT_USERS:
        for path in _modules(package):
            name = str(path.relative_to(ROOT))
            for line, value in _string_constants(ast.parse(path.read_text())):
                if _LITERAL.match(value) and (name, value) not in NOT_CONTRACTS:
                    found.append(f"{name}:{line}: {value!r}")

    assert found == [], "use schemas.subjects / schemas.topics instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "spelled"),
    [
        ('subject = f"key:{key_id}"', True),
        ('ok = name.startswith("policy:")', True),
        ('scope = "team:acme/search"', True),
        ('print(f"key:    {secret}")', False),  # a label, not a subject
        ("subject = key_subject(key_id)", False),
    ],
)
def test_the_literal_guard_sees_hand_spelled_subjects(source: str, spelled: bool) -> None:
    values = [value for _, value in _string_constants(ast.parse(source))]

    assert any(_LITERAL.match(value) for value in values) is spelled
