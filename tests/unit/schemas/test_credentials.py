"""The one parser of credential control records (keys and ingest tokens)."""

from __future__ import annotations

from schemas.credentials import CredentialBook, credential_from_record
from schemas.events import BudgetRecord, IngestTokenRecord, KeyRecord
from schemas.ids import hash_key
from schemas.topics import control_key, parse_control_key


def _key(secret: str = "ml-secret", **overrides: object) -> KeyRecord:
    values: dict[str, object] = {"key_id": "key_1", "key_hash": hash_key(secret), "org": "acme"}
    values.update(overrides)
    return KeyRecord(**values)  # type: ignore[arg-type]


def _token(secret: str = "mli-secret", **overrides: object) -> IngestTokenRecord:
    values: dict[str, object] = {
        "token_id": "itok_1",
        "token_hash": hash_key(secret),
        "org": "acme",
        "team": "ml",
        "name": "otel collector",
    }
    values.update(overrides)
    return IngestTokenRecord(**values)  # type: ignore[arg-type]


def test_keys_and_tokens_are_looked_up_by_secret_with_their_attribution() -> None:
    book = CredentialBook()
    assert book.apply(b"key:key_1", _key(team="search", project="rag").to_json())
    assert book.apply(b"ingest_token:itok_1", _token().to_json())

    key = book.lookup("ml-secret")
    assert key is not None and (key.kind, key.key_id, key.org, key.team, key.project) == (
        "key",
        "key_1",
        "acme",
        "search",
        "rag",
    )
    token = book.lookup("mli-secret")
    assert token is not None and token.kind == "ingest_token" and token.key_id is None
    assert (token.org, token.team, token.name) == ("acme", "ml", "otel collector")
    assert token.control_key == "ingest_token:itok_1"
    assert book.lookup("ml-other") is None and len(book) == 2


def test_revocation_rotation_and_tombstones_remove_the_old_secret() -> None:
    book = CredentialBook()
    book.apply(b"key:key_1", _key().to_json())
    book.apply(b"key:key_1", _key("ml-rotated").to_json())  # same id, new secret
    assert book.lookup("ml-secret") is None and book.lookup("ml-rotated") is not None

    book.apply(b"key:key_1", _key("ml-rotated", revoked=True).to_json())
    assert book.lookup("ml-rotated") is None

    book.apply(b"ingest_token:itok_1", _token().to_json())
    assert book.apply(b"ingest_token:itok_1", None)  # tombstone
    assert book.lookup("mli-secret") is None and len(book) == 0


def test_other_records_and_garbage_are_ignored() -> None:
    book = CredentialBook()
    budget = BudgetRecord(budget_id="b", subject="org:acme", period="day", limit_usd=1)
    assert not book.apply(b"budget:b", budget.to_json())
    assert not book.apply(b"key:x", b"not json")
    assert not book.apply(b"key:x", b"[1, 2]")
    assert not book.apply(b"budget:b", None)
    assert credential_from_record({"event_type": "key", "key_id": "", "key_hash": "h"}) is None
    assert credential_from_record({"event_type": "key", "key_id": "k", "key_hash": 3}) is None


def test_a_book_of_one_kind_ignores_the_other() -> None:
    tokens = CredentialBook(kinds=("ingest_token",))
    assert not tokens.apply(b"key:key_1", _key().to_json())
    assert tokens.apply(b"ingest_token:itok_1", _token().to_json())
    assert [c.credential_id for c in tokens.all("ingest_token")] == ["itok_1"]
    assert tokens.get("ingest_token", "itok_1") is not None and tokens.all("key") == []


def test_control_keys() -> None:
    assert control_key("ingest_token", "itok_1") == "ingest_token:itok_1"
    assert parse_control_key("ingest_token:itok_1") == ("ingest_token", "itok_1")
    assert parse_control_key("budget:a:b") == ("budget", "a:b")
    assert parse_control_key("plain") == ("", "plain")
