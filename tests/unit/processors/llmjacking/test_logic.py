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

import orjson
import pytest

from meterline.settings import LlmjackingSettings
from processors.llmjacking.fusion import BLOCK_POINTS, Contribution, fuse
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
CONFIG = LlmjackingSettings()  # the defaults: what production runs
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
    return LlmjackingDetector(CONFIG, PolicyBook(KIND, default), TIERS, lambda: NOW)


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
    # gpt-4o at list prices: $2.50 / $10 per million tokens in / out.
    assert TIERS.cost("gpt-4o", 1_000_000, 100_000) == pytest.approx(3.5)
    assert TIERS.cost("no-such-model", 10, 10) == 0.0


def test_fusion_adds_log_odds_caps_each_group_and_keeps_the_contributions() -> None:
    usage = [Contribution("spend_rate", "usage", 4.0), Contribution("request_rate", "usage", 3.0)]
    identity = [Contribution("new_networks", "identity", 4.5), Contribution("x", "identity", 2)]
    assert fuse(usage).rank == 0 and fuse(usage).points == pytest.approx(3.9)  # a batch job
    assert fuse(identity).rank == 1  # moved: reported, never blocked
    both = fuse(usage + identity)
    assert both.rank == 3 and both.points == pytest.approx(3.9 + 5.4)
    assert list(both.breakdown()) == ["new_networks", "spend_rate", "request_rate", "x"]
    assert fuse([Contribution("validation_probes", "tradecraft", 7.5)]).rank == 2  # uncapped
    assert fuse([Contribution("p", "tradecraft", BLOCK_POINTS)]).probability == 0.5


# --- detection --------------------------------------------------------------------------


def test_stolen_key_is_blocked_at_once_with_the_tradecraft_and_evidence() -> None:
    det = detector(default="enforce")
    history = normal_key(1, "k-victim")
    assert not run(det, history)
    start = after_normal(history)
    stolen = attack("k-victim", start)
    out = run(det, stolen)
    found = anomalies(out)

    assert {a.subject for a in found} == {"key:k-victim"}
    # Judged as the requests arrive: the first invalid max_tokens probe from a new network
    # with a new client blocks the key.
    first = found[0]
    assert first.severity == "high" and first.evidence["sample_request_ids"] == ["attack-0"]
    [(_, block)] = decisions(out)[:1]
    assert block.anomaly_id == first.anomaly_id and "rotate" in block.reason
    signals = set().union(*(a.signals for a in found))
    assert {
        "validation_probes",
        "model_enumeration",
        "new_networks",
        "new_user_agents",
        "pricier_models",
        "spend_rate",
    } <= signals
    worst = max(found, key=lambda a: a.score)
    assert worst.severity == "critical" and worst.recommended_action == "block"
    evidence = worst.evidence
    assert "198.51.100.0/24" in evidence["features"]["new_networks"]["new_networks"]
    assert evidence["contributions"]["validation_probes"] >= 5.0
    assert evidence["points"] == pytest.approx(sum(evidence["groups"].values()), abs=0.05)
    assert evidence["groups"]["identity"] <= 5.4 and evidence["groups"]["usage"] <= 3.9
    enumerated = set().union(
        *(a.evidence["signal_request_ids"].get("model_enumeration", []) for a in found)
    )
    assert "attack-6" in enumerated  # a not-found model name
    assert evidence["key_learned_requests"] >= 0.9 * len(history)  # learned as it went
    assert any("rotate" not in line and "revoke" in line for line in evidence["what_to_do"])
    assert set(evidence["sample_request_ids"]) <= {e.request_id for e in stolen}


