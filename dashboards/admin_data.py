"""Admin page data: the gateway's keys, budgets and policies as tables, and what a person
types turned into admin API arguments (no Streamlit, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from dashboards.formatting import money, when
from schemas.policies import DETECTOR_KINDS, POLICY_MODES, guardrail_of

__all__ = [
    "POLICY_KINDS",
    "FormError",
    "budget_table",
    "key_table",
    "limit_usd",
    "parse_models",
    "policy_table",
    "showback_link",
]

# Guardrails and detectors: what the page sets (the cache has options of its own).
POLICY_KINDS: dict[str, tuple[str, ...]] = {
    kind: modes
    for kind, modes in POLICY_MODES.items()
    if guardrail_of(kind) or kind in DETECTOR_KINDS
}


class FormError(ValueError):
    """What is wrong with a field, phrased for the person who typed it."""


def parse_models(text: str) -> list[str] | None:
    """`gpt-4o, gpt-4o-mini*` -> an allow-list; empty -> None (every model)."""
    models = [m.strip() for m in text.replace("\n", ",").split(",") if m.strip()]
    return models or None


def limit_usd(text: str) -> str:
    """A budget limit as the exact decimal text the admin API takes."""
    try:
        amount = Decimal(text.strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        raise FormError(f"'{text}' is not an amount in dollars, e.g. 500 or 0.25") from None
    if not amount.is_finite() or amount <= 0:
        raise FormError("the limit must be more than $0")
    return format(amount, "f")


def _limit(value: int | None) -> str:
    return "no limit" if value is None else f"{value:,}"


def key_table(keys: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Active keys first, then revoked ones; the secret is never here (only at creation)."""
    rows = sorted(keys, key=lambda k: (bool(k.get("revoked")), k["org"], k["key_id"]))
    return pd.DataFrame.from_records(
        [
            {
                "Key": k["key_id"],
                "Org": k["org"],
                "Team": k.get("team") or "—",
                "Project": k.get("project") or "—",
                "User": k.get("user") or "—",
                "Models": ", ".join(k["models"]) if k.get("models") else "every model",
                "RPM": _limit(k.get("rpm")),
                "TPM": _limit(k.get("tpm")),
                "Status": f"revoked {when(k.get('revoked_at'))}".strip()
                if k.get("revoked")
                else "active",
            }
            for k in rows
        ],
        columns=["Key", "Org", "Team", "Project", "User", "Models", "RPM", "TPM", "Status"],
    )


def showback_link(key_id: str) -> str:
    """The Showback page narrowed to one key (it reads its filters from the address)."""
    return f"/showback?key={key_id}"


def budget_table(budgets: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    rows = sorted(budgets, key=lambda b: (b["subject"], b["period"]))
    records = []
    for b in rows:
        state = b.get("state") or {}
        spent = state.get("spent_usd")
        records.append(
            {
                "Subject": b["subject"],
                "Period": b["period"],
                "Limit": money(b["limit_usd"]),
                "Soft at": f"{float(b['soft_pct']):g}%",
                "At the limit": b["action_on_hard"]
                + (f" {b['throttle_rpm']} rpm" if b.get("throttle_rpm") else ""),
                "Spent": money(spent) if spent is not None else "—",
                "Status": state.get("status", "no spend yet"),
                "budget_id": b["budget_id"],
            }
        )
    return pd.DataFrame.from_records(
        records,
        columns=[
            "Subject",
            "Period",
            "Limit",
            "Soft at",
            "At the limit",
            "Spent",
            "Status",
            "budget_id",
        ],
    )


def policy_table(policies: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    rows = sorted(policies, key=lambda p: (p["subject"], p["kind"]))
    return pd.DataFrame.from_records(
        [
            {
                "Subject": p["subject"],
                "Kind": p["kind"],
                "Mode": p["mode"],
                "policy_id": p["policy_id"],
            }
            for p in rows
        ],
        columns=["Subject", "Kind", "Mode", "policy_id"],
    )
