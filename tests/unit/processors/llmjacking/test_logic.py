"""LlmjackingDetector: each signal on synthetic traffic, precision on normal keys, dedup,
policies and the saved state.

`normal_key()` and `attack()` are the deterministic generators shared with the
integration test: a key with a daily rhythm, a few networks and clients and cheap models;
and the published tradecraft of a leaked key.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from meterline.settings import LlmjackingSettings
from processors.llmjacking.forest import ForestModels
from processors.llmjacking.logic import (
    KIND,
    LlmjackingDetector,
    request_from_payload,
)
from processors.llmjacking.network import network_of
from processors.llmjacking.policy import PolicyBook, Publication, RejectedPolicy
from processors.llmjacking.store import load_state, save_state
from processors.llmjacking.tiers import ModelTiers
from schemas.events.v1 import (
    Anomaly,
    EnforcementDecision,
    GuardrailPolicyRecord,
    RequestEvent,
)
from schemas.topics import ANOMALIES, ENFORCEMENT, enforcement_key

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CHEAP_MODELS = ("gpt-4o-mini", "gpt-4.1-nano", "claude-3-5-haiku-20241022", "gpt-4.1-mini")
AGENTS = ("openai-python/1.54.0", "my-app/2.1", "langchain/0.3", "curl/8.5.0", "node-fetch/3")
NORMAL_DAYS = 3
# Small learning periods keep the synthetic history short (settings default to a day).
CONFIG = LlmjackingSettings(
    window_s=300,
    learning_requests=60,
    learning_s=6 * 3600,
    min_train_windows=50,
    retrain_windows=5000,
)
TIERS = ModelTiers()


def event(
    key_id: str,
    at: datetime,
    *,
    request_id: str,
    org: str = "acme",
    ip: str = "10.0.0.1",
    agent: str = "my-app/2.1",
    model: str = "gpt-4o-mini",
    status: int = 200,
    error_type: str | None = None,
    tokens: tuple[int, int] = (800, 200),
    max_tokens: int | None = 512,
) -> RequestEvent:
    return RequestEvent(
        request_id=request_id,
        ts_start=at,
        ts_end=at + timedelta(milliseconds=400),
        latency_ms=400.0,
        key_id=key_id,
        org=org,
        client_ip=ip,
        user_agent=agent,
        model_requested=model,
        model_used=model if status < 400 else None,
        endpoint="/v1/chat/completions",
        status_code=status,
        error_type=error_type,
        input_tokens=tokens[0] if status < 400 else 0,
        output_tokens=tokens[1] if status < 400 else 0,
        max_tokens_requested=max_tokens,
    )


def normal_key(
    seed: int, key_id: str, org: str = "acme", days: int = NORMAL_DAYS, start: datetime = T0
) -> list[RequestEvent]:
    """A key used by one team: office hours (its own time zone), 2-4 client networks, one
    or two clients, one or two cheap models, 3-15 requests an hour, a few errors."""
    rng = random.Random(seed)
    networks = [f"10.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(rng.randint(2, 4))]
    agents = rng.sample(AGENTS, rng.randint(1, 2))
    models = rng.sample(CHEAP_MODELS, rng.randint(1, 2))
    first_hour, hours = rng.randrange(24), rng.randint(6, 10)
    events = []
    for day in range(days):
        for offset in range(hours):
            hour_start = start + timedelta(days=day, hours=first_hour + offset)
            seconds = sorted(rng.uniform(0, 3600) for _ in range(rng.randint(3, 15)))
            for second in seconds:
                failed = rng.random() < 0.02
                events.append(
                    event(
                        key_id,
                        hour_start + timedelta(seconds=second),
                        request_id=f"{key_id}-{len(events)}",
                        org=org,
                        ip=f"{rng.choice(networks)}.{rng.randint(1, 254)}",
                        agent=rng.choice(agents),
                        model=rng.choice(models),
                        status=400 if failed else 200,
                        error_type="invalid_request" if failed else None,
                        tokens=(rng.randint(200, 3000), rng.randint(20, 600)),
                    )
                )
    return events


def attack(key_id: str, start: datetime, org: str = "acme") -> list[RequestEvent]:
    """Validation probes, model enumeration, then a ramp from new networks through a
    reselling proxy towards expensive models."""
    rng = random.Random(99)
    at = start
    events: list[RequestEvent] = []

    def add(**fields: object) -> None:
        nonlocal at
        at += timedelta(seconds=rng.uniform(0.5, 2.0))
        fields.setdefault("ip", f"198.51.100.{rng.randint(1, 254)}")
        fields.setdefault("agent", "python-requests/2.31.0")
        events.append(event(key_id, at, request_id=f"attack-{len(events)}", org=org, **fields))  # type: ignore[arg-type]

    for _ in range(3):  # does the key work? invalid max_tokens: a free 400
        add(max_tokens=-1, status=400, error_type="upstream_400")
    for model in ("gpt-4o", "claude-3-opus-20240229", "o1", "gpt-5-secret", "claude-9", "o1-pro"):
        known = model not in ("gpt-5-secret", "claude-9")
        add(
            model=model,
            status=200 if known else 404,
            error_type=None if known else "model_not_found",
            max_tokens=1,
        )
    for index in range(240):  # the resale ramp, spread over proxies in several regions
        net = ("203.0.113", "192.0.2", "100.64.7", "172.20.9", "45.33.1")[index % 5]
        add(
            ip=f"{net}.{rng.randint(1, 254)}",
            agent="Mozilla/5.0 (proxy)",
            model=("claude-3-opus-20240229", "o1")[index % 2],
            tokens=(rng.randint(3000, 9000), rng.randint(500, 2000)),
        )
    return events


def detector(default: str = "monitor") -> LlmjackingDetector:
    return LlmjackingDetector(CONFIG, PolicyBook(KIND, default), TIERS.price, lambda: NOW)


def run(det: LlmjackingDetector, events: list[RequestEvent]) -> list[Publication]:
    out: list[Publication] = []
    for item in events:
        out += det.observe(item)
    return out


def anomalies(items: list[Publication]) -> list[Anomaly]:
    return [item.value for item in items if isinstance(item.value, Anomaly)]


def decisions(items: list[Publication]) -> list[tuple[str, EnforcementDecision]]:
    return [(i.key, i.value) for i in items if isinstance(i.value, EnforcementDecision)]


def interleave(streams: list[list[RequestEvent]]) -> list[RequestEvent]:
    return sorted((e for s in streams for e in s), key=lambda e: e.ts_start)


def usual_time(key_events: list[RequestEvent], days: int = NORMAL_DAYS) -> datetime:
    """The hour the key's working day starts, `days` later: inside its usual hours."""
    return key_events[0].ts_start.replace(minute=0, second=0, microsecond=0) + timedelta(days=days)


