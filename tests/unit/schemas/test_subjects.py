from __future__ import annotations

import pytest

from gateway.keys import KeyStore
from schemas.events import KeyRecord
from schemas.subjects import (
    SubjectError,
    attribution_subjects,
    key_id_of,
    key_subject,
    org_of,
    org_subject,
    parse_scoped,
    parse_subject,
    project_subject,
    request_subjects,
    session_subject,
    team_subject,
    user_subject,
    validate_subject,
)


@pytest.mark.parametrize(
    "subject",
    ["key:key_1", "session:s-1", "team:acme/ml", "org:acme", "project:acme/p1", "user:ana@x"],
)
def test_valid_subjects_pass_unchanged(subject: str) -> None:
    assert validate_subject(subject) == subject


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("", "empty"),
        ("acme", "must start with one of"),
        ("tenant:acme", "must start with one of"),
        ("key:", "empty or padded name"),
        ("user: ana", "empty or padded name"),
        ("team:acme", "team:<org>/<team>"),
        ("team:/ml", "team:<org>/<team>"),
        ("project:acme/a/b", "project:<org>/<project>"),
        ("org:a/b", "cannot contain '/'"),
        ("key:" + "x" * 600, "longer than"),
    ],
)
def test_invalid_subjects_name_the_problem(subject: str, problem: str) -> None:
    with pytest.raises(SubjectError) as info:
        validate_subject(subject)
    assert problem in str(info.value)


def test_a_request_carries_its_key_subjects_and_its_session() -> None:
    store = KeyStore()
    record = KeyRecord(
        key_id="key_1", key_hash="h", org="acme", team="ml", project="p1", user="ana"
    )
    store.apply(record.model_dump(mode="json"))
    info = store.get("key_1")
    assert info is not None
    assert info.subjects == ("key:key_1", "user:ana", "team:acme/ml", "project:acme/p1", "org:acme")
    assert request_subjects(info.subjects, "s-9") == (*info.subjects, "session:s-9")
    assert request_subjects(info.subjects, None) is info.subjects
    assert attribution_subjects("key_2", "acme", "", "", "") == ("key:key_2", "org:acme")


def test_attribution_counts_against_key_user_team_project_org() -> None:
    assert attribution_subjects("k1", "acme", "search", "rag", "ana") == (
        "key:k1",
        "user:ana",
        "team:acme/search",
        "project:acme/rag",
        "org:acme",
    )
    # team and project need the org; a span cost may have no key.
    assert attribution_subjects(None, "", "search", "rag", "") == ()


def test_subjects_build_and_parse_back() -> None:
    assert key_subject("k1") == "key:k1"
    assert session_subject("s1") == "session:s1"
    assert team_subject("acme", "ml") == "team:acme/ml"
    assert project_subject("acme", "p") == "project:acme/p"
    assert org_subject("acme") == "org:acme"
    assert user_subject("ana") == "user:ana"
    assert parse_subject("team:acme/ml") == ("team", "acme/ml")
    assert parse_subject("acme") == ("", "acme")
    assert parse_scoped("acme/ml") == ("acme", "ml")
    assert parse_scoped("acme") == ("acme", "")
    assert key_id_of("key:k1") == "k1"
    assert key_id_of("org:k1") is None
    assert [org_of(s) for s in ("team:acme/ml", "org:acme", "key:k1", "user:a")] == [
        "acme",
        "acme",
        "",
        "",
    ]
