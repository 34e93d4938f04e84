"""The Admin page's Budgets tab: every budget, create one or edit one from its values."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards.admin_actions import act, typed
from dashboards.admin_data import FormError, budget_table, limit_usd
from meterline.clients import AdminClient
from meterline.clients.admin import BudgetListing
from schemas.budgets import BUDGET_PERIODS, HARD_LIMIT_ACTIONS
from schemas.subjects import org_subject, team_subject

__all__ = ["budgets_section"]

state = st.session_state
NEW_BUDGET = "a new budget"
EXAMPLE = f"{team_subject('acme', 'search')} or {org_subject('acme')}"
# What a new budget's form starts from (the admin API's own defaults).
DEFAULTS: dict[str, Any] = {
    "budget_subject": "",
    "budget_period": "month",
    "budget_limit": "",
    "budget_soft": 80.0,
    "budget_action": "block",
    "budget_rpm": None,
}


def _fill(budgets: list[BudgetListing]) -> None:
    """Editing starts from the chosen budget's values; a new one from the defaults."""
    chosen = next((b for b in budgets if b["budget_id"] == state.get("budget_pick")), None)
    values = dict(DEFAULTS)
    if chosen is not None:
        values |= {
            "budget_subject": chosen["subject"],
            "budget_period": chosen["period"],
            "budget_limit": chosen["limit_usd"],
            "budget_soft": float(chosen["soft_pct"]),
            "budget_action": chosen["action_on_hard"],
            "budget_rpm": chosen["throttle_rpm"],
        }
    state.update(values)


def _save() -> None:
    def change(client: AdminClient) -> Any:
        if not typed("budget_subject"):
            raise FormError(f"Name what the budget covers, e.g. {EXAMPLE}.")
        return client.set_budget(
            typed("budget_subject"),
            period=state["budget_period"],
            limit_usd=limit_usd(typed("budget_limit")),
            soft_pct=state.get("budget_soft"),
            action_on_hard=state["budget_action"],
            throttle_rpm=state.get("budget_rpm"),
        )

    act(change, lambda b: f"Saved the {b['period']} budget of {b['subject']}.")


def budgets_section(budgets: list[BudgetListing], actor: str) -> None:
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
        on_change=_fill,
        args=(budgets,),
    )
    for name, value in DEFAULTS.items():  # the widgets' first values, set once
        state.setdefault(name, value)
    who, period, limit = st.columns([2, 1, 1])
    who.text_input("Subject", key="budget_subject", placeholder=EXAMPLE)
    period.selectbox("Period", BUDGET_PERIODS, key="budget_period")
    limit.text_input("Limit (USD)", key="budget_limit", placeholder="500")
    soft, action, rpm = st.columns(3)
    soft.number_input("Warn at (% of the limit)", 1.0, 100.0, key="budget_soft")
    action.selectbox("At the limit", HARD_LIMIT_ACTIONS, key="budget_action")
    rpm.number_input("Throttle to (rpm)", min_value=0, key="budget_rpm")
    st.button("Save budget", on_click=_save, disabled=not actor, icon=":material/savings:")
