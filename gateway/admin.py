"""Admin API (ARCHITECTURE §9), off the hot path: FastAPI models for convenience.

Key changes are published to the control topic and acknowledged by the broker before
the answer; the change is applied locally at once and reaches every other gateway
instance through its control reader.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import AuthenticationFailed, ControlPlaneUnavailable, NotFound
from gateway.keys import new_key
from gateway.runtime import GatewayRuntime
from schemas.events import KeyRecord
from schemas.ids import hash_key

__all__ = ["KeyCreate", "admin_router"]


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

    async def publish(record: KeyRecord) -> None:
        try:
            await asyncio.to_thread(
                runtime.publisher.publish, f"key:{record.key_id}", record.to_json()
            )
        except ConnectionError:
            raise ControlPlaneUnavailable(
                "the control plane (Kafka) is unavailable; the key change was not made, retry later"
            ) from None
        runtime.keys.apply(record.model_dump(mode="json"))

    @router.post("/keys", status_code=201)
    async def create_key(body: KeyCreate) -> JSONResponse:
        key_id, secret = new_key()
        record = KeyRecord(key_id=key_id, key_hash=hash_key(secret), **body.model_dump())
        await publish(record)
        info = runtime.keys.get(key_id)
        payload: dict[str, Any] = info.public() if info else {"key_id": key_id}
        payload["key"] = secret  # shown once, never stored
        return JSONResponse(payload, status_code=201)

    @router.get("/keys")
    async def list_keys() -> dict[str, Any]:
        return {
            "object": "list",
            "data": sorted((k.public() for k in runtime.keys.all()), key=lambda k: k["key_id"]),
        }

    @router.delete("/keys/{key_id}")
    async def revoke_key(key_id: str) -> dict[str, Any]:
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
        )
        await publish(record)
        return {"key_id": key_id, "revoked": True}

    return router
