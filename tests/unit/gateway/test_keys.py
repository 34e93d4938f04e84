from __future__ import annotations

import orjson

from gateway.control import apply_control_record
from gateway.keys import KeyStore, new_key
from schemas.events import BudgetRecord, KeyRecord
from schemas.ids import hash_key


def _record(secret: str, **extra: object) -> bytes:
    return KeyRecord(
        key_id=extra.pop("key_id", "key_a"),
        key_hash=hash_key(secret),  # type: ignore[arg-type]
        org="acme",
        **extra,
    ).to_json()  # type: ignore[arg-type]


def test_keys_are_found_by_secret_only_through_their_hash() -> None:
    key_id, secret = new_key()
    store = KeyStore()
    assert apply_control_record(
        store, f"key:{key_id}".encode(), _record(secret, key_id=key_id, team="t", models=["gpt-*"])
    )
    info = store.lookup(secret)
    assert info is not None and info.key_id == key_id and info.team == "t"
    assert info.allows("gpt-4o") and not info.allows("claude")
    assert store.lookup(secret + "x") is None
    assert secret not in repr(info) and "key" not in info.public()


def test_revocation_rotation_and_tombstones() -> None:
    store = KeyStore()
    apply_control_record(store, b"key:key_a", _record("s1"))
    apply_control_record(store, b"key:key_a", _record("s2"))  # re-issued secret
    assert store.lookup("s1") is None and store.lookup("s2") is not None
    apply_control_record(store, b"key:key_a", _record("s2", revoked=True))
    assert store.lookup("s2") is None and len(store) == 0
    apply_control_record(store, b"key:key_b", _record("s3", key_id="key_b"))
    assert apply_control_record(store, b"key:key_b", None) is True
    assert store.lookup("s3") is None


def test_other_records_and_garbage_are_ignored() -> None:
    store = KeyStore()
    apply_control_record(store, b"key:key_a", _record("s1"))
    budget = BudgetRecord(budget_id="b", subject="org:acme", period="day", limit_usd=1).to_json()
    for key, value in [
        (b"budget:b", budget),
        (b"x", b"\xff\x00garbage"),
        (b"x", b"[1]"),
        (b"policy:p", None),
        (None, None),
        (b"key:nope", None),
        (b"key:k", orjson.dumps({"event_type": "key", "key_id": 3})),
    ]:
        assert apply_control_record(store, key, value) is False
    assert store.lookup("s1") is not None