def test_a_young_key_is_judged_against_its_peers_and_learns_in_minutes() -> None:
    """The independent campaign of issue 14: a key in use for two minutes is abused from two
    dozen networks with a new client, pricier models, long prompts, at many times its rate,
    without probes. Its org's other keys are its normal."""
    det = detector(default="enforce")
    peers = [normal_key(50 + i, f"peer{i}", org="acme") for i in range(6)]
    run(det, interleave(peers))
    start = max(e.ts_start for p in peers for e in p) + timedelta(hours=1)
    home = peers[0][0].client_ip
    young = [
        event(
            "young",
            start + timedelta(seconds=1.5 * i),
            request_id=f"y{i}",
            ip=home,
            agent=peers[0][0].user_agent or "",
        )
        for i in range(84)
    ]
    assert not run(det, young)
    later = start + timedelta(seconds=200)
    rng = random.Random(3)
    campaign = [
        event(
            "young",
            later + timedelta(seconds=0.1 * i),
            request_id=f"c{i}",
            ip=f"{rng.choice(['45.33', '185.2'])}.{rng.randrange(24)}.{rng.randrange(1, 254)}",
            agent="oai-reverse-proxy/1.0",
            model=rng.choice(["gpt-4o", "o1"]),
            tokens=(rng.randint(4000, 9000), rng.randint(500, 1500)),
        )
        for i in range(200)
    ]
    out: list[Publication] = []
    for index, item in enumerate(campaign):  # noqa: B007 (the index is kept)
        out = det.observe(item)
        if decisions(out):
            break
    assert index < 8, [a.evidence["contributions"] for a in anomalies(out)]  # a handful
    first_block = anomalies(out)[-1]
    assert first_block.evidence["key_learned_requests"] >= 40  # known after its first minutes
    assert {"new_networks", "new_user_agents"} <= set(first_block.signals)
    assert {"pricier_models", "spend_rate"} & set(first_block.signals)


def test_moderate_signals_together_block_and_the_expensive_abuse_sooner() -> None:
    """No probes, the victim's own user agent, one new network: only that, pricier models
    and volume. Together they block; the pricier the abuse, the fewer requests it gets."""

    def requests_to_block(model: str) -> int:
        det = detector(default="enforce")
        history = normal_key(5, "k5")
        run(det, history)
        start = after_normal(history)
        rng = random.Random(5)
        abuse = [
            event(
                "k5",
                start + timedelta(seconds=0.5 * i),
                request_id=f"a{i}",
                ip=f"45.1.2.{rng.randrange(256)}",
                agent=history[-1].user_agent or "",
                model=model,
                tokens=(3000, 800),
            )
            for i in range(300)
        ]
        for index, item in enumerate(abuse):
            if decisions(det.observe(item)):
                return index + 1
        raise AssertionError(f"never blocked on {model}")

    assert requests_to_block("o1") < requests_to_block("gpt-4o-mini") <= 30


def test_legitimate_changes_are_not_blocked() -> None:
    det = detector(default="enforce")
    history = normal_key(6, "k6")
    run(det, history)
    usual = history[-1]
    start = after_normal(history)

    def like(at: datetime, n: int, gap_s: float, **fields: object) -> list[RequestEvent]:
        base = {"ip": usual.client_ip, "agent": usual.user_agent, "model": usual.model_requested}
        return [
            event(
                "k6",
                at + timedelta(seconds=gap_s * i),
                request_id=f"{at:%d%H}-{i}",
                **(base | fields),
            )  # type: ignore[arg-type]
            for i in range(n)
        ]

    moved = like(start, 40, 20, ip="192.0.2.10")  # a new office, a new region
    upgraded = like(start + timedelta(hours=2), 40, 20, model="gpt-4o")  # a model upgrade
    batch = like(start + timedelta(hours=4), 400, 0.2)  # a batch job: 300 a minute
    out = run(det, moved + upgraded + batch)
    assert not decisions(out), [a.evidence["contributions"] for a in anomalies(out)]
    assert det.keys["k6"].baseline.networks.get("192.0.2.0/24")  # the move was learned
    assert det.keys["k6"].baseline.models["gpt-4o"] >= 30  # and so was the upgrade


def test_a_key_check_from_a_new_network_with_a_new_client_blocks_at_once() -> None:
    """A checker asks "hi" with max_tokens 1 from elsewhere: the key is blocked before the
    resale starts. The same ping from the key's own network, or a new network with the
    key's own client, is at most reported."""

    def outcome(ip: str, agent: str | None) -> tuple[list[Anomaly], list[object]]:
        det = detector(default="enforce")
        history = normal_key(8, "k8")
        run(det, history)
        start = after_normal(history)
        checks = [
            event(
                "k8",
                start + timedelta(seconds=2 * i),
                request_id=f"check-{i}",
                ip=ip,
                agent=agent or history[-1].user_agent or "",
                tokens=(9, 1),
                max_tokens=1,
            ).model_copy(update={"prompt_chars": 2})
            for i in range(2)
        ]
        out = run(det, checks)
        return anomalies(out), decisions(out)

    found, blocks = outcome("203.0.113.9", "python-requests/2.31.0")
    assert blocks and "key_checks" in found[-1].signals
    found, blocks = outcome("203.0.113.9", None)  # a developer's laptop, the app's client
    assert not blocks
    home = normal_key(8, "k8")[-1].client_ip or ""
    found, blocks = outcome(home, None)
    assert not found and not blocks


