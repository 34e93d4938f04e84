"""Contracts live in schemas/, services only use them (ARCHITECTURE §1, issue 11).

Two guards, both reading the source with `ast` (no import side effects):
- the four services (gateway, ingest, processors, dashboards) never import one another,
  and schemas/ imports none of them (nor meterline, which imports the services);
- no service spells a subject or a control key by hand: a string constant starting with
  `key:`, `session:`, `team:`, `org:`, `project:`, `user:`, `budget:`, `policy:` or
  `ingest_token:` outside schemas/ means the grammar is being re-written
  (build with schemas.subjects / schemas.topics.control_key, parse with their parsers);
- no service re-lists a shared vocabulary: a `Literal[...]`, tuple, list or set of strings
  equal to one of schemas' vocabularies (policy modes, actions, sources, periods, ...)
  means a copy that can drift from the contract.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest

from schemas import budgets, credentials, enforcement, policies, severity, subjects, topics

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


# Every vocabulary schemas/ owns, as the set of its values.
VOCABULARIES = {
    frozenset(get_args(vocabulary)): f"{module.__name__}.{name}"
    for module, names in [
        (subjects, ["SubjectKind"]),
        (topics, ["ControlRecordType"]),
        (enforcement, ["EnforcementAction", "DecisionSource", "HistoryAction"]),
        (budgets, ["BudgetPeriod", "HardLimitAction", "BudgetStatus"]),
        (
            policies,
            [
                "GuardrailName",
                "GuardrailKind",
                "GuardrailMode",
                "LlmjackingMode",
                "AgentLoopMode",
                "CacheMode",
            ],
        ),
        (severity, ["Severity"]),
        (credentials, ["CredentialKind"]),
    ]
    for name in names
    for vocabulary in [getattr(module, name)]
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
    """Every str constant, including the literal parts of f-strings, and every bytes
    constant (Kafka keys are bytes), decoded."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
            found.append((node.lineno, node.value.decode("latin-1")))
    return found


def _string_collections(tree: ast.AST) -> list[tuple[int, frozenset[str]]]:
    """Every `Literal[...]`, tuple, list or set made only of str constants, as a set."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        else:
            continue
        if len(items) > 1 and all(
            isinstance(item, ast.Constant) and isinstance(item.value, str) for item in items
        ):
            found.append((node.lineno, frozenset(item.value for item in items)))  # type: ignore[attr-defined]
    return found


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


def test_no_shared_vocabulary_is_listed_again_outside_schemas() -> None:
    found = []
    for package in CONTRACT_USERS:
        for path in _modules(package):
            for line, values in _string_collections(ast.parse(path.read_text())):
                if values in VOCABULARIES:
                    name = str(path.relative_to(ROOT))
                    found.append(f"{name}:{line}: {sorted(values)} is {VOCABULARIES[values]}")

    assert len(VOCABULARIES) >= 15  # no two vocabularies have the same values
    assert found == [], "import the vocabulary from schemas/ instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "relisted"),
    [
        ('mode: Literal["off", "monitor", "enforce"]', True),
        ('choices = ("day", "week", "month")', True),
        ('allowed = {"block", "throttle", "allow"}', True),
        ('drift: Literal["low", "medium", "high"]', False),  # not a schemas vocabulary
        ("mode: LlmjackingMode", False),
    ],
)
def test_the_vocabulary_guard_sees_a_copied_list(source: str, relisted: bool) -> None:
    found = [values in VOCABULARIES for _, values in _string_collections(ast.parse(source))]

    assert any(found) is relisted


@pytest.mark.parametrize(
    ("source", "spelled"),
    [
        ('subject = f"key:{key_id}"', True),
        ('ok = name.startswith("policy:")', True),
        ('tombstone = (b"budget:b1", None)', True),
        ('scope = "team:acme/search"', True),
        ('print(f"key:    {secret}")', False),  # a label, not a subject
        ("subject = key_subject(key_id)", False),
    ],
)
def test_the_literal_guard_sees_hand_spelled_subjects(source: str, spelled: bool) -> None:
    values = [value for _, value in _string_constants(ast.parse(source))]

    assert any(_LITERAL.match(value) for value in values) is spelled
