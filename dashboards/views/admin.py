"""Admin: virtual keys, budgets, guardrail and detector policies, through the gateway admin
API only (ARCHITECTURE §9). Needs the admin token; every change carries the name typed
here as `X-Meterline-Actor`, so the audit trail says who, as it does for the CLI."""

from __future__ import annotations

import streamlit as st

from dashboards.admin_actions import RESULT
from dashboards.admin_budgets import budgets_section
from dashboards.admin_keys import keys_section
from dashboards.admin_policies import policies_section
from dashboards.api import admin_problem
from dashboards.page import admin_identity, load_settings
from meterline.clients import ClientError

settings = load_settings()

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

result = st.session_state.pop(RESULT, None)
if result:
    kind, message = result
    (st.success if kind == "success" else st.error)(message)
if not actor:
    st.warning("Enter your name above to make changes: the audit trail records who did what.")

keys_tab, budgets_tab, policies_tab = st.tabs(["Keys", "Budgets", "Policies"])
with keys_tab:
    keys_section(keys, actor)
with budgets_tab:
    budgets_section(budgets, actor)
with policies_tab:
    policies_section(policies, actor)
