"""Security: detections, open anomalies with evidence, blocked subjects, block and unblock.

`?subject=key:...` (the link in every alert) narrows the page to that subject and fills
the action form. Blocks and lifts go through the gateway admin API after a confirmation.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from dashboards.api import (
    admin_problem,
    key_owners,
    read_client,
    read_problem,
    wire,
)
from dashboards.formatting import when
from dashboards.owners import key_ids_to_resolve, owner_of, subject_label
from dashboards.page import admin_identity, date_range, load_settings, refreshing
from dashboards.security_data import (
    BLOCK_DURATIONS,
    anomaly_table,
    blocked_subjects,
    blocked_table,
    detections_timeline,
)
from meterline.clients import ClientError, Role
from schemas.subjects import key_subject, team_subject

EVIDENCE_SHOWN = 10  # anomalies whose evidence is laid out below the table

settings = load_settings()
ROLE: Role = "security"
api = read_client(settings, ROLE)
state = st.session_state
subject = (st.query_params.get("subject") or "").strip() or None
if subject and state.get("linked_subject") != subject:
    state["linked_subject"] = state["action_subject"] = subject  # a new alert link


def show_everything() -> None:
    st.query_params.clear()
    state.pop("linked_subject", None)


st.title("Security")
st.caption("What the detectors flagged, who is blocked and why, and the lever to change it.")
if subject:
    note, clear = st.columns([4, 1])
    note.info(f"Showing **{subject}** only (from an alert link).")
    clear.button("Show every subject", on_click=show_everything)
start, end = date_range()


@refreshing(settings)
def security_body(start: date, end: date, subject: str | None) -> None:
    try:
        anomalies = wire(api.anomalies(start, end, subject))["anomalies"]
        decisions = wire(api.enforcement(subject))["decisions"]
        history = wire(api.enforcement_history(start, end, subject))["decisions"]
    except ClientError as exc:
        st.error(read_problem(exc, api, ROLE))
        return
    blocked = blocked_subjects(decisions)
    subjects = [row["subject"] for row in (*anomalies, *decisions, *history)]
    wanted = key_ids_to_resolve(subjects, (a["evidence"] for a in anomalies))
    owners = key_owners(settings, api, wanted)
    serious = sum(1 for a in anomalies if a["severity"] in ("critical", "high"))
    a, b, c = st.columns(3)
    a.metric("Anomalies in range", len(anomalies))
    b.metric("Critical or high", serious)
    c.metric("Blocked or throttled now", len(blocked))

    st.subheader("Detections")
    timeline = detections_timeline(anomalies)
    if timeline.empty:
        st.info("No detections in this range.")
    else:
        st.bar_chart(timeline, x="time", y="detections", color="kind", stack=True, height=220)
        table = anomaly_table(anomalies, blocked, owners)
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_order=[c for c in table.columns if c != "anomaly_id"],
        )
        by_id = {row["anomaly_id"]: row for row in anomalies}
        for anomaly_id in table["anomaly_id"][:EVIDENCE_SHOWN]:
            row = by_id[anomaly_id]
            who = subject_label(row["subject"], owners, row["evidence"].get("key_id"))
            title = f"{row['severity'].upper()} · {row['kind']} · {who}"
            with st.expander(f"{title} · {when(row['ts'])}"):
                st.write("Signals: " + (", ".join(row["signals"]) or "—"))
                st.write(f"Recommended action: {row['recommended_action'] or '—'}")
                st.json(row["evidence"], expanded=True)

    st.subheader("Blocked now")
    current = blocked_table(decisions, owners)
    if current.empty:
        st.success("Nothing is blocked or throttled.")
    else:
        st.dataframe(current, hide_index=True, width="stretch")
    with st.expander("Enforcement history (blocks, throttles and lifts in range)"):
        st.dataframe(
            [
                {
                    "When": when(d["ts"]),
                    "Subject": d["subject"],
                    "Owner": owner_of(d["subject"], owners),
                    "Action": d["action"],
                    "Source": d["source"],
                    "By": d.get("decided_by") or "—",
                    "Reason": d["reason"],
                }
                for d in history
            ],
            hide_index=True,
            width="stretch",
        )


security_body(start, end, subject)


# --- block / unblock (gateway admin API), each after a confirmation ---------------------


def ask(action: str) -> None:
    state.pop("action_result", None)
    target = (state.get("action_subject") or "").strip()
    if not target:
        state["action_result"] = ("error", "Name a subject first, e.g. key:key_123.")
        return
    state["pending"] = {
        "action": action,
        "subject": target,
        "reason": (state.get("action_reason") or "").strip(),
        "duration": state.get("action_duration", "24 hours"),
    }


def confirm() -> None:
    pending: dict[str, Any] = state.pop("pending")
    client, actor = admin_identity(settings, render=False)
    if client is None or not actor:
        state["action_result"] = ("error", "Enter the admin token and your name first.")
        return
    try:
        with client:
            if pending["action"] == "block":
                reason = pending["reason"] or "blocked from the Security dashboard"
                duration = BLOCK_DURATIONS[pending["duration"]]
                client.block(pending["subject"], reason, for_seconds=duration)
                done = f"Blocked {pending['subject']} ({pending['duration']})."
            else:
                lifted = client.lift(pending["subject"])
                sources = ", ".join(lifted.get("sources") or [])
                done = f"Lifted every block on {pending['subject']} (sources: {sources})."
    except ClientError as exc:
        state["action_result"] = ("error", admin_problem(exc, client))
        return
    state["action_result"] = ("success", done + " Every gateway applies it within a second.")


def cancel() -> None:
    state.pop("pending", None)


st.subheader("Block or unblock")
client, actor = admin_identity(settings)
if client is None:
    st.info("Enter the admin token to block or unblock subjects.")
elif not actor:
    st.info("Enter your name to block or unblock: the audit trail records who did it.")
else:
    who, why, how_long = st.columns([2, 3, 1])
    example = f"{key_subject('key_…')} or {team_subject('acme', 'search')}"
    who.text_input("Subject", key="action_subject", placeholder=example)
    why.text_input("Reason", key="action_reason", placeholder="why, for the audit trail")
    how_long.selectbox("Block for", list(BLOCK_DURATIONS), index=1, key="action_duration")
    left, right, _ = st.columns([1, 1, 4])
    left.button("Block…", on_click=ask, args=("block",), icon=":material/block:")
    right.button("Unblock…", on_click=ask, args=("unblock",), icon=":material/lock_open:")
    pending = state.get("pending")
    if pending:
        if pending["action"] == "block":
            question = (
                f"Block **{pending['subject']}** for {pending['duration']}? Every gateway "
                "will refuse its requests with 403 until it expires or is lifted."
            )
        else:
            question = (
                f"Lift every block and throttle on **{pending['subject']}**, automatic ones "
                "included? Its requests will be served again at once."
            )
        st.warning(question)
        yes, no, _ = st.columns([1, 1, 4])
        yes.button("Confirm", type="primary", on_click=confirm, key="confirm")
        no.button("Cancel", on_click=cancel, key="cancel")
result = state.get("action_result")
if result:
    kind, message = result
    (st.success if kind == "success" else st.error)(message)
