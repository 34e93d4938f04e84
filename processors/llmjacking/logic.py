"""LLMjacking: is someone else using this key? Pure: no Kafka, no Faust.

Published tradecraft for a leaked key: it is validated within minutes, models are
enumerated, cheap validation-error probes (`max_tokens: -1`) confirm invocation rights
without paying, then volume ramps from new networks (often reverse proxies reselling
access), across regions and towards expensive models. Attackers adapt: they copy the
victim's user agent, skip the probes, go low and slow.

Stream-time scoring: every request updates the key's window (`window_s` of event time)
and its last minute, and the window is judged again at once: features (features.py)
against the key's learned normal, or its peers' while the key is young, fused into
log-odds (fusion.py). A window is reported with the first request that makes it medium
or worse, and again whenever it escalates (a higher severity, or a feature worth a point
that it has not reported yet). Learning is continuous: a request judged normal is learned
`probation_s` later unless the key raised suspicion meanwhile (profile.py). What the
peer baselines learn is also handed out (`take_learned`) for the other processors workers,
which hold other keys, and theirs taken in (`learn_from_peers`): schemas/peer_learning.py.

Policy per org (PolicyRecord kind "llmjacking", else the default mode): `monitor` only
reports; `enforce` also blocks the key (source "llmjacking", expiring after `block_s`)
at high or critical, at once, and again only if it escalates. Until the policies have
loaded (`policies_loaded()`), blocks wait and anomalies say "pending". Requests the
gateway refused (blocked, throttled, over budget) are ignored: they called no model, and
an attacker knocking on a blocked key must not look like new activity.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from meterline.settings import LlmjackingSettings
from processors.errors import parse_event
from processors.llmjacking.features import (
    features,
    is_off_hours,
    maturity,
    novelty,
    usual_price,
)
from processors.llmjacking.fusion import ALERT_POINTS, BLOCK_POINTS, Fused, fuse
from processors.llmjacking.network import network_of
from processors.llmjacking.policy import PolicyBook, Publication
from processors.llmjacking.profile import Baseline, KeyState, KeyWindow, Learned
from processors.llmjacking.tiers import ModelTiers
from schemas.error_types import ENFORCED_ERRORS, MODEL_NOT_FOUND
from schemas.events.v1 import Anomaly, EnforcementDecision, RequestEvent, format_ts, utc_now
from schemas.peer_learning import PeerItem
from schemas.severity import SEVERITIES
from schemas.subjects import key_subject, org_subject, team_subject
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
_FRESH_POINTS = 1.0  # a feature worth this much, not yet reported, is reported
_PRICIER_RATIO = 2.0
_FOREIGN_NOVELTY = 0.5  # novelty from which a new network counts as foreign (features.novelty)
# A key check: a served call with a token-sized prompt and answer, what stolen-key
# checkers send to learn whether a key works before they use or sell it.
_KEY_CHECK_PROMPT_CHARS = 16
_KEY_CHECK_MAX_TOKENS = 8
_MAX_PENDING = 10_000
_MAX_SHARED = 200_000  # learned items waiting to be published to the other workers
POPULATION = "*"  # the peer scope of every key


def request_from_payload(payload: bytes | None) -> RequestEvent | None:
    """Raw value -> RequestEvent; None for anything else (the cost agent dead-letters
    unreadable requests with the reason: one dead letter per bad message)."""
    return parse_event(RequestEvent, payload)


def peer_scopes(org: str, team: str, app: str | None) -> list[str]:
    """A key's peers, most specific first: its team, its app, its org, everyone."""
    scopes = [team_subject(org, team)] if team else []
    if app:
        scopes.append(f"{org_subject(org)}\x00app\x00{app}")  # internal: no subject kind
    return [*scopes, org_subject(org), POPULATION]


