"""Counters of the processors worker, rendered as Prometheus text (GET /metrics).

Plain Python, no Faust: agents bump the counters, the web view renders them.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

__all__ = ["PROMETHEUS_CONTENT_TYPE", "ProcessorMetrics"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"
_OTHER = "__other__"


class ProcessorMetrics:
    """In-memory counters; one instance per worker process.

    Model names come from client traffic, so the unpriced-by-model series is capped:
    a flood of invented model names must not grow the metrics without bound.
    """

    def __init__(self, max_model_labels: int = 500) -> None:
        self.events_processed: Counter[str] = Counter()  # by agent
        self.costs_emitted = 0
        self.cost_usd_total = Decimal(0)
        self.unpriced_by_model: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()  # by stage
        self.recosted_total = 0  # stored requests priced again because their cost was lost
        # (outcome: sent|failed|suppressed|dropped, category: budget|enforcement|anomaly)
        self.alerts: Counter[tuple[str, str]] = Counter()
        self._max_model_labels = max_model_labels

    def event_processed(self, agent: str) -> None:
        self.events_processed[agent] += 1

    def cost_emitted(self, total_cost: Decimal, priced: bool, model: str | None) -> None:
        self.costs_emitted += 1
        self.cost_usd_total += total_cost
        if not priced:
            label = model or ""
            known = label in self.unpriced_by_model
            if not known and len(self.unpriced_by_model) >= self._max_model_labels:
                label = _OTHER
            self.unpriced_by_model[label] += 1

    def recosted(self, count: int) -> None:
        self.recosted_total += count

    def dead_letter(self, stage: str) -> None:
        self.dead_letters[stage] += 1

    def alert(self, outcome: str, category: str) -> None:
        self.alerts[(outcome, category)] += 1

    def render(self) -> str:
        lines: list[str] = []
        _family(lines, "events_processed_total", "counter", "Input events handled.")
        for agent, count in sorted(self.events_processed.items()):
            lines.append(
                f'meterline_processors_events_processed_total{{agent="{_esc(agent)}"}} {count}'
            )
        _family(lines, "costs_emitted_total", "counter", "CostEvents sent to the costs topic.")
        lines.append(f"meterline_processors_costs_emitted_total {self.costs_emitted}")
        _family(lines, "cost_usd_total", "counter", "Sum of total_cost emitted, USD.")
        lines.append(f"meterline_processors_cost_usd_total {self.cost_usd_total:f}")
        _family(lines, "recosted_total", "counter", "Stored requests priced again (cost lost).")
        lines.append(f"meterline_processors_recosted_total {self.recosted_total}")
        _family(lines, "unpriced_total", "counter", "CostEvents with priced=false, by model.")
        for model, count in sorted(self.unpriced_by_model.items()):
            lines.append(f'meterline_processors_unpriced_total{{model="{_esc(model)}"}} {count}')
        _family(lines, "dead_letters_total", "counter", "Messages sent to the dead-letter topic.")
        for stage, count in sorted(self.dead_letters.items()):
            lines.append(
                f'meterline_processors_dead_letters_total{{stage="{_esc(stage)}"}} {count}'
            )
        _family(lines, "alerts_total", "counter", "Alert deliveries and alerts held back.")
        for (outcome, category), count in sorted(self.alerts.items()):
            labels = f'outcome="{_esc(outcome)}",category="{_esc(category)}"'
            lines.append(f"meterline_processors_alerts_total{{{labels}}} {count}")
        return "\n".join(lines) + "\n"


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP meterline_processors_{name} {help_text}")
    lines.append(f"# TYPE meterline_processors_{name} {kind}")


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
