"""Typed client of the gateway admin API (ARCHITECTURE §9): keys, ingest tokens, budgets,
enforcement, policies, the router's live state.

Used by the CLI, the dashboards' Security page, the simulator and the detector evaluation.
It lives in `meterline/` because services never import each other: the gateway serves
this API and the dashboards call it, and both may import `meterline`. The answers are
described here as TypedDicts — the client's view of the wire (JSON: times are ISO strings,
money decimal strings) — because the gateway builds them from records rather than from
response models; they are plain dicts at run time, so callers index them as before.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict
from urllib.parse import quote

import httpx

from meterline.clients._http import json_body, sync_client, translate_transport_errors
from meterline.settings import Settings
from schemas.budgets import BudgetPeriod, HardLimitAction
from schemas.enforcement import EnforcementAction

__all__ = [
    "AdminClient",
    "Budget",
    "BudgetListing",
    "BudgetSnapshot",
    "CreatedIngestToken",
    "CreatedKey",
    "Decision",
    "DeploymentState",
    "IngestToken",
    "KeyInfo",
    "Lifted",
    "Policy",
    "RoutingState",
]


class KeyInfo(TypedDict):
    key_id: str
    org: str
    team: str
    project: str
    user: str
    models: list[str] | None  # None: every model
    rpm: int | None
    tpm: int | None
    budget_ids: list[str]


class CreatedKey(KeyInfo):
    key: str  # the secret, shown once


class IngestToken(TypedDict):
    token_id: str
    org: str
    team: str
    project: str
    name: str


class CreatedIngestToken(IngestToken):
    token: str  # the secret, shown once


class Budget(TypedDict):
    budget_id: str
    subject: str
    period: BudgetPeriod
    limit_usd: str
    soft_pct: float
    action_on_hard: HardLimitAction
    throttle_rpm: int | None
    timezone: str


class BudgetSnapshot(TypedDict):
    """The gateway's latest view of a budget's spend in its current period."""

    spent_usd: str | None
    percent_used: float | None
    status: str
    period_end: str | None
    local_estimate_usd: float


class BudgetListing(Budget):
    state: NotRequired[BudgetSnapshot]  # absent: no spend seen yet


class Decision(TypedDict):
    subject: str
    action: EnforcementAction
    reason: str
    source: str
    rpm: int | None
    expires_at: str | None
    decided_at: str


class Lifted(TypedDict):
    subject: str
    lifted: bool
    sources: list[str]
    was: list[Decision]  # the decisions that were active


class Policy(TypedDict):
    policy_id: str
    subject: str
    kind: str
    mode: str


class DeploymentState(TypedDict):
    """One routing deployment as this gateway's router sees it now (GET /admin/routing)."""

    deployment: str
    provider: str
    group: str | None
    model: str | None
    breaker: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    in_flight: int
    latency_ms: float | None  # its recent latency; None before any success


class RoutingState(TypedDict):
    deployments: list[DeploymentState]


