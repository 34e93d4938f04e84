"""Audit: every control change (keys, budgets, policies, ingest tokens) and enforcement
decision, lifts included: who, what, when, before and after (read API `/api/audit`,
security and admin roles)."""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboards.api import read_client, read_problem, wire
from dashboards.audit_data import AUDIT_KINDS, audit_table
from dashboards.page import date_range, load_settings, refreshing
from meterline.clients import ClientError, Role
from schemas.subjects import key_subject, org_subject

EVERY = "every kind"
LIMIT = 1000  # the read API's largest page

settings = load_settings()
ROLE: Role = "security"
api = read_client(settings, ROLE)

st.title("Audit")
st.caption("Who changed which key, budget or policy, and every block, throttle and lift.")
dates, kind_column, subject_column = st.columns([2, 1, 2])
start, end = date_range(container=dates)
kind = kind_column.selectbox("Kind", [EVERY, *AUDIT_KINDS], key="audit_kind")
example = f"{key_subject('…')}, {org_subject('acme')}"
subject = subject_column.text_input("Subject", key="audit_subject", placeholder=example)


@refreshing(settings)
def audit_body(start: date, end: date, kind: str, subject: str) -> None:
    try:
        answer = wire(
            api.audit(
                start,
                end,
                kind=None if kind == EVERY else kind,
                subject=subject.strip() or None,
                limit=LIMIT,
            )
        )
    except ClientError as exc:
        st.error(read_problem(exc, api, ROLE))
        return
    entries = answer["entries"]
    if not entries:
        st.info("Nothing changed in this range.")
        return
    people = {e["who"] for e in entries if e.get("who")}
    a, b, c = st.columns(3)
    a.metric("Changes and decisions", f"{len(entries):,}")
    b.metric("Enforcement decisions", sum(1 for e in entries if e["kind"] == "enforcement"))
    c.metric("People and detectors", len(people))
    table = audit_table(entries)
    st.dataframe(table, hide_index=True, width="stretch")
    # The whole record before and after, for the one entry someone asks about.
    labels = [f"{row.When} · {row.Who} · {row.What} · {row.Subject}" for row in table.itertuples()]
    chosen = st.selectbox(
        "Before and after", range(len(entries)), format_func=labels.__getitem__, key="audit_entry"
    )
    if chosen is not None:
        before, after = st.columns(2)
        before.caption("Before")
        before.json(entries[chosen].get("before") or {}, expanded=True)
        after.caption("After")
        after.json(entries[chosen].get("after") or {}, expanded=True)
    if len(entries) >= LIMIT:
        st.caption(f"The newest {LIMIT:,}: narrow the dates, kind or subject to see older ones.")


audit_body(start, end, kind, subject)
