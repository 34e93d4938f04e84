"""Admin API (ARCHITECTURE §9), off the hot path: FastAPI models for convenience.

Keys, budgets and guardrail policies are published to the control topic, enforcement
decisions (source `manual`) to the enforcement topic keyed `manual|<subject>`; each is
acknowledged by the broker before the answer (503 if it is down, and nothing changes),
applied locally at once, and reaches every other gateway instance through its view reader.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.admin_ingest_tokens import ingest_tokens_router
from gateway.cache import policy_params_error
from gateway.enforcement import DEFAULT_THROTTLE_RPM, Decision
from gateway.errors import AuthenticationFailed, ControlPlaneUnavailable, InvalidRequest, NotFound
from gateway.guardrails import policy_id_for
from gateway.keys import new_key
from gateway.runtime import GatewayRuntime
from schemas.budgets import BudgetPeriod, HardLimitAction
from schemas.enforcement import ACTOR_HEADER, EnforcementAction
from schemas.events import BudgetRecord, EnforcementDecision, KeyRecord, policy_record
from schemas.ids import hash_key
from schemas.policies import (
    CACHE,
    CACHE_MODES,
    DETECTOR_KINDS,
    GUARDRAIL_MODES,
    GUARDRAILS,
    AgentLoopMode,
    CacheMode,
    GuardrailMode,
    LlmjackingMode,
    guardrail_kind,
    guardrail_of,
)
from schemas.subjects import SubjectError, parse_subject, validate_subject
from schemas.topics import control_key, enforcement_key

__all__ = [
    "BudgetCreate",
    "EnforcementCreate",
    "KeyCreate",
    "KeyLimits",
    "PolicyCreate",
    "admin_router",
    "budget_id_for",
]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org: str = Field(min_length=1, max_length=200)
    team: str = Field(default="", max_length=200)
    project: str = Field(default="", max_length=200)
    user: str = Field(default="", max_length=200)
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    budget_ids: list[str] = Field(default_factory=list)
    store_prompts: bool = False


class KeyLimits(BaseModel):
    """PATCH /admin/keys/{key_id}: the key's limits, replaced as a whole (null: every
    model, no limit); its secret and attribution stay."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)


class BudgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str
    period: BudgetPeriod
    limit_usd: Decimal = Field(gt=0, max_digits=20, decimal_places=6)
    soft_pct: float = Field(default=80.0, gt=0, le=100)
    action_on_hard: HardLimitAction = "block"
    throttle_rpm: int | None = Field(default=None, ge=0)
    timezone: str = "UTC"
    budget_id: str | None = Field(default=None, min_length=1, max_length=200)


class EnforcementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str
    action: EnforcementAction = "block"
    reason: str = Field(default="", max_length=1000)
    expires_at: datetime | None = None
    for_seconds: float | None = Field(default=None, gt=0)
    rpm: int | None = Field(default=None, ge=0)


class PolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str
    kind: str = Field(
        description="guardrail:<pii|secrets|prompt_injection>, llmjacking, agent_loop or cache"
    )
    # Every mode of the kinds the admin API accepts (a kind's own list is checked below).
    mode: Literal[GuardrailMode, LlmjackingMode, AgentLoopMode, CacheMode]
    # Kind `cache` only: ttl_s, similarity, scope (org|key); unset ones take the defaults.
    params: dict[str, Any] = Field(default_factory=dict)


def budget_id_for(subject: str, period: str) -> str:
    """One budget per subject and period unless an id is given, so `set` is idempotent."""
    return "bud_" + hashlib.sha256(f"{subject}\x1f{period}".encode()).hexdigest()[:16]


def _subject(value: str) -> str:
    try:
        return validate_subject(value)
    except SubjectError as exc:
        raise InvalidRequest(str(exc), param="subject") from None


def _actor(x_meterline_actor: Annotated[str | None, Header()] = None) -> str:
    """Who makes an admin change, for the audit trail: the `X-Meterline-Actor` header (the
    CLI sends user@host), else "admin". It names the person; the admin token authorizes."""
    name = "".join(ch for ch in (x_meterline_actor or "") if ch.isprintable()).strip()
    return f"admin:{name[:200]}" if name else "admin"


Actor = Annotated[str, Depends(_actor)]


