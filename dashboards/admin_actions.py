"""What every Admin page section shares: run one change through the admin API under the
person's name, and read what they typed (Streamlit session state, no layout)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboards.admin_data import FormError
from dashboards.api import admin_problem
from dashboards.page import admin_identity, load_settings
from meterline.clients import AdminClient, ClientError

__all__ = ["RESULT", "act", "typed"]

RESULT = "admin_result"  # what the last change did, shown once at the top of the page


def act(change: Callable[[AdminClient], Any], done: Callable[[Any], str]) -> None:
    """Run one change (a button's callback) and keep what happened for the next run."""
    client, who = admin_identity(load_settings(), render=False)
    if client is None or not who:
        st.session_state[RESULT] = ("error", "Enter the admin token and your name first.")
        return
    try:
        with client:
            answer = change(client)
    except (ClientError, FormError) as exc:
        message = admin_problem(exc, client) if isinstance(exc, ClientError) else str(exc)
        st.session_state[RESULT] = ("error", message)
        return
    st.session_state[RESULT] = ("success", done(answer))


def typed(name: str) -> str:
    """A text field's value, trimmed ('' when empty)."""
    return str(st.session_state.get(name) or "").strip()