def after_normal(key_events: list[RequestEvent], hours: float = 2) -> datetime:
    """A window start (a full hour) at least `hours` after the key's history."""
    later = key_events[-1].ts_start + timedelta(hours=hours)
    return later.replace(minute=0, second=0, microsecond=0)


# --- pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1:2::5", "2001:db8:1::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("not an ip", None),
        (None, None),
    ],
)
def test_networks(ip: str | None, network: str | None) -> None:
    assert network_of(ip) == network


def test_tiers_rank_models_by_price_and_know_no_price_for_unknown_models() -> None:
    assert TIERS.price("gpt-4o-mini") < TIERS.price("gpt-4o") < TIERS.price("o1")  # type: ignore[operator]
    assert TIERS.price("no-such-model") is None and TIERS.price(None) is None


# --- detection --------------------------------------------------------------------------


def test_stolen_key_is_flagged_with_the_tradecraft_signals_and_evidence() -> None:
    det = detector()
    history = normal_key(1, "k-victim")
    assert not anomalies(run(det, history))
    start = after_normal(history)
    found = anomalies(run(det, attack("k-victim", start)))

    assert found, "the attack went unnoticed"
    assert {a.subject for a in found} == {"key:k-victim"}
    assert all(a.kind == "llmjacking" for a in found)
    # Reported with the first requests: a new network and client, odd to the forest, then
    # the invalid max_tokens probes escalate it.
    assert found[0].severity in ("high", "critical")
    assert found[0].evidence["sample_request_ids"][0] == "attack-0"
    probed = next(a for a in found if "validation_probes" in a.signals)
    assert probed.evidence["signal_request_ids"]["validation_probes"][:2] == [
        "attack-0",
        "attack-1",
    ]
    signals = set().union(*(a.signals for a in found))
    assert {
        "validation_probes",
        "model_enumeration",
        "new_network",
        "new_user_agent",
        "expensive_models",
        "many_networks",
        "volume_spike",
    } <= signals
    worst = max(found, key=lambda a: a.score)
    assert worst.severity == "critical" and worst.recommended_action == "block"
    assert "198.51.100.0/24" in worst.evidence["signals"]["new_network"]["new_networks"]
    assert (
        worst.evidence["key_first_seen"]
        == history[0].ts_start.isoformat().replace("+00:00", "Z")[:23] + "Z"
    )
    assert set(worst.evidence["sample_request_ids"]) <= {
        e.request_id for e in attack("k-victim", start)
    }
    assert worst.evidence["signals"]["model_enumeration"]["model_not_found"] == 2


