"""Security page data: detections, open anomalies and blocked subjects (no Streamlit)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dashboards.formatting import when
from dashboards.owners import Owner, owner_of
from schemas.severity import SEVERITIES as SEVERITY_SCALE

__all__ = [
    "BLOCK_DURATIONS",
    "SEVERITIES",
    "anomaly_table",
    "blocked_subjects",
    "blocked_table",
    "detections_timeline",
]

SEVERITIES = list(reversed(SEVERITY_SCALE))  # worst first, as the dashboard lists them
# Choices offered when blocking; None blocks until someone lifts it.
BLOCK_DURATIONS: dict[str, float | None] = {
    "1 hour": 3600.0,
    "24 hours": 86400.0,
    "7 days": 7 * 86400.0,
    "until lifted": None,
}


def detections_timeline(anomalies: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Anomalies per hour and kind (long format, for a stacked bar chart)."""
    frame = pd.DataFrame.from_records(
        [{"time": pd.Timestamp(a["ts"]).floor("h"), "kind": a["kind"]} for a in anomalies],
        columns=["time", "kind"],
    )
    if frame.empty:
        return pd.DataFrame(columns=["time", "kind", "detections"])
    return frame.groupby(["time", "kind"]).size().reset_index(name="detections")


def blocked_subjects(decisions: Iterable[Mapping[str, Any]]) -> set[str]:
    return {d["subject"] for d in decisions if d["action"] in ("block", "throttle")}


def anomaly_table(
    anomalies: Iterable[Mapping[str, Any]],
    blocked: set[str] | None = None,
    owners: Mapping[str, Owner] | None = None,
) -> pd.DataFrame:
    """Newest first, most severe first within the same minute; `Blocked` says whether an
    enforcement decision currently holds the subject, `Owner` whose it is."""
    blocked = blocked or set()
    owners = owners or {}
    ordered = sorted(
        anomalies,
        key=lambda a: (a["ts"][:16], SEVERITIES[::-1].index(a["severity"])),
        reverse=True,
    )
    return pd.DataFrame.from_records(
        [
            {
                "When": when(a["ts"]),
                "Severity": a["severity"],
                "Kind": a["kind"],
                "Subject": a["subject"],
                "Owner": owner_of(a["subject"], owners, (a.get("evidence") or {}).get("key_id")),
                "Score": round(float(a["score"]), 3),
                "Signals": ", ".join(a.get("signals") or []) or "—",
                "Recommended": a.get("recommended_action") or "—",
                "Blocked now": "yes" if a["subject"] in blocked else "no",
                "anomaly_id": a["anomaly_id"],
            }
            for a in ordered
        ],
        columns=[
            "When",
            "Severity",
            "Kind",
            "Subject",
            "Owner",
            "Score",
            "Signals",
            "Recommended",
            "Blocked now",
            "anomaly_id",
        ],
    )


def blocked_table(
    decisions: Iterable[Mapping[str, Any]], owners: Mapping[str, Owner] | None = None
) -> pd.DataFrame:
    """Subjects a decision holds now, whose they are, what, why, who decided (source) and
    until when."""
    owners = owners or {}
    rows = sorted(
        (d for d in decisions if d["action"] in ("block", "throttle")),
        key=lambda d: d["decided_at"],
        reverse=True,
    )
    return pd.DataFrame.from_records(
        [
            {
                "Subject": d["subject"],
                "Owner": owner_of(d["subject"], owners),
                "Action": d["action"] if d["action"] == "block" else f"throttle {d['rpm']} rpm",
                "Reason": d["reason"],
                "Source": d["source"],
                "Since": when(d["decided_at"]),
                "Expires": when(d["expires_at"]) if d.get("expires_at") else "when lifted",
            }
            for d in rows
        ],
        columns=["Subject", "Owner", "Action", "Reason", "Source", "Since", "Expires"],
    )
