"""Many campaigns, in process: the LLMjacking detector's pure logic against drawn attacks.

Each draw builds a world (the `normal` scenario's keys and traffic) that has run for
`history_s` when one key, in use only for the campaign's warm-up, is attacked
(`campaign.draw_campaign`) while two others make legitimate changes
(`campaign.draw_legit_change`). The simulator's steps become the
RequestEvents the gateway would emit (`request_event`: a model the mock does not serve is
a 404, `max_tokens <= 0` a 400, tokens from the prompt's size) and go, in event-time
order, through one `LlmjackingDetector` with every org on `enforce`. A block takes
`block_latency_s` to reach the gateway; after that the key's requests are refused (and
never reach the detector, as in the stack). Dollars are exact (Decimal) list prices from
the cost agent's Pricer.

Detector settings are the production defaults, fixed before any draw; the draws of seed
`s` are `random.Random(f"{s}:{i}")`, so a seed is reproducible and no seed is special.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from meterline.settings import LlmjackingSettings
from meterline.simulate.catalog import SERVED_MODELS
from meterline.simulate.plan import Step, merge_steps
from meterline.simulate.scenarios.campaign import (
    CampaignParams,
    campaign_steps,
    draw_campaign,
    draw_legit_change,
    legit_change_steps,
)
from meterline.simulate.scenarios.normal import NormalKey, normal_keys, normal_steps
from processors.cost.logic import Pricer, TokenUsage
from processors.llmjacking.logic import KIND, LlmjackingDetector
from processors.llmjacking.policy import PolicyBook
from processors.llmjacking.tiers import ModelTiers
from schemas.events.v1 import Anomaly, EnforcementDecision, RequestEvent
from schemas.subjects import key_subject

__all__ = ["DrawConfig", "LlmjackingDraw", "llmjacking_draw", "request_event"]

T0 = datetime(2026, 1, 5, tzinfo=UTC)
_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class DrawConfig:
    rate: float = 5.0  # normal requests per second, all keys
    day_length_s: float = 600.0
    block_latency_s: float = 0.5  # decision -> the gateway refuses
    tail_s: float = 60.0  # normal traffic after the attack ends
    history_s: float = 1200.0  # the deployment's age at the leak: the other keys' history
    legit_changes: int = 2
    detector: LlmjackingSettings = field(default_factory=LlmjackingSettings)


@dataclass
class LlmjackingDraw:
    seed: int
    index: int
    params: CampaignParams
    attack_requests: int = 0  # sent by the attacker
    served: int = 0  # of those, served before the block took effect
    usd_served: Decimal = Decimal(0)
    alerted_after_s: float | None = None
    blocked_after_s: float | None = None
    requests_to_block: int | None = None
    usd_to_block: Decimal | None = None
    normal_keys: int = 0
    false_positive_keys: list[str] = field(default_factory=list)  # alerted normal keys
    false_positive_blocks: list[str] = field(default_factory=list)
    legit: list[dict[str, Any]] = field(default_factory=list)  # kind, alerted, blocked

    @property
    def blocked(self) -> bool:
        return self.blocked_after_s is not None


def request_event(step: Step, key: NormalKey, request_id: str, rng: random.Random) -> RequestEvent:
    """The RequestEvent the gateway emits for `step`, against the mock provider."""
    at = T0 + timedelta(seconds=step.at_s)
    spec = key.spec
    common: dict[str, Any] = {
        "request_id": request_id,
        "ts_start": at,
        "key_id": spec.name,
        "org": spec.org,
        "team": spec.team,
        "project": spec.project,
        "user": spec.user,
        "session_id": step.session_id,
        "app": step.app,
        "client_ip": step.client_ip,
        "user_agent": step.user_agent,
    }
    if step.action == "models":
        end = at + timedelta(milliseconds=2)
        return RequestEvent(
            ts_end=end, latency_ms=2.0, endpoint="/v1/models", status_code=200, **common
        )
    chars = sum(len(str(m.get("content") or "")) for m in step.messages)
    status, error = 200, None
    if step.max_tokens is not None and step.max_tokens <= 0:
        status, error = 400, "invalid_request_error"
    elif step.model not in SERVED_MODELS:
        status, error = 404, "model_not_found"
    ok = status == 200
    output = rng.randint(max(1, (step.max_tokens or 256) // 4), step.max_tokens or 256) if ok else 0
    latency = 200.0 + output * 5.0 if ok else 3.0
    return RequestEvent(
        ts_end=at + timedelta(milliseconds=latency),
        latency_ms=latency,
        model_requested=step.model,
        model_used=step.model if ok else None,
        endpoint="/v1/chat/completions",
        stream=step.stream,
        status_code=status,
        error_type=error,
        input_tokens=chars // _CHARS_PER_TOKEN + 8 if ok else 0,
        output_tokens=output,
        max_tokens_requested=step.max_tokens,
        prompt_chars=chars,
        **common,
    )


def _usual_rate(key: NormalKey, keys: list[NormalKey], config: DrawConfig) -> float:
    # normal_steps picks keys by weight at `rate` x rhythm (0.35..1, mean ~0.68).
    return config.rate * 0.68 * key.weight / sum(k.weight for k in keys)


def llmjacking_draw(seed: int, index: int, config: DrawConfig, tiers: ModelTiers) -> LlmjackingDraw:
    rng = random.Random(f"{seed}:{index}")
    params = draw_campaign(rng, config.day_length_s)
    keys = normal_keys(random.Random(f"{seed}:{index}:keys"))
    by_name = {k.spec.name: k for k in keys}
    busy = [k for k in keys if k.weight >= 1.0] or keys
    victim, *changed = rng.sample(busy, 1 + config.legit_changes)
    # The deployment has run for a while; the victim key only for its warm-up.
    start = max(params.warmup_s, config.history_s)
    born = start - params.warmup_s
    attack = list(campaign_steps(rng, victim, params, start))
    end = (attack[-1].at_s if attack else start) + config.tail_s
    streams = [attack]
    changes = []
    for key in changed:
        change = draw_legit_change(rng)
        changes.append((key, change))
        streams.append(
            list(legit_change_steps(rng, key, change, start, _usual_rate(key, keys, config)))
        )
        end = max(end, start + change.duration_s + config.tail_s)
    world = normal_steps(
        random.Random(f"{seed}:{index}:normal"),
        keys,
        rate=config.rate,
        duration_s=end,
        day_length_s=config.day_length_s,
    )
    result = LlmjackingDraw(seed, index, params, attack_requests=len(attack))
    clock = [T0]
    detector = LlmjackingDetector(
        config.detector, PolicyBook(KIND, "enforce"), tiers, now=lambda: clock[0]
    )
    pricer = Pricer()
    alerted: set[str] = set()
    blocked: dict[str, datetime] = {}  # key -> when the gateway starts refusing
    first_attack: datetime | None = None
    events = random.Random(f"{seed}:{index}:events")
    for number, step in enumerate(merge_steps(world, *streams)):
        if step.key == victim.spec.name and step.at_s < born:
            continue  # not created yet
        event = request_event(step, by_name[step.key], f"r{number}", events)
        at = event.ts_start
        refused_from = blocked.get(step.key)
        if refused_from is not None and at >= refused_from:
            continue  # the gateway refuses it: the detector never sees a served request
        if step.malicious:
            first_attack = first_attack or at
            result.served += 1
            result.usd_served += _cost(pricer, event)
        clock[0] = at
        for publication in detector.observe(event):
            value = publication.value
            subject = key_subject(step.key)
            if isinstance(value, Anomaly):
                alerted.add(value.subject)
                if step.key == victim.spec.name and result.alerted_after_s is None:
                    result.alerted_after_s = _since(first_attack, at)
            elif isinstance(value, EnforcementDecision) and value.subject == subject:
                blocked.setdefault(step.key, at + timedelta(seconds=config.block_latency_s))
                if step.key == victim.spec.name and result.blocked_after_s is None:
                    result.blocked_after_s = _since(first_attack, at)
    result.requests_to_block = result.served if result.blocked else None
    result.usd_to_block = result.usd_served if result.blocked else None
    special = {victim.spec.name, *(k.spec.name for k, _ in changes)}
    normal = [k.spec.name for k in keys if k.spec.name not in special]
    result.normal_keys = len(normal)
    result.false_positive_keys = [n for n in normal if key_subject(n) in alerted]
    result.false_positive_blocks = [n for n in normal if n in blocked]
    result.legit = [
        {
            "kind": change.kind,
            "alerted": key_subject(key.spec.name) in alerted,
            "blocked": key.spec.name in blocked,
        }
        for key, change in changes
    ]
    return result


def _since(first: datetime | None, at: datetime) -> float:
    return 0.0 if first is None else (at - first).total_seconds()


def _cost(pricer: Pricer, event: RequestEvent) -> Decimal:
    usage = TokenUsage(
        event.model_used, None, event.input_tokens, event.output_tokens, 0, 0, event.ts_start
    )
    quote = pricer.quote(usage)
    return quote.split.total_cost if quote.priced else Decimal(0)