def test_each_signal_on_its_own() -> None:
    det = detector()
    history = normal_key(2, "k2")
    run(det, history)
    later = usual_time(history)
    usual = history[-1]

    def like(at: datetime, n: int, **fields: object) -> list[RequestEvent]:
        base = {"ip": usual.client_ip, "agent": usual.user_agent, "model": usual.model_requested}
        return [
            event("k2", at + timedelta(seconds=i), request_id=f"{at:%H%M%S}-{i}", **(base | fields))  # type: ignore[arg-type]
            for i in range(n)
        ]

    # New network and new client together (the credential moved): medium, not a block.
    moved = anomalies(run(det, like(later, 2, ip="192.0.2.10", agent="curl/7.1")))
    assert [a.signals for a in moved] == [["new_network", "new_user_agent"]]
    assert moved[0].severity == "medium" and moved[0].recommended_action == "alert"
    # Only a new network: weak, never reported alone.
    assert not anomalies(run(det, like(later + timedelta(hours=1), 3, ip="192.0.2.99")))
    # A burst of validation errors (without max_tokens tricks): medium.
    burst = anomalies(
        run(det, like(later + timedelta(hours=2), 6, status=400, error_type="invalid_request"))
    )
    assert "validation_probes" in burst[0].signals  # the forest finds all-errors odd, too
    assert burst[0].evidence["signals"]["validation_probes"]["validation_errors"] == 5
    # Volume far above the key's per-minute baseline.
    spike = anomalies(run(det, like(later + timedelta(hours=3), 40)))
    assert any("volume_spike" in a.signals for a in spike)
    z = next(a for a in spike if "volume_spike" in a.signals).evidence["signals"]["volume_spike"]
    assert z["requests_z"] >= 6 and z["peak_minute_requests"] >= 10
    # Far pricier models than the key ever used.
    pricey = anomalies(run(det, like(later + timedelta(hours=4), 4, model="o1-pro")))
    assert any("expensive_models" in a.signals for a in pricey)


def test_enumeration_by_not_found_models_is_strong_even_for_a_new_key() -> None:
    det = detector()
    events = [
        event(
            "fresh",
            T0 + timedelta(seconds=i),
            request_id=f"e{i}",
            model=f"guess-{i}",
            status=404,
            error_type="model_not_found",
        )
        for i in range(5)
    ]
    [found] = anomalies(run(det, events))
    assert found.signals == ["model_enumeration"] and found.severity == "high"
    assert found.evidence["signal_request_ids"]["model_enumeration"] == [f"e{i}" for i in range(5)]


def test_off_hours_activity_is_weak_alone_and_reported_with_a_new_network() -> None:
    det = detector()
    history = normal_key(3, "k3")
    run(det, history)
    usual_hours = {e.ts_start.hour for e in history}
    quiet = [h for h in range(24) if not usual_hours & {h, (h - 1) % 24, (h + 1) % 24}]
    day = after_normal(history, hours=24).replace(hour=quiet[0], minute=0)
    late = [
        event(
            "k3",
            day + timedelta(minutes=i),
            request_id=f"late-{i}",
            ip=history[0].client_ip,
            agent=history[0].user_agent,
            model=history[0].model_requested,
        )
        for i in range(4)
    ]
    assert not anomalies(run(det, late))  # weak alone; learned when its window closes
    moved = [
        event(
            "k3",
            day.replace(hour=quiet[3]) + timedelta(minutes=i),  # 3 hours from that one
            request_id=f"moved-{i}",
            ip="192.0.2.1",
            agent=history[0].user_agent,
            model=history[0].model_requested,
        )
        for i in range(4)
    ]
    [found] = anomalies(run(det, moved))
    assert found.signals == ["new_network", "off_hours"] and found.severity == "medium"