class LlmjackingDetector:
    """Key states and peer baselines in process memory (at most `max_keys` of each, least
    recently seen evicted); `observe` returns the anomalies and decisions to publish.

    `tiers` prices models (tiers.ModelTiers); `now` is the wall clock of decisions (the
    gateway compares expiries with its own clock).
    """

    def __init__(
        self,
        config: LlmjackingSettings,
        policies: PolicyBook,
        tiers: ModelTiers,
        now: Callable[[], datetime] = utc_now,
        source: str = STAGE,
        policies_ready: bool = True,
    ) -> None:
        self.config = config
        self._policies_ready = policies_ready
        self._pending: list[tuple[KeyState, Anomaly, int]] = []  # blocks awaiting policies
        self.policies = policies
        self._tiers = tiers
        self._now = now
        self._source = source
        self._probation = timedelta(seconds=config.probation_s)
        self.keys: OrderedDict[str, KeyState] = OrderedDict()
        self.peers: OrderedDict[str, Baseline] = OrderedDict()
        self.ignored_events = 0  # late or repeated deliveries
        # What the peer baselines learned here, for the other workers (take_learned);
        # bounded: the oldest go when nobody takes them.
        self._learned: deque[PeerItem] = deque(maxlen=_MAX_SHARED)

    # persistence (store.py writes what `state()` returns)

    def state(self) -> dict[str, Any]:
        return {"keys": self.keys, "peers": self.peers}

    def restore(self, state: dict[str, Any]) -> None:
        self.keys = state["keys"]
        self.peers = state["peers"]

    # the stream

    def observe(self, event: RequestEvent) -> list[Publication]:
        if event.key_id is None or event.error_type in ENFORCED_ERRORS:
            return []
        at = _utc(event.ts_start)
        key = self._key(event, at)
        window = key.window
        if window is None or at >= window.end:
            window = key.window = self._new_window(at)
        if at < window.start or not window.remember(event.request_id):
            self.ignored_events += 1  # from a closed window, or delivered again
            return []
        key.last_seen = max(key.last_seen, at)
        self._learn_due(key, at)
        model = event.model_used or event.model_requested
        cost = self._tiers.cost(model, event.input_tokens, event.output_tokens)
        key.recent.add(at.timestamp(), cost)
        self._count_minute(key, at, cost)
        scopes = [self._peer(scope) for scope in peer_scopes(key.org, key.team, key.app)]
        key_m = maturity(key.baseline, self.config)
        learned = self._add(key, window, event, at, scopes, key_m)
        mature_peers = [p for p in scopes if maturity(p, self.config) >= 1.0]
        fused = fuse(features(key, window, mature_peers, key_m))
        if fused.points >= ALERT_POINTS:  # suspicion: learn nothing of it, nor for a while
            key.probation.clear()
            key.minute_clean = False
            key.quiet_from = at + self._probation
        elif key.quiet_from_passed(at):
            key.probation.append(learned)
        return self._judge(key, window, fused, key_m, mature_peers)

    def policies_loaded(self) -> list[Publication]:
        """The policies are known now: the blocks held back meanwhile, where enforced."""
        self._policies_ready = True
        out: list[Publication] = []
        for key, anomaly, rank in self._pending:
            if self._mode(key) == "enforce":
                out += self._block(key, anomaly, rank)
        self._pending.clear()
        return out

    # internals

    def _mode(self, key: KeyState) -> str:
        return self.policies.mode([key_subject(key.key_id), org_subject(key.org)])[0]

    def _key(self, event: RequestEvent, at: datetime) -> KeyState:
        key_id = event.key_id or ""
        key = self.keys.get(key_id)
        if key is None:
            if len(self.keys) >= self.config.max_keys:
                self.keys.popitem(last=False)
            key = self.keys[key_id] = KeyState(key_id, event.org, event.team, event.app, at, at)
        else:
            self.keys.move_to_end(key_id)
            key.org, key.team = event.org or key.org, event.team or key.team
            key.app = event.app or key.app
        return key

    def _peer(self, scope: str) -> Baseline:
        peer = self.peers.get(scope)
        if peer is None:
            if len(self.peers) >= self.config.max_keys:
                self.peers.popitem(last=False)
            peer = self.peers[scope] = Baseline()
        else:
            self.peers.move_to_end(scope)
        return peer

    def _new_window(self, at: datetime) -> KeyWindow:
        size = self.config.window_s
        start = datetime.fromtimestamp(at.timestamp() // size * size, UTC)
        return KeyWindow(start, start + timedelta(seconds=size))

    def _learn_due(self, key: KeyState, at: datetime) -> None:
        """Learn what has passed probation (nothing suspicious since it was judged)."""
        due = at - self._probation
        if not key.probation or key.probation[0].at > due:
            return
        scopes = [self._peer(scope) for scope in peer_scopes(key.org, key.team, key.app)]
        while key.probation and key.probation[0].at <= due:
            item = key.probation.popleft()
            self._learned.append(_shared(key, item))
            if item.hour < 0:  # a closed minute: its volume
                key.baseline.learn_minute(item.requests, item.spend)
                for peer in scopes:
                    peer.learn_minute(item.requests, item.spend)
                continue
            key.baseline.learn(item)
            for peer in scopes:
                peer.learn(item)
        for baseline in (key.baseline, *scopes):
            baseline.refresh_price(self._tiers.price)

    # peers across workers (schemas/peer_learning.py)

    def take_learned(self) -> list[PeerItem]:
        """What the peer baselines learned here since the last call, to publish."""
        items = list(self._learned)
        self._learned.clear()
        return items

    def learn_from_peers(self, items: Iterable[PeerItem]) -> None:
        """What another worker's keys taught their peer baselines (not the keys': those
        live on the worker that holds them)."""
        touched: dict[int, Baseline] = {}
        for item in items:
            learned = _learned(item)
            for scope in peer_scopes(item.org, item.team, item.app):
                peer = touched[id(peer)] = self._peer(scope)
                if learned.hour < 0:
                    peer.learn_minute(learned.requests, learned.spend)
                else:
                    peer.learn(learned)
        for peer in touched.values():
            peer.refresh_price(self._tiers.price)

    def _count_minute(self, key: KeyState, at: datetime, cost: float) -> None:
        minute = int(at.timestamp() // 60)
        if key.minute != minute:
            if key.minute is not None and key.minute_clean and key.quiet_from_passed(at):
                key.probation.append(Learned.minute(at, key.minute_requests, key.minute_spend))
            key.minute, key.minute_requests, key.minute_spend = minute, 0, 0.0
            key.minute_clean = True
        key.minute_requests += 1
        key.minute_spend += cost

    def _add(
        self,
        key: KeyState,
        window: KeyWindow,
        event: RequestEvent,
        at: datetime,
        scopes: list[Baseline],
        key_m: float,
    ) -> Learned:
        window.requests += 1
        window.tokens += event.input_tokens + event.output_tokens
        marks: list[str] = []
        if event.status_code >= 400:
            window.errors += 1
            window.error_types[event.error_type or str(event.status_code)] += 1
        if event.status_code in (400, 422) or (event.error_type or "").startswith(
            "invalid_request"
        ):
            window.validation_errors += 1
            marks.append("validation_probes")
        if event.max_tokens_requested is not None and event.max_tokens_requested <= 0:
            window.invalid_max_tokens += 1
            marks.append("validation_probes")
        not_found = event.status_code == 404 or event.error_type == MODEL_NOT_FOUND
        if not_found:
            window.model_not_found += 1
            marks.append("model_enumeration")
        peers = scopes[:-1]  # team, app, org: the population knows every network
        org_m = maturity(scopes[-2], self.config)
        net = network_of(event.client_ip)
        if net is not None:
            window.networks[net] += 1
            if net not in key.baseline.networks and net not in window.new_networks:
                # A new key's very first network is where it lives, not a move.
                first = key.baseline.requests == 0 and not window.new_networks
                window.new_networks[net] = at
                if first:
                    window.home_network = net
                else:
                    new = novelty(
                        net, key.baseline.networks, [p.networks for p in peers], key_m, org_m
                    )
                    window.network_novelty += new
                    window.foreign_networks += new >= _FOREIGN_NOVELTY
                    marks.append("new_networks")
            # From a network new to the key; not a new key's own first checks at home.
            moved = net in window.new_networks and net != window.home_network
            if moved and net not in key.baseline.networks and _is_key_check(event):
                window.key_checks += 1
                marks.append("key_checks")
        agent = event.user_agent
        if agent:
            window.user_agents[agent] += 1
            if agent not in key.baseline.user_agents and agent not in window.new_user_agents:
                first = key.baseline.requests == 0 and not window.new_user_agents
                window.new_user_agents[agent] = at
                if not first:
                    window.agent_novelty += novelty(
                        agent,
                        key.baseline.user_agents,
                        [p.user_agents for p in peers],
                        key_m,
                        org_m,
                    )
                    marks.append("new_user_agents")
        model = event.model_requested or event.model_used
        if model:
            window.models[model] += 1
            org = scopes[-2]
            fresh = model not in key.baseline.models and model not in org.models
            if fresh and model not in window.new_models:
                window.new_models[model] = at
                window.model_novelty += max(key_m, org_m)
                marks.append("model_enumeration")
            mature = [p for p in scopes if maturity(p, self.config) >= 1.0]
            price, usual = self._tiers.price(model), usual_price(key.baseline, mature, key_m)
            if price is not None and usual is not None and price >= _PRICIER_RATIO * usual:
                window.pricier += 1.0 if mature or key_m >= 1.0 else key_m
                window.pricier_ratio = max(window.pricier_ratio, price / usual)
                marks.append("pricier_models")
        if is_off_hours(key.baseline, at.hour, key_m):
            window.off_hours += 1
            marks.append("off_hours")
        window.sample(event.request_id, *dict.fromkeys(marks))
        learned_model = model if event.status_code < 400 else None
        return Learned(at, net, agent, learned_model, at.hour)

    def _judge(
        self,
        key: KeyState,
        window: KeyWindow,
        fused: Fused,
        key_m: float,
        peers: list[Baseline],
    ) -> list[Publication]:
        rank = fused.rank
        fresh = {c.name for c in fused.contributions if c.points >= _FRESH_POINTS}
        fresh -= window.reported
        if rank < _REPORTED or (rank <= window.alerted_rank and not fresh):
            return []  # nothing worse, and no new evidence worth a point
        window.alerted_rank = max(rank, window.alerted_rank)
        window.reported |= {c.name for c in fused.contributions}
        mode = self._mode(key) if self._policies_ready else "pending"
        if mode == "off":
            return []
        explained = fuse(features(key, window, peers, key_m, explain=True))
        anomaly = self._anomaly(key, window, explained, key_m, mode)
        out = [Publication(ANOMALIES, anomaly.subject, anomaly)]
        if rank >= _BLOCKING and mode == "enforce":
            out += self._block(key, anomaly, rank)
        elif rank >= _BLOCKING and mode == "pending" and len(self._pending) < _MAX_PENDING:
            self._pending.append((key, anomaly, rank))
        return out

    def _block(self, key: KeyState, anomaly: Anomaly, rank: int) -> list[Publication]:
        decision = self._decision(key, anomaly, rank)
        if decision is None:
            return []
        return [Publication(ENFORCEMENT, enforcement_key(KIND, anomaly.subject), decision)]

    def _decision(self, key: KeyState, anomaly: Anomaly, rank: int) -> EnforcementDecision | None:
        now = self._now()
        still_blocked = key.blocked_until is not None and key.blocked_until > now
        if still_blocked and rank <= key.blocked_rank:
            return None  # ours holds (or a human lifted it: not undone on the same grounds)
        expires = now + timedelta(seconds=self.config.block_s)
        key.blocked_until, key.blocked_rank = expires, rank
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
        self, key: KeyState, window: KeyWindow, fused: Fused, key_m: float, mode: str
    ) -> Anomaly:
        names = [c.name for c in fused.contributions]
        evidence: dict[str, Any] = {
            "window": [format_ts(window.start), format_ts(window.end)],
            "org": key.org,
            "team": key.team,
            "mode": mode,
            "requests": window.requests,
            "tokens": window.tokens,
            "errors": window.errors,
            "networks": dict(window.networks.most_common(10)),
            "user_agents": dict(window.user_agents.most_common(5)),
            "models": dict(window.models.most_common(10)),
            "key_first_seen": format_ts(key.first_seen),
            "last_seen": format_ts(key.last_seen),  # event time of the request judged
            "key_learned_requests": key.baseline.requests,
            "key_maturity": round(key_m, 2),
            "key_known_networks": len(key.baseline.networks),
            "points": round(fused.points, 2),
            "thresholds": {"alert": ALERT_POINTS, "block": BLOCK_POINTS},
            "contributions": fused.breakdown(),
            "groups": fused.groups,  # capped: identity or usage alone never blocks
            "features": {c.name: c.evidence for c in fused.contributions},
            "what_to_do": what_to_do(fused),
            # Copies: the window keeps filling after the anomaly is made.
            "sample_request_ids": list(window.samples),
            "signal_request_ids": {n: list(window.evidence_ids.get(n, ())) for n in names},
        }
        return Anomaly(
            ts=self._now(),
            kind=KIND,
            subject=key_subject(key.key_id),
            score=round(fused.probability, 4),
            severity=SEVERITIES[fused.rank],
            signals=sorted(names),
            evidence=evidence,
            recommended_action="block" if fused.rank >= _BLOCKING else "alert",
            source=self._source,
        )


def what_to_do(fused: Fused) -> list[str]:
    """Advice for the key's owner, from what moved."""
    moved = {c.name: c.evidence for c in fused.contributions}
    advice = []
    tradecraft = {"validation_probes", "model_enumeration", "key_checks", "network_rotation"}
    if fused.rank >= _BLOCKING or tradecraft & moved.keys():
        advice.append(
            "Treat the key as leaked: create a new key, move the app to it, revoke this one; "
            "then lift the block."
        )
    if "new_networks" in moved:
        nets = ", ".join(list(moved["new_networks"]["new_networks"])[:3])
        advice.append(
            f"Check the new networks ({nets}): if they are yours (a move, a new region, CI), "
            "nothing to do: they are learned once the key is quiet."
        )
    if "new_user_agents" in moved:
        agents = ", ".join(list(moved["new_user_agents"]["new_user_agents"])[:3])
        advice.append(f"Confirm the new clients are your own apps: {agents}.")
    if "spend_rate" in moved or "pricier_models" in moved:
        advice.append(
            "Put a budget with a hard limit on the key (POST /admin/budgets) to cap the spend."
        )
    return advice


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _is_key_check(event: RequestEvent) -> bool:
    limit = event.max_tokens_requested
    return (
        event.status_code < 400
        and event.prompt_chars <= _KEY_CHECK_PROMPT_CHARS
        and limit is not None
        and 0 < limit <= _KEY_CHECK_MAX_TOKENS
    )


def _shared(key: KeyState, item: Learned) -> PeerItem:
    return PeerItem(
        key.org,
        key.team,
        key.app,
        item.at.timestamp(),
        item.network,
        item.user_agent,
        item.model,
        item.hour,
        item.requests,
        item.spend,
    )


def _learned(item: PeerItem) -> Learned:
    at = datetime.fromtimestamp(item.ts, UTC)
    return Learned(
        at, item.network, item.user_agent, item.model, item.hour, item.requests, item.spend
    )
