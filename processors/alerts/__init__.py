"""Alerts: budget crossings, enforcement decisions and anomalies to Slack-compatible webhooks."""

from __future__ import annotations

__all__: list[str] = []