def admin_router(runtime: GatewayRuntime) -> APIRouter:
    token = runtime.settings.admin_token

    def require_admin(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise AuthenticationFailed("the admin API is disabled: set METERLINE_ADMIN_TOKEN")
        expected = f"Bearer {token.get_secret_value()}".encode()
        if not authorization or not hmac.compare_digest(
            authorization.encode("utf-8", errors="replace"), expected
        ):
            raise AuthenticationFailed("missing or invalid admin token")

    router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)])

    async def send(
        key: str,
        value: bytes | None,
        topic: str | None,
        what: str,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        try:
            await asyncio.to_thread(runtime.publisher.publish, key, value, topic, headers)
        except ConnectionError:
            raise ControlPlaneUnavailable(
                f"the control plane (Kafka) is unavailable; the {what} change was not made, "
                "retry later"
            ) from None

    async def publish(record: KeyRecord) -> None:
        await send(control_key("key", record.key_id), record.to_json(), None, "key")
        runtime.keys.apply(record.model_dump(mode="json"))

    @router.post("/keys", status_code=201)
    async def create_key(body: KeyCreate, who: Actor) -> JSONResponse:
        key_id, secret = new_key()
        record = KeyRecord(
            key_id=key_id, key_hash=hash_key(secret), created_by=who, **body.model_dump()
        )
        await publish(record)
        info = runtime.keys.get(key_id)
        payload: dict[str, Any] = info.public() if info else {"key_id": key_id}
        payload["key"] = secret  # shown once, never stored
        return JSONResponse(payload, status_code=201)

    @router.get("/keys")
    async def list_keys() -> dict[str, Any]:
        """Every key, revoked ones included (`revoked: true`, with who and when)."""
        active = [{**k.public(), "revoked": False} for k in runtime.keys.all()]
        keys = active + runtime.keys.revoked()
        return {"object": "list", "data": sorted(keys, key=lambda k: k["key_id"])}

    @router.patch("/keys/{key_id}")
    async def update_key(key_id: str, body: KeyLimits, who: Actor) -> dict[str, Any]:
        info = runtime.keys.get(key_id)
        if info is None:
            raise NotFound(f"no active key with id '{key_id}'", param="key_id")
        record = KeyRecord(
            key_id=key_id,
            key_hash=info.key_hash,
            org=info.org,
            team=info.team,
            project=info.project,
            user=info.user,
            budget_ids=list(info.budget_ids),
            created_by=who,
            **body.model_dump(),
        )
        await publish(record)
        return info.public() | body.model_dump()

    @router.delete("/keys/{key_id}")
    async def revoke_key(key_id: str, who: Actor) -> dict[str, Any]:
        info = runtime.keys.get(key_id)
        if info is None:
            raise NotFound(f"no key with id '{key_id}'", param="key_id")
        record = KeyRecord(
            key_id=key_id,
            key_hash=info.key_hash,
            org=info.org,
            team=info.team,
            project=info.project,
            user=info.user,
            revoked=True,
            created_by=who,
        )
        await publish(record)
        return {"key_id": key_id, "revoked": True}

    # --- budgets (control topic, `budget:<id>`) -------------------------------------

    @router.post("/budgets", status_code=201)
    async def set_budget(body: BudgetCreate, who: Actor) -> JSONResponse:
        subject = _subject(body.subject)
        try:
            ZoneInfo(body.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidRequest(
                f"unknown time zone '{body.timezone}' (use an IANA name such as 'Europe/Paris')",
                param="timezone",
            ) from None
        if body.action_on_hard == "throttle" and body.throttle_rpm is None:
            raise InvalidRequest(
                "action_on_hard 'throttle' needs throttle_rpm", param="throttle_rpm"
            )
        record = BudgetRecord(
            budget_id=body.budget_id or budget_id_for(subject, body.period),
            subject=subject,
            period=body.period,
            limit_usd=body.limit_usd,
            soft_pct=body.soft_pct,
            action_on_hard=body.action_on_hard,
            throttle_rpm=body.throttle_rpm,
            timezone=body.timezone,
            created_by=who,
        )
        await send(control_key("budget", record.budget_id), record.to_json(), None, "budget")
        payload = orjson.loads(record.to_json())
        runtime.budgets.apply_record(payload)
        return JSONResponse(payload, status_code=201)

    @router.get("/budgets")
    async def list_budgets() -> dict[str, Any]:
        return {"object": "list", "data": runtime.budgets.listing()}

    # --- enforcement (enforcement topic, keyed `<source>|<subject>`) -------------------

    @router.post("/enforcement", status_code=201)
    async def enforce(body: EnforcementCreate, who: Actor) -> JSONResponse:
        subject = _subject(body.subject)
        if body.expires_at is not None and body.for_seconds is not None:
            raise InvalidRequest("give expires_at or for_seconds, not both", param="for_seconds")
        expires_at = body.expires_at
        if body.for_seconds is not None:
            expires_at = datetime.now(UTC) + timedelta(seconds=body.for_seconds)
        if expires_at is not None:
            if expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=UTC)
            if expires_at.timestamp() <= time.time():
                raise InvalidRequest("expires_at is in the past", param="expires_at")
        rpm = body.rpm
        if body.action == "throttle" and rpm is None:
            rpm = DEFAULT_THROTTLE_RPM
        decision = EnforcementDecision(
            subject=subject,
            action=body.action,
            reason=body.reason or f"manual {body.action}",
            source="manual",
            rpm=rpm,
            expires_at=expires_at,
            decided_by=who,
        )
        value = decision.to_json()
        key = enforcement_key("manual", subject)
        await send(key, value, runtime.enforcement_topic, "enforcement")
        payload = orjson.loads(value)
        applied = Decision.from_record(payload)
        if applied is not None:
            runtime.enforcement.put(applied)
        return JSONResponse(payload, status_code=201)

    @router.delete("/enforcement/{subject:path}")
    async def lift(subject: str, who: Actor, source: str | None = None) -> dict[str, Any]:
        """Lift every source's decision on `subject` (a human may lift an automatic block
        early), or only `?source=...`'s. The tombstone names who lifted it (audit)."""
        subject = _subject(subject)
        current = runtime.enforcement.sources(subject, time.time())
        sources = {source} if source else {d.source for d in current} | {"manual"}
        actor = [(ACTOR_HEADER, who.encode())]
        for name in sorted(sources):
            key = enforcement_key(name, subject)
            await send(key, None, runtime.enforcement_topic, "enforcement", actor)
            runtime.enforcement.lift(subject, name)
        return {
            "subject": subject,
            "lifted": True,
            "sources": sorted(sources),
            "was": [d.record for d in current if d.record and d.source in sources],
        }

    @router.get("/enforcement")
    async def list_enforcement() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [d.record for d in runtime.enforcement.active(time.time()) if d.record],
        }

    # --- guardrail policies (control topic, `policy:<id>`) -----------------------------

    @router.post("/policies", status_code=201)
    async def set_policy(body: PolicyCreate, who: Actor) -> JSONResponse:
        subject = _subject(body.subject)
        if parse_subject(subject)[0] == "session":
            raise InvalidRequest(
                "a policy applies to a key, user, team, project or org, not a session",
                param="subject",
            )
        detector_modes = DETECTOR_KINDS.get(body.kind)
        if body.params and body.kind != CACHE:
            raise InvalidRequest(f"a {body.kind} policy takes no params", param="params")
        if body.kind == CACHE:
            if body.mode not in CACHE_MODES:
                raise InvalidRequest("cache mode must be one of off, exact, semantic", param="mode")
            if (bad := policy_params_error(body.params)) is not None:
                raise InvalidRequest(bad[1], param=f"params.{bad[0]}")
        elif detector_modes is not None:
            if parse_subject(subject)[0] != "org":
                raise InvalidRequest(f"a {body.kind} policy applies to an org", param="subject")
            if body.mode not in detector_modes:
                allowed = ", ".join(detector_modes)
                raise InvalidRequest(f"{body.kind} mode must be one of {allowed}", param="mode")
        elif guardrail_of(body.kind) is None:
            kinds = ", ".join(
                [*(f"'{guardrail_kind(g)}'" for g in GUARDRAILS), *DETECTOR_KINDS, CACHE]
            )
            raise InvalidRequest(f"kind must be one of {kinds}", param="kind")
        elif body.mode not in GUARDRAIL_MODES:
            raise InvalidRequest(
                "guardrail mode must be one of off, monitor, redact, block", param="mode"
            )
        record = policy_record(
            {
                "policy_id": policy_id_for(subject, body.kind),
                "subject": subject,
                "kind": body.kind,
                "mode": body.mode,
                "params": body.params,
                "created_by": who,
            }
        )
        await send(control_key("policy", record.policy_id), record.to_json(), None, "policy")
        payload = orjson.loads(record.to_json())
        if body.kind == CACHE:
            runtime.cache.policies.apply_record(payload)
        elif detector_modes is None:
            runtime.guardrails.policies.apply_record(payload)
        return JSONResponse(payload, status_code=201)

    @router.get("/policies")
    async def list_policies() -> dict[str, Any]:
        return {
            "object": "list",
            "defaults": runtime.guardrails.policies.defaults,
            "data": runtime.guardrails.policies.listing() + runtime.cache.policies.listing(),
        }

    @router.delete("/policies/{policy_id}")
    async def delete_policy(policy_id: str, who: Actor) -> dict[str, Any]:
        current = runtime.guardrails.policies.get(policy_id) or runtime.cache.policies.get(
            policy_id
        )
        if current is None:
            raise NotFound(f"no policy with id '{policy_id}'", param="policy_id")
        record = policy_record(
            {
                "policy_id": policy_id,
                "subject": current["subject"],
                "kind": current["kind"],
                "mode": current["mode"],
                "deleted": True,
                "created_by": who,
            }
        )
        await send(control_key("policy", policy_id), record.to_json(), None, "policy")
        runtime.guardrails.policies.remove(policy_id)
        runtime.cache.policies.remove(policy_id)
        return {"policy_id": policy_id, "deleted": True}

    @router.get("/cache")
    async def cache_state() -> dict[str, Any]:
        """This gateway's response cache: entries, bytes and bounds, lookups by result."""
        return runtime.cache.stats()

    @router.get("/routing")
    async def routing_state() -> dict[str, Any]:
        """This gateway's deployments as its router sees them now (breakers, load)."""
        return {"deployments": runtime.router.state()}

    router.include_router(ingest_tokens_router(runtime, send, _actor))  # OTLP credentials
    return router