def test_false_positive_rate_on_normal_keys_is_at_most_one_percent() -> None:
    det = detector()
    keys = [normal_key(1000 + i, f"n{i}", org=f"org{i % 4}") for i in range(200)]
    flagged = {a.subject for a in anomalies(run(det, interleave(keys)))}

    assert len(flagged) <= 2, flagged  # <= 1% of 200 keys
    assert det.forest.has_model("org0")  # the forest took part
    assert all(p.requests >= CONFIG.learning_requests for p in det.profiles.values())


def test_one_anomaly_per_window_unless_it_escalates_and_redelivery_is_ignored() -> None:
    det = detector()
    history = normal_key(4, "k4")
    run(det, history)
    attack_events = attack("k4", after_normal(history))
    found = anomalies(run(det, attack_events))
    by_window: dict[str, list[Anomaly]] = defaultdict(list)
    for a in found:
        by_window[a.evidence["window"][0]].append(a)
    order = ["medium", "high", "critical"]
    assert 1 <= len(by_window) <= 3  # the attack spans a few windows
    for reports in by_window.values():
        seen: set[str] = set()
        for before, after in zip([None, *reports], reports, strict=False):
            # Each re-alert is worse, or brings a medium/strong signal not reported yet.
            worse = before is None or order.index(after.severity) > order.index(before.severity)
            assert worse or set(after.signals) - seen, [r.signals for r in reports]
            seen |= set(after.signals)
        assert len(reports) <= 3 + 6  # severities + medium/strong signals: bounded
    assert not run(det, attack_events[-20:])  # at-least-once redelivery
    assert det.ignored_events == 20


def test_blocked_requests_are_neither_learned_nor_evidence() -> None:
    det = detector()
    refused = [
        event(
            "k5",
            T0 + timedelta(seconds=i),
            request_id=f"b{i}",
            model=f"m{i}",
            status=403,
            error_type="blocked",
            max_tokens=-1,
        )
        for i in range(10)
    ]
    assert not run(det, refused) and "k5" not in det.profiles


# --- policy -----------------------------------------------------------------------------


def policy(mode: str, org: str = "acme", policy_id: str = "p1") -> tuple[bytes, bytes]:
    # Built by hand: the tests also send modes a valid record cannot have.
    record = {"event_type": "policy", "policy_id": policy_id, "subject": f"org:{org}"}
    return f"policy:{policy_id}".encode(), orjson.dumps({**record, "kind": KIND, "mode": mode})


def probes(key_id: str, org: str) -> list[RequestEvent]:
    return [
        event(
            key_id,
            T0 + timedelta(seconds=i),
            request_id=f"{key_id}-p{i}",
            org=org,
            max_tokens=-1,
            status=400,
            error_type="invalid_request",
        )
        for i in range(3)
    ]


def test_monitor_alerts_and_enforce_blocks_the_key_with_an_expiry() -> None:
    det = detector()
    det.policies.apply(*policy("enforce", org="acme"))
    det.policies.apply(*policy("monitor", org="other", policy_id="p2"))

    watched = run(det, probes("k-other", "other"))
    blocked = run(det, probes("k-acme", "acme"))

    assert len(anomalies(watched)) == 1 and not decisions(watched)
    [(key, decision)] = decisions(blocked)
    [anomaly] = anomalies(blocked)
    assert key == enforcement_key("llmjacking", "key:k-acme") == "llmjacking|key:k-acme"
    assert decision.subject == "key:k-acme" and decision.action == "block"
    assert decision.source == "llmjacking" and decision.anomaly_id == anomaly.anomaly_id
    assert decision.expires_at == NOW + timedelta(seconds=CONFIG.block_s)
    assert "validation_probes" in decision.reason and "rotate" in decision.reason
    assert anomaly.evidence["mode"] == "enforce"
    assert [item.topic for item in blocked] == [ANOMALIES, ENFORCEMENT]


