"""An alert as a Slack-compatible webhook body: `{"text": ..., "blocks": [...]}`. Pure.

`text` is the whole alert in one line (what plain webhook receivers and notifications
show); `blocks` is the same content laid out for Slack. Evidence comes from detectors
and may hold anything, so values under secret-looking names and values shaped like
credentials are redacted, and everything is truncated to Slack's limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from processors.alerts.logic import Alert
from schemas.events.v1 import format_ts

__all__ = ["REDACTED", "slack_message"]

REDACTED = "[redacted]"
_HEADER_CHARS = 150  # Slack's limit for a header block
_SECTION_CHARS = 2900  # Slack allows 3000 per text object
_VALUE_CHARS = 200
_MAX_EVIDENCE_ITEMS = 10
_SECRET_NAME = re.compile(r"secret|token|passw|authorization|api_?key|credential|cookie", re.I)
# Meterline virtual keys (ml-...), provider keys (sk-...), bearer headers.
_SECRET_VALUE = re.compile(r"\b(?:ml|sk)-[A-Za-z0-9_\-]{16,}|\bBearer\s+\S+", re.I)


def slack_message(alert: Alert, suppressed_before: int = 0) -> dict[str, Any]:
    severity = alert.severity.upper()
    held_back = _held_back(suppressed_before, alert.kind)
    text = f"[{severity}] {alert.title}: {_scrub(alert.reason)}"
    if alert.advice:
        text += f" {alert.advice}"
    if alert.link:
        text += f" Details: {alert.link}"
    if held_back:
        text += f" ({held_back})"

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"[{severity}] {alert.title}", _HEADER_CHARS)},
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*Severity*\n{severity}"),
                _mrkdwn(f"*Subject*\n`{_esc(alert.subject)}`"),
                _mrkdwn(f"*Source*\n{_esc(alert.source)}"),
                _mrkdwn(f"*Kind*\n{_esc(alert.kind)}"),
            ],
        },
        _section(f"*Reason*\n{_esc(_scrub(alert.reason))}"),
    ]
    if alert.signals:
        signals = "\n".join(f"• {_esc(_scrub(signal))}" for signal in alert.signals)
        blocks.append(_section(f"*Signals*\n{signals}"))
    evidence = evidence_summary(alert.evidence)
    if evidence:
        lines = "\n".join(f"• {_esc(name)}: {_esc(value)}" for name, value in evidence)
        blocks.append(_section(f"*Evidence*\n{lines}"))
    if alert.advice:
        blocks.append(_section(f"*What to do*\n{_esc(alert.advice)}"))
    if alert.link:
        blocks.append(
            _section(f"<{alert.link}|Open {_esc(alert.subject)} in the security dashboard>")
        )
    context = f"{format_ts(alert.at)} · Meterline"
    if held_back:
        context += f" · {held_back}"
    blocks.append({"type": "context", "elements": [_mrkdwn(_esc(context))]})
    return {"text": _esc(text)[: _SECTION_CHARS * 2], "blocks": blocks}


def evidence_summary(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, short text) pairs of the first evidence items, with secrets redacted."""
    items = []
    for name, value in list(evidence.items())[:_MAX_EVIDENCE_ITEMS]:
        shown = REDACTED if _SECRET_NAME.search(str(name)) else _scrub(_short(value))
        items.append((str(name), shown))
    return items


def _held_back(count: int, kind: str) -> str:
    if count <= 0:
        return ""
    noun = "alert" if count == 1 else "alerts"
    return f"{count} similar {noun} ({kind}) suppressed since the last one"


def _short(value: Any) -> str:
    if isinstance(value, datetime):
        text = format_ts(value)
    elif isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def _scrub(text: str) -> str:
    return _SECRET_VALUE.sub(REDACTED, text)


def _esc(text: str) -> str:
    # Slack mrkdwn control characters; everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit]}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:_SECTION_CHARS]}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}
