"""Admin API for ingest tokens: credentials for OTLP `/v1/traces` only (ARCHITECTURE §13).

`POST /admin/ingest-tokens` {org, team?, project?, name?} -> {token_id, token, ...}: the
secret is shown once; only its SHA-256 is published, as an IngestTokenRecord keyed
`ingest_token:<token_id>` on the control topic, which every ingest instance reads.
`GET /admin/ingest-tokens` lists them (no hashes), `DELETE /admin/ingest-tokens/{id}`
revokes one. An ingest token cannot call the LLM proxy: the gateway's key view ignores it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import NotFound
from gateway.runtime import GatewayRuntime
from schemas.credentials import Credential
from schemas.events import IngestTokenRecord
from schemas.ids import hash_key
from schemas.topics import control_key

__all__ = ["INGEST_TOKEN_PREFIX", "IngestTokenCreate", "ingest_tokens_router", "new_ingest_token"]

INGEST_TOKEN_PREFIX = "mli-"

# (control key, value, topic or None for the control topic, what) -> publish or raise 503
Send = Callable[[str, bytes | None, str | None, str], Awaitable[None]]


class IngestTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org: str = Field(min_length=1, max_length=200)
    team: str = Field(default="", max_length=200)
    project: str = Field(default="", max_length=200)
    name: str = Field(default="", max_length=200, description="what the token is for")


def new_ingest_token() -> tuple[str, str]:
    """(token_id, secret); the secret has 256 random bits."""
    return f"itok_{secrets.token_hex(8)}", INGEST_TOKEN_PREFIX + secrets.token_urlsafe(32)


def _public(credential: Credential) -> dict[str, Any]:
    return {
        "token_id": credential.credential_id,
        "org": credential.org,
        "team": credential.team,
        "project": credential.project,
        "name": credential.name,
    }


def ingest_tokens_router(
    runtime: GatewayRuntime, send: Send, actor: Callable[..., str]
) -> APIRouter:
    """Routes under the admin router (which adds `/admin` and the admin-token check);
    `send` publishes as the admin router does, `actor` names who makes the change."""
    router = APIRouter(prefix="/ingest-tokens")
    tokens = runtime.ingest_tokens
    who_is = Depends(actor)  # a closure's alias would not resolve under future annotations

    async def publish(record: IngestTokenRecord) -> None:
        key = control_key("ingest_token", record.token_id)
        await send(key, record.to_json(), None, "ingest token")
        tokens.apply_record(record.model_dump(mode="json"))

    @router.post("", status_code=201)
    async def create(body: IngestTokenCreate, who: str = who_is) -> JSONResponse:
        token_id, secret = new_ingest_token()
        record = IngestTokenRecord(
            token_id=token_id, token_hash=hash_key(secret), created_by=who, **body.model_dump()
        )
        await publish(record)
        payload = {"token_id": token_id, **body.model_dump(), "token": secret}  # shown once
        return JSONResponse(payload, status_code=201)

    @router.get("")
    async def listing() -> dict[str, Any]:
        data = sorted((_public(c) for c in tokens.all("ingest_token")), key=lambda t: t["token_id"])
        return {"object": "list", "data": data}

    @router.delete("/{token_id}")
    async def revoke(token_id: str, who: str = who_is) -> dict[str, Any]:
        current = tokens.get("ingest_token", token_id)
        if current is None:
            raise NotFound(f"no ingest token with id '{token_id}'", param="token_id")
        record = IngestTokenRecord(
            token_id=token_id,
            token_hash=current.secret_hash,
            org=current.org,
            team=current.team,
            project=current.project,
            name=current.name,
            revoked=True,
            created_by=who,
        )
        await publish(record)
        return {"token_id": token_id, "revoked": True}

    return router
