"""Admin: virtual keys, budgets, guardrail and detector policies, through the gateway admin
API only (ARCHITECTURE §9). Needs the admin token; every change carries the name typed
here as `X-Meterline-Actor`, so the audit trail says who, as it does for the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from dashboards.admin_data import (
    POLICY_KINDS,
    FormError,
    budget_table,
    key_table,
    limit_usd,
    parse_models,
    policy_table,
    showback_link,
)
from dashboards.api import admin_problem
from dashboards.owners import owner_text
from dashboards.page import admin_identity, load_settings
from meterline.clients import AdminClient, ClientError
from schemas.budgets import BUDGET_PERIODS, HARD_LIMIT_ACTIONS
from schemas.subjects import key_subject, org_subject, team_subject

settings = load_settings()
state = st.session_state
ORG_EXAMPLE = org_subject("acme")
BUDGET_EXAMPLE = f"{team_subject('acme', 'search')} or {ORG_EXAMPLE}"
GUARDRAIL_EXAMPLE = f"{ORG_EXAMPLE}, {team_subject('acme', 'search')} or {key_subject('…')}"

st.title("Admin")
st.caption(
    "Keys, budgets and policies, changed through the gateway admin API. Every change is "
    "recorded with your name in the audit trail."
)
admin, actor = admin_identity(settings)
if admin is None:
    st.info("Enter the admin token: this page is for administrators only.")
    st.stop()
try:
    with admin:
        keys = admin.list_keys()
        budgets = admin.list_budgets()
        policies = admin.list_policies()
except ClientError as exc:
    st.error(admin_problem(exc, admin))
    st.stop()


def act(change: Callable[[AdminClient], Any], done: Callable[[Any], str]) -> None:
    """Run one change (a button's callback) and keep what happened for the next run."""
    client, who = admin_identity(settings, render=False)
    if client is None or not who:
        state["admin_result"] = ("error", "Enter the admin token and your name first.")
        return
    try:
        with client:
            answer = change(client)
    except (ClientError, FormError) as exc:
        message = admin_problem(exc, client) if isinstance(exc, ClientError) else str(exc)
        state["admin_result"] = ("error", message)
        return
    state["admin_result"] = ("success", done(answer))


def _text(name: str) -> str:
    return str(state.get(name) or "").strip()


result = state.pop("admin_result", None)
if result:
    kind, message = result
    (st.success if kind == "success" else st.error)(message)
if not actor:
    st.warning("Enter your name above to make changes: the audit trail records who did what.")

keys_tab, budgets_tab, policies_tab = st.tabs(["Keys", "Budgets", "Policies"])

# --- keys -------------------------------------------------------------------------------


def create_key() -> None:
    def change(client: AdminClient) -> Any:
        if not _text("key_org"):
            raise FormError("A key needs an org (spend is attributed to it).")
        return client.create_key(
            org=_text("key_org"),
            team=_text("key_team"),
            project=_text("key_project"),
            user=_text("key_user"),
            models=parse_models(_text("key_models")),
            rpm=state.get("key_rpm"),
            tpm=state.get("key_tpm"),
        )

    def done(created: Any) -> str:
        state["new_secret"] = (created["key_id"], created["key"])
        return f"Created {created['key_id']} for {owner_text(created)}."

    act(change, done)


def revoke_key() -> None:
    key_id = state.pop("revoke_pending")
    act(lambda c: c.revoke_key(key_id), lambda _: f"Revoked {key_id}: it is refused at once.")


def set_limits() -> None:
    key_id = state.get("limits_key")

    def change(client: AdminClient) -> Any:
        models = parse_models(_text("limits_models"))
        return client.update_key(
            key_id, models=models, rpm=state.get("limits_rpm"), tpm=state.get("limits_tpm")
        )

    act(change, lambda _: f"Saved the limits of {key_id}.")


def fill_limits() -> None:
    """Start the limits form from the chosen key's current values."""
    chosen = next((k for k in keys if k["key_id"] == state.get("limits_key")), None)
    if chosen is not None:
        state["limits_models"] = ", ".join(chosen["models"] or [])
        state["limits_rpm"], state["limits_tpm"] = chosen["rpm"], chosen["tpm"]


with keys_tab:
    secret = state.pop("new_secret", None)
    if secret is not None:  # shown this once: the gateway keeps only its hash
        key_id, key = secret
        st.success(f"The secret of **{key_id}**: copy it now, it is shown only this once.")
        st.code(key, language=None)
        st.markdown(f"[See its spend on Showback]({showback_link(key_id)})")
    st.dataframe(key_table(keys), hide_index=True, width="stretch")
    active = {k["key_id"]: k for k in keys if not k.get("revoked")}

    st.subheader("Create a key")
    org, team, project, user = st.columns(4)
    org.text_input("Org", key="key_org", placeholder="acme")
    team.text_input("Team", key="key_team", placeholder="search")
    project.text_input("Project", key="key_project")
    user.text_input("User", key="key_user", placeholder="jane@acme.example")
    models, rpm, tpm = st.columns([2, 1, 1])
    models.text_input(
        "Models", key="key_models", placeholder="every model; or gpt-4o, gpt-4o-mini*"
    )
    rpm.number_input("Requests / minute", key="key_rpm", min_value=0, value=None, step=1)
    tpm.number_input("Tokens / minute", key="key_tpm", min_value=0, value=None, step=1000)
    st.button("Create key", on_click=create_key, disabled=not actor, icon=":material/key:")

    if active:
        st.subheader("Change or revoke a key")
        labels = {k: f"{k} ({owner_text(info)})" for k, info in active.items()}
        st.selectbox(
            "Key",
            list(labels),
            format_func=labels.__getitem__,
            key="limits_key",
            on_change=fill_limits,
            index=None,
            placeholder="choose a key",
        )
        if state.get("limits_key") in active:
            models, rpm, tpm = st.columns([2, 1, 1])
            models.text_input("Models", key="limits_models", placeholder="every model")
            rpm.number_input("Requests / minute", key="limits_rpm", min_value=0, value=None)
            tpm.number_input("Tokens / minute", key="limits_tpm", min_value=0, value=None)
            save, revoke, _ = st.columns([1, 1, 3])
            save.button("Save limits", on_click=set_limits, disabled=not actor)
            revoke.button(
                "Revoke…",
                on_click=lambda: state.update(revoke_pending=state["limits_key"]),
                disabled=not actor,
            )
        pending = state.get("revoke_pending")
        if pending:
            st.warning(f"Revoke **{pending}**? Every gateway refuses it from now on.")
            yes, no, _ = st.columns([1, 1, 4])
            yes.button("Confirm revoke", type="primary", on_click=revoke_key)
            no.button("Cancel", on_click=lambda: state.pop("revoke_pending", None))

# --- budgets ----------------------------------------------------------------------------

NEW_BUDGET = "a new budget"


def fill_budget() -> None:
    """Editing starts from the chosen budget's values; a new one from the defaults."""
    chosen = next((b for b in budgets if b["budget_id"] == state.get("budget_pick")), None)
    b = chosen or {"subject": "", "period": "month", "limit_usd": "", "soft_pct": 80.0}
    state["budget_subject"], state["budget_period"] = b["subject"], b["period"]
    state["budget_limit"], state["budget_soft"] = b["limit_usd"], float(b["soft_pct"])
    state["budget_action"] = (chosen or {}).get("action_on_hard", "block")
    state["budget_rpm"] = (chosen or {}).get("throttle_rpm")


def save_budget() -> None:
    def change(client: AdminClient) -> Any:
        if not _text("budget_subject"):
            raise FormError(f"Name what the budget covers, e.g. {BUDGET_EXAMPLE}.")
        return client.set_budget(
            _text("budget_subject"),
            period=state["budget_period"],
            limit_usd=limit_usd(_text("budget_limit")),
            soft_pct=state.get("budget_soft"),
            action_on_hard=state["budget_action"],
            throttle_rpm=state.get("budget_rpm"),
        )

    act(change, lambda b: f"Saved the {b['period']} budget of {b['subject']}.")


with budgets_tab:
    table = budget_table(budgets)
    if table.empty:
        st.info("No budgets yet.")
    else:
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_order=[c for c in table.columns if c != "budget_id"],
        )
    names = {b["budget_id"]: f"{b['subject']} ({b['period']})" for b in budgets}
    st.selectbox(
        "Create or edit",
        [NEW_BUDGET, *names],
        format_func=lambda v: names.get(v, v),
        key="budget_pick",
        on_change=fill_budget,
    )
    who, period, limit = st.columns([2, 1, 1])
    who.text_input("Subject", key="budget_subject", placeholder=BUDGET_EXAMPLE)
    period.selectbox("Period", BUDGET_PERIODS, key="budget_period", index=2)
    limit.text_input("Limit (USD)", key="budget_limit", placeholder="500")
    soft, action, rpm = st.columns(3)
    soft.number_input("Warn at (% of the limit)", 1.0, 100.0, 80.0, key="budget_soft")
    action.selectbox("At the limit", HARD_LIMIT_ACTIONS, key="budget_action")
    rpm.number_input("Throttle to (rpm)", min_value=0, value=None, key="budget_rpm")
    st.button("Save budget", on_click=save_budget, disabled=not actor, icon=":material/savings:")