def test_policy_changes_default_and_rejects() -> None:
    book = PolicyBook(KIND, "monitor")
    assert book.apply(*policy("enforce")) and book.mode(["org:acme"]) == ("enforce", {})
    assert book.apply(b"policy:p1", None) and book.mode(["org:acme"])[0] == "monitor"
    other = GuardrailPolicyRecord(
        policy_id="g", subject="org:acme", kind="guardrail:pii", mode="redact"
    )
    assert not book.apply(b"policy:g", other.to_json())
    with pytest.raises(RejectedPolicy, match="'block' is not one of enforce, monitor, off"):
        book.apply(*policy("block"))
    with pytest.raises(RejectedPolicy, match="not JSON"):
        book.apply(b"policy:x", b"{nope")
    assert book.mode(["org:acme"])[0] == "monitor"


def test_off_mode_reports_nothing() -> None:
    assert not run(detector(default="off"), probes("k6", "acme"))


def test_unreadable_requests_are_skipped() -> None:
    assert request_from_payload(b"\xff garbage") is None and request_from_payload(None) is None


# --- persistence ------------------------------------------------------------------------


def test_forest_trains_persists_and_loads_with_the_same_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    forest = ForestModels(min_windows=30, retrain_every=40)
    for _ in range(100):
        forest.add("acme", rng.normal(1.0, 0.1, size=10))
    odd, usual = np.full(10, 8.0), np.full(10, 1.0)
    assert forest.has_model("acme") and forest.trainings >= 2 + 2  # org + global, retrained
    assert forest.score("acme", odd) > 0.65 > forest.score("acme", usual)  # type: ignore[operator]
    assert forest.score("tiny-org", odd) == forest.score("\x00global", odd)  # the global model

    save_state(tmp_path / "state.joblib", {"forest": forest})
    loaded = load_state(tmp_path / "state.joblib")["forest"]  # type: ignore[index]
    assert loaded.score("acme", odd) == forest.score("acme", odd)


def test_a_restarted_detector_keeps_its_profiles(tmp_path: Path) -> None:
    det = detector()
    history = normal_key(8, "k8")
    run(det, history)
    save_state(tmp_path / "s.joblib", det.state())
    restarted = detector()
    restarted.restore(load_state(tmp_path / "s.joblib"))  # type: ignore[arg-type]

    moved = [
        event(
            "k8",
            after_normal(history) + timedelta(seconds=i),
            request_id=f"m{i}",
            ip="192.0.2.1",
            agent="curl/1",
            model=history[0].model_requested,
        )
        for i in range(2)
    ]
    assert [a.signals for a in anomalies(run(restarted, moved))] == [
        ["new_network", "new_user_agent"]
    ]
    assert restarted.forest.trainings == det.forest.trainings


def test_unreadable_state_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "s.joblib").write_bytes(b"not a pickle")
    assert load_state(tmp_path / "s.joblib") is None
    assert load_state(tmp_path / "missing.joblib") is None
    save_state(tmp_path / "v.joblib", {})
    assert load_state(tmp_path / "v.joblib") == {"version": 1}


def test_signal_config_defaults_match_settings() -> None:
    from meterline.settings import Settings

    config = Settings(_env_file=None).processors.llmjacking  # type: ignore[call-arg]
    assert (config.iforest_threshold, config.volume_z) == (0.65, 6.0)
    assert config.default_mode == "monitor"


def test_blocks_found_before_the_policies_loaded_wait_for_them() -> None:
    det = LlmjackingDetector(
        CONFIG, PolicyBook(KIND, "monitor"), TIERS.price, lambda: NOW, policies_ready=False
    )
    early = run(det, probes("k-a", "acme")) + run(det, probes("k-b", "other"))
    assert len(anomalies(early)) == 2 and not decisions(early)
    assert {a.evidence["mode"] for a in anomalies(early)} == {"pending"}

    det.policies.apply(*policy("enforce", org="acme"))
    [(key, decision)] = decisions(det.policies_loaded())
    assert key == "llmjacking|key:k-a" and decision.anomaly_id == anomalies(early)[0].anomaly_id
    assert not det.policies_loaded()  # released once