def test_a_new_key_tried_out_at_home_is_no_key_check() -> None:
    """A developer's first calls on a brand-new key: "hi", max_tokens 1, from where the
    key will live. Those networks are its own, not a checker's."""
    det = detector(default="enforce")
    run(det, normal_key(10, "peer"))  # the org has a normal
    tries = [
        event(
            "fresh",
            NOW + timedelta(seconds=i),
            request_id=f"try-{i}",
            ip="10.9.8.7",
            agent="curl/8.5.0",
            tokens=(9, 1),
            max_tokens=1,
        ).model_copy(update={"prompt_chars": 2})
        for i in range(3)
    ]
    run(det, tries)
    window = det.keys["fresh"].window
    assert window is not None and window.key_checks == 0


def test_rotation_through_a_proxy_pool_blocks_where_a_move_does_not() -> None:
    """The victim's client from a new network each call, at its usual rate and models:
    identity alone stays below the block; a proxy pool of many networks does not."""
    det = detector(default="enforce")
    history = normal_key(9, "k9")
    run(det, history)
    usual = history[-1]
    start = after_normal(history)
    pool = [
        event(
            "k9",
            start + timedelta(seconds=6 * i),
            request_id=f"pool-{i}",
            ip=f"{45 + i}.7.8.9",
            agent="Mozilla/5.0 (proxy)",
            model=usual.model_requested or "",
        )
        for i in range(12)
    ]
    out = run(det, pool)
    blocked = decisions(out)
    assert blocked, [a.evidence["contributions"] for a in anomalies(out)]
    assert "network_rotation" in anomalies(out)[-1].signals

    det = detector(default="enforce")
    run(det, history)
    two = [
        item.model_copy(update={"client_ip": f"{45 + i % 2}.7.8.9"}) for i, item in enumerate(pool)
    ]
    assert not decisions(run(det, two))  # two new networks: a move, not a pool


def test_traffic_under_suspicion_is_never_learned() -> None:
    det = detector()
    history = normal_key(7, "k7")
    run(det, history)
    stolen = attack("k7", after_normal(history))
    run(det, stolen)
    later = stolen[-1].ts_start + timedelta(hours=1)
    run(det, [event("k7", later, request_id="late", ip=history[-1].client_ip)])  # probation due
    baseline = det.keys["k7"].baseline
    assert not {"198.51.100.0/24", "203.0.113.0/24"} & set(baseline.networks)
    assert "Mozilla/5.0 (proxy)" not in baseline.user_agents and "o1" not in baseline.models


def test_enumeration_by_not_found_models_blocks_even_a_new_key() -> None:
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
    found = anomalies(run(det, events))
    assert found[0].signals == ["model_enumeration"] and found[0].severity == "medium"
    assert found[-1].recommended_action == "block"
    ids = found[-1].evidence["signal_request_ids"]["model_enumeration"]
    assert len(ids) >= 3 and ids == [f"e{i}" for i in range(len(ids))]


