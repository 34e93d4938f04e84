from __future__ import annotations

import pytest

from gateway.keys import KeyStore
from gateway.subjects import SubjectError, key_subjects, request_subjects, validate_subject
from schemas.events import KeyRecord


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
    assert key_subjects("key_2", "acme", "", "", "") == ("key:key_2", "org:acme")
