from __future__ import annotations

import json

from ingest.api.audit import control_action, readable_payload


def test_what_a_control_version_did() -> None:
    assert control_action("key", False, "", False) == "create"
    assert control_action("budget", False, '{"limit_usd": "5"}', False) == "update"
    assert control_action("key", True, '{"revoked": false}', False) == "revoke"
    assert control_action("policy", True, '{"mode": "block"}', False) == "delete"
    assert control_action("budget", False, '{"deleted": true}', True) == "create"  # re-created


def test_a_payload_is_shown_without_envelope_or_key_hash() -> None:
    stored = {"event_id": "e", "ts": "t", "key_id": "k1", "key_hash": "ab" * 32, "org": "acme"}
    assert readable_payload(json.dumps(stored)) == {"key_id": "k1", "org": "acme"}
    assert readable_payload("") is None
