"""What every page shares: settings, the date range picker, the refresh interval, errors.

Pages are thin: they call the API clients and the plain `*_data` functions and lay out the
answer. Settings are read on each run (not cached) so a changed environment shows at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import streamlit as st

from dashboards.api import admin_client
from meterline.clients import AdminClient
from meterline.settings import Settings

__all__ = [
    "DEFAULT_DAYS",
    "admin_identity",
    "date_range",
    "default_range",
    "load_settings",
    "refreshing",
    "today",
]

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DAYS = 7  # every page opens on the same week, today included
_CHOSEN = "date_range"  # the range last picked, carried from page to page


def load_settings() -> Settings:
    return Settings()


def today() -> date:
    return datetime.now(UTC).date()  # the read API's days are UTC days


def refreshing(settings: Settings) -> Callable[[F], F]:
    """The page body as a fragment that re-runs itself every `dashboard.refresh_s`."""
    every = settings.dashboard.refresh_s or None
    return st.fragment(run_every=every)  # type: ignore[return-value]


def default_range(end: date, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """The last `days` UTC days up to `end`, both included."""
    return end - timedelta(days=days - 1), end


def date_range(*, key: str = "dates", container: Any = st) -> tuple[date, date]:
    """An inclusive UTC date range, the same on every page: the last `DEFAULT_DAYS` days
    until someone picks another, which the other pages then open on."""
    state = st.session_state
    picked = container.date_input(
        "Dates (UTC)",
        value=state.get(_CHOSEN, default_range(today())),
        key=key,
        help="Both ends included. Compared with the period of the same length before it.",
    )
    if isinstance(picked, date):
        chosen = picked, picked
    elif len(picked) == 1:  # the second click has not happened yet
        return picked[0], picked[0]
    else:
        chosen = picked[0], picked[1]
    state[_CHOSEN] = chosen
    return chosen


def admin_identity(settings: Settings, *, render: bool = True) -> tuple[AdminClient | None, str]:
    """The admin token and the person's name, typed once and kept across pages. Returns
    the admin API client (None without any token) sending that name as the actor, and
    the name ('' until typed: changes wait for it, so the audit trail never says nobody)."""
    state = st.session_state
    if render:
        # Widget values are dropped when another page runs: refill them from copies.
        for widget, copy in (("admin_token", "_admin_token"), ("actor", "_actor")):
            if widget not in state and copy in state:
                state[widget] = state[copy]
        configured = settings.resolved_admin_token is not None
        token, name = st.columns(2)
        token.text_input(
            "Admin token",
            type="password",
            key="admin_token",
            placeholder="using the token from settings" if configured else "METERLINE_ADMIN_TOKEN",
            help="The gateway admin token. Left empty, the configured one (or the one "
            "`meterline up` generated) is used.",
        )
        name.text_input(
            "Your name",
            key="actor",
            placeholder="ana@acme.example",
            help="Recorded with every change in the audit trail (the CLI records user@host).",
        )
        state["_admin_token"], state["_actor"] = state["admin_token"], state["actor"]
    actor = str(state.get("actor", state.get("_actor")) or "").strip()
    token = state.get("admin_token", state.get("_admin_token")) or None
    return admin_client(settings, token, actor=actor or None), actor