# --- policies ---------------------------------------------------------------------------


def set_policy() -> None:
    subject, kind, mode = _text("policy_subject"), state["policy_kind"], state["policy_mode"]
    act(
        lambda c: c.set_policy(subject, kind, mode),
        lambda p: f"{p['kind']} is {p['mode']} for {p['subject']}.",
    )


def delete_policy() -> None:
    policy_id = state.get("policy_pick")
    act(lambda c: c.delete_policy(policy_id), lambda _: "Deleted the policy: defaults apply.")


with policies_tab:
    table = policy_table(policies)
    if table.empty:
        st.info("No policies: every guardrail and detector runs with its configured default.")
    else:
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_order=[c for c in table.columns if c != "policy_id"],
        )
    who, kind, mode = st.columns([2, 1, 1])
    kind.selectbox("Kind", list(POLICY_KINDS), key="policy_kind")
    detector = not state["policy_kind"].startswith("guardrail:")
    who.text_input(
        "Subject",
        key="policy_subject",
        placeholder=ORG_EXAMPLE if detector else GUARDRAIL_EXAMPLE,
        help="Detector policies apply to an org." if detector else None,
    )
    mode.selectbox("Mode", POLICY_KINDS[state["policy_kind"]], key="policy_mode")
    st.button("Set policy", on_click=set_policy, disabled=not actor, icon=":material/policy:")
    if policies:
        described = {p["policy_id"]: f"{p['kind']} on {p['subject']}" for p in policies}
        pick, remove = st.columns([3, 1])
        pick.selectbox("Policy", list(described), format_func=described.get, key="policy_pick")
        remove.button("Delete policy", on_click=delete_policy, disabled=not actor)
