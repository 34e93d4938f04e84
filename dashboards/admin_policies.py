"""The Admin page's Policies tab: guardrail and detector modes per subject."""

from __future__ import annotations

import streamlit as st

from dashboards.admin_actions import act, typed
from dashboards.admin_data import POLICY_KINDS, policy_table
from meterline.clients.admin import Policy
from schemas.policies import guardrail_of
from schemas.subjects import key_subject, org_subject, team_subject

__all__ = ["policies_section"]

state = st.session_state
ORG_EXAMPLE = org_subject("acme")
GUARDRAIL_EXAMPLE = f"{ORG_EXAMPLE}, {team_subject('acme', 'search')} or {key_subject('…')}"


def _set() -> None:
    subject, kind, mode = typed("policy_subject"), state["policy_kind"], state["policy_mode"]
    act(
        lambda c: c.set_policy(subject, kind, mode),
        lambda p: f"{p['kind']} is {p['mode']} for {p['subject']}.",
    )


def _delete() -> None:
    policy_id = state.get("policy_pick")
    act(lambda c: c.delete_policy(policy_id), lambda _: "Deleted the policy: defaults apply.")


def policies_section(policies: list[Policy], actor: str) -> None:
    table = policy_table(policies)
    if table.empty:
        st.info("No guardrail policies: every guardrail runs with its configured default.")
    else:
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_order=[c for c in table.columns if c != "policy_id"],
        )
    st.caption(
        "Detector policies (LLMjacking, agent loops) are the processors' to apply: they are "
        "set here and listed on the Audit page."
    )
    who, kind, mode = st.columns([2, 1, 1])
    kind.selectbox("Kind", list(POLICY_KINDS), key="policy_kind")
    detector = guardrail_of(state["policy_kind"]) is None
    who.text_input(
        "Subject",
        key="policy_subject",
        placeholder=ORG_EXAMPLE if detector else GUARDRAIL_EXAMPLE,
        help="Detector policies apply to an org." if detector else None,
    )
    mode.selectbox("Mode", POLICY_KINDS[state["policy_kind"]], key="policy_mode")
    st.button("Set policy", on_click=_set, disabled=not actor, icon=":material/policy:")
    if policies:
        described = {p["policy_id"]: f"{p['kind']} on {p['subject']}" for p in policies}
        pick, remove = st.columns([3, 1])
        pick.selectbox("Policy", list(described), format_func=described.get, key="policy_pick")
        remove.button("Delete policy", on_click=_delete, disabled=not actor)