@pytest.mark.slow  # a statistical simulation: make test's last lane
def test_false_positive_rate_on_normal_keys_is_at_most_one_percent() -> None:
    det = detector()
    keys = [normal_key(1000 + i, f"n{i}", org=f"org{i % 4}") for i in range(200)]
    flagged = {a.subject for a in anomalies(run(det, interleave(keys)))}

    assert len(flagged) <= 2, flagged  # <= 1% of 200 keys
    assert all(k.baseline.requests >= CONFIG.learning_requests for k in det.keys.values())


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
            # Each re-alert is worse, or brings a feature worth a point not reported yet.
            worse = before is None or order.index(after.severity) > order.index(before.severity)
            assert worse or set(after.signals) - seen, [r.signals for r in reports]
            seen |= set(after.signals)
        assert len(reports) <= 3 + 8  # severities + features: bounded
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
    assert not run(det, refused) and "k5" not in det.keys


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

    # The second probe is reported (medium), the third escalates it (critical) and blocks.
    assert [a.severity for a in anomalies(watched)] == ["medium", "critical"]
    assert not decisions(watched)
    [(key, decision)] = decisions(blocked)
    anomaly = anomalies(blocked)[-1]
    assert key == enforcement_key("llmjacking", "key:k-acme") == "llmjacking|key:k-acme"
    assert decision.subject == "key:k-acme" and decision.action == "block"
    assert decision.source == "llmjacking" and decision.anomaly_id == anomaly.anomaly_id
    assert decision.expires_at == NOW + timedelta(seconds=CONFIG.block_s)
    assert "validation_probes" in decision.reason and "rotate" in decision.reason
    assert anomaly.evidence["mode"] == "enforce"
    assert [item.topic for item in blocked] == [ANOMALIES, ANOMALIES, ENFORCEMENT]


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


def test_a_restarted_detector_keeps_what_it_learned(tmp_path: Path) -> None:
    det = detector()
    history = normal_key(8, "k8")
    run(det, history)
    save_state(tmp_path / "s.pickle", det.state())
    restarted = detector()
    restarted.restore(load_state(tmp_path / "s.pickle"))  # type: ignore[arg-type]
    assert restarted.keys["k8"].baseline.requests == det.keys["k8"].baseline.requests
    assert restarted.peers.keys() == det.peers.keys()

    moved = [
        event(
            "k8",
            after_normal(history) + timedelta(seconds=i),
            request_id=f"m{i}",
            ip="192.0.2.1",
            agent="curl/1",
            model=history[0].model_requested or "",
        )
        for i in range(2)
    ]
    # Known networks and clients are remembered: only the new ones count.
    assert not anomalies(run(restarted, moved))
    window = restarted.keys["k8"].window
    assert window is not None and set(window.new_networks) == {"192.0.2.0/24"}


def test_unreadable_state_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "s.pickle").write_bytes(b"not a pickle")
    assert load_state(tmp_path / "s.pickle") is None
    assert load_state(tmp_path / "missing.pickle") is None
    save_state(tmp_path / "v.pickle", {})
    assert load_state(tmp_path / "v.pickle") == {"version": 2}


def test_blocks_found_before_the_policies_loaded_wait_for_them() -> None:
    det = LlmjackingDetector(
        CONFIG, PolicyBook(KIND, "monitor"), TIERS, lambda: NOW, policies_ready=False
    )
    early = run(det, probes("k-a", "acme")) + run(det, probes("k-b", "other"))
    assert {a.subject for a in anomalies(early)} == {"key:k-a", "key:k-b"}
    assert not decisions(early)
    assert {a.evidence["mode"] for a in anomalies(early)} == {"pending"}

    det.policies.apply(*policy("enforce", org="acme"))
    [(key, decision)] = decisions(det.policies_loaded())
    critical = [a for a in anomalies(early) if a.subject == "key:k-a"][-1]
    assert key == "llmjacking|key:k-a" and decision.anomaly_id == critical.anomaly_id
    assert not det.policies_loaded()  # released once


def test_peer_baselines_learned_on_one_worker_are_applied_on_another() -> None:
    """Keys are split across workers by partition: what one worker's keys teach their
    peers (team, app, org, everyone) is handed out and taken in by the others, so their
    peer baselines are the same as if they had seen those keys themselves."""
    here, there = detector(), detector()
    run(here, normal_key(1, "k-here", org="acme"))
    items = here.take_learned()
    assert items and here.take_learned() == []  # taken once
    assert {item.org for item in items} == {"acme"}
    there.learn_from_peers(items)
    for scope in ("org:acme", "*"):
        mine, theirs = here.peers[scope], there.peers[scope]
        assert theirs.requests == mine.requests > 0
        assert theirs.networks == mine.networks and theirs.user_agents == mine.user_agents
        assert theirs.models == mine.models and theirs.hours == mine.hours
        assert theirs.rate == mine.rate and theirs.usual_price == mine.usual_price
    assert "k-here" not in there.keys  # the key itself lives on its own worker
