"""Guardrails end to end: openai SDK -> gateway (real uvicorn) -> mock provider, with
GuardrailEvents and RequestEvents read back from the real broker."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from schemas.events import GuardrailEvent, RequestEvent
from schemas.topics import GUARDRAILS

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer test-admin-token"}
OPENAI_KEY = "sk-proj-" + "Ab3Xy9" * 8
EMAIL = "jane.doe@corp.example.com"


@pytest.fixture
def gateway(start_gateway):
    return start_gateway(
        gateway={
            "guardrail": {
                "modes": {"pii": "monitor", "secrets": "block", "prompt_injection": "monitor"}
            }
        }
    )


def _client(gateway, key: dict) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key["key"], max_retries=0)


def _guardrail_events(gateway, read_events, request_id: str, count: int) -> list[dict]:
    def want(events: list[dict]) -> bool:
        return len([e for e in events if e["request_id"] == request_id]) >= count

    events = read_events(gateway.settings, want, topic=GUARDRAILS)
    mine = [e for e in events if e["request_id"] == request_id]
    for event in mine:
        GuardrailEvent.model_validate(event)
    return mine


def test_block_is_a_400_with_a_guardrail_event(gateway, read_events, events_for) -> None:
    key = gateway.create_key(org="acme")
    client = _client(gateway, key)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"deploy with {OPENAI_KEY}"}]
        )
    error = caught.value.body
    assert caught.value.status_code == 400
    assert (error["code"], error["param"], error["guardrail"], error["category"]) == (
        "guardrail_blocked",
        "messages",
        "secrets",
        "openai_key",
    )
    request_id = caught.value.response.headers["x-request-id"]
    (event,) = _guardrail_events(gateway, read_events, request_id, 1)
    assert (event["_key"], event["key_id"], event["org"]) == (key["key_id"], key["key_id"], "acme")
    assert (event["guardrail"], event["stage"], event["action"], event["category"]) == (
        "secrets",
        "input",
        "block",
        "openai_key",
    )
    assert event["excerpt"] == "sk-p…[REDACTED]"
    (request,) = events_for(gateway.settings, [request_id])
    RequestEvent.model_validate(request)
    assert (request["status_code"], request["error_type"]) == (400, "guardrail_blocked")
    assert request["guardrails"] == [
        {"guardrail": "secrets", "stage": "input", "action": "block", "category": "openai_key"}
    ]
    assert OPENAI_KEY not in str(request) + str(event)


def test_monitor_forwards_unchanged_and_redact_masks_what_upstream_sees(
    gateway, start_gateway, read_events
) -> None:
    key = gateway.create_key(org="acme")
    client = _client(gateway, key)
    prompt = f"mail {EMAIL} please"
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": prompt}],
        extra_body={"mock_echo": True},
    )
    assert raw.parse().choices[0].message.content == prompt  # monitor: upstream saw it as is
    request_id = raw.headers["x-request-id"]
    events = _guardrail_events(gateway, read_events, request_id, 2)
    assert {(e["stage"], e["action"], e["category"]) for e in events} == {
        ("input", "monitor", "email"),
        ("output", "monitor", "email"),
    }
    assert all(EMAIL not in e["excerpt"] for e in events)

    # per org: pii redact for acme only (PolicyRecord through the admin API)
    response = httpx.post(
        f"{gateway.url}/admin/policies",
        json={"subject": "org:acme", "kind": "guardrail:pii", "mode": "redact"},
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    policy = response.json()
    assert policy["policy_id"].startswith("pol_") and policy["mode"] == "redact"
    listing = httpx.get(f"{gateway.url}/admin/policies", headers=ADMIN).json()
    assert [p["policy_id"] for p in listing["data"]] == [policy["policy_id"]]
    assert listing["defaults"]["secrets"] == "block"
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": prompt}],
        extra_body={"mock_echo": True},
    )
    assert reply.choices[0].message.content == "mail [REDACTED:email] please"
    other = _client(gateway, gateway.create_key(org="globex"))
    reply = other.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": prompt}],
        extra_body={"mock_echo": True},
    )
    assert reply.choices[0].message.content == prompt  # other orgs keep the default

    # another gateway instance learns the policy from the control topic
    second = openai.OpenAI(
        base_url=f"{start_gateway(gateway.settings).url}/v1", api_key=key["key"], max_retries=0
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            reply = second.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": prompt}],
                extra_body={"mock_echo": True},
            )
            if reply.choices[0].message.content == "mail [REDACTED:email] please":
                break
        except openai.AuthenticationError:
            pass  # the key itself has not arrived yet
        assert time.monotonic() < deadline, "the policy did not reach the second gateway"
        time.sleep(0.1)


def test_output_redaction_streaming_and_not(start_gateway, read_events, events_for) -> None:
    gateway = start_gateway(gateway={"guardrail": {"modes": {"secrets": "redact"}}})
    client = _client(gateway, gateway.create_key(org="acme"))
    reply = f"Your key is {OPENAI_KEY}. Keep it safe, do not share it with anyone."
    expected = "Your key is [REDACTED:openai_key]. Keep it safe, do not share it with anyone."
    messages = [{"role": "user", "content": "what is my key?"}]
    plain = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, extra_body={"mock_reply": reply}
    )
    assert plain.parse().choices[0].message.content == expected
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": messages, "stream": True, "mock_reply": reply},
        headers={"Authorization": f"Bearer {client.api_key}"},
        timeout=10,
    ) as response:
        body = response.read().decode()
        stream_id = response.headers["x-request-id"]
    assert "Ab3Xy9" not in body  # the mock sent the key in 8-character pieces
    streamed = client.chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, extra_body={"mock_reply": reply}
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == expected
    for request_id in (plain.headers["x-request-id"], stream_id):
        (event,) = _guardrail_events(gateway, read_events, request_id, 1)
        assert (event["stage"], event["action"], event["category"]) == (
            "output",
            "redact",
            "openai_key",
        )
    (request,) = events_for(gateway.settings, [stream_id])
    assert request["status_code"] == 200 and request["guardrails"][0]["action"] == "redact"


def test_a_streamed_block_ends_with_an_error_event(start_gateway, events_for) -> None:
    gateway = start_gateway(gateway={"guardrail": {"modes": {"secrets": "block"}}})
    key = gateway.create_key(org="acme")
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "mock_reply": f"Sure, here it is: {OPENAI_KEY} and more words after it.",
    }
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key['key']}"},
        timeout=10,
    )
    assert response.status_code == 200  # the stream had begun
    assert "sk-p" not in response.text and "[DONE]" not in response.text
    assert (
        '"code":"guardrail_blocked"' in response.text and '"category":"openai_key"' in response.text
    )
    with pytest.raises(openai.APIError, match="guardrail"):
        client = _client(gateway, key)
        for _ in client.chat.completions.create(
            model="gpt-4o",
            messages=body["messages"],
            stream=True,
            extra_body={"mock_reply": body["mock_reply"]},
        ):
            pass
    (request,) = events_for(gateway.settings, [response.headers["x-request-id"]])
    assert (request["status_code"], request["error_type"]) == (400, "guardrail_blocked")


def test_policy_admin_validates_and_deletes(gateway) -> None:
    for body, param in (
        ({"subject": "org:acme", "kind": "guardrail:toxicity", "mode": "block"}, "kind"),
        ({"subject": "session:s1", "kind": "guardrail:pii", "mode": "block"}, "subject"),
        ({"subject": "nobody", "kind": "guardrail:pii", "mode": "block"}, "subject"),
        ({"subject": "org:acme", "kind": "guardrail:pii", "mode": "enforce"}, "mode"),
        ({"subject": "org:acme", "kind": "llmjacking", "mode": "redact"}, "mode"),
        ({"subject": "key:key_x", "kind": "llmjacking", "mode": "enforce"}, "subject"),
    ):
        response = httpx.post(f"{gateway.url}/admin/policies", json=body, headers=ADMIN)
        assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert httpx.get(f"{gateway.url}/admin/policies").status_code == 401
    # Detector policies are published for the processors; guardrails are unaffected.
    for kind, mode in (("llmjacking", "enforce"), ("agent_loop", "throttle")):
        detector = httpx.post(
            f"{gateway.url}/admin/policies",
            json={"subject": "org:acme", "kind": kind, "mode": mode},
            headers=ADMIN,
        )
        assert detector.status_code == 201 and detector.json()["mode"] == mode
    created = httpx.post(
        f"{gateway.url}/admin/policies",
        json={"subject": "key:key_x", "kind": "guardrail:secrets", "mode": "off"},
        headers=ADMIN,
    ).json()
    url = f"{gateway.url}/admin/policies/{created['policy_id']}"
    assert httpx.delete(url, headers=ADMIN).json() == {
        "policy_id": created["policy_id"],
        "deleted": True,
    }
    assert httpx.delete(url, headers=ADMIN).status_code == 404
    assert httpx.get(f"{gateway.url}/admin/policies", headers=ADMIN).json()["data"] == []
