"""LLMjacking: is someone else using this key? Pure: no Kafka, no Faust.

Published tradecraft for a leaked key: it is validated within minutes, models are
enumerated, cheap validation-error probes (`max_tokens: -1`) confirm invocation rights
without paying, then volume ramps from new networks (often reverse proxies reselling
access), across regions and towards expensive models.

Per key, a behaviour profile (profile.py) learns networks, user agents, models, active
hours and per-minute volume; each window of `window_s` event time is judged by rule
signals (signals.py) and an IsolationForest over window features (forest.py). A window
is reported with the first request that makes it medium or worse (or when it closes),
and again only when it escalates: a higher severity, or a medium or strong signal it
has not reported yet (so the report of an ongoing attack gains its evidence).

Policy per org (PolicyRecord kind "llmjacking", else the default mode): `monitor` only
reports; `enforce` also blocks the key (source "llmjacking", expiring after
`block_s`) on a high or critical detection, once per block unless it escalates. Until
the policies have loaded (`policies_loaded()`), blocks wait and anomalies say "pending".
Requests the gateway refused (blocked, throttled, over budget) are ignored: they called
no model, and an attacker knocking on a blocked key must not look like new activity.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from meterline.settings import LlmjackingSettings
from processors.errors import parse_event
from processors.llmjacking.forest import ForestModels, window_features
from processors.llmjacking.network import network_of
from processors.llmjacking.policy import PolicyBook, Publication
from processors.llmjacking.profile import KeyProfile, KeyWindow
from processors.llmjacking.signals import (
    MEDIUM,
    Signal,
    combine,
    forest_signal,
    is_expensive,
    is_off_hours,
    is_validation_error,
    rule_signals,
)
from schemas.error_types import ENFORCED_ERRORS, MODEL_NOT_FOUND
from schemas.events.v1 import Anomaly, EnforcementDecision, RequestEvent, format_ts, utc_now
from schemas.severity import SEVERITIES
from schemas.subjects import key_subject, org_subject
from schemas.topics import ANOMALIES, ENFORCEMENT, enforcement_key

__all__ = [
    "KIND",
    "STAGE",
    "LlmjackingDetector",
    "request_from_payload",
]

STAGE = "processors.llmjacking"
KIND = "llmjacking"
_REPORTED = 1  # severity rank from which a window is reported (medium)
_BLOCKING = 2  # high and critical block under `enforce`
_FOREST_MIN_REQUESTS = 10  # a closing window is scored by the forest from this size
_MAX_PENDING = 10_000


def request_from_payload(payload: bytes | None) -> RequestEvent | None:
    """Raw value -> RequestEvent; None for anything else (the cost agent dead-letters
    unreadable requests with the reason: one dead letter per bad message)."""
    return parse_event(RequestEvent, payload)


class LlmjackingDetector:
    """Profiles by key_id in process memory (at most `max_keys`, least recently seen
    evicted); `observe` returns the anomalies and decisions to publish.

    `price` gives a model's tier (tiers.ModelTiers.price); `now` is the wall clock of
    decisions (the gateway compares expiries with its own clock).
    """

    def __init__(
        self,
        config: LlmjackingSettings,
        policies: PolicyBook,
        price: Callable[[str | None], float | None],
        now: Callable[[], datetime] = utc_now,
        source: str = STAGE,
        policies_ready: bool = True,
    ) -> None:
        self.config = config
        self._policies_ready = policies_ready
        self._pending: list[tuple[KeyProfile, Anomaly, int]] = []  # blocks awaiting policies
        self.policies = policies
        self._price = price
        self._now = now
        self._source = source
        self.profiles: OrderedDict[str, KeyProfile] = OrderedDict()
        self.forest = ForestModels(config.min_train_windows, config.retrain_windows)
        self.ignored_events = 0  # late or repeated deliveries

    # persistence (store.py writes what `state()` returns)

    def state(self) -> dict[str, Any]:
        return {"profiles": self.profiles, "forest": self.forest}

    def restore(self, state: dict[str, Any]) -> None:
        self.profiles = state["profiles"]
        self.forest = state["forest"]

    # the stream

    def observe(self, event: RequestEvent) -> list[Publication]:
        if event.key_id is None or event.error_type in ENFORCED_ERRORS:
            return []
        at = _utc(event.ts_start)
        profile = self._profile(event, at)
        out: list[Publication] = []
        window = profile.window
        if window is not None and at >= window.end:
            out += self._close(profile, window)
            window = None
        if window is None:
            window = profile.window = self._new_window(at)
        if at < window.start or not window.remember(event.request_id):
            self.ignored_events += 1  # from a closed window, or delivered again
            return out
        profile.last_seen = max(profile.last_seen, at)
        self._count_minute(profile, window, at, event)
        self._add(profile, window, event, at)
        signals = rule_signals(profile, window, self._mature(profile), self.config)
        names = frozenset((signal.name, signal.strength) for signal in signals)
        if names != window.signal_names:  # something new: worth a forest score too
            window.signal_names = names
            out += self._judge(profile, window, signals, closing=False)
        return out

    def policies_loaded(self) -> list[Publication]:
        """The policies are known now: the blocks held back meanwhile, where enforced."""
        self._policies_ready = True
        out: list[Publication] = []
        for profile, anomaly, rank in self._pending:
            if self._mode(profile) == "enforce":
                out += self._block(profile, anomaly, rank)
        self._pending.clear()
        return out

    # internals

    def _mode(self, profile: KeyProfile) -> str:
        return self.policies.mode([key_subject(profile.key_id), org_subject(profile.org)])[0]

    def _profile(self, event: RequestEvent, at: datetime) -> KeyProfile:
        key_id = event.key_id or ""
        profile = self.profiles.get(key_id)
        if profile is None:
            if len(self.profiles) >= self.config.max_keys:
                self.profiles.popitem(last=False)
            profile = self.profiles[key_id] = KeyProfile(key_id, event.org, at, at)
        else:
            self.profiles.move_to_end(key_id)
            profile.org = event.org or profile.org
        return profile

    def _mature(self, profile: KeyProfile) -> bool:
        return profile.requests >= self.config.learning_requests and profile.age() >= timedelta(
            seconds=self.config.learning_s
        )

    def _new_window(self, at: datetime) -> KeyWindow:
        size = self.config.window_s
        start_s = at.timestamp() // size * size
        start = datetime.fromtimestamp(start_s, UTC)
        return KeyWindow(start, start + timedelta(seconds=size))

    def _count_minute(
        self, profile: KeyProfile, window: KeyWindow, at: datetime, event: RequestEvent
    ) -> None:
        minute = int(at.timestamp() // 60)
        if profile.minute != minute:
            if profile.minute is not None and window.alerted_rank < _REPORTED:
                profile.rate.update(profile.minute_requests)  # a reported window: not normal
                profile.tokens.update(profile.minute_tokens)
            profile.minute, profile.minute_requests, profile.minute_tokens = minute, 0, 0
        profile.minute_requests += 1
        profile.minute_tokens += event.input_tokens + event.output_tokens
        window.peak_minute_requests = max(window.peak_minute_requests, profile.minute_requests)
        window.peak_minute_tokens = max(window.peak_minute_tokens, profile.minute_tokens)
        window.peak_volume_z = max(window.peak_volume_z, profile.rate.z(profile.minute_requests, 1))
        window.peak_tokens_z = max(
            window.peak_tokens_z, profile.tokens.z(profile.minute_tokens, 100)
        )

    def _add(
        self, profile: KeyProfile, window: KeyWindow, event: RequestEvent, at: datetime
    ) -> None:
        window.requests += 1
        window.tokens += event.input_tokens + event.output_tokens
        window.hours[at.hour] += 1
        marks: list[str] = []
        if event.status_code >= 400:
            window.errors += 1
            window.error_types[event.error_type or str(event.status_code)] += 1
        if is_validation_error(event.status_code, event.error_type):
            window.validation_errors += 1
            marks.append("validation_probes")
        if event.max_tokens_requested is not None and event.max_tokens_requested <= 0:
            window.invalid_max_tokens += 1
            marks.append("validation_probes")
        if event.status_code == 404 or event.error_type == MODEL_NOT_FOUND:
            window.model_not_found += 1
            marks.append("model_enumeration")
        net = network_of(event.client_ip)
        if net is not None:
            window.networks[net] += 1
            if net not in profile.networks and net not in window.new_networks:
                window.new_networks[net] = at
                marks.append("new_network")
        agent = event.user_agent
        if agent:
            window.user_agents[agent] += 1
            if agent not in profile.user_agents and agent not in window.new_user_agents:
                window.new_user_agents[agent] = at
                marks.append("new_user_agent")
        model = event.model_requested or event.model_used
        mature = self._mature(profile)
        if model:
            window.models[model] += 1
            if model not in profile.models and model not in window.new_models:
                window.new_models[model] = at
                marks.append("model_enumeration")
            if is_expensive(profile, self._price(model), self.config) and mature:
                window.expensive += 1
                marks.append("expensive_models")
        if is_off_hours(profile, at.hour, mature):
            window.off_hours += 1
            marks.append("off_hours")
        window.sample(event.request_id, *dict.fromkeys(marks))

    def _close(self, profile: KeyProfile, window: KeyWindow) -> list[Publication]:
        out: list[Publication] = []
        mature = self._mature(profile)
        if window.requests >= _FOREST_MIN_REQUESTS or window.signal_names:
            signals = rule_signals(profile, window, mature, self.config)
            out = self._judge(profile, window, signals, closing=True)
        profile.window = None
        if window.alerted_rank < _REPORTED:  # only clean windows become the key's normal
            profile.learn(window, self._price)
            if window.requests:
                self.forest.add(profile.org, window_features(window))
        return out

    def _judge(
        self, profile: KeyProfile, window: KeyWindow, signals: list[Signal], closing: bool
    ) -> list[Publication]:
        forest_score = None
        if signals or closing:
            forest_score = self.forest.score(profile.org, window_features(window))
            extra = forest_signal(forest_score, self.config)
            if extra is not None:
                signals = [*signals, extra]
        score, rank = combine(signals)
        fresh = {s.name for s in signals if s.strength >= MEDIUM} - window.reported
        if rank < _REPORTED or (rank <= window.alerted_rank and not fresh):
            return []  # nothing worse, and no new medium or strong evidence
        window.alerted_rank = max(rank, window.alerted_rank)
        window.reported |= {signal.name for signal in signals}
        mode = self._mode(profile) if self._policies_ready else "pending"
        if mode == "off":
            return []
        anomaly = self._anomaly(profile, window, signals, score, rank, forest_score, mode)
        out = [Publication(ANOMALIES, anomaly.subject, anomaly)]
        if rank >= _BLOCKING and mode == "enforce":
            out += self._block(profile, anomaly, rank)
        elif rank >= _BLOCKING and mode == "pending" and len(self._pending) < _MAX_PENDING:
            self._pending.append((profile, anomaly, rank))
        return out

    def _block(self, profile: KeyProfile, anomaly: Anomaly, rank: int) -> list[Publication]:
        decision = self._decision(profile, anomaly, rank)
        if decision is None:
            return []
        return [Publication(ENFORCEMENT, enforcement_key(KIND, anomaly.subject), decision)]

    def _decision(
        self, profile: KeyProfile, anomaly: Anomaly, rank: int
    ) -> EnforcementDecision | None:
        now = self._now()
        still_blocked = profile.blocked_until is not None and profile.blocked_until > now
        if still_blocked and rank <= profile.blocked_rank:
            return None  # ours holds (or a human lifted it: not undone on the same grounds)
        expires = now + timedelta(seconds=self.config.block_s)
        profile.blocked_until, profile.blocked_rank = expires, rank
        return EnforcementDecision(
            ts=now,
            source=KIND,
            subject=anomaly.subject,
            action="block",
            # Blocking a leaked key stops its owner too: say what gets them going again.
            reason=(
                f"llmjacking ({anomaly.severity}): {', '.join(anomaly.signals)}; "
                "treat the key as leaked: rotate it, then lift this block"
            ),
            expires_at=expires,
            decided_at=now,
            anomaly_id=anomaly.anomaly_id,
        )

    def _anomaly(
        self,
        profile: KeyProfile,
        window: KeyWindow,
        signals: list[Signal],
        score: float,
        rank: int,
        forest_score: float | None,
        mode: str,
    ) -> Anomaly:
        evidence: dict[str, Any] = {
            "window": [format_ts(window.start), format_ts(window.end)],
            "org": profile.org,
            "mode": mode,
            "requests": window.requests,
            "tokens": window.tokens,
            "errors": window.errors,
            "networks": dict(window.networks.most_common(10)),
            "user_agents": dict(window.user_agents.most_common(5)),
            "models": dict(window.models.most_common(10)),
            "key_first_seen": format_ts(profile.first_seen),
            "key_learned_requests": profile.requests,
            "key_known_networks": len(profile.networks),
            "sample_request_ids": window.samples,
            "signal_request_ids": {s.name: window.evidence_ids.get(s.name, []) for s in signals},
            "signals": {signal.name: signal.evidence for signal in signals},
            "iforest_score": None if forest_score is None else round(forest_score, 4),
        }
        severity = SEVERITIES[rank]
        return Anomaly(
            ts=self._now(),
            kind=KIND,
            subject=key_subject(profile.key_id),
            score=score,
            severity=severity,
            signals=sorted(signal.name for signal in signals),
            evidence=evidence,
            recommended_action="block" if rank >= _BLOCKING else "alert",
            source=self._source,
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
