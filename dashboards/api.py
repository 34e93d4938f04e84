"""The dashboards' doors: `meterline.clients` for the calls, and here what a person reads
when one fails — which command to run, which setting to change.

Pages read through `ReadClient` (the ingest read API; none opens ClickHouse, ARCHITECTURE
§6) and change things only through `AdminClient` (gateway admin API §9: block and
unblock, after a confirmation). The clients say what happened; `read_problem` and
`admin_problem` turn that into advice for someone looking at a dashboard.

`ReadClient` answers with `schemas.api.read` models; the pages turn each into its wire
form with `wire()` (plain dicts and lists, times as ISO strings, money as exact decimal
strings), which is what the `*_data` modules build their frames from.
"""

from __future__ import annotations

import contextlib
from typing import Any

import streamlit as st
from pydantic import BaseModel

from meterline.clients import AdminClient, ApiError, ApiUnreachable, ClientError, ReadClient, Role
from meterline.clients.read import read_token
from meterline.settings import Settings

__all__ = ["admin_client", "admin_problem", "key_owners", "read_client", "read_problem", "wire"]

OWNERS_LOOKED_UP = 50  # keys whose owner one page run asks the read API for, at most


@st.cache_resource(show_spinner=False)
def _read_client(base_url: str, token: str | None) -> ReadClient:
    # One client (one connection pool) per address and token, shared by every rerun;
    # a changed setting makes a new one.
    return ReadClient(base_url, token)


def read_client(settings: Settings, role: Role) -> ReadClient:
    """The read API with the role's token, else admin's (which may read anything)."""
    return _read_client(settings.resolved_read_api_url, read_token(settings, role))


def wire(answer: BaseModel) -> dict[str, Any]:
    """A read API answer as the JSON it arrived as: the `*_data` modules' input."""
    return answer.model_dump(mode="json", by_alias=True)


def admin_client(
    settings: Settings, token: str | None = None, *, actor: str | None = None
) -> AdminClient | None:
    """`token` typed in the page wins over the configured (or `meterline up`'s) one; None
    when there is no token at all: the page then offers no actions. `actor` names the
    person in the audit trail (`X-Meterline-Actor`, as the CLI sends user@host)."""
    if not token:
        secret = settings.resolved_admin_token
        token = secret.get_secret_value() if secret is not None else None
    if not token:
        return None
    return AdminClient(settings.resolved_gateway_url, token, actor=actor)


def key_owners(
    settings: Settings, read: ReadClient, key_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """key_id -> its org, team, project, user. From the gateway's key list when the
    dashboards hold the admin token (every key, used or not), else from each key's newest
    request in the read API. A key found in neither is left out (the page says unknown)."""
    owners: dict[str, dict[str, Any]] = {}
    admin = admin_client(settings)
    if admin is not None and key_ids:
        with admin, contextlib.suppress(ClientError):  # fall back to the read API
            owners = {k["key_id"]: dict(k) for k in admin.list_keys()}
    for key_id in [k for k in key_ids if k not in owners][:OWNERS_LOOKED_UP]:
        with contextlib.suppress(ClientError):
            rows = read.requests(key=key_id, limit=1).requests
            if rows:
                owners[key_id] = rows[0].model_dump(include={"org", "team", "project", "user"})
    return owners


def read_problem(error: ClientError, client: ReadClient, role: Role) -> str:
    if not isinstance(error, ApiError):
        reason = error.reason if isinstance(error, ApiUnreachable) else str(error)
        return (
            f"The read API at {client.base_url} is unreachable ({reason}). Start it with "
            "`meterline up` (or `meterline ingest`), or set METERLINE_READ_API_URL to where "
            "it runs."
        )
    if error.status in (401, 403):
        if error.status == 401:
            problem = "rejected the dashboards' token" if client.token else "requires a token"
        else:
            problem = f"does not let the configured token read {error.path}"
        return (
            f"The read API at {client.base_url} {problem}. Set "
            f"METERLINE_READ_TOKEN_{role.upper()} (or METERLINE_READ_TOKEN_ADMIN) for "
            "`meterline dashboard` to the token ingest uses."
        )
    return f"The read API answered {error.status} on {error.path}: {error.message}"


def admin_problem(error: ClientError, client: AdminClient) -> str:
    if not isinstance(error, ApiError):
        reason = error.reason if isinstance(error, ApiUnreachable) else str(error)
        return (
            f"The gateway admin API at {client.base_url} is unreachable ({reason}). Start it "
            "with `meterline up` (or `meterline gateway`), or set METERLINE_GATEWAY_URL to "
            "where it runs."
        )
    if error.status == 401:
        return (
            "The gateway refused the admin token. Enter the token `meterline up` printed, "
            "or set METERLINE_ADMIN_TOKEN."
        )
    return f"The gateway answered {error.status}: {error.message}"
