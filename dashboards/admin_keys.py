"""The Admin page's Keys tab: every key, create one (its secret shown once), change its
models and rate limits, revoke it after a confirmation."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards.admin_actions import act, typed
from dashboards.admin_data import FormError, key_table, parse_models, showback_link
from dashboards.owners import owner_text
from meterline.clients import AdminClient
from meterline.clients.admin import KeyInfo

__all__ = ["keys_section"]

state = st.session_state


def _create() -> None:
    def change(client: AdminClient) -> Any:
        if not typed("key_org"):
            raise FormError("A key needs an org (spend is attributed to it).")
        return client.create_key(
            org=typed("key_org"),
            team=typed("key_team"),
            project=typed("key_project"),
            user=typed("key_user"),
            models=parse_models(typed("key_models")),
            rpm=state.get("key_rpm"),
            tpm=state.get("key_tpm"),
        )

    def done(created: Any) -> str:
        state["new_secret"] = (created["key_id"], created["key"])
        return f"Created {created['key_id']} for {owner_text(created)}."

    act(change, done)


def _revoke() -> None:
    key_id = state.pop("revoke_pending")
    act(lambda c: c.revoke_key(key_id), lambda _: f"Revoked {key_id}: it is refused at once.")


def _set_limits() -> None:
    key_id = state.get("limits_key")

    def change(client: AdminClient) -> Any:
        models = parse_models(typed("limits_models"))
        return client.update_key(
            key_id, models=models, rpm=state.get("limits_rpm"), tpm=state.get("limits_tpm")
        )

    act(change, lambda _: f"Saved the limits of {key_id}.")


def _fill_limits(keys: list[KeyInfo]) -> None:
    """Start the limits form from the chosen key's current values."""
    chosen = next((k for k in keys if k["key_id"] == state.get("limits_key")), None)
    if chosen is not None:
        state["limits_models"] = ", ".join(chosen["models"] or [])
        state["limits_rpm"], state["limits_tpm"] = chosen["rpm"], chosen["tpm"]


def keys_section(keys: list[KeyInfo], actor: str) -> None:
    secret = state.pop("new_secret", None)
    if secret is not None:  # shown this once: the gateway keeps only its hash
        key_id, key = secret
        st.success(f"The secret of **{key_id}**: copy it now, it is shown only this once.")
        st.code(key, language=None)
        st.markdown(f"[See its spend on Showback]({showback_link(key_id)})")
    st.dataframe(key_table(keys), hide_index=True, width="stretch")

    st.subheader("Create a key")
    org, team, project, user = st.columns(4)
    org.text_input("Org", key="key_org", placeholder="acme")
    team.text_input("Team", key="key_team", placeholder="search")
    project.text_input("Project", key="key_project")
    user.text_input("User", key="key_user", placeholder="jane@acme.example")
    models, rpm, tpm = st.columns([2, 1, 1])
    models.text_input("Models", key="key_models", placeholder="every model, or: gpt-4o, o4-*")
    rpm.number_input("Requests / minute", key="key_rpm", min_value=0, value=None, step=1)
    tpm.number_input("Tokens / minute", key="key_tpm", min_value=0, value=None, step=1000)
    st.button("Create key", on_click=_create, disabled=not actor, icon=":material/key:")

    active = {k["key_id"]: k for k in keys if not k.get("revoked")}
    if not active:
        return
    st.subheader("Change or revoke a key")
    labels = {k: f"{k} ({owner_text(info)})" for k, info in active.items()}
    st.selectbox(
        "Key",
        list(labels),
        format_func=labels.__getitem__,
        key="limits_key",
        on_change=_fill_limits,
        args=(keys,),
        index=None,
        placeholder="choose a key",
    )
    if state.get("limits_key") in active:
        models, rpm, tpm = st.columns([2, 1, 1])
        models.text_input("Models", key="limits_models", placeholder="every model")
        rpm.number_input("Requests / minute", key="limits_rpm", min_value=0, value=None)
        tpm.number_input("Tokens / minute", key="limits_tpm", min_value=0, value=None)
        save, revoke, _ = st.columns([1, 1, 3])
        save.button("Save limits", on_click=_set_limits, disabled=not actor)
        revoke.button(
            "Revoke…",
            on_click=lambda: state.update(revoke_pending=state["limits_key"]),
            disabled=not actor,
        )
    pending = state.get("revoke_pending")
    if pending:
        st.warning(f"Revoke **{pending}**? Every gateway refuses it from now on.")
        yes, no, _ = st.columns([1, 1, 4])
        yes.button("Confirm revoke", type="primary", on_click=_revoke)
        no.button("Cancel", on_click=lambda: state.pop("revoke_pending", None))