class AdminClient:
    """The gateway admin API over one `httpx.Client`.

    ```
    with AdminClient("http://127.0.0.1:8080", token, actor="ana@laptop") as admin:
        created = admin.create_key(org="acme", team="ml")
    ```

    **Parameters:** `base_url` of the gateway; `token`: its admin token; `actor`: who makes
    the changes, sent as `X-Meterline-Actor` for the audit trail (the token authorizes,
    the actor names the person); `timeout` and `transport` as in httpx (tests pass
    `httpx.MockTransport`). Raises `ApiUnreachable` or `ApiError`, never an httpx error.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        actor: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"X-Meterline-Actor": actor} if actor else None
        self._http = sync_client(
            self.base_url, token, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, base_url: str | None = None, actor: str | None = None
    ) -> AdminClient:
        """The configured gateway (or `base_url`) with the configured admin token, or the
        one `meterline up` generated; without any, requests carry none (and get a 401)."""
        secret = settings.resolved_admin_token
        token = secret.get_secret_value() if secret is not None else None
        return cls(base_url or settings.resolved_gateway_url, token, actor=actor)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        with translate_transport_errors(self.base_url):
            response = self._http.request(method, path, json=body)
        return json_body(response)

    # --- virtual keys ------------------------------------------------------------------

    def create_key(
        self,
        *,
        org: str,
        team: str = "",
        project: str = "",
        user: str = "",
        models: list[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_ids: list[str] | None = None,
    ) -> CreatedKey:
        body: dict[str, Any] = {"org": org, "team": team, "project": project, "user": user}
        optional = {"models": models, "rpm": rpm, "tpm": tpm, "budget_ids": budget_ids}
        body |= {name: value for name, value in optional.items() if value is not None}
        created: CreatedKey = self._call("POST", "/admin/keys", body)
        return created

    def list_keys(self) -> list[KeyInfo]:
        keys: list[KeyInfo] = self._call("GET", "/admin/keys")["data"]
        return keys

    def update_key(
        self,
        key_id: str,
        *,
        models: list[str] | None,
        rpm: int | None,
        tpm: int | None,
    ) -> KeyInfo:
        """Set a key's model allow-list and rate limits (None: every model, no limit); its
        secret and attribution stay as they are."""
        body = {"models": models, "rpm": rpm, "tpm": tpm}
        key: KeyInfo = self._call("PATCH", f"/admin/keys/{quote(key_id, safe='')}", body)
        return key

    def revoke_key(self, key_id: str) -> None:
        self._call("DELETE", f"/admin/keys/{quote(key_id, safe='')}")

    # --- OTLP ingest tokens --------------------------------------------------------------

    def create_ingest_token(
        self, *, org: str, team: str = "", project: str = "", name: str = ""
    ) -> CreatedIngestToken:
        body = {"org": org, "team": team, "project": project, "name": name}
        created: CreatedIngestToken = self._call("POST", "/admin/ingest-tokens", body)
        return created

    def list_ingest_tokens(self) -> list[IngestToken]:
        tokens: list[IngestToken] = self._call("GET", "/admin/ingest-tokens")["data"]
        return tokens

    def revoke_ingest_token(self, token_id: str) -> None:
        self._call("DELETE", f"/admin/ingest-tokens/{quote(token_id, safe='')}")

    # --- budgets -------------------------------------------------------------------------

    def set_budget(
        self,
        subject: str,
        *,
        period: BudgetPeriod,
        limit_usd: str,
        soft_pct: float | None = None,
        action_on_hard: HardLimitAction | None = None,
        throttle_rpm: int | None = None,
        timezone: str | None = None,
    ) -> Budget:
        """Create or change the budget of `subject` and `period` (one per pair); the
        options left None take the gateway's defaults."""
        body: dict[str, Any] = {"subject": subject, "period": period, "limit_usd": limit_usd}
        optional = {
            "soft_pct": soft_pct,
            "action_on_hard": action_on_hard,
            "throttle_rpm": throttle_rpm,
            "timezone": timezone,
        }
        body |= {name: value for name, value in optional.items() if value is not None}
        budget: Budget = self._call("POST", "/admin/budgets", body)
        return budget

    def list_budgets(self) -> list[BudgetListing]:
        budgets: list[BudgetListing] = self._call("GET", "/admin/budgets")["data"]
        return budgets

    # --- enforcement ---------------------------------------------------------------------

    def block(self, subject: str, reason: str, *, for_seconds: float | None = None) -> Decision:
        """Block `subject` on every gateway (source `manual`), for a while or until lifted."""
        body: dict[str, Any] = {"subject": subject, "action": "block", "reason": reason}
        if for_seconds:
            body["for_seconds"] = for_seconds
        decision: Decision = self._call("POST", "/admin/enforcement", body)
        return decision

    def lift(self, subject: str) -> Lifted:
        """Lift every source's decision on `subject`, automatic ones included."""
        lifted: Lifted = self._call("DELETE", f"/admin/enforcement/{quote(subject, safe='')}")
        return lifted

    def list_enforcement(self) -> list[Decision]:
        decisions: list[Decision] = self._call("GET", "/admin/enforcement")["data"]
        return decisions

    # --- policies ------------------------------------------------------------------------

    def set_policy(self, subject: str, kind: str, mode: str) -> Policy:
        """Set a guardrail (`guardrail:<name>`) or detector (`llmjacking`, `agent_loop`)
        policy; the gateway validates kind and mode and names the bad one."""
        body = {"subject": subject, "kind": kind, "mode": mode}
        policy: Policy = self._call("POST", "/admin/policies", body)
        return policy

    def list_policies(self) -> list[Policy]:
        policies: list[Policy] = self._call("GET", "/admin/policies")["data"]
        return policies

    def delete_policy(self, policy_id: str) -> None:
        self._call("DELETE", f"/admin/policies/{quote(policy_id, safe='')}")

    # --- routing -------------------------------------------------------------------------

    def routing(self) -> RoutingState:
        """The gateway's deployments now: circuit breakers, in-flight tries, latency. The
        state of the one gateway answering (each process routes on its own)."""
        state: RoutingState = self._call("GET", "/admin/routing")
        return state

    def cache(self) -> dict[str, Any]:
        """The response cache of the one gateway answering: entries, bytes and their
        bounds, evictions, lookups by result (docs/cache.md)."""
        stats: dict[str, Any] = self._call("GET", "/admin/cache")
        return stats
