"""Attribution from the credential, token plausibility, and who may export (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from ingest.otlp.auth import OtlpAuth, bearer_secret
from ingest.otlp.errors import CredentialsLoadingError, UnauthenticatedError
from ingest.otlp.trust import attribute, check_token_counts
from schemas.credentials import Credential, CredentialBook
from schemas.events import IngestTokenRecord, KeyRecord, SpanEvent
from schemas.ids import hash_key

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = Credential("key", "key_acme", "h", org="acme", team="search", project="rag")
TOKEN = Credential("ingest_token", "itok_1", "h2", org="acme")


def _span(**overrides: object) -> SpanEvent:
    values: dict[str, object] = {
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "name": "chat",
        "kind": "LLM",
        "start_ts": NOW,
        "end_ts": NOW,
        "duration_ms": 1.0,
        "input_tokens": 10,
    }
    values.update(overrides)
    return SpanEvent(**values)  # type: ignore[arg-type]


def test_claims_that_disagree_are_dropped_and_named() -> None:
    claimed = _span(
        key_id="key_victim",
        org="victim",
        team="search",  # agrees with the key: not reported
        attributes={"meterline.source": "gateway", "custom": "kept"},
    )
    event, dropped = attribute(claimed, KEY)
    assert (event.key_id, event.org, event.team, event.project) == (
        "key_acme",
        "acme",
        "search",
        "rag",
    )
    assert dropped == [
        "meterline.key_id='key_victim'",
        "meterline.org='victim'",
        "meterline.source='gateway'",
    ]
    assert event.attributes == {"custom": "kept"}


def test_an_ingest_token_attributes_to_its_org_and_no_key() -> None:
    event, dropped = attribute(_span(team="payments"), TOKEN)
    assert (event.key_id, event.org, event.team, event.project) == (None, "acme", "", "")
    assert dropped == ["meterline.team='payments'"]
    event, dropped = attribute(_span(attributes={"meterline.attributes_dropped": "3"}), TOKEN)
    assert dropped == [] and event.attributes == {"meterline.attributes_dropped": "3"}


def test_token_counts_beyond_the_bound_are_refused_with_the_count() -> None:
    check_token_counts(_span(input_tokens=10_000_000), 10_000_000)
    with pytest.raises(ValueError, match="output_tokens 100000000 is beyond the plausible"):
        check_token_counts(_span(output_tokens=100_000_000), 10_000_000)


@dataclass
class _Source:
    book: CredentialBook = field(default_factory=CredentialBook)
    loaded: bool = True


def test_who_may_export() -> None:
    source = _Source()
    source.book.apply(
        b"key:key_acme",
        KeyRecord(key_id="key_acme", key_hash=hash_key("ml-ok"), org="acme").to_json(),
    )
    source.book.apply(
        b"ingest_token:itok_1",
        IngestTokenRecord(token_id="itok_1", token_hash=hash_key("mli-ok"), org="acme").to_json(),
    )
    auth = OtlpAuth(source)
    assert auth.sender("Bearer ml-ok", "10.0.0.1").key_id == "key_acme"  # type: ignore[union-attr]
    assert auth.sender("bearer  mli-ok", "10.0.0.1").kind == "ingest_token"  # type: ignore[union-attr]
    for header in (None, "", "Bearer", "Basic ml-ok", "ml-ok"):
        with pytest.raises(UnauthenticatedError, match="missing credential"):
            auth.sender(header, "127.0.0.1")
    with pytest.raises(UnauthenticatedError, match="unknown or revoked"):
        auth.sender("Bearer ml-forged", "127.0.0.1")

    source.loaded = False  # still reading the control topic: "retry", not "wrong"
    with pytest.raises(CredentialsLoadingError):
        auth.sender("Bearer ml-new", "10.0.0.1")


def test_open_mode_is_loopback_only_and_still_checks_credentials() -> None:
    auth = OtlpAuth(_Source(), required=False)
    assert auth.sender(None, "127.0.0.1") is None and auth.sender(None, "::1") is None
    for host in ("10.0.0.1", "192.168.1.2", None, "testclient"):
        with pytest.raises(UnauthenticatedError):
            auth.sender(None, host)
    with pytest.raises(UnauthenticatedError):
        auth.sender("Bearer ml-forged", "127.0.0.1")


def test_bearer_secret() -> None:
    assert bearer_secret("Bearer abc") == "abc" and bearer_secret("BEARER abc ") == "abc"
    assert bearer_secret("Bearer ") is None and bearer_secret(None) is None
