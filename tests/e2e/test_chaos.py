"""Chaos through the real embedded stack, started as users start it (`meterline up`).

One stack for the module; each scenario meters its own org, so each total is exact on its
own: the showback dollars must equal genai-prices over the usage the clients were served,
to the last digit, with no manual step, while the damage happens under load.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price

from tests.e2e.chaos_helpers import (
    ADMIN_TOKEN,
    MODELS,
    Load,
    MeterlineUp,
    wait_for_exact_spend,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeterlineUp]:
    stack = MeterlineUp.start(Path(tmp_path_factory.mktemp("chaos")))
    try:
        yield stack
    finally:
        stack.kill()


def _kill_under_load(up: MeterlineUp, org: str, verb: str, health_path: str) -> Load:
    key = up.create_key(org)
    with Load(up.gateway, key) as load:
        load.wait_for(40)
        old = up.kill_child(verb)
        up.wait_restarted(verb, old)
        if health_path:
            up.wait_healthy(health_path)
        served = len(load.served)
        load.wait_for(served + 40)
    return load


def test_processors_sigkill_under_load_keeps_serving_and_costs_exactly(up: MeterlineUp) -> None:
    load = _kill_under_load(
        up, "chaos-procs", "processors", f"http://127.0.0.1:{up.port('PROCESSORS')}/healthz"
    )
    assert load.failures == []  # the gateway never noticed
    row = wait_for_exact_spend(up, "chaos-procs", load)
    assert row["requests"] == len(load.served)
    assert any("processors killed by SIGKILL; restarting" in line for line in up.lines)


def test_ingest_sigkill_under_load_loses_nothing(up: MeterlineUp) -> None:
    load = _kill_under_load(up, "chaos-ingest", "ingest", f"{up.ingest}/healthz")
    assert load.failures == []
    row = wait_for_exact_spend(up, "chaos-ingest", load)
    assert row["requests"] == len(load.served)


def test_broker_sigkill_and_restart_under_load_heals_exactly(up: MeterlineUp) -> None:
    budget_id = up.create_budget("org:chaos-broker", "1000")
    load = _kill_under_load(up, "chaos-broker", "broker", "")
    assert load.failures == []  # clients see no error: the gateway spools
    row = wait_for_exact_spend(up, "chaos-broker", load, timeout_s=240)
    assert row["requests"] == len(load.served)
    assert any("broker killed by SIGKILL; restarting" in line for line in up.lines)
    # The budget reconciles to the same exact total (each cost counted once).
    deadline = time.monotonic() + 60
    while up.budget_spent(budget_id) != load.expected_usd:
        assert time.monotonic() < deadline, (up.budget_spent(budget_id), load.expected_usd)
        time.sleep(0.5)
    # The control plane came back too: a gateway started after the restart knows the key.
    up.wait_restarted("gateway", up.kill_child("gateway"))
    up.wait_healthy(f"{up.gateway}/healthz")
    key = load.key
    reply = httpx.post(
        f"{up.gateway}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": MODELS[0], "messages": [{"role": "user", "content": "still there?"}]},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text


def test_poison_requests_never_stop_metering(up: MeterlineUp) -> None:
    key = up.create_key("chaos-poison")
    headers = {"Authorization": f"Bearer {key}"}
    chat = f"{up.gateway}/v1/chat/completions"
    hello = [{"role": "user", "content": "hi"}]
    with httpx.Client(timeout=30) as http:
        huge_model = http.post(
            chat, headers=headers, json={"model": "m" * 1_000_000, "messages": hello}
        )
        assert huge_model.status_code == 400, huge_model.text
        assert huge_model.json()["error"]["param"] == "model"
        # Client-chosen headers copied into the event are bounded, not a reason to fail.
        long_headers = {**headers, "X-Session-Id": "s" * 60_000, "User-Agent": "u" * 60_000}
        served = http.post(chat, headers=long_headers, json={"model": MODELS[0], "messages": hello})
        assert served.status_code == 200, served.text
    usage = served.json()["usage"]
    with Load(up.gateway, key) as load:
        load.wait_for(60)
    load.served.append((MODELS[0], usage["prompt_tokens"], usage["completion_tokens"]))
    assert load.failures == []
    row = wait_for_exact_spend(up, "chaos-poison", load)
    assert row["requests"] >= len(load.served)  # the refused request is metered too, at $0
    health = httpx.get(f"{up.gateway}/healthz", timeout=5).json()
    assert health["status"] == "ok", health


def _exporter_provider(up: MeterlineUp, key: str | None, claims: dict[str, str]) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    provider = TracerProvider(resource=Resource.create({"service.name": "chaos-app", **claims}))
    exporter = OTLPSpanExporter(endpoint=f"{up.ingest}/v1/traces", headers=headers)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _llm_span(provider: Any, input_tokens: int, output_tokens: int) -> None:
    with provider.get_tracer("chaos").start_as_current_span("ChatCompletion") as span:
        span.set_attribute("openinference.span.kind", "LLM")
        span.set_attribute("gen_ai.system", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)


def test_otlp_forgery_is_refused_and_attributes_nothing(up: MeterlineUp) -> None:
    victim = httpx.post(
        f"{up.gateway}/admin/keys",
        json={"org": "chaos-victim", "team": "t", "project": "p"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ).json()
    attacker_key = up.create_key("chaos-attacker")
    claims = {"meterline.org": "chaos-victim", "meterline.key_id": victim["key_id"]}

    anonymous = httpx.post(
        f"{up.ingest}/v1/traces",
        content=b"{}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert anonymous.status_code == 401

    provider = _exporter_provider(up, attacker_key, claims)
    _llm_span(provider, 100_000_000, 100_000_000)  # implausible: rejected with the reason
    _llm_span(provider, 1000, 500)  # plausible: attributed to the attacker's own key
    provider.shutdown()

    expected = calc_price(Usage(input_tokens=1000, output_tokens=500), model_ref="gpt-4o-mini")
    deadline = time.monotonic() + 60
    attacker = None
    while time.monotonic() < deadline:
        attacker = up.showback("chaos-attacker")
        if attacker is not None and Decimal(attacker["cost_usd"]) == expected.total_price:
            break
        time.sleep(0.5)
    assert attacker is not None and Decimal(attacker["cost_usd"]) == expected.total_price
    assert up.showback("chaos-victim") is None  # nothing the sender claimed was believed


def test_ctrl_c_stops_everything_quickly_broker_last_without_error_floods(
    up: MeterlineUp,
) -> None:
    time.sleep(1)
    seconds = up.stop()
    assert up.process is not None and up.process.returncode == 0
    assert seconds < 10, f"stop took {seconds:.1f}s"
    stops = [line for line in up.lines if line.startswith("stopping ")]
    assert stops[-1].startswith("stopping Kafka broker"), stops
    # The broker was killed once, services were killed and stopped: each kind of complaint
    # is logged once per 30 s, not once per reconnect attempt (~10 a second).
    for name in ("gateway", "ingest", "processors"):
        log = up.log(name)
        complaints = sum(
            log.count(text) for text in ("Connection refused", "Connect call failed", "not ready")
        )
        assert complaints < 40, f"{name} logged {complaints} connection complaints"
